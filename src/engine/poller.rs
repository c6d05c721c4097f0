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
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, warn};

use crate::observe::events::{self, CallFailed, Ending, OperationFinished};
use crate::observe::metrics;
use crate::providers::{OpStatus, OperationRef, Provider};
use crate::state::{Ledger, OpRow};

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
    /// Everyone waiting for the outcome: an operation watched again (a run
    /// taken up while its operation is still followed) is polled once.
    done: Vec<oneshot::Sender<OpOutcome>>,
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
        state: Arc<dyn Ledger>,
        shutdown: watch::Receiver<bool>,
    ) -> Poller {
        let (tx, mut rx) = mpsc::unbounded_channel::<Watch>();
        tokio::spawn(async move {
            let batch = provider.capabilities().max_status_batch.max(1);
            let mut watches: Vec<Watch> = Vec::new();
            let mut open = true;
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
                    _ = crate::shutdown::stopped(shutdown.clone()) => break,
                    w = rx.recv(), if open => match w {
                        Some(w) => add(&mut watches, w),
                        // The engine let go of this poller (a reload built
                        // a new one): what it follows is still followed to
                        // the end, then the task ends.
                        None if watches.is_empty() => break,
                        None => open = false,
                    },
                    _ = tokio::time::sleep(sleep) => {
                        // A panic in a provider's status call must not end
                        // the task and strand every operation it follows:
                        // it counts as a failed round, polled again later.
                        let round = poll_round(&name, provider.as_ref(), &*state, &mut watches, batch);
                        if let Err(panic) = std::panic::AssertUnwindSafe(round).catch_unwind().await {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            error!(provider = %name, panic = %what, "status poll panicked; will retry");
                            let now = Utc::now();
                            for w in &mut watches {
                                w.last_error = Some(format!("status poll panicked: {what}"));
                                backoff(w, now);
                            }
                        }
                        if !open && watches.is_empty() {
                            break;
                        }
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
            done: vec![done],
        });
        rx
    }
}

/// Follow a new watch, or add its waiter to the same operation's watch.
fn add(watches: &mut Vec<Watch>, w: Watch) {
    match watches.iter_mut().find(|x| x.op.id == w.op.id) {
        Some(x) => x.done.extend(w.done),
        None => watches.push(w),
    }
}

