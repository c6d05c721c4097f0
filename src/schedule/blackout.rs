//! Blackout windows: times, in a policy's zone, when none of its creates
//! or deletes may start (a busy season, a change freeze, a nightly batch).
//!
//! A window is written one of two ways:
//! - weekly: `"Sat 00:00-06:00"`, `"Mon-Fri 09:00-17:30"`, `"Sat,Sun
//!   22:00-02:00"` (an end at or before the start ends the next day),
//!   `"daily 01:00-01:30"`; the end may be `24:00`, and times may have
//!   seconds (`"01:00:30"`);
//! - dates: `"2026-12-24..2026-12-26"` (whole days, both included) or one
//!   day, `"2027-01-01"`.
//!
//! Wall-clock times are read in the zone: a window is as long as the clock
//! on the wall says, whatever daylight saving does that night (a time the
//! clock skips counts from the first instant after the gap).

use chrono::{
    DateTime, Datelike, Duration as TimeDelta, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

/// Windows that touch each other are followed to the end of the last;
/// past this many, the end found so far is taken.
const MAX_CHAINED: usize = 64;

/// A policy's blackout windows, in its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blackout {
    windows: Vec<Window>,
    tz: Tz,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Window {
    /// On each day of `days` (Monday first), from `start` for `seconds`.
    Weekly {
        days: [bool; 7],
        start: NaiveTime,
        seconds: i64,
    },
    /// Whole days, both included.
    Dates { from: NaiveDate, to: NaiveDate },
}

impl Blackout {
    /// Parse `specs` in `tz`; the first bad one is an error saying why.
    pub fn parse<'a>(specs: impl IntoIterator<Item = &'a str>, tz: Tz) -> Result<Blackout, String> {
        let windows = specs
            .into_iter()
            .map(parse_window)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Blackout { windows, tz })
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// If `t` falls inside a window: when the blackout ends (the first
    /// instant after it, following windows that touch).
    pub fn covering(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut end = self.end_of_window_at(t)?;
        for _ in 0..MAX_CHAINED {
            match self.end_of_window_at(end) {
                Some(later) if later > end => end = later,
                _ => break,
            }
        }
        Some(end)
    }

    /// The latest end of the windows `t` falls in.
    fn end_of_window_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz).naive_local();
        self.windows
            .iter()
            .filter_map(|w| w.end_if_inside(local))
            .max()
            .map(|end| self.instant(end))
    }

    /// The instant a wall-clock time shows in the zone: the first of two
    /// (clocks set back), or the first after a gap (clocks set forward).
    fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = wall;
        for _ in 0..(4 * 60) {
            if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                return t.with_timezone(&Utc);
            }
            probe += TimeDelta::minutes(1);
        }
        // No zone has a gap of four hours; read it as UTC rather than fail.
        Utc.from_utc_datetime(&wall)
    }
}

impl Window {
    /// The wall-clock end of this window if `local` is inside it.
    fn end_if_inside(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Window::Dates { from, to } => {
                let day = local.date();
                (*from <= day && day <= *to)
                    .then(|| to.succ_opt().unwrap_or(*to).and_time(NaiveTime::MIN))
            }
            Window::Weekly {
                days,
                start,
                seconds,
            } => {
                // A window that crosses midnight began the day before.
                [local.date(), local.date().pred_opt()?]
                    .into_iter()
                    .filter(|d| days[d.weekday().num_days_from_monday() as usize])
                    .map(|d| d.and_time(*start))
                    .map(|from| (from, from + TimeDelta::seconds(*seconds)))
                    .filter(|(from, end)| *from <= local && local < *end)
                    .map(|(_, end)| end)
                    .max()
            }
        }
    }
}

