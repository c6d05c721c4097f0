//! Restoring a snapshot the ledger knows as ours.

use chrono::Utc;
use tracing::info;

use super::{poll_plan, Engine, EngineError, OpOutcome, RestoreReport};
use crate::config::Policy;
use crate::providers::{self, RemoteSnapshot, SnapshotState};
use crate::state::{AuditAction, LedgerState};

impl Engine {
    /// Restore the newest good own snapshot of a target (or the one given)
    /// and follow it to completion. An in-place restore needs `confirmed`.
    pub async fn restore(
        &self,
        policy: &Policy,
        target: &str,
        snapshot: Option<&str>,
        new_name: Option<&str>,
        confirmed: bool,
    ) -> Result<RestoreReport, EngineError> {
        let ps = self.slot(policy)?;
        let deadline = policy.timing.deadline(Utc::now());
        let listed = self.list(&ps, policy, target, deadline).await?;
        let ledger = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)
            .await?;
        let own_good: Vec<(&RemoteSnapshot, i64)> = listed
            .iter()
            .filter(|s| s.marker_slot.is_some() && s.state == SnapshotState::Available)
            .filter_map(|s| {
                ledger
                    .iter()
                    .find(|r| r.snapshot_id == s.id && r.state == LedgerState::Available)
                    .map(|r| (s, r.id))
            })
            .collect();
        let (chosen, row) = match snapshot {
            Some(id) => own_good
                .iter()
                .find(|(s, _)| s.id == id)
                .copied()
                .ok_or_else(|| {
                    EngineError::Failed(format!(
                        "snapshot {id} is not a good snapshot that policy {} made of {target}",
                        policy.name
                    ))
                })?,
            None => own_good
                .iter()
                .max_by_key(|(s, _)| s.created_at)
                .copied()
                .ok_or_else(|| {
                    EngineError::Failed(format!(
                        "policy {} has no good snapshot of {target} to restore",
                        policy.name
                    ))
                })?,
        };
        let mode = ps.provider.capabilities().restore;
        if mode == providers::RestoreMode::InPlace && !confirmed {
            return Err(EngineError::NeedsConfirmation(format!(
                "restoring {} onto {target} replaces its current data in place; run again with --yes to do it",
                chosen.id
            )));
        }
        // One attempt: a restore that may have reached the cloud is never
        // repeated blindly (it would make a second volume).
        let started = self
            .or_shutdown(ps.provider.restore(&providers::RestoreRequest {
                resource: policy.resource,
                target: target.to_string(),
                snapshot_id: chosen.id.clone(),
                new_name: new_name.map(str::to_string),
            }))
            .await??;
        let now = Utc::now();
        let op = self
            .state
            .begin_restore(
                row,
                &started.operation,
                now,
                poll_plan(policy, now, deadline),
            )
            .await?;
        info!(policy = %policy.name, target, snapshot = %chosen.id, job = %started.operation, "restore started");
        let onto = match (mode, &started.resource_id, new_name) {
            (providers::RestoreMode::InPlace, _, _) => format!("onto {target} in place"),
            (_, Some(id), _) => format!("into new {id}"),
            (_, None, Some(name)) => format!("into new {name}"),
            (_, None, None) => "into a new resource".to_string(),
        };
        self.audit(vec![self.audit_entry(
            AuditAction::Restore,
            &policy.name,
            target,
            &chosen.id,
            format!(
                "snapshot {} of {target} restored {onto} ({})",
                chosen.id,
                if snapshot.is_some() {
                    "the snapshot asked for"
                } else {
                    "the newest good one"
                }
            ),
        )])
        .await;
        match self
            .or_shutdown(ps.poller.watch(op, policy.timing.poll_max_interval))
            .await?
        {
            Ok(OpOutcome::Succeeded) => Ok(RestoreReport {
                snapshot_id: chosen.id.clone(),
                mode,
                resource_id: started.resource_id,
            }),
            Ok(OpOutcome::Failed(e)) => Err(EngineError::Failed(e)),
            Ok(OpOutcome::TimedOut(e)) => Err(EngineError::TimedOut(e)),
            Err(_) => Err(EngineError::Shutdown),
        }
    }
}
