//! A run: the intents written before any call, the create, following its
//! operations to the end, and concluding (ledger, metrics, then pruning).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tracing::{error, info, warn};

use super::hooks::Thaw;
use super::{
    ledger_state, note_throttle, poll_plan, report, too_late, Begun, Claim, Engine, EngineError,
    Keep, OpOutcome, ProviderSlot, PruneMode, RetryPolicy, RunOutcome, RunReport, Started,
};
use crate::config::Policy;
use crate::hooks::Outcome;
use crate::observe::events::{
    self, RunFailed, RunSucceeded, SlotOverlapped, SlotSkippedOnPurpose, SnapshotsGood,
};
use crate::providers::{
    self, CreateRequest, Created, ErrorKind, Marker, ProviderError, RemoteSnapshot, SnapshotState,
};
use crate::state::{AuditAction, Begin, LedgerState, NewRun, OpRow, RunState, SnapshotHold};

impl Engine {
    /// Run one (policy, target, slot) from intent to pruning.
    pub async fn run(
        self: &Arc<Self>,
        policy: &Policy,
        target: &str,
        slot: DateTime<Utc>,
    ) -> RunReport {
        self.run_keeping(policy, target, slot, None).await
    }

    /// [`Engine::run`], holding what the run makes (`keep`) before its
    /// prune.
    pub async fn run_keeping(
        self: &Arc<Self>,
        policy: &Policy,
        target: &str,
        slot: DateTime<Utc>,
        keep: Option<Keep>,
    ) -> RunReport {
        match self.begin(policy, target, slot).await {
            Ok(Ok(mut begun)) => {
                begun.keep = keep;
                self.execute(policy, begun).await
            }
            Ok(Err(outcome)) => report(policy, target, slot, outcome),
            Err(e) => report(policy, target, slot, RunOutcome::Failed(e.to_string())),
        }
    }

    /// Record the intent for one (policy, target, slot), before any API
    /// call. `Ok(Err(outcome))` when the slot is not to be run (already
    /// recorded, or overlapping a run in flight).
    pub async fn begin(
        &self,
        policy: &Policy,
        target: &str,
        slot: DateTime<Utc>,
    ) -> Result<Result<Begun, RunOutcome>, EngineError> {
        let mut begun = self
            .begin_slot(policy, std::slice::from_ref(&target.to_string()), slot)
            .await?;
        Ok(begun
            .pop()
            .map(|(_, b)| b)
            .unwrap_or(Err(RunOutcome::AlreadyDone)))
    }

    /// [`Engine::begin`] for many targets of one slot: every intent is
    /// written in one transaction (one durable commit for the whole slot),
    /// so a slot of thousands of targets starts without a disk flush per
    /// target. On error nothing of the slot is recorded and nothing runs.
    /// Record `slot` of `targets` as skipped on purpose (`reason`: the
    /// metric's label, `paused`; `why`: the run's note), starting nothing.
    /// A slot already recorded is left as it is.
    pub async fn skip_slot(
        &self,
        policy: &Policy,
        targets: &[String],
        slot: DateTime<Utc>,
        reason: &'static str,
        why: &str,
    ) -> Result<(), EngineError> {
        let ps = self.slot(policy)?;
        let runs: Vec<NewRun> = targets
            .iter()
            .map(|target| NewRun {
                policy: policy.name.clone(),
                target: target.clone(),
                provider: policy.provider.clone(),
                slot,
                name: ps.provider.snapshot_name(&Marker {
                    policy: policy.name.clone(),
                    target: target.clone(),
                    slot,
                }),
                // Nothing is made: no chain is started or continued.
                full: false,
            })
            .collect();
        let recorded = self.state.skip_runs(&runs, why, Utc::now()).await?;
        for (run, new) in runs.iter().zip(recorded) {
            if new {
                events::emit(SlotSkippedOnPurpose {
                    policy: &policy.name,
                    target: &run.target,
                    slot,
                    reason,
                    why,
                });
            }
        }
        Ok(())
    }

