//! `snapwarden report`: the evidence an auditor asks for, per policy and
//! target, over a window that ends now: slots due, made, failed, skipped
//! (by reason), missed (due, with no run recorded), snapshots deleted, the
//! oldest and newest good snapshot kept, and the longest time without a
//! good snapshot. Read only: safe beside a running daemon.
//!
//! `--json` prints one object: `{"since", "until", "targets": [{"policy",
//! "target", "provider", "due" (null: the policy is no longer configured,
//! or too many slots to count), "made", "failed", "open", "skipped":
//! {"paused", "blackout", "overlap", "other"}, "missed" (null: as for
//! "due"), "deleted", "oldest_good", "newest_good", "longest_gap": null |
//! {"from", "to", "seconds"}}], "notes": [...]}`. Times are RFC 3339 UTC.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{load_config, select_policies, Exit, Outcome};
use crate::config::Config;
use crate::engine::{BLACKOUT_SKIP, PAUSED_SKIP};
use crate::schedule::Schedule;
use crate::state::{LedgerState, RunRow, RunState, SnapshotRow};

/// How long the daemon keeps finished runs (its trim): a window reaching
/// further back counts only what is left, and says so.
const HISTORY_KEPT: Duration = Duration::from_secs(90 * 86_400);
/// Slots counted per target at most (a per-second schedule over a year
/// is 31 million; per minute over 30 days, 43 200): beyond, `due` and
/// `missed` are not given.
const MAX_SLOTS_COUNTED: usize = 50_000;
/// A slot this recent may be due but not yet recorded (the daemon starts
/// it a moment after): it is never counted as missed.
const RECORDING_GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// One (policy, target) over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReport {
    pub policy: String,
    pub target: String,
    pub provider: String,
    /// Slots of the policy's schedule in the window, from the target's
    /// first recorded slot on. None: the policy is gone from the file, or
    /// there were more than [`MAX_SLOTS_COUNTED`].
    pub due: Option<u64>,
    pub made: u64,
    pub failed: u64,
    /// Runs still going.
    pub open: u64,
    pub skipped: Skipped,
    /// Due slots with no run recorded (None: as for `due`).
    pub missed: Option<u64>,
    /// Snapshots whose delete was recorded in the window.
    pub deleted: u64,
    /// Of the good snapshots the target keeps now: the oldest and newest
    /// (their point in time: when the create was accepted).
    pub oldest_good: Option<DateTime<Utc>>,
    pub newest_good: Option<DateTime<Utc>>,
    pub longest_gap: Option<Gap>,
}

/// Skipped runs by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub paused: u64,
    pub blackout: u64,
    /// The target's previous run was still in flight.
    pub overlap: u64,
    pub other: u64,
}

impl Skipped {
    fn count(&mut self, note: Option<&str>) {
        let note = note.unwrap_or("");
        if note.starts_with(PAUSED_SKIP) {
            self.paused += 1;
        } else if note.starts_with(BLACKOUT_SKIP) {
            self.blackout += 1;
        } else if note.starts_with("skipped: the run for slot") {
            self.overlap += 1;
        } else {
            self.other += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.paused + self.blackout + self.overlap + self.other
    }
}

/// The longest stretch without a good snapshot: from one good snapshot
/// (or the start of the window, or of the target's history) to the next
/// (or now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Gap {
    pub fn seconds(&self) -> i64 {
        (self.to - self.from).num_seconds()
    }
}

