use super::*;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashMap;

use crate::providers::{Created, OpKind};

fn t(s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s)
        .single()
        .expect("valid test time")
}

fn new_run(slot: DateTime<Utc>) -> NewRun {
    NewRun {
        policy: "db".into(),
        target: "vol-1".into(),
        provider: "qc".into(),
        slot,
        name: "db-vol-1-x".into(),
        full: true,
    }
}

/// A new ledger in a temporary directory (kept while the guard lives).
fn ledger() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteLedger::open(&dir.path().join("s.db")).expect("open");
    (dir, s)
}

/// Begin `run` at `now`; it must start.
fn started(s: &SqliteLedger, run: &NewRun, now: DateTime<Utc>) -> i64 {
    match s.begin_run(run, now).expect("begin") {
        Begin::Started(id) => id,
        other => panic!("{run:?} must start, got {other:?}"),
    }
}

fn plan(now: DateTime<Utc>) -> PollPlan {
    PollPlan {
        first_poll: now,
        interval: Duration::from_secs(1),
        deadline: now + chrono::Duration::hours(1),
    }
}

#[test]
fn migrations_run_once_and_reopen_keeps_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        let s = SqliteLedger::open(&path).expect("open");
        assert_eq!(s.schema_version().expect("version"), MIGRATIONS_LEN);
        assert_eq!(
            s.begin_run(&new_run(t(0)), t(0)).expect("begin"),
            Begin::Started(1)
        );
    }
    let s = SqliteLedger::open(&path).expect("reopen");
    assert_eq!(s.schema_version().expect("version"), MIGRATIONS_LEN);
    assert_eq!(s.open_runs().expect("runs").len(), 1);
}

const MIGRATIONS_LEN: i64 = migrations::MIGRATIONS.len() as i64;

#[test]
fn a_slot_is_recorded_once_and_overlap_is_skipped() {
    let (_dir, s) = ledger();
    let id = started(&s, &new_run(t(0)), t(0));
    assert_eq!(
        s.begin_run(&new_run(t(0)), t(1)).expect("again"),
        Begin::AlreadyRecorded
    );
    assert_eq!(
        s.begin_run(&new_run(t(5)), t(5)).expect("overlap"),
        Begin::Overlap { running_slot: t(0) }
    );
    // The skipped slot is itself recorded: it is never run later either.
    assert_eq!(
        s.begin_run(&new_run(t(5)), t(6)).expect("again"),
        Begin::AlreadyRecorded
    );
    s.set_run_state(id, RunState::Succeeded, None, t(7))
        .expect("finish");
    assert!(matches!(
        s.begin_run(&new_run(t(10)), t(10)).expect("next"),
        Begin::Started(_)
    ));
}

#[test]
fn created_ids_and_outcomes_are_recorded() {
    let (_dir, s) = ledger();
    let run = started(&s, &new_run(t(0)), t(0));
    let ops = s
        .record_created(
            run,
            &[Created {
                snapshot_id: "ss-1".into(),
                operation: "j-1".into(),
            }],
            t(1),
            plan(t(2)),
        )
        .expect("record");
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].reference, "j-1");
    assert_eq!(ops[0].snapshot_id, "ss-1");
    assert_eq!(s.run(run).expect("run").state, RunState::Creating);
    assert_eq!(s.ops_in_flight().expect("ops").len(), 1);

    s.finish_op(ops[0].id, None, t(3)).expect("finish");
    assert!(s.ops_in_flight().expect("ops").is_empty());
    let snaps = s.live_snapshots("qc", "db", "vol-1").expect("live");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].state, LedgerState::Available);

    let del = s
        .begin_delete(snaps[0].id, "j-2", t(4), plan(t(4)))
        .expect("delete");
    assert_eq!(del.kind, OpKind::Delete);
    assert_eq!(
        s.snapshot(snaps[0].id).expect("snap").state,
        LedgerState::Deleting
    );
    s.finish_op(del.id, None, t(5)).expect("finish delete");
    assert!(s
        .live_snapshots("qc", "db", "vol-1")
        .expect("live")
        .is_empty());
}

#[test]
fn summaries_count_consecutive_failures() {
    let (_dir, s) = ledger();
    for (i, state) in [RunState::Succeeded, RunState::Failed, RunState::Failed]
        .into_iter()
        .enumerate()
    {
        let id = started(&s, &new_run(t(i as u32 * 10)), t(0));
        s.set_run_state(
            id,
            state,
            (state == RunState::Failed).then_some("boom"),
            t(i as u32 * 10 + 1),
        )
        .expect("state");
    }
    let sum = s.summaries().expect("summaries");
    assert_eq!(sum.len(), 1);
    assert_eq!(sum[0].consecutive_failures, 2);
    assert_eq!(sum[0].last_error.as_deref(), Some("boom"));
    assert_eq!(sum[0].last_success, Some(t(1)));
}

