//! Pre and post snapshot hooks end to end: the real binary against the
//! simulator, with a hook script that logs each call and can be held at
//! a gate, so the test sees what the cloud had been asked at each step.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
use snapwarden::state::RunState;
use util::*;

const VOLUME: &str = "vol-hook0001";

fn policy(schedule: &str, hooks: &str) -> String {
    qc_policy(
        "db",
        &[VOLUME],
        schedule,
        &format!(
            "retain = 3\npoll_interval = \"100ms\"\npoll_max_interval = \"300ms\"\ntimeout = \"1m\"\n{hooks}"
        ),
    )
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the command did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pre runs before the create is sent, post as soon as the cloud has
/// accepted it (its job still running), each told the run and never a
/// secret.
#[test]
fn pre_runs_before_the_create_and_post_as_soon_as_it_is_accepted() {
    let (sim, wd) = sim_with_volumes("3s", &[VOLUME]);
    let hooks = HookScript::new(&wd);
    let cfg = wd.write_qc_config(&sim, &policy("0 0 * * * *", &hooks.keys()));
    hooks.hold("pre");
    hooks.hold("post");
    let mut child = wd.spawn_as(&cfg, &["snapshot", "--policy", "db"], SECRET);

    hooks.wait_line("pre");
    assert_eq!(sim.creates_for(VOLUME), 0, "nothing is sent while pre runs");
    hooks.go("pre");

    hooks.wait_line("post");
    assert_eq!(sim.creates_for(VOLUME), 1, "post runs after the create");
    let snaps = sim.live_snapshots(VOLUME);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_ne!(
        snaps[0]["status"], "available",
        "post runs once the create is accepted, before its job ends: {snaps:?}"
    );
    hooks.go("post");

    let status = wait_exit(&mut child, MINUTE);
    assert!(status.success(), "snapshot failed: {status:?}");
    let lines = hooks.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let name = snaps[0]["snapshot_name"].as_str().unwrap_or_default();
    assert!(
        lines[0].starts_with(&format!("pre - {VOLUME} {name} secret=unset arg=freeze")),
        "{lines:?} (snapshot {name})"
    );
    assert!(
        lines[1].starts_with(&format!(
            "post accepted {VOLUME} {name} secret=unset arg=thaw"
        )),
        "{lines:?}"
    );
    let runs = wd.state().runs_for("db", VOLUME, 10).expect("runs");
    assert_eq!(runs[0].state, RunState::Succeeded, "{runs:?}");
}

/// A create the cloud refuses still gets its post hook, told `failed`.
#[test]
fn post_runs_after_a_failed_create() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let hooks = HookScript::new(&wd);
    let cfg = wd.write_qc_config(&sim, &policy("0 0 * * * *", &hooks.keys()));
    sim.fault(
        json!({"dialect": "qingcloud", "action": "CreateSnapshots", "fault": "quota", "count": 1}),
    );
    let out = wd.run(&cfg, &["snapshot", "--policy", "db"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert_eq!(sim.creates_for(VOLUME), 0);
    let lines = hooks.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("pre - "), "{lines:?}");
    assert!(lines[1].starts_with("post failed "), "{lines:?}");
    let runs = wd.state().runs_for("db", VOLUME, 10).expect("runs");
    assert_eq!(runs[0].state, RunState::Failed, "{runs:?}");
    let owed = wd.state().post_hooks_owed().expect("owed hooks");
    assert!(owed.is_empty(), "{owed:?}");
}

/// SIGKILL while the pre hook runs: nothing was sent, the post hook stays
/// owed in the ledger, and the restarted daemon runs it once (told
/// `interrupted`) before anything else; freezes and thaws then alternate.
#[test]
fn a_daemon_killed_between_pre_and_create_runs_post_once_after_restart() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let hooks = HookScript::new(&wd);
    let cfg = wd.write_qc_config(&sim, &policy("* * * * * *", &hooks.keys()));
    hooks.hold("pre");
    let daemon = Daemon::start(&cfg, SECRET);
    hooks.wait_line("pre");
    daemon.kill9();
    assert_eq!(sim.creates_for(VOLUME), 0);
    let owed = wd.state().post_hooks_owed().expect("owed hooks");
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0].command[1], "thaw");
    // The orphaned pre hook may finish now; later ones pass at once.
    std::fs::remove_file(hooks.dir.join("hold-pre")).expect("unhold");
    hooks.go("pre");

    let daemon = Daemon::start(&cfg, SECRET);
    daemon.wait_log("running a post hook left owed", Duration::from_secs(20));
    wd.wait_succeeded_runs("db", &[VOLUME], 2);
    daemon.stop();

    let lines = hooks.lines();
    let interrupted: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("post interrupted"))
        .collect();
    assert_eq!(interrupted.len(), 1, "{lines:?}");
    assert!(
        lines[1].starts_with("post interrupted"),
        "the owed thaw comes first: {lines:?}"
    );
    // A freeze is always thawed before the next one.
    for (i, line) in lines.iter().enumerate() {
        let want = if i % 2 == 0 { "pre " } else { "post " };
        assert!(line.starts_with(want), "line {i} of {lines:?}");
    }
    assert!(wd.state().post_hooks_owed().expect("owed hooks").is_empty());
}

