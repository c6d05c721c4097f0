//! Wakes the daemon at a given instant.
//!
//! **Owns:** the one armed wake-up time and the `tokio-cron-scheduler`
//! instance used to reach it. **Must not:** decide *when* to wake — the daemon
//! asks [`crate::schedule::Schedule`] for the next slot and arms that; no cron
//! expression ever reaches the job scheduler (its named-zone handling is wrong
//! across DST, see the parent module).
//!
//! # Precision
//!
//! tokio-cron-scheduler 0.15 polls its job list every 500 ms (a
//! `sleep(500ms)` loop in `scheduler.rs`) and stores a one-shot job's due
//! time as whole UNIX seconds, `now.as_secs() + duration.as_secs()`, dropping
//! up to two fractional seconds. A bare one-shot job therefore fires anywhere
//! from almost 2 s *early* to 500 ms+ *late* (measured: 0.5-0.9 s early, see
//! the ignored `bare_one_shot_lag` test). So a wake-up is armed in two stages:
//!
//! 1. a one-shot job due [`ARM_EARLY`] before the target — the coarse stage.
//!    It compares against the wall clock on every poll, so it stays right
//!    across wall-clock steps and suspend/resume, which a multi-hour
//!    monotonic `tokio::time::sleep` would not;
//! 2. when it fires, a `tokio::time::sleep` for the remaining few seconds,
//!    then a wall-clock re-check, then the notification.
//!
//! Targets closer than [`ARM_EARLY`] plus one second (or in the past) skip
//! stage 1. Measured lag of the notification behind the target: 0.2-6 ms,
//! through either path; it is never early.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// Lead of the coarse stage. Only its lateness matters (firing early just
/// lengthens stage 2): at most one 500 ms poll plus task hand-off, so 2 s
/// leaves 1.5 s of margin for a busy runtime.
pub const ARM_EARLY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum WakerError {
    #[error("job scheduler failed to {action}: {source}")]
    Scheduler {
        action: &'static str,
        #[source]
        source: JobSchedulerError,
    },
}

/// The armed wake-up. `generation` changes on every `wake_at`, so a stale
/// job or finishing task from an earlier arming can tell it is obsolete.
#[derive(Debug, Default)]
struct Armed {
    generation: u64,
    /// Target of the current generation, None after shutdown.
    at: Option<DateTime<Utc>>,
    /// The current target arrived and no `notified()` has taken it yet.
    arrived: bool,
}

#[derive(Debug, Default)]
struct Shared {
    armed: Mutex<Armed>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Armed> {
        // The guarded data is plain values updated in single statements, so
        // it is consistent even if a holder panicked.
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stage 2: sleep out the remainder on the runtime timer, then announce
    /// arrival unless a newer `wake_at` has replaced this one.
    async fn finish(self: Arc<Self>, generation: u64, at: DateTime<Utc>) {
        loop {
            let remaining = {
                let armed = self.lock();
                if armed.generation != generation || armed.at.is_none() {
                    return;
                }
                (at - Utc::now()).to_std().ok()
            };
            match remaining {
                // Re-check the wall clock after sleeping: it may have been
                // stepped while we slept.
                Some(left) if !left.is_zero() => tokio::time::sleep(left).await,
                _ => break,
            }
        }
        {
            let mut armed = self.lock();
            if armed.generation != generation || armed.at.is_none() {
                return;
            }
            armed.arrived = true;
        }
        self.notify.notify_waiters();
    }
}

/// Wakes the daemon at one armed instant at a time.
pub struct Waker {
    scheduler: JobScheduler,
    shared: Arc<Shared>,
    /// The coarse-stage job of the current arming, if any.
    job: tokio::sync::Mutex<Option<Job>>,
}

impl Waker {
    /// Starts a job scheduler with nothing armed.
    pub async fn start() -> Result<Waker, WakerError> {
        let scheduler = JobScheduler::new()
            .await
            .map_err(|source| WakerError::Scheduler {
                action: "initialise",
                source,
            })?;
        scheduler
            .start()
            .await
            .map_err(|source| WakerError::Scheduler {
                action: "start",
                source,
            })?;
        Ok(Waker {
            scheduler,
            shared: Arc::new(Shared::default()),
            job: tokio::sync::Mutex::new(None),
        })
    }

