//! The SQLite ledger: intents and runs, the snapshots snapwarden made, the
//! operations in flight, and the scheduler's memory of fired slots.
//!
//! This is the only module that writes SQL. Every write that must be atomic
//! (an intent, the ids a create returned, an operation's outcome together
//! with its snapshot's state) is one transaction. The database runs in WAL
//! mode with `synchronous = FULL`: a committed intent survives a crash or a
//! power cut, which is what makes "no duplicate, nothing lost" possible.

mod alerts;
mod lock;
mod migrations;
mod safety;
mod sources;
mod trim;

pub use alerts::Delivered;
pub use lock::{Holder, LedgerLock};
pub use safety::DeleteHold;
pub use trim::Trimmed;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};

use crate::providers::{Created, OpKind};

/// A failure of the state database. Always fatal for the action at hand:
/// a snapshot that cannot be recorded must not be created.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state database {path} does not exist (has the daemon run yet?)")]
    Missing { path: PathBuf },
    #[error("state database {path} has schema version {found}, newer than this snapwarden understands ({known}); upgrade snapwarden")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state database holds an invalid value in {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
    /// Another process writes this ledger (one ledger, one writer).
    #[error("the ledger {} is in use by {holder}, which holds the lock {}; only one snapwarden process may write a ledger at a time: let it finish, or stop it (the service: `systemctl stop snapwarden`) and try again", ledger.display(), lock.display())]
    Locked {
        ledger: PathBuf,
        lock: PathBuf,
        holder: Holder,
    },
    #[error("cannot lock the ledger with {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StateError>;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Recorded; the create call may or may not have reached the cloud.
    Intent,
    /// The create call returned ids; waiting for the snapshot(s).
    Creating,
    /// Snapshots are good; retention is running.
    Pruning,
    Succeeded,
    Failed,
    /// The slot was not run (overlap with a run still in flight).
    Skipped,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Intent => "intent",
            RunState::Creating => "creating",
            RunState::Pruning => "pruning",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "intent" => RunState::Intent,
            "creating" => RunState::Creating,
            "pruning" => RunState::Pruning,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "skipped" => RunState::Skipped,
            other => return Err(corrupt("runs.state", other)),
        })
    }

    pub fn is_open(self) -> bool {
        matches!(
            self,
            RunState::Intent | RunState::Creating | RunState::Pruning
        )
    }
}

/// A snapshot's state in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerState {
    Creating,
    Available,
    Failed,
    Deleting,
    Deleted,
}

impl LedgerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Creating => "creating",
            LedgerState::Available => "available",
            LedgerState::Failed => "failed",
            LedgerState::Deleting => "deleting",
            LedgerState::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "creating" => LedgerState::Creating,
            "available" => LedgerState::Available,
            "failed" => LedgerState::Failed,
            "deleting" => LedgerState::Deleting,
            "deleted" => LedgerState::Deleted,
            other => return Err(corrupt("snapshots.state", other)),
        })
    }
}

/// What the engine records before it calls the cloud.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub provider: &'a str,
    pub slot: DateTime<Utc>,
    pub name: &'a str,
    pub full: bool,
}

/// The answer to [`State::begin_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The intent is recorded; go ahead.
    Started(i64),
    /// This slot was already recorded (fired before, maybe before a restart).
    AlreadyRecorded,
    /// A run of the same policy and target is still in flight; the slot is
    /// recorded as skipped.
    Overlap { running_slot: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub policy: String,
    pub target: String,
    pub provider: String,
    pub slot: DateTime<Utc>,
    pub name: String,
    pub full: bool,
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: i64,
    pub run_id: i64,
    pub provider: String,
    pub policy: String,
    pub target: String,
    pub slot: DateTime<Utc>,
    pub name: String,
    pub snapshot_id: String,
    pub state: LedgerState,
    pub full: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// A ledger row that could not be read (a value no code path writes: a
/// hand edit, a disk error, a bug), left out of an answer and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub table: &'static str,
    /// The row id (-1 when even that could not be read).
    pub id: i64,
    pub problem: String,
}

