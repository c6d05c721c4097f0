//! The post hooks owed: a row per run whose pre hook started and whose
//! post hook has not yet run to its end, so that a restart runs every
//! thaw still owed.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::rows::{parse_ts, ts};
use super::{Result, SqliteLedger, StateError};
use crate::state::{hook_command_json, parse_hook_command, readable_hooks, OwedHook};

/// A row of [`OWED_SQL`] before its texts are decoded.
struct RawOwed {
    run_id: i64,
    policy: String,
    target: String,
    provider: String,
    slot: String,
    name: String,
    resource: String,
    command: String,
    since: String,
}

impl RawOwed {
    fn parse(self) -> Result<OwedHook> {
        Ok(OwedHook {
            run_id: self.run_id,
            slot: parse_ts("runs.slot", &self.slot)?,
            command: parse_hook_command(&self.command)?,
            since: parse_ts("post_hooks_owed.since", &self.since)?,
            policy: self.policy,
            target: self.target,
            provider: self.provider,
            name: self.name,
            resource: self.resource,
        })
    }
}

/// Every post hook owed with its run, oldest first (timestamps are text
/// of one fixed width, which sorts as time).
const OWED_SQL: &str =
    "SELECT h.run_id, r.policy, r.target, r.provider, r.slot, r.name, h.resource, h.command, h.since
     FROM post_hooks_owed h JOIN runs r ON r.id = h.run_id
     ORDER BY h.since, h.run_id";

impl SqliteLedger {
    /// Record, before a pre hook starts, that run `run_id` owes its post
    /// hook `command`; again for the same run: command and resource
    /// replaced, `since` kept.
    pub fn owe_post_hook(
        &self,
        run_id: i64,
        command: &[String],
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let command = hook_command_json(command)?;
        self.conn().execute(
            "INSERT INTO post_hooks_owed (run_id, command, resource, since) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_id) DO UPDATE SET
                 command = excluded.command, resource = excluded.resource",
            params![run_id, command, resource, ts(now)],
        )?;
        Ok(())
    }

    /// The post hook of `run_id` has run to its end: no longer owed.
    /// Whether it was.
    pub fn post_hook_ran(&self, run_id: i64) -> Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM post_hooks_owed WHERE run_id = ?1", [run_id])?;
        Ok(n > 0)
    }

    /// Every post hook owed, oldest `since` first (then run id); a row
    /// that cannot be read is logged and left out.
    pub fn post_hooks_owed(&self) -> Result<Vec<OwedHook>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(OWED_SQL)?;
        // A value of the wrong type fails its row alone, not the query.
        let rows = stmt
            .query_map([], |r| {
                let run_id: i64 = r.get(0)?;
                let raw = (|| {
                    Ok(RawOwed {
                        run_id,
                        policy: r.get(1)?,
                        target: r.get(2)?,
                        provider: r.get(3)?,
                        slot: r.get(4)?,
                        name: r.get(5)?,
                        resource: r.get(6)?,
                        command: r.get(7)?,
                        since: r.get(8)?,
                    })
                })();
                Ok((run_id, raw))
            })?
            .collect::<rusqlite::Result<Vec<(i64, rusqlite::Result<RawOwed>)>>>()?;
        Ok(readable_hooks(rows.into_iter().map(|(run_id, raw)| {
            (
                run_id,
                raw.map_err(StateError::from).and_then(RawOwed::parse),
            )
        })))
    }
}
