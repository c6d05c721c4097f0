//! Snapshot rows: what the ledger knows of each snapshot it made, and how
//! an operation's outcome changes it.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::conn::{AsDb, Tx};
use super::rows::{all, get, op_kind, snapshot_row};
use super::{ms, PgLedger, SNAPSHOT_COLUMNS};
use crate::providers::OpKind;
use crate::state::{LedgerState, Result, SnapshotRow};

impl PgLedger {
    /// The snapshot in row `row_id`.
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
pub(super) async fn snapshot_by_id(c: &impl AsDb, id: i64) -> Result<SnapshotRow> {
    let row = c
        .db()
        .query_one(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = $1"),
            &[&id],
        )
        .await?;
    snapshot_row(&row)
}

/// One operation's terminal outcome and its snapshot's new state; an
/// operation already finished is left as it is (two processes may report
/// the same outcome).
pub(super) async fn record_outcome(
    tx: &Tx<'_>,
    id: i64,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let outcome = if error.is_none() {
        "succeeded"
    } else {
        "failed"
    };
    let updated = tx
        .query_opt(
            "UPDATE operations SET finished_at = $2, outcome = $3, error = $4
             WHERE id = $1 AND finished_at IS NULL RETURNING kind, snapshot",
            &[&id, &ms(now), &outcome, &error],
        )
        .await?;
    let Some(row) = updated else {
        // Finished already, or no such operation (an error, as in SQLite).
        tx.query_one("SELECT 1 FROM operations WHERE id = $1", &[&id])
            .await?;
        return Ok(());
    };
    let kind: &str = get(&row, 0, "operations.kind")?;
    let snap: i64 = get(&row, 1, "operations.snapshot")?;
    let (state, completion) = match (op_kind(kind)?, error) {
        (OpKind::Create, None) => (LedgerState::Available, Completion::Now),
        (OpKind::Create, Some(_)) => (LedgerState::Failed, Completion::Now),
        (OpKind::Delete, None) => (LedgerState::Deleted, Completion::Keep),
        // The snapshot is still there; it stays in the ledger as ours.
        (OpKind::Delete, Some(_)) => (LedgerState::Available, Completion::Keep),
        // Restoring reads a snapshot; it does not change it.
        (OpKind::Restore, _) => return Ok(()),
    };
    write_snapshot_state(tx, snap, state, error, completion, now).await
}

/// What a change of a snapshot's state does to its `completed_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Completion {
    /// Its create operation ended now.
    Now,
    /// It is seen done now; an earlier completion stands.
    First,
    /// Not a completion.
    Keep,
}

impl Completion {
    /// A state seen outside an operation: done states are a first
    /// completion.
    pub(super) fn seen(state: LedgerState) -> Completion {
        match state {
            LedgerState::Available | LedgerState::Failed => Completion::First,
            _ => Completion::Keep,
        }
    }
}

/// Move the snapshot in row `id` to `state`, as the SQLite ledger does.
pub(super) async fn write_snapshot_state(
    c: &impl AsDb,
    id: i64,
    state: LedgerState,
    error: Option<&str>,
    completion: Completion,
    now: DateTime<Utc>,
) -> Result<()> {
    let at = ms(now);
    let (completed, overwrite) = match completion {
        Completion::Now => (Some(at), true),
        Completion::First => (Some(at), false),
        Completion::Keep => (None, false),
    };
    let deleted = (state == LedgerState::Deleted).then_some(at);
    c.db()
        .execute(
            "UPDATE snapshots SET state = $2, error = COALESCE($3::text, error),
           completed_at = CASE WHEN $6::boolean THEN $4::timestamptz
                               ELSE COALESCE(completed_at, $4::timestamptz) END,
           deleted_at = COALESCE($5::timestamptz, deleted_at)
         WHERE id = $1",
            &[
                &id,
                &state.as_str(),
                &error,
                &completed,
                &deleted,
                &overwrite,
            ],
        )
        .await?;
    Ok(())
}