impl Unreadable {
    fn new(table: &'static str, id: i64, e: impl std::fmt::Display) -> Unreadable {
        Unreadable {
            table,
            id,
            problem: e.to_string(),
        }
    }
}

/// An operation in flight, with what the engine needs to follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRow {
    pub id: i64,
    pub kind: OpKind,
    pub provider: String,
    pub reference: String,
    pub snapshot_row: i64,
    pub snapshot_id: String,
    pub run_id: i64,
    pub policy: String,
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub next_poll_at: DateTime<Utc>,
    pub poll_interval: Duration,
    pub deadline: DateTime<Utc>,
}

/// One (policy, target) as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSummary {
    pub policy: String,
    pub target: String,
    pub provider: String,
    pub last_run: Option<RunRow>,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub snapshots_kept: u32,
    pub in_flight: Vec<OpRow>,
    pub skipped: u32,
}

/// The open ledger. Cheap calls under a mutex: every statement is a short
/// local write, so async callers may call these directly.
pub struct State {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// A second connection for health probes, so a probe never waits behind
    /// the engine's own writes (opened lazily; none for read-only use).
    probe: Mutex<Option<Connection>>,
    /// The ledger's lock, held as long as this is open (see
    /// [`State::open_locked`]).
    lock: Option<LedgerLock>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.path).finish()
    }
}

/// A transaction that writes: IMMEDIATE, so it takes the write lock
/// before its first read and waits for another writer (`busy_timeout`)
/// instead of reading first and then failing at once with
/// SQLITE_BUSY_SNAPSHOT when that writer commits in between (which no
/// timeout covers). Every transaction here writes.
fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Timestamps are stored as RFC 3339 UTC text with milliseconds, which
/// sorts correctly as text.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(what: &'static str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt(what, s))
}

fn parse_opt_ts(what: &'static str, s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(what, &s)).transpose()
}

fn corrupt(what: &'static str, value: &str) -> StateError {
    StateError::Corrupt {
        what,
        value: value.to_string(),
    }
}

fn op_kind(s: &str) -> Result<OpKind> {
    match s {
        "create" => Ok(OpKind::Create),
        "delete" => Ok(OpKind::Delete),
        "restore" => Ok(OpKind::Restore),
        other => Err(corrupt("operations.kind", other)),
    }
}

/// Every (policy, target) the ledger knows, with its provider.
const TARGET_PAIRS_SQL: &str =
    "SELECT policy, target, provider FROM targets ORDER BY policy, target";

/// How many slots of one (policy, target) were skipped.
const SKIPPED_COUNT_SQL: &str =
    "SELECT COUNT(*) FROM runs WHERE policy = ?1 AND target = ?2 AND state = 'skipped'";

const RUN_COLUMNS: &str =
    "id, policy, target, provider, slot, name, full, state, started_at, finished_at, error";

/// One operation's terminal outcome and its snapshot's new state.
fn record_outcome(
    tx: &Transaction<'_>,
    id: i64,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (kind, snap): (String, i64) = tx.query_row(
        "SELECT kind, snapshot FROM operations WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let outcome = if error.is_none() {
        "succeeded"
    } else {
        "failed"
    };
    tx.execute(
        "UPDATE operations SET finished_at = ?2, outcome = ?3, error = ?4 WHERE id = ?1",
        params![id, ts(now), outcome, error],
    )?;
    match (op_kind(&kind)?, error) {
        (OpKind::Create, None) => tx.execute(
            "UPDATE snapshots SET state = 'available', completed_at = ?2 WHERE id = ?1",
            params![snap, ts(now)],
        )?,
        (OpKind::Create, Some(e)) => tx.execute(
            "UPDATE snapshots SET state = 'failed', completed_at = ?2, error = ?3 WHERE id = ?1",
            params![snap, ts(now), e],
        )?,
        (OpKind::Delete, None) => tx.execute(
            "UPDATE snapshots SET state = 'deleted', deleted_at = ?2 WHERE id = ?1",
            params![snap, ts(now)],
        )?,
        // The snapshot is still there; it stays in the ledger as ours.
        (OpKind::Delete, Some(e)) => tx.execute(
            "UPDATE snapshots SET state = 'available', error = ?2 WHERE id = ?1",
            params![snap, e],
        )?,
        // Restoring reads a snapshot; it does not change it.
        (OpKind::Restore, _) => 0,
    };
    Ok(())
}

