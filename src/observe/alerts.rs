//! Alerts (`[alerts]`): `failure`, `recovery`, `stale`, `selector_empty`,
//! `deletes_held` and `slot_skipped` events as JSON documents, POSTed to a webhook (Slack-compatible: `text`
//! holds the summary line) and/or piped to a command.
//!
//! No storms: one `failure` per policy and target until it recovers, plus a
//! reminder every `repeat_after`. Delivery runs in its own tasks: a slow or
//! failing receiver is logged and counted, never blocks or crashes the
//! engine.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use crate::config::{AlertEvent, AlertsConfig, Config};
use crate::domain::HoldCause;
use crate::observe::metrics;

/// How long one webhook POST or command may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhook attempts per event (with backoff between them).
const WEBHOOK_ATTEMPTS: u32 = 3;
/// Webhook POSTs in flight at once: an outage on a thousand targets is a
/// queue at the receiver's pace, not a thousand connections.
const WEBHOOK_CONCURRENCY: usize = 4;
/// Events waiting for the alert command (which runs one at a time, up to
/// `DELIVERY_TIMEOUT` each). Past this, an event is not queued: it is
/// logged and counted, and a failure or skipped slot is sent again at the
/// next start (the ledger knows it was never delivered).
const COMMAND_QUEUE: usize = 256;

/// How far ahead of this host's clock a recorded time (a last success, a
/// fired slot) may lie before it means the clock stepped back since it was
/// recorded. Time sync's small corrections stay well within it.
pub const CLOCK_STEP_TOLERANCE: Duration = Duration::from_secs(60);

/// How far `t` lies ahead of `now` beyond [`CLOCK_STEP_TOLERANCE`], if it does.
pub fn ahead_of_clock(now: DateTime<Utc>, t: DateTime<Utc>) -> Option<Duration> {
    let ahead = (t - now).to_std().ok()?;
    (ahead > CLOCK_STEP_TOLERANCE).then_some(ahead)
}

/// One alert, as sent.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Alert {
    pub kind: &'static str,
    pub policy: String,
    pub target: String,
    pub provider: String,
    pub message: String,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub at: DateTime<Utc>,
    /// A plain one-line summary without links (Slack's `text`).
    pub text: String,
}

fn kind_name(k: AlertEvent) -> &'static str {
    match k {
        AlertEvent::Failure => "failure",
        AlertEvent::Recovery => "recovery",
        AlertEvent::Stale => "stale",
        AlertEvent::SelectorEmpty => "selector_empty",
        AlertEvent::DeletesHeld => "deletes_held",
        AlertEvent::SlotSkipped => "slot_skipped",
        AlertEvent::Leadership => "leadership",
    }
}

/// The policy field of `leadership` alerts: they are about a node, not a
/// policy.
pub const LEADERSHIP_POLICY: &str = "snapwarden";

/// Policy, target and cause (`budget`, `reload`) of a `deletes_held` alert.
type HeldKey = (String, String, &'static str);

/// Where one policy and target stand, alert-wise.
#[derive(Debug, Clone, Default)]
struct Track {
    failing_since: Option<DateTime<Utc>>,
    failure_sent_at: Option<DateTime<Utc>>,
    stale_sent_at: Option<DateTime<Utc>>,
    /// When a stale alert for a last success in the future was sent. Kept
    /// across recoveries: new successes do not move a last success that
    /// lies ahead, so the alert repeats only every `repeat_after`.
    future_sent_at: Option<DateTime<Utc>>,
}

/// A finished run, as the alerter needs it.
#[derive(Debug, Clone)]
pub struct RunResult<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub provider: &'a str,
    /// `Err(message)` for a failed run.
    pub outcome: Result<(), &'a str>,
    pub consecutive_failures: u32,
}

