use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0)
        .single()
        .expect("time")
}

fn run(slot: DateTime<Utc>, state: RunState, error: Option<&str>) -> RunRow {
    RunRow {
        id: slot.timestamp(),
        policy: "db".into(),
        target: "vol-1".into(),
        provider: "qc".into(),
        slot,
        name: format!("sw-{}", slot.timestamp()),
        full: false,
        state,
        started_at: slot,
        finished_at: Some(slot),
        error: error.map(str::to_string),
    }
}

fn snap(created: DateTime<Utc>, state: LedgerState, deleted: Option<DateTime<Utc>>) -> SnapshotRow {
    SnapshotRow {
        id: created.timestamp(),
        run_id: created.timestamp(),
        provider: "qc".into(),
        policy: "db".into(),
        target: "vol-1".into(),
        slot: created,
        name: format!("sw-{}", created.timestamp()),
        snapshot_id: format!("ss-{}", created.timestamp()),
        state,
        full: false,
        created_at: created,
        completed_at: (state != LedgerState::Failed).then_some(created),
        deleted_at: deleted,
        error: None,
        size_bytes: None,
    }
}

/// Every ten minutes.
fn schedule() -> Schedule {
    Schedule::parse("*/10 * * * *", chrono_tz::UTC).expect("schedule")
}

const KEY: (&str, &str, &str) = ("db", "vol-1", "qc");

#[test]
fn runs_are_counted_by_outcome_and_skips_by_reason_inside_the_window_only() {
    let runs = vec![
        run(at(0, 50), RunState::Failed, Some("before the window")),
        run(at(1, 0), RunState::Succeeded, None),
        run(at(1, 10), RunState::Failed, Some("create refused")),
        run(
            at(1, 20),
            RunState::Skipped,
            Some("skipped: paused since 2026-12-01T01:15:00Z, by ann: upgrade"),
        ),
        run(
            at(1, 30),
            RunState::Skipped,
            Some("skipped: inside the policy's blackout window until 2026-12-01T01:35:00Z"),
        ),
        run(
            at(1, 40),
            RunState::Skipped,
            Some("skipped: the run for slot 2026-12-01T01:30:00.000Z is still in flight"),
        ),
        run(at(1, 50), RunState::Creating, None),
    ];
    let r = target_report(KEY, Some(&schedule()), &runs, &[], at(1, 0), at(1, 55));
    assert_eq!((r.made, r.failed, r.open), (1, 1, 1));
    assert_eq!(
        r.skipped,
        Skipped {
            paused: 1,
            blackout: 1,
            overlap: 1,
            other: 0
        }
    );
    assert_eq!(r.due, Some(6), "01:00 to 01:50");
    assert_eq!(r.missed, Some(0));
}

#[test]
fn a_due_slot_with_no_run_is_missed_but_not_one_just_due() {
    let runs = vec![
        run(at(1, 0), RunState::Succeeded, None),
        // 01:10 and 01:20 have no run.
        run(at(1, 30), RunState::Succeeded, None),
    ];
    // 01:40 is due, 30 s ago: not yet missed.
    let now = at(1, 40) + chrono::Duration::seconds(30);
    let r = target_report(KEY, Some(&schedule()), &runs, &[], at(0, 0), now);
    assert_eq!(
        r.due,
        Some(5),
        "counted from the first recorded slot, 01:00"
    );
    assert_eq!(r.missed, Some(2));
}

#[test]
fn a_policy_gone_from_the_file_has_no_due_count() {
    let runs = vec![run(at(1, 0), RunState::Succeeded, None)];
    let r = target_report(KEY, None, &runs, &[], at(0, 0), at(2, 0));
    assert_eq!((r.due, r.missed, r.made), (None, None, 1));
}

#[test]
fn deletes_kept_snapshots_and_the_longest_gap() {
    let snaps = vec![
        // Good before the window, deleted inside it: it opens the first gap.
        snap(at(0, 30), LedgerState::Deleted, Some(at(1, 5))),
        snap(at(1, 0), LedgerState::Available, None),
        snap(at(1, 10), LedgerState::Failed, None),
        // 01:00 to 02:00 is the longest stretch: the failed one is no good.
        snap(at(2, 0), LedgerState::Available, None),
        // Deleted before the window: not counted.
        snap(at(0, 10), LedgerState::Deleted, Some(at(0, 20))),
    ];
    let runs = vec![run(at(0, 10), RunState::Succeeded, None)];
    let r = target_report(KEY, Some(&schedule()), &runs, &snaps, at(1, 0), at(2, 30));
    assert_eq!(r.deleted, 1);
    assert_eq!(r.oldest_good, Some(at(1, 0)));
    assert_eq!(r.newest_good, Some(at(2, 0)));
    assert_eq!(
        r.longest_gap,
        Some(Gap {
            from: at(1, 0),
            to: at(2, 0)
        })
    );
}

#[test]
fn with_no_good_snapshot_the_gap_runs_from_the_first_slot_or_the_window_to_now() {
    let runs = vec![run(at(1, 20), RunState::Failed, Some("refused"))];
    let r = target_report(KEY, Some(&schedule()), &runs, &[], at(1, 0), at(3, 0));
    assert_eq!(
        r.longest_gap,
        Some(Gap {
            from: at(1, 20),
            to: at(3, 0)
        })
    );
    let early = vec![run(at(0, 20), RunState::Failed, Some("refused"))];
    let r = target_report(KEY, Some(&schedule()), &early, &[], at(1, 0), at(3, 0));
    assert_eq!(r.longest_gap.map(|g| g.from), Some(at(1, 0)));
    assert_eq!(r.longest_gap.map(|g| g.seconds()), Some(7200));
    let r = target_report(KEY, Some(&schedule()), &[], &[], at(1, 0), at(3, 0));
    assert_eq!(r.longest_gap, None);
    assert_eq!((r.due, r.missed), (Some(0), Some(0)));
}

#[test]
fn slots_past_the_limit_are_not_counted() {
    let every_second = Schedule::parse("* * * * * *", chrono_tz::UTC).expect("schedule");
    let none = HashSet::new();
    let from = at(0, 0);
    let counted = count_due(
        &every_second,
        from,
        from + chrono::Duration::seconds(99),
        &none,
        100,
    );
    // Due at 0..=99 s; missed: those more than a minute before the end.
    assert_eq!(counted, (Some(100), Some(39)));
    let over = count_due(
        &every_second,
        from,
        from + chrono::Duration::seconds(100),
        &none,
        100,
    );
    assert_eq!(over, (None, None));
}
