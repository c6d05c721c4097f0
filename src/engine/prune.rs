//! Pruning one target: reconcile the ledger with the cloud, ask retention,
//! hold what must wait, then delete in a safe order within the budget.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::{poll_plan, Engine, EngineError, OpOutcome, ProviderSlot, PruneMode, PruneReport};
use crate::config::Policy;
use crate::domain::{Held, HoldCause};
use crate::observe::events::{
    self, AlreadyGone, BudgetExceeded, DeleteFailed, HoldLifted, HoldState,
};
use crate::providers::{DeleteStarted, ErrorKind, ProviderError, RemoteSnapshot, SnapshotState};
use crate::retention::{self, Candidate, Condition, Verdict};
use crate::state::{AuditAction, LedgerState, SnapshotHold, SnapshotRow};

/// A delete claim lasts this much past the deadline of the deletes it
/// covers (the request under way at the deadline).
const CLAIM_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

impl Engine {
    /// Retention for one target: list, decide, and (unless a dry run)
    /// delete what may go now, following each delete to its end. A
    /// budgeted prune deletes at most `max_deletes_per_run`; the operator's
    /// confirmed prune (`prune --yes`) has no budget, but every other guard
    /// still holds.
    pub async fn prune(
        &self,
        policy: &Policy,
        target: &str,
        mode: PruneMode,
    ) -> Result<PruneReport, EngineError> {
        let ps = self.slot(policy)?;
        self.prune_with(&ps, policy, target, mode).await
    }

    pub(super) async fn prune_with(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        mode: PruneMode,
    ) -> Result<PruneReport, EngineError> {
        let dry_run = mode == PruneMode::DryRun;
        let deadline = policy.timing.deadline(Utc::now());
        let mut listed = self.list(ps, policy, target, deadline).await?;
        let ledger = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)
            .await?;

        if !dry_run {
            listed = self
                .reconcile_ledger(ps, policy, target, deadline, &ledger, listed)
                .await?;
        }
        let by_id: HashMap<&str, _> = ledger.iter().map(|r| (r.snapshot_id.as_str(), r)).collect();
        if !dry_run {
            self.record_sizes(policy, target, &listed, &by_id).await;
        }

        // Snapshots an operator holds are kept outside the rules.
        let now = Utc::now();
        let holds: Vec<SnapshotHold> = self
            .state
            .holds(now)
            .await?
            .into_iter()
            .filter(|h| h.policy == policy.name && h.target == target)
            .collect();
        let groups = candidates(&listed, &by_id, &holds, now);
        let rules = policy.rules;
        let mut report = PruneReport {
            decisions: groups
                .values()
                .flat_map(|g| retention::decide(g, &rules))
                .collect(),
            listed: if dry_run { listed.clone() } else { Vec::new() },
            ..Default::default()
        };
        let to_delete: Vec<String> = report
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
            .map(|d| d.id.clone())
            .collect();
        let hold = self.state.delete_hold(&policy.name, target).await?;
        // The operator's `prune --yes` goes past a reload's hold and the
        // deletion budget: what it confirmed goes in the audit trail.
        let (hold, confirmed) = match mode {
            PruneMode::Confirmed => (None, hold),
            _ => (hold, None),
        };
        if mode == PruneMode::Confirmed {
            self.audit_confirmed(policy, target, &to_delete, confirmed)
                .await;
        }
        if mode == PruneMode::Budgeted {
            events::emit(HoldState {
                policy: &policy.name,
                target,
                held: hold.is_some(),
            });
        }
        let (to_delete, held) = self.delete_allowance(
            policy,
            target,
            &groups,
            mode,
            hold.map(|h| h.reason),
            to_delete,
        );
        if let Some(waiting) = held {
            if !dry_run {
                warn!(policy = %policy.name, target, held = waiting.ids.len(), reason = %waiting.held.reason, "deletes held back");
            }
            report.held = waiting.ids;
            report.held_because = Some(waiting.held);
        }
        let (to_delete, mut report) = blackout_holds(policy, to_delete, report);
        if dry_run {
            return Ok(report);
        }

