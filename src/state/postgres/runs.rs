//! Fired slots, runs and the snapshots a run records: the intents written
//! before any call, and their outcomes.

use chrono::{DateTime, Utc};

use super::begin;
use super::conn::{AsDb, Tx};
use super::rows::{each_readable, get, run_row};
use super::snapshots::{write_snapshot_state, Completion};
use super::{interval_ms, ms, PgLedger, OPEN_RUN_STATES_SQL, RUN_COLUMNS};
use crate::providers::{Created, OpKind};
use crate::state::{
    Begin, LedgerState, NewRun, OpRow, PollPlan, Result, RunRow, RunState, SnapshotRow, StateError,
    Unreadable,
};

impl PgLedger {
    /// The last slot fired for `policy`.
    pub async fn last_slot(&self, policy: &str) -> Result<Option<DateTime<Utc>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT last_slot FROM schedule WHERE policy = $1",
                &[&policy],
            )
            .await?;
        row.map(|r| get(&r, 0, "schedule.last_slot")).transpose()
    }

    /// Record that `slot` fired for `policy`; never moves backwards.
    /// Fenced.
    pub async fn set_last_slot(&self, policy: &str, slot: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.fenced(&tx).await?;
        tx.execute(
            "INSERT INTO schedule (policy, last_slot) VALUES ($1, $2)
             ON CONFLICT (policy) DO UPDATE SET last_slot = excluded.last_slot
             WHERE excluded.last_slot > schedule.last_slot",
            &[&policy, &ms(slot)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record the intent for one (policy, target, slot) with the checks
    /// that make it safe, in one transaction. Fenced.
    pub async fn begin_run(&self, run: &NewRun, now: DateTime<Utc>) -> Result<Begin> {
        self.begin_runs(std::slice::from_ref(run), now)
            .await?
            .pop()
            .ok_or_else(|| StateError::Lost("begin_runs answered no run".into()))
    }

    /// [`PgLedger::begin_run`] for every target of one slot in a single
    /// transaction: all or nothing. Fenced.
    pub async fn begin_runs(&self, runs: &[NewRun], now: DateTime<Utc>) -> Result<Vec<Begin>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let epoch = self.fenced(&tx).await?;
        let mut begun = Vec::with_capacity(runs.len());
        for run in runs {
            begun.push(begin::begin(&tx, run, now, Some(epoch)).await?);
        }
        tx.commit().await?;
        Ok(begun)
    }

    /// The run in row `run_id`.
    pub async fn run(&self, run_id: i64) -> Result<RunRow> {
        run_by_id(&*self.client().await?, run_id).await
    }

    /// Runs not yet terminal, oldest first.
    pub async fn open_runs(&self) -> Result<Vec<RunRow>> {
        let rows = self.client().await?.query(&open_runs_sql(), &[]).await?;
        super::rows::all(&rows, run_row)
    }

    /// [`PgLedger::open_runs`], leaving out (and reporting) rows that
    /// cannot be read.
    pub async fn open_runs_readable(&self) -> Result<(Vec<RunRow>, Vec<Unreadable>)> {
        let rows = self.client().await?.query(&open_runs_sql(), &[]).await?;
        Ok(each_readable(&rows, "runs", run_row))
    }

    /// Runs for one policy and target, newest slot first.
    pub async fn runs_for(&self, policy: &str, target: &str, limit: u32) -> Result<Vec<RunRow>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE policy = $1 AND target = $2
                     ORDER BY slot DESC, id DESC LIMIT $3"
                ),
                &[&policy, &target, &i64::from(limit)],
            )
            .await?;
        super::rows::all(&rows, run_row)
    }

    /// Fenced.
    pub async fn set_run_state(
        &self,
        run_id: i64,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let finished = (!state.is_open()).then(|| ms(now));
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.fenced(&tx).await?;
        tx.execute(
            "UPDATE runs SET state = $2, error = COALESCE($3, error), finished_at = $4 WHERE id = $1",
            &[&run_id, &state.as_str(), &error, &finished],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Save what a create call returned, in one transaction: a snapshot row
    /// and an operation per snapshot, and the run moves to `creating`. A
    /// fact, not fenced; the operations carry the fence's epoch if any.
    pub async fn record_created(
        &self,
        run_id: i64,
        created: &[Created],
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<Vec<OpRow>> {
        let epoch = self.epoch();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let run = run_by_id(&tx, run_id).await?;
        let mut ops = Vec::new();
        for c in created {
            let snap =
                insert_snapshot(&tx, &run, &c.snapshot_id, LedgerState::Creating, now, false)
                    .await?
                    .ok_or_else(|| StateError::Lost("a snapshot insert returned no id".into()))?;
            let op = insert_op(
                &tx,
                snap,
                OpKind::Create,
                &run.provider,
                &c.operation,
                now,
                plan,
                epoch,
            )
            .await?;
            ops.push(op);
        }
        // Only a run still starting moves on: a late answer (a node that
        // lost the lead meanwhile) records its snapshots but never reopens
        // a run another node has closed.
        tx.execute(
            "UPDATE runs SET state = $2 WHERE id = $1 AND state IN ('intent', 'creating')",
            &[&run_id, &RunState::Creating.as_str()],
        )
        .await?;
        let mut out = Vec::with_capacity(ops.len());
        for id in ops {
            out.push(super::ops::op_by_id(&tx, id).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Record a snapshot found on the cloud by its deterministic name after
    /// a crash. A fact, not fenced.
    pub async fn adopt_snapshot(
        &self,
        run_id: i64,
        snapshot_id: &str,
        state: LedgerState,
        now: DateTime<Utc>,
    ) -> Result<SnapshotRow> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let run = run_by_id(&tx, run_id).await?;
        const FIND: &str = "SELECT id FROM snapshots WHERE provider = $1 AND snapshot_id = $2";
        let existing = tx.query_opt(FIND, &[&run.provider, &snapshot_id]).await?;
        let id = match existing {
            Some(row) => get(&row, 0, "snapshots.id")?,
            // Another process may adopt the same snapshot at once: its
            // row is taken, as one found before would be.
            None => match insert_snapshot(&tx, &run, snapshot_id, state, now, true).await? {
                Some(id) => id,
                None => get(
                    &tx.query_one(FIND, &[&run.provider, &snapshot_id]).await?,
                    0,
                    "snapshots.id",
                )?,
            },
        };
        if state == LedgerState::Available {
            write_snapshot_state(&tx, id, state, None, Completion::First, now).await?;
        }
        tx.execute(
            "UPDATE runs SET state = $2 WHERE id = $1 AND state = 'intent'",
            &[&run_id, &RunState::Creating.as_str()],
        )
        .await?;
        let snap = super::snapshots::snapshot_by_id(&tx, id).await?;
        tx.commit().await?;
        Ok(snap)
    }
}

/// The run in row `run_id`.
async fn run_by_id(c: &impl AsDb, run_id: i64) -> Result<RunRow> {
    let row = c
        .db()
        .query_one(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            &[&run_id],
        )
        .await?;
    run_row(&row)
}

/// Runs not yet terminal, oldest first.
fn open_runs_sql() -> String {
    format!("SELECT {RUN_COLUMNS} FROM runs WHERE state IN ({OPEN_RUN_STATES_SQL}) ORDER BY id")
}

/// Insert a snapshot row for `run`; with `adopting`, a row another
/// process inserted for the same snapshot meanwhile is no error: `None`.
pub(super) async fn insert_snapshot(
    tx: &Tx<'_>,
    run: &RunRow,
    snapshot_id: &str,
    state: LedgerState,
    now: DateTime<Utc>,
    adopting: bool,
) -> Result<Option<i64>> {
    let on_conflict = if adopting {
        "ON CONFLICT (provider, snapshot_id) DO NOTHING"
    } else {
        ""
    };
    let row = tx
        .query_opt(
            &format!(
                r#"INSERT INTO snapshots (run_id, provider, policy, target, slot, name, snapshot_id, state, "full", created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) {on_conflict} RETURNING id"#
            ),
            &[
                &run.id,
                &run.provider,
                &run.policy,
                &run.target,
                &ms(run.slot),
                &run.name,
                &snapshot_id,
                &state.as_str(),
                &run.full,
                &ms(now),
            ],
        )
        .await?;
    row.map(|r| get(&r, 0, "snapshots.id")).transpose()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_op(
    tx: &Tx<'_>,
    snapshot: i64,
    kind: OpKind,
    provider: &str,
    reference: &str,
    now: DateTime<Utc>,
    plan: PollPlan,
    epoch: Option<i64>,
) -> Result<i64> {
    let row = tx
        .query_one(
            "INSERT INTO operations (snapshot, kind, provider, reference, started_at, next_poll_at, poll_interval_ms, deadline, epoch)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                &snapshot,
                &kind.as_str(),
                &provider,
                &reference,
                &ms(now),
                &ms(plan.first_poll),
                &interval_ms(plan.interval),
                &ms(plan.deadline),
                &epoch,
            ],
        )
        .await?;
    get(&row, 0, "operations.id")
}
