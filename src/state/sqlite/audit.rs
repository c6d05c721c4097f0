//! The audit trail: who created, deleted or restored which snapshot, who
//! paused or resumed what, and why. Appended to by any process (a fact),
//! read by `snapwarden history`.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row};

use super::rows::{parse_ts, ts};
use super::{write_tx, Result, SqliteLedger};
use crate::state::{AuditAction, AuditEntry};

pub(super) const AUDIT_COLUMNS: &str = "id, at, actor, action, policy, target, snapshot, detail";

/// A row of [`AUDIT_COLUMNS`], its time and action still text.
pub(super) type RawAudit = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

pub(super) fn raw_audit(r: &Row<'_>) -> rusqlite::Result<RawAudit> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

/// The row's id and its entry.
pub(super) fn parse_audit(
    (id, at, actor, action, policy, target, snapshot, detail): RawAudit,
) -> Result<(i64, AuditEntry)> {
    Ok((
        id,
        AuditEntry {
            at: parse_ts("audit_log.at", &at)?,
            actor,
            action: AuditAction::parse(&action)?,
            policy,
            target,
            snapshot,
            detail,
        },
    ))
}

/// Whether the database has the audit trail's table: a read-only open
/// of a ledger an older snapwarden wrote (not migrated yet) has none,
/// and so no entries.
fn has_audit_table(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log')",
        [],
        |r| r.get(0),
    )?)
}

impl SqliteLedger {
    /// Append `entries`, in one transaction (none: nothing written).
    pub fn record_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = write_tx(&mut conn)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO audit_log (at, actor, action, policy, target, snapshot, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in entries {
                stmt.execute(params![
                    ts(e.at),
                    e.actor,
                    e.action.as_str(),
                    e.policy,
                    e.target,
                    e.snapshot,
                    e.detail
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The entries at or after `since`, oldest first, ties by id; with
    /// `policy`, that policy's and those of no policy. Writes nothing.
    pub fn audit_log(&self, since: DateTime<Utc>, policy: Option<&str>) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        if !has_audit_table(&conn)? {
            return Ok(Vec::new());
        }
        // Times are text of one fixed width, which compares as time.
        let mut stmt = conn.prepare(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log
             WHERE at >= ?1 AND (?2 IS NULL OR policy IS NULL OR policy = ?2)
             ORDER BY at, id"
        ))?;
        let raws = stmt
            .query_map(params![ts(since), policy], raw_audit)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter()
            .map(|raw| parse_audit(raw).map(|(_, e)| e))
            .collect()
    }
}
