//! Crash recovery: taking up runs no task carries (at start-up and by the
//! daemon's sweep) and following their operations to the end.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tracing::{error, info, warn};

use super::{report, Claim, Engine, EngineError, ProviderSlot, RunOutcome, RunReport};
use crate::config::{Config, Policy};
use crate::observe::events::{self, LedgerRowUnreadable};
use crate::providers::{self, Marker};
use crate::state::{LedgerState, OpRow, RunRow, RunState};

impl Engine {
    /// Take up the work no task of this process is carrying out: every run
    /// open in the ledger without a claim, left by an earlier process or
    /// abandoned by this one (an interrupted one-shot command, a ledger
    /// write that failed at the end of a run, a panicked task), and, with
    /// `with_ops` (at start-up), every operation in flight that no open run
    /// waits for (deletes, restores), which the pollers then follow to the
    /// end. Intents without ids are reconciled by name before anything is
    /// created again.
    ///
    /// Returns one future per run taken up, carrying it to its end; the
    /// caller runs them like any other run, so their outcomes are alerted.
    pub async fn take_up_abandoned(
        self: &Arc<Self>,
        config: &Config,
        with_ops: bool,
    ) -> Result<Vec<BoxFuture<'static, RunReport>>, EngineError> {
        let mut claimed = Vec::new();
        {
            // Read and claim under the gate `begin_slot` claims under, so a
            // run being started now is never taken for abandoned.
            let _gate = self.claiming.lock().await;
            let (runs, unreadable) = self.state.open_runs_readable().await?;
            self.report_unreadable(unreadable);
            let mut taken = Vec::new();
            {
                let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
                for run in runs {
                    if let Some(claim) = Claim::take(&self.active, &mut active, run.id) {
                        taken.push((run, claim));
                    }
                }
            }
            // A task may have finished its run and let go of its claim
            // after the read: it records the end before it lets go, so a
            // run read again and still open is truly abandoned.
            for (run, claim) in taken {
                let run = self.state.run(run.id).await?;
                if run.state.is_open() {
                    claimed.push((run, claim));
                }
            }
        }
        if claimed.is_empty() && !with_ops {
            return Ok(Vec::new());
        }
        let (ops, unreadable) = self.state.ops_in_flight_readable().await?;
        self.report_unreadable(unreadable);
        if !ops.is_empty() || !claimed.is_empty() {
            info!(
                operations = ops.len(),
                runs = claimed.len(),
                "taking up work left in flight"
            );
        }
        let policies: BTreeMap<&str, &Policy> = config
            .policies
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect();
        let mut run_ops: BTreeMap<i64, Vec<OpRow>> = BTreeMap::new();
        let open: HashSet<i64> = claimed.iter().map(|(r, _)| r.id).collect();
        for op in ops {
            if open.contains(&op.run_id) && op.kind == providers::OpKind::Create {
                run_ops.entry(op.run_id).or_default().push(op);
            } else if !with_ops {
                // Followed by the task that started it, or taken up at
                // start-up; a poller never drops a watch.
            } else if let Some(ps) = self.slot_by_name(&op.provider) {
                let max = policies
                    .get(op.policy.as_str())
                    .map(|p| p.timing.poll_max_interval)
                    .unwrap_or(Duration::from_secs(120));
                // The poller records the outcome; nobody needs to wait.
                drop(ps.poller.watch(op, max));
            } else {
                warn!(provider = %op.provider, operation = %op.reference, "operation of a provider no longer configured; left in the ledger");
            }
        }
        let mut out: Vec<BoxFuture<'static, RunReport>> = Vec::new();
        for (run, claim) in claimed {
            let ops = run_ops.remove(&run.id).unwrap_or_default();
            let Some(policy) = policies.get(run.policy.as_str()).map(|p| (*p).clone()) else {
                warn!(policy = %run.policy, target = %run.target, "open run of a policy no longer configured; marked failed");
                self.state
                    .set_run_state(
                        run.id,
                        RunState::Failed,
                        Some("policy removed from the configuration"),
                        Utc::now(),
                    )
                    .await?;
                continue;
            };
            let engine = self.clone();
            out.push(Box::pin(async move {
                let _claim = claim;
                let (target, slot) = (run.target.clone(), run.slot);
                let outcome = match engine.resume_run(&policy, run, ops).await {
                    Ok(outcome) => outcome,
                    Err(EngineError::Shutdown) => RunOutcome::Interrupted,
                    Err(e) => {
                        error!(policy = %policy.name, target = %target, error = %e, "resuming a run failed");
                        RunOutcome::Failed(e.to_string())
                    }
                };
                report(&policy, &target, slot, outcome)
            }));
        }
        Ok(out)
    }

    /// One corrupt row never stops recovery: it is left out, logged once
    /// (with its id, for the operator to mend) and counted.
    pub(super) fn report_unreadable(&self, rows: Vec<crate::state::Unreadable>) {
        let mut seen = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        for row in rows {
            if seen.insert((row.table, row.id)) {
                events::emit(LedgerRowUnreadable {
                    table: row.table,
                    row: row.id,
                    problem: &row.problem,
                });
            }
        }
    }

    pub(super) async fn resume_run(
        self: &Arc<Self>,
        policy: &Policy,
        run: RunRow,
        ops: Vec<OpRow>,
    ) -> Result<RunOutcome, EngineError> {
        let ps = self.slot(policy)?;
        let target = run.target.as_str();
        let deadline = policy.timing.deadline(run.started_at);
        info!(policy = %policy.name, target, slot = %run.slot, state = run.state.as_str(), "resuming run");
        let result = match run.state {
            RunState::Intent => {
                // Whether the create reached the cloud is unknown: the
                // ambiguous path reconciles by name first (or lets a
                // reconciling create make only what is missing), and
                // creates nothing past the run's timeout.
                let marker = Marker {
                    policy: policy.name.clone(),
                    target: target.to_string(),
                    slot: run.slot,
                };
                self.create_with_hooks(
                    &ps, policy, target, run.id, &marker, &run.name, run.full, deadline, true,
                )
                .await
            }
            RunState::Creating => {
                let awaited = if ops.is_empty() {
                    Ok(())
                } else {
                    self.await_ops(&ps, policy, ops).await
                };
                match awaited {
                    Ok(()) => {
                        self.settle_run_snapshots(&ps, policy, run.id, target, deadline)
                            .await
                    }
                    failed => failed,
                }
            }
            _ => Ok(()),
        };
        self.conclude(&ps, policy, target, run.id, result, None)
            .await
    }

    /// A run is good only when every snapshot it made is good. After the
    /// operations it waited for: a snapshot adopted by name while still
    /// creating has no operation (it was followed by listing when the
    /// process died), so it is followed by listing again; one that already
    /// ended failed (its outcome recorded while a sibling was still being
    /// followed) fails the run.
    pub(super) async fn settle_run_snapshots(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        run_id: i64,
        target: &str,
        deadline: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mut bad = Vec::new();
        for s in self.state.run_snapshots(run_id).await? {
            match s.state {
                LedgerState::Available => {}
                LedgerState::Creating => {
                    match self
                        .follow_listed(ps, policy, target, s.id, &s.snapshot_id, deadline)
                        .await
                    {
                        Ok(()) => {}
                        Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
                        Err(e) => bad.push(e.to_string()),
                    }
                }
                other => bad.push(match &s.error {
                    Some(e) => format!("snapshot {} is {}: {e}", s.snapshot_id, other.as_str()),
                    None => format!("snapshot {} is {}", s.snapshot_id, other.as_str()),
                }),
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Failed(bad.join("; ")))
        }
    }
}
