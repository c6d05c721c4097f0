//! `snapwarden prune`: retention alone (or its decisions with `--dry-run`).

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use super::{load_config_and_log, select_policies, Exit};
use crate::engine::Engine;
use crate::retention::Verdict;
use crate::state::State;

pub async fn run(path: &Path, policy: Option<&str>, dry_run: bool) -> Exit {
    let config = match load_config_and_log(path, "info") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let policies = match select_policies(&config, policy) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let state = match State::open(&config.daemon.state_path) {
        Ok(s) => Arc::new(s),
        Err(e) => return Exit::failure(e.to_string()),
    };
    let (_tx, rx) = watch::channel(false);
    let engine = match Engine::new(state, &config, rx) {
        Ok(e) => e,
        Err(e) => return Exit::failure(e.to_string()),
    };
    let mut failures = Vec::new();
    for p in policies {
        for t in &p.targets {
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
