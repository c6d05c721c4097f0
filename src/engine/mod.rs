//! One run of a policy on one target: intent → create → poll → prune, with
//! the concurrency limits, the retry policy and crash recovery around it.
//!
//! The engine knows the provider trait and nothing of any cloud. It writes
//! the ledger through `state/` only, asks `retention` what to delete, and
//! never deletes a snapshot that the ledger and the provider's marker do not
//! both say is ours.

#[cfg(test)]
mod fake;
mod hold;
mod orphans;
mod poller;
mod retry;
mod select;
mod settle;

pub use hold::{PlacedHold, ReloadPlan};
pub use orphans::{Orphan, OrphanKind, OrphanOutcome, Verified};
pub use poller::{OpOutcome, Poller};
pub use retry::RetryPolicy;
pub use select::{ledger_targets, Resolved};
pub use settle::Settled;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rand::Rng;
use tokio::sync::{watch, Semaphore};
use tracing::{error, info, warn};

use crate::config::{Config, Policy};
use crate::observe::metrics;
use crate::providers::{
    self, CreateRequest, Created, DeleteStarted, ErrorKind, Marker, Provider, ProviderError,
    RemoteSnapshot, SnapshotState,
};
use crate::retention::{self, Candidate, Condition, Decision, Verdict};
use crate::state::{
    Begin, LedgerState, NewRun, OpRow, PollPlan, RunRow, RunState, SnapshotRow, State, StateError,
};

/// Why a run or an engine action could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Build(#[from] providers::BuildError),
    #[error("policy {policy} names provider {provider}, which is not configured")]
    UnknownProvider { policy: String, provider: String },
    #[error("stopped by shutdown")]
    Shutdown,
    /// An operation ended in failure (the cloud's words).
    #[error("{0}")]
    Failed(String),
    /// An operation was not terminal within the policy's timeout.
    #[error("{0}")]
    TimedOut(String),
    /// The action needs the operator's explicit `--yes`.
    #[error("{0}")]
    NeedsConfirmation(String),
}

impl EngineError {
    /// A short, stable label for metrics and alerts.
    pub fn reason(&self) -> &'static str {
        match self {
            EngineError::State(_) => "state_database",
            EngineError::Provider(e) => e.kind.as_str(),
            EngineError::Build(_) | EngineError::UnknownProvider { .. } => "config",
            EngineError::Shutdown => "shutdown",
            EngineError::Failed(_) => "operation_failed",
            EngineError::TimedOut(_) => "timeout",
            EngineError::NeedsConfirmation(_) => "needs_confirmation",
        }
    }
}

/// How one (policy, target, slot) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded {
        created: usize,
        deleted: usize,
        /// Deletes retention wanted but that were held back (deletion
        /// budget, a reload's hold, a guard), with the reason.
        held: Option<String>,
    },
    Failed(String),
    /// Not run: the previous run of this policy and target is in flight.
    Skipped(String),
    /// Already recorded: fired before (also across restarts).
    AlreadyDone,
    /// The daemon is stopping; the run stays open in the ledger and is
    /// resumed on the next start.
    Interrupted,
}

/// What [`Engine::begin`] did for one target: a run to execute, or why
/// none is needed (already recorded, skipped).
pub type Started = Result<Begun, RunOutcome>;

/// A recorded intent, ready to be carried out by [`Engine::execute`].
#[derive(Debug, Clone)]
pub struct Begun {
    pub run_id: i64,
    pub marker: Marker,
    pub name: String,
    pub full: bool,
    started: DateTime<Utc>,
    /// This process carries the run out while the claim lives.
    _claim: Arc<Claim>,
}

/// The runs this process is carrying out, by ledger id.
type ActiveRuns = Arc<Mutex<HashSet<i64>>>;

/// This process carries out run `id` while its claim lives. The claim goes
/// with the task that carries the run, so it is dropped however that task
/// ends (finished, failed to record its end, panicked, aborted): a run still
/// open in the ledger without a claim was abandoned, and
/// [`Engine::take_up_abandoned`] resumes it.
pub struct Claim {
    runs: ActiveRuns,
    id: i64,
}

impl Claim {
    /// Claim `id`, unless this process already carries it out. `active` is
    /// the locked set, so a caller can read the ledger and claim in one step.
    fn take(runs: &ActiveRuns, active: &mut HashSet<i64>, id: i64) -> Option<Claim> {
        active.insert(id).then(|| Claim {
            runs: runs.clone(),
            id,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Claim({})", self.id)
    }
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub policy: String,
    pub target: String,
    pub slot: DateTime<Utc>,
    pub outcome: RunOutcome,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub snapshot_id: String,
    pub mode: providers::RestoreMode,
    /// The new volume/instance, where the cloud makes one.
    pub resource_id: Option<String>,
}

/// What pruning one target did (or, in a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub decisions: Vec<Decision>,
    /// A dry run's listing of the target (what `decisions` are about), for
    /// display; empty otherwise.
    pub listed: Vec<RemoteSnapshot>,
    pub deleted: usize,
    pub failed: Vec<String>,
    /// Snapshots retention would delete that were held back this time,
    /// in the order they would go.
    pub held: Vec<String>,
    /// Why `held` is not empty.
    pub held_because: Option<String>,
}

/// How far a prune may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PruneMode {
    /// Decide only.
    DryRun,
    /// A run's or `prune`'s pruning: at most `max_deletes_per_run`.
    Budgeted,
    /// The operator's `prune --yes`: everything retention decides.
    Confirmed,
}

struct ProviderSlot {
    provider: Arc<dyn Provider>,
    poller: Poller,
    in_flight: Arc<Semaphore>,
}

