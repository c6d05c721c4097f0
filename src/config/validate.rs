//! Stage two: from the parsed TOML tree to the checked [`Config`]. Every
//! section is read and checked even after an earlier one failed, so that one
//! `snapwarden check` shows every problem in the file.
//!
//! Cloud-specific rules live in `kinds/`; this module only asks a [`Kind`]
//! for its capabilities.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostics::list;
use super::kinds::{self, Kind};
use super::model::{
    AlertEvent, AlertsConfig, Config, DaemonConfig, LogFormat, Policy, ProviderConfig, Secret,
};
use super::raw::{check_keys, section, RawAlerts, RawDaemon, RawPolicy};
use super::values::{self, DurationRule, DAY, HOUR, MINUTE};
use super::Cx;
use crate::domain::ResourceKind;
use crate::schedule::Schedule;

/// Longest policy name: it becomes part of every snapshot name.
const POLICY_NAME_MAX: usize = 40;

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
    let default_tz = daemon.as_ref().map_or(Tz::UTC, |d| d.timezone);
    let default_max_deletes = daemon
        .as_ref()
        .map_or(DEFAULT_MAX_DELETES_PER_RUN, |d| d.max_deletes_per_run);
    let policies = policies(
        root.get("policy"),
        &providers,
        default_tz,
        default_max_deletes,
        cx,
    );

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

    let max_deletes_per_run = match &raw.max_deletes_per_run {
        None => Some(DEFAULT_MAX_DELETES_PER_RUN),
        Some(v) => max_deletes(v, &mut cx.diag),
    };

    Some(DaemonConfig {
        state_path,
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

const ALERT_EVENTS: &[(&str, AlertEvent)] = &[
    ("failure", AlertEvent::Failure),
    ("recovery", AlertEvent::Recovery),
    ("stale", AlertEvent::Stale),
    ("selector_empty", AlertEvent::SelectorEmpty),
    ("deletes_held", AlertEvent::DeletesHeld),
    ("slot_skipped", AlertEvent::SlotSkipped),
];

/// Default deletion budget per target per run.
pub(crate) const DEFAULT_MAX_DELETES_PER_RUN: u32 = 10;

/// `max_deletes_per_run` (policy or `[daemon]`): at least 1 (0 would never
/// prune), at most 10 000 (beyond that it is no longer a safety net).
fn max_deletes(
    value: &Spanned<i64>,
    diag: &mut super::diagnostics::Diagnostics<'_>,
) -> Option<u32> {
    values::integer_in(
        value,
        "max_deletes_per_run",
        1,
        10_000,
        "snapshots deleted per target in one run before pruning stops and alerts",
        diag,
    )
    .map(|n| n as u32)
}

fn alerts(raw: &RawAlerts, span: Range<usize>, cx: &mut Cx<'_>) -> Option<AlertsConfig> {
    let mut ok = true;

    if raw.webhook_url.is_none() && raw.command.is_none() {
        cx.diag.error(
            span,
            "[alerts] has no destination: set `webhook_url` (JSON POST per event) and/or \
             `command` (event JSON on stdin), or remove the [alerts] section",
        );
        ok = false;
    }

    let webhook_url = match &raw.webhook_url {
        None => None,
        Some(v) => {
            let url = values::http_url(v, "webhook_url", &mut cx.diag);
            ok &= url.is_some();
            Some(v.get_ref().clone())
        }
    };

    let mut webhook_headers = BTreeMap::new();
    if let Some(headers) = &raw.webhook_headers {
        if raw.webhook_url.is_none() {
            cx.diag.error(
                headers.span(),
                "`webhook_headers` is set but `webhook_url` is not",
            );
            ok = false;
        }
        for (name, value) in headers.get_ref() {
            let n = name.get_ref();
            let token = !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
            if !token {
                cx.diag.error(
                    name.span(),
                    format!("`webhook_headers`: {n:?} is not a valid HTTP header name"),
                );
                ok = false;
            }
            let v = &value.get_ref().0;
            if v.is_empty() || v.contains(['\r', '\n', '\0']) {
                // The value is treated as a secret: described, never shown.
                cx.diag.error(
                    value.span(),
                    format!(
                        "`webhook_headers`: the value of {n:?} must be non-empty and on one line"
                    ),
                );
                ok = false;
            }
            webhook_headers.insert(n.clone(), Secret::new(v.clone()));
        }
    }

    let command = match &raw.command {
        None => None,
        Some(cmd) => {
            let argv: Vec<String> = cmd.get_ref().iter().map(|a| a.get_ref().clone()).collect();
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                cx.diag.error(
                    cmd.span(),
                    "`command` must be a non-empty array whose first element is the program, \
                     e.g. [\"/usr/local/bin/page-oncall\"]",
                );
                ok = false;
            }
            Some(argv)
        }
    };

    let on = match &raw.on {
        None => vec![
            AlertEvent::Failure,
            AlertEvent::Recovery,
            AlertEvent::Stale,
            AlertEvent::DeletesHeld,
            AlertEvent::SlotSkipped,
        ],
        Some(list_value) => {
            let names: Vec<&str> = ALERT_EVENTS.iter().map(|(n, _)| *n).collect();
            if list_value.get_ref().is_empty() {
                cx.diag.error(
                    list_value.span(),
                    format!(
                        "`on` is empty, so no alert would ever be sent: list events from {} \
                         or remove the key for the default",
                        list(&names)
                    ),
                );
                ok = false;
            }
            let mut events = Vec::new();
            for item in list_value.get_ref() {
                match ALERT_EVENTS.iter().find(|(n, _)| n == item.get_ref()) {
                    Some((_, e)) if events.contains(e) => {
                        cx.diag.error(
                            item.span(),
                            format!("`on`: event {:?} is listed twice", item.get_ref()),
                        );
                        ok = false;
                    }
                    Some((_, e)) => events.push(*e),
                    None => {
                        cx.diag.error(
                            item.span(),
                            format!(
                                "`on`: unknown alert event {:?} (expected any of: {})",
                                item.get_ref(),
                                list(&names)
                            ),
                        );
                        ok = false;
                    }
                }
            }
            // Every due slot ends as a snapshot or an alert: without these
            // two, a missed backup would be logged and counted, not heard.
            for (name, event) in [
                ("failure", AlertEvent::Failure),
                ("slot_skipped", AlertEvent::SlotSkipped),
            ] {
                if !list_value.get_ref().is_empty() && !events.contains(&event) {
                    cx.diag.warn(
                        list_value.span(),
                        format!(
                            "`on` leaves out {name:?}: a slot that {} would not be alerted",
                            match event {
                                AlertEvent::Failure => "fails",
                                _ => "is skipped (no snapshot taken)",
                            }
                        ),
                    );
                }
            }
            events
        }
    };

    let repeat_after = values::duration_or(
        raw.repeat_after.as_ref(),
        24 * HOUR,
        &DurationRule {
            key: "repeat_after",
            allow_zero: false,
            min: Some(MINUTE),
            max: 30 * DAY,
        },
        &mut cx.diag,
    );

    Some(AlertsConfig {
        webhook_url,
        webhook_headers,
        command,
        on,
        repeat_after: repeat_after?,
    })
    .filter(|_| ok)
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
    default_tz: Tz,
    default_max_deletes: u32,
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
        let checked = policy(
            &raw,
            item.span(),
            &what,
            providers,
            default_tz,
            default_max_deletes,
            cx,
        );
        out.checked.push(checked);
    }
    out
}

