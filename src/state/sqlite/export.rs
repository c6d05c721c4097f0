//! The whole ledger read out as a [`LedgerDump`] (`snapwarden
//! migrate-state`), and the mark a moved ledger keeps of where its state
//! went. Every row is decoded as the ledger's own reads decode it; a row
//! that cannot be read fails the export, naming its table and key: a copy
//! that silently left a row behind would lose a snapshot or an operation.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::rows::{finish_run_row, parse_opt_ts, parse_ts, run_row, snapshot_row, RawSnapshot};
use super::{migrations, ts, Result, SqliteLedger, StateError, RUN_COLUMNS, SNAPSHOT_COLUMNS};
use crate::state::dump::{
    DumpAlert, DumpAudit, DumpOp, DumpPolicyRules, DumpPostHook, DumpSecret, DumpTarget, LedgerDump,
};
use crate::state::DeleteHold;

/// Where a moved ledger's state went, as `migrate-state` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The target's URL without its password.
    pub location: String,
    pub at: DateTime<Utc>,
}

/// The first schema version with the `ledger_moved` table.
const MOVED_SINCE: i64 = 10;

/// Read every row of `sql` with `row`, then decode it with `parse`; a
/// failure at either step names `table` and the row's key (`key`).
fn read_all<R, T>(
    conn: &Connection,
    table: &'static str,
    sql: &str,
    row: fn(&Row<'_>) -> rusqlite::Result<R>,
    key: fn(&Row<'_>) -> String,
    parse: fn(R) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let unreadable = |problem: String| StateError::Unexportable {
            table,
            key: key(r),
            problem,
        };
        let raw = row(r).map_err(|e| unreadable(e.to_string()))?;
        out.push(parse(raw).map_err(|e| unreadable(e.to_string()))?);
    }
    Ok(out)
}

/// The key of a row whose first column is its id.
fn id_key(r: &Row<'_>) -> String {
    match r.get_ref(0) {
        Ok(v) => match v {
            rusqlite::types::ValueRef::Integer(i) => format!("id {i}"),
            other => format!("id {other:?}"),
        },
        Err(_) => "id unknown".to_string(),
    }
}

/// The key of a row whose first columns are text keys (`n` of them).
fn text_key<const N: usize>(r: &Row<'_>) -> String {
    let parts: Vec<String> = (0..N)
        .map(|i| r.get::<_, String>(i).unwrap_or_else(|_| "?".to_string()))
        .collect();
    format!("({})", parts.join(", "))
}

fn op_raw(r: &Row<'_>) -> rusqlite::Result<(DumpOp, [String; 4])> {
    Ok((
        DumpOp {
            id: r.get(0)?,
            snapshot: r.get(1)?,
            kind: r.get(2)?,
            provider: r.get(3)?,
            reference: r.get(4)?,
            started_at: DateTime::<Utc>::MIN_UTC,
            next_poll_at: DateTime::<Utc>::MIN_UTC,
            poll_interval_ms: r.get(6)?,
            deadline: DateTime::<Utc>::MIN_UTC,
            finished_at: None,
            outcome: r.get(9)?,
            error: r.get(10)?,
        },
        [
            r.get(5)?,
            r.get(7)?,
            r.get(8)?,
            r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        ],
    ))
}

fn op_parse(
    (mut op, [started, deadline, next, finished]): (DumpOp, [String; 4]),
) -> Result<DumpOp> {
    // The kind is checked as the ledger's reads check it.
    super::rows::op_kind(&op.kind)?;
    if let Some(o) = &op.outcome {
        if o != "succeeded" && o != "failed" {
            return Err(crate::state::corrupt("operations.outcome", o));
        }
    }
    op.started_at = parse_ts("operations.started_at", &started)?;
    op.deadline = parse_ts("operations.deadline", &deadline)?;
    op.next_poll_at = parse_ts("operations.next_poll_at", &next)?;
    op.finished_at = parse_opt_ts(
        "operations.finished_at",
        Some(finished).filter(|f| !f.is_empty()),
    )?;
    Ok(op)
}

/// Every row of `provider_secrets`.
fn read_provider_secrets(tx: &rusqlite::Transaction<'_>) -> Result<Vec<DumpSecret>> {
    read_all(
        tx,
        "provider_secrets",
        "SELECT provider, key, value, seed, updated_at FROM provider_secrets
         ORDER BY provider, key",
        |r| {
            Ok((
                DumpSecret {
                    provider: r.get(0)?,
                    key: r.get(1)?,
                    value: r.get(2)?,
                    seed: r.get(3)?,
                    updated_at: DateTime::<Utc>::MIN_UTC,
                },
                r.get::<_, String>(4)?,
            ))
        },
        text_key::<2>,
        |(mut s, at)| {
            s.updated_at = parse_ts("provider_secrets.updated_at", &at)?;
            Ok(s)
        },
    )
}

/// Every row of `delete_holds`.
fn read_delete_holds(tx: &rusqlite::Transaction<'_>) -> Result<Vec<DeleteHold>> {
    read_all(
        tx,
        "delete_holds",
        "SELECT policy, target, reason, since FROM delete_holds ORDER BY policy, target",
        super::rows::four_texts,
        text_key::<2>,
        |(policy, target, reason, since)| {
            Ok(DeleteHold {
                policy,
                target,
                reason,
                since: parse_ts("delete_holds.since", &since)?,
            })
        },
    )
}

/// Every row of `policy_rules`.
fn read_policy_rules(tx: &rusqlite::Transaction<'_>) -> Result<Vec<DumpPolicyRules>> {
    read_all(
        tx,
        "policy_rules",
        "SELECT policy, provider, rules, updated_at FROM policy_rules ORDER BY policy",
        super::rows::four_texts,
        text_key::<1>,
        |(policy, provider, rules, at)| {
            Ok(DumpPolicyRules {
                policy,
                provider,
                rules,
                updated_at: parse_ts("policy_rules.updated_at", &at)?,
            })
        },
    )
}

/// Every row of `alerts_delivered`.
fn read_alerts_delivered(tx: &rusqlite::Transaction<'_>) -> Result<Vec<DumpAlert>> {
    read_all(
        tx,
        "alerts_delivered",
        "SELECT policy, target, kind, at FROM alerts_delivered ORDER BY policy, target, kind",
        super::rows::four_texts,
        text_key::<3>,
        |(policy, target, kind, at)| {
            Ok(DumpAlert {
                policy,
                target,
                kind,
                at: parse_ts("alerts_delivered.at", &at)?,
            })
        },
    )
}

/// Every row of `post_hooks_owed`, its command decoded as the ledger's
/// reads decode it.
fn read_post_hooks_owed(tx: &rusqlite::Transaction<'_>) -> Result<Vec<DumpPostHook>> {
    read_all(
        tx,
        "post_hooks_owed",
        "SELECT run_id, command, resource, since FROM post_hooks_owed ORDER BY run_id",
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        },
        |r| match r.get::<_, i64>(0) {
            Ok(id) => format!("run_id {id}"),
            Err(_) => "run_id unknown".to_string(),
        },
        |(run_id, command, resource, since)| {
            Ok(DumpPostHook {
                run_id,
                command: crate::state::parse_hook_command(&command)?,
                resource,
                since: parse_ts("post_hooks_owed.since", &since)?,
            })
        },
    )
}