    /// Arms a wake-up at `at`, replacing any earlier one (a replaced arming
    /// never notifies, even if it already arrived and was not yet taken). A
    /// time in the past notifies at once.
    pub async fn wake_at(&self, at: DateTime<Utc>) -> Result<(), WakerError> {
        // Held across the whole re-arm so concurrent calls cannot interleave
        // job removal and creation.
        let mut job = self.job.lock().await;
        let generation = {
            let mut armed = self.shared.lock();
            armed.generation += 1;
            armed.at = Some(at);
            armed.arrived = false;
            armed.generation
        };
        if let Some(old) = job.take() {
            // Best effort: a finished one-shot is already gone, and a stale
            // job that still fires is ignored by its generation check.
            if let Err(e) = self.scheduler.remove(&old.guid()).await {
                tracing::debug!(job = %old.guid(), error = %e, "could not remove replaced wake-up job");
            }
        }

        let coarse_lead = (at - Utc::now())
            .to_std()
            .ok()
            .and_then(|left| left.checked_sub(ARM_EARLY));
        match coarse_lead {
            Some(lead) if lead >= Duration::from_secs(1) => {
                let shared = Arc::clone(&self.shared);
                let coarse = Job::new_one_shot_async(lead, move |_id, _scheduler| {
                    let shared = Arc::clone(&shared);
                    Box::pin(async move { shared.finish(generation, at).await })
                })
                .map_err(|source| WakerError::Scheduler {
                    action: "create a wake-up job",
                    source,
                })?;
                self.scheduler.add(coarse.clone()).await.map_err(|source| {
                    WakerError::Scheduler {
                        action: "add a wake-up job",
                        source,
                    }
                })?;
                *job = Some(coarse);
            }
            // Close or past: the fine stage alone is already precise.
            _ => {
                tokio::spawn(Arc::clone(&self.shared).finish(generation, at));
            }
        }
        Ok(())
    }

    /// Resolves once the armed time has arrived. Each arrival is taken by one
    /// `notified()` call; one that arrived before the call is not lost.
    pub async fn notified(&self) {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so an arrival between the check and
            // the await still wakes us.
            notified.as_mut().enable();
            {
                let mut armed = self.shared.lock();
                if armed.arrived {
                    armed.arrived = false;
                    return;
                }
            }
            notified.await;
        }
    }

