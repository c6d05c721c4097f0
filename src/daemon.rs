//! The long-running daemon: fires each policy's slots, hands them to the
//! engine, and handles signals (SIGTERM/SIGINT stop, SIGHUP reload) and
//! systemd notifications.
//!
//! Slot times come from `schedule` only. A fired slot is written to the
//! ledger before its runs start, so no slot fires twice, also across
//! restarts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::{self, Config, Policy};
use crate::engine::{Engine, EngineError, Resolved, RunOutcome, RunReport};
use crate::observe::alerts::{Alerter, RunResult};
use crate::observe::server::{self, Health};
use crate::observe::{metrics, notify};
use crate::schedule::waker::Waker;
use crate::state::{State, StateError};

mod clock;
mod trim;
use clock::{clock_stepped_back, recheck_clock, schedule_base};

/// How long a stop waits for runs to reach a safe point before it aborts
/// them (their state is in the ledger either way).
const STOP_GRACE: Duration = Duration::from_secs(8);

/// How often the loop proves the state database writable (for /healthz
/// and, faster if systemd asks, the watchdog).
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// How often the loop looks for runs open in the ledger that no task
/// carries out (abandoned: an interrupted one-shot command, a ledger write
/// that failed at the end of a run, a panicked task) and takes them up, so
/// an open run never blocks its target's later slots. A cheap indexed read.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("scheduler: {0}")]
    Waker(String),
    #[error("metrics endpoint: {0}")]
    Metrics(String),
}

/// The pseudo-target alerts about a policy's selector name.
const SELECTOR_TARGET: &str = "select";
/// The pseudo-target alerts about a policy's schedule name (a clock that
/// stepped back).
const SCHEDULE_TARGET: &str = "schedule";

/// A selector policy's slot whose targets were being resolved.
struct Resolution {
    policy: Policy,
    slot: DateTime<Utc>,
    resolved: Resolved,
}

/// Each policy's next slot, in the order of `config.policies` (an index,
/// not a copy of the policy: hundreds of policies stay in memory once).
type Scheduled = Vec<Option<DateTime<Utc>>>;

