//! Connecting to the PostgreSQL ledger: the URL (with `sslmode` and
//! `sslrootcert` read here, as libpq reads them), the password, TLS, and
//! the connection task.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pg_message;
use super::tls::{client_config, SslMode};
use crate::config::Secret;
use crate::state::{Result, StateError};

/// How connections to the ledger are made.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// How long one connection attempt may take, TLS and login included.
    pub connect_timeout: Duration,
    /// What the server shows for the connections (`pg_stat_activity`).
    pub application_name: String,
    /// How long the server lets a session sit inside a transaction before
    /// it ends the session (and its locks).
    pub idle_in_transaction: Duration,
    /// How soon a server that stopped answering (its host died, the
    /// network dropped its packets) breaks the connection, so a call
    /// fails and the next one reconnects instead of waiting for the
    /// system's TCP timeouts (minutes to hours). Sets TCP keepalives and
    /// `tcp_user_timeout` unless the URL sets them.
    pub dead_peer_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            connect_timeout: Duration::from_secs(5),
            application_name: "snapwarden".to_string(),
            idle_in_transaction: Duration::from_secs(5),
            dead_peer_timeout: Duration::from_secs(30),
        }
    }
}

/// `url` with any password taken out (in the user part and in a
/// `password=` parameter): what messages show. A password with characters
/// a URL must encode ('/', '?', '@') that are not encoded is still taken
/// out, with whatever cannot be told apart from it.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return without_password_params(url);
    };
    // The user part ends at the last '@' (a password may hold '/', '?' or
    // '@' unencoded; a host, port or path rarely holds '@').
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{host}")
        }
        None => rest.to_string(),
    };
    without_password_params(&format!("{scheme}://{rest}"))
}

/// `url` without its `password=` parameters.
fn without_password_params(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            percent_decode_str(key).decode_utf8_lossy() != "password"
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// Everything needed to open a connection again.
pub(super) struct Target {
    pub(super) location: String,
    config: Config,
    tls: MakeRustlsConnect,
    timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("location", &self.location)
            .finish()
    }
}

impl Target {
    /// Parse `url` (a `postgres://` or `postgresql://` URL); the password is
    /// `password` when given, else the URL's own.
    pub(super) fn new(url: &str, password: Option<&Secret>, opts: &PgOptions) -> Result<Target> {
        let location = redacted(url);
        let fail = |message: String| StateError::Connect {
            location: location.clone(),
            message,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(fail(
                "not a PostgreSQL URL: it must start with postgres:// or postgresql://".into(),
            ));
        }
        let (rest, mode, root_cert) = take_tls_params(url).map_err(fail)?;
        let mut config = Config::from_str(&rest).map_err(|e| fail(pg_message(&e)))?;
        if let Some(password) = password {
            config.password(password.expose());
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(opts.dead_peer_timeout);
        }
        // tokio-postgres's default idle time before the first probe is
        // two hours; idle 1/3, then three probes 1/6 apart: within the
        // timeout.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config
                .keepalives(true)
                .keepalives_idle(opts.dead_peer_timeout / 3)
                .keepalives_interval(opts.dead_peer_timeout / 6)
                .keepalives_retries(3);
        }
        config
            .application_name(&opts.application_name)
            .connect_timeout(opts.connect_timeout)
            .ssl_mode(mode.client_mode());
        // The server ends a session left inside a transaction (a node
        // paused or cut off mid-write), so the row locks it held never
        // stall the node that leads next; and it drops a vanished client
        // as fast.
        let session = format!(
            "-c idle_in_transaction_session_timeout={} -c tcp_keepalives_idle=5 \
             -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3",
            opts.idle_in_transaction.as_millis()
        );
        let options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {session}"),
            _ => session,
        };
        config.options(&options);
        let tls = client_config(mode, root_cert.as_deref()).map_err(fail)?;
        Ok(Target {
            location,
            config,
            tls: MakeRustlsConnect::new(tls),
            timeout: opts.connect_timeout,
        })
    }

    /// A new connection, its task spawned on the runtime.
    pub(super) async fn open(&self) -> Result<Client> {
        let fail = |message: String| StateError::Connect {
            location: self.location.clone(),
            message,
        };
        let attempt = self.config.connect(self.tls.clone());
        let (client, connection) = match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => {
                return Err(fail(format!(
                    "no connection within {} s",
                    self.timeout.as_secs_f64()
                )))
            }
            Ok(Err(e)) => return Err(fail(format!("cannot connect: {}", pg_message(&e)))),
            Ok(Ok(pair)) => pair,
        };
        let location = self.location.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(ledger = %location, error = %pg_message(&e), "connection to the ledger ended");
            }
        });
        Ok(client)
    }
}

