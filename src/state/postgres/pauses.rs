//! The pauses an operator set, and the slots skipped on purpose (paused,
//! or inside a blackout window). A pause is the operator's control, not a
//! decision: written by any process, leader or not. Recording skipped
//! slots is the schedule's decision: fenced.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::begin;
use super::rows::get;
use super::{ms, PgLedger};
use crate::state::{pause_policy, pause_scope, NewRun, Pause, Result, RunState};

const PAUSE_COLUMNS: &str = "scope, reason, paused_by, since, until_at";

/// A row of [`PAUSE_COLUMNS`].
fn pause_row(row: &Row) -> Result<Pause> {
    Ok(Pause {
        policy: pause_policy(get(row, 0, "pauses.scope")?),
        reason: get(row, 1, "pauses.reason")?,
        by: get(row, 2, "pauses.paused_by")?,
        since: get(row, 3, "pauses.since")?,
        until: get(row, 4, "pauses.until_at")?,
    })
}

impl PgLedger {
    /// Pause `policy` (None: every policy); again: reason, by and until
    /// replaced, `since` kept. Pauses whose end passed are removed. Not
    /// fenced.
    pub async fn pause(
        &self,
        policy: Option<&str>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let scope = pause_scope(policy)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM pauses WHERE until_at IS NOT NULL AND until_at <= $1",
            &[&ms(now)],
        )
        .await?;
        tx.execute(
            "INSERT INTO pauses (scope, reason, paused_by, since, until_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason,
                 paused_by = excluded.paused_by, until_at = excluded.until_at",
            &[&scope, &reason, &by, &ms(now), &until.map(ms)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lift the pause of `policy` (None: the every-policy pause only); the
    /// pause lifted, if there was one. Not fenced.
    pub async fn resume(&self, policy: Option<&str>) -> Result<Option<Pause>> {
        let scope = pause_scope(policy)?;
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("DELETE FROM pauses WHERE scope = $1 RETURNING {PAUSE_COLUMNS}"),
                &[&scope],
            )
            .await?;
        row.as_ref().map(pause_row).transpose()
    }

    /// The pauses in force at `now`, the every-policy one (the empty
    /// scope) first, then by policy in byte order (the "C" collation,
    /// whatever the database's).
    pub async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<Pause>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {PAUSE_COLUMNS} FROM pauses
                     WHERE until_at IS NULL OR until_at > $1 ORDER BY scope COLLATE \"C\""
                ),
                &[&ms(now)],
            )
            .await?;
        rows.iter().map(pause_row).collect()
    }

    /// Record `runs` as skipped on purpose (error `why`, finished at
    /// `now`), in one transaction; a slot already recorded is left as it
    /// is. Which were recorded. Fenced.
    pub async fn skip_runs(
        &self,
        runs: &[NewRun],
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let epoch = self.fenced(&tx).await?;
        let mut recorded = Vec::with_capacity(runs.len());
        for run in runs {
            let exists: bool = get(
                &tx.query_one(
                    "SELECT EXISTS (SELECT 1 FROM runs WHERE policy = $1 AND target = $2 AND slot = $3)",
                    &[&run.policy, &run.target, &ms(run.slot)],
                )
                .await?,
                0,
                "runs",
            )?;
            if !exists {
                begin::insert(&tx, run, RunState::Skipped, now, Some(why), Some(epoch)).await?;
            }
            recorded.push(!exists);
        }
        tx.commit().await?;
        Ok(recorded)
    }
}
