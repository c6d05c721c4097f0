//! `migrate-state`'s two halves: a SQLite ledger exported and imported
//! into a fresh PostgreSQL ledger answers every read the same, and a
//! moved SQLite ledger refuses to open.

use std::path::Path;

use super::tests::{fresh_pg, lead, new_run, plan, t};
use super::*;
use crate::config::Secret;
use crate::providers::{Created, StoredSecret};

fn created(id: &str, op: &str) -> Created {
    Created {
        snapshot_id: id.into(),
        operation: op.into(),
    }
}

fn run_on(target: &str, slot: DateTime<Utc>) -> NewRun {
    NewRun {
        target: target.into(),
        name: format!("db-{target}-{}", slot.timestamp()),
        ..new_run(slot)
    }
}

async fn begin(l: &dyn Ledger, target: &str, slot: DateTime<Utc>) -> i64 {
    match l
        .begin_run(&run_on(target, slot), slot)
        .await
        .expect("begin")
    {
        Begin::Started(id) => id,
        other => panic!("{target} must start, got {other:?}"),
    }
}

/// A ledger with runs in every state, snapshots in every state,
/// operations in flight and finished, a hold, a secret, policy rules,
/// sources, a delivered alert, the schedule's slot and post hooks owed.
async fn populate(l: &dyn Ledger) {
    // vol-a: creating, one snapshot available, one still being created.
    let a = begin(l, "vol-a", t(0)).await;
    let ops = l
        .record_created(
            a,
            &[created("snap-a1", "job-a1"), created("snap-a2", "job-a2")],
            t(1),
            plan(t(1)),
        )
        .await
        .expect("created");
    l.finish_op(ops[0].id, None, t(2)).await.expect("finish a1");
    // vol-b: an intent, and a slot skipped behind it.
    begin(l, "vol-b", t(0)).await;
    assert!(matches!(
        l.begin_run(&run_on("vol-b", t(10)), t(10))
            .await
            .expect("overlap"),
        Begin::Overlap { .. }
    ));
    // vol-c: pruning.
    let c = begin(l, "vol-c", t(0)).await;
    l.set_run_state(c, RunState::Pruning, None, t(3))
        .await
        .expect("pruning");
    // vol-d: succeeded; of its snapshots one is being deleted, one is
    // deleted, one failed.
    let d = begin(l, "vol-d", t(0)).await;
    let ops = l
        .record_created(
            d,
            &[
                created("snap-d1", "job-d1"),
                created("snap-d2", "job-d2"),
                created("snap-d3", "job-d3"),
            ],
            t(1),
            plan(t(1)),
        )
        .await
        .expect("created d");
    l.finish_ops(
        &[
            (ops[0].id, None),
            (ops[1].id, None),
            (ops[2].id, Some("quota")),
        ],
        t(4),
    )
    .await
    .expect("finish d");
    l.set_run_state(d, RunState::Succeeded, None, t(5))
        .await
        .expect("succeeded");
    l.begin_delete(ops[0].snapshot_row, "del-d1", t(6), plan(t(6)))
        .await
        .expect("delete d1");
    l.mark_deleted(ops[1].snapshot_row, t(7))
        .await
        .expect("deleted d2");
    // vol-e: failed.
    let e = begin(l, "vol-e", t(0)).await;
    l.set_run_state(e, RunState::Failed, Some("the cloud said no"), t(2))
        .await
        .expect("failed");

    l.hold_deletes("db", "vol-d", "a reload would delete 4", t(8))
        .await
        .expect("hold");
    l.store_secret(
        "ip4g",
        "refresh_token",
        &StoredSecret {
            value: Secret::new("rt-2"),
            seed: "fp-1".into(),
        },
        None,
    )
    .await
    .expect("secret");
    l.record_policy_rules(&[("db", "qc", "daily=7")], t(0))
        .await
        .expect("rules");
    l.record_snapshot_sources(&[
        (ops[0].snapshot_row, "disk-1"),
        (ops[1].snapshot_row, "disk-2"),
    ])
    .await
    .expect("sources");
    // Sizes: d1 (being deleted, still kept) past 4 GiB, d2 (deleted)
    // small; d3 never listed, so none.
    l.record_sizes(&[
        (ops[0].snapshot_row, 5_000_000_000),
        (ops[1].snapshot_row, 1234),
    ])
    .await
    .expect("sizes");
    l.record_alert_delivered("db", "vol-e", "failure", t(9))
        .await
        .expect("alert");
    l.set_last_slot("db", t(10)).await.expect("slot");
    // vol-c froze and owes its thaw; vol-e, long failed, still owes one
    // too (argv with spaces and non-ASCII).
    l.owe_post_hook(
        c,
        &["thaw".to_string(), "vol-c".to_string()],
        "disk-c",
        t(3),
    )
    .await
    .expect("owe c");
    l.owe_post_hook(
        e,
        &["/opt/hooks/dégel".to_string(), "/srv/data dir".to_string()],
        "disk-e",
        t(1),
    )
    .await
    .expect("owe e");
    // Every policy paused until resumed, db until a time, and web's
    // pause, which has ended but is still stored.
    l.pause(Some("web"), "short", "ann", t(5), Some(t(6)))
        .await
        .expect("pause web");
    l.pause(None, "freeze ✓", "ann", t(2), None)
        .await
        .expect("pause all");
    l.pause(Some("db"), "db migration", "bob", t(4), Some(t(40)))
        .await
        .expect("pause db");
    // Snapshot holds: one that has ended but is still stored, one on a
    // snapshot until released, and vol-d's target-wide one until a time.
    let hold = |target: &str, id: Option<&str>, by: &str, until| SnapshotHold {
        policy: "db".into(),
        target: target.into(),
        snapshot_id: id.map(str::to_string),
        reason: "legal case ✓".into(),
        by: by.into(),
        since: t(0),
        until,
    };
    l.hold(&hold("vol-x", Some("orphan-1"), "ann", Some(t(6))), t(5))
        .await
        .expect("hold an orphan");
    l.hold(&hold("vol-a", Some("snap-a1"), "ann", None), t(2))
        .await
        .expect("hold snap-a1");
    l.hold(&hold("vol-d", None, "bob", Some(t(40))), t(4))
        .await
        .expect("hold vol-d");
    // The audit trail: two entries of one time (their order is their
    // ids'), one of no policy.
    let audit = |at, action, policy: Option<&str>, detail: &str| AuditEntry {
        at,
        actor: "daemon (node a)".into(),
        action,
        policy: policy.map(str::to_string),
        target: policy.map(|_| "vol-a".to_string()),
        snapshot: policy.map(|_| "snap-a1".to_string()),
        detail: detail.into(),
    };
    l.record_audit(&[
        audit(t(1), AuditAction::Create, Some("db"), "slot ✓"),
        audit(t(1), AuditAction::Delete, Some("db"), "beyond keep_last 1"),
        audit(t(2), AuditAction::Pause, None, "freeze ✓"),
    ])
    .await
    .expect("audit");
}

