//! Helpers for end-to-end tests: start the real binary as a simulator and
//! as a daemon on loopback, talk to the simulator's control API, and read
//! the state database. Tests should read like the domain: "start a
//! simulator with two volumes, run the policy three times, expect two kept".

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_snapwarden");
pub const ACCESS_KEY: &str = "QYSIMACCESSKEY";
/// The simulator's QingCloud secret access key.
pub const SECRET: &str = "sim-qingcloud-secret";
/// The simulator's credentials of the other four clouds.
pub const UCS_PRIVATE_KEY: &str = "sim-ucloudstack-private-key";
pub const LS_SECRET: &str = "sim-lightsail-secret";
pub const PVS_API_KEY: &str = "sim-powervs-api-key";
pub const KC_SECRET: &str = "sim-kakaocloud-secret";
pub const ZONE: &str = "ap2a";
/// How long a test waits for something that takes seconds.
pub const MINUTE: Duration = Duration::from_secs(60);

/// `["a", "b"]` as a TOML array of strings: `"a", "b"` (without brackets).
pub fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The body of a QingCloud `[[policy]]` (without its header) named `name`
/// on `targets`; `rest` holds its other lines (retain, polling, timeout).
pub fn qc_policy(name: &str, targets: &[&str], schedule: &str, rest: &str) -> String {
    format!(
        "name = \"{name}\"\nprovider = \"qc\"\nresource = \"volume\"\ntargets = [{}]\n\
         schedule = \"{schedule}\"\n{rest}\n",
        quoted(targets)
    )
}

/// Poll `check` every 25 ms until it returns Some, or panic after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Lines a child process wrote, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    pub fn count(&self, needle: &str) -> usize {
        self.all().iter().filter(|l| l.contains(needle)).count()
    }
}

/// `snapwarden sim` on a port of its choosing.
pub struct Sim {
    child: Child,
    pub url: String,
    http: reqwest::blocking::Client,
    pub stderr: Lines,
}

impl Sim {
    pub fn start(job_duration: &str) -> Sim {
        let mut child = Command::new(BIN)
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--job-duration",
                job_duration,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start snapwarden sim");
        let stderr = Lines::collect(child.stderr.take().expect("stderr"));
        let stdout = Lines::collect(child.stdout.take().expect("stdout"));
        let url = wait_for(
            "the simulator's listening line",
            Duration::from_secs(10),
            || {
                stdout.all().iter().find_map(|l| {
                    l.strip_prefix("snapwarden sim listening on ")
                        .map(str::to_string)
                })
            },
        );
        Sim {
            child,
            url,
            http: reqwest::blocking::Client::new(),
            stderr,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("{}/iaas/", self.url)
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path} -> {status}: {v}");
        v
    }

    pub fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn volume(&self, id: &str) {
        self.post(
            "/_sim/qingcloud/volumes",
            json!({"zone": ZONE, "volume_id": id, "volume_name": id}),
        );
    }

    /// A snapshot made by hand (not by snapwarden); returns its id.
    pub fn manual_snapshot(&self, volume: &str, name: &str) -> String {
        let v = self.post(
            "/_sim/qingcloud/snapshots",
            json!({"zone": ZONE, "resource_id": volume, "snapshot_name": name}),
        );
        v["snapshot_id"].as_str().expect("snapshot_id").to_string()
    }

    pub fn fault(&self, body: Value) {
        self.post("/_sim/faults", body);
    }

