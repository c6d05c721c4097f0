//! Operations in flight (creates, deletes, restores) and their polling.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::conn::AsDb;
use super::rows::{all, each_readable, get, op_row};
use super::runs::insert_op;
use super::snapshots::record_outcome;
use super::{interval_ms, ms, PgLedger, OP_COLUMNS};
use crate::providers::OpKind;
use crate::state::{LedgerState, OpRow, PollPlan, Result, Unreadable};

impl PgLedger {
    /// Start tracking a delete: the snapshot is `deleting` and an operation
    /// follows it, in one transaction. Fenced.
    pub async fn begin_delete(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        self.begin_op(row_id, OpKind::Delete, reference, now, plan)
            .await
    }

    /// Follow a restore of the snapshot in ledger row `row_id`. Fenced.
    pub async fn begin_restore(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        self.begin_op(row_id, OpKind::Restore, reference, now, plan)
            .await
    }

    async fn begin_op(
        &self,
        row_id: i64,
        kind: OpKind,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let epoch = self.fenced(&tx).await?;
        let row = tx
            .query_one("SELECT provider FROM snapshots WHERE id = $1", &[&row_id])
            .await?;
        let provider: String = get(&row, 0, "snapshots.provider")?;
        if kind == OpKind::Delete {
            tx.execute(
                // The claim that preceded the delete is no longer
                // needed: the state says it from now on (and a failed
                // delete leaves the row unclaimed, to be held again).
                "UPDATE snapshots SET state = $2, delete_claim_until = NULL WHERE id = $1",
                &[&row_id, &LedgerState::Deleting.as_str()],
            )
            .await?;
        }
        let op = insert_op(
            &tx,
            row_id,
            kind,
            &provider,
            reference,
            now,
            plan,
            Some(epoch),
        )
        .await?;
        let op = op_by_id(&tx, op).await?;
        tx.commit().await?;
        Ok(op)
    }

    /// Cloud ids of the snapshots of (provider, policy, target) that a
    /// restore still in flight reads from.
    pub async fn snapshots_being_restored(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashSet<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT s.snapshot_id FROM operations o JOIN snapshots s ON s.id = o.snapshot
                 WHERE o.finished_at IS NULL AND o.kind = 'restore'
                   AND s.provider = $1 AND s.policy = $2 AND s.target = $3",
                &[&provider, &policy, &target],
            )
            .await?;
        rows.iter()
            .map(|r| get(r, 0, "snapshots.snapshot_id"))
            .collect()
    }

    /// The operation in row `id`.
    pub async fn op(&self, id: i64) -> Result<OpRow> {
        op_by_id(&*self.client().await?, id).await
    }

    /// How many operations are in flight, without reading them.
    pub async fn ops_in_flight_count(&self) -> Result<usize> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FROM operations WHERE finished_at IS NULL",
                &[],
            )
            .await?;
        let n: i64 = get(&row, 0, "operations")?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Operations not yet finished, oldest first.
    pub async fn ops_in_flight(&self) -> Result<Vec<OpRow>> {
        let rows = self
            .client()
            .await?
            .query(&ops_in_flight_sql(), &[])
            .await?;
        all(&rows, op_row)
    }

    /// [`PgLedger::ops_in_flight`], leaving out (and reporting) rows that
    /// cannot be read.
    pub async fn ops_in_flight_readable(&self) -> Result<(Vec<OpRow>, Vec<Unreadable>)> {
        let rows = self
            .client()
            .await?
            .query(&ops_in_flight_sql(), &[])
            .await?;
        Ok(each_readable(&rows, "operations", op_row))
    }

    /// Record an operation's terminal outcome and its snapshot's new
    /// state in one transaction. A fact, not fenced.
    pub async fn finish_op(&self, id: i64, error: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        self.finish_ops(&[(id, error)], now).await
    }

    /// Several operations' outcomes in one transaction; an operation
    /// already finished stays as it was. A fact, not fenced.
    pub async fn finish_ops(
        &self,
        outcomes: &[(i64, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for &(id, error) in outcomes {
            record_outcome(&tx, id, error, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The next poll of several operations, in one transaction. Not
    /// fenced.
    pub async fn reschedule_ops(&self, next: &[(i64, DateTime<Utc>, Duration)]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (id, at, interval) in next {
            tx.execute(
                "UPDATE operations SET next_poll_at = $2, poll_interval_ms = $3 WHERE id = $1",
                &[id, &ms(*at), &interval_ms(*interval)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The operation in row `id`.
pub(super) async fn op_by_id(c: &impl AsDb, id: i64) -> Result<OpRow> {
    let row = c
        .db()
        .query_one(
            &format!(
                "SELECT {OP_COLUMNS} FROM operations o JOIN snapshots s ON s.id = o.snapshot
                 WHERE o.id = $1"
            ),
            &[&id],
        )
        .await?;
    op_row(&row)
}

/// Operations not yet finished, oldest first.
pub(super) fn ops_in_flight_sql() -> String {
    format!(
        "SELECT {OP_COLUMNS} FROM operations o JOIN snapshots s ON s.id = o.snapshot
         WHERE o.finished_at IS NULL ORDER BY o.id"
    )
}
