//! The audit trail, as the SQLite ledger keeps it: appended to by any
//! process (a fact, not fenced), read by `snapwarden history`.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::rows::get;
use super::{ms, PgLedger};
use crate::state::{AuditAction, AuditEntry, Result};

pub(super) const AUDIT_COLUMNS: &str = "id, at, actor, action, policy, target, snapshot, detail";

/// A row of [`AUDIT_COLUMNS`]: its id and its entry.
pub(super) fn audit_row(row: &Row) -> Result<(i64, AuditEntry)> {
    let action: String = get(row, 3, "audit_log.action")?;
    Ok((
        get(row, 0, "audit_log.id")?,
        AuditEntry {
            at: get(row, 1, "audit_log.at")?,
            actor: get(row, 2, "audit_log.actor")?,
            action: AuditAction::parse(&action)?,
            policy: get(row, 4, "audit_log.policy")?,
            target: get(row, 5, "audit_log.target")?,
            snapshot: get(row, 6, "audit_log.snapshot")?,
            detail: get(row, 7, "audit_log.detail")?,
        },
    ))
}

impl PgLedger {
    /// Append `entries` in one statement (one transaction; none: nothing
    /// written). Not fenced.
    pub async fn record_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut at = Vec::with_capacity(entries.len());
        let mut actor = Vec::with_capacity(entries.len());
        let mut action = Vec::with_capacity(entries.len());
        let mut policy = Vec::with_capacity(entries.len());
        let mut target = Vec::with_capacity(entries.len());
        let mut snapshot = Vec::with_capacity(entries.len());
        let mut detail = Vec::with_capacity(entries.len());
        for e in entries {
            at.push(ms(e.at));
            actor.push(e.actor.as_str());
            action.push(e.action.as_str());
            policy.push(e.policy.as_deref());
            target.push(e.target.as_deref());
            snapshot.push(e.snapshot.as_deref());
            detail.push(e.detail.as_str());
        }
        // WITH ORDINALITY keeps the entries' order in their ids.
        self.client()
            .await?
            .execute(
                "INSERT INTO audit_log (at, actor, action, policy, target, snapshot, detail)
                 SELECT at, actor, action, policy, target, snapshot, detail
                 FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[],
                             $5::text[], $6::text[], $7::text[])
                      WITH ORDINALITY AS v(at, actor, action, policy, target, snapshot, detail, n)
                 ORDER BY n",
                &[&at, &actor, &action, &policy, &target, &snapshot, &detail],
            )
            .await?;
        Ok(())
    }

    /// The entries at or after `since`, oldest first, ties by id; with
    /// `policy`, that policy's and those of no policy.
    pub async fn audit_log(
        &self,
        since: DateTime<Utc>,
        policy: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log
                     WHERE at >= $1 AND ($2::text IS NULL OR policy IS NULL OR policy = $2)
                     ORDER BY at, id"
                ),
                &[&ms(since), &policy],
            )
            .await?;
        rows.iter().map(|r| audit_row(r).map(|(_, e)| e)).collect()
    }
}
