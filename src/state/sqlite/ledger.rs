//! [`Ledger`] for [`SqliteLedger`]: each call runs the synchronous method
//! of the same name on tokio's blocking pool, with its arguments owned, so
//! a runtime thread never waits on the disk or on another writer's lock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteLedger;
use crate::providers::{Created, SecretStore, StoredSecret};
use crate::state::{
    AuditEntry, Begin, DeleteHold, Delivered, HoldPlaced, Ledger, LedgerState, NewRun, OpRow,
    OwedHook, Pause, PollPlan, Result, RunRow, RunState, SnapshotHold, SnapshotRow, StateError,
    TargetSummary, Trimmed, Unreadable,
};

impl SqliteLedger {
    /// Run `call` on this ledger on the blocking pool.
    async fn blocking<T, F>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteLedger) -> Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || call(&db))
            .await
            .map_err(|e| StateError::Lost(e.to_string()))?
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

#[async_trait]
impl Ledger for SqliteLedger {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    async fn schema_version(&self) -> Result<i64> {
        self.blocking(SqliteLedger::schema_version).await
    }

    async fn probe_writable(&self) -> Result<()> {
        self.blocking(SqliteLedger::probe_writable).await
    }

    async fn last_slot(&self, policy: &str) -> Result<Option<DateTime<Utc>>> {
        let policy = policy.to_owned();
        self.blocking(move |db| SqliteLedger::last_slot(db, &policy))
            .await
    }

    async fn set_last_slot(&self, policy: &str, slot: DateTime<Utc>) -> Result<()> {
        let policy = policy.to_owned();
        self.blocking(move |db| SqliteLedger::set_last_slot(db, &policy, slot))
            .await
    }

    async fn begin_run(&self, run: &NewRun, now: DateTime<Utc>) -> Result<Begin> {
        let run = run.clone();
        self.blocking(move |db| SqliteLedger::begin_run(db, &run, now))
            .await
    }

    async fn begin_runs(&self, runs: &[NewRun], now: DateTime<Utc>) -> Result<Vec<Begin>> {
        let runs = runs.to_vec();
        self.blocking(move |db| SqliteLedger::begin_runs(db, &runs, now))
            .await
    }

    async fn run(&self, run_id: i64) -> Result<RunRow> {
        self.blocking(move |db| SqliteLedger::run(db, run_id)).await
    }

    async fn open_runs(&self) -> Result<Vec<RunRow>> {
        self.blocking(SqliteLedger::open_runs).await
    }

    async fn open_runs_readable(&self) -> Result<(Vec<RunRow>, Vec<Unreadable>)> {
        self.blocking(SqliteLedger::open_runs_readable).await
    }

    async fn runs_for(&self, policy: &str, target: &str, limit: u32) -> Result<Vec<RunRow>> {
        let (policy, target) = (policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::runs_for(db, &policy, &target, limit))
            .await
    }

    async fn set_run_state(
        &self,
        run_id: i64,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let error = owned(error);
        self.blocking(move |db| {
            SqliteLedger::set_run_state(db, run_id, state, error.as_deref(), now)
        })
        .await
    }

