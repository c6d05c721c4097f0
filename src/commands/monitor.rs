//! `snapwarden monitor`: a Nagios-style freshness check from the state
//! database. One line, and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
//!
//! Per policy and target: WARNING when the last success is older than the
//! policy's `stale_after`; CRITICAL when older than twice that, or after
//! `critical_after_failures` consecutive failed runs. A target that never
//! succeeded is measured from its first recorded run (WARNING "never run"
//! if it has none). A missing database or a bad file is UNKNOWN.

use std::path::Path;

use chrono::Utc;

use super::Exit;
use crate::config;
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

fn unknown(message: impl Into<String>) -> Exit {
    println!(
        "SNAPWARDEN UNKNOWN - {}",
        message.into().replace('\n', "; ")
    );
    Exit {
        code: 3,
        message: None,
    }
}

pub fn run(path: &Path) -> Exit {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => return unknown(format!("invalid configuration: {e}")),
    };
    let state = match State::open_read_only(&config.daemon.state_path) {
        Ok(s) => s,
        Err(e) => return unknown(e.to_string()),
    };
    let now = Utc::now();
    let mut findings: Vec<(Level, String)> = Vec::new();
    let mut counts = [0usize; 3];
    // Selector policies: the targets of their latest slot in the ledger.
    let summaries = match state.summaries() {
        Ok(s) => s,
        Err(e) => return unknown(e.to_string()),
    };
    for p in &config.policies {
        for t in &crate::engine::ledger_targets(p, &summaries) {
            let summary = match state.target_summary(&p.name, t) {
                Ok(s) => s,
                Err(e) => return unknown(e.to_string()),
            };
            let first_run = match state.runs_for(&p.name, t, u32::MAX) {
                Ok(runs) => runs.last().map(|r| r.started_at),
                Err(e) => return unknown(e.to_string()),
            };
            let failures = summary
                .as_ref()
                .map(|s| s.consecutive_failures)
                .unwrap_or(0);
            let last_error = summary.as_ref().and_then(|s| s.last_error.clone());
            let since = summary.as_ref().and_then(|s| s.last_success).or(first_run);
            let (level, why) = match since {
                None => (Level::Warning, "never run".to_string()),
                Some(t0) => {
                    let age = (now - t0).to_std().unwrap_or_default();
                    let what = if summary.as_ref().and_then(|s| s.last_success).is_some() {
                        "last success"
                    } else {
                        "no success since the first run"
                    };
                    let age_text = format!(
                        "{what} {} ago",
                        humantime::format_duration(std::time::Duration::from_secs(age.as_secs()))
                    );
                    if failures >= p.critical_after_failures {
                        (
                            Level::Critical,
                            format!("{failures} consecutive failures, {age_text}"),
                        )
                    } else if age > p.stale_after * 2 {
                        (Level::Critical, age_text)
                    } else if age > p.stale_after {
                        (Level::Warning, age_text)
                    } else {
                        (Level::Ok, age_text)
                    }
                }
            };
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
    println!("{}", line.replace('\n', " "));
    Exit {
        code: worst as u8,
        message: None,
    }
}
