//! Snapshot rows: what the ledger knows of each snapshot it made.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

use super::rows::{all, snapshot_row};
use super::runs::{write_snapshot_state, Completion};
use super::{PgLedger, SNAPSHOT_COLUMNS};
use crate::state::{LedgerState, Result, SnapshotRow};

impl PgLedger {
    pub async fn snapshot(&self, row_id: i64) -> Result<SnapshotRow> {
        snapshot_by_id(&*self.client().await?, row_id).await
    }

    /// Snapshots of one run.
    pub async fn run_snapshots(&self, run_id: i64) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE run_id = $1 ORDER BY id"),
            &[&run_id],
        )
        .await
    }

    /// The ledger's snapshots of one policy and target that are not deleted.
    pub async fn live_snapshots(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots
                 WHERE provider = $1 AND policy = $2 AND target = $3 AND state != $4
                 ORDER BY slot, id"
            ),
            &[&provider, &policy, &target, &LedgerState::Deleted.as_str()],
        )
        .await
    }

    /// Every snapshot row.
    pub async fn all_snapshots(&self) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots ORDER BY id"),
            &[],
        )
        .await
    }

    pub(super) async fn query_snapshots(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<SnapshotRow>> {
        let rows = self.client().await?.query(sql, params).await?;
        all(&rows, snapshot_row)
    }

    /// A snapshot that vanished or was found deleted outside an operation.
    /// A fact, not fenced.
    pub async fn mark_deleted(&self, row_id: i64, now: DateTime<Utc>) -> Result<()> {
        write_snapshot_state(
            &*self.client().await?,
            row_id,
            LedgerState::Deleted,
            None,
            Completion::Keep,
            now,
        )
        .await
    }

    /// Set a snapshot's state outside an operation (a confirmation by
    /// list). A fact, not fenced.
    pub async fn set_snapshot_state(
        &self,
        row_id: i64,
        state: LedgerState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write_snapshot_state(
            &*self.client().await?,
            row_id,
            state,
            error,
            Completion::seen(state),
            now,
        )
        .await
    }
}

/// The snapshot in row `id`.
pub(super) async fn snapshot_by_id(
    c: &(impl GenericClient + Sync),
    id: i64,
) -> Result<SnapshotRow> {
    let row = c
        .query_one(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = $1"),
            &[&id],
        )
        .await?;
    snapshot_row(&row)
}