/// The engine: providers, their pollers, the ledger.
pub struct Engine {
    state: Arc<State>,
    providers: RwLock<BTreeMap<String, Arc<ProviderSlot>>>,
    shutdown: watch::Receiver<bool>,
    /// Runs a task of this process is carrying out.
    active: ActiveRuns,
    /// Unreadable ledger rows already reported (each is logged once).
    unreadable: Mutex<HashSet<(&'static str, i64)>>,
}

impl Engine {
    /// Build every configured provider and start its poller.
    pub fn new(
        state: Arc<State>,
        config: &Config,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Engine>, EngineError> {
        let engine = Arc::new(Engine {
            state,
            providers: RwLock::new(BTreeMap::new()),
            shutdown,
            active: ActiveRuns::default(),
            unreadable: Mutex::default(),
        });
        engine.install_providers(config)?;
        Ok(engine)
    }

    /// Replace the providers with the ones in `config` (SIGHUP). Operations
    /// already being followed stay with their old poller until terminal.
    pub fn install_providers(&self, config: &Config) -> Result<(), EngineError> {
        let mut built = BTreeMap::new();
        for (name, cfg) in &config.providers {
            let secrets: Arc<dyn providers::SecretStore> = self.state.clone();
            let provider = providers::build(cfg, Some(secrets))?;
            let poller = Poller::spawn(
                name.clone(),
                provider.clone(),
                self.state.clone(),
                self.shutdown.clone(),
            );
            built.insert(
                name.clone(),
                Arc::new(ProviderSlot {
                    provider,
                    poller,
                    in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
                }),
            );
        }
        *self.providers.write().unwrap_or_else(|p| p.into_inner()) = built;
        Ok(())
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    fn slot(&self, policy: &Policy) -> Result<Arc<ProviderSlot>, EngineError> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&policy.provider)
            .cloned()
            .ok_or_else(|| EngineError::UnknownProvider {
                policy: policy.name.clone(),
                provider: policy.provider.clone(),
            })
    }

    fn slot_by_name(&self, name: &str) -> Option<Arc<ProviderSlot>> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Wait for `fut` unless the daemon stops first.
    async fn or_shutdown<T>(&self, fut: impl Future<Output = T>) -> Result<T, EngineError> {
        let rx = self.shutdown.clone();
        if *rx.borrow() {
            return Err(EngineError::Shutdown);
        }
        tokio::select! {
            v = fut => Ok(v),
            _ = stopped(rx) => Err(EngineError::Shutdown),
        }
    }

    /// Run one (policy, target, slot) from intent to pruning.
    pub async fn run(
        self: &Arc<Self>,
        policy: &Policy,
        target: &str,
        slot: DateTime<Utc>,
    ) -> RunReport {
        match self.begin(policy, target, slot) {
            Ok(Ok(begun)) => self.execute(policy, begun).await,
            Ok(Err(outcome)) => report(policy, target, slot, outcome),
            Err(e) => report(policy, target, slot, RunOutcome::Failed(e.to_string())),
        }
    }

    /// Record the intent for one (policy, target, slot), before any API
    /// call. `Ok(Err(outcome))` when the slot is not to be run (already
    /// recorded, or overlapping a run in flight).
    pub fn begin(
        &self,
        policy: &Policy,
        target: &str,
        slot: DateTime<Utc>,
    ) -> Result<Result<Begun, RunOutcome>, EngineError> {
        let mut begun = self.begin_slot(policy, std::slice::from_ref(&target.to_string()), slot)?;
        Ok(begun
            .pop()
            .map(|(_, b)| b)
            .unwrap_or(Err(RunOutcome::AlreadyDone)))
    }

    /// [`Engine::begin`] for many targets of one slot: every intent is
    /// written in one transaction (one durable commit for the whole slot),
    /// so a slot of thousands of targets starts without a disk flush per
    /// target. On error nothing of the slot is recorded and nothing runs.
    pub fn begin_slot(
        &self,
        policy: &Policy,
        targets: &[String],
        slot: DateTime<Utc>,
    ) -> Result<Vec<(String, Started)>, EngineError> {
        let ps = self.slot(policy)?;
        let mut planned = Vec::with_capacity(targets.len());
        for target in targets {
            let marker = Marker {
                policy: policy.name.clone(),
                target: target.clone(),
                slot,
            };
            let name = ps.provider.snapshot_name(&marker);
            let full = self.next_is_full(policy, target)?;
            planned.push((marker, name, full));
        }
        let now = Utc::now();
        let runs: Vec<NewRun<'_>> = planned
            .iter()
            .map(|(marker, name, full)| NewRun {
                policy: &policy.name,
                target: &marker.target,
                provider: &policy.provider,
                slot,
                name,
                full: *full,
            })
            .collect();
        // The new runs are claimed under the same lock as the write, so a
        // sweep for abandoned runs never sees them unclaimed.
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let begins = self.state.begin_runs(&runs, now)?;
        let claims: Vec<Option<Claim>> = begins
            .iter()
            .map(|b| match b {
                Begin::Started(id) => Claim::take(&self.active, &mut active, *id),
                _ => None,
            })
            .collect();
        drop(active);
        drop(runs);
        let mut out = Vec::with_capacity(planned.len());
        for (((marker, name, full), begin), claim) in planned.into_iter().zip(begins).zip(claims) {
            let target = marker.target.clone();
            let outcome = match (begin, claim) {
                (Begin::Started(run_id), Some(claim)) => {
                    info!(policy = %policy.name, target = %target, provider = %policy.provider, slot = %slot, snapshot_name = %name, full, "run started");
                    Ok(Begun {
                        run_id,
                        marker,
                        name,
                        full,
                        started: now,
                        _claim: Arc::new(claim),
                    })
                }
                (Begin::Started(run_id), None) => {
                    // A new row id cannot be claimed already; never run
                    // one run twice whatever happened.
                    error!(policy = %policy.name, target = %target, run = run_id, "new run is already claimed; not run twice");
                    Err(RunOutcome::AlreadyDone)
                }
                (Begin::AlreadyRecorded, _) => {
                    info!(policy = %policy.name, target = %target, slot = %slot, "slot already recorded; not run again");
                    Err(RunOutcome::AlreadyDone)
                }
                (Begin::Overlap { running_slot }, _) => {
                    let why = format!("previous run (slot {running_slot}) still in flight");
                    metrics::run_skipped(&policy.name, "overlap");
                    warn!(policy = %policy.name, target = %target, slot = %slot, reason = %why, "slot skipped");
                    Err(RunOutcome::Skipped(why))
                }
            };
            out.push((target, outcome));
        }
        Ok(out)
    }

    /// Carry a recorded intent through create, poll and prune.
    pub async fn execute(self: &Arc<Self>, policy: &Policy, begun: Begun) -> RunReport {
        let target = begun.marker.target.clone();
        let slot = begun.marker.slot;
        let outcome = match self.execute_inner(policy, begun).await {
            Ok(outcome) => outcome,
            Err(EngineError::Shutdown) => RunOutcome::Interrupted,
            Err(e) => RunOutcome::Failed(e.to_string()),
        };
        report(policy, &target, slot, outcome)
    }

