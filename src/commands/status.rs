//! `snapwarden status`: per policy and target, from the state database
//! (safe while the daemon runs). Operations the ledger has in flight are
//! first asked about once (see `settle_in_flight`); everything else is
//! read only.
//!
//! `--json` prints one object: `{"generated_at", "state_path", "targets": [
//! {"policy", "target", "provider", "last_run": {"slot", "state",
//! "started_at", "finished_at", "error"} | null, "last_success",
//! "consecutive_failures", "last_error", "next_run", "snapshots_kept",
//! "bytes_kept" (null: unknown), "monthly_cost_estimate" (null: no
//! `price_per_gib_month` or no size), "skipped_slots", "in_flight": [{"kind", "snapshot_id", "operation",
//! "age_seconds"}]}], "leadership": null | {"leader": {"node", "epoch",
//! "since", "expires_at", "expired"} | null, "nodes": [{"node", "role",
//! "started_at", "seen_at"}]}, "pauses": [{"policy" (null: every policy),
//! "reason", "by", "since", "until"}], "holds": [{"policy", "target",
//! "snapshot_id" (null: the target-wide hold), "reason", "by", "since",
//! "until"}]}`. Times are RFC 3339 UTC; absent
//! values are null. `leadership` is set for a ledger shared by several
//! nodes (`state_url`).

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{load_config, Exit, Outcome};
use crate::state::LeadershipView;

