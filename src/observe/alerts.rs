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
use crate::observe::metrics;

/// How long one webhook POST or command may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhook attempts per event (with backoff between them).
const WEBHOOK_ATTEMPTS: u32 = 3;

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
    }
}

/// Policy, target and cause (`budget`, `reload`) of a `deletes_held` alert.
type HeldKey = (String, String, &'static str);

/// Where one policy and target stand, alert-wise.
#[derive(Debug, Clone, Default)]
struct Track {
    failing_since: Option<DateTime<Utc>>,
    failure_sent_at: Option<DateTime<Utc>>,
    stale_sent_at: Option<DateTime<Utc>>,
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
    commands: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(Vec<String>, Vec<u8>)>>,
}

impl Alerter {
    pub fn new(config: &Config) -> Arc<Alerter> {
        Arc::new(Alerter {
            config: Mutex::new(config.alerts.clone()),
            tracks: Mutex::new(HashMap::new()),
            held_sent: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .user_agent(concat!("snapwarden/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            started: Utc::now(),
            commands: std::sync::OnceLock::new(),
        })
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
                    *t = Track::default();
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
        let base = last_success.unwrap_or(self.started);
        if (now - base).to_std().unwrap_or_default() < stale_after {
            return;
        }
        let repeat = self.repeat_after();
        let mut send = None;
        {
            let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
            let t = tracks
                .entry((policy.to_string(), target.to_string()))
                .or_default();
            let due = match t.stale_sent_at {
                None => true,
                Some(sent) => (now - sent).to_std().unwrap_or_default() >= repeat,
            };
            if due {
                t.stale_sent_at = Some(now);
                let message = match last_success {
                    Some(t) => format!(
                        "no successful snapshot since {} (stale after {})",
                        t.to_rfc3339(),
                        humantime::format_duration(stale_after)
                    ),
                    None => format!(
                        "no successful snapshot yet, {} after start",
                        humantime::format_duration(stale_after)
                    ),
                };
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

    /// A target selector that matched nothing.
    pub fn selector_empty(&self, policy: &str, target: &str, provider: &str, message: &str) {
        let run = RunResult {
            policy,
            target,
            provider,
            outcome: Err(message),
            consecutive_failures: 0,
        };
        let a = self.alert(AlertEvent::SelectorEmpty, &run, message, None, Utc::now());
        self.deliver(a);
    }

    /// Deletions held back on a target: the deletion budget was exceeded
    /// (`cause` "budget") or a reload would delete more than it ("reload").
    /// Once per policy, target and cause, then a reminder every
    /// `repeat_after` while it lasts.
    pub fn deletes_held(
        &self,
        policy: &str,
        target: &str,
        provider: &str,
        cause: &'static str,
        message: &str,
    ) {
        self.once_per_repeat(
            AlertEvent::DeletesHeld,
            policy,
            target,
            provider,
            cause,
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
        let text = match kind {
            AlertEvent::Failure => format!(
                "snapwarden: FAILURE {}/{} on {}: {} ({} consecutive)",
                run.policy, run.target, run.provider, message, run.consecutive_failures
            ),
            AlertEvent::Recovery => format!(
                "snapwarden: RECOVERED {}/{} on {}",
                run.policy, run.target, run.provider
            ),
            AlertEvent::Stale => format!(
                "snapwarden: STALE {}/{} on {}: {}",
                run.policy, run.target, run.provider, message
            ),
            AlertEvent::SelectorEmpty => format!(
                "snapwarden: SELECTOR EMPTY {}/{} on {}: {}",
                run.policy, run.target, run.provider, message
            ),
            AlertEvent::DeletesHeld => format!(
                "snapwarden: DELETES HELD {}/{} on {}: {}",
                run.policy, run.target, run.provider, message
            ),
            AlertEvent::SlotSkipped => format!(
                "snapwarden: SLOT SKIPPED {}/{} on {}: {}",
                run.policy, run.target, run.provider, message
            ),
        };
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
        if let Some(url) = cfg.webhook_url.clone() {
            let http = self.http.clone();
            let headers = cfg.webhook_headers.clone();
            let body = body.clone();
            tokio::spawn(async move {
                for attempt in 1..=WEBHOOK_ATTEMPTS {
                    let mut req = http
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                    for (name, value) in &headers {
                        req = req.header(name.as_str(), value.expose());
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_success() => return,
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
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Vec<String>, Vec<u8>)>();
                tokio::spawn(async move {
                    while let Some((command, body)) = rx.recv().await {
                        if let Err(e) = run_command(&command, &body).await {
                            warn!(command = %command.join(" "), error = %e, "alert command failed");
                            metrics::alert_delivery_failed("command");
                        }
                    }
                });
                tx
            });
            if queue.send((command, body)).is_err() {
                warn!("alert command queue closed; event not delivered");
                metrics::alert_delivery_failed("command");
            }
        }
    }
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
