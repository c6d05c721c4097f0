//! The long-running daemon: fires each policy's slots, hands them to the
//! engine, and handles signals (SIGTERM/SIGINT stop, SIGHUP reload) and
//! systemd notifications.
//!
//! Slot times come from `schedule` only. A fired slot is written to the
//! ledger before its runs start, so no slot fires twice, also across
//! restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::engine::{Engine, EngineError, RunReport};
use crate::observe::alerts::Alerter;
use crate::observe::server::{self, Health};
use crate::observe::{metrics, notify};
use crate::schedule::waker::{Waker, WakerError};
use crate::state::{Ledger, SqliteLedger, StateError};

mod alerting;
mod clock;
mod scheduler;
mod trim;

use alerting::{
    alert_run, alert_selector, check_stale, hold_large_reloads, log_report, restore_alerts,
    stale_check_every, status_line,
};
use clock::recheck_clock;
use scheduler::{Occasion, Scheduler};

/// How long a stop waits for runs to reach a safe point before it aborts
/// them (their state is in the ledger either way).
const STOP_GRACE: Duration = Duration::from_secs(8);

/// How often the loop proves the state database writable (for /healthz
/// and, faster if systemd asks, the watchdog).
const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// How often the pauses are read: `snapwarden pause` is honoured within
/// this.
const PAUSE_CHECK_EVERY: Duration = Duration::from_secs(1);

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
    Waker(#[from] WakerError),
    #[error("metrics endpoint: cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics endpoint: {0}")]
    Metrics(std::io::Error),
    /// A leader that can no longer be sure it holds the lease stops: it
    /// exits with this, and systemd restarts it as a standby.
    #[error("leadership lost: {0}")]
    LeadershipLost(String),
}

/// The pseudo-target alerts about a policy's selector name.
const SELECTOR_TARGET: &str = "select";
/// The pseudo-target alerts about a policy's schedule name (a clock that
/// stepped back).
const SCHEDULE_TARGET: &str = "schedule";

/// Run the daemon until SIGTERM/SIGINT (or until `stop` turns true, for
/// embedding in `demo`).
pub async fn run(
    config_path: PathBuf,
    config: Config,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(DaemonError::Signals)?;
    let alerter = Alerter::new(&config);
    let health = Arc::new(Health::default());
    health.tick();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let Some(shared) = config.daemon.shared.clone() else {
        // One ledger, one daemon: the lock is held until the process ends.
        let state: Arc<dyn Ledger> = Arc::new(SqliteLedger::open_locked(
            &config.daemon.state_path,
            "snapwarden run",
        )?);
        info!(state = %config.daemon.state_path.display(), policies = config.policies.len(), "snapwarden starting");
        let observer = start_observer(&config, &health, &state, shutdown_tx.subscribe())?;
        metrics::leading(Some(0));
        let engine = Engine::new(state.clone(), &config, shutdown_rx)?.with_actor(actor(&config));
        let serving = Serving {
            config_path,
            state,
            engine,
            alerter,
            health,
            shutdown_tx,
            observer,
            leadership: None,
        };
        return serve(serving, config, signals, stop).await;
    };
    let pg = crate::state::open_shared(&shared).await?;
    let state: Arc<dyn Ledger> = Arc::new(pg.clone());
    info!(state = %pg.location(), node = %shared.node_name, policies = config.policies.len(), "snapwarden starting on a shared ledger");
    let observer = start_observer(&config, &health, &state, shutdown_tx.subscribe())?;
    let candidate = crate::leadership::Candidate::new(pg, &shared).await?;
    info!(holder = %candidate.holder(), "waiting for the lease");
    let waited = tokio::select! {
        lead = candidate.wait_for_lease(&alerter, &health, stop.clone()) => lead,
        _ = next_stop_signal(&mut signals) => None,
    };
    let Some(leadership) = waited else {
        info!("stopped while standby");
        let _ = shutdown_tx.send(true);
        let _ = tokio::task::spawn_blocking(move || observer.join()).await;
        return Ok(());
    };
    let engine = Engine::with_mandate(
        state.clone(),
        &config,
        shutdown_rx,
        leadership.mandate.clone(),
    )?
    .with_actor(actor(&config));
    let serving = Serving {
        config_path,
        state,
        engine,
        alerter,
        health,
        shutdown_tx,
        observer,
        leadership: Some(leadership),
    };
    serve(serving, config, signals, stop).await
}

/// Until SIGTERM or SIGINT (a SIGHUP while waiting changes nothing).
/// Who the audit trail names for what the daemon does: "daemon (node
/// NAME)", NAME the node's name on a shared ledger, else this host's name
/// (the node name's own default).
fn actor(config: &Config) -> String {
    let node = match &config.daemon.shared {
        Some(shared) => shared.node_name.clone(),
        None => crate::config::host_name().unwrap_or_else(|| "unknown".to_string()),
    };
    format!("daemon (node {node})")
}

