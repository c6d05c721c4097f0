//! End to end on QingCloud: the real binary against the built-in simulator
//! on loopback, asserting on what the simulator saw and on the ledger. The
//! scenarios every cloud shares (auth, throttling, failed jobs, lost
//! answers, restore) are in `e2e_clouds.rs`.

mod util;

use std::time::Duration;

use snapwarden::state::RunState;
use util::*;

fn policy(targets: &[&str], schedule: &str, retain: u32) -> String {
    let rest = format!(
        "retain = {retain}\npoll_interval = \"100ms\"\npoll_max_interval = \"400ms\"\n\
         timeout = \"30s\""
    );
    qc_policy("db", targets, schedule, &rest)
}

/// Three slots on two volumes: three creates each, every job polled to
/// terminal, retain = 2 leaves two own snapshots per volume, and the manual
/// snapshot on each volume is untouched.
#[test]
fn three_slots_two_volumes_retain_two() {
    let (sim, wd) = sim_with_volumes("300ms", &[]);
    let mut manual = Vec::new();
    for v in ["vol-aaaa0001", "vol-bbbb0002"] {
        sim.volume(v);
        manual.push(sim.manual_snapshot(v, &format!("db-{v}-19990101T000000Z")));
    }
    let schedule = seconds_from_now(&[2, 4, 6]);
    let cfg = wd.write_qc_config(
        &sim,
        &policy(&["vol-aaaa0001", "vol-bbbb0002"], &schedule, 2),
    );
    let daemon = Daemon::start(&cfg, SECRET);

    // Wait for three succeeded runs per volume and no operation in flight.
    wd.wait_succeeded_runs("db", &["vol-aaaa0001", "vol-bbbb0002"], 3);
    let (code, took) = daemon.stop();
    assert_eq!(code, Some(0), "clean stop");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");

    for (v, manual_id) in ["vol-aaaa0001", "vol-bbbb0002"].iter().zip(&manual) {
        assert_eq!(sim.creates_for(v), 3, "three creates on {v}");
        assert_two_kept_beside_manual(&sim.live_snapshots(v), "snapshot_id", manual_id, v);
        // The ledger agrees: two available, one deleted.
        assert_eq!(wd.available_and_deleted(Some(v)), (2, 1));
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

/// kill -9 while a job is in flight, restart: the job is resumed and no
/// second snapshot is made for that slot.
#[test]
fn kill_nine_mid_job_resumes_without_duplicate() {
    let (sim, wd) = sim_with_volumes("3s", &["vol-aaaa0001"]);
    let cfg = wd.write_qc_config(&sim, &policy(&["vol-aaaa0001"], &seconds_from_now(&[2]), 2));
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

/// `check` on an invalid file exits 2 naming file:line:column; SIGHUP with
/// an invalid file keeps the daemon on the old configuration.
#[test]
fn invalid_config_check_and_sighup() {
    let (sim, wd) = sim_with_volumes("200ms", &["vol-aaaa0001"]);
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

/// Standard output whose reader has already gone, as `| head` leaves it.
fn closed_pipe() -> std::process::Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills both descriptors on success; the read end is
    // closed at once and the write end is owned by the Stdio returned.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0, "pipe");
        libc::close(fds[0]);
        std::process::Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// `snapwarden check | head`, `snapshot … | head`: a reader that went away
/// is no crash; the command ends as it would have.
#[test]
fn output_into_a_closed_pipe_is_no_crash() {
    let (sim, wd) = sim_with_volumes("200ms", &["vol-aaaa0001"]);
    let cfg = wd.write_config(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy(&["vol-aaaa0001"], "0 0 * * * *", 2),
    ));
    let cfg = cfg.to_str().expect("utf-8");
    // The snapshot goes on to its end with nobody reading its report.
    let commands: [&[&str]; 4] = [
        &["check", "-c", cfg],
        &["snapshot", "-c", cfg, "--policy", "db"],
        &["plan", "-c", cfg],
        &["status", "-c", cfg],
    ];
    for args in commands {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env(secret_env_name(SECRET), SECRET)
            .stdout(closed_pipe())
            .output()
            .expect("run snapwarden");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
    assert_eq!(sim.creates_for("vol-aaaa0001"), 1);
    let runs = wd.state().runs_for("db", "vol-aaaa0001", 10).expect("runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, RunState::Succeeded, "{runs:?}");
}