/// Every read the daemon and the commands make, as one comparable value.
async fn reads(l: &dyn Ledger) -> String {
    let mut runs = Vec::new();
    for id in 1..=8 {
        runs.push(format!("{:?}", l.run(id).await.ok()));
    }
    let mut snapshots = l.all_snapshots().await.expect("snapshots");
    snapshots.sort_by_key(|s| s.id);
    let mut ops = l.ops_in_flight().await.expect("ops");
    ops.sort_by_key(|o| o.id);
    let mut open = l.open_runs().await.expect("open");
    open.sort_by_key(|r| r.id);
    let mut sources: Vec<_> = l
        .all_snapshot_sources()
        .await
        .expect("sources")
        .into_iter()
        .collect();
    sources.sort();
    let mut alerts: Vec<_> = l
        .alerts_delivered()
        .await
        .expect("alerts")
        .into_iter()
        .collect();
    alerts.sort();
    format!(
        "runs {runs:?}\nsummaries {:?}\nsnapshots {snapshots:?}\nops {ops:?}\nopen {open:?}\n\
         holds {:?}\nrules {:?}\nsources {sources:?}\nalerts {alerts:?}\nslot {:?}\nsecret {:?}\n\
         skipped {:?}\nfailed deletes {:?}\nowed {:?}\npauses {:?}\npauses later {:?}\n\
         snapshot holds {:?}\nsnapshot holds later {:?}\naudit {:?}",
        l.summaries().await.expect("summaries"),
        l.delete_holds().await.expect("holds"),
        l.policy_rules().await.expect("rules"),
        l.last_slot("db").await.expect("slot"),
        l.load_secret("ip4g", "refresh_token")
            .await
            .expect("secret")
            .map(|s| (s.value.expose().to_string(), s.seed)),
        l.newest_skipped("db", "vol-b").await.expect("skipped"),
        l.failed_deletes().await.expect("failed deletes"),
        l.post_hooks_owed().await.expect("owed"),
        l.pauses(t(0)).await.expect("pauses"),
        l.pauses(t(7)).await.expect("pauses later"),
        l.holds(t(0)).await.expect("snapshot holds"),
        l.holds(t(7)).await.expect("snapshot holds later"),
        l.audit_log(t(0), None).await.expect("audit"),
    )
}

