//! Cron schedules in an IANA time zone -> slot instants. The only module that
//! does calendar arithmetic.
//!
//! **Owns:** parsing a policy's cron expression (5 fields `min hour dom month
//! dow`, or 6 fields `sec min hour dom month dow`; no year field) and turning
//! it, together with the policy's time zone, into *slots*: UTC instants,
//! whole seconds, strictly increasing, never the same instant twice.
//!
//! **Must not:** read the clock (every query takes the reference instant as an
//! argument; only [`waker`] deals with "now"), do I/O, or know what a slot is
//! used for. Nobody else may do calendar arithmetic: ask a [`Schedule`].
//!
//! # Daylight saving time (Vixie cron / OCPS rules)
//!
//! A pattern is matched against *wall-clock* time in the zone. Wall-clock time
//! has holes (spring forward) and repeats (fall back), so each pattern is one
//! of two kinds, decided like Vixie cron does:
//!
//! * **Fixed-time** — the second, minute and hour fields are all explicit
//!   values (`30 2 * * *`, `0 30 1,13 * * *`, `0 8-17 * * *`). Such a job is
//!   about a time of day:
//!   * if that time falls in a spring-forward gap it runs **once, at the first
//!     instant after the gap** (02:30 in New York on 2026-03-08 -> 03:00 EDT =
//!     07:00 UTC);
//!   * if that time is repeated on fall-back it runs **once, at the first
//!     occurrence** (the daylight-time one).
//! * **Interval** — any of those fields is `*` or stepped (`*/15`, `0/10`,
//!   `1-23/2`). Such a job is about elapsed time: it runs at every matching
//!   wall-clock time that exists, so it skips the times a gap removes and runs
//!   in **both** passes of a repeated hour. `0 */15 * * * *` is therefore
//!   exactly 15 real minutes apart across both transitions.
//!
//! # Why not croner's time-zone search or tokio-cron-scheduler's
//!
//! croner 3 searches in naive local time and re-attaches the zone, which
//! loses which pass of a repeated hour the reference instant was in: asked for
//! the slot after 01:05 EST (second pass) it answers 01:15 **EDT**, an instant
//! *before* the question; chained, it drops the second pass of interval jobs;
//! and its gap rule fires a daily 01:30 job a second time at 03:00 on
//! spring-forward day. tokio-cron-scheduler 0.15 takes its first tick from
//! croner and then freezes the zone's UTC offset at job creation (upstream
//! issues #87 and #107), so every slot after a transition is an hour off. The
//! tests (`schedule/tests.rs`) run the same DST table against both and assert
//! the exact list of cases each fails.
//!
//! So croner is used only as a *calendar matcher* on naive wall-clock times
//! (evaluated in UTC, which has no DST), and this module maps wall-clock
//! candidates to instants itself, one constant-offset stretch of the time line
//! at a time.

use chrono::{DateTime, Duration as TimeDelta, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

pub use crate::domain::{slot_label, Period};

pub mod blackout;
pub mod waker;

/// Step for probing a zone's UTC offset when looking for the next change.
///
/// chrono-tz does not expose its transition table, so transitions are found by
/// sampling the offset every hour and bisecting to the exact second. This
/// assumes no zone changes its offset twice within one hour and lands back on
/// the same offset — true of every transition in the tz database.
const OFFSET_PROBE_SECS: i64 = 3600;

/// Upper bound on constant-offset stretches crossed by one query. A DST zone
/// has two a year, and since the pattern has no year field the rarest pattern
/// (29 February) matches at least every eight years; 1024 is far beyond that
/// and only guards against an endless loop on corrupt zone data.
const MAX_OFFSET_STRETCHES: usize = 1024;

/// How many upcoming wall-clock matches [`Schedule::nominal_interval`] looks at.
const NOMINAL_SAMPLE: usize = 32;

#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid schedule {expr:?}: {reason}")]
pub struct ScheduleError {
    pub expr: String,
    pub reason: String,
}

/// A parsed cron expression bound to a time zone.
///
/// The croner matcher is not kept: a parsed `croner::Cron` holds about 5 KB
/// of bit fields (most of it a year field this syntax does not even allow),
/// which with hundreds of policies, each held by the configuration and by
/// the daemon's schedule, was most of an idle daemon's heap. Queries are
/// rare (a few per slot), so each one parses the expression again, which
/// takes microseconds.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    tz: Tz,
    /// Fixed-time vs interval, see the module doc.
    fixed_time: bool,
    nominal: std::time::Duration,
}

