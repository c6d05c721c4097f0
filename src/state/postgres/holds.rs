//! The holds an operator placed on snapshots, and the leader's delete
//! claims they are checked against. A hold is the operator's control,
//! not a decision: written by any process, leader or not. A delete claim
//! is the leader's decision: fenced.
//!
//! A hold and a claim must never both win: a claim written after a hold
//! was checked would let the leader delete a held snapshot, and a hold
//! placed after the claims were checked would promise what a delete
//! already sent breaks. Under READ COMMITTED each statement sees what
//! was committed when it started, so reading "no claim" and "no hold" in
//! two concurrent transactions could both succeed. Both therefore lock
//! the snapshot rows concerned `FOR UPDATE` before they read: a claim
//! locks the rows it claims, a hold the live rows of its target (or of
//! its snapshot id). Whichever comes second waits for the first to
//! commit, and its next statement (a new snapshot of the database under
//! READ COMMITTED) sees what the first wrote. Both lock in id order, so
//! they cannot deadlock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::conn::Tx;
use super::rows::{get, snapshot_row};
use super::{ms, PgLedger, SNAPSHOT_COLUMNS};
use crate::state::{
    check_hold, hold_key, hold_snapshot, too_late, HoldPlaced, LedgerState, Result, SnapshotHold,
    SnapshotRow, StateError,
};

const HOLD_COLUMNS: &str = "policy, target, snapshot_id, reason, held_by, since, until_at";

/// A row of [`HOLD_COLUMNS`].
fn hold_row(row: &Row) -> Result<SnapshotHold> {
    Ok(SnapshotHold {
        policy: get(row, 0, "snapshot_holds.policy")?,
        target: get(row, 1, "snapshot_holds.target")?,
        snapshot_id: hold_snapshot(get(row, 2, "snapshot_holds.snapshot_id")?),
        reason: get(row, 3, "snapshot_holds.reason")?,
        by: get(row, 4, "snapshot_holds.held_by")?,
        since: get(row, 5, "snapshot_holds.since")?,
        until: get(row, 6, "snapshot_holds.until_at")?,
    })
}

/// The holds of (`policy`, `target`) in force at `now`.
async fn target_holds(
    tx: &Tx<'_>,
    policy: &str,
    target: &str,
    now: DateTime<Utc>,
) -> Result<Vec<SnapshotHold>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {HOLD_COLUMNS} FROM snapshot_holds
                 WHERE policy = $1 AND target = $2 AND (until_at IS NULL OR until_at > $3)"
            ),
            &[&policy, &target, &ms(now)],
        )
        .await?;
    rows.iter().map(hold_row).collect()
}

