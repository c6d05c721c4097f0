//! Operations end to end: Prometheus metrics change as snapshots are
//! created, fail and are deleted; `/healthz` turns 503 while the state
//! database cannot be written.

mod util;

use std::time::Duration;

use serde_json::json;
use util::*;

#[test]
fn metrics_follow_creates_failures_and_deletes_and_healthz_follows_the_database() {
    let (sim, wd) = sim_with_volumes("100ms", &["vol-aaaa0001"]);
    let text = wd
        .qingcloud_config(
            &sim,
            SECRET,
            r#"name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-aaaa0001"]
schedule = "* * * * * *"
retain = 1
poll_interval = "100ms"
poll_max_interval = "200ms"
timeout = "5s"
"#,
        )
        .replace(
            "log_format = \"text\"",
            "log_format = \"text\"\nmetrics_listen = \"127.0.0.1:0\"",
        );
    let cfg = wd.write_config(&text);
    let daemon = Daemon::start(&cfg, SECRET);
    let base = format!("http://{}", metrics_addr(&daemon));

    let labels = r#"{policy="db",target="vol-aaaa0001",provider="qc"}"#;
    let created = format!("snapwarden_snapshots_created_total{labels}");
    let deleted = format!("snapwarden_snapshots_deleted_total{labels}");
    let text = wait_for("two creates and a delete in /metrics", MINUTE, || {
        let (_, t) = http_get(&format!("{base}/metrics"));
        (metric_sample(&t, &created)? >= 2.0 && metric_sample(&t, &deleted)? >= 1.0).then_some(t)
    });
    assert!(text.contains("snapwarden_build_info{version=\""), "{text}");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let series = line.split(['{', ' ']).next().unwrap_or("");
        assert!(
            snapwarden::observe::metrics::is_known_series(series),
            "undocumented series {series}"
        );
    }
    assert!(
        metric_sample(
            &text,
            r#"snapwarden_schedule_expected_interval_seconds{policy="db"}"#
        ) == Some(1.0)
    );
    assert!(
        metric_sample(
            &text,
            r#"snapwarden_last_success_timestamp_seconds{policy="db",target="vol-aaaa0001"}"#
        )
        .unwrap_or(0.0)
            > 1.7e9
    );
    assert!(
        metric_sample(
            &text,
            r#"snapwarden_snapshots_retained{policy="db",target="vol-aaaa0001"}"#
        ) == Some(1.0)
    );
    assert!(
        text.contains(
            r#"snapwarden_api_requests_total{provider="qc",call="CreateSnapshots",outcome="ok"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains("snapwarden_operation_duration_seconds_bucket"),
        "{text}"
    );

    // Failures are counted by reason.
    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "fail_job", "count": 1}));
    let failed = r#"snapwarden_snapshots_failed_total{policy="db",target="vol-aaaa0001",provider="qc",reason="operation_failed"}"#;
    wait_for("a failed snapshot in /metrics", MINUTE, || {
        let (_, t) = http_get(&format!("{base}/metrics"));
        (metric_sample(&t, failed)? >= 1.0).then_some(())
    });
    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "throttle", "count": 1}));
    wait_for("a throttled call in /metrics", MINUTE, || {
        let (_, t) = http_get(&format!("{base}/metrics"));
        (metric_sample(&t, r#"snapwarden_api_throttled_total{provider="qc"}"#)? >= 1.0)
            .then_some(())
    });

    // Health: fine, then 503 while another process holds the write lock.
    wait_for("/healthz to be 200", Duration::from_secs(20), || {
        (http_get(&format!("{base}/healthz")).0 == 200).then_some(())
    });
    let conn = rusqlite::Connection::open(wd.state_path()).expect("open the ledger");
    conn.execute_batch("BEGIN EXCLUSIVE;")
        .expect("take the write lock");
    let body = wait_for("/healthz to turn 503", Duration::from_secs(20), || {
        let (code, body) = http_get(&format!("{base}/healthz"));
        (code == 503).then_some(body)
    });
    assert!(body.contains("state database not writable"), "{body}");
    conn.execute_batch("ROLLBACK;").expect("release");
    wait_for("/healthz to recover", Duration::from_secs(20), || {
        (http_get(&format!("{base}/healthz")).0 == 200).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}

/// A tiny loopback HTTP receiver that records every request body.
fn webhook_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then Content-Length bytes of body.
            let body = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= head_end + 4 + len {
                        break Some(buf[head_end + 4..head_end + 4 + len].to_vec());
                    }
                }
            };
            if let Some(b) = body {
                if let Ok(v) = serde_json::from_slice(&b) {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// Repeated failures give exactly one `failure` and then one `recovery`;
/// the command receives the same JSON; a policy whose provider keeps
/// failing goes `stale`.
#[test]
fn alerts_without_storms_recovery_and_stale() {
    let (sim, wd) = sim_with_volumes("100ms", &["vol-aaaa0001", "vol-bbbb0002"]);
    let (url, received) = webhook_receiver();
    let cmd_out = wd.dir.path().join("alerts.jsonl");
    let cfg = wd.write_config(&format!(
        r#"[daemon]
state_path = "{state}"

[alerts]
webhook_url = "{url}"
command = ["sh", "-c", "cat >> '{out}'; echo >> '{out}'"]
on = ["failure", "recovery", "stale"]

[providers.qc]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{ACCESS_KEY}"
secret_access_key_env = "{env}"
endpoint = "{endpoint}"

[providers.qcbad]
kind = "qingcloud"
zone = "{ZONE}"
access_key_id = "{ACCESS_KEY}"
secret_access_key_env = "TEST_WRONG_SECRET"
endpoint = "{endpoint}"

[[policy]]
name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-aaaa0001"]
schedule = "* * * * * *"
retain = 2
poll_interval = "100ms"
timeout = "5s"

[[policy]]
name = "bad"
provider = "qcbad"
resource = "volume"
targets = ["vol-bbbb0002"]
schedule = "* * * * * *"
retain = 2
poll_interval = "100ms"
timeout = "5s"
stale_after = "2s"
"#,
        state = wd.state_path().display(),
        out = cmd_out.display(),
        env = secret_env_name(SECRET),
        endpoint = sim.endpoint(),
    ));
    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "fail_job", "count": 3}));
    let daemon = Daemon::start_with_env(&cfg, SECRET, &[("TEST_WRONG_SECRET", "wrong")]);

    let kinds = |policy: &str| -> Vec<String> {
        received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|v| v["policy"] == policy)
            .filter_map(|v| v["kind"].as_str().map(str::to_string))
            .collect()
    };
    wait_for(
        "failure then recovery for db, failure and stale for bad",
        MINUTE,
        || {
            let db = kinds("db");
            let bad = kinds("bad");
            (db.contains(&"recovery".to_string()) && bad.contains(&"stale".to_string()))
                .then_some(())
        },
    );
    // A few more failing runs of `bad` must not add alerts.
    std::thread::sleep(Duration::from_millis(1500));
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));

    assert_eq!(
        kinds("db"),
        vec!["failure", "recovery"],
        "one failure for three failed runs, then one recovery"
    );
    let bad = kinds("bad");
    assert_eq!(bad.iter().filter(|k| *k == "failure").count(), 1, "{bad:?}");
    assert_eq!(bad.iter().filter(|k| *k == "stale").count(), 1, "{bad:?}");

    let all = received.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let failure = all
        .iter()
        .find(|v| v["policy"] == "db" && v["kind"] == "failure")
        .expect("failure");
    for field in [
        "policy",
        "target",
        "provider",
        "message",
        "first_failed_at",
        "text",
        "at",
    ] {
        assert!(!failure[field].is_null(), "field {field} in {failure}");
    }
    assert!(failure["consecutive_failures"].as_u64().unwrap_or(0) >= 1);
    assert!(
        !failure["text"].as_str().unwrap_or("").contains("http"),
        "plain summary without links"
    );

    // The command got the same documents, one per line.
    let lines = std::fs::read_to_string(&cmd_out).unwrap_or_default();
    let docs: Vec<serde_json::Value> = lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(docs.len(), all.len(), "command saw {lines}");
}