fn policy(
    raw: &RawPolicy,
    span: Range<usize>,
    what: &str,
    providers: &Providers,
    default_tz: Tz,
    default_max_deletes: u32,
    cx: &mut Cx<'_>,
) -> Option<Policy> {
    let mut ok = true;
    let missing = |key: &str, expected: &str, cx: &mut Cx<'_>| {
        cx.diag.error(
            span.clone(),
            format!("missing key `{key}` in {what} ({expected})"),
        );
    };

    // name
    let name = match &raw.name {
        None => {
            missing("name", "a unique name, used in snapshot names", cx);
            None
        }
        Some(n) => {
            values::name(n, "name", POLICY_NAME_MAX, &mut cx.diag).then(|| n.get_ref().clone())
        }
    };

    // provider, and through it the kind
    let mut kind: Option<Kind> = None;
    let defined: Vec<&str> = providers.parsed.keys().map(String::as_str).collect();
    let provider = match &raw.provider {
        None => {
            missing("provider", "the name of a [providers.NAME] section", cx);
            None
        }
        Some(p) => match providers.parsed.get(p.get_ref()) {
            Some(entry) => {
                kind = entry.kind;
                Some(p.get_ref().clone())
            }
            None => {
                let hint = match super::diagnostics::suggest(p.get_ref(), defined.iter().copied()) {
                    Some(s) => format!("; did you mean {s:?}?"),
                    None => String::new(),
                };
                let defined_list = if defined.is_empty() {
                    "none: add a [providers.NAME] section".to_string()
                } else {
                    list(&defined)
                };
                cx.diag.error(
                    p.span(),
                    format!(
                        "unknown provider {:?} (defined: {defined_list}){hint}",
                        p.get_ref()
                    ),
                );
                None
            }
        },
    };
    let capabilities = kind.map(Kind::capabilities);

    // resource
    let resource =
        match &raw.resource {
            None => {
                missing("resource", "what to snapshot, e.g. \"volume\"", cx);
                None
            }
            Some(r) => {
                match (&capabilities, kind) {
                    (Some(caps), Some(kind))
                        if !ResourceKind::from_name(r.get_ref()).is_some_and(|k| caps.takes(k)) =>
                    {
                        cx.diag.error(
                            r.span(),
                            format!(
                        "resource {:?} is not supported by provider {:?} (kind {}); expected \
                         one of: {}",
                        r.get_ref(),
                        provider.as_deref().unwrap_or_default(),
                        kind.name(),
                        list(&caps.resources.iter().map(|k| k.as_str()).collect::<Vec<_>>())
                    ),
                        );
                        None
                    }
                    _ => ResourceKind::from_name(r.get_ref()),
                }
            }
        };

    // targets and/or select
    let targets = match (&raw.targets, &raw.select) {
        (None, None) => {
            missing(
                "targets",
                "an array of volume or instance ids, and/or `select` to pick them by name or tags",
                cx,
            );
            None
        }
        (None, Some(_)) => Some(Vec::new()),
        (Some(t), _) => targets(t, kind, resource, cx),
    };
    let select = match &raw.select {
        None => None,
        Some(s) => {
            let sel = select(s, kind, resource, cx);
            ok &= sel.is_some();
            sel
        }
    };

    // timezone and schedule
    let tz = match &raw.timezone {
        None => Some(default_tz),
        Some(v) => values::time_zone(v, "timezone", &mut cx.diag),
    };
    let schedule = match (&raw.schedule, tz) {
        (None, _) => {
            missing("schedule", "a cron expression such as \"0 30 2 * * *\"", cx);
            None
        }
        (Some(s), Some(tz)) => match Schedule::parse(s.get_ref(), tz) {
            Ok(sched) => Some(sched),
            Err(e) => {
                cx.diag.error(s.span(), {
                    let reason = e.reason.trim_end_matches('.');
                    // Add the expected shape unless the reason says it.
                    let hint = if reason.contains("expected") || reason.contains("never") {
                        ""
                    } else {
                        " (expected \"second minute hour day-of-month month day-of-week\", \
                             the second optional, e.g. \"0 30 2 * * *\")"
                    };
                    format!(
                        "`schedule`: invalid cron expression {:?}: {reason}{hint}",
                        s.get_ref()
                    )
                });
                None
            }
        },
        // The zone was wrong; check the expression anyway.
        (Some(s), None) => {
            if let Err(e) = Schedule::parse(s.get_ref(), Tz::UTC) {
                cx.diag.error(
                    s.span(),
                    format!(
                        "`schedule`: invalid cron expression {:?}: {}",
                        s.get_ref(),
                        e.reason.trim_end_matches('.')
                    ),
                );
            }
            None
        }
    };
    // `Schedule::parse` refuses patterns that never fire, so a parsed
    // schedule always has an interval.
    let interval = schedule.as_ref().map(Schedule::nominal_interval);

    // retain
    // retention: `retain` and/or the keep_* rules; at least one.
    let count = |v: &Option<Spanned<i64>>,
                 key: &'static str,
                 what: &'static str,
                 cx: &mut Cx<'_>| match v {
        None => Some(None),
        Some(r) => {
            values::integer_in(r, key, 1, 100_000, what, &mut cx.diag).map(|n| Some(n as u32))
        }
    };
    let retain = count(&raw.retain, "retain", "snapshots kept per target", cx);
    let keep_hourly = count(&raw.keep_hourly, "keep_hourly", "hours kept", cx);
    let keep_daily = count(&raw.keep_daily, "keep_daily", "days kept", cx);
    let keep_weekly = count(&raw.keep_weekly, "keep_weekly", "weeks kept", cx);
    let keep_monthly = count(&raw.keep_monthly, "keep_monthly", "months kept", cx);
    let keep_yearly = count(&raw.keep_yearly, "keep_yearly", "years kept", cx);
    let keep_within = match &raw.keep_within {
        None => Some(None),
        Some(v) => values::duration(
            v,
            &DurationRule {
                key: "keep_within",
                allow_zero: false,
                min: None,
                max: 100 * 366 * DAY,
            },
            &mut cx.diag,
        )
        .map(Some),
    };
    let min_keep = match &raw.min_keep {
        None => Some(1),
        Some(v) => values::integer_in(
            v,
            "min_keep",
            1,
            100_000,
            "snapshots always kept per target",
            &mut cx.diag,
        )
        .map(|n| n as u32),
    };
    let no_rule = raw.retain.is_none()
        && raw.keep_hourly.is_none()
        && raw.keep_daily.is_none()
        && raw.keep_weekly.is_none()
        && raw.keep_monthly.is_none()
        && raw.keep_yearly.is_none()
        && raw.keep_within.is_none();
    if no_rule {
        missing(
            "retain",
            "a retention rule: `retain` (how many snapshots to keep per target, at least 1) and/or \
             keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within",
            cx,
        );
        ok = false;
    }

    // polling and timing
    let poll_interval = values::duration_or(
        raw.poll_interval.as_ref(),
        Duration::from_secs(10),
        &DurationRule {
            key: "poll_interval",
            allow_zero: false,
            min: None,
            max: DAY,
        },
        &mut cx.diag,
    );
    let poll_max_interval = values::duration_or(
        raw.poll_max_interval.as_ref(),
        // The default never undercuts an explicit, longer poll_interval.
        poll_interval.map_or(2 * MINUTE, |p| p.max(2 * MINUTE)),
        &DurationRule {
            key: "poll_max_interval",
            allow_zero: false,
            min: None,
            max: DAY,
        },
        &mut cx.diag,
    );
    if let (Some(p), Some(m), Some(v)) = (poll_interval, poll_max_interval, &raw.poll_max_interval)
    {
        if m < p {
            cx.diag.error(
                v.span(),
                format!(
                    "`poll_max_interval` ({}) must not be shorter than `poll_interval` ({})",
                    values::fmt_duration(m),
                    values::fmt_duration(p)
                ),
            );
            ok = false;
        }
    }
    let timeout = values::duration_or(
        raw.timeout.as_ref(),
        2 * HOUR,
        &DurationRule {
            key: "timeout",
            allow_zero: false,
            min: None,
            max: 7 * DAY,
        },
        &mut cx.diag,
    );
    if let (Some(p), Some(t)) = (poll_interval, timeout) {
        if t <= p {
            let at = raw
                .timeout
                .as_ref()
                .or(raw.poll_interval.as_ref())
                .map_or(span.clone(), |v| v.span());
            cx.diag.error(
                at,
                format!(
                    "`timeout` ({}) must be longer than `poll_interval` ({}): the snapshot \
                     would never be polled",
                    values::fmt_duration(t),
                    values::fmt_duration(p)
                ),
            );
            ok = false;
        }
    }
    if let (Some(t), Some(i)) = (timeout, interval) {
        if t > i {
            let (at, which) = match &raw.timeout {
                Some(v) => (v.span(), "`timeout`"),
                None => (span.clone(), "the default `timeout`"),
            };
            cx.diag.warn(
                at,
                format!(
                    "{which} ({}) is longer than the schedule's interval ({}): a slow \
                     snapshot makes the next slot be skipped",
                    values::fmt_duration(t),
                    values::fmt_duration(i)
                ),
            );
        }
    }

    let jitter = values::duration_or(
        raw.jitter.as_ref(),
        Duration::ZERO,
        &DurationRule {
            key: "jitter",
            allow_zero: true,
            min: None,
            max: DAY,
        },
        &mut cx.diag,
    );
    if let (Some(j), Some(v)) = (jitter, &raw.jitter) {
        // The run's timeout counts from the slot, jitter included: a delay
        // as long as the timeout would leave no time to take the snapshot.
        let limits = [
            (interval, "the schedule's interval", ""),
            (
                timeout,
                "`timeout`",
                ": the timeout counts from the slot, so a run that waited that long could not start its snapshot",
            ),
        ];
        let too_long = limits
            .into_iter()
            .find_map(|(limit, what, why)| limit.filter(|l| j >= *l).map(|l| (l, what, why)));
        if let (false, Some((limit, what_limit, why))) = (j.is_zero(), too_long) {
            cx.diag.error(
                v.span(),
                format!(
                    "`jitter` ({}) must be shorter than {what_limit} ({}){why}",
                    values::fmt_duration(j),
                    values::fmt_duration(limit)
                ),
            );
            ok = false;
        }
    }

    let full_every = match &raw.full_every {
        None => None,
        Some(v) => {
            let n = full_every(v, kind.map(|k| (k.name(), k.capabilities())), &mut cx.diag);
            ok &= n.is_some();
            n
        }
    };

    let volume_ids = match &raw.volume_ids {
        None => None,
        Some(v) => {
            let ids = volume_ids(v, kind.map(|k| (k.name(), k.capabilities())), &mut cx.diag);
            ok &= ids.is_some();
            ids
        }
    };

    let catch_up = raw.catch_up.as_ref().is_some_and(|c| *c.get_ref());

    // Freshness: default twice the schedule's interval, at least an hour.
    let default_stale = interval.map(|i| (i * 2).max(HOUR)).unwrap_or(HOUR);
    let stale_after = values::duration_or(
        raw.stale_after.as_ref(),
        default_stale,
        &DurationRule {
            key: "stale_after",
            allow_zero: false,
            min: Some(Duration::from_secs(1)),
            max: 366 * DAY,
        },
        &mut cx.diag,
    );
    let critical_after_failures = match &raw.critical_after_failures {
        None => Some(3),
        Some(v) => values::integer_in(
            v,
            "critical_after_failures",
            1,
            1000,
            "consecutive failed runs before `monitor` says CRITICAL",
            &mut cx.diag,
        )
        .map(|n| n as u32),
    };

    let max_deletes_per_run = match &raw.max_deletes_per_run {
        None => Some(default_max_deletes),
        Some(v) => max_deletes(v, &mut cx.diag),
    };

    if !ok {
        return None;
    }
    Some(Policy {
        name: name?,
        provider: provider?,
        resource: resource?,
        targets: targets?,
        schedule: schedule?,
        retain: retain?,
        keep_hourly: keep_hourly?,
        keep_daily: keep_daily?,
        keep_weekly: keep_weekly?,
        keep_monthly: keep_monthly?,
        keep_yearly: keep_yearly?,
        keep_within: keep_within?,
        min_keep: min_keep?,
        poll_interval: poll_interval?,
        poll_max_interval: poll_max_interval?,
        timeout: timeout?,
        catch_up,
        jitter: jitter?,
        full_every,
        stale_after: stale_after?,
        critical_after_failures: critical_after_failures?,
        volume_ids,
        select,
        max_deletes_per_run: max_deletes_per_run?,
    })
}

