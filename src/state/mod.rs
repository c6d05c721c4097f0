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
mod ops;
mod rows;
mod runs;
mod safety;
mod secrets;
mod snapshots;
mod sources;
mod summary;
mod trim;

pub use alerts::Delivered;
pub use lock::{Holder, LedgerLock};
pub use safety::DeleteHold;
pub use trim::Trimmed;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::providers::OpKind;
use rows::{corrupt, parse_ts, ts};

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

    /// The states of a run not yet terminal.
    const OPEN: [RunState; 3] = [RunState::Intent, RunState::Creating, RunState::Pruning];

    pub fn is_open(self) -> bool {
        RunState::OPEN.contains(&self)
    }
}

/// The open run states as written in SQL, for `state IN (...)`. The run
/// states a query compares with are spelled out in its text, not bound:
/// only then can SQLite use the partial indexes on `runs`, whose
/// predicates are literals of the migrations (`runs_open`,
/// `runs_skipped`, `runs_succeeded`) and whose plan a bound value would
/// make SQLite recompile at every execution.
/// `state::tests::open_run_states_in_sql_are_the_open_states` ties it to
/// [`RunState::is_open`].
const OPEN_RUN_STATES_SQL: &str = "'intent', 'creating', 'pruning'";

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

/// Every (policy, target) the ledger knows, with its provider.
const TARGET_PAIRS_SQL: &str =
    "SELECT policy, target, provider FROM targets ORDER BY policy, target";

/// How many slots of one (policy, target) were skipped.
const SKIPPED_COUNT_SQL: &str =
    "SELECT COUNT(*) FROM runs WHERE policy = ?1 AND target = ?2 AND state = 'skipped'";

const RUN_COLUMNS: &str =
    "id, policy, target, provider, slot, name, full, state, started_at, finished_at, error";

const SNAPSHOT_COLUMNS: &str = "id, run_id, provider, policy, target, slot, name, snapshot_id, state, full, created_at, completed_at, deleted_at, error";

const OP_COLUMNS: &str = "o.id, o.kind, o.provider, o.reference, o.snapshot, s.snapshot_id, s.run_id, s.policy, s.target, o.started_at, o.next_poll_at, o.poll_interval_ms, o.deadline";

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

    // ---- runs -----------------------------------------------------------

    // ---- snapshots ------------------------------------------------------

    // ---- operations -----------------------------------------------------

    // ---- status ---------------------------------------------------------

    // ---- provider secrets -----------------------------------------------
}

#[cfg(test)]
mod tests;
