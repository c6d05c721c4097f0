//! Secrets never leak: every provider kind is configured with known,
//! distinctive secret values (as `_file`, `_env` and literal), every command
//! and the daemon (text and JSON logs, debug level, `/metrics`, `/healthz`,
//! failure alerts through a command and a webhook) run against the
//! simulator, including wrong-secret and config-error paths, and no secret
//! nor its base64 / URL-encoded / JSON-escaped form appears in anything
//! snapwarden printed, logged, served or sent.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use util::*;

const QC_KEY_ID: &str = "QYSECRETSTESTKEY";
const UCS_PUBLIC: &str = "UCSSECRETSPUBLIC";
const KC_ID: &str = "kc-secrets-test-id";
const LS_KEY_ID: &str = "AKIASECRETSTEST00001";
const CID: &str = "ws-secrets-0001";
const PVM: &str = "pvm-secrets-0001";

/// One set of credentials, each secret distinctive and with characters that
/// change under base64 and URL encoding.
#[derive(Clone)]
struct Secrets {
    /// QingCloud `secret_access_key_file`.
    qingcloud: String,
    /// UCloudStack `private_key` (literal in the file).
    ucloudstack: String,
    /// KakaoCloud `application_credential_secret_env`.
    kakaocloud: String,
    /// PowerVS `api_key_file`.
    powervs: String,
    /// Lightsail `secret_access_key_env`.
    lightsail: String,
    /// `[alerts].webhook_headers.Authorization` (literal).
    webhook: String,
}

impl Secrets {
    fn good() -> Secrets {
        Secrets {
            qingcloud: "qcFILEsecret+7731/Zq=".into(),
            ucloudstack: "ucsLITERALsecret/9931+Wx".into(),
            kakaocloud: "kcENVsecret+4412/Kp=".into(),
            powervs: "pvsFILEapikey5521+Vb/".into(),
            lightsail: "lsENVsecret/8842+Ab=".into(),
            webhook: "whHEADERsecret6613+Hd/".into(),
        }
    }

    fn wrong() -> Secrets {
        Secrets {
            qingcloud: "qcWRONGsecret+1008/Aa=".into(),
            ucloudstack: "ucsWRONGsecret/1009+Bb".into(),
            kakaocloud: "kcWRONGsecret+1010/Cc=".into(),
            powervs: "pvsWRONGapikey1011+Dd/".into(),
            lightsail: "lsWRONGsecret/1012+Ee=".into(),
            webhook: "whWRONGheader1013+Ff/".into(),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.qingcloud,
            &self.ucloudstack,
            &self.kakaocloud,
            &self.powervs,
            &self.lightsail,
            &self.webhook,
        ]
    }
}

/// The forms a leaked secret could plausibly take.
fn encodings(secret: &str) -> Vec<String> {
    let b = base64::engine::general_purpose::STANDARD;
    let u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let percent: String = secret
        .bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    let mut v = vec![
        secret.to_string(),
        b.encode(secret),
        // base64 without the padding, as embedded in longer strings
        b.encode(secret).trim_end_matches('=').to_string(),
        u.encode(secret),
        percent.clone(),
        percent.to_lowercase(),
        secret.replace('+', " "),
        secret.replace('/', "\\/"),
        // The distinctive middle alone catches a truncated or partly
        // masked value.
        secret[2..secret.len() - 4].to_string(),
    ];
    v.sort();
    v.dedup();
    v
}

/// Everything snapwarden printed, logged, served or sent, by source.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }
    fn output(&mut self, what: &str, o: &Output) {
        self.add(format!("{what} stdout"), String::from_utf8_lossy(&o.stdout));
        self.add(format!("{what} stderr"), String::from_utf8_lossy(&o.stderr));
    }
    /// Panics naming the first place a secret (in any form) appears.
    fn assert_clean(&self, secrets: &[&str]) {
        assert!(!self.0.is_empty());
        for secret in secrets {
            for form in encodings(secret) {
                for (what, text) in &self.0 {
                    if let Some(at) = text.find(&form) {
                        let from = text[..at].char_indices().rev().nth(200).map_or(0, |p| p.0);
                        panic!(
                            "secret {secret:?} leaked as {form:?} in {what}:\n…{}…",
                            &text[from..(at + form.len()).min(text.len())]
                        );
                    }
                }
            }
        }
    }
}

struct Setup {
    sim: Sim,
    wd: Workdir,
    secret_file_qc: PathBuf,
    secret_file_pvs: PathBuf,
}