fn run_row(row: &Row<'_>) -> rusqlite::Result<(RunRow, [String; 4])> {
    // Text fields are parsed after the query; rusqlite's row mapper cannot
    // return our error type.
    Ok((
        RunRow {
            id: row.get(0)?,
            policy: row.get(1)?,
            target: row.get(2)?,
            provider: row.get(3)?,
            slot: DateTime::<Utc>::MIN_UTC,
            name: row.get(5)?,
            full: row.get(6)?,
            state: RunState::Intent,
            started_at: DateTime::<Utc>::MIN_UTC,
            finished_at: None,
            error: row.get(10)?,
        },
        [
            row.get(4)?,
            row.get(7)?,
            row.get(8)?,
            row.get::<_, Option<String>>(9)?.unwrap_or_default(),
        ],
    ))
}

/// Runs not yet terminal, oldest first (strict and row-by-row readers).
fn open_runs_sql() -> String {
    format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE state IN ('intent', 'creating', 'pruning') ORDER BY id"
    )
}

/// Operations not yet finished, oldest first (strict and row-by-row
/// readers).
fn ops_in_flight_sql() -> String {
    format!(
        "SELECT {OP_COLUMNS} FROM operations o JOIN snapshots s ON s.id = o.snapshot
         WHERE o.finished_at IS NULL ORDER BY o.id"
    )
}

fn finish_run_row(
    (mut run, [slot, state, started, finished]): (RunRow, [String; 4]),
) -> Result<RunRow> {
    run.slot = parse_ts("runs.slot", &slot)?;
    run.state = RunState::parse(&state)?;
    run.started_at = parse_ts("runs.started_at", &started)?;
    run.finished_at = if finished.is_empty() {
        None
    } else {
        Some(parse_ts("runs.finished_at", &finished)?)
    };
    Ok(run)
}

const SNAPSHOT_COLUMNS: &str = "id, run_id, provider, policy, target, slot, name, snapshot_id, state, full, created_at, completed_at, deleted_at, error";

fn snapshot_row(row: &Row<'_>) -> rusqlite::Result<RawSnapshot> {
    Ok(RawSnapshot {
        id: row.get(0)?,
        run_id: row.get(1)?,
        provider: row.get(2)?,
        policy: row.get(3)?,
        target: row.get(4)?,
        slot: row.get(5)?,
        name: row.get(6)?,
        snapshot_id: row.get(7)?,
        state: row.get(8)?,
        full: row.get(9)?,
        created_at: row.get(10)?,
        completed_at: row.get(11)?,
        deleted_at: row.get(12)?,
        error: row.get(13)?,
    })
}

struct RawSnapshot {
    id: i64,
    run_id: i64,
    provider: String,
    policy: String,
    target: String,
    slot: String,
    name: String,
    snapshot_id: String,
    state: String,
    full: bool,
    created_at: String,
    completed_at: Option<String>,
    deleted_at: Option<String>,
    error: Option<String>,
}

impl RawSnapshot {
    fn parse(self) -> Result<SnapshotRow> {
        Ok(SnapshotRow {
            id: self.id,
            run_id: self.run_id,
            provider: self.provider,
            policy: self.policy,
            target: self.target,
            slot: parse_ts("snapshots.slot", &self.slot)?,
            name: self.name,
            snapshot_id: self.snapshot_id,
            state: LedgerState::parse(&self.state)?,
            full: self.full,
            created_at: parse_ts("snapshots.created_at", &self.created_at)?,
            completed_at: parse_opt_ts("snapshots.completed_at", self.completed_at)?,
            deleted_at: parse_opt_ts("snapshots.deleted_at", self.deleted_at)?,
            error: self.error,
        })
    }
}

