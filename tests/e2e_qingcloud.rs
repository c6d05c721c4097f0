//! End to end on QingCloud: the real binary against the built-in simulator
//! on loopback, asserting on what the simulator saw and on the ledger.

mod util;

use std::time::Duration;

use serde_json::json;
use snapwarden::state::{LedgerState, RunState};
use util::*;


fn policy(targets: &[&str], schedule: &str, retain: u32) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"name = "db"
provider = "qc"
resource = "volume"
targets = [{}]
schedule = "{schedule}"
retain = {retain}
poll_interval = "100ms"
poll_max_interval = "400ms"
timeout = "30s"
"#,
        targets.join(", ")
    )
}

/// Three slots on two volumes: three creates each, every job polled to
/// terminal, retain = 2 leaves two own snapshots per volume, and the manual
/// snapshot on each volume is untouched.
#[test]
fn three_slots_two_volumes_retain_two() {
    let sim = Sim::start("300ms");
    let wd = Workdir::new();
    let mut manual = Vec::new();
    for v in ["vol-aaaa0001", "vol-bbbb0002"] {
        sim.volume(v);
        manual.push(sim.manual_snapshot(v, &format!("db-{v}-19990101T000000Z")));
    }
    let schedule = seconds_from_now(&[2, 4, 6]);
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001", "vol-bbbb0002"], &schedule, 2),
    ));
    let daemon = Daemon::start(&cfg, SECRET);

    // Wait for three succeeded runs per volume and no operation in flight.
    wait_for("three successful runs per volume", MINUTE, || {
        let state = wd.try_state()?;
        let done = ["vol-aaaa0001", "vol-bbbb0002"].iter().all(|v| {
            state
                .runs_for("db", v, 10)
                .map(|runs| {
                    runs.iter()
                        .filter(|r| r.state == RunState::Succeeded)
                        .count()
                        == 3
                })
                .unwrap_or(false)
        });
        (done && state.ops_in_flight().map(|o| o.is_empty()).unwrap_or(false)).then_some(())
    });
    let (code, took) = daemon.stop();
    assert_eq!(code, Some(0), "clean stop");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");

    for (v, manual_id) in ["vol-aaaa0001", "vol-bbbb0002"].iter().zip(&manual) {
        assert_eq!(sim.creates_for(v), 3, "three creates on {v}");
        let live = sim.live_snapshots(v);
        let own: Vec<_> = live
            .iter()
            .filter(|s| s["snapshot_id"] != manual_id.as_str())
            .collect();
        assert_eq!(own.len(), 2, "two own snapshots kept on {v}: {live:?}");
        assert!(own.iter().all(|s| s["status"] == "available"));
        assert!(
            live.iter().any(|s| s["snapshot_id"] == manual_id.as_str()),
            "the manual snapshot on {v} (whose name looks like ours) is untouched"
        );
        // The ledger agrees: two available, one deleted.
        let rows: Vec<_> = wd
            .state()
            .all_snapshots()
            .expect("ledger")
            .into_iter()
            .filter(|r| r.target == *v)
            .collect();
        assert_eq!(
            rows.iter()
                .filter(|r| r.state == LedgerState::Available)
                .count(),
            2
        );
        assert_eq!(
            rows.iter()
                .filter(|r| r.state == LedgerState::Deleted)
                .count(),
            1
        );
    }
    // Jobs were followed through DescribeJobs, batched: the two volumes'
    // jobs of one slot were asked about in one call.
    let polls = sim.requests("DescribeJobs");
    assert!(
        polls
            .iter()
            .any(|r| r["params"]["jobs.1"].is_string() && r["params"]["jobs.2"].is_string()),
        "no batched DescribeJobs call: {polls:?}"
    );
    assert!(polls.iter().all(|r| r["ret_code"] == 0));
    assert_eq!(
        sim.requests("DeleteSnapshots")
            .iter()
            .filter(|r| r["ret_code"] == 0)
            .count(),
        2
    );
}

