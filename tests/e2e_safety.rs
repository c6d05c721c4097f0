//! Safety of deletion end to end: the per-run deletion budget,
//! the deletion guards, `orphans`, an unwritable ledger, and the hold a
//! reload places when it would delete more than the budget. The
//! real binary against the simulator's QingCloud dialect on loopback.

mod util;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{Duration as D, Utc};
use serde_json::{json, Value};
use snapwarden::state::{PollPlan, RunState, SqliteLedger};
use util::*;

const VOL: &str = "vol-aaaa0001";

/// A policy body for `db` on the given volumes.
fn policy(name: &str, targets: &[&str], schedule: &str, extra: &str) -> String {
    let rest = format!(
        "poll_interval = \"100ms\"\npoll_max_interval = \"200ms\"\ntimeout = \"3s\"\n{extra}"
    );
    qc_policy(name, targets, schedule, &rest)
}

/// A QingCloud config with `policies` (one or more `[[policy]]` bodies,
/// joined), `[daemon]` extras, and alerts appended as JSON lines to
/// `alerts.jsonl` in the workdir.
fn write_config(wd: &Workdir, sim: &Sim, daemon_extra: &str, policies: &[String]) -> PathBuf {
    let text = wd
        .with_alert_command(&wd.qingcloud_config(sim, SECRET, &policies.join("\n[[policy]]\n")))
        .replace(
            "log_format = \"text\"",
            &format!("log_format = \"text\"\n{daemon_extra}"),
        );
    wd.write_config(&text)
}