    async fn execute_inner(
        self: &Arc<Self>,
        policy: &Policy,
        begun: Begun,
    ) -> Result<RunOutcome, EngineError> {
        let ps = self.slot(policy)?;
        let target = begun.marker.target.as_str();
        if !policy.timing.jitter.is_zero() {
            let delay = rand::rng().random_range(Duration::ZERO..=policy.timing.jitter);
            self.or_shutdown(tokio::time::sleep(delay)).await?;
        }
        let deadline = begun.started
            + chrono::Duration::from_std(policy.timing.timeout)
                .unwrap_or(chrono::Duration::hours(2));
        let result = self
            .create_and_follow(
                &ps,
                policy,
                target,
                begun.run_id,
                &begun.marker,
                &begun.name,
                begun.full,
                deadline,
                false,
            )
            .await;
        self.conclude(&ps, policy, target, begun.run_id, result)
            .await
    }

    /// Decide whether the next snapshot of a target starts a new chain.
    fn next_is_full(&self, policy: &Policy, target: &str) -> Result<bool, EngineError> {
        let Some(every) = policy.full_every else {
            return Ok(true);
        };
        let snaps = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)?;
        // Count runs (slots), not rows: an instance target makes one
        // snapshot per volume in the same run.
        let mut runs: Vec<(DateTime<Utc>, bool)> = snaps
            .iter()
            .filter(|s| s.state == LedgerState::Available)
            .map(|s| (s.slot, s.full))
            .collect();
        runs.dedup_by_key(|r| r.0);
        let since_full = runs.iter().rev().take_while(|r| !r.1).count();
        let has_full = runs.iter().any(|r| r.1);
        Ok(!has_full || since_full + 1 >= every as usize)
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_and_follow(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        run_id: i64,
        marker: &Marker,
        name: &str,
        full: bool,
        deadline: DateTime<Utc>,
        ambiguous: bool,
    ) -> Result<(), EngineError> {
        let _permit = self
            .or_shutdown(ps.in_flight.clone().acquire_owned())
            .await?
            .map_err(|_| EngineError::Failed("provider closed".into()))?;
        let request = CreateRequest {
            resource: policy.resource,
            target: target.to_string(),
            name: name.to_string(),
            marker: marker.clone(),
            full,
            volume_ids: policy.targets.volume_ids.clone(),
        };
        let retry = RetryPolicy::for_poll_interval(
            policy.timing.poll_interval,
            policy.timing.poll_max_interval,
        );
        // A provider whose create finds this slot's snapshots itself is
        // called again after an ambiguous answer: it makes only what is
        // missing (a target of several volumes is never left part-made).
        let reconciles = ps.provider.capabilities().create_reconciles;
        let mut attempt = 0u32;
        let mut ambiguous = ambiguous;
        let created = loop {
            attempt += 1;
            let past_deadline = Utc::now() >= deadline;
            if ambiguous && (!reconciles || past_deadline) {
                // The previous attempt may have reached the cloud: look the
                // name up before creating again, so no slot gets two.
                if let Some(outcome) = self
                    .adopt_existing(ps, policy, target, run_id, marker.slot, deadline)
                    .await?
                {
                    if reconciles {
                        // What was found is tracked, but may not be every
                        // volume, and no more may be made now.
                        outcome?;
                        return Err(too_late(policy, "every volume's snapshot was made"));
                    }
                    return outcome;
                }
            }
            if past_deadline {
                // Waiting for jitter, for a `max_in_flight` permit or for
                // retries counts against the run's timeout: nothing is
                // started that could only be written off as timed out.
                return Err(too_late(policy, "the snapshot was started"));
            }
            match self.or_shutdown(ps.provider.create(&request)).await? {
                Ok(created) if !created.is_empty() => break created,
                Ok(_) => {
                    return Err(EngineError::Failed(
                        "create call returned no snapshot".into(),
                    ))
                }
                Err(e) => {
                    note_throttle(policy, &e);
                    let now = Utc::now();
                    match retry.delay(attempt, &e, now, deadline) {
                        Some(delay) => {
                            warn!(policy = %policy.name, target, attempt, error = %e, retry_in = ?delay, "create failed; retrying");
                            ambiguous |= e.kind == providers::ErrorKind::Transient;
                            self.or_shutdown(tokio::time::sleep(delay)).await?;
                        }
                        None => return Err(e.into()),
                    }
                }
            }
        };
        let now = Utc::now();
        let ops =
            self.state
                .record_created(run_id, &created, now, poll_plan(policy, now, deadline))?;
        log_created(policy, target, &created);
        self.await_ops(ps, policy, ops).await
    }

    /// Wait for create operations; any failure fails the run.
    async fn await_ops(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        ops: Vec<OpRow>,
    ) -> Result<(), EngineError> {
        let waits: Vec<_> = ops
            .into_iter()
            .map(|op| ps.poller.watch(op, policy.timing.poll_max_interval))
            .collect();
        let mut failures = Vec::new();
        let mut timed_out = false;
        for w in waits {
            match self.or_shutdown(w).await? {
                Ok(OpOutcome::Succeeded) => {}
                Ok(OpOutcome::Failed(reason)) => failures.push(reason),
                Ok(OpOutcome::TimedOut(reason)) => {
                    timed_out = true;
                    failures.push(reason);
                }
                Err(_) => return Err(EngineError::Shutdown),
            }
        }
        match (failures.is_empty(), timed_out) {
            (true, _) => Ok(()),
            (false, true) => Err(EngineError::TimedOut(failures.join("; "))),
            (false, false) => Err(EngineError::Failed(failures.join("; "))),
        }
    }

    /// Follow a snapshot that has no operation reference (adopted by name)
    /// by listing the target until it is terminal.
    async fn follow_listed(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        row: i64,
        snapshot_id: &str,
        deadline: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mut interval = policy.timing.poll_interval;
        loop {
            let listed = self.list(ps, policy, target, deadline).await?;
            let state = listed.iter().find(|s| s.id == snapshot_id).map(|s| s.state);
            let now = Utc::now();
            match state {
                Some(SnapshotState::Available) => {
                    self.state
                        .set_snapshot_state(row, LedgerState::Available, None, now)?;
                    return Ok(());
                }
                Some(SnapshotState::Failed) | Some(SnapshotState::Gone) | None => {
                    let why = format!("snapshot {snapshot_id} ended failed or vanished");
                    self.state
                        .set_snapshot_state(row, LedgerState::Failed, Some(&why), now)?;
                    return Err(EngineError::Failed(why));
                }
                Some(SnapshotState::Creating) | Some(SnapshotState::Deleting) => {}
            }
            if now >= deadline {
                let why = format!("timed out waiting for snapshot {snapshot_id}");
                self.state
                    .set_snapshot_state(row, LedgerState::Failed, Some(&why), now)?;
                return Err(EngineError::Failed(why));
            }
            self.or_shutdown(tokio::time::sleep(interval)).await?;
            interval = (interval * 2).min(policy.timing.poll_max_interval);
        }
    }

