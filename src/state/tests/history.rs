//! Parity, continued: history and trimming, the schedule, holds, rules
//! and sources, alerts, secrets, polling.

use super::*;

on_both!(
    summaries_of_many_targets_count_each_apart,
    trimming_drops_old_history_and_keeps_what_matters,
    the_schedule_never_moves_back,
    holds_keep_their_start_and_take_the_new_reason,
    rules_and_sources_round_trip,
    delivered_alerts_keep_their_newest_time,
    secrets_are_replaced,
    operations_are_rescheduled,
);

/// One (policy, target) with a long history, trimmed at a horizon: old
/// finished runs and the rows of snapshots deleted long ago go; open runs,
/// live or failed snapshots and their runs, the newest success and the
/// failure streak after it stay, so the summary does not change.
async fn trimming_drops_old_history_and_keeps_what_matters(l: &dyn Ledger) {
    let day = |d: u32| t(0) + chrono::Duration::days(d as i64);
    // Days 0..=9: a run a day. Day 0-5 succeed, each with a snapshot that
    // retention deleted the next day (day 5's stays live); day 3 a skipped
    // slot; day 6 and 7 fail (the streak); day 8 failed with a failed
    // snapshot; day 9 still open.
    let mut snap_of_day = HashMap::new();
    for d in 0..=9u32 {
        let run = new_run(day(d));
        let id = started(l, &run, day(d)).await;
        if d == 3 {
            let skipped = NewRun {
                slot: day(d) + chrono::Duration::hours(1),
                ..new_run(day(d))
            };
            assert!(matches!(
                l.begin_run(&skipped, day(d)).await.expect("skipped"),
                Begin::Overlap { .. }
            ));
        }
        if d <= 5 || d == 8 {
            let ops = l
                .record_created(
                    id,
                    &[created(&format!("ss-{d}"), &format!("j-{d}"))],
                    day(d),
                    plan(day(d)),
                )
                .await
                .expect("created");
            l.finish_op(ops[0].id, (d == 8).then_some("boom"), day(d))
                .await
                .expect("finish");
            // Each snapshot's listed source is recorded too (prune does
            // it): trimming must take that row along.
            l.record_snapshot_sources(&[(ops[0].snapshot_row, "vol-1")])
                .await
                .expect("source");
            snap_of_day.insert(d, ops[0].snapshot_row);
        }
        match d {
            0..=5 => l.set_run_state(id, RunState::Succeeded, None, day(d)).await,
            6..=8 => {
                l.set_run_state(id, RunState::Failed, Some("boom"), day(d))
                    .await
            }
            _ => Ok(()),
        }
        .expect("state");
        if (1..=5).contains(&d) {
            let prev = snap_of_day[&(d - 1)];
            let del = l
                .begin_delete(prev, &format!("d-{d}"), day(d), plan(day(d)))
                .await
                .expect("delete");
            l.finish_op(del.id, None, day(d)).await.expect("deleted");
        }
    }
    let before = l.summaries().await.expect("summaries");

    // Keep 3 days of history before day 9.
    let trimmed = l.trim(day(6)).await.expect("trim");
    assert_eq!(
        trimmed,
        Trimmed {
            runs: 6,
            snapshots: 5,
            operations: 10,
            audit: 0
        }
    );

    let runs = l.runs_for("db", "vol-1", 100).await.expect("runs");
    let slots: Vec<_> = runs.iter().map(|r| r.slot).collect();
    // Day 5 (newest success, its snapshot live), 6-8 (streak, one with a
    // failed snapshot), 9 (open) stay; days 0-4 and the skip go.
    assert_eq!(slots, vec![day(9), day(8), day(7), day(6), day(5)]);
    let snaps = l.all_snapshots().await.expect("snapshots");
    let ids: Vec<_> = snaps.iter().map(|r| r.snapshot_id.as_str()).collect();
    assert_eq!(ids, vec!["ss-5", "ss-8"]);
    assert!(l.ops_in_flight().await.expect("ops").is_empty());
    assert_eq!(l.all_snapshot_sources().await.expect("sources").len(), 2);
    let after = l.summaries().await.expect("summaries");
    assert_eq!(after.len(), 1);
    // The same, but for the skipped slot trimmed away.
    let seen = |s: &TargetSummary| {
        (
            s.last_run.clone(),
            s.last_success,
            s.consecutive_failures,
            s.snapshots_kept,
        )
    };
    assert_eq!(seen(&after[0]), seen(&before[0]));
    // Trimming again finds nothing more.
    let again = l.trim(day(6)).await.expect("trim again");
    assert_eq!(again, Trimmed::default());
}