/// `select`: a name glob and/or tags, on a resource the kind can list (and
/// tags only where it has them).
fn select(
    value: &Spanned<super::raw::RawSelect>,
    kind: Option<Kind>,
    resource: Option<ResourceKind>,
    cx: &mut Cx<'_>,
) -> Option<super::model::Selector> {
    let raw = value.get_ref();
    let mut ok = true;
    let tags_given = raw.tags.as_ref().is_some_and(|t| !t.get_ref().is_empty());
    if raw.name.is_none() && !tags_given {
        cx.diag.error(
            value.span(),
            "`select` is empty: give `name` (a glob such as \"web-*\") and/or `tags` \
             (e.g. { env = \"prod\" }), or remove it",
        );
        return None;
    }
    let selectable = match (kind, resource) {
        (Some(kind), Some(resource)) => {
            let caps = kind.capabilities();
            match caps.selectable(resource) {
                Some(s) => Some(s),
                None => {
                    let can: Vec<&str> = caps.select.iter().map(|s| s.resource.as_str()).collect();
                    let hint = if can.is_empty() {
                        "it cannot list resources".to_string()
                    } else {
                        format!("it can list: {}", list(&can))
                    };
                    cx.diag.error(
                        value.span(),
                        format!(
                            "`select` is not supported for resource {resource:?} by provider \
                             kind {} ({hint}); name the targets in `targets`",
                            kind.name()
                        ),
                    );
                    ok = false;
                    None
                }
            }
        }
        _ => None,
    };
    let name = match &raw.name {
        None => None,
        Some(n) if n.get_ref().trim().is_empty() => {
            cx.diag.error(
                n.span(),
                "`select.name` is empty: give a glob such as \"web-*\" or remove the key",
            );
            ok = false;
            None
        }
        Some(n) => match glob::Pattern::new(n.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                cx.diag.error(
                    n.span(),
                    format!(
                        "`select.name`: {:?} is not a valid glob: {} (at character {}; \
                         `*` any text, `?` one character, `[abc]` one of a set)",
                        n.get_ref(),
                        e.msg,
                        e.pos + 1
                    ),
                );
                ok = false;
                None
            }
        },
    };
    let mut tags = BTreeMap::new();
    if let Some(t) = &raw.tags {
        if let (Some(s), Some(kind)) = (selectable, kind) {
            if !s.tags {
                cx.diag.error(
                    t.span(),
                    format!(
                        "`select.tags`: provider kind {} has no tags on {}s; select by `name` \
                         instead",
                        kind.name(),
                        s.resource
                    ),
                );
                ok = false;
            }
        }
        if t.get_ref().is_empty() && raw.name.is_some() {
            cx.diag.error(
                t.span(),
                "`select.tags` is empty: list key = \"value\" pairs or remove the key",
            );
            ok = false;
        }
        for (k, v) in t.get_ref() {
            if k.get_ref().trim().is_empty() {
                cx.diag
                    .error(k.span(), "`select.tags`: a tag key must not be empty");
                ok = false;
            }
            tags.insert(k.get_ref().clone(), v.get_ref().clone());
        }
    }
    ok.then_some(super::model::Selector { name, tags })
}

