//! Tests for [`super::Schedule`]: the DST table (run against `Schedule`, and
//! for the record against croner's and tokio-cron-scheduler's own named-zone
//! computations), parsing, backward search and labels.
//!
//! Transition days used (all Sundays):
//! * America/New_York 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00 UTC;
//!   2026-11-01: 02:00 EDT -> 01:00 EST at 06:00 UTC (01:00-02:00 repeats).
//! * Europe/Berlin 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC;
//!   2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC (02:00-03:00 repeats).
//! * 2025 spot checks: New_York 2025-03-09 / 2025-11-02, Berlin 2025-03-30 /
//!   2025-10-26.

use super::*;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::America::New_York;
use chrono_tz::Asia::Shanghai;
use chrono_tz::Europe::Berlin;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("test literal is a valid RFC 3339 instant")
}

/// Where to look for slots.
#[derive(Clone, Copy)]
enum Window {
    /// All slots whose wall-clock date in the case's zone is this day.
    LocalDay(i32, u32, u32),
    /// All slots in `[start, end)`.
    Utc(&'static str, &'static str),
}

enum Expect {
    /// Exactly these slots (RFC 3339 UTC), in this order.
    Slots(&'static [&'static str]),
    /// `count` slots, the first at `first`, each exactly `secs` after the
    /// previous one in real time.
    Every {
        first: &'static str,
        secs: i64,
        count: usize,
    },
}

