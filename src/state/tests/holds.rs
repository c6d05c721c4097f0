//! Parity, continued: the holds an operator places on snapshots, and the
//! delete claims the leader checks against them.

use super::*;

on_both!(
    a_hold_is_replaced_released_and_listed_in_order,
    a_target_wide_hold_covers_what_the_ledger_knew_when_placed,
    claims_leave_out_held_rows_and_claim_the_others,
    a_snapshot_being_or_already_deleted_cannot_be_held,
    a_dropped_claim_lets_a_hold_in,
    a_target_wide_hold_names_what_it_cannot_cover,
);

/// A snapshot `id` of (db, `target`), recorded at `at` and available
/// (each of its own run, in a slot of its own).
async fn snapshot(l: &dyn Ledger, target: &str, id: &str, at: DateTime<Utc>) -> i64 {
    static SLOTS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let n = SLOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let run = started(
        l,
        &NewRun {
            target: target.into(),
            name: format!("db-{target}-{id}"),
            ..new_run(t(0) - chrono::Duration::hours(n + 1))
        },
        at,
    )
    .await;
    let ops = l
        .record_created(run, &[created(id, &format!("job-{id}"))], at, plan(at))
        .await
        .expect("created");
    l.finish_op(ops[0].id, None, at).await.expect("available");
    l.set_run_state(run, RunState::Succeeded, None, at)
        .await
        .expect("run done");
    ops[0].snapshot_row
}

fn hold(target: &str, snapshot_id: Option<&str>, until: Option<DateTime<Utc>>) -> SnapshotHold {
    SnapshotHold {
        policy: "db".into(),
        target: target.into(),
        snapshot_id: snapshot_id.map(str::to_string),
        reason: "legal case 12".into(),
        by: "ann".into(),
        // Ignored: a hold dates from when it is placed.
        since: t(0),
        until,
    }
}

fn placed(replaced: bool, known: bool) -> HoldPlaced {
    HoldPlaced {
        replaced,
        known,
        not_covered: vec![],
    }
}

