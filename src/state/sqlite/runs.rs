//! Fired slots, runs and the snapshots a run records: the intents written
//! before any call, and their outcomes.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::rows::{finish_run_row, op_kind, parse_opt_ts, parse_ts, run_row, ts, Reader};
use super::{
    write_tx, Begin, LedgerState, NewRun, OpRow, PollPlan, Result, RunRow, RunState, SnapshotRow,
    SqliteLedger, Unreadable, OPEN_RUN_STATES_SQL, RUN_COLUMNS,
};
use crate::providers::{Created, OpKind};

impl SqliteLedger {
    pub fn last_slot(&self, policy: &str) -> Result<Option<DateTime<Utc>>> {
        let s: Option<String> = self
            .conn()
            .query_row(
                "SELECT last_slot FROM schedule WHERE policy = ?1",
                [policy],
                |r| r.get(0),
            )
            .optional()?;
        parse_opt_ts("schedule.last_slot", s)
    }

    /// Record that `slot` fired for `policy`; never moves backwards.
    pub fn set_last_slot(&self, policy: &str, slot: DateTime<Utc>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO schedule (policy, last_slot) VALUES (?1, ?2)
             ON CONFLICT (policy) DO UPDATE SET last_slot = excluded.last_slot
             WHERE excluded.last_slot > schedule.last_slot",
            params![policy, ts(slot)],
        )?;
        Ok(())
    }

    /// Record the intent for one (policy, target, slot), in one transaction
    /// with the checks that make it safe: a slot already recorded is not run
    /// again, and a slot that comes while the previous run of the same policy
    /// and target is open is recorded as skipped.
    pub fn begin_run(&self, run: &NewRun, now: DateTime<Utc>) -> Result<Begin> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let begin = begin_run_in(&tx, run, now)?;
        tx.commit()?;
        Ok(begin)
    }

    /// [`SqliteLedger::begin_run`] for every target of one slot in a single
    /// transaction: one durable commit instead of one per target, so a
    /// slot of thousands of targets starts at once. All or nothing: on
    /// error no intent of the slot is written.
    pub fn begin_runs(&self, runs: &[NewRun], now: DateTime<Utc>) -> Result<Vec<Begin>> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let begun = runs
            .iter()
            .map(|run| begin_run_in(&tx, run, now))
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(begun)
    }

    pub fn run(&self, run_id: i64) -> Result<RunRow> {
        run_by_id(&self.conn(), run_id)
    }

    /// Runs not yet terminal (to resume after a restart).
    pub fn open_runs(&self) -> Result<Vec<RunRow>> {
        self.query_runs(&open_runs_sql(), params![])
    }

    /// Runs for one policy and target, newest slot first.
    pub fn runs_for(&self, policy: &str, target: &str, limit: u32) -> Result<Vec<RunRow>> {
        self.query_runs(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE policy = ?1 AND target = ?2 ORDER BY slot DESC, id DESC LIMIT ?3"
            ),
            params![policy, target, limit],
        )
    }

    /// [`SqliteLedger::open_runs`], leaving out (and reporting) rows that cannot
    /// be read, so that one corrupt row never stops the others from being
    /// taken up.
    pub fn open_runs_readable(&self) -> Result<(Vec<RunRow>, Vec<Unreadable>)> {
        let reader = Reader {
            table: "runs",
            row: run_row,
            id: |raw| raw.0.id,
            parse: finish_run_row,
        };
        reader.each_readable(&self.conn(), &open_runs_sql())
    }

    pub(super) fn query_runs(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<RunRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let raws = stmt
            .query_map(p, run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(finish_run_row).collect()
    }

    pub fn set_run_state(
        &self,
        run_id: i64,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let finished = (!state.is_open()).then(|| ts(now));
        self.conn().execute(
            "UPDATE runs SET state = ?2, error = COALESCE(?3, error), finished_at = ?4 WHERE id = ?1",
            params![run_id, state.as_str(), error, finished],
        )?;
        Ok(())
    }

    /// Save what a create call returned, in one transaction: a snapshot row
    /// and an operation per snapshot, and the run moves to `creating`.
    pub fn record_created(
        &self,
        run_id: i64,
        created: &[Created],
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<Vec<OpRow>> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let run = run_by_id(&tx, run_id)?;
        let mut op_ids = Vec::new();
        for c in created {
            let snap = insert_snapshot(&tx, &run, &c.snapshot_id, LedgerState::Creating, now)?;
            op_ids.push(insert_op(
                &tx,
                snap,
                OpKind::Create,
                &run.provider,
                &c.operation,
                now,
                plan,
            )?);
        }
        // Only a run still starting moves on: a late answer never reopens
        // a run that was closed meanwhile.
        tx.execute(
            "UPDATE runs SET state = ?2 WHERE id = ?1 AND state IN ('intent', 'creating')",
            params![run_id, RunState::Creating.as_str()],
        )?;
        tx.commit()?;
        drop(conn);
        op_ids.into_iter().map(|id| self.op(id)).collect()
    }

    /// Record a snapshot found on the cloud by its deterministic name after
    /// a crash (the create had reached the cloud but its answer was lost).
    pub fn adopt_snapshot(
        &self,
        run_id: i64,
        snapshot_id: &str,
        state: LedgerState,
        now: DateTime<Utc>,
    ) -> Result<SnapshotRow> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let run = run_by_id(&tx, run_id)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM snapshots WHERE provider = ?1 AND snapshot_id = ?2",
                params![run.provider, snapshot_id],
                |r| r.get(0),
            )
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => insert_snapshot(&tx, &run, snapshot_id, state, now)?,
        };
        if state == LedgerState::Available {
            write_snapshot_state(&tx, id, state, None, Completion::First, now)?;
        }
        tx.execute(
            "UPDATE runs SET state = ?2 WHERE id = ?1 AND state = 'intent'",
            params![run_id, RunState::Creating.as_str()],
        )?;
        tx.commit()?;
        drop(conn);
        self.snapshot(id)
    }
}