/// A wrong secret: the run fails with a clear authentication error in the
/// log and in `status`; nothing is created; the daemon keeps running.
#[test]
fn wrong_secret_is_a_clear_auth_failure() {
    let sim = Sim::start("300ms");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
    let wrong = "not-the-secret";
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        wrong,
        &policy(&["vol-aaaa0001"], "* * * * * *", 2),
    ));
    let mut daemon = Daemon::start(&cfg, wrong);
    daemon.wait_log("run failed", MINUTE);
    let line = daemon
        .log
        .all()
        .into_iter()
        .find(|l| l.contains("run failed"))
        .expect("failure line");
    assert!(
        line.contains("auth error") && line.contains("1200"),
        "{line}"
    );
    assert!(
        !line.contains(wrong),
        "the secret must not be logged: {line}"
    );

    let out = wd.cmd(
        &["status", "--json", "-c", cfg.to_str().expect("utf-8 path")],
        wrong,
    );
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    let t = &doc["targets"][0];
    assert!(
        t["consecutive_failures"].as_u64().unwrap_or(0) >= 1,
        "{doc}"
    );
    assert!(
        t["last_error"].as_str().unwrap_or("").contains("auth"),
        "{doc}"
    );

    assert!(
        daemon.is_running(),
        "the daemon keeps running after auth failures"
    );
    assert_eq!(sim.creates_for("vol-aaaa0001"), 0);
    assert!(sim.live_snapshots("vol-aaaa0001").is_empty());
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}

/// kill -9 while a job is in flight, restart: the job is resumed and no
/// second snapshot is made for that slot.
#[test]
fn kill_nine_mid_job_resumes_without_duplicate() {
    let sim = Sim::start("3s");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001"], &seconds_from_now(&[2]), 2),
    ));
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("a create operation in flight", MINUTE, || {
        wd.try_state()?
            .ops_in_flight()
            .ok()
            .filter(|o| !o.is_empty())
            .map(|_| ())
    });
    daemon.kill9();
    assert_eq!(sim.creates_for("vol-aaaa0001"), 1);

    let daemon = Daemon::start(&cfg, SECRET);
    daemon.wait_log("resuming run", Duration::from_secs(10));
    wait_for("the resumed run to succeed", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", "vol-aaaa0001", 10).ok()?;
        (runs.len() == 1 && runs[0].state == RunState::Succeeded).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    assert_eq!(
        sim.creates_for("vol-aaaa0001"),
        1,
        "no second create for the slot"
    );
    let live = sim.live_snapshots("vol-aaaa0001");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["status"], "available");
}

/// kill -9 after the create request reached the cloud but before its answer
/// was recorded: on restart the intent is reconciled by name and adopted.
#[test]
fn kill_nine_before_the_answer_reconciles_by_name() {
    let sim = Sim::start("300ms");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
    // The simulator makes the snapshot, then holds the answer back.
    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "latency", "latency_ms": 20000, "count": 1}));
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001"], &seconds_from_now(&[2]), 2),
    ));
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("the create request to reach the simulator", MINUTE, || {
        (!sim.live_snapshots("vol-aaaa0001").is_empty()).then_some(())
    });
    daemon.kill9();
    let runs = wd.state().runs_for("db", "vol-aaaa0001", 10).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].state,
        RunState::Intent,
        "only the intent was recorded"
    );

    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("the reconciled run to succeed", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", "vol-aaaa0001", 10).ok()?;
        (runs.len() == 1 && runs[0].state == RunState::Succeeded).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    assert!(ledger_has_one_available_snapshot(&wd));
    assert_eq!(
        sim.live_snapshots("vol-aaaa0001").len(),
        1,
        "exactly one snapshot for the slot"
    );
    let create_calls = sim.requests("CreateSnapshots").len();
    assert_eq!(create_calls, 1, "no create after the restart");
}

fn ledger_has_one_available_snapshot(wd: &Workdir) -> bool {
    wd.state()
        .all_snapshots()
        .map(|rows| rows.len() == 1 && rows[0].state == LedgerState::Available)
        .unwrap_or(false)
}

/// A failed job: no pruning for that target on that run, and the failure
/// is in `status`. Uses `snapshot` (one run now) for a deterministic order.
#[test]
fn failed_job_means_no_pruning() {
    let sim = Sim::start("200ms");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001"], "0 0 3 * * *", 2),
    ));
    let path = cfg.to_str().expect("utf-8 path");
    for _ in 0..2 {
        let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], SECRET);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(1100)); // next second: a new slot name
    }
    assert_eq!(sim.live_snapshots("vol-aaaa0001").len(), 2);

    // Now retain 1 — the next successful run would delete one — but the job fails.
    wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001"], "0 0 3 * * *", 1),
    ));
    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "fail_job", "count": 1}));
    let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], SECRET);
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    assert!(
        sim.requests("DeleteSnapshots").is_empty(),
        "no pruning after a failed run"
    );
    assert_eq!(
        sim.live_snapshots("vol-aaaa0001")
            .iter()
            .filter(|s| s["status"] == "available")
            .count(),
        2
    );

    let out = wd.cmd(&["status", "--json", "-c", path], SECRET);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    let t = &doc["targets"][0];
    assert_eq!(t["consecutive_failures"], 1, "{doc}");
    assert_eq!(t["last_run"]["state"], "failed", "{doc}");
    assert!(
        t["last_error"].as_str().unwrap_or("").contains("failed"),
        "{doc}"
    );
}