async fn a_hold_is_replaced_released_and_listed_in_order(l: &dyn Ledger) {
    assert!(l.holds(t(0)).await.expect("none yet").is_empty());
    snapshot(l, "vol-1", "snap-b", t(0)).await;
    // Kept to the millisecond, as every time of the ledger.
    let at = t(1) + chrono::Duration::nanoseconds(1_234_567);
    assert_eq!(
        l.hold(&hold("vol-1", Some("snap-b"), Some(t(50))), at)
            .await
            .expect("hold"),
        placed(false, true)
    );
    let first = SnapshotHold {
        since: t(1) + chrono::Duration::milliseconds(1),
        ..hold("vol-1", Some("snap-b"), Some(t(50)))
    };
    assert_eq!(l.holds(t(2)).await.expect("held"), vec![first.clone()]);

    // Placed again: reason, by and until are the new ones, and the hold
    // dates from now.
    let again = SnapshotHold {
        reason: "longer case".into(),
        by: "bob".into(),
        ..hold("vol-1", Some("snap-b"), None)
    };
    assert_eq!(
        l.hold(&again, t(10)).await.expect("hold again"),
        placed(true, true)
    );
    let replaced = SnapshotHold {
        since: t(10),
        ..again
    };
    assert_eq!(
        l.holds(t(55)).await.expect("still held"),
        vec![replaced.clone()]
    );

    // An id the ledger does not know (an orphan) is held too.
    assert_eq!(
        l.hold(&hold("vol-1", Some("orphan-1"), None), t(11))
            .await
            .expect("an orphan"),
        placed(false, false)
    );
    // Ordered by policy, target, the target-wide hold first, then by
    // snapshot id in byte order.
    for (target, id) in [
        ("vol-2", Some("b")),
        ("vol-2", None),
        ("vol-2", Some("B")),
        ("vol-0", Some("z")),
    ] {
        l.hold(&hold(target, id, None), t(12)).await.expect("hold");
    }
    l.hold(
        &SnapshotHold {
            policy: "Web".into(),
            ..hold("vol-9", Some("x"), None)
        },
        t(12),
    )
    .await
    .expect("hold web");
    let keys = |holds: Vec<SnapshotHold>| -> Vec<(String, String, Option<String>)> {
        holds
            .into_iter()
            .map(|h| (h.policy, h.target, h.snapshot_id))
            .collect()
    };
    let key =
        |p: &str, t: &str, id: Option<&str>| (p.to_string(), t.to_string(), id.map(str::to_string));
    assert_eq!(
        keys(l.holds(t(13)).await.expect("all")),
        vec![
            key("Web", "vol-9", Some("x")),
            key("db", "vol-0", Some("z")),
            key("db", "vol-1", Some("orphan-1")),
            key("db", "vol-1", Some("snap-b")),
            key("db", "vol-2", None),
            key("db", "vol-2", Some("B")),
            key("db", "vol-2", Some("b")),
        ]
    );

    // Released once; the target-wide hold and a snapshot hold are
    // distinct.
    assert_eq!(
        l.release_hold("db", "vol-1", Some("snap-b"))
            .await
            .expect("release"),
        Some(replaced)
    );
    assert_eq!(
        l.release_hold("db", "vol-1", Some("snap-b"))
            .await
            .expect("release again"),
        None
    );
    let wide = l
        .release_hold("db", "vol-2", None)
        .await
        .expect("release the target")
        .expect("vol-2 was held");
    assert_eq!((wide.snapshot_id, wide.since), (None, t(12)));
    assert_eq!(
        keys(l.holds(t(13)).await.expect("left")),
        vec![
            key("Web", "vol-9", Some("x")),
            key("db", "vol-0", Some("z")),
            key("db", "vol-1", Some("orphan-1")),
            key("db", "vol-2", Some("B")),
            key("db", "vol-2", Some("b")),
        ]
    );

    // A hold ends at its `until`: at that instant it is no longer in
    // force; an ended hold is removed by the next hold placed.
    l.hold(&hold("vol-3", Some("s"), Some(t(20))), t(14))
        .await
        .expect("hold until 20");
    let held = |holds: Vec<SnapshotHold>| holds.iter().any(|h| h.target == "vol-3");
    assert!(held(l.holds(t(19)).await.expect("at 19")));
    assert!(!held(l.holds(t(20)).await.expect("at 20")));
    l.hold(&hold("vol-4", Some("s"), None), t(21))
        .await
        .expect("a later hold");
    assert!(
        !held(l.holds(t(15)).await.expect("at 15, after the removal")),
        "ended holds are removed when a hold is placed"
    );
    assert_eq!(
        l.hold(&hold("vol-3", Some("s"), None), t(22))
            .await
            .expect("placed anew"),
        placed(false, false),
        "an ended hold is not replaced"
    );

    // Refused, nothing written: an empty snapshot id, an end not after
    // now.
    let before = l.holds(t(22)).await.expect("before");
    let err = l
        .hold(&hold("vol-5", Some(""), None), t(22))
        .await
        .expect_err("an empty snapshot id");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    let err = l
        .hold(&hold("vol-5", Some("s"), Some(t(22))), t(22))
        .await
        .expect_err("an end that is now");
    assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
    assert_eq!(l.holds(t(22)).await.expect("after"), before);
}

async fn a_target_wide_hold_covers_what_the_ledger_knew_when_placed(l: &dyn Ledger) {
    let old = snapshot(l, "vol-1", "snap-old", t(1)).await;
    let other = snapshot(l, "vol-2", "snap-other", t(1)).await;
    l.hold(&hold("vol-1", None, Some(t(50))), t(5))
        .await
        .expect("hold vol-1");
    let new = snapshot(l, "vol-1", "snap-new", t(6)).await;
    let holds = l.holds(t(7)).await.expect("holds");
    assert_eq!(holds.len(), 1);
    let row = |id| async move { l.snapshot(id).await.expect("row") };
    assert!(holds[0].covers(&row(old).await, t(7)));
    assert!(
        !holds[0].covers(&row(new).await, t(7)),
        "made after the hold"
    );
    assert!(!holds[0].covers(&row(other).await, t(7)), "another target");
    assert!(!holds[0].covers(&row(old).await, t(50)), "ended");
    assert_eq!(
        l.claim_deletes(&[old, new, other], t(30), t(7))
            .await
            .expect("claim"),
        vec![new, other]
    );
    // Placed again, it covers what the ledger knows now.
    let newer = snapshot(l, "vol-1", "snap-newer", t(8)).await;
    l.drop_delete_claim(new).await.expect("drop");
    l.hold(&hold("vol-1", None, None), t(9))
        .await
        .expect("hold again");
    assert_eq!(
        l.claim_deletes(&[old, new, newer], t(30), t(9))
            .await
            .expect("claim"),
        Vec::<i64>::new()
    );
    // After it ends, everything is claimed.
    l.hold(&hold("vol-1", None, Some(t(12))), t(10))
        .await
        .expect("hold until 12");
    assert_eq!(
        l.claim_deletes(&[newer, old], t(30), t(12))
            .await
            .expect("claim"),
        vec![newer, old]
    );
}