    /// Record how a run ended and prune after a success.
    async fn conclude(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        run_id: i64,
        result: Result<(), EngineError>,
    ) -> Result<RunOutcome, EngineError> {
        let created = self.state.run_snapshots(run_id)?.len();
        match result {
            Ok(()) => {}
            Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
            Err(e) => {
                let msg = e.to_string();
                metrics::snapshot_failed(&policy.name, target, &policy.provider, e.reason());
                error!(policy = %policy.name, target, error = %msg, reason = e.reason(), "run failed; no pruning for this target");
                self.state
                    .set_run_state(run_id, RunState::Failed, Some(&msg), Utc::now())?;
                return Ok(RunOutcome::Failed(msg));
            }
        }
        self.state
            .set_run_state(run_id, RunState::Pruning, None, Utc::now())?;
        metrics::run_succeeded(&policy.name, target, Utc::now());
        let report = match self
            .prune_with(ps, policy, target, PruneMode::Budgeted)
            .await
        {
            Ok(r) => r,
            Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
            Err(e) => {
                // The snapshot is good; pruning failed and will be tried
                // again after the next successful run.
                let msg = format!("pruning failed: {e}");
                error!(policy = %policy.name, target, error = %msg, "pruning failed");
                self.state
                    .set_run_state(run_id, RunState::Succeeded, Some(&msg), Utc::now())?;
                return Ok(RunOutcome::Succeeded {
                    created,
                    deleted: 0,
                    held: None,
                });
            }
        };
        let kept = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)?
            .iter()
            .filter(|r| r.state == LedgerState::Available)
            .count();
        metrics::retained(&policy.name, target, kept);
        let mut notes = Vec::new();
        if !report.failed.is_empty() {
            notes.push(format!("some deletes failed: {}", report.failed.join("; ")));
        }
        if let Some(why) = &report.held_because {
            notes.push(why.clone());
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        self.state
            .set_run_state(run_id, RunState::Succeeded, note.as_deref(), Utc::now())?;
        info!(policy = %policy.name, target, created, deleted = report.deleted, held = report.held.len(), "run succeeded");
        Ok(RunOutcome::Succeeded {
            created,
            deleted: report.deleted,
            held: report.held_because,
        })
    }

    async fn list(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        deadline: DateTime<Utc>,
    ) -> Result<Vec<RemoteSnapshot>, EngineError> {
        self.retrying(policy, deadline, "listing", || {
            ps.provider.list(policy.resource, target, &policy.name)
        })
        .await
    }

    /// Call `op` until it succeeds, the error is not retryable, attempts
    /// run out or `deadline` passes, backing off by the one retry policy.
    async fn retrying<T, F, Fut>(
        &self,
        policy: &Policy,
        deadline: DateTime<Utc>,
        what: &str,
        mut op: F,
    ) -> Result<T, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let retry = RetryPolicy::for_poll_interval(
            policy.timing.poll_interval,
            policy.timing.poll_max_interval,
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.or_shutdown(op()).await? {
                Ok(v) => return Ok(v),
                Err(e) => {
                    note_throttle(policy, &e);
                    match retry.delay(attempt, &e, Utc::now(), deadline) {
                        Some(d) => {
                            warn!(policy = %policy.name, error = %e, retry_in = ?d, "{what} failed; retrying");
                            self.or_shutdown(tokio::time::sleep(d)).await?;
                        }
                        None => return Err(e.into()),
                    }
                }
            }
        }
    }

