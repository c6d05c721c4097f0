//! [`Ledger`] for [`PgLedger`]: each call is the async method of the same
//! name.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgLedger;
use crate::providers::{Created, SecretStore, StoredSecret};
use crate::state::{
    AuditEntry, Begin, DeleteHold, Delivered, HoldPlaced, Ledger, LedgerState, NewRun, OpRow,
    OwedHook, Pause, PollPlan, Result, RunRow, RunState, SnapshotHold, SnapshotRow, TargetSummary,
    Trimmed, Unreadable,
};

#[async_trait]
impl Ledger for PgLedger {
    fn location(&self) -> String {
        PgLedger::location(self).to_string()
    }

    async fn schema_version(&self) -> Result<i64> {
        PgLedger::schema_version(self).await
    }

    async fn probe_writable(&self) -> Result<()> {
        PgLedger::probe_writable(self).await
    }

    async fn last_slot(&self, policy: &str) -> Result<Option<DateTime<Utc>>> {
        PgLedger::last_slot(self, policy).await
    }

    async fn set_last_slot(&self, policy: &str, slot: DateTime<Utc>) -> Result<()> {
        PgLedger::set_last_slot(self, policy, slot).await
    }

    async fn begin_run(&self, run: &NewRun, now: DateTime<Utc>) -> Result<Begin> {
        PgLedger::begin_run(self, run, now).await
    }

    async fn begin_runs(&self, runs: &[NewRun], now: DateTime<Utc>) -> Result<Vec<Begin>> {
        PgLedger::begin_runs(self, runs, now).await
    }

    async fn run(&self, run_id: i64) -> Result<RunRow> {
        PgLedger::run(self, run_id).await
    }

    async fn open_runs(&self) -> Result<Vec<RunRow>> {
        PgLedger::open_runs(self).await
    }

    async fn open_runs_readable(&self) -> Result<(Vec<RunRow>, Vec<Unreadable>)> {
        PgLedger::open_runs_readable(self).await
    }

    async fn runs_for(&self, policy: &str, target: &str, limit: u32) -> Result<Vec<RunRow>> {
        PgLedger::runs_for(self, policy, target, limit).await
    }

    async fn set_run_state(
        &self,
        run_id: i64,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        PgLedger::set_run_state(self, run_id, state, error, now).await
    }

