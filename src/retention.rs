//! Retention: which of a target's snapshots to keep and which to delete,
//! each with its reasons. A pure function — no I/O, no clock — so that
//! `plan`, `prune --dry-run` and the engine all see the same decisions.
//!
//! Guarantees, whatever the input:
//! - only own snapshots are ever deleted;
//! - snapshots that are not good (in progress, failed) are never deleted
//!   and never count towards `retain`;
//! - the newest good own snapshot is never deleted;
//! - a snapshot on which a kept or foreign snapshot depends (incremental
//!   chains) is kept, so deleting never breaks a chain that still matters.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::providers::ChainInfo;

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
}

/// The rules of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Keep the newest `retain` good own snapshots (at least 1).
    pub retain: u32,
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

/// Decide for every candidate. The answer lists the candidates newest
/// first; deletions appear in a safe order (dependants before the snapshot
/// they depend on).
pub fn decide(candidates: &[Candidate], rules: &Rules) -> Vec<Decision> {
    let retain = rules.retain.max(1) as usize;
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });

    let mut reasons: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    let mut good_rank = 0usize;
    for c in &order {
        let r = reasons.entry(c.id.as_str()).or_default();
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
            Condition::Good => {
                good_rank += 1;
                if good_rank == 1 {
                    r.push("newest good snapshot".into());
                }
                if good_rank <= retain {
                    r.push(format!("retain: {good_rank} of {retain} newest"));
                    keep.insert(&c.id);
                }
            }
        }
    }

    // Chains: whatever is kept keeps its ancestors (so it stays restorable);
    // repeat until nothing changes.
    let by_id: BTreeMap<&str, &Candidate> = order.iter().map(|c| (c.id.as_str(), *c)).collect();
    loop {
        let mut added = Vec::new();
        for id in &keep {
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

    // Deletions: dependants first (deepest increments), then newest first.
    let depth = |c: &Candidate| -> usize {
        let mut d = 0;
        let mut cur = c;
        while let Some(parent) = cur.chain.as_ref().and_then(|ch| ch.parent_id.as_deref()) {
            match by_id.get(parent) {
                Some(p) if d < candidates.len() => {
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
                r.push(format!("beyond retain = {retain}"));
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
        let ds = decide(&cs, &Rules { retain: 2 });
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
        let ds = decide(&cs, &Rules { retain: 1 });
        assert_eq!(deleted(&ds), vec!["a"]);
        let v = verdicts(&ds);
        assert_eq!(v["m"], Verdict::Keep);
        assert_eq!(v["p"], Verdict::Keep);
        assert_eq!(v["f"], Verdict::Keep);
        assert_eq!(v["b"], Verdict::Keep);
    }

    #[test]
    fn retain_zero_still_keeps_the_newest_good() {
        let ds = decide(&[own("a", 1), own("b", 2)], &Rules { retain: 0 });
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
        let ds = decide(&cs, &Rules { retain: 2 });
        assert_eq!(deleted(&ds), vec!["i2", "i1", "f1"]);
        // retain 3 keeps i2, so its ancestors i1 and f1 stay too.
        let ds = decide(&cs, &Rules { retain: 3 });
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
        let ds = decide(&cs, &Rules { retain: 1 });
        assert!(deleted(&ds).is_empty(), "{ds:?}");
    }
}