async fn next_stop_signal(signals: &mut Signals) {
    while let Some(signal) = signals.next().await {
        if signal != SIGHUP {
            info!("stop requested");
            return;
        }
    }
    std::future::pending::<()>().await
}

/// What the daemon serves with once it may act.
struct Serving {
    config_path: PathBuf,
    state: Arc<dyn Ledger>,
    engine: Arc<Engine>,
    alerter: Arc<Alerter>,
    health: Arc<Health>,
    shutdown_tx: watch::Sender<bool>,
    observer: std::thread::JoinHandle<()>,
    /// For a shared ledger: the lease this process leads with.
    leadership: Option<crate::leadership::Leadership>,
}

/// Schedule, run and follow snapshots until stopped (or, on a shared
/// ledger, until leadership is lost: then an error, for a restart as a
/// standby).
async fn serve(
    serving: Serving,
    config: Config,
    mut signals: Signals,
    stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let Serving {
        config_path,
        state,
        engine,
        alerter,
        health,
        shutdown_tx,
        observer,
        mut leadership,
    } = serving;
    let waker = Waker::start().await?;
    // A new leader also runs a slot that came due during the handover.
    let grace = leadership
        .as_ref()
        .and(config.daemon.shared.as_ref())
        .map(|s| s.takeover_grace);
    let mut scheduler = Scheduler::new(state.clone(), engine, alerter);
    // The ledger's first leader ever (epoch 1): no node before it could
    // have died before a policy's first slot.
    scheduler.first_leader = leadership.as_ref().is_some_and(|l| l.epoch == 1);
    let mut sched = start_scheduler(scheduler, &config, grace, shutdown_tx.subscribe()).await?;
    let mut stale_check = tokio::time::interval(stale_check_every(&config));
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut config = config;
    // On a shared ledger systemd's STATUS= says this node leads.
    let role = leadership
        .as_ref()
        .map(|l| format!("leader (epoch {}); ", l.epoch))
        .unwrap_or_default();
    let summary = format!("{role}{} policies scheduled", sched.scheduled.len());
    notify::ready(&summary);
    info!("{summary}");
    let watchdog = notify::watchdog_interval();
    let mut health_check =
        tokio::time::interval(watchdog.unwrap_or(HEALTH_EVERY).min(HEALTH_EVERY));
    let mut pause_check = tokio::time::interval(PAUSE_CHECK_EVERY);
    pause_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut armed = None;
    let mut outcome = Ok(());
    loop {
        health.tick();
        let next = sched.scheduled.iter().flatten().min().copied();
        if next != armed {
            if let Some(at) = next {
                waker.wake_at(at).await?;
            }
            armed = next;
        }
        tokio::select! {
            _ = waker.notified(), if next.is_some() => sched.fire_due(&config.policies).await,
            Some(signal) = signals.next() => {
                if signal != SIGHUP {
                    info!("stop requested");
                    break;
                }
                if let Some(new) = reload(&config_path, &config, &mut sched).await {
                    stale_check = tokio::time::interval(stale_check_every(&new));
                    config = new;
                }
            }
            _ = crate::shutdown::stopped(stop.clone()) => break,
            why = lease_lost(&mut leadership) => {
                outcome = Err(DaemonError::LeadershipLost(why));
                break;
            }
            Some(joined) = sched.resolving.join_next(), if !sched.resolving.is_empty() => {
                if let Ok(r) = joined {
                    alert_selector(&sched.alerter, &mut sched.selector_failures, &r);
                    sched.fire_targets(&r.policy, r.slot, &r.resolved.targets).await;
                }
            }
            Some(joined) = sched.tasks.join_next(), if !sched.tasks.is_empty() => match joined {
                Ok(report) => {
                    log_report(&report);
                    alert_run(&sched.alerter, &*state, &report).await;
                }
                // The run's claim went with the task: the next sweep
                // takes the run up again.
                Err(e) if e.is_panic() => error!(error = %e, "a run's task panicked; its run is taken up again"),
                Err(_) => {}
            },
            _ = sweep.tick() => sched.take_up_abandoned(&config, Occasion::Running).await,
            _ = stale_check.tick() => check_stale(&sched.alerter, &*state, &config).await,
            _ = pause_check.tick() => {
                if sched.refresh_pauses(&config.policies).await {
                    notify::status(&format!("{role}{}", status_line(&*state, &config, &sched.pauses).await));
                }
            }
            _ = health_check.tick() => {
                recheck_clock(&sched.alerter, &config.policies, &mut sched.scheduled);
                match health.check() {
                    Ok(()) => {
                        notify::status(&format!("{role}{}", status_line(&*state, &config, &sched.pauses).await));
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
    drain(&mut sched.tasks).await;
    waker.shutdown().await;
    if let Some(leadership) = leadership {
        if outcome.is_ok() {
            leadership.step_down().await;
        }
    }
    let _ = tokio::task::spawn_blocking(move || observer.join()).await;
    info!("snapwarden stopped");
    outcome
}

/// Everything before the loop, in this order: delivered alerts are
/// remembered; a file edited while the daemon was down is held like a
/// reload (before resume, which may prune, and before any slot fires);
/// work left in flight is claimed before any slot fires (so a catch-up
/// slot never races its resume; its outcomes are alerted like any run's);
/// the ledger's trim starts; undelivered alerts are sent; every policy is
/// scheduled, a new leader's with the handover's slots (`grace`).
async fn start_scheduler(
    mut sched: Scheduler,
    config: &Config,
    grace: Option<Duration>,
    stop: watch::Receiver<bool>,
) -> Result<Scheduler, DaemonError> {
    remember_deliveries(&sched.alerter, &sched.state);
    hold_large_reloads(&sched.engine, &sched.alerter, None, config).await;
    // A thaw first: an application left frozen by a run that died
    // between its hooks waits for nothing else.
    match sched.engine.run_owed_post_hooks(config).await {
        Ok(failed) => {
            for f in failed {
                sched
                    .alerter
                    .owed_hook_failed(&f.policy, &f.target, &f.provider, &f.message);
            }
        }
        Err(e) => {
            error!(error = %e, "cannot run the post hooks left owed; they stay owed for the next start")
        }
    }
    sched.take_up_abandoned(config, Occasion::Startup).await;
    trim::start(sched.state.clone(), stop);
    restore_alerts(&sched.alerter, &*sched.state, config).await?;
    sched.takeover_grace = grace;
    // A pause counts from the first slot on, missed ones included.
    sched.refresh_pauses(&config.policies).await;
    sched.schedule_all(config, Occasion::Startup).await;
    Ok(sched)
}

/// Why leadership was lost; never, for a ledger of one's own.
async fn lease_lost(leadership: &mut Option<crate::leadership::Leadership>) -> String {
    match leadership {
        Some(l) => l.lost().await,
        None => std::future::pending().await,
    }
}

/// Every alert that reaches the operator is remembered in the ledger: one
/// lost to a crash before delivery is sent again at the next start.
fn remember_deliveries(alerter: &Alerter, state: &Arc<dyn Ledger>) {
    let state = state.clone();
    alerter.on_delivered(Arc::new(move |a| {
        let (state, a) = (state.clone(), a.clone());
        Box::pin(async move {
            if let Err(e) = state
                .record_alert_delivered(&a.policy, &a.target, a.kind, a.at)
                .await
            {
                warn!(error = %e, kind = a.kind, "cannot record that an alert was delivered; it may be sent again after a restart");
            }
        })
    }));
}

/// The health probe and the metrics endpoint run on a thread of their own,
/// so /healthz answers and the ledger is probed even when the engine is
/// stuck waiting on a locked database.
fn start_observer(
    config: &Config,
    health: &Arc<Health>,
    state: &Arc<dyn Ledger>,
    shutdown: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>, DaemonError> {
    let listener = match config.daemon.metrics_listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .map_err(|source| DaemonError::Listen { addr, source })?;
            let bound = l.local_addr().map_err(DaemonError::Metrics)?;
            info!(address = %bound, "metrics listening on {bound}");
            Some(l)
        }
        None => None,
    };
    server::start(
        listener,
        health.clone(),
        state.clone(),
        HEALTH_EVERY,
        shutdown,
    )
    .map_err(DaemonError::Metrics)
}

/// SIGHUP: read the file again. A valid one replaces the running
/// configuration (providers, alerts, holds for rule changes, the
/// schedule) and is returned; an invalid one changes nothing.
async fn reload(path: &Path, running: &Config, sched: &mut Scheduler) -> Option<Config> {
    let new = match config::load(path) {
        Ok(new) => new,
        Err(e) => {
            error!(file = %path.display(), problems = %e, "reload failed: the new configuration is invalid; keeping the running one");
            return None;
        }
    };
    if let Err(e) = sched.engine.install_providers(&new) {
        error!(error = %e, "reload failed; keeping the running configuration");
        return None;
    }
    for w in &new.warnings {
        warn!("{w}");
    }
    info!(policies = new.policies.len(), "configuration reloaded");
    sched.alerter.reconfigure(&new);
    hold_large_reloads(&sched.engine, &sched.alerter, Some(running), &new).await;
    sched.schedule_all(&new, Occasion::Running).await;
    Some(new)
}

/// Give the runs in flight the grace period to reach a safe point, then
/// abort them (the ledger holds their state either way).
async fn drain(tasks: &mut JoinSet<RunReport>) {
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
}