#[test]
fn summaries_read_back_to_the_newest_success_only() {
    let (_dir, s) = ledger();
    // Oldest first: failed, succeeded, failed (other words), still open.
    let history = [
        (Some(RunState::Failed), Some("old")),
        (Some(RunState::Succeeded), None),
        (Some(RunState::Failed), Some("new")),
        (None, None),
    ];
    for (i, (state, error)) in history.into_iter().enumerate() {
        let id = started(&s, &new_run(t(i as u32 * 10)), t(0));
        if let Some(state) = state {
            s.set_run_state(id, state, error, t(i as u32 * 10 + 1))
                .expect("state");
        }
    }
    let sum = s.summaries().expect("summaries");
    assert_eq!(sum.len(), 1);
    // The open run is the last run but not part of the streak; the failure
    // before the success does not count.
    assert_eq!(sum[0].last_run.as_ref().map(|r| r.slot), Some(t(30)));
    assert_eq!(sum[0].consecutive_failures, 1);
    assert_eq!(sum[0].last_error.as_deref(), Some("new"));
    assert_eq!(sum[0].last_success, Some(t(11)));
    let one = s
        .target_summary(&sum[0].policy, &sum[0].target)
        .expect("summary")
        .expect("has run");
    assert_eq!(
        (one.consecutive_failures, one.last_error, one.last_success),
        (1, Some("new".to_string()), Some(t(11)))
    );
}

#[test]
fn lookups_by_run_and_by_snapshot_use_an_index() {
    let (_dir, s) = ledger();
    let conn = s.conn();
    for (sql, index) in [
        (
            "SELECT id FROM snapshots WHERE run_id = 1",
            "snapshots_by_run",
        ),
        (
            "SELECT id FROM operations WHERE snapshot = 1",
            "operations_by_snapshot",
        ),
    ] {
        let plan: String = conn
            .query_row(&format!("EXPLAIN QUERY PLAN {sql}"), [], |r| r.get(3))
            .expect("plan");
        assert!(plan.contains(index), "{sql}: {plan}");
    }
}

#[test]
fn read_only_open_of_a_missing_file_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqliteLedger::open_read_only(&dir.path().join("nope.db")).expect_err("missing");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// Another process (a CLI command, `login` storing a token) holds the
/// write lock when one of our read-then-write transactions starts, and
/// commits while that transaction is under way. The transaction must wait
/// for it (`busy_timeout`) and succeed: a DEFERRED one reads first and then
/// fails at its first write with SQLITE_BUSY_SNAPSHOT, which no timeout
/// covers, losing a slot's intents or an operation's outcome.
#[test]
fn read_then_write_transactions_wait_for_another_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let s = SqliteLedger::open(&path).expect("open");
    let contended = |what: &str, step: &dyn Fn() -> Result<()>| {
        let other = Connection::open(&path).expect("second connection");
        other
            .execute_batch(
                "BEGIN IMMEDIATE;
                 INSERT INTO schedule (policy, last_slot) VALUES ('other', '2026-01-01T00:00:00.000Z')
                 ON CONFLICT (policy) DO UPDATE SET last_slot = excluded.last_slot || 'x';",
            )
            .expect("second writer takes the write lock");
        let committer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            other
                .execute_batch("COMMIT")
                .expect("second writer commits");
        });
        let result = step();
        committer.join().expect("committer thread");
        if let Err(e) = result {
            panic!("{what} failed next to another writer instead of waiting: {e}");
        }
    };

    let run = std::cell::Cell::new(0);
    contended("begin_runs", &|| {
        match s.begin_runs(&[new_run(t(0))], t(0))?.as_slice() {
            [Begin::Started(id)] => run.set(*id),
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    });
    let op = std::cell::Cell::new(0);
    contended("record_created", &|| {
        let ops = s.record_created(
            run.get(),
            &[Created {
                snapshot_id: "ss-1".into(),
                operation: "j-1".into(),
            }],
            t(1),
            plan(t(1)),
        )?;
        op.set(ops[0].id);
        Ok(())
    });
    contended("finish_ops", &|| s.finish_ops(&[(op.get(), None)], t(2)));
    let row = s.live_snapshots("qc", "db", "vol-1").expect("live")[0].id;
    contended("begin_delete", &|| {
        s.begin_delete(row, "j-2", t(3), plan(t(3))).map(|_| ())
    });
    s.set_run_state(run.get(), RunState::Succeeded, None, t(4))
        .expect("finish run");
    let second = started(&s, &new_run(t(10)), t(10));
    contended("adopt_snapshot", &|| {
        s.adopt_snapshot(second, "ss-2", LedgerState::Available, t(11))
            .map(|_| ())
    });
    assert_eq!(s.run_snapshots(second).expect("snaps").len(), 1);
}

