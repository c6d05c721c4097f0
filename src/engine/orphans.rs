//! Orphans: snapshots that carry snapwarden's marker but belong to no
//! configured policy and target, and deletes that got stuck or failed.
//! Found through the ledger and the provider trait only; deleted only on
//! the operator's word, and only what the ledger and the marker both say
//! is ours.
//!
//! Deleting keeps the guards a run's pruning has: a snapshot
//! that any other listed snapshot depends on (an increment whose parent or
//! chain root it is, whoever made the increment: on QingCloud a delete
//! cascades into every descendant) is never deleted; dependants go first,
//! and a chain stops at the first delete that fails; the newest good
//! snapshot of a configured target is never deleted; and one invocation
//! deletes at most a budget of snapshots.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Engine, EngineError, OpOutcome, RetryPolicy};
use crate::config::{Config, Policy};
use crate::domain::ResourceKind;
use crate::observe::events::{self, OrphanDeleted};
use crate::providers::{DeleteStarted, ProviderError, RemoteSnapshot, SnapshotState};
use crate::state::{AuditAction, LedgerState, PollPlan, SnapshotRow};

/// How long listing or deleting one orphan may keep retrying.
const ORPHAN_DEADLINE: Duration = Duration::from_secs(120);
/// How often an orphan's delete is polled (and at most).
const ORPHAN_POLL: Duration = Duration::from_millis(500);
const ORPHAN_POLL_MAX: Duration = Duration::from_secs(10);
/// A delete still in flight this long after its deadline is stuck.
const STUCK_AFTER_DEADLINE: chrono::TimeDelta = chrono::TimeDelta::zero();

/// Why a snapshot is an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanKind {
    /// Ours (ledger and marker) but its policy or target is no longer
    /// configured.
    Unconfigured,
    /// A delete in flight past its deadline.
    StuckDelete,
    /// A delete that ended in failure; the snapshot is still there.
    FailedDelete,
    /// Ours, of a configured target, but of a source (volume) that is no
    /// longer part of the target (detached, replaced, the name resolves
    /// elsewhere, the `resource` changed): not looked at by its runs any
    /// more. Listed, never deleted here.
    SourceLeft,
}

impl OrphanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanKind::Unconfigured => "unconfigured",
            OrphanKind::StuckDelete => "stuck_delete",
            OrphanKind::FailedDelete => "failed_delete",
            OrphanKind::SourceLeft => "source_left",
        }
    }
}

/// What the cloud says about an orphan right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Listed with our marker and in the ledger: may be deleted.
    Ours,
    /// Listed with our marker but unknown to this ledger (another
    /// installation's?): listed, never deleted.
    NotInLedger,
    /// Listed without our marker: never deleted.
    Unmarked,
    /// Not listed: already gone from the cloud.
    Gone,
    /// Could not be checked (provider not configured, listing failed):
    /// never deleted.
    Unverified,
}

