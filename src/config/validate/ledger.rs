//! `[daemon]`'s ledger keys: the SQLite file of one bastion (`state_path`)
//! or a PostgreSQL ledger shared by a high-availability pair (`state_url`,
//! its password, this node's name and the lease timings). Checked without
//! connecting: `check` must work on a node that cannot reach the database.

use std::time::Duration;

use reqwest::Url;
use toml::Spanned;

use super::super::model::SharedState;
use super::super::raw::RawDaemon;
use super::super::secrets::{self, SecretKeys};
use super::super::values::{self, DurationRule, MINUTE};
use super::Cx;

pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(15);
pub(crate) const DEFAULT_RENEW: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_TAKEOVER_GRACE: Duration = Duration::from_secs(60);

/// The `sslmode` values libpq knows, and so do we.
const SSL_MODES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

/// The shared ledger, `Some(None)` for SQLite, `None` after a problem
/// (reported).
pub(super) fn shared_state(raw: &RawDaemon, cx: &mut Cx<'_>) -> Option<Option<SharedState>> {
    let password_keys = SecretKeys {
        name: "state_password",
        literal: raw.state_password.as_ref(),
        file: raw.state_password_file.as_ref(),
        env: raw.state_password_env.as_ref(),
    };
    let Some(url) = &raw.state_url else {
        return only_with_url(raw, cx).then_some(None);
    };
    if let Some(path) = &raw.state_path {
        cx.diag.error(
            path.span(),
            "`state_path` and `state_url` exclude each other: the ledger is either a SQLite \
             file on this bastion or a PostgreSQL database shared by several",
        );
        return None;
    }
    let url_span = url;
    let url = postgres_url(url, cx);
    let password = if password_keys.given() {
        Some(secrets::resolve(password_keys, 0..0, cx)?)
    } else {
        None
    };
    let node_name = match &raw.node_name {
        Some(n) => node_name(n, cx)?,
        None => match host_name() {
            Some(name) => name,
            None => {
                cx.diag.error(
                    url_span.span(),
                    "cannot tell this host's name (/proc/sys/kernel/hostname, /etc/hostname): \
                     set `node_name` so that `status` can tell the nodes apart",
                );
                return None;
            }
        },
    };
    let duration = |v: Option<&Spanned<String>>, d, rule: &DurationRule, cx: &mut Cx<'_>| {
        values::duration_or(v, d, rule, &mut cx.diag)
    };
    let lease_duration = duration(
        raw.lease_duration.as_ref(),
        DEFAULT_LEASE,
        &DurationRule::up_to("lease_duration", 10 * MINUTE).at_least(Duration::from_secs(1)),
        cx,
    );
    let renew_every = duration(
        raw.lease_renew_every.as_ref(),
        DEFAULT_RENEW,
        &DurationRule::up_to("lease_renew_every", 5 * MINUTE).at_least(Duration::from_millis(100)),
        cx,
    );
    let takeover_grace = duration(
        raw.takeover_grace.as_ref(),
        DEFAULT_TAKEOVER_GRACE,
        &DurationRule {
            allow_zero: true,
            ..DurationRule::up_to("takeover_grace", 60 * MINUTE)
        },
        cx,
    );
    let (lease_duration, renew_every) = (lease_duration?, renew_every?);
    // Three renewals must fit in a lease: a leader that misses one still
    // holds it, and one that cannot renew stops well before it expires.
    if renew_every.saturating_mul(3) > lease_duration {
        let span = raw
            .lease_renew_every
            .as_ref()
            .or(raw.lease_duration.as_ref())
            .map(Spanned::span)
            .unwrap_or(0..0);
        cx.diag.error(
            span,
            format!(
                "`lease_renew_every` ({}) must be at most a third of `lease_duration` ({}): a \
                 leader renews several times within its lease",
                values::fmt_duration(renew_every),
                values::fmt_duration(lease_duration)
            ),
        );
        return None;
    }
    Some(Some(SharedState {
        url: url?,
        password,
        node_name,
        lease_duration,
        renew_every,
        takeover_grace: takeover_grace?,
    }))
}

/// Without `state_url`, its companions mean nothing: say so instead of
/// silently running on SQLite.
fn only_with_url(raw: &RawDaemon, cx: &mut Cx<'_>) -> bool {
    let spans = [
        (
            "state_password",
            raw.state_password.as_ref().map(Spanned::span),
        ),
        (
            "state_password_file",
            raw.state_password_file.as_ref().map(Spanned::span),
        ),
        (
            "state_password_env",
            raw.state_password_env.as_ref().map(Spanned::span),
        ),
        ("node_name", raw.node_name.as_ref().map(Spanned::span)),
        (
            "lease_duration",
            raw.lease_duration.as_ref().map(Spanned::span),
        ),
        (
            "lease_renew_every",
            raw.lease_renew_every.as_ref().map(Spanned::span),
        ),
        (
            "takeover_grace",
            raw.takeover_grace.as_ref().map(Spanned::span),
        ),
    ];
    let mut ok = true;
    for (key, span) in spans {
        if let Some(span) = span {
            cx.diag.error(
                span,
                format!(
                    "`{key}` is for a PostgreSQL ledger shared by several nodes, but there is \
                     no `state_url`: set `state_url = \"postgres://USER@HOST/DB\"`, or remove \
                     `{key}`"
                ),
            );
            ok = false;
        }
    }
    ok
}

/// A `postgres://` URL with a host and a database, no password in it, and
/// an `sslmode` libpq knows.
fn postgres_url(value: &Spanned<String>, cx: &mut Cx<'_>) -> Option<String> {
    let text = value.get_ref().trim();
    let mut problem = |why: String| {
        cx.diag.error(
            value.span(),
            format!("`state_url`: {why}; expected postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full"),
        );
        None
    };
    let Ok(url) = Url::parse(text) else {
        return problem("not a URL".into());
    };
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return problem(format!(
            "the scheme must be postgres://, got {}://",
            url.scheme()
        ));
    }
    if url.password().is_some() {
        // The value is never repeated: it holds a password.
        return problem(
            "it holds a password; give it with `state_password_file` or `state_password_env` \
             instead (a URL is logged and shown, a password must not be)"
                .into(),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return problem("no host".into());
    }
    if url.path().trim_start_matches('/').is_empty() {
        return problem("no database name".into());
    }
    for (key, v) in url.query_pairs() {
        if key == "sslmode" && !SSL_MODES.contains(&v.as_ref()) {
            return problem(format!(
                "sslmode {v:?} is not one of {}",
                SSL_MODES.join(", ")
            ));
        }
        if key == "password" {
            return problem("it holds a password; give it with `state_password_file` or `state_password_env` instead".into());
        }
    }
    Some(text.to_string())
}

/// A node name as written: printable, no spaces, at most 64 characters
/// (a host name fits).
fn node_name(value: &Spanned<String>, cx: &mut Cx<'_>) -> Option<String> {
    let v = value.get_ref();
    if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        cx.diag.error(
            value.span(),
            format!(
                "`node_name` {v:?} must be 1 to 64 characters without spaces, such as the host                  name \"bastion-a\""
            ),
        );
        return None;
    }
    Some(v.clone())
}

/// This host's name, for the lease, `status` and the audit trail (the systemd unit's
/// `ProcSubset=pid` hides /proc/sys, so /etc/hostname is asked too).
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}
