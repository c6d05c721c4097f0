//! `snapwarden prune`: retention alone (or its decisions with `--dry-run`).
//!
//! Without `--yes` it deletes at most `max_deletes_per_run` snapshots per
//! target, like a run. `--yes` (with `--policy`) is the operator's
//! confirmation: everything retention decides goes, and a hold a reload
//! placed on the policy is lifted.

use std::path::Path;

use super::{load_config_and_log, open_engine, select_policies, Access, Exit, Outcome};
use crate::engine::PruneMode;
use crate::retention::Verdict;

pub async fn run(path: &Path, policy: Option<&str>, dry_run: bool, yes: bool) -> Outcome {
    let mode = mode_of(policy, dry_run, yes)?;
    let dry_run = mode == PruneMode::DryRun;
    let config = load_config_and_log(path, "info")?;
    let policies = select_policies(&config, policy)?;
    let engine = open_engine(&config, Access::Write).await?;
    // Operations the ledger still has in flight (a daemon stopped while
    // following them) are asked about first: a snapshot the cloud finished
    // is not taken for one in progress.
    if let Err(e) = engine.settle(Some(&policies)).await {
        return Err(Exit::failure(format!(
            "cannot settle the operations in flight: {e}"
        )));
    }
    let mut failures = Vec::new();
    let mut held = Vec::new();
    for p in policies {
        // Selected targets as of now; a target that left the selector is
        // not pruned here (its snapshots are kept).
        let resolved = engine.resolve_for_run(p).await;
        if let Some(Err(e)) = &resolved.selected {
            failures.push(format!("{} select: {e}", p.name));
        }
        for t in &resolved.targets {
            match engine.prune(p, t, mode).await {
                Ok(report) => {
                    say!("{} {}:", p.name, t);
                    for d in &report.decisions {
                        let v = match d.verdict {
                            Verdict::Keep => "KEEP",
                            Verdict::Delete if report.held.contains(&d.id) => "HELD",
                            Verdict::Delete if dry_run => "WOULD DELETE",
                            Verdict::Delete => "DELETE",
                        };
                        say!("  {v:<12} {}  {}", d.id, d.reasons.join("; "));
                    }
                    if let Some(why) = report.held_because.as_ref().map(|h| &h.reason) {
                        say!("  held: {why}");
                        if !dry_run {
                            held.push(format!("{} {t}: {why}", p.name));
                        }
                    }
                    if !dry_run {
                        say!("  deleted {}", report.deleted);
                    }
                    failures.extend(report.failed.iter().map(|f| format!("{} {t}: {f}", p.name)));
                }
                Err(e) => failures.push(format!("{} {t}: {e}", p.name)),
            }
        }
    }
    failures.extend(held);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Exit::failure(failures.join("\n")))
    }
}

/// The flags as one mode, or why they cannot be one.
fn mode_of(policy: Option<&str>, dry_run: bool, yes: bool) -> Result<PruneMode, Exit> {
    match (dry_run, yes) {
        (_, true) if policy.is_none() => Err(Exit::config(
            "--yes deletes beyond max_deletes_per_run and needs --policy P to say which policy",
        )),
        (true, true) => Err(Exit::config(
            "--yes and --dry-run contradict each other; give one",
        )),
        (true, false) => Ok(PruneMode::DryRun),
        (false, true) => Ok(PruneMode::Confirmed),
        (false, false) => Ok(PruneMode::Budgeted),
    }
}
