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
    // No alert for the window's slots (the run after the window may
    // still overlap the next regular slot, which is alerted as ever).
    let alerts = wd.alerts();
    let about_window = |a: &serde_json::Value| {
        let text = a["message"].as_str().unwrap_or("");
        a["kind"] == "failure"
            || text.contains("blackout")
            || skipped.iter().any(|r| text.contains(&r.slot.to_rfc3339()))
    };
    assert!(
        !alerts.iter().any(about_window),
        "a blackout is no failure: {alerts:?}"
    );
}

/// `pause` beside a running daemon: within a second no slot of the policy
/// starts; its slots are recorded skipped with who paused it and why (no
/// alert); status, /metrics and systemd's STATUS= show it; `stale` still
/// fires when it outlives `stale_after`; `resume` lifts it, and a pause
/// `--for` a while lifts itself.
#[test]
fn a_pause_is_honoured_within_a_second_and_shown_until_resumed() {
    use std::os::unix::net::UnixDatagram;
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let policy = qc_policy(
        "db",
        &[VOLUME],
        "* * * * * *",
        "retain = 1000\npoll_interval = \"100ms\"\npoll_max_interval = \"200ms\"\ntimeout = \"1m\"\n\
         stale_after = \"3s\"",
    );
    let text = wd
        .with_alert_command(&wd.qingcloud_config(&sim, SECRET, &policy))
        .replace(
            "log_format = \"text\"",
            "log_format = \"text\"\nmetrics_listen = \"127.0.0.1:0\"",
        );
    let cfg = wd.write_config(&text);
    let notify = wd.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("bind notify socket");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .expect("timeout");
    let daemon = Daemon::start_with_env(
        &cfg,
        SECRET,
        &[("NOTIFY_SOCKET", notify.to_str().expect("utf-8"))],
    );
    wait_for("two runs", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOLUME, 100).ok()?;
        (runs
            .iter()
            .filter(|r| r.state == RunState::Succeeded)
            .count()
            >= 2)
            .then_some(())
    });

    let as_ann = |args: &[&str]| {
        let out = run_as_user(&cfg, args, "ann");
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let (_, text) = http_get(&format!("http://{}/metrics", metrics_addr(&daemon)));
    assert_eq!(
        metric_sample(&text, "snapwarden_policy_paused{policy=\"db\"}"),
        Some(0.0),
        "0 before any pause, not absent"
    );
    let said = as_ann(&["pause", "--policy", "db", "--reason", "db migration"]);
    assert!(
        said.contains("paused policy db until resumed, by ann: db migration"),
        "{said}"
    );
    let paused_at = Utc::now();
    let skipped = |after: DateTime<Utc>| {
        wd.try_state()
            .and_then(|s| s.runs_for("db", VOLUME, 100).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.slot > after && r.state == RunState::Skipped)
            .collect::<Vec<_>>()
    };
    wait_for("three slots skipped while paused", MINUTE, || {
        (skipped(paused_at).len() >= 3).then_some(())
    });
    let runs = wd.state().runs_for("db", VOLUME, 100).expect("runs");
    // Honoured within a second: nothing started for a slot after that.
    let late: Vec<_> = runs
        .iter()
        .filter(|r| r.slot > paused_at + chrono::Duration::seconds(1))
        .filter(|r| r.state != RunState::Skipped)
        .collect();
    assert!(late.is_empty(), "started while paused: {late:?}");
    let why = skipped(paused_at)[0].error.clone().unwrap_or_default();
    assert!(
        why.starts_with("skipped: paused since") && why.ends_with("by ann: db migration"),
        "{why}"
    );

    let status = wd.json_ok(
        &["status", "-c", cfg.to_str().expect("utf-8"), "--json"],
        SECRET,
    );
    assert_eq!(status["pauses"][0]["policy"], "db", "{status}");
    assert_eq!(status["pauses"][0]["by"], "ann");
    assert_eq!(status["pauses"][0]["until"], serde_json::Value::Null);
    let metric = || {
        let (_, text) = http_get(&format!("http://{}/metrics", metrics_addr(&daemon)));
        metric_sample(&text, "snapwarden_policy_paused{policy=\"db\"}")
    };
    assert_eq!(metric(), Some(1.0));
    let mut seen = Vec::new();
    wait_for(
        "STATUS= says paused",
        std::time::Duration::from_secs(10),
        || {
            let mut buf = [0u8; 4096];
            if let Ok(n) = sock.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
            seen.iter()
                .any(|m| m.contains("STATUS=") && m.contains("paused: db"))
                .then_some(())
        },
    );

    // A pause that outlives stale_after is still heard about.
    wait_for("a stale alert while paused", MINUTE, || {
        wd.alerts()
            .iter()
            .any(|a| a["kind"] == "stale")
            .then_some(())
    });

    let said = as_ann(&["resume", "--policy", "db"]);
    assert!(said.contains("resumed policy db"), "{said}");
    let resumed_at = Utc::now();
    wait_for("a run after resume", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOLUME, 100).ok()?;
        runs.iter()
            .any(|r| r.slot > resumed_at && r.state == RunState::Succeeded)
            .then_some(())
    });
    wait_for(
        "the gauge back to 0",
        std::time::Duration::from_secs(5),
        || (metric() == Some(0.0)).then_some(()),
    );
    let said = as_ann(&["resume", "--policy", "db"]);
    assert!(said.contains("policy db was not paused"), "{said}");

    // Every policy, for two seconds: lifted by itself.
    as_ann(&["pause", "--for", "2s", "--reason", "short freeze"]);
    let short = Utc::now();
    wait_for("a skipped slot", MINUTE, || {
        (!skipped(short).is_empty()).then_some(())
    });
    let lifted = short + chrono::Duration::seconds(2);
    wait_for("a run after the pause ended", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOLUME, 100).ok()?;
        runs.iter()
            .any(|r| r.slot > lifted && r.state == RunState::Succeeded)
            .then_some(())
    });
    daemon.stop();
    // No failure, and no alert about a paused slot (a regular slot that
    // overlaps a run still in flight is alerted as ever).
    let alerts = wd.alerts();
    assert!(
        !alerts
            .iter()
            .any(|a| a["kind"] == "failure"
                || a["message"].as_str().unwrap_or("").contains("paused")),
        "a pause is no failure: {alerts:?}"
    );
}

