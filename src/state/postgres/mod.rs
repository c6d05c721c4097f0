//! The PostgreSQL ledger, shared by the bastions of a highly available
//! pair: the same tables and answers as the SQLite ledger, with native
//! types, and every call one PostgreSQL transaction where SQLite's is one.
//!
//! Decision writes (an intent, a delete or restore, a hold, the schedule's
//! fired slot, the policy rules, a trim, a post hook owed) are fenced:
//! inside their own transaction, before writing, they check that this
//! process still holds the scheduler lease with the epoch it was given
//! ([`PgLedger::set_fence`]), and share-lock the lease row so that no
//! other node can take it over until they commit. Facts (what a cloud
//! answered, what was delivered, a rotated secret, a post hook that ran)
//! are written by whoever learns them, leader or not.
//!
//! Connections: one for the ledger's calls (transactions need it to
//! themselves, so calls take turns), and one for health probes, so a probe
//! never waits behind the engine. A connection found closed is opened again
//! on the next call; the call that found it broken fails.

mod audit;
mod begin;
mod conn;
mod connect;
mod holds;
mod hooks;
mod import;
pub mod lease;
mod ledger;
mod migrations;
mod ops;
mod pauses;
mod rows;
mod runs;
mod safety;
mod sizes;
mod snapshots;
mod summary;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_connect;
mod tls;
mod trim;

pub use connect::{redacted, PgOptions};
pub use tls::SslMode;

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use tokio::sync::{Mutex, MutexGuard};

use super::{Result, StateError};
use crate::config::Secret;
use conn::{Conn, Tx};
use connect::Target;

/// The lease a decision write is fenced with: the holder this process
/// acquired the scheduler lease as, and the epoch it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The `leader_lease.holder` this process wrote.
    pub holder: String,
    /// The `leader_lease.epoch` of its lease.
    pub epoch: i64,
}

/// The open PostgreSQL ledger. A handle: clones share its connections.
#[derive(Clone)]
pub struct PgLedger(Arc<Inner>);

struct Inner {
    target: Target,
    conn: Mutex<Conn>,
    probe: Mutex<Option<tokio_postgres::Client>>,
    fence: StdMutex<Option<Fence>>,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("location", &self.0.target.location)
            .finish()
    }
}

/// The open run states as written in SQL (literals, so the partial
/// indexes `runs_open` and `runs_one_open` apply).
const OPEN_RUN_STATES_SQL: &str = "'intent', 'creating', 'pruning'";

const RUN_COLUMNS: &str =
    r#"id, policy, target, provider, slot, name, "full", state, started_at, finished_at, error"#;

const SNAPSHOT_COLUMNS: &str = r#"id, run_id, provider, policy, target, slot, name, snapshot_id, state, "full", created_at, completed_at, deleted_at, error, size_bytes"#;

const OP_COLUMNS: &str = "o.id, o.kind, o.provider, o.reference, o.snapshot, s.snapshot_id, s.run_id, s.policy, s.target, o.started_at, o.next_poll_at, o.poll_interval_ms, o.deadline";

/// The check of every decision write: the lease is still ours, with our
/// epoch, and not expired. `FOR SHARE` holds off a takeover (which
/// updates the row) until the write commits.
const FENCE_SQL: &str = "SELECT epoch FROM leader_lease
     WHERE name = 'scheduler' AND holder = $1 AND epoch = $2 AND expires_at > now()
     FOR SHARE";

/// How long a health probe's statement may wait (a locked table, a full
/// disk) before it counts as failed.
const PROBE_STATEMENT_TIMEOUT_MS: u32 = 2_000;

/// The message of a PostgreSQL error: the server's (with its detail and
/// hint) when it answered, else the client's with its causes.
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            m.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            m.push_str(&format!("; hint: {hint}"));
        }
        return m;
    }
    let mut m = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        m.push_str(&format!(": {s}"));
        source = s.source();
    }
    m
}

/// Times are kept to the millisecond, as the SQLite ledger keeps them, so
/// both answer the same.
pub(super) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond() / 1_000_000 * 1_000_000;
    t.with_nanosecond(nanos).unwrap_or(t)
}

