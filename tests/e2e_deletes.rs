//! Deletes beyond what the operator confirmed, and one-shot commands that
//! decide on a stale ledger (`prune` right after the daemon stops). The
//! real binary against the simulator's QingCloud dialect on loopback.
//!
//! - a reload's deletion hold covers a selector policy's targets, and a
//!   restart with an edited file is held like a SIGHUP;
//! - `orphans --delete --yes` never deletes a snapshot another policy's
//!   snapshots depend on (QingCloud cascades a delete into descendants);
//! - `prune` settles the operations the ledger still has in flight by
//!   asking the cloud before it decides.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use util::*;

const VOL: &str = "vol-aaaa0001";

/// A QingCloud config with `policies` (`[[policy]]` bodies) and alerts
/// appended as JSON lines to `alerts.jsonl` in the workdir.
fn write_config(wd: &Workdir, sim: &Sim, policies: &[String]) -> PathBuf {
    let text =
        wd.with_alert_command(&wd.qingcloud_config(sim, SECRET, &policies.join("\n[[policy]]\n")));
    wd.write_config(&text)
}

/// Policy `db` every 2 s keeping `retain`, at most 5 deletes a run; on
/// `VOL` by name, or through a selector on the volume's tag.
fn db_policy(selector: bool, retain: u32) -> String {
    let which = if selector {
        "select = { tags = { backup = \"daily\" } }".to_string()
    } else {
        format!("targets = [\"{VOL}\"]")
    };
    format!(
        r#"name = "db"
provider = "qc"
resource = "volume"
{which}
schedule = "*/2 * * * * *"
poll_interval = "100ms"
poll_max_interval = "200ms"
timeout = "3s"
retain = {retain}
max_deletes_per_run = 5
"#
    )
}

/// After the rules went from retain 20 to retain 2 over 12 own snapshots:
/// the hold is logged with the plan diff and alerted, snapshots are still
/// made, nothing is deleted until `prune --policy db --yes`, which then
/// deletes what retention wants and lifts the hold.
fn expect_held_until_prune_yes(sim: &Sim, wd: &Workdir, cfg: &Path, daemon: Daemon) {
    daemon.wait_deletions_held(10, "the plan diff is logged");
    wait_for("a deletes_held alert", Duration::from_secs(10), || {
        wd.alerts()
            .into_iter()
            .find(|a| a["kind"] == "deletes_held")
    });
    let creates = sim.creates_for(VOL);
    wait_for("two more creates under the hold", MINUTE, || {
        (sim.creates_for(VOL) >= creates + 2).then_some(())
    });
    assert!(sim.deleted_ids().is_empty(), "no delete while held");
    assert_eq!(wd.state().delete_holds().expect("holds").len(), 1);

    // The confirmation writes the ledger: not next to the running daemon
    // (one ledger, one writer), but once it is stopped.
    let out = wd.run(cfg, &["prune", "--policy", "db", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    // A snapshot the stopped daemon left in flight may still be creating
    // on the cloud: nothing is pruned until it is good, so try again.
    wait_for("prune --yes to succeed", MINUTE, || {
        let out = wd.run(cfg, &["prune", "--policy", "db", "--yes"]);
        out.status.success().then_some(())
    });
    let after_confirm = sim.deleted_ids().len();
    assert!(after_confirm >= 11, "{after_confirm}");
    assert!(wd.state().delete_holds().expect("holds").is_empty());
}

/// A selector policy's targets are held on a reload like explicit
/// ones (they were never looked at: `p.targets` is empty).
#[test]
fn sighup_hold_covers_the_targets_a_selector_picked() {
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    sim.post(
        "/_sim/qingcloud/volumes",
        json!({"zone": ZONE, "volume_id": VOL, "volume_name": "db-1", "tags": {"backup": "daily"}}),
    );
    seed_days(&sim, &wd, "db", VOL, 12);
    let cfg = write_config(&wd, &sim, &[db_policy(true, 20)]);
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("a first create", MINUTE, || {
        (sim.creates_for(VOL) >= 1).then_some(())
    });
    write_config(&wd, &sim, &[db_policy(true, 2)]);
    daemon.signal("HUP");
    expect_held_until_prune_yes(&sim, &wd, &cfg, daemon);
}

/// A restart with an edited file is held like a SIGHUP: the ledger
/// remembers the rules the daemon last ran with.
#[test]
fn restart_with_an_edited_file_holds_until_prune_yes() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    seed_days(&sim, &wd, "db", VOL, 12);
    let cfg = write_config(&wd, &sim, &[db_policy(false, 20)]);
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("a first create", MINUTE, || {
        (sim.creates_for(VOL) >= 1).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));

    write_config(&wd, &sim, &[db_policy(false, 2)]);
    let daemon = Daemon::start(&cfg, SECRET);
    expect_held_until_prune_yes(&sim, &wd, &cfg, daemon);

    // Started again with the same file: nothing new to hold.
    let daemon = Daemon::start(&cfg, SECRET);
    let creates = sim.creates_for(VOL);
    wait_for("a create after the restart", MINUTE, || {
        (sim.creates_for(VOL) > creates).then_some(())
    });
    assert!(wd.state().delete_holds().expect("holds").is_empty());
    assert_eq!(daemon.log.count("deletions held until"), 0);
}

/// A one-shot policy on `VOL`, run with `snapshot --policy NAME`.
fn chain_policy(name: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
provider = "qc"
resource = "volume"
targets = ["{VOL}"]
schedule = "0 30 2 * * *"
poll_interval = "100ms"
poll_max_interval = "200ms"
timeout = "10s"
retain = 10
{extra}
"#
    )
}