/// The health probe commits a real write (another connection sees it), so
/// a full disk fails it; taking the write lock alone wrote nothing
/// (`e2e_ledger::a_full_disk_under_the_ledger_turns_healthz_503_until_there_is_room`
/// shows it on a full filesystem).
#[test]
fn the_health_probe_commits_a_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let s = SqliteLedger::open(&path).expect("open");
    let other = Connection::open(&path).expect("second connection");
    let version = |c: &Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .expect("data_version")
    };
    let before = version(&other);
    s.probe_writable().expect("probe");
    assert_ne!(version(&other), before, "the probe changed the database");
    let at: String = other
        .query_row("SELECT at FROM health_probe WHERE id = 1", [], |r| r.get(0))
        .expect("probe row");
    assert!(parse_ts("health_probe.at", &at).is_ok(), "{at}");
}

/// The daemon reads every target's summary every few seconds: neither the
/// list of targets nor a target's skipped count may read every run it ever
/// had.
#[test]
fn summaries_do_not_scan_every_run() {
    let (_dir, s) = ledger();
    let conn = s.conn();
    let plan = |sql: &str, p: &[&str]| -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows = stmt
            .query_map(rusqlite::params_from_iter(p), |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows");
        rows.join("; ")
    };
    let pairs = plan(TARGET_PAIRS_SQL, &[]);
    assert!(
        !pairs.contains("runs"),
        "the target list reads the runs: {pairs}"
    );
    let skipped = plan(SKIPPED_COUNT_SQL, &["db", "vol-1"]);
    assert!(
        skipped.contains("runs_skipped"),
        "the skipped count reads every run of the target: {skipped}"
    );
}

/// One (policy, target) with a long history, trimmed at a horizon: old
/// finished runs and the rows of snapshots deleted long ago go; open runs,
/// live or failed snapshots and their runs, the newest success and the
/// failure streak after it stay, so the summary does not change.
#[test]
fn trimming_drops_old_history_and_keeps_what_matters() {
    let (_dir, s) = ledger();
    let day = |d: u32| t(0) + chrono::Duration::days(d as i64);
    // Days 0..=9: a run a day. Day 0-5 succeed, each with a snapshot that
    // retention deleted the next day (day 5's stays live); day 3 a skipped
    // slot; day 6 and 7 fail (the streak); day 8 failed with a failed
    // snapshot; day 9 still open.
    let mut snap_of_day = HashMap::new();
    for d in 0..=9u32 {
        let run = new_run(day(d));
        let id = started(&s, &run, day(d));
        if d == 3 {
            let skipped = NewRun {
                slot: day(d) + chrono::Duration::hours(1),
                ..new_run(day(d))
            };
            assert!(matches!(
                s.begin_run(&skipped, day(d)).expect("skipped"),
                Begin::Overlap { .. }
            ));
        }
        if d <= 5 || d == 8 {
            let ops = s
                .record_created(
                    id,
                    &[Created {
                        snapshot_id: format!("ss-{d}"),
                        operation: format!("j-{d}"),
                    }],
                    day(d),
                    plan(day(d)),
                )
                .expect("created");
            s.finish_op(ops[0].id, (d == 8).then_some("boom"), day(d))
                .expect("finish");
            // Each snapshot's listed source is recorded too (prune does
            // it): trimming must take that row along.
            s.record_snapshot_sources(&[(ops[0].snapshot_row, "vol-1")])
                .expect("source");
            snap_of_day.insert(d, ops[0].snapshot_row);
        }
        match d {
            0..=5 => s.set_run_state(id, RunState::Succeeded, None, day(d)),
            6..=8 => s.set_run_state(id, RunState::Failed, Some("boom"), day(d)),
            _ => Ok(()),
        }
        .expect("state");
        if (1..=5).contains(&d) {
            let prev = snap_of_day[&(d - 1)];
            let del = s
                .begin_delete(prev, &format!("d-{d}"), day(d), plan(day(d)))
                .expect("delete");
            s.finish_op(del.id, None, day(d)).expect("deleted");
        }
    }
    let before = s.summaries().expect("summaries");

    // Keep 3 days of history before day 9.
    let trimmed = s.trim(day(6)).expect("trim");
    assert!(trimmed.runs > 0 && trimmed.snapshots > 0, "{trimmed:?}");

    let runs = s.runs_for("db", "vol-1", 100).expect("runs");
    let slots: Vec<_> = runs.iter().map(|r| r.slot).collect();
    // Day 5 (newest success, its snapshot live), 6-8 (streak, one with a
    // failed snapshot), 9 (open) stay; days 0-4 and the skip go.
    assert_eq!(slots, vec![day(9), day(8), day(7), day(6), day(5)]);
    let snaps = s.all_snapshots().expect("snapshots");
    let ids: Vec<_> = snaps.iter().map(|r| r.snapshot_id.as_str()).collect();
    assert_eq!(ids, vec!["ss-5", "ss-8"]);
    assert!(s.ops_in_flight().expect("ops").is_empty());
    let after = s.summaries().expect("summaries");
    assert_eq!(after.len(), 1);
    assert_eq!(
        (
            &after[0].last_run,
            after[0].last_success,
            after[0].consecutive_failures,
            after[0].snapshots_kept
        ),
        (
            &before[0].last_run,
            before[0].last_success,
            before[0].consecutive_failures,
            before[0].snapshots_kept
        )
    );
    // Trimming again finds nothing more.
    let again = s.trim(day(6)).expect("trim again");
    assert_eq!((again.runs, again.snapshots, again.operations), (0, 0, 0));
}

