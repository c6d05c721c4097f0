//! The daemon trims the ledger's history now and then (what goes and what
//! stays: `State::trim`). Off the scheduler loop, on a
//! blocking thread, in short transactions.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::state::State;

/// How long finished history (runs, rows of deleted snapshots and their
/// operations) stays in the ledger.
pub(super) const LEDGER_HISTORY: Duration = Duration::from_secs(90 * 86_400);
/// The first trim after start-up (after resume and the first slots), and
/// the time between two trims.
const FIRST: Duration = Duration::from_secs(600);
const EVERY: Duration = Duration::from_secs(6 * 3600);

/// Trim every [`EVERY`] until `stop` turns true.
pub(super) fn start(state: Arc<State>, stop: watch::Receiver<bool>) {
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
            let s = state.clone();
            match tokio::task::spawn_blocking(move || s.trim(before)).await {
                Ok(Ok(t)) if t == Default::default() => {}
                Ok(Ok(t)) => {
                    info!(runs = t.runs, snapshots = t.snapshots, operations = t.operations, before = %before, "ledger history trimmed")
                }
                Ok(Err(e)) => warn!(error = %e, "cannot trim the ledger's history"),
                Err(e) => warn!(error = %e, "the ledger trim stopped"),
            }
        }
    });
}
