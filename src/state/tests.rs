//! Backend parity: every test here takes a `&dyn Ledger` and runs against
//! both backends (`<test>::sqlite` on a temporary file, `<test>::postgres`
//! on a fresh database of the test process's throwaway cluster, fenced
//! as the leader): the same calls must give the same answers.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::pg_cluster;
use super::*;
use crate::providers::{Created, OpKind, StoredSecret};

pub(super) fn t(s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s)
        .single()
        .expect("valid test time")
}

pub(super) fn new_run(slot: DateTime<Utc>) -> NewRun {
    NewRun {
        policy: "db".into(),
        target: "vol-1".into(),
        provider: "qc".into(),
        slot,
        name: "db-vol-1-x".into(),
        full: true,
    }
}

pub(super) fn plan(now: DateTime<Utc>) -> PollPlan {
    PollPlan {
        first_poll: now,
        interval: Duration::from_secs(1),
        deadline: now + chrono::Duration::hours(1),
    }
}

fn created(id: &str, op: &str) -> Created {
    Created {
        snapshot_id: id.into(),
        operation: op.into(),
    }
}

/// Begin `run` at `now`; it must start.
async fn started(l: &dyn Ledger, run: &NewRun, now: DateTime<Utc>) -> i64 {
    match l.begin_run(run, now).await.expect("begin") {
        Begin::Started(id) => id,
        other => panic!("{run:?} must start, got {other:?}"),
    }
}

fn sqlite() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteLedger::open(&dir.path().join("s.db")).expect("open");
    (dir, s)
}

/// A PostgreSQL ledger on a fresh database and its URL, or None when the
/// developer skips PostgreSQL tests.
pub(crate) async fn fresh_pg(test: &str) -> Option<(String, PgLedger)> {
    let cluster = pg_cluster::shared_or_skip(test)?;
    let db = cluster.create_database().expect("a fresh database");
    let url = format!("{}?sslmode=disable", cluster.url(&db));
    let ledger = PgLedger::connect(&url, None, PgOptions::default())
        .await
        .expect("connect and migrate");
    Some((url, ledger))
}

/// The holder and epoch of the lease [`lead`] writes.
pub(super) const HOLDER: &str = "node-a:1";
pub(super) const EPOCH: i64 = 7;

/// Make `l` the leader: a scheduler lease for [`HOLDER`] and [`EPOCH`]
/// valid for an hour, and the fence set to it.
pub(super) async fn lead(l: &PgLedger) {
    l.execute_for_tests(&format!(
        "INSERT INTO leader_lease (name, holder, node, epoch, acquired_at, renewed_at, expires_at)
         VALUES ('scheduler', '{HOLDER}', 'node-a', {EPOCH}, now(), now(), now() + interval '1 hour')
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch,
             expires_at = excluded.expires_at"
    ))
    .await;
    l.set_fence(Some(Fence {
        holder: HOLDER.into(),
        epoch: EPOCH,
    }));
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, l) = super::sqlite();
                super::$name(&l).await;
            }

            #[tokio::test]
            async fn postgres() {
                let test = concat!(module_path!(), "::postgres");
                if let Some((_, l)) = super::fresh_pg(test).await {
                    super::lead(&l).await;
                    super::$name(&l).await;
                }
            }
        }
    )*};
}

on_both!(
    a_fresh_ledger_is_migrated_and_probes,
    a_slot_is_recorded_once_and_overlap_is_skipped,
    a_slot_of_many_targets_begins_at_once,
    created_ids_and_outcomes_are_recorded,
    a_late_create_answer_is_recorded_but_never_reopens_a_closed_run,
    summaries_count_consecutive_failures,
    summaries_read_back_to_the_newest_success_only,
);

async fn a_fresh_ledger_is_migrated_and_probes(l: &dyn Ledger) {
    assert!(l.schema_version().await.expect("version") >= 1);
    l.probe_writable().await.expect("probe");
    l.probe_writable().await.expect("probe again");
    assert!(l.open_runs().await.expect("runs").is_empty());
    assert!(l.summaries().await.expect("summaries").is_empty());
    assert_eq!(l.target_summary("db", "vol-1").await.expect("one"), None);
    assert!(!l.location().is_empty());
}