async fn the_schedule_never_moves_back(l: &dyn Ledger) {
    assert_eq!(l.last_slot("db").await.expect("none"), None);
    l.set_last_slot("db", t(10)).await.expect("set");
    l.set_last_slot("db", t(5)).await.expect("older");
    assert_eq!(l.last_slot("db").await.expect("read"), Some(t(10)));
    // Kept to the millisecond, in both backends.
    let precise = t(20) + chrono::Duration::nanoseconds(1_234_567);
    l.set_last_slot("db", precise).await.expect("newer");
    assert_eq!(
        l.last_slot("db").await.expect("read"),
        Some(t(20) + chrono::Duration::milliseconds(1))
    );
}

async fn holds_keep_their_start_and_take_the_new_reason(l: &dyn Ledger) {
    assert_eq!(l.delete_hold("web", "vol-1").await.expect("none"), None);
    l.hold_deletes("web", "vol-1", "rules changed", t(1))
        .await
        .expect("hold");
    l.hold_deletes("web", "vol-1", "rules changed again", t(2))
        .await
        .expect("hold again");
    l.hold_deletes("Db", "vol-2", "other", t(3))
        .await
        .expect("hold other");
    let hold = l
        .delete_hold("web", "vol-1")
        .await
        .expect("read")
        .expect("held");
    assert_eq!(
        (hold.reason.as_str(), hold.since),
        ("rules changed again", t(1))
    );
    // Byte order: upper case first, whatever the database's collation.
    let all: Vec<_> = l
        .delete_holds()
        .await
        .expect("all")
        .into_iter()
        .map(|h| h.policy)
        .collect();
    assert_eq!(all, vec!["Db", "web"]);
    assert!(l.release_deletes("web", "vol-1").await.expect("release"));
    assert!(!l.release_deletes("web", "vol-1").await.expect("again"));
    assert_eq!(l.delete_holds().await.expect("all").len(), 1);
}

async fn rules_and_sources_round_trip(l: &dyn Ledger) {
    let now = t(0);
    assert!(l.policy_rules().await.expect("rules").is_empty());
    l.record_policy_rules(&[("db", "qc", "retain=2"), ("web", "qc", "retain=3")], now)
        .await
        .expect("record");
    l.record_policy_rules(&[("db", "qc", "retain=5")], now)
        .await
        .expect("record");
    let rules = l.policy_rules().await.expect("rules");
    assert_eq!(rules.get("db").map(String::as_str), Some("retain=5"));
    assert_eq!(rules.get("web").map(String::as_str), Some("retain=3"));

    let run = started(l, &new_run(now), now).await;
    let ops = l
        .record_created(
            run,
            &[created("s-1", "s-1"), created("s-2", "s-2")],
            now,
            plan(now),
        )
        .await
        .expect("record");
    l.record_snapshot_sources(&[(ops[0].snapshot_row, "v-root")])
        .await
        .expect("sources");
    l.record_snapshot_sources(&[]).await.expect("nothing");
    let known = l
        .snapshot_sources("qc", "db", "vol-1")
        .await
        .expect("sources");
    assert_eq!(known.len(), 1);
    assert_eq!(
        known.get(&ops[0].snapshot_row).map(String::as_str),
        Some("v-root")
    );
    assert_eq!(l.all_snapshot_sources().await.expect("all").len(), 1);
    l.mark_deleted(ops[0].snapshot_row, now)
        .await
        .expect("delete");
    assert!(l
        .snapshot_sources("qc", "db", "vol-1")
        .await
        .expect("sources")
        .is_empty());
}

async fn delivered_alerts_keep_their_newest_time(l: &dyn Ledger) {
    let at = |h| {
        Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0)
            .single()
            .expect("time")
    };
    l.record_alert_delivered("db", "vol-1", "failure", at(2))
        .await
        .expect("record");
    l.record_alert_delivered("db", "vol-1", "failure", at(1))
        .await
        .expect("older");
    l.record_alert_delivered("db", "vol-1", "slot_skipped", at(3))
        .await
        .expect("record");
    let d = l.alerts_delivered().await.expect("read");
    assert_eq!(d.len(), 2);
    assert_eq!(d[&("db".into(), "vol-1".into(), "failure".into())], at(2));
    assert_eq!(
        d[&("db".into(), "vol-1".into(), "slot_skipped".into())],
        at(3)
    );
    assert_eq!(
        l.newest_skipped("db", "vol-1").await.expect("skipped"),
        None
    );
}

