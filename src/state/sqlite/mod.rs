//! The SQLite ledger, for one bastion: a file beside the daemon. The
//! database runs in WAL mode with `synchronous = FULL`: a committed intent
//! survives a crash or a power cut.
//!
//! [`SqliteLedger`]'s own methods are synchronous (rusqlite under a mutex;
//! tests and offline tools call them directly); its [`Ledger`](crate::state::Ledger)
//! implementation runs each of them on tokio's blocking pool, so the
//! runtime's threads never wait on the disk.

mod alerts;
mod audit;
mod export;
mod holds;
mod hooks;
mod ledger;
mod lock;
mod migrations;
mod ops;
mod pauses;
mod rows;
mod runs;
mod safety;
mod secrets;
mod sizes;
mod snapshots;
mod sources;
mod summary;
mod trim;

pub use export::Moved;
pub use lock::{Holder, LedgerLock};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::{
    Begin, DeleteHold, Delivered, LedgerState, NewRun, OpRow, PollPlan, Result, RunRow, RunState,
    SnapshotRow, StateError, TargetSummary, Trimmed, Unreadable,
};
use rows::{parse_ts, ts};

/// The open run states as written in SQL, for `state IN (...)`. The run
/// states a query compares with are spelled out in its text, not bound:
/// only then can SQLite use the partial indexes on `runs`, whose
/// predicates are literals of the migrations (`runs_open`,
/// `runs_skipped`, `runs_succeeded`) and whose plan a bound value would
/// make SQLite recompile at every execution.
/// `state::tests::open_run_states_in_sql_are_the_open_states` ties it to
/// [`RunState::is_open`].
const OPEN_RUN_STATES_SQL: &str = "'intent', 'creating', 'pruning'";

/// The open SQLite ledger. A handle: clones share one database
/// connection.
#[derive(Clone)]
pub struct SqliteLedger(Arc<Db>);

struct Db {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// A second connection for health probes, so a probe never waits behind
    /// the engine's own writes (opened lazily; none for read-only use).
    probe: Mutex<Option<Connection>>,
    /// The ledger's lock, held as long as this is open (see
    /// [`SqliteLedger::open_locked`]).
    lock: Option<LedgerLock>,
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger")
            .field("path", &self.0.path)
            .finish()
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

const SNAPSHOT_COLUMNS: &str = "id, run_id, provider, policy, target, slot, name, snapshot_id, state, full, created_at, completed_at, deleted_at, error, size_bytes";

const OP_COLUMNS: &str = "o.id, o.kind, o.provider, o.reference, o.snapshot, s.snapshot_id, s.run_id, s.policy, s.target, o.started_at, o.next_poll_at, o.poll_interval_ms, o.deadline";

impl SqliteLedger {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteLedger> {
        SqliteLedger::open_holding(path, None)?.unless_moved()
    }

    /// [`StateError::Moved`] if `migrate-state` moved this ledger's state
    /// elsewhere: nothing may write (or read as current) a file that is
    /// only a record now.
    fn unless_moved(self) -> Result<SqliteLedger> {
        match self.moved()? {
            None => Ok(self),
            Some(m) => Err(StateError::Moved {
                path: self.0.path.clone(),
                location: m.location,
                at: m.at,
            }),
        }
    }

    fn open_holding(path: &Path, lock: Option<LedgerLock>) -> Result<SqliteLedger> {
        let conn = Connection::open(path).map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let state = SqliteLedger::wrap(path, conn, lock);
        state.configure().map_err(|e| match e {
            StateError::Sql(source) => StateError::Open {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })?;
        Ok(state)
    }

    fn wrap(path: &Path, conn: Connection, lock: Option<LedgerLock>) -> SqliteLedger {
        SqliteLedger(Arc::new(Db {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            probe: Mutex::new(None),
            lock,
        }))
    }

    /// Open an existing database for reading only (`status`, `monitor`):
    /// safe while the daemon runs.
    pub fn open_read_only(path: &Path) -> Result<SqliteLedger> {
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
                location: path.display().to_string(),
                found: version,
                known,
            });
        }
        SqliteLedger::wrap(path, conn, None).unless_moved()
    }

    /// Open an existing database for an operator's control write (a
    /// pause) while a daemon may hold the ledger's lock: read-write
    /// without that lock, as SQLite's own locking (each write one
    /// IMMEDIATE transaction, with a busy timeout) keeps two writers
    /// apart. [`StateError::Missing`] if the daemon never wrote it, and
    /// [`StateError::Moved`] if it was moved.
    pub fn open_control(path: &Path) -> Result<SqliteLedger> {
        if !path.exists() {
            return Err(StateError::Missing {
                path: path.to_path_buf(),
            });
        }
        SqliteLedger::open_holding(path, None)?.unless_moved()
    }

    /// [`SqliteLedger::open`] for a process that writes the ledger (the daemon, a
    /// one-shot command that snapshots, prunes, deletes or restores):
    /// takes the ledger's lock first and holds it until this is dropped.
    /// `command` names this process to whoever is refused the lock. Held
    /// by another process: [`StateError::Locked`] at once, nothing opened.
    pub fn open_locked(path: &Path, command: &str) -> Result<SqliteLedger> {
        SqliteLedger::open_for_migration(path, command)?.unless_moved()
    }

    /// [`SqliteLedger::open_locked`] that also opens a ledger already
    /// moved (see [`SqliteLedger::moved`]): for `migrate-state` alone,
    /// which must tell "already moved" from "to copy".
    pub fn open_for_migration(path: &Path, command: &str) -> Result<SqliteLedger> {
        let lock = LedgerLock::acquire(path, command)?;
        SqliteLedger::open_holding(path, Some(lock))
    }

    /// The lock this ledger is held with, if it was opened with
    /// [`SqliteLedger::open_locked`].
    pub fn lock(&self) -> Option<&LedgerLock> {
        self.0.lock.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.0.path
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
        self.0.conn.lock().unwrap_or_else(|p| p.into_inner())
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
                location: self.0.path.display().to_string(),
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
        let mut probe = self.0.probe.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match probe.take() {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.0.path)?;
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