fn snapshot_ok(wd: &Workdir, cfg: &Path, policy: &str) {
    let out = wd.run(cfg, &["snapshot", "--policy", policy]);
    assert!(out.status.success(), "{}", output_text(&out));
    std::thread::sleep(Duration::from_millis(1100));
}

/// Policies a and b share a volume and b makes increments, which on
/// QingCloud chain onto the volume's newest snapshot whoever made it.
/// With a removed from the file, `orphans --delete --yes` must not delete
/// a's snapshot: the cloud would take b's increments with it.
#[test]
fn orphans_delete_never_cascades_into_another_policys_chain() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    let both = [chain_policy("a", ""), chain_policy("b", "full_every = 3")];
    let cfg = write_config(&wd, &sim, &both);
    snapshot_ok(&wd, &cfg, "b");
    snapshot_ok(&wd, &cfg, "a");
    snapshot_ok(&wd, &cfg, "b");
    snapshot_ok(&wd, &cfg, "b");
    let rows = wd.state().all_snapshots().expect("ledger");
    let ids = |policy: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r.policy == policy)
            .map(|r| r.snapshot_id.clone())
            .collect()
    };
    let (a, b) = (ids("a"), ids("b"));
    assert_eq!((a.len(), b.len()), (1, 3));
    let on_sim = sim.snapshots();
    let parent = |id: &str| {
        on_sim
            .iter()
            .find(|s| s["snapshot_id"] == id)
            .map(|s| s["parent_id"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(parent(&b[1]), json!(a[0]), "b's increment chains onto a's");
    assert_eq!(parent(&b[2]), json!(b[1]));

    // a is removed from the file; its snapshot is an orphan.
    let cfg = write_config(&wd, &sim, &both[1..]);
    let out = wd.run(&cfg, &["orphans"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains(&a[0]), "{}", output_text(&out));
    let out = wd.run(&cfg, &["orphans", "--delete", "--yes"]);
    assert!(
        output_text(&out).contains("depend"),
        "says why it is kept: {}",
        output_text(&out)
    );
    assert!(
        !sim.deleted_ids().contains(&a[0]),
        "a's snapshot that b depends on is never deleted"
    );
    let live = sim.live_ids(VOL);
    for id in a.iter().chain(&b) {
        assert!(live.contains(id), "{id} must stay: {live:?}");
    }
    let rows = wd.state().all_snapshots().expect("ledger");
    assert!(rows
        .iter()
        .all(|r| r.state == snapwarden::state::LedgerState::Available));
}

/// `orphans --delete --yes` deletes a removed policy's chain newest
/// first and stops at the first delete that fails: the snapshots the failed
/// one depends on are not deleted (the increment would lose its parent).
#[test]
fn orphans_delete_stops_a_chain_at_the_first_failed_delete() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    let both = [
        chain_policy("keep", ""),
        chain_policy("c", "full_every = 3"),
    ];
    let cfg = write_config(&wd, &sim, &both);
    for _ in 0..3 {
        snapshot_ok(&wd, &cfg, "c");
    }
    let chain: Vec<String> = wd
        .state()
        .all_snapshots()
        .expect("ledger")
        .iter()
        .filter(|r| r.policy == "c")
        .map(|r| r.snapshot_id.clone())
        .collect();
    assert_eq!(chain.len(), 3);
    let cfg = write_config(&wd, &sim, &both[..1]);
    sim.fault(json!({"dialect": "qingcloud", "action": "DeleteSnapshots", "fault": "fail_job", "count": 1}));
    let out = wd.run(&cfg, &["orphans", "--delete", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        sim.deleted_ids(),
        vec![chain[2].clone()],
        "only the newest increment was tried: {}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains("the chain stops here"),
        "{}",
        output_text(&out)
    );
    let live = sim.live_ids(VOL);
    for id in &chain {
        assert!(live.contains(id), "{id} must stay: {live:?}");
    }

    // Once the cloud deletes again, the chain goes, newest first.
    let out = wd.run(&cfg, &["orphans", "--delete", "--yes"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let tried = sim.deleted_ids();
    assert_eq!(
        tried[1..],
        [chain[2].clone(), chain[1].clone(), chain[0].clone()],
        "{}",
        output_text(&out)
    );
    assert!(sim.live_ids(VOL).is_empty());
}

/// The budget caps `orphans --delete --yes` (the daemon's
/// `max_deletes_per_run`, or `--max-deletes N`); chains go dependants
/// first.
#[test]
fn orphans_delete_keeps_to_a_budget() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    let own = seed_days(&sim, &wd, "gone", VOL, 4);
    let cfg = write_config(
        &wd,
        &sim,
        &[chain_policy("b", "").replace("retain = 10", "retain = 10\nmax_deletes_per_run = 2")],
    );
    let text_cfg = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text_cfg.replace(
            "log_format = \"text\"",
            "log_format = \"text\"\nmax_deletes_per_run = 3",
        ),
    )
    .expect("config");
    let out = wd.run(&cfg, &["orphans", "--delete", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--max-deletes"),
        "{}",
        output_text(&out)
    );
    assert_eq!(
        sim.deleted_ids().len(),
        3,
        "the daemon's max_deletes_per_run"
    );
    let out = wd.run(
        &cfg,
        &["orphans", "--delete", "--yes", "--max-deletes", "5"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let mut gone = sim.deleted_ids();
    gone.sort();
    let mut all = own.clone();
    all.sort();
    assert_eq!(gone, all);
}

/// Start the daemon on `db` (retain 2 over 4 seeded), stop it while its
/// first snapshot job still runs (4 s), then let the cloud finish it.
/// Returns the config and the seeded ids.
fn stop_with_a_create_in_flight(sim: &Sim, wd: &Workdir) -> (PathBuf, Vec<String>) {
    sim.volume(VOL);
    let seeded = seed_days(sim, wd, "db", VOL, 4);
    let policy = db_policy(false, 2).replace("timeout = \"3s\"", "timeout = \"60s\"");
    let cfg = write_config(wd, sim, &[policy]);
    sim.post("/_sim/settings", json!({"job_duration_ms": 4000}));
    let daemon = Daemon::start(&cfg, SECRET);
    wait_for("a create", MINUTE, || {
        (sim.creates_for(VOL) >= 1).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    assert!(
        wd.state().ops_in_flight().expect("ops").len() == 1,
        "the create is still in flight in the ledger"
    );
    sim.post("/_sim/settings", json!({"job_duration_ms": 100}));
    wait_for("the cloud to finish the snapshot", MINUTE, || {
        sim.live_snapshots(VOL)
            .iter()
            .all(|s| s["status"] == "available")
            .then_some(())
    });
    (cfg, seeded)
}

/// The daemon stops (SIGTERM) while a snapshot job is still running; the
/// cloud finishes it a moment later. `prune` asks the cloud about the
/// operations the ledger still has in flight before it decides, so it
/// prunes rather than refusing ("still in progress").
#[test]
fn prune_right_after_the_daemon_stops_settles_in_flight_snapshots() {
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    let (cfg, seeded) = stop_with_a_create_in_flight(&sim, &wd);
    let out = wd.run(&cfg, &["prune", "--policy", "db"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        !output_text(&out).contains("still in progress"),
        "{}",
        output_text(&out)
    );
    let gone = sim.deleted_ids();
    assert_eq!(gone.len(), 3, "4 seeded + 1 new, retain 2: {gone:?}");
    assert!(gone.iter().all(|g| seeded.contains(g)));
    assert!(wd.state().ops_in_flight().expect("ops").is_empty());
}

/// The same for the commands that only show: `plan` shows the finished
/// snapshot as the newest good one, not "in progress", and `status` shows
/// nothing in flight.
#[test]
fn plan_and_status_right_after_the_daemon_stops_settle_too() {
    let (sim, wd) = sim_with_volumes("100ms", &[]);
    let (cfg, _) = stop_with_a_create_in_flight(&sim, &wd);
    let newest = wd
        .state()
        .ops_in_flight()
        .expect("ops")
        .first()
        .map(|o| o.snapshot_id.clone())
        .expect("in flight");
    let out = wd.run(&cfg, &["plan", "--json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    let doc: Value = serde_json::from_str(&plan).expect("plan json");
    let entry = doc
        .as_array()
        .and_then(|a| {
            a.iter().find_map(|p| {
                p["snapshots"]
                    .as_array()?
                    .iter()
                    .find(|s| s.to_string().contains(newest.as_str()))
                    .cloned()
            })
        })
        .unwrap_or_else(|| panic!("{newest} in the plan: {plan}"));
    assert!(!entry.to_string().contains("in progress"), "{entry}");
    assert!(wd.state().ops_in_flight().expect("ops").is_empty());

    let (sim2, wd2) = (Sim::start("100ms"), Workdir::new());
    let (cfg2, _) = stop_with_a_create_in_flight(&sim2, &wd2);
    let out = wd2.run(&cfg2, &["status", "--json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("status json");
    let targets = doc["targets"].as_array().expect("targets");
    assert!(
        targets
            .iter()
            .all(|t| t["in_flight"].as_array().is_some_and(|a| a.is_empty())),
        "{doc}"
    );
}