        self.delete_guarded(
            ps,
            policy,
            target,
            deadline,
            &groups,
            &by_id,
            to_delete,
            &mut report,
        )
        .await?;
        if mode == PruneMode::Confirmed
            && report.failed.is_empty()
            && report.held.is_empty()
            && self.state.release_deletes(&policy.name, target).await?
        {
            events::emit(HoldLifted {
                policy: &policy.name,
                target,
            });
        }
        Ok(report)
    }

    /// Record in the audit trail what an operator's `prune --yes`
    /// confirmed: the deletes a reload's hold or the deletion budget held
    /// back (nothing when neither held anything back).
    async fn audit_confirmed(
        &self,
        policy: &Policy,
        target: &str,
        to_delete: &[String],
        hold: Option<crate::state::DeleteHold>,
    ) {
        if to_delete.is_empty() {
            return;
        }
        let budget = policy.max_deletes_per_run as usize;
        let why = match hold {
            Some(h) => format!(
                "deletions held since {}: {}",
                h.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                h.reason
            ),
            None if to_delete.len() > budget => {
                format!("more than max_deletes_per_run = {budget}")
            }
            None => return,
        };
        let entry = crate::state::AuditEntry {
            snapshot: None,
            ..self.audit_entry(
                AuditAction::Confirm,
                &policy.name,
                target,
                "",
                format!(
                    "operator confirmed {} deletes of retention (`prune --yes`) past {why}",
                    to_delete.len()
                ),
            )
        };
        self.audit(vec![entry]).await;
    }

    /// Write off ledger rows the cloud no longer lists (deleted elsewhere),
    /// and answer the listing to prune by.
    async fn reconcile_ledger(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        deadline: DateTime<Utc>,
        ledger: &[SnapshotRow],
        listed: Vec<RemoteSnapshot>,
    ) -> Result<Vec<RemoteSnapshot>, EngineError> {
        // Ledger rows the cloud no longer lists were deleted elsewhere.
        // One listing is not proof: pages shift when snapshots come and
        // go while it is read, so a snapshot missing from it is written
        // off only if a second listing misses it too. If the two reads
        // disagree, the listing cannot be trusted and this target is
        // not pruned now.
        //
        // Only what the listing looked at can be missing from it: a row
        // is written off only when its source (volume) is one the
        // listing covers. A source that left the target (a volume
        // detached from an instance, a name now resolving elsewhere, a
        // changed `resource`) was not looked at; its snapshots stay in
        // the ledger, and `orphans` shows them. Each row's source is
        // learnt the first time a listing shows it.
        let mut sources = self
            .state
            .snapshot_sources(&policy.provider, &policy.name, target)
            .await?;
        let rows: HashMap<&str, i64> = ledger
            .iter()
            .map(|r| (r.snapshot_id.as_str(), r.id))
            .collect();
        let learnt: Vec<(i64, String)> = listed
            .iter()
            .filter(|s| s.state != SnapshotState::Gone)
            .filter_map(|s| {
                rows.get(s.id.as_str())
                    .filter(|id| sources.get(id) != Some(&s.source))
                    .map(|id| (*id, s.source.clone()))
            })
            .collect();
        if !learnt.is_empty() {
            let rows: Vec<(i64, &str)> =
                learnt.iter().map(|(id, src)| (*id, src.as_str())).collect();
            self.state.record_snapshot_sources(&rows).await?;
            sources.extend(learnt);
        }
        let missing = |listed: &[RemoteSnapshot]| -> Vec<&SnapshotRow> {
            let alive = || listed.iter().filter(|s| s.state != SnapshotState::Gone);
            let ids: std::collections::HashSet<&str> = alive().map(|s| s.id.as_str()).collect();
            let covered: std::collections::HashSet<&str> =
                alive().map(|s| s.source.as_str()).collect();
            ledger
                .iter()
                .filter(|r| {
                    r.state == LedgerState::Available
                        && !ids.contains(r.snapshot_id.as_str())
                        // Unknown source: a row not listed since it was
                        // recorded (older ledgers), judged as before.
                        && sources
                            .get(&r.id)
                            .is_none_or(|src| covered.contains(src.as_str()))
                })
                .collect()
        };
        let first: Vec<i64> = missing(&listed).iter().map(|r| r.id).collect();
        if !first.is_empty() {
            let again = self.list(ps, policy, target, deadline).await?;
            let second = missing(&again);
            let disagree = first
                .iter()
                .find(|id| !second.iter().any(|r| r.id == **id))
                .copied()
                .or_else(|| second.iter().map(|r| r.id).find(|id| !first.contains(id)));
            if let Some(back) = disagree {
                let snapshot = ledger
                    .iter()
                    .find(|r| r.id == back)
                    .map(|r| r.snapshot_id.as_str())
                    .unwrap_or_default();
                return Err(EngineError::Provider(ProviderError::new(
                    ErrorKind::Transient,
                    "list",
                    format!(
                        "two listings of {target} disagree (snapshot {snapshot} missing from one); not pruning it now"
                    ),
                )));
            }
            for row in second {
                warn!(policy = %policy.name, target, snapshot = %row.snapshot_id, "snapshot in the ledger is gone from the cloud (missing from two listings)");
                self.state.mark_deleted(row.id, Utc::now()).await?;
                self.audit(vec![self.audit_entry(
                    AuditAction::Delete,
                    &policy.name,
                    target,
                    &row.snapshot_id,
                    "gone from the cloud (deleted elsewhere: missing from two listings); written off in the ledger".to_string(),
                )])
                .await;
            }
            return Ok(again);
        }
        Ok(listed)
    }

    /// Delete `to_delete` in retention's order, re-checking every guard
    /// first (belt and braces), and count what happened in `report`.
    #[allow(clippy::too_many_arguments)]
    async fn delete_guarded(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        deadline: DateTime<Utc>,
        groups: &BTreeMap<&str, Vec<Candidate>>,
        by_id: &HashMap<&str, &SnapshotRow>,
        to_delete: Vec<String>,
        report: &mut PruneReport,
    ) -> Result<(), EngineError> {
        let newest_good: std::collections::HashSet<String> = groups
            .values()
            .filter_map(|g| {
                g.iter()
                    .filter(|c| c.own && c.condition == Condition::Good)
                    .max_by_key(|c| c.created_at)
                    .map(|c| c.id.clone())
            })
            .collect();
        let candidates: Vec<&Candidate> = groups.values().flatten().collect();
        // Incremental chains: delete one at a time, dependants first (the
        // order retention gives), so no delete meets a dependant still
        // being deleted. Independent snapshots are deleted side by side.
        let chained = candidates
            .iter()
            .any(|c| c.chain.as_ref().is_some_and(|ch| !ch.full));
        // A snapshot being restored from is not deleted under the restore.
        let restoring = self
            .state
            .snapshots_being_restored(&policy.provider, &policy.name, target)
            .await?;
        // Why retention deletes each: the audit trail's detail.
        let why: HashMap<String, String> = report
            .decisions
            .iter()
            .map(|d| {
                (
                    d.id.clone(),
                    format!(
                        "retention of policy {}: {}",
                        policy.name,
                        d.reasons.join("; ")
                    ),
                )
            })
            .collect();
        let mut waits = Vec::new();
        for (n, id) in to_delete.iter().enumerate() {
            if chained && !report.failed.is_empty() {
                // A chain stops at its first failed delete: the next one is
                // what the failed one depends on (retention's order), and
                // deleting it would break the survivor's chain (or, where
                // the cloud refuses, be retried until the timeout).
                let rest = to_delete[n..].to_vec();
                warn!(policy = %policy.name, target, held = rest.len(), "a delete in an incremental chain failed; the rest of the chain waits for the next run");
                report.held_because = Some(guard(format!(
                    "a delete in an incremental chain failed ({}); the {} snapshots it depends on are left for the next run",
                    report.failed.join("; "),
                    rest.len()
                )));
                report.held.extend(rest);
                break;
            }
            if restoring.contains(id) {
                warn!(policy = %policy.name, target, snapshot = %id, "not deleting a snapshot a restore is reading from");
                report.held.push(id.clone());
                report.held_because = Some(guard(format!("snapshot {id} is being restored from")));
                continue;
            }
            let Some(c) = candidates.iter().find(|c| &c.id == id) else {
                continue;
            };
            let Some(row) = by_id.get(id.as_str()) else {
                continue;
            };
            if !c.own || c.condition != Condition::Good || newest_good.contains(&c.id) {
                error!(policy = %policy.name, target, snapshot = %id, "refusing a delete that breaks a guard");
                continue;
            }
            if !self
                .claim_delete(policy, target, row.id, id, deadline)
                .await?
            {
                continue;
            }
            match self
                .delete_one(
                    ps,
                    policy,
                    target,
                    (row.id, id),
                    why.get(id.as_str())
                        .map_or("retention: kept by no rule", String::as_str),
                    deadline,
                )
                .await
            {
                Ok(Some(w)) => waits.push((id.clone(), w)),
                Ok(None) => report.deleted += 1,
                Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
                Err(e) => {
                    self.drop_delete_claim(row.id).await;
                    events::emit(DeleteFailed {
                        policy: &policy.name,
                        target,
                        provider: &policy.provider,
                        reason: e.reason(),
                    });
                    report.failed.push(format!("{id}: {e}"))
                }
            }
            if chained {
                self.collect_deletes(&mut waits, report).await?;
            }
        }
        self.collect_deletes(&mut waits, report).await?;
        Ok(())
    }

    /// Which of retention's deletes may go now, in retention's order
    /// (dependants before the snapshot they depend on, so any prefix is
    /// safe), and which are held back and why. Nothing goes while the
    /// newest own snapshot of a source is not good; beyond
    /// `max_deletes_per_run` nothing goes unless the operator confirmed.
    pub(super) fn delete_allowance(
        &self,
        policy: &Policy,
        target: &str,
        groups: &BTreeMap<&str, Vec<Candidate>>,
        mode: PruneMode,
        hold: Option<String>,
        mut to_delete: Vec<String>,
    ) -> (Vec<String>, Option<Waiting>) {
        if to_delete.is_empty() {
            return (to_delete, None);
        }
        if let Some(reason) = hold {
            let why = format!(
                "deletions held since a reload: {reason}; check the rules, then run \
                 `snapwarden prune --policy {} --yes`",
                policy.name
            );
            let held = Held {
                cause: HoldCause::Reload,
                reason: why,
            };
            return (
                Vec::new(),
                Some(Waiting {
                    ids: to_delete,
                    held,
                }),
            );
        }
        let not_good = groups
            .values()
            .filter_map(|g| g.iter().filter(|c| c.own).max_by_key(|c| c.created_at))
            .find(|c| c.condition != Condition::Good);
        if let Some(c) = not_good {
            let what = match c.condition {
                Condition::InProgress => "still in progress",
                _ => "failed",
            };
            let why = format!(
                "the newest own snapshot {} is {what}: nothing is pruned until a newer one is good",
                c.id
            );
            return (
                Vec::new(),
                Some(Waiting {
                    ids: to_delete,
                    held: guard(why),
                }),
            );
        }
        let budget = policy.max_deletes_per_run as usize;
        if mode == PruneMode::Confirmed || to_delete.len() <= budget {
            return (to_delete, None);
        }
        let wanted = to_delete.len();
        let held = to_delete.split_off(budget);
        if mode == PruneMode::Budgeted {
            events::emit(BudgetExceeded {
                policy: &policy.name,
                target,
            });
        }
        let why = format!(
            "retention wants to delete {wanted} snapshots, more than max_deletes_per_run = {budget}: \
             {budget} deleted, {} held back; check the rules, then run `snapwarden prune --policy {} --yes` \
             to delete the rest (or let the next runs delete {budget} at a time)",
            held.len(),
            policy.name
        );
        (
            to_delete,
            Some(Waiting {
                ids: held,
                held: guard(why),
            }),
        )
    }

    /// Wait for the deletes in flight and count their outcomes.
    pub(super) async fn collect_deletes(
        &self,
        waits: &mut Vec<(String, tokio::sync::oneshot::Receiver<OpOutcome>)>,
        report: &mut PruneReport,
    ) -> Result<(), EngineError> {
        for (id, w) in waits.drain(..) {
            match self.or_shutdown(w).await? {
                Ok(OpOutcome::Succeeded) => report.deleted += 1,
                Ok(OpOutcome::Failed(reason) | OpOutcome::TimedOut(reason)) => {
                    report.failed.push(format!("{id}: {reason}"))
                }
                Err(_) => return Err(EngineError::Shutdown),
            }
        }
        Ok(())
    }

    /// Claim ledger row `row` for deleting before the cloud is asked to
    /// (until the prune's deadline, and a minute more for the request
    /// under way then): false when an operator's hold covers it now (it
    /// was placed while this prune ran), and it is kept.
    pub(super) async fn claim_delete(
        &self,
        policy: &Policy,
        target: &str,
        row: i64,
        snapshot_id: &str,
        deadline: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        let until = deadline + CLAIM_MARGIN;
        let claimed = self.state.claim_deletes(&[row], until, Utc::now()).await?;
        if claimed.is_empty() {
            info!(policy = %policy.name, target, snapshot = %snapshot_id, "not deleting: an operator holds it now");
        }
        Ok(!claimed.is_empty())
    }

    /// The cloud did not take a delete: drop its claim, so an operator may
    /// hold the snapshot at once. A ledger that cannot take it only delays
    /// that until the claim ends.
    pub(super) async fn drop_delete_claim(&self, row: i64) {
        if let Err(e) = self.state.drop_delete_claim(row).await {
            warn!(row, error = %e, "cannot drop a delete claim; it ends by itself");
        }
    }

    pub(super) async fn delete_one(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        (row, snapshot_id): (i64, &str),
        why: &str,
        deadline: DateTime<Utc>,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<OpOutcome>>, EngineError> {
        let started = self
            .retrying(policy, deadline, "delete", || {
                ps.provider.delete(snapshot_id)
            })
            .await?;
        match started {
            DeleteStarted::AlreadyGone => {
                events::emit(AlreadyGone {
                    policy: &policy.name,
                    target,
                    provider: &policy.provider,
                    snapshot: snapshot_id,
                });
                self.state.mark_deleted(row, Utc::now()).await?;
                self.audit(vec![self.audit_entry(
                    AuditAction::Delete,
                    &policy.name,
                    target,
                    snapshot_id,
                    format!("{why} (already gone from the cloud)"),
                )])
                .await;
                Ok(None)
            }
            DeleteStarted::Tracking(reference) => {
                let now = Utc::now();
                let op = self
                    .state
                    .begin_delete(row, &reference, now, poll_plan(policy, now, deadline))
                    .await?;
                info!(policy = %policy.name, target, snapshot = %snapshot_id, job = %reference, "deleting snapshot");
                self.audit(vec![self.audit_entry(
                    AuditAction::Delete,
                    &policy.name,
                    target,
                    snapshot_id,
                    why.to_string(),
                )])
                .await;
                Ok(Some(ps.poller.watch(op, policy.timing.poll_max_interval)))
            }
        }
    }
}

