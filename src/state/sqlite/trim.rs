//! Trimming the ledger's history: without it, runs,
//! operations and the rows of deleted snapshots grow without bound, and
//! so does every read that walks them.
//!
//! Only history goes, nothing the engine or a guarantee still needs:
//! - a snapshot row only once it is `deleted` (a live, creating, deleting
//!   or failed snapshot is the ledger's half of "ours"; it stays as long
//!   as it exists), together with its finished operations;
//! - a run only once it is terminal, no snapshot row refers to it any
//!   more, and its slot lies before its (policy, target)'s newest success:
//!   the newest success, the failure streak after it and anything open
//!   stay, so `status`, `monitor` and the alerts read the same afterwards.
//!   Trimmed slots are far behind the schedule's last slot, which only
//!   moves forward, so no slot can fire again for want of its row.
//! - never a run that still owes a post hook: a restart must find its
//!   thaw, with the run's policy, target and name.
//! - audit entries by their own horizon: older than
//!   [`AUDIT_HISTORY_DAYS`](crate::state::AUDIT_HISTORY_DAYS) before the
//!   trim's own time (and than `before`), as the audit trail is evidence
//!   asked for long after the runs stop mattering.
//!
//! The work is done in windows of ids, one short IMMEDIATE transaction
//! each, so a first trim of a large ledger never holds the engine off for
//! long.

use chrono::{DateTime, Utc};
use rusqlite::{params, Transaction};

use super::{ts, write_tx, LedgerState, Result, SqliteLedger, Trimmed};

/// Rows per transaction.
const WINDOW: i64 = 5_000;

impl SqliteLedger {
    /// Remove history that ended before `before` (see the module
    /// documentation for what stays).
    pub fn trim(&self, before: DateTime<Utc>) -> Result<Trimmed> {
        let before_time = before;
        let before = ts(before);
        let deleted = LedgerState::Deleted.as_str();
        let mut out = Trimmed::default();
        self.in_windows("snapshots", |tx, from, to| {
            out.operations += tx.execute(
                "DELETE FROM operations WHERE snapshot IN (
                     SELECT id FROM snapshots
                     WHERE id > ?1 AND id <= ?2 AND state = ?4 AND deleted_at < ?3)",
                params![from, to, before, deleted],
            )?;
            tx.execute(
                "DELETE FROM snapshot_sources WHERE snapshot IN (
                     SELECT id FROM snapshots
                     WHERE id > ?1 AND id <= ?2 AND state = ?4 AND deleted_at < ?3)",
                params![from, to, before, deleted],
            )?;
            out.snapshots += tx.execute(
                "DELETE FROM snapshots
                 WHERE id > ?1 AND id <= ?2 AND state = ?4 AND deleted_at < ?3",
                params![from, to, before, deleted],
            )?;
            Ok(())
        })?;
        self.in_windows("runs", |tx, from, to| {
            out.runs += tx.execute(
                "DELETE FROM runs WHERE id IN (
                     SELECT r.id FROM runs r
                     WHERE r.id > ?1 AND r.id <= ?2
                       AND r.state IN ('succeeded', 'failed', 'skipped')
                       AND r.finished_at < ?3
                       AND r.slot < (
                           SELECT MAX(n.slot) FROM runs n
                           WHERE n.policy = r.policy AND n.target = r.target
                             AND n.state = 'succeeded')
                       AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.run_id = r.id)
                       AND NOT EXISTS (SELECT 1 FROM post_hooks_owed h WHERE h.run_id = r.id))",
                params![from, to, before],
            )?;
            Ok(())
        })?;
        let audit_before = ts(crate::state::audit_horizon(before_time, chrono::Utc::now()));
        self.in_windows("audit_log", |tx, from, to| {
            out.audit += tx.execute(
                "DELETE FROM audit_log WHERE id > ?1 AND id <= ?2 AND at < ?3",
                params![from, to, audit_before],
            )?;
            Ok(())
        })?;
        Ok(out)
    }

    /// `step` over the ids of `table` in windows of [`WINDOW`], one
    /// transaction each.
    fn in_windows(
        &self,
        table: &'static str,
        mut step: impl FnMut(&Transaction<'_>, i64, i64) -> Result<()>,
    ) -> Result<()> {
        let max = self.max_id(table)?;
        let mut from = 0;
        while from < max {
            let to = from + WINDOW;
            let mut conn = self.conn();
            let tx = write_tx(&mut conn)?;
            step(&tx, from, to)?;
            tx.commit()?;
            from = to;
        }
        Ok(())
    }

    fn max_id(&self, table: &'static str) -> Result<i64> {
        Ok(self.conn().query_row(
            &format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?)
    }
}
