//! One module per subcommand. Each returns an [`Exit`]: the code and, for
//! failures, the message `main` prints.

/// `println!` for a command's output, which never panics: when whoever
/// reads standard output has gone (`snapwarden status | head`), the rest
/// of the output is dropped and the command carries on (a prune whose
/// report stopped half-way must not stop half-way itself). Any other
/// failure to write is reported when the command is done
/// ([`output_failure`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::commands::write_line(format_args!($($arg)*))
    };
}

pub mod check;
pub mod demo;
pub mod generate;
pub mod history;
pub mod hold;
pub mod login;
pub mod migrate_state;
pub mod monitor;
pub mod orphans;
pub mod pause;
pub mod plan;
pub mod prune;
pub mod report;
pub mod restore;
pub mod run;
mod settle;
pub mod sim;
pub mod snapshot;
pub mod status;

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::config::{self, Config};

pub use settle::settle_in_flight;

/// How a command ended: 0 ok, 1 run-time failure, 2 usage or configuration.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: Option<String>,
}

impl Exit {
    pub const OK: Exit = Exit {
        code: 0,
        message: None,
    };

    pub fn failure(message: impl Into<String>) -> Exit {
        Exit {
            code: 1,
            message: Some(message.into()),
        }
    }

    pub fn config(message: impl Into<String>) -> Exit {
        Exit {
            code: 2,
            message: Some(message.into()),
        }
    }
}

/// What most commands end with: done, or the [`Exit`] that says why not
/// (so that `?` carries a failure out of the command).
pub type Outcome = Result<(), Exit>;

impl From<Outcome> for Exit {
    fn from(outcome: Outcome) -> Exit {
        outcome.err().unwrap_or(Exit::OK)
    }
}

/// How a one-shot command uses the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It only reads: an existing ledger is opened read-only, a missing
    /// one is an empty in-memory ledger (nothing is ours yet).
    Read,
    /// It writes: the ledger's lock is taken, so the command never races
    /// a running daemon (or another such command) on the same ledger.
    Write,
}

/// Load and validate the policy file; a bad file is exit code 2 with every
/// problem listed. Warnings go to stderr.
pub fn load_config(path: &Path) -> Result<Config, Exit> {
    let config = config::load(path).map_err(|e| Exit::config(e.to_string()))?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(config)
}

/// Load the policy file, then start logging in the format it asks for and
/// report its warnings as log events (so JSON logs stay one object a line).
pub fn load_config_and_log(path: &Path, default_level: &str) -> Result<Config, Exit> {
    let config = config::load(path).map_err(|e| Exit::config(e.to_string()))?;
    crate::observe::logging::init(config.daemon.log_format, default_level);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// Open the ledger as `access` says and build the engine for a one-shot
/// command.
pub async fn open_engine(
    config: &Config,
    access: Access,
) -> Result<std::sync::Arc<crate::engine::Engine>, Exit> {
    use crate::state::{Ledger, SqliteLedger};
    let state: std::sync::Arc<dyn Ledger> = match (&config.daemon.shared, access) {
        (Some(shared), Access::Write) => {
            let (pg, leadership) = lead_once(shared).await?;
            let mandate = leadership.mandate.clone();
            *ONE_SHOT_LEASE.lock().await = Some(leadership);
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let state: std::sync::Arc<dyn Ledger> = std::sync::Arc::new(pg);
            return crate::engine::Engine::with_mandate(state, config, rx, mandate)
                .map(|e| e.with_actor(who()))
                .map_err(|e| Exit::failure(e.to_string()));
        }
        (Some(_), Access::Read) => crate::state::open_read(&config.daemon)
            .await
            .map_err(state_exit)?,
        (None, access) => {
            let path = &config.daemon.state_path;
            let opened = match access {
                Access::Write => SqliteLedger::open_locked(path, &this_command()),
                Access::Read if path.exists() => SqliteLedger::open_read_only(path),
                Access::Read => SqliteLedger::open(Path::new(":memory:")),
            };
            std::sync::Arc::new(opened.map_err(state_exit)?)
        }
    };
    // One-shot commands never stop early: the shutdown flag stays false.
    let (_tx, rx) = tokio::sync::watch::channel(false);
    crate::engine::Engine::new(state, config, rx)
        .map(|e| e.with_actor(who()))
        .map_err(|e| Exit::failure(e.to_string()))
}

/// The lease a one-shot command holds on a shared ledger while it writes
/// (released by [`release_one_shot_lease`] when the command ends).
static ONE_SHOT_LEASE: tokio::sync::Mutex<Option<crate::leadership::Leadership>> =
    tokio::sync::Mutex::const_new(None);

/// Take a shared ledger's lease for a one-shot command: the command writes
/// only while no daemon leads (a running daemon does this work itself).
async fn lead_once(
    shared: &crate::config::SharedState,
) -> Result<(crate::state::PgLedger, crate::leadership::Leadership), Exit> {
    let pg = crate::state::open_shared(shared)
        .await
        .map_err(state_exit)?;
    let candidate = crate::leadership::Candidate::new(pg.clone(), shared)
        .await
        .map_err(state_exit)?;
    match candidate.lead_once().await {
        Ok(leadership) => Ok((pg, leadership)),
        Err(Some(l)) if !l.expired => Err(Exit::config(format!(
            "the shared ledger is led by node {} (epoch {}, since {}): a running daemon writes \
             it; let it do this work, or stop the daemons (leader and standby) and try again",
            l.node,
            l.epoch,
            l.since.to_rfc3339()
        ))),
        Err(_) => Err(Exit::failure(format!(
            "cannot take the lease of the shared ledger {}; try again",
            pg.location()
        ))),
    }
}

/// Hand back the lease a one-shot command took on a shared ledger, if any.
pub async fn release_one_shot_lease() {
    if let Some(l) = ONE_SHOT_LEASE.lock().await.take() {
        l.step_down().await;
    }
}

/// A ledger that cannot be opened: held by another process is exit code 2
/// (the operator must stop it first), anything else a run-time failure.
pub fn state_exit(e: crate::state::StateError) -> Exit {
    match e {
        crate::state::StateError::Locked { .. } => Exit::config(e.to_string()),
        other => Exit::failure(other.to_string()),
    }
}

/// How this process names itself in the ledger's lock: `snapwarden` and
/// its subcommand.
fn this_command() -> String {
    match std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        Some(sub) => format!("snapwarden {sub}"),
        None => "snapwarden".to_string(),
    }
}