/// The run in row `run_id`.
fn run_by_id(conn: &Connection, run_id: i64) -> Result<RunRow> {
    finish_run_row(conn.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
        [run_id],
        run_row,
    )?)
}

/// One operation's terminal outcome and its snapshot's new state.
pub(super) fn record_outcome(
    tx: &Transaction<'_>,
    id: i64,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (kind, snap, finished): (String, i64, Option<String>) = tx.query_row(
        "SELECT kind, snapshot, finished_at FROM operations WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    // An operation finishes once: a second outcome (another process, a
    // retried round) changes neither it nor its snapshot.
    if finished.is_some() {
        return Ok(());
    }
    let outcome = if error.is_none() {
        "succeeded"
    } else {
        "failed"
    };
    tx.execute(
        "UPDATE operations SET finished_at = ?2, outcome = ?3, error = ?4 WHERE id = ?1",
        params![id, ts(now), outcome, error],
    )?;
    let (state, completion) = match (op_kind(&kind)?, error) {
        (OpKind::Create, None) => (LedgerState::Available, Completion::Now),
        (OpKind::Create, Some(_)) => (LedgerState::Failed, Completion::Now),
        (OpKind::Delete, None) => (LedgerState::Deleted, Completion::Keep),
        // The snapshot is still there; it stays in the ledger as ours.
        (OpKind::Delete, Some(_)) => (LedgerState::Available, Completion::Keep),
        // Restoring reads a snapshot; it does not change it.
        (OpKind::Restore, _) => return Ok(()),
    };
    write_snapshot_state(tx, snap, state, error, completion, now)
}

/// What a change of a snapshot's state does to its `completed_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Completion {
    /// Its create operation ended now.
    Now,
    /// It is seen done (available or failed) now; an earlier completion
    /// stands.
    First,
    /// Not a completion.
    Keep,
}

impl Completion {
    /// A state seen outside an operation: done states are a first
    /// completion.
    pub(super) fn seen(state: LedgerState) -> Completion {
        match state {
            LedgerState::Available | LedgerState::Failed => Completion::First,
            _ => Completion::Keep,
        }
    }
}

