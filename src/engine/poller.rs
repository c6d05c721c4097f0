//! Follows operations in flight on one provider until each is terminal.
//!
//! All operations of a provider share one poller, so a poll round asks the
//! cloud about every due operation in as few calls as its batch limit
//! allows. Each operation backs off on its own (poll interval doubling up to
//! the policy's maximum); operations that come due close together are
//! polled together. Outcomes are written to the ledger here, whether or not
//! anyone is still waiting for them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::observe::metrics;
use crate::providers::{ErrorKind, OpKind, OpStatus, OperationRef, Provider};
use crate::state::{OpRow, State};

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    Succeeded,
    Failed(String),
    /// Not terminal by the deadline (the policy's timeout).
    TimedOut(String),
}

struct Watch {
    op: OpRow,
    max_interval: Duration,
    last_error: Option<String>,
    done: Option<oneshot::Sender<OpOutcome>>,
}

/// Handle to one provider's poller task.
#[derive(Clone)]
pub struct Poller {
    tx: mpsc::UnboundedSender<Watch>,
}

/// Operations that come due within this window of each other share a call.
const COALESCE: Duration = Duration::from_millis(250);

impl Poller {
    /// Start the poller task for `provider`.
    pub fn spawn(
        name: String,
        provider: Arc<dyn Provider>,
        state: Arc<State>,
        shutdown: watch::Receiver<bool>,
    ) -> Poller {
        let (tx, mut rx) = mpsc::unbounded_channel::<Watch>();
        tokio::spawn(async move {
            let batch = provider.capabilities().max_status_batch.max(1);
            let mut watches: Vec<Watch> = Vec::new();
            loop {
                metrics::operations_in_flight(&name, watches.len());
                let next = watches
                    .iter()
                    .map(|w| w.op.next_poll_at.min(w.op.deadline))
                    .min();
                let sleep = match next {
                    Some(t) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
                    None => Duration::from_secs(3600),
                };
                tokio::select! {
                    biased;
                    _ = super::stopped(shutdown.clone()) => break,
                    w = rx.recv() => match w {
                        Some(w) => watches.push(w),
                        None => break,
                    },
                    _ = tokio::time::sleep(sleep) => {
                        poll_round(&name, provider.as_ref(), &state, &mut watches, batch).await;
                    }
                }
            }
            debug!(provider = %name, in_flight = watches.len(), "poller stopped; operations stay in the ledger");
        });
        Poller { tx }
    }

    /// Follow `op` until it is terminal; the answer arrives on the returned
    /// channel (and is recorded in the ledger in any case).
    pub fn watch(&self, op: OpRow, max_interval: Duration) -> oneshot::Receiver<OpOutcome> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Watch {
            op,
            max_interval,
            last_error: None,
            done: Some(done),
        });
        rx
    }
}

async fn poll_round(
    name: &str,
    provider: &dyn Provider,
    state: &State,
    watches: &mut Vec<Watch>,
    batch: usize,
) {
    let now = Utc::now();
    let horizon = now + chrono::Duration::from_std(COALESCE).unwrap_or_default();

    // Past their deadline: fail them without asking.
    let mut timed_out = Vec::new();
    let mut i = 0;
    while i < watches.len() {
        if watches[i].op.deadline <= now {
            let w = watches.swap_remove(i);
            let mut reason = format!(
                "timed out after {} waiting for {} operation {}",
                humantime::format_duration(round_secs(w.op.deadline - w.op.started_at)),
                w.op.kind.as_str(),
                w.op.reference
            );
            if let Some(e) = &w.last_error {
                reason.push_str(&format!(" (last error: {e})"));
            }
            timed_out.push((w, OpOutcome::TimedOut(reason)));
        } else {
            i += 1;
        }
    }
    finish_all(name, state, timed_out, now);

    let due: Vec<usize> = (0..watches.len())
        .filter(|&i| watches[i].op.next_poll_at <= horizon)
        .collect();
    if due.is_empty() {
        return;
    }
    let mut outcomes: Vec<(usize, Result<OpStatus, String>)> = Vec::new();
    for chunk in due.chunks(batch) {
        let refs: Vec<OperationRef> = chunk
            .iter()
            .map(|&i| OperationRef {
                kind: watches[i].op.kind,
                operation: watches[i].op.reference.clone(),
                snapshot_id: watches[i].op.snapshot_id.clone(),
            })
            .collect();
        match provider.poll(&refs).await {
            Ok(statuses) if statuses.len() == refs.len() => {
                outcomes.extend(chunk.iter().copied().zip(statuses.into_iter().map(Ok)));
            }
            Ok(statuses) => {
                let e = format!(
                    "provider answered {} statuses for {} operations",
                    statuses.len(),
                    refs.len()
                );
                warn!(provider = %name, "{e}");
                outcomes.extend(chunk.iter().map(|&i| (i, Err(e.clone()))));
            }
            Err(e) => {
                if e.kind == ErrorKind::Throttled {
                    metrics::api_throttled(name);
                }
                warn!(provider = %name, error = %e, "status poll failed; will retry");
                outcomes.extend(chunk.iter().map(|&i| (i, Err(e.to_string()))));
            }
        }
    }

    let now = Utc::now();
    let mut finished: Vec<(usize, OpOutcome)> = Vec::new();
    let mut rescheduled = Vec::new();
    for (i, result) in outcomes {
        let w = &mut watches[i];
        match result {
            Ok(OpStatus::Succeeded) => finished.push((i, OpOutcome::Succeeded)),
            Ok(OpStatus::Failed { reason }) => finished.push((i, OpOutcome::Failed(reason))),
            Ok(OpStatus::Pending { progress }) => {
                if let Some(p) = progress {
                    debug!(provider = %name, operation = %w.op.reference, progress = p, "in progress");
                }
                rescheduled.push(backoff(w, now));
            }
            Err(e) => {
                w.last_error = Some(e);
                rescheduled.push(backoff(w, now));
            }
        }
    }
    // One commit for the round's next poll times, one for its outcomes.
    if let Err(e) = state.reschedule_ops(&rescheduled) {
        // Not fatal: the in-memory schedule goes on; a restart polls at once.
        warn!(error = %e, "cannot record the next poll times");
    }
    // Remove from the highest index down so earlier indices stay valid.
    finished.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    let done = finished
        .into_iter()
        .map(|(i, outcome)| (watches.swap_remove(i), outcome))
        .collect();
    finish_all(name, state, done, now);
}