/// A ledger from before migration 7 gets its target list from its runs.
#[test]
fn migration_7_lists_the_targets_of_an_older_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        let s = SqliteLedger::open(&path).expect("open");
        s.begin_run(&new_run(t(0)), t(0)).expect("begin");
        let other = NewRun {
            target: "vol-2".into(),
            ..new_run(t(0))
        };
        s.begin_run(&other, t(0)).expect("begin");
        // Back to version 6, as an older snapwarden left it.
        s.conn()
            .execute_batch(
                "DROP TABLE alerts_delivered; DROP TABLE targets; DROP INDEX runs_skipped; DROP INDEX runs_succeeded;
                 PRAGMA user_version = 6;",
            )
            .expect("downgrade");
    }
    let s = SqliteLedger::open(&path).expect("reopen");
    assert_eq!(s.schema_version().expect("version"), MIGRATIONS_LEN);
    let targets: Vec<_> = s
        .summaries()
        .expect("summaries")
        .into_iter()
        .map(|t| (t.policy, t.target, t.provider))
        .collect();
    assert_eq!(
        targets,
        vec![
            ("db".into(), "vol-1".into(), "qc".into()),
            ("db".into(), "vol-2".into(), "qc".into())
        ]
    );
}

#[test]
fn open_run_states_in_sql_are_the_open_states() {
    let all = [
        RunState::Intent,
        RunState::Creating,
        RunState::Pruning,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Skipped,
    ];
    let open: Vec<String> = all
        .iter()
        .filter(|s| s.is_open())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    assert_eq!(super::OPEN_RUN_STATES_SQL, open.join(", "));
}

/// A ledger call that waits for the database (another process holds the
/// write lock) leaves the runtime's thread free: on a one-thread runtime a
/// timer still fires on time meanwhile, and the call completes once the
/// lock is released. When the calls ran on the caller's thread, the wait
/// (up to `busy_timeout`) stopped every other task of that thread.
#[tokio::test(flavor = "current_thread")]
async fn a_call_waiting_on_the_database_does_not_hold_up_the_runtime() {
    use crate::state::Ledger;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let (dir, s) = ledger();
    let holder = rusqlite::Connection::open(dir.path().join("s.db")).expect("second connection");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let ledger: Arc<dyn Ledger> = Arc::new(s.clone());
    let write = tokio::spawn(async move { ledger.set_last_slot("db", t(5)).await });

    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let slept = started.elapsed();
    assert!(
        slept < Duration::from_secs(1),
        "a 100 ms timer took {slept:?}: the ledger call blocked the runtime"
    );
    assert!(!write.is_finished(), "the write waits for the lock");

    holder.execute_batch("COMMIT").expect("release the lock");
    write
        .await
        .expect("the write task")
        .expect("written once the lock is free");
    assert_eq!(s.last_slot("db").expect("read"), Some(t(5)));
}
