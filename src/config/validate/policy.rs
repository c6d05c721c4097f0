//! One `[[policy]]`: a check per group of keys that are checked together
//! (provider and resource, targets, schedule, retention, timing, health).
//! Every group is checked even after an earlier one failed.

use std::ops::Range;
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;

use super::targets::policy_targets;
use super::{max_deletes_or, Providers};
use crate::config::diagnostics::{did_you_mean, list, Diagnostics};
use crate::config::kinds::Kind;
use crate::config::model::{Health, Policy, Timing};
use crate::config::raw::RawPolicy;
use crate::config::values::{self, DurationRule, DAY, HOUR, MINUTE};
use crate::config::Cx;
use crate::domain::{Capabilities, ResourceKind, Rules};
use crate::schedule::blackout::Blackout;
use crate::schedule::Schedule;

/// Longest policy name: it becomes part of every snapshot name.
const POLICY_NAME_MAX: usize = 40;

/// One `[[policy]]` being checked.
pub(super) struct Entry<'a> {
    pub raw: &'a RawPolicy,
    /// The whole table: where missing keys are reported.
    pub span: Range<usize>,
    /// `[[policy]] #N`, for messages.
    pub what: &'a str,
}

impl Entry<'_> {
    /// Reports a required key that is absent.
    pub(super) fn missing(&self, key: &str, expected: &str, cx: &mut Cx<'_>) {
        cx.diag.missing(self.span.clone(), self.what, key, expected);
    }
}

/// What a policy takes from `[daemon]` when it does not say.
pub(super) struct Defaults {
    pub tz: Tz,
    pub max_deletes: u32,
}

pub(super) fn policy(
    entry: &Entry<'_>,
    providers: &Providers,
    defaults: &Defaults,
    cx: &mut Cx<'_>,
) -> Option<Policy> {
    let raw = entry.raw;
    let name = match &raw.name {
        None => {
            entry.missing("name", "a unique name, used in snapshot names", cx);
            None
        }
        Some(n) => {
            values::name(n, "name", POLICY_NAME_MAX, &mut cx.diag).then(|| n.get_ref().clone())
        }
    };
    let (provider, kind) = policy_provider(entry, providers, cx);
    let resource = policy_resource(entry, provider.as_deref(), kind, cx);
    let targets = policy_targets(entry, kind, resource, cx);
    let schedule = policy_schedule(entry, defaults.tz, cx);
    // `Schedule::parse` refuses patterns that never fire, so a parsed
    // schedule always has an interval.
    let interval = schedule.as_ref().map(Schedule::nominal_interval);
    let rules = policy_rules(entry, schedule.as_ref().map(Schedule::timezone), cx);
    let timing = policy_timing(entry, interval, cx);
    let full_every = match &raw.full_every {
        None => Some(None),
        Some(v) => {
            let kind = kind.map(|k| (k.name(), k.capabilities()));
            full_every(v, kind, &mut cx.diag).map(Some)
        }
    };
    let health = policy_health(raw, interval, cx);
    let hooks = super::hooks::policy_hooks(entry, cx);
    let blackout = policy_blackout(entry, schedule.as_ref().map(Schedule::timezone), cx);
    let max_deletes_per_run =
        max_deletes_or(raw.max_deletes_per_run.as_ref(), defaults.max_deletes, cx);

    Some(Policy {
        name: name?,
        provider: provider?,
        resource: resource?,
        schedule: schedule?,
        catch_up: raw.catch_up.as_ref().is_some_and(|c| *c.get_ref()),
        targets: targets?,
        rules: rules?,
        max_deletes_per_run: max_deletes_per_run?,
        full_every: full_every?,
        timing: timing?,
        health: health?,
        hooks: hooks?,
        blackout: blackout?,
    })
}

/// `provider`: a defined `[providers.NAME]`; with it, the kind (`None` where
/// the provider is unknown or its `kind` was invalid).
fn policy_provider(
    entry: &Entry<'_>,
    providers: &Providers,
    cx: &mut Cx<'_>,
) -> (Option<String>, Option<Kind>) {
    let Some(p) = &entry.raw.provider else {
        entry.missing("provider", "the name of a [providers.NAME] section", cx);
        return (None, None);
    };
    if let Some(found) = providers.parsed.get(p.get_ref()) {
        return (Some(p.get_ref().clone()), found.kind);
    }
    let defined: Vec<&str> = providers.parsed.keys().map(String::as_str).collect();
    let hint = did_you_mean(p.get_ref(), defined.iter().copied());
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
    (None, None)
}