/// Who runs this command, as the ledger records it (a pause's author,
/// the audit trail's actor): the user behind sudo, else the user, else
/// "unknown".
pub fn who() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The policies a `--policy` option selects (all when absent).
pub fn select_policies<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<Vec<&'a config::Policy>, Exit> {
    match name {
        None => Ok(config.policies.iter().collect()),
        Some(n) => match config.policies.iter().find(|p| p.name == n) {
            Some(p) => Ok(vec![p]),
            None => Err(Exit::config(format!(
                "no policy named {n:?} in {} (defined: {})",
                config.path.display(),
                config
                    .policies
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// A size for people: "12.5 GiB", or "?" where the cloud gives none.
pub fn size_text(bytes: Option<u64>) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let Some(b) = bytes else {
        return "?".to_string();
    };
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The first failure to write standard output other than a closed pipe.
static OUTPUT_FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// One line of a command's output (see [`say!`]).
pub fn write_line(line: std::fmt::Arguments<'_>) {
    let written = writeln!(std::io::stdout().lock(), "{line}");
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            OUTPUT_FAILURE
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| e.to_string());
        }
    }
}

/// Why some of the command's output could not be written, if it could
/// not (a reader that closed the pipe is no failure).
pub fn output_failure() -> Option<String> {
    OUTPUT_FAILURE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Record what a command did in the audit trail. It is done already: a
/// ledger that cannot take the entry is reported and fails nothing.
pub(crate) async fn audit(ledger: &dyn crate::state::Ledger, entry: crate::state::AuditEntry) {
    if let Err(e) = ledger.record_audit(std::slice::from_ref(&entry)).await {
        let action = entry.action;
        tracing::error!(
            error = %e,
            action = action.as_str(),
            policy = entry.policy.as_deref().unwrap_or("(every policy)"),
            target = entry.target.as_deref().unwrap_or(""),
            snapshot = entry.snapshot.as_deref().unwrap_or(""),
            "cannot record the {action} in the audit trail"
        );
        eprintln!("warning: the {action} was done, but cannot be recorded in the audit trail: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(super::size_text(None), "?");
        assert_eq!(super::size_text(Some(512)), "512 B");
        assert_eq!(super::size_text(Some(51200 << 20)), "50.0 GiB");
        assert_eq!(super::size_text(Some(1536)), "1.5 KiB");
        assert_eq!(super::size_text(Some(3 << 40)), "3.0 TiB");
    }
}
