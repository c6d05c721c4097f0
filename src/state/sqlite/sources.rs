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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Created;
    use crate::state::{Begin, NewRun, PollPlan};

    #[test]
    fn rules_and_sources_round_trip() {
        let state = SqliteLedger::open(std::path::Path::new(":memory:")).expect("ledger");
        let now = Utc::now();
        assert!(state.policy_rules().expect("rules").is_empty());
        state
            .record_policy_rules(&[("db", "qc", "retain=2"), ("web", "qc", "retain=3")], now)
            .expect("record");
        state
            .record_policy_rules(&[("db", "qc", "retain=5")], now)
            .expect("record");
        let rules = state.policy_rules().expect("rules");
        assert_eq!(rules.get("db").map(String::as_str), Some("retain=5"));
        assert_eq!(rules.get("web").map(String::as_str), Some("retain=3"));

        let Begin::Started(run) = state
            .begin_run(
                &NewRun {
                    policy: "db".into(),
                    target: "i-1".into(),
                    provider: "qc".into(),
                    slot: now,
                    name: "db-i-1".into(),
                    full: true,
                },
                now,
            )
            .expect("intent")
        else {
            panic!("fresh slot");
        };
        let ops = state
            .record_created(
                run,
                &[
                    Created {
                        snapshot_id: "s-1".into(),
                        operation: "s-1".into(),
                    },
                    Created {
                        snapshot_id: "s-2".into(),
                        operation: "s-2".into(),
                    },
                ],
                now,
                PollPlan {
                    first_poll: now,
                    interval: std::time::Duration::from_secs(1),
                    deadline: now,
                },
            )
            .expect("record");
        state
            .record_snapshot_sources(&[(ops[0].snapshot_row, "v-root")])
            .expect("sources");
        let known = state.snapshot_sources("qc", "db", "i-1").expect("sources");
        assert_eq!(known.len(), 1);
        assert_eq!(
            known.get(&ops[0].snapshot_row).map(String::as_str),
            Some("v-root")
        );
        assert_eq!(state.all_snapshot_sources().expect("all").len(), 1);
        state
            .mark_deleted(ops[0].snapshot_row, now)
            .expect("delete");
        assert!(state
            .snapshot_sources("qc", "db", "i-1")
            .expect("sources")
            .is_empty());
    }
}
