//! `snapwarden check`: validate the file; print each policy with its next
//! three run times.

use std::path::Path;

use chrono::Utc;

use super::{load_config, Outcome};

pub fn run(path: &Path) -> Outcome {
    let config = load_config(path)?;
    say!("{}: OK", path.display());
    match &config.daemon.shared {
        // Not connected: `check` works on a node that cannot reach it.
        Some(shared) => say!(
            "ledger: {} (PostgreSQL, shared; this node: {}, lease {}, renewed every {}; not connected)",
            shared.url,
            shared.node_name,
            humantime::format_duration(shared.lease_duration),
            humantime::format_duration(shared.renew_every)
        ),
        None => say!("ledger: {} (SQLite)", config.daemon.state_path.display()),
    }
    for (name, p) in &config.providers {
        say!("provider {name}: kind {}", p.settings.kind());
    }
    let now = Utc::now();
    for p in &config.policies {
        say!(
            "policy {}: provider {}, {} {} target(s), schedule \"{}\" ({}), keep: {}",
            p.name,
            p.provider,
            p.targets.named.len(),
            p.resource,
            p.schedule.expr(),
            p.schedule.timezone(),
            p.rules.describe()
        );
        let tz = p.schedule.timezone();
        for t in p.schedule.next_n(now, 3) {
            say!(
                "  next: {} ({})",
                t.to_rfc3339(),
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z")
            );
        }
    }
    Ok(())
}