impl Schedule {
    /// Parses a 5-field (min hour dom month dow) or 6-field (sec min hour dom
    /// month dow) expression. Day-of-month and day-of-week combine with OR, as
    /// in Vixie cron. `@daily`-style nicknames and a year field are refused.
    pub fn parse(expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let error = |reason: String| ScheduleError {
            expr: expr.to_string(),
            reason,
        };
        let fields = expr.split_whitespace().count();
        match fields {
            0 => {
                return Err(error(
                    "it is empty; expected 5 fields (min hour dom month dow) \
                     or 6 fields (sec min hour dom month dow)"
                        .to_string(),
                ))
            }
            5 | 6 => {}
            n => {
                return Err(error(format!(
                    "it has {n} field(s); expected 5 fields (min hour dom month dow) \
                     or 6 fields (sec min hour dom month dow); a year field and \
                     @nicknames are not supported"
                )))
            }
        }
        let cron = parse_cron(expr).map_err(|e| error(e.to_string()))?;

        // Vixie's rule: a field written with `*` or a step is an interval.
        let pattern = &cron.pattern;
        let fixed_time = [
            (pattern.seconds.from_wildcard, pattern.seconds.step),
            (pattern.minutes.from_wildcard, pattern.minutes.step),
            (pattern.hours.from_wildcard, pattern.hours.step),
        ]
        .iter()
        .all(|&(wildcard, step)| !wildcard && step == 1);

        let mut schedule = Schedule {
            expr: expr.to_string(),
            tz,
            fixed_time,
            nominal: std::time::Duration::ZERO,
        };
        schedule.nominal = schedule.compute_nominal_interval(&cron).ok_or_else(|| {
            error("it never matches a date (e.g. 30 February); nothing would ever run".to_string())
        })?;
        Ok(schedule)
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// True for fixed-time patterns (see the module doc for what that changes
    /// on DST days).
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.matcher()?;
        // Slots are whole seconds, so "after 12:00:00.5" is "after 12:00:00".
        let mut start = floor_to_second(after);
        // The first stretch excludes `start` itself; later stretches begin at
        // an offset change, which is itself a candidate instant.
        let mut inclusive = false;
        for _ in 0..MAX_OFFSET_STRETCHES {
            let offset = self.offset_at(start);
            // Within a stretch of constant offset, wall clock = instant + offset.
            let wall = wall_next(&cron, start.naive_utc() + offset, inclusive)?;
            let candidate = Utc.from_utc_datetime(&(wall - offset));
            match self.first_offset_change(start, candidate, offset) {
                None => {
                    if self.fixed_time && !self.is_first_occurrence(wall, candidate) {
                        // Second pass of a repeated hour: a fixed-time job
                        // already had its slot in the first pass.
                        start = candidate;
                        inclusive = false;
                        continue;
                    }
                    return Some(candidate);
                }
                Some(change) => {
                    // No candidate before `change` at the old offset.
                    let new_offset = self.offset_at(change);
                    if self.fixed_time
                        && new_offset > offset
                        && matches_in_gap(&cron, change, offset, new_offset)
                    {
                        return Some(change);
                    }
                    start = change;
                    inclusive = true;
                }
            }
        }
        None
    }

    /// The next `n` slots strictly after `after`, in order.
    pub fn next_n(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while slots.len() < n {
            match self.next_after(cursor) {
                Some(slot) => {
                    slots.push(slot);
                    cursor = slot;
                }
                None => break,
            }
        }
        slots
    }