    /// Look for snapshots of this slot already on the cloud (an earlier
    /// attempt whose answer was lost). If there are any, adopt them into the
    /// ledger and follow them to the end: `Some(outcome)`. `None`: there are
    /// none, so creating is safe.
    async fn adopt_existing(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        run_id: i64,
        slot: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<Option<Result<(), EngineError>>, EngineError> {
        let of_slot = |listed: Vec<RemoteSnapshot>| -> Vec<RemoteSnapshot> {
            listed
                .into_iter()
                .filter(|s| s.marker_slot == Some(slot) && s.state != SnapshotState::Gone)
                .collect()
        };
        let first = self.list(ps, policy, target, deadline).await?;
        let mut found = of_slot(first.clone());
        if found.is_empty() {
            // "Absent" decides a create: one listing is not proof (pages
            // shift while snapshots come and go as it is read), so it
            // takes two in a row that agree on the whole target.
            found = self
                .confirm_absent(ps, policy, target, deadline, first, of_slot)
                .await?;
            if found.is_empty() {
                return Ok(None);
            }
        }
        let mut rows = Vec::new();
        for f in &found {
            info!(policy = %policy.name, target, snapshot = %f.id, "found a snapshot of this slot on the cloud; adopting it");
            rows.push(self.state.adopt_snapshot(
                run_id,
                &f.id,
                ledger_state(f.state),
                Utc::now(),
            )?);
        }
        for (row, f) in rows.iter().zip(&found) {
            if let Err(e) = self
                .follow_listed(ps, policy, target, row.id, &f.id, deadline)
                .await
            {
                return Ok(Some(Err(e)));
            }
        }
        Ok(Some(Ok(())))
    }

    /// After a listing (`first`) without this slot's snapshot: list until
    /// two listings in a row show the same snapshots of the target, and
    /// return what the last one shows of the slot (empty: absent for sure).
    /// Any listing that shows the slot's snapshot ends the search.
    async fn confirm_absent(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        deadline: DateTime<Utc>,
        first: Vec<RemoteSnapshot>,
        of_slot: impl Fn(Vec<RemoteSnapshot>) -> Vec<RemoteSnapshot>,
    ) -> Result<Vec<RemoteSnapshot>, EngineError> {
        const TRIES: usize = 5;
        let ids = |l: &[RemoteSnapshot]| -> std::collections::BTreeSet<String> {
            l.iter()
                .filter(|s| s.state != SnapshotState::Gone)
                .map(|s| s.id.clone())
                .collect()
        };
        let mut last = first;
        for _ in 0..TRIES {
            let again = self.list(ps, policy, target, deadline).await?;
            if ids(&again) == ids(&last) {
                return Ok(of_slot(again));
            }
            let found = of_slot(again.clone());
            if !found.is_empty() {
                return Ok(found);
            }
            last = again;
        }
        Err(EngineError::Provider(ProviderError::new(
            ErrorKind::Transient,
            "list",
            format!(
                "{TRIES} listings of {target} in a row disagree; cannot tell whether this slot's snapshot exists, so none is created"
            ),
        )))
    }

    /// Retention for one target: list, decide, delete (unless `dry_run`)
    /// at most `max_deletes_per_run` snapshots, and follow each delete to
    /// its end.
    pub async fn prune(
        &self,
        policy: &Policy,
        target: &str,
        dry_run: bool,
    ) -> Result<PruneReport, EngineError> {
        let ps = self.slot(policy)?;
        let mode = if dry_run {
            PruneMode::DryRun
        } else {
            PruneMode::Budgeted
        };
        self.prune_with(&ps, policy, target, mode).await
    }

    /// The operator's `prune --yes`: retention for one target without the
    /// deletion budget. The other guards still hold.
    pub async fn prune_confirmed(
        &self,
        policy: &Policy,
        target: &str,
    ) -> Result<PruneReport, EngineError> {
        let ps = self.slot(policy)?;
        self.prune_with(&ps, policy, target, PruneMode::Confirmed)
            .await
    }

    async fn prune_with(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        mode: PruneMode,
    ) -> Result<PruneReport, EngineError> {
        let dry_run = mode == PruneMode::DryRun;
        let deadline = policy.timing.deadline(Utc::now());
        let mut listed = self.list(ps, policy, target, deadline).await?;
        let ledger = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)?;

        if !dry_run {
            // Ledger rows the cloud no longer lists were deleted elsewhere.
            // One listing is not proof: pages shift when snapshots come and
            // go while it is read, so a snapshot missing from it is written
            // off only if a second listing misses it too. If the two reads
            // disagree, the listing cannot be trusted and this target is
            // not pruned now.
            //
            // Only what the listing looked at can be missing from it: a row
            // is written off only when its source (volume) is one the
            // listing covers. A source that left the target (a volume
            // detached from an instance, a name now resolving elsewhere, a
            // changed `resource`) was not looked at; its snapshots stay in
            // the ledger, and `orphans` shows them. Each row's source is
            // learnt the first time a listing shows it.
            let mut sources =
                self.state
                    .snapshot_sources(&policy.provider, &policy.name, target)?;
            let rows: HashMap<&str, i64> = ledger
                .iter()
                .map(|r| (r.snapshot_id.as_str(), r.id))
                .collect();
            let learnt: Vec<(i64, String)> = listed
                .iter()
                .filter(|s| s.state != SnapshotState::Gone)
                .filter_map(|s| {
                    rows.get(s.id.as_str())
                        .filter(|id| sources.get(id) != Some(&s.source))
                        .map(|id| (*id, s.source.clone()))
                })
                .collect();
            if !learnt.is_empty() {
                let rows: Vec<(i64, &str)> =
                    learnt.iter().map(|(id, src)| (*id, src.as_str())).collect();
                self.state.record_snapshot_sources(&rows)?;
                sources.extend(learnt);
            }
            let missing = |listed: &[RemoteSnapshot]| -> Vec<&SnapshotRow> {
                let alive = || listed.iter().filter(|s| s.state != SnapshotState::Gone);
                let ids: std::collections::HashSet<&str> = alive().map(|s| s.id.as_str()).collect();
                let covered: std::collections::HashSet<&str> =
                    alive().map(|s| s.source.as_str()).collect();
                ledger
                    .iter()
                    .filter(|r| {
                        r.state == LedgerState::Available
                            && !ids.contains(r.snapshot_id.as_str())
                            // Unknown source: a row not listed since it was
                            // recorded (older ledgers), judged as before.
                            && sources
                                .get(&r.id)
                                .is_none_or(|src| covered.contains(src.as_str()))
                    })
                    .collect()
            };
            let first: Vec<i64> = missing(&listed).iter().map(|r| r.id).collect();
            if !first.is_empty() {
                let again = self.list(ps, policy, target, deadline).await?;
                let second = missing(&again);
                let disagree = first
                    .iter()
                    .find(|id| !second.iter().any(|r| r.id == **id))
                    .copied()
                    .or_else(|| second.iter().map(|r| r.id).find(|id| !first.contains(id)));
                if let Some(back) = disagree {
                    let snapshot = ledger
                        .iter()
                        .find(|r| r.id == back)
                        .map(|r| r.snapshot_id.as_str())
                        .unwrap_or_default();
                    return Err(EngineError::Provider(ProviderError::new(
                        ErrorKind::Transient,
                        "list",
                        format!(
                            "two listings of {target} disagree (snapshot {snapshot} missing from one); not pruning it now"
                        ),
                    )));
                }
                for row in second {
                    warn!(policy = %policy.name, target, snapshot = %row.snapshot_id, "snapshot in the ledger is gone from the cloud (missing from two listings)");
                    self.state.mark_deleted(row.id, Utc::now())?;
                }
                listed = again;
            }
        }
        let by_id: HashMap<&str, _> = ledger.iter().map(|r| (r.snapshot_id.as_str(), r)).collect();

        // Retention counts per source (an instance target lists the
        // snapshots of each of its volumes).
        let mut groups: BTreeMap<&str, Vec<Candidate>> = BTreeMap::new();
        for s in listed.iter().filter(|s| s.state != SnapshotState::Gone) {
            let row = by_id.get(s.id.as_str());
            let own = s.marker_slot.is_some() && row.is_some();
            let condition = match (s.state, row.map(|r| r.state)) {
                (SnapshotState::Available, Some(LedgerState::Available) | None) => Condition::Good,
                (SnapshotState::Available, Some(LedgerState::Failed))
                | (SnapshotState::Failed, _) => Condition::Failed,
                _ => Condition::InProgress,
            };
            groups
                .entry(s.source.as_str())
                .or_default()
                .push(Candidate {
                    id: s.id.clone(),
                    // Where the cloud gives no creation time, the slot
                    // (the marker's, else the ledger's) orders it: a UTC
                    // instant fixed by the schedule, never a reading of
                    // this host's clock, which may have stepped back and
                    // would sort the real newest as older.
                    created_at: s
                        .created_at
                        .or(s.marker_slot)
                        .or(row.map(|r| r.slot))
                        .unwrap_or(DateTime::<Utc>::MIN_UTC),
                    condition,
                    own,
                    chain: s.chain.clone(),
                });
        }
        let rules = policy.rules;
        let mut report = PruneReport {
            decisions: groups
                .values()
                .flat_map(|g| retention::decide(g, &rules))
                .collect(),
            listed: if dry_run { listed.clone() } else { Vec::new() },
            ..Default::default()
        };
        let to_delete: Vec<String> = report
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
            .map(|d| d.id.clone())
            .collect();
        let hold = match mode {
            PruneMode::Confirmed => None,
            _ => self.state.delete_hold(&policy.name, target)?,
        };
        if mode == PruneMode::Budgeted {
            metrics::deletes_held(&policy.name, target, hold.is_some());
        }
        let (to_delete, held) = self.delete_allowance(
            policy,
            target,
            &groups,
            mode,
            hold.map(|h| h.reason),
            to_delete,
        );
        if let Some((ids, why)) = held {
            if !dry_run {
                warn!(policy = %policy.name, target, held = ids.len(), reason = %why, "deletes held back");
            }
            report.held = ids;
            report.held_because = Some(why);
        }
        if dry_run {
            return Ok(report);
        }

        // Belt and braces: re-check every guard before any delete.
        let newest_good: std::collections::HashSet<String> = groups
            .values()
            .filter_map(|g| {
                g.iter()
                    .filter(|c| c.own && c.condition == Condition::Good)
                    .max_by_key(|c| c.created_at)
                    .map(|c| c.id.clone())
            })
            .collect();
        let candidates: Vec<&Candidate> = groups.values().flatten().collect();
        // Incremental chains: delete one at a time, dependants first (the
        // order retention gives), so no delete meets a dependant still
        // being deleted. Independent snapshots are deleted side by side.
        let chained = candidates
            .iter()
            .any(|c| c.chain.as_ref().is_some_and(|ch| !ch.full));
        // A snapshot being restored from is not deleted under the restore.
        let restoring =
            self.state
                .snapshots_being_restored(&policy.provider, &policy.name, target)?;
        let mut waits = Vec::new();
        for (n, id) in to_delete.iter().enumerate() {
            if chained && !report.failed.is_empty() {
                // A chain stops at its first failed delete: the next one is
                // what the failed one depends on (retention's order), and
                // deleting it would break the survivor's chain (or, where
                // the cloud refuses, be retried until the timeout).
                let rest = to_delete[n..].to_vec();
                warn!(policy = %policy.name, target, held = rest.len(), "a delete in an incremental chain failed; the rest of the chain waits for the next run");
                report.held_because = Some(format!(
                    "a delete in an incremental chain failed ({}); the {} snapshots it depends on are left for the next run",
                    report.failed.join("; "),
                    rest.len()
                ));
                report.held.extend(rest);
                break;
            }
            if restoring.contains(id) {
                warn!(policy = %policy.name, target, snapshot = %id, "not deleting a snapshot a restore is reading from");
                report.held.push(id.clone());
                report.held_because = Some(format!("snapshot {id} is being restored from"));
                continue;
            }
            let Some(c) = candidates.iter().find(|c| &c.id == id) else {
                continue;
            };
            let Some(row) = by_id.get(id.as_str()) else {
                continue;
            };
            if !c.own || c.condition != Condition::Good || newest_good.contains(&c.id) {
                error!(policy = %policy.name, target, snapshot = %id, "refusing a delete that breaks a guard");
                continue;
            }
            match self
                .delete_one(ps, policy, target, row.id, id, deadline)
                .await
            {
                Ok(Some(w)) => waits.push((id.clone(), w)),
                Ok(None) => report.deleted += 1,
                Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
                Err(e) => {
                    metrics::snapshot_delete_failed(
                        &policy.name,
                        target,
                        &policy.provider,
                        e.reason(),
                    );
                    report.failed.push(format!("{id}: {e}"))
                }
            }
            if chained {
                self.collect_deletes(&mut waits, &mut report).await?;
            }
        }
        self.collect_deletes(&mut waits, &mut report).await?;
        if mode == PruneMode::Confirmed
            && report.failed.is_empty()
            && report.held.is_empty()
            && self.state.release_deletes(&policy.name, target)?
        {
            info!(policy = %policy.name, target, "deletion hold lifted by the operator's confirmation");
            metrics::deletes_held(&policy.name, target, false);
        }
        Ok(report)
    }

