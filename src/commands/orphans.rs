//! `snapwarden orphans`: snapshots that carry our marker but belong to no
//! configured policy and target, and deletes that are stuck or failed.
//! Lists them; deletes them only with `--delete --yes` (`--delete` alone
//! prints what would go and exits 1).
//!
//! `--json` prints `{"orphans": [{"kind", "provider", "policy", "target",
//! "snapshot_id", "name", "created_at", "verified", "note", "deletable"}]}`
//! (plus `"deleted": [{"snapshot_id", "outcome"|"error"}]` after a delete).
//! Only `verified = "ours"` (marker and ledger agree) is ever deleted;
//! `"gone"` rows are marked deleted in the ledger. Even then a snapshot is
//! kept when another listed snapshot depends on it (an increment of its
//! chain, whichever policy made it), when a dependant's delete failed, or
//! when it is the newest good snapshot of a configured target; at most
//! `--max-deletes N` (default: the daemon's `max_deletes_per_run`) are
//! deleted in one go, the rest are reported held back (exit 1).

use std::path::Path;

use serde_json::json;

use super::{load_config_and_log, open_engine, Access, Exit, Outcome};
use crate::engine::{Orphan, Verified};

pub async fn run(
    path: &Path,
    as_json: bool,
    delete: bool,
    yes: bool,
    max_deletes: Option<u32>,
) -> Outcome {
    if yes && !delete {
        return Err(Exit::config(
            "--yes confirms --delete; give both to delete orphans",
        ));
    }
    let config = load_config_and_log(path, "warn")?;
    let access = if delete && yes {
        Access::Write
    } else {
        // Listing only: settled through the one call the read-only
        // commands share; deleting settles on its own engine below.
        super::settle_in_flight(&config, None).await;
        Access::Read
    };
    let engine = open_engine(&config, access).await?;
    if delete && yes {
        // Deletes the ledger still has in flight are settled first: one
        // the cloud finished is no orphan.
        if let Err(e) = engine.settle(None).await {
            return Err(Exit::failure(format!(
                "cannot settle the operations in flight: {e}"
            )));
        }
    }
    let orphans = engine
        .find_orphans(&config)
        .await
        .map_err(|e| Exit::failure(format!("cannot look for orphans: {e}")))?;
    let deletable = |o: &Orphan| matches!(o.verified, Verified::Ours | Verified::Gone);
    let outcomes = if delete && yes {
        let chosen: Vec<Orphan> = orphans.iter().filter(|o| deletable(o)).cloned().collect();
        let budget = max_deletes.unwrap_or(config.daemon.max_deletes_per_run) as usize;
        Some(engine.delete_orphans(&chosen, budget).await)
    } else {
        None
    };

    if as_json {
        let list: Vec<_> = orphans
            .iter()
            .map(|o| {
                json!({
                    "kind": o.kind.as_str(),
                    "provider": o.provider,
                    "policy": o.policy,
                    "target": o.target,
                    "snapshot_id": o.snapshot_id,
                    "name": o.name,
                    "created_at": o.created_at.map(|t| t.to_rfc3339()),
                    "verified": o.verified.as_str(),
                    "note": o.note,
                    "deletable": deletable(o),
                })
            })
            .collect();
        let mut doc = json!({ "orphans": list });
        if let Some(out) = &outcomes {
            doc["deleted"] = out
                .iter()
                .map(|r| match &r.result {
                    Ok(what) => json!({"snapshot_id": r.snapshot_id, "outcome": what}),
                    Err(e) => json!({"snapshot_id": r.snapshot_id, "error": e}),
                })
                .collect();
        }
        say!("{doc:#}");
    } else if orphans.is_empty() {
        say!("no orphans");
    } else {
        for o in &orphans {
            say!(
                "{:<14} {:<12} {}/{} on {}  {} ({})  {}",
                o.kind.as_str(),
                o.verified.as_str(),
                o.policy,
                o.target,
                o.provider,
                o.snapshot_id,
                o.name,
                o.note
            );
        }
        if let Some(out) = &outcomes {
            for r in out {
                match &r.result {
                    Ok(what) => say!("{}: {what}", r.snapshot_id),
                    Err(e) => say!("{}: not deleted: {e}", r.snapshot_id),
                }
            }
        }
    }

    let n = orphans.iter().filter(|o| deletable(o)).count();
    match outcomes {
        None if delete => Err(Exit::failure(format!(
            "{n} orphan(s) would be deleted (marker and ledger agree); run again with --delete --yes"
        ))),
        None => Ok(()),
        Some(out) => {
            let failed: Vec<String> = out
                .iter()
                .filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.snapshot_id)))
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Exit::failure(failed.join("\n")))
            }
        }
    }
}