    pub async fn begin_slot(
        &self,
        policy: &Policy,
        targets: &[String],
        slot: DateTime<Utc>,
    ) -> Result<Vec<(String, Started)>, EngineError> {
        let ps = self.slot(policy)?;
        let mut planned = Vec::with_capacity(targets.len());
        for target in targets {
            let marker = Marker {
                policy: policy.name.clone(),
                target: target.clone(),
                slot,
            };
            let name = ps.provider.snapshot_name(&marker);
            let full = self.next_is_full(policy, target).await?;
            planned.push((marker, name, full));
        }
        let now = Utc::now();
        let runs: Vec<NewRun> = planned
            .iter()
            .map(|(marker, name, full)| NewRun {
                policy: policy.name.clone(),
                target: marker.target.clone(),
                provider: policy.provider.clone(),
                slot,
                name: name.clone(),
                full: *full,
            })
            .collect();
        // The new runs are claimed under the same gate as the write, so a
        // sweep for abandoned runs never sees them unclaimed.
        let gate = self.claiming.lock().await;
        let begins = self.state.begin_runs(&runs, now).await?;
        let claims: Vec<Option<Claim>> = {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            begins
                .iter()
                .map(|b| match b {
                    Begin::Started(id) => Claim::take(&self.active, &mut active, *id),
                    _ => None,
                })
                .collect()
        };
        drop(gate);
        drop(runs);
        let mut out = Vec::with_capacity(planned.len());
        for (((marker, name, full), begin), claim) in planned.into_iter().zip(begins).zip(claims) {
            let target = marker.target.clone();
            let outcome = match (begin, claim) {
                (Begin::Started(run_id), Some(claim)) => {
                    info!(policy = %policy.name, target = %target, provider = %policy.provider, slot = %slot, snapshot_name = %name, full, "run started");
                    Ok(Begun {
                        run_id,
                        marker,
                        name,
                        full,
                        started: now,
                        _claim: Arc::new(claim),
                        keep: None,
                    })
                }
                (Begin::Started(run_id), None) => {
                    // A new row id cannot be claimed already; never run
                    // one run twice whatever happened.
                    error!(policy = %policy.name, target = %target, run = run_id, "new run is already claimed; not run twice");
                    Err(RunOutcome::AlreadyDone)
                }
                (Begin::AlreadyRecorded, _) => {
                    info!(policy = %policy.name, target = %target, slot = %slot, "slot already recorded; not run again");
                    Err(RunOutcome::AlreadyDone)
                }
                (Begin::Overlap { running_slot }, _) => {
                    let why = format!("previous run (slot {running_slot}) still in flight");
                    events::emit(SlotOverlapped {
                        policy: &policy.name,
                        target: &target,
                        slot,
                        why: &why,
                    });
                    Err(RunOutcome::Skipped(why))
                }
            };
            out.push((target, outcome));
        }
        Ok(out)
    }

    /// Carry a recorded intent through create, poll and prune.
    pub async fn execute(self: &Arc<Self>, policy: &Policy, begun: Begun) -> RunReport {
        let target = begun.marker.target.clone();
        let slot = begun.marker.slot;
        let outcome = match self.execute_inner(policy, begun).await {
            Ok(outcome) => outcome,
            Err(EngineError::Shutdown) => RunOutcome::Interrupted,
            Err(e) => RunOutcome::Failed(e.to_string()),
        };
        report(policy, &target, slot, outcome)
    }

    pub(super) async fn execute_inner(
        self: &Arc<Self>,
        policy: &Policy,
        begun: Begun,
    ) -> Result<RunOutcome, EngineError> {
        let ps = self.slot(policy)?;
        let target = begun.marker.target.as_str();
        if !policy.timing.jitter.is_zero() {
            let delay = rand::rng().random_range(Duration::ZERO..=policy.timing.jitter);
            self.or_shutdown(tokio::time::sleep(delay)).await?;
        }
        let deadline = begun.started
            + chrono::Duration::from_std(policy.timing.timeout)
                .unwrap_or(chrono::Duration::hours(2));
        let result = self
            .create_with_hooks(
                &ps,
                policy,
                target,
                begun.run_id,
                &begun.marker,
                &begun.name,
                begun.full,
                deadline,
                false,
            )
            .await;
        self.conclude(
            &ps,
            policy,
            target,
            begun.run_id,
            result,
            begun.keep.as_ref(),
        )
        .await
    }

