//! Snapshot rows: what the ledger knows of each snapshot it made.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::rows::{snapshot_row, RawSnapshot};
use super::runs::{write_snapshot_state, Completion};
use super::{LedgerState, Result, SnapshotRow, SqliteLedger, SNAPSHOT_COLUMNS};

impl SqliteLedger {
    pub fn snapshot(&self, row_id: i64) -> Result<SnapshotRow> {
        self.conn()
            .query_row(
                &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?1"),
                [row_id],
                snapshot_row,
            )?
            .parse()
    }

    /// Snapshots of one run.
    pub fn run_snapshots(&self, run_id: i64) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE run_id = ?1 ORDER BY id"),
            params![run_id],
        )
    }

    /// The ledger's snapshots of one policy and target that are not deleted.
    pub fn live_snapshots(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots
                 WHERE provider = ?1 AND policy = ?2 AND target = ?3 AND state != ?4
                 ORDER BY slot, id"
            ),
            params![provider, policy, target, LedgerState::Deleted.as_str()],
        )
    }

    /// Every snapshot row (tests and tooling).
    pub fn all_snapshots(&self) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots ORDER BY id"),
            params![],
        )
    }

    pub(super) fn query_snapshots(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<SnapshotRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let raws = stmt
            .query_map(p, snapshot_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(RawSnapshot::parse).collect()
    }

    /// A snapshot that vanished or was found deleted outside an operation.
    pub fn mark_deleted(&self, row_id: i64, now: DateTime<Utc>) -> Result<()> {
        write_snapshot_state(
            &self.conn(),
            row_id,
            LedgerState::Deleted,
            None,
            Completion::Keep,
            now,
        )
    }

    /// Set a snapshot's state outside an operation (a confirmation by list).
    pub fn set_snapshot_state(
        &self,
        row_id: i64,
        state: LedgerState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        write_snapshot_state(
            &self.conn(),
            row_id,
            state,
            error,
            Completion::seen(state),
            now,
        )
    }
}