    async fn record_created(
        &self,
        run_id: i64,
        created: &[Created],
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<Vec<OpRow>> {
        PgLedger::record_created(self, run_id, created, now, plan).await
    }

    async fn adopt_snapshot(
        &self,
        run_id: i64,
        snapshot_id: &str,
        state: LedgerState,
        now: DateTime<Utc>,
    ) -> Result<SnapshotRow> {
        PgLedger::adopt_snapshot(self, run_id, snapshot_id, state, now).await
    }

    async fn snapshot(&self, row_id: i64) -> Result<SnapshotRow> {
        PgLedger::snapshot(self, row_id).await
    }

    async fn run_snapshots(&self, run_id: i64) -> Result<Vec<SnapshotRow>> {
        PgLedger::run_snapshots(self, run_id).await
    }

    async fn live_snapshots(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<Vec<SnapshotRow>> {
        PgLedger::live_snapshots(self, provider, policy, target).await
    }

    async fn all_snapshots(&self) -> Result<Vec<SnapshotRow>> {
        PgLedger::all_snapshots(self).await
    }

    async fn mark_deleted(&self, row_id: i64, now: DateTime<Utc>) -> Result<()> {
        PgLedger::mark_deleted(self, row_id, now).await
    }

    async fn set_snapshot_state(
        &self,
        row_id: i64,
        state: LedgerState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        PgLedger::set_snapshot_state(self, row_id, state, error, now).await
    }

    async fn begin_delete(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        PgLedger::begin_delete(self, row_id, reference, now, plan).await
    }

    async fn begin_restore(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        PgLedger::begin_restore(self, row_id, reference, now, plan).await
    }

    async fn snapshots_being_restored(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashSet<String>> {
        PgLedger::snapshots_being_restored(self, provider, policy, target).await
    }

    async fn op(&self, id: i64) -> Result<OpRow> {
        PgLedger::op(self, id).await
    }

    async fn ops_in_flight_count(&self) -> Result<usize> {
        PgLedger::ops_in_flight_count(self).await
    }

    async fn ops_in_flight(&self) -> Result<Vec<OpRow>> {
        PgLedger::ops_in_flight(self).await
    }

    async fn ops_in_flight_readable(&self) -> Result<(Vec<OpRow>, Vec<Unreadable>)> {
        PgLedger::ops_in_flight_readable(self).await
    }

    async fn finish_op(&self, id: i64, error: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        PgLedger::finish_op(self, id, error, now).await
    }

    async fn finish_ops(&self, outcomes: &[(i64, Option<&str>)], now: DateTime<Utc>) -> Result<()> {
        PgLedger::finish_ops(self, outcomes, now).await
    }

    async fn reschedule_ops(&self, next: &[(i64, DateTime<Utc>, Duration)]) -> Result<()> {
        PgLedger::reschedule_ops(self, next).await
    }

    async fn hold_deletes(
        &self,
        policy: &str,
        target: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        PgLedger::hold_deletes(self, policy, target, reason, now).await
    }

    async fn delete_hold(&self, policy: &str, target: &str) -> Result<Option<DeleteHold>> {
        PgLedger::delete_hold(self, policy, target).await
    }

    async fn delete_holds(&self) -> Result<Vec<DeleteHold>> {
        PgLedger::delete_holds(self).await
    }

    async fn release_deletes(&self, policy: &str, target: &str) -> Result<bool> {
        PgLedger::release_deletes(self, policy, target).await
    }

    async fn failed_deletes(&self) -> Result<Vec<SnapshotRow>> {
        PgLedger::failed_deletes(self).await
    }

    async fn policy_rules(&self) -> Result<HashMap<String, String>> {
        PgLedger::policy_rules(self).await
    }

    async fn record_policy_rules(
        &self,
        rules: &[(&str, &str, &str)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        PgLedger::record_policy_rules(self, rules, now).await
    }

    async fn snapshot_sources(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashMap<i64, String>> {
        PgLedger::snapshot_sources(self, provider, policy, target).await
    }

    async fn all_snapshot_sources(&self) -> Result<HashMap<i64, String>> {
        PgLedger::all_snapshot_sources(self).await
    }

    async fn record_sizes(&self, sizes: &[(i64, u64)]) -> Result<()> {
        PgLedger::record_sizes(self, sizes).await
    }

    async fn record_snapshot_sources(&self, sources: &[(i64, &str)]) -> Result<()> {
        PgLedger::record_snapshot_sources(self, sources).await
    }

    async fn record_alert_delivered(
        &self,
        policy: &str,
        target: &str,
        kind: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        PgLedger::record_alert_delivered(self, policy, target, kind, at).await
    }

    async fn alerts_delivered(&self) -> Result<Delivered> {
        PgLedger::alerts_delivered(self).await
    }

    async fn newest_skipped(
        &self,
        policy: &str,
        target: &str,
    ) -> Result<Option<(DateTime<Utc>, Option<String>)>> {
        PgLedger::newest_skipped(self, policy, target).await
    }

    async fn summaries(&self) -> Result<Vec<TargetSummary>> {
        PgLedger::summaries(self).await
    }

    async fn target_summary(&self, policy: &str, target: &str) -> Result<Option<TargetSummary>> {
        PgLedger::target_summary(self, policy, target).await
    }

    async fn owe_post_hook(
        &self,
        run_id: i64,
        command: &[String],
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        PgLedger::owe_post_hook(self, run_id, command, resource, now).await
    }

    async fn post_hook_ran(&self, run_id: i64) -> Result<bool> {
        PgLedger::post_hook_ran(self, run_id).await
    }

    async fn post_hooks_owed(&self) -> Result<Vec<OwedHook>> {
        PgLedger::post_hooks_owed(self).await
    }

    async fn pause(
        &self,
        policy: Option<&str>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        PgLedger::pause(self, policy, reason, by, now, until).await
    }

    async fn resume(&self, policy: Option<&str>) -> Result<Option<Pause>> {
        PgLedger::resume(self, policy).await
    }

    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<Pause>> {
        PgLedger::pauses(self, now).await
    }

    async fn skip_runs(&self, runs: &[NewRun], why: &str, now: DateTime<Utc>) -> Result<Vec<bool>> {
        PgLedger::skip_runs(self, runs, why, now).await
    }

    async fn hold(&self, hold: &SnapshotHold, now: DateTime<Utc>) -> Result<HoldPlaced> {
        PgLedger::hold(self, hold, now).await
    }

    async fn release_hold(
        &self,
        policy: &str,
        target: &str,
        snapshot_id: Option<&str>,
    ) -> Result<Option<SnapshotHold>> {
        PgLedger::release_hold(self, policy, target, snapshot_id).await
    }

    async fn holds(&self, now: DateTime<Utc>) -> Result<Vec<SnapshotHold>> {
        PgLedger::holds(self, now).await
    }

    async fn claim_deletes(
        &self,
        rows: &[i64],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        PgLedger::claim_deletes(self, rows, until, now).await
    }

    async fn drop_delete_claim(&self, row: i64) -> Result<()> {
        PgLedger::drop_delete_claim(self, row).await
    }

    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        PgLedger::record_audit(self, entries).await
    }

    async fn audit_log(
        &self,
        since: DateTime<Utc>,
        policy: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        PgLedger::audit_log(self, since, policy).await
    }

    async fn trim(&self, before: DateTime<Utc>) -> Result<Trimmed> {
        PgLedger::trim(self, before).await
    }
}

#[async_trait]
impl SecretStore for PgLedger {
    async fn load_secret(
        &self,
        provider: &str,
        key: &str,
    ) -> std::result::Result<Option<StoredSecret>, String> {
        crate::state::stored_secret(PgLedger::load_secret(self, provider, key).await)
    }

    async fn store_secret(
        &self,
        provider: &str,
        key: &str,
        secret: &StoredSecret,
        replaces: Option<&crate::config::Secret>,
    ) -> std::result::Result<(), String> {
        let stored = PgLedger::store_secret(
            self,
            provider,
            key,
            secret.value.expose(),
            &secret.seed,
            replaces.map(|r| r.expose()),
            Utc::now(),
        )
        .await;
        crate::state::secret_swapped(stored)
    }
}