impl Verified {
    pub fn as_str(self) -> &'static str {
        match self {
            Verified::Ours => "ours",
            Verified::NotInLedger => "marked_not_in_ledger",
            Verified::Unmarked => "unmarked",
            Verified::Gone => "gone",
            Verified::Unverified => "unverified",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Orphan {
    pub kind: OrphanKind,
    pub provider: String,
    pub policy: String,
    pub target: String,
    pub snapshot_id: String,
    pub name: String,
    pub created_at: Option<DateTime<Utc>>,
    pub verified: Verified,
    /// A human note: why it is listed, or why it cannot be checked.
    pub note: String,
    ledger_row: Option<i64>,
    stuck_op: Option<i64>,
    /// The source (volume) the ledger learnt for it, if any.
    source: Option<String>,
    /// Listed snapshots that depend on it (their parent or chain root).
    dependants: Vec<String>,
    /// The newest good own snapshot of its source on a configured target.
    newest_good: bool,
}

/// What `delete_orphans` did with one orphan.
#[derive(Debug, Clone)]
pub struct OrphanOutcome {
    pub snapshot_id: String,
    pub result: Result<&'static str, String>,
}

impl Engine {
    /// Every orphan: ledger rows of unconfigured policies/targets, marked
    /// snapshots of unconfigured policies on configured targets, and stuck
    /// or failed deletes. Each is checked against a fresh listing.
    pub async fn find_orphans(&self, config: &Config) -> Result<Vec<Orphan>, EngineError> {
        let rows = self.state.all_snapshots().await?;
        let resolved = self.resolve_configured(config, &rows).await;
        let configured: BTreeSet<(&str, &str)> = resolved
            .iter()
            .flat_map(|(p, ts)| ts.iter().map(|t| (p.name.as_str(), t.as_str())))
            .collect();
        let mut found = self.ledger_orphans(&rows, &configured).await?;
        self.verify_orphans(config, &rows, &configured, &mut found)
            .await;
        // A source-left row the target's listing shows after all (the
        // volume came back) is no orphan; one whose source the listing
        // covers is gone, and the target's pruning writes it off.
        found.retain(|o| o.kind != OrphanKind::SourceLeft || o.verified == Verified::Unverified);
        let extra = self
            .unlisted_marked(config, &rows, &resolved, &configured)
            .await;
        found.extend(extra);
        Ok(found)
    }

    /// Each policy's targets as they are now. A selector's targets as the
    /// cloud lists them now: a target that left its selector is an orphan
    /// from here on. If the listing fails, every ledger target of the
    /// policy counts as configured (unknown is never an orphan).
    async fn resolve_configured<'a>(
        &self,
        config: &'a Config,
        rows: &[SnapshotRow],
    ) -> Vec<(&'a Policy, Vec<String>)> {
        let mut resolved: Vec<(&Policy, Vec<String>)> = Vec::new();
        for p in &config.policies {
            let targets = match self.resolve_targets(p).await {
                Ok(t) => t,
                Err(e) => {
                    warn!(policy = %p.name, error = %e, "cannot resolve the selector; its ledger targets count as configured");
                    let mut t = p.targets.named.clone();
                    t.extend(
                        rows.iter()
                            .filter(|r| r.policy == p.name)
                            .map(|r| r.target.clone()),
                    );
                    t.sort();
                    t.dedup();
                    t
                }
            };
            resolved.push((p, targets));
        }
        resolved
    }

    /// Orphans the ledger alone shows: rows of unconfigured policies and
    /// targets, stuck and failed deletes, rows whose source left the target.
    async fn ledger_orphans(
        &self,
        rows: &[SnapshotRow],
        configured: &BTreeSet<(&str, &str)>,
    ) -> Result<Vec<Orphan>, EngineError> {
        let mut found: Vec<Orphan> = Vec::new();
        for r in rows.iter().filter(|r| r.state != LedgerState::Deleted) {
            if !configured.contains(&(r.policy.as_str(), r.target.as_str())) {
                found.push(orphan_of(
                    r,
                    OrphanKind::Unconfigured,
                    "policy/target not configured",
                ));
            }
        }
        let now = Utc::now();
        for op in self.state.ops_in_flight().await? {
            if op.kind == crate::providers::OpKind::Delete
                && op.deadline + STUCK_AFTER_DEADLINE < now
            {
                let row = self.state.snapshot(op.snapshot_row).await?;
                let mut o = orphan_of(
                    &row,
                    OrphanKind::StuckDelete,
                    &format!("delete {} in flight since {}", op.reference, op.started_at),
                );
                o.stuck_op = Some(op.id);
                found.retain(|f| f.ledger_row != o.ledger_row);
                found.push(o);
            }
        }
        for row in self.state.failed_deletes().await? {
            if found.iter().any(|f| f.ledger_row == Some(row.id)) {
                continue;
            }
            let why = format!(
                "last delete failed: {}",
                row.error.as_deref().unwrap_or("no reason recorded")
            );
            found.push(orphan_of(&row, OrphanKind::FailedDelete, &why));
        }
        let sources = self.state.all_snapshot_sources().await?;
        for r in source_left(rows, &sources, configured) {
            if found.iter().any(|f| f.ledger_row == Some(r.id)) {
                continue;
            }
            let source = sources.get(&r.id).map(String::as_str).unwrap_or("");
            found.push(orphan_of(
                r,
                OrphanKind::SourceLeft,
                &format!(
                    "its source {source} is no longer part of target {}: not looked at by its runs; never deleted here",
                    r.target
                ),
            ));
        }
        for o in &mut found {
            o.source = o.ledger_row.and_then(|row| sources.get(&row).cloned());
        }
        Ok(found)
    }

    /// Check each orphan against a fresh listing, one listing per
    /// (provider, policy, target).
    async fn verify_orphans(
        &self,
        config: &Config,
        rows: &[SnapshotRow],
        configured: &BTreeSet<(&str, &str)>,
        found: &mut [Orphan],
    ) {
        let mut listings: BTreeMap<(String, String, String), Option<Vec<RemoteSnapshot>>> =
            BTreeMap::new();
        let good_rows: HashSet<(&str, &str)> = rows
            .iter()
            .filter(|r| r.state == LedgerState::Available)
            .map(|r| (r.provider.as_str(), r.snapshot_id.as_str()))
            .collect();
        for o in found.iter_mut() {
            let key = (o.provider.clone(), o.policy.clone(), o.target.clone());
            if !listings.contains_key(&key) {
                let listed = self
                    .list_for(config, &o.provider, &o.policy, &o.target)
                    .await;
                listings.insert(key.clone(), listed);
            }
            let ledger_known = o.ledger_row.is_some();
            let Some(listed) = listings.get(&key).and_then(|l| l.as_ref()) else {
                o.verified = Verified::Unverified;
                continue;
            };
            let alive = || listed.iter().filter(|s| s.state != SnapshotState::Gone);
            // Absent from a listing that did not look at its source is not
            // gone: the source left the target.
            let looked_at = o
                .source
                .as_deref()
                .is_none_or(|src| alive().any(|s| s.source == src));
            o.verified = match listed.iter().find(|s| s.id == o.snapshot_id) {
                None if !looked_at => Verified::Unverified,
                None => Verified::Gone,
                Some(s) if s.state == SnapshotState::Gone => Verified::Gone,
                Some(s) if s.marker_slot.is_none() => Verified::Unmarked,
                // Listed again: the source is back; no orphan (dropped below).
                Some(_) if o.kind == OrphanKind::SourceLeft => Verified::Ours,
                Some(_) if ledger_known => Verified::Ours,
                Some(_) => Verified::NotInLedger,
            };
            o.dependants = alive()
                .filter(|s| s.id != o.snapshot_id)
                .filter(|s| {
                    s.chain.as_ref().is_some_and(|c| {
                        c.parent_id.as_deref() == Some(o.snapshot_id.as_str())
                            || (!c.full && c.root_id == o.snapshot_id)
                    })
                })
                .map(|s| s.id.clone())
                .collect();
            if configured.contains(&(o.policy.as_str(), o.target.as_str())) {
                let newest = alive()
                    .filter(|s| {
                        s.marker_slot.is_some()
                            && s.state == SnapshotState::Available
                            && Some(s.source.as_str())
                                == listed
                                    .iter()
                                    .find(|x| x.id == o.snapshot_id)
                                    .map(|x| x.source.as_str())
                            && good_rows.contains(&(o.provider.as_str(), s.id.as_str()))
                    })
                    .max_by_key(|s| s.created_at);
                o.newest_good = newest.is_some_and(|s| s.id == o.snapshot_id);
            }
        }
    }

    /// Marked snapshots the ledger does not know on the configured
    /// targets, for policies no longer configured there.
    async fn unlisted_marked(
        &self,
        config: &Config,
        rows: &[SnapshotRow],
        resolved: &[(&Policy, Vec<String>)],
        configured: &BTreeSet<(&str, &str)>,
    ) -> Vec<Orphan> {
        let ledger_ids: BTreeSet<(&str, &str)> = rows
            .iter()
            .map(|r| (r.provider.as_str(), r.snapshot_id.as_str()))
            .collect();
        let ledger_policies: BTreeSet<(&str, &str)> = rows
            .iter()
            .map(|r| (r.provider.as_str(), r.policy.as_str()))
            .collect();
        let mut extra = Vec::new();
        for (p, targets) in resolved {
            for t in targets {
                for (provider, other) in &ledger_policies {
                    if *provider != p.provider || configured.contains(&(*other, t.as_str())) {
                        continue;
                    }
                    let Some(listed) = self.list_for(config, provider, other, t).await else {
                        continue;
                    };
                    for s in listed.iter().filter(|s| {
                        s.marker_slot.is_some()
                            && s.state != SnapshotState::Gone
                            && !ledger_ids.contains(&(*provider, s.id.as_str()))
                    }) {
                        extra.push(Orphan {
                            kind: OrphanKind::Unconfigured,
                            provider: provider.to_string(),
                            policy: other.to_string(),
                            target: t.clone(),
                            snapshot_id: s.id.clone(),
                            name: s.name.clone(),
                            created_at: s.created_at,
                            verified: Verified::NotInLedger,
                            note: "marked for a policy not configured on this target, not in the ledger".into(),
                            ledger_row: None,
                            stuck_op: None,
                            source: Some(s.source.clone()),
                            dependants: Vec::new(),
                            newest_good: false,
                        });
                    }
                }
            }
        }
        extra
    }

    /// Delete the orphans that are verified ours; mark the gone ones
    /// deleted in the ledger. Everything else is left alone.
    ///
    /// The guards of a run's pruning hold here too: a snapshot another
    /// listed snapshot depends on is kept unless that dependant is deleted
    /// first in this same pass (whoever made the dependant: a QingCloud
    /// delete cascades into every descendant); a chain stops at the first
    /// delete that fails; the newest good snapshot of a configured target
    /// is kept; and at most `budget` snapshots are deleted (the rest are
    /// reported held back, for the next invocation).
    pub async fn delete_orphans(&self, orphans: &[Orphan], budget: usize) -> Vec<OrphanOutcome> {
        let key = |o: &Orphan| (o.provider.clone(), o.snapshot_id.clone());
        let (order, kept) = delete_plan(orphans);
        let mut out = Vec::new();
        let mut not_deleted: HashSet<(String, String)> = HashSet::new();
        let mut deletes = 0usize;
        for o in order {
            let result = if let Some(why) = kept.get(&key(o)) {
                Err(why.clone())
            } else if let Some(d) = o
                .dependants
                .iter()
                .find(|d| not_deleted.contains(&(o.provider.clone(), (*d).clone())))
            {
                Err(format!(
                    "snapshot {d}, which depends on it, was not deleted: the chain stops here"
                ))
            } else if o.verified == Verified::Ours && deletes >= budget {
                Err(format!(
                    "held back: at most {budget} deletes in one go (the daemon's max_deletes_per_run); \
                     run again, or pass --max-deletes N"
                ))
            } else {
                if o.verified == Verified::Ours {
                    deletes += 1;
                }
                self.delete_orphan(o).await
            };
            if let Err(e) = &result {
                not_deleted.insert(key(o));
                warn!(snapshot = %o.snapshot_id, policy = %o.policy, target = %o.target, error = %e, "orphan not deleted");
            }
            out.push(OrphanOutcome {
                snapshot_id: o.snapshot_id.clone(),
                result,
            });
        }
        out
    }

    /// Record an orphan's delete in the audit trail: why it is an
    /// orphan, and what was done.
    async fn audit_orphan(&self, o: &Orphan, done: &str) {
        let detail = format!("orphan ({}): {}; {done}", o.kind.as_str(), o.note);
        self.audit(vec![self.audit_entry(
            AuditAction::Delete,
            &o.policy,
            &o.target,
            &o.snapshot_id,
            detail,
        )])
        .await;
    }

    async fn delete_orphan(&self, o: &Orphan) -> Result<&'static str, String> {
        let Some(row) = o.ledger_row else {
            return Err("not in the ledger: never deleted".into());
        };
        let now = Utc::now();
        if let Some(op) = o.stuck_op {
            self.state
                .finish_op(
                    op,
                    Some("abandoned: stuck past its deadline (orphans)"),
                    now,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        match o.verified {
            Verified::Ours => {}
            Verified::Gone => {
                self.state
                    .mark_deleted(row, now)
                    .await
                    .map_err(|e| e.to_string())?;
                self.audit_orphan(o, "already gone from the cloud; ledger updated")
                    .await;
                return Ok("already gone; ledger updated");
            }
            other => return Err(format!("{}: never deleted", other.as_str())),
        }
        let ps = self
            .slot_by_name(&o.provider)
            .ok_or_else(|| format!("provider {} is not configured", o.provider))?;
        let deadline = now + chrono::Duration::from_std(ORPHAN_DEADLINE).unwrap_or_default();
        if !self.mandate.holds() {
            return Err("this process no longer holds the ledger's lease: not deleted".into());
        }
        // An operator's hold wins over an orphan delete too: the claim
        // checks it in the ledger's transaction.
        let claimed = self
            .state
            .claim_deletes(&[row], deadline + chrono::Duration::minutes(1), Utc::now())
            .await
            .map_err(|e| e.to_string())?;
        if claimed.is_empty() {
            return Err("held by an operator (see status): never deleted".into());
        }
        let started = match retry_plain(deadline, || ps.provider.delete(&o.snapshot_id)).await {
            Ok(started) => started,
            Err(e) => {
                if let Err(drop) = self.state.drop_delete_claim(row).await {
                    warn!(row, error = %drop, "cannot drop a delete claim; it ends by itself");
                }
                return Err(e.to_string());
            }
        };
        match started {
            DeleteStarted::AlreadyGone => {
                self.state
                    .mark_deleted(row, Utc::now())
                    .await
                    .map_err(|e| e.to_string())?;
                self.audit_orphan(o, "already gone from the cloud").await;
                Ok("already gone")
            }
            DeleteStarted::Tracking(reference) => {
                let now = Utc::now();
                let op = self
                    .state
                    .begin_delete(
                        row,
                        &reference,
                        now,
                        PollPlan {
                            first_poll: now
                                + chrono::Duration::from_std(ORPHAN_POLL).unwrap_or_default(),
                            interval: ORPHAN_POLL,
                            deadline,
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                info!(snapshot = %o.snapshot_id, policy = %o.policy, target = %o.target, job = %reference, "deleting orphan");
                self.audit_orphan(o, "deleting").await;
                match ps.poller.watch(op, ORPHAN_POLL_MAX).await {
                    Ok(OpOutcome::Succeeded) => {
                        events::emit(OrphanDeleted {
                            policy: &o.policy,
                            target: &o.target,
                            provider: &o.provider,
                        });
                        Ok("deleted")
                    }
                    Ok(OpOutcome::Failed(e) | OpOutcome::TimedOut(e)) => Err(e),
                    Err(_) => Err("stopped before the delete was terminal".into()),
                }
            }
        }
    }

    /// List (`policy`, `target`) on `provider`, or None when it cannot be
    /// listed (provider not configured, listing failed: logged). The
    /// resource is the configured policy's, else that of a policy with the
    /// same target on the provider, else each resource the provider has.
    async fn list_for(
        &self,
        config: &Config,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Option<Vec<RemoteSnapshot>> {
        let ps = self.slot_by_name(provider)?;
        let by_policy = config
            .policies
            .iter()
            .find(|p| p.name == policy && p.provider == provider)
            .map(|p| p.resource);
        let by_target = config
            .policies
            .iter()
            .find(|p| p.provider == provider && p.targets.named.iter().any(|t| t == target))
            .map(|p| p.resource);
        let resources: Vec<ResourceKind> = match by_policy.or(by_target) {
            Some(r) => vec![r],
            None => ps.provider.capabilities().resources.to_vec(),
        };
        let deadline = Utc::now() + chrono::Duration::from_std(ORPHAN_DEADLINE).unwrap_or_default();
        for resource in &resources {
            match retry_plain(deadline, || ps.provider.list(*resource, target, policy)).await {
                Ok(listed) => return Some(listed),
                Err(e) => {
                    warn!(provider, policy, target, resource = %resource, error = %e, "cannot list for orphans")
                }
            }
        }
        None
    }
}

/// Which orphans must stay and why (the newest good of a configured
/// target; a snapshot that a listed snapshot which stays depends on,
/// transitively), and the order to deal with them in: dependants before
/// what they depend on.
#[allow(clippy::type_complexity)]
fn delete_plan(orphans: &[Orphan]) -> (Vec<&Orphan>, HashMap<(String, String), String>) {
    let key = |o: &Orphan| (o.provider.clone(), o.snapshot_id.clone());
    let mut kept: HashMap<(String, String), String> = HashMap::new();
    for o in orphans.iter().filter(|o| o.verified == Verified::Ours) {
        if o.newest_good {
            kept.insert(
                key(o),
                format!(
                    "the newest good snapshot of {}/{} (configured): never deleted",
                    o.policy, o.target
                ),
            );
        }
    }
    // A dependant that is not itself going keeps what it depends on;
    // repeat, as a kept dependant keeps its own parents too.
    let going = |kept: &HashMap<(String, String), String>| -> HashSet<(String, String)> {
        orphans
            .iter()
            .filter(|o| o.verified == Verified::Ours && !kept.contains_key(&key(o)))
            .map(key)
            .collect()
    };
    loop {
        let now_going = going(&kept);
        let newly: Vec<((String, String), String)> = orphans
            .iter()
            .filter(|o| now_going.contains(&key(o)))
            .filter_map(|o| {
                o.dependants
                    .iter()
                    .find(|d| !now_going.contains(&(o.provider.clone(), (*d).clone())))
                    .map(|d| {
                        (
                            key(o),
                            format!("snapshot {d} depends on it (an increment of its chain) and stays: never deleted"),
                        )
                    })
            })
            .collect();
        if newly.is_empty() {
            break;
        }
        kept.extend(newly);
    }
    // Dependants first: an orphan goes only after every dependant of it
    // in this pass has been dealt with.
    let mut remaining: Vec<&Orphan> = orphans.iter().collect();
    let mut order: Vec<&Orphan> = Vec::with_capacity(orphans.len());
    while !remaining.is_empty() {
        let pending: HashSet<(String, String)> = remaining.iter().map(|o| key(o)).collect();
        let (ready, later): (Vec<&Orphan>, Vec<&Orphan>) = remaining.into_iter().partition(|o| {
            !o.dependants
                .iter()
                .any(|d| pending.contains(&(o.provider.clone(), d.clone())))
        });
        if ready.is_empty() {
            // A cycle cannot happen in a chain; never loop on one.
            order.extend(later);
            break;
        }
        order.extend(ready);
        remaining = later;
    }
    (order, kept)
}

/// Rows of configured targets (not deleted, good) whose learnt source is
/// not among the sources of the target's newest run: their volume left the
/// target. Decided from the ledger alone; the caller confirms with a
/// listing.
fn source_left<'a>(
    rows: &'a [SnapshotRow],
    sources: &HashMap<i64, String>,
    configured: &BTreeSet<(&str, &str)>,
) -> Vec<&'a SnapshotRow> {
    let mut by_target: BTreeMap<(&str, &str, &str), Vec<&SnapshotRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| {
        r.state != LedgerState::Deleted
            && configured.contains(&(r.policy.as_str(), r.target.as_str()))
    }) {
        by_target
            .entry((r.provider.as_str(), r.policy.as_str(), r.target.as_str()))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for group in by_target.values() {
        let latest = group
            .iter()
            .filter(|r| matches!(r.state, LedgerState::Available | LedgerState::Creating))
            .map(|r| r.slot)
            .max();
        let current: HashSet<&str> = group
            .iter()
            .filter(|r| Some(r.slot) == latest)
            .filter_map(|r| sources.get(&r.id).map(String::as_str))
            .collect();
        if current.is_empty() {
            continue;
        }
        out.extend(group.iter().copied().filter(|r| {
            r.state == LedgerState::Available
                && sources
                    .get(&r.id)
                    .is_some_and(|src| !current.contains(src.as_str()))
        }));
    }
    out
}

fn orphan_of(r: &SnapshotRow, kind: OrphanKind, note: &str) -> Orphan {
    Orphan {
        kind,
        provider: r.provider.clone(),
        policy: r.policy.clone(),
        target: r.target.clone(),
        snapshot_id: r.snapshot_id.clone(),
        name: r.name.clone(),
        created_at: Some(r.created_at),
        verified: Verified::Unverified,
        note: note.to_string(),
        ledger_row: Some(r.id),
        stuck_op: None,
        source: None,
        dependants: Vec::new(),
        newest_good: false,
    }
}

/// The one retry policy, for calls that belong to no policy.
async fn retry_plain<T, F, Fut>(deadline: DateTime<Utc>, mut op: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let retry = RetryPolicy::for_poll_interval(ORPHAN_POLL, ORPHAN_POLL_MAX);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match retry.delay(attempt, &e, Utc::now(), deadline) {
                Some(d) => tokio::time::sleep(d).await,
                None => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(id: &str, dependants: &[&str]) -> Orphan {
        Orphan {
            kind: OrphanKind::Unconfigured,
            provider: "qc".into(),
            policy: "a".into(),
            target: "vol-1".into(),
            snapshot_id: id.into(),
            name: id.into(),
            created_at: None,
            verified: Verified::Ours,
            note: String::new(),
            ledger_row: Some(1),
            stuck_op: None,
            source: Some("vol-1".into()),
            dependants: dependants.iter().map(|d| d.to_string()).collect(),
            newest_good: false,
        }
    }

    fn ids<'a>(order: &[&'a Orphan]) -> Vec<&'a str> {
        order.iter().map(|o| o.snapshot_id.as_str()).collect()
    }

    fn kept(plan: &HashMap<(String, String), String>) -> Vec<&str> {
        let mut k: Vec<&str> = plan.keys().map(|(_, id)| id.as_str()).collect();
        k.sort();
        k
    }

    #[test]
    fn dependants_go_first_and_one_that_stays_keeps_its_chain() {
        // full <- inc1 <- inc2, all orphans: the chain goes newest first.
        let all = [
            orphan("full", &["inc1", "inc2"]),
            orphan("inc1", &["inc2"]),
            orphan("inc2", &[]),
        ];
        let (order, k) = delete_plan(&all);
        assert_eq!(ids(&order), ["inc2", "inc1", "full"]);
        assert!(k.is_empty());

        // Another policy's increment (not an orphan) hangs off inc1: inc1
        // and full stay, inc2 (nobody depends on it) may go.
        let all = [
            orphan("full", &["inc1", "inc2", "theirs"]),
            orphan("inc1", &["inc2", "theirs"]),
            orphan("inc2", &[]),
        ];
        let (_, k) = delete_plan(&all);
        assert_eq!(kept(&k), ["full", "inc1"]);
        assert!(k.values().all(|why| why.contains("theirs")));

        // The newest good of a configured target stays, and so does what
        // it depends on.
        let mut newest = orphan("inc1", &[]);
        newest.newest_good = true;
        let all = [orphan("full", &["inc1"]), newest, orphan("other", &[])];
        let (_, k) = delete_plan(&all);
        assert_eq!(kept(&k), ["full", "inc1"]);
        assert!(k[&("qc".to_string(), "inc1".to_string())].contains("newest good"));
    }

    fn row(id: i64, target: &str, slot: i64, state: LedgerState) -> SnapshotRow {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000 + slot, 0).unwrap_or_default();
        SnapshotRow {
            id,
            run_id: slot,
            provider: "kc".into(),
            policy: "db".into(),
            target: target.into(),
            slot: t,
            name: format!("s{id}"),
            snapshot_id: format!("s{id}"),
            state,
            full: true,
            created_at: t,
            completed_at: None,
            deleted_at: None,
            error: None,
            size_bytes: None,
        }
    }

    #[test]
    fn a_source_missing_from_the_newest_run_has_left_its_target() {
        let rows = [
            row(1, "web", 1, LedgerState::Available),
            row(2, "web", 1, LedgerState::Available),
            row(3, "web", 2, LedgerState::Available),
            row(4, "web", 2, LedgerState::Available),
            row(5, "web", 3, LedgerState::Available),
            row(6, "web", 3, LedgerState::Failed),
            row(7, "gone", 1, LedgerState::Available),
        ];
        let sources: HashMap<i64, String> = [
            (1, "root"),
            (2, "data"),
            (3, "root"),
            (4, "data"),
            (5, "root"),
            (7, "data"),
        ]
        .into_iter()
        .map(|(id, s)| (id, s.to_string()))
        .collect();
        let configured = BTreeSet::from([("db", "web")]);
        let left: Vec<i64> = source_left(&rows, &sources, &configured)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            left,
            [2, 4],
            "data is not in slot 3; gone is not configured"
        );

        // Nothing known of the newest run's sources: nothing is decided.
        let sources: HashMap<i64, String> =
            [(2, "data".to_string()), (4, "data".to_string())].into();
        assert!(source_left(&rows, &sources, &configured).is_empty());
    }
}