    /// Every snapshot the simulator has, deleted ones included.
    pub fn snapshots(&self) -> Vec<Value> {
        self.get("/_sim/qingcloud/snapshots")["snapshots"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Snapshots of `volume` that are not deleted.
    pub fn live_snapshots(&self, volume: &str) -> Vec<Value> {
        self.snapshots()
            .into_iter()
            .filter(|s| s["resource_id"] == volume)
            .filter(|s| !matches!(s["status"].as_str(), Some("deleted") | Some("ceased")))
            .collect()
    }

    /// The simulator's journal of `dialect`'s API requests, oldest first:
    /// those with `action`, or all.
    pub fn journal(&self, dialect: &str, action: Option<&str>) -> Vec<Value> {
        let action = action.map(|a| format!("&action={a}")).unwrap_or_default();
        self.get(&format!("/_sim/requests?dialect={dialect}{action}"))["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Logged QingCloud API requests with this action.
    pub fn requests(&self, action: &str) -> Vec<Value> {
        self.journal("qingcloud", Some(action))
    }

    /// Successful CreateSnapshots requests for `volume`.
    pub fn creates_for(&self, volume: &str) -> usize {
        self.requests("CreateSnapshots")
            .iter()
            .filter(|r| r["ret_code"] == 0 && r["params"]["resources.1"] == volume)
            .count()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory with a policy file and a state database.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("snapwarden.toml")
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        std::fs::write(self.config_path(), text).expect("write config");
        self.config_path()
    }

    /// A QingCloud policy file against `sim`. `policy` is the `[[policy]]`
    /// body (without the header).
    pub fn qingcloud_config(&self, sim: &Sim, secret: &str, policy: &str) -> String {
        format!(
            r#"[daemon]
state_path = "{state}"
log_format = "text"

[providers.qc]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{ACCESS_KEY}"
secret_access_key_env = "TEST_QY_SECRET"
endpoint = "{endpoint}"
requests_per_second = 50

[[policy]]
{policy}
"#,
            state = self.state_path().display(),
            endpoint = sim.endpoint(),
        )
        .replace("TEST_QY_SECRET", &secret_env_name(secret))
    }

    /// [`Workdir::qingcloud_config`] with the simulator's secret, written
    /// as the policy file.
    pub fn write_qc_config(&self, sim: &Sim, policy: &str) -> PathBuf {
        self.write_config(&self.qingcloud_config(sim, SECRET, policy))
    }

    /// The ledger, if the daemon has created it yet.
    pub fn try_state(&self) -> Option<snapwarden::state::SqliteLedger> {
        snapwarden::state::SqliteLedger::open_read_only(&self.state_path()).ok()
    }

    pub fn state(&self) -> snapwarden::state::SqliteLedger {
        snapwarden::state::SqliteLedger::open_read_only(&self.state_path())
            .expect("open state read-only")
    }

    /// How many ledger rows (of `target`, or of every target) are
    /// (available, deleted).
    pub fn available_and_deleted(&self, target: Option<&str>) -> (usize, usize) {
        use snapwarden::state::LedgerState;
        let rows = self.state().all_snapshots().expect("ledger");
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| target.is_none_or(|t| r.target == t))
            .collect();
        let count = |s: LedgerState| rows.iter().filter(|r| r.state == s).count();
        (count(LedgerState::Available), count(LedgerState::Deleted))
    }

    /// Waits until each of `targets` has `n` succeeded runs of `policy`
    /// and no operation is in flight.
    pub fn wait_succeeded_runs(&self, policy: &str, targets: &[&str], n: usize) {
        use snapwarden::state::RunState;
        wait_for(&format!("{n} successful runs per target"), MINUTE, || {
            let state = self.try_state()?;
            let done = targets.iter().all(|t| {
                state
                    .runs_for(policy, t, 10)
                    .map(|runs| {
                        runs.iter()
                            .filter(|r| r.state == RunState::Succeeded)
                            .count()
                            == n
                    })
                    .unwrap_or(false)
            });
            (done && state.ops_in_flight().map(|o| o.is_empty()).unwrap_or(false)).then_some(())
        });
    }

    /// Run a snapwarden command to completion.
    pub fn cmd(&self, args: &[&str], secret: &str) -> Output {
        Command::new(BIN)
            .args(args)
            .env(secret_env_name(secret), secret)
            .env("RUST_LOG", "info")
            .output()
            .expect("run snapwarden")
    }

    /// [`Workdir::cmd_ok`] of a `--json` command: its document.
    pub fn json_ok(&self, args: &[&str], secret: &str) -> Value {
        let out = self.cmd_ok(args, secret);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", output_text(&out)))
    }

    /// [`Workdir::cmd`], which must succeed.
    pub fn cmd_ok(&self, args: &[&str], secret: &str) -> Output {
        let out = self.cmd(args, secret);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// `snapwarden ARGS[0] -c CFG ARGS[1..]` with the QingCloud secret, as the
/// operator `user` (`USER`; no `SUDO_USER`).
pub fn run_as_user(cfg: &Path, args: &[&str], user: &str) -> Output {
    Command::new(BIN)
        .arg(args[0])
        .arg("-c")
        .arg(cfg)
        .args(&args[1..])
        .env(secret_env_name(SECRET), SECRET)
        .env("USER", user)
        .env_remove("SUDO_USER")
        .output()
        .expect("run snapwarden")
}

impl Workdir {
    /// Where the alert command of [`Workdir::with_alert_command`] appends
    /// each event as a JSON line.
    pub fn alerts_path(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }

    /// `config` (a policy file's text) with an `[alerts]` section whose
    /// command appends every event to [`Workdir::alerts_path`].
    pub fn with_alert_command(&self, config: &str) -> String {
        let alerts = self.alerts_path();
        config.replace(
            "[providers.qc]",
            &format!(
                "[alerts]\ncommand = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\n\n[providers.qc]",
                alerts.display(),
                alerts.display()
            ),
        )
    }

    /// The alerts delivered so far, oldest first.
    pub fn alerts(&self) -> Vec<Value> {
        std::fs::read_to_string(self.alerts_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `snapwarden ARGS[0] -c CFG ARGS[1..]` with the QingCloud secret.
    pub fn run(&self, cfg: &Path, args: &[&str]) -> Output {
        self.run_as(cfg, args, SECRET)
    }

    /// [`Workdir::run`] with `secret`.
    pub fn run_as(&self, cfg: &Path, args: &[&str], secret: &str) -> Output {
        let mut all = vec![args[0], "-c", cfg.to_str().expect("utf-8 path")];
        all.extend_from_slice(&args[1..]);
        self.cmd(&all, secret)
    }

    /// [`Workdir::run_as`] started, its output piped, not waited for.
    pub fn spawn_as(&self, cfg: &Path, args: &[&str], secret: &str) -> Child {
        Command::new(BIN)
            .arg(args[0])
            .arg("-c")
            .arg(cfg)
            .args(&args[1..])
            .env(secret_env_name(secret), secret)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start snapwarden")
    }

    /// [`Workdir::run_as`], which must succeed.
    pub fn run_ok(&self, cfg: &Path, args: &[&str], secret: &str) -> Output {
        let out = self.run_as(cfg, args, secret);
        assert!(
            out.status.success(),
            "{args:?} failed:\n{}",
            output_text(&out)
        );
        out
    }
}

/// A command's stdout and stderr, for messages and `contains` checks.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Sim {
    /// Accepted DeleteSnapshots requests, by snapshot id.
    pub fn deleted_ids(&self) -> Vec<String> {
        self.requests("DeleteSnapshots")
            .iter()
            .filter(|r| r["ret_code"] == 0)
            .filter_map(|r| r["params"]["snapshots.1"].as_str().map(str::to_string))
            .collect()
    }

    /// Ids of the snapshots of `volume` that are not deleted.
    pub fn live_ids(&self, volume: &str) -> Vec<String> {
        self.live_snapshots(volume)
            .iter()
            .filter_map(|s| s["snapshot_id"].as_str().map(str::to_string))
            .collect()
    }
}

/// One own snapshot of `policy` on QingCloud `volume` taken at `t`,
/// finished: in the simulator (with our name) and in the ledger (a
/// succeeded run).
pub fn seed_own(
    sim: &Sim,
    state: &snapwarden::state::SqliteLedger,
    policy: &str,
    volume: &str,
    t: chrono::DateTime<chrono::Utc>,
) -> String {
    use snapwarden::providers::Created;
    use snapwarden::state::{Begin, NewRun, PollPlan, RunState};
    let name = format!("{policy}-{volume}-{}", t.format("%Y%m%dT%H%M%SZ"));
    let v = sim.post(
        "/_sim/qingcloud/snapshots",
        json!({"zone": ZONE, "resource_id": volume, "snapshot_name": name, "create_time": t.to_rfc3339()}),
    );
    let id = v["snapshot_id"].as_str().expect("snapshot id").to_string();
    let Begin::Started(run) = state
        .begin_run(
            &NewRun {
                policy: policy.into(),
                target: volume.into(),
                provider: "qc".into(),
                slot: t,
                name,
                full: true,
            },
            t,
        )
        .expect("intent")
    else {
        panic!("a fresh slot must start");
    };
    let ops = state
        .record_created(
            run,
            &[Created {
                snapshot_id: id.clone(),
                operation: "j-seeded".into(),
            }],
            t,
            PollPlan {
                first_poll: t,
                interval: Duration::from_secs(1),
                deadline: t + chrono::Duration::hours(1),
            },
        )
        .expect("record");
    state.finish_op(ops[0].id, None, t).expect("finish");
    state
        .set_run_state(run, RunState::Succeeded, None, t)
        .expect("succeeded");
    id
}

/// `n` own snapshots of `policy` on `volume`, one a day ending two days
/// ago, oldest first.
pub fn seed_days(sim: &Sim, wd: &Workdir, policy: &str, volume: &str, n: i64) -> Vec<String> {
    let state = snapwarden::state::SqliteLedger::open(&wd.state_path()).expect("ledger");
    let start = chrono::Utc::now() - chrono::Duration::days(n + 2);
    (0..n)
        .map(|d| {
            seed_own(
                sim,
                &state,
                policy,
                volume,
                start + chrono::Duration::days(d),
            )
        })
        .collect()
}

/// Each secret value gets its own variable name, so a test can run a
/// process with the right secret and another with a wrong one.
pub fn secret_env_name(secret: &str) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in secret.bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    format!("TEST_QY_SECRET_{h:016x}")
}

/// `snapwarden run` as a child process.
pub struct Daemon {
    child: Child,
    pub log: Lines,
}

impl Daemon {
    pub fn start(config: &Path, secret: &str) -> Daemon {
        Daemon::start_with_env(config, secret, &[])
    }

    pub fn start_with_env(config: &Path, secret: &str, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(config)
            .envs(env.iter().copied())
            .env(secret_env_name(secret), secret)
            .env("RUST_LOG", "info,snapwarden=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start snapwarden run");
        let log = Lines::collect(child.stderr.take().expect("stderr"));
        Daemon { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let signo = match sig {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            "HUP" => libc::SIGHUP,
            "KILL" => libc::SIGKILL,
            "STOP" => libc::SIGSTOP,
            "CONT" => libc::SIGCONT,
            other => panic!("unknown signal {other}"),
        };
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signo) };
        assert_eq!(rc, 0, "kill -{sig} failed");
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let log = self.log.clone();
        wait_for(&format!("log line containing {needle:?}"), timeout, || {
            log.all().iter().any(|l| l.contains(needle)).then_some(())
        });
    }

    /// The exit code once the process has ended by itself, waiting at most
    /// `timeout` (`None`: killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        wait_for("the daemon to exit", timeout, || {
            self.child.try_wait().ok().flatten()
        })
        .code()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM and wait; returns the exit code and how long it took.
    pub fn stop(mut self) -> (Option<i32>, Duration) {
        let start = Instant::now();
        self.signal("TERM");
        let status = wait_for("the daemon to exit", Duration::from_secs(15), || {
            self.child.try_wait().ok().flatten()
        });
        (status.code(), start.elapsed())
    }

    /// Wait for an exit after a signal was already sent.
    pub fn stop_after_signal(mut self) -> (Option<i32>, Duration) {
        let start = Instant::now();
        let status = wait_for("the daemon to exit", Duration::from_secs(15), || {
            self.child.try_wait().ok().flatten()
        });
        (status.code(), start.elapsed())
    }

    /// Waits for the hold a reload places on deletions, and checks that the
    /// plan diff logged with it names at least `n` snapshots.
    pub fn wait_deletions_held(&self, n: usize, why: &str) {
        self.wait_log("deletions held until", Duration::from_secs(20));
        assert!(
            self.log
                .count("the new rules delete this snapshot, the old ones kept it")
                >= n,
            "{why}"
        );
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 6-field cron expression that fires at exactly the given seconds
/// (relative to now, mod 60) within the next minute: a test schedule with
/// a known number of slots.
pub fn seconds_from_now(offsets: &[u64]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let secs: Vec<String> = offsets
        .iter()
        .map(|o| ((now + o) % 60).to_string())
        .collect();
    format!("{} * * * * *", secs.join(","))
}

/// A simulator whose jobs take `job_duration`, holding the QingCloud
/// `volumes`, and a scratch directory for the policy file and ledger.
pub fn sim_with_volumes(job_duration: &str, volumes: &[&str]) -> (Sim, Workdir) {
    let sim = Sim::start(job_duration);
    for v in volumes {
        sim.volume(v);
    }
    (sim, Workdir::new())
}

/// The metrics address the daemon logged once it listens.
pub fn metrics_addr(daemon: &Daemon) -> String {
    let log = daemon.log.clone();
    wait_for(
        "the metrics address in the log",
        Duration::from_secs(10),
        || {
            log.all().iter().find_map(|l| {
                l.split("metrics listening on ")
                    .nth(1)
                    .map(|a| a.split_whitespace().next().unwrap_or("").to_string())
            })
        },
    )
}

/// GET `url`: status and body (0 on a transport error, so waits retry).
pub fn http_get(url: &str) -> (u16, String) {
    match reqwest::blocking::get(url) {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.text().unwrap_or_default())
        }
        Err(e) => {
            eprintln!("GET {url}: {e}");
            (0, String::new())
        }
    }
}

/// The value of the Prometheus sample whose line starts with `series`
/// (name and labels).
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The string field `key` of each element of the JSON array `v` (which
/// must be an array).
pub fn field_strs<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .filter_map(|e| e[key].as_str())
        .collect()
}

/// `live` (the live snapshots of `target`, their ids under `id_key`)
/// holds two own snapshots, all available, and still the manual snapshot
/// `manual`; returns the own ones.
pub fn assert_two_kept_beside_manual<'a>(
    live: &'a [Value],
    id_key: &str,
    manual: &str,
    target: &str,
) -> Vec<&'a Value> {
    let own: Vec<&Value> = live.iter().filter(|s| s[id_key] != manual).collect();
    assert_eq!(own.len(), 2, "two own snapshots kept on {target}: {live:?}");
    assert!(own.iter().all(|s| s["status"] == "available"), "{live:?}");
    assert!(
        live.iter().any(|s| s[id_key] == manual),
        "the manual snapshot on {target} (whose name looks like ours) is untouched"
    );
    own
}

