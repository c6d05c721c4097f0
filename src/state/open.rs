//! Opening the ledger a configuration names: the SQLite file of one
//! bastion, or the PostgreSQL ledger shared by a high-availability pair.

use std::sync::Arc;

use super::postgres::{lease, PgLedger, PgOptions};
use super::{Ledger, Result, SqliteLedger};
use crate::config::DaemonConfig;

/// The ledger for reading (`status`, `monitor`): SQLite read-only (safe
/// while the daemon runs; [`super::StateError::Missing`] if it was never
/// written), or a connection to the shared ledger that writes no
/// decision (it holds no lease).
pub async fn open_read(daemon: &DaemonConfig) -> Result<Arc<dyn Ledger>> {
    match &daemon.shared {
        None => Ok(Arc::new(SqliteLedger::open_read_only(&daemon.state_path)?)),
        Some(shared) => Ok(Arc::new(
            PgLedger::connect(&shared.url, shared.password.as_ref(), PgOptions::default()).await?,
        )),
    }
}

/// The ledger for a command that only records a fact (`login` keeps a
/// refresh token): SQLite opened (created if needed) without its lock, or
/// the shared ledger.
pub async fn open_for_secrets(daemon: &DaemonConfig) -> Result<Arc<dyn Ledger>> {
    match &daemon.shared {
        None => Ok(Arc::new(SqliteLedger::open(&daemon.state_path)?)),
        Some(shared) => Ok(Arc::new(
            PgLedger::connect(&shared.url, shared.password.as_ref(), PgOptions::default()).await?,
        )),
    }
}

/// Who leads a shared ledger and which nodes were seen lately (`None` for
/// a ledger of one's own).
#[derive(Debug, Clone)]
pub struct LeadershipView {
    pub leader: Option<lease::Leader>,
    pub nodes: Vec<lease::Node>,
}

/// [`LeadershipView`] of the shared ledger `daemon` names; `None` for
/// SQLite.
pub async fn leadership(daemon: &DaemonConfig) -> Result<Option<LeadershipView>> {
    let Some(shared) = &daemon.shared else {
        return Ok(None);
    };
    let pg = PgLedger::connect(&shared.url, shared.password.as_ref(), PgOptions::default()).await?;
    let client = pg.session().await?;
    // A node is "seen" if it reported within three leases.
    let recent = shared.lease_duration.saturating_mul(3);
    Ok(Some(LeadershipView {
        leader: lease::leader(&client).await?,
        nodes: lease::nodes(&client, recent).await?,
    }))
}
