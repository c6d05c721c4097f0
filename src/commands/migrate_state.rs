//! `snapwarden migrate-state -c FILE [--from PATH] [--to URL]`: copy a
//! SQLite ledger into an empty PostgreSQL ledger, once, with the daemon
//! stopped. Every table is copied in one PostgreSQL transaction and
//! checked before the commit; then the SQLite file is marked as moved, so
//! that a daemon or a command started on it afterwards refuses (two
//! ledgers in use would run every slot twice).

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{load_config, Exit, Outcome};
use crate::config::Secret;
use crate::state::postgres::redacted;
use crate::state::{ImportReport, PgLedger, PgOptions, SqliteLedger, StateError};

/// The name this command holds the SQLite ledger's lock with.
const COMMAND: &str = "snapwarden migrate-state";

/// What the command line says beyond the policy file.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// The SQLite ledger (default: the file's `state_path`).
    pub from: Option<PathBuf>,
    /// The PostgreSQL ledger (default: the file's `state_url`).
    pub to: Option<String>,
    /// The environment variable holding the password of `to`, when `to`
    /// is not the file's `state_url`.
    pub password_env: Option<String>,
}

pub async fn run(path: &Path, args: &Args) -> Outcome {
    let config = load_config(path)?;
    let shared = config.daemon.shared.as_ref();
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| config.daemon.state_path.clone());
    let Some(to) = args.to.clone().or_else(|| shared.map(|s| s.url.clone())) else {
        return Err(Exit::config(format!(
            "no PostgreSQL ledger to copy into: give --to postgres://USER@HOST/DB?sslmode=... \
             or set state_url in [daemon] of {}",
            config.path.display()
        )));
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(Exit::config(format!(
            "--to must be a PostgreSQL URL (postgres://USER@HOST/DB?sslmode=...), not {}",
            redacted(&to)
        )));
    }
    if redacted(&to) != to {
        return Err(Exit::config(
            "the URL carries a password, which would show in the process list and the shell's \
             history: remove it and give the name of an environment variable that holds it \
             with --password-env VAR (or use state_password_file in the config)",
        ));
    }
    let password = password(&to, shared, args.password_env.as_deref())?;
    if !from.exists() {
        return Err(Exit::config(format!(
            "there is no SQLite ledger at {} to copy (give its path with --from)",
            from.display()
        )));
    }

    let sqlite = SqliteLedger::open_for_migration(&from, COMMAND).map_err(|e| match e {
        StateError::Locked { .. } => Exit::config(format!(
            "stop the daemon first (`systemctl stop snapwarden`): the ledger must not change \
             while it is copied; {e}"
        )),
        other => Exit::failure(other.to_string()),
    })?;
    let location = redacted(&to);
    if let Some(moved) = sqlite.moved().map_err(|e| Exit::failure(e.to_string()))? {
        return Err(Exit::config(format!(
            "the ledger at {} was already moved to {} on {} by `snapwarden migrate-state`; \
             nothing was copied{}",
            from.display(),
            moved.location,
            moved.at.format("%Y-%m-%d %H:%M:%S UTC"),
            if moved.location == location {
                ""
            } else {
                " (to copy it again elsewhere, copy from that PostgreSQL ledger)"
            }
        )));
    }
    let dump = sqlite.export().map_err(|e| Exit::failure(e.to_string()))?;
    let opts = PgOptions {
        application_name: COMMAND.to_string(),
        ..PgOptions::default()
    };
    let pg = PgLedger::connect(&to, password.as_ref(), opts)
        .await
        .map_err(|e| Exit::failure(e.to_string()))?;
    let report = pg.import(&dump).await.map_err(|e| match e {
        StateError::ImportRefused(_) => Exit::config(e.to_string()),
        other => Exit::failure(other.to_string()),
    })?;
    print_report(&from, pg.location(), &report);
    sqlite.mark_moved(&location, Utc::now()).map_err(|e| {
        Exit::failure(format!(
            "the ledger was copied into {location}, but {} could not be marked as moved: {e}; \
             do not start a daemon on it (point state_url at {location} instead)",
            from.display()
        ))
    })?;
    say!(
        "{} is marked as moved: a daemon or command started on it now refuses. Set state_url = \
         \"{location}\" (and state_password_file) in [daemon], remove state_path, and start the \
         daemon.",
        from.display()
    );
    Ok(())
}

/// The password of `to`: the config's when `to` is its `state_url`, else
/// the value of `--password-env`, else none (trust, peer or certificate
/// authentication).
fn password(
    to: &str,
    shared: Option<&crate::config::SharedState>,
    env: Option<&str>,
) -> Result<Option<Secret>, Exit> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
            _ => Err(Exit::config(format!(
                "--password-env {var}: the environment variable {var} is not set (or empty)"
            ))),
        };
    }
    Ok(shared
        .filter(|s| s.url == to)
        .and_then(|s| s.password.clone()))
}

fn print_report(from: &Path, to: &str, report: &ImportReport) {
    say!("copied {} into {to}:", from.display());
    say!(
        "  {:<18} {:>10} {:>10}  by state",
        "table",
        "rows",
        "max id"
    );
    for (table, check) in &report.tables {
        let max = check
            .max_id
            .map_or_else(|| "-".to_string(), |m| m.to_string());
        let states: Vec<String> = check
            .by_state
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let line = format!(
            "  {table:<18} {:>10} {max:>10}  {}",
            check.rows,
            states.join(", ")
        );
        say!("{}", line.trim_end());
    }
    say!(
        "row counts, ids, states and value sums match the SQLite ledger; copied and checked in {:.2}s",
        report.elapsed.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SharedState;

    fn shared(url: &str, password: &str) -> SharedState {
        SharedState {
            url: url.into(),
            password: Some(Secret::new(password)),
            node_name: "n".into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            takeover_grace: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_password_comes_from_the_config_or_the_named_variable() {
        const URL: &str = "postgres://sw@127.0.0.1/ledger";
        let s = shared(URL, "from-config");
        let got = password(URL, Some(&s), None).expect("config's");
        assert_eq!(got.as_ref().map(Secret::expose), Some("from-config"));
        // Another target never gets the config's password.
        let got = password("postgres://sw@127.0.0.1/other", Some(&s), None).expect("none");
        assert!(got.is_none());
        // A variable that is not set is a usage error naming it.
        let var = "SNAPWARDEN_TEST_MIGRATE_PASSWORD_UNSET";
        let err = password(URL, Some(&s), Some(var)).expect_err("unset");
        assert_eq!(err.code, 2);
        assert!(err.message.unwrap_or_default().contains(var));
        let var = "PATH";
        let got = password(URL, None, Some(var)).expect("set");
        assert_eq!(
            got.as_ref().map(Secret::expose),
            std::env::var(var).ok().as_deref()
        );
    }
}
