//! `hold` and `release`: an operator keeps a snapshot (or every snapshot a
//! target has now) from ever being deleted, until a time or until released.
//! A held snapshot is kept outside retention: no prune, orphan delete or
//! confirmed prune deletes it, and it counts towards no rule. Written to
//! the ledger beside a running daemon (no lease: a hold only ever keeps
//! more; the daemon checks holds in the same transaction that claims a
//! delete). Where the cloud has a field for it, the hold is also marked on
//! the snapshot, so it shows in the cloud's console; the ledger stays the
//! authority, and a mark that fails is reported, not fatal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

use super::{load_config_and_log, select_policies, state_exit, who, Exit, Outcome};
use crate::config::{Config, Policy};
use crate::state::{AuditAction, AuditEntry, Ledger, SnapshotHold, SnapshotRow, StateError};

/// The longest hold given by --for or --until: a longer one is made
/// without an end and released by hand.
const MAX_HOLD: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// What a hold covers, as the command was given it.
pub struct Scope<'a> {
    pub policy: &'a str,
    pub target: &'a str,
    pub snapshot: Option<&'a str>,
}

pub async fn hold(
    path: &Path,
    scope: Scope<'_>,
    for_: Option<Duration>,
    until: Option<&str>,
    reason: &str,
) -> Outcome {
    let config = load_config_and_log(path, "warn")?;
    let policy = select_policies(&config, Some(scope.policy))?[0];
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Exit::config(
            "--reason must say why (it is shown by plan and status and kept in the ledger)",
        ));
    }
    let now = Utc::now();
    let until = hold_end(for_, until, policy.schedule.timezone(), now)?;
    let ledger = crate::state::open_control(&config.daemon)
        .await
        .map_err(state_exit)?;
    let live = known_target(&*ledger, policy, &scope).await?;
    let hold = SnapshotHold {
        policy: policy.name.clone(),
        target: scope.target.to_string(),
        snapshot_id: scope.snapshot.map(str::to_string),
        reason: reason.to_string(),
        by: who(),
        since: now,
        until,
    };
    let placed = ledger.hold(&hold, now).await.map_err(|e| match e {
        StateError::HoldTooLate { .. } => Exit::failure(format!("not held: {e}")),
        e => state_exit(e),
    })?;
    audit(&*ledger, AuditAction::Hold, &hold, hold.describe()).await;
    say!(
        "{} {}{}",
        what(&scope),
        hold.describe(),
        if placed.replaced {
            " (it replaces the hold there was)"
        } else {
            ""
        }
    );
    if !placed.not_covered.is_empty() {
        say!(
            "not covered (already being deleted): {}",
            placed.not_covered.join(", ")
        );
    }
    let covered: Vec<&SnapshotRow> = live.iter().filter(|r| hold.covers(r, now)).collect();
    if scope.snapshot.is_none() {
        say!(
            "{} snapshot(s) of {}/{} held",
            covered.len(),
            policy.name,
            scope.target
        );
    }
    let marks: Vec<(&SnapshotRow, Option<String>)> = covered
        .into_iter()
        .map(|r| (r, Some(note(&hold))))
        .collect();
    mark(&config, policy, &ledger, &marks).await;
    Ok(())
}

pub async fn release(path: &Path, scope: Scope<'_>) -> Outcome {
    let config = load_config_and_log(path, "warn")?;
    let policy = select_policies(&config, Some(scope.policy))?[0];
    let ledger = crate::state::open_control(&config.daemon)
        .await
        .map_err(state_exit)?;
    let now = Utc::now();
    let Some(lifted) = ledger
        .release_hold(&policy.name, scope.target, scope.snapshot)
        .await
        .map_err(state_exit)?
        .filter(|h| h.until.is_none_or(|u| u > now))
    else {
        say!("{} was not held", what_of(&scope));
        return Ok(());
    };
    let mut by = lifted.clone();
    by.by = who();
    audit(
        &*ledger,
        AuditAction::Release,
        &by,
        format!("released (was {})", lifted.describe()),
    )
    .await;
    say!("released {} (was {})", what_of(&scope), lifted.describe());
    // The snapshots it covered lose their mark, unless another hold still
    // covers them (then they show that one).
    let live = ledger
        .live_snapshots(&policy.provider, &policy.name, scope.target)
        .await
        .map_err(state_exit)?;
    let others = ledger.holds(now).await.map_err(state_exit)?;
    let marks: Vec<(&SnapshotRow, Option<String>)> = live
        .iter()
        .filter(|r| lifted.covers(r, now))
        .map(|r| (r, others.iter().find(|h| h.covers(r, now)).map(note)))
        .collect();
    mark(&config, policy, &ledger, &marks).await;
    Ok(())
}