fn sqlite_at(dir: &Path) -> SqliteLedger {
    SqliteLedger::open(&dir.join("state.db")).expect("open")
}

#[tokio::test]
async fn an_imported_ledger_answers_as_the_sqlite_one() {
    let Some((_, pg)) =
        fresh_pg("tests_migrate::an_imported_ledger_answers_as_the_sqlite_one").await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = sqlite_at(dir.path());
    populate(&sqlite).await;
    let dump = sqlite.export().expect("export");
    assert_eq!(dump.runs.len(), 6, "five targets and a skipped slot");
    let report = pg.import(&dump).await.expect("import");
    assert_eq!(report.tables, dump.checks());
    let want = reads(&sqlite).await;
    assert_eq!(reads(&pg).await, want);
    // Every state of runs and snapshots was exercised, so the check of
    // each is meaningful.
    let runs = &dump.checks()[0].1.by_state;
    assert_eq!(runs.len(), 6, "{runs:?}");
    let snapshots = &dump.checks()[1].1.by_state;
    assert_eq!(snapshots.len(), 5, "{snapshots:?}");
    // The sizes came along (`reads` compared them too), and vol-d keeps
    // the bytes of its one kept snapshot.
    let sizes: Vec<_> = pg
        .all_snapshots()
        .await
        .expect("snapshots")
        .into_iter()
        .filter_map(|s| s.size_bytes.map(|b| (s.snapshot_id, b)))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("snap-d1".to_string(), 5_000_000_000),
            ("snap-d2".into(), 1234)
        ]
    );
    let d = pg
        .target_summary("db", "vol-d")
        .await
        .expect("summary")
        .expect("vol-d");
    assert_eq!((d.snapshots_kept, d.bytes_kept), (1, Some(5_000_000_000)));
    // The owed post hooks came along, and are still owed on PostgreSQL.
    assert_eq!(dump.post_hooks_owed.len(), 2);
    let hooks = report
        .tables
        .iter()
        .find(|(table, _)| *table == "post_hooks_owed")
        .expect("post_hooks_owed is checked");
    let owed_runs: Vec<_> = dump.post_hooks_owed.iter().map(|h| h.run_id).collect();
    assert_eq!(
        (hooks.1.rows, owed_runs),
        (2, vec![4, 6]),
        "vol-c and vol-e"
    );
    assert_eq!(pg.post_hooks_owed().await.expect("owed").len(), 2);
    // The pauses came along, the ended one too, and are in force on
    // PostgreSQL.
    let pauses = report
        .tables
        .iter()
        .find(|(table, _)| *table == "pauses")
        .expect("pauses are checked");
    assert_eq!((dump.pauses.len(), pauses.1.rows), (3, 3));
    let in_force: Vec<_> = pg
        .pauses(t(7))
        .await
        .expect("pauses")
        .into_iter()
        .map(|p| (p.policy, p.by))
        .collect();
    assert_eq!(
        in_force,
        vec![(None, "ann".to_string()), (Some("db".into()), "bob".into())]
    );
    // The snapshot holds came along, the ended one too, and are in
    // force on PostgreSQL.
    let holds = report
        .tables
        .iter()
        .find(|(table, _)| *table == "snapshot_holds")
        .expect("snapshot holds are checked");
    assert_eq!((dump.snapshot_holds.len(), holds.1.rows), (3, 3));
    let in_force: Vec<_> = pg
        .holds(t(7))
        .await
        .expect("holds")
        .into_iter()
        .map(|h| (h.target, h.snapshot_id, h.by))
        .collect();
    assert_eq!(
        in_force,
        vec![
            (
                "vol-a".to_string(),
                Some("snap-a1".to_string()),
                "ann".to_string()
            ),
            ("vol-d".into(), None, "bob".into())
        ]
    );

    // The audit trail came along, in its order.
    assert_eq!(dump.audit_log.len(), 3);
    let audit = report
        .tables
        .iter()
        .find(|(table, _)| *table == "audit_log")
        .expect("audit_log is checked");
    assert_eq!((audit.1.rows, audit.1.by_state.len()), (3, 3));

    // A second import into the now full ledger is refused and changes
    // nothing.
    let err = pg.import(&dump).await.expect_err("not empty");
    let msg = err.to_string();
    assert!(
        msg.contains("runs has 6 rows") && msg.contains("empty database"),
        "{msg}"
    );
    assert_eq!(reads(&pg).await, want);

    // New rows get ids past every imported one.
    lead(&pg).await;
    let max = |table: usize| dump.checks()[table].1.max_id.expect("rows");
    let id = begin(&pg, "vol-new", t(20)).await;
    assert!(id > max(0), "run id {id}");
    let ops = pg
        .record_created(id, &[created("snap-new", "job-new")], t(21), plan(t(21)))
        .await
        .expect("created on PostgreSQL");
    assert!(ops[0].snapshot_row > max(1), "{:?}", ops[0]);
    assert!(ops[0].id > max(2), "{:?}", ops[0]);
    // And new audit entries come after the imported ones.
    let later = AuditEntry {
        at: t(1),
        actor: "ann".into(),
        action: AuditAction::Resume,
        policy: None,
        target: None,
        snapshot: None,
        detail: "resumed".into(),
    };
    pg.record_audit(std::slice::from_ref(&later))
        .await
        .expect("audit on PostgreSQL");
    let details: Vec<_> = pg
        .audit_log(t(1), None)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        details,
        vec!["slot ✓", "beyond keep_last 1", "resumed", "freeze ✓"]
    );
}