/// Every row of `pauses`, in force or not, by scope.
fn read_pauses(tx: &rusqlite::Transaction<'_>) -> Result<Vec<crate::state::Pause>> {
    read_all(
        tx,
        "pauses",
        &format!(
            "SELECT {} FROM pauses ORDER BY scope",
            super::pauses::PAUSE_COLUMNS
        ),
        super::pauses::raw_pause,
        text_key::<1>,
        super::pauses::parse_pause,
    )
}

/// Every row of `snapshot_holds`, in force or not, by key.
fn read_snapshot_holds(tx: &rusqlite::Transaction<'_>) -> Result<Vec<crate::state::SnapshotHold>> {
    read_all(
        tx,
        "snapshot_holds",
        &format!(
            "SELECT {} FROM snapshot_holds ORDER BY policy, target, snapshot_id",
            super::holds::HOLD_COLUMNS
        ),
        super::holds::raw_hold,
        text_key::<3>,
        super::holds::parse_hold,
    )
}

/// Every row of `audit_log`, by id.
fn read_audit_log(tx: &rusqlite::Transaction<'_>) -> Result<Vec<DumpAudit>> {
    read_all(
        tx,
        "audit_log",
        &format!(
            "SELECT {} FROM audit_log ORDER BY id",
            super::audit::AUDIT_COLUMNS
        ),
        super::audit::raw_audit,
        id_key,
        |raw| super::audit::parse_audit(raw).map(|(id, entry)| DumpAudit { id, entry }),
    )
}

