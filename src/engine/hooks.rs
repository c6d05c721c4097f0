//! A policy's pre and post snapshot hooks around a create.
//!
//! Order: the post hook is recorded as owed (fenced, before anything is
//! frozen), the pre hook runs, the create is sent, and the post hook runs
//! as soon as the cloud has accepted it (the point in time is taken), or
//! when the create failed, timed out or was interrupted. A thaw is never
//! lost: a process that dies between pre and post leaves the post hook
//! owed in the ledger, and the next daemon to start (or the node that
//! takes over) runs it once, before anything else.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::{Engine, EngineError, ProviderSlot};
use crate::config::{Config, Hooks, OnPreFailure, Policy};
use crate::hooks::{Hook, HookContext, Outcome, Phase};
use crate::providers::Marker;
use crate::state::OwedHook;

/// The hook time limit for a post hook owed by a policy no longer
/// configured.
const DEFAULT_HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The post hook a create owes: run once, on acceptance or at the end.
pub(super) struct Thaw<'a> {
    engine: &'a Engine,
    run_id: i64,
    /// None: no post hook (no hooks, or a pre hook only).
    post: Option<(&'a [String], std::time::Duration)>,
    cx: HookContext,
    /// What happened once it ran: `Some(Ok)` or `Some(Err(why))`.
    ran: Mutex<Option<Result<(), String>>>,
}

impl Thaw<'_> {
    /// Run the post hook with `outcome`, unless it already ran. A failure
    /// is kept for the run's outcome; the ledger forgets the debt either
    /// way (the hook ran to its end).
    pub(super) async fn run(&self, outcome: Outcome) {
        let Some((argv, timeout)) = self.post else {
            return;
        };
        {
            let mut ran = self.ran.lock().unwrap_or_else(|p| p.into_inner());
            if ran.is_some() {
                return;
            }
            // Taken before the hook runs: a second caller does not wait
            // for it, and never runs it again.
            *ran = Some(Ok(()));
        }
        let result = self
            .engine
            .run_hook(argv, timeout, Phase::Post, &self.cx, Some(outcome))
            .await;
        if let Err(e) = self.engine.state.post_hook_ran(self.run_id).await {
            // Owed still: the next start runs it again, which a thaw
            // tolerates; losing it would not be tolerated.
            error!(run = self.run_id, error = %e, "cannot record that the post hook ran; it will run again at the next start");
        }
        *self.ran.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(result.map_err(|e| e.to_string()));
    }

    /// Why the post hook failed, if it ran and failed.
    fn failure(&self) -> Option<String> {
        match &*self.ran.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Err(why)) => Some(why.clone()),
            _ => None,
        }
    }
}

impl Engine {
    /// Run `argv` as a hook of `phase`, without the variables secrets come
    /// from.
    async fn run_hook(
        &self,
        argv: &[String],
        timeout: std::time::Duration,
        phase: Phase,
        cx: &HookContext,
        outcome: Option<Outcome>,
    ) -> Result<(), crate::hooks::HookError> {
        let scrub = self
            .hook_scrub_env
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Hook {
            argv,
            timeout,
            scrub_env: &scrub,
        }
        .run(phase, cx, outcome)
        .await
    }

