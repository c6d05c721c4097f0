//! The one retry policy for every provider call: classify the typed error,
//! back off exponentially with full jitter, honour `Retry-After`, and stop
//! at a deadline. Provider code never sleeps or loops on errors itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::providers::{ErrorKind, ProviderError};

/// Backoff settings for one policy's calls.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First delay (before jitter).
    pub base: Duration,
    /// Largest delay (before jitter).
    pub max: Duration,
    /// Give up after this many attempts of one call.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Retries paced by the policy's polling: a fast poll interval (tests,
    /// the demo) retries fast, a slow one slowly.
    pub fn for_poll_interval(poll_interval: Duration, poll_max_interval: Duration) -> Self {
        RetryPolicy {
            base: poll_interval.clamp(Duration::from_millis(50), Duration::from_secs(2)),
            max: poll_max_interval.clamp(Duration::from_millis(100), Duration::from_secs(60)),
            max_attempts: 12,
        }
    }

    /// How long to wait before attempt `attempt + 1` (attempt counts from 1)
    /// after `error`, or `None` if the call must not be repeated.
    pub fn delay(
        &self,
        attempt: u32,
        error: &ProviderError,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Option<Duration> {
        // A busy resource (another snapshot in progress) is not a failure
        // until the policy's timeout: only the deadline ends those retries.
        let capped = error.kind != ErrorKind::Busy && attempt >= self.max_attempts;
        if !error.kind.is_retryable() || capped {
            return None;
        }
        // Throttling: start from a longer delay so we do not add to it.
        let base = match error.kind {
            ErrorKind::Throttled => self.base * 4,
            _ => self.base,
        };
        let exp = base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max);
        let jittered =
            Duration::from_secs_f64(rand::rng().random_range(0.0..=1.0) * exp.as_secs_f64());
        // Full jitter, but never below a floor, nor below what the server asked.
        let delay = jittered
            .max(self.base / 2)
            .max(error.retry_after.unwrap_or_default());
        let left = (deadline - now).to_std().ok()?;
        (delay < left).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind) -> ProviderError {
        ProviderError::new(kind, "Call", "x")
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let p = RetryPolicy::for_poll_interval(Duration::from_secs(1), Duration::from_secs(30));
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        for kind in [
            ErrorKind::Auth,
            ErrorKind::Permanent,
            ErrorKind::Quota,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
        ] {
            assert_eq!(p.delay(1, &err(kind), now, later), None, "{kind}");
        }
        for kind in [ErrorKind::Busy, ErrorKind::Throttled, ErrorKind::Transient] {
            assert!(p.delay(1, &err(kind), now, later).is_some(), "{kind}");
        }
    }

    #[test]
    fn delays_stay_within_bounds_and_respect_the_deadline() {
        let p = RetryPolicy::for_poll_interval(Duration::from_secs(1), Duration::from_secs(8));
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        for attempt in 1..p.max_attempts {
            let d = p
                .delay(attempt, &err(ErrorKind::Transient), now, later)
                .expect("retryable");
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
        assert_eq!(
            p.delay(p.max_attempts, &err(ErrorKind::Transient), now, later),
            None
        );
        let soon = now + chrono::Duration::milliseconds(100);
        assert_eq!(p.delay(1, &err(ErrorKind::Transient), now, soon), None);
        let asked = err(ErrorKind::Throttled).with_retry_after(Duration::from_secs(5));
        assert!(p.delay(1, &asked, now, later).expect("retry") >= Duration::from_secs(5));
    }
}