struct Case {
    name: &'static str,
    expr: &'static str,
    tz: Tz,
    window: Window,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    use Expect::{Every, Slots};
    use Window::{LocalDay, Utc as UtcWindow};
    vec![
        // --- daily 02:30, New York ---
        Case {
            name: "ny 02:30 day before spring forward",
            expr: "30 2 * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 7),
            expect: Slots(&["2026-03-07T07:30:00Z"]),
        },
        Case {
            name: "ny 02:30 spring forward runs once at 03:00 EDT",
            expr: "30 2 * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 8),
            expect: Slots(&["2026-03-08T07:00:00Z"]),
        },
        Case {
            name: "ny 02:30 day after spring forward",
            expr: "30 2 * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 9),
            expect: Slots(&["2026-03-09T06:30:00Z"]),
        },
        Case {
            name: "ny 02:30 fall back (02:30 exists once, EST)",
            expr: "30 2 * * *",
            tz: New_York,
            window: LocalDay(2026, 11, 1),
            expect: Slots(&["2026-11-01T07:30:00Z"]),
        },
        Case {
            name: "ny 02:30 6-field spring forward",
            expr: "0 30 2 * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 8),
            expect: Slots(&["2026-03-08T07:00:00Z"]),
        },
        Case {
            name: "ny 02:30 spring forward 2025",
            expr: "30 2 * * *",
            tz: New_York,
            window: LocalDay(2025, 3, 9),
            expect: Slots(&["2025-03-09T07:00:00Z"]),
        },
        // --- daily 01:30, New York ---
        Case {
            name: "ny 01:30 spring forward (exists, EST)",
            expr: "30 1 * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 8),
            expect: Slots(&["2026-03-08T06:30:00Z"]),
        },
        Case {
            name: "ny 01:30 fall back runs once, first (EDT) pass",
            expr: "30 1 * * *",
            tz: New_York,
            window: LocalDay(2026, 11, 1),
            expect: Slots(&["2026-11-01T05:30:00Z"]),
        },
        Case {
            name: "ny 01:30 day after fall back",
            expr: "30 1 * * *",
            tz: New_York,
            window: LocalDay(2026, 11, 2),
            expect: Slots(&["2026-11-02T06:30:00Z"]),
        },
        Case {
            name: "ny 01:30 6-field fall back 2025",
            expr: "0 30 1 * * *",
            tz: New_York,
            window: LocalDay(2025, 11, 2),
            expect: Slots(&["2025-11-02T05:30:00Z"]),
        },
        // --- daily 02:30 and 01:30, Berlin ---
        Case {
            name: "berlin 02:30 spring forward runs once at 03:00 CEST",
            expr: "30 2 * * *",
            tz: Berlin,
            window: LocalDay(2026, 3, 29),
            expect: Slots(&["2026-03-29T01:00:00Z"]),
        },
        Case {
            name: "berlin 02:30 day after spring forward",
            expr: "30 2 * * *",
            tz: Berlin,
            window: LocalDay(2026, 3, 30),
            expect: Slots(&["2026-03-30T00:30:00Z"]),
        },
        Case {
            name: "berlin 02:30 fall back runs once, first (CEST) pass",
            expr: "30 2 * * *",
            tz: Berlin,
            window: LocalDay(2026, 10, 25),
            expect: Slots(&["2026-10-25T00:30:00Z"]),
        },
        Case {
            name: "berlin 02:30 day after fall back",
            expr: "30 2 * * *",
            tz: Berlin,
            window: LocalDay(2026, 10, 26),
            expect: Slots(&["2026-10-26T01:30:00Z"]),
        },
        Case {
            name: "berlin 01:30 spring forward (exists, CET)",
            expr: "30 1 * * *",
            tz: Berlin,
            window: LocalDay(2026, 3, 29),
            expect: Slots(&["2026-03-29T00:30:00Z"]),
        },
        Case {
            name: "berlin 01:30 fall back (exists once, CEST)",
            expr: "0 30 1 * * *",
            tz: Berlin,
            window: LocalDay(2026, 10, 25),
            expect: Slots(&["2026-10-24T23:30:00Z"]),
        },
        Case {
            name: "berlin 02:30 spring forward 2025",
            expr: "30 2 * * *",
            tz: Berlin,
            window: LocalDay(2025, 3, 30),
            expect: Slots(&["2025-03-30T01:00:00Z"]),
        },
        Case {
            name: "berlin 02:30 fall back 2025",
            expr: "30 2 * * *",
            tz: Berlin,
            window: LocalDay(2025, 10, 26),
            expect: Slots(&["2025-10-26T00:30:00Z"]),
        },
        // --- a fixed-time job with two hours that both land on 03:00 ---
        Case {
            name: "ny 02:00 and 03:00 on spring forward: one slot, not two",
            expr: "0 2,3 * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 8),
            expect: Slots(&["2026-03-08T07:00:00Z"]),
        },
        // --- hourly: real elapsed hours ---
        Case {
            name: "ny hourly spring forward: 23 slots, 1h apart",
            expr: "0 * * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 8),
            expect: Every {
                first: "2026-03-08T05:00:00Z",
                secs: 3600,
                count: 23,
            },
        },
        Case {
            name: "ny hourly fall back: 25 slots, 1h apart",
            expr: "0 0 * * * *",
            tz: New_York,
            window: LocalDay(2026, 11, 1),
            expect: Every {
                first: "2026-11-01T04:00:00Z",
                secs: 3600,
                count: 25,
            },
        },
        Case {
            name: "berlin hourly spring forward",
            expr: "0 * * * *",
            tz: Berlin,
            window: LocalDay(2026, 3, 29),
            expect: Every {
                first: "2026-03-28T23:00:00Z",
                secs: 3600,
                count: 23,
            },
        },
        Case {
            name: "berlin hourly fall back",
            expr: "0 0 * * * *",
            tz: Berlin,
            window: LocalDay(2026, 10, 25),
            expect: Every {
                first: "2026-10-24T22:00:00Z",
                secs: 3600,
                count: 25,
            },
        },
        Case {
            name: "ny half past every hour, fall back (both passes)",
            expr: "30 * * * *",
            tz: New_York,
            window: LocalDay(2026, 11, 1),
            expect: Every {
                first: "2026-11-01T04:30:00Z",
                secs: 3600,
                count: 25,
            },
        },
        // --- every 15 minutes: real elapsed quarter hours ---
        Case {
            name: "ny 15 min spring forward (6-field)",
            expr: "0 */15 * * * *",
            tz: New_York,
            window: LocalDay(2026, 3, 8),
            expect: Every {
                first: "2026-03-08T05:00:00Z",
                secs: 900,
                count: 92,
            },
        },
        Case {
            name: "ny 15 min fall back (6-field)",
            expr: "0 */15 * * * *",
            tz: New_York,
            window: LocalDay(2026, 11, 1),
            expect: Every {
                first: "2026-11-01T04:00:00Z",
                secs: 900,
                count: 100,
            },
        },
        Case {
            name: "ny 15 min fall back (5-field)",
            expr: "*/15 * * * *",
            tz: New_York,
            window: LocalDay(2026, 11, 1),
            expect: Every {
                first: "2026-11-01T04:00:00Z",
                secs: 900,
                count: 100,
            },
        },
        Case {
            name: "berlin 15 min spring forward (5-field)",
            expr: "*/15 * * * *",
            tz: Berlin,
            window: LocalDay(2026, 3, 29),
            expect: Every {
                first: "2026-03-28T23:00:00Z",
                secs: 900,
                count: 92,
            },
        },
        Case {
            name: "berlin 15 min fall back (6-field)",
            expr: "0 */15 * * * *",
            tz: Berlin,
            window: LocalDay(2026, 10, 25),
            expect: Every {
                first: "2026-10-24T22:00:00Z",
                secs: 900,
                count: 100,
            },
        },
        // --- every second across the transition instants ---
        Case {
            name: "ny every second across spring forward",
            expr: "* * * * * *",
            tz: New_York,
            window: UtcWindow("2026-03-08T06:55:00Z", "2026-03-08T07:05:00Z"),
            expect: Every {
                first: "2026-03-08T06:55:00Z",
                secs: 1,
                count: 600,
            },
        },
        Case {
            name: "ny every second across fall back",
            expr: "* * * * * *",
            tz: New_York,
            window: UtcWindow("2026-11-01T05:55:00Z", "2026-11-01T06:05:00Z"),
            expect: Every {
                first: "2026-11-01T05:55:00Z",
                secs: 1,
                count: 600,
            },
        },
        Case {
            name: "berlin every second across fall back",
            expr: "* * * * * *",
            tz: Berlin,
            window: UtcWindow("2026-10-25T00:55:00Z", "2026-10-25T01:05:00Z"),
            expect: Every {
                first: "2026-10-25T00:55:00Z",
                secs: 1,
                count: 600,
            },
        },
        // --- no-DST controls ---
        Case {
            name: "shanghai 02:30 (UTC+8, no DST) on the ny spring day",
            expr: "30 2 * * *",
            tz: Shanghai,
            window: LocalDay(2026, 3, 8),
            expect: Slots(&["2026-03-07T18:30:00Z"]),
        },
        Case {
            name: "shanghai 15 min on the berlin fall-back day",
            expr: "*/15 * * * *",
            tz: Shanghai,
            window: LocalDay(2026, 10, 25),
            expect: Every {
                first: "2026-10-24T16:00:00Z",
                secs: 900,
                count: 96,
            },
        },
        Case {
            name: "utc 02:30",
            expr: "0 30 2 * * *",
            tz: chrono_tz::UTC,
            window: LocalDay(2026, 11, 1),
            expect: Slots(&["2026-11-01T02:30:00Z"]),
        },
        Case {
            name: "utc hourly",
            expr: "0 * * * *",
            tz: chrono_tz::UTC,
            window: LocalDay(2026, 3, 8),
            expect: Every {
                first: "2026-03-08T00:00:00Z",
                secs: 3600,
                count: 24,
            },
        },
    ]
}

