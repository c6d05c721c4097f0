//! The ledger's part in deletion safety: holds a reload places on a
//! policy's deletions until the operator confirms (`prune --yes`), and the
//! deletes `orphans` reports as stuck or failed.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::rows::four_texts;
use super::{
    parse_ts, ts, DeleteHold, LedgerState, Result, SnapshotRow, SqliteLedger, SNAPSHOT_COLUMNS,
};

impl SqliteLedger {
    /// Hold deletions of (`policy`, `target`); an existing hold keeps its
    /// start and takes the new reason.
    pub fn hold_deletes(
        &self,
        policy: &str,
        target: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO delete_holds (policy, target, reason, since) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (policy, target) DO UPDATE SET reason = excluded.reason",
            params![policy, target, reason, ts(now)],
        )?;
        Ok(())
    }

    /// The hold on (`policy`, `target`), if any.
    pub fn delete_hold(&self, policy: &str, target: &str) -> Result<Option<DeleteHold>> {
        let raw: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT reason, since FROM delete_holds WHERE policy = ?1 AND target = ?2",
                params![policy, target],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        raw.map(|(reason, since)| {
            Ok(DeleteHold {
                policy: policy.to_string(),
                target: target.to_string(),
                reason,
                since: parse_ts("delete_holds.since", &since)?,
            })
        })
        .transpose()
    }

    /// Every hold in force.
    pub fn delete_holds(&self) -> Result<Vec<DeleteHold>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT policy, target, reason, since FROM delete_holds ORDER BY policy, target",
        )?;
        let raws = stmt
            .query_map([], four_texts)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter()
            .map(|(policy, target, reason, since)| {
                Ok(DeleteHold {
                    policy,
                    target,
                    reason,
                    since: parse_ts("delete_holds.since", &since)?,
                })
            })
            .collect()
    }

    /// Lift the hold on (`policy`, `target`); true if there was one.
    pub fn release_deletes(&self, policy: &str, target: &str) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM delete_holds WHERE policy = ?1 AND target = ?2",
            params![policy, target],
        )?;
        Ok(n > 0)
    }

    /// Snapshots still in the ledger as ours whose last delete failed.
    pub fn failed_deletes(&self) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots
                 WHERE state = ?1 AND EXISTS (
                   SELECT 1 FROM operations o
                   WHERE o.snapshot = snapshots.id AND o.kind = 'delete' AND o.outcome = 'failed')
                 ORDER BY id"
            ),
            params![LedgerState::Available.as_str()],
        )
    }
}
