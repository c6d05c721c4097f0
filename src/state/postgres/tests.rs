//! PostgreSQL only: fencing, the one-open-run index under a race,
//! migrations from two nodes at once, a database too new, unreadable rows.

use super::*;
use crate::state::pg_cluster;
use crate::state::tests::{fresh_pg, lead, new_run, plan, t, EPOCH, HOLDER};
use crate::state::{Begin, Ledger, LedgerState, NewRun, RunState};

fn not_leader<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    match r {
        Err(StateError::NotLeader { .. }) => {}
        other => panic!("{what}: expected NotLeader, got {other:?}"),
    }
}

async fn count(l: &PgLedger, table: &str) -> i64 {
    l.query_for_tests(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .first()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

/// Every decision write, refused; returns what each table held.
async fn decisions_refused(l: &PgLedger, snapshot: i64, run: i64) {
    not_leader("begin_run", l.begin_run(&new_run(t(50)), t(50)).await);
    not_leader("begin_runs", l.begin_runs(&[new_run(t(50))], t(50)).await);
    not_leader("set_last_slot", l.set_last_slot("db", t(50)).await);
    not_leader(
        "set_run_state",
        l.set_run_state(run, RunState::Failed, Some("x"), t(50))
            .await,
    );
    not_leader(
        "begin_delete",
        l.begin_delete(snapshot, "d-1", t(50), plan(t(50))).await,
    );
    not_leader(
        "begin_restore",
        l.begin_restore(snapshot, "r-1", t(50), plan(t(50))).await,
    );
    not_leader(
        "hold_deletes",
        l.hold_deletes("db", "vol-1", "why", t(50)).await,
    );
    not_leader("release_deletes", l.release_deletes("db", "vol-1").await);
    not_leader(
        "record_policy_rules",
        l.record_policy_rules(&[("db", "qc", "retain=1")], t(50))
            .await,
    );
    not_leader("trim", l.trim(t(50)).await);
    not_leader(
        "owe_post_hook",
        l.owe_post_hook(run, &["thaw".to_string()], "vol-1", t(50))
            .await,
    );
    let skipped = [
        new_run(t(50)),
        NewRun {
            target: "vol-never-seen".into(),
            ..new_run(t(50))
        },
    ];
    not_leader(
        "skip_runs",
        l.skip_runs(&skipped, "skipped: paused", t(50)).await,
    );
}

/// What the decision writes would change, for "nothing was written".
async fn footprint(l: &PgLedger) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "runs",
        "operations",
        "schedule",
        "delete_holds",
        "policy_rules",
        "snapshots",
        "post_hooks_owed",
        "targets",
    ] {
        out.push(format!("{table}={}", count(l, table).await));
    }
    out.extend(
        l.query_for_tests("SELECT state FROM runs ORDER BY id")
            .await,
    );
    out.extend(
        l.query_for_tests("SELECT state FROM snapshots ORDER BY id")
            .await,
    );
    out.extend(
        l.query_for_tests("SELECT command || resource FROM post_hooks_owed ORDER BY run_id")
            .await,
    );
    out
}