fn parse_window(spec: &str) -> Result<Window, String> {
    let spec = spec.trim();
    if spec.starts_with(|c: char| c.is_ascii_digit()) {
        return parse_dates(spec);
    }
    let Some((days, times)) = spec.split_once(char::is_whitespace) else {
        return Err(format!(
            "{spec:?} is not a window: write days and times (\"Sat 00:00-06:00\") or dates \
             (\"2026-12-24..2026-12-26\")"
        ));
    };
    let days = parse_days(days)?;
    let Some((start, end)) = times.trim().split_once('-') else {
        return Err(format!(
            "{spec:?}: the times must be HH:MM-HH:MM, e.g. \"00:00-06:00\""
        ));
    };
    let from = parse_clock(start, spec)?;
    let to = parse_clock(end, spec)?;
    if from == DAY_SECONDS {
        return Err(format!("{spec:?}: a window cannot start at 24:00"));
    }
    let seconds = if to > from {
        to - from
    } else {
        // Crossing midnight (or a whole day when the two are equal).
        to + DAY_SECONDS - from
    };
    let start = NaiveTime::from_num_seconds_from_midnight_opt(from as u32, 0)
        .ok_or_else(|| format!("{spec:?}: no such time"))?;
    Ok(Window::Weekly {
        days,
        start,
        seconds,
    })
}

fn parse_dates(spec: &str) -> Result<Window, String> {
    let (from, to) = spec.split_once("..").unwrap_or((spec, spec));
    let date = |s: &str| {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{spec:?}: {:?} is not a date (YYYY-MM-DD)", s.trim()))
    };
    let (from, to) = (date(from)?, date(to)?);
    if to < from {
        return Err(format!("{spec:?}: the last day is before the first"));
    }
    Ok(Window::Dates { from, to })
}

/// `Sat`, `Mon-Fri`, `Sat,Sun`, `daily` (or `*`): the days, Monday first.
fn parse_days(s: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    if s.eq_ignore_ascii_case("daily") || s == "*" {
        return Ok([true; 7]);
    }
    for part in s.split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last) = (weekday(first)?, weekday(last)?);
        let mut d = first;
        loop {
            days[d.num_days_from_monday() as usize] = true;
            if d == last {
                break;
            }
            d = d.succ();
        }
    }
    Ok(days)
}

fn weekday(s: &str) -> Result<Weekday, String> {
    s.trim().parse::<Weekday>().map_err(|_| {
        format!("{:?} is not a day: Mon, Tue, Wed, Thu, Fri, Sat, Sun, a range (Mon-Fri), a list (Sat,Sun) or daily", s.trim())
    })
}

const DAY_SECONDS: i64 = 24 * 3600;

