//! No silent gaps: every due slot ends as a good snapshot of every volume
//! it covers, or as a failure that alerts. The real binary against the
//! simulator's QingCloud dialect on loopback; each test is a gap that was
//! found in review and failed before its fix.

mod util;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::Utc;
use snapwarden::state::{LedgerState, RunState};
use util::*;

const VOL: &str = "vol-gap00001";

/// A policy `db` on `targets`, polled every 100 ms.
fn policy(targets: &[&str], schedule: &str, extra: &str) -> String {
    let rest =
        format!("retain = 10\npoll_interval = \"100ms\"\npoll_max_interval = \"200ms\"\n{extra}");
    qc_policy("db", targets, schedule, &rest)
}

/// A QingCloud config whose alerts are appended as JSON lines to
/// `alerts.jsonl` in the workdir; `provider_extra` goes into the provider.
fn write_config(wd: &Workdir, sim: &Sim, provider_extra: &str, policy: &str) -> PathBuf {
    let text = wd
        .with_alert_command(&wd.qingcloud_config(sim, SECRET, policy))
        .replace(
            "requests_per_second = 50",
            &format!("requests_per_second = 50\n{provider_extra}"),
        );
    wd.write_config(&text)
}

/// The ledger is locked by another process while a run
/// prunes (its listing is slowed down to widen the window: the first two
/// DescribeSnapshots are the create's completion check and the prune), so the run
/// cannot record its end and is left open. Before, every later slot of the
/// target was skipped until a restart; now the running daemon takes the
/// abandoned run up and finishes it, and later slots snapshot again. A
/// job outcome that cannot be recorded meanwhile is asked again later,
/// never turned into a failure.
#[test]
fn a_run_left_open_by_a_failed_ledger_write_is_taken_up_and_later_slots_run() {
    let (sim, wd) = sim_with_volumes("300ms", &[VOL]);
    let cfg = write_config(
        &wd,
        &sim,
        "",
        &policy(&[VOL], "*/3 * * * * *", "timeout = \"60s\""),
    );
    sim.fault(
        serde_json::json!({"dialect": "qingcloud", "action": "DescribeSnapshots",
                                 "fault": "latency", "latency_ms": 3000, "count": 2}),
    );
    let daemon = Daemon::start(&cfg, SECRET);
    let first = wait_for("the first run to prune", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOL, 5).ok()?;
        runs.into_iter()
            .find(|r| r.state == RunState::Pruning)
            .map(|r| r.slot)
    });
    let conn = rusqlite::Connection::open(wd.state_path()).expect("open the ledger");
    conn.execute_batch("BEGIN EXCLUSIVE;")
        .expect("take the write lock");

    daemon.wait_log("run failed", MINUTE);
    conn.execute_batch("ROLLBACK;").expect("release");
    drop(conn);
    let creates = sim.creates_for(VOL);
    wait_for("two more slots to snapshot", MINUTE, || {
        (sim.creates_for(VOL) >= creates + 2).then_some(())
    });
    let first_run = wait_for("the abandoned run to end", MINUTE, || {
        let runs = wd.state().runs_for("db", VOL, 50).ok()?;
        runs.into_iter()
            .find(|r| r.slot == first)
            .filter(|r| !r.state.is_open())
    });
    assert_eq!(first_run.state, RunState::Succeeded, "{first_run:?}");
    assert!(daemon.log.count("taking up work left in flight") >= 1);
    let rows = wd.state().run_snapshots(first_run.id).expect("snapshots");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, LedgerState::Available);
    assert!(
        wd.alerts().iter().any(|a| a["kind"] == "recovery"),
        "the run taken up recovers the failure its lost end alerted"
    );
}

/// A slot skipped because the target's previous run is still
/// in flight has no snapshot, so it alerts (`slot_skipped`), not only
/// counts.
#[test]
fn a_skipped_slot_alerts() {
    let (sim, wd) = sim_with_volumes("5s", &[VOL]);
    let cfg = write_config(
        &wd,
        &sim,
        "",
        &policy(&[VOL], "*/2 * * * * *", "timeout = \"60s\""),
    );
    let daemon = Daemon::start(&cfg, SECRET);
    let alert = wait_for("a slot_skipped alert", MINUTE, || {
        wd.alerts()
            .into_iter()
            .find(|a| a["kind"] == "slot_skipped")
    });
    assert_eq!(alert["policy"], "db");
    assert_eq!(alert["target"], VOL);
    let message = alert["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("skipped") && message.contains("still in flight"),
        "{alert}"
    );
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}