#[tokio::test]
async fn decision_writes_need_the_lease_and_facts_do_not() {
    let Some((_, l)) = fresh_pg("decision_writes_need_the_lease_and_facts_do_not").await else {
        return;
    };
    // No fence at all: refused, and the message says so.
    let err = l
        .begin_run(&new_run(t(0)), t(0))
        .await
        .expect_err("not the leader");
    assert!(
        err.to_string()
            .contains("does not hold the scheduler lease"),
        "{err}"
    );
    assert_eq!(count(&l, "runs").await, 0);

    // The leader's intent carries its epoch; so do its operations.
    lead(&l).await;
    let Begin::Started(run) = l.begin_run(&new_run(t(0)), t(0)).await.expect("begin") else {
        panic!("a fresh slot starts");
    };
    let ops = l
        .record_created(
            run,
            &[crate::providers::Created {
                snapshot_id: "ss-1".into(),
                operation: "j-1".into(),
            }],
            t(1),
            plan(t(1)),
        )
        .await
        .expect("record");
    let epochs = l
        .query_for_tests("SELECT epoch FROM runs UNION ALL SELECT epoch FROM operations")
        .await;
    assert_eq!(epochs, vec![EPOCH.to_string(), EPOCH.to_string()]);
    let snapshot = ops[0].snapshot_row;
    // The leader freezes: the thaw is owed.
    l.owe_post_hook(run, &["thaw".to_string(), "db".to_string()], "vol-1", t(1))
        .await
        .expect("the leader owes a post hook");

    // Without a fence every decision write is refused and writes nothing.
    l.set_fence(None);
    let before = footprint(&l).await;
    decisions_refused(&l, snapshot, run).await;
    assert_eq!(footprint(&l).await, before, "nothing was written");

    // Facts are written by whoever learns them: a post hook that ran (a
    // node that lost the lead mid-run still thaws what it froze).
    assert!(l.post_hook_ran(run).await.expect("ran without the lease"));
    assert_eq!(count(&l, "post_hooks_owed").await, 0);
    l.finish_op(ops[0].id, None, t(2)).await.expect("finish");
    l.record_snapshot_sources(&[(snapshot, "v-1")])
        .await
        .expect("sources");
    l.set_snapshot_state(snapshot, LedgerState::Available, None, t(3))
        .await
        .expect("state");
    l.record_alert_delivered("db", "vol-1", "failure", t(3))
        .await
        .expect("alert");
    l.reschedule_ops(&[(ops[0].id, t(4), std::time::Duration::from_secs(2))])
        .await
        .expect("reschedule");
    let secret = crate::providers::StoredSecret {
        value: crate::config::Secret::new("tok"),
        seed: "s".into(),
    };
    crate::providers::SecretStore::store_secret(&l, "ip4g", "refresh", &secret, None)
        .await
        .expect("secret");
    l.adopt_snapshot(run, "ss-2", LedgerState::Available, t(5))
        .await
        .expect("adopt");
    let unfenced = l
        .record_created(
            run,
            &[crate::providers::Created {
                snapshot_id: "ss-3".into(),
                operation: "j-3".into(),
            }],
            t(6),
            plan(t(6)),
        )
        .await
        .expect("record without a fence");
    let epoch = l
        .query_for_tests(&format!(
            "SELECT COALESCE(epoch::text, 'null') FROM operations WHERE id = {}",
            unfenced[0].id
        ))
        .await;
    assert_eq!(epoch, vec!["null".to_string()]);
    l.mark_deleted(snapshot, t(7)).await.expect("deleted");
}

#[tokio::test]
async fn sizes_need_no_lease() {
    let Some((_, l)) = fresh_pg("sizes_need_no_lease").await else {
        return;
    };
    lead(&l).await;
    let run = match l.begin_run(&new_run(t(0)), t(0)).await.expect("begin") {
        Begin::Started(id) => id,
        other => panic!("must start, got {other:?}"),
    };
    l.adopt_snapshot(run, "ss-1", LedgerState::Available, t(1))
        .await
        .expect("adopt");
    let row = l.run_snapshots(run).await.expect("of run")[0].id;

    // A size is what a listing said: any process records it.
    l.set_fence(None);
    l.record_sizes(&[(row, 4096)])
        .await
        .expect("record without the lease");
    assert_eq!(l.snapshot(row).await.expect("row").size_bytes, Some(4096));
}

#[tokio::test]
async fn pauses_need_no_lease_and_skipped_slots_do() {
    let Some((_, l)) = fresh_pg("pauses_need_no_lease_and_skipped_slots_do").await else {
        return;
    };
    // An operator's process holds no lease: it pauses and resumes.
    l.pause(Some("db"), "migration", "ann", t(0), Some(t(59)))
        .await
        .expect("pause without the lease");
    l.pause(None, "freeze", "ann", t(1), None)
        .await
        .expect("pause every policy without the lease");
    let policies: Vec<_> = l
        .pauses(t(2))
        .await
        .expect("pauses")
        .into_iter()
        .map(|p| p.policy)
        .collect();
    assert_eq!(policies, vec![None, Some("db".to_string())]);
    let lifted = l
        .resume(None)
        .await
        .expect("resume without the lease")
        .expect("every policy was paused");
    assert_eq!((lifted.reason.as_str(), lifted.since), ("freeze", t(1)));
    assert_eq!(count(&l, "pauses").await, 1);

    // Recording the slots a pause skipped is the schedule's decision.
    let runs = [
        new_run(t(10)),
        NewRun {
            target: "vol-2".into(),
            ..new_run(t(10))
        },
    ];
    let why = "skipped: paused by ann: migration";
    not_leader("skip_runs", l.skip_runs(&runs, why, t(10)).await);
    assert_eq!(
        (count(&l, "runs").await, count(&l, "targets").await),
        (0, 0)
    );

    // The leader records them, with its epoch.
    lead(&l).await;
    assert_eq!(
        l.skip_runs(&runs, why, t(10))
            .await
            .expect("skip as the leader"),
        vec![true, true]
    );
    assert_eq!(
        l.query_for_tests("SELECT state || ' ' || epoch || ' ' || error FROM runs ORDER BY id")
            .await,
        vec![format!("skipped {EPOCH} {why}"); 2]
    );
    assert_eq!(count(&l, "targets").await, 2);
}