/// The live ledger rows of the target; an error when the ledger knows no
/// such target, or (with --snapshot) no such live snapshot of it: a hold
/// on a mistyped id would protect nothing.
async fn known_target(
    ledger: &dyn Ledger,
    policy: &Policy,
    scope: &Scope<'_>,
) -> Result<Vec<SnapshotRow>, Exit> {
    let live = ledger
        .live_snapshots(&policy.provider, &policy.name, scope.target)
        .await
        .map_err(state_exit)?;
    if live.is_empty()
        && ledger
            .runs_for(&policy.name, scope.target, 1)
            .await
            .map_err(state_exit)?
            .is_empty()
    {
        return Err(Exit::config(format!(
            "policy {} has no target {:?} in the ledger (no run was ever recorded for it)",
            policy.name, scope.target
        )));
    }
    if let Some(id) = scope.snapshot {
        if !live.iter().any(|r| r.snapshot_id == id) {
            let ids: Vec<&str> = live.iter().map(|r| r.snapshot_id.as_str()).collect();
            return Err(Exit::config(format!(
                "{}/{} has no snapshot {id:?} in the ledger (its snapshots: {})",
                policy.name,
                scope.target,
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            )));
        }
    }
    Ok(live)
}

/// When a hold ends: --for from now, or --until (RFC 3339, or a date or
/// "date hh:mm" in the policy's time zone), or never.
pub(crate) fn hold_end(
    for_: Option<Duration>,
    until: Option<&str>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Exit> {
    let end = match (for_, until) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(Exit::config("give --for or --until, not both"));
        }
        (Some(d), None) => {
            if d.is_zero() || d > MAX_HOLD {
                return Err(Exit::config(format!(
                    "--for must be more than 0 and at most ten years, not {} \
                     (a hold without --for lasts until released)",
                    humantime::format_duration(d)
                )));
            }
            now + chrono::Duration::from_std(d).map_err(|e| Exit::config(e.to_string()))?
        }
        (None, Some(text)) => parse_until(text, tz)?,
    };
    if end <= now {
        return Err(Exit::config(format!(
            "--until {} is not in the future",
            end.to_rfc3339_opts(SecondsFormat::Secs, true)
        )));
    }
    if end - now > chrono::Duration::from_std(MAX_HOLD).unwrap_or(chrono::Duration::MAX) {
        return Err(Exit::config(
            "--until is more than ten years away (a hold without --until lasts until released)",
        ));
    }
    Ok(Some(end))
}

fn parse_until(text: &str, tz: Tz) -> Result<DateTime<Utc>, Exit> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            Exit::config(format!(
                "--until {text:?} is not a time: give RFC 3339 (2026-12-24T00:00:00Z) or a date \
                 (2026-12-24, or \"2026-12-24 18:00\") in the policy's time zone"
            ))
        })?;
    // A time a DST change skips is not a time: say so. Of a repeated one,
    // the later (the hold lasts longer).
    tz.from_local_datetime(&local)
        .latest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            Exit::config(format!(
                "--until {text:?} does not exist in {tz} (a clock change skips it)"
            ))
        })
}

fn what(scope: &Scope<'_>) -> String {
    match scope.snapshot {
        Some(id) => format!("snapshot {id} of {}/{}", scope.policy, scope.target),
        None => format!("every snapshot {}/{} has now", scope.policy, scope.target),
    }
}

fn what_of(scope: &Scope<'_>) -> String {
    match scope.snapshot {
        Some(id) => format!("snapshot {id} of {}/{}", scope.policy, scope.target),
        None => format!("the target-wide hold of {}/{}", scope.policy, scope.target),
    }
}

/// The mark's text: short, so it fits every cloud's field.
fn note(hold: &SnapshotHold) -> String {
    let until = hold.until.map_or("released".to_string(), |u| {
        u.to_rfc3339_opts(SecondsFormat::Secs, true)
    });
    format!(
        "snapwarden hold until {until} by {}: {}",
        hold.by, hold.reason
    )
}