async fn a_slot_is_recorded_once_and_overlap_is_skipped(l: &dyn Ledger) {
    let id = started(l, &new_run(t(0)), t(0)).await;
    assert_eq!(id, 1);
    assert_eq!(
        l.begin_run(&new_run(t(0)), t(1)).await.expect("again"),
        Begin::AlreadyRecorded
    );
    assert_eq!(
        l.begin_run(&new_run(t(5)), t(5)).await.expect("overlap"),
        Begin::Overlap { running_slot: t(0) }
    );
    // The skipped slot is itself recorded: it is never run later either.
    assert_eq!(
        l.begin_run(&new_run(t(5)), t(6)).await.expect("again"),
        Begin::AlreadyRecorded
    );
    assert_eq!(
        l.newest_skipped("db", "vol-1").await.expect("skipped"),
        Some((
            t(5),
            Some("skipped: the run for slot 2026-01-01T00:00:00.000Z is still in flight".into())
        ))
    );
    assert_eq!(l.open_runs().await.expect("open").len(), 1);
    let (open, bad) = l.open_runs_readable().await.expect("readable");
    assert_eq!((open.len(), bad.len()), (1, 0));
    l.set_run_state(id, RunState::Succeeded, None, t(7))
        .await
        .expect("finish");
    let run = l.run(id).await.expect("run");
    assert_eq!(
        (
            run.state,
            run.finished_at,
            run.slot,
            run.started_at,
            run.full
        ),
        (RunState::Succeeded, Some(t(7)), t(0), t(0), true)
    );
    assert!(matches!(
        l.begin_run(&new_run(t(10)), t(10)).await.expect("next"),
        Begin::Started(_)
    ));
    let slots: Vec<_> = l
        .runs_for("db", "vol-1", 2)
        .await
        .expect("runs")
        .iter()
        .map(|r| r.slot)
        .collect();
    assert_eq!(slots, vec![t(10), t(5)]);
    assert!(l.run(999).await.is_err(), "no such run");
}

async fn a_slot_of_many_targets_begins_at_once(l: &dyn Ledger) {
    let runs: Vec<NewRun> = (0..3)
        .map(|i| NewRun {
            target: format!("vol-{i}"),
            ..new_run(t(0))
        })
        .collect();
    let begun = l.begin_runs(&runs, t(0)).await.expect("begin");
    assert!(
        begun.iter().all(|b| matches!(b, Begin::Started(_))),
        "{begun:?}"
    );
    let again = l.begin_runs(&runs, t(1)).await.expect("again");
    assert!(
        again.iter().all(|b| *b == Begin::AlreadyRecorded),
        "{again:?}"
    );
    let targets: Vec<_> = l
        .summaries()
        .await
        .expect("summaries")
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert_eq!(targets, vec!["vol-0", "vol-1", "vol-2"]);
}

/// A create answer that comes after its run was closed (a node that lost
/// the lead meanwhile) is a fact: its snapshot is recorded, to be followed
/// and pruned like any, but the run stays as it was closed.
async fn a_late_create_answer_is_recorded_but_never_reopens_a_closed_run(l: &dyn Ledger) {
    let run = started(l, &new_run(t(0)), t(0)).await;
    l.set_run_state(run, RunState::Failed, Some("taken over"), t(1))
        .await
        .expect("closed");
    let ops = l
        .record_created(run, &[created("ss-late", "j-late")], t(2), plan(t(3)))
        .await
        .expect("the answer is recorded");
    assert_eq!(ops.len(), 1);
    assert_eq!(l.run(run).await.expect("run").state, RunState::Failed);
    assert_eq!(l.run_snapshots(run).await.expect("snapshots").len(), 1);
    assert!(l.open_runs().await.expect("open").is_empty());
}