#[tokio::test]
async fn a_wrong_epoch_or_an_expired_lease_is_not_the_leader() {
    let Some((_, l)) = fresh_pg("a_wrong_epoch_or_an_expired_lease_is_not_the_leader").await else {
        return;
    };
    lead(&l).await;
    let Begin::Started(run) = l.begin_run(&new_run(t(0)), t(0)).await.expect("begin") else {
        panic!("a fresh slot starts");
    };
    let snap = l
        .adopt_snapshot(run, "ss-1", LedgerState::Available, t(1))
        .await
        .expect("adopt");

    // Another node took over: the epoch moved on.
    l.set_fence(Some(Fence {
        holder: HOLDER.into(),
        epoch: EPOCH - 1,
    }));
    let before = footprint(&l).await;
    decisions_refused(&l, snap.id, run).await;
    let err = l.set_last_slot("db", t(9)).await.expect_err("old epoch");
    assert!(
        err.to_string().contains("leadership moved")
            && err.to_string().contains(&(EPOCH - 1).to_string()),
        "{err}"
    );
    // Another holder with our epoch is not us either.
    l.set_fence(Some(Fence {
        holder: "node-b:2".into(),
        epoch: EPOCH,
    }));
    decisions_refused(&l, snap.id, run).await;
    // The lease expired without renewal.
    l.set_fence(Some(Fence {
        holder: HOLDER.into(),
        epoch: EPOCH,
    }));
    l.execute_for_tests("UPDATE leader_lease SET expires_at = now() - interval '1 second'")
        .await;
    decisions_refused(&l, snap.id, run).await;
    assert_eq!(footprint(&l).await, before, "nothing was written");

    // Renewed: the same fence writes again.
    l.execute_for_tests("UPDATE leader_lease SET expires_at = now() + interval '1 minute'")
        .await;
    l.set_last_slot("db", t(9))
        .await
        .expect("the leader writes");
    assert_eq!(l.last_slot("db").await.expect("slot"), Some(t(9)));
}