impl PgLedger {
    /// Place `hold`, dated `now` (see [`crate::state::Ledger::hold`]).
    /// Not fenced.
    pub async fn hold(&self, hold: &SnapshotHold, now: DateTime<Utc>) -> Result<HoldPlaced> {
        let key = hold_key(hold.snapshot_id.as_deref())?;
        check_hold(hold, now)?;
        let now = ms(now);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM snapshot_holds WHERE until_at IS NOT NULL AND until_at <= $1",
            &[&now],
        )
        .await?;
        // The rows a concurrent claim could be writing, locked before
        // their states and claims are read (see the module's comment).
        tx.execute(
            "SELECT id FROM snapshots
             WHERE policy = $1 AND target = $2 AND state <> 'deleted'
               AND ($3 = '' OR snapshot_id = $3)
             ORDER BY id FOR UPDATE",
            &[&hold.policy, &hold.target, &key],
        )
        .await?;
        let mut placed = HoldPlaced::default();
        match &hold.snapshot_id {
            Some(id) => {
                let rows = tx
                    .query(
                        "SELECT state, deleted_at, COALESCE(delete_claim_until > $4, false)
                         FROM snapshots
                         WHERE policy = $1 AND target = $2 AND snapshot_id = $3 ORDER BY id",
                        &[&hold.policy, &hold.target, id, &now],
                    )
                    .await?;
                for row in &rows {
                    let state = LedgerState::parse(get(row, 0, "snapshots.state")?)?;
                    let deleted_at = get(row, 1, "snapshots.deleted_at")?;
                    let claimed = get(row, 2, "snapshots.delete_claim_until")?;
                    if let Some(why) = too_late(state, deleted_at, claimed) {
                        // Dropping the transaction rolls it back: nothing
                        // is written.
                        return Err(StateError::HoldTooLate {
                            snapshot_id: id.clone(),
                            why,
                        });
                    }
                    placed.known = true;
                }
            }
            None => {
                let rows = tx
                    .query(
                        "SELECT snapshot_id FROM snapshots
                         WHERE policy = $1 AND target = $2 AND state <> 'deleted'
                           AND (state = 'deleting' OR delete_claim_until > $3)
                         ORDER BY id",
                        &[&hold.policy, &hold.target, &now],
                    )
                    .await?;
                placed.not_covered = rows
                    .iter()
                    .map(|r| get(r, 0, "snapshots.snapshot_id"))
                    .collect::<Result<_>>()?;
            }
        }
        // xmax = 0: the row was inserted, not updated (a hold with the
        // same key was there).
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO snapshot_holds ({HOLD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (policy, target, snapshot_id) DO UPDATE SET
                         reason = excluded.reason, held_by = excluded.held_by,
                         since = excluded.since, until_at = excluded.until_at
                     RETURNING xmax <> 0"
                ),
                &[
                    &hold.policy,
                    &hold.target,
                    &key,
                    &hold.reason,
                    &hold.by,
                    &now,
                    &hold.until.map(ms),
                ],
            )
            .await?;
        placed.replaced = get(&row, 0, "snapshot_holds")?;
        tx.commit().await?;
        Ok(placed)
    }

    /// Remove the hold of (`policy`, `target`, `snapshot_id`; None: the
    /// target-wide one); the hold removed, if there was one. Not fenced.
    pub async fn release_hold(
        &self,
        policy: &str,
        target: &str,
        snapshot_id: Option<&str>,
    ) -> Result<Option<SnapshotHold>> {
        let key = hold_key(snapshot_id)?;
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "DELETE FROM snapshot_holds WHERE policy = $1 AND target = $2 AND snapshot_id = $3
                     RETURNING {HOLD_COLUMNS}"
                ),
                &[&policy, &target, &key],
            )
            .await?;
        row.as_ref().map(hold_row).transpose()
    }

    /// The holds in force at `now`, by policy, target and snapshot id in
    /// byte order (the "C" collation, whatever the database's; the
    /// target-wide hold's empty key first).
    pub async fn holds(&self, now: DateTime<Utc>) -> Result<Vec<SnapshotHold>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {HOLD_COLUMNS} FROM snapshot_holds
                     WHERE until_at IS NULL OR until_at > $1
                     ORDER BY policy COLLATE \"C\", target COLLATE \"C\", snapshot_id COLLATE \"C\""
                ),
                &[&ms(now)],
            )
            .await?;
        rows.iter().map(hold_row).collect()
    }

    /// Claim `rows` for deletion until `until`, leaving out each that a
    /// hold in force at `now` covers (see
    /// [`crate::state::Ledger::claim_deletes`]). The rows claimed, in the
    /// order of `rows`. Fenced.
    pub async fn claim_deletes(
        &self,
        rows: &[i64],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let now = ms(now);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.fenced(&tx).await?;
        // Locked before the holds are read (see the module's comment).
        let ids = rows.to_vec();
        let found = tx
            .query(
                &format!(
                    "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ANY($1)
                     ORDER BY id FOR UPDATE"
                ),
                &[&ids],
            )
            .await?;
        let found: HashMap<i64, SnapshotRow> = found
            .iter()
            .map(|r| snapshot_row(r).map(|s| (s.id, s)))
            .collect::<Result<_>>()?;
        let mut holds: HashMap<(String, String), Vec<SnapshotHold>> = HashMap::new();
        let mut claimed = Vec::with_capacity(rows.len());
        for id in rows {
            let Some(row) = found.get(id) else {
                continue;
            };
            let key = (row.policy.clone(), row.target.clone());
            if !holds.contains_key(&key) {
                let of_target = target_holds(&tx, &row.policy, &row.target, now).await?;
                holds.insert(key.clone(), of_target);
            }
            let held = holds
                .get(&key)
                .is_some_and(|hs| hs.iter().any(|h| h.covers(row, now)));
            if !held {
                claimed.push(*id);
            }
        }
        tx.execute(
            "UPDATE snapshots SET delete_claim_until = $2 WHERE id = ANY($1)",
            &[&claimed, &ms(until)],
        )
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Drop the delete claim of `row`. Not fenced.
    pub async fn drop_delete_claim(&self, row: i64) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE snapshots SET delete_claim_until = NULL WHERE id = $1",
                &[&row],
            )
            .await?;
        Ok(())
    }
}