    /// Which of retention's deletes may go now, in retention's order
    /// (dependants before the snapshot they depend on, so any prefix is
    /// safe), and which are held back and why. Nothing goes while the
    /// newest own snapshot of a source is not good; beyond
    /// `max_deletes_per_run` nothing goes unless the operator confirmed.
    #[allow(clippy::type_complexity)]
    fn delete_allowance(
        &self,
        policy: &Policy,
        target: &str,
        groups: &BTreeMap<&str, Vec<Candidate>>,
        mode: PruneMode,
        hold: Option<String>,
        mut to_delete: Vec<String>,
    ) -> (Vec<String>, Option<(Vec<String>, String)>) {
        if to_delete.is_empty() {
            return (to_delete, None);
        }
        if let Some(reason) = hold {
            let why = format!(
                "deletions held since a reload: {reason}; check the rules, then run \
                 `snapwarden prune --policy {} --yes`",
                policy.name
            );
            return (Vec::new(), Some((to_delete, why)));
        }
        let not_good = groups
            .values()
            .filter_map(|g| g.iter().filter(|c| c.own).max_by_key(|c| c.created_at))
            .find(|c| c.condition != Condition::Good);
        if let Some(c) = not_good {
            let what = match c.condition {
                Condition::InProgress => "still in progress",
                _ => "failed",
            };
            let why = format!(
                "the newest own snapshot {} is {what}: nothing is pruned until a newer one is good",
                c.id
            );
            return (Vec::new(), Some((to_delete, why)));
        }
        let budget = policy.max_deletes_per_run as usize;
        if mode == PruneMode::Confirmed || to_delete.len() <= budget {
            return (to_delete, None);
        }
        let wanted = to_delete.len();
        let held = to_delete.split_off(budget);
        if mode == PruneMode::Budgeted {
            metrics::prune_budget_exceeded(&policy.name, target);
        }
        let why = format!(
            "retention wants to delete {wanted} snapshots, more than max_deletes_per_run = {budget}: \
             {budget} deleted, {} held back; check the rules, then run `snapwarden prune --policy {} --yes` \
             to delete the rest (or let the next runs delete {budget} at a time)",
            held.len(),
            policy.name
        );
        (to_delete, Some((held, why)))
    }