/// The listing as retention's candidates, grouped by source: retention
/// counts per source (an instance target lists the snapshots of each of its
/// volumes).
fn candidates<'a>(
    listed: &'a [RemoteSnapshot],
    by_id: &HashMap<&str, &SnapshotRow>,
    holds: &[SnapshotHold],
    now: DateTime<Utc>,
) -> BTreeMap<&'a str, Vec<Candidate>> {
    let mut groups: BTreeMap<&str, Vec<Candidate>> = BTreeMap::new();
    for s in listed.iter().filter(|s| s.state != SnapshotState::Gone) {
        let row = by_id.get(s.id.as_str());
        let own = s.marker_slot.is_some() && row.is_some();
        let condition = match (s.state, row.map(|r| r.state)) {
            (SnapshotState::Available, Some(LedgerState::Available) | None) => Condition::Good,
            (SnapshotState::Available, Some(LedgerState::Failed)) | (SnapshotState::Failed, _) => {
                Condition::Failed
            }
            _ => Condition::InProgress,
        };
        groups
            .entry(s.source.as_str())
            .or_default()
            .push(Candidate {
                id: s.id.clone(),
                // Where the cloud gives no creation time, the slot
                // (the marker's, else the ledger's) orders it: a UTC
                // instant fixed by the schedule, never a reading of
                // this host's clock, which may have stepped back and
                // would sort the real newest as older.
                created_at: s
                    .created_at
                    .or(s.marker_slot)
                    .or(row.map(|r| r.slot))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                condition,
                own,
                chain: s.chain.clone(),
                held: holds
                    .iter()
                    .find(|h| match row {
                        Some(r) => h.covers(r, now),
                        // Not in the ledger: only a hold naming it.
                        None => h.in_force(now) && h.snapshot_id.as_deref() == Some(s.id.as_str()),
                    })
                    .map(SnapshotHold::describe),
            });
    }
    groups
}