    /// Disarms and stops the job scheduler. Dropping a `Waker` without this
    /// leaves the scheduler's poll task running until the runtime stops.
    pub async fn shutdown(mut self) {
        {
            let mut armed = self.shared.lock();
            armed.generation += 1;
            armed.at = None;
            armed.arrived = false;
        }
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "job scheduler did not shut down cleanly");
        }
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("armed", &*self.shared.lock())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// Lag allowed between the target and the notification. Typical is a
    /// millisecond or two; this leaves room for a loaded 2-core test machine.
    const TOLERANCE: TimeDelta = TimeDelta::milliseconds(60);

    async fn lag_of_next_notification(waker: &Waker, at: DateTime<Utc>) -> TimeDelta {
        tokio::time::timeout(Duration::from_secs(10), waker.notified())
            .await
            .expect("notified within 10 s");
        Utc::now() - at
    }

    fn assert_on_time(lag: TimeDelta, what: &str) {
        eprintln!(
            "{what}: lag {} ms",
            lag.num_microseconds().unwrap_or(0) as f64 / 1000.0
        );
        assert!(lag >= TimeDelta::zero(), "{what}: notified {lag} early");
        assert!(lag < TOLERANCE, "{what}: notified {lag} late");
    }

    /// The next notification comes on time for `due`.
    async fn assert_notified_on_time(waker: &Waker, due: DateTime<Utc>, what: &str) {
        assert_on_time(lag_of_next_notification(waker, due).await, what);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_shortly_after_a_near_time() {
        let waker = Waker::start().await.expect("waker starts");
        let at = Utc::now() + TimeDelta::milliseconds(300);
        waker.wake_at(at).await.expect("armed");
        assert_notified_on_time(&waker, at, "now+300ms").await;
        waker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_precisely_through_the_job_scheduler() {
        // 3.2 s ahead: the coarse one-shot job (due 1.2 s from now, 500 ms
        // polling) hands over to the fine sleep.
        let waker = Waker::start().await.expect("waker starts");
        let at = Utc::now() + TimeDelta::milliseconds(3200);
        waker.wake_at(at).await.expect("armed");
        assert!(waker.job.lock().await.is_some(), "took the scheduler path");
        assert_notified_on_time(&waker, at, "now+3.2s via job scheduler").await;
        waker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_past_time_wakes_at_once() {
        let waker = Waker::start().await.expect("waker starts");
        let asked = Utc::now();
        waker
            .wake_at(asked - TimeDelta::seconds(10))
            .await
            .expect("armed");
        assert_notified_on_time(&waker, asked, "past time").await;
        waker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rearming_replaces_the_earlier_time() {
        let waker = Waker::start().await.expect("waker starts");
        // Later to earlier, across both paths: the scheduler job armed for
        // +3.5 s must never notify once replaced.
        let far = Utc::now() + TimeDelta::milliseconds(3500);
        waker.wake_at(far).await.expect("armed");
        let near = Utc::now() + TimeDelta::milliseconds(200);
        waker.wake_at(near).await.expect("re-armed");
        assert_notified_on_time(&waker, near, "re-armed earlier").await;

        // Earlier to later: the first time passes silently.
        let first = Utc::now() + TimeDelta::milliseconds(150);
        waker.wake_at(first).await.expect("armed");
        let second = Utc::now() + TimeDelta::milliseconds(500);
        waker.wake_at(second).await.expect("re-armed");
        assert_notified_on_time(&waker, second, "re-armed later").await;

        // Nothing else is pending, including the replaced +3.5 s job.
        let quiet = tokio::time::timeout(Duration::from_millis(4000), waker.notified()).await;
        assert!(quiet.is_err(), "a replaced wake-up notified");
        waker.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_arrival_before_anyone_waits_is_kept() {
        let waker = Waker::start().await.expect("waker starts");
        waker
            .wake_at(Utc::now() - TimeDelta::seconds(1))
            .await
            .expect("armed");
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::timeout(Duration::from_millis(100), waker.notified())
            .await
            .expect("the earlier arrival is delivered");
        waker.shutdown().await;
    }

    /// For the record: the bare one-shot job, without the fine stage. Run
    /// with `cargo test --lib bare_one_shot -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "measurement only; takes about 10 s"]
    async fn bare_one_shot_lag() {
        let scheduler = JobScheduler::new().await.expect("scheduler");
        scheduler.start().await.expect("started");
        for millis in [1300_i64, 1700, 2100, 2500, 2900] {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let tx = Arc::new(Mutex::new(Some(tx)));
            let at = Utc::now() + TimeDelta::milliseconds(millis);
            let lead = (at - Utc::now()).to_std().expect("future");
            let job = Job::new_one_shot_async(lead, move |_, _| {
                let tx = Arc::clone(&tx);
                Box::pin(async move {
                    let sender = tx.lock().unwrap_or_else(PoisonError::into_inner).take();
                    if let Some(sender) = sender {
                        let _ = sender.send(Utc::now());
                    }
                })
            })
            .expect("job");
            scheduler.add(job).await.expect("added");
            let fired = rx.await.expect("fired");
            eprintln!(
                "one-shot for now+{millis} ms fired {} ms off target",
                (fired - at).num_milliseconds()
            );
        }
    }
}