fn seed(sim: &Sim, s: &Secrets) {
    sim.post(
        "/_sim/qingcloud/credentials",
        json!({"access_key_id": QC_KEY_ID, "secret_access_key": s.qingcloud}),
    );
    sim.volume("vol-sec00001");
    sim.post(
        "/_sim/ucloudstack/credentials",
        json!({"public_key": UCS_PUBLIC, "private_key": s.ucloudstack}),
    );
    sim.post(
        "/_sim/ucloudstack/disks",
        json!({"region": "cn", "zone": "zone-01", "disk_id": "disk-sec1", "name": "disk-sec1"}),
    );
    sim.post(
        "/_sim/kakaocloud/credentials",
        json!({"id": KC_ID, "secret": s.kakaocloud}),
    );
    sim.post(
        "/_sim/kakaocloud/volumes",
        json!({"volume_id": "vol-kc-sec"}),
    );
    sim.post("/_sim/powervs/api_keys", json!({"api_key": s.powervs}));
    sim.post(
        "/_sim/powervs/workspaces",
        json!({"cloud_instance_id": CID, "crn": crn()}),
    );
    sim.post(
        "/_sim/powervs/instances",
        json!({"cloud_instance_id": CID, "pvm_instance_id": PVM, "volume_ids": ["vol-data"]}),
    );
    sim.post(
        "/_sim/lightsail/credentials",
        json!({"access_key_id": LS_KEY_ID, "secret_access_key": s.lightsail}),
    );
    sim.post("/_sim/lightsail/disks", json!({"name": "data-sec"}));
}

fn crn() -> String {
    format!("crn:v1:bluemix:public:power-iaas:sim1:a/simaccount:{CID}::")
}

fn setup() -> Setup {
    let sim = Sim::start("150ms");
    seed(&sim, &Secrets::good());
    let wd = Workdir::new();
    let secret_file_qc = wd.dir.path().join("qc.secret");
    let secret_file_pvs = wd.dir.path().join("pvs.secret");
    Setup {
        sim,
        wd,
        secret_file_qc,
        secret_file_pvs,
    }
}

/// Write the secret files (mode 600) and the policy file for `s`.
fn write_config(
    st: &Setup,
    s: &Secrets,
    schedule: &str,
    log_format: &str,
    alerts: &str,
) -> PathBuf {
    for (path, value) in [
        (&st.secret_file_qc, &s.qingcloud),
        (&st.secret_file_pvs, &s.powervs),
    ] {
        std::fs::write(path, format!("{value}\n")).expect("write secret");
        set_mode(path, 0o600);
    }
    let url = &st.sim.url;
    let mut policies = String::new();
    for (name, provider, resource, target, extra) in [
        ("qc", "qc", "volume", "vol-sec00001", ""),
        ("ucs", "ucs", "disk", "disk-sec1", ""),
        ("kc", "kc", "volume", "vol-kc-sec", ""),
        ("pvs", "pvs", "instance", PVM, "volume_ids = [\"vol-data\"]"),
        ("ls", "ls", "disk", "data-sec", ""),
    ] {
        policies.push_str(&format!(
            r#"
[[policy]]
name = "{name}"
provider = "{provider}"
resource = "{resource}"
targets = ["{target}"]
schedule = "{schedule}"
retain = 1
poll_interval = "100ms"
poll_max_interval = "300ms"
timeout = "20s"
{extra}
"#
        ));
    }
    let text = format!(
        r#"[daemon]
state_path = "{state}"
log_format = "{log_format}"
metrics_listen = "127.0.0.1:0"
{alerts}

[providers.qc]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{QC_KEY_ID}"
secret_access_key_file = "{qc_file}"
endpoint = "{url}/iaas/"
requests_per_second = 100

[providers.ucs]
kind = "ucloudstack"
endpoint = "{url}/ucloudstack/api"
region = "cn"
zone = "zone-01"
public_key = "{UCS_PUBLIC}"
private_key = "{ucs}"
requests_per_second = 100

[providers.kc]
kind = "kakaocloud"
endpoint = "{url}/kakaocloud/volume"
bcs_endpoint = "{url}/kakaocloud/bcs"
iam_endpoint = "{url}/kakaocloud/iam/identity/v3/auth/tokens"
application_credential_id = "{KC_ID}"
application_credential_secret_env = "{kc_env}"
requests_per_second = 100

[providers.pvs]
kind = "powervs"
endpoint = "{url}/powervs"
iam_endpoint = "{url}/powervs/identity/token"
cloud_instance_id = "{CID}"
crn = "{crn}"
api_key_file = "{pvs_file}"
requests_per_second = 100

[providers.ls]
kind = "lightsail"
region = "us-east-2"
access_key_id = "{LS_KEY_ID}"
secret_access_key_env = "{ls_env}"
endpoint = "{url}/lightsail"
requests_per_second = 100
{policies}"#,
        state = st.wd.state_path().display(),
        qc_file = st.secret_file_qc.display(),
        pvs_file = st.secret_file_pvs.display(),
        ucs = s.ucloudstack,
        kc_env = env_name("KC"),
        ls_env = env_name("LS"),
        crn = crn(),
    );
    st.wd.write_config(&text)
}