pub async fn run(path: &Path, as_json: bool) -> Outcome {
    let config = load_config(path)?;
    // Operations a stopped daemon left in flight are asked about first
    // (a shared ledger's leader follows its own).
    if config.daemon.shared.is_none() {
        super::settle_in_flight(&config, None).await;
    }
    let (state, leadership) = crate::state::open_read_viewing(&config.daemon)
        .await
        .map_err(|e| Exit::failure(e.to_string()))?;
    let summaries = state
        .summaries()
        .await
        .map_err(|e| Exit::failure(e.to_string()))?;
    let now = Utc::now();
    let pauses = state.pauses(now).await.unwrap_or_else(|e| {
        eprintln!("warning: cannot read the pauses: {e}");
        Vec::new()
    });
    let holds = state.holds(now).await.unwrap_or_else(|e| {
        eprintln!("warning: cannot read the holds: {e}");
        Vec::new()
    });
    let next_run = |policy: &str| {
        config
            .policies
            .iter()
            .find(|p| p.name == policy)
            .and_then(|p| p.schedule.next_after(now))
    };
    if as_json {
        let targets: Vec<_> = summaries
            .iter()
            .map(|s| {
                json!({
                    "policy": s.policy,
                    "target": s.target,
                    "provider": s.provider,
                    "last_run": s.last_run.as_ref().map(|r| json!({
                        "slot": r.slot.to_rfc3339(),
                        "state": r.state.as_str(),
                        "started_at": r.started_at.to_rfc3339(),
                        "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
                        "error": r.error,
                    })),
                    "last_success": s.last_success.map(|t| t.to_rfc3339()),
                    "consecutive_failures": s.consecutive_failures,
                    "last_error": s.last_error,
                    "next_run": next_run(&s.policy).map(|t| t.to_rfc3339()),
                    "snapshots_kept": s.snapshots_kept,
                    "bytes_kept": s.bytes_kept,
                    "monthly_cost_estimate": monthly_cost(&config, s),
                    "skipped_slots": s.skipped,
                    "in_flight": s.in_flight.iter().map(|o| json!({
                        "kind": o.kind.as_str(),
                        "snapshot_id": o.snapshot_id,
                        "operation": o.reference,
                        "age_seconds": (now - o.started_at).num_seconds(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({
            "generated_at": now.to_rfc3339(),
            "state_path": config.daemon.state_path.display().to_string(),
            "state": state.location(),
            "targets": targets,
            "leadership": leadership.as_ref().map(leadership_json),
            "pauses": pauses.iter().map(|p| json!({
                "policy": p.policy,
                "reason": p.reason,
                "by": p.by,
                "since": p.since.to_rfc3339(),
                "until": p.until.map(|t| t.to_rfc3339()),
            })).collect::<Vec<_>>(),
            "holds": holds.iter().map(|h| json!({
                "policy": h.policy,
                "target": h.target,
                "snapshot_id": h.snapshot_id,
                "reason": h.reason,
                "by": h.by,
                "since": h.since.to_rfc3339(),
                "until": h.until.map(|t| t.to_rfc3339()),
            })).collect::<Vec<_>>(),
        });
        say!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    if let Some(view) = &leadership {
        print_leadership(view);
    }
    for p in &pauses {
        let scope = p
            .policy
            .as_ref()
            .map_or("every policy".to_string(), |name| format!("policy {name}"));
        say!("paused: {scope} {} (its slots are skipped)", p.describe());
    }
    for h in &holds {
        let what = h.snapshot_id.as_ref().map_or_else(
            || {
                format!(
                    "every snapshot of {}/{} made before {}",
                    h.policy,
                    h.target,
                    h.since.format("%Y-%m-%dT%H:%M:%SZ")
                )
            },
            |id| format!("snapshot {id} of {}/{}", h.policy, h.target),
        );
        say!("hold: {what}: {}", h.describe());
    }
    if summaries.is_empty() {
        say!("no runs recorded yet in {}", state.location());
        return Ok(());
    }
    say!(
        "{:<20} {:<20} {:<10} {:<25} {:<25} {:>5} {:>10} {:>5} {:>9}",
        "POLICY",
        "TARGET",
        "LAST",
        "LAST SUCCESS",
        "NEXT RUN",
        "KEPT",
        "SIZE",
        "FAILS",
        "IN FLIGHT"
    );
    for s in &summaries {
        let fmt = |t: Option<chrono::DateTime<Utc>>| {
            t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "-".into())
        };
        say!(
            "{:<20} {:<20} {:<10} {:<25} {:<25} {:>5} {:>10} {:>5} {:>9}",
            s.policy,
            s.target,
            s.last_run.as_ref().map(|r| r.state.as_str()).unwrap_or("-"),
            fmt(s.last_success),
            fmt(next_run(&s.policy)),
            s.snapshots_kept,
            super::size_text(s.bytes_kept),
            s.consecutive_failures,
            s.in_flight.len()
        );
        if let Some(cost) = monthly_cost(&config, s) {
            say!("    estimated monthly cost: {cost:.2}");
        }
        if let Some(e) = &s.last_error {
            say!("    last error: {e}");
        }
        for o in &s.in_flight {
            say!(
                "    in flight: {} {} (operation {}, {}s)",
                o.kind.as_str(),
                o.snapshot_id,
                o.reference,
                (now - o.started_at).num_seconds()
            );
        }
    }
    Ok(())
}

fn leadership_json(view: &LeadershipView) -> serde_json::Value {
    json!({
        "leader": view.leader.as_ref().map(|l| json!({
            "node": l.node,
            "epoch": l.epoch,
            "since": l.since.to_rfc3339(),
            "expires_at": l.expires_at.to_rfc3339(),
            "expired": l.expired,
        })),
        "nodes": view.nodes.iter().map(|n| json!({
            "node": n.node,
            "role": n.role,
            "started_at": n.started_at.to_rfc3339(),
            "seen_at": n.seen_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
    })
}

fn print_leadership(view: &LeadershipView) {
    match &view.leader {
        Some(l) if !l.expired => say!(
            "leader: {} (epoch {}, since {})",
            l.node,
            l.epoch,
            l.since.format("%Y-%m-%dT%H:%M:%SZ")
        ),
        Some(l) => say!(
            "leader: none (the lease of {} expired at {}; a standby takes it within a second)",
            l.node,
            l.expires_at.format("%Y-%m-%dT%H:%M:%SZ")
        ),
        None => say!("leader: none yet (no node has led this ledger)"),
    }
    for n in &view.nodes {
        say!(
            "node {}: {} (seen {})",
            n.node,
            n.role,
            n.seen_at.format("%Y-%m-%dT%H:%M:%SZ")
        );
    }
    say!("");
}

/// The kept snapshots' size in GiB times the provider's
/// `price_per_gib_month`: None without a price or a known size.
fn monthly_cost(config: &crate::config::Config, s: &crate::state::TargetSummary) -> Option<f64> {
    let price = config.providers.get(&s.provider)?.price_per_gib_month?;
    let gib = s.bytes_kept? as f64 / f64::from(1u32 << 30);
    Some(gib * price)
}
