//! Parity, continued: operations finishing once, adoption, restores.

use super::*;

on_both!(
    an_operation_finishes_once,
    an_adopted_snapshot_is_recorded_once,
    restores_are_followed_and_protect_their_snapshot,
);

async fn an_operation_finishes_once(l: &dyn Ledger) {
    let run = started(l, &new_run(t(0)), t(0)).await;
    let ops = l
        .record_created(
            run,
            &[created("ss-1", "j-1"), created("ss-2", "j-2")],
            t(1),
            plan(t(1)),
        )
        .await
        .expect("record");
    l.finish_ops(&[(ops[0].id, None), (ops[1].id, Some("quota"))], t(2))
        .await
        .expect("finish");
    // A second report (another process, a retried round) changes nothing.
    l.finish_ops(&[(ops[0].id, Some("late")), (ops[1].id, None)], t(3))
        .await
        .expect("finish again");
    let snaps = l.run_snapshots(run).await.expect("snaps");
    assert_eq!(
        snaps
            .iter()
            .map(|s| (s.state, s.completed_at, s.error.clone()))
            .collect::<Vec<_>>(),
        vec![
            (LedgerState::Available, Some(t(2)), None),
            (LedgerState::Failed, Some(t(2)), Some("quota".into())),
        ]
    );
    assert!(l.finish_op(999, None, t(4)).await.is_err(), "no such op");
}

async fn an_adopted_snapshot_is_recorded_once(l: &dyn Ledger) {
    let run = started(l, &new_run(t(0)), t(0)).await;
    let a = l
        .adopt_snapshot(run, "ss-9", LedgerState::Available, t(1))
        .await
        .expect("adopt");
    assert_eq!(
        (a.state, a.completed_at, a.snapshot_id.as_str(), a.run_id),
        (LedgerState::Available, Some(t(1)), "ss-9", run)
    );
    assert_eq!(l.run(run).await.expect("run").state, RunState::Creating);
    let again = l
        .adopt_snapshot(run, "ss-9", LedgerState::Available, t(2))
        .await
        .expect("again");
    assert_eq!(again, a, "the first completion stands");
    l.set_snapshot_state(a.id, LedgerState::Failed, Some("gone bad"), t(3))
        .await
        .expect("state");
    let s = l.snapshot(a.id).await.expect("snap");
    assert_eq!(
        (s.state, s.error.as_deref(), s.completed_at),
        (LedgerState::Failed, Some("gone bad"), Some(t(1)))
    );
    l.mark_deleted(a.id, t(4)).await.expect("deleted");
    assert_eq!(l.snapshot(a.id).await.expect("snap").deleted_at, Some(t(4)));
}

async fn restores_are_followed_and_protect_their_snapshot(l: &dyn Ledger) {
    let run = started(l, &new_run(t(0)), t(0)).await;
    let snap = l
        .adopt_snapshot(run, "ss-1", LedgerState::Available, t(1))
        .await
        .expect("adopt");
    let op = l
        .begin_restore(snap.id, "r-1", t(2), plan(t(2)))
        .await
        .expect("restore");
    assert_eq!(op.kind, OpKind::Restore);
    let reading = l
        .snapshots_being_restored("qc", "db", "vol-1")
        .await
        .expect("restoring");
    assert_eq!(
        reading.into_iter().collect::<Vec<_>>(),
        vec!["ss-1".to_string()]
    );
    l.finish_op(op.id, None, t(3)).await.expect("restored");
    assert!(l
        .snapshots_being_restored("qc", "db", "vol-1")
        .await
        .expect("restoring")
        .is_empty());
    assert_eq!(
        l.snapshot(snap.id).await.expect("snap").state,
        LedgerState::Available,
        "a restore does not change its snapshot"
    );
}