    /// Decide whether the next snapshot of a target starts a new chain.
    pub(super) async fn next_is_full(
        &self,
        policy: &Policy,
        target: &str,
    ) -> Result<bool, EngineError> {
        let Some(every) = policy.full_every else {
            return Ok(true);
        };
        let snaps = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)
            .await?;
        // Count runs (slots), not rows: an instance target makes one
        // snapshot per volume in the same run.
        let mut runs: Vec<(DateTime<Utc>, bool)> = snaps
            .iter()
            .filter(|s| s.state == LedgerState::Available)
            .map(|s| (s.slot, s.full))
            .collect();
        runs.dedup_by_key(|r| r.0);
        let since_full = runs.iter().rev().take_while(|r| !r.1).count();
        let has_full = runs.iter().any(|r| r.1);
        Ok(!has_full || since_full + 1 >= every as usize)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_and_follow(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        run_id: i64,
        marker: &Marker,
        name: &str,
        full: bool,
        deadline: DateTime<Utc>,
        ambiguous: bool,
        thaw: &Thaw<'_>,
    ) -> Result<(), EngineError> {
        let _permit = self
            .or_shutdown(ps.in_flight.clone().acquire_owned())
            .await?
            .map_err(|_| EngineError::Failed("provider closed".into()))?;
        let request = CreateRequest {
            resource: policy.resource,
            target: target.to_string(),
            name: name.to_string(),
            marker: marker.clone(),
            full,
            volume_ids: policy.targets.volume_ids.clone(),
        };
        let retry = RetryPolicy::for_poll_interval(
            policy.timing.poll_interval,
            policy.timing.poll_max_interval,
        );
        // A provider whose create finds this slot's snapshots itself is
        // called again after an ambiguous answer: it makes only what is
        // missing (a target of several volumes is never left part-made).
        let reconciles = ps.provider.capabilities().create_reconciles;
        let mut attempt = 0u32;
        let mut ambiguous = ambiguous;
        let created = loop {
            attempt += 1;
            let past_deadline = Utc::now() >= deadline;
            if ambiguous && (!reconciles || past_deadline) {
                // The previous attempt may have reached the cloud: look the
                // name up before creating again, so no slot gets two.
                if let Some(outcome) = self
                    .adopt_existing(ps, policy, target, run_id, marker.slot, deadline)
                    .await?
                {
                    if reconciles {
                        // What was found is tracked, but may not be every
                        // volume, and no more may be made now.
                        outcome?;
                        return Err(too_late(policy, "every volume's snapshot was made"));
                    }
                    return outcome;
                }
            }
            if past_deadline {
                // Waiting for jitter, for a `max_in_flight` permit or for
                // retries counts against the run's timeout: nothing is
                // started that could only be written off as timed out.
                return Err(too_late(policy, "the snapshot was started"));
            }
            // A retry, or a permit that came late, may fall in a window.
            super::outside_blackout(policy)?;
            match self.or_shutdown(ps.provider.create(&request)).await? {
                Ok(created) if !created.is_empty() => break created,
                Ok(_) => {
                    return Err(EngineError::Failed(
                        "create call returned no snapshot".into(),
                    ))
                }
                Err(e) => {
                    note_throttle(policy, &e);
                    let now = Utc::now();
                    match retry.delay(attempt, &e, now, deadline) {
                        Some(delay) => {
                            warn!(policy = %policy.name, target, attempt, error = %e, retry_in = ?delay, "create failed; retrying");
                            ambiguous |= e.kind == providers::ErrorKind::Transient;
                            self.or_shutdown(tokio::time::sleep(delay)).await?;
                        }
                        None => return Err(e.into()),
                    }
                }
            }
        };
        let now = Utc::now();
        let ops = self
            .state
            .record_created(run_id, &created, now, poll_plan(policy, now, deadline))
            .await?;
        log_created(policy, target, &created);
        let why = format!(
            "slot {} of policy {} (snapshot {name}, {})",
            slot_text(marker.slot),
            policy.name,
            if full { "full" } else { "incremental" }
        );
        self.audit(
            created
                .iter()
                .map(|c| {
                    self.audit_entry(
                        AuditAction::Create,
                        &policy.name,
                        target,
                        &c.snapshot_id,
                        why.clone(),
                    )
                })
                .collect(),
        )
        .await;
        // The point in time is taken: thaw now, not when the job is done.
        thaw.run(Outcome::Accepted).await;
        self.await_ops(ps, policy, ops).await
    }

