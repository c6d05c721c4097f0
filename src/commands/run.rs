//! `snapwarden run`: the daemon in the foreground.

use std::path::Path;

use tokio::sync::watch;

use super::{load_config_and_log, Exit, Outcome};

pub async fn run(path: &Path) -> Outcome {
    let config = load_config_and_log(path, "info")?;
    // Never turns true: the daemon stops on SIGTERM/SIGINT.
    let (_stop_tx, stop_rx) = watch::channel(false);
    match crate::daemon::run(path.to_path_buf(), config, stop_rx).await {
        Ok(()) => Ok(()),
        // A second daemon on one ledger: exit 2, the first keeps running.
        Err(crate::daemon::DaemonError::State(e)) => Err(super::state_exit(e)),
        Err(e) => Err(Exit::failure(e.to_string())),
    }
}