async fn claims_leave_out_held_rows_and_claim_the_others(l: &dyn Ledger) {
    let a = snapshot(l, "vol-1", "snap-a", t(1)).await;
    let b = snapshot(l, "vol-1", "snap-b", t(2)).await;
    let c = snapshot(l, "vol-1", "snap-c", t(3)).await;
    l.hold(&hold("vol-1", Some("snap-b"), None), t(4))
        .await
        .expect("hold b");
    // A hold of the same snapshot id on another target holds nothing
    // here.
    l.hold(&hold("vol-2", Some("snap-c"), None), t(4))
        .await
        .expect("hold c of vol-2");
    // Input order is kept; a row the ledger does not have is skipped.
    assert_eq!(
        l.claim_deletes(&[c, 999, b, a], t(30), t(5))
            .await
            .expect("claim"),
        vec![c, a]
    );
    assert!(l
        .claim_deletes(&[], t(30), t(5))
        .await
        .expect("nothing")
        .is_empty());
    // The claimed rows cannot be held now; the held one still can.
    for id in ["snap-a", "snap-c"] {
        let err = l
            .hold(&hold("vol-1", Some(id), None), t(6))
            .await
            .expect_err("claimed");
        assert!(
            matches!(&err, StateError::HoldTooLate { snapshot_id, why }
                if snapshot_id == id && why == "it is being deleted"),
            "{err:?}"
        );
    }
    assert_eq!(
        l.hold(&hold("vol-1", Some("snap-b"), None), t(6))
            .await
            .expect("b again"),
        placed(true, true)
    );
    // A claim ends at its time: then the row can be held.
    assert_eq!(
        l.hold(&hold("vol-1", Some("snap-a"), None), t(30))
            .await
            .expect("the claim ended"),
        placed(false, true)
    );
    // Released, the row is claimed.
    l.release_hold("db", "vol-1", Some("snap-b"))
        .await
        .expect("release")
        .expect("b was held");
    assert_eq!(
        l.claim_deletes(&[b], t(40), t(31)).await.expect("claim b"),
        vec![b]
    );
}

async fn a_snapshot_being_or_already_deleted_cannot_be_held(l: &dyn Ledger) {
    let deleting = snapshot(l, "vol-1", "snap-deleting", t(1)).await;
    let deleted = snapshot(l, "vol-1", "snap-deleted", t(1)).await;
    l.begin_delete(deleting, "del-1", t(2), plan(t(2)))
        .await
        .expect("deleting");
    let op = l
        .begin_delete(deleted, "del-2", t(2), plan(t(2)))
        .await
        .expect("deleting");
    l.finish_op(op.id, None, t(3)).await.expect("deleted");
    // An ended hold is stored: a refused hold removes nothing either.
    l.hold(&hold("vol-9", Some("s"), Some(t(5))), t(1))
        .await
        .expect("a short hold");
    let stored = l.holds(t(1)).await.expect("stored");
    for (id, want) in [
        ("snap-deleting", "it is being deleted"),
        ("snap-deleted", "it was deleted at 2026-01-01T00:00:03Z"),
    ] {
        let err = l
            .hold(&hold("vol-1", Some(id), None), t(10))
            .await
            .expect_err("too late");
        assert!(
            matches!(&err, StateError::HoldTooLate { snapshot_id, why }
                if snapshot_id == id && why == want),
            "{err:?}"
        );
        assert!(err.to_string().contains(want), "{err}");
    }
    assert!(l.holds(t(10)).await.expect("none").is_empty());
    assert_eq!(l.holds(t(1)).await.expect("as it was"), stored);
}

