//! The ledger: intents and runs, the snapshots snapwarden made, the
//! operations in flight, and the scheduler's memory of fired slots.
//!
//! [`Ledger`] is what the rest of snapwarden sees: an async trait, so no
//! caller ever blocks a runtime thread on the database. Its backend is
//! SQLite on one bastion ([`sqlite::SqliteLedger`]), or PostgreSQL
//! shared by the bastions of a highly available pair
//! ([`postgres::PgLedger`]). This is the only
//! module that writes SQL. Every write that must be atomic (an intent, the
//! ids a create returned, an operation's outcome together with its
//! snapshot's state) is one transaction of the backend, committed before
//! the call returns: a committed intent survives a crash, which is what
//! makes "no duplicate, nothing lost" possible.

pub mod dump;
mod open;
pub mod postgres;
pub mod sqlite;

pub use dump::{ImportReport, LedgerDump, TableCheck};
pub use open::{
    open_control, open_for_secrets, open_read, open_read_viewing, open_shared, LeadershipView,
};
pub use postgres::{Fence, PgLedger, PgOptions};
pub use sqlite::{Holder, LedgerLock, Moved, SqliteLedger};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

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
    /// The database was migrated by a newer snapwarden. `location` is a
    /// path or a URL without its password.
    #[error("state database {location} has schema version {found}, newer than this snapwarden understands ({known}); upgrade snapwarden")]
    TooNew {
        location: String,
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
    /// `snapwarden migrate-state` moved this SQLite ledger's state into
    /// a PostgreSQL ledger; the file is only a record now.
    #[error("the ledger at {} was moved to {location} on {} by `snapwarden migrate-state`: set `state_url` (and `state_password_file`) in [daemon] to use it; this file is kept only as a record", path.display(), at.format("%Y-%m-%d %H:%M:%S UTC"))]
    Moved {
        path: PathBuf,
        location: String,
        at: DateTime<Utc>,
    },
    /// A row an export cannot read (nothing is copied).
    #[error("cannot copy the ledger: {table} row {key} cannot be read: {problem}")]
    Unexportable {
        table: &'static str,
        key: String,
        problem: String,
    },
    /// An import was refused before it wrote anything: the target ledger
    /// is not empty, or a node leads it.
    #[error("{0}")]
    ImportRefused(String),
    /// An import's copy did not match its source (rolled back: nothing
    /// written).
    #[error("{0}")]
    ImportMismatch(String),
    /// A value the ledger refuses to record (nothing was written).
    #[error("state database: cannot record {what}: {problem}")]
    Invalid { what: &'static str, problem: String },
    /// The backend's worker died while it held the call (a panic: a bug).
    #[error("state database: the call was lost: {0}")]
    Lost(String),
    #[error("cannot lock the ledger with {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A PostgreSQL call failed; the message is the server's when it
    /// answered (with its detail and hint), else the client's with its
    /// cause.
    #[error("state database: {}", postgres::pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The PostgreSQL ledger cannot be reached or its URL is not usable.
    /// `location` never carries a password.
    #[error("state database {location}: {message}")]
    Connect { location: String, message: String },
    /// A decision write (an intent, a delete, a hold, a trim) from a
    /// process that does not hold the scheduler lease with the epoch it
    /// was given: nothing was written.
    #[error("{}", not_leader_message(.holder.as_deref(), *.epoch))]
    NotLeader {
        /// The lease holder this process was fenced with, if any.
        holder: Option<String>,
        /// The epoch this process was fenced with, if any.
        epoch: Option<i64>,
    },
    /// A snapshot hold refused because the snapshot is already being
    /// deleted (or was): nothing was written.
    #[error("cannot hold snapshot {snapshot_id}: {why}")]
    HoldTooLate { snapshot_id: String, why: String },
}

fn not_leader_message(holder: Option<&str>, epoch: Option<i64>) -> String {
    match (holder, epoch) {
        (Some(holder), Some(epoch)) => format!(
            "not the leader: leadership moved, the scheduler lease is no longer held by {holder} with epoch {epoch} (expired or taken over); nothing was written"
        ),
        _ => "not the leader: this process does not hold the scheduler lease (no epoch); nothing was written".to_string(),
    }
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

    pub(crate) fn parse(s: &str) -> Result<Self> {
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
    pub(crate) const OPEN: [RunState; 3] =
        [RunState::Intent, RunState::Creating, RunState::Pruning];

    pub fn is_open(self) -> bool {
        RunState::OPEN.contains(&self)
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

    pub(crate) fn parse(s: &str) -> Result<Self> {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub policy: String,
    pub target: String,
    pub provider: String,
    pub slot: DateTime<Utc>,
    pub name: String,
    pub full: bool,
}

/// The answer to [`Ledger::begin_run`].
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
    /// The size in bytes the cloud's listing last gave (None: never
    /// recorded).
    pub size_bytes: Option<u64>,
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
    pub(crate) fn new(table: &'static str, id: i64, e: impl std::fmt::Display) -> Unreadable {
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
    /// The sum of `size_bytes` of the snapshots `snapshots_kept` counts.
    /// None when any of them has no size recorded (an unknown size is
    /// never shown as 0), and None when none is kept.
    pub bytes_kept: Option<u64>,
    pub in_flight: Vec<OpRow>,
    pub skipped: u32,
}

/// When an operation is first polled, how often after that, and when it
/// gives up.
#[derive(Debug, Clone, Copy)]
pub struct PollPlan {
    pub first_poll: DateTime<Utc>,
    pub interval: Duration,
    pub deadline: DateTime<Utc>,
}

/// (policy, target, kind) → when the newest delivered alert was decided.
pub type Delivered = HashMap<(String, String, String), DateTime<Utc>>;

/// Deletions of one policy and target held until the operator confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteHold {
    pub policy: String,
    pub target: String,
    pub reason: String,
    pub since: DateTime<Utc>,
}

/// A post hook owed: the pre hook of run `run_id` started and the post
/// hook has not yet run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedHook {
    pub run_id: i64,
    /// From the run row.
    pub policy: String,
    /// From the run row.
    pub target: String,
    /// From the run row.
    pub provider: String,
    /// From the run row.
    pub slot: DateTime<Utc>,
    /// The run's snapshot name (`runs.name`).
    pub name: String,
    /// As recorded (the configuration may change before a restart).
    pub resource: String,
    /// The post hook's argv, as recorded.
    pub command: Vec<String>,
    pub since: DateTime<Utc>,
}

/// A post hook's argv as the ledger stores it: a JSON array of strings.
/// An empty argv is refused: there would be nothing to run after a
/// restart, and the thaw would be lost.
pub(crate) fn hook_command_json(command: &[String]) -> Result<String> {
    if command.is_empty() {
        return Err(StateError::Invalid {
            what: "a post hook",
            problem: "its command is empty (an argv needs at least the program)".into(),
        });
    }
    serde_json::to_string(command).map_err(|e| StateError::Invalid {
        what: "a post hook",
        problem: e.to_string(),
    })
}

/// A stored post hook argv read back (see [`hook_command_json`]).
pub(crate) fn parse_hook_command(json: &str) -> Result<Vec<String>> {
    match serde_json::from_str::<Vec<String>>(json) {
        Ok(argv) if !argv.is_empty() => Ok(argv),
        _ => Err(corrupt("post_hooks_owed.command", json)),
    }
}

/// The rows of owed post hooks that could be read; each that cannot is
/// left out and logged with its run id, so one bad row never hides the
/// thaws of the others.
pub(crate) fn readable_hooks(
    rows: impl IntoIterator<Item = (i64, Result<OwedHook>)>,
) -> Vec<OwedHook> {
    rows.into_iter()
        .filter_map(|(run_id, row)| match row {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(
                    run_id,
                    "the post hook owed by run {run_id} cannot be read from the ledger and is not run: {e}"
                );
                None
            }
        })
        .collect()
}

/// A pause in force: no slot of `policy` (None: of every policy) starts
/// until it is lifted or `until` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// None: every policy.
    pub policy: Option<String>,
    pub reason: String,
    /// Who asked (a user name, or "daemon").
    pub by: String,
    pub since: DateTime<Utc>,
    /// None: until resumed.
    pub until: Option<DateTime<Utc>>,
}

