//! The checks and inserts of `begin_run(s)`, prepared once per
//! transaction: a slot of a thousand targets runs four statements per
//! target, and preparing each every time doubled the round trips.

use chrono::{DateTime, Utc};
use tokio_postgres::{Statement, Transaction};

use super::rows::get;
use super::{ms, OPEN_RUN_STATES_SQL};
use crate::state::{Begin, NewRun, Result, RunState};

/// The statements of one `begin_runs` transaction.
pub(super) struct BeginStatements {
    exists: Statement,
    open: Statement,
    target: Statement,
    insert: Statement,
}

impl BeginStatements {
    pub(super) async fn prepare(tx: &Transaction<'_>) -> Result<BeginStatements> {
        Ok(BeginStatements {
            exists: tx
                .prepare("SELECT 1 FROM runs WHERE policy = $1 AND target = $2 AND slot = $3")
                .await?,
            open: tx
                .prepare(&format!(
                    "SELECT slot FROM runs WHERE policy = $1 AND target = $2
                     AND state IN ({OPEN_RUN_STATES_SQL}) ORDER BY slot DESC LIMIT 1"
                ))
                .await?,
            target: tx
                .prepare(
                    "INSERT INTO targets (policy, target, provider) VALUES ($1, $2, $3)
                     ON CONFLICT (policy, target) DO UPDATE SET provider = excluded.provider
                     WHERE targets.provider != excluded.provider",
                )
                .await?,
            insert: tx
                .prepare(
                    r#"INSERT INTO runs (policy, target, provider, slot, name, "full", state, started_at, finished_at, error, epoch)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"#,
                )
                .await?,
        })
    }

    /// The checks and insert of one intent, as the SQLite ledger's: a
    /// slot already recorded is not run again, and a slot that comes
    /// while a run of the same target is open is recorded as skipped.
    pub(super) async fn begin(
        &self,
        tx: &Transaction<'_>,
        run: &NewRun,
        now: DateTime<Utc>,
        epoch: Option<i64>,
    ) -> Result<Begin> {
        let exists = tx
            .query_opt(&self.exists, &[&run.policy, &run.target, &ms(run.slot)])
            .await?;
        if exists.is_some() {
            return Ok(Begin::AlreadyRecorded);
        }
        let open = tx
            .query_opt(&self.open, &[&run.policy, &run.target])
            .await?;
        if let Some(row) = open {
            let running_slot: DateTime<Utc> = get(&row, 0, "runs.slot")?;
            let why = format!(
                "skipped: the run for slot {} is still in flight",
                running_slot.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
            self.insert(tx, run, RunState::Skipped, now, Some(&why), epoch)
                .await?;
            return Ok(Begin::Overlap { running_slot });
        }
        let id = self
            .insert(tx, run, RunState::Intent, now, None, epoch)
            .await?;
        Ok(Begin::Started(id))
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
        run: &NewRun,
        state: RunState,
        now: DateTime<Utc>,
        error: Option<&str>,
        epoch: Option<i64>,
    ) -> Result<i64> {
        let finished = (!state.is_open()).then(|| ms(now));
        tx.execute(&self.target, &[&run.policy, &run.target, &run.provider])
            .await?;
        let row = tx
            .query_one(
                &self.insert,
                &[
                    &run.policy,
                    &run.target,
                    &run.provider,
                    &ms(run.slot),
                    &run.name,
                    &run.full,
                    &state.as_str(),
                    &ms(now),
                    &finished,
                    &error,
                    &epoch,
                ],
            )
            .await?;
        get(&row, 0, "runs.id")
    }
}