/// Decides which events to send and hands them to delivery.
pub struct Alerter {
    config: Mutex<Option<AlertsConfig>>,
    tracks: Mutex<HashMap<(String, String), Track>>,
    /// When `deletes_held` was last sent per policy, target and cause.
    held_sent: Mutex<HashMap<HeldKey, DateTime<Utc>>>,
    http: reqwest::Client,
    started: DateTime<Utc>,
    /// The alert command's queue: events run the command one at a time,
    /// in the order they were decided, so a `recovery` never overtakes the
    /// event it recovers from and two payloads never interleave.
    commands: std::sync::OnceLock<tokio::sync::mpsc::Sender<CommandEvent>>,
    /// How many command events may wait (see [`COMMAND_QUEUE`]).
    command_queue: usize,
    /// Bounds the webhook POSTs in flight (see [`WEBHOOK_CONCURRENCY`]).
    webhooks: Arc<tokio::sync::Semaphore>,
    /// Events the command queue had no room for.
    dropped: std::sync::atomic::AtomicU64,
    /// Told of each alert that reached a destination (the daemon records
    /// it in the ledger, so an alert lost to a crash is sent again).
    delivered: std::sync::OnceLock<Delivered>,
}

/// One event for the alert command: its argv, the JSON body, the alert.
type CommandEvent = (Vec<String>, Vec<u8>, Alert);

/// What is told of an alert that reached the operator.
pub type Delivered = Arc<dyn Fn(&Alert) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

impl Alerter {
    pub fn new(config: &Config) -> Arc<Alerter> {
        Arc::new(Alerter::with_alerts(config.alerts.clone()))
    }

