//! Following operations: a create or delete is told by its snapshot (from
//! a shared listing or one Get*Snapshot), by its operations when the
//! snapshot alone cannot tell; a restore by its operations.

use std::collections::HashMap;

use aws_sdk_lightsail::types::Operation;
use futures::StreamExt;

use super::ids::{Family, Listed};
use super::Lightsail;
use crate::providers::{ErrorKind, OpKind, OpStatus, OperationRef, ProviderError, SnapshotState};

/// What one poll still has to ask about a single operation.
enum Ask {
    /// Its snapshot, by Get*Snapshot (then its operations if need be).
    Snapshot(Family, String),
    /// Its operations, by GetOperation.
    Operations,
    /// Why its snapshot is in this error state, by GetOperation.
    WhyFailed(String),
}

/// Single-snapshot status calls in flight at once within one poll.
const POLL_CONCURRENCY: usize = 32;

impl Lightsail {
    /// Creates and deletes are told by the snapshot itself (a create is
    /// done when its snapshot is available, a delete when it is gone);
    /// their operations are read only to explain a snapshot that is
    /// missing after a create or still there after a delete. Per family,
    /// one shared full listing answers for every due operation once that
    /// is cheaper than one Get*Snapshot each ([`super::listing::SharedListing`]);
    /// restores are followed by their operations.
    pub(super) async fn poll_all(
        &self,
        ops: &[OperationRef],
    ) -> Result<Vec<OpStatus>, ProviderError> {
        let mut out: Vec<Option<OpStatus>> = vec![None; ops.len()];
        // Each operation's snapshot family, whose listing budget its single
        // calls count against.
        let parsed: Vec<_> = ops
            .iter()
            .map(|op| Family::parse_id(&op.snapshot_id, "poll"))
            .collect();
        let single = self.answer_from_listings(ops, &parsed, &mut out).await?;
        self.ask_singly(ops, &parsed, single, &mut out).await?;
        Ok(out
            .into_iter()
            .map(|s| s.unwrap_or(OpStatus::Pending { progress: None }))
            .collect())
    }

    /// The first phase: answers what a shared listing can, where a listing
    /// is worth its cost, and returns the operations still to ask about one
    /// by one.
    async fn answer_from_listings(
        &self,
        ops: &[OperationRef],
        parsed: &[Result<(Family, &str), ProviderError>],
        out: &mut [Option<OpStatus>],
    ) -> Result<Vec<(usize, Ask)>, ProviderError> {
        // Operations still to ask about one by one.
        let mut single: Vec<(usize, Ask)> = Vec::new();
        let mut by_family: [Vec<(usize, &str)>; 2] = Default::default();
        for (i, (op, id)) in ops.iter().zip(parsed).enumerate() {
            match id {
                _ if op.kind == OpKind::Restore => single.push((i, Ask::Operations)),
                Ok((family, name)) => by_family[family.index()].push((i, name)),
                Err(e) => {
                    out[i] = Some(OpStatus::Failed {
                        reason: e.message.clone(),
                    })
                }
            }
        }
        for family in [Family::Instance, Family::Disk] {
            let due = std::mem::take(&mut by_family[family.index()]);
            if due.is_empty() {
                continue;
            }
            if !self.listings[family.index()].prefers_listing(due.len()) {
                single.extend(
                    due.into_iter()
                        .map(|(i, name)| (i, Ask::Snapshot(family, name.to_string()))),
                );
                continue;
            }
            let all = self.list_fresh(family).await?;
            let listed: HashMap<&str, &Listed> = all.iter().map(|s| (s.name.as_str(), s)).collect();
            for (i, name) in due {
                match (ops[i].kind, listed.get(name)) {
                    (OpKind::Create, Some(found)) if found.state == SnapshotState::Failed => {
                        single.push((i, Ask::WhyFailed(found.raw_state.clone())))
                    }
                    (OpKind::Create, Some(found)) => out[i] = Some(confirm(&ops[i], Some(found))),
                    (OpKind::Delete, None) => out[i] = Some(OpStatus::Succeeded),
                    // Missing after a create, or still there after a
                    // delete: its operations tell why.
                    _ => single.push((i, Ask::Operations)),
                }
            }
        }
        Ok(single)
    }