async fn poll_round(
    name: &str,
    provider: &dyn Provider,
    state: &dyn Ledger,
    watches: &mut Vec<Watch>,
    batch: usize,
) {
    let now = Utc::now();
    let horizon = now + chrono::Duration::from_std(COALESCE).unwrap_or_default();

    // Past their deadline: asked once more (the job may well have ended
    // while nobody looked, e.g. during downtime), then timed out if still
    // not terminal.
    let expired = |w: &Watch| w.op.deadline <= now;
    let due: Vec<usize> = (0..watches.len())
        .filter(|&i| watches[i].op.next_poll_at <= horizon || expired(&watches[i]))
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
                events::emit(CallFailed {
                    provider: name,
                    kind: e.kind,
                });
                warn!(provider = %name, error = %e, "status poll failed; will retry");
                outcomes.extend(chunk.iter().map(|&i| (i, Err(e.to_string()))));
            }
        }
    }

    let round_start = now;
    let now = Utc::now();
    let mut finished: Vec<(usize, OpOutcome)> = Vec::new();
    let mut rescheduled = Vec::new();
    for (i, result) in outcomes {
        let w = &mut watches[i];
        let expired = w.op.deadline <= round_start;
        match result {
            Ok(OpStatus::Succeeded) => finished.push((i, OpOutcome::Succeeded)),
            Ok(OpStatus::Failed { reason }) => finished.push((i, OpOutcome::Failed(reason))),
            Ok(OpStatus::Pending { .. }) if expired => {
                finished.push((i, OpOutcome::TimedOut(timed_out(w))))
            }
            Err(e) if expired => {
                w.last_error = Some(e);
                finished.push((i, OpOutcome::TimedOut(timed_out(w))));
            }
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
    if let Err(e) = state.reschedule_ops(&rescheduled).await {
        // Not fatal: the in-memory schedule goes on; a restart polls at once.
        warn!(error = %e, "cannot record the next poll times");
    }
    // Remove from the highest index down so earlier indices stay valid.
    finished.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    let done = finished
        .into_iter()
        .map(|(i, outcome)| (watches.swap_remove(i), outcome))
        .collect();
    for mut w in finish_all(name, state, done, now).await {
        backoff(&mut w, now);
        watches.push(w);
    }
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
/// If the ledger cannot take them (locked, full), nobody is told: the
/// watches are handed back to be asked again and recorded later, so a
/// passing ledger error never fails (or strands) a run whose snapshot is
/// good.
async fn finish_all(
    name: &str,
    state: &dyn Ledger,
    done: Vec<(Watch, OpOutcome)>,
    now: DateTime<Utc>,
) -> Vec<Watch> {
    if done.is_empty() {
        return Vec::new();
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
    if let Err(e) = state.finish_ops(&rows, now).await {
        warn!(provider = %name, operations = done.len(), error = %e, "cannot record the outcome in the state database; asking again later");
        return done.into_iter().map(|(w, _)| w).collect();
    }
    for (w, outcome) in done {
        finish(name, w, outcome, now);
    }
    Vec::new()
}

fn finish(name: &str, mut w: Watch, outcome: OpOutcome, now: DateTime<Utc>) {
    events::emit(OperationFinished {
        provider: name,
        policy: &w.op.policy,
        target: &w.op.target,
        snapshot: &w.op.snapshot_id,
        job: &w.op.reference,
        kind: w.op.kind,
        took: (now - w.op.started_at).to_std().unwrap_or_default(),
        ending: match &outcome {
            OpOutcome::Succeeded => Ending::Succeeded,
            OpOutcome::Failed(reason) => Ending::Failed(reason),
            OpOutcome::TimedOut(reason) => Ending::TimedOut(reason),
        },
    });
    for done in w.done.drain(..) {
        let _ = done.send(outcome.clone());
    }
}

/// Why an operation not terminal at its deadline (asked once more) failed.
fn timed_out(w: &Watch) -> String {
    let mut reason = format!(
        "timed out after {} waiting for {} operation {} (still not done when asked at the deadline)",
        humantime::format_duration(round_secs(w.op.deadline - w.op.started_at)),
        w.op.kind.as_str(),
        w.op.reference
    );
    if let Some(e) = &w.last_error {
        reason.push_str(&format!(" (last error: {e})"));
    }
    reason
}

fn round_secs(d: chrono::Duration) -> Duration {
    Duration::from_secs(d.num_seconds().max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeCloud;
    use crate::providers::Created;
    use crate::state::{Begin, NewRun, PollPlan};

    /// A ledger with one create operation whose deadline is `deadline`
    /// from now.
    async fn ledger(dir: &std::path::Path, deadline: chrono::Duration) -> (Arc<dyn Ledger>, OpRow) {
        let state: Arc<dyn Ledger> =
            Arc::new(crate::state::SqliteLedger::open(&dir.join("s.db")).expect("open"));
        let now = Utc::now();
        let Begin::Started(run) = state
            .begin_run(
                &NewRun {
                    policy: "db".into(),
                    target: "vol-1".into(),
                    provider: "scripted".into(),
                    slot: now,
                    name: "db-vol-1-x".into(),
                    full: true,
                },
                now,
            )
            .await
            .expect("begin")
        else {
            panic!("a fresh slot starts");
        };
        let created = [Created {
            snapshot_id: "snap-1".into(),
            operation: "job-1".into(),
        }];
        let plan = PollPlan {
            first_poll: now,
            interval: Duration::from_millis(10),
            deadline: now + deadline,
        };
        let op = state
            .record_created(run, &created, now, plan)
            .await
            .expect("record")
            .remove(0);
        (state, op)
    }

    fn scripted(answers: Vec<Option<OpStatus>>) -> Arc<FakeCloud> {
        let cloud = FakeCloud::default();
        cloud.polls.lock().expect("polls").extend(answers);
        Arc::new(cloud)
    }

    const PENDING: Option<OpStatus> = Some(OpStatus::Pending { progress: None });

    /// A reload drops the engine's last handle on a poller
    /// while it still follows an operation; the operation is still
    /// followed to its end and recorded (before, the task ended and left
    /// it open for good).
    #[tokio::test]
    async fn a_poller_let_go_of_still_follows_what_it_has() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, op) = ledger(dir.path(), chrono::Duration::minutes(5)).await;
        let (_stop, shutdown) = watch::channel(false);
        let provider = scripted(vec![PENDING, PENDING]);
        let poller = Poller::spawn("p".into(), provider, state.clone(), shutdown);
        let done = poller.watch(op.clone(), Duration::from_millis(20));
        drop(poller);
        let outcome = tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("in time")
            .expect("the poller answers");
        assert_eq!(outcome, OpOutcome::Succeeded);
        assert_eq!(
            state.ops_in_flight_count().await.expect("count"),
            0,
            "recorded"
        );
    }

    /// An operation already past its deadline (the daemon was
    /// down) is asked once before it is called timed out; and one still
    /// pending then times out saying it was asked.
    #[tokio::test]
    async fn past_its_deadline_an_operation_is_asked_once_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, op) = ledger(dir.path(), chrono::Duration::seconds(-1)).await;
        let (_stop, shutdown) = watch::channel(false);
        let provider = scripted(vec![]);
        let poller = Poller::spawn(
            "p".into(),
            provider.clone(),
            state.clone(),
            shutdown.clone(),
        );
        let outcome = poller
            .watch(op, Duration::from_millis(20))
            .await
            .expect("answer");
        assert_eq!(outcome, OpOutcome::Succeeded);
        assert_eq!(provider.calls("poll"), 1);

        let dir = tempfile::tempdir().expect("tempdir");
        let (state, op) = ledger(dir.path(), chrono::Duration::seconds(-1)).await;
        let poller = Poller::spawn("p".into(), scripted(vec![PENDING]), state, shutdown);
        let outcome = poller
            .watch(op, Duration::from_millis(20))
            .await
            .expect("answer");
        assert!(
            matches!(&outcome, OpOutcome::TimedOut(why) if why.contains("still not done when asked")),
            "{outcome:?}"
        );
    }

    /// A provider that panics inside a status call does not
    /// end the poller (before, every later watch was dropped unanswered and
    /// every run of that provider stayed open); the same operation watched
    /// twice is polled as one and both waiters are answered.
    #[tokio::test]
    async fn a_panicking_status_call_is_retried_and_a_second_watch_joins_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, op) = ledger(dir.path(), chrono::Duration::minutes(5)).await;
        let (_stop, shutdown) = watch::channel(false);
        let provider = scripted(vec![None, PENDING]);
        let poller = Poller::spawn("p".into(), provider.clone(), state, shutdown);
        let first = poller.watch(op.clone(), Duration::from_millis(20));
        let second = poller.watch(op, Duration::from_millis(20));
        let (a, b) = tokio::time::timeout(Duration::from_secs(10), async {
            (first.await, second.await)
        })
        .await
        .expect("in time");
        assert_eq!(a.expect("first answered"), OpOutcome::Succeeded);
        assert_eq!(b.expect("second answered"), OpOutcome::Succeeded);
        assert_eq!(
            provider.calls("poll"),
            3,
            "one call per round, not per watch"
        );
    }
}