async fn a_dropped_claim_lets_a_hold_in(l: &dyn Ledger) {
    let a = snapshot(l, "vol-1", "snap-a", t(1)).await;
    assert_eq!(
        l.claim_deletes(&[a], t(30), t(2)).await.expect("claim"),
        vec![a]
    );
    assert!(matches!(
        l.hold(&hold("vol-1", Some("snap-a"), None), t(3)).await,
        Err(StateError::HoldTooLate { .. })
    ));
    // The cloud refused the delete: the claim is dropped.
    l.drop_delete_claim(a).await.expect("drop");
    l.drop_delete_claim(999)
        .await
        .expect("no such row: nothing");
    assert_eq!(
        l.hold(&hold("vol-1", Some("snap-a"), None), t(4))
            .await
            .expect("held"),
        placed(false, true)
    );
    assert!(l
        .claim_deletes(&[a], t(30), t(5))
        .await
        .expect("claim")
        .is_empty());
    // A delete that begins drops its claim: once the delete failed, the
    // row can be held again.
    let b = snapshot(l, "vol-1", "snap-b", t(6)).await;
    l.claim_deletes(&[b], t(30), t(7)).await.expect("claim b");
    let op = l
        .begin_delete(b, "del-b", t(7), plan(t(7)))
        .await
        .expect("delete");
    l.finish_op(op.id, Some("denied"), t(8))
        .await
        .expect("failed");
    assert_eq!(
        l.hold(&hold("vol-1", Some("snap-b"), None), t(9))
            .await
            .expect("held after a failed delete"),
        placed(false, true)
    );
}

async fn a_target_wide_hold_names_what_it_cannot_cover(l: &dyn Ledger) {
    let kept = snapshot(l, "vol-1", "snap-kept", t(1)).await;
    let claimed = snapshot(l, "vol-1", "snap-claimed", t(1)).await;
    let deleting = snapshot(l, "vol-1", "snap-deleting", t(1)).await;
    let deleted = snapshot(l, "vol-1", "snap-deleted", t(1)).await;
    let expired = snapshot(l, "vol-1", "snap-expired", t(1)).await;
    snapshot(l, "vol-2", "snap-elsewhere", t(1)).await;
    l.claim_deletes(&[expired], t(3), t(2))
        .await
        .expect("a short claim");
    l.claim_deletes(&[claimed], t(30), t(2))
        .await
        .expect("claim");
    l.begin_delete(deleting, "del-1", t(2), plan(t(2)))
        .await
        .expect("deleting");
    let op = l
        .begin_delete(deleted, "del-2", t(2), plan(t(2)))
        .await
        .expect("deleting");
    l.finish_op(op.id, None, t(3)).await.expect("deleted");
    let elsewhere = l.live_snapshots("qc", "db", "vol-2").await.expect("vol-2")[0].id;
    l.claim_deletes(&[elsewhere], t(30), t(2))
        .await
        .expect("claim on vol-2");
    assert_eq!(
        l.hold(&hold("vol-1", None, None), t(5))
            .await
            .expect("hold vol-1"),
        HoldPlaced {
            replaced: false,
            known: false,
            not_covered: vec!["snap-claimed".into(), "snap-deleting".into()],
        }
    );
    // What it can cover, it holds.
    assert!(l
        .claim_deletes(&[kept, expired], t(30), t(6))
        .await
        .expect("claim")
        .is_empty());
}

fn row(target: &str, snapshot_id: &str, created_at: DateTime<Utc>) -> SnapshotRow {
    SnapshotRow {
        id: 1,
        run_id: 1,
        provider: "qc".into(),
        policy: "db".into(),
        target: target.into(),
        slot: created_at,
        name: "x".into(),
        snapshot_id: snapshot_id.into(),
        state: LedgerState::Available,
        full: true,
        created_at,
        completed_at: None,
        deleted_at: None,
        error: None,
        size_bytes: None,
    }
}