/// `monitor` returns each of its exit codes for a constructed ledger, and
/// `status --json` has the documented shape.
#[test]
fn monitor_exit_codes_and_status_schema() {
    use chrono::{Duration as D, Utc};
    use snapwarden::state::{Begin, NewRun, RunState, SqliteLedger};

    fn ledger(wd: &Workdir, runs: &[(D, RunState)]) {
        let state = SqliteLedger::open(&wd.state_path()).expect("open ledger");
        let now = Utc::now();
        for (ago, outcome) in runs {
            let slot = now - *ago;
            let Begin::Started(id) = state
                .begin_run(
                    &NewRun {
                        policy: "db".into(),
                        target: "vol-aaaa0001".into(),
                        provider: "qc".into(),
                        slot,
                        name: "db-vol-aaaa0001-x".into(),
                        full: true,
                    },
                    slot,
                )
                .expect("begin")
            else {
                panic!("a fresh slot must start");
            };
            let error = (*outcome == RunState::Failed)
                .then_some("CreateSnapshots: quota error (code 2500)");
            state
                .set_run_state(id, *outcome, error, slot + D::seconds(5))
                .expect("finish");
        }
    }
    let monitor = |runs: &[(D, RunState)]| -> (Option<i32>, String, Workdir) {
        let sim_free = Workdir::new();
        let cfg = sim_free.write_config(&format!(
            r#"[daemon]
state_path = "{}"
[providers.qc]
kind = "qingcloud"
zone = "ap2a"
access_key_id = "K"
secret_access_key_env = "{}"
endpoint = "http://127.0.0.1:9/iaas/"
[[policy]]
name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-aaaa0001"]
schedule = "0 0 3 * * *"
retain = 2
stale_after = "1h"
"#,
            sim_free.state_path().display(),
            secret_env_name(SECRET)
        ));
        if !runs.is_empty() {
            ledger(&sim_free, runs);
        }
        let out = sim_free.cmd(&["monitor", "-c", cfg.to_str().expect("utf-8")], SECRET);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            sim_free,
        )
    };

    let (code, line, _) = monitor(&[(D::minutes(1), RunState::Succeeded)]);
    assert_eq!(code, Some(0), "{line}");
    assert!(line.starts_with("SNAPWARDEN OK - 1 ok"), "{line}");

    let (code, line, _) = monitor(&[(D::minutes(90), RunState::Succeeded)]);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.starts_with("SNAPWARDEN WARNING"), "{line}");

    let (code, line, _) = monitor(&[(D::hours(3), RunState::Succeeded)]);
    assert_eq!(code, Some(2), "{line}");
    assert!(line.starts_with("SNAPWARDEN CRITICAL"), "{line}");

    let (code, line, wd) = monitor(&[
        (D::minutes(10), RunState::Succeeded),
        (D::minutes(3), RunState::Failed),
        (D::minutes(2), RunState::Failed),
        (D::minutes(1), RunState::Failed),
    ]);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.contains("3 consecutive failures") && line.contains("quota error"),
        "{line}"
    );

    // status --json: the documented shape.
    let out = wd.cmd(
        &[
            "status",
            "--json",
            "-c",
            wd.config_path().to_str().expect("utf-8"),
        ],
        SECRET,
    );
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(doc["generated_at"].is_string() && doc["state_path"].is_string());
    let t = &doc["targets"][0];
    for key in [
        "policy",
        "target",
        "provider",
        "last_run",
        "last_success",
        "consecutive_failures",
        "last_error",
        "next_run",
        "snapshots_kept",
        "skipped_slots",
        "in_flight",
    ] {
        assert!(t.get(key).is_some(), "status --json lacks {key}: {t}");
    }
    for key in ["slot", "state", "started_at", "finished_at", "error"] {
        assert!(t["last_run"].get(key).is_some(), "last_run lacks {key}");
    }
    assert_eq!(t["consecutive_failures"], 3);

    let (code, line, _) = monitor(&[]);
    assert_eq!(code, Some(3), "no ledger yet is UNKNOWN: {line}");
    assert!(line.starts_with("SNAPWARDEN UNKNOWN"), "{line}");
}