/// A post hook left owed that fails when the restarted daemon runs it is
/// a `failure` alert (nobody reads the log at start; the application may
/// still be frozen), and it is not run again.
#[test]
fn an_owed_post_hook_that_fails_at_restart_alerts() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let hooks = HookScript::new(&wd);
    let cfg = wd.write_config(&wd.with_alert_command(&wd.qingcloud_config(
        &sim,
        SECRET,
        &policy("0 0 0 1 1 *", &hooks.keys()),
    )));
    hooks.hold("pre");
    // The daemon's yearly slot never comes: a one-shot `snapshot` is the
    // run that dies between its hooks.
    let mut one_shot = wd.spawn_as(&cfg, &["snapshot", "--policy", "db"], SECRET);
    hooks.wait_line("pre");
    one_shot.kill().expect("kill the one-shot");
    let _ = one_shot.wait();
    assert_eq!(wd.state().post_hooks_owed().expect("owed").len(), 1);
    std::fs::remove_file(hooks.dir.join("hold-pre")).expect("unhold");
    hooks.go("pre");
    std::fs::write(hooks.dir.join("fail-post"), "").expect("fail post");

    let daemon = Daemon::start(&cfg, SECRET);
    daemon.wait_log("the owed post hook failed", Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        let found = wd.alerts().into_iter().find(|a| {
            a["kind"] == "failure"
                && a["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("left owed"))
        });
        if let Some(a) = found {
            break a;
        }
        assert!(Instant::now() < deadline, "no alert: {:?}", wd.alerts());
        std::thread::sleep(Duration::from_millis(50));
    };
    // The interrupted run is taken up again (its own hooks, its own thaw):
    // it ends before the stop, which would interrupt it once more.
    wait_for("the taken-up run to end", Duration::from_secs(20), || {
        let runs = wd.try_state()?.runs_for("db", VOLUME, 10).ok()?;
        runs.iter().all(|r| !r.state.is_open()).then_some(())
    });
    daemon.stop();
    assert_eq!(alert["policy"], "db", "{alert}");
    assert_eq!(alert["target"], VOLUME, "{alert}");
    assert!(
        alert["message"]
            .as_str()
            .unwrap_or("")
            .contains("exit status: 3"),
        "how the hook failed: {alert}"
    );
    assert!(wd.state().post_hooks_owed().expect("owed").is_empty());
    let posts = hooks
        .lines()
        .iter()
        .filter(|l| l.starts_with("post interrupted"))
        .count();
    assert_eq!(posts, 1, "run once, not again: {:?}", hooks.lines());
}

/// A hook that hangs is killed at `hook_timeout`; with the default
/// `on_pre_failure = "skip"` no snapshot is taken, the run fails and says
/// why, and the post hook still runs.
#[test]
fn a_hanging_pre_hook_is_killed_at_its_timeout_and_skips_the_snapshot() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let hooks = HookScript::new(&wd);
    let keys = hooks
        .keys()
        .replace("hook_timeout = \"20s\"", "hook_timeout = \"1s\"");
    let cfg = wd.write_qc_config(&sim, &policy("0 0 * * * *", &keys));
    hooks.hold("pre"); // never released: the pre hook hangs
    let started = Instant::now();
    let out = wd.run(&cfg, &["snapshot", "--policy", "db"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert_eq!(sim.creates_for(VOLUME), 0);
    let runs = wd.state().runs_for("db", VOLUME, 10).expect("runs");
    assert_eq!(runs[0].state, RunState::Failed, "{runs:?}");
    let error = runs[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("ran past its hook_timeout (1s) and was killed")
            && error.contains("no snapshot taken"),
        "{error}"
    );
    let lines = hooks.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with("post pre_failed "), "{lines:?}");
}

/// `check` refuses a hook that is not an executable file.
#[test]
fn check_refuses_a_hook_that_cannot_run() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let plain = wd.dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    let keys = format!("pre_snapshot = [\"{}\"]", plain.display());
    let cfg = wd.write_qc_config(&sim, &policy("0 0 * * * *", &keys));
    let out = wd.run(&cfg, &["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("is not executable"),
        "{}",
        output_text(&out)
    );
}
