//! The holds an operator placed on snapshots, and the leader's delete
//! claims they are checked against. A hold is the operator's control:
//! any process writes it, beside a daemon that holds the ledger's lock.
//!
//! A hold and a delete claim never race: each is one IMMEDIATE
//! transaction ([`write_tx`]), which takes SQLite's write lock before its
//! first read, so one of them sees everything the other wrote.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::rows::{parse_opt_ts, parse_ts, snapshot_row, ts, RawSnapshot};
use super::{write_tx, LedgerState, Result, SqliteLedger, SNAPSHOT_COLUMNS};
use crate::state::{
    check_hold, hold_key, hold_snapshot, too_late, HoldPlaced, SnapshotHold, StateError,
};

pub(super) const HOLD_COLUMNS: &str =
    "policy, target, snapshot_id, reason, held_by, since, until_at";

/// A row of [`HOLD_COLUMNS`], its times still text.
pub(super) type RawHold = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

pub(super) fn raw_hold(r: &Row<'_>) -> rusqlite::Result<RawHold> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

pub(super) fn parse_hold(
    (policy, target, key, reason, by, since, until): RawHold,
) -> Result<SnapshotHold> {
    Ok(SnapshotHold {
        policy,
        target,
        snapshot_id: hold_snapshot(key),
        reason,
        by,
        since: parse_ts("snapshot_holds.since", &since)?,
        until: parse_opt_ts("snapshot_holds.until_at", until)?,
    })
}

/// The holds of (`policy`, `target`) in force at `now`.
fn target_holds(
    tx: &Transaction<'_>,
    policy: &str,
    target: &str,
    now: DateTime<Utc>,
) -> Result<Vec<SnapshotHold>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {HOLD_COLUMNS} FROM snapshot_holds
         WHERE policy = ?1 AND target = ?2 AND (until_at IS NULL OR until_at > ?3)"
    ))?;
    let raws = stmt
        .query_map(params![policy, target, ts(now)], raw_hold)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raws.into_iter().map(parse_hold).collect()
}

impl SqliteLedger {
    /// Place `hold`, dated `now` (see [`crate::state::Ledger::hold`]).
    pub fn hold(&self, hold: &SnapshotHold, now: DateTime<Utc>) -> Result<HoldPlaced> {
        let key = hold_key(hold.snapshot_id.as_deref())?;
        check_hold(hold, now)?;
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        // Times are text of one fixed width, which compares as time.
        tx.execute(
            "DELETE FROM snapshot_holds WHERE until_at IS NOT NULL AND until_at <= ?1",
            [ts(now)],
        )?;
        let mut placed = HoldPlaced::default();
        match &hold.snapshot_id {
            Some(id) => {
                let mut stmt = tx.prepare(
                    "SELECT state, deleted_at, delete_claim_until > ?4 FROM snapshots
                     WHERE policy = ?1 AND target = ?2 AND snapshot_id = ?3 ORDER BY id",
                )?;
                let rows = stmt
                    .query_map(params![hold.policy, hold.target, id, ts(now)], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Option<bool>>(2)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                drop(stmt);
                for (state, deleted_at, claimed) in rows {
                    let state = LedgerState::parse(&state)?;
                    let deleted_at = parse_opt_ts("snapshots.deleted_at", deleted_at)?;
                    if let Some(why) = too_late(state, deleted_at, claimed.unwrap_or(false)) {
                        // Dropping the transaction rolls back the removal
                        // of ended holds: nothing is written.
                        return Err(StateError::HoldTooLate {
                            snapshot_id: id.clone(),
                            why,
                        });
                    }
                    placed.known = true;
                }
            }
            None => {
                let mut stmt = tx.prepare(
                    "SELECT snapshot_id FROM snapshots
                     WHERE policy = ?1 AND target = ?2 AND state <> 'deleted'
                       AND (state = 'deleting' OR delete_claim_until > ?3)
                     ORDER BY id",
                )?;
                placed.not_covered = stmt
                    .query_map(params![hold.policy, hold.target, ts(now)], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
            }
        }
        placed.replaced = tx
            .query_row(
                "SELECT 1 FROM snapshot_holds WHERE policy = ?1 AND target = ?2 AND snapshot_id = ?3",
                params![hold.policy, hold.target, key],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        tx.execute(
            &format!(
                "INSERT INTO snapshot_holds ({HOLD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (policy, target, snapshot_id) DO UPDATE SET
                     reason = excluded.reason, held_by = excluded.held_by,
                     since = excluded.since, until_at = excluded.until_at"
            ),
            params![
                hold.policy,
                hold.target,
                key,
                hold.reason,
                hold.by,
                ts(now),
                hold.until.map(ts)
            ],
        )?;
        tx.commit()?;
        Ok(placed)
    }

    /// Remove the hold of (`policy`, `target`, `snapshot_id`; None: the
    /// target-wide one); the hold removed, if there was one.
    pub fn release_hold(
        &self,
        policy: &str,
        target: &str,
        snapshot_id: Option<&str>,
    ) -> Result<Option<SnapshotHold>> {
        let key = hold_key(snapshot_id)?;
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let raw = tx
            .query_row(
                &format!(
                    "SELECT {HOLD_COLUMNS} FROM snapshot_holds
                     WHERE policy = ?1 AND target = ?2 AND snapshot_id = ?3"
                ),
                params![policy, target, key],
                raw_hold,
            )
            .optional()?;
        tx.execute(
            "DELETE FROM snapshot_holds WHERE policy = ?1 AND target = ?2 AND snapshot_id = ?3",
            params![policy, target, key],
        )?;
        tx.commit()?;
        raw.map(parse_hold).transpose()
    }

    /// The holds in force at `now`, by policy, target and snapshot id in
    /// byte order (SQLite compares text by its bytes; the target-wide
    /// hold's empty key first). Writes nothing: a read-only ledger
    /// answers it.
    pub fn holds(&self, now: DateTime<Utc>) -> Result<Vec<SnapshotHold>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {HOLD_COLUMNS} FROM snapshot_holds
             WHERE until_at IS NULL OR until_at > ?1 ORDER BY policy, target, snapshot_id"
        ))?;
        let raws = stmt
            .query_map([ts(now)], raw_hold)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(parse_hold).collect()
    }

    /// Claim `rows` for deletion until `until`, leaving out each that a
    /// hold in force at `now` covers (see
    /// [`crate::state::Ledger::claim_deletes`]). The rows claimed, in the
    /// order of `rows`.
    pub fn claim_deletes(
        &self,
        rows: &[i64],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for &id in rows {
            let raw = tx
                .query_row(
                    &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?1"),
                    [id],
                    snapshot_row,
                )
                .optional()?;
            let Some(row) = raw.map(RawSnapshot::parse).transpose()? else {
                continue;
            };
            let held = target_holds(&tx, &row.policy, &row.target, now)?
                .iter()
                .any(|h| h.covers(&row, now));
            if !held {
                tx.execute(
                    "UPDATE snapshots SET delete_claim_until = ?2 WHERE id = ?1",
                    params![id, ts(until)],
                )?;
                claimed.push(id);
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Drop the delete claim of `row` (a row the ledger does not have:
    /// nothing to drop).
    pub fn drop_delete_claim(&self, row: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        tx.execute(
            "UPDATE snapshots SET delete_claim_until = NULL WHERE id = ?1",
            [row],
        )?;
        tx.commit()?;
        Ok(())
    }
}
