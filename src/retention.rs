//! Retention: which of a target's snapshots to keep and which to delete,
//! each with its reasons. A pure function — no I/O, no clock — so that
//! `plan`, `prune --dry-run` and the engine all see the same decisions.
//!
//! Guarantees, whatever the input:
//! - only own snapshots are ever deleted;
//! - snapshots that are not good (in progress, failed) are never deleted
//!   and never count towards `retain`;
//! - the newest good own snapshot is never deleted;
//! - a held snapshot (an operator's hold) is never deleted and never
//!   counts towards `retain` or any other rule;
//! - a snapshot on which a kept or foreign snapshot depends (incremental
//!   chains) is kept, so deleting never breaks a chain that still matters.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::ChainInfo;
pub use crate::domain::Rules;
use crate::schedule::period_label;

/// A snapshot's condition as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Complete and restorable.
    Good,
    /// Still being created (or deleted): never touched.
    InProgress,
    /// Ended in failure: never counted as good.
    Failed,
}

/// One snapshot of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub condition: Condition,
    /// Made by this policy (ledger and provider-side marker agree).
    pub own: bool,
    pub chain: Option<ChainInfo>,
    /// Held by an operator: why (the hold's own words). Kept, outside
    /// the rules.
    pub held: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Delete,
}

/// What retention decided for one snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

fn note<'a>(reasons: &mut BTreeMap<&'a str, Vec<String>>, c: &'a Candidate, why: String) {
    reasons.entry(c.id.as_str()).or_default().push(why);
}

/// Decide for every candidate. The answer lists the candidates newest
/// first; deletions appear in a safe order (dependants before the snapshot
/// they depend on).
pub fn decide(candidates: &[Candidate], rules: &Rules) -> Vec<Decision> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    let mut reasons: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let (mut keep, goods) = sort_out(&order, &mut reasons);
    let kept_good = keep_good(&goods, rules, &mut reasons);
    for c in &goods {
        if kept_good.contains(&c.id) {
            keep.insert(&c.id);
        }
    }
    let by_id: BTreeMap<&str, &Candidate> = order.iter().map(|c| (c.id.as_str(), *c)).collect();
    keep_ancestors(&by_id, &mut keep, &mut reasons);
    deletion_order(&order, &by_id, &keep, reasons)
}

/// What is kept whatever the rules say (not ours, in progress, failed),
/// and the good own snapshots the rules count, newest first.
fn sort_out<'a>(
    order: &[&'a Candidate],
    reasons: &mut BTreeMap<&'a str, Vec<String>>,
) -> (BTreeSet<&'a str>, Vec<&'a Candidate>) {
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    let mut goods: Vec<&Candidate> = Vec::new();
    for c in order {
        let r = reasons.entry(c.id.as_str()).or_default();
        if let Some(why) = &c.held {
            r.push(why.clone());
            keep.insert(&c.id);
            continue;
        }
        if !c.own {
            r.push("not made by this policy".into());
            keep.insert(&c.id);
            continue;
        }
        match c.condition {
            Condition::InProgress => {
                r.push("in progress".into());
                keep.insert(&c.id);
            }
            Condition::Failed => {
                r.push("failed snapshot: not counted, left for inspection".into());
                keep.insert(&c.id);
            }
            Condition::Good => goods.push(c),
        }
    }
    (keep, goods)
}

