//! The slot loop's state: each policy's next slot, the runs and selector
//! listings in flight, and firing a due slot into runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::alerting::log_report;
use super::clock::{clock_stepped_back, schedule_base};
use super::SELECTOR_TARGET;
use crate::config::{Config, Policy};
use crate::engine::{Engine, Resolved, RunOutcome, RunReport};
use crate::observe::alerts::{Alerter, RunResult};
use crate::observe::events::{self, SlotsMissed};
use crate::observe::metrics;
use crate::schedule::Schedule;
use crate::state::{Ledger, Pause};

/// A selector policy's slot whose targets were being resolved.
pub(super) struct Resolution {
    pub(super) policy: Policy,
    pub(super) slot: DateTime<Utc>,
    pub(super) resolved: Resolved,
}

/// Why the schedule is being (re)computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Occasion {
    /// The process starts: a missed slot of a `catch_up` policy runs, and
    /// the operations left in flight are taken up too.
    Startup,
    /// A reload or the periodic sweep.
    Running,
}

/// The loop's state between wake-ups.
pub(super) struct Scheduler {
    pub(super) state: Arc<dyn Ledger>,
    pub(super) engine: Arc<Engine>,
    pub(super) alerter: Arc<Alerter>,
    /// The runs in flight.
    pub(super) tasks: JoinSet<RunReport>,
    /// Selector policies list their targets before their intents are
    /// written; the listing runs here so the loop never waits on a cloud.
    pub(super) resolving: JoinSet<Resolution>,
    /// Each policy's next slot, in the order of `config.policies` (an
    /// index, not a copy of the policy: hundreds of policies stay in
    /// memory once).
    pub(super) scheduled: Vec<Option<DateTime<Utc>>>,
    /// Consecutive failed listings per selector policy.
    pub(super) selector_failures: HashMap<String, u32>,
    /// A node that took over a shared ledger's lead also runs, at start,
    /// a slot that came due at most this long ago (during the handover),
    /// whatever `catch_up` says: no slot falls into the gap.
    pub(super) takeover_grace: Option<Duration>,
    /// This node is the shared ledger's first leader: a policy that never
    /// fired has no handover slot (see [`handover_slots`]).
    pub(super) first_leader: bool,
    /// Per policy (as `scheduled`): with `catch_up`, the end of the
    /// blackout window its last slot fell in; one run follows it then.
    pub(super) after_blackout: Vec<Option<DateTime<Utc>>>,
    /// The pauses in force, read every second.
    pub(super) pauses: Vec<Pause>,
}

impl Scheduler {
    pub(super) fn new(
        state: Arc<dyn Ledger>,
        engine: Arc<Engine>,
        alerter: Arc<Alerter>,
    ) -> Scheduler {
        Scheduler {
            state,
            engine,
            alerter,
            tasks: JoinSet::new(),
            resolving: JoinSet::new(),
            scheduled: Vec::new(),
            selector_failures: HashMap::new(),
            takeover_grace: None,
            first_leader: false,
            after_blackout: Vec::new(),
            pauses: Vec::new(),
        }
    }

    /// Take up runs open in the ledger that no task carries out (see
    /// [`Engine::take_up_abandoned`](crate::engine::Engine::take_up_abandoned)); at start-up also the operations in
    /// flight. A ledger that cannot be read now is tried again next sweep.
    pub(super) async fn take_up_abandoned(&mut self, config: &Config, occasion: Occasion) {
        match self
            .engine
            .take_up_abandoned(config, occasion == Occasion::Startup)
            .await
        {
            Ok(runs) => {
                for run in runs {
                    self.tasks.spawn(run);
                }
            }
            Err(e) => {
                error!(error = %e, "cannot take up the work left in flight; trying again shortly")
            }
        }
    }