/// Two processes begin a slot of the same (policy, target) at once, each
/// on its own connection: one intent is written, the other is an overlap
/// or fails; never two open runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_never_open_two_runs_of_one_target() {
    let Some((url, a)) = fresh_pg("two_writers_never_open_two_runs_of_one_target").await else {
        return;
    };
    let b = PgLedger::connect(&url, None, PgOptions::default())
        .await
        .expect("second process");
    lead(&a).await;
    b.set_fence(a.fence());
    for i in 0..20u32 {
        let target = format!("vol-{i}");
        let run = |slot| NewRun {
            target: target.clone(),
            ..new_run(slot)
        };
        let (ra, rb) = (run(t(0)), run(t(1)));
        let (x, y) = tokio::join!(a.begin_run(&ra, t(0)), b.begin_run(&rb, t(1)));
        let started = [&x, &y]
            .iter()
            .filter(|r| matches!(r, Ok(Begin::Started(_))))
            .count();
        assert_eq!(started, 1, "{target}: {x:?} / {y:?}");
        for r in [&x, &y] {
            assert!(
                matches!(
                    r,
                    Ok(Begin::Started(_)) | Ok(Begin::Overlap { .. }) | Err(_)
                ),
                "{target}: {r:?}"
            );
        }
        let open = a
            .query_for_tests(&format!(
                "SELECT COUNT(*) FROM runs WHERE target = '{target}'
                   AND state IN ('intent', 'creating', 'pruning')"
            ))
            .await;
        assert_eq!(open, vec!["1".to_string()], "{target}");
    }
    // The index itself: a second open run of a target cannot be written.
    let cluster = pg_cluster::shared().expect("cluster");
    let db = url
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .expect("database name");
    let err = cluster
        .psql(
            db,
            "INSERT INTO runs (policy, target, provider, slot, name, \"full\", state, started_at)
             VALUES ('db', 'vol-0', 'qc', now(), 'n', true, 'pruning', now())",
        )
        .expect_err("a second open run");
    assert!(err.contains("runs_one_open"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_migrate_a_fresh_database_once() {
    let Some(cluster) = pg_cluster::shared_or_skip("two_nodes_migrate_a_fresh_database_once")
    else {
        return;
    };
    let db = cluster.create_database().expect("database");
    let url = format!("{}?sslmode=disable", cluster.url(&db));
    let (a, b) = tokio::join!(
        PgLedger::connect(&url, None, PgOptions::default()),
        PgLedger::connect(&url, None, PgOptions::default())
    );
    let (a, b) = (a.expect("first node"), b.expect("second node"));
    let known = migrations::MIGRATIONS.len() as i64;
    assert_eq!(a.schema_version().await.expect("version"), known);
    assert_eq!(b.schema_version().await.expect("version"), known);
    let rows = cluster
        .psql(
            &db,
            "SELECT version FROM schema_migrations ORDER BY version",
        )
        .expect("versions");
    let want: Vec<String> = (1..=known).map(|v| v.to_string()).collect();
    assert_eq!(rows, want.join("\n"));
    // Again: nothing to do.
    let c = PgLedger::connect(&url, None, PgOptions::default())
        .await
        .expect("third start");
    assert_eq!(c.schema_version().await.expect("version"), known);
}

#[tokio::test]
async fn a_database_from_a_newer_snapwarden_is_refused() {
    let Some((url, _l)) = fresh_pg("a_database_from_a_newer_snapwarden_is_refused").await else {
        return;
    };
    _l.execute_for_tests("INSERT INTO schema_migrations (version) VALUES (99)")
        .await;
    let with_password = url.replacen("postgres@", "postgres:hunter2@", 1);
    let err = PgLedger::connect(&with_password, None, PgOptions::default())
        .await
        .expect_err("too new");
    let known = migrations::MIGRATIONS.len() as i64;
    match &err {
        StateError::TooNew {
            found, known: k, ..
        } => assert_eq!((*found, *k), (99, known)),
        other => panic!("expected TooNew, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("upgrade snapwarden") && !text.contains("hunter2"),
        "{text}"
    );
}

/// A kind no code writes is left out of the operations in flight and
/// reported, not fatal.
#[tokio::test]
async fn an_unreadable_operation_is_reported_not_fatal() {
    let Some((_, l)) = fresh_pg("an_unreadable_operation_is_reported_not_fatal").await else {
        return;
    };
    lead(&l).await;
    let Begin::Started(run) = l.begin_run(&new_run(t(0)), t(0)).await.expect("begin") else {
        panic!("a fresh slot starts");
    };
    for id in ["ss-1", "ss-2"] {
        l.record_created(
            run,
            &[crate::providers::Created {
                snapshot_id: id.into(),
                operation: id.into(),
            }],
            t(1),
            plan(t(1)),
        )
        .await
        .expect("record");
    }
    l.execute_for_tests("UPDATE operations SET kind = 'teleport' WHERE id = 1")
        .await;
    let (good, bad) = Ledger::ops_in_flight_readable(&l).await.expect("readable");
    assert_eq!(good.len(), 1);
    assert_eq!((bad.len(), bad[0].table, bad[0].id), (1, "operations", 1));
    assert!(bad[0].problem.contains("teleport"), "{:?}", bad[0]);
    let err = l.ops_in_flight().await.expect_err("strict read");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
}

/// Adopting is a fact any process may record: two processes adopting the
/// same snapshot at once both get its one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_adopt_one_snapshot_into_one_row() {
    let Some((url, a)) = fresh_pg("two_processes_adopt_one_snapshot_into_one_row").await else {
        return;
    };
    let b = PgLedger::connect(&url, None, PgOptions::default())
        .await
        .expect("second process");
    lead(&a).await;
    for i in 0..10u32 {
        let Begin::Started(run) = a
            .begin_run(&new_run(t(i * 5)), t(i * 5))
            .await
            .expect("begin")
        else {
            panic!("a fresh slot starts");
        };
        let id = format!("ss-{i}");
        let (x, y) = tokio::join!(
            a.adopt_snapshot(run, &id, LedgerState::Available, t(i * 5 + 1)),
            b.adopt_snapshot(run, &id, LedgerState::Available, t(i * 5 + 1))
        );
        let (x, y) = (x.expect("first"), y.expect("second"));
        assert_eq!(x.id, y.id, "{id}");
        a.set_run_state(run, RunState::Succeeded, None, t(i * 5 + 2))
            .await
            .expect("done");
    }
    assert_eq!(count(&a, "snapshots").await, 10);
}

#[tokio::test]
async fn a_statement_is_prepared_once_per_connection_and_again_after_a_reconnect() {
    let Some((url, l)) = fresh_pg("prepared_once").await else {
        return;
    };
    lead(&l).await;
    let begun = l.begin_run(&new_run(t(0)), t(0)).await.expect("begin");
    let Begin::Started(run) = begun else {
        panic!("{begun:?}")
    };
    for i in 0..20 {
        l.set_run_state(run, RunState::Creating, None, t(i))
            .await
            .expect("set state");
    }
    let prepared = l.client().await.expect("connection").prepared_count();
    // The server's own view of this session: the update is prepared once
    // and run by name twenty times.
    let calls = l
        .query_for_tests(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements
             WHERE statement LIKE 'UPDATE runs SET state%'",
        )
        .await;
    assert_eq!(calls, ["20"], "one prepared update, run 20 times");
    let fence = l
        .query_for_tests(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements
             WHERE statement LIKE '%FROM leader_lease%'",
        )
        .await;
    assert_eq!(fence, ["21"], "one prepared fence check, run 21 times");
    assert_eq!(
        l.client().await.expect("connection").prepared_count(),
        prepared,
        "reading the count prepared nothing"
    );

    // The server ends the session: a new connection is opened, prepares
    // its statements again and works.
    let other = PgLedger::connect(&url, None, PgOptions::default())
        .await
        .expect("a second connection");
    other
        .execute_for_tests(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid != pg_backend_pid()",
        )
        .await;
    // The calls that find the connection broken fail (the client may
    // take a moment to see it closed); a later one opens a new one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while l
        .set_run_state(run, RunState::Creating, None, t(30))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no call reconnected after the session was ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        l.client().await.expect("connection").prepared_count(),
        2,
        "a new connection starts with no statements: the fence and the update"
    );
}

/// An owed post hook whose command cannot be read is left out (and
/// logged); the others are still listed, so their thaws still run.
#[tokio::test]
async fn an_unreadable_owed_post_hook_hides_no_other() {
    let Some((_, l)) = fresh_pg("an_unreadable_owed_post_hook_hides_no_other").await else {
        return;
    };
    lead(&l).await;
    let mut runs = Vec::new();
    for target in ["vol-1", "vol-2", "vol-3"] {
        let run = NewRun {
            target: target.into(),
            ..new_run(t(0))
        };
        let Begin::Started(id) = l.begin_run(&run, t(0)).await.expect("begin") else {
            panic!("a fresh slot starts");
        };
        l.owe_post_hook(id, &["thaw".to_string(), target.to_string()], target, t(1))
            .await
            .expect("owe");
        runs.push(id);
    }
    l.execute_for_tests(&format!(
        "UPDATE post_hooks_owed SET command = 'thaw vol-1' WHERE run_id = {};
         UPDATE post_hooks_owed SET command = '[]' WHERE run_id = {}",
        runs[0], runs[2]
    ))
    .await;
    let owed: Vec<_> = l
        .post_hooks_owed()
        .await
        .expect("the readable ones")
        .into_iter()
        .map(|h| (h.run_id, h.command))
        .collect();
    assert_eq!(
        owed,
        vec![(runs[1], vec!["thaw".to_string(), "vol-2".to_string()])]
    );
}

#[tokio::test]
async fn audit_entries_need_no_lease() {
    let Some((_, l)) = fresh_pg("audit_entries_need_no_lease").await else {
        return;
    };
    // An operator's process holds no lease: what it did is recorded.
    let entry = crate::state::AuditEntry {
        at: t(0),
        actor: "ann".into(),
        action: crate::state::AuditAction::Pause,
        policy: Some("db".into()),
        target: None,
        snapshot: None,
        detail: "migration".into(),
    };
    l.record_audit(std::slice::from_ref(&entry))
        .await
        .expect("record without the lease");
    assert_eq!(l.audit_log(t(0), None).await.expect("read"), vec![entry]);
    assert_eq!(count(&l, "audit_log").await, 1);
}
