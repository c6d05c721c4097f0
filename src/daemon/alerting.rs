//! The daemon's alerting glue: what a run's report, a selector's listing,
//! a reload's hold and the stale check mean for the operator's alerts.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use tracing::{error, warn};

use super::scheduler::Resolution;
use super::{DaemonError, SCHEDULE_TARGET, SELECTOR_TARGET};
use crate::config::Config;
use crate::domain::HoldCause;
use crate::engine::{Engine, EngineError, RunOutcome, RunReport};
use crate::observe::alerts::{Alerter, RunResult};
use crate::observe::metrics;
use crate::state::Ledger;

/// At start-up: what the last process alerted is in the ledger. A target
/// still failing whose failure was delivered gets only reminders; one
/// whose failure (or newest skipped slot) was never delivered (the
/// process died first) is alerted now. Nothing the operator should have
/// heard of stays unheard across a restart.
pub(super) async fn restore_alerts(
    alerter: &Alerter,
    state: &dyn Ledger,
    config: &Config,
) -> Result<(), DaemonError> {
    let delivered = state.alerts_delivered().await?;
    let sent = |p: &str, t: &str, kind: &str| {
        delivered
            .get(&(p.to_string(), t.to_string(), kind.to_string()))
            .copied()
    };
    let provider_of = |p: &str| {
        config
            .policies
            .iter()
            .find(|x| x.name == p)
            .map(|x| x.provider.clone())
    };
    for s in state.summaries().await? {
        let Some(provider) = provider_of(&s.policy) else {
            continue;
        };
        if s.consecutive_failures > 0 {
            let since = s.last_run.as_ref().map(|r| r.slot).unwrap_or_else(Utc::now);
            let told = sent(&s.policy, &s.target, "failure")
                .is_some_and(|at| s.last_success.is_none_or(|ok| at > ok));
            if told {
                alerter.assume_alerted(&s.policy, &s.target, since);
            } else {
                let message = format!(
                    "{} (alerted after a restart: the last process stopped before it could deliver this failure)",
                    s.last_error.as_deref().unwrap_or("the last run failed")
                );
                alerter.run_finished(RunResult {
                    policy: &s.policy,
                    target: &s.target,
                    provider: &provider,
                    outcome: Err(&message),
                    consecutive_failures: s.consecutive_failures,
                });
            }
        }
        let skipped = state.newest_skipped(&s.policy, &s.target).await?;
        // A pause or a blackout window is the operator's own doing.
        let skipped = skipped.filter(|(_, why)| {
            !why.as_deref()
                .is_some_and(crate::engine::skipped_on_purpose)
        });
        if let Some((slot, why)) = skipped {
            if sent(&s.policy, &s.target, "slot_skipped").is_none_or(|at| at < slot) {
                alerter.slot_skipped(
                    &s.policy,
                    &s.target,
                    &provider,
                    &format!(
                        "slot {} skipped: {} (alerted after a restart: the last process stopped before it could deliver this)",
                        slot.to_rfc3339(),
                        why.as_deref().unwrap_or("the previous run was still in flight")
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Alerts about a selector: a failed listing is a failure of the policy's
/// `select` pseudo-target (recovered by the next good listing); a listing
/// that matched nothing is `selector_empty`.
pub(super) fn alert_selector(
    alerter: &Alerter,
    failures: &mut HashMap<String, u32>,
    r: &Resolution,
) {
    let Some(selected) = &r.resolved.selected else {
        return;
    };
    let selector = r
        .policy
        .targets
        .select
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    match selected {
        Err(EngineError::Shutdown) => {}
        Err(e) => {
            let n = failures.entry(r.policy.name.clone()).or_default();
            *n += 1;
            let message = format!(
                "selector {selector} could not list {}s: {e}",
                r.policy.resource
            );
            alerter.run_finished(RunResult {
                policy: &r.policy.name,
                target: SELECTOR_TARGET,
                provider: &r.policy.provider,
                outcome: Err(&message),
                consecutive_failures: *n,
            });
        }
        Ok(matched) => {
            failures.remove(&r.policy.name);
            alerter.run_finished(RunResult {
                policy: &r.policy.name,
                target: SELECTOR_TARGET,
                provider: &r.policy.provider,
                outcome: Ok(()),
                consecutive_failures: 0,
            });
            if matched.is_empty() {
                let message = format!(
                    "selector {selector} matched no {} at slot {}",
                    r.policy.resource,
                    r.slot.to_rfc3339()
                );
                alerter.selector_empty(
                    &r.policy.name,
                    SELECTOR_TARGET,
                    &r.policy.provider,
                    &message,
                );
            }
        }
    }
}

/// The one-line STATUS= for systemd: policies, operations in flight, and
/// the most recent failure still unrecovered.
pub(super) async fn status_line(
    state: &dyn Ledger,
    config: &Config,
    pauses: &[crate::state::Pause],
) -> String {
    let in_flight = state.ops_in_flight_count().await.unwrap_or(0);
    let failing = state
        .summaries()
        .await
        .map(|all| {
            all.into_iter()
                .filter(|s| s.consecutive_failures > 0)
                .max_by_key(|s| s.last_run.as_ref().map(|r| r.slot))
        })
        .ok()
        .flatten();
    let mut line = format!(
        "{} policies, {in_flight} operations in flight",
        config.policies.len()
    );
    match failing {
        Some(f) => line.push_str(&format!(
            "; failing: {}/{} ({} in a row)",
            f.policy, f.target, f.consecutive_failures
        )),
        None => line.push_str("; no failures"),
    }
    if !pauses.is_empty() {
        let scopes: Vec<&str> = pauses
            .iter()
            .map(|p| p.policy.as_deref().unwrap_or("every policy"))
            .collect();
        line.push_str(&format!("; paused: {}", scopes.join(", ")));
    }
    line
}

/// Stale checks often enough for the shortest `stale_after`, at most
/// every 30 s.
pub(super) fn stale_check_every(config: &Config) -> Duration {
    config
        .policies
        .iter()
        .map(|p| p.health.stale_after / 2)
        .min()
        .unwrap_or(Duration::from_secs(30))
        .clamp(Duration::from_millis(500), Duration::from_secs(30))
}

pub(super) async fn alert_run(alerter: &Alerter, state: &dyn Ledger, report: &RunReport) {
    let provider = report.provider.as_str();
    let outcome = match &report.outcome {
        RunOutcome::Succeeded { held, .. } => {
            // Deletes waiting for a blackout window to end are the
            // operator's own rule, not a problem to be told about.
            if let Some(held) = held.as_ref().filter(|h| h.cause != HoldCause::Blackout) {
                alerter.deletes_held(
                    &report.policy,
                    &report.target,
                    provider,
                    held.cause,
                    &held.reason,
                );
            }
            Ok(())
        }
        RunOutcome::Failed(e) => Err(e.as_str()),
        _ => return,
    };
    let consecutive_failures = match state.target_summary(&report.policy, &report.target).await {
        Ok(s) => s.map(|s| s.consecutive_failures).unwrap_or(0),
        Err(e) => {
            warn!(error = %e, "cannot read the ledger for an alert");
            0
        }
    };
    alerter.run_finished(RunResult {
        policy: &report.policy,
        target: &report.target,
        provider,
        outcome,
        consecutive_failures,
    });
}

/// After a reload (`running` = the configuration until now) or at
/// start-up (`None`: compared with the rules the ledger last ran with): a
/// target whose first run under the new rules would delete more than
/// `max_deletes_per_run` gets its deletions held (in the ledger) until
/// `snapwarden prune --policy P --yes`; the plan diff is logged and the
/// hold alerted. Snapshots are still created meanwhile.
pub(super) async fn hold_large_reloads(
    engine: &Engine,
    alerter: &Alerter,
    running: Option<&Config>,
    new: &Config,
) {
    for h in engine.hold_changed_rules(running, new).await {
        alerter.deletes_held(
            &h.policy,
            &h.target,
            &h.provider,
            HoldCause::Reload,
            &h.message,
        );
    }
}

pub(super) async fn check_stale(alerter: &Alerter, state: &dyn Ledger, config: &Config) {
    let summaries = match state.summaries().await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot read the ledger for the stale check");
            return;
        }
    };
    let by_target: std::collections::HashMap<(&str, &str), &crate::state::TargetSummary> =
        summaries
            .iter()
            .map(|s| ((s.policy.as_str(), s.target.as_str()), s))
            .collect();
    let mut live = std::collections::HashSet::new();
    for p in &config.policies {
        for pseudo in [SELECTOR_TARGET, SCHEDULE_TARGET] {
            live.insert((p.name.clone(), pseudo.to_string()));
        }
        for t in &crate::engine::ledger_targets(p, &summaries) {
            let (last, failures) = by_target
                .get(&(p.name.as_str(), t.as_str()))
                .map(|s| (s.last_success, s.consecutive_failures))
                .unwrap_or((None, 0));
            alerter.check_stale(
                &p.name,
                t,
                &p.provider,
                last,
                p.health.stale_after,
                failures,
            );
            live.insert((p.name.clone(), t.clone()));
        }
    }
    // Targets no longer configured or selected leave no alert state and
    // no metric series behind.
    alerter.forget_except(&live);
    metrics::forget_targets_except(&live);
}

pub(super) fn log_report(report: &RunReport) {
    match &report.outcome {
        RunOutcome::Succeeded { .. } | RunOutcome::AlreadyDone | RunOutcome::Interrupted => {}
        RunOutcome::Failed(e) => {
            error!(policy = %report.policy, target = %report.target, slot = %report.slot, error = %e, "run failed")
        }
        RunOutcome::Skipped(why) => {
            warn!(policy = %report.policy, target = %report.target, slot = %report.slot, reason = %why, "run skipped")
        }
    }
}