    /// Wait for create operations; any failure fails the run.
    pub(super) async fn await_ops(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        ops: Vec<OpRow>,
    ) -> Result<(), EngineError> {
        let waits: Vec<_> = ops
            .into_iter()
            .map(|op| ps.poller.watch(op, policy.timing.poll_max_interval))
            .collect();
        let mut failures = Vec::new();
        let mut timed_out = false;
        for w in waits {
            match self.or_shutdown(w).await? {
                Ok(OpOutcome::Succeeded) => {}
                Ok(OpOutcome::Failed(reason)) => failures.push(reason),
                Ok(OpOutcome::TimedOut(reason)) => {
                    timed_out = true;
                    failures.push(reason);
                }
                Err(_) => return Err(EngineError::Shutdown),
            }
        }
        match (failures.is_empty(), timed_out) {
            (true, _) => Ok(()),
            (false, true) => Err(EngineError::TimedOut(failures.join("; "))),
            (false, false) => Err(EngineError::Failed(failures.join("; "))),
        }
    }

    /// Follow a snapshot that has no operation reference (adopted by name)
    /// by listing the target until it is terminal.
    pub(super) async fn follow_listed(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        row: i64,
        snapshot_id: &str,
        deadline: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mut interval = policy.timing.poll_interval;
        loop {
            let listed = self.list(ps, policy, target, deadline).await?;
            let state = listed.iter().find(|s| s.id == snapshot_id).map(|s| s.state);
            let now = Utc::now();
            match state {
                Some(SnapshotState::Available) => {
                    self.state
                        .set_snapshot_state(row, LedgerState::Available, None, now)
                        .await?;
                    return Ok(());
                }
                Some(SnapshotState::Failed) | Some(SnapshotState::Gone) | None => {
                    let why = format!("snapshot {snapshot_id} ended failed or vanished");
                    self.state
                        .set_snapshot_state(row, LedgerState::Failed, Some(&why), now)
                        .await?;
                    return Err(EngineError::Failed(why));
                }
                Some(SnapshotState::Creating) | Some(SnapshotState::Deleting) => {}
            }
            if now >= deadline {
                let why = format!("timed out waiting for snapshot {snapshot_id}");
                self.state
                    .set_snapshot_state(row, LedgerState::Failed, Some(&why), now)
                    .await?;
                return Err(EngineError::Failed(why));
            }
            self.or_shutdown(tokio::time::sleep(interval)).await?;
            interval = (interval * 2).min(policy.timing.poll_max_interval);
        }
    }

    /// Record how a run ended and prune after a success.
    /// Hold every snapshot run `run_id` made (`snapshot --keep-for`), and
    /// record it in the audit trail.
    async fn hold_made(
        &self,
        policy: &Policy,
        target: &str,
        run_id: i64,
        keep: &Keep,
    ) -> Result<(), EngineError> {
        let now = Utc::now();
        for row in self.state.run_snapshots(run_id).await? {
            let hold = SnapshotHold {
                policy: policy.name.clone(),
                target: target.to_string(),
                snapshot_id: Some(row.snapshot_id.clone()),
                reason: keep.reason.clone(),
                by: keep.by.clone(),
                since: now,
                until: Some(keep.until),
            };
            self.state.hold(&hold, now).await?;
            info!(policy = %policy.name, target, snapshot = %row.snapshot_id, until = %keep.until, "held on demand");
            self.audit(vec![self.audit_entry(
                AuditAction::Hold,
                &policy.name,
                target,
                &row.snapshot_id,
                hold.describe(),
            )])
            .await;
        }
        Ok(())
    }

