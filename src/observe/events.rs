//! What the engine and the daemon report, as typed events. Each event is
//! turned into its log line and its metrics here, in one place, so a call
//! site says what happened and never how it is logged or counted (Vector's
//! internal events are the model). Alerts follow from the engine's typed
//! reports in the daemon's alerting glue.
//!
//! Events log under the target of the room that raises them
//! (`snapwarden::engine`, `snapwarden::daemon`), so `RUST_LOG` filters by
//! room keep working.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::metrics;
use crate::domain::{ErrorKind, OpKind};

const ENGINE: &str = "snapwarden::engine";
const DAEMON: &str = "snapwarden::daemon";

/// Something that happened, with what operators see of it.
pub trait Event {
    /// Write the log line and record the metrics.
    fn emit(self);
}

/// Emit one event.
pub fn emit(event: impl Event) {
    event.emit();
}

/// A slot not run on a target: its previous run is still in flight.
pub struct SlotOverlapped<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub slot: DateTime<Utc>,
    pub why: &'a str,
}

impl Event for SlotOverlapped<'_> {
    fn emit(self) {
        metrics::run_skipped(self.policy, "overlap");
        warn!(target: ENGINE, policy = %self.policy, target = %self.target, slot = %self.slot, reason = %self.why, "slot skipped");
    }
}

/// A slot not run on purpose: a blackout window, a pause (`reason`, the
/// metric's label). Logged at info: the operator asked for it.
pub struct SlotSkippedOnPurpose<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub slot: DateTime<Utc>,
    pub reason: &'static str,
    pub why: &'a str,
}

impl Event for SlotSkippedOnPurpose<'_> {
    fn emit(self) {
        metrics::run_skipped(self.policy, self.reason);
        info!(target: ENGINE, policy = %self.policy, target = %self.target, slot = %self.slot, reason = self.reason, why = %self.why, "slot skipped on purpose");
    }
}

/// Slots that passed while the daemon was busy or suspended (or the clock
/// jumped): they are not run.
pub struct SlotsMissed<'a> {
    pub policy: &'a str,
}

impl Event for SlotsMissed<'_> {
    fn emit(self) {
        warn!(target: DAEMON, policy = %self.policy, "slots missed while the daemon was busy or suspended; skipping to the next one");
        metrics::run_skipped(self.policy, "catch_up_limit");
    }
}

/// A run failed: no good snapshot for this slot, and no pruning.
pub struct RunFailed<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub provider: &'a str,
    /// The failure's kind, as the metrics label it.
    pub reason: &'static str,
    pub error: &'a str,
}

impl Event for RunFailed<'_> {
    fn emit(self) {
        metrics::snapshot_failed(self.policy, self.target, self.provider, self.reason);
        error!(target: ENGINE, policy = %self.policy, target = self.target, error = %self.error, reason = self.reason, "run failed; no pruning for this target");
    }
}

/// Every snapshot of a run is good (pruning comes next).
pub struct SnapshotsGood<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub at: DateTime<Utc>,
}

impl Event for SnapshotsGood<'_> {
    fn emit(self) {
        metrics::run_succeeded(self.policy, self.target, self.at);
    }
}

/// A run ended well: what it created, deleted and held back, and how many
/// good snapshots the target keeps.
pub struct RunSucceeded<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub created: usize,
    pub deleted: usize,
    pub held: usize,
    pub kept: usize,
    /// The bytes of the kept snapshots, where every one's size is known.
    pub bytes_kept: Option<u64>,
}

impl Event for RunSucceeded<'_> {
    fn emit(self) {
        metrics::retained(self.policy, self.target, self.kept);
        metrics::snapshot_bytes(self.policy, self.target, self.bytes_kept);
        info!(target: ENGINE, policy = %self.policy, target = self.target, created = self.created, deleted = self.deleted, held = self.held, "run succeeded");
    }
}

/// A delete failed before it could be followed (its call was refused, or
/// the ledger could not take it).
pub struct DeleteFailed<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub provider: &'a str,
    pub reason: &'a str,
}

impl Event for DeleteFailed<'_> {
    fn emit(self) {
        metrics::snapshot_delete_failed(self.policy, self.target, self.provider, self.reason);
    }
}

/// A snapshot to delete was gone already: it counts as deleted.
pub struct AlreadyGone<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub provider: &'a str,
    pub snapshot: &'a str,
}

impl Event for AlreadyGone<'_> {
    fn emit(self) {
        metrics::snapshot_deleted(self.policy, self.target, self.provider);
        info!(target: ENGINE, policy = %self.policy, target = self.target, snapshot = %self.snapshot, "snapshot already gone");
    }
}

/// An orphan the operator asked to delete is deleted.
pub struct OrphanDeleted<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub provider: &'a str,
}

