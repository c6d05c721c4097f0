//! Per-target summaries for `status`, `monitor` and alerts.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::rows::{finish_run_row, run_row};
use super::{
    LedgerState, OpRow, Result, SqliteLedger, TargetSummary, RUN_COLUMNS, SKIPPED_COUNT_SQL,
    TARGET_PAIRS_SQL,
};
use crate::state::{bytes_kept, read_size, Streak};

impl SqliteLedger {
    /// Every (policy, target) the ledger knows, with what `status` shows.
    pub fn summaries(&self) -> Result<Vec<TargetSummary>> {
        let pairs: Vec<(String, String, String)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(TARGET_PAIRS_SQL)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        let mut in_flight: HashMap<(String, String), Vec<OpRow>> = HashMap::new();
        for op in self.ops_in_flight()? {
            in_flight
                .entry((op.policy.clone(), op.target.clone()))
                .or_default()
                .push(op);
        }
        let mut out = Vec::with_capacity(pairs.len());
        for (policy, target, provider) in pairs {
            let ops = in_flight
                .remove(&(policy.clone(), target.clone()))
                .unwrap_or_default();
            out.push(self.summary(&policy, &target, &provider, ops)?);
        }
        Ok(out)
    }

    /// One (policy, target), without its operations in flight; `None` if
    /// it has never run.
    pub fn target_summary(&self, policy: &str, target: &str) -> Result<Option<TargetSummary>> {
        let provider: Option<String> = self
            .conn()
            .query_row(
                "SELECT provider FROM runs WHERE policy = ?1 AND target = ?2 ORDER BY id DESC LIMIT 1",
                params![policy, target],
                |r| r.get(0),
            )
            .optional()?;
        provider
            .map(|p| self.summary(policy, target, &p, Vec::new()))
            .transpose()
    }

    /// Reads runs newest first only as far as it must: up to the newest
    /// success, which ends any failure streak (a target's whole history
    /// is read only while it has never succeeded).
    pub(super) fn summary(
        &self,
        policy: &str,
        target: &str,
        provider: &str,
        in_flight: Vec<OpRow>,
    ) -> Result<TargetSummary> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE policy = ?1 AND target = ?2 AND state != 'skipped'
             ORDER BY slot DESC, id DESC"
        ))?;
        let mut rows = stmt.query(params![policy, target])?;
        let mut streak = Streak::default();
        while let Some(row) = rows.next()? {
            if !streak.take(finish_run_row(run_row(row)?)?) {
                break;
            }
        }
        drop(rows);
        drop(stmt);
        // The kept snapshots' sizes, summed here: SQLite's SUM fails on
        // an integer overflow, and the count and the sum come from one read.
        let (mut kept, mut sized, mut sum) = (0u64, 0u64, 0u64);
        {
            let mut stmt = conn.prepare_cached(
                "SELECT size_bytes FROM snapshots WHERE policy = ?1 AND target = ?2 AND state IN (?3, ?4)",
            )?;
            let mut rows = stmt.query(params![
                policy,
                target,
                LedgerState::Available.as_str(),
                LedgerState::Deleting.as_str()
            ])?;
            while let Some(row) = rows.next()? {
                kept += 1;
                if let Some(bytes) = read_size(row.get(0)?)? {
                    sized += 1;
                    sum = sum.saturating_add(bytes);
                }
            }
        }
        let snapshots_kept = u32::try_from(kept).unwrap_or(u32::MAX);
        let skipped: u32 =
            conn.query_row(SKIPPED_COUNT_SQL, params![policy, target], |r| r.get(0))?;
        drop(conn);
        Ok(streak.summary(
            (policy, target, provider),
            snapshots_kept,
            bytes_kept(kept, sized, sum),
            skipped,
            in_flight,
        ))
    }
}