const OP_COLUMNS: &str = "o.id, o.kind, o.provider, o.reference, o.snapshot, s.snapshot_id, s.run_id, s.policy, s.target, o.started_at, o.next_poll_at, o.poll_interval_ms, o.deadline";

struct RawOp {
    id: i64,
    kind: String,
    provider: String,
    reference: String,
    snapshot_row: i64,
    snapshot_id: String,
    run_id: i64,
    policy: String,
    target: String,
    started_at: String,
    next_poll_at: String,
    poll_interval_ms: i64,
    deadline: String,
}

fn op_row(row: &Row<'_>) -> rusqlite::Result<RawOp> {
    Ok(RawOp {
        id: row.get(0)?,
        kind: row.get(1)?,
        provider: row.get(2)?,
        reference: row.get(3)?,
        snapshot_row: row.get(4)?,
        snapshot_id: row.get(5)?,
        run_id: row.get(6)?,
        policy: row.get(7)?,
        target: row.get(8)?,
        started_at: row.get(9)?,
        next_poll_at: row.get(10)?,
        poll_interval_ms: row.get(11)?,
        deadline: row.get(12)?,
    })
}

impl RawOp {
    fn parse(self) -> Result<OpRow> {
        Ok(OpRow {
            id: self.id,
            kind: op_kind(&self.kind)?,
            provider: self.provider,
            reference: self.reference,
            snapshot_row: self.snapshot_row,
            snapshot_id: self.snapshot_id,
            run_id: self.run_id,
            policy: self.policy,
            target: self.target,
            started_at: parse_ts("operations.started_at", &self.started_at)?,
            next_poll_at: parse_ts("operations.next_poll_at", &self.next_poll_at)?,
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(0) as u64),
            deadline: parse_ts("operations.deadline", &self.deadline)?,
        })
    }
}

/// When an operation is first polled, how often after that, and when it
/// gives up.
#[derive(Debug, Clone, Copy)]
pub struct PollPlan {
    pub first_poll: DateTime<Utc>,
    pub interval: Duration,
    pub deadline: DateTime<Utc>,
}

impl State {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<State> {
        let conn = Connection::open(path).map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let state = State {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            probe: Mutex::new(None),
            lock: None,
        };
        state.configure().map_err(|e| match e {
            StateError::Sql(source) => StateError::Open {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })?;
        Ok(state)
    }

