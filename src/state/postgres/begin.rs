//! The checks and inserts of `begin_run(s)`: two statements per target,
//! as a slot of a thousand targets runs them a thousand times.

use super::conn::Tx;
use chrono::{DateTime, Utc};

use super::rows::get;
use super::{ms, OPEN_RUN_STATES_SQL};
use crate::state::{Begin, NewRun, Result, RunState};

/// The checks and insert of one intent, as the SQLite ledger's: a slot
/// already recorded is not run again, and a slot that comes while a run
/// of the same target is open is recorded as skipped.
pub(super) async fn begin(
    tx: &Tx<'_>,
    run: &NewRun,
    now: DateTime<Utc>,
    epoch: Option<i64>,
) -> Result<Begin> {
    let row = tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE policy = $1 AND target = $2 AND slot = $3),
                        (SELECT slot FROM runs WHERE policy = $1 AND target = $2
                           AND state IN ({OPEN_RUN_STATES_SQL}) ORDER BY slot DESC LIMIT 1)"
            ),
            &[&run.policy, &run.target, &ms(run.slot)],
        )
        .await?;
    let recorded: bool = get(&row, 0, "runs")?;
    if recorded {
        return Ok(Begin::AlreadyRecorded);
    }
    let running: Option<DateTime<Utc>> = get(&row, 1, "runs.slot")?;
    if let Some(running_slot) = running {
        let why = format!(
            "skipped: the run for slot {} is still in flight",
            running_slot.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        insert(tx, run, RunState::Skipped, now, Some(&why), epoch).await?;
        return Ok(Begin::Overlap { running_slot });
    }
    let id = insert(tx, run, RunState::Intent, now, None, epoch).await?;
    Ok(Begin::Started(id))
}

/// A run row, and its target's row if the target is new or changed
/// provider, in one statement.
pub(super) async fn insert(
    tx: &Tx<'_>,
    run: &NewRun,
    state: RunState,
    now: DateTime<Utc>,
    error: Option<&str>,
    epoch: Option<i64>,
) -> Result<i64> {
    let finished = (!state.is_open()).then(|| ms(now));
    let row = tx
        .query_one(
            r#"WITH target AS (
                 INSERT INTO targets (policy, target, provider) VALUES ($1, $2, $3)
                 ON CONFLICT (policy, target) DO UPDATE SET provider = excluded.provider
                 WHERE targets.provider != excluded.provider)
               INSERT INTO runs (policy, target, provider, slot, name, "full", state, started_at, finished_at, error, epoch)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"#,
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
