//! The engine against a scripted cloud ([`fake::FakeCloud`]): paths whose
//! outcome hangs on the exact order of the cloud's answers.

use super::fake::{lost_answer, FakeCloud};
use super::*;
use crate::providers::Created;
use crate::state::{Begin, Ledger, RunState, SqliteLedger};
use std::time::Duration;

/// A ledger in a temp dir, one policy `db` on `vol-1` (QingCloud in the
/// file; the engine talks to `cloud` under that provider's name).
fn engine_with(
    dir: &std::path::Path,
    cloud: Arc<FakeCloud>,
) -> (Arc<Engine>, Config, watch::Sender<bool>) {
    engine_retaining(dir, cloud, 5)
}

fn engine_retaining(
    dir: &std::path::Path,
    cloud: Arc<FakeCloud>,
    retain: u32,
) -> (Arc<Engine>, Config, watch::Sender<bool>) {
    engine_mandated(dir, cloud, retain, Mandate::always())
}

fn engine_mandated(
    dir: &std::path::Path,
    cloud: Arc<FakeCloud>,
    retain: u32,
    mandate: Arc<Mandate>,
) -> (Arc<Engine>, Config, watch::Sender<bool>) {
    let text = r#"
[providers.qc]
kind = "qingcloud"
zone = "ap2a"
access_key_id = "QYACCESSKEYID"
secret_access_key_env = "QY_SECRET"

[[policy]]
name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-1"]
schedule = "0 0 3 * * *"
retain = 5
poll_interval = "10ms"
poll_max_interval = "20ms"
timeout = "30s"
"#;
    let text = text.replace("retain = 5", &format!("retain = {retain}"));
    let config =
        crate::config::load_with_env(&text, &dir.join("f.toml"), &|_| Some("secret".to_string()))
            .expect("config");
    let state: Arc<dyn Ledger> = Arc::new(SqliteLedger::open(&dir.join("s.db")).expect("ledger"));
    let (stop, shutdown) = watch::channel(false);
    let engine = Arc::new(Engine::bare(state.clone(), shutdown.clone(), mandate));
    let provider: Arc<dyn Provider> = cloud;
    let poller = Poller::spawn("qc".into(), provider.clone(), state, shutdown);
    engine.providers.write().expect("providers").insert(
        "qc".into(),
        Arc::new(ProviderSlot {
            provider,
            poller,
            in_flight: Arc::new(Semaphore::new(4)),
        }),
    );
    (engine, config, stop)
}

fn listed(id: &str, slot: DateTime<Utc>) -> RemoteSnapshot {
    RemoteSnapshot {
        id: id.into(),
        name: format!("db-vol-1-{}", crate::domain::slot_label(slot)),
        source: "vol-1".into(),
        created_at: Some(slot),
        state: SnapshotState::Available,
        marker_slot: Some(slot),
        chain: None,
        cloud_id: None,
        size_bytes: None,
    }
}

/// A run of slot `slot` whose first create's answer is lost (the cloud
/// answers the listings queued on `cloud`); the run must succeed.
async fn run_after_a_lost_create(
    dir: &std::path::Path,
    cloud: &Arc<FakeCloud>,
    slot: DateTime<Utc>,
) -> Arc<Engine> {
    cloud.answer_create(Err(lost_answer("CreateSnapshots")));
    let (engine, config, _stop) = engine_with(dir, cloud.clone());
    let report = engine.run(&config.policies[0], "vol-1", slot).await;
    assert!(
        matches!(report.outcome, RunOutcome::Succeeded { .. }),
        "{report:?}"
    );
    engine
}

/// The reconcile-by-name path must never conclude "absent" from a listing
/// that changed under it: the create's answer is lost (the
/// cloud made the snapshot), and the first listing misses it (a page
/// shifted). The engine lists until two listings agree, finds it, and
/// adopts it: one create, never two.
#[tokio::test]
async fn a_listing_that_misses_the_slot_is_not_taken_as_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    let slot = Utc::now();
    cloud.answer_lists([vec![], vec![listed("snap-made", slot)]]);
    let engine = run_after_a_lost_create(dir.path(), &cloud, slot).await;
    assert_eq!(cloud.calls("create"), 1, "never a second create");
    let rows = engine.state.all_snapshots().await.expect("ledger");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].snapshot_id, "snap-made");
    // The audit trail has the adopted snapshot's create, once, saying so.
    let audit = engine
        .state
        .audit_log(DateTime::<Utc>::MIN_UTC, None)
        .await
        .expect("audit trail");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, crate::state::AuditAction::Create);
    assert_eq!(audit[0].snapshot.as_deref(), Some("snap-made"));
    assert!(audit[0].detail.contains("adopted"), "{:?}", audit[0]);
}