    /// Compute every policy's next slot; at start-up, run one missed slot for
    /// policies with `catch_up`. A ledger that cannot be read for a policy's
    /// last slot never stops the daemon: the policy is scheduled from now
    /// (the ledger still keeps any slot single).
    pub(super) async fn schedule_all(&mut self, config: &Config, occasion: Occasion) {
        let now = Utc::now();
        let mut out = Vec::with_capacity(config.policies.len());
        let mut after_blackout = Vec::with_capacity(config.policies.len());
        for policy in &config.policies {
            let last = match self.state.last_slot(&policy.name).await {
                Ok(last) => last,
                Err(e) => {
                    error!(policy = %policy.name, error = %e, "cannot read the policy's last slot; scheduling from now");
                    None
                }
            };
            let mut follow_up = blackout_follow_up(policy, last);
            if occasion == Occasion::Startup {
                // The handover's slots include the newest one due, if
                // it is recent: then no catch-up is left to do.
                let handover = self
                    .takeover_grace
                    .filter(|_| last.is_some() || !self.first_leader)
                    .map(|grace| handover_slots(&policy.schedule, last, now, grace))
                    .unwrap_or_default();
                for &slot in &handover {
                    info!(policy = %policy.name, slot = %slot, "running a slot that came due during the handover");
                    self.fire(policy, slot).await;
                }
                if let (Some(last), Some(missed), true) = (
                    last,
                    policy.schedule.latest_at_or_before(now),
                    handover.is_empty() && policy.catch_up,
                ) {
                    if missed > last {
                        info!(policy = %policy.name, slot = %missed, "catching up one missed slot");
                        self.fire(policy, missed).await;
                        follow_up = blackout_follow_up(policy, Some(missed));
                    }
                }
                if !handover.is_empty() {
                    follow_up = blackout_follow_up(policy, handover.last().copied());
                }
            }
            // A window that ended while the daemon was down: its run now.
            if let Some(end) = follow_up.filter(|end| *end <= now) {
                info!(policy = %policy.name, slot = %end, "running one slot after the blackout window");
                self.fire(policy, end).await;
                follow_up = None;
            }
            after_blackout.push(follow_up);
            let (base, ahead) = schedule_base(now, last);
            if let (Some(ahead), Some(last)) = (ahead, last) {
                clock_stepped_back(&self.alerter, policy, &format!(
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
        self.scheduled = out;
        self.after_blackout = after_blackout;
        // At start-up and after a reload (policies may have come or gone).
        self.publish_pauses(&config.policies);
    }

    pub(super) async fn fire_due(&mut self, policies: &[Policy]) {
        let now = Utc::now();
        for (i, policy) in policies.iter().enumerate() {
            if let Some(end) = self.after_blackout.get(i).copied().flatten() {
                if end <= now {
                    self.after_blackout[i] = None;
                    info!(policy = %policy.name, slot = %end, "running one slot after the blackout window");
                    self.fire(policy, end).await;
                }
            }
            let Some(slot) = self.scheduled.get(i).copied().flatten() else {
                continue;
            };
            if slot > now {
                continue;
            }
            // Inside a blackout window the slot's runs are recorded
            // skipped (the engine starts nothing); with catch_up, one run
            // follows the window.
            if let Some(end) = blackout_follow_up(policy, Some(slot)) {
                if let Some(pending) = self.after_blackout.get_mut(i) {
                    *pending = Some(end);
                }
            }
            self.fire(policy, slot).await;
            // Slots that passed while we were busy or suspended are not run
            // in a burst: skip to the next one after now.
            let mut next = policy.schedule.next_after(slot);
            if let Some(n) = next {
                if n <= now {
                    events::emit(SlotsMissed {
                        policy: &policy.name,
                    });
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
                        self.alerter
                            .slot_skipped(&policy.name, target, &policy.provider, &message);
                    }
                }
            }
            metrics::schedule(&policy.name, policy.schedule.nominal_interval(), next);
            self.scheduled[i] = next;
        }
    }

    /// Fire one slot. A policy with a selector first resolves its targets in
    /// the background; [`Scheduler::fire_targets`] follows when that is done.
    pub(super) async fn fire(&mut self, policy: &Policy, slot: DateTime<Utc>) {
        if let Some(pause) = self.pause_for(&policy.name).cloned() {
            return self.skip_paused(policy, slot, &pause).await;
        }
        if policy.targets.select.is_none() {
            return self.fire_targets(policy, slot, &policy.targets.named).await;
        }
        let engine = self.engine.clone();
        let policy = policy.clone();
        self.resolving.spawn(async move {
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
    pub(super) async fn fire_targets(
        &mut self,
        policy: &Policy,
        slot: DateTime<Utc>,
        targets: &[String],
    ) {
        let begun = match self.engine.begin_slot(policy, targets, slot).await {
            Ok(b) => b,
            Err(e) => {
                // Nothing is created for a slot that cannot be recorded.
                error!(policy = %policy.name, slot = %slot, targets = targets.len(), error = %e, "cannot record the intents; no target is run for this slot");
                let message =
                    format!("cannot record the intent for slot {slot} ({e}); nothing was created");
                for target in targets {
                    metrics::intent_unrecorded(&policy.name);
                    self.alerter.run_finished(RunResult {
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
                    let engine = self.engine.clone();
                    let policy = shared.clone();
                    self.tasks
                        .spawn(async move { engine.execute(&policy, begun).await });
                }
                Err(outcome) => {
                    if let RunOutcome::Skipped(why) = &outcome {
                        // A due slot without a snapshot is never silent.
                        self.alerter.slot_skipped(
                            &policy.name,
                            &target,
                            &policy.provider,
                            &format!("slot {} skipped: {why}", slot.to_rfc3339()),
                        );
                    }
                    log_report(&RunReport {
                        policy: policy.name.clone(),
                        provider: policy.provider.clone(),
                        target,
                        slot,
                        outcome,
                    })
                }
            }
        }
        self.mark_fired(policy, slot).await;
    }

    /// Record that `slot` fired for `policy` (never moving back: a slow
    /// selector listing may finish after a later slot was marked).
    async fn mark_fired(&self, policy: &Policy, slot: DateTime<Utc>) {
        let marked = match self.state.last_slot(&policy.name).await {
            Ok(last) if last.is_none_or(|last| last < slot) => {
                self.state.set_last_slot(&policy.name, slot).await
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = marked {
            // The in-memory schedule has moved on; after a restart the slot
            // may be offered again, and its recorded intents keep it single.
            error!(policy = %policy.name, slot = %slot, error = %e, "cannot record the fired slot");
        }
    }
}

impl Scheduler {
    /// The pause in force for `policy`: its own, else the every-policy one.
    pub(super) fn pause_for(&self, policy: &str) -> Option<&Pause> {
        self.pauses
            .iter()
            .find(|p| p.policy.as_deref() == Some(policy))
            .or_else(|| self.pauses.iter().find(|p| p.policy.is_none()))
    }

    /// Read the pauses in force (every second): a pause or resume written
    /// by `snapwarden pause` is honoured within a second. True when they
    /// changed. A ledger that cannot be read keeps the pauses known.
    pub(super) async fn refresh_pauses(&mut self, policies: &[Policy]) -> bool {
        let now = Utc::now();
        let pauses = match self.state.pauses(now).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot read the pauses; keeping the ones known");
                return false;
            }
        };
        if pauses == self.pauses {
            return false;
        }
        for p in pauses.iter().filter(|p| !self.pauses.contains(p)) {
            let scope = p.policy.as_deref().unwrap_or("every policy");
            info!(scope, by = %p.by, until = ?p.until, reason = %p.reason, "paused: its slots are skipped");
        }
        for p in self.pauses.iter().filter(|p| !pauses.contains(p)) {
            let scope = p.policy.as_deref().unwrap_or("every policy");
            info!(scope, "resumed");
        }
        self.pauses = pauses;
        self.publish_pauses(policies);
        true
    }

    /// `snapwarden_policy_paused` of every policy: 0 from the start, not
    /// absent until the first pause.
    pub(super) fn publish_pauses(&self, policies: &[Policy]) {
        for policy in policies {
            metrics::policy_paused(&policy.name, self.pause_for(&policy.name).is_some());
        }
    }

    /// A slot of a paused policy: its runs recorded skipped (reason
    /// `paused`), nothing started, no alert; the slot counts as fired.
    async fn skip_paused(&mut self, policy: &Policy, slot: DateTime<Utc>, pause: &Pause) {
        let mut targets = policy.targets.named.clone();
        if policy.targets.select.is_some() {
            // No listing while paused: the targets the ledger knows.
            match self.state.summaries().await {
                Ok(summaries) => {
                    for t in crate::engine::ledger_targets(policy, &summaries) {
                        if !targets.contains(&t) {
                            targets.push(t);
                        }
                    }
                }
                Err(e) => {
                    warn!(policy = %policy.name, error = %e, "cannot read the targets of a paused selector")
                }
            }
        }
        let why = format!("{} {}", crate::engine::PAUSED_SKIP, pause.describe());
        if let Err(e) = self
            .engine
            .skip_slot(policy, &targets, slot, "paused", &why)
            .await
        {
            error!(policy = %policy.name, slot = %slot, error = %e, "cannot record the paused slot");
        }
        self.mark_fired(policy, slot).await;
    }
}

/// With `catch_up`, when a slot at `last` fell inside the policy's
/// blackout window: the window's end, when one run follows it.
fn blackout_follow_up(policy: &Policy, last: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    if !policy.catch_up {
        return None;
    }
    policy.blackout.as_ref()?.covering(last?)
}

/// The slots of `schedule` after `last` that came due at most `grace`
/// before `now`: the ones a new leader runs because they fell into the
/// handover (oldest first; every one, so none is a silent gap: those that
/// overlap a run still open are recorded skipped and alerted). A policy
/// that never fired (`last` None) runs the newest slot of the window
/// only: the leader before may have died before its first slot, but a
/// restart must not run every slot of the last minute. (The ledger's
/// first leader, with no leader before it, runs none: as a single
/// daemon, it starts with the next slot.)
fn handover_slots(
    schedule: &Schedule,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Vec<DateTime<Utc>> {
    let Ok(grace) = chrono::Duration::from_std(grace) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let window_start = now - grace - chrono::Duration::seconds(1);
    let mut after = last.map_or(window_start, |last| last.max(window_start));
    while let Some(slot) = schedule.next_after(after) {
        if slot > now {
            break;
        }
        if now - slot <= grace {
            out.push(slot);
        }
        after = slot;
    }
    if last.is_none() {
        out.drain(..out.len().saturating_sub(1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("an RFC 3339 time")
    }

    fn every_10s() -> Schedule {
        Schedule::parse("*/10 * * * * *", chrono_tz::UTC).expect("valid")
    }

    const GRACE: Duration = Duration::from_secs(60);

    #[test]
    fn the_slots_after_the_last_fired_within_the_grace_are_run() {
        let slots = handover_slots(
            &every_10s(),
            Some(at("2026-01-01T00:00:20Z")),
            at("2026-01-01T00:00:45Z"),
            GRACE,
        );
        assert_eq!(
            slots,
            [at("2026-01-01T00:00:30Z"), at("2026-01-01T00:00:40Z")]
        );
    }

    #[test]
    fn slots_older_than_the_grace_are_not_run() {
        let slots = handover_slots(
            &every_10s(),
            Some(at("2026-01-01T00:00:00Z")),
            at("2026-01-01T00:02:05Z"),
            GRACE,
        );
        assert_eq!(slots.first(), Some(&at("2026-01-01T00:01:10Z")));
        assert_eq!(slots.last(), Some(&at("2026-01-01T00:02:00Z")));
        assert_eq!(slots.len(), 6);
    }

    #[test]
    fn a_policy_that_never_fired_runs_the_slots_of_the_grace_window() {
        // The leader before died before the policy's first slot: that
        // slot is the new leader's, not a silent gap.
        // (the newest one only: not every slot of the last minute).
        let slots = handover_slots(&every_10s(), None, at("2026-01-01T00:00:25Z"), GRACE);
        assert_eq!(slots, [at("2026-01-01T00:00:20Z")]);
    }

    #[test]
    fn nothing_due_since_the_last_slot_runs_nothing() {
        let slots = handover_slots(
            &every_10s(),
            Some(at("2026-01-01T00:00:20Z")),
            at("2026-01-01T00:00:25Z"),
            GRACE,
        );
        assert!(slots.is_empty(), "{slots:?}");
    }
}