    /// Open an existing database for reading only (`status`, `monitor`):
    /// safe while the daemon runs.
    pub fn open_read_only(path: &Path) -> Result<State> {
        if !path.exists() {
            return Err(StateError::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = migrations::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StateError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        Ok(State {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            probe: Mutex::new(None),
            lock: None,
        })
    }

    /// [`State::open`] for a process that writes the ledger (the daemon, a
    /// one-shot command that snapshots, prunes, deletes or restores):
    /// takes the ledger's lock first and holds it until this is dropped.
    /// `command` names this process to whoever is refused the lock. Held
    /// by another process: [`StateError::Locked`] at once, nothing opened.
    pub fn open_locked(path: &Path, command: &str) -> Result<State> {
        let lock = LedgerLock::acquire(path, command)?;
        let mut state = State::open(path)?;
        state.lock = Some(lock);
        Ok(state)
    }

    /// The lock this ledger is held with, if it was opened with
    /// [`State::open_locked`].
    pub fn lock(&self) -> Option<&LedgerLock> {
        self.lock.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run raw SQL on the ledger (tests that need a row no code path
    /// writes, such as a corrupt one).
    #[cfg(test)]
    pub(crate) fn execute_for_tests(&self, sql: &str) {
        self.conn().execute_batch(sql).expect("test SQL");
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn configure(&self) -> Result<()> {
        let mut conn = self.conn();
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: every commit is on disk before we call the cloud.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = migrations::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        // Each step re-reads the version under the write lock: two
        // processes opening an old ledger at once migrate it once.
        loop {
            let tx = write_tx(&mut conn)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let Some(sql) = usize::try_from(version)
                .ok()
                .and_then(|v| migrations::MIGRATIONS.get(v))
            else {
                return Ok(());
            };
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
    }

    /// The schema version in force.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// A cheap write to prove the database is usable (health checks): one
    /// row's timestamp, committed, on a connection of its own (waiting at
    /// most 200 ms for the write lock), so a locked, read-only or full
    /// database shows up in health checks even while the engine is blocked
    /// on it. Taking the lock alone would write nothing, and a full disk
    /// would never show.
    pub fn probe_writable(&self) -> Result<()> {
        let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match probe.take() {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path)?;
                c.busy_timeout(Duration::from_millis(200))?;
                c
            }
        };
        let result = conn.execute(
            "INSERT INTO health_probe (id, at) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            [ts(Utc::now())],
        );
        *probe = Some(conn);
        result?;
        Ok(())
    }

    // ---- schedule -------------------------------------------------------

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

    // ---- runs -----------------------------------------------------------

    /// Record the intent for one (policy, target, slot), in one transaction
    /// with the checks that make it safe: a slot already recorded is not run
    /// again, and a slot that comes while the previous run of the same policy
    /// and target is open is recorded as skipped.
    pub fn begin_run(&self, run: &NewRun<'_>, now: DateTime<Utc>) -> Result<Begin> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let begin = begin_run_in(&tx, run, now)?;
        tx.commit()?;
        Ok(begin)
    }

    /// [`State::begin_run`] for every target of one slot in a single
    /// transaction: one durable commit instead of one per target, so a
    /// slot of thousands of targets starts at once. All or nothing: on
    /// error no intent of the slot is written.
    pub fn begin_runs(&self, runs: &[NewRun<'_>], now: DateTime<Utc>) -> Result<Vec<Begin>> {
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
        let raw = self.conn().query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
            [run_id],
            run_row,
        )?;
        finish_run_row(raw)
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

    /// [`State::open_runs`], leaving out (and reporting) rows that cannot
    /// be read, so that one corrupt row never stops the others from being
    /// taken up.
    pub fn open_runs_readable(&self) -> Result<(Vec<RunRow>, Vec<Unreadable>)> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&open_runs_sql())?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for raw in stmt.query_map([], run_row)? {
            match raw {
                Ok(raw) => {
                    let id = raw.0.id;
                    match finish_run_row(raw) {
                        Ok(run) => good.push(run),
                        Err(e) => bad.push(Unreadable::new("runs", id, e)),
                    }
                }
                Err(e) => bad.push(Unreadable::new("runs", -1, e)),
            }
        }
        Ok((good, bad))
    }

    fn query_runs(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<RunRow>> {
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
        let run = finish_run_row(tx.query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
            [run_id],
            run_row,
        )?)?;
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
        tx.execute("UPDATE runs SET state = 'creating' WHERE id = ?1", [run_id])?;
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
        let run = finish_run_row(tx.query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
            [run_id],
            run_row,
        )?)?;
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
            tx.execute(
                "UPDATE snapshots SET state = 'available', completed_at = COALESCE(completed_at, ?2) WHERE id = ?1",
                params![id, ts(now)],
            )?;
        }
        tx.execute(
            "UPDATE runs SET state = 'creating' WHERE id = ?1 AND state = 'intent'",
            [run_id],
        )?;
        tx.commit()?;
        drop(conn);
        self.snapshot(id)
    }

    // ---- snapshots ------------------------------------------------------

    pub fn snapshot(&self, row_id: i64) -> Result<SnapshotRow> {
        self.conn()
            .query_row(
                &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?1"),
                [row_id],
                snapshot_row,
            )?
            .parse()
    }

    /// Snapshots of one run.
    pub fn run_snapshots(&self, run_id: i64) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE run_id = ?1 ORDER BY id"),
            params![run_id],
        )
    }