    fn with_alerts(alerts: Option<AlertsConfig>) -> Alerter {
        Alerter {
            config: Mutex::new(alerts),
            tracks: Mutex::new(HashMap::new()),
            held_sent: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .user_agent(concat!("snapwarden/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            started: Utc::now(),
            commands: std::sync::OnceLock::new(),
            command_queue: COMMAND_QUEUE,
            webhooks: Arc::new(tokio::sync::Semaphore::new(WEBHOOK_CONCURRENCY)),
            dropped: std::sync::atomic::AtomicU64::new(0),
            delivered: std::sync::OnceLock::new(),
        }
    }

    /// Call `hook` for every alert a destination took (a webhook's 2xx, the
    /// command's exit 0). Set once.
    pub fn on_delivered(&self, hook: Delivered) {
        let _ = self.delivered.set(hook);
    }

    /// Take a reloaded `[alerts]` section.
    pub fn reconfigure(&self, config: &Config) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config.alerts.clone();
    }

    /// A target that was already failing before a restart: its failure was
    /// alerted then; only a reminder is due later.
    pub fn assume_alerted(&self, policy: &str, target: &str, since: DateTime<Utc>) {
        let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        let t = tracks
            .entry((policy.to_string(), target.to_string()))
            .or_default();
        t.failing_since = Some(since);
        t.failure_sent_at = Some(Utc::now());
    }

    /// Forget the alert state of (policy, target) pairs not in `live` (a
    /// target that left its selector, a policy removed by a reload), so it
    /// does not grow without bound as targets churn.
    pub fn forget_except(&self, live: &std::collections::HashSet<(String, String)>) {
        self.tracks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| live.contains(key));
        self.held_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(p, t, _), _| live.contains(&(p.clone(), t.clone())));
    }

    /// A run ended: failure, reminder or recovery, as due.
    pub fn run_finished(&self, run: RunResult<'_>) {
        let now = Utc::now();
        let repeat = self.repeat_after();
        let mut send = None;
        {
            let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
            let t = tracks
                .entry((run.policy.to_string(), run.target.to_string()))
                .or_default();
            match run.outcome {
                Err(message) => {
                    let since = *t.failing_since.get_or_insert(now);
                    let due = match t.failure_sent_at {
                        None => true,
                        Some(sent) => (now - sent).to_std().unwrap_or_default() >= repeat,
                    };
                    if due {
                        t.failure_sent_at = Some(now);
                        send =
                            Some(self.alert(AlertEvent::Failure, &run, message, Some(since), now));
                    }
                }
                Ok(()) => {
                    let was_failing = t.failing_since.is_some() || t.stale_sent_at.is_some();
                    let since = t.failing_since;
                    *t = Track {
                        future_sent_at: t.future_sent_at,
                        ..Track::default()
                    };
                    if was_failing {
                        send = Some(self.alert(
                            AlertEvent::Recovery,
                            &run,
                            "snapshots succeed again",
                            since,
                            now,
                        ));
                    }
                }
            }
        }
        if let Some(a) = send {
            self.deliver(a);
        }
    }

    /// A target with no successful run within `stale_after`.
    pub fn check_stale(
        &self,
        policy: &str,
        target: &str,
        provider: &str,
        last_success: Option<DateTime<Utc>>,
        stale_after: Duration,
        consecutive_failures: u32,
    ) {
        let now = Utc::now();
        let Some(message) = stale_reason(now, last_success, self.started, stale_after) else {
            return;
        };
        let in_future = ahead_of_clock(now, last_success.unwrap_or(self.started)).is_some();
        let repeat = self.repeat_after();
        let mut send = None;
        {
            let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
            let t = tracks
                .entry((policy.to_string(), target.to_string()))
                .or_default();
            let sent_at = if in_future {
                &mut t.future_sent_at
            } else {
                &mut t.stale_sent_at
            };
            let due = match *sent_at {
                None => true,
                Some(sent) => (now - sent).to_std().unwrap_or_default() >= repeat,
            };
            if due {
                *sent_at = Some(now);
                let run = RunResult {
                    policy,
                    target,
                    provider,
                    outcome: Err(&message),
                    consecutive_failures,
                };
                send = Some(self.alert(AlertEvent::Stale, &run, &message, t.failing_since, now));
            }
        }
        if let Some(a) = send {
            self.deliver(a);
        }
    }

    /// The clock stepped back past a policy's fired slots (`target` is the
    /// policy's `schedule` pseudo-target): a `stale` event, since no slot
    /// would have run until the clock caught up again.
    pub fn clock_stepped_back(&self, policy: &str, target: &str, provider: &str, message: &str) {
        self.deliver_failure(
            AlertEvent::Stale,
            policy,
            target,
            provider,
            message,
            Utc::now(),
        );
    }

    /// A post hook left owed by an interrupted run failed when it was run
    /// at start: the application may still be frozen. A `failure`: it
    /// needs a person, and no later run repeats that hook.
    pub fn owed_hook_failed(&self, policy: &str, target: &str, provider: &str, message: &str) {
        self.deliver_failure(
            AlertEvent::Failure,
            policy,
            target,
            provider,
            message,
            Utc::now(),
        );
    }

    /// A target selector that matched nothing.
    pub fn selector_empty(&self, policy: &str, target: &str, provider: &str, message: &str) {
        self.deliver_failure(
            AlertEvent::SelectorEmpty,
            policy,
            target,
            provider,
            message,
            Utc::now(),
        );
    }

    /// Deletions held back on a target: a run's guards (the deletion
    /// budget) or new rules that would delete more than it.
    /// Once per policy, target and cause, then a reminder every
    /// `repeat_after` while it lasts.
    pub fn deletes_held(
        &self,
        policy: &str,
        target: &str,
        provider: &str,
        cause: HoldCause,
        message: &str,
    ) {
        self.once_per_repeat(
            AlertEvent::DeletesHeld,
            policy,
            target,
            provider,
            cause.as_str(),
            message,
        );
    }

    /// A due slot of a target was skipped (its previous run still open):
    /// that slot has no snapshot. Once, then a reminder every
    /// `repeat_after` while slots keep being skipped.
    pub fn slot_skipped(&self, policy: &str, target: &str, provider: &str, message: &str) {
        self.once_per_repeat(
            AlertEvent::SlotSkipped,
            policy,
            target,
            provider,
            "slot_skipped",
            message,
        );
    }

    /// A node of a shared ledger took the lead or lost it (`node` is the
    /// alert's target, its policy `snapwarden`, its provider `ledger`).
    /// Every change is sent: each is rare and each matters.
    pub fn leadership(&self, node: &str, message: &str) {
        self.deliver_failure(
            AlertEvent::Leadership,
            LEADERSHIP_POLICY,
            node,
            "ledger",
            message,
            Utc::now(),
        );
    }

    /// A node cannot reach the shared ledger: nothing is snapshotted by it
    /// meanwhile. Once, then a reminder every `repeat_after`.
    pub fn ledger_unreachable(&self, node: &str, message: &str) {
        self.once_per_repeat(
            AlertEvent::Leadership,
            LEADERSHIP_POLICY,
            node,
            "ledger",
            "ledger_unreachable",
            message,
        );
    }

    /// Send `kind` for (policy, target, cause) unless it was sent less than
    /// `repeat_after` ago.
    fn once_per_repeat(
        &self,
        kind: AlertEvent,
        policy: &str,
        target: &str,
        provider: &str,
        cause: &'static str,
        message: &str,
    ) {
        let now = Utc::now();
        let repeat = self.repeat_after();
        {
            let mut sent = self.held_sent.lock().unwrap_or_else(|p| p.into_inner());
            let key = (policy.to_string(), target.to_string(), cause);
            if let Some(at) = sent.get(&key) {
                if (now - *at).to_std().unwrap_or_default() < repeat {
                    return;
                }
            }
            sent.insert(key, now);
        }
        self.deliver_failure(kind, policy, target, provider, message, now);
    }

    /// Deliver `kind` now for a failure outside any run's streak.
    fn deliver_failure(
        &self,
        kind: AlertEvent,
        policy: &str,
        target: &str,
        provider: &str,
        message: &str,
        now: DateTime<Utc>,
    ) {
        let run = RunResult {
            policy,
            target,
            provider,
            outcome: Err(message),
            consecutive_failures: 0,
        };
        let a = self.alert(kind, &run, message, None, now);
        self.deliver(a);
    }

    fn repeat_after(&self) -> Duration {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.repeat_after)
            .unwrap_or(Duration::from_secs(86_400))
    }

    fn alert(
        &self,
        kind: AlertEvent,
        run: &RunResult<'_>,
        message: &str,
        first_failed_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Alert {
        let k = kind_name(kind);
        let head = match kind {
            AlertEvent::Failure => "FAILURE",
            AlertEvent::Recovery => "RECOVERED",
            AlertEvent::Stale => "STALE",
            AlertEvent::SelectorEmpty => "SELECTOR EMPTY",
            AlertEvent::DeletesHeld => "DELETES HELD",
            AlertEvent::SlotSkipped => "SLOT SKIPPED",
            AlertEvent::Leadership => "LEADERSHIP",
        };
        let mut text = format!(
            "snapwarden: {head} {}/{} on {}",
            run.policy, run.target, run.provider
        );
        match kind {
            AlertEvent::Recovery => {}
            AlertEvent::Failure => text.push_str(&format!(
                ": {message} ({} consecutive)",
                run.consecutive_failures
            )),
            _ => text.push_str(&format!(": {message}")),
        }
        Alert {
            kind: k,
            policy: run.policy.to_string(),
            target: run.target.to_string(),
            provider: run.provider.to_string(),
            message: message.to_string(),
            first_failed_at,
            consecutive_failures: run.consecutive_failures,
            at,
            text,
        }
    }

    /// Send in the background to every configured destination, if the
    /// event kind is enabled.
    fn deliver(&self, alert: Alert) {
        let Some(cfg) = self
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        if !cfg.on.iter().any(|k| kind_name(*k) == alert.kind) {
            return;
        }
        info!(kind = alert.kind, policy = %alert.policy, target = %alert.target, "alert: {}", alert.text);
        let body = match serde_json::to_vec(&alert) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "cannot encode an alert");
                return;
            }
        };
        let delivered = self.delivered.get().cloned();
        if let Some(url) = cfg.webhook_url.clone() {
            let http = self.http.clone();
            let headers = cfg.webhook_headers.clone();
            let body = body.clone();
            let alert = alert.clone();
            let delivered = delivered.clone();
            let webhooks = self.webhooks.clone();
            tokio::spawn(async move {
                let Ok(_permit) = webhooks.acquire_owned().await else {
                    return;
                };
                for attempt in 1..=WEBHOOK_ATTEMPTS {
                    let mut req = http
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                    for (name, value) in &headers {
                        req = req.header(name.as_str(), value.expose());
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            if let Some(hook) = &delivered {
                                hook(&alert).await;
                            }
                            return;
                        }
                        Ok(r) => {
                            warn!(status = %r.status(), attempt, "alert webhook refused the event")
                        }
                        Err(e) => {
                            warn!(error = %crate::providers::http::transport_error("webhook", &e), attempt, "alert webhook unreachable")
                        }
                    }
                    if attempt < WEBHOOK_ATTEMPTS {
                        tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                    }
                }
                metrics::alert_delivery_failed("webhook");
            });
        }
        if let Some(command) = cfg.command.clone() {
            let queue = self.commands.get_or_init(|| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<CommandEvent>(self.command_queue);
                tokio::spawn(async move {
                    while let Some((command, body, alert)) = rx.recv().await {
                        match run_command(&command, &body).await {
                            Ok(()) => {
                                if let Some(hook) = &delivered {
                                    hook(&alert).await;
                                }
                            }
                            Err(e) => {
                                warn!(command = %command.join(" "), error = %e, "alert command failed");
                                metrics::alert_delivery_failed("command");
                            }
                        }
                    }
                });
                tx
            });
            let (kind, policy, target) = (alert.kind, alert.policy.clone(), alert.target.clone());
            match queue.try_send((command, body, alert)) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    self.dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    warn!(kind, policy = %policy, target = %target, queued = self.command_queue, "alert command is behind; event not queued (a failure or skipped slot is sent again at the next start)");
                    metrics::alert_delivery_failed("command");
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    warn!("alert command queue closed; event not delivered");
                    metrics::alert_delivery_failed("command");
                }
            }
        }
    }
}

