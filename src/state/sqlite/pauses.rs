//! The pauses an operator set, and the slots skipped on purpose (paused,
//! or inside a blackout window). A pause is the operator's control: any
//! process writes it, beside a daemon that holds the ledger's lock.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::rows::{parse_opt_ts, parse_ts, ts};
use super::runs::{insert_run, slot_recorded};
use super::{write_tx, NewRun, Result, RunState, SqliteLedger};
use crate::state::{pause_policy, pause_scope, Pause};

pub(super) const PAUSE_COLUMNS: &str = "scope, reason, paused_by, since, until_at";

/// A row of [`PAUSE_COLUMNS`], its times still text.
pub(super) type RawPause = (String, String, String, String, Option<String>);

pub(super) fn raw_pause(r: &Row<'_>) -> rusqlite::Result<RawPause> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

pub(super) fn parse_pause((scope, reason, by, since, until): RawPause) -> Result<Pause> {
    Ok(Pause {
        policy: pause_policy(scope),
        reason,
        by,
        since: parse_ts("pauses.since", &since)?,
        until: parse_opt_ts("pauses.until_at", until)?,
    })
}

impl SqliteLedger {
    /// Pause `policy` (None: every policy); again: reason, by and until
    /// replaced, `since` kept. Pauses whose end passed are removed.
    pub fn pause(
        &self,
        policy: Option<&str>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let scope = pause_scope(policy)?;
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        // Times are text of one fixed width, which compares as time.
        tx.execute(
            "DELETE FROM pauses WHERE until_at IS NOT NULL AND until_at <= ?1",
            [ts(now)],
        )?;
        tx.execute(
            "INSERT INTO pauses (scope, reason, paused_by, since, until_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason,
                 paused_by = excluded.paused_by, until_at = excluded.until_at",
            params![scope, reason, by, ts(now), until.map(ts)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Lift the pause of `policy` (None: the every-policy pause only); the
    /// pause lifted, if there was one.
    pub fn resume(&self, policy: Option<&str>) -> Result<Option<Pause>> {
        let scope = pause_scope(policy)?;
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let raw = tx
            .query_row(
                &format!("SELECT {PAUSE_COLUMNS} FROM pauses WHERE scope = ?1"),
                [scope],
                raw_pause,
            )
            .optional()?;
        tx.execute("DELETE FROM pauses WHERE scope = ?1", [scope])?;
        tx.commit()?;
        raw.map(parse_pause).transpose()
    }

    /// The pauses in force at `now`, the every-policy one (the empty
    /// scope) first, then by policy in byte order (SQLite compares text
    /// by its bytes). Writes nothing: a read-only ledger answers it.
    pub fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<Pause>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {PAUSE_COLUMNS} FROM pauses
             WHERE until_at IS NULL OR until_at > ?1 ORDER BY scope"
        ))?;
        let raws = stmt
            .query_map([ts(now)], raw_pause)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(parse_pause).collect()
    }

    /// Record `runs` as skipped on purpose (error `why`, finished at
    /// `now`), in one transaction; a slot already recorded is left as it
    /// is. Which were recorded.
    pub fn skip_runs(&self, runs: &[NewRun], why: &str, now: DateTime<Utc>) -> Result<Vec<bool>> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let mut recorded = Vec::with_capacity(runs.len());
        for run in runs {
            let new = !slot_recorded(&tx, run)?;
            if new {
                insert_run(&tx, run, RunState::Skipped, now, Some(why))?;
            }
            recorded.push(new);
        }
        tx.commit()?;
        Ok(recorded)
    }
}