fn env_name(which: &str) -> String {
    format!("SNAPWARDEN_SECRETS_TEST_{which}")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The `[alerts]` section: a command appending each event to `sink` and a
/// webhook with a secret header.
fn alerts(sink: &Path, webhook: &str, s: &Secrets) -> String {
    format!(
        r#"
[alerts]
webhook_url = "{webhook}/hooks/alerts"
webhook_headers = {{ Authorization = "Bearer {token}", "X-Team" = "storage" }}
command = ["/bin/sh", "-c", "cat >> '{sink}'; echo >> '{sink}'"]
on = ["failure", "recovery"]
"#,
        token = s.webhook,
        sink = sink.display(),
    )
}

fn command(s: &Secrets, args: &[&str], rust_log: &str) -> Command {
    let none = "/nonexistent/snapwarden-secrets-test";
    let mut c = Command::new(BIN);
    c.args(args)
        .env(env_name("KC"), &s.kakaocloud)
        .env(env_name("LS"), &s.lightsail)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", none)
        .env("AWS_SHARED_CREDENTIALS_FILE", none)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_LIGHTSAIL")
        .env("RUST_LOG", rust_log);
    c
}

fn run(s: &Secrets, args: &[&str]) -> Output {
    command(s, args, "debug").output().expect("run snapwarden")
}

/// A loopback HTTP listener that answers 200 and keeps each request's
/// headers and body.
struct Webhook {
    url: String,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    let end = line == "\r\n";
                    head.push_str(&line);
                    if end {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((head, String::from_utf8_lossy(&body).to_string()));
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Webhook { url, requests }
    }

    fn all(&self) -> Vec<(String, String)> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn metrics_addr(log: &ChildLines) -> String {
    wait_for("the metrics address", Duration::from_secs(20), || {
        log.all().iter().find_map(|l| {
            l.split("metrics listening on ").nth(1).map(|a| {
                a.split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        })
    })
}

fn http_get(url: &str) -> String {
    match reqwest::blocking::get(url) {
        Ok(r) => format!("{} {}", r.status(), r.text().unwrap_or_default()),
        Err(e) => format!("error {e}"),
    }
}

/// The daemon with `log_format`, at debug level, until every policy has run
/// and the failing one alerted through both channels.
fn daemon_pass(st: &Setup, good: &Secrets, log_format: &str, seen: &mut Seen) {
    let hook = Webhook::start();
    let sink = st.wd.dir.path().join(format!("alerts-{log_format}.jsonl"));
    let cfg = write_config(
        st,
        good,
        "* * * * * *",
        log_format,
        &alerts(&sink, &hook.url, good),
    );
    // One extra provider and policy with a wrong secret: failure alerts.
    let bad = Secrets::wrong();
    let mut text = std::fs::read_to_string(&cfg).expect("read config");
    text.push_str(&format!(
        r#"
[providers.qc-bad]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{QC_KEY_ID}"
secret_access_key = "{wrong}"
endpoint = "{url}/iaas/"
requests_per_second = 100

[[policy]]
name = "qc-bad-{log_format}"
provider = "qc-bad"
resource = "volume"
targets = ["vol-sec00001"]
schedule = "* * * * * *"
retain = 1
poll_interval = "100ms"
timeout = "10s"
"#,
        wrong = bad.qingcloud,
        url = st.sim.url,
    ));
    std::fs::write(&cfg, text).expect("write config");

    let mut child = command(good, &["run", "-c", cfg.to_str().expect("utf-8")], "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemon");
    let log = lines(child.stderr.take().expect("stderr"));
    let out = lines(child.stdout.take().expect("stdout"));
    let addr = metrics_addr(&log);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = st
            .wd
            .try_state()
            .and_then(|s| s.all_snapshots().ok())
            .unwrap_or_default();
        let missing: Vec<&str> = ["vol-sec00001", "disk-sec1", "vol-kc-sec", PVM, "data-sec"]
            .into_iter()
            .filter(|t| {
                !rows
                    .iter()
                    .any(|r| r.target == *t && r.state == snapwarden::state::LedgerState::Available)
            })
            .collect();
        // A new failing policy per pass: a target already failing before a
        // restart is not alerted again (no storms).
        let failing = format!("qc-bad-{log_format}");
        let hooked = hook.all().iter().any(|(_, b)| b.contains(&failing));
        let commanded = std::fs::read_to_string(&sink)
            .map(|t| t.contains(&failing))
            .unwrap_or(false);
        if missing.is_empty() && hooked && commanded {
            break;
        }
        if std::time::Instant::now() > deadline {
            let all = log.all();
            let tail = all[all.len().saturating_sub(40)..].join("\n");
            panic!("not done: missing runs {missing:?}, webhook {hooked}, command {commanded}; log:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = http_get(&format!("http://{addr}/metrics"));
    assert!(metrics.contains("snapwarden_"), "{metrics}");
    seen.add(format!("/metrics ({log_format})"), metrics);
    seen.add(
        format!("/healthz ({log_format})"),
        http_get(&format!("http://{addr}/healthz")),
    );
    // SIGTERM, then what it logged while stopping.
    // SAFETY: kill(2) on the child this test spawned and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(100));
    let log_text = log.join();
    assert!(
        log_text.contains("DEBUG")
            || log_text.contains("\"debug\"")
            || log_text.contains("\"DEBUG\""),
        "debug level is on"
    );
    if log_format == "json" {
        assert!(
            log_text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .all(|l| serde_json::from_str::<Value>(l).is_ok()),
            "json log lines"
        );
    }
    seen.add(format!("daemon log ({log_format})"), log_text);
    seen.add(format!("daemon stdout ({log_format})"), out.join());
    let hooks = hook.all();
    for (head, body) in &hooks {
        // Delivered where it belongs: the header, and nowhere else.
        assert!(
            head.contains(&format!("Bearer {}", good.webhook)),
            "the webhook header is sent: {head}"
        );
        seen.add(format!("webhook body ({log_format})"), body.clone());
        let doc: Value = serde_json::from_str(body).expect("alert json");
        assert!(doc["text"].is_string(), "{doc}");
    }
    let commanded = std::fs::read_to_string(&sink).expect("alert command output");
    seen.add(format!("alert command stdin ({log_format})"), commanded);
}

struct ChildLines(Arc<Mutex<Vec<String>>>);

impl ChildLines {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn join(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }
}

fn lines(stream: impl Read + Send + 'static) -> ChildLines {
    let store = Arc::new(Mutex::new(Vec::new()));
    let sink = store.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    ChildLines(store)
}

/// Every command and the daemon, with good and wrong secrets and broken
/// files: no secret in any output.
#[test]
fn no_secret_appears_in_any_output_log_metric_or_alert() {
    let st = setup();
    let good = Secrets::good();
    let mut seen = Seen::default();
    let cfg = write_config(&st, &good, "0 0 3 * * *", "text", "");
    let c = cfg.to_str().expect("utf-8 path");

    // The happy paths, every command.
    let o = run(&good, &["check", "-c", c]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The literal secret is warned about (by key, not value).
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("secret `private_key` is written in the config file in clear text"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    seen.output("check", &o);
    for policy in ["qc", "ucs", "kc", "pvs", "ls"] {
        for _ in 0..2 {
            let o = run(&good, &["snapshot", "-c", c, "--policy", policy]);
            assert!(
                o.status.success(),
                "{policy}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            seen.output(&format!("snapshot {policy}"), &o);
            std::thread::sleep(Duration::from_millis(1050));
        }
    }
    for args in [
        vec!["plan", "-c", c],
        vec!["plan", "--json", "-c", c],
        vec!["prune", "--dry-run", "-c", c],
        vec!["prune", "-c", c],
        vec!["status", "-c", c],
        vec!["status", "--json", "-c", c],
        vec!["monitor", "-c", c],
        // In place on UCloudStack: without --yes it only says what it would do.
        vec![
            "restore",
            "-c",
            c,
            "--policy",
            "ucs",
            "--target",
            "disk-sec1",
        ],
        vec![
            "restore",
            "-c",
            c,
            "--policy",
            "qc",
            "--target",
            "vol-sec00001",
            "--new-name",
            "copy",
        ],
        vec![
            "restore",
            "-c",
            c,
            "--policy",
            "ls",
            "--target",
            "data-sec",
            "--new-name",
            "data-sec-copy",
        ],
    ] {
        let o = run(&good, &args);
        seen.output(&args.join(" "), &o);
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("panicked"),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Wrong secrets: a clear authentication failure per provider.
    let wrong = Secrets::wrong();
    let cfg_wrong = write_config(&st, &wrong, "0 0 3 * * *", "text", "");
    let cw = cfg_wrong.to_str().expect("utf-8 path");
    for policy in ["qc", "ucs", "kc", "pvs", "ls"] {
        let o = run(&wrong, &["snapshot", "-c", cw, "--policy", policy]);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{policy}: {text}");
        assert!(
            text.to_lowercase().contains("auth"),
            "{policy}: an authentication failure: {text}"
        );
        seen.output(&format!("wrong-secret snapshot {policy}"), &o);
    }
    for args in [vec!["plan", "-c", cw], vec!["status", "-c", cw]] {
        let o = run(&wrong, &args);
        seen.output(&format!("wrong-secret {}", args.join(" ")), &o);
    }

    // Config errors on and around the secret lines: exit 2, no value echoed.
    let good_text = std::fs::read_to_string(write_config(&st, &good, "0 0 3 * * *", "text", ""))
        .expect("read config");
    let broken: Vec<(&str, String)> = vec![
        (
            "syntax error after a literal secret",
            good_text.replace(
                &format!("private_key = \"{}\"", good.ucloudstack),
                &format!("private_key = \"{}\" trailing", good.ucloudstack),
            ),
        ),
        (
            "unterminated literal secret",
            good_text.replace(
                &format!("private_key = \"{}\"", good.ucloudstack),
                &format!("private_key = \"{}", good.ucloudstack),
            ),
        ),
        (
            "secret under a misspelt key",
            good_text.replace("private_key = ", "private_kee = "),
        ),
        (
            "secret given two ways",
            good_text.replace(
                &format!("private_key = \"{}\"", good.ucloudstack),
                &format!(
                    "private_key = \"{}\"\nprivate_key_env = \"{}\"",
                    good.ucloudstack,
                    env_name("KC")
                ),
            ),
        ),
        (
            "secret pasted into _env",
            good_text.replace(
                &format!("application_credential_secret_env = \"{}\"", env_name("KC")),
                &format!(
                    "application_credential_secret_env = \"{}\"",
                    good.kakaocloud
                ),
            ),
        ),
        (
            "secret pasted into _file",
            good_text.replace(
                &format!("api_key_file = \"{}\"", st.secret_file_pvs.display()),
                &format!("api_key_file = \"{}\"", good.powervs),
            ),
        ),
        (
            "secret as a number-typed key",
            good_text.replace(
                "requests_per_second = 100\n\n[providers.kc]",
                &format!(
                    "requests_per_second = \"{}\"\n\n[providers.kc]",
                    good.ucloudstack
                ),
            ),
        ),
        (
            "secret in the access key id's place and a bad header",
            good_text.replace(
                &format!("access_key_id = \"{LS_KEY_ID}\""),
                &format!("access_key_id = [\"{}\"]", good.lightsail),
            ),
        ),
    ];
    for (what, text) in broken {
        assert_ne!(text, good_text, "{what}: the edit applies");
        let path = st.wd.dir.path().join("broken.toml");
        std::fs::write(&path, text).expect("write");
        for cmd in ["check", "status"] {
            let o = run(&good, &[cmd, "-c", path.to_str().expect("utf-8")]);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{what}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            seen.output(&format!("{cmd} ({what})"), &o);
        }
    }

    // The daemon: text and JSON logs at debug level, metrics, health,
    // failure alerts through the webhook and the command.
    daemon_pass(&st, &good, "text", &mut seen);
    daemon_pass(&st, &good, "json", &mut seen);

    let mut all = good.all();
    all.extend(wrong.all());
    seen.assert_clean(&all);
}

/// A secret file readable by group or others is warned about (naming the
/// key and the file), and still used.
#[test]
fn loose_secret_file_gives_a_warning() {
    let st = setup();
    let good = Secrets::good();
    let cfg = write_config(&st, &good, "0 0 3 * * *", "text", "");
    let c = cfg.to_str().expect("utf-8 path");
    let o = run(&good, &["check", "-c", c]);
    assert!(o.status.success());
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("readable by group or others"),
        "mode 600 is quiet"
    );
    for mode in [0o640, 0o604] {
        set_mode(&st.secret_file_qc, mode);
        let o = run(&good, &["check", "-c", c]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(
            err.contains("secret_access_key_file")
                && err.contains(&st.secret_file_qc.display().to_string())
                && err.contains("readable by group or others")
                && err.contains(&format!("{mode:o}")),
            "{err}"
        );
        assert!(!err.contains(&good.qingcloud));
        let o = run(&good, &["snapshot", "-c", c, "--policy", "qc"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(Duration::from_millis(1050));
    }
}