    pub(super) async fn conclude(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        run_id: i64,
        result: Result<(), EngineError>,
        keep: Option<&Keep>,
    ) -> Result<RunOutcome, EngineError> {
        let created = self.state.run_snapshots(run_id).await?.len();
        match result {
            Ok(()) => {}
            Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
            Err(EngineError::Blackout(why)) => {
                self.state
                    .set_run_state(run_id, RunState::Skipped, Some(&why), Utc::now())
                    .await?;
                let slot = self.state.run(run_id).await?.slot;
                events::emit(SlotSkippedOnPurpose {
                    policy: &policy.name,
                    target,
                    slot,
                    reason: "blackout",
                    why: &why,
                });
                return Ok(RunOutcome::Skipped(why));
            }
            Err(e) => {
                let msg = e.to_string();
                // The ledger first: whoever reads the log line and then
                // asks `status` sees the failure there too. The failure is
                // counted and logged even if the ledger cannot take it.
                let recorded = self
                    .state
                    .set_run_state(run_id, RunState::Failed, Some(&msg), Utc::now())
                    .await;
                events::emit(RunFailed {
                    policy: &policy.name,
                    target,
                    provider: &policy.provider,
                    reason: e.reason(),
                    error: &msg,
                });
                recorded?;
                return Ok(RunOutcome::Failed(msg));
            }
        }
        self.state
            .set_run_state(run_id, RunState::Pruning, None, Utc::now())
            .await?;
        events::emit(SnapshotsGood {
            policy: &policy.name,
            target,
            at: Utc::now(),
        });
        // What an on-demand run made is held before its prune, so it
        // counts towards no rule from the start.
        if let Some(keep) = keep {
            if let Err(e) = self.hold_made(policy, target, run_id, keep).await {
                let msg =
                    format!("the snapshot was taken but could not be held: {e}; nothing pruned");
                error!(policy = %policy.name, target, error = %msg, "hold failed");
                self.state
                    .set_run_state(run_id, RunState::Succeeded, Some(&msg), Utc::now())
                    .await?;
                return Ok(RunOutcome::Failed(msg));
            }
        }
        let report = match self
            .prune_with(ps, policy, target, PruneMode::Budgeted)
            .await
        {
            Ok(r) => r,
            Err(EngineError::Shutdown) => return Err(EngineError::Shutdown),
            Err(e) => {
                // The snapshot is good; pruning failed and will be tried
                // again after the next successful run.
                let msg = format!("pruning failed: {e}");
                error!(policy = %policy.name, target, error = %msg, "pruning failed");
                self.state
                    .set_run_state(run_id, RunState::Succeeded, Some(&msg), Utc::now())
                    .await?;
                return Ok(RunOutcome::Succeeded {
                    created,
                    deleted: 0,
                    held: None,
                });
            }
        };
        let kept_rows: Vec<_> = self
            .state
            .live_snapshots(&policy.provider, &policy.name, target)
            .await?
            .into_iter()
            .filter(|r| r.state == LedgerState::Available)
            .collect();
        let kept = kept_rows.len();
        // Unknown if any kept snapshot's size is: never a partial sum.
        let bytes_kept = kept_rows
            .iter()
            .map(|r| r.size_bytes)
            .sum::<Option<u64>>()
            .filter(|_| kept > 0);
        let mut notes = Vec::new();
        if !report.failed.is_empty() {
            notes.push(format!("some deletes failed: {}", report.failed.join("; ")));
        }
        if let Some(held) = &report.held_because {
            notes.push(held.reason.clone());
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        self.state
            .set_run_state(run_id, RunState::Succeeded, note.as_deref(), Utc::now())
            .await?;
        events::emit(RunSucceeded {
            policy: &policy.name,
            target,
            created,
            deleted: report.deleted,
            held: report.held.len(),
            kept,
            bytes_kept,
        });
        Ok(RunOutcome::Succeeded {
            created,
            deleted: report.deleted,
            held: report.held_because,
        })
    }

    /// Look for snapshots of this slot already on the cloud (an earlier
    /// attempt whose answer was lost). If there are any, adopt them into the
    /// ledger and follow them to the end: `Some(outcome)`. `None`: there are
    /// none, so creating is safe.
    pub(super) async fn adopt_existing(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        run_id: i64,
        slot: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<Option<Result<(), EngineError>>, EngineError> {
        let of_slot = |listed: Vec<RemoteSnapshot>| -> Vec<RemoteSnapshot> {
            listed
                .into_iter()
                .filter(|s| s.marker_slot == Some(slot) && s.state != SnapshotState::Gone)
                .collect()
        };
        let first = self.list(ps, policy, target, deadline).await?;
        let mut found = of_slot(first.clone());
        if found.is_empty() {
            // "Absent" decides a create: one listing is not proof (pages
            // shift while snapshots come and go as it is read), so it
            // takes two in a row that agree on the whole target.
            found = self
                .confirm_absent(ps, policy, target, deadline, first, of_slot)
                .await?;
            if found.is_empty() {
                return Ok(None);
            }
        }
        let mut rows = Vec::new();
        for f in &found {
            info!(policy = %policy.name, target, snapshot = %f.id, "found a snapshot of this slot on the cloud; adopting it");
            rows.push(
                self.state
                    .adopt_snapshot(run_id, &f.id, ledger_state(f.state), Utc::now())
                    .await?,
            );
            let why = format!(
                "slot {} of policy {}: found on the cloud after its create's answer was lost, adopted",
                slot_text(slot),
                policy.name
            );
            self.audit(vec![self.audit_entry(
                AuditAction::Create,
                &policy.name,
                target,
                &f.id,
                why,
            )])
            .await;
        }
        for (row, f) in rows.iter().zip(&found) {
            if let Err(e) = self
                .follow_listed(ps, policy, target, row.id, &f.id, deadline)
                .await
            {
                return Ok(Some(Err(e)));
            }
        }
        Ok(Some(Ok(())))
    }

    /// After a listing (`first`) without this slot's snapshot: list until
    /// two listings in a row show the same snapshots of the target, and
    /// return what the last one shows of the slot (empty: absent for sure).
    /// Any listing that shows the slot's snapshot ends the search.
    pub(super) async fn confirm_absent(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        deadline: DateTime<Utc>,
        first: Vec<RemoteSnapshot>,
        of_slot: impl Fn(Vec<RemoteSnapshot>) -> Vec<RemoteSnapshot>,
    ) -> Result<Vec<RemoteSnapshot>, EngineError> {
        const TRIES: usize = 5;
        let ids = |l: &[RemoteSnapshot]| -> std::collections::BTreeSet<String> {
            l.iter()
                .filter(|s| s.state != SnapshotState::Gone)
                .map(|s| s.id.clone())
                .collect()
        };
        let mut last = first;
        for _ in 0..TRIES {
            let again = self.list(ps, policy, target, deadline).await?;
            if ids(&again) == ids(&last) {
                return Ok(of_slot(again));
            }
            let found = of_slot(again.clone());
            if !found.is_empty() {
                return Ok(found);
            }
            last = again;
        }
        Err(EngineError::Provider(ProviderError::new(
            ErrorKind::Transient,
            "list",
            format!(
                "{TRIES} listings of {target} in a row disagree; cannot tell whether this slot's snapshot exists, so none is created"
            ),
        )))
    }
}

/// A slot as the audit trail names it: RFC 3339 to the second, UTC.
pub(super) fn slot_text(slot: DateTime<Utc>) -> String {
    slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn log_created(policy: &Policy, target: &str, created: &[Created]) {
    for c in created {
        info!(policy = %policy.name, target, provider = %policy.provider, snapshot = %c.snapshot_id, job = %c.operation, "snapshot creation started");
    }
}