/// `check` on an invalid file exits 2 naming file:line:column; SIGHUP with
/// an invalid file keeps the daemon on the old configuration.
#[test]
fn invalid_config_check_and_sighup() {
    let sim = Sim::start("200ms");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
    let good = wd.qingcloud_config(&sim, SECRET, &policy(&["vol-aaaa0001"], "* * * * * *", 2));
    let cfg = wd.write_config(&good);

    let broken = good.replace("retain = 2", "retain = 0");
    let line = broken
        .lines()
        .position(|l| l.starts_with("retain = 0"))
        .expect("retain line")
        + 1;
    std::fs::write(wd.dir.path().join("broken.toml"), &broken).expect("write");
    let broken_path = wd.dir.path().join("broken.toml");
    let out = wd.cmd(
        &["check", "-c", broken_path.to_str().expect("utf-8")],
        SECRET,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("broken.toml:{line}:10")),
        "names file:line:column: {err}"
    );

    let mut daemon = Daemon::start(&cfg, SECRET);
    wait_for("a first create", MINUTE, || {
        (sim.creates_for("vol-aaaa0001") >= 1).then_some(())
    });
    std::fs::write(&cfg, &broken).expect("write broken");
    daemon.signal("HUP");
    daemon.wait_log("reload failed", Duration::from_secs(10));
    let before = sim.creates_for("vol-aaaa0001");
    wait_for("creates to go on under the old config", MINUTE, || {
        (sim.creates_for("vol-aaaa0001") >= before + 2).then_some(())
    });
    assert!(daemon.is_running());

    // A valid file is taken on the next SIGHUP.
    std::fs::write(&cfg, good.replace("retain = 2", "retain = 1")).expect("write good");
    daemon.signal("HUP");
    daemon.wait_log("configuration reloaded", Duration::from_secs(10));
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}

/// Throttling (ret_code 5100) is retried and ends in success; a quota error
/// (2500) is not retried and fails the run; `job_id` given as an array is
/// understood.
#[test]
fn throttling_is_retried_quota_is_not() {
    let sim = Sim::start("100ms");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
    sim.post("/_sim/settings", json!({"job_id_as_array": true}));
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001"], "0 0 3 * * *", 2),
    ));
    let path = cfg.to_str().expect("utf-8 path");

    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "throttle", "count": 2}));
    let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], SECRET);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creates = sim.requests("CreateSnapshots");
    assert_eq!(creates.len(), 3, "two throttled attempts, then success");
    assert_eq!(creates.iter().filter(|r| r["ret_code"] == 5100).count(), 2);
    assert_eq!(sim.live_snapshots("vol-aaaa0001").len(), 1);

    std::thread::sleep(Duration::from_millis(1050));
    sim.fault(
        json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "quota", "count": 1}),
    );
    let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], SECRET);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        sim.requests("CreateSnapshots").len(),
        4,
        "a quota error is not retried"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("quota error") && stderr.contains("2500"),
        "{stderr}"
    );
    assert!(sim.requests("DeleteSnapshots").is_empty());
}

/// `restore` makes a new volume from the newest own snapshot with
/// CreateVolumeFromSnapshot and follows its job to `successful`.
#[test]
fn restore_creates_a_volume_from_the_newest_snapshot() {
    let sim = Sim::start("200ms");
    let wd = Workdir::new();
    sim.volume("vol-aaaa0001");
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001"], "0 0 3 * * *", 3),
    ));
    let path = cfg.to_str().expect("utf-8 path");
    for _ in 0..2 {
        let out = wd.cmd(&["snapshot", "-c", path, "--policy", "db"], SECRET);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
    let newest = sim
        .live_snapshots("vol-aaaa0001")
        .iter()
        .max_by_key(|s| s["create_time"].as_str().map(str::to_string))
        .and_then(|s| s["snapshot_id"].as_str().map(str::to_string))
        .expect("a snapshot");
    let out = wd.cmd(
        &[
            "restore",
            "-c",
            path,
            "--policy",
            "db",
            "--target",
            "vol-aaaa0001",
            "--new-name",
            "restored",
        ],
        SECRET,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = sim.requests("CreateVolumeFromSnapshot");
    assert_eq!(calls.len(), 1, "one restore call");
    assert_eq!(calls[0]["params"]["snapshot"], newest.as_str());
    assert_eq!(calls[0]["params"]["volume_name"], "restored");
    assert!(stdout.contains("into new resource vol-"), "{stdout}");
}
