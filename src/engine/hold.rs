//! The reload guard: when a new configuration would delete more
//! than `max_deletes_per_run` snapshots of a target at its first run, the
//! daemon holds that target's deletions (a row in the ledger) until the
//! operator confirms with `snapwarden prune --policy P --yes`.
//!
//! The same guard runs at start-up: the ledger remembers the
//! rules each policy last ran with, so a restart with an edited file is
//! compared like a reload. A selector policy's targets are those the
//! ledger knows (its latest slot's), as well as the explicit ones.
//!
//! The plan is worked out from the ledger alone (no cloud call during a
//! reload), with the same retention code. One candidate stands for one
//! run (slot), so an instance target's several volume snapshots count
//! together; chains are not known to the ledger, which can only make the
//! estimate larger (more cautious), never smaller.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, warn};

use super::{Engine, EngineError};
use crate::config::{Config, Policy};
use crate::observe::events::{self, HoldPlaced};
use crate::retention::{self, Candidate, Condition, Rules, Verdict};
use crate::state::LedgerState;

/// A target whose deletions were just held, for the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedHold {
    pub policy: String,
    pub target: String,
    pub provider: String,
    /// Why, and how to go on (the alert's message).
    pub message: String,
}

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
    pub async fn reload_plan(
        &self,
        old: Option<&Rules>,
        new: &Policy,
        target: &str,
    ) -> Result<ReloadPlan, EngineError> {
        let rows = self
            .state
            .live_snapshots(&new.provider, &new.name, target)
            .await?;
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
                // Holds only ever keep more: without them this counts
                // deletes high, which errs on the side of holding a reload.
                held: None,
            })
            .collect();
        let deleted_slots = |rules: &Rules| -> Vec<DateTime<Utc>> {
            retention::decide(&candidates, rules)
                .into_iter()
                .filter(|d| d.verdict == Verdict::Delete)
                .filter_map(|d| {
                    DateTime::parse_from_rfc3339(&d.id)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                })
                .collect()
        };
        let new_slots = deleted_slots(&new.rules);
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

impl Engine {
    /// Hold the deletions of every target whose first run under `new`
    /// would delete more than `max_deletes_per_run`, logging the plan
    /// diff; then remember `new`'s rules in the ledger.
    ///
    /// After a reload `running` is the configuration in force until now.
    /// At start-up it is `None` and each policy is compared with the rules
    /// the ledger last ran it with: unchanged (or never recorded: a first
    /// start, an upgrade) holds nothing, changed is planned like a reload.
    /// Nothing here stops the daemon: a ledger error is logged, and the
    /// per-run budget still caps every run.
    pub async fn hold_changed_rules(
        &self,
        running: Option<&Config>,
        new: &Config,
    ) -> Vec<PlacedHold> {
        let recorded = match running {
            Some(_) => Default::default(),
            None => match self.state.policy_rules().await {
                Ok(r) => r,
                Err(e) => {
                    error!(error = %e, "cannot read the rules the ledger last ran with; no start-up hold computed");
                    Default::default()
                }
            },
        };
        let summaries = match self.state.summaries().await {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot read the ledger's targets; holds cover explicit targets only");
                Vec::new()
            }
        };
        let mut placed = Vec::new();
        for p in &new.policies {
            let before: Option<Rules> = match running {
                Some(old) => old
                    .policies
                    .iter()
                    .find(|o| o.name == p.name)
                    .map(|o| o.rules),
                None => match recorded.get(&p.name) {
                    None => continue,
                    Some(text) if *text == encode_rules(&p.rules) => continue,
                    Some(text) => match decode_rules(text) {
                        Some(r) => Some(r),
                        None => {
                            warn!(policy = %p.name, "the rules recorded in the ledger cannot be read; planning as for a new policy");
                            None
                        }
                    },
                },
            };
            for t in &super::ledger_targets(p, &summaries) {
                if let Some(hold) = self
                    .hold_one(p, before.as_ref(), t, running.is_some())
                    .await
                {
                    placed.push(hold);
                }
            }
        }
        let rules: Vec<(String, String, String)> = new
            .policies
            .iter()
            .map(|p| (p.name.clone(), p.provider.clone(), encode_rules(&p.rules)))
            .collect();
        let rows: Vec<(&str, &str, &str)> = rules
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        if let Err(e) = self.state.record_policy_rules(&rows, Utc::now()).await {
            error!(error = %e, "cannot record the rules in force; the next start compares with older ones");
        }
        placed
    }

    async fn hold_one(
        &self,
        p: &Policy,
        before: Option<&Rules>,
        t: &str,
        reload: bool,
    ) -> Option<PlacedHold> {
        let plan = match self.reload_plan(before, p, t).await {
            Ok(plan) => plan,
            Err(e) => {
                error!(policy = %p.name, target = %t, error = %e, "cannot work out what the new rules delete");
                return None;
            }
        };
        if !plan.exceeds(p) {
            return None;
        }
        for (id, slot) in &plan.newly_deleted {
            warn!(policy = %p.name, target = %t, snapshot = %id, slot = %slot, "reload: the new rules delete this snapshot, the old ones kept it");
        }
        let what = if reload {
            "the reloaded configuration"
        } else {
            "the configuration changed since the last start and"
        };
        let reason = format!(
            "{what} deletes {} snapshots at the next run (before: {}), more than max_deletes_per_run = {}",
            plan.deletes.len(),
            plan.old_deletes,
            p.max_deletes_per_run
        );
        if let Err(e) = self
            .state
            .hold_deletes(&p.name, t, &reason, Utc::now())
            .await
        {
            // Without a recorded hold the budget still caps each run.
            error!(policy = %p.name, target = %t, error = %e, "cannot record the deletion hold");
            return None;
        }
        events::emit(HoldPlaced {
            policy: &p.name,
            target: t,
            reason: &reason,
        });
        Some(PlacedHold {
            policy: p.name.clone(),
            target: t.to_string(),
            provider: p.provider.clone(),
            message: format!(
                "{reason}; deletions held until `snapwarden prune --policy {} --yes`",
                p.name
            ),
        })
    }
}