    /// The last slot at or before `t` (for `catch_up`). Searches backwards
    /// from `t`, so its cost depends on the distance to that slot, not on how
    /// long the schedule has existed.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.matcher()?;
        let mut end = floor_to_second(t);
        for _ in 0..MAX_OFFSET_STRETCHES {
            let offset = self.offset_at(end);
            let wall = wall_prev(&cron, end.naive_utc() + offset)?;
            let candidate = Utc.from_utc_datetime(&(wall - offset));
            match self.last_offset_change(candidate, end, offset) {
                None => {
                    if self.fixed_time && !self.is_first_occurrence(wall, candidate) {
                        end = candidate - TimeDelta::seconds(1);
                        continue;
                    }
                    return Some(candidate);
                }
                Some(change) => {
                    // `change` is the first instant at `offset`; nothing
                    // matches in [change, end].
                    let old_offset = self.offset_at(change - TimeDelta::seconds(1));
                    if self.fixed_time
                        && offset > old_offset
                        && matches_in_gap(&cron, change, old_offset, offset)
                    {
                        return Some(change);
                    }
                    end = change - TimeDelta::seconds(1);
                }
            }
        }
        None
    }

    /// The typical gap between slots: the smallest gap between consecutive
    /// wall-clock matches over the next few matches, ignoring DST. Real gaps
    /// around a transition differ by the DST shift (a daily job has 23 h and
    /// 25 h days; a fixed-time job moved out of a gap can come sooner), so a
    /// staleness check must allow for an hour or so of slack.
    pub fn nominal_interval(&self) -> std::time::Duration {
        self.nominal
    }

    /// Min gap between wall-clock matches from a fixed reference date, so the
    /// answer does not depend on when it is asked. None if the pattern never
    /// matches.
    fn compute_nominal_interval(&self, cron: &croner::Cron) -> Option<std::time::Duration> {
        let reference = NaiveDate::from_ymd_opt(2001, 1, 1)?.and_hms_opt(0, 0, 0)?;
        let mut previous = wall_next(cron, reference, true)?;
        let mut min_gap: Option<TimeDelta> = None;
        for _ in 0..NOMINAL_SAMPLE {
            let Some(next) = wall_next(cron, previous, false) else {
                break;
            };
            let gap = next - previous;
            min_gap = Some(min_gap.map_or(gap, |m| m.min(gap)));
            previous = next;
        }
        // A pattern without a year field that matches once matches again; no
        // second match within croner's search limit means "effectively never".
        min_gap.and_then(|g| g.to_std().ok())
    }

    /// The matcher for `expr`. [`Schedule::parse`] parsed this very string
    /// with the same (pure) parser, so this is always `Some`; were it ever
    /// not, queries answer "no slot" rather than a wrong one.
    fn matcher(&self) -> Option<croner::Cron> {
        parse_cron(&self.expr).ok()
    }

    fn offset_at(&self, t: DateTime<Utc>) -> TimeDelta {
        let secs = self
            .tz
            .offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc();
        TimeDelta::seconds(i64::from(secs))
    }

    fn offset_at_secs(&self, secs: i64) -> Option<TimeDelta> {
        DateTime::from_timestamp(secs, 0).map(|t| self.offset_at(t))
    }

    /// Whether `instant` is the first (or only) instant showing wall-clock
    /// time `wall` in this zone.
    fn is_first_occurrence(&self, wall: NaiveDateTime, instant: DateTime<Utc>) -> bool {
        self.tz
            .from_local_datetime(&wall)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            == Some(instant)
    }

    /// The first instant in `(from, to]` whose offset differs from `offset`
    /// (the offset at `from`).
    fn first_offset_change(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        offset: TimeDelta,
    ) -> Option<DateTime<Utc>> {
        let end = to.timestamp();
        let mut low = from.timestamp();
        while low < end {
            let probe = (low + OFFSET_PROBE_SECS).min(end);
            if self.offset_at_secs(probe)? != offset {
                // Invariant: offset(low) == offset, offset(probe) != offset.
                let change = self.change_between(low, probe, offset, true)?;
                return DateTime::from_timestamp(change, 0);
            }
            low = probe;
        }
        None
    }

    /// The latest offset change in `(from, to]`: the first instant of the
    /// stretch at `offset` (the offset at `to`), if that stretch starts after
    /// `from`.
    fn last_offset_change(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        offset: TimeDelta,
    ) -> Option<DateTime<Utc>> {
        let start = from.timestamp();
        let mut high = to.timestamp();
        while high > start {
            let probe = (high - OFFSET_PROBE_SECS).max(start);
            if self.offset_at_secs(probe)? != offset {
                // Invariant: offset(probe) != offset, offset(high) == offset.
                let change = self.change_between(probe, high, offset, false)?;
                return DateTime::from_timestamp(change, 0);
            }
            high = probe;
        }
        None
    }

    /// Bisects `(low, high]`, whose ends lie on either side of an offset
    /// change (`low` at `offset` if `low_at_offset`, `high` on the other
    /// side): the first second on `high`'s side.
    fn change_between(
        &self,
        mut low: i64,
        mut high: i64,
        offset: TimeDelta,
        low_at_offset: bool,
    ) -> Option<i64> {
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if (self.offset_at_secs(mid)? == offset) == low_at_offset {
                low = mid;
            } else {
                high = mid;
            }
        }
        Some(high)
    }
}

