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
mod hooks;
mod orphans;
mod poller;
mod prune;
mod restore;
mod resume;
mod retry;
mod run;
mod select;
mod settle;

pub use hold::{PlacedHold, ReloadPlan};
pub use hooks::OwedHookFailed;
pub use orphans::{Orphan, OrphanKind, OrphanOutcome, Verified};
pub use poller::{OpOutcome, Poller};
pub use retry::RetryPolicy;
pub use select::{ledger_targets, Resolved};
pub use settle::Settled;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Semaphore};
use tracing::{error, warn};

use crate::config::{Config, Policy};
use crate::domain::Held;
use crate::observe::events::{self, CallFailed};
use crate::providers::{self, Marker, Provider, ProviderError, RemoteSnapshot, SnapshotState};
use crate::retention::Decision;
use crate::state::{AuditAction, AuditEntry, Ledger, LedgerState, PollPlan, StateError};

/// The audit trail's actor of an engine not told who it acts for.
const DEFAULT_ACTOR: &str = "snapwarden";

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
    /// A pre or post snapshot hook failed (what it did to the snapshot).
    #[error("{0}")]
    Hook(String),
    /// Inside the policy's blackout window: nothing was created, the run
    /// is skipped (not a failure).
    #[error("{0}")]
    Blackout(String),
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
            EngineError::Hook(_) => "hook",
            EngineError::Blackout(_) => "blackout",
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
        held: Option<Held>,
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
    /// Hold what the run makes (`snapshot --keep-for`): kept outside
    /// retention from before the run's prune on.
    pub keep: Option<Keep>,
}

/// An on-demand run's hold on the snapshots it makes.
#[derive(Debug, Clone)]
pub struct Keep {
    pub until: DateTime<Utc>,
    pub by: String,
    pub reason: String,
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
    /// the locked set, so a caller can claim many in one step.
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
    /// The policy's provider (as alerts and metrics label it).
    pub provider: String,
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
    pub held_because: Option<Held>,
}

/// How far a prune may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMode {
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

/// Whether this process may call the clouds now. A process with a ledger
/// of its own always may. A node of a shared ledger may only while its
/// lease is certainly held: until a deadline on the monotonic clock, well
/// inside the lease, that each renewal moves on. Past it (a renewal that
/// did not come back, a process that was paused) no create, delete or
/// restore is sent, whatever the wall clock says.
#[derive(Debug)]
pub struct Mandate(Mutex<Option<std::time::Instant>>);

impl Mandate {
    /// For a process that is the only writer of its ledger.
    pub fn always() -> Arc<Mandate> {
        Arc::new(Mandate(Mutex::new(None)))
    }

    /// For a leader: valid until `until`, then only as renewed.
    pub fn until(until: std::time::Instant) -> Arc<Mandate> {
        Arc::new(Mandate(Mutex::new(Some(until))))
    }

    /// A renewal succeeded: valid until `until` (never moved back).
    pub fn extend(&self, until: std::time::Instant) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = m.as_mut() {
            *current = (*current).max(until);
        }
    }

    /// Leadership is lost: nothing more is sent.
    pub fn revoke(&self) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_some() {
            *m = Some(std::time::Instant::now());
        }
    }

    /// Whether a call may be sent now.
    pub fn holds(&self) -> bool {
        match *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            None => true,
            Some(until) => std::time::Instant::now() < until,
        }
    }
}