#[tokio::test]
async fn a_ledger_led_by_a_node_is_not_imported_into() {
    let Some((_, pg)) =
        fresh_pg("tests_migrate::a_ledger_led_by_a_node_is_not_imported_into").await
    else {
        return;
    };
    lead(&pg).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = sqlite_at(dir.path());
    populate(&sqlite).await;
    let err = pg
        .import(&sqlite.export().expect("export"))
        .await
        .expect_err("led");
    assert!(err.to_string().contains("stop every daemon"), "{err}");
    assert!(pg.open_runs().await.expect("runs").is_empty());
}

#[test]
fn a_row_that_cannot_be_read_fails_the_export_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = sqlite_at(dir.path());
    sqlite.execute_for_tests(
        "INSERT INTO runs (id, policy, target, provider, slot, name, full, state, started_at)
         VALUES (41, 'db', 'vol-1', 'qc', '2026-01-01T00:00:00.000Z', 'n', 1, 'exploded',
                 '2026-01-01T00:00:00.000Z');
         INSERT INTO delete_holds (policy, target, reason, since)
         VALUES ('db', 'vol-2', 'r', 'yesterday');",
    );
    let err = sqlite.export().expect_err("corrupt run");
    assert!(err.to_string().contains("runs row id 41"), "{err}");
    sqlite.execute_for_tests("UPDATE runs SET state = 'failed' WHERE id = 41");
    let err = sqlite.export().expect_err("corrupt hold");
    assert!(
        err.to_string().contains("delete_holds row (db, vol-2)"),
        "{err}"
    );
    sqlite.execute_for_tests(
        "UPDATE delete_holds SET since = '2026-01-01T00:00:00.000Z';
         INSERT INTO post_hooks_owed (run_id, command, resource, since)
         VALUES (41, 'thaw --all', 'disk-1', '2026-01-01T00:00:00.000Z');",
    );
    let err = sqlite.export().expect_err("corrupt owed post hook");
    assert!(
        err.to_string().contains("post_hooks_owed row run_id 41"),
        "{err}"
    );
}

#[test]
fn a_moved_ledger_refuses_every_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let at = t(30);
    {
        let sqlite = SqliteLedger::open(&path).expect("open");
        assert_eq!(sqlite.moved().expect("moved"), None);
        sqlite
            .mark_moved("postgres://sw@127.0.0.1/ledger", at)
            .expect("mark");
    }
    let want = format!(
        "the ledger at {} was moved to postgres://sw@127.0.0.1/ledger on 2026-01-01 00:00:30 UTC \
         by `snapwarden migrate-state`: set `state_url` (and `state_password_file`) in [daemon] \
         to use it; this file is kept only as a record",
        path.display()
    );
    for (how, opened) in [
        ("open", SqliteLedger::open(&path)),
        (
            "open_locked",
            SqliteLedger::open_locked(&path, "snapwarden run"),
        ),
        ("open_read_only", SqliteLedger::open_read_only(&path)),
        ("open_control", SqliteLedger::open_control(&path)),
    ] {
        let err = opened.expect_err(how);
        assert!(matches!(err, StateError::Moved { .. }), "{how}: {err:?}");
        assert_eq!(err.to_string(), want, "{how}");
    }
    let again = SqliteLedger::open_for_migration(&path, "snapwarden migrate-state")
        .expect("migrate-state still opens it");
    assert_eq!(
        again.moved().expect("moved"),
        Some(Moved {
            location: "postgres://sw@127.0.0.1/ledger".into(),
            at,
        })
    );
}