/// The UTC range to generate slots over; `in_window` then picks the window's
/// slots out of it.
fn window_bounds(window: Window) -> (DateTime<Utc>, DateTime<Utc>) {
    match window {
        Window::Utc(start, end) => (utc(start), utc(end)),
        Window::LocalDay(y, m, d) => {
            // Generous: the local day lies within [day 00:00 - 14h, day+1 00:00 + 14h] UTC.
            let day = NaiveDate::from_ymd_opt(y, m, d).expect("test date is valid");
            let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
                - TimeDelta::hours(15);
            (start, start + TimeDelta::hours(54))
        }
    }
}

fn in_window(window: Window, tz: Tz, slot: DateTime<Utc>) -> bool {
    match window {
        Window::Utc(start, end) => slot >= utc(start) && slot < utc(end),
        Window::LocalDay(y, m, d) => {
            slot.with_timezone(&tz).date_naive()
                == NaiveDate::from_ymd_opt(y, m, d).expect("test date is valid")
        }
    }
}

/// A way of computing slots: (expr, zone, from, until) -> every slot it
/// produces after `from` and before `until`, in the order it produces them.
type Generator = fn(&str, Tz, DateTime<Utc>, DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, String>;

/// Runs every case through `generate`; returns "name: what went wrong" for
/// each failing case.
fn failures(generate: Generator) -> Vec<String> {
    let mut failed = Vec::new();
    for case in cases() {
        if let Err(why) = check_case(&case, generate) {
            failed.push(format!("{} => {why}", case.name));
        }
    }
    failed
}

/// The cases that failed are exactly `expected` (by name, in order).
fn assert_failed_exactly(failed: &[String], expected: &[&str]) {
    let names: Vec<&str> = failed
        .iter()
        .map(|f| f.split(" => ").next().unwrap_or(""))
        .collect();
    assert_eq!(names, expected, "full report:\n{}", failed.join("\n"));
}

fn check_case(case: &Case, generate: Generator) -> Result<(), String> {
    let (from, until) = window_bounds(case.window);
    let all = generate(case.expr, case.tz, from, until)?;
    for pair in all.windows(2) {
        if pair[1] <= pair[0] {
            return Err(format!(
                "not strictly increasing: {} then {}",
                pair[0], pair[1]
            ));
        }
    }
    let got: Vec<DateTime<Utc>> = all
        .into_iter()
        .filter(|s| in_window(case.window, case.tz, *s))
        .collect();
    let want: Vec<DateTime<Utc>> = match case.expect {
        Expect::Slots(slots) => slots.iter().map(|s| utc(s)).collect(),
        Expect::Every { first, secs, count } => (0..count)
            .map(|i| utc(first) + TimeDelta::seconds(secs * i as i64))
            .collect(),
    };
    if got == want {
        return Ok(());
    }
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(4).collect();
    let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(4).collect();
    Err(format!(
        "got {} slots, want {}; missing {missing:?}; unexpected {extra:?}",
        got.len(),
        want.len()
    ))
}

/// Upper bound on slots any generator may produce for one case (the biggest
/// window holds 600 one-second slots; 54 hours of quarter hours is 216).
const GENERATOR_CAP: usize = 5000;

fn schedule_generator(
    expr: &str,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, String> {
    let schedule = Schedule::parse(expr, tz).map_err(|e| e.to_string())?;
    // Start just before `from` so a slot exactly at `from` is included.
    let mut cursor = from - TimeDelta::seconds(1);
    let mut slots = Vec::new();
    while let Some(slot) = schedule.next_after(cursor) {
        if slot >= until || slots.len() > GENERATOR_CAP {
            break;
        }
        if slot <= cursor {
            return Err(format!(
                "next_after({cursor}) returned {slot}, not after it"
            ));
        }
        slots.push(slot);
        cursor = slot;
    }
    Ok(slots)
}

#[test]
fn schedule_passes_the_dst_table() {
    let failed = failures(schedule_generator);
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
}

// ---------------------------------------------------------------------------
// The same table against the libraries' own named-time-zone computations.
//
// Result (croner 3.0.1, tokio-cron-scheduler 0.15.1): both FAIL; the exact
// lists are asserted below so that an upstream fix shows up as a test change.

/// croner 3 with a chrono-tz zone, feeding each slot back in:
/// `find_next_occurrence(&slot.with_timezone(&tz), false)`. This is what the
/// old `Schedule::next_after` did and what tokio-cron-scheduler uses for a
/// job's *first* tick (`Job::new_tz` / `new_async_tz`).
fn croner_named_tz_generator(
    expr: &str,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, String> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())?;
    let mut cursor = (from - TimeDelta::seconds(1)).with_timezone(&tz);
    let mut slots = Vec::new();
    while let Ok(next) = cron.find_next_occurrence(&cursor, false) {
        let slot = next.with_timezone(&Utc);
        if slot >= until || slots.len() > GENERATOR_CAP {
            break;
        }
        slots.push(slot);
        cursor = next;
    }
    Ok(slots)
}

/// tokio-cron-scheduler 0.15.1's cron job, as its source computes it:
/// * `Job::new_tz`/`new_async_tz` (src/job/mod.rs) parse with
///   `Seconds::Required` + `dom_and_dow(true)`, take the first tick from
///   croner in the named zone, and store `time_offset_seconds` = the zone's
///   offset *at creation*;
/// * after each run the scheduler loop (src/scheduler.rs) computes the next
///   tick with `iter_after(now.with_timezone(&FixedOffset(time_offset_seconds)))`.
///
/// Here the job is created a day before the window (one hour for second-level
/// windows) and each tick "runs" exactly on time. 5-field expressions get a
/// leading `0` because the crate requires 6 fields.
fn tokio_cron_scheduler_generator(
    expr: &str,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, String> {
    let six_fields = if expr.split_whitespace().count() == 5 {
        format!("0 {expr}")
    } else {
        expr.to_string()
    };
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(&six_fields)
        .map_err(|e| e.to_string())?;
    let lead = if until - from > TimeDelta::hours(2) {
        TimeDelta::days(1)
    } else {
        TimeDelta::hours(1)
    };
    let created = from - lead;
    let frozen = created.with_timezone(&tz).offset().fix();
    let mut tick = cron
        .find_next_occurrence(&created.with_timezone(&tz), false)
        .map_err(|e| e.to_string())?
        .with_timezone(&Utc);
    let mut slots = Vec::new();
    while tick < until && slots.len() <= GENERATOR_CAP * 50 {
        if tick >= from {
            slots.push(tick);
        }
        let Some(next) = cron.iter_after(tick.with_timezone(&frozen)).next() else {
            break;
        };
        tick = next.with_timezone(&Utc);
    }
    Ok(slots)
}

#[test]
fn croner_named_tz_fails_the_dst_table() {
    let failed = failures(croner_named_tz_generator);
    // * A fixed-time 01:30 job also fires at 03:00 on spring-forward day: the
    //   search for the next 01:30 walks through the gap, and croner's gap rule
    //   ("snap a fixed-time job to the end of the gap") only checks the date.
    //   That is a doubled slot.
    // * Interval jobs lose the second pass of the repeated hour.
    let expected = [
        "ny 01:30 spring forward (exists, EST)",
        "berlin 01:30 spring forward (exists, CET)",
        "ny hourly fall back: 25 slots, 1h apart",
        "berlin hourly fall back",
        "ny half past every hour, fall back (both passes)",
        "ny 15 min fall back (6-field)",
        "ny 15 min fall back (5-field)",
        "berlin 15 min fall back (6-field)",
        "ny every second across fall back",
        "berlin every second across fall back",
    ];
    assert_failed_exactly(&failed, &expected);
}

#[test]
fn tokio_cron_scheduler_fails_the_dst_table() {
    let failed = failures(tokio_cron_scheduler_generator);
    // Every slot after a transition is an hour off (the offset is frozen at
    // job creation), and the 02:00/03:00 job fires twice on spring-forward
    // day. Hourly and quarter-hourly jobs pass only because a whole-hour
    // offset error does not change their spacing.
    let expected = [
        "ny 02:30 spring forward runs once at 03:00 EDT",
        "ny 02:30 day after spring forward",
        "ny 02:30 fall back (02:30 exists once, EST)",
        "ny 02:30 6-field spring forward",
        "ny 02:30 spring forward 2025",
        "ny 01:30 day after fall back",
        "berlin 02:30 spring forward runs once at 03:00 CEST",
        "berlin 02:30 day after spring forward",
        "berlin 02:30 day after fall back",
        "berlin 02:30 spring forward 2025",
        "ny 02:00 and 03:00 on spring forward: one slot, not two",
    ];
    assert_failed_exactly(&failed, &expected);
}

#[test]
fn croner_named_tz_answers_before_the_question_in_the_repeated_hour() {
    // 01:05 EST on 2026-11-01 (second pass) is 06:05 UTC. croner keeps only
    // the wall-clock time, finds 01:15, and resolves it to the first pass.
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse("0 */15 * * * *")
        .expect("valid pattern");
    let asked = utc("2026-11-01T06:05:00Z");
    let answer = cron
        .find_next_occurrence(&asked.with_timezone(&New_York), false)
        .expect("croner finds a time")
        .with_timezone(&Utc);
    assert_eq!(answer, utc("2026-11-01T05:15:00Z"));
    assert!(
        answer < asked,
        "croner answers an instant before the question"
    );

    let schedule = Schedule::parse("0 */15 * * * *", New_York).expect("valid");
    assert_eq!(
        schedule.next_after(asked),
        Some(utc("2026-11-01T06:15:00Z"))
    );
}

// ---------------------------------------------------------------------------
// Queries from arbitrary instants, in more zones.

/// Slots in `[from, until)` by chaining `next_after`.
fn chain(schedule: &Schedule, from: &str, until: &str) -> Vec<DateTime<Utc>> {
    schedule_generator(schedule.expr(), schedule.timezone(), utc(from), utc(until))
        .expect("expression in test is valid")
}

/// `next_after` and `latest_at_or_before` asked at arbitrary instants
/// (including inside gaps, inside both passes of a repeated hour, and a
/// fraction of a second around each slot) must agree with the chained slots.
#[test]
fn queries_from_any_instant_agree_with_the_slot_sequence() {
    let table: &[(&str, Tz, &str, &str)] = &[
        (
            "30 2 * * *",
            New_York,
            "2026-03-06T00:00:00Z",
            "2026-03-11T00:00:00Z",
        ),
        (
            "30 1 * * *",
            New_York,
            "2026-10-30T00:00:00Z",
            "2026-11-04T00:00:00Z",
        ),
        (
            "0 30 1,13 * * *",
            New_York,
            "2026-10-30T00:00:00Z",
            "2026-11-04T00:00:00Z",
        ),
        (
            "*/15 * * * *",
            New_York,
            "2026-11-01T03:00:00Z",
            "2026-11-01T09:00:00Z",
        ),
        (
            "*/15 * * * *",
            New_York,
            "2026-03-08T04:00:00Z",
            "2026-03-08T09:00:00Z",
        ),
        (
            "30 2 * * *",
            Berlin,
            "2026-10-23T00:00:00Z",
            "2026-10-28T00:00:00Z",
        ),
        (
            "0 * * * *",
            Berlin,
            "2026-10-24T20:00:00Z",
            "2026-10-25T04:00:00Z",
        ),
        (
            "15 2 * * *",
            chrono_tz::Australia::Lord_Howe,
            "2026-10-01T00:00:00Z",
            "2026-10-06T00:00:00Z",
        ),
        (
            "*/15 * * * *",
            chrono_tz::Australia::Lord_Howe,
            "2026-04-04T12:00:00Z",
            "2026-04-04T18:00:00Z",
        ),
        (
            "0 0 * * *",
            chrono_tz::America::Santiago,
            "2026-09-03T00:00:00Z",
            "2026-09-09T00:00:00Z",
        ),
    ];
    for &(expr, tz, from, until) in table {
        let schedule = Schedule::parse(expr, tz).expect("valid expression");
        let slots = chain(&schedule, from, until);
        assert!(slots.len() >= 3, "{expr} {tz}: too few slots {slots:?}");
        let first = slots[0];
        let last = slots[slots.len() - 1];

        let mut probes: Vec<DateTime<Utc>> = Vec::new();
        let mut t = first;
        while t < last {
            probes.push(t);
            t += TimeDelta::seconds(7 * 60 + 13);
        }
        for &slot in &slots {
            for delta_ms in [-1000, -500, -1, 0, 1, 500, 1000] {
                probes.push(slot + TimeDelta::milliseconds(delta_ms));
            }
        }
        for t in probes {
            if t < first || t >= last {
                continue;
            }
            let want_next = slots.iter().copied().find(|s| *s > t);
            let want_latest = slots.iter().copied().rev().find(|s| *s <= t);
            assert_eq!(
                schedule.next_after(t),
                want_next,
                "{expr} {tz}: next_after({t})"
            );
            assert_eq!(
                schedule.latest_at_or_before(t),
                want_latest,
                "{expr} {tz}: latest_at_or_before({t})"
            );
        }
    }
}

#[test]
fn fixed_time_with_several_hours_runs_once_in_the_repeated_hour() {
    let schedule = Schedule::parse("0 30 1,13 * * *", New_York).expect("valid");
    assert!(schedule.is_fixed_time());
    let slots = chain(&schedule, "2026-11-01T04:00:00Z", "2026-11-02T04:00:00Z");
    assert_eq!(
        slots,
        vec![utc("2026-11-01T05:30:00Z"), utc("2026-11-01T18:30:00Z")]
    );
}

/// `wall` does not exist in `tz` (it falls in a gap), and `expr` from
/// `from` to `until` gives exactly `expected`.
fn assert_gap_slots(
    tz: Tz,
    wall: (i32, u32, u32, u32, u32),
    expr: &str,
    (from, until): (&str, &str),
    expected: &[&str],
) {
    let (y, mo, d, h, mi) = wall;
    let gap_wall = NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|d| d.and_hms_opt(h, mi, 0))
        .expect("valid");
    assert_eq!(tz.from_local_datetime(&gap_wall), chrono::LocalResult::None);
    let schedule = Schedule::parse(expr, tz).expect("valid");
    let expected: Vec<DateTime<Utc>> = expected.iter().map(|t| utc(t)).collect();
    assert_eq!(chain(&schedule, from, until), expected, "{expr} in {tz}");
}

#[test]
fn lord_howe_half_hour_gap_moves_a_fixed_time_job_to_the_end_of_the_gap() {
    // 2026-10-04 02:00 LHST (+10:30) -> 02:30 LHDT (+11:00) at 15:30 UTC on
    // 2026-10-03, so 02:15 does not exist that day.
    assert_gap_slots(
        chrono_tz::Australia::Lord_Howe,
        (2026, 10, 4, 2, 15),
        "15 2 * * *",
        ("2026-10-02T12:00:00Z", "2026-10-05T12:00:00Z"),
        &[
            "2026-10-02T15:45:00Z",
            "2026-10-03T15:30:00Z",
            "2026-10-04T15:15:00Z",
        ],
    );
}

#[test]
fn santiago_midnight_gap_runs_daily_midnight_job_at_one() {
    // Chile skips 2026-09-06 00:00-01:00 (-04 -> -03 at 04:00 UTC).
    assert_gap_slots(
        chrono_tz::America::Santiago,
        (2026, 9, 6, 0, 0),
        "0 0 * * *",
        ("2026-09-05T00:00:00Z", "2026-09-08T00:00:00Z"),
        &[
            "2026-09-05T04:00:00Z",
            "2026-09-06T04:00:00Z",
            "2026-09-07T03:00:00Z",
        ],
    );
}

#[test]
fn latest_at_or_before_is_inclusive_and_cheap_for_rare_schedules() {
    let daily = Schedule::parse("30 2 * * *", New_York).expect("valid");
    let slot = utc("2026-03-08T07:00:00Z");
    assert_eq!(daily.latest_at_or_before(slot), Some(slot));
    assert_eq!(
        daily.latest_at_or_before(slot - TimeDelta::seconds(1)),
        Some(utc("2026-03-07T07:30:00Z"))
    );

    let started = std::time::Instant::now();
    let yearly = Schedule::parse("0 0 1 1 *", New_York).expect("valid");
    assert_eq!(
        yearly.latest_at_or_before(utc("2026-12-31T12:00:00Z")),
        Some(utc("2026-01-01T05:00:00Z"))
    );
    let leap_day = Schedule::parse("0 12 29 2 *", Berlin).expect("valid");
    assert_eq!(
        leap_day.latest_at_or_before(utc("2031-06-01T00:00:00Z")),
        Some(utc("2028-02-29T11:00:00Z"))
    );
    assert_eq!(
        leap_day.next_after(utc("2028-02-29T11:00:00Z")),
        Some(utc("2032-02-29T11:00:00Z"))
    );
    // Unoptimised test build; a forward scan of years would take far longer.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "rare schedules took {:?}",
        started.elapsed()
    );

    let every_second = Schedule::parse("* * * * * *", chrono_tz::UTC).expect("valid");
    let t = utc("2026-05-05T10:00:00.750Z");
    assert_eq!(
        every_second.latest_at_or_before(t),
        Some(utc("2026-05-05T10:00:00Z"))
    );
    assert_eq!(
        every_second.next_after(t),
        Some(utc("2026-05-05T10:00:01Z"))
    );
}