/// The engine: providers, their pollers, the ledger.
pub struct Engine {
    state: Arc<dyn Ledger>,
    providers: RwLock<BTreeMap<String, Arc<ProviderSlot>>>,
    shutdown: watch::Receiver<bool>,
    /// Runs a task of this process is carrying out.
    active: ActiveRuns,
    /// Held across "write or read the open runs, then claim them"
    /// (`begin_slot`, `take_up_abandoned`), so a run being started is
    /// never taken for abandoned. Async: the ledger is awaited under it.
    claiming: tokio::sync::Mutex<()>,
    /// Whether calls to the clouds may be sent (see [`Mandate`]).
    mandate: Arc<Mandate>,
    /// Unreadable ledger rows already reported (each is logged once).
    unreadable: Mutex<HashSet<(&'static str, i64)>>,
    /// The environment variables secrets come from: hooks never see them.
    hook_scrub_env: RwLock<Vec<String>>,
    /// Who the audit trail names for what this engine does (see
    /// [`Engine::with_actor`]).
    actor: RwLock<String>,
}

impl Engine {
    /// Build every configured provider and start its poller.
    pub fn new(
        state: Arc<dyn Ledger>,
        config: &Config,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Engine>, EngineError> {
        Engine::with_mandate(state, config, shutdown, Mandate::always())
    }

    /// [`Engine::new`] for the leader of a shared ledger: no call to a
    /// cloud is sent while `mandate` does not hold.
    pub fn with_mandate(
        state: Arc<dyn Ledger>,
        config: &Config,
        shutdown: watch::Receiver<bool>,
        mandate: Arc<Mandate>,
    ) -> Result<Arc<Engine>, EngineError> {
        let engine = Arc::new(Engine::bare(state, shutdown, mandate));
        engine.install_providers(config)?;
        Ok(engine)
    }

    /// An engine without providers.
    fn bare(
        state: Arc<dyn Ledger>,
        shutdown: watch::Receiver<bool>,
        mandate: Arc<Mandate>,
    ) -> Engine {
        Engine {
            state,
            providers: RwLock::new(BTreeMap::new()),
            shutdown,
            active: ActiveRuns::default(),
            claiming: tokio::sync::Mutex::new(()),
            mandate,
            unreadable: Mutex::default(),
            hook_scrub_env: RwLock::default(),
            actor: RwLock::new(DEFAULT_ACTOR.to_string()),
        }
    }

    /// Name `actor` in the audit trail for what this engine does: the
    /// daemon's "daemon (node NAME)", or the user who ran a command.
    pub fn with_actor(self: Arc<Self>, actor: impl Into<String>) -> Arc<Self> {
        *self.actor.write().unwrap_or_else(|p| p.into_inner()) = actor.into();
        self
    }

    /// Who the audit trail names for what this engine does.
    pub fn actor(&self) -> String {
        self.actor.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Append entries to the audit trail. A fact about what was already
    /// done: a failure to record it is logged and fails nothing.
    async fn audit(&self, entries: Vec<AuditEntry>) {
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.state.record_audit(&entries).await {
            let first = &entries[0];
            error!(
                error = %e,
                action = first.action.as_str(),
                policy = first.policy.as_deref().unwrap_or(""),
                target = first.target.as_deref().unwrap_or(""),
                snapshot = first.snapshot.as_deref().unwrap_or(""),
                entries = entries.len(),
                "cannot record in the audit trail: {}",
                first.detail
            );
        }
    }

    /// An audit entry of this engine's actor, now, about a snapshot.
    fn audit_entry(
        &self,
        action: AuditAction,
        policy: &str,
        target: &str,
        snapshot: &str,
        detail: String,
    ) -> AuditEntry {
        AuditEntry {
            at: Utc::now(),
            actor: self.actor(),
            action,
            policy: Some(policy.to_string()),
            target: Some(target.to_string()),
            snapshot: Some(snapshot.to_string()),
            detail,
        }
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
        config.secret_env.clone_into(
            &mut self
                .hook_scrub_env
                .write()
                .unwrap_or_else(|p| p.into_inner()),
        );
        Ok(())
    }

    pub fn state(&self) -> &Arc<dyn Ledger> {
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

    /// Wait for `fut` unless the daemon stops first. Every call to a cloud
    /// goes through here, so a process that lost its mandate (a leader
    /// whose lease may have passed to another node) sends none: it stops
    /// as for a shutdown, its runs left open for whoever leads next.
    async fn or_shutdown<T>(&self, fut: impl Future<Output = T>) -> Result<T, EngineError> {
        let rx = self.shutdown.clone();
        if *rx.borrow() {
            return Err(EngineError::Shutdown);
        }
        if !self.mandate.holds() {
            error!("the lease may have passed to another node: no call to the cloud is sent");
            return Err(EngineError::Shutdown);
        }
        tokio::select! {
            v = fut => Ok(v),
            _ = crate::shutdown::stopped(rx) => Err(EngineError::Shutdown),
        }
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
    events::emit(CallFailed {
        provider: &policy.provider,
        kind: e.kind,
    });
}

fn report(policy: &Policy, target: &str, slot: DateTime<Utc>, outcome: RunOutcome) -> RunReport {
    RunReport {
        policy: policy.name.clone(),
        provider: policy.provider.clone(),
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

#[cfg(test)]
mod tests;

/// How the note of a run skipped by a pause starts.
pub const PAUSED_SKIP: &str = "skipped: paused";
/// How the note of a run skipped by a blackout window starts.
pub const BLACKOUT_SKIP: &str = "skipped: inside the policy's blackout window";

/// Whether a skipped run's note says it was skipped on purpose (a pause,
/// a blackout window): not a slot that fell through, so no alert.
pub fn skipped_on_purpose(note: &str) -> bool {
    note.starts_with(PAUSED_SKIP) || note.starts_with(BLACKOUT_SKIP)
}

/// Refuse to start a create or a delete inside the policy's blackout
/// window: the error says until when.
fn outside_blackout(policy: &Policy) -> Result<(), EngineError> {
    match policy
        .blackout
        .as_ref()
        .and_then(|b| b.covering(Utc::now()))
    {
        None => Ok(()),
        Some(until) => Err(EngineError::Blackout(format!(
            "{BLACKOUT_SKIP} until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))),
    }
}