/// Move the snapshot in row `id` to `state`, with the error that put it
/// there; `completion` says what happens to its completion time, and the
/// time it is deleted is its deletion.
pub(super) fn write_snapshot_state(
    conn: &Connection,
    id: i64,
    state: LedgerState,
    error: Option<&str>,
    completion: Completion,
    now: DateTime<Utc>,
) -> Result<()> {
    let at = ts(now);
    let (completed, overwrite) = match completion {
        Completion::Now => (Some(&at), true),
        Completion::First => (Some(&at), false),
        Completion::Keep => (None, false),
    };
    let deleted = (state == LedgerState::Deleted).then_some(&at);
    conn.execute(
        "UPDATE snapshots SET state = ?2, error = COALESCE(?3, error),
           completed_at = CASE WHEN ?6 THEN ?4 ELSE COALESCE(completed_at, ?4) END,
           deleted_at = COALESCE(?5, deleted_at)
         WHERE id = ?1",
        params![id, state.as_str(), error, completed, deleted, overwrite],
    )?;
    Ok(())
}

/// Runs not yet terminal, oldest first (strict and row-by-row readers).
pub(super) fn open_runs_sql() -> String {
    format!("SELECT {RUN_COLUMNS} FROM runs WHERE state IN ({OPEN_RUN_STATES_SQL}) ORDER BY id")
}

pub(super) fn insert_run(
    tx: &Transaction<'_>,
    run: &NewRun,
    state: RunState,
    now: DateTime<Utc>,
    error: Option<&str>,
) -> Result<i64> {
    let finished = (!state.is_open()).then(|| ts(now));
    tx.execute(
        "INSERT INTO targets (policy, target, provider) VALUES (?1, ?2, ?3)
         ON CONFLICT (policy, target) DO UPDATE SET provider = excluded.provider
         WHERE provider != excluded.provider",
        params![run.policy, run.target, run.provider],
    )?;
    tx.execute(
        "INSERT INTO runs (policy, target, provider, slot, name, full, state, started_at, finished_at, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            run.policy,
            run.target,
            run.provider,
            ts(run.slot),
            run.name,
            run.full,
            state.as_str(),
            ts(now),
            finished,
            error
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn insert_snapshot(
    tx: &Transaction<'_>,
    run: &RunRow,
    snapshot_id: &str,
    state: LedgerState,
    now: DateTime<Utc>,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO snapshots (run_id, provider, policy, target, slot, name, snapshot_id, state, full, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            run.id,
            run.provider,
            run.policy,
            run.target,
            ts(run.slot),
            run.name,
            snapshot_id,
            state.as_str(),
            run.full,
            ts(now)
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn insert_op(
    tx: &Transaction<'_>,
    snapshot: i64,
    kind: OpKind,
    provider: &str,
    reference: &str,
    now: DateTime<Utc>,
    plan: PollPlan,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO operations (snapshot, kind, provider, reference, started_at, next_poll_at, poll_interval_ms, deadline)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            snapshot,
            kind.as_str(),
            provider,
            reference,
            ts(now),
            ts(plan.first_poll),
            plan.interval.as_millis() as i64,
            ts(plan.deadline)
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Whether a run of `run`'s (policy, target, slot) is recorded, in any
/// state: such a slot is never recorded again.
pub(super) fn slot_recorded(tx: &Transaction<'_>, run: &NewRun) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM runs WHERE policy = ?1 AND target = ?2 AND slot = ?3",
            params![run.policy, run.target, ts(run.slot)],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false))
}

/// The checks and insert of [`SqliteLedger::begin_run`], inside a caller's transaction.
pub(super) fn begin_run_in(
    tx: &rusqlite::Transaction<'_>,
    run: &NewRun,
    now: DateTime<Utc>,
) -> Result<Begin> {
    if slot_recorded(tx, run)? {
        return Ok(Begin::AlreadyRecorded);
    }
    let open: Option<String> = tx
        .query_row(
            &format!(
                "SELECT slot FROM runs WHERE policy = ?1 AND target = ?2
                 AND state IN ({OPEN_RUN_STATES_SQL}) ORDER BY slot DESC LIMIT 1"
            ),
            params![run.policy, run.target],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(running) = open {
        let running_slot = parse_ts("runs.slot", &running)?;
        insert_run(
            tx,
            run,
            RunState::Skipped,
            now,
            Some(&format!(
                "skipped: the run for slot {} is still in flight",
                ts(running_slot)
            )),
        )?;
        return Ok(Begin::Overlap { running_slot });
    }
    let id = insert_run(tx, run, RunState::Intent, now, None)?;
    Ok(Begin::Started(id))
}