/// `prune --policy db --yes`, which must exit `code`: what it printed.
fn prune_yes(wd: &Workdir, cfg: &std::path::Path, code: i32) -> String {
    let out = wd.run(cfg, &["prune", "--policy", "db", "--yes"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    text
}

// ------------------------------------------------------------ 1. budget

/// 15 own snapshots and retain = 2: the scheduled run creates one and
/// deletes only `max_deletes_per_run` = 5 (retention's order), stops,
/// counts it, alerts `deletes_held` and notes it on the run. `prune`
/// honours the budget too (exit 1, saying how to go on), `--dry-run` shows
/// what is held, and `prune --policy db --yes` deletes the rest. The
/// manual snapshot is never touched.
#[test]
fn deletion_budget_stops_pruning_alerts_and_prune_yes_finishes() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    let manual = sim.manual_snapshot(VOL, "before-upgrade");
    let seeded = seed_days(&sim, &wd, "db", VOL, 15);
    let cfg = write_config(
        &wd,
        &sim,
        "metrics_listen = \"127.0.0.1:0\"",
        &[policy(
            "db",
            &[VOL],
            &seconds_from_now(&[5]),
            "retain = 2\nmax_deletes_per_run = 5",
        )],
    );

    let daemon = Daemon::start(&cfg, SECRET);
    let base = format!("http://{}", metrics_addr(&daemon));
    // Under load the daemon may start after the slot: the next one is a
    // minute later.
    let alert = wait_for(
        "a deletes_held alert",
        2 * MINUTE + Duration::from_secs(10),
        || {
            wd.alerts()
                .into_iter()
                .find(|a| a["kind"] == "deletes_held")
        },
    );
    assert_eq!(alert["policy"], "db");
    assert_eq!(alert["target"], VOL);
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_deletes_per_run = 5") && m.contains("--yes")),
        "{alert}"
    );
    assert_eq!(sim.creates_for(VOL), 1);
    let first = sim.deleted_ids();
    assert_eq!(first.len(), 5, "exactly the budget: {first:?}");
    assert!(first.iter().all(|id| seeded.contains(id)));
    let series = r#"snapwarden_prune_budget_exceeded_total{policy="db",target="vol-aaaa0001"}"#;
    wait_for("the budget metric", Duration::from_secs(10), || {
        (metric_sample(&http_get(&format!("{base}/metrics")).1, series)? == 1.0).then_some(())
    });
    let runs = wd.state().runs_for("db", VOL, 5).expect("runs");
    assert!(
        runs[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("held back")),
        "{runs:?}"
    );
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));

    // 11 own left, retain 2: 9 to delete, 5 allowed, 4 held.
    let out = wd.run(&cfg, &["prune", "--dry-run"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("WOULD DELETE").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("  HELD").count(), 4, "{stdout}");

    let out = wd.run(&cfg, &["prune"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("prune --policy db --yes"),
        "{}",
        output_text(&out)
    );
    assert_eq!(sim.deleted_ids().len(), 10);

    let out = wd.run(&cfg, &["prune", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "--yes needs --policy");
    prune_yes(&wd, &cfg, 0);
    assert_eq!(sim.deleted_ids().len(), 14);
    let live = sim.live_ids(VOL);
    assert_eq!(live.len(), 3, "retain 2 and the manual one: {live:?}");
    assert!(live.contains(&manual));
}

// ------------------------------------------------------------ 2. guards

/// Snapshots with exactly our names that the ledger does not know (made by
/// hand, or by another installation) are never deleted, even by
/// `prune --yes` with retain = 1; only the ledger's own go.
#[test]
fn look_alikes_not_in_the_ledger_are_never_deleted() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    let own = seed_days(&sim, &wd, "db", VOL, 3);
    let look_alikes: Vec<String> = (0..3)
        .map(|d| {
            let t = Utc::now() - D::days(30 + d);
            sim.manual_snapshot(VOL, &format!("db-{VOL}-{}", t.format("%Y%m%dT%H%M%SZ")))
        })
        .collect();
    let cfg = write_config(
        &wd,
        &sim,
        "",
        &[policy("db", &[VOL], "0 30 2 * * *", "retain = 1")],
    );
    prune_yes(&wd, &cfg, 0);
    let mut gone = sim.deleted_ids();
    gone.sort();
    let mut expected = own[..2].to_vec();
    expected.sort();
    assert_eq!(gone, expected, "only the two older own snapshots");
    let live = sim.live_ids(VOL);
    for id in &look_alikes {
        assert!(live.contains(id), "look-alike {id} deleted");
    }
}

/// `days` own snapshots of `db` on VOL, one a day, and a policy file with
/// `db` nightly at 02:30 keeping `retain = 1`.
fn seeded_retain_one(days: i64) -> (Sim, Workdir, PathBuf) {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    seed_days(&sim, &wd, "db", VOL, days);
    let cfg = write_config(
        &wd,
        &sim,
        "",
        &[policy("db", &[VOL], "0 30 2 * * *", "retain = 1")],
    );
    (sim, wd, cfg)
}

/// While the newest own snapshot is not good (still in progress in the
/// ledger, or failed), nothing is pruned, not even with `--yes`; the
/// command says why.
#[test]
fn nothing_is_pruned_while_the_newest_own_snapshot_is_not_good() {
    let (sim, wd, cfg) = seeded_retain_one(4);
    // The newest own snapshot never finishes on the cloud: its run times
    // out (3 s) and the snapshot stays pending there.
    sim.fault(json!({"dialect": "qingcloud", "action": "CreateSnapshots",
                     "fault": "never_finish", "count": 1}));
    let out = wd.run(&cfg, &["snapshot", "--policy", "db"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    let text = prune_yes(&wd, &cfg, 1);
    // `prune` asks the cloud about what is in flight first; the snapshot
    // is still pending there and failed in the ledger: not good either way.
    assert!(
        text.contains("nothing is pruned until a newer one is good"),
        "{text}"
    );
    assert!(sim.deleted_ids().is_empty());
    assert_eq!(sim.live_ids(VOL).len(), 5);
}

/// A listing that fails (5xx until the policy's timeout) or looks
/// incomplete (`total_count` larger than the items returned) stops pruning
/// of the target: no delete is sent. Once the listing is whole again,
/// pruning proceeds.
#[test]
fn a_failed_or_incomplete_listing_stops_pruning() {
    let (sim, wd, cfg) = seeded_retain_one(5);

    sim.fault(
        json!({"dialect": "qingcloud", "action": "DescribeSnapshots", "fault": "server_error"}),
    );
    let text = prune_yes(&wd, &cfg, 1);
    assert!(sim.deleted_ids().is_empty(), "{text}");

    clear_faults(&sim);
    sim.fault(
        json!({"dialect": "qingcloud", "action": "DescribeSnapshots", "fault": "incomplete"}),
    );
    let text = prune_yes(&wd, &cfg, 1);
    assert!(text.contains("listing incomplete"), "{text}");
    assert!(sim.deleted_ids().is_empty());
    assert!(
        sim.requests("DescribeSnapshots")
            .iter()
            .any(|r| r["fault"] == "incomplete"),
        "the fault was served"
    );

    clear_faults(&sim);
    prune_yes(&wd, &cfg, 0);
    assert_eq!(sim.deleted_ids().len(), 4);
}

fn clear_faults(sim: &Sim) {
    let r = reqwest::blocking::Client::new()
        .delete(format!("{}/_sim/faults", sim.url))
        .send()
        .expect("clear faults");
    assert!(r.status().is_success());
}

// ------------------------------------------------ 5. unwritable ledger

/// Another process holds the ledger's write lock (`BEGIN EXCLUSIVE`, which
/// also stops root, unlike chmod) across a slot: the simulator sees no
/// create for that slot, `/healthz` turns 503, a `failure` alert names the
/// state database, and the daemon keeps running. Once the lock is released
/// `/healthz` recovers, the next slot creates, and `recovery` is alerted.
#[test]
fn unwritable_ledger_creates_nothing_alerts_and_recovers() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    let cfg = write_config(
        &wd,
        &sim,
        "metrics_listen = \"127.0.0.1:0\"",
        &[policy(
            "db",
            &[VOL],
            &seconds_from_now(&[4, 9, 21]),
            "retain = 5",
        )],
    );
    let mut daemon = Daemon::start(&cfg, SECRET);
    let base = format!("http://{}", metrics_addr(&daemon));
    wait_for("the first run to succeed", MINUTE, || {
        let runs = wd.try_state()?.runs_for("db", VOL, 5).ok()?;
        runs.first()
            .filter(|r| r.state == RunState::Succeeded)
            .map(|_| ())
    });
    assert_eq!(sim.creates_for(VOL), 1);

    let conn = rusqlite::Connection::open(wd.state_path()).expect("open the ledger");
    conn.execute_batch("BEGIN EXCLUSIVE;")
        .expect("take the write lock");
    let requests_before = sim.requests("CreateSnapshots").len();
    daemon.wait_log("cannot record the intent", MINUTE);
    let body = wait_for("/healthz to turn 503", Duration::from_secs(20), || {
        let (code, body) = http_get(&format!("{base}/healthz"));
        (code == 503).then_some(body)
    });
    assert!(body.contains("state database not writable"), "{body}");
    let alert = wait_for("a failure alert", Duration::from_secs(10), || {
        wd.alerts().into_iter().find(|a| a["kind"] == "failure")
    });
    assert!(
        alert["message"].as_str().is_some_and(
            |m| m.contains("cannot record the intent") && m.contains("nothing was created")
        ),
        "{alert}"
    );
    assert_eq!(
        sim.requests("CreateSnapshots").len(),
        requests_before,
        "no create call while the intent cannot be committed"
    );
    let metrics = http_get(&format!("{base}/metrics")).1;
    assert_eq!(
        metric_sample(
            &metrics,
            r#"snapwarden_intents_unrecorded_total{policy="db"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(daemon.is_running());

    conn.execute_batch("ROLLBACK;").expect("release");
    drop(conn);
    wait_for("/healthz to recover", Duration::from_secs(20), || {
        (http_get(&format!("{base}/healthz")).0 == 200).then_some(())
    });
    wait_for("a recovery alert after the next slot", MINUTE, || {
        wd.alerts().into_iter().find(|a| a["kind"] == "recovery")
    });
    assert_eq!(
        sim.creates_for(VOL),
        2,
        "the slot under the lock was not run"
    );
    let runs = wd.state().runs_for("db", VOL, 10).expect("runs");
    assert_eq!(
        runs.len(),
        2,
        "no intent for the slot under the lock: {runs:?}"
    );
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
}

// ------------------------------------------------------------ 3. orphans

/// A policy removed from the configuration leaves its snapshots behind:
/// `orphans` lists them (verified on the cloud: marker and ledger agree),
/// `--delete` alone only says what would go (exit 1), `--delete --yes`
/// deletes them. A delete that failed earlier on a configured target is
/// listed and retried too. Manual snapshots and the configured policy's
/// own snapshots are never touched.
#[test]
fn orphans_lists_and_deletes_only_what_is_ours() {
    const VOL2: &str = "vol-aaaa0002";
    let (sim, wd) = sim_with_volumes("100ms", &[VOL, VOL2]);
    let manual = sim.manual_snapshot(VOL2, "before-upgrade");
    let manual_db = sim.manual_snapshot(VOL, "by-hand");
    let db_own = seed_days(&sim, &wd, "db", VOL, 3);
    let logs_own = seed_days(&sim, &wd, "logs", VOL2, 2);
    // A delete of db's oldest snapshot that failed earlier.
    {
        let state = SqliteLedger::open(&wd.state_path()).expect("ledger");
        let row = state
            .all_snapshots()
            .expect("rows")
            .into_iter()
            .find(|r| r.snapshot_id == db_own[0])
            .expect("seeded row");
        let now = Utc::now();
        let op = state
            .begin_delete(
                row.id,
                "j-failed-delete",
                now,
                PollPlan {
                    first_poll: now,
                    interval: Duration::from_secs(1),
                    deadline: now + D::minutes(5),
                },
            )
            .expect("begin delete");
        state
            .finish_op(op.id, Some("the cloud said no"), now)
            .expect("finish");
    }
    let both = [
        policy("db", &[VOL], "0 30 2 * * *", "retain = 5"),
        policy("logs", &[VOL2], "0 30 2 * * *", "retain = 5"),
    ];
    let cfg = write_config(&wd, &sim, "", &both);
    let out = wd.run(&cfg, &["orphans"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("failed_delete"),
        "{}",
        output_text(&out)
    );

    // `logs` is removed from the configuration.
    let cfg = write_config(&wd, &sim, "", &both[..1]);
    let out = wd.run(&cfg, &["orphans", "--json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("orphans json");
    let list = doc["orphans"].as_array().expect("orphans").clone();
    let mut unconfigured: Vec<String> = list
        .iter()
        .filter(|o| o["kind"] == "unconfigured")
        .map(|o| {
            assert_eq!(o["verified"], "ours", "{o}");
            assert_eq!(o["policy"], "logs");
            o["snapshot_id"].as_str().unwrap_or("").to_string()
        })
        .collect();
    unconfigured.sort();
    let mut expected = logs_own.clone();
    expected.sort();
    assert_eq!(unconfigured, expected);
    assert!(list
        .iter()
        .any(|o| o["kind"] == "failed_delete" && o["snapshot_id"] == db_own[0].as_str()));
    assert_eq!(list.len(), 3, "{list:?}");

    let out = wd.run(&cfg, &["orphans", "--delete"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--delete --yes"),
        "{}",
        output_text(&out)
    );
    assert!(sim.deleted_ids().is_empty());

    let out = wd.run(&cfg, &["orphans", "--delete", "--yes"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let mut gone = sim.deleted_ids();
    gone.sort();
    let mut expected = logs_own.clone();
    expected.push(db_own[0].clone());
    expected.sort();
    assert_eq!(gone, expected);
    let live2 = sim.live_ids(VOL2);
    assert_eq!(
        live2,
        vec![manual.clone()],
        "only the manual snapshot stays"
    );
    let live1 = sim.live_ids(VOL);
    for id in [&manual_db, &db_own[1], &db_own[2]] {
        assert!(live1.contains(id), "{id} must stay");
    }
    // Each delete is in the audit trail, saying which kind of orphan.
    let audit = wd
        .state()
        .audit_log(chrono::DateTime::<Utc>::MIN_UTC, None)
        .expect("audit trail");
    let mut audited: Vec<String> = audit
        .iter()
        .filter(|e| e.action == snapwarden::state::AuditAction::Delete)
        .map(|e| {
            assert!(e.detail.starts_with("orphan ("), "{e:?}");
            e.snapshot.clone().unwrap_or_default()
        })
        .collect();
    audited.sort();
    assert_eq!(audited, expected);

    let out = wd.run(&cfg, &["orphans"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no orphans"),
        "{}",
        output_text(&out)
    );
}

// ------------------------------------------------- 4. SIGHUP delete hold

/// The daemon runs with retain = 20 over 12 own snapshots; the file is
/// rewritten to retain = 2 and SIGHUP'd: that would delete 10 > 5
/// (`max_deletes_per_run`) at once, so deletions are held (logged with the
/// plan diff, alerted, metric 1) while snapshots are still created. Then
/// `prune --policy db --yes` deletes them, lifts the hold, and the daemon
/// prunes normally again.
#[test]
fn sighup_that_would_delete_too_much_holds_until_prune_yes() {
    let (sim, wd) = sim_with_volumes("100ms", &[VOL]);
    seed_days(&sim, &wd, "db", VOL, 12);
    let body = |retain: u32| {
        policy(
            "db",
            &[VOL],
            "*/2 * * * * *",
            &format!("retain = {retain}\nmax_deletes_per_run = 5"),
        )
    };
    let cfg = write_config(&wd, &sim, "metrics_listen = \"127.0.0.1:0\"", &[body(20)]);
    let daemon = Daemon::start(&cfg, SECRET);
    let base = format!("http://{}", metrics_addr(&daemon));
    wait_for("a first create", MINUTE, || {
        (sim.creates_for(VOL) >= 1).then_some(())
    });

    write_config(&wd, &sim, "metrics_listen = \"127.0.0.1:0\"", &[body(2)]);
    daemon.signal("HUP");
    daemon.wait_deletions_held(
        10,
        "the plan diff is logged (12 seeded, retain 2; the one being made is not counted)",
    );
    let alert = wait_for("a deletes_held alert", Duration::from_secs(10), || {
        wd.alerts()
            .into_iter()
            .find(|a| a["kind"] == "deletes_held")
    });
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("prune --policy db --yes")),
        "{alert}"
    );
    let creates = sim.creates_for(VOL);
    wait_for("two more creates under the hold", MINUTE, || {
        (sim.creates_for(VOL) >= creates + 2).then_some(())
    });
    assert!(sim.deleted_ids().is_empty(), "no delete while held");
    let held = r#"snapwarden_deletes_held{policy="db",target="vol-aaaa0001"}"#;
    assert_eq!(
        metric_sample(&http_get(&format!("{base}/metrics")).1, held),
        Some(1.0)
    );
    assert_eq!(wd.state().delete_holds().expect("holds").len(), 1);

    // The operator confirms. Next to the running daemon `prune` refuses
    // (one ledger, one writer): the daemon is stopped first, between two
    // runs (a reload to a schedule that does not fire lets the run in
    // flight finish), and started again afterwards.
    prune_yes(&wd, &cfg, 2);
    let quiet = |retain| {
        policy(
            "db",
            &[VOL],
            "0 0 3 * * *",
            &format!("retain = {retain}\nmax_deletes_per_run = 5"),
        )
    };
    write_config(&wd, &sim, "metrics_listen = \"127.0.0.1:0\"", &[quiet(2)]);
    daemon.signal("HUP");
    wait_for("the runs in flight to end", MINUTE, || {
        let state = wd.try_state()?;
        (state.open_runs().ok()?.is_empty() && state.ops_in_flight_count().ok()? == 0).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    prune_yes(&wd, &cfg, 0);
    let after_confirm = sim.deleted_ids().len();
    assert!(after_confirm >= 11, "{after_confirm}");
    assert!(wd.state().delete_holds().expect("holds").is_empty());
    // The audit trail has the operator's confirmation of what the hold
    // held back, and the deletes it let through, by the same user.
    let audit = wd
        .state()
        .audit_log(chrono::DateTime::<chrono::Utc>::MIN_UTC, Some("db"))
        .expect("audit trail");
    let confirm = audit
        .iter()
        .find(|e| e.action == snapwarden::state::AuditAction::Confirm)
        .unwrap_or_else(|| panic!("no confirm entry: {audit:#?}"));
    assert!(
        confirm.detail.contains("prune --yes") && confirm.detail.contains("deletions held since"),
        "{confirm:?}"
    );
    assert!(!confirm.actor.starts_with("daemon"), "{confirm:?}");
    assert!(
        audit
            .iter()
            .any(|e| e.action == snapwarden::state::AuditAction::Delete
                && e.actor == confirm.actor
                && e.at >= confirm.at),
        "{audit:#?}"
    );

    write_config(&wd, &sim, "metrics_listen = \"127.0.0.1:0\"", &[body(2)]);
    let daemon = Daemon::start(&cfg, SECRET);
    let base = format!("http://{}", metrics_addr(&daemon));
    wait_for("the daemon to prune on its own again", MINUTE, || {
        (sim.deleted_ids().len() > after_confirm).then_some(())
    });
    wait_for("the hold metric back to 0", Duration::from_secs(10), || {
        (metric_sample(&http_get(&format!("{base}/metrics")).1, held)? == 0.0).then_some(())
    });
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    let own_live = sim.live_ids(VOL).len();
    assert!(own_live <= 3, "retain 2 (+1 in flight at most): {own_live}");
}
