//! Opening the ledger a configuration names: the SQLite file of one
//! bastion, or the PostgreSQL ledger shared by a high-availability pair.

use std::sync::Arc;

use super::postgres::{lease, PgLedger, PgOptions};
use super::{Ledger, Result, SqliteLedger};
use crate::config::{DaemonConfig, SharedState};

/// Connect to the shared ledger `shared` names (and migrate it).
pub async fn open_shared(shared: &SharedState) -> Result<PgLedger> {
    PgLedger::connect(&shared.url, shared.password.as_ref(), PgOptions::default()).await
}

/// The ledger for reading (`status`, `monitor`): SQLite read-only (safe
/// while the daemon runs; [`super::StateError::Missing`] if it was never
/// written), or a connection to the shared ledger that writes no
/// decision (it holds no lease).
pub async fn open_read(daemon: &DaemonConfig) -> Result<Arc<dyn Ledger>> {
    Ok(open_read_viewing(daemon).await?.0)
}

/// [`open_read`], and for a shared ledger who leads it and which nodes
/// were seen lately (`status`), read on the same connection.
pub async fn open_read_viewing(
    daemon: &DaemonConfig,
) -> Result<(Arc<dyn Ledger>, Option<LeadershipView>)> {
    match &daemon.shared {
        None => Ok((
            Arc::new(SqliteLedger::open_read_only(&daemon.state_path)?),
            None,
        )),
        Some(shared) => {
            let pg = open_shared(shared).await?;
            // A node is "seen" if it reported within three leases.
            let view = pg
                .leadership_view(shared.lease_duration.saturating_mul(3))
                .await?;
            Ok((Arc::new(pg), Some(view)))
        }
    }
}

/// The ledger for a command that only records a fact (`login` keeps a
/// refresh token): SQLite opened (created if needed) without its lock, or
/// the shared ledger.
pub async fn open_for_secrets(daemon: &DaemonConfig) -> Result<Arc<dyn Ledger>> {
    match &daemon.shared {
        None => Ok(Arc::new(SqliteLedger::open(&daemon.state_path)?)),
        Some(shared) => Ok(Arc::new(open_shared(shared).await?)),
    }
}

/// The ledger for an operator's control write while a daemon runs
/// (`pause`, `resume`): the SQLite file opened read-write without the
/// lock a daemon holds ([`StateError::Missing`](super::StateError::Missing)
/// if the daemon never wrote it, refused if it was moved), or a
/// connection to the shared ledger that holds no lease (such writes are
/// not fenced; decisions stay refused).
pub async fn open_control(daemon: &DaemonConfig) -> Result<Arc<dyn Ledger>> {
    match &daemon.shared {
        None => Ok(Arc::new(SqliteLedger::open_control(&daemon.state_path)?)),
        Some(shared) => Ok(Arc::new(open_shared(shared).await?)),
    }
}

/// Who leads a shared ledger and which nodes were seen lately.
#[derive(Debug, Clone)]
pub struct LeadershipView {
    pub leader: Option<lease::Leader>,
    pub nodes: Vec<lease::Node>,
}