/// `url` without its `sslmode` and `sslrootcert` parameters (which
/// tokio-postgres does not know or knows only in part), and their values:
/// `prefer` when no mode is given, as libpq.
fn take_tls_params(url: &str) -> std::result::Result<(String, SslMode, Option<PathBuf>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), SslMode::Prefer, None));
    };
    let mut mode = SslMode::Prefer;
    let mut root = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("the URL parameter {key:?} is not UTF-8"))
        };
        match decode(key)?.as_str() {
            "sslmode" => mode = SslMode::parse(&decode(value)?)?,
            "sslrootcert" => root = Some(PathBuf::from(decode(value)?)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_takes_out_every_password() {
        for (url, want) in [
            (
                "postgres://snap:s3cret@db.example:5432/ledger?sslmode=verify-full",
                "postgres://snap@db.example:5432/ledger?sslmode=verify-full",
            ),
            (
                "postgresql://snap@db/ledger?password=s3cret&sslmode=require",
                "postgresql://snap@db/ledger?sslmode=require",
            ),
            (
                "postgres://snap:p%40ss@db/ledger?pass%77ord=s3cret",
                "postgres://snap@db/ledger",
            ),
            ("postgres://db/ledger", "postgres://db/ledger"),
            ("postgres://u:p/ss@db/ledger", "postgres://u@db/ledger"),
            ("postgres://u:p?ss@db/ledger", "postgres://u@db/ledger"),
            ("postgres://u:p@ss@db/ledger", "postgres://u@db/ledger"),
        ] {
            assert_eq!(redacted(url), want, "{url}");
        }
    }

    #[test]
    fn tls_parameters_are_read_here_and_others_passed_on() {
        let (rest, mode, root) = take_tls_params(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=%2Ftmp%2Fca.pem&connect_timeout=3",
        )
        .expect("parse");
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(mode, SslMode::VerifyCa);
        assert_eq!(root, Some(PathBuf::from("/tmp/ca.pem")));
        let (_, mode, _) = take_tls_params("postgres://u@h/db").expect("parse");
        assert_eq!(mode, SslMode::Prefer, "libpq's default");
        let err = take_tls_params("postgres://u@h/db?sslmode=allow").expect_err("allow");
        assert!(err.contains("sslmode=allow"), "{err}");
    }

    #[test]
    fn a_dead_server_is_noticed_within_the_timeout_unless_the_url_says_otherwise() {
        let opts = PgOptions::default();
        let t = Target::new("postgres://u@h/db", None, &opts).expect("target");
        assert_eq!(
            t.config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(30))
        );
        assert_eq!(t.config.get_keepalives_idle(), Duration::from_secs(10));
        assert_eq!(t.config.get_application_name(), Some("snapwarden"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(5))
        );
        let t = Target::new(
            "postgres://u@h/db?keepalives_idle=60&tcp_user_timeout=90",
            None,
            &opts,
        )
        .expect("target");
        assert_eq!(
            t.config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(90))
        );
        assert_eq!(t.config.get_keepalives_idle(), Duration::from_secs(60));
    }

    #[test]
    fn a_bad_url_says_what_is_wrong_without_the_password() {
        let opts = PgOptions::default();
        for (url, says) in [
            ("mysql://u:hunter2@h/db", "postgres://"),
            ("postgres://u:hunter2@h/db?port=x", "invalid"),
            (
                "postgres://u:hunter2@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
                "/nonexistent/ca.pem",
            ),
        ] {
            let err = Target::new(url, None, &opts).expect_err(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }
}