impl Pause {
    /// "since …[ until …], by …: reason", as status and skipped runs say.
    pub fn describe(&self) -> String {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let until = self
            .until
            .map_or(String::new(), |u| format!(" until {}", at(u)));
        format!(
            "since {}{until}, by {}: {}",
            at(self.since),
            self.by,
            self.reason
        )
    }
}

/// The key of a pause's row: the policy, or the empty text for the pause
/// of every policy (no policy is named by the empty text, which
/// [`pause_scope`] refuses). A key that is never null lets one primary key
/// keep one pause per scope on both backends, and sorts the every-policy
/// pause first.
pub(crate) const EVERY_POLICY: &str = "";

/// The row key of the pause of `policy` (see [`EVERY_POLICY`]).
pub(crate) fn pause_scope(policy: Option<&str>) -> Result<&str> {
    match policy {
        None => Ok(EVERY_POLICY),
        Some(p) if p == EVERY_POLICY => Err(StateError::Invalid {
            what: "a pause",
            problem: "the policy name is empty (leave it out to pause every policy)".into(),
        }),
        Some(p) => Ok(p),
    }
}

/// The policy of a pause whose row key is `scope`.
pub(crate) fn pause_policy(scope: String) -> Option<String> {
    (scope != EVERY_POLICY).then_some(scope)
}