impl PgLedger {
    /// Connect to the ledger at `url` (`postgres://user@host:port/db`,
    /// with libpq's `sslmode` and `sslrootcert` parameters), with
    /// `password` if given (else the URL's own, if any), and migrate it.
    /// No message ever carries the password.
    pub async fn connect(
        url: &str,
        password: Option<&Secret>,
        opts: PgOptions,
    ) -> Result<PgLedger> {
        let target = Target::new(url, password, &opts)?;
        let mut client = target.open().await?;
        migrations::migrate(&mut client, &target.location)
            .await
            .map_err(|e| match e {
                StateError::Postgres(e) => StateError::Connect {
                    location: target.location.clone(),
                    message: format!("cannot migrate the schema: {}", pg_message(&e)),
                },
                other => other,
            })?;
        Ok(PgLedger(Arc::new(Inner {
            target,
            conn: Mutex::new(Conn::new(client)),
            probe: Mutex::new(None),
            fence: StdMutex::new(None),
        })))
    }

    /// The URL of the ledger without its password.
    pub fn location(&self) -> &str {
        &self.0.target.location
    }

    /// Fence this process's decision writes with `fence` (None: it is
    /// not the leader, and every decision write is refused with
    /// [`StateError::NotLeader`]).
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.0.fence.lock().unwrap_or_else(|p| p.into_inner()) = fence;
    }

    /// The fence in force.
    pub fn fence(&self) -> Option<Fence> {
        self.0
            .fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The epoch written into rows an intent or an operation creates.
    fn epoch(&self) -> Option<i64> {
        self.fence().map(|f| f.epoch)
    }

    /// The ledger's connection, opened again if it was found closed.
    async fn client(&self) -> Result<MutexGuard<'_, Conn>> {
        let mut client = self.0.conn.lock().await;
        if client.is_closed() {
            *client = Conn::new(self.0.target.open().await?);
        }
        Ok(client)
    }

    /// Refuse a decision write unless this process holds the lease with
    /// its fence's epoch; returns that epoch.
    async fn fenced(&self, tx: &Tx<'_>) -> Result<i64> {
        let Some(fence) = self.fence() else {
            return Err(StateError::NotLeader {
                holder: None,
                epoch: None,
            });
        };
        match tx
            .query_opt(FENCE_SQL, &[&fence.holder, &fence.epoch])
            .await?
        {
            Some(_) => Ok(fence.epoch),
            None => Err(StateError::NotLeader {
                holder: Some(fence.holder),
                epoch: Some(fence.epoch),
            }),
        }
    }

    /// The schema version in force.
    pub async fn schema_version(&self) -> Result<i64> {
        let client = self.client().await?;
        migrations::version(&**client).await
    }

    /// A committed write of the probe row on a connection of its own
    /// (statements limited to 2 s), so a database that cannot write shows
    /// in health checks even while the engine waits on it.
    pub async fn probe_writable(&self) -> Result<()> {
        let mut probe = self.0.probe.lock().await;
        let client = match probe.take() {
            Some(c) if !c.is_closed() => c,
            _ => {
                let c = self.0.target.open().await?;
                c.batch_execute(&format!(
                    "SET statement_timeout = {PROBE_STATEMENT_TIMEOUT_MS}"
                ))
                .await?;
                c
            }
        };
        let result = client
            .execute(
                "INSERT INTO health_probe (id, at) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                &[&ms(Utc::now())],
            )
            .await;
        *probe = Some(client);
        result?;
        Ok(())
    }

    /// Run raw SQL on the ledger (tests that need a row no code path
    /// writes).
    #[cfg(test)]
    pub(crate) async fn execute_for_tests(&self, sql: &str) {
        self.client()
            .await
            .expect("connection")
            .batch_execute(sql)
            .await
            .expect("test SQL");
    }
}

impl PgLedger {
    /// The first column of every row `sql` returns, as text (NULL: "").
    #[cfg(test)]
    pub(crate) async fn query_for_tests(&self, sql: &str) -> Vec<String> {
        let messages = self
            .client()
            .await
            .expect("connection")
            .simple_query(sql)
            .await
            .expect("test SQL");
        messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some(r.get(0).unwrap_or_default().to_string())
                }
                _ => None,
            })
            .collect()
    }
}

/// A poll interval in the database's milliseconds.
fn interval_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
