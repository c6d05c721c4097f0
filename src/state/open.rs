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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::config::LogFormat;
    use crate::state::{Pause, StateError};

    fn daemon(state_path: std::path::PathBuf) -> DaemonConfig {
        DaemonConfig {
            state_path,
            shared: None,
            log_format: LogFormat::Text,
            timezone: chrono_tz::UTC,
            metrics_listen: None,
            max_deletes_per_run: 10,
        }
    }

    #[tokio::test]
    async fn a_control_write_reaches_a_ledger_a_daemon_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let held = SqliteLedger::open_locked(&path, "snapwarden run").expect("the daemon's lock");
        // Every other writer is refused the lock while the daemon holds it.
        assert!(matches!(
            SqliteLedger::open_locked(&path, "snapwarden prune"),
            Err(StateError::Locked { .. })
        ));

        let since = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a time");
        let control = open_control(&daemon(path.clone()))
            .await
            .expect("control beside the daemon");
        control
            .pause(Some("db"), "db migration", "ann", since, None)
            .await
            .expect("pause");
        let want = vec![Pause {
            policy: Some("db".into()),
            reason: "db migration".into(),
            by: "ann".into(),
            since,
            until: None,
        }];
        // The daemon sees the pause on its own connection.
        assert_eq!(held.pauses(since).expect("the holder reads"), want);
        // And the daemon's writes go on beside the control connection.
        held.pause(None, "freeze", "daemon", since, None)
            .expect("the holder writes");
        assert_eq!(
            control.resume(Some("db")).await.expect("resume"),
            want.into_iter().next()
        );
        assert_eq!(held.pauses(since).expect("read").len(), 1);
    }

    #[tokio::test]
    async fn control_refuses_a_ledger_never_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let err = open_control(&daemon(path.clone()))
            .await
            .expect_err("no ledger yet");
        assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("has the daemon run yet?"), "{err}");
        assert!(!path.exists(), "nothing was created");
    }
}