/// Run the daemon until SIGTERM/SIGINT (or until `stop` turns true, for
/// embedding in `demo`).
pub async fn run(
    config_path: PathBuf,
    config: Config,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    // One ledger, one daemon: the lock is held until the process ends.
    let state = Arc::new(State::open_locked(
        &config.daemon.state_path,
        "snapwarden run",
    )?);
    info!(state = %config.daemon.state_path.display(), policies = config.policies.len(), "snapwarden starting");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let engine = Engine::new(state.clone(), &config, shutdown_rx)?;
    // Before resume (which may prune) and before any slot fires: a file
    // edited while the daemon was down is held like a reload.
    let alerter = Alerter::new(&config);
    {
        // Every alert that reaches the operator is remembered in the
        // ledger: one lost to a crash before delivery is sent again below
        // at the next start.
        let state = state.clone();
        alerter.on_delivered(Arc::new(move |a| {
            if let Err(e) = state.record_alert_delivered(&a.policy, &a.target, a.kind, a.at) {
                warn!(error = %e, kind = a.kind, "cannot record that an alert was delivered; it may be sent again after a restart");
            }
        }));
    }
    hold_large_reloads(&engine, &alerter, None, &config);
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(DaemonError::Signals)?;
    let waker = Waker::start()
        .await
        .map_err(|e| DaemonError::Waker(e.to_string()))?;

    let mut tasks: JoinSet<RunReport> = JoinSet::new();
    // Selector policies list their targets before their intents are
    // written; the listing runs here so the loop never waits on a cloud.
    let mut resolving: JoinSet<Resolution> = JoinSet::new();
    let mut selector_failures: HashMap<String, u32> = HashMap::new();
    // Work left in flight by the last process is claimed before any slot
    // fires, so a catch-up slot never races its resume; its outcomes are
    // alerted like any run's.
    take_up_abandoned(&engine, &config, &mut tasks, true);

    let health = Arc::new(Health::default());
    health.tick();
    // The health probe and the metrics endpoint run on a thread of their
    // own, so /healthz answers and the ledger is probed even when the
    // engine is stuck waiting on a locked database.
    let listener = match config.daemon.metrics_listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| DaemonError::Metrics(format!("cannot listen on {addr}: {e}")))?;
            let bound = l
                .local_addr()
                .map_err(|e| DaemonError::Metrics(e.to_string()))?;
            info!(address = %bound, "metrics listening on {bound}");
            Some(l)
        }
        None => None,
    };
    let observer = server::start(
        listener,
        health.clone(),
        state.clone(),
        HEALTH_EVERY,
        shutdown_tx.subscribe(),
    )
    .map_err(|e| DaemonError::Metrics(e.to_string()))?;
    trim::start(state.clone(), shutdown_tx.subscribe());

    restore_alerts(&alerter, &state, &config)?;
    let mut stale_check = tokio::time::interval(stale_check_every(&config));
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut config = config;
    let mut scheduled = schedule_all(
        &state,
        &config,
        &engine,
        &alerter,
        &mut tasks,
        &mut resolving,
        true,
    );
    let summary = format!("{} policies scheduled", scheduled.len());
    notify::ready(&summary);
    info!("{summary}");
    let watchdog = notify::watchdog_interval();
    let mut health_check =
        tokio::time::interval(watchdog.unwrap_or(HEALTH_EVERY).min(HEALTH_EVERY));

    let mut armed = None;
    loop {
        health.tick();
        let next = scheduled.iter().flatten().min().copied();
        if next != armed {
            if let Some(at) = next {
                waker
                    .wake_at(at)
                    .await
                    .map_err(|e| DaemonError::Waker(e.to_string()))?;
            }
            armed = next;
        }
        tokio::select! {
            _ = waker.notified(), if next.is_some() => {
                fire_due(&state, &engine, &alerter, &config.policies, &mut scheduled, &mut tasks, &mut resolving);
            }
            Some(signal) = signals.next() => match signal {
                SIGHUP => {
                    match config::load(&config_path) {
                        Ok(new) => match engine.install_providers(&new) {
                            Ok(()) => {
                                for w in &new.warnings {
                                    warn!("{w}");
                                }
                                info!(policies = new.policies.len(), "configuration reloaded");
                                alerter.reconfigure(&new);
                                hold_large_reloads(&engine, &alerter, Some(&config), &new);
                                stale_check = tokio::time::interval(stale_check_every(&new));
                                config = new;
                                scheduled = schedule_all(&state, &config, &engine, &alerter, &mut tasks, &mut resolving, false);
                            }
                            Err(e) => error!(error = %e, "reload failed; keeping the running configuration"),
                        },
                        Err(e) => error!(file = %config_path.display(), problems = %e, "reload failed: the new configuration is invalid; keeping the running one"),
                    }
                }
                _ => {
                    info!("stop requested");
                    break;
                }
            },
            _ = crate::engine::stopped(stop.clone()) => break,
            Some(joined) = resolving.join_next(), if !resolving.is_empty() => {
                if let Ok(r) = joined {
                    alert_selector(&alerter, &mut selector_failures, &r);
                    fire_targets(&state, &engine, &alerter, &r.policy, r.slot, &r.resolved.targets, &mut tasks);
                }
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                match joined {
                    Ok(report) => {
                        log_report(&report);
                        alert_run(&alerter, &state, &config, &report);
                    }
                    // The run's claim went with the task: the next sweep
                    // takes the run up again.
                    Err(e) if e.is_panic() => error!(error = %e, "a run's task panicked; its run is taken up again"),
                    Err(_) => {}
                }
            }
            _ = sweep.tick() => {
                take_up_abandoned(&engine, &config, &mut tasks, false);
            }
            _ = stale_check.tick() => {
                check_stale(&alerter, &state, &config);
            }
            _ = health_check.tick() => {
                recheck_clock(&alerter, &config.policies, &mut scheduled);
                match health.check() {
                    Ok(()) => {
                        notify::status(&status_line(&state, &config));
                        if watchdog.is_some() {
                            notify::watchdog();
                        }
                    }
                    Err(e) => warn!(reason = %e, "unhealthy; withholding the watchdog ping"),
                }
            }
        }
    }

    notify::stopping();
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "runs still busy after the grace period; aborting them (the ledger holds their state)"
        );
        tasks.abort_all();
    }
    waker.shutdown().await;
    let _ = tokio::task::spawn_blocking(move || observer.join()).await;
    info!("snapwarden stopped");
    Ok(())
}

/// Take up runs open in the ledger that no task carries out (see
/// [`Engine::take_up_abandoned`]); at start-up also the operations in
/// flight. A ledger that cannot be read now is tried again next sweep.
fn take_up_abandoned(
    engine: &Arc<Engine>,
    config: &Config,
    tasks: &mut JoinSet<RunReport>,
    startup: bool,
) {
    match engine.take_up_abandoned(config, startup) {
        Ok(runs) => {
            for run in runs {
                tasks.spawn(run);
            }
        }
        Err(e) => {
            error!(error = %e, "cannot take up the work left in flight; trying again shortly")
        }
    }
}