impl SqliteLedger {
    /// Every row of every table but the health probe's, read in one
    /// transaction (a consistent picture even if a reader runs beside).
    pub fn export(&self) -> Result<LedgerDump> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let runs = read_all(
            &tx,
            "runs",
            &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id"),
            run_row,
            id_key,
            finish_run_row,
        )?;
        let snapshots = read_all(
            &tx,
            "snapshots",
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots ORDER BY id"),
            snapshot_row,
            id_key,
            RawSnapshot::parse,
        )?;
        let operations = read_all(
            &tx,
            "operations",
            "SELECT id, snapshot, kind, provider, reference, started_at, poll_interval_ms,
                    deadline, next_poll_at, outcome, error, finished_at
             FROM operations ORDER BY id",
            op_raw,
            id_key,
            op_parse,
        )?;
        let schedule = read_all(
            &tx,
            "schedule",
            "SELECT policy, last_slot FROM schedule ORDER BY policy",
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            text_key::<1>,
            |(p, s)| Ok((p, parse_ts("schedule.last_slot", &s)?)),
        )?;
        let provider_secrets = read_provider_secrets(&tx)?;
        let delete_holds = read_delete_holds(&tx)?;
        let policy_rules = read_policy_rules(&tx)?;
        let snapshot_sources = read_all(
            &tx,
            "snapshot_sources",
            "SELECT snapshot, source FROM snapshot_sources ORDER BY snapshot",
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            id_key,
            Ok,
        )?;
        let targets = read_all(
            &tx,
            "targets",
            "SELECT policy, target, provider FROM targets ORDER BY policy, target",
            |r| {
                Ok(DumpTarget {
                    policy: r.get(0)?,
                    target: r.get(1)?,
                    provider: r.get(2)?,
                })
            },
            text_key::<2>,
            Ok,
        )?;
        let alerts_delivered = read_alerts_delivered(&tx)?;
        let post_hooks_owed = read_post_hooks_owed(&tx)?;
        let pauses = read_pauses(&tx)?;
        let snapshot_holds = read_snapshot_holds(&tx)?;
        let audit_log = read_audit_log(&tx)?;
        tx.finish()?;
        Ok(LedgerDump {
            runs,
            snapshots,
            operations,
            schedule,
            provider_secrets,
            delete_holds,
            policy_rules,
            snapshot_sources,
            targets,
            alerts_delivered,
            post_hooks_owed,
            pauses,
            snapshot_holds,
            audit_log,
        })
    }

    /// Where this ledger's state was moved, if `migrate-state` moved it.
    pub fn moved(&self) -> Result<Option<Moved>> {
        moved(&self.conn())
    }

    /// Record that this ledger's state now lives at `location` (a URL
    /// without its password): every later open refuses, naming it.
    pub fn mark_moved(&self, location: &str, at: DateTime<Utc>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO ledger_moved (id, location, at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET location = excluded.location, at = excluded.at",
            params![location, ts(at)],
        )?;
        Ok(())
    }
}

/// The `ledger_moved` row of the database on `conn`, if any (none before
/// the schema has the table).
pub(super) fn moved(conn: &Connection) -> Result<Option<Moved>> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < MOVED_SINCE || version > migrations::MIGRATIONS.len() as i64 {
        return Ok(None);
    }
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT location, at FROM ledger_moved WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(location, at)| {
        Ok(Moved {
            location,
            at: parse_ts("ledger_moved.at", &at)?,
        })
    })
    .transpose()
}
