//! Settling before a one-shot command decides: the ledger may
//! still hold operations in flight that the cloud finished since (the
//! daemon stopped while following them). `prune`, `restore` and `orphans`
//! ask the cloud about them once, through the provider trait's batched
//! status call, and record the terminal outcomes the way the poller does,
//! so that a snapshot the cloud finished is not taken for one "still in
//! progress".
//!
//! Nothing is timed out here and nothing pending changes: an operation the
//! cloud still works on, or one that cannot be asked about, stays in
//! flight for the daemon to follow.

use std::collections::BTreeMap;

use chrono::Utc;
use tracing::{info, warn};

use super::{Engine, EngineError};
use crate::config::Policy;
use crate::providers::{OpStatus, OperationRef};
use crate::state::OpRow;

/// What settling found and recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Operations the cloud answered as finished (recorded in the ledger).
    pub finished: usize,
    /// Operations still running on the cloud, or that could not be asked
    /// about (left in flight).
    pub pending: usize,
}

impl Engine {
    /// Ask the cloud once about every operation the ledger has in flight
    /// for `policies` (all of them when `None`), and record the terminal
    /// outcomes. A provider that cannot be asked leaves its operations in
    /// flight (logged); only the ledger failing is an error.
    pub async fn settle(&self, policies: Option<&[&Policy]>) -> Result<Settled, EngineError> {
        let wanted = |op: &OpRow| {
            policies.is_none_or(|ps| {
                ps.iter()
                    .any(|p| p.name == op.policy && p.provider == op.provider)
            })
        };
        let mut by_provider: BTreeMap<String, Vec<OpRow>> = BTreeMap::new();
        for op in self.state.ops_in_flight().await?.into_iter().filter(wanted) {
            by_provider.entry(op.provider.clone()).or_default().push(op);
        }
        let mut settled = Settled::default();
        for (name, ops) in by_provider {
            let Some(ps) = self.slot_by_name(&name) else {
                settled.pending += ops.len();
                continue;
            };
            let batch = ps.provider.capabilities().max_status_batch.max(1);
            for chunk in ops.chunks(batch) {
                let refs: Vec<OperationRef> = chunk
                    .iter()
                    .map(|op| OperationRef {
                        kind: op.kind,
                        operation: op.reference.clone(),
                        snapshot_id: op.snapshot_id.clone(),
                    })
                    .collect();
                let statuses = match self.or_shutdown(ps.provider.poll(&refs)).await? {
                    Ok(s) if s.len() == refs.len() => s,
                    Ok(s) => {
                        warn!(provider = %name, answered = s.len(), asked = refs.len(), "cannot settle: the status answer does not match the question");
                        settled.pending += chunk.len();
                        continue;
                    }
                    Err(e) => {
                        warn!(provider = %name, error = %e, "cannot settle the operations in flight; deciding on the ledger as it is");
                        settled.pending += chunk.len();
                        continue;
                    }
                };
                let mut done: Vec<(i64, Option<String>)> = Vec::new();
                for (op, status) in chunk.iter().zip(statuses) {
                    match status {
                        OpStatus::Succeeded => {
                            info!(provider = %name, policy = %op.policy, target = %op.target, snapshot = %op.snapshot_id, job = %op.reference, kind = op.kind.as_str(), "operation finished while nobody followed it; recorded");
                            done.push((op.id, None));
                        }
                        OpStatus::Failed { reason } => {
                            warn!(provider = %name, policy = %op.policy, target = %op.target, snapshot = %op.snapshot_id, job = %op.reference, kind = op.kind.as_str(), reason = %reason, "operation failed while nobody followed it; recorded");
                            done.push((op.id, Some(reason)));
                        }
                        OpStatus::Pending { .. } => settled.pending += 1,
                    }
                }
                let rows: Vec<(i64, Option<&str>)> =
                    done.iter().map(|(id, e)| (*id, e.as_deref())).collect();
                self.state.finish_ops(&rows, Utc::now()).await?;
                settled.finished += rows.len();
            }
        }
        Ok(settled)
    }
}
