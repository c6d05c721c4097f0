//! `snapwarden prune`: retention alone (or its decisions with `--dry-run`).

use std::path::Path;

use super::{load_config_and_log, open_engine, select_policies, Exit};
use crate::retention::Verdict;

pub async fn run(path: &Path, policy: Option<&str>, dry_run: bool) -> Exit {
    let config = match load_config_and_log(path, "info") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let policies = match select_policies(&config, policy) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let engine = match open_engine(&config, false) {
        Ok(e) => e,
        Err(e) => return e,
    };
    let mut failures = Vec::new();
    for p in policies {
        // Selected targets as of now; a target that left the selector is
        // not pruned here (its snapshots are kept).
        let resolved = engine.resolve_for_run(p).await;
        if let Some(Err(e)) = &resolved.selected {
            failures.push(format!("{} select: {e}", p.name));
        }
        for t in &resolved.targets {
            match engine.prune(p, t, dry_run).await {
                Ok(report) => {
                    println!("{} {}:", p.name, t);
                    for d in &report.decisions {
                        let v = match d.verdict {
                            Verdict::Keep => "KEEP",
                            Verdict::Delete if dry_run => "WOULD DELETE",
                            Verdict::Delete => "DELETE",
                        };
                        println!("  {v:<12} {}  {}", d.id, d.reasons.join("; "));
                    }
                    if !dry_run {
                        println!("  deleted {}", report.deleted);
                    }
                    failures.extend(report.failed.iter().map(|f| format!("{} {t}: {f}", p.name)));
                }
                Err(e) => failures.push(format!("{} {t}: {e}", p.name)),
            }
        }
    }
    if failures.is_empty() {
        Exit::OK
    } else {
        Exit::failure(failures.join("\n"))
    }
}
