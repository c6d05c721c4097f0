//! The daemon's side of a wall clock that steps back: slots
//! fired while the clock ran ahead must not make the schedule wait for the
//! clock to catch up, silently. Comparisons only; the calendar arithmetic
//! is `schedule`'s.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::warn;

use super::SCHEDULE_TARGET;
use crate::config::Policy;
use crate::observe::alerts::{ahead_of_clock, Alerter, CLOCK_STEP_TOLERANCE};
use crate::observe::metrics;

/// Where a policy's schedule continues from: after its last fired slot,
/// or after now if that is later. A last slot ahead of the clock (beyond
/// [`CLOCK_STEP_TOLERANCE`]) was fired while the clock ran ahead; waiting
/// for it would leave a silent gap, so the schedule continues from now
/// (`UNIQUE(policy, target, slot)` still keeps every slot single). The
/// second value is how far ahead it was.
pub(super) fn schedule_base(
    now: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, Option<Duration>) {
    match last {
        Some(last) => match ahead_of_clock(now, last) {
            Some(ahead) => (now, Some(ahead)),
            None => (now.max(last), None),
        },
        None => (now, None),
    }
}

/// The running daemon's side of [`schedule_base`]: an armed slot with
/// slots of the schedule before it that lie ahead of the clock beyond the
/// tolerance means the clock stepped back after the last slot fired. The
/// schedule's next slot after now replaces it.
fn rearm_after_clock_step(
    schedule: &crate::schedule::Schedule,
    now: DateTime<Utc>,
    armed: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let tolerance = chrono::Duration::from_std(CLOCK_STEP_TOLERANCE).ok()?;
    let skipped = schedule.next_after(now + tolerance)?;
    (skipped < armed)
        .then(|| schedule.next_after(now))
        .flatten()
}

/// Check every armed slot for a clock that stepped back (see
/// [`rearm_after_clock_step`]); warn, alert and re-arm from now.
pub(super) fn recheck_clock(
    alerter: &Alerter,
    policies: &[Policy],
    scheduled: &mut [Option<DateTime<Utc>>],
) {
    let now = Utc::now();
    for (policy, s) in policies.iter().zip(scheduled.iter_mut()) {
        let Some(armed) = *s else { continue };
        if let Some(next) = rearm_after_clock_step(&policy.schedule, now, armed) {
            clock_stepped_back(alerter, policy, &format!(
                "the next slot was {} but the schedule's next slot after this host's clock is {}: the clock stepped back? Scheduling from now",
                armed.to_rfc3339(),
                next.to_rfc3339()
            ));
            metrics::schedule(&policy.name, policy.schedule.nominal_interval(), Some(next));
            *s = Some(next);
        }
    }
}

pub(super) fn clock_stepped_back(alerter: &Alerter, policy: &Policy, message: &str) {
    warn!(policy = %policy.name, "{message}");
    alerter.clock_stepped_back(&policy.name, SCHEDULE_TARGET, &policy.provider, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + h * 3600, 0).expect("valid time")
    }

    /// The clock ran 8 h ahead when the last slot fired, then stepped
    /// back: the schedule continues from now, not from 8 h ahead (before, no
    /// slot fired for 8 h, and nothing said so).
    #[test]
    fn a_last_slot_ahead_of_the_clock_schedules_from_now() {
        let hourly =
            crate::schedule::Schedule::parse("0 0 * * * *", chrono_tz::UTC).expect("schedule");
        let now = at(0) + chrono::Duration::minutes(10);
        let (base, ahead) = schedule_base(now, Some(at(8)));
        assert_eq!(base, now);
        assert_eq!(ahead, Some(Duration::from_secs(8 * 3600 - 600)));
        assert_eq!(hourly.next_after(base), Some(at(1)));
        // Normal: after the last slot, or after now once it has passed.
        assert_eq!(schedule_base(now, Some(at(0))), (now, None));
        assert_eq!(schedule_base(now, None), (now, None));
        let just_ahead = now + chrono::Duration::seconds(5);
        assert_eq!(schedule_base(now, Some(just_ahead)), (just_ahead, None));
    }

    /// The same while the daemon runs: the slot at +8 h fired, the next
    /// one armed at +9 h, then the clock stepped back to now.
    #[test]
    fn an_armed_slot_beyond_a_clock_step_back_is_rearmed_from_now() {
        let hourly =
            crate::schedule::Schedule::parse("0 0 * * * *", chrono_tz::UTC).expect("schedule");
        let now = at(0) + chrono::Duration::minutes(10);
        assert_eq!(rearm_after_clock_step(&hourly, now, at(9)), Some(at(1)));
        // Normal: the armed slot is the schedule's next one, or is due.
        assert_eq!(rearm_after_clock_step(&hourly, now, at(1)), None);
        assert_eq!(rearm_after_clock_step(&hourly, now, at(0)), None);
        // A step back of a few seconds right after a slot fired re-arms
        // nothing (the slot would only be found recorded).
        let secondly =
            crate::schedule::Schedule::parse("*/10 * * * * *", chrono_tz::UTC).expect("schedule");
        let fired = at(1);
        let armed = fired + chrono::Duration::seconds(10);
        let back = fired - chrono::Duration::seconds(3);
        assert_eq!(rearm_after_clock_step(&secondly, back, armed), None);
    }
}