/// `resource`: one the provider's kind can snapshot.
fn policy_resource(
    entry: &Entry<'_>,
    provider: Option<&str>,
    kind: Option<Kind>,
    cx: &mut Cx<'_>,
) -> Option<ResourceKind> {
    let Some(r) = &entry.raw.resource else {
        entry.missing("resource", "what to snapshot, e.g. \"volume\"", cx);
        return None;
    };
    let resource = ResourceKind::from_name(r.get_ref());
    if let Some(kind) = kind {
        let caps = kind.capabilities();
        if !resource.is_some_and(|k| caps.takes(k)) {
            cx.diag.error(
                r.span(),
                format!(
                    "resource {:?} is not supported by provider {:?} (kind {}); expected one \
                     of: {}",
                    r.get_ref(),
                    provider.unwrap_or_default(),
                    kind.name(),
                    list(
                        &caps
                            .resources
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                    )
                ),
            );
            return None;
        }
    }
    resource
}

/// `timezone` and `schedule`: a cron expression in the policy's zone (else
/// `[daemon]`'s).
fn policy_schedule(entry: &Entry<'_>, default_tz: Tz, cx: &mut Cx<'_>) -> Option<Schedule> {
    let raw = entry.raw;
    let tz = match &raw.timezone {
        None => Some(default_tz),
        Some(v) => values::time_zone(v, "timezone", &mut cx.diag),
    };
    match (&raw.schedule, tz) {
        (None, _) => {
            entry.missing("schedule", "a cron expression such as \"0 30 2 * * *\"", cx);
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
    }
}

/// Retention: `retain` and/or the keep_* rules, at least one; `min_keep`.
/// `tz` is the schedule's zone (`None` where the schedule was invalid).
fn policy_rules(entry: &Entry<'_>, tz: Option<Tz>, cx: &mut Cx<'_>) -> Option<Rules> {
    let raw = entry.raw;
    let count = |v: &Option<Spanned<i64>>, key: &str, what: &str, cx: &mut Cx<'_>| match v {
        None => Some(None),
        Some(r) => values::count(r, key, 100_000, what, &mut cx.diag).map(Some),
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
            &DurationRule::up_to("keep_within", 100 * 366 * DAY),
            &mut cx.diag,
        )
        .map(Some),
    };
    let min_keep = raw.min_keep.as_ref().map_or(Some(1), |v| {
        let what = "snapshots always kept per target";
        values::count(v, "min_keep", 100_000, what, &mut cx.diag)
    });
    let no_rule = raw.retain.is_none()
        && raw.keep_hourly.is_none()
        && raw.keep_daily.is_none()
        && raw.keep_weekly.is_none()
        && raw.keep_monthly.is_none()
        && raw.keep_yearly.is_none()
        && raw.keep_within.is_none();
    if no_rule {
        entry.missing(
            "retain",
            "a retention rule: `retain` (how many snapshots to keep per target, at least 1) and/or \
             keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within",
            cx,
        );
        return None;
    }
    Some(Rules {
        retain: retain?,
        keep_hourly: keep_hourly?,
        keep_daily: keep_daily?,
        keep_weekly: keep_weekly?,
        keep_monthly: keep_monthly?,
        keep_yearly: keep_yearly?,
        keep_within: keep_within?,
        min_keep: min_keep?,
        tz: tz?,
    })
}

/// Polling, `timeout` and `jitter`, against each other and against the
/// schedule's `interval`.
fn policy_timing(entry: &Entry<'_>, interval: Option<Duration>, cx: &mut Cx<'_>) -> Option<Timing> {
    let raw = entry.raw;
    let mut ok = true;
    let poll_interval = values::duration_or(
        raw.poll_interval.as_ref(),
        Duration::from_secs(10),
        &DurationRule::up_to("poll_interval", DAY),
        &mut cx.diag,
    );
    let poll_max_interval = values::duration_or(
        raw.poll_max_interval.as_ref(),
        // The default never undercuts an explicit, longer poll_interval.
        poll_interval.map_or(2 * MINUTE, |p| p.max(2 * MINUTE)),
        &DurationRule::up_to("poll_max_interval", DAY),
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
        &DurationRule::up_to("timeout", 7 * DAY),
        &mut cx.diag,
    );
    ok &= timeout_fits(entry, poll_interval, timeout, interval, cx);
    let jitter = values::duration_or(
        raw.jitter.as_ref(),
        Duration::ZERO,
        &DurationRule {
            allow_zero: true,
            ..DurationRule::up_to("jitter", DAY)
        },
        &mut cx.diag,
    );
    ok &= jitter_fits(raw, jitter, interval, timeout, cx);
    if !ok {
        return None;
    }
    Some(Timing {
        poll_interval: poll_interval?,
        poll_max_interval: poll_max_interval?,
        timeout: timeout?,
        jitter: jitter?,
    })
}

