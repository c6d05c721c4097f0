//! `snapwarden plan`: a dry run with read-only calls. What the next run
//! creates, and what retention would delete now, with reasons.
//!
//! `--json` prints an array: one object per (policy, target) with
//! `policy`, `target`, `source` (`targets`, `select` or both: `targets`),
//! `next_run` and `snapshots`, each snapshot as `id` (the identifier the
//! cloud's own CLI takes), `name`, `created_at` (RFC 3339, null where the
//! cloud does not say), `status` (`creating`, `available`, `failed`,
//! `deleting`), `size` (bytes, null where the cloud does not say),
//! `action` (`keep` or `delete`) and `reasons`; then one object per policy
//! with a selector:
//! `{"policy", "selector", "matches": [{"id", "name", "tags"}], "error"}`
//! (`error` null unless the listing failed).

use std::collections::HashMap;
use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{load_config_and_log, open_engine, select_policies, Access, Exit, Outcome};
use crate::engine::PruneMode;
use crate::providers::RemoteSnapshot;
use crate::retention::Verdict;

pub async fn run(path: &Path, policy: Option<&str>, as_json: bool) -> Outcome {
    let config = load_config_and_log(path, "warn")?;
    let policies = select_policies(&config, policy)?;
    // Operations a stopped daemon left in flight are asked about first.
    super::settle_in_flight(&config, Some(&policies)).await;
    // Read-only: an existing ledger is opened read-only; without one,
    // nothing is ours yet, so nothing would be deleted.
    let engine = open_engine(&config, Access::Read).await?;
    let now = Utc::now();
    let mut out = Vec::new();
    let mut selectors = Vec::new();
    let mut failed = false;
    for p in policies {
        let next = p.schedule.next_after(now);
        let resolved = engine.resolve_for_run(p).await;
        if let (Some(sel), Some(selected)) = (&p.targets.select, &resolved.selected) {
            let (matches, error) = match selected {
                Ok(m) => (m.as_slice(), None),
                Err(e) => {
                    failed = true;
                    (&[][..], Some(e.to_string()))
                }
            };
            if as_json {
                selectors.push(json!({
                    "policy": p.name,
                    "selector": sel.to_string(),
                    "matches": matches.iter().map(|r| json!({
                        "id": r.id,
                        "name": r.name,
                        "tags": r.tags,
                    })).collect::<Vec<_>>(),
                    "error": error,
                }));
            } else {
                say!("{} select {sel}:", p.name);
                match &error {
                    Some(e) => say!("  cannot list {}s: {e}", p.resource),
                    None if matches.is_empty() => say!("  matches nothing"),
                    None => {
                        for r in matches {
                            say!("  matches {} ({})", r.id, r.name);
                        }
                    }
                }
            }
        }
        for t in &resolved.targets {
            let source = if p.targets.named.contains(t) {
                "targets"
            } else {
                "select"
            };
            let (decisions, listed) = match engine.prune(p, t, PruneMode::DryRun).await {
                Ok(r) => (r.decisions, r.listed),
                Err(e) => {
                    failed = true;
                    eprintln!("{} {t}: cannot plan: {e}", p.name);
                    continue;
                }
            };
            let listed: HashMap<&str, &RemoteSnapshot> =
                listed.iter().map(|s| (s.id.as_str(), s)).collect();
            if as_json {
                out.push(json!({
                    "policy": p.name,
                    "target": t,
                    "source": source,
                    "next_run": next.map(|n| n.to_rfc3339()),
                    "snapshots": decisions.iter().map(|d| {
                        let s = listed.get(d.id.as_str());
                        json!({
                            "id": s.map_or(d.id.as_str(), |s| s.cloud_id()),
                            "name": s.map(|s| &s.name),
                            "created_at": s.and_then(|s| s.created_at).map(|t| t.to_rfc3339()),
                            "status": s.map(|s| s.state.as_str()),
                            "size": s.and_then(|s| s.size_bytes),
                            "action": match d.verdict { Verdict::Keep => "keep", Verdict::Delete => "delete" },
                            "reasons": d.reasons,
                        })
                    }).collect::<Vec<_>>(),
                }));
            } else {
                say!("{} {t}:", p.name);
                match next {
                    Some(n) => say!("  next run {} creates a snapshot of {t}", n.to_rfc3339()),
                    None => say!("  no further runs scheduled"),
                }
                for d in &decisions {
                    let v = match d.verdict {
                        Verdict::Keep => "KEEP",
                        Verdict::Delete => "DELETE",
                    };
                    let s = listed.get(d.id.as_str());
                    let id = s.map_or(d.id.as_str(), |s| s.cloud_id());
                    let size = super::size_text(s.and_then(|s| s.size_bytes));
                    say!("  {v:<6} {id}  {size:>10}  {}", d.reasons.join("; "));
                }
            }
        }
    }
    if as_json {
        out.extend(selectors);
        say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    if failed {
        Err(Exit::failure("some targets could not be planned"))
    } else {
        Ok(())
    }
}