/// What the cloud says of sizes reaches the operator: the metric, status
/// (with the monthly estimate from `price_per_gib_month`) and plan give
/// the bytes of the snapshots kept, as the simulator sized them.
#[test]
fn snapshot_sizes_and_cost_reach_metrics_status_and_plan() {
    let (sim, wd) = sim_with_volumes("200ms", &[VOLUME]);
    let policy = qc_policy(
        "db",
        &[VOLUME],
        "* * * * * *",
        "retain = 2\npoll_interval = \"100ms\"\npoll_max_interval = \"200ms\"\ntimeout = \"1m\"",
    );
    let text = wd
        .qingcloud_config(&sim, SECRET, &policy)
        .replace(
            "log_format = \"text\"",
            "log_format = \"text\"\nmetrics_listen = \"127.0.0.1:0\"",
        )
        .replace(
            "requests_per_second = 50",
            "requests_per_second = 50\nprice_per_gib_month = 0.25",
        );
    let cfg = wd.write_config(&text);
    let daemon = Daemon::start(&cfg, SECRET);
    // Three runs: the third prunes to two kept.
    wd.wait_succeeded_runs("db", &[VOLUME], 3);
    // Every snapshot here is full, of the same volume: two kept take
    // twice one's size, after any run.
    let one = sim
        .live_snapshots(VOLUME)
        .iter()
        .find_map(|s| s["size_mb"].as_u64())
        .expect("a size")
        << 20;
    let (_, metrics) = http_get(&format!("http://{}/metrics", metrics_addr(&daemon)));
    assert_eq!(
        metric_sample(
            &metrics,
            &format!("snapwarden_snapshot_bytes{{policy=\"db\",target=\"{VOLUME}\"}}")
        ),
        Some((2 * one) as f64),
        "{metrics}"
    );
    daemon.stop();
    let own: Vec<serde_json::Value> = sim
        .live_snapshots(VOLUME)
        .into_iter()
        .filter(|s| s["manual"] == false)
        .collect();
    assert_eq!(own.len(), 2, "{own:?}");
    let expected: u64 = own
        .iter()
        .map(|s| s["size_mb"].as_u64().expect("a size") << 20)
        .sum();
    assert!(expected > 0);

    let status = wd.json_ok(
        &["status", "-c", cfg.to_str().expect("utf-8"), "--json"],
        SECRET,
    );
    let target = &status["targets"][0];
    assert_eq!(target["bytes_kept"], expected, "{status}");
    let cost = target["monthly_cost_estimate"]
        .as_f64()
        .expect("an estimate");
    let want = expected as f64 / (1u64 << 30) as f64 * 0.25;
    assert!((cost - want).abs() < 1e-9, "{cost} != {want}");

    let plan = wd.json_ok(
        &["plan", "--json", "-c", cfg.to_str().expect("utf-8")],
        SECRET,
    );
    let sized: Vec<u64> = plan[0]["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .filter_map(|s| s["size"].as_u64())
        .collect();
    assert!(sized.len() >= 2, "{plan}");
}

/// `report` against what the ledger holds after a daemon made, pruned and
/// was paused: made, failed and skipped (paused) runs, deletes, the good
/// snapshots kept, and the pause as the longest gap.
#[test]
fn report_counts_what_the_daemon_did() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOLUME]);
    let policy = qc_policy(
        "db",
        &[VOLUME],
        "* * * * * *",
        "retain = 2\npoll_interval = \"100ms\"\npoll_max_interval = \"200ms\"\ntimeout = \"1m\"",
    );
    let cfg = wd.write_config(&wd.qingcloud_config(&sim, SECRET, &policy));
    let cfg_arg = cfg.to_str().expect("utf-8");
    let daemon = Daemon::start(&cfg, SECRET);
    let succeeded = |after: DateTime<Utc>| {
        wd.try_state()
            .and_then(|s| s.runs_for("db", VOLUME, 1000).ok())
            .unwrap_or_default()
            .iter()
            .filter(|r| r.slot > after && r.state == RunState::Succeeded)
            .count()
    };
    let start = Utc::now() - chrono::Duration::seconds(1);
    wait_for("four runs", MINUTE, || {
        (succeeded(start) >= 4).then_some(())
    });
    wd.cmd_ok(&["pause", "-c", cfg_arg, "--reason", "report test"], SECRET);
    let paused = Utc::now();
    wait_for("three paused slots", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOLUME, 1000).ok()?;
        (runs
            .iter()
            .filter(|r| r.slot > paused && r.state == RunState::Skipped)
            .count()
            >= 3)
            .then_some(())
    });
    wd.cmd_ok(&["resume", "-c", cfg_arg], SECRET);
    let resumed = Utc::now();
    wait_for("two runs after resume", MINUTE, || {
        (succeeded(resumed) >= 2).then_some(())
    });
    daemon.stop();

    let report = wd.json_ok(
        &["report", "-c", cfg_arg, "--since", "1h", "--json"],
        SECRET,
    );
    let t = &report["targets"][0];
    assert_eq!(t["policy"], "db", "{report}");
    assert_eq!(t["target"], VOLUME);
    let state = wd.state();
    let runs = state.runs_for("db", VOLUME, 1000).expect("runs");
    let count = |st: RunState| runs.iter().filter(|r| r.state == st).count() as u64;
    assert_eq!(t["made"], count(RunState::Succeeded), "{report}");
    assert_eq!(t["failed"], 0);
    let paused_runs = runs
        .iter()
        .filter(|r| r.state == RunState::Skipped)
        .filter(|r| {
            r.error
                .as_deref()
                .unwrap_or("")
                .starts_with("skipped: paused")
        })
        .count() as u64;
    assert_eq!(t["skipped"]["paused"], paused_runs, "{report}");
    assert!(t["skipped"]["paused"].as_u64() >= Some(3));
    let due = t["due"].as_u64().expect("due");
    assert!(due >= t["made"].as_u64().expect("made") + 3, "{report}");
    let snaps = state.all_snapshots().expect("snapshots");
    let deleted = snaps.iter().filter(|s| s.deleted_at.is_some()).count() as u64;
    assert!(deleted >= 4, "retain 2 of at least 6: {snaps:?}");
    assert_eq!(t["deleted"], deleted, "{report}");
    let kept: Vec<DateTime<Utc>> = snaps
        .iter()
        .filter(|s| s.state == snapwarden::state::LedgerState::Available)
        .map(|s| s.created_at)
        .collect();
    let time =
        |t: Option<&DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    assert_eq!(
        t["newest_good"].as_str(),
        time(kept.iter().max()).as_deref()
    );
    assert_eq!(
        t["oldest_good"].as_str(),
        time(kept.iter().min()).as_deref()
    );
    // The pause (three slots or more) is the longest stretch without a
    // good snapshot; the every-second runs around it are closer.
    let gap = &t["longest_gap"];
    assert!(gap["seconds"].as_i64() >= Some(3), "{report}");
    let from = DateTime::parse_from_rfc3339(gap["from"].as_str().expect("from")).expect("time");
    assert!(from <= paused + chrono::Duration::seconds(1), "{report}");

    let text = wd.cmd_ok(&["report", "-c", cfg_arg], SECRET);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("db/{VOLUME} on qc")), "{text}");
    assert!(text.contains("skipped by reason: paused"), "{text}");
    let wrong = wd.cmd(&["report", "-c", cfg_arg, "--policy", "nope"], SECRET);
    assert_eq!(wrong.status.code(), Some(2), "{}", output_text(&wrong));
    assert!(output_text(&wrong).contains("no policy named \"nope\""));
}