/// An operator's hold on snapshots of one (policy, target): while it is
/// in force nothing deletes what it covers (a prune, an orphan delete, a
/// confirmed prune).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHold {
    pub policy: String,
    pub target: String,
    /// The cloud snapshot id held; None: a target-wide hold, which holds
    /// every snapshot of the target the ledger knew when the hold was
    /// (re)placed (`created_at <= since`); snapshots made later are not
    /// held by it.
    pub snapshot_id: Option<String>,
    pub reason: String,
    /// Who asked (a user name).
    pub by: String,
    /// When the hold was placed (or last placed again).
    pub since: DateTime<Utc>,
    /// None: until released.
    pub until: Option<DateTime<Utc>>,
}

impl SnapshotHold {
    /// "held until …, by …, because …" ("held until released, …" for a
    /// hold without an end).
    pub fn describe(&self) -> String {
        let until = self.until.map_or("released".to_string(), |u| {
            u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
        format!(
            "held until {until}, by {}, because {}",
            self.by, self.reason
        )
    }

    /// Whether this hold is in force at `now` (it ends at its `until`:
    /// at that instant it no longer holds).
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| u > now)
    }

    /// Whether this hold covers ledger row `row` and is in force at
    /// `now`: same policy and target, and the same snapshot id, or a
    /// target-wide hold and a row created no later than the hold's
    /// `since`.
    pub fn covers(&self, row: &SnapshotRow, now: DateTime<Utc>) -> bool {
        self.in_force(now)
            && row.policy == self.policy
            && row.target == self.target
            && match &self.snapshot_id {
                Some(id) => row.snapshot_id == *id,
                None => row.created_at <= self.since,
            }
    }
}

/// What [`Ledger::hold`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldPlaced {
    /// A hold with the same key was in force and is replaced.
    pub replaced: bool,
    /// A snapshot hold: whether the snapshot id is a live ledger row of
    /// the target (false: an orphan, or a snapshot not yet recorded). A
    /// target-wide hold: false.
    pub known: bool,
    /// A target-wide hold: the snapshot ids of the target already being
    /// deleted (state `deleting`, or an unexpired delete claim), which
    /// the hold cannot cover. Empty for a snapshot hold.
    pub not_covered: Vec<String>,
}

/// The key of a target-wide hold's row: the empty text where a snapshot
/// hold has its snapshot id (no snapshot id is the empty text, which
/// [`hold_key`] refuses), so one primary key keeps one hold per key on
/// both backends and the target-wide hold sorts first.
pub(crate) const TARGET_WIDE: &str = "";

/// The row key of a hold on `snapshot_id` (None: target-wide; see
/// [`TARGET_WIDE`]).
pub(crate) fn hold_key(snapshot_id: Option<&str>) -> Result<&str> {
    match snapshot_id {
        None => Ok(TARGET_WIDE),
        Some(id) if id == TARGET_WIDE => Err(StateError::Invalid {
            what: "a snapshot hold",
            problem: "the snapshot id is empty (leave it out to hold the whole target)".into(),
        }),
        Some(id) => Ok(id),
    }
}