#[test]
fn next_n_lists_slots_in_order() {
    let schedule = Schedule::parse("*/15 * * * *", New_York).expect("valid");
    let after = utc("2026-11-01T05:40:00Z");
    assert_eq!(
        schedule.next_n(after, 4),
        vec![
            utc("2026-11-01T05:45:00Z"),
            utc("2026-11-01T06:00:00Z"),
            utc("2026-11-01T06:15:00Z"),
            utc("2026-11-01T06:30:00Z"),
        ]
    );
    assert!(schedule.next_n(after, 0).is_empty());
}

#[test]
fn parse_accepts_five_and_six_fields_and_explains_refusals() {
    for ok in [
        "30 2 * * *",
        "0 30 2 * * *",
        "*/15 * * * *",
        "0 0 9 * * MON-FRI",
        "* * * * * *",
    ] {
        let schedule = Schedule::parse(ok, Berlin).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(schedule.expr(), ok);
        assert_eq!(schedule.timezone(), Berlin);
    }
    let refused: &[(&str, &str)] = &[
        ("", "empty"),
        ("   ", "empty"),
        ("0 0 2 * * * 2026", "7 field"),
        ("0 2 * *", "4 field"),
        ("@daily", "1 field"),
        ("61 * * * *", ""),
        ("0 0 30 2 *", "never matches"),
    ];
    for &(expr, says) in refused {
        let error = Schedule::parse(expr, Berlin).expect_err(expr);
        let message = error.to_string();
        assert_eq!(error.expr, expr);
        assert!(message.contains(&format!("{expr:?}")), "{message}");
        assert!(message.contains(says), "{expr}: {message}");
    }
}