/// The good snapshots some rule keeps, each rule noting why: the newest,
/// `retain`, the period rules, `keep_within`, then `min_keep`'s floor.
fn keep_good<'a>(
    goods: &[&'a Candidate],
    rules: &Rules,
    reasons: &mut BTreeMap<&'a str, Vec<String>>,
) -> BTreeSet<String> {
    let mut kept_good: BTreeSet<String> = BTreeSet::new();
    if let Some(newest) = goods.first() {
        note(reasons, newest, "newest good snapshot".into());
        kept_good.insert(newest.id.clone());
    }
    if let Some(n) = rules.retain {
        for (i, c) in goods.iter().take(n as usize).enumerate() {
            note(reasons, c, format!("retain: {} of {n} newest", i + 1));
            kept_good.insert(c.id.clone());
        }
    }
    for (period, n) in rules.periods() {
        let mut last: Option<String> = None;
        let mut count = 0;
        for c in goods {
            let label = period_label(c.created_at, rules.tz, period);
            if last.as_deref() == Some(label.as_str()) {
                continue;
            }
            if count == n {
                break;
            }
            count += 1;
            note(
                reasons,
                c,
                format!("{} {label} ({count} of {n})", period.name()),
            );
            kept_good.insert(c.id.clone());
            last = Some(label);
        }
    }
    if let (Some(within), Some(newest)) = (rules.keep_within, goods.first()) {
        let horizon =
            newest.created_at - chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
        for c in goods.iter().filter(|c| c.created_at >= horizon) {
            note(
                reasons,
                c,
                format!(
                    "within {} of the newest",
                    humantime::format_duration(within)
                ),
            );
            kept_good.insert(c.id.clone());
        }
    }
    let floor = rules.min_keep.max(1) as usize;
    for c in goods
        .iter()
        .filter(|c| !kept_good.contains(&c.id))
        .take(floor.saturating_sub(kept_good.len()))
        .copied()
        .collect::<Vec<_>>()
    {
        note(reasons, c, format!("min_keep = {floor}"));
        kept_good.insert(c.id.clone());
    }
    kept_good
}

/// Chains: whatever is kept keeps its ancestors (so it stays restorable);
/// repeat until nothing changes.
fn keep_ancestors<'a>(
    by_id: &BTreeMap<&'a str, &'a Candidate>,
    keep: &mut BTreeSet<&'a str>,
    reasons: &mut BTreeMap<&'a str, Vec<String>>,
) {
    loop {
        let mut added = Vec::new();
        for id in keep.iter() {
            let Some(c) = by_id.get(id) else { continue };
            let Some(chain) = &c.chain else { continue };
            if let Some(parent) = chain.parent_id.as_deref() {
                let parent = if by_id.contains_key(parent) {
                    parent
                } else {
                    chain.root_id.as_str()
                };
                if by_id.contains_key(parent) && !keep.contains(parent) {
                    added.push((parent, *id));
                }
            }
        }
        if added.is_empty() {
            break;
        }
        for (parent, child) in added {
            let child_own = by_id.get(child).is_some_and(|c| c.own);
            let why = if child_own {
                format!("{child} is an increment of it")
            } else {
                format!("{child} (not ours) depends on it")
            };
            reasons.entry(parent).or_default().push(why);
            if let Some((k, _)) = by_id.get_key_value(parent) {
                keep.insert(k);
            }
        }
    }
}

