//! TLS: certificate verification is always on; `ca_file` adds a private CA.
//! A CA and a leaf for 127.0.0.1/localhost are generated with rcgen, the
//! simulator serves HTTPS with the leaf, and `snapwarden snapshot` runs
//! against it with the right CA (succeeds), without `ca_file` and with a
//! wrong CA (both fail with a clear certificate error naming the provider).

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serde_json::{json, Value};
use util::*;

const KC_ID: &str = "kc-sim-access-key";

/// A CA certificate (PEM) and the CA itself, for signing a leaf.
struct Ca {
    pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca {
        pem: cert.pem(),
        cert,
        key,
    }
}

/// A leaf for 127.0.0.1 and localhost signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf params");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("leaf");
    (cert.pem(), key.serialize_pem())
}

/// The simulator over HTTPS; its base URL (`https://127.0.0.1:PORT`).
struct TlsSim {
    child: Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl TlsSim {
    fn start(dir: &Path, ca: &Ca) -> TlsSim {
        let (cert, key) = leaf(ca);
        let cert_path = dir.join("sim-cert.pem");
        let key_path = dir.join("sim-key.pem");
        std::fs::write(&cert_path, cert).expect("write cert");
        std::fs::write(&key_path, key).expect("write key");
        let mut child = Command::new(BIN)
            .args(["sim", "--listen", "127.0.0.1:0", "--job-duration", "150ms"])
            .arg("--tls-cert")
            .arg(&cert_path)
            .arg("--tls-key")
            .arg(&key_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("snapwarden sim listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the simulator's listening line");
        assert!(url.starts_with("https://"), "{url}");
        let ca_cert = reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("CA for the test");
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(ca_cert)
            .build()
            .expect("client");
        TlsSim { child, url, http }
    }

    fn post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
    }

    fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn accepted(&self, dialect: &str) -> usize {
        self.get(&format!("/_sim/requests?dialect={dialect}"))["requests"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

impl Drop for TlsSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Provider sections for QingCloud and KakaoCloud against `url`, each with
/// `ca_line` (empty, or `ca_file = "..."`).
fn config(wd: &Workdir, url: &str, ca_line: &str) -> PathBuf {
    wd.write_config(&format!(
        r#"[daemon]
state_path = "{state}"
log_format = "text"

[providers.qc]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{ACCESS_KEY}"
secret_access_key_env = "{qc_env}"
endpoint = "{url}/iaas/"
{ca_line}

[providers.kc]
kind = "kakaocloud"
endpoint = "{url}/kakaocloud/volume"
bcs_endpoint = "{url}/kakaocloud/bcs"
iam_endpoint = "{url}/kakaocloud/iam/identity/v3/auth/tokens"
application_credential_id = "{KC_ID}"
application_credential_secret_env = "{kc_env}"
{ca_line}

[[policy]]
name = "qc-db"
provider = "qc"
resource = "volume"
targets = ["vol-tls00001"]
schedule = "0 0 3 * * *"
retain = 2
poll_interval = "100ms"
timeout = "20s"

[[policy]]
name = "kc-db"
provider = "kc"
resource = "volume"
targets = ["vol-kc-tls"]
schedule = "0 0 3 * * *"
retain = 2
poll_interval = "100ms"
timeout = "20s"
"#,
        state = wd.state_path().display(),
        qc_env = secret_env_name(SECRET),
        kc_env = secret_env_name(KC_SECRET),
    ))
}

fn snapshot(cfg: &Path, policy: &str) -> Output {
    Command::new(BIN)
        .args(["snapshot", "-c"])
        .arg(cfg)
        .args(["--policy", policy])
        .env(secret_env_name(SECRET), SECRET)
        .env(secret_env_name(KC_SECRET), KC_SECRET)
        .env("RUST_LOG", "info")
        .output()
        .expect("run snapwarden")
}

#[test]
fn ca_file_is_required_and_honoured_for_a_private_ca() {
    let wd = Workdir::new();
    let dir = wd.dir.path();
    let good_ca = ca("snapwarden test CA");
    let other_ca = ca("some other CA");
    let sim = TlsSim::start(dir, &good_ca);
    sim.post(
        "/_sim/qingcloud/volumes",
        json!({"zone": ZONE, "volume_id": "vol-tls00001", "volume_name": "vol-tls00001"}),
    );
    sim.post(
        "/_sim/kakaocloud/volumes",
        json!({"volume_id": "vol-kc-tls"}),
    );
    let good_pem = dir.join("ca.pem");
    let other_pem = dir.join("other-ca.pem");
    std::fs::write(&good_pem, &good_ca.pem).expect("write CA");
    std::fs::write(&other_pem, &other_ca.pem).expect("write CA");

    // Without ca_file, and with the wrong CA: refused before any request
    // reached the simulator, with a clear message naming the provider.
    for (what, ca_line) in [
        ("no ca_file", String::new()),
        ("wrong CA", format!("ca_file = \"{}\"", other_pem.display())),
    ] {
        // A new slot per attempt: a failed slot is not run again.
        std::thread::sleep(Duration::from_millis(1050));
        let cfg = config(&wd, &sim.url, &ca_line);
        for (policy, provider) in [("qc-db", "qc"), ("kc-db", "kc")] {
            let o = snapshot(&cfg, policy);
            let out = output_text(&o);
            assert_eq!(o.status.code(), Some(1), "{what} {policy}: {out}");
            assert!(
                out.contains("TLS certificate verification failed")
                    && out.contains("not signed by a trusted CA")
                    && out.contains("ca_file"),
                "{what} {policy}: {out}"
            );
            assert!(out.contains(provider), "{what}: names the provider: {out}");
        }
    }
    assert_eq!(sim.accepted("qingcloud"), 0);
    assert_eq!(sim.accepted("kakaocloud"), 0);

    // With the right CA: both succeed over HTTPS.
    std::thread::sleep(Duration::from_millis(1050));
    let cfg = config(
        &wd,
        &sim.url,
        &format!("ca_file = \"{}\"", good_pem.display()),
    );
    for policy in ["qc-db", "kc-db"] {
        let o = snapshot(&cfg, policy);
        assert!(o.status.success(), "{policy}: {}", output_text(&o));
    }
    assert!(sim.accepted("qingcloud") > 0);
    assert!(sim.accepted("kakaocloud") > 0);
}
