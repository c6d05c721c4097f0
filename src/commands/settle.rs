//! Settling for the commands that only read (`plan`, `status`): before
//! they show or decide anything, the operations the ledger still has in
//! flight (a daemon stopped while following them) are asked about once and
//! the finished ones recorded, so a snapshot the cloud finished is not
//! shown as in progress. One call, so that a lock on the ledger can gate
//! it (a running daemon follows its operations itself).

use std::time::Duration;

use crate::config::{Config, Policy};
use crate::state::SqliteLedger;

/// The longest a read-only command waits for the cloud's answers.
const SETTLE_FOR_AT_MOST: Duration = Duration::from_secs(20);

/// Best effort: without a ledger, with nothing in flight, or when the
/// ledger cannot be written or the cloud cannot be asked, nothing changes
/// (logged) and the command goes on with the ledger as it is.
pub async fn settle_in_flight(config: &Config, policies: Option<&[&Policy]>) {
    let path = &config.daemon.state_path;
    // A shared ledger's operations are followed by its leading daemon.
    if config.daemon.shared.is_some() || !path.exists() {
        return;
    }
    let in_flight = SqliteLedger::open_read_only(path).and_then(|s| s.ops_in_flight_count());
    if !matches!(in_flight, Ok(n) if n > 0) {
        return;
    }
    let engine = match super::open_engine(config, super::Access::Write).await {
        Ok(e) => e,
        // The ledger's lock is held: a running daemon follows them itself.
        Err(e) if e.code == 2 => {
            tracing::debug!(
                reason = e.message.as_deref().unwrap_or(""),
                "operations in flight are followed by the process holding the ledger"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(
                error = e.message.as_deref().unwrap_or(""),
                "cannot open the ledger to settle the operations in flight; showing it as it is"
            );
            return;
        }
    };
    match tokio::time::timeout(SETTLE_FOR_AT_MOST, engine.settle(policies)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot settle the operations in flight; showing the ledger as it is")
        }
        Err(_) => tracing::warn!(
            "the cloud did not answer about the operations in flight in time; showing the ledger as it is"
        ),
    }
}