/// The decisions, newest first, with deletions in a safe order:
/// dependants first (deepest increments), then newest first.
fn deletion_order(
    order: &[&Candidate],
    by_id: &BTreeMap<&str, &Candidate>,
    keep: &BTreeSet<&str>,
    mut reasons: BTreeMap<&str, Vec<String>>,
) -> Vec<Decision> {
    let depth = |c: &Candidate| -> usize {
        let mut d = 0;
        let mut cur = c;
        while let Some(parent) = cur.chain.as_ref().and_then(|ch| ch.parent_id.as_deref()) {
            match by_id.get(parent) {
                Some(p) if d < order.len() => {
                    d += 1;
                    cur = p;
                }
                _ => break,
            }
        }
        d
    };
    let mut out: Vec<Decision> = order
        .iter()
        .map(|c| {
            let mut r = reasons.remove(c.id.as_str()).unwrap_or_default();
            let verdict = if keep.contains(c.id.as_str()) {
                Verdict::Keep
            } else {
                r.push("kept by no rule".to_string());
                Verdict::Delete
            };
            Decision {
                id: c.id.clone(),
                verdict,
                reasons: r,
            }
        })
        .collect();
    let depths: BTreeMap<String, usize> = order.iter().map(|c| (c.id.clone(), depth(c))).collect();
    out.sort_by_key(|d| {
        (
            d.verdict == Verdict::Keep,
            std::cmp::Reverse(depths.get(&d.id).copied().unwrap_or(0)),
        )
    });
    // The sort is stable: within each group, newest first as before.
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Tz;
    use std::time::Duration;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0)
            .single()
            .expect("valid day")
    }

    fn own(id: &str, day: u32) -> Candidate {
        Candidate {
            id: id.into(),
            created_at: at(day),
            condition: Condition::Good,
            own: true,
            chain: None,
            held: None,
        }
    }

    fn verdicts(ds: &[Decision]) -> BTreeMap<String, Verdict> {
        ds.iter().map(|d| (d.id.clone(), d.verdict)).collect()
    }

    fn deleted(ds: &[Decision]) -> Vec<&str> {
        ds.iter()
            .filter(|d| d.verdict == Verdict::Delete)
            .map(|d| d.id.as_str())
            .collect()
    }

    #[test]
    fn keeps_the_newest_retain_and_deletes_the_rest_oldest_last() {
        let cs = vec![own("a", 1), own("b", 2), own("c", 3), own("d", 4)];
        let ds = decide(&cs, &Rules::count(2));
        assert_eq!(deleted(&ds), vec!["b", "a"]);
        let d = ds.iter().find(|d| d.id == "d").expect("d");
        assert!(d.reasons.iter().any(|r| r == "newest good snapshot"));
    }

    #[test]
    fn foreign_in_progress_and_failed_are_never_deleted_nor_counted() {
        let mut manual = own("m", 1);
        manual.own = false;
        let mut pending = own("p", 9);
        pending.condition = Condition::InProgress;
        let mut failed = own("f", 8);
        failed.condition = Condition::Failed;
        let cs = vec![manual, own("a", 2), own("b", 3), pending, failed];
        let ds = decide(&cs, &Rules::count(1));
        assert_eq!(deleted(&ds), vec!["a"]);
        let v = verdicts(&ds);
        assert_eq!(v["m"], Verdict::Keep);
        assert_eq!(v["p"], Verdict::Keep);
        assert_eq!(v["f"], Verdict::Keep);
        assert_eq!(v["b"], Verdict::Keep);
    }

    #[test]
    fn retain_zero_still_keeps_the_newest_good() {
        let ds = decide(&[own("a", 1), own("b", 2)], &Rules::count(0));
        assert_eq!(deleted(&ds), vec!["a"]);
    }

    fn chained(id: &str, day: u32, root: &str, parent: Option<&str>) -> Candidate {
        let mut c = own(id, day);
        c.chain = Some(ChainInfo {
            full: parent.is_none(),
            root_id: root.into(),
            parent_id: parent.map(Into::into),
        });
        c
    }

    fn held(mut c: Candidate) -> Candidate {
        c.held = Some(format!(
            "held until released, by ann, because case {}",
            c.id
        ));
        c
    }

    #[test]
    fn a_held_snapshot_is_kept_and_counts_towards_no_rule() {
        let cs = vec![own("a", 5), held(own("b", 4)), own("c", 3), own("d", 2)];
        let ds = decide(&cs, &Rules::count(2));
        // Without the hold, retain 2 would keep a and b and delete c.
        assert_eq!(deleted(&ds), vec!["d"]);
        let b = ds.iter().find(|d| d.id == "b").expect("b");
        assert_eq!(b.verdict, Verdict::Keep);
        assert_eq!(
            b.reasons,
            vec!["held until released, by ann, because case b"]
        );
        assert!(
            ds.iter()
                .find(|d| d.id == "c")
                .is_some_and(|d| d.reasons.iter().any(|r| r.starts_with("retain: 2 of 2"))),
            "{ds:?}"
        );
    }

    #[test]
    fn a_held_snapshot_is_kept_whatever_its_state_and_even_when_newest() {
        let mut failed = own("f", 6);
        failed.condition = Condition::Failed;
        let mut foreign = own("x", 1);
        foreign.own = false;
        let cs = vec![
            held(own("n", 7)),
            held(failed),
            own("a", 5),
            own("b", 4),
            held(foreign),
        ];
        let ds = decide(&cs, &Rules::count(1));
        // The newest good one not held is the newest that counts.
        assert_eq!(deleted(&ds), vec!["b"]);
        for id in ["n", "f", "x"] {
            let d = ds.iter().find(|d| d.id == id).expect("decision");
            assert!(d.reasons[0].starts_with("held until"), "{d:?}");
        }
    }

    #[test]
    fn a_held_increment_keeps_the_chain_it_needs() {
        let cs = vec![
            chained("f1", 1, "f1", None),
            held(chained("i1", 2, "f1", Some("f1"))),
            chained("i2", 3, "f1", Some("i1")),
            chained("f2", 4, "f2", None),
        ];
        let ds = decide(&cs, &Rules::count(1));
        // i2 depends on nothing kept and goes; f1 stays under the held i1.
        assert_eq!(deleted(&ds), vec!["i2"]);
        let f1 = ds.iter().find(|d| d.id == "f1").expect("f1");
        assert_eq!(f1.verdict, Verdict::Keep, "{ds:?}");
    }

    #[test]
    fn chains_go_whole_or_stay() {
        // Chain 1: f1 <- i1 <- i2 ; chain 2: f2 <- i3.
        let cs = vec![
            chained("f1", 1, "f1", None),
            chained("i1", 2, "f1", Some("f1")),
            chained("i2", 3, "f1", Some("i1")),
            chained("f2", 4, "f2", None),
            chained("i3", 5, "f2", Some("f2")),
        ];
        // retain 2 keeps i3 and f2; chain 1 goes, deepest first.
        let ds = decide(&cs, &Rules::count(2));
        assert_eq!(deleted(&ds), vec!["i2", "i1", "f1"]);
        // retain 3 keeps i2, so its ancestors i1 and f1 stay too.
        let ds = decide(&cs, &Rules::count(3));
        assert!(deleted(&ds).is_empty());
        let f1 = ds.iter().find(|d| d.id == "f1").expect("f1");
        assert!(
            f1.reasons.iter().any(|r| r.contains("increment")),
            "{:?}",
            f1.reasons
        );
    }

    #[test]
    fn a_foreign_increment_protects_its_parent() {
        let mut manual = chained("m", 3, "f1", Some("f1"));
        manual.own = false;
        let cs = vec![chained("f1", 1, "f1", None), manual, own("n", 4)];
        let ds = decide(&cs, &Rules::count(1));
        assert!(deleted(&ds).is_empty(), "{ds:?}");
    }

    fn at_utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    fn good(id: &str, t: &str) -> Candidate {
        Candidate {
            id: id.into(),
            created_at: at_utc(t),
            condition: Condition::Good,
            own: true,
            chain: None,
            held: None,
        }
    }

    fn rules() -> Rules {
        Rules {
            retain: None,
            min_keep: 1,
            ..Rules::count(1)
        }
    }

    fn kept(ds: &[Decision]) -> Vec<&str> {
        let mut v: Vec<&str> = ds
            .iter()
            .filter(|d| d.verdict == Verdict::Keep)
            .map(|d| d.id.as_str())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn gfs_table() {
        struct Case {
            name: &'static str,
            rules: Rules,
            snaps: Vec<Candidate>,
            keep: Vec<&'static str>,
        }
        let ny: Tz = "America/New_York".parse().expect("zone");
        let cases = vec![
            Case {
                name: "daily keeps the newest of each of the last 2 days",
                rules: Rules {
                    keep_daily: Some(2),
                    ..rules()
                },
                snaps: vec![
                    good("d1a", "2026-03-01T01:00:00Z"),
                    good("d1b", "2026-03-01T23:00:00Z"),
                    good("d2a", "2026-03-02T01:00:00Z"),
                    good("d2b", "2026-03-02T13:00:00Z"),
                    good("d3", "2026-03-03T01:00:00Z"),
                ],
                keep: vec!["d2b", "d3"],
            },
            Case {
                name: "days are local: 03:30 UTC on 9 March is 8 March in New York",
                rules: Rules {
                    keep_daily: Some(2),
                    tz: ny,
                    ..rules()
                },
                snaps: vec![
                    good("a", "2026-03-08T12:00:00Z"),
                    good("b", "2026-03-09T03:30:00Z"), // 23:30 EDT on the 8th
                    good("c", "2026-03-09T12:00:00Z"),
                ],
                keep: vec!["b", "c"],
            },
            Case {
                name: "monthly across month ends and a leap day",
                rules: Rules {
                    keep_monthly: Some(3),
                    ..rules()
                },
                snaps: vec![
                    good("jan31", "2028-01-31T23:59:59Z"),
                    good("feb28", "2028-02-28T10:00:00Z"),
                    good("feb29", "2028-02-29T10:00:00Z"),
                    good("mar1", "2028-03-01T00:00:00Z"),
                    good("dec31", "2027-12-31T12:00:00Z"),
                ],
                keep: vec!["feb29", "jan31", "mar1"],
            },
            Case {
                name: "weekly uses ISO weeks across the DST change",
                rules: Rules {
                    keep_weekly: Some(2),
                    tz: ny,
                    ..rules()
                },
                snaps: vec![
                    good("w10-sun", "2026-03-08T15:00:00Z"), // Sunday, DST day, ISO week 10
                    good("w11-mon", "2026-03-09T15:00:00Z"),
                    good("w11-sun", "2026-03-15T15:00:00Z"),
                    good("w9", "2026-03-01T15:00:00Z"),
                ],
                keep: vec!["w10-sun", "w11-sun"],
            },
            Case {
                name: "yearly with keep_within from the newest, not from now",
                rules: Rules {
                    keep_yearly: Some(2),
                    keep_within: Some(Duration::from_secs(2 * 86_400)),
                    ..rules()
                },
                snaps: vec![
                    good("y2024", "2024-06-01T00:00:00Z"),
                    good("y2025a", "2025-01-01T00:00:00Z"),
                    good("y2025b", "2025-12-30T00:00:00Z"),
                    good("y2025c", "2025-12-31T00:00:00Z"),
                ],
                keep: vec!["y2024", "y2025b", "y2025c"],
            },
            Case {
                name: "min_keep is a floor",
                rules: Rules {
                    keep_daily: Some(1),
                    min_keep: 3,
                    ..rules()
                },
                snaps: vec![
                    good("a", "2026-01-01T01:00:00Z"),
                    good("b", "2026-01-01T02:00:00Z"),
                    good("c", "2026-01-01T03:00:00Z"),
                    good("d", "2026-01-01T04:00:00Z"),
                ],
                keep: vec!["b", "c", "d"],
            },
        ];
        for case in cases {
            let ds = decide(&case.snaps, &case.rules);
            let mut want = case.keep.clone();
            want.sort();
            assert_eq!(kept(&ds), want, "{}: {ds:#?}", case.name);
            // Every decision says why.
            assert!(ds.iter().all(|d| !d.reasons.is_empty()), "{}", case.name);
        }
    }

    #[test]
    fn describe_lists_the_rules() {
        let r = Rules {
            keep_daily: Some(7),
            keep_within: Some(Duration::from_secs(3600)),
            ..Rules::count(3)
        };
        assert_eq!(r.describe(), "retain 3, daily 7, within 1h");
        assert!(!r.is_empty());
        assert!(Rules {
            retain: None,
            ..Rules::count(1)
        }
        .is_empty());
    }
}