#[test]
fn fixed_time_versus_interval_classification() {
    for (expr, fixed) in [
        ("30 2 * * *", true),
        ("0 30 2 * * *", true),
        ("0 30 1,13 * * *", true),
        ("0 8-17 * * *", true),
        ("*/15 * * * *", false),
        ("0 */2 * * *", false),
        ("0/10 2 * * *", false),
        ("* 30 2 * * *", false),
        ("0 * * * *", false),
    ] {
        let schedule = Schedule::parse(expr, New_York).expect("valid");
        assert_eq!(schedule.is_fixed_time(), fixed, "{expr}");
    }
}

#[test]
fn nominal_interval_ignores_dst() {
    let secs = |expr: &str| {
        Schedule::parse(expr, New_York)
            .expect("valid")
            .nominal_interval()
            .as_secs()
    };
    assert_eq!(secs("* * * * * *"), 1);
    assert_eq!(secs("*/15 * * * *"), 900);
    assert_eq!(secs("0 * * * *"), 3600);
    assert_eq!(secs("30 2 * * *"), 86_400);
    assert_eq!(secs("0 9 * * MON-FRI"), 86_400);
    assert_eq!(secs("0 0 1 1 *"), 365 * 86_400);
}

#[test]
fn slot_label_is_compact_utc() {
    assert_eq!(slot_label(utc("2026-03-08T07:00:00Z")), "20260308T070000Z");
    assert_eq!(
        slot_label(utc("2026-03-08T07:00:00.999Z")),
        "20260308T070000Z"
    );
}

/// Records that tokio-cron-scheduler's job constructor really takes its first
/// tick from croner in the named zone, as the generator above models.
#[tokio::test]
async fn tokio_cron_scheduler_first_tick_matches_the_model() {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let mut scheduler = JobScheduler::new().await.expect("scheduler starts");
    let before = Utc::now();
    let job = Job::new_tz("0 30 2 * * *", New_York, |_, _| {}).expect("valid job");
    let id = scheduler.add(job).await.expect("job added");
    let tick = scheduler
        .next_tick_for_job(id)
        .await
        .expect("metadata readable")
        .expect("job has a next tick");
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse("0 30 2 * * *")
        .expect("valid");
    let modelled = cron
        .find_next_occurrence(&before.with_timezone(&New_York), false)
        .expect("next exists")
        .with_timezone(&Utc);
    // tokio-cron-scheduler stores whole seconds; croner keeps the query's
    // sub-second part (which is why `Schedule` floors its inputs).
    assert_eq!(tick.timestamp(), modelled.timestamp());
    scheduler.shutdown().await.expect("scheduler stops");
}