async fn audit(ledger: &dyn Ledger, action: AuditAction, hold: &SnapshotHold, detail: String) {
    let entry = AuditEntry {
        at: Utc::now(),
        actor: hold.by.clone(),
        action,
        policy: Some(hold.policy.clone()),
        target: Some(hold.target.clone()),
        snapshot: hold.snapshot_id.clone(),
        detail,
    };
    super::audit(ledger, entry).await;
}

/// Set (or clear) each snapshot's hold mark on the cloud. Best effort:
/// a failure is reported and the hold stays in force.
async fn mark(
    config: &Config,
    policy: &Policy,
    ledger: &Arc<dyn Ledger>,
    marks: &[(&SnapshotRow, Option<String>)],
) {
    if marks.is_empty() {
        return;
    }
    let Some(cfg) = config.providers.get(&policy.provider) else {
        return;
    };
    let secrets: Arc<dyn crate::providers::SecretStore> = ledger.clone();
    let provider = match crate::providers::build(cfg, Some(secrets)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warning: not marked on the cloud: {e} (the hold is in the ledger)");
            return;
        }
    };
    let Some(field) = provider.capabilities().hold_mark else {
        say!(
            "{} has no field for a mark: the hold is kept in the ledger only",
            provider.kind()
        );
        return;
    };
    // A restore reading a snapshot follows it by its update time on some
    // clouds (PowerVS): a mark then would look like the restore's end.
    let restoring = ledger
        .snapshots_being_restored(&policy.provider, &policy.name, &marks[0].0.target)
        .await
        .unwrap_or_default();
    let mut done = 0;
    for (row, text) in marks {
        if restoring.contains(&row.snapshot_id) {
            eprintln!(
                "warning: snapshot {} not marked on the cloud now: a restore is reading it (the ledger's hold is what counts)",
                row.snapshot_id
            );
            continue;
        }
        match provider
            .mark_hold(&row.snapshot_id, &row.name, text.as_deref())
            .await
        {
            Ok(()) => done += 1,
            Err(e) => eprintln!(
                "warning: snapshot {} not marked on the cloud: {e} (the ledger's hold is what counts)",
                row.snapshot_id
            ),
        }
    }
    say!(
        "{} {done} of {} snapshot(s) on the cloud ({field})",
        if marks.iter().all(|(_, t)| t.is_none()) {
            "unmarked"
        } else {
            "marked"
        },
        marks.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn the_end_of_a_hold_is_read_in_the_policys_zone() {
        let tz: Tz = "Europe/Berlin".parse().expect("zone");
        let end = |u: &str| hold_end(None, Some(u), tz, now());
        assert_eq!(
            end("2026-12-24").expect("date"),
            Some(
                Utc.with_ymd_and_hms(2026, 12, 23, 23, 0, 0)
                    .single()
                    .expect("t")
            )
        );
        assert_eq!(
            end("2026-12-24 18:30").expect("date and time"),
            Some(
                Utc.with_ymd_and_hms(2026, 12, 24, 17, 30, 0)
                    .single()
                    .expect("t")
            )
        );
        assert_eq!(
            end("2027-01-01T00:00:00Z").expect("rfc 3339"),
            Some(
                Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                    .single()
                    .expect("t")
            )
        );
        // 02:30 on the day clocks go forward does not exist there.
        let skipped = end("2027-03-28 02:30").expect_err("skipped time");
        assert!(skipped
            .message
            .unwrap_or_default()
            .contains("does not exist"));
    }

    #[test]
    fn a_hold_end_must_be_in_the_future_and_given_once() {
        let tz = chrono_tz::UTC;
        let past = hold_end(None, Some("2026-12-01"), tz, now()).expect_err("past");
        assert!(past
            .message
            .unwrap_or_default()
            .contains("not in the future"));
        let both = hold_end(Some(Duration::from_secs(60)), Some("2027-01-01"), tz, now())
            .expect_err("both");
        assert_eq!(both.code, 2);
        let bad = hold_end(None, Some("next tuesday"), tz, now()).expect_err("not a time");
        assert!(bad.message.unwrap_or_default().contains("not a time"));
        assert_eq!(hold_end(None, None, tz, now()).expect("no end"), None);
        assert_eq!(
            hold_end(Some(Duration::from_secs(3600)), None, tz, now()).expect("for"),
            Some(now() + chrono::Duration::hours(1))
        );
        assert!(hold_end(Some(Duration::ZERO), None, tz, now()).is_err());
    }
}
