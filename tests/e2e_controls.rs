//! Operator controls end to end, the real daemon against the simulator:
//! blackout windows (and, with them, what the ledger and the alerts say
//! about the slots they skip).

mod util;

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use snapwarden::domain::slot_label;
use snapwarden::state::RunState;
use util::*;

const VOLUME: &str = "vol-ctrl0001";

/// Slots every even second; a window of three seconds from an even second
/// a few seconds ahead, so its end (odd) is no slot of the schedule:
/// both slots inside are recorded skipped (not failed, no alert), nothing
/// named after them is created, and with `catch_up` one run follows the
/// window at its end.
#[test]
fn slots_in_a_blackout_window_are_skipped_and_one_run_follows_it() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let mut start = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(4);
    if start.second() % 2 == 1 {
        start += chrono::Duration::seconds(1);
    }
    let end = start + chrono::Duration::seconds(3);
    let window = format!(
        "daily {}-{}",
        start.format("%H:%M:%S"),
        end.format("%H:%M:%S")
    );
    let policy = qc_policy(
        "db",
        &[VOLUME],
        "*/2 * * * * *",
        &format!(
            "timezone = \"UTC\"\nretain = 1000\ncatch_up = true\npoll_interval = \"100ms\"\n\
             poll_max_interval = \"200ms\"\ntimeout = \"1m\"\nblackout = [\"{window}\"]"
        ),
    );
    let cfg = wd.write_config(&wd.with_alert_command(&wd.qingcloud_config(&sim, SECRET, &policy)));
    let daemon = Daemon::start(&cfg, SECRET);
    // The run after the window, and the next regular one.
    wait_for("runs after the window", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOLUME, 50).ok()?;
        let after = runs
            .iter()
            .filter(|r| r.slot > end && r.state == RunState::Succeeded)
            .count();
        (after >= 1).then_some(())
    });
    daemon.stop();

    let runs = wd.state().runs_for("db", VOLUME, 50).expect("runs");
    let inside = |t: DateTime<Utc>| start <= t && t < end;
    let skipped: Vec<_> = runs.iter().filter(|r| inside(r.slot)).collect();
    assert_eq!(skipped.len(), 2, "the two slots of the window: {runs:?}");
    for r in &skipped {
        assert_eq!(r.state, RunState::Skipped, "{r:?}");
        let why = r.error.clone().unwrap_or_default();
        assert!(why.contains("blackout window until"), "{why}");
    }
    let follow_up: Vec<_> = runs.iter().filter(|r| r.slot == end).collect();
    assert_eq!(follow_up.len(), 1, "one run at the window's end: {runs:?}");
    assert_eq!(follow_up[0].state, RunState::Succeeded);

    // Nothing named after a slot of the window reached the cloud.
    let labels: Vec<String> = skipped.iter().map(|r| slot_label(r.slot)).collect();
    for create in sim.requests("CreateSnapshots") {
        let name = create["params"]["snapshot_name"].as_str().unwrap_or("");
        assert!(
            !labels.iter().any(|l| name.contains(l.as_str())),
            "{name} was created inside the window"
        );
    }
    let alerts = wd.alerts();
    assert!(
        alerts
            .iter()
            .all(|a| a["event"] != "failure" && a["event"] != "slot_skipped"),
        "a blackout is no failure: {alerts:?}"
    );
}
