//! The reload guard (issue 9): when a new configuration would delete more
//! than `max_deletes_per_run` snapshots of a target at its first run, the
//! daemon holds that target's deletions (a row in the ledger) until the
//! operator confirms with `snapwarden prune --policy P --yes`.
//!
//! The plan is worked out from the ledger alone (no cloud call during a
//! reload), with the same retention code. One candidate stands for one
//! run (slot), so an instance target's several volume snapshots count
//! together; chains are not known to the ledger, which can only make the
//! estimate larger (more cautious), never smaller.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError};
use crate::config::Policy;
use crate::retention::{self, Candidate, Condition, Verdict};
use crate::state::LedgerState;

/// What a reload changes for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Snapshots the new rules delete at the target's next run.
    pub deletes: Vec<String>,
    /// How many the old rules would have deleted.
    pub old_deletes: usize,
    /// Snapshots the new rules delete that the old ones kept, with their
    /// slot: the plan diff an operator should see.
    pub newly_deleted: Vec<(String, DateTime<Utc>)>,
}

impl ReloadPlan {
    /// Whether the new rules delete more than the budget at once.
    pub fn exceeds(&self, policy: &Policy) -> bool {
        self.deletes.len() > policy.max_deletes_per_run as usize
    }
}

impl Engine {
    /// The deletes `new` makes on `target` at its next run, against what
    /// `old` (the running configuration's policy, if any) would make.
    pub fn reload_plan(
        &self,
        old: Option<&Policy>,
        new: &Policy,
        target: &str,
    ) -> Result<ReloadPlan, EngineError> {
        let rows = self
            .state
            .live_snapshots(&new.provider, &new.name, target)?;
        let mut by_slot: BTreeMap<DateTime<Utc>, (Condition, DateTime<Utc>, Vec<String>)> =
            BTreeMap::new();
        for r in &rows {
            let cond = match r.state {
                LedgerState::Available => Condition::Good,
                LedgerState::Failed => Condition::Failed,
                _ => Condition::InProgress,
            };
            let e = by_slot
                .entry(r.slot)
                .or_insert((Condition::Good, r.created_at, Vec::new()));
            if cond != Condition::Good {
                e.0 = cond;
            }
            e.1 = e.1.min(r.created_at);
            e.2.push(r.snapshot_id.clone());
        }
        let candidates: Vec<Candidate> = by_slot
            .iter()
            .map(|(slot, (cond, created, _))| Candidate {
                id: slot.to_rfc3339(),
                created_at: *created,
                condition: *cond,
                own: true,
                chain: None,
            })
            .collect();
        let deleted_slots = |p: &Policy| -> Vec<DateTime<Utc>> {
            retention::decide(&candidates, &p.rules())
                .into_iter()
                .filter(|d| d.verdict == Verdict::Delete)
                .filter_map(|d| {
                    DateTime::parse_from_rfc3339(&d.id)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                })
                .collect()
        };
        let new_slots = deleted_slots(new);
        let old_slots = old.map(deleted_slots).unwrap_or_default();
        let ids = |slots: &[DateTime<Utc>]| -> Vec<(String, DateTime<Utc>)> {
            slots
                .iter()
                .flat_map(|s| {
                    by_slot
                        .get(s)
                        .map(|(_, _, ids)| ids.iter().map(|i| (i.clone(), *s)).collect::<Vec<_>>())
                        .unwrap_or_default()
                })
                .collect()
        };
        let deletes: Vec<String> = ids(&new_slots).into_iter().map(|(i, _)| i).collect();
        let old_ids = ids(&old_slots);
        let newly_deleted = ids(&new_slots)
            .into_iter()
            .filter(|(i, _)| !old_ids.iter().any(|(o, _)| o == i))
            .collect();
        Ok(ReloadPlan {
            deletes,
            old_deletes: old_ids.len(),
            newly_deleted,
        })
    }
}