/// Why a policy and target is stale at `now`, if it is: no successful
/// snapshot within `stale_after` of its last success (or of the daemon's
/// start, `started`, when it has none).
fn stale_reason(
    now: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    started: DateTime<Utc>,
    stale_after: Duration,
) -> Option<String> {
    let base = last_success.unwrap_or(started);
    // A time ahead of the clock is not "fresh": the clock stepped back
    // after it was recorded, and the slots up to it may never run.
    if let Some(ahead) = ahead_of_clock(now, base) {
        let ahead = humantime::format_duration(Duration::from_secs(ahead.as_secs()));
        return Some(match last_success {
            Some(t) => format!(
                "last success is in the future ({}, {ahead} ahead of this host's clock): clock stepped back?",
                t.to_rfc3339()
            ),
            None => format!(
                "no successful snapshot yet, and the daemon's start is in the future ({}, {ahead} ahead of this host's clock): clock stepped back?",
                started.to_rfc3339()
            ),
        });
    }
    if (now - base).to_std().unwrap_or_default() < stale_after {
        return None;
    }
    Some(match last_success {
        Some(t) => format!(
            "no successful snapshot since {} (stale after {})",
            t.to_rfc3339(),
            humantime::format_duration(stale_after)
        ),
        None => format!(
            "no successful snapshot yet, {} after start",
            humantime::format_duration(stale_after)
        ),
    })
}

