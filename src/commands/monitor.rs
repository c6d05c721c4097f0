//! `snapwarden monitor`: a Nagios-style freshness check from the state
//! database. One line, and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
//!
//! Per policy and target: WARNING when the last success is older than the
//! policy's `stale_after`; CRITICAL when older than twice that, or after
//! `critical_after_failures` consecutive failed runs. A target that never
//! succeeded is measured from its first recorded run (WARNING "never run"
//! if it has none). A missing database or a bad file is UNKNOWN.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::Exit;
use crate::config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

fn unknown(message: impl Into<String>) -> Exit {
    say!(
        "SNAPWARDEN UNKNOWN - {}",
        message.into().replace('\n', "; ")
    );
    Exit {
        code: 3,
        message: None,
    }
}

/// One target's level and why: from its last success (else its first
/// recorded run), its failure streak and the policy's thresholds.
fn assess(
    now: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    first_run: Option<DateTime<Utc>>,
    failures: u32,
    p: &config::Policy,
) -> (Level, String) {
    let Some(t0) = last_success.or(first_run) else {
        return (Level::Warning, "never run".to_string());
    };
    let age = (now - t0).to_std().unwrap_or_default();
    // Ahead of the clock: the clock stepped back after it was recorded;
    // its age says nothing, and slots up to it may not run.
    let ahead = crate::observe::alerts::ahead_of_clock(now, t0).map(|a| {
        let what = if last_success.is_some() {
            "last success"
        } else {
            "first run"
        };
        format!(
            "{what} is in the future ({}, {} ahead of this host's clock): clock stepped back?",
            t0.to_rfc3339(),
            humantime::format_duration(std::time::Duration::from_secs(a.as_secs()))
        )
    });
    let what = if last_success.is_some() {
        "last success"
    } else {
        "no success since the first run"
    };
    let age_text = format!(
        "{what} {} ago",
        humantime::format_duration(std::time::Duration::from_secs(age.as_secs()))
    );
    if failures >= p.health.critical_after_failures {
        (
            Level::Critical,
            format!(
                "{failures} consecutive failures, {}",
                ahead.unwrap_or(age_text)
            ),
        )
    } else if let Some(ahead) = ahead {
        (Level::Warning, ahead)
    } else if age > p.health.stale_after * 2 {
        (Level::Critical, age_text)
    } else if age > p.health.stale_after {
        (Level::Warning, age_text)
    } else {
        (Level::Ok, age_text)
    }
}

pub async fn run(path: &Path) -> Exit {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => return unknown(format!("invalid configuration: {e}")),
    };
    let state = match crate::state::open_read(&config.daemon).await {
        Ok(s) => s,
        Err(e) => return unknown(e.to_string()),
    };
    let now = Utc::now();
    let mut findings: Vec<(Level, String)> = Vec::new();
    let mut counts = [0usize; 3];
    // Selector policies: the targets of their latest slot in the ledger.
    let summaries = match state.summaries().await {
        Ok(s) => s,
        Err(e) => return unknown(e.to_string()),
    };
    for p in &config.policies {
        for t in &crate::engine::ledger_targets(p, &summaries) {
            let summary = match state.target_summary(&p.name, t).await {
                Ok(s) => s,
                Err(e) => return unknown(e.to_string()),
            };
            let first_run = match state.runs_for(&p.name, t, u32::MAX).await {
                Ok(runs) => runs.last().map(|r| r.started_at),
                Err(e) => return unknown(e.to_string()),
            };
            let failures = summary
                .as_ref()
                .map(|s| s.consecutive_failures)
                .unwrap_or(0);
            let last_error = summary.as_ref().and_then(|s| s.last_error.clone());
            let last_success = summary.as_ref().and_then(|s| s.last_success);
            let (level, why) = assess(now, last_success, first_run, failures, p);
            counts[level as usize] += 1;
            if level != Level::Ok {
                let err = last_error
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                findings.push((level, format!("{}/{t}: {why}{err}", p.name)));
            }
        }
    }
    let worst = findings.iter().map(|(l, _)| *l).max().unwrap_or(Level::Ok);
    findings.sort_by_key(|f| std::cmp::Reverse(f.0));
    let word = match worst {
        Level::Ok => "OK",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
    };
    let detail: Vec<String> = findings.into_iter().map(|(_, f)| f).collect();
    let mut line = format!(
        "SNAPWARDEN {word} - {} ok, {} warning, {} critical",
        counts[0], counts[1], counts[2]
    );
    if !detail.is_empty() {
        line.push_str(": ");
        line.push_str(&detail.join("; "));
    }
    say!("{}", line.replace('\n', " "));
    Exit {
        code: worst as u8,
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> config::Policy {
        let text = r#"
[providers.qc]
kind = "qingcloud"
zone = "ap2a"
access_key_id = "AK"
secret_access_key = "x"

[[policy]]
name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-1"]
schedule = "0 0 * * * *"
retain = 3
stale_after = "2h"
"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        let mut c = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        c.policies.remove(0)
    }

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + h * 3600, 0).expect("valid time")
    }

    #[test]
    fn fresh_is_ok_stale_warns_twice_stale_is_critical() {
        let p = policy();
        assert_eq!(assess(at(1), Some(at(0)), None, 0, &p).0, Level::Ok);
        assert_eq!(assess(at(3), Some(at(0)), None, 0, &p).0, Level::Warning);
        assert_eq!(assess(at(5), Some(at(0)), None, 0, &p).0, Level::Critical);
    }

    /// A last success 8 h in the future means the clock stepped back after
    /// it was recorded: not OK, and said so.
    #[test]
    fn a_last_success_in_the_future_is_not_ok() {
        let p = policy();
        let (level, why) = assess(at(0), Some(at(8)), Some(at(-3)), 0, &p);
        assert_ne!(level, Level::Ok, "{why}");
        assert!(why.contains("last success is in the future"), "{why}");
        assert!(why.contains("clock stepped back?"), "{why}");
        let (level, why) = assess(at(0), None, Some(at(8)), 0, &p);
        assert_ne!(level, Level::Ok, "{why}");
        assert!(why.contains("in the future"), "{why}");
    }
}