/// 100,000 runs and 100,000 snapshots copy in seconds (batched inserts,
/// not one round trip a row). Ignored by default: it takes a while in a
/// debug build; run it with `--ignored --nocapture` to see the times.
#[tokio::test]
#[ignore]
async fn a_large_ledger_copies_in_seconds() {
    let Some((_, pg)) = fresh_pg("tests_migrate::a_large_ledger_copies_in_seconds").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = sqlite_at(dir.path());
    sqlite.execute_for_tests(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO runs (id, policy, target, provider, slot, name, full, state, started_at, finished_at)
         SELECT i, 'db', 'vol-' || (i % 100), 'qc',
                strftime('%Y-%m-%dT%H:%M:%S.000Z', 1700000000 + i * 60, 'unixepoch'),
                'db-' || i, i % 2, 'succeeded',
                strftime('%Y-%m-%dT%H:%M:%S.000Z', 1700000000 + i * 60, 'unixepoch'),
                strftime('%Y-%m-%dT%H:%M:%S.000Z', 1700000030 + i * 60, 'unixepoch')
         FROM n;
         INSERT INTO snapshots (id, run_id, provider, policy, target, slot, name, snapshot_id,
                                state, full, created_at, completed_at)
         SELECT id, id, provider, policy, target, slot, name, 'snap-' || id, 'available', full,
                started_at, finished_at FROM runs;",
    );
    let started = std::time::Instant::now();
    let dump = sqlite.export().expect("export");
    let exported = started.elapsed();
    let report = pg.import(&dump).await.expect("import");
    eprintln!(
        "100,000 runs + 100,000 snapshots: export {:.2}s, import (with checks) {:.2}s",
        exported.as_secs_f64(),
        report.elapsed.as_secs_f64()
    );
    assert_eq!(report.tables[0].1.rows, 100_000);
    assert_eq!(report.tables[1].1.rows, 100_000);
    assert!(
        exported + report.elapsed < std::time::Duration::from_secs(60),
        "took {:?} + {:?}",
        exported,
        report.elapsed
    );
}

/// A value changed on the way (here by a trigger that shifts every slot by
/// an hour, as a time zone mix-up would) fails the check: the copy is
/// rolled back and the ledger stays empty.
#[tokio::test]
async fn a_value_changed_in_the_copy_rolls_it_back() {
    let Some((_, pg)) = fresh_pg("tests_migrate::a_value_changed_in_the_copy_rolls_it_back").await
    else {
        return;
    };
    pg.execute_for_tests(
        "CREATE FUNCTION shift_slot() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.slot := NEW.slot + interval '1 hour'; RETURN NEW; END $$;
         CREATE TRIGGER shift_slot BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION shift_slot();",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = sqlite_at(dir.path());
    populate(&sqlite).await;
    let err = pg
        .import(&sqlite.export().expect("export"))
        .await
        .expect_err("a shifted slot");
    assert!(matches!(err, StateError::ImportMismatch(_)), "{err:?}");
    assert!(err.to_string().contains("runs: copied"), "{err}");
    for table in dump::TABLES {
        assert_eq!(
            pg.query_for_tests(&format!("SELECT count(*) FROM {table}"))
                .await,
            vec!["0".to_string()],
            "{table}"
        );
    }
}

/// A size changed on the way fails the check as well: the copy is rolled
/// back.
#[tokio::test]
async fn a_size_changed_in_the_copy_rolls_it_back() {
    let Some((_, pg)) = fresh_pg("tests_migrate::a_size_changed_in_the_copy_rolls_it_back").await
    else {
        return;
    };
    pg.execute_for_tests(
        "CREATE FUNCTION bump_size() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.size_bytes := NEW.size_bytes + 1; RETURN NEW; END $$;
         CREATE TRIGGER bump_size BEFORE INSERT ON snapshots FOR EACH ROW EXECUTE FUNCTION bump_size();",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = sqlite_at(dir.path());
    populate(&sqlite).await;
    let err = pg
        .import(&sqlite.export().expect("export"))
        .await
        .expect_err("a size changed");
    assert!(matches!(err, StateError::ImportMismatch(_)), "{err:?}");
    assert!(err.to_string().contains("snapshots: copied"), "{err}");
    assert_eq!(
        pg.query_for_tests("SELECT count(*) FROM snapshots").await,
        vec!["0".to_string()]
    );
}