/// The timeout must leave room for a poll (an error if not); longer than
/// the schedule's interval it is only warned about.
fn timeout_fits(
    entry: &Entry<'_>,
    poll_interval: Option<Duration>,
    timeout: Option<Duration>,
    interval: Option<Duration>,
    cx: &mut Cx<'_>,
) -> bool {
    let raw = entry.raw;
    let mut ok = true;
    if let (Some(p), Some(t)) = (poll_interval, timeout) {
        if t <= p {
            let at = raw
                .timeout
                .as_ref()
                .or(raw.poll_interval.as_ref())
                .map_or(entry.span.clone(), |v| v.span());
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
                None => (entry.span.clone(), "the default `timeout`"),
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
    ok
}

/// A `jitter` given must be shorter than the schedule's interval and the
/// timeout.
fn jitter_fits(
    raw: &RawPolicy,
    jitter: Option<Duration>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    cx: &mut Cx<'_>,
) -> bool {
    let (Some(j), Some(v)) = (jitter, &raw.jitter) else {
        return true;
    };
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
    let (false, Some((limit, what_limit, why))) = (j.is_zero(), too_long) else {
        return true;
    };
    cx.diag.error(
        v.span(),
        format!(
            "`jitter` ({}) must be shorter than {what_limit} ({}){why}",
            values::fmt_duration(j),
            values::fmt_duration(limit)
        ),
    );
    false
}

/// `full_every`: only where the kind (name, capabilities) has incremental
/// snapshots; unknown kinds (already reported) are given the benefit.
fn full_every(
    value: &Spanned<i64>,
    kind: Option<(&str, Capabilities)>,
    diag: &mut Diagnostics<'_>,
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
    let what = "every Nth snapshot is full";
    values::count(value, "full_every", 10_000, what, diag)
}

/// Freshness (`stale_after`, by default twice the schedule's interval, at
/// least an hour) and `critical_after_failures`.
fn policy_health(raw: &RawPolicy, interval: Option<Duration>, cx: &mut Cx<'_>) -> Option<Health> {
    let default_stale = interval.map(|i| (i * 2).max(HOUR)).unwrap_or(HOUR);
    let stale_after = values::duration_or(
        raw.stale_after.as_ref(),
        default_stale,
        &DurationRule::up_to("stale_after", 366 * DAY).at_least(Duration::from_secs(1)),
        &mut cx.diag,
    );
    let critical_after_failures = raw.critical_after_failures.as_ref().map_or(Some(3), |v| {
        let what = "consecutive failed runs before `monitor` says CRITICAL";
        values::count(v, "critical_after_failures", 1000, what, &mut cx.diag)
    });
    Some(Health {
        stale_after: stale_after?,
        critical_after_failures: critical_after_failures?,
    })
}

/// `blackout`: windows in the policy's zone (`Some(None)`: none). Each bad
/// window is reported at its own position.
fn policy_blackout(entry: &Entry<'_>, tz: Option<Tz>, cx: &mut Cx<'_>) -> Option<Option<Blackout>> {
    let Some(list) = &entry.raw.blackout else {
        return Some(None);
    };
    let mut ok = true;
    for spec in list.get_ref() {
        if let Err(e) = Blackout::parse([spec.get_ref().as_str()], Tz::UTC) {
            cx.diag.error(spec.span(), format!("`blackout`: {e}"));
            ok = false;
        }
    }
    if list.get_ref().is_empty() {
        cx.diag.warn(list.span(), "`blackout` is empty: no window");
    }
    // The zone only places the windows; an invalid one is reported with
    // the schedule.
    let tz = tz?;
    if !ok {
        return None;
    }
    let specs = list.get_ref().iter().map(|s| s.get_ref().as_str());
    let blackout = Blackout::parse(specs, tz).ok()?;
    Some((!blackout.is_empty()).then_some(blackout))
}

#[cfg(test)]
mod tests {
    use super::*;
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
            hold_mark: None,
        };
        let v = Spanned::new(0..1, 3);
        let mut d = Diagnostics::new(Path::new("f"), "x");
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