    /// Wait for the deletes in flight and count their outcomes.
    async fn collect_deletes(
        &self,
        waits: &mut Vec<(String, tokio::sync::oneshot::Receiver<OpOutcome>)>,
        report: &mut PruneReport,
    ) -> Result<(), EngineError> {
        for (id, w) in waits.drain(..) {
            match self.or_shutdown(w).await? {
                Ok(OpOutcome::Succeeded) => report.deleted += 1,
                Ok(OpOutcome::Failed(reason) | OpOutcome::TimedOut(reason)) => {
                    report.failed.push(format!("{id}: {reason}"))
                }
                Err(_) => return Err(EngineError::Shutdown),
            }
        }
        Ok(())
    }

    async fn delete_one(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        row: i64,
        snapshot_id: &str,
        deadline: DateTime<Utc>,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<OpOutcome>>, EngineError> {
        let started = self
            .retrying(policy, deadline, "delete", || {
                ps.provider.delete(snapshot_id)
            })
            .await?;
        match started {
            DeleteStarted::AlreadyGone => {
                metrics::snapshot_deleted(&policy.name, target, &policy.provider);
                info!(policy = %policy.name, target, snapshot = %snapshot_id, "snapshot already gone");
                self.state.mark_deleted(row, Utc::now())?;
                Ok(None)
            }
            DeleteStarted::Tracking(reference) => {
                let now = Utc::now();
                let op = self.state.begin_delete(
                    row,
                    &reference,
                    now,
                    poll_plan(policy, now, deadline),
                )?;
                info!(policy = %policy.name, target, snapshot = %snapshot_id, job = %reference, "deleting snapshot");
                Ok(Some(ps.poller.watch(op, policy.timing.poll_max_interval)))
            }
        }
    }

    /// Restore the newest good own snapshot of a target (or the one given)
    /// and follow it to completion. An in-place restore needs `confirmed`.
    pub async fn restore(
        &self,
        policy: &Policy,
        target: &str,
        snapshot: Option<&str>,
        new_name: Option<&str>,
        confirmed: bool,
    ) -> Result<RestoreReport, EngineError> {
        let ps = self.slot(policy)?;
        let deadline = policy.timing.deadline(Utc::now());
        let listed = self.list(&ps, policy, target, deadline).await?;
        let ledger = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)?;
        let own_good: Vec<(&RemoteSnapshot, i64)> = listed
            .iter()
            .filter(|s| s.marker_slot.is_some() && s.state == SnapshotState::Available)
            .filter_map(|s| {
                ledger
                    .iter()
                    .find(|r| r.snapshot_id == s.id && r.state == LedgerState::Available)
                    .map(|r| (s, r.id))
            })
            .collect();
        let (chosen, row) = match snapshot {
            Some(id) => own_good
                .iter()
                .find(|(s, _)| s.id == id)
                .copied()
                .ok_or_else(|| {
                    EngineError::Failed(format!(
                        "snapshot {id} is not a good snapshot that policy {} made of {target}",
                        policy.name
                    ))
                })?,
            None => own_good
                .iter()
                .max_by_key(|(s, _)| s.created_at)
                .copied()
                .ok_or_else(|| {
                    EngineError::Failed(format!(
                        "policy {} has no good snapshot of {target} to restore",
                        policy.name
                    ))
                })?,
        };
        let mode = ps.provider.capabilities().restore;
        if mode == providers::RestoreMode::InPlace && !confirmed {
            return Err(EngineError::NeedsConfirmation(format!(
                "restoring {} onto {target} replaces its current data in place; run again with --yes to do it",
                chosen.id
            )));
        }
        // One attempt: a restore that may have reached the cloud is never
        // repeated blindly (it would make a second volume).
        let started = self
            .or_shutdown(ps.provider.restore(&providers::RestoreRequest {
                resource: policy.resource,
                target: target.to_string(),
                snapshot_id: chosen.id.clone(),
                new_name: new_name.map(str::to_string),
            }))
            .await??;
        let now = Utc::now();
        let op = self.state.begin_restore(
            row,
            &started.operation,
            now,
            poll_plan(policy, now, deadline),
        )?;
        info!(policy = %policy.name, target, snapshot = %chosen.id, job = %started.operation, "restore started");
        match self
            .or_shutdown(ps.poller.watch(op, policy.timing.poll_max_interval))
            .await?
        {
            Ok(OpOutcome::Succeeded) => Ok(RestoreReport {
                snapshot_id: chosen.id.clone(),
                mode,
                resource_id: started.resource_id,
            }),
            Ok(OpOutcome::Failed(e)) => Err(EngineError::Failed(e)),
            Ok(OpOutcome::TimedOut(e)) => Err(EngineError::TimedOut(e)),
            Err(_) => Err(EngineError::Shutdown),
        }
    }