    /// The second phase: the single asks, concurrently; each one's calls
    /// count against its family's listing budget.
    async fn ask_singly(
        &self,
        ops: &[OperationRef],
        parsed: &[Result<(Family, &str), ProviderError>],
        single: Vec<(usize, Ask)>,
        out: &mut [Option<OpStatus>],
    ) -> Result<(), ProviderError> {
        let answers: Vec<(usize, Answer)> = futures::stream::iter(single)
            .map(|(i, ask)| async move {
                let op = &ops[i];
                let answer = match ask {
                    Ask::Snapshot(family, name) => self.poll_snapshot(op, family, &name).await,
                    Ask::Operations => self.poll_operations(op).await.map(|s| (s, 1)),
                    Ask::WhyFailed(state) => self.why_failed(op, &state).await.map(|s| (s, 1)),
                };
                (i, answer)
            })
            .buffer_unordered(POLL_CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        let mut answered = 0;
        let asked = answers.len();
        for (i, answer) in answers {
            match answer {
                Ok((status, calls)) => {
                    answered += 1;
                    if let Ok((family, _)) = &parsed[i] {
                        self.listings[family.index()].spend(calls);
                    }
                    out[i] = Some(status);
                }
                // Asked again at the next poll; the poll fails only when
                // nothing could be asked at all.
                Err(e) => {
                    first_error.get_or_insert(e);
                    out[i] = Some(OpStatus::Pending { progress: None });
                }
            }
        }
        if let Some(e) = first_error {
            if answered == 0 && asked > 0 {
                return Err(e);
            }
            tracing::debug!(error = %e, answered, asked, "some Lightsail status calls failed; those are asked again");
        }
        Ok(())
    }

    /// One create or delete, told by Get*Snapshot, and by its operations
    /// when the snapshot alone cannot tell; with the number of calls made.
    pub(super) async fn poll_snapshot(
        &self,
        op: &OperationRef,
        family: Family,
        name: &str,
    ) -> Result<(OpStatus, usize), ProviderError> {
        let found = match self.get_snapshot(family, name).await {
            Ok(s) => Some(s),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match (op.kind, &found) {
            (OpKind::Create, Some(s)) if s.state == SnapshotState::Failed => {
                Ok((self.why_failed(op, &s.raw_state).await?, 2))
            }
            (OpKind::Create, Some(_)) | (OpKind::Delete, None) => {
                Ok((confirm(op, found.as_ref()), 1))
            }
            _ => Ok((self.poll_operations(op).await?, 2)),
        }
    }

    /// A create whose snapshot is in an error state: failed, in the
    /// operation's words where it has any.
    pub(super) async fn why_failed(
        &self,
        op: &OperationRef,
        state: &str,
    ) -> Result<OpStatus, ProviderError> {
        let snapshot = format!("snapshot {} is in state {state:?}", op.snapshot_id);
        Ok(OpStatus::Failed {
            reason: match self.poll_operations(op).await? {
                OpStatus::Failed { reason } => format!("{reason}; {snapshot}"),
                _ => snapshot,
            },
        })
    }

    /// An operation whose snapshot did not settle it: any failed operation
    /// fails it, else it is still pending (a restore: done when all its
    /// operations succeeded).
    pub(super) async fn poll_operations(
        &self,
        op: &OperationRef,
    ) -> Result<OpStatus, ProviderError> {
        let states = self.operations(&split_ids(&op.operation)).await?;
        Ok(match combined(&op.operation, &states) {
            OpState::Failed(reason) => OpStatus::Failed { reason },
            OpState::Succeeded if op.kind == OpKind::Restore => OpStatus::Succeeded,
            _ => OpStatus::Pending { progress: None },
        })
    }

    /// Where each operation id stands; an id GetOperation does not know is
    /// a failure of that operation, not of the whole poll.
    pub(super) async fn operations(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, OpState>, ProviderError> {
        let mut out = HashMap::new();
        for id in ids {
            let answer = self
                .client
                .call("GetOperation", |c| {
                    c.get_operation().operation_id(id).send()
                })
                .await;
            let state = match answer {
                Ok(o) => match o.operation() {
                    Some(op) => op_state(id, op),
                    None => OpState::Running,
                },
                Err(e) if e.kind == ErrorKind::NotFound => OpState::Failed(format!(
                    "operation {id} is unknown to GetOperation: {}",
                    e.message
                )),
                Err(e) => return Err(e),
            };
            out.insert(id.clone(), state);
        }
        Ok(out)
    }
}

/// Where one operation (or a comma-joined group) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OpState {
    Running,
    Succeeded,
    Failed(String),
}

/// `isTerminal` decides; success is `Succeeded` or `Completed`, `Failed`
/// is a failure (with `errorCode`/`errorDetails`), and a terminal status
/// we do not know is a failure too, never a success.
pub(super) fn op_state(id: &str, op: &Operation) -> OpState {
    let status = op.status().map(|s| s.as_str()).unwrap_or("");
    let what = op
        .operation_type()
        .map(|t| format!(" ({} on {})", t.as_str(), op.resource_name().unwrap_or("?")))
        .unwrap_or_default();
    let failed = || {
        let code = op.error_code().filter(|c| !c.is_empty());
        let details = op.error_details().filter(|d| !d.is_empty());
        let mut reason = format!("operation {id}{what} failed");
        if let Some(c) = code {
            reason.push_str(&format!(": errorCode {c}"));
        }
        if let Some(d) = details {
            reason.push_str(&format!(": {d}"));
        }
        OpState::Failed(reason)
    };
    match (op.is_terminal(), status) {
        (_, "Failed") => failed(),
        (Some(true), "Succeeded" | "Completed") => OpState::Succeeded,
        (Some(true), other) => {
            OpState::Failed(format!("operation {id}{what} ended with status {other:?}"))
        }
        _ => OpState::Running,
    }
}

/// All operations of one reference: any failure fails it, any running one
/// keeps it pending, all succeeded (or none to follow) succeeds.
pub(super) fn combined(operation: &str, states: &HashMap<String, OpState>) -> OpState {
    let mut reasons = Vec::new();
    let mut running = false;
    for id in split_ids(operation) {
        match states.get(&id) {
            Some(OpState::Failed(r)) => reasons.push(r.clone()),
            Some(OpState::Succeeded) => {}
            Some(OpState::Running) | None => running = true,
        }
    }
    if !reasons.is_empty() {
        OpState::Failed(reasons.join("; "))
    } else if running {
        OpState::Running
    } else {
        OpState::Succeeded
    }
}

/// After every operation succeeded: the snapshot's own state decides.
pub(super) fn confirm(op: &OperationRef, found: Option<&Listed>) -> OpStatus {
    let id = &op.snapshot_id;
    match op.kind {
        OpKind::Create => match found {
            // Just created and not listed yet (eventual consistency): wait.
            None => OpStatus::Pending { progress: None },
            Some(s) => match s.state {
                SnapshotState::Available => OpStatus::Succeeded,
                SnapshotState::Failed => OpStatus::Failed {
                    reason: format!("snapshot {id} is in state {:?}", s.raw_state),
                },
                _ => OpStatus::Pending {
                    progress: s.progress,
                },
            },
        },
        OpKind::Delete => match found {
            None => OpStatus::Succeeded,
            Some(_) => OpStatus::Pending { progress: None },
        },
        OpKind::Restore => OpStatus::Succeeded,
    }
}

pub(super) fn operation_ids(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .filter_map(|o| o.id())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn split_ids(operation: &str) -> Vec<String> {
    operation
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// One single ask's status, and how many calls it took.
type Answer = Result<(OpStatus, usize), ProviderError>;