/// Deletes retention wants that wait, and why.
pub(super) struct Waiting {
    ids: Vec<String>,
    held: Held,
}

/// Deletes held by a run's own guards.
fn guard(reason: String) -> Held {
    Held {
        cause: HoldCause::Guard,
        reason,
    }
}

/// Inside the policy's blackout window no delete starts: all of them wait
/// for the first run after it.
fn blackout_holds(
    policy: &Policy,
    to_delete: Vec<String>,
    mut report: PruneReport,
) -> (Vec<String>, PruneReport) {
    let Err(EngineError::Blackout(why)) = super::outside_blackout(policy) else {
        return (to_delete, report);
    };
    if to_delete.is_empty() {
        return (to_delete, report);
    }
    let mut held = to_delete;
    held.append(&mut report.held);
    report.held = held;
    report.held_because = Some(Held {
        cause: HoldCause::Blackout,
        reason: format!("deletes wait: {}", why.trim_start_matches("skipped: ")),
    });
    (Vec::new(), report)
}

impl Engine {
    /// Keep the sizes the listing gave for the ledger's rows (for status
    /// and the metric). A ledger that cannot take them costs only the
    /// figures, never the prune.
    async fn record_sizes(
        &self,
        policy: &Policy,
        target: &str,
        listed: &[RemoteSnapshot],
        by_id: &HashMap<&str, &SnapshotRow>,
    ) {
        let sizes: Vec<(i64, u64)> = listed
            .iter()
            .filter_map(|s| {
                let row = by_id.get(s.id.as_str())?;
                let bytes = s.size_bytes?;
                (row.size_bytes != Some(bytes)).then_some((row.id, bytes))
            })
            .collect();
        if sizes.is_empty() {
            return;
        }
        if let Err(e) = self.state.record_sizes(&sizes).await {
            warn!(policy = %policy.name, target, error = %e, "cannot record the snapshots' sizes");
        }
    }
}