/// The snapshot id of a hold whose row key is `key`.
pub(crate) fn hold_snapshot(key: String) -> Option<String> {
    (key != TARGET_WIDE).then_some(key)
}

/// Refuse a hold that would end before it starts (nothing is written).
pub(crate) fn check_hold(hold: &SnapshotHold, now: DateTime<Utc>) -> Result<()> {
    match hold.until {
        Some(u) if u <= now => Err(StateError::Invalid {
            what: "a snapshot hold",
            problem: format!(
                "it would end at {}, which is not after now",
                u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }),
        _ => Ok(()),
    }
}

/// Why a snapshot hold comes too late for a row in state `state` (with
/// its delete time and claim), if it does.
pub(crate) fn too_late(
    state: LedgerState,
    deleted_at: Option<DateTime<Utc>>,
    claimed: bool,
) -> Option<String> {
    match state {
        LedgerState::Deleted => Some(deleted_at.map_or("it was deleted".to_string(), |at| {
            format!(
                "it was deleted at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })),
        LedgerState::Deleting => Some("it is being deleted".to_string()),
        _ if claimed => Some("it is being deleted".to_string()),
        _ => None,
    }
}

/// A snapshot size as both backends store it: a signed 64-bit integer.
/// A size above `i64::MAX` is refused rather than wrapped into a
/// negative number.
pub(crate) fn stored_size(row_id: i64, bytes: u64) -> Result<i64> {
    i64::try_from(bytes).map_err(|_| StateError::Invalid {
        what: "a snapshot size",
        problem: format!(
            "{bytes} bytes for snapshot row {row_id} is more than the ledger stores ({} bytes at most)",
            i64::MAX
        ),
    })
}

/// A stored snapshot size read back (see [`stored_size`]); a negative
/// value is no size any code path writes.
pub(crate) fn read_size(stored: Option<i64>) -> Result<Option<u64>> {
    stored
        .map(|n| u64::try_from(n).map_err(|_| corrupt("snapshots.size_bytes", &n.to_string())))
        .transpose()
}

/// What `bytes_kept` of a [`TargetSummary`] says, from how many snapshots
/// are kept, how many of them have a size recorded, and the sum of those
/// sizes: the sum only when every kept snapshot has a size (an unknown
/// size is never shown as 0), and None when nothing is kept.
pub(crate) fn bytes_kept(kept: u64, sized: u64, sum: u64) -> Option<u64> {
    (kept > 0 && sized == kept).then_some(sum)
}

/// What an entry of the audit trail records was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A snapshot was made (its create recorded).
    Create,
    /// A snapshot's delete was decided (or found already done).
    Delete,
    /// A restore from a snapshot was started.
    Restore,
    /// Deletes were held back.
    Hold,
    /// Held-back deletes were let go.
    Release,
    /// A pause was set.
    Pause,
    /// A pause was lifted.
    Resume,
    /// An operator confirmed deletes a guard held back.
    Confirm,
}

impl AuditAction {
    pub const ALL: [AuditAction; 8] = [
        AuditAction::Create,
        AuditAction::Delete,
        AuditAction::Restore,
        AuditAction::Hold,
        AuditAction::Release,
        AuditAction::Pause,
        AuditAction::Resume,
        AuditAction::Confirm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Delete => "delete",
            AuditAction::Restore => "restore",
            AuditAction::Hold => "hold",
            AuditAction::Release => "release",
            AuditAction::Pause => "pause",
            AuditAction::Resume => "resume",
            AuditAction::Confirm => "confirm",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| corrupt("audit_log.action", s))
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the audit trail: who did what, to what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// Who: "daemon (node NAME)", or the user who ran a command.
    pub actor: String,
    pub action: AuditAction,
    /// None: not about one policy (a pause of every policy).
    pub policy: Option<String>,
    pub target: Option<String>,
    /// The cloud's snapshot id.
    pub snapshot: Option<String>,
    /// Why, or what exactly.
    pub detail: String,
}

/// How long the audit trail is kept: 400 days before the trim's own
/// time, far longer than the run history ([`Ledger::trim`]'s `before`),
/// as evidence of who made, deleted or restored what is asked for long
/// after the runs themselves stop mattering (a yearly review).
pub const AUDIT_HISTORY_DAYS: i64 = 400;

/// The time before which a trim at `now` removes audit entries: 400 days
/// before `now`, and never later than the run history's `before`.
pub(crate) fn audit_horizon(before: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    (now - chrono::Duration::days(AUDIT_HISTORY_DAYS)).min(before)
}

/// What one [`Ledger::trim`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub runs: usize,
    pub snapshots: usize,
    pub operations: usize,
    /// Audit entries past their longer horizon ([`AUDIT_HISTORY_DAYS`]).
    pub audit: usize,
}

/// What `status` shows of a target's history, read from its runs newest
/// first (skipped slots left out): the last run, the last success, and the
/// failures in a row since it.
#[derive(Debug, Default)]
pub(crate) struct Streak {
    pub last_run: Option<RunRow>,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    /// The newest failure's error (only while failures follow the success).
    pub last_error: Option<String>,
    over: bool,
}

impl Streak {
    /// Take the next older run: false once the newest success is seen (no
    /// older run changes the answer).
    pub(crate) fn take(&mut self, r: RunRow) -> bool {
        if !r.state.is_open() && !self.over {
            if r.state == RunState::Failed {
                self.consecutive_failures += 1;
                if self.last_error.is_none() {
                    self.last_error = r.error.clone();
                }
            } else {
                self.over = true;
            }
        }
        let succeeded = r.state == RunState::Succeeded;
        if succeeded {
            self.last_success = Some(r.finished_at.unwrap_or(r.slot));
        }
        if self.last_run.is_none() {
            self.last_run = Some(r);
        }
        !succeeded
    }

    /// The summary of (`policy`, `target`) with this history.
    pub(crate) fn summary(
        self,
        key: (&str, &str, &str),
        snapshots_kept: u32,
        bytes_kept: Option<u64>,
        skipped: u32,
        in_flight: Vec<OpRow>,
    ) -> TargetSummary {
        let (policy, target, provider) = key;
        TargetSummary {
            policy: policy.to_string(),
            target: target.to_string(),
            provider: provider.to_string(),
            last_run: self.last_run,
            last_success: self.last_success,
            consecutive_failures: self.consecutive_failures,
            last_error: self.last_error.filter(|_| self.consecutive_failures > 0),
            snapshots_kept,
            bytes_kept,
            in_flight,
            skipped,
        }
    }
}

/// Why a compare-and-swap of a stored secret did not store it.
pub const SECRET_CHANGED: &str =
    "another process stored a newer value meanwhile (only the leader refreshes; this one is dropped)";

/// A backend's answer to loading a secret, as a provider sees it.
pub(crate) fn stored_secret(
    found: Result<Option<(String, String)>>,
) -> std::result::Result<Option<crate::providers::StoredSecret>, String> {
    found
        .map(|found| {
            found.map(|(value, seed)| crate::providers::StoredSecret {
                value: crate::config::Secret::new(value),
                seed,
            })
        })
        .map_err(|e| e.to_string())
}

/// A backend's answer to a compare-and-swap of a secret (stored or not),
/// as a provider sees it.
pub(crate) fn secret_swapped(stored: Result<bool>) -> std::result::Result<(), String> {
    match stored {
        Ok(true) => Ok(()),
        Ok(false) => Err(SECRET_CHANGED.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn corrupt(what: &'static str, value: &str) -> StateError {
    StateError::Corrupt {
        what,
        value: value.to_string(),
    }
}

/// The ledger as the engine, the daemon and the commands use it. Every
/// call is one committed transaction of the backend (or one consistent
/// read); a call that fails has written nothing.
///
/// A ledger shared by several processes ([`PgLedger`]) refuses decision
/// writes (intents, deletes, restores, holds, the fired slot, policy
/// rules, trims, a post hook owed) from a process that does not hold the
/// scheduler lease: [`StateError::NotLeader`]. Facts (what a cloud
/// answered, what was delivered, a rotated secret, a post hook that ran)
/// are written by any process.
#[async_trait::async_trait]
pub trait Ledger: crate::providers::SecretStore + std::fmt::Debug + Send + Sync {
    /// Where the ledger is, for messages (a path, or a URL without its
    /// password).
    fn location(&self) -> String;

    /// The schema version in force.
    async fn schema_version(&self) -> Result<i64>;

    /// A cheap committed write on a connection of its own, to prove the
    /// database usable (health checks), even while the engine waits on it.
    async fn probe_writable(&self) -> Result<()>;

    // ---- schedule -------------------------------------------------------

    async fn last_slot(&self, policy: &str) -> Result<Option<DateTime<Utc>>>;

    /// Record that `slot` fired for `policy`; never moves backwards.
    async fn set_last_slot(&self, policy: &str, slot: DateTime<Utc>) -> Result<()>;

    // ---- runs -----------------------------------------------------------

    /// Record the intent for one (policy, target, slot), in one transaction
    /// with the checks that make it safe: a slot already recorded is not run
    /// again, and a slot that comes while the previous run of the same policy
    /// and target is open is recorded as skipped.
    async fn begin_run(&self, run: &NewRun, now: DateTime<Utc>) -> Result<Begin>;

    /// [`Ledger::begin_run`] for every target of one slot in a single
    /// transaction: one durable commit instead of one per target, so a
    /// slot of thousands of targets starts at once. All or nothing: on
    /// error no intent of the slot is written.
    async fn begin_runs(&self, runs: &[NewRun], now: DateTime<Utc>) -> Result<Vec<Begin>>;

    async fn run(&self, run_id: i64) -> Result<RunRow>;

    /// Runs not yet terminal (to resume after a restart).
    async fn open_runs(&self) -> Result<Vec<RunRow>>;

    /// Runs not yet terminal, and the rows among them that cannot be read.
    async fn open_runs_readable(&self) -> Result<(Vec<RunRow>, Vec<Unreadable>)>;

    /// Runs for one policy and target, newest slot first.
    async fn runs_for(&self, policy: &str, target: &str, limit: u32) -> Result<Vec<RunRow>>;

    async fn set_run_state(
        &self,
        run_id: i64,
        state: RunState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Record what a create returned: its snapshots and the operations to
    /// follow, and move the run to `creating`, in one transaction.
    async fn record_created(
        &self,
        run_id: i64,
        created: &[Created],
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<Vec<OpRow>>;

    /// Record a snapshot found by name for a run whose create answer was
    /// lost (it reached the cloud), in the given state.
    async fn adopt_snapshot(
        &self,
        run_id: i64,
        snapshot_id: &str,
        state: LedgerState,
        now: DateTime<Utc>,
    ) -> Result<SnapshotRow>;

    // ---- snapshots ------------------------------------------------------

    async fn snapshot(&self, row_id: i64) -> Result<SnapshotRow>;

    async fn run_snapshots(&self, run_id: i64) -> Result<Vec<SnapshotRow>>;

    /// The snapshots of one (provider, policy, target) not deleted.
    async fn live_snapshots(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<Vec<SnapshotRow>>;

    async fn all_snapshots(&self) -> Result<Vec<SnapshotRow>>;
    /// Record the sizes a listing gave for ledger rows: (row id, bytes). A
    /// fact, not fenced; one transaction; a row id that does not exist is
    /// skipped (the listing may race a trim).
    async fn record_sizes(&self, sizes: &[(i64, u64)]) -> Result<()>;

    async fn mark_deleted(&self, row_id: i64, now: DateTime<Utc>) -> Result<()>;

    async fn set_snapshot_state(
        &self,
        row_id: i64,
        state: LedgerState,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    // ---- operations -----------------------------------------------------

    /// Record a delete decision: the snapshot goes to `deleting` and an
    /// operation follows the cloud's job.
    async fn begin_delete(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow>;

    async fn begin_restore(
        &self,
        row_id: i64,
        reference: &str,
        now: DateTime<Utc>,
        plan: PollPlan,
    ) -> Result<OpRow>;

    /// Snapshot ids of (provider, policy, target) a restore is reading.
    async fn snapshots_being_restored(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashSet<String>>;

    async fn op(&self, id: i64) -> Result<OpRow>;

    async fn ops_in_flight_count(&self) -> Result<usize>;

    async fn ops_in_flight(&self) -> Result<Vec<OpRow>>;

    /// Operations in flight, and the rows among them that cannot be read.
    async fn ops_in_flight_readable(&self) -> Result<(Vec<OpRow>, Vec<Unreadable>)>;

    /// Record an operation's outcome (`error` None: it succeeded) together
    /// with its snapshot's state. An operation finishes once: a second
    /// outcome for it (another process, a retried round) changes nothing.
    async fn finish_op(&self, id: i64, error: Option<&str>, now: DateTime<Utc>) -> Result<()>;

    /// [`Ledger::finish_op`] for many operations in one transaction.
    async fn finish_ops(&self, outcomes: &[(i64, Option<&str>)], now: DateTime<Utc>) -> Result<()>;

    /// When each operation is polled next, and at what interval.
    async fn reschedule_ops(&self, next: &[(i64, DateTime<Utc>, Duration)]) -> Result<()>;

    // ---- deletion safety ------------------------------------------------

    async fn hold_deletes(
        &self,
        policy: &str,
        target: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    async fn delete_hold(&self, policy: &str, target: &str) -> Result<Option<DeleteHold>>;

    async fn delete_holds(&self) -> Result<Vec<DeleteHold>>;

    /// Lift a hold; whether there was one.
    async fn release_deletes(&self, policy: &str, target: &str) -> Result<bool>;

    /// Snapshots whose delete failed or is stuck.
    async fn failed_deletes(&self) -> Result<Vec<SnapshotRow>>;

    // ---- sources and policy rules ---------------------------------------

    async fn policy_rules(&self) -> Result<HashMap<String, String>>;

    async fn record_policy_rules(
        &self,
        rules: &[(&str, &str, &str)],
        now: DateTime<Utc>,
    ) -> Result<()>;

    async fn snapshot_sources(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashMap<i64, String>>;

    async fn all_snapshot_sources(&self) -> Result<HashMap<i64, String>>;

    async fn record_snapshot_sources(&self, sources: &[(i64, &str)]) -> Result<()>;

    // ---- alerts ---------------------------------------------------------

    /// Record that an alert of `kind` decided at `at` reached the operator
    /// (never moves back in time).
    async fn record_alert_delivered(
        &self,
        policy: &str,
        target: &str,
        kind: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    async fn alerts_delivered(&self) -> Result<Delivered>;

    /// The newest skipped slot of (policy, target), and its reason.
    async fn newest_skipped(
        &self,
        policy: &str,
        target: &str,
    ) -> Result<Option<(DateTime<Utc>, Option<String>)>>;

    // ---- status ---------------------------------------------------------

    async fn summaries(&self) -> Result<Vec<TargetSummary>>;

    async fn target_summary(&self, policy: &str, target: &str) -> Result<Option<TargetSummary>>;

    // ---- snapshot hooks -------------------------------------------------

    /// Record, before a pre hook starts, that run `run_id` owes its post
    /// hook `command` (argv, at least one element). Fenced: only the
    /// leader freezes. Recording again for the same run replaces command
    /// and resource and keeps `since`.
    async fn owe_post_hook(
        &self,
        run_id: i64,
        command: &[String],
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The post hook of `run_id` has run to its end (whatever it
    /// answered): no longer owed. A fact, not fenced. Ok(false) when
    /// nothing was owed.
    async fn post_hook_ran(&self, run_id: i64) -> Result<bool>;

    /// Every post hook owed, oldest `since` first (then run_id). A row
    /// that cannot be read is left out and logged, never the whole answer.
    async fn post_hooks_owed(&self) -> Result<Vec<OwedHook>>;

    // ---- pauses and slots skipped on purpose -----------------------------

    /// Pause `policy` (None: every policy). Pausing what is already paused
    /// replaces reason, by and until, and keeps `since`. Not fenced: an
    /// operator pauses while a daemon leads; it is the operator's control,
    /// read by the leader.
    async fn pause(
        &self,
        policy: Option<&str>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<()>;

    /// Lift the pause of `policy` (None: the every-policy pause only). Not
    /// fenced. The pause lifted, if there was one (its `until` may have
    /// passed already: this call is given no time to tell).
    async fn resume(&self, policy: Option<&str>) -> Result<Option<Pause>>;

    /// The pauses in force at `now` (those whose `until` passed are left
    /// out), the every-policy one first, then by policy name in byte
    /// order. Writes nothing, so a read-only ledger answers it.
    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<Pause>>;

    /// Record runs that were not started on purpose (a pause, a blackout
    /// window): one row per run in state `skipped`, finished at `now`,
    /// with error `why`; a slot already recorded for that (policy, target,
    /// slot) is left as it is (the same slot is never recorded twice).
    /// Which were recorded, in the order of `runs`. Fenced (like
    /// [`Ledger::begin_runs`]: it is the schedule's decision), in one
    /// transaction.
    async fn skip_runs(&self, runs: &[NewRun], why: &str, now: DateTime<Utc>) -> Result<Vec<bool>>;

    // ---- snapshot holds ------------------------------------------------

    /// Place `hold` (its `since` is ignored: the hold dates from `now`),
    /// in one transaction; holds whose `until` passed are removed. Its
    /// key is (policy, target, snapshot id or target-wide): placing it
    /// again replaces reason, by and until and dates it from `now`. A
    /// snapshot hold on a row being deleted (state `deleting`, or an
    /// unexpired delete claim) or deleted is refused with
    /// [`StateError::HoldTooLate`], nothing written; a snapshot id the
    /// ledger does not know is held all the same (`known` false). Not
    /// fenced: the operator's control, written beside a running daemon.
    async fn hold(&self, hold: &SnapshotHold, now: DateTime<Utc>) -> Result<HoldPlaced>;

    /// Remove the hold of (`policy`, `target`, `snapshot_id`; None: the
    /// target-wide one); the hold removed, if there was one (its `until`
    /// may have passed). Not fenced.
    async fn release_hold(
        &self,
        policy: &str,
        target: &str,
        snapshot_id: Option<&str>,
    ) -> Result<Option<SnapshotHold>>;

    /// The holds in force at `now`, by policy, target, then the
    /// target-wide hold first and snapshot ids in byte order. Writes
    /// nothing, so a read-only ledger answers it.
    async fn holds(&self, now: DateTime<Utc>) -> Result<Vec<SnapshotHold>>;

    /// Claim snapshot rows `rows` for deletion until `until`, before the
    /// cloud is asked to delete them: in one transaction, each row a hold
    /// in force at `now` covers is not claimed, the others are (a row id
    /// the ledger does not have is skipped). The rows claimed, in the
    /// order of `rows`. While a claim lasts a snapshot hold on the row is
    /// refused, so a hold never races a delete already decided. Fenced:
    /// it is the leader's delete decision.
    async fn claim_deletes(
        &self,
        rows: &[i64],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>>;

    /// Drop the delete claim of `row` (the cloud refused the delete, or
    /// it was not sent). Not fenced. [`Ledger::begin_delete`] drops the
    /// claim as well: from then on the row's state says it.
    async fn drop_delete_claim(&self, row: i64) -> Result<()>;

    // ---- audit trail ----------------------------------------------------

    /// Append `entries` to the audit trail, in one transaction (an empty
    /// slice writes nothing). A fact, not fenced: any process records
    /// what it did.
    async fn record_audit(&self, entries: &[AuditEntry]) -> Result<()>;

    /// The audit entries at or after `since`, oldest first (ties in the
    /// order recorded). With `policy`, only that policy's entries and
    /// those of no policy (a pause of every policy). Writes nothing, so a
    /// read-only ledger answers it.
    async fn audit_log(
        &self,
        since: DateTime<Utc>,
        policy: Option<&str>,
    ) -> Result<Vec<AuditEntry>>;

    // ---- history --------------------------------------------------------

    /// Remove history that ended before `before`: only what no guarantee
    /// still needs (a run that still owes a post hook stays). Audit
    /// entries go by their own, longer horizon ([`AUDIT_HISTORY_DAYS`]
    /// before the trim's own time).
    async fn trim(&self, before: DateTime<Utc>) -> Result<Trimmed>;
}

#[cfg(test)]
#[path = "../../tests/support/pg_cluster.rs"]
mod pg_cluster;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_migrate;