/// The hook script and its files in a work directory.
pub struct HookScript {
    pub script: PathBuf,
    pub log: PathBuf,
    pub dir: PathBuf,
}

impl HookScript {
    /// A hook that appends `PHASE OUTCOME TARGET NAME secret=… arg=… node=…`
    /// (`$HOOK_NODE` of the daemon that ran it) to its log, then, while `hold-PHASE` exists, waits for `go-PHASE`;
    /// it exits 3 while `fail-PHASE` exists.
    pub fn new(wd: &Workdir) -> HookScript {
        let dir = wd.dir.path().to_path_buf();
        let script = dir.join("hook.sh");
        let log = dir.join("hooks.log");
        let secret_var = secret_env_name(SECRET);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 echo \"$SNAPWARDEN_PHASE ${{SNAPWARDEN_OUTCOME:--}} $SNAPWARDEN_TARGET $SNAPWARDEN_SNAPSHOT_NAME secret=${{{secret_var}:-unset}} arg=$1 node=${{HOOK_NODE:--}}\" >> {log}\n\
                 if [ -f {dir}/hold-$SNAPWARDEN_PHASE ]; then\n\
                   while [ ! -f {dir}/go-$SNAPWARDEN_PHASE ]; do sleep 0.02; done\n\
                 fi\n\
                 if [ -f {dir}/fail-$SNAPWARDEN_PHASE ]; then echo \"cannot $SNAPWARDEN_PHASE\" >&2; exit 3; fi\n",
                log = log.display(),
                dir = dir.display(),
            ),
        )
        .expect("write the hook");
        let mut perms = std::fs::metadata(&script).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).expect("chmod");
        HookScript { script, log, dir }
    }

    /// Policy keys for both hooks.
    pub fn keys(&self) -> String {
        format!(
            "pre_snapshot = [\"{s}\", \"freeze\"]\npost_snapshot = [\"{s}\", \"thaw\"]\nhook_timeout = \"20s\"",
            s = self.script.display()
        )
    }

    pub fn hold(&self, phase: &str) {
        std::fs::write(self.dir.join(format!("hold-{phase}")), "").expect("hold");
    }

    pub fn go(&self, phase: &str) {
        std::fs::write(self.dir.join(format!("go-{phase}")), "").expect("go");
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Wait until a line starting with `prefix` is logged.
    pub fn wait_line(&self, prefix: &str) {
        wait_for(&format!("hook line {prefix:?}"), MINUTE, || {
            self.lines()
                .iter()
                .any(|l| l.starts_with(prefix))
                .then_some(())
        });
    }
}