/// At start-up: what the last process alerted is in the ledger. A target
/// still failing whose failure was delivered gets only reminders; one
/// whose failure (or newest skipped slot) was never delivered (the
/// process died first) is alerted now. Nothing the operator should have
/// heard of stays unheard across a restart.
fn restore_alerts(alerter: &Alerter, state: &State, config: &Config) -> Result<(), DaemonError> {
    let delivered = state.alerts_delivered()?;
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
    for s in state.summaries()? {
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
        if let Some((slot, why)) = state.newest_skipped(&s.policy, &s.target)? {
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

/// Compute every policy's next slot; at start-up, run one missed slot for
/// policies with `catch_up`. A ledger that cannot be read for a policy's
/// last slot never stops the daemon: the policy is scheduled from now
/// (the ledger still keeps any slot single).
fn schedule_all(
    state: &State,
    config: &Config,
    engine: &Arc<Engine>,
    alerter: &Alerter,
    tasks: &mut JoinSet<RunReport>,
    resolving: &mut JoinSet<Resolution>,
    startup: bool,
) -> Scheduled {
    let now = Utc::now();
    let mut out = Vec::with_capacity(config.policies.len());
    for policy in &config.policies {
        let last = match state.last_slot(&policy.name) {
            Ok(last) => last,
            Err(e) => {
                error!(policy = %policy.name, error = %e, "cannot read the policy's last slot; scheduling from now");
                None
            }
        };
        if startup && policy.catch_up {
            if let (Some(last), Some(missed)) = (last, policy.schedule.latest_at_or_before(now)) {
                if missed > last {
                    info!(policy = %policy.name, slot = %missed, "catching up one missed slot");
                    fire(state, engine, alerter, policy, missed, tasks, resolving);
                }
            }
        }
        let (base, ahead) = schedule_base(now, last);
        if let (Some(ahead), Some(last)) = (ahead, last) {
            clock_stepped_back(alerter, policy, &format!(
                "the last fired slot {} is {} ahead of this host's clock: the clock stepped back? Scheduling from now",
                last.to_rfc3339(),
                humantime::format_duration(Duration::from_secs(ahead.as_secs()))
            ));
        }
        let next = policy.schedule.next_after(base);
        metrics::schedule(&policy.name, policy.schedule.nominal_interval(), next);
        if let Some(n) = next {
            info!(policy = %policy.name, next = %n, "scheduled");
        }
        out.push(next);
    }
    out
}

fn fire_due(
    state: &State,
    engine: &Arc<Engine>,
    alerter: &Alerter,
    policies: &[Policy],
    scheduled: &mut Scheduled,
    tasks: &mut JoinSet<RunReport>,
    resolving: &mut JoinSet<Resolution>,
) {
    let now = Utc::now();
    for (policy, s) in policies.iter().zip(scheduled.iter_mut()) {
        let Some(slot) = *s else { continue };
        if slot > now {
            continue;
        }
        fire(state, engine, alerter, policy, slot, tasks, resolving);
        // Slots that passed while we were busy or suspended are not run
        // in a burst: skip to the next one after now.
        let mut next = policy.schedule.next_after(slot);
        if let Some(n) = next {
            if n <= now {
                warn!(policy = %policy.name, "slots missed while the daemon was busy or suspended; skipping to the next one");
                metrics::run_skipped(&policy.name, "catch_up_limit");
                next = policy.schedule.next_after(now);
                // Those slots have no snapshot: never silent.
                let message = format!(
                    "slots from {} to {} were missed while the daemon was busy or suspended (or the clock jumped); they are not run",
                    n.to_rfc3339(),
                    now.to_rfc3339()
                );
                let targets: Vec<&str> = if policy.targets.select.is_some() {
                    vec![SELECTOR_TARGET]
                } else {
                    policy.targets.named.iter().map(String::as_str).collect()
                };
                for target in targets {
                    alerter.slot_skipped(&policy.name, target, &policy.provider, &message);
                }
            }
        }
        metrics::schedule(&policy.name, policy.schedule.nominal_interval(), next);
        *s = next;
    }
}

/// Fire one slot. A policy with a selector first resolves its targets in
/// the background; [`fire_targets`] follows when that is done.
fn fire(
    state: &State,
    engine: &Arc<Engine>,
    alerter: &Alerter,
    policy: &Policy,
    slot: DateTime<Utc>,
    tasks: &mut JoinSet<RunReport>,
    resolving: &mut JoinSet<Resolution>,
) {
    if policy.targets.select.is_none() {
        return fire_targets(
            state,
            engine,
            alerter,
            policy,
            slot,
            &policy.targets.named,
            tasks,
        );
    }
    let engine = engine.clone();
    let policy = policy.clone();
    resolving.spawn(async move {
        let resolved = engine.resolve_for_run(&policy).await;
        Resolution {
            policy,
            slot,
            resolved,
        }
    });
}

/// Start one slot's runs: the intents of every target are written (in one
/// transaction) before the slot is marked fired, so a crash in between
/// leaves intents that the next start resumes, never a slot silently lost
/// for some targets.
///
/// A ledger that cannot be written (read-only, full, locked) never stops
/// the daemon: no target is run for this slot (nothing is created that
/// could not be recorded), the failure is alerted, and `/healthz` says
/// unhealthy from its own probe. The next slot tries again.
fn fire_targets(
    state: &State,
    engine: &Arc<Engine>,
    alerter: &Alerter,
    policy: &Policy,
    slot: DateTime<Utc>,
    targets: &[String],
    tasks: &mut JoinSet<RunReport>,
) {
    let begun = match engine.begin_slot(policy, targets, slot) {
        Ok(b) => b,
        Err(e) => {
            // Nothing is created for a slot that cannot be recorded.
            error!(policy = %policy.name, slot = %slot, targets = targets.len(), error = %e, "cannot record the intents; no target is run for this slot");
            let message =
                format!("cannot record the intent for slot {slot} ({e}); nothing was created");
            for target in targets {
                metrics::intent_unrecorded(&policy.name);
                alerter.run_finished(RunResult {
                    policy: &policy.name,
                    target,
                    provider: &policy.provider,
                    outcome: Err(&message),
                    consecutive_failures: 0,
                });
            }
            Vec::new()
        }
    };
    // One copy of the policy for every run of the slot, not one per target.
    let shared = Arc::new(policy.clone());
    for (target, begun) in begun {
        match begun {
            Ok(begun) => {
                let engine = engine.clone();
                let policy = shared.clone();
                tasks.spawn(async move { engine.execute(&policy, begun).await });
            }
            Err(outcome) => {
                if let RunOutcome::Skipped(why) = &outcome {
                    // A due slot without a snapshot is never silent.
                    alerter.slot_skipped(
                        &policy.name,
                        &target,
                        &policy.provider,
                        &format!("slot {} skipped: {why}", slot.to_rfc3339()),
                    );
                }
                log_report(&RunReport {
                    policy: policy.name.clone(),
                    target,
                    slot,
                    outcome,
                })
            }
        }
    }
    // A slow selector listing may finish after a later slot was marked.
    let marked = state
        .last_slot(&policy.name)
        .map(|last| last.is_none_or(|last| last < slot))
        .and_then(|later| {
            if later {
                state.set_last_slot(&policy.name, slot)
            } else {
                Ok(())
            }
        });
    if let Err(e) = marked {
        // The in-memory schedule has moved on; after a restart the slot
        // may be offered again, and its recorded intents keep it single.
        error!(policy = %policy.name, slot = %slot, error = %e, "cannot record the fired slot");
    }
}

/// Alerts about a selector: a failed listing is a failure of the policy's
/// `select` pseudo-target (recovered by the next good listing); a listing
/// that matched nothing is `selector_empty`.
fn alert_selector(alerter: &Alerter, failures: &mut HashMap<String, u32>, r: &Resolution) {
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
fn status_line(state: &State, config: &Config) -> String {
    let in_flight = state.ops_in_flight_count().unwrap_or(0);
    let failing = state
        .summaries()
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
    line
}

/// Stale checks often enough for the shortest `stale_after`, at most
/// every 30 s.
fn stale_check_every(config: &Config) -> Duration {
    config
        .policies
        .iter()
        .map(|p| p.health.stale_after / 2)
        .min()
        .unwrap_or(Duration::from_secs(30))
        .clamp(Duration::from_millis(500), Duration::from_secs(30))
}

fn alert_run(alerter: &Alerter, state: &State, config: &Config, report: &RunReport) {
    let provider = config
        .policies
        .iter()
        .find(|p| p.name == report.policy)
        .map(|p| p.provider.as_str())
        .unwrap_or("");
    let outcome = match &report.outcome {
        RunOutcome::Succeeded { held, .. } => {
            if let Some(why) = held {
                let cause = match state.delete_hold(&report.policy, &report.target) {
                    Ok(Some(_)) => "reload",
                    _ => "budget",
                };
                alerter.deletes_held(&report.policy, &report.target, provider, cause, why);
            }
            Ok(())
        }
        RunOutcome::Failed(e) => Err(e.as_str()),
        _ => return,
    };
    let consecutive_failures = match state.target_summary(&report.policy, &report.target) {
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
fn hold_large_reloads(engine: &Engine, alerter: &Alerter, running: Option<&Config>, new: &Config) {
    for h in engine.hold_changed_rules(running, new) {
        alerter.deletes_held(&h.policy, &h.target, &h.provider, "reload", &h.message);
    }
}

fn check_stale(alerter: &Alerter, state: &State, config: &Config) {
    let summaries = match state.summaries() {
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

fn log_report(report: &RunReport) {
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
