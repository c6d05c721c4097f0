//! What the ledger remembers beyond runs and snapshots so that deletes
//! stay within what the operator confirmed:
//!
//! - the retention rules each policy last ran with, so that a restart with
//!   an edited file is compared like a reload;
//! - the source (volume, disk) each snapshot was listed under, so that a
//!   source that left a target's listing means "not looked at", never
//!   "deleted".

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{ts, LedgerState, Result, SqliteLedger};

impl SqliteLedger {
    /// The rules (as the engine encoded them) each policy last ran with.
    pub fn policy_rules(&self) -> Result<HashMap<String, String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT policy, rules FROM policy_rules")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<HashMap<String, String>>>()?;
        Ok(rows)
    }

    /// Remember the rules of each (policy, provider, encoded rules), in one
    /// transaction; only rows that changed are written.
    pub fn record_policy_rules(
        &self,
        rules: &[(&str, &str, &str)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = super::write_tx(&mut conn)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO policy_rules (policy, provider, rules, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (policy) DO UPDATE SET
                   provider = excluded.provider, rules = excluded.rules,
                   updated_at = excluded.updated_at
                 WHERE policy_rules.rules != excluded.rules
                    OR policy_rules.provider != excluded.provider",
            )?;
            for (policy, provider, encoded) in rules {
                stmt.execute(params![policy, provider, encoded, ts(now)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The known sources of the snapshots of one policy and target, by
    /// ledger row.
    pub fn snapshot_sources(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashMap<i64, String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.id, x.source FROM snapshots s JOIN snapshot_sources x ON x.snapshot = s.id
             WHERE s.provider = ?1 AND s.policy = ?2 AND s.target = ?3 AND s.state != ?4",
        )?;
        let rows = stmt
            .query_map(
                params![provider, policy, target, LedgerState::Deleted.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<HashMap<i64, String>>>()?;
        Ok(rows)
    }

    /// The known source of every snapshot not deleted, by ledger row.
    pub fn all_snapshot_sources(&self) -> Result<HashMap<i64, String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.id, x.source FROM snapshots s JOIN snapshot_sources x ON x.snapshot = s.id
             WHERE s.state != ?1",
        )?;
        let rows = stmt
            .query_map([LedgerState::Deleted.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<HashMap<i64, String>>>()?;
        Ok(rows)
    }

    /// Remember the source each ledger row was listed under, in one
    /// transaction.
    pub fn record_snapshot_sources(&self, sources: &[(i64, &str)]) -> Result<()> {
        if sources.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = super::write_tx(&mut conn)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO snapshot_sources (snapshot, source) VALUES (?1, ?2)
                 ON CONFLICT (snapshot) DO UPDATE SET source = excluded.source",
            )?;
            for (row, source) in sources {
                stmt.execute(params![row, source])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