/// A held snapshot outlives retention and counts towards no rule; it is
/// marked on the cloud, shown by plan, status and history; `release`
/// hands it back to retention. `snapshot --keep-for` holds what it makes.
#[test]
fn a_held_snapshot_is_kept_outside_retention_until_released() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOLUME]);
    let policy = qc_policy(
        "db",
        &[VOLUME],
        "* * * * * *",
        "retain = 2\npoll_interval = \"100ms\"\npoll_max_interval = \"200ms\"\ntimeout = \"1m\"",
    );
    let text = wd.qingcloud_config(&sim, SECRET, &policy);
    let cfg = wd.write_config(&text);
    let cfg_arg = cfg.to_str().expect("utf-8");
    // The same policy never due, for the one-shot runs.
    let once = wd.dir.path().join("once.toml");
    std::fs::write(&once, text.replace("\"* * * * * *\"", "\"0 0 0 1 1 *\"")).expect("write");
    let as_ann = |args: &[&str]| run_as_user(&once, args, "ann");
    let own_live = || -> Vec<serde_json::Value> {
        sim.live_snapshots(VOLUME)
            .into_iter()
            .filter(|s| s["manual"] == false)
            .collect()
    };
    // Two runs now, in two seconds (an on-demand run's slot is its second).
    for _ in 0..2 {
        let out = as_ann(&["snapshot", "--policy", "db"]);
        assert!(out.status.success(), "{}", output_text(&out));
        std::thread::sleep(std::time::Duration::from_millis(1010));
    }
    assert_eq!(own_live().len(), 2);
    let oldest = own_live()
        .into_iter()
        .min_by_key(|s| s["create_time"].as_str().unwrap_or_default().to_string())
        .expect("a snapshot");
    let held = oldest["snapshot_id"].as_str().expect("id").to_string();

    // A typo protects nothing: it is refused.
    let typo = as_ann(&[
        "hold",
        "--policy",
        "db",
        "--target",
        VOLUME,
        "--snapshot",
        "ss-nope",
        "--reason",
        "x",
    ]);
    assert_eq!(typo.status.code(), Some(2), "{}", output_text(&typo));
    assert!(output_text(&typo).contains("has no snapshot \"ss-nope\""));

    let out = as_ann(&[
        "hold",
        "--policy",
        "db",
        "--target",
        VOLUME,
        "--snapshot",
        &held,
        "--for",
        "30d",
        "--reason",
        "legal case 7",
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let said = output_text(&out);
    assert!(said.contains("by ann, because legal case 7"), "{said}");
    assert!(
        said.contains("marked 1 of 1 snapshot(s) on the cloud (description)"),
        "{said}"
    );
    let marked = |id: &str| {
        sim.snapshots()
            .into_iter()
            .find(|s| s["snapshot_id"] == id)
            .map(|s| s["description"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(
        marked(&held).contains("snapwarden hold until"),
        "{}",
        marked(&held)
    );
    assert!(marked(&held).contains("legal case 7"));

    // An on-demand snapshot held for two weeks.
    let out = as_ann(&["snapshot", "--policy", "db", "--keep-for", "14d"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let state = wd.state();
    let holds = state.holds(Utc::now()).expect("holds");
    assert_eq!(holds.len(), 2, "{holds:?}");
    let on_demand = holds
        .iter()
        .find(|h| h.snapshot_id.as_deref() != Some(held.as_str()))
        .expect("the on-demand hold");
    assert!(on_demand.reason.starts_with("on demand"), "{on_demand:?}");
    assert_eq!(on_demand.by, "ann");
    let until = on_demand.until.expect("an end");
    assert!(
        (until - Utc::now() - chrono::Duration::days(14))
            .num_seconds()
            .abs()
            < 60
    );
    let kept_on_demand = on_demand.snapshot_id.clone().expect("an id");

    // Many runs later, with retain = 2: both held ones are still there,
    // and two more that retention keeps.
    let daemon = Daemon::start(&cfg, SECRET);
    let deletes_before = sim.requests("DeleteSnapshots").len();
    wait_for("retention at work", MINUTE, || {
        (sim.requests("DeleteSnapshots").len() >= deletes_before + 4).then_some(())
    });
    daemon.stop();
    let live: Vec<String> = own_live()
        .iter()
        .map(|s| s["snapshot_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(live.contains(&held), "{live:?}");
    assert!(live.contains(&kept_on_demand), "{live:?}");
    // Two held, two by retain, and perhaps the one of a run the stop
    // interrupted before its prune.
    assert!(
        (4..=5).contains(&live.len()),
        "two held, two by retain: {live:?}"
    );
    let named = |id: &str| {
        sim.requests("DeleteSnapshots")
            .iter()
            .any(|r| r["params"]["snapshots.1"] == id)
    };
    assert!(
        !named(&held) && !named(&kept_on_demand),
        "a delete named a held snapshot"
    );

    let plan = wd.json_ok(&["plan", "--json", "-c", cfg_arg], SECRET);
    let why = plan[0]["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .find(|s| s["id"] == held.as_str())
        .map(|s| s["reasons"].to_string())
        .unwrap_or_default();
    assert!(
        why.contains("held until") && why.contains("by ann, because legal case 7"),
        "{plan}"
    );
    let status = wd.json_ok(&["status", "-c", cfg_arg, "--json"], SECRET);
    assert_eq!(
        status["holds"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    assert_eq!(status["holds"][0]["by"], "ann");

    let out = as_ann(&[
        "release",
        "--policy",
        "db",
        "--target",
        VOLUME,
        "--snapshot",
        &held,
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("released snapshot"),
        "{}",
        output_text(&out)
    );
    assert!(
        !marked(&held).contains("hold"),
        "unmarked: {}",
        marked(&held)
    );
    // Back under retention: the next run's prune deletes it.
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("the released one deleted", MINUTE, || {
        named(&held).then_some(())
    });
    daemon.stop();

    let history = wd.json_ok(&["history", "-c", cfg_arg, "--json"], SECRET);
    let entries = history.as_array().expect("entries");
    let by_ann = |action: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["actor"] == "ann" && e["snapshot"] == held.as_str())
    };
    assert!(by_ann("hold") && by_ann("release"), "{history}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "hold" && e["snapshot"] == kept_on_demand.as_str()),
        "{history}"
    );
}
