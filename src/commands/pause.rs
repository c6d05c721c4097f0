//! `pause` and `resume`: the operator's switch for a policy's (or every
//! policy's) slots. Written to the ledger beside a running daemon (no
//! lease, no lock: it is the operator's control, which the daemon reads
//! every second).

use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use super::{load_config_and_log, select_policies, state_exit, who, Exit, Outcome};
use crate::state::{AuditAction, AuditEntry, Ledger};

/// The longest `--for`: a pause meant to last longer is lifted by hand.
const MAX_PAUSE: Duration = Duration::from_secs(366 * 24 * 3600);

pub async fn pause(
    path: &Path,
    policy: Option<&str>,
    for_: Option<Duration>,
    reason: &str,
) -> Outcome {
    let config = load_config_and_log(path, "warn")?;
    if let Some(name) = policy {
        select_policies(&config, Some(name))?;
    }
    if reason.trim().is_empty() {
        return Err(Exit::config(
            "--reason must say why (it is shown by status and kept in the ledger)",
        ));
    }
    let until = match for_ {
        None => None,
        Some(d) if d.is_zero() || d > MAX_PAUSE => {
            return Err(Exit::config(format!(
                "--for must be more than 0 and at most a year, not {}",
                humantime::format_duration(d)
            )))
        }
        Some(d) => Some(
            Utc::now() + chrono::Duration::from_std(d).map_err(|e| Exit::config(e.to_string()))?,
        ),
    };
    let ledger = crate::state::open_control(&config.daemon)
        .await
        .map_err(state_exit)?;
    let by = who();
    let now = Utc::now();
    ledger
        .pause(policy, reason.trim(), &by, now, until)
        .await
        .map_err(state_exit)?;
    let until = until.map_or("until resumed".to_string(), |u| {
        format!("until {}", u.to_rfc3339_opts(SecondsFormat::Secs, true))
    });
    audit(
        &*ledger,
        AuditAction::Pause,
        policy,
        &by,
        format!("{until}: {}", reason.trim()),
    )
    .await;
    say!(
        "paused {} {until}, by {by}: {}",
        scope(policy),
        reason.trim()
    );
    Ok(())
}

pub async fn resume(path: &Path, policy: Option<&str>) -> Outcome {
    let config = load_config_and_log(path, "warn")?;
    if let Some(name) = policy {
        select_policies(&config, Some(name))?;
    }
    let ledger = crate::state::open_control(&config.daemon)
        .await
        .map_err(state_exit)?;
    match ledger.resume(policy).await.map_err(state_exit)? {
        Some(p) if p.until.is_none_or(|u| u > Utc::now()) => {
            audit(
                &*ledger,
                AuditAction::Resume,
                policy,
                &who(),
                format!("resumed (was: paused {})", p.describe()),
            )
            .await;
            say!("resumed {} (paused {})", scope(policy), p.describe());
        }
        // Expired already: nothing was paused any more.
        Some(_) | None => say!("{} was not paused", scope(policy)),
    }
    Ok(())
}

fn scope(policy: Option<&str>) -> String {
    match policy {
        Some(p) => format!("policy {p}"),
        None => "every policy".to_string(),
    }
}

/// Record a pause or resume in the audit trail. The pause itself is
/// written already: a failure to record it is reported and fails nothing.
async fn audit(
    ledger: &dyn Ledger,
    action: AuditAction,
    policy: Option<&str>,
    by: &str,
    detail: String,
) {
    let entry = AuditEntry {
        at: Utc::now(),
        actor: by.to_string(),
        action,
        policy: policy.map(str::to_string),
        target: None,
        snapshot: None,
        detail,
    };
    super::audit(ledger, entry).await;
}
