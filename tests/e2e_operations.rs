//! Operations end to end: Prometheus metrics change as snapshots are
//! created, fail and are deleted; `/healthz` turns 503 while the state
//! database cannot be written.

mod util;

use std::time::Duration;

use serde_json::json;
use util::*;

const MINUTE: Duration = Duration::from_secs(60);

fn metrics_addr(daemon: &Daemon) -> String {
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

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// GET `url`; a transport error (logged) reads as status 0 so that the
/// waits around it simply try again.
fn get(url: &str) -> (u16, String) {
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

#[test]
fn metrics_follow_creates_failures_and_deletes_and_healthz_follows_the_database() {
    let sim = Sim::start("100ms");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
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
timeout = "1s"
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
        let (_, t) = get(&format!("{base}/metrics"));
        (sample(&t, &created)? >= 2.0 && sample(&t, &deleted)? >= 1.0).then_some(t)
    });
    assert!(text.contains("snapwarden_build_info{version=\""), "{text}");
    assert!(
        sample(
            &text,
            r#"snapwarden_schedule_expected_interval_seconds{policy="db"}"#
        ) == Some(1.0)
    );
    assert!(
        sample(
            &text,
            r#"snapwarden_last_success_timestamp_seconds{policy="db",target="vol-aaaa0001"}"#
        )
        .unwrap_or(0.0)
            > 1.7e9
    );
    assert!(
        sample(
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
        let (_, t) = get(&format!("{base}/metrics"));
        (sample(&t, failed)? >= 1.0).then_some(())
    });
    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "throttle", "count": 1}));
    wait_for("a throttled call in /metrics", MINUTE, || {
        let (_, t) = get(&format!("{base}/metrics"));
        (sample(&t, r#"snapwarden_api_throttled_total{provider="qc"}"#)? >= 1.0).then_some(())
    });

    // Health: fine, then 503 while another process holds the write lock.
    wait_for("/healthz to be 200", Duration::from_secs(20), || {
        (get(&format!("{base}/healthz")).0 == 200).then_some(())
    });
    let conn = rusqlite::Connection::open(wd.state_path()).expect("open the ledger");
    conn.execute_batch("BEGIN EXCLUSIVE;")
        .expect("take the write lock");
    let body = wait_for("/healthz to turn 503", Duration::from_secs(20), || {
        let (code, body) = get(&format!("{base}/healthz"));
        (code == 503).then_some(body)
    });
    assert!(body.contains("state database not writable"), "{body}");
    conn.execute_batch("ROLLBACK;").expect("release");
    wait_for("/healthz to recover", Duration::from_secs(20), || {
        (get(&format!("{base}/healthz")).0 == 200).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}