    async fn record_created(
        &self,
        run_id: i64,
        created: &[Created],
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<Vec<OpRow>> {
        let created = created.to_vec();
        self.blocking(move |db| SqliteLedger::record_created(db, run_id, &created, now, plan))
            .await
    }

    async fn adopt_snapshot(
        &self,
        run_id: i64,
        snapshot_id: &str,
        state: LedgerState,
        now: DateTime<Utc>,
    ) -> Result<SnapshotRow> {
        let snapshot_id = snapshot_id.to_owned();
        self.blocking(move |db| SqliteLedger::adopt_snapshot(db, run_id, &snapshot_id, state, now))
            .await
    }

    async fn snapshot(&self, row_id: i64) -> Result<SnapshotRow> {
        self.blocking(move |db| SqliteLedger::snapshot(db, row_id))
            .await
    }

    async fn run_snapshots(&self, run_id: i64) -> Result<Vec<SnapshotRow>> {
        self.blocking(move |db| SqliteLedger::run_snapshots(db, run_id))
            .await
    }

    async fn live_snapshots(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<Vec<SnapshotRow>> {
        let key = (provider.to_owned(), policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::live_snapshots(db, &key.0, &key.1, &key.2))
            .await
    }

    async fn all_snapshots(&self) -> Result<Vec<SnapshotRow>> {
        self.blocking(SqliteLedger::all_snapshots).await
    }

    async fn mark_deleted(&self, row_id: i64, now: DateTime<Utc>) -> Result<()> {
        self.blocking(move |db| SqliteLedger::mark_deleted(db, row_id, now))
            .await
    }

    async fn set_snapshot_state(
        &self,
        row_id: i64,
        state: LedgerState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let error = owned(error);
        self.blocking(move |db| {
            SqliteLedger::set_snapshot_state(db, row_id, state, error.as_deref(), now)
        })
        .await
    }

    async fn begin_delete(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        let reference = reference.to_owned();
        self.blocking(move |db| SqliteLedger::begin_delete(db, row_id, &reference, now, plan))
            .await
    }

    async fn begin_restore(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        let reference = reference.to_owned();
        self.blocking(move |db| SqliteLedger::begin_restore(db, row_id, &reference, now, plan))
            .await
    }

    async fn snapshots_being_restored(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashSet<String>> {
        let key = (provider.to_owned(), policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::snapshots_being_restored(db, &key.0, &key.1, &key.2))
            .await
    }

    async fn op(&self, id: i64) -> Result<OpRow> {
        self.blocking(move |db| SqliteLedger::op(db, id)).await
    }

    async fn ops_in_flight_count(&self) -> Result<usize> {
        self.blocking(SqliteLedger::ops_in_flight_count).await
    }

    async fn ops_in_flight(&self) -> Result<Vec<OpRow>> {
        self.blocking(SqliteLedger::ops_in_flight).await
    }

    async fn ops_in_flight_readable(&self) -> Result<(Vec<OpRow>, Vec<Unreadable>)> {
        self.blocking(SqliteLedger::ops_in_flight_readable).await
    }

    async fn finish_op(&self, id: i64, error: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        let error = owned(error);
        self.blocking(move |db| SqliteLedger::finish_op(db, id, error.as_deref(), now))
            .await
    }

    async fn finish_ops(&self, outcomes: &[(i64, Option<&str>)], now: DateTime<Utc>) -> Result<()> {
        let outcomes: Vec<(i64, Option<String>)> =
            outcomes.iter().map(|&(id, e)| (id, owned(e))).collect();
        self.blocking(move |db| {
            let outcomes: Vec<(i64, Option<&str>)> =
                outcomes.iter().map(|(id, e)| (*id, e.as_deref())).collect();
            SqliteLedger::finish_ops(db, &outcomes, now)
        })
        .await
    }

    async fn reschedule_ops(&self, next: &[(i64, DateTime<Utc>, Duration)]) -> Result<()> {
        let next = next.to_vec();
        self.blocking(move |db| SqliteLedger::reschedule_ops(db, &next))
            .await
    }

    async fn hold_deletes(
        &self,
        policy: &str,
        target: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let key = (policy.to_owned(), target.to_owned(), reason.to_owned());
        self.blocking(move |db| SqliteLedger::hold_deletes(db, &key.0, &key.1, &key.2, now))
            .await
    }

    async fn delete_hold(&self, policy: &str, target: &str) -> Result<Option<DeleteHold>> {
        let (policy, target) = (policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::delete_hold(db, &policy, &target))
            .await
    }

    async fn delete_holds(&self) -> Result<Vec<DeleteHold>> {
        self.blocking(SqliteLedger::delete_holds).await
    }

    async fn release_deletes(&self, policy: &str, target: &str) -> Result<bool> {
        let (policy, target) = (policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::release_deletes(db, &policy, &target))
            .await
    }

    async fn failed_deletes(&self) -> Result<Vec<SnapshotRow>> {
        self.blocking(SqliteLedger::failed_deletes).await
    }

    async fn policy_rules(&self) -> Result<HashMap<String, String>> {
        self.blocking(SqliteLedger::policy_rules).await
    }

    async fn record_policy_rules(
        &self,
        rules: &[(&str, &str, &str)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let rules: Vec<(String, String, String)> = rules
            .iter()
            .map(|&(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
            .collect();
        self.blocking(move |db| {
            let rules: Vec<(&str, &str, &str)> = rules
                .iter()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
                .collect();
            SqliteLedger::record_policy_rules(db, &rules, now)
        })
        .await
    }

    async fn snapshot_sources(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashMap<i64, String>> {
        let key = (provider.to_owned(), policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::snapshot_sources(db, &key.0, &key.1, &key.2))
            .await
    }

    async fn all_snapshot_sources(&self) -> Result<HashMap<i64, String>> {
        self.blocking(SqliteLedger::all_snapshot_sources).await
    }

    async fn record_sizes(&self, sizes: &[(i64, u64)]) -> Result<()> {
        let sizes = sizes.to_vec();
        self.blocking(move |db| SqliteLedger::record_sizes(db, &sizes))
            .await
    }

    async fn record_snapshot_sources(&self, sources: &[(i64, &str)]) -> Result<()> {
        let sources: Vec<(i64, String)> =
            sources.iter().map(|&(id, s)| (id, s.to_owned())).collect();
        self.blocking(move |db| {
            let sources: Vec<(i64, &str)> =
                sources.iter().map(|(id, s)| (*id, s.as_str())).collect();
            SqliteLedger::record_snapshot_sources(db, &sources)
        })
        .await
    }

    async fn record_alert_delivered(
        &self,
        policy: &str,
        target: &str,
        kind: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let key = (policy.to_owned(), target.to_owned(), kind.to_owned());
        self.blocking(move |db| {
            SqliteLedger::record_alert_delivered(db, &key.0, &key.1, &key.2, at)
        })
        .await
    }

    async fn alerts_delivered(&self) -> Result<Delivered> {
        self.blocking(SqliteLedger::alerts_delivered).await
    }

    async fn newest_skipped(
        &self,
        policy: &str,
        target: &str,
    ) -> Result<Option<(DateTime<Utc>, Option<String>)>> {
        let (policy, target) = (policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::newest_skipped(db, &policy, &target))
            .await
    }

    async fn summaries(&self) -> Result<Vec<TargetSummary>> {
        self.blocking(SqliteLedger::summaries).await
    }

    async fn target_summary(&self, policy: &str, target: &str) -> Result<Option<TargetSummary>> {
        let (policy, target) = (policy.to_owned(), target.to_owned());
        self.blocking(move |db| SqliteLedger::target_summary(db, &policy, &target))
            .await
    }

    async fn owe_post_hook(
        &self,
        run_id: i64,
        command: &[String],
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (command, resource) = (command.to_vec(), resource.to_owned());
        self.blocking(move |db| SqliteLedger::owe_post_hook(db, run_id, &command, &resource, now))
            .await
    }

    async fn post_hook_ran(&self, run_id: i64) -> Result<bool> {
        self.blocking(move |db| SqliteLedger::post_hook_ran(db, run_id))
            .await
    }

    async fn post_hooks_owed(&self) -> Result<Vec<OwedHook>> {
        self.blocking(SqliteLedger::post_hooks_owed).await
    }

    async fn pause(
        &self,
        policy: Option<&str>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let (policy, reason, by) = (owned(policy), reason.to_owned(), by.to_owned());
        self.blocking(move |db| {
            SqliteLedger::pause(db, policy.as_deref(), &reason, &by, now, until)
        })
        .await
    }

    async fn resume(&self, policy: Option<&str>) -> Result<Option<Pause>> {
        let policy = owned(policy);
        self.blocking(move |db| SqliteLedger::resume(db, policy.as_deref()))
            .await
    }

    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<Pause>> {
        self.blocking(move |db| SqliteLedger::pauses(db, now)).await
    }

    async fn skip_runs(&self, runs: &[NewRun], why: &str, now: DateTime<Utc>) -> Result<Vec<bool>> {
        let (runs, why) = (runs.to_vec(), why.to_owned());
        self.blocking(move |db| SqliteLedger::skip_runs(db, &runs, &why, now))
            .await
    }

    async fn hold(&self, hold: &SnapshotHold, now: DateTime<Utc>) -> Result<HoldPlaced> {
        let hold = hold.clone();
        self.blocking(move |db| SqliteLedger::hold(db, &hold, now))
            .await
    }

    async fn release_hold(
        &self,
        policy: &str,
        target: &str,
        snapshot_id: Option<&str>,
    ) -> Result<Option<SnapshotHold>> {
        let (policy, target, snapshot_id) =
            (policy.to_owned(), target.to_owned(), owned(snapshot_id));
        self.blocking(move |db| {
            SqliteLedger::release_hold(db, &policy, &target, snapshot_id.as_deref())
        })
        .await
    }

    async fn holds(&self, now: DateTime<Utc>) -> Result<Vec<SnapshotHold>> {
        self.blocking(move |db| SqliteLedger::holds(db, now)).await
    }

    async fn claim_deletes(
        &self,
        rows: &[i64],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let rows = rows.to_vec();
        self.blocking(move |db| SqliteLedger::claim_deletes(db, &rows, until, now))
            .await
    }

    async fn drop_delete_claim(&self, row: i64) -> Result<()> {
        self.blocking(move |db| SqliteLedger::drop_delete_claim(db, row))
            .await
    }

    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        let entries = entries.to_vec();
        self.blocking(move |db| SqliteLedger::record_audit(db, &entries))
            .await
    }

    async fn audit_log(
        &self,
        since: DateTime<Utc>,
        policy: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        let policy = owned(policy);
        self.blocking(move |db| SqliteLedger::audit_log(db, since, policy.as_deref()))
            .await
    }

    async fn trim(&self, before: DateTime<Utc>) -> Result<Trimmed> {
        self.blocking(move |db| SqliteLedger::trim(db, before))
            .await
    }
}

#[async_trait]
impl SecretStore for SqliteLedger {
    async fn load_secret(
        &self,
        provider: &str,
        key: &str,
    ) -> std::result::Result<Option<StoredSecret>, String> {
        let (provider, key) = (provider.to_owned(), key.to_owned());
        crate::state::stored_secret(
            self.blocking(move |db| SqliteLedger::load_secret(db, &provider, &key))
                .await,
        )
    }

    async fn store_secret(
        &self,
        provider: &str,
        key: &str,
        secret: &StoredSecret,
        replaces: Option<&crate::config::Secret>,
    ) -> std::result::Result<(), String> {
        let (provider, key) = (provider.to_owned(), key.to_owned());
        let (value, seed) = (secret.value.expose().to_owned(), secret.seed.clone());
        let replaces = replaces.map(|r| r.expose().to_owned());
        let stored = self
            .blocking(move |db| {
                SqliteLedger::store_secret(
                    db,
                    &provider,
                    &key,
                    &value,
                    &seed,
                    replaces.as_deref(),
                    Utc::now(),
                )
            })
            .await;
        crate::state::secret_swapped(stored)
    }
}