/// A failed audit write is logged and fails nothing: the run succeeds
/// on a ledger whose audit trail cannot be written.
#[tokio::test]
async fn a_failed_audit_write_fails_no_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    let (engine, config, _stop) = engine_with(dir.path(), cloud.clone());
    let engine = engine.with_actor("daemon (node t)");
    let ledger = SqliteLedger::open(&dir.path().join("s.db")).expect("ledger");
    ledger
        .record_audit(&[])
        .expect("nothing recorded for nothing");
    // Another connection on the same file drops the table.
    rusqlite::Connection::open(dir.path().join("s.db"))
        .and_then(|c| c.execute_batch("DROP TABLE audit_log"))
        .expect("drop the audit trail");
    let report = engine.run(&config.policies[0], "vol-1", Utc::now()).await;
    assert!(
        matches!(report.outcome, RunOutcome::Succeeded { created: 1, .. }),
        "{report:?}"
    );
}

/// Two listings in a row that agree and miss the slot: absent for sure,
/// so the create is sent again (once).
#[tokio::test]
async fn two_agreeing_listings_without_the_slot_allow_one_more_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    run_after_a_lost_create(dir.path(), &cloud, Utc::now()).await;
    assert_eq!(cloud.calls("create"), 2);
    assert!(cloud.calls("list") >= 2);
}

/// A run's claim lives as long as its task: while it runs, the sweep for
/// abandoned runs does not take it; once it is gone (here: the task that
/// held it was dropped mid-run), the open run is taken up.
#[tokio::test]
async fn only_runs_without_a_claim_are_taken_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    let (engine, config, _stop) = engine_with(dir.path(), cloud);
    let slot = Utc::now();
    let begun = engine
        .begin(&config.policies[0], "vol-1", slot)
        .await
        .expect("ledger")
        .expect("a fresh slot starts");
    assert!(engine
        .take_up_abandoned(&config, false)
        .await
        .expect("sweep")
        .is_empty());
    drop(begun);
    let taken = engine
        .take_up_abandoned(&config, false)
        .await
        .expect("sweep");
    assert_eq!(taken.len(), 1, "the run without a claim is taken up");
    assert!(
        engine
            .take_up_abandoned(&config, false)
            .await
            .expect("sweep")
            .is_empty(),
        "and claimed by whoever took it"
    );
    let report = futures::future::join_all(taken).await.remove(0);
    assert!(
        matches!(report.outcome, RunOutcome::Succeeded { .. }),
        "{report:?}"
    );
}

/// The cloud gives no creation time, and the ledger's own
/// times were read from a clock that stepped back in between (the older
/// slot's row looks newer). Retention orders by the slot, so with
/// retain = 1 the real newest is kept and the older one deleted (before,
/// the real newest was deleted).
#[tokio::test]
async fn without_a_cloud_time_retention_orders_by_slot_not_by_this_hosts_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    let (engine, config, _stop) = engine_retaining(dir.path(), cloud.clone(), 1);
    let policy = &config.policies[0];
    let now = Utc::now();
    let (older, newer) = (
        now - chrono::Duration::hours(2),
        now - chrono::Duration::hours(1),
    );
    // Recorded at: the older slot with the clock 8 h ahead, the newer one
    // after the clock was set right.
    for (slot, recorded_at, id) in [
        (older, now + chrono::Duration::hours(8), "snap-older"),
        (newer, newer, "snap-newer"),
    ] {
        record_good_snapshot(&engine, slot, recorded_at, id).await;
    }
    let listed = |id: &str, slot| RemoteSnapshot {
        created_at: None,
        ..super::tests::listed(id, slot)
    };
    cloud.answer_lists([vec![
        listed("snap-older", older),
        listed("snap-newer", newer),
    ]]);
    let report = engine
        .prune(policy, "vol-1", PruneMode::Budgeted)
        .await
        .expect("prune");
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(*cloud.deleted.lock().expect("deleted"), vec!["snap-older"]);
}

/// A run of `slot` recorded at `recorded_at` that made snapshot `id`, all
/// done and good.
async fn record_good_snapshot(
    engine: &Engine,
    slot: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    id: &str,
) {
    let name = format!("db-vol-1-{}", crate::domain::slot_label(slot));
    let Begin::Started(run) = engine
        .state
        .begin_run(
            &crate::state::NewRun {
                policy: "db".into(),
                target: "vol-1".into(),
                provider: "qc".into(),
                slot,
                name,
                full: true,
            },
            recorded_at,
        )
        .await
        .expect("begin")
    else {
        panic!("a fresh slot starts");
    };
    let plan = crate::state::PollPlan {
        first_poll: recorded_at,
        interval: Duration::from_secs(1),
        deadline: recorded_at + chrono::Duration::hours(1),
    };
    let ops = engine
        .state
        .record_created(
            run,
            &[Created {
                snapshot_id: id.into(),
                operation: id.into(),
            }],
            recorded_at,
            plan,
        )
        .await
        .expect("record");
    engine
        .state
        .finish_op(ops[0].id, None, recorded_at)
        .await
        .expect("finish");
    engine
        .state
        .set_run_state(run, RunState::Succeeded, None, recorded_at)
        .await
        .expect("succeeded");
}

