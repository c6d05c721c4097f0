use super::*;
use chrono::{DateTime, TimeZone, Utc};

use crate::providers::Created;

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

#[test]
fn a_read_only_open_reads_the_audit_trail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let entry = crate::state::AuditEntry {
        at: t(3),
        actor: "daemon (node a)".into(),
        action: crate::state::AuditAction::Create,
        policy: Some("db".into()),
        target: Some("vol-1".into()),
        snapshot: Some("ss-1".into()),
        detail: "slot".into(),
    };
    SqliteLedger::open(&path)
        .expect("open")
        .record_audit(std::slice::from_ref(&entry))
        .expect("record");
    let ro = SqliteLedger::open_read_only(&path).expect("read-only");
    assert_eq!(ro.audit_log(t(0), Some("db")).expect("read"), vec![entry]);
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
                "DROP TABLE audit_log; DROP TABLE snapshot_holds; ALTER TABLE snapshots DROP COLUMN delete_claim_until; ALTER TABLE snapshots DROP COLUMN size_bytes; DROP TABLE pauses; DROP TABLE post_hooks_owed; DROP TABLE ledger_moved; DROP INDEX runs_one_open; DROP TABLE alerts_delivered; DROP TABLE targets; DROP INDEX runs_skipped; DROP INDEX runs_succeeded;
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

/// At most one open run per (policy, target), whatever writes it.
#[test]
fn a_second_open_run_of_a_target_cannot_be_written() {
    let (_dir, s) = ledger();
    s.begin_run(&new_run(t(0)), t(0)).expect("begin");
    let err = s
        .conn()
        .execute_batch(
            "INSERT INTO runs (policy, target, provider, slot, name, full, state, started_at)
             VALUES ('db', 'vol-1', 'qc', '2026-01-01T00:00:09.000Z', 'n', 1, 'pruning',
                     '2026-01-01T00:00:09.000Z')",
        )
        .expect_err("a second open run");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    // Terminal runs of the target are not limited.
    s.conn()
        .execute_batch(
            "INSERT INTO runs (policy, target, provider, slot, name, full, state, started_at)
             VALUES ('db', 'vol-1', 'qc', '2026-01-01T00:00:09.000Z', 'n', 1, 'skipped',
                     '2026-01-01T00:00:09.000Z')",
        )
        .expect("a skipped slot");
}

/// An owed post hook whose command or time cannot be read (a hand edit, a
/// value of another type) is left out (and logged); the others are still
/// listed, so their thaws still run.
#[test]
fn an_unreadable_owed_post_hook_hides_no_other() {
    let (_dir, s) = ledger();
    let mut runs = Vec::new();
    for target in ["vol-1", "vol-2", "vol-3", "vol-4"] {
        let id = started(
            &s,
            &NewRun {
                target: target.into(),
                ..new_run(t(0))
            },
            t(0),
        );
        s.owe_post_hook(id, &["thaw".to_string(), target.to_string()], target, t(1))
            .expect("owe");
        runs.push(id);
    }
    s.execute_for_tests(&format!(
        "UPDATE post_hooks_owed SET command = '{{\"argv\": 1}}' WHERE run_id = {};
         UPDATE post_hooks_owed SET since = 42 WHERE run_id = {};
         UPDATE post_hooks_owed SET since = 'yesterday' WHERE run_id = {}",
        runs[0], runs[1], runs[3]
    ));
    let owed: Vec<_> = s
        .post_hooks_owed()
        .expect("the readable ones")
        .into_iter()
        .map(|h| (h.run_id, h.command))
        .collect();
    assert_eq!(
        owed,
        vec![(runs[2], vec!["thaw".to_string(), "vol-3".to_string()])]
    );
}