/// `HH:MM` or `HH:MM:SS` (00:00 to 24:00) as seconds after midnight.
fn parse_clock(s: &str, spec: &str) -> Result<i64, String> {
    let bad = || format!("{spec:?}: {:?} is not a time of day (HH:MM)", s.trim());
    let parts: Vec<&str> = s.trim().split(':').collect();
    let number = |p: &str| -> Result<i64, String> {
        if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (h, m, sec) = match parts[..] {
        [h, m] => (number(h)?, number(m)?, 0),
        [h, m, sec] => (number(h)?, number(m)?, number(sec)?),
        _ => return Err(bad()),
    };
    let t = h * 3600 + m * 60 + sec;
    if m >= 60 || sec >= 60 || t > DAY_SECONDS {
        return Err(bad());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("an RFC 3339 time")
    }

    fn blackout(specs: &[&str], tz: Tz) -> Blackout {
        Blackout::parse(specs.iter().copied(), tz).expect("valid windows")
    }

    #[test]
    fn a_weekly_window_covers_its_hours_in_the_zone() {
        // 2026-12-05 is a Saturday; Berlin is UTC+1 in December.
        let b = blackout(&["Sat 00:00-06:00"], Berlin);
        assert_eq!(
            b.covering(at("2026-12-04T23:00:00Z")),
            Some(at("2026-12-05T05:00:00Z"))
        );
        assert_eq!(
            b.covering(at("2026-12-05T04:59:59Z")),
            Some(at("2026-12-05T05:00:00Z"))
        );
        assert_eq!(
            b.covering(at("2026-12-05T05:00:00Z")),
            None,
            "the end is out"
        );
        assert_eq!(b.covering(at("2026-12-04T22:59:59Z")), None, "Friday");
        assert_eq!(
            b.covering(at("2026-12-12T01:00:00Z")),
            Some(at("2026-12-12T05:00:00Z"))
        );
    }

    #[test]
    fn a_window_ending_before_it_starts_crosses_midnight() {
        let b = blackout(&["Fri 22:00-02:00"], chrono_tz::UTC);
        // Friday 2026-12-04 23:00 and Saturday 01:00 are inside; Saturday
        // 22:00 is not (Saturday is not a start day).
        assert_eq!(
            b.covering(at("2026-12-04T23:00:00Z")),
            Some(at("2026-12-05T02:00:00Z"))
        );
        assert_eq!(
            b.covering(at("2026-12-05T01:00:00Z")),
            Some(at("2026-12-05T02:00:00Z"))
        );
        assert_eq!(b.covering(at("2026-12-05T22:30:00Z")), None);
    }

    #[test]
    fn day_ranges_lists_and_daily() {
        let b = blackout(&["Mon-Wed,Sun 09:00-10:00"], chrono_tz::UTC);
        // 2026-12-06 Sunday, 07 Monday, 10 Thursday.
        assert!(b.covering(at("2026-12-06T09:30:00Z")).is_some());
        assert!(b.covering(at("2026-12-07T09:30:00Z")).is_some());
        assert!(b.covering(at("2026-12-10T09:30:00Z")).is_none());
        let wrap = blackout(&["Sat-Mon 09:00-10:00"], chrono_tz::UTC);
        assert!(
            wrap.covering(at("2026-12-07T09:30:00Z")).is_some(),
            "Monday"
        );
        assert!(
            wrap.covering(at("2026-12-08T09:30:00Z")).is_none(),
            "Tuesday"
        );
        let daily = blackout(&["daily 01:00-01:30"], chrono_tz::UTC);
        assert!(daily.covering(at("2026-12-09T01:15:00Z")).is_some());
        assert!(daily.covering(at("2026-12-09T01:30:00Z")).is_none());
    }

    #[test]
    fn dates_cover_whole_days_in_the_zone() {
        let b = blackout(&["2026-12-24..2026-12-26", "2027-01-01"], Berlin);
        assert_eq!(b.covering(at("2026-12-23T22:59:59Z")), None);
        assert_eq!(
            b.covering(at("2026-12-23T23:00:00Z")),
            Some(at("2026-12-26T23:00:00Z")),
            "midnight in Berlin"
        );
        assert_eq!(
            b.covering(at("2026-12-31T23:30:00Z")),
            Some(at("2027-01-01T23:00:00Z"))
        );
    }

    #[test]
    fn touching_windows_end_together() {
        let b = blackout(&["Sat 00:00-06:00", "Sat 06:00-08:00"], chrono_tz::UTC);
        assert_eq!(
            b.covering(at("2026-12-05T01:00:00Z")),
            Some(at("2026-12-05T08:00:00Z"))
        );
    }

    #[test]
    fn a_window_ending_in_a_skipped_hour_ends_after_the_gap() {
        // Berlin skips 02:00-03:00 on 2027-03-28 (a Sunday).
        let b = blackout(&["Sun 00:00-02:30"], Berlin);
        assert_eq!(
            b.covering(at("2027-03-28T00:30:00Z")),
            Some(at("2027-03-28T01:00:00Z")),
            "03:00 CEST, the first instant after the gap"
        );
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (spec, says) in [
            ("Sat", "is not a window"),
            ("Sat 0600", "HH:MM-HH:MM"),
            ("Caturday 00:00-01:00", "is not a day"),
            ("Sat 25:00-26:00", "is not a time of day"),
            ("Sat 24:00-01:00", "cannot start at 24:00"),
            ("2026-12-26..2026-12-24", "before the first"),
            ("2026-13-01", "is not a date"),
        ] {
            let e = Blackout::parse([spec], chrono_tz::UTC).expect_err(spec);
            assert!(e.contains(says), "{spec}: {e}");
        }
        assert!(Blackout::parse(["Sat 22:00-24:00"], chrono_tz::UTC).is_ok());
        for bad in ["Sat 1:00-2:00", "Sat 01:00:5-02:00", "Sat 24:00:01-01:00"] {
            assert!(Blackout::parse([bad], chrono_tz::UTC).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_may_have_seconds() {
        let b = blackout(&["daily 10:00:05-10:00:08"], chrono_tz::UTC);
        assert_eq!(b.covering(at("2026-12-09T10:00:04Z")), None);
        assert_eq!(
            b.covering(at("2026-12-09T10:00:05Z")),
            Some(at("2026-12-09T10:00:08Z"))
        );
    }
}
