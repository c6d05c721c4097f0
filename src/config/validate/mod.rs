//! Stage two: from the parsed TOML tree to the checked [`Config`]. Every
//! section is read and checked even after an earlier one failed, so that one
//! `snapwarden check` shows every problem in the file.
//!
//! Cloud-specific rules live in `kinds/`; this module only asks a [`Kind`]
//! for its capabilities.

mod alerts;
mod hooks;
mod ledger;
mod policy;
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use chrono_tz::Tz;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::kinds::{self, Kind};
use super::model::{Config, DaemonConfig, LogFormat, Policy, ProviderConfig};
use super::raw::{check_keys, section, RawAlerts, RawDaemon, RawPolicy};
use super::values;
use super::Cx;
use alerts::alerts;
pub use ledger::host_name;
use policy::{policy, Defaults, Entry};

/// The top-level keys.
const TOP_LEVEL: &[&str] = &["daemon", "alerts", "providers", "policy"];

/// Checks the whole document. `None` when any problem was reported.
pub(crate) fn document(root: &DeTable<'_>, path: PathBuf, cx: &mut Cx<'_>) -> Option<Config> {
    check_keys(root, TOP_LEVEL, "the top level", &mut cx.diag);

    let daemon = match root.get("daemon") {
        Some(v) => {
            section::<RawDaemon>(v, "[daemon]", &mut cx.diag).and_then(|raw| daemon(&raw, cx))
        }
        None => daemon(&RawDaemon::default(), cx),
    };

    let alerts = root.get("alerts").map(|v| {
        section::<RawAlerts>(v, "[alerts]", &mut cx.diag).and_then(|raw| alerts(&raw, v.span(), cx))
    });

    let providers = providers(root.get("providers"), cx);

    // Policies are checked even when [daemon] was invalid; UTC stands in
    // for a bad default zone so that its schedules are still checked.
    let defaults = Defaults {
        tz: daemon.as_ref().map_or(Tz::UTC, |d| d.timezone),
        max_deletes: daemon
            .as_ref()
            .map_or(DEFAULT_MAX_DELETES_PER_RUN, |d| d.max_deletes_per_run),
    };
    let policies = policies(root.get("policy"), &providers, &defaults, cx);

    for (name, p) in &providers.parsed {
        if !policies.used_providers.contains(name) {
            cx.diag.warn(
                p.name_span.clone(),
                format!("provider {name:?} is not used by any [[policy]]"),
            );
        }
    }

    if cx.diag.has_problems() {
        return None;
    }
    let providers: BTreeMap<String, ProviderConfig> = providers
        .parsed
        .into_iter()
        .filter_map(|(name, p)| p.config.map(|c| (name, c)))
        .collect();
    Some(Config {
        path,
        daemon: daemon?,
        alerts: match alerts {
            None => None,
            Some(a) => Some(a?),
        },
        providers,
        policies: policies.checked.into_iter().collect::<Option<Vec<_>>>()?,
        secret_env: std::mem::take(&mut cx.secret_env),
        warnings: Vec::new(),
    })
}

fn daemon(raw: &RawDaemon, cx: &mut Cx<'_>) -> Option<DaemonConfig> {
    let mut ok = true;

    let state_path = match &raw.state_path {
        Some(p) if p.get_ref().trim().is_empty() => {
            cx.diag.error(
                p.span(),
                "`state_path` must be a file path, got an empty string",
            );
            ok = false;
            PathBuf::new()
        }
        Some(p) => PathBuf::from(p.get_ref()),
        None => default_state_path(cx),
    };

    let log_format = match raw.log_format.as_ref() {
        None => LogFormat::Text,
        Some(v) => match v.get_ref().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                cx.diag.error(
                    v.span(),
                    format!("`log_format` must be \"text\" or \"json\", got {other:?}"),
                );
                ok = false;
                LogFormat::Text
            }
        },
    };

    let timezone = match &raw.timezone {
        None => Some(Tz::UTC),
        Some(v) => values::time_zone(v, "timezone", &mut cx.diag),
    };

    let metrics_listen = match &raw.metrics_listen {
        None => None,
        Some(v) => match v.get_ref().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                cx.diag.error(
                    v.span(),
                    format!(
                        "`metrics_listen` {:?} is not a socket address: expected IP:PORT such as \
                         \"127.0.0.1:9810\" or \"[::1]:9810\" (host names are not resolved)",
                        v.get_ref()
                    ),
                );
                ok = false;
                None
            }
        },
    };

    let max_deletes_per_run = max_deletes_or(
        raw.max_deletes_per_run.as_ref(),
        DEFAULT_MAX_DELETES_PER_RUN,
        cx,
    );
    let shared = ledger::shared_state(raw, cx);

    Some(DaemonConfig {
        state_path,
        shared: shared?,
        log_format,
        timezone: timezone?,
        metrics_listen,
        max_deletes_per_run: max_deletes_per_run?,
    })
    .filter(|_| ok)
}