/// Inside a blackout window nothing is created (the run is skipped, not
/// failed) and nothing is deleted (the deletes wait, without an alert).
#[tokio::test]
async fn inside_a_blackout_window_no_create_or_delete_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    let (engine, mut config, _stop) = engine_retaining(dir.path(), cloud.clone(), 1);
    let now = Utc::now();
    let (older, newer) = (
        now - chrono::Duration::hours(2),
        now - chrono::Duration::hours(1),
    );
    record_good_snapshot(&engine, older, older, "snap-older").await;
    record_good_snapshot(&engine, newer, newer, "snap-newer").await;
    config.policies[0].blackout = Some(
        crate::schedule::blackout::Blackout::parse(["daily 00:00-24:00"], chrono_tz::UTC)
            .expect("window"),
    );
    let policy = &config.policies[0];

    let report = engine.run(policy, "vol-1", now).await;
    let RunOutcome::Skipped(why) = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(why.contains("blackout window until"), "{why}");
    assert_eq!(cloud.calls("create"), 0);
    let runs = engine.state.runs_for("db", "vol-1", 1).await.expect("runs");
    assert_eq!(runs[0].state, RunState::Skipped, "{runs:?}");

    cloud.answer_lists([vec![
        listed("snap-older", older),
        listed("snap-newer", newer),
    ]]);
    let pruned = engine
        .prune(policy, "vol-1", PruneMode::Budgeted)
        .await
        .expect("prune");
    assert_eq!(pruned.deleted, 0, "{pruned:?}");
    assert_eq!(pruned.held, ["snap-older"]);
    assert_eq!(
        pruned.held_because.as_ref().map(|h| h.cause),
        Some(crate::domain::HoldCause::Blackout)
    );
    assert!(cloud.deleted.lock().expect("deleted").is_empty());
}

/// One corrupt open run (a bad timestamp) no longer stops
/// every other open run from being taken up (before, the whole read
/// failed and every open run stayed open).
#[tokio::test]
async fn a_corrupt_open_run_does_not_stop_the_others_being_taken_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    let (engine, config, _stop) = engine_with(dir.path(), cloud);
    let policy = &config.policies[0];
    let slot = Utc::now();
    let good = engine
        .begin(policy, "vol-1", slot)
        .await
        .expect("ledger")
        .expect("a fresh slot starts");
    let corrupt = engine
        .begin(policy, "vol-2", slot)
        .await
        .expect("ledger")
        .expect("a fresh slot starts");
    SqliteLedger::open(&dir.path().join("s.db"))
        .expect("ledger")
        .execute_for_tests(&format!(
            "UPDATE runs SET started_at = 'not a time' WHERE id = {}",
            corrupt.run_id
        ));
    let good_id = good.run_id;
    drop((good, corrupt));
    let taken = engine
        .take_up_abandoned(&config, true)
        .await
        .expect("the readable runs are taken up");
    assert_eq!(taken.len(), 1);
    let report = futures::future::join_all(taken).await.remove(0);
    assert_eq!(report.target, "vol-1");
    assert!(
        matches!(report.outcome, RunOutcome::Succeeded { .. }),
        "{report:?}"
    );
    assert!(!engine
        .state
        .run(good_id)
        .await
        .expect("run")
        .state
        .is_open());
}

/// A leader whose lease deadline has passed (a renewal that never came
/// back, a process paused past its lease) sends no create: the run stays
/// open in the ledger, as at a shutdown, for whoever leads next. While the
/// mandate holds, the same run goes ahead.
#[tokio::test]
async fn without_a_mandate_no_create_is_sent_and_the_run_stays_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(FakeCloud::default());
    let mandate = Mandate::until(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let (engine, config, _stop) = engine_mandated(dir.path(), cloud.clone(), 5, mandate.clone());
    let policy = &config.policies[0];

    mandate.revoke();
    let report = engine.run(policy, "vol-1", Utc::now()).await;
    assert_eq!(report.outcome, RunOutcome::Interrupted, "{report:?}");
    assert_eq!(cloud.calls("create"), 0, "no create without the mandate");
    let open = engine.state.open_runs().await.expect("ledger");
    assert_eq!(open.len(), 1, "the run is left open for the next leader");
    assert_eq!(open[0].state, RunState::Intent);

    let held = Mandate::until(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let (engine, config, _stop) = engine_mandated(dir.path(), cloud.clone(), 5, held);
    let report = engine.run(&config.policies[0], "vol-2", Utc::now()).await;
    assert!(
        matches!(report.outcome, RunOutcome::Succeeded { .. }),
        "{report:?}"
    );
    assert_eq!(cloud.calls("create"), 1);
}
