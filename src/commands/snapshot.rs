//! `snapwarden snapshot`: one run now, in the foreground.

use std::path::Path;

use chrono::{SubsecRound, Utc};

use std::time::Duration;

use super::{load_config_and_log, open_engine, select_policies, who, Access, Exit, Outcome};
use crate::engine::{Keep, RunOutcome};

pub async fn run(
    path: &Path,
    policy: &str,
    target: Option<&str>,
    keep_for: Option<Duration>,
) -> Outcome {
    let config = load_config_and_log(path, "info")?;
    let policy = select_policies(&config, Some(policy))?[0].clone();
    // Checked before anything is created.
    let keep = match keep_for {
        None => None,
        Some(d) => Some(Keep {
            until: super::hold::hold_end(Some(d), None, policy.schedule.timezone(), Utc::now())?
                .unwrap_or_else(Utc::now),
            by: who(),
            reason: format!(
                "on demand (`snapshot --keep-for {}`)",
                humantime::format_duration(d)
            ),
        }),
    };
    let engine = open_engine(&config, Access::Write).await?;
    // A selector is resolved now; if its listing fails, the explicit
    // targets still run and the command fails.
    let resolved = engine.resolve_for_run(&policy).await;
    let mut select_failed = None;
    if let Some(Err(e)) = &resolved.selected {
        eprintln!(
            "{} select: cannot list {}s: {e}",
            policy.name, policy.resource
        );
        select_failed = Some(e.to_string());
    }
    if resolved.selector_empty() {
        eprintln!("{} select: matched nothing", policy.name);
    }
    let targets: Vec<String> = match target {
        None => resolved.targets.clone(),
        Some(t) if resolved.targets.iter().any(|x| x == t) => vec![t.to_string()],
        Some(t) => {
            return Err(Exit::config(format!(
                "policy {} has no target {t:?} (targets: {})",
                policy.name,
                resolved.targets.join(", ")
            )))
        }
    };
    let slot = Utc::now().trunc_subsecs(0);
    let runs = targets.iter().map(|t| {
        let engine = engine.clone();
        let policy = policy.clone();
        let t = t.clone();
        let keep = keep.clone();
        async move { engine.run_keeping(&policy, &t, slot, keep).await }
    });
    let reports = futures::future::join_all(runs).await;
    let mut failed = 0;
    for r in &reports {
        let (ok, what) = match &r.outcome {
            RunOutcome::Succeeded {
                created,
                deleted,
                held,
            } => match held {
                None => (true, format!("ok, {created} created, {deleted} deleted")),
                Some(why) => (
                    true,
                    format!("ok, {created} created, {deleted} deleted; {}", why.reason),
                ),
            },
            RunOutcome::Failed(e) => (false, format!("failed: {e}")),
            RunOutcome::Skipped(why) => (false, format!("skipped: {why}")),
            RunOutcome::AlreadyDone => (false, "this slot was already run".to_string()),
            RunOutcome::Interrupted => (false, "interrupted".to_string()),
        };
        if !ok {
            failed += 1;
        }
        say!("{} {}: {what}", r.policy, r.target);
    }
    if let Some(e) = select_failed {
        return Err(Exit::failure(format!(
            "the selector of policy {} failed: {e}",
            policy.name
        )));
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(Exit::failure(format!(
            "{failed} of {} target(s) failed",
            reports.len()
        )))
    }
}