/// Run the alert command with the event JSON on stdin.
async fn run_command(command: &[String], body: &[u8]) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("empty command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(body)
            .await
            .map_err(|e| format!("cannot write the event: {e}"))?;
    }
    match tokio::time::timeout(DELIVERY_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("exited with {status}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {}s", DELIVERY_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerter_with(alerts: AlertsConfig, command_queue: usize) -> Alerter {
        Alerter {
            config: Mutex::new(Some(alerts)),
            tracks: Mutex::new(HashMap::new()),
            held_sent: Mutex::new(HashMap::new()),
            http: reqwest::Client::new(),
            started: Utc::now(),
            commands: std::sync::OnceLock::new(),
            command_queue,
            webhooks: Arc::new(tokio::sync::Semaphore::new(WEBHOOK_CONCURRENCY)),
            dropped: std::sync::atomic::AtomicU64::new(0),
            delivered: std::sync::OnceLock::new(),
        }
    }

    fn alerts_config(webhook: Option<String>, command: Option<Vec<String>>) -> AlertsConfig {
        AlertsConfig {
            webhook_url: webhook,
            webhook_headers: Default::default(),
            command,
            on: vec![AlertEvent::Failure],
            repeat_after: Duration::from_secs(3600),
        }
    }

    fn fail(a: &Alerter, target: &str) {
        a.run_finished(RunResult {
            policy: "db",
            target,
            provider: "qc",
            outcome: Err("boom"),
            consecutive_failures: 1,
        });
    }

    /// The alert command's queue is bounded; events past it are
    /// counted (and logged), never an unbounded backlog of hours.
    #[tokio::test]
    async fn the_command_queue_is_bounded() {
        let command = vec!["sleep".to_string(), "5".to_string()];
        let a = alerter_with(alerts_config(None, Some(command)), 2);
        for i in 0..6 {
            fail(&a, &format!("vol-{i}"));
        }
        let dropped = a.dropped.load(std::sync::atomic::Ordering::Relaxed);
        assert!((3..=4).contains(&dropped), "{dropped} dropped");
    }

    /// Webhook deliveries are bounded in flight; every event
    /// still arrives.
    #[tokio::test]
    async fn webhook_posts_in_flight_are_bounded() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let (n, p, d) = (now.clone(), peak.clone(), done.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let (n, p, d) = (n.clone(), p.clone(), d.clone());
                async move {
                    let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(in_flight, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    d.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let a = alerter_with(alerts_config(Some(url), None), COMMAND_QUEUE);
        for i in 0..12 {
            fail(&a, &format!("vol-{i}"));
        }
        tokio::time::timeout(Duration::from_secs(10), async {
            while done.load(Ordering::SeqCst) < 12 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("every event delivered");
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=WEBHOOK_CONCURRENCY).contains(&peak),
            "{peak} in flight"
        );
    }

    /// Alert state of targets that are gone is forgotten.
    #[test]
    fn alert_state_of_gone_targets_is_forgotten() {
        let a = alerter_with(alerts_config(None, None), COMMAND_QUEUE);
        a.assume_alerted("db", "vol-1", Utc::now());
        a.assume_alerted("db", "vol-2", Utc::now());
        let live = [("db".to_string(), "vol-2".to_string())].into();
        a.forget_except(&live);
        let tracks = a.tracks.lock().expect("tracks");
        assert_eq!(tracks.len(), 1);
        assert!(tracks.contains_key(&("db".to_string(), "vol-2".to_string())));
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + h * 3600, 0).expect("valid time")
    }

    #[test]
    fn stale_after_stale_after_and_fresh_before() {
        assert_eq!(stale_reason(at(1), Some(at(0)), at(0), 2 * HOUR), None);
        let why = stale_reason(at(3), Some(at(0)), at(0), 2 * HOUR).expect("stale");
        assert!(why.contains("no successful snapshot since"), "{why}");
        let why = stale_reason(at(3), None, at(0), 2 * HOUR).expect("stale");
        assert!(why.contains("no successful snapshot yet"), "{why}");
    }

    /// A last success 8 h in the future (recorded while the clock was 8 h
    /// ahead, then stepped back) is suspicious, not fresh: no slot may run
    /// for 8 h, and nothing else would say so.
    #[test]
    fn a_last_success_in_the_future_is_stale_not_fresh() {
        let why = stale_reason(at(0), Some(at(8)), at(-1), 2 * HOUR).expect("suspicious");
        assert!(why.contains("in the future"), "{why}");
        assert!(why.contains("clock stepped back?"), "{why}");
        // A daemon started "in the future" and never successful since.
        let why = stale_reason(at(0), None, at(8), 2 * HOUR).expect("suspicious");
        assert!(why.contains("clock stepped back?"), "{why}");
        // Within the tolerance of a small time-sync step: fresh.
        let just_ahead = at(0) + chrono::Duration::seconds(5);
        assert_eq!(
            stale_reason(at(0), Some(just_ahead), at(-1), 2 * HOUR),
            None
        );
    }

    /// New successes do not move a last success that lies ahead (it is the
    /// newest slot): the alert about it must not flap with every recovery.
    #[test]
    fn a_future_last_success_is_alerted_once_per_repeat_not_after_every_run() {
        let alerter = Alerter::with_alerts(None);
        let future = Some(Utc::now() + chrono::Duration::hours(8));
        let track = |a: &Alerter| {
            a.tracks
                .lock()
                .expect("tracks")
                .get(&("db".to_string(), "vol-1".to_string()))
                .cloned()
                .unwrap_or_default()
        };
        alerter.check_stale("db", "vol-1", "qc", future, 2 * HOUR, 0);
        let first = track(&alerter).future_sent_at.expect("alerted");
        alerter.run_finished(RunResult {
            policy: "db",
            target: "vol-1",
            provider: "qc",
            outcome: Ok(()),
            consecutive_failures: 0,
        });
        alerter.check_stale("db", "vol-1", "qc", future, 2 * HOUR, 0);
        let t = track(&alerter);
        assert_eq!(t.future_sent_at, Some(first), "not sent again");
        assert_eq!(t.stale_sent_at, None, "so no recovery follows either");
    }
}