impl Event for OrphanDeleted<'_> {
    fn emit(self) {
        metrics::snapshot_deleted(self.policy, self.target, self.provider);
    }
}

/// Whether a target's deletions are held until the operator confirms (as a
/// run found it).
pub struct HoldState<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub held: bool,
}

impl Event for HoldState<'_> {
    fn emit(self) {
        metrics::deletes_held(self.policy, self.target, self.held);
    }
}

/// New rules would delete too much at once: the target's deletions are
/// held until `snapwarden prune --policy P --yes`.
pub struct HoldPlaced<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub reason: &'a str,
}

impl Event for HoldPlaced<'_> {
    fn emit(self) {
        warn!(target: ENGINE, policy = %self.policy, target = %self.target, reason = %self.reason, "deletions held until `snapwarden prune --policy {} --yes`", self.policy);
        metrics::deletes_held(self.policy, self.target, true);
    }
}

/// The operator's confirmation lifted a target's hold.
pub struct HoldLifted<'a> {
    pub policy: &'a str,
    pub target: &'a str,
}

impl Event for HoldLifted<'_> {
    fn emit(self) {
        info!(target: ENGINE, policy = %self.policy, target = self.target, "deletion hold lifted by the operator's confirmation");
        metrics::deletes_held(self.policy, self.target, false);
    }
}

/// Retention wanted more deletes than `max_deletes_per_run`.
pub struct BudgetExceeded<'a> {
    pub policy: &'a str,
    pub target: &'a str,
}

impl Event for BudgetExceeded<'_> {
    fn emit(self) {
        metrics::prune_budget_exceeded(self.policy, self.target);
    }
}

/// A provider call failed; throttling is counted.
pub struct CallFailed<'a> {
    pub provider: &'a str,
    pub kind: ErrorKind,
}

impl Event for CallFailed<'_> {
    fn emit(self) {
        if self.kind == ErrorKind::Throttled {
            metrics::api_throttled(self.provider);
        }
    }
}

/// A ledger row that cannot be read; it is left out, the rest goes on.
pub struct LedgerRowUnreadable<'a> {
    pub table: &'static str,
    pub row: i64,
    pub problem: &'a str,
}

impl Event for LedgerRowUnreadable<'_> {
    fn emit(self) {
        error!(target: ENGINE, table = self.table, row = self.row, problem = %self.problem, "a ledger row cannot be read; it is left out, the rest is taken up");
        metrics::ledger_row_unreadable(self.table);
    }
}

/// How an operation the engine followed ended.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    Succeeded,
    Failed(&'a str),
    /// Not terminal by the deadline.
    TimedOut(&'a str),
}

/// An operation the engine followed reached its end.
pub struct OperationFinished<'a> {
    pub provider: &'a str,
    pub policy: &'a str,
    pub target: &'a str,
    pub snapshot: &'a str,
    pub job: &'a str,
    pub kind: OpKind,
    pub took: Duration,
    pub ending: Ending<'a>,
}

impl Event for OperationFinished<'_> {
    fn emit(self) {
        let (provider, policy, target) = (self.provider, self.policy, self.target);
        match (self.ending, self.kind) {
            (Ending::Succeeded, OpKind::Create) => {
                metrics::snapshot_created(policy, target, provider)
            }
            (Ending::Succeeded, OpKind::Delete) => {
                metrics::snapshot_deleted(policy, target, provider)
            }
            (Ending::Failed(_), OpKind::Delete) => {
                metrics::snapshot_delete_failed(policy, target, provider, "operation_failed")
            }
            (Ending::TimedOut(_), OpKind::Delete) => {
                metrics::snapshot_delete_failed(policy, target, provider, "timeout")
            }
            _ => {}
        }
        metrics::operation_finished(provider, self.kind.as_str(), self.took);
        let (snapshot, job) = (self.snapshot, self.job);
        match (self.ending, self.kind) {
            (Ending::Succeeded, OpKind::Create) => info!(
                target: ENGINE, provider = %provider, policy = %policy, target = %target,
                snapshot = %snapshot, job = %job, "create job succeeded; snapshot available"
            ),
            (Ending::Succeeded, OpKind::Delete) => info!(
                target: ENGINE, provider = %provider, policy = %policy, target = %target,
                snapshot = %snapshot, job = %job, "delete job succeeded; snapshot deleted"
            ),
            (Ending::Succeeded, OpKind::Restore) => info!(
                target: ENGINE, provider = %provider, policy = %policy, target = %target,
                snapshot = %snapshot, job = %job, "restore job succeeded"
            ),
            (Ending::Failed(reason) | Ending::TimedOut(reason), kind) => warn!(
                target: ENGINE, provider = %provider, policy = %policy, target = %target,
                snapshot = %snapshot, job = %job, kind = kind.as_str(),
                reason = %reason, "operation failed"
            ),
        }
    }
}