/// `volume_ids`: only where the kind can snapshot a subset of an
/// instance's volumes; a non-empty list of distinct ids without spaces.
fn volume_ids(
    value: &Spanned<Vec<Spanned<String>>>,
    kind: Option<(&str, crate::domain::Capabilities)>,
    diag: &mut super::diagnostics::Diagnostics<'_>,
) -> Option<Vec<String>> {
    if let Some((name, caps)) = kind {
        if !caps.volume_subset {
            diag.error(
                value.span(),
                format!(
                    "`volume_ids` is not supported by provider kind {name}: it cannot \
                     snapshot a subset of an instance's volumes (remove the key)"
                ),
            );
            return None;
        }
    }
    if value.get_ref().is_empty() {
        diag.error(
            value.span(),
            "`volume_ids` is empty: list volume ids, or remove the key to include every \
             volume of the instance",
        );
        return None;
    }
    let mut ok = true;
    let mut seen = BTreeSet::new();
    for id in value.get_ref() {
        let v = id.get_ref();
        if v.trim().is_empty() || v.contains(|c: char| c.is_whitespace() || c.is_control()) {
            diag.error(
                id.span(),
                format!("`volume_ids`: {v:?} is not a volume id (non-empty, no spaces)"),
            );
            ok = false;
        } else if !seen.insert(v.as_str()) {
            diag.error(id.span(), format!("`volume_ids`: {v:?} is listed twice"));
            ok = false;
        }
    }
    ok.then(|| {
        value
            .get_ref()
            .iter()
            .map(|i| i.get_ref().clone())
            .collect()
    })
}

