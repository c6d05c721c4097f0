//! `snapwarden run`: the daemon in the foreground.

use std::path::Path;

use tokio::sync::watch;

use super::{load_config_and_log, Exit};

pub async fn run(path: &Path) -> Exit {
    let config = match load_config_and_log(path, "info") {
        Ok(c) => c,
        Err(e) => return e,
    };
    // Never turns true: the daemon stops on SIGTERM/SIGINT.
    let (_stop_tx, stop_rx) = watch::channel(false);
    match crate::daemon::run(path.to_path_buf(), config, stop_rx).await {
        Ok(()) => Exit::OK,
        // A second daemon on one ledger: exit 2, the first keeps running.
        Err(crate::daemon::DaemonError::State(e)) => super::state_exit(e),
        Err(e) => Exit::failure(e.to_string()),
    }
}