    /// [`Engine::create_and_follow`] inside the policy's hooks (see the
    /// module). Without hooks, or past the run's deadline (nothing will be
    /// created), it is the create alone.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_with_hooks(
        &self,
        ps: &ProviderSlot,
        policy: &Policy,
        target: &str,
        run_id: i64,
        marker: &Marker,
        name: &str,
        full: bool,
        deadline: DateTime<Utc>,
        ambiguous: bool,
    ) -> Result<(), EngineError> {
        let none = Thaw {
            engine: self,
            run_id,
            post: None,
            cx: hook_context(policy, target, marker.slot, name),
            ran: Mutex::new(None),
        };
        super::outside_blackout(policy)?;
        let Some(hooks) = policy.hooks.as_ref().filter(|_| Utc::now() < deadline) else {
            return self
                .create_and_follow(
                    ps, policy, target, run_id, marker, name, full, deadline, ambiguous, &none,
                )
                .await;
        };
        // Nothing is frozen by a process that may no longer act.
        self.or_shutdown(std::future::ready(())).await?;
        if let Some(post) = &hooks.post {
            self.state
                .owe_post_hook(run_id, post, policy.resource.as_str(), Utc::now())
                .await?;
        }
        let thaw = Thaw {
            post: hooks.post.as_deref().map(|p| (p, hooks.timeout)),
            ..none
        };
        let pre_failure = self.pre_hook(hooks, &thaw.cx).await;
        if let (Some(why), OnPreFailure::Skip) = (&pre_failure, hooks.on_pre_failure) {
            thaw.run(Outcome::PreFailed).await;
            let mut msg = format!("{why}; no snapshot taken (on_pre_failure = \"skip\")");
            if let Some(post) = thaw.failure() {
                msg.push_str(&format!("; and {post}"));
            }
            return Err(EngineError::Hook(msg));
        }
        let result = self
            .create_and_follow(
                ps, policy, target, run_id, marker, name, full, deadline, ambiguous, &thaw,
            )
            .await;
        thaw.run(match &result {
            Ok(()) => Outcome::Accepted,
            Err(EngineError::TimedOut(_)) => Outcome::TimedOut,
            Err(EngineError::Shutdown) => Outcome::Interrupted,
            Err(_) => Outcome::Failed,
        })
        .await;
        match (result, thaw.failure()) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(post)) => Err(EngineError::Hook(format!(
                "the snapshot was taken, but {post}: the application may still be frozen"
            ))),
            (Ok(()), None) => {
                if let Some(why) = pre_failure {
                    // Taken anyway (on_pre_failure = "snapshot"): said in
                    // the log; the run itself succeeded.
                    warn!(policy = %policy.name, target, error = %why, "the snapshot was taken without a successful pre hook (crash-consistent)");
                }
                Ok(())
            }
        }
    }

    /// Run the pre hook, if any: why it failed, if it did.
    async fn pre_hook(&self, hooks: &Hooks, cx: &HookContext) -> Option<String> {
        let pre = hooks.pre.as_deref()?;
        self.run_hook(pre, hooks.timeout, Phase::Pre, cx, None)
            .await
            .err()
            .map(|e| e.to_string())
    }

    /// Run every post hook owed in the ledger (left by a process that died
    /// between a pre hook and its post), once each, oldest first, told
    /// `SNAPWARDEN_OUTCOME=interrupted`. Only where no other process acts
    /// on the ledger: a daemon at start-up (SQLite: it holds the ledger's
    /// lock; PostgreSQL: it leads).
    pub async fn run_owed_post_hooks(
        &self,
        config: &Config,
    ) -> Result<Vec<OwedHookFailed>, EngineError> {
        let owed = self.state.post_hooks_owed().await?;
        let mut failed = Vec::new();
        for hook in &owed {
            let timeout = config
                .policies
                .iter()
                .find(|p| p.name == hook.policy)
                .and_then(|p| p.hooks.as_ref())
                .map_or(DEFAULT_HOOK_TIMEOUT, |h| h.timeout);
            info!(policy = %hook.policy, target = %hook.target, slot = %hook.slot, since = %hook.since, "running a post hook left owed by an interrupted run");
            let result = self
                .run_hook(
                    &hook.command,
                    timeout,
                    Phase::Post,
                    &owed_context(hook),
                    Some(Outcome::Interrupted),
                )
                .await;
            if let Err(e) = result {
                error!(policy = %hook.policy, target = %hook.target, error = %e, "the owed post hook failed: the application may still be frozen");
                failed.push(OwedHookFailed {
                    policy: hook.policy.clone(),
                    target: hook.target.clone(),
                    provider: hook.provider.clone(),
                    message: format!(
                        "the post hook left owed by the run of slot {} failed: {e}; the application may still be frozen (it is not run again)",
                        hook.slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                });
            }
            self.state.post_hook_ran(hook.run_id).await?;
        }
        Ok(failed)
    }
}

/// A post hook left owed by an interrupted run that failed when it was run
/// at start: nobody is there to see the log, so the daemon alerts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedHookFailed {
    pub policy: String,
    pub target: String,
    pub provider: String,
    pub message: String,
}

fn hook_context(policy: &Policy, target: &str, slot: DateTime<Utc>, name: &str) -> HookContext {
    HookContext {
        policy: policy.name.clone(),
        target: target.to_string(),
        slot: slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        snapshot_name: name.to_string(),
        provider: policy.provider.clone(),
        resource: policy.resource.as_str().to_string(),
    }
}

fn owed_context(hook: &OwedHook) -> HookContext {
    HookContext {
        policy: hook.policy.clone(),
        target: hook.target.clone(),
        slot: hook.slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        snapshot_name: hook.name.clone(),
        provider: hook.provider.clone(),
        resource: hook.resource.clone(),
    }
}