/// Waiting for a `max_in_flight` permit counts against the
/// run's timeout. Three targets share one permit, each job takes 3 s, and
/// the timeout is 4 s: the third target gets the permit only after its
/// timeout, so no create is sent for it (before, it was sent and then
/// written off at once, leaving a snapshot the ledger called failed), and
/// its run fails saying why.
#[test]
fn no_create_is_sent_after_the_runs_timeout() {
    let vols = ["vol-gap00011", "vol-gap00012", "vol-gap00013"];
    let (sim, wd) = sim_with_volumes("3s", &vols);
    let cfg = write_config(
        &wd,
        &sim,
        "max_in_flight = 1",
        &policy(&vols, "0 0 3 * * *", "timeout = \"4s\""),
    );
    let out = wd.run(&cfg, &["snapshot", "--policy", "db"]);
    assert!(!out.status.success(), "some runs must fail");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let total_creates: usize = vols.iter().map(|v| sim.creates_for(v)).sum();
    assert!(total_creates <= 2, "{total_creates} creates: {stdout}");
    let last = vols
        .iter()
        .find(|v| sim.creates_for(v) == 0)
        .expect("one target got its permit after its timeout");
    let runs = wd.state().runs_for("db", last, 5).expect("runs");
    assert_eq!(runs[0].state, RunState::Failed);
    let error = runs[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("timeout (4s) passed before the snapshot was started"),
        "{error}"
    );
    // Nothing the cloud made is called failed without asking the cloud.
    let state = wd.state();
    for row in state.all_snapshots().expect("ledger") {
        if row.state == LedgerState::Failed {
            assert!(
                row.error
                    .as_deref()
                    .is_some_and(|e| e.contains("still not done when asked")),
                "{row:?}"
            );
        }
    }
}

/// The daemon is down past an operation's deadline while the
/// job finishes. On restart the operation is read from the cloud once
/// before it is called failed: the snapshot is good, the run succeeds
/// (before, it was written off as timed out without asking, and the good
/// snapshot was kept forever as failed).
#[test]
fn an_operation_past_its_deadline_is_read_once_before_it_fails() {
    let (sim, wd) = sim_with_volumes("1s", &[VOL]);
    let cfg = write_config(
        &wd,
        &sim,
        "",
        &policy(&[VOL], "0 0 3 * * *", "timeout = \"3s\""),
    );
    let mut one_shot = Command::new(BIN)
        .args([
            "snapshot",
            "-c",
            cfg.to_str().expect("utf-8"),
            "--policy",
            "db",
        ])
        .env(secret_env_name(SECRET), SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start snapshot");
    let run = wait_for("the run to be creating", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOL, 5).ok()?;
        runs.into_iter().find(|r| r.state == RunState::Creating)
    });
    let _ = one_shot.kill();
    let _ = one_shot.wait();
    let deadline = run.started_at + chrono::Duration::seconds(3);
    wait_for("the run's deadline to pass", MINUTE, || {
        (Utc::now() > deadline + chrono::Duration::milliseconds(200)).then_some(())
    });
    let jobs_before = sim.requests("DescribeJobs").len();
    let daemon = Daemon::start(&cfg, SECRET);
    let ended = wait_for("the run to end", MINUTE, || {
        let r = wd.try_state()?.run(run.id).ok()?;
        (!r.state.is_open()).then_some(r)
    });
    assert_eq!(ended.state, RunState::Succeeded, "{ended:?}");
    assert!(sim.requests("DescribeJobs").len() > jobs_before);
    let rows = wd.state().run_snapshots(run.id).expect("snapshots");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, LedgerState::Available);
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}

/// A failure alert that never reached the operator (here the alert
/// command fails; a SIGKILL between deciding and delivering has the same
/// effect) is sent again when the daemon next starts: the ledger records
/// which alerts were delivered. Before, a restart assumed every failing
/// target had been alerted.
#[test]
fn an_undelivered_failure_alert_is_sent_after_a_restart() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOL]);
    sim.fault(
        serde_json::json!({"dialect": "qingcloud", "action": "CreateSnapshots",
                                 "fault": "fail_job"}),
    );
    let working = write_config(
        &wd,
        &sim,
        "",
        &policy(&[VOL], "*/2 * * * * *", "timeout = \"20s\""),
    );
    let text = std::fs::read_to_string(&working).expect("config");
    let broken = text.replace(
        "command = [\"sh\", \"-c\",",
        "command = [\"false\", \"-c\",",
    );
    assert_ne!(broken, text);
    wd.write_config(&broken);
    let daemon = Daemon::start(&working, SECRET);
    daemon.wait_log("alert command failed", MINUTE);
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    assert!(wd.alerts().is_empty(), "nothing reached the operator yet");

    wd.write_config(&text.replace("*/2 * * * * *", "0 0 3 * * *"));
    let daemon = Daemon::start(&working, SECRET);
    let alert = wait_for("the failure alert after the restart", MINUTE, || {
        wd.alerts().into_iter().find(|a| a["kind"] == "failure")
    });
    assert_eq!(alert["target"], VOL);
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("alerted after a restart")),
        "{alert}"
    );
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));

    // Delivered now: the next start only reminds after `repeat_after`.
    let daemon = Daemon::start(&working, SECRET);
    daemon.wait_log("policies scheduled", MINUTE);
    assert_eq!(
        daemon.log.count("alert: snapwarden: FAILURE"),
        0,
        "not sent twice"
    );
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}