    /// The ledger's snapshots of one policy and target that are not deleted.
    pub fn live_snapshots(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots
                 WHERE provider = ?1 AND policy = ?2 AND target = ?3 AND state != 'deleted'
                 ORDER BY slot, id"
            ),
            params![provider, policy, target],
        )
    }

    /// Every snapshot row (tests and tooling).
    pub fn all_snapshots(&self) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots ORDER BY id"),
            params![],
        )
    }

    fn query_snapshots(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<SnapshotRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let raws = stmt
            .query_map(p, snapshot_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(RawSnapshot::parse).collect()
    }

    /// A snapshot that vanished or was found deleted outside an operation.
    pub fn mark_deleted(&self, row_id: i64, now: DateTime<Utc>) -> Result<()> {
        self.conn().execute(
            "UPDATE snapshots SET state = 'deleted', deleted_at = ?2 WHERE id = ?1",
            params![row_id, ts(now)],
        )?;
        Ok(())
    }

    /// Set a snapshot's state outside an operation (a confirmation by list).
    pub fn set_snapshot_state(
        &self,
        row_id: i64,
        state: LedgerState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE snapshots SET state = ?2, error = COALESCE(?3, error),
               completed_at = CASE WHEN ?2 IN ('available', 'failed') THEN COALESCE(completed_at, ?4) ELSE completed_at END,
               deleted_at = CASE WHEN ?2 = 'deleted' THEN ?4 ELSE deleted_at END
             WHERE id = ?1",
            params![row_id, state.as_str(), error, ts(now)],
        )?;
        Ok(())
    }

    /// Start tracking a delete: the snapshot is `deleting` and an operation
    /// follows it, in one transaction.
    pub fn begin_delete(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let provider: String = tx.query_row(
            "SELECT provider FROM snapshots WHERE id = ?1",
            [row_id],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE snapshots SET state = 'deleting' WHERE id = ?1",
            [row_id],
        )?;
        let op = insert_op(&tx, row_id, OpKind::Delete, &provider, reference, now, plan)?;
        tx.commit()?;
        drop(conn);
        self.op(op)
    }

    /// Follow a restore of the snapshot in ledger row `row_id` (the
    /// snapshot itself is not changed).
    pub fn begin_restore(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        let provider: String = tx.query_row(
            "SELECT provider FROM snapshots WHERE id = ?1",
            [row_id],
            |r| r.get(0),
        )?;
        let op = insert_op(
            &tx,
            row_id,
            OpKind::Restore,
            &provider,
            reference,
            now,
            plan,
        )?;
        tx.commit()?;
        drop(conn);
        self.op(op)
    }

    /// Cloud ids of the snapshots of (provider, policy, target) that a
    /// restore still in flight reads from: not to be deleted under it.
    pub fn snapshots_being_restored(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashSet<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT s.snapshot_id FROM operations o JOIN snapshots s ON s.id = o.snapshot
             WHERE o.finished_at IS NULL AND o.kind = 'restore'
               AND s.provider = ?1 AND s.policy = ?2 AND s.target = ?3",
        )?;
        let ids = stmt
            .query_map(params![provider, policy, target], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<HashSet<_>>>()?;
        Ok(ids)
    }

    // ---- operations -----------------------------------------------------

    pub fn op(&self, id: i64) -> Result<OpRow> {
        self.conn()
            .query_row(
                &format!("SELECT {OP_COLUMNS} FROM operations o JOIN snapshots s ON s.id = o.snapshot WHERE o.id = ?1"),
                [id],
                op_row,
            )?
            .parse()
    }

    /// Operations not yet terminal, oldest first.
    /// How many operations are in flight, without reading them.
    pub fn ops_in_flight_count(&self) -> Result<usize> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM operations WHERE finished_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// [`State::ops_in_flight`], leaving out (and reporting) rows that
    /// cannot be read.
    pub fn ops_in_flight_readable(&self) -> Result<(Vec<OpRow>, Vec<Unreadable>)> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&ops_in_flight_sql())?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for raw in stmt.query_map([], op_row)? {
            match raw {
                Ok(raw) => {
                    let id = raw.id;
                    match raw.parse() {
                        Ok(op) => good.push(op),
                        Err(e) => bad.push(Unreadable::new("operations", id, e)),
                    }
                }
                Err(e) => bad.push(Unreadable::new("operations", -1, e)),
            }
        }
        Ok((good, bad))
    }

    pub fn ops_in_flight(&self) -> Result<Vec<OpRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&ops_in_flight_sql())?;
        let raws = stmt
            .query_map([], op_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(RawOp::parse).collect()
    }

    pub fn reschedule_op(
        &self,
        id: i64,
        next_poll_at: DateTime<Utc>,
        interval: Duration,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE operations SET next_poll_at = ?2, poll_interval_ms = ?3 WHERE id = ?1",
            params![id, ts(next_poll_at), interval.as_millis() as i64],
        )?;
        Ok(())
    }

    /// Record an operation's terminal outcome and its snapshot's new state
    /// in one transaction.
    pub fn finish_op(&self, id: i64, error: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        self.finish_ops(&[(id, error)], now)
    }

    /// Record several operations' outcomes in one transaction (one durable
    /// commit for a whole poll round): all of them or none.
    pub fn finish_ops(&self, outcomes: &[(i64, Option<&str>)], now: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        for &(id, error) in outcomes {
            record_outcome(&tx, id, error, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record the next poll of several operations in one transaction.
    pub fn reschedule_ops(&self, next: &[(i64, DateTime<Utc>, Duration)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE operations SET next_poll_at = ?2, poll_interval_ms = ?3 WHERE id = ?1",
            )?;
            for (id, at, interval) in next {
                stmt.execute(params![id, ts(*at), interval.as_millis() as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- status ---------------------------------------------------------

    /// Every (policy, target) the ledger knows, with what `status` shows.
    pub fn summaries(&self) -> Result<Vec<TargetSummary>> {
        let pairs: Vec<(String, String, String)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(TARGET_PAIRS_SQL)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        let mut in_flight: HashMap<(String, String), Vec<OpRow>> = HashMap::new();
        for op in self.ops_in_flight()? {
            in_flight
                .entry((op.policy.clone(), op.target.clone()))
                .or_default()
                .push(op);
        }
        let mut out = Vec::with_capacity(pairs.len());
        for (policy, target, provider) in pairs {
            let ops = in_flight
                .remove(&(policy.clone(), target.clone()))
                .unwrap_or_default();
            out.push(self.summary(&policy, &target, &provider, ops)?);
        }
        Ok(out)
    }

    /// One (policy, target), without its operations in flight; `None` if
    /// it has never run.
    pub fn target_summary(&self, policy: &str, target: &str) -> Result<Option<TargetSummary>> {
        let provider: Option<String> = self
            .conn()
            .query_row(
                "SELECT provider FROM runs WHERE policy = ?1 AND target = ?2 ORDER BY id DESC LIMIT 1",
                params![policy, target],
                |r| r.get(0),
            )
            .optional()?;
        provider
            .map(|p| self.summary(policy, target, &p, Vec::new()))
            .transpose()
    }

    /// Reads runs newest first only as far as it must: up to the newest
    /// success, which ends any failure streak (a target's whole history
    /// is read only while it has never succeeded).
    fn summary(
        &self,
        policy: &str,
        target: &str,
        provider: &str,
        in_flight: Vec<OpRow>,
    ) -> Result<TargetSummary> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE policy = ?1 AND target = ?2 AND state != 'skipped'
             ORDER BY slot DESC, id DESC"
        ))?;
        let mut rows = stmt.query(params![policy, target])?;
        let mut last_run = None;
        let mut last_success = None;
        let (mut consecutive_failures, mut streak_over) = (0u32, false);
        let mut last_error = None;
        while let Some(row) = rows.next()? {
            let r = finish_run_row(run_row(row)?)?;
            if !r.state.is_open() && !streak_over {
                if r.state == RunState::Failed {
                    consecutive_failures += 1;
                    if last_error.is_none() {
                        last_error = r.error.clone();
                    }
                } else {
                    streak_over = true;
                }
            }
            let succeeded = r.state == RunState::Succeeded;
            if succeeded {
                last_success = Some(r.finished_at.unwrap_or(r.slot));
            }
            if last_run.is_none() {
                last_run = Some(r);
            }
            if succeeded {
                break;
            }
        }
        drop(rows);
        drop(stmt);
        let snapshots_kept: u32 = conn.query_row(
            "SELECT COUNT(*) FROM snapshots WHERE policy = ?1 AND target = ?2 AND state IN ('available', 'deleting')",
            params![policy, target],
            |r| r.get(0),
        )?;
        let skipped: u32 =
            conn.query_row(SKIPPED_COUNT_SQL, params![policy, target], |r| r.get(0))?;
        drop(conn);
        Ok(TargetSummary {
            policy: policy.to_string(),
            target: target.to_string(),
            provider: provider.to_string(),
            last_run,
            last_success,
            consecutive_failures,
            last_error: last_error.filter(|_| consecutive_failures > 0),
            snapshots_kept,
            in_flight,
            skipped,
        })
    }

    // ---- provider secrets -----------------------------------------------

    /// A secret a provider keeps here (a rotated refresh token): its value
    /// and the fingerprint of the configured value it descends from.
    pub fn load_secret(&self, provider: &str, key: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value, seed FROM provider_secrets WHERE provider = ?1 AND key = ?2",
                params![provider, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Replace the secret a provider keeps here, committed before return.
    /// Also from a ledger opened read-only (`plan`): a rotated refresh
    /// token that is not kept would lock the daemon out, so this one write
    /// goes through a writable connection of its own.
    pub fn store_secret(
        &self,
        provider: &str,
        key: &str,
        value: &str,
        seed: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let read_only = self.conn().is_readonly(rusqlite::MAIN_DB)?;
        if read_only {
            return State::open(&self.path)?.store_secret(provider, key, value, seed, now);
        }
        self.conn().execute(
            "INSERT INTO provider_secrets (provider, key, value, seed, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (provider, key) DO UPDATE SET
                 value = excluded.value, seed = excluded.seed, updated_at = excluded.updated_at",
            params![provider, key, value, seed, ts(now)],
        )?;
        Ok(())
    }
}

impl crate::providers::SecretStore for State {
    fn load_secret(
        &self,
        provider: &str,
        key: &str,
    ) -> std::result::Result<Option<crate::providers::StoredSecret>, String> {
        State::load_secret(self, provider, key)
            .map(|found| {
                found.map(|(value, seed)| crate::providers::StoredSecret {
                    value: crate::config::Secret::new(value),
                    seed,
                })
            })
            .map_err(|e| e.to_string())
    }

    fn store_secret(
        &self,
        provider: &str,
        key: &str,
        secret: &crate::providers::StoredSecret,
    ) -> std::result::Result<(), String> {
        State::store_secret(
            self,
            provider,
            key,
            secret.value.expose(),
            &secret.seed,
            Utc::now(),
        )
        .map_err(|e| e.to_string())
    }
}

fn insert_run(
    tx: &Transaction<'_>,
    run: &NewRun<'_>,
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

fn insert_snapshot(
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

fn insert_op(
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

/// The checks and insert of [`State::begin_run`], inside a caller's transaction.
fn begin_run_in(
    tx: &rusqlite::Transaction<'_>,
    run: &NewRun<'_>,
    now: DateTime<Utc>,
) -> Result<Begin> {
    let exists: bool = tx
        .query_row(
            "SELECT 1 FROM runs WHERE policy = ?1 AND target = ?2 AND slot = ?3",
            params![run.policy, run.target, ts(run.slot)],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if exists {
        return Ok(Begin::AlreadyRecorded);
    }
    let open: Option<String> = tx
        .query_row(
            "SELECT slot FROM runs WHERE policy = ?1 AND target = ?2
                 AND state IN ('intent', 'creating', 'pruning') ORDER BY slot DESC LIMIT 1",
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

#[cfg(test)]
mod tests;