/// The report of one target over `[since, now]`, from its runs and its
/// snapshot rows (any order; rows of other targets are not given).
/// `schedule` is the policy's schedule, None when the policy is gone.
pub fn target_report(
    key: (&str, &str, &str),
    schedule: Option<&Schedule>,
    runs: &[RunRow],
    snapshots: &[SnapshotRow],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TargetReport {
    let (policy, target, provider) = key;
    let in_window = |t: DateTime<Utc>| t >= since && t <= now;
    let mut made = 0;
    let mut failed = 0;
    let mut open = 0;
    let mut skipped = Skipped::default();
    let mut recorded = HashSet::new();
    for r in runs.iter().filter(|r| in_window(r.slot)) {
        recorded.insert(r.slot);
        match r.state {
            RunState::Succeeded => made += 1,
            RunState::Failed => failed += 1,
            RunState::Skipped => skipped.count(r.error.as_deref()),
            RunState::Intent | RunState::Creating | RunState::Pruning => open += 1,
        }
    }
    // Slots are counted from the target's first recorded slot (a target
    // added later owes nothing before it).
    let first_slot = runs.iter().map(|r| r.slot).min();
    let (due, missed) = match (schedule, first_slot) {
        (Some(s), Some(first)) => count_due(s, since.max(first), now, &recorded, MAX_SLOTS_COUNTED),
        (Some(_), None) => (Some(0), Some(0)),
        (None, _) => (None, None),
    };
    let deleted = snapshots
        .iter()
        .filter(|s| s.deleted_at.is_some_and(in_window))
        .count() as u64;
    let kept: Vec<DateTime<Utc>> = snapshots
        .iter()
        .filter(|s| s.state == LedgerState::Available)
        .map(|s| s.created_at)
        .collect();
    // Every snapshot that was good at some time, deleted since or not.
    let mut good: Vec<DateTime<Utc>> = snapshots
        .iter()
        .filter(|s| s.completed_at.is_some() && s.state != LedgerState::Failed)
        .map(|s| s.created_at)
        .filter(|t| *t <= now)
        .collect();
    good.sort();
    TargetReport {
        policy: policy.to_string(),
        target: target.to_string(),
        provider: provider.to_string(),
        due,
        made,
        failed,
        open,
        skipped,
        missed,
        deleted,
        oldest_good: kept.iter().min().copied(),
        newest_good: kept.iter().max().copied(),
        longest_gap: longest_gap(&good, first_slot, since, now),
    }
}

/// Slots of `schedule` in `[from, now]`, and those of them (older than
/// [`RECORDING_GRACE`]) with no run in `recorded`; None past `limit`.
fn count_due(
    schedule: &Schedule,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    recorded: &HashSet<DateTime<Utc>>,
    limit: usize,
) -> (Option<u64>, Option<u64>) {
    let mut due = 0u64;
    let mut missed = 0u64;
    let mut t = from - chrono::Duration::nanoseconds(1);
    while let Some(slot) = schedule.next_after(t).filter(|s| *s <= now) {
        due += 1;
        if slot < now - RECORDING_GRACE && !recorded.contains(&slot) {
            missed += 1;
        }
        if due as usize > limit {
            return (None, None);
        }
        t = slot;
    }
    (Some(due), Some(missed))
}

/// The longest stretch of `[since, now]` without a good snapshot. `good`
/// is sorted; the newest one before the window opens it, else the start
/// of the window or of the target's history (its first slot), whichever
/// is later. None for a target with no history.
fn longest_gap(
    good: &[DateTime<Utc>],
    first_slot: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Gap> {
    let before = good.iter().rev().find(|t| **t < since).copied();
    let start = match (before, first_slot) {
        (Some(t), _) => t,
        (None, Some(first)) => since.max(first),
        (None, None) => return None,
    };
    let mut points = vec![start];
    points.extend(good.iter().filter(|t| **t >= since));
    points.push(now);
    points
        .windows(2)
        .map(|w| Gap {
            from: w[0],
            to: w[1],
        })
        .filter(|g| g.to > g.from)
        .max_by_key(|g| (g.to - g.from, std::cmp::Reverse(g.from)))
}

pub async fn run(path: &Path, policy: Option<&str>, since: Duration, as_json: bool) -> Outcome {
    let config = load_config(path)?;
    if let Some(name) = policy {
        select_policies(&config, Some(name))?;
    }
    let now = Utc::now();
    let window = chrono::Duration::from_std(since)
        .ok()
        .filter(|d| *d > chrono::Duration::zero() && now.checked_sub_signed(*d).is_some())
        .ok_or_else(|| {
            Exit::config(format!(
                "--since must be more than 0 and less than the age of the world, not {}",
                humantime::format_duration(since)
            ))
        })?;
    let from = now - window;
    let state = crate::state::open_read(&config.daemon)
        .await
        .map_err(|e| Exit::failure(e.to_string()))?;
    let fail = |e: crate::state::StateError| Exit::failure(e.to_string());
    let summaries = state.summaries().await.map_err(fail)?;
    let snapshots = state.all_snapshots().await.map_err(fail)?;
    let mut by_target: BTreeMap<(&str, &str), Vec<SnapshotRow>> = BTreeMap::new();
    for s in &snapshots {
        by_target
            .entry((s.policy.as_str(), s.target.as_str()))
            .or_default()
            .push(s.clone());
    }
    let mut reports = Vec::new();
    for s in summaries
        .iter()
        .filter(|s| policy.is_none_or(|p| p == s.policy))
    {
        let runs = state
            .runs_for(&s.policy, &s.target, u32::MAX)
            .await
            .map_err(fail)?;
        let rows = by_target
            .get(&(s.policy.as_str(), s.target.as_str()))
            .map_or(&[][..], |v| v.as_slice());
        reports.push(target_report(
            (&s.policy, &s.target, &s.provider),
            schedule_of(&config, &s.policy),
            &runs,
            rows,
            from,
            now,
        ));
    }
    let mut notes = Vec::new();
    if since > HISTORY_KEPT {
        notes.push(format!(
            "the daemon keeps {} of run history: older slots are not counted",
            humantime::format_duration(HISTORY_KEPT)
        ));
    }
    if reports.iter().any(|r| r.due.is_none()) {
        notes.push(
            format!("due and missed are not given for a policy no longer in the file, or with more than {MAX_SLOTS_COUNTED} slots in the window"),
        );
    }
    if as_json {
        print_json(&reports, from, now, &notes);
    } else {
        print_text(&reports, from, now, &notes);
    }
    Ok(())
}

fn schedule_of<'a>(config: &'a Config, policy: &str) -> Option<&'a Schedule> {
    config
        .policies
        .iter()
        .find(|p| p.name == policy)
        .map(|p| &p.schedule)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn print_json(
    reports: &[TargetReport],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    notes: &[String],
) {
    let targets: Vec<_> = reports
        .iter()
        .map(|r| {
            json!({
                "policy": r.policy,
                "target": r.target,
                "provider": r.provider,
                "due": r.due,
                "made": r.made,
                "failed": r.failed,
                "open": r.open,
                "skipped": {
                    "paused": r.skipped.paused,
                    "blackout": r.skipped.blackout,
                    "overlap": r.skipped.overlap,
                    "other": r.skipped.other,
                },
                "missed": r.missed,
                "deleted": r.deleted,
                "oldest_good": r.oldest_good.map(time),
                "newest_good": r.newest_good.map(time),
                "longest_gap": r.longest_gap.map(|g| json!({
                    "from": time(g.from),
                    "to": time(g.to),
                    "seconds": g.seconds(),
                })),
            })
        })
        .collect();
    say!(
        "{}",
        json!({
            "since": time(since),
            "until": time(now),
            "targets": targets,
            "notes": notes,
        })
    );
}

fn print_text(
    reports: &[TargetReport],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    notes: &[String],
) {
    say!("report from {} to {}", time(since), time(now));
    if reports.is_empty() {
        say!("no target has a run in the ledger");
    }
    for r in reports {
        let count = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
        say!("");
        say!("{}/{} on {}", r.policy, r.target, r.provider);
        say!(
            "  slots: {} due, {} made, {} failed, {} skipped, {} missed{}",
            count(r.due),
            r.made,
            r.failed,
            r.skipped.total(),
            count(r.missed),
            if r.open > 0 {
                format!(", {} running", r.open)
            } else {
                String::new()
            }
        );
        if r.skipped.total() > 0 {
            let reasons: Vec<String> = [
                ("paused", r.skipped.paused),
                ("blackout", r.skipped.blackout),
                ("overlap", r.skipped.overlap),
                ("other", r.skipped.other),
            ]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(why, n)| format!("{why} {n}"))
            .collect();
            say!("  skipped by reason: {}", reasons.join(", "));
        }
        say!("  deleted: {}", r.deleted);
        match (r.oldest_good, r.newest_good) {
            (Some(o), Some(n)) => say!(
                "  good snapshots kept: oldest {}, newest {}",
                time(o),
                time(n)
            ),
            _ => say!("  good snapshots kept: none"),
        }
        if let Some(g) = r.longest_gap {
            say!(
                "  longest gap: {} (from {} to {})",
                humantime::format_duration(Duration::from_secs(g.seconds().max(0) as u64)),
                time(g.from),
                time(g.to)
            );
        }
    }
    for n in notes {
        say!("note: {n}");
    }
}

#[cfg(test)]
mod tests;