#[test]
fn a_hold_covers_its_snapshot_or_what_its_target_had_while_in_force() {
    let one = SnapshotHold {
        since: t(10),
        ..hold("vol-1", Some("snap-a"), Some(t(20)))
    };
    assert!(one.covers(&row("vol-1", "snap-a", t(15)), t(19)));
    assert!(!one.covers(&row("vol-1", "snap-a", t(1)), t(20)), "ended");
    assert!(!one.covers(&row("vol-1", "snap-b", t(1)), t(11)));
    assert!(!one.covers(&row("vol-2", "snap-a", t(1)), t(11)));
    let other_policy = SnapshotRow {
        policy: "web".into(),
        ..row("vol-1", "snap-a", t(1))
    };
    assert!(!one.covers(&other_policy, t(11)));

    let wide = SnapshotHold {
        since: t(10),
        ..hold("vol-1", None, None)
    };
    assert!(wide.covers(&row("vol-1", "snap-a", t(10)), t(59)));
    assert!(wide.covers(&row("vol-1", "snap-b", t(1)), t(59)));
    assert!(!wide.covers(&row("vol-1", "snap-c", t(11)), t(59)), "later");
    assert!(!wide.covers(&row("vol-2", "snap-a", t(1)), t(59)));
}

#[test]
fn a_hold_describes_itself() {
    let until = SnapshotHold {
        until: Some(
            Utc.with_ymd_and_hms(2026, 12, 24, 0, 0, 0)
                .single()
                .expect("a time"),
        ),
        ..hold("vol-1", Some("snap-a"), None)
    };
    assert_eq!(
        until.describe(),
        "held until 2026-12-24T00:00:00Z, by ann, because legal case 12"
    );
    assert_eq!(
        hold("vol-1", None, None).describe(),
        "held until released, by ann, because legal case 12"
    );
}

/// On PostgreSQL a hold is the operator's (no lease), a claim the
/// leader's.
#[tokio::test]
async fn holds_need_no_lease_and_claims_do() {
    let Some((_, l)) = fresh_pg("state::tests::holds::holds_need_no_lease_and_claims_do").await
    else {
        return;
    };
    lead(&l).await;
    let a = snapshot(&l, "vol-1", "snap-a", t(1)).await;
    l.set_fence(None);
    l.hold(&hold("vol-1", Some("snap-a"), None), t(2))
        .await
        .expect("hold without the lease");
    assert_eq!(l.holds(t(3)).await.expect("holds").len(), 1);
    l.release_hold("db", "vol-1", Some("snap-a"))
        .await
        .expect("release without the lease")
        .expect("held");
    match l.claim_deletes(&[a], t(30), t(4)).await {
        Err(StateError::NotLeader { .. }) => {}
        other => panic!("claim_deletes: expected NotLeader, got {other:?}"),
    }
    // Nothing was claimed: the row can be held.
    l.hold(&hold("vol-1", Some("snap-a"), None), t(5))
        .await
        .expect("not claimed");
    // A claim that fails is a decision: dropping one is not.
    l.drop_delete_claim(a)
        .await
        .expect("drop without the lease");
}

/// A hold placed while a claim on its row is not yet committed waits for
/// it, and then sees it: the two never both win.
#[tokio::test]
async fn a_hold_waits_for_a_claim_in_flight_and_sees_it() {
    let Some((url, l)) =
        fresh_pg("state::tests::holds::a_hold_waits_for_a_claim_in_flight_and_sees_it").await
    else {
        return;
    };
    lead(&l).await;
    let a = snapshot(&l, "vol-1", "snap-a", t(1)).await;
    // Another session claims the row as claim_deletes does (the row
    // locked, the claim written) and does not commit yet.
    let (mut other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a second session");
    tokio::spawn(conn);
    let tx = other.transaction().await.expect("begin");
    tx.execute("SELECT id FROM snapshots WHERE id = $1 FOR UPDATE", &[&a])
        .await
        .expect("lock");
    tx.execute(
        "UPDATE snapshots SET delete_claim_until = $2 WHERE id = $1",
        &[&a, &t(30)],
    )
    .await
    .expect("claim");
    let holder = l.clone();
    let placing = tokio::spawn(async move {
        holder
            .hold(&hold("vol-1", Some("snap-a"), None), t(2))
            .await
    });
    // The hold waits on the row's lock (seen from a third session).
    let (watch, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a third session");
    tokio::spawn(conn);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            !placing.is_finished(),
            "the hold did not wait for the claim"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the hold never waited on the row"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tx.commit().await.expect("commit the claim");
    let err = placing
        .await
        .expect("the hold's task")
        .expect_err("the claim came first");
    assert!(matches!(err, StateError::HoldTooLate { .. }), "{err:?}");
    assert!(l.holds(t(3)).await.expect("holds").is_empty());
}