/// The next poll of a pending operation (interval doubling up to its
/// maximum), to be recorded with the round's others.
fn backoff(w: &mut Watch, now: DateTime<Utc>) -> (i64, DateTime<Utc>, Duration) {
    let interval = (w.op.poll_interval * 2)
        .min(w.max_interval)
        .max(Duration::from_millis(10));
    let next = now + chrono::Duration::from_std(w.op.poll_interval).unwrap_or_default();
    w.op.next_poll_at = next;
    w.op.poll_interval = interval;
    (w.op.id, next, interval)
}

/// Record terminal outcomes in one transaction, then tell each waiter.
/// If the ledger cannot take them, every one of them is reported failed.
fn finish_all(name: &str, state: &State, done: Vec<(Watch, OpOutcome)>, now: DateTime<Utc>) {
    if done.is_empty() {
        return;
    }
    let rows: Vec<(i64, Option<&str>)> = done
        .iter()
        .map(|(w, outcome)| {
            let error = match outcome {
                OpOutcome::Succeeded => None,
                OpOutcome::Failed(e) | OpOutcome::TimedOut(e) => Some(e.as_str()),
            };
            (w.op.id, error)
        })
        .collect();
    let recorded = state
        .finish_ops(&rows, now)
        .map_err(|e| format!("cannot record the outcome in the state database: {e}"));
    for (w, outcome) in done {
        finish(name, w, outcome, recorded.as_ref().err(), now);
    }
}

fn finish(
    name: &str,
    mut w: Watch,
    outcome: OpOutcome,
    unrecorded: Option<&String>,
    now: DateTime<Utc>,
) {
    let kind = w.op.kind;
    let (policy, target) = (w.op.policy.as_str(), w.op.target.as_str());
    match (&outcome, kind) {
        (OpOutcome::Succeeded, OpKind::Create) => metrics::snapshot_created(policy, target, name),
        (OpOutcome::Succeeded, OpKind::Delete) => metrics::snapshot_deleted(policy, target, name),
        (OpOutcome::Failed(_), OpKind::Delete) => {
            metrics::snapshot_delete_failed(policy, target, name, "operation_failed")
        }
        (OpOutcome::TimedOut(_), OpKind::Delete) => {
            metrics::snapshot_delete_failed(policy, target, name, "timeout")
        }
        _ => {}
    }
    metrics::operation_finished(
        name,
        kind.as_str(),
        (now - w.op.started_at).to_std().unwrap_or_default(),
    );
    match (&outcome, kind) {
        (OpOutcome::Succeeded, OpKind::Create) => info!(
            provider = %name, policy = %w.op.policy, target = %w.op.target,
            snapshot = %w.op.snapshot_id, job = %w.op.reference, "create job succeeded; snapshot available"
        ),
        (OpOutcome::Succeeded, OpKind::Delete) => info!(
            provider = %name, policy = %w.op.policy, target = %w.op.target,
            snapshot = %w.op.snapshot_id, job = %w.op.reference, "delete job succeeded; snapshot deleted"
        ),
        (OpOutcome::Succeeded, OpKind::Restore) => info!(
            provider = %name, policy = %w.op.policy, target = %w.op.target,
            snapshot = %w.op.snapshot_id, job = %w.op.reference, "restore job succeeded"
        ),
        (OpOutcome::Failed(reason) | OpOutcome::TimedOut(reason), _) => warn!(
            provider = %name, policy = %w.op.policy, target = %w.op.target,
            snapshot = %w.op.snapshot_id, job = %w.op.reference, kind = kind.as_str(),
            reason = %reason, "operation failed"
        ),
    }
    let outcome = match unrecorded {
        None => outcome,
        Some(e) => OpOutcome::Failed(e.clone()),
    };
    if let Some(done) = w.done.take() {
        let _ = done.send(outcome);
    }
}

fn round_secs(d: chrono::Duration) -> Duration {
    Duration::from_secs(d.num_seconds().max(0) as u64)
}