/// `$STATE_DIRECTORY/state.db` under systemd's `StateDirectory=`, else
/// `./snapwarden.db`.
fn default_state_path(cx: &Cx<'_>) -> PathBuf {
    // systemd joins several state directories with ':'; the first is ours.
    match (cx.env)("STATE_DIRECTORY") {
        Some(dirs) => match dirs.split(':').next().filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("state.db"),
            None => PathBuf::from("./snapwarden.db"),
        },
        None => PathBuf::from("./snapwarden.db"),
    }
}

/// Default deletion budget per target per run.
pub(crate) const DEFAULT_MAX_DELETES_PER_RUN: u32 = 10;

/// `max_deletes_per_run` (policy or `[daemon]`): at least 1 (0 would never
/// prune), at most 10 000 (beyond that it is no longer a safety net).
fn max_deletes_or(value: Option<&Spanned<i64>>, default: u32, cx: &mut Cx<'_>) -> Option<u32> {
    let what = "snapshots deleted per target in one run before pruning stops and alerts";
    value.map_or(Some(default), |v| {
        values::count(v, "max_deletes_per_run", 10_000, what, &mut cx.diag)
    })
}

/// One `[providers.NAME]` after checking.
struct ProviderEntry {
    name_span: Range<usize>,
    kind: Option<Kind>,
    config: Option<ProviderConfig>,
}

struct Providers {
    parsed: BTreeMap<String, ProviderEntry>,
}

fn providers(value: Option<&Spanned<DeValue<'_>>>, cx: &mut Cx<'_>) -> Providers {
    let mut parsed = BTreeMap::new();
    let Some(value) = value else {
        return Providers { parsed };
    };
    let Some(table) = super::raw::expect_table(value, "`providers`", &mut cx.diag) else {
        return Providers { parsed };
    };
    for (name, section) in table.iter() {
        let p = kinds::provider(name, section, cx);
        parsed.insert(
            name.get_ref().to_string(),
            ProviderEntry {
                name_span: name.span(),
                kind: p.kind,
                config: p.config,
            },
        );
    }
    Providers { parsed }
}

struct Policies {
    /// One entry per `[[policy]]`; `None` where it had a problem.
    checked: Vec<Option<Policy>>,
    used_providers: BTreeSet<String>,
}

fn policies(
    value: Option<&Spanned<DeValue<'_>>>,
    providers: &Providers,
    defaults: &Defaults,
    cx: &mut Cx<'_>,
) -> Policies {
    let mut out = Policies {
        checked: Vec::new(),
        used_providers: BTreeSet::new(),
    };
    let Some(value) = value else {
        cx.diag.error(
            0..0,
            "no [[policy]] section: nothing would be backed up (add at least one [[policy]])",
        );
        return out;
    };
    let DeValue::Array(items) = value.get_ref() else {
        cx.diag.error(
            value.span(),
            format!(
                "`policy` must be an array of tables, written [[policy]] (double brackets), \
                 found a {}",
                value.get_ref().type_str()
            ),
        );
        return out;
    };
    if items.is_empty() {
        cx.diag.error(
            value.span(),
            "`policy` is empty: nothing would be backed up (add at least one [[policy]])",
        );
    }

    let mut names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let what = format!("[[policy]] #{}", i + 1);
        let Some(raw) = section::<RawPolicy>(item, &what, &mut cx.diag) else {
            out.checked.push(None);
            continue;
        };
        if let Some(p) = &raw.provider {
            out.used_providers.insert(p.get_ref().clone());
        }
        if let Some(n) = &raw.name {
            if let Some(first) = names.get(n.get_ref()) {
                let (line, _) = cx.diag.line_col(first.start);
                cx.diag.error(
                    n.span(),
                    format!(
                        "duplicate policy name {:?} (first defined on line {line}); policy \
                         names must be unique",
                        n.get_ref()
                    ),
                );
            } else {
                names.insert(n.get_ref().clone(), n.span());
            }
        }
        let entry = Entry {
            raw: &raw,
            span: item.span(),
            what: &what,
        };
        let checked = policy(&entry, providers, defaults, cx);
        out.checked.push(checked);
    }
    out
}
