//! The daemon trims the ledger's history now and then (what goes and what
//! stays: `State::trim`). Off the scheduler loop, on a
//! blocking thread, in short transactions.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::state::Ledger;

/// How long finished history (runs, rows of deleted snapshots and their
/// operations) stays in the ledger.
pub(super) const LEDGER_HISTORY: Duration = Duration::from_secs(90 * 86_400);
/// The first trim after start-up (after resume and the first slots), and
/// the time between two trims.
const FIRST: Duration = Duration::from_secs(600);
const EVERY: Duration = Duration::from_secs(6 * 3600);

/// Trim every [`EVERY`] until `stop` turns true.
pub(super) fn start(state: Arc<dyn Ledger>, stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut wait = FIRST;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = crate::shutdown::stopped(stop.clone()) => return,
            }
            wait = EVERY;
            let Ok(history) = chrono::Duration::from_std(LEDGER_HISTORY) else {
                return;
            };
            let before = Utc::now() - history;
            match state.trim(before).await {
                Ok(t) if t == Default::default() => {}
                Ok(t) => {
                    info!(runs = t.runs, snapshots = t.snapshots, operations = t.operations, audit = t.audit, before = %before, "ledger history trimmed")
                }
                Err(e) => warn!(error = %e, "cannot trim the ledger's history"),
            }
        }
    });
}