/// `full_every`: only where the kind (name, capabilities) has incremental
/// snapshots; unknown kinds (already reported) are given the benefit.
fn full_every(
    value: &Spanned<i64>,
    kind: Option<(&str, crate::domain::Capabilities)>,
    diag: &mut super::diagnostics::Diagnostics<'_>,
) -> Option<u32> {
    if let Some((name, caps)) = kind {
        if !caps.incremental {
            diag.error(
                value.span(),
                format!(
                    "`full_every` is not supported by provider kind {name}: it has no \
                     incremental snapshots (remove the key; every snapshot is full)"
                ),
            );
            return None;
        }
    }
    values::integer_in(
        value,
        "full_every",
        1,
        10_000,
        "every Nth snapshot is full",
        diag,
    )
    .map(|n| n as u32)
}

fn targets(
    value: &Spanned<Vec<Spanned<String>>>,
    kind: Option<Kind>,
    resource: Option<ResourceKind>,
    cx: &mut Cx<'_>,
) -> Option<Vec<String>> {
    let items = value.get_ref();
    if items.is_empty() {
        cx.diag.error(
            value.span(),
            "`targets` is empty: list at least one volume or instance id",
        );
        return None;
    }
    let mut ok = true;
    let mut seen: BTreeMap<&str, Range<usize>> = BTreeMap::new();
    for t in items {
        let id = t.get_ref().as_str();
        if id.trim().is_empty() {
            cx.diag
                .error(t.span(), "`targets`: a target id must not be empty");
            ok = false;
            continue;
        }
        if id.contains(|c: char| c.is_whitespace() || c.is_control()) {
            cx.diag.error(
                t.span(),
                format!("`targets`: target id {id:?} must not contain spaces"),
            );
            ok = false;
            continue;
        }
        if let Some(first) = seen.get(id) {
            let (line, col) = cx.diag.line_col(first.start);
            cx.diag.error(
                t.span(),
                format!("`targets`: duplicate target {id:?} (already listed at {line}:{col})"),
            );
            ok = false;
            continue;
        }
        seen.insert(id, t.span());
        if let (Some(kind), Some(resource)) = (kind, resource) {
            if let Err(msg) = kind.check_target(resource, id) {
                cx.diag.error(t.span(), format!("`targets`: {msg}"));
                ok = false;
            }
        }
    }
    ok.then(|| items.iter().map(|t| t.get_ref().clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Capabilities;
    use std::path::Path;

    #[test]
    fn full_every_needs_incremental_snapshots() {
        let caps = |incremental| Capabilities {
            resources: &[crate::domain::ResourceKind::Disk],
            max_status_batch: 1,
            incremental,
            restore: crate::domain::RestoreMode::NewResource,
            volume_subset: false,
            create_reconciles: false,
            select: &[],
        };
        let v = Spanned::new(0..1, 3);
        let mut d = super::super::diagnostics::Diagnostics::new(Path::new("f"), "x");
        assert_eq!(
            full_every(&v, Some(("chainy", caps(true))), &mut d),
            Some(3)
        );
        assert_eq!(full_every(&v, Some(("flat", caps(false))), &mut d), None);
        assert_eq!(full_every(&v, None, &mut d), Some(3));
        let (p, _) = d.into_parts();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("not supported by provider kind flat"),
            "{p:?}"
        );
    }
}