async fn created_ids_and_outcomes_are_recorded(l: &dyn Ledger) {
    let run = started(l, &new_run(t(0)), t(0)).await;
    let ops = l
        .record_created(run, &[created("ss-1", "j-1")], t(1), plan(t(2)))
        .await
        .expect("record");
    assert_eq!(ops.len(), 1);
    assert_eq!(
        (
            ops[0].reference.as_str(),
            ops[0].snapshot_id.as_str(),
            ops[0].kind
        ),
        ("j-1", "ss-1", OpKind::Create)
    );
    assert_eq!(
        (ops[0].started_at, ops[0].next_poll_at, ops[0].deadline),
        (t(1), t(2), t(2) + chrono::Duration::hours(1))
    );
    assert_eq!(ops[0].poll_interval, Duration::from_secs(1));
    assert_eq!(l.op(ops[0].id).await.expect("op"), ops[0]);
    assert_eq!(l.run(run).await.expect("run").state, RunState::Creating);
    assert_eq!(l.ops_in_flight().await.expect("ops"), ops);
    assert_eq!(l.ops_in_flight_count().await.expect("count"), 1);
    let (readable, bad) = l.ops_in_flight_readable().await.expect("readable");
    assert_eq!((readable, bad.len()), (ops.clone(), 0));

    l.finish_op(ops[0].id, None, t(3)).await.expect("finish");
    assert!(l.ops_in_flight().await.expect("ops").is_empty());
    let snaps = l.live_snapshots("qc", "db", "vol-1").await.expect("live");
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        (snaps[0].state, snaps[0].completed_at, snaps[0].created_at),
        (LedgerState::Available, Some(t(3)), t(1))
    );
    assert_eq!(l.run_snapshots(run).await.expect("of run"), snaps);
    assert_eq!(l.snapshot(snaps[0].id).await.expect("one"), snaps[0]);

    let del = l
        .begin_delete(snaps[0].id, "j-2", t(4), plan(t(4)))
        .await
        .expect("delete");
    assert_eq!(del.kind, OpKind::Delete);
    assert_eq!(
        l.snapshot(snaps[0].id).await.expect("snap").state,
        LedgerState::Deleting
    );
    l.finish_op(del.id, Some("denied"), t(5))
        .await
        .expect("failed delete");
    let failed = l.failed_deletes().await.expect("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].state, failed[0].error.as_deref()),
        (LedgerState::Available, Some("denied"))
    );
    let del = l
        .begin_delete(snaps[0].id, "j-3", t(6), plan(t(6)))
        .await
        .expect("delete again");
    l.finish_op(del.id, None, t(7)).await.expect("deleted");
    assert!(l
        .live_snapshots("qc", "db", "vol-1")
        .await
        .expect("live")
        .is_empty());
    let gone = l.snapshot(snaps[0].id).await.expect("row stays");
    assert_eq!(
        (gone.state, gone.deleted_at, gone.completed_at),
        (LedgerState::Deleted, Some(t(7)), Some(t(3)))
    );
    assert_eq!(l.all_snapshots().await.expect("all").len(), 1);
}

async fn summaries_count_consecutive_failures(l: &dyn Ledger) {
    for (i, state) in [RunState::Succeeded, RunState::Failed, RunState::Failed]
        .into_iter()
        .enumerate()
    {
        let id = started(l, &new_run(t(i as u32 * 10)), t(0)).await;
        l.set_run_state(
            id,
            state,
            (state == RunState::Failed).then_some("boom"),
            t(i as u32 * 10 + 1),
        )
        .await
        .expect("state");
    }
    let sum = l.summaries().await.expect("summaries");
    assert_eq!(sum.len(), 1);
    assert_eq!(sum[0].consecutive_failures, 2);
    assert_eq!(sum[0].last_error.as_deref(), Some("boom"));
    assert_eq!(sum[0].last_success, Some(t(1)));
}

async fn summaries_read_back_to_the_newest_success_only(l: &dyn Ledger) {
    // Oldest first: failed, succeeded, failed (other words), still open.
    let history = [
        (Some(RunState::Failed), Some("old")),
        (Some(RunState::Succeeded), None),
        (Some(RunState::Failed), Some("new")),
        (None, None),
    ];
    for (i, (state, error)) in history.into_iter().enumerate() {
        let id = started(l, &new_run(t(i as u32 * 10)), t(0)).await;
        if let Some(state) = state {
            l.set_run_state(id, state, error, t(i as u32 * 10 + 1))
                .await
                .expect("state");
        }
    }
    let sum = l.summaries().await.expect("summaries");
    assert_eq!(sum.len(), 1);
    // The open run is the last run but not part of the streak; the failure
    // before the success does not count.
    assert_eq!(sum[0].last_run.as_ref().map(|r| r.slot), Some(t(30)));
    assert_eq!(sum[0].consecutive_failures, 1);
    assert_eq!(sum[0].last_error.as_deref(), Some("new"));
    assert_eq!(sum[0].last_success, Some(t(11)));
    let one = l
        .target_summary(&sum[0].policy, &sum[0].target)
        .await
        .expect("summary")
        .expect("has run");
    assert_eq!(
        (one.consecutive_failures, one.last_error, one.last_success),
        (1, Some("new".to_string()), Some(t(11)))
    );
}

mod audit;
mod history;
mod holds;
mod hooks;
mod operations;
mod pauses;
mod sizes;