    /// Take up the work no task of this process is carrying out: every run
    /// open in the ledger without a claim, left by an earlier process or
    /// abandoned by this one (an interrupted one-shot command, a ledger
    /// write that failed at the end of a run, a panicked task), and, with
    /// `with_ops` (at start-up), every operation in flight that no open run
    /// waits for (deletes, restores), which the pollers then follow to the
    /// end. Intents without ids are reconciled by name before anything is
    /// created again.
    ///
    /// Returns one future per run taken up, carrying it to its end; the
    /// caller runs them like any other run, so their outcomes are alerted.
    pub fn take_up_abandoned(
        self: &Arc<Self>,
        config: &Config,
        with_ops: bool,
    ) -> Result<Vec<BoxFuture<'static, RunReport>>, EngineError> {
        let mut claimed = Vec::new();
        {
            // Read and claim under the lock `begin_slot` claims under, so a
            // run being started now is never taken for abandoned.
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            let (runs, unreadable) = self.state.open_runs_readable()?;
            self.report_unreadable(unreadable);
            for run in runs {
                if let Some(claim) = Claim::take(&self.active, &mut active, run.id) {
                    claimed.push((run, claim));
                }
            }
        }
        if claimed.is_empty() && !with_ops {
            return Ok(Vec::new());
        }
        let (ops, unreadable) = self.state.ops_in_flight_readable()?;
        self.report_unreadable(unreadable);
        if !ops.is_empty() || !claimed.is_empty() {
            info!(
                operations = ops.len(),
                runs = claimed.len(),
                "taking up work left in flight"
            );
        }
        let policies: BTreeMap<&str, &Policy> = config
            .policies
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect();
        let mut run_ops: BTreeMap<i64, Vec<OpRow>> = BTreeMap::new();
        let open: HashSet<i64> = claimed.iter().map(|(r, _)| r.id).collect();
        for op in ops {
            if open.contains(&op.run_id) && op.kind == providers::OpKind::Create {
                run_ops.entry(op.run_id).or_default().push(op);
            } else if !with_ops {
                // Followed by the task that started it, or taken up at
                // start-up; a poller never drops a watch.
            } else if let Some(ps) = self.slot_by_name(&op.provider) {
                let max = policies
                    .get(op.policy.as_str())
                    .map(|p| p.timing.poll_max_interval)
                    .unwrap_or(Duration::from_secs(120));
                // The poller records the outcome; nobody needs to wait.
                drop(ps.poller.watch(op, max));
            } else {
                warn!(provider = %op.provider, operation = %op.reference, "operation of a provider no longer configured; left in the ledger");
            }
        }
        let mut out: Vec<BoxFuture<'static, RunReport>> = Vec::new();
        for (run, claim) in claimed {
            let ops = run_ops.remove(&run.id).unwrap_or_default();
            let Some(policy) = policies.get(run.policy.as_str()).map(|p| (*p).clone()) else {
                warn!(policy = %run.policy, target = %run.target, "open run of a policy no longer configured; marked failed");
                self.state.set_run_state(
                    run.id,
                    RunState::Failed,
                    Some("policy removed from the configuration"),
                    Utc::now(),
                )?;
                continue;
            };
            let engine = self.clone();
            out.push(Box::pin(async move {
                let _claim = claim;
                let (target, slot) = (run.target.clone(), run.slot);
                let outcome = match engine.resume_run(&policy, run, ops).await {
                    Ok(outcome) => outcome,
                    Err(EngineError::Shutdown) => RunOutcome::Interrupted,
                    Err(e) => {
                        error!(policy = %policy.name, target = %target, error = %e, "resuming a run failed");
                        RunOutcome::Failed(e.to_string())
                    }
                };
                report(&policy, &target, slot, outcome)
            }));
        }
        Ok(out)
    }

    /// One corrupt row never stops recovery: it is left out, logged once
    /// (with its id, for the operator to mend) and counted.
    fn report_unreadable(&self, rows: Vec<crate::state::Unreadable>) {
        let mut seen = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            if seen.insert((row.table, row.id)) {
                error!(table = row.table, row = row.id, problem = %row.problem, "a ledger row cannot be read; it is left out, the rest is taken up");
                metrics::ledger_row_unreadable(row.table);
            }
        }
    }

    async fn resume_run(
        self: &Arc<Self>,
        policy: &Policy,
        run: RunRow,
        ops: Vec<OpRow>,
    ) -> Result<RunOutcome, EngineError> {
        let ps = self.slot(policy)?;
        let target = run.target.as_str();
        let deadline = policy.timing.deadline(run.started_at);
        info!(policy = %policy.name, target, slot = %run.slot, state = run.state.as_str(), "resuming run");
        let result = match run.state {
            RunState::Intent => {
                // Whether the create reached the cloud is unknown: the
                // ambiguous path reconciles by name first (or lets a
                // reconciling create make only what is missing), and
                // creates nothing past the run's timeout.
                let marker = Marker {
                    policy: policy.name.clone(),
                    target: target.to_string(),
                    slot: run.slot,
                };
                self.create_and_follow(
                    &ps, policy, target, run.id, &marker, &run.name, run.full, deadline, true,
                )
                .await
            }
            RunState::Creating => {
                let awaited = if ops.is_empty() {
                    Ok(())
                } else {
                    self.await_ops(&ps, policy, ops).await
                };
                match awaited {
                    Ok(()) => {
                        self.settle_run_snapshots(&ps, policy, run.id, target, deadline)
                            .await
                    }
                    failed => failed,
                }
            }
            _ => Ok(()),
        };
        self.conclude(&ps, policy, target, run.id, result).await
    }

    /// A run is good only when every snapshot it made is good. After the
    /// operations it waited for: a snapshot adopted by name while still
    /// creating has no operation (it was followed by listing when the
    /// process died), so it is followed by listing again; one that already
    /// ended failed (its outcome recorded while a sibling was still being
    /// followed) fails the run.
    async fn settle_run_snapshots(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        run_id: i64,
        target: &str,
        deadline: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mut bad = Vec::new();
        for s in self.state.run_snapshots(run_id)? {
            match s.state {
                LedgerState::Available => {}
                LedgerState::Creating => {
                    match self
                        .follow_listed(ps, policy, target, s.id, &s.snapshot_id, deadline)
                        .await
                    {
                        Ok(()) => {}
                        Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
                        Err(e) => bad.push(e.to_string()),
                    }
                }
                other => bad.push(match &s.error {
                    Some(e) => format!("snapshot {} is {}: {e}", s.snapshot_id, other.as_str()),
                    None => format!("snapshot {} is {}", s.snapshot_id, other.as_str()),
                }),
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Failed(bad.join("; ")))
        }
    }
}

/// Resolves when the shutdown flag turns true. A flag whose sender is gone
/// can never turn true, so then it never resolves (rather than spinning).
pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A run whose timeout passed before it could start (or finish starting)
/// its snapshot: nothing more is created for the slot.
fn too_late(policy: &Policy, before: &str) -> EngineError {
    EngineError::TimedOut(format!(
        "the slot's timeout ({}) passed before {before} (waiting for jitter, a max_in_flight permit or retries); nothing more is created for this slot",
        humantime::format_duration(policy.timing.timeout)
    ))
}

/// Count a throttling answer (the metric operators alert on).
fn note_throttle(policy: &Policy, e: &ProviderError) {
    if e.kind == providers::ErrorKind::Throttled {
        metrics::api_throttled(&policy.provider);
    }
}

fn report(policy: &Policy, target: &str, slot: DateTime<Utc>, outcome: RunOutcome) -> RunReport {
    RunReport {
        policy: policy.name.clone(),
        target: target.to_string(),
        slot,
        outcome,
    }
}

fn ledger_state(s: SnapshotState) -> LedgerState {
    match s {
        SnapshotState::Available => LedgerState::Available,
        SnapshotState::Failed => LedgerState::Failed,
        _ => LedgerState::Creating,
    }
}

fn poll_plan(policy: &Policy, now: DateTime<Utc>, deadline: DateTime<Utc>) -> PollPlan {
    PollPlan {
        first_poll: now
            + chrono::Duration::from_std(policy.timing.poll_interval).unwrap_or_default(),
        interval: policy.timing.poll_interval,
        deadline,
    }
}

fn log_created(policy: &Policy, target: &str, created: &[Created]) {
    for c in created {
        info!(policy = %policy.name, target, provider = %policy.provider, snapshot = %c.snapshot_id, job = %c.operation, "snapshot creation started");
    }
}

#[cfg(test)]
mod tests;