/// The rules as one stable line, for the ledger.
pub(crate) fn encode_rules(r: &Rules) -> String {
    let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "retain={};hourly={};daily={};weekly={};monthly={};yearly={};within_ms={};min_keep={};tz={}",
        n(r.retain),
        n(r.keep_hourly),
        n(r.keep_daily),
        n(r.keep_weekly),
        n(r.keep_monthly),
        n(r.keep_yearly),
        r.keep_within
            .map(|d| d.as_millis().to_string())
            .unwrap_or_default(),
        r.min_keep,
        r.tz.name()
    )
}

/// [`encode_rules`] read back; `None` for a line it did not write.
pub(crate) fn decode_rules(text: &str) -> Option<Rules> {
    let fields: BTreeMap<&str, &str> = text.split(';').filter_map(|f| f.split_once('=')).collect();
    let n = |k: &str| -> Option<Option<u32>> {
        match *fields.get(k)? {
            "" => Some(None),
            v => v.parse().ok().map(Some),
        }
    };
    let within = match *fields.get("within_ms")? {
        "" => None,
        v => Some(Duration::from_millis(v.parse().ok()?)),
    };
    Some(Rules {
        retain: n("retain")?,
        keep_hourly: n("hourly")?,
        keep_daily: n("daily")?,
        keep_weekly: n("weekly")?,
        keep_monthly: n("monthly")?,
        keep_yearly: n("yearly")?,
        keep_within: within,
        min_keep: fields.get("min_keep")?.parse().ok()?,
        tz: fields.get("tz")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_survive_the_ledger_round_trip() {
        let mut r = Rules::count(7);
        assert_eq!(decode_rules(&encode_rules(&r)), Some(r));
        r.keep_daily = Some(14);
        r.keep_within = Some(Duration::from_secs(3600 * 48));
        r.min_keep = 3;
        r.tz = chrono_tz::Europe::Berlin;
        r.retain = None;
        let text = encode_rules(&r);
        assert_eq!(decode_rules(&text), Some(r));
        assert_ne!(text, encode_rules(&Rules::count(7)));
        assert_eq!(decode_rules("retain=7"), None);
        assert_eq!(decode_rules(""), None);
    }
}
