//! Trimming the ledger's history, as the SQLite ledger trims it (see its
//! module for what stays): in windows of ids, one short fenced transaction
//! each.

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use super::rows::get;
use super::{ms, PgLedger};
use crate::state::{LedgerState, Result, Trimmed};

/// Rows per transaction.
const WINDOW: i64 = 5_000;

impl PgLedger {
    /// Remove history that ended before `before`. Fenced (every window).
    pub async fn trim(&self, before: DateTime<Utc>) -> Result<Trimmed> {
        let before = ms(before);
        let deleted = LedgerState::Deleted.as_str();
        let mut out = Trimmed::default();
        // Refused at once without the lease, even with nothing to trim.
        {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            self.fenced(&tx).await?;
            tx.commit().await?;
        }
        let max = self.max_id("snapshots").await?;
        let mut from = 0;
        while from < max {
            let to = from + WINDOW;
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            self.fenced(&tx).await?;
            out.operations += count(
                &tx,
                "DELETE FROM operations WHERE snapshot IN (
                     SELECT id FROM snapshots
                     WHERE id > $1 AND id <= $2 AND state = $4 AND deleted_at < $3)",
                from,
                to,
                before,
                Some(deleted),
            )
            .await?;
            count(
                &tx,
                "DELETE FROM snapshot_sources WHERE snapshot IN (
                     SELECT id FROM snapshots
                     WHERE id > $1 AND id <= $2 AND state = $4 AND deleted_at < $3)",
                from,
                to,
                before,
                Some(deleted),
            )
            .await?;
            out.snapshots += count(
                &tx,
                "DELETE FROM snapshots
                 WHERE id > $1 AND id <= $2 AND state = $4 AND deleted_at < $3",
                from,
                to,
                before,
                Some(deleted),
            )
            .await?;
            tx.commit().await?;
            from = to;
        }
        let max = self.max_id("runs").await?;
        let mut from = 0;
        while from < max {
            let to = from + WINDOW;
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            self.fenced(&tx).await?;
            out.runs += count(
                &tx,
                "DELETE FROM runs WHERE id IN (
                     SELECT r.id FROM runs r
                     WHERE r.id > $1 AND r.id <= $2
                       AND r.state IN ('succeeded', 'failed', 'skipped')
                       AND r.finished_at < $3
                       AND r.slot < (
                           SELECT MAX(n.slot) FROM runs n
                           WHERE n.policy = r.policy AND n.target = r.target
                             AND n.state = 'succeeded')
                       AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.run_id = r.id))",
                from,
                to,
                before,
                None,
            )
            .await?;
            tx.commit().await?;
            from = to;
        }
        Ok(out)
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

/// Run one windowed delete; how many rows it removed.
async fn count(
    tx: &Transaction<'_>,
    sql: &str,
    from: i64,
    to: i64,
    before: DateTime<Utc>,
    state: Option<&str>,
) -> Result<usize> {
    let n = match state {
        Some(state) => tx.execute(sql, &[&from, &to, &before, &state]).await?,
        None => tx.execute(sql, &[&from, &to, &before]).await?,
    };
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
