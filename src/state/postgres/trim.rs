//! Trimming the ledger's history, as the SQLite ledger trims it (see its
//! module for what stays, audit entries by their own longer horizon): in
//! windows of ids, one short fenced transaction each.

use chrono::{DateTime, Utc};

use super::rows::get;
use super::{ms, PgLedger};
use crate::state::{LedgerState, Result, Trimmed};

/// Rows per transaction.
const WINDOW: i64 = 5_000;

impl PgLedger {
    /// Remove history that ended before `before`. Fenced (every window).
    pub async fn trim(&self, before: DateTime<Utc>) -> Result<Trimmed> {
        let before = ms(before);
        // Refused at once without the lease, even with nothing to trim.
        {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            self.fenced(&tx).await?;
            tx.commit().await?;
        }
        let deleted = format!(
            "id > $1 AND id <= $2 AND state = '{}' AND deleted_at < $3",
            LedgerState::Deleted.as_str()
        );
        let [operations, _, snapshots] = self
            .in_windows(
                "snapshots",
                [
                    format!("DELETE FROM operations WHERE snapshot IN (SELECT id FROM snapshots WHERE {deleted})"),
                    format!("DELETE FROM snapshot_sources WHERE snapshot IN (SELECT id FROM snapshots WHERE {deleted})"),
                    format!("DELETE FROM snapshots WHERE {deleted}"),
                ],
                before,
            )
            .await?;
        let [runs] = self
            .in_windows(
                "runs",
                ["DELETE FROM runs WHERE id IN (
                     SELECT r.id FROM runs r
                     WHERE r.id > $1 AND r.id <= $2
                       AND r.state IN ('succeeded', 'failed', 'skipped')
                       AND r.finished_at < $3
                       AND r.slot < (
                           SELECT MAX(n.slot) FROM runs n
                           WHERE n.policy = r.policy AND n.target = r.target
                             AND n.state = 'succeeded')
                       AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.run_id = r.id)
                       AND NOT EXISTS (SELECT 1 FROM post_hooks_owed h WHERE h.run_id = r.id))"
                    .to_string()],
                before,
            )
            .await?;
        let [audit] = self
            .in_windows(
                "audit_log",
                ["DELETE FROM audit_log WHERE id > $1 AND id <= $2 AND at < $3".to_string()],
                ms(crate::state::audit_horizon(before, Utc::now())),
            )
            .await?;
        Ok(Trimmed {
            runs,
            snapshots,
            operations,
            audit,
        })
    }

    /// Run `statements` (deletes taking the window's ids `$1 < id <= $2`
    /// and `before` as `$3`) over `table`'s ids in windows, one fenced
    /// transaction per window: how many rows each removed in all.
    async fn in_windows<const N: usize>(
        &self,
        table: &'static str,
        statements: [String; N],
        before: DateTime<Utc>,
    ) -> Result<[usize; N]> {
        let mut removed = [0; N];
        let max = self.max_id(table).await?;
        let mut from = 0;
        while from < max {
            let to = from + WINDOW;
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            self.fenced(&tx).await?;
            for (sql, n) in statements.iter().zip(removed.iter_mut()) {
                let rows = tx.execute(sql.as_str(), &[&from, &to, &before]).await?;
                *n += usize::try_from(rows).unwrap_or(usize::MAX);
            }
            tx.commit().await?;
            from = to;
        }
        Ok(removed)
    }

    async fn max_id(&self, table: &'static str) -> Result<i64> {
        let row = self
            .client()
            .await?
            .query_one(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"), &[])
            .await?;
        get(&row, 0, table)
    }
}