/// The calendar matcher: 5 or 6 fields, seconds optional, no year field.
fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expr)
}

/// Next wall-clock time matching the pattern, as pure calendar arithmetic:
/// croner is run in UTC, which has no gaps or repeats.
fn wall_next(cron: &croner::Cron, wall: NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
    cron.find_next_occurrence(&Utc.from_utc_datetime(&wall), inclusive)
        .ok()
        .map(|t| t.naive_utc())
}

/// Latest wall-clock time at or before `wall` matching the pattern.
fn wall_prev(cron: &croner::Cron, wall: NaiveDateTime) -> Option<NaiveDateTime> {
    cron.find_previous_occurrence(&Utc.from_utc_datetime(&wall), true)
        .ok()
        .map(|t| t.naive_utc())
}

/// Whether a wall-clock time skipped by the forward change at `change`
/// (from `before` to `after` offset) matches the pattern.
fn matches_in_gap(
    cron: &croner::Cron,
    change: DateTime<Utc>,
    before: TimeDelta,
    after: TimeDelta,
) -> bool {
    let gap_start = change.naive_utc() + before;
    let gap_end = change.naive_utc() + after;
    wall_next(cron, gap_start, true).is_some_and(|wall| wall < gap_end)
}

fn floor_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    // Dropping the sub-second part of a valid instant is always representable.
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The label of the period `t` falls in, in zone `tz` (DST-correct: the
/// local calendar decides). Weeks are ISO weeks (Monday first). Hours carry
/// the UTC offset, so the two passes of a repeated fall-back hour are two
/// hours, as they are in real time.
pub fn period_label(t: DateTime<Utc>, tz: Tz, period: Period) -> String {
    use chrono::Datelike;
    let local = t.with_timezone(&tz);
    match period {
        Period::Hour => local.format("%Y-%m-%dT%H%:z").to_string(),
        Period::Day => local.format("%Y-%m-%d").to_string(),
        Period::Week => {
            let w = local.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }
        Period::Month => local.format("%Y-%m").to_string(),
        Period::Year => local.format("%Y").to_string(),
    }
}

#[cfg(test)]
mod period_tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn periods_follow_the_local_calendar() {
        let ny: Tz = "America/New_York".parse().expect("zone");
        // 03:30 UTC on 1 Jan is still 31 Dec in New York: day, month and
        // year all belong to the old year there.
        let t = utc("2026-01-01T03:30:00Z");
        assert_eq!(period_label(t, ny, Period::Day), "2025-12-31");
        assert_eq!(period_label(t, ny, Period::Month), "2025-12");
        assert_eq!(period_label(t, ny, Period::Year), "2025");
        assert_eq!(period_label(t, Tz::UTC, Period::Year), "2026");
        // ISO week: 1 Jan 2027 (a Friday) is in 2026-W53.
        assert_eq!(
            period_label(utc("2027-01-01T12:00:00Z"), Tz::UTC, Period::Week),
            "2026-W53"
        );
        // Fall-back 2026-11-01: 01:30 EDT and 01:30 EST are different hours.
        let a = period_label(utc("2026-11-01T05:30:00Z"), ny, Period::Hour);
        let b = period_label(utc("2026-11-01T06:30:00Z"), ny, Period::Hour);
        assert_ne!(a, b);
        assert_eq!(
            period_label(utc("2026-11-01T05:30:00Z"), ny, Period::Day),
            "2026-11-01"
        );
    }
}

#[cfg(test)]
mod tests;
