//! Operations in flight (creates, deletes, restores) and their polling.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::rows::{op_row, ts, RawOp, Reader};
use super::runs::{insert_op, record_outcome};
use super::{write_tx, LedgerState, OpRow, PollPlan, Result, SqliteLedger, Unreadable, OP_COLUMNS};
use crate::domain::OpKind;

impl SqliteLedger {
    /// Start tracking a delete: the snapshot is `deleting` and an operation
    /// follows it, in one transaction.
    pub fn begin_delete(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        self.begin_op(row_id, OpKind::Delete, reference, now, plan)
    }

    /// Follow a restore of the snapshot in ledger row `row_id` (the
    /// snapshot itself is not changed).
    pub fn begin_restore(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        self.begin_op(row_id, OpKind::Restore, reference, now, plan)
    }

    /// Record an operation on the snapshot in row `row_id`; a delete marks
    /// the snapshot `deleting` in the same transaction.
    fn begin_op(
        &self,
        row_id: i64,
        kind: OpKind,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let provider: String = tx.query_row(
            "SELECT provider FROM snapshots WHERE id = ?1",
            [row_id],
            |r| r.get(0),
        )?;
        if kind == OpKind::Delete {
            tx.execute(
                // The claim that preceded the delete is no longer
                // needed: the state says it from now on (and a failed
                // delete leaves the row unclaimed, to be held again).
                "UPDATE snapshots SET state = ?2, delete_claim_until = NULL WHERE id = ?1",
                params![row_id, LedgerState::Deleting.as_str()],
            )?;
        }
        let op = insert_op(&tx, row_id, kind, &provider, reference, now, plan)?;
        tx.commit()?;
        drop(conn);
        self.op(op)
    }

    /// Cloud ids of the snapshots of (provider, policy, target) that a
    /// restore still in flight reads from: not to be deleted under it.
    pub fn snapshots_being_restored(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashSet<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT s.snapshot_id FROM operations o JOIN snapshots s ON s.id = o.snapshot
             WHERE o.finished_at IS NULL AND o.kind = 'restore'
               AND s.provider = ?1 AND s.policy = ?2 AND s.target = ?3",
        )?;
        let ids = stmt
            .query_map(params![provider, policy, target], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<HashSet<_>>>()?;
        Ok(ids)
    }

    pub fn op(&self, id: i64) -> Result<OpRow> {
        self.conn()
            .query_row(
                &format!("SELECT {OP_COLUMNS} FROM operations o JOIN snapshots s ON s.id = o.snapshot WHERE o.id = ?1"),
                [id],
                op_row,
            )?
            .parse()
    }

    /// Operations not yet terminal, oldest first.
    /// How many operations are in flight, without reading them.
    pub fn ops_in_flight_count(&self) -> Result<usize> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM operations WHERE finished_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// [`SqliteLedger::ops_in_flight`], leaving out (and reporting) rows that
    /// cannot be read.
    pub fn ops_in_flight_readable(&self) -> Result<(Vec<OpRow>, Vec<Unreadable>)> {
        let reader = Reader {
            table: "operations",
            row: op_row,
            id: |raw| raw.id,
            parse: RawOp::parse,
        };
        reader.each_readable(&self.conn(), &ops_in_flight_sql())
    }

    pub fn ops_in_flight(&self) -> Result<Vec<OpRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&ops_in_flight_sql())?;
        let raws = stmt
            .query_map([], op_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(RawOp::parse).collect()
    }

    /// Record an operation's terminal outcome and its snapshot's new state
    /// in one transaction.
    pub fn finish_op(&self, id: i64, error: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        self.finish_ops(&[(id, error)], now)
    }

    /// Record several operations' outcomes in one transaction (one durable
    /// commit for a whole poll round): all of them or none.
    pub fn finish_ops(&self, outcomes: &[(i64, Option<&str>)], now: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        for &(id, error) in outcomes {
            record_outcome(&tx, id, error, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record the next poll of several operations in one transaction.
    pub fn reschedule_ops(&self, next: &[(i64, DateTime<Utc>, Duration)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE operations SET next_poll_at = ?2, poll_interval_ms = ?3 WHERE id = ?1",
            )?;
            for (id, at, interval) in next {
                stmt.execute(params![id, ts(*at), interval.as_millis() as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Operations not yet finished, oldest first (strict and row-by-row
/// readers).
pub(super) fn ops_in_flight_sql() -> String {
    format!(
        "SELECT {OP_COLUMNS} FROM operations o JOIN snapshots s ON s.id = o.snapshot
         WHERE o.finished_at IS NULL ORDER BY o.id"
    )
}
