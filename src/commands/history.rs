//! `snapwarden history`: the audit trail, from the state database (safe
//! while the daemon runs: read only). Who created, deleted or restored
//! which snapshot, who paused or resumed what, and why; oldest first.
//!
//! Text: one line per entry, "TIME ACTION POLICY/TARGET SNAPSHOT ACTOR:
//! DETAIL" ("-" for what an entry is not about). `--json` prints an array
//! of objects `{"at", "action", "actor", "policy", "target", "snapshot",
//! "detail"}`: times RFC 3339 UTC to the second, absent values null.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{load_config, select_policies, Exit, Outcome};
use crate::state::AuditEntry;

pub async fn run(path: &Path, policy: Option<&str>, since: Duration, as_json: bool) -> Outcome {
    let config = load_config(path)?;
    if let Some(name) = policy {
        select_policies(&config, Some(name))?;
    }
    let since = chrono::Duration::from_std(since)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| Exit::config("--since reaches too far back"))?;
    let state = crate::state::open_read(&config.daemon)
        .await
        .map_err(|e| Exit::failure(e.to_string()))?;
    let entries = state
        .audit_log(since, policy)
        .await
        .map_err(|e| Exit::failure(e.to_string()))?;
    if as_json {
        let list: Vec<_> = entries.iter().map(entry_json).collect();
        say!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if entries.is_empty() {
        say!("no entries since {}", at(since));
        return Ok(());
    }
    for e in &entries {
        say!("{}", entry_line(e));
    }
    Ok(())
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn entry_json(e: &AuditEntry) -> serde_json::Value {
    json!({
        "at": at(e.at),
        "action": e.action.as_str(),
        "actor": e.actor,
        "policy": e.policy,
        "target": e.target,
        "snapshot": e.snapshot,
        "detail": e.detail,
    })
}

/// "TIME ACTION POLICY/TARGET SNAPSHOT ACTOR: DETAIL".
fn entry_line(e: &AuditEntry) -> String {
    let scope = match (&e.policy, &e.target) {
        (Some(p), Some(t)) => format!("{p}/{t}"),
        (Some(p), None) => p.clone(),
        (None, Some(t)) => format!("-/{t}"),
        (None, None) => "(every policy)".to_string(),
    };
    format!(
        "{} {:<8} {scope} {} {}: {}",
        at(e.at),
        e.action.as_str(),
        e.snapshot.as_deref().unwrap_or("-"),
        e.actor,
        e.detail
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::state::AuditAction;

    fn entry(policy: Option<&str>, target: Option<&str>) -> AuditEntry {
        AuditEntry {
            at: Utc
                .with_ymd_and_hms(2026, 3, 1, 12, 0, 5)
                .single()
                .expect("a time")
                + chrono::Duration::milliseconds(250),
            actor: "daemon (node a)".into(),
            action: AuditAction::Delete,
            policy: policy.map(str::to_string),
            target: target.map(str::to_string),
            snapshot: target.map(|_| "snap-1".to_string()),
            detail: "retention of policy db: kept by no rule".into(),
        }
    }

    #[test]
    fn a_line_names_when_what_whom_who_and_why() {
        assert_eq!(
            entry_line(&entry(Some("db"), Some("vol-1"))),
            "2026-03-01T12:00:05Z delete   db/vol-1 snap-1 daemon (node a): retention of policy db: kept by no rule"
        );
        assert_eq!(
            entry_line(&entry(None, None)),
            "2026-03-01T12:00:05Z delete   (every policy) - daemon (node a): retention of policy db: kept by no rule"
        );
    }

    #[test]
    fn json_has_every_key_with_nulls_for_what_is_absent() {
        let v = entry_json(&entry(None, None));
        assert_eq!(
            v,
            json!({
                "at": "2026-03-01T12:00:05Z",
                "action": "delete",
                "actor": "daemon (node a)",
                "policy": null,
                "target": null,
                "snapshot": null,
                "detail": "retention of policy db: kept by no rule",
            })
        );
    }
}