async fn secrets_are_replaced(l: &dyn Ledger) {
    assert_eq!(l.load_secret("ip4g", "refresh").await.expect("none"), None);
    for (value, seed) in [("r-1", "seed-a"), ("r-2", "seed-b")] {
        let secret = StoredSecret {
            value: crate::config::Secret::new(value),
            seed: seed.into(),
        };
        l.store_secret("ip4g", "refresh", &secret, None)
            .await
            .expect("store");
        assert_eq!(
            l.load_secret("ip4g", "refresh").await.expect("load"),
            Some(secret)
        );
    }
    // A rotation stores only over the token it was made from: another
    // process's newer value is never overwritten with an older branch.
    let rotated = |v: &str| StoredSecret {
        value: crate::config::Secret::new(v),
        seed: "seed-b".into(),
    };
    let old = crate::config::Secret::new("r-1");
    l.store_secret("ip4g", "refresh", &rotated("r-3"), Some(&old))
        .await
        .expect_err("r-1 was replaced already");
    let current = crate::config::Secret::new("r-2");
    l.store_secret("ip4g", "refresh", &rotated("r-4"), Some(&current))
        .await
        .expect("r-2 is the stored one");
    assert_eq!(
        l.load_secret("ip4g", "refresh").await.expect("load"),
        Some(rotated("r-4"))
    );
}

async fn operations_are_rescheduled(l: &dyn Ledger) {
    let run = started(l, &new_run(t(0)), t(0)).await;
    let ops = l
        .record_created(run, &[created("ss-1", "j-1")], t(0), plan(t(0)))
        .await
        .expect("record");
    l.reschedule_ops(&[(ops[0].id, t(30), Duration::from_millis(2_500))])
        .await
        .expect("reschedule");
    let op = l.op(ops[0].id).await.expect("op");
    assert_eq!(
        (op.next_poll_at, op.poll_interval),
        (t(30), Duration::from_millis(2_500))
    );
}

async fn summaries_of_many_targets_count_each_apart(l: &dyn Ledger) {
    let on = |target: &str, slot| NewRun {
        target: target.into(),
        ..new_run(slot)
    };
    // vol-1: a create in flight and a slot skipped meanwhile.
    let one = started(l, &on("vol-1", t(0)), t(0)).await;
    l.record_created(one, &[created("ss-1", "j-1")], t(1), plan(t(1)))
        .await
        .expect("created");
    l.set_run_state(one, RunState::Creating, None, t(1))
        .await
        .expect("creating");
    assert!(matches!(
        l.begin_run(&on("vol-1", t(5)), t(5)).await.expect("skip"),
        Begin::Overlap { .. }
    ));
    // vol-2: a success with its snapshot kept, then a failure.
    let two = started(l, &on("vol-2", t(0)), t(0)).await;
    let ops = l
        .record_created(two, &[created("ss-2", "j-2")], t(1), plan(t(1)))
        .await
        .expect("created");
    l.finish_op(ops[0].id, None, t(2)).await.expect("done");
    l.set_run_state(two, RunState::Succeeded, None, t(2))
        .await
        .expect("ok");
    let failed = started(l, &on("vol-2", t(10)), t(10)).await;
    l.set_run_state(failed, RunState::Failed, Some("boom"), t(11))
        .await
        .expect("failed");

    let all = l.summaries().await.expect("summaries");
    let seen: Vec<_> = all
        .iter()
        .map(|s| {
            (
                s.target.as_str(),
                s.last_run.as_ref().map(|r| (r.slot, r.state)),
                s.last_success,
                s.consecutive_failures,
                s.last_error.as_deref(),
                s.snapshots_kept,
                s.in_flight.len(),
                s.skipped,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "vol-1",
                Some((t(0), RunState::Creating)),
                None,
                0,
                None,
                0,
                1,
                1
            ),
            (
                "vol-2",
                Some((t(10), RunState::Failed)),
                Some(t(2)),
                1,
                Some("boom"),
                1,
                0,
                0
            ),
        ]
    );
    for s in &all {
        let one = l
            .target_summary(&s.policy, &s.target)
            .await
            .expect("one")
            .expect("known");
        assert_eq!(
            one,
            TargetSummary {
                in_flight: Vec::new(),
                ..s.clone()
            }
        );
    }
}
