//! Row codecs: timestamps as text, and each table's row read into its
//! type (a value the ledger cannot read is `StateError::Corrupt`).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, Row};

pub(super) use crate::state::corrupt;

use super::{LedgerState, OpRow, Result, RunRow, RunState, SnapshotRow, Unreadable};
use crate::providers::OpKind;

/// Timestamps are stored as RFC 3339 UTC text with milliseconds, which
/// sorts correctly as text.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn parse_ts(what: &'static str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| corrupt(what, s))
}

pub(super) fn parse_opt_ts(what: &'static str, s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.map(|s| parse_ts(what, &s)).transpose()
}

pub(super) fn op_kind(s: &str) -> Result<OpKind> {
    match s {
        "create" => Ok(OpKind::Create),
        "delete" => Ok(OpKind::Delete),
        "restore" => Ok(OpKind::Restore),
        other => Err(corrupt("operations.kind", other)),
    }
}

pub(super) fn run_row(row: &Row<'_>) -> rusqlite::Result<(RunRow, [String; 4])> {
    // Text fields are parsed after the query; rusqlite's row mapper cannot
    // return our error type.
    Ok((
        RunRow {
            id: row.get(0)?,
            policy: row.get(1)?,
            target: row.get(2)?,
            provider: row.get(3)?,
            slot: DateTime::<Utc>::MIN_UTC,
            name: row.get(5)?,
            full: row.get(6)?,
            state: RunState::Intent,
            started_at: DateTime::<Utc>::MIN_UTC,
            finished_at: None,
            error: row.get(10)?,
        },
        [
            row.get(4)?,
            row.get(7)?,
            row.get(8)?,
            row.get::<_, Option<String>>(9)?.unwrap_or_default(),
        ],
    ))
}

pub(super) fn finish_run_row(
    (mut run, [slot, state, started, finished]): (RunRow, [String; 4]),
) -> Result<RunRow> {
    run.slot = parse_ts("runs.slot", &slot)?;
    run.state = RunState::parse(&state)?;
    run.started_at = parse_ts("runs.started_at", &started)?;
    run.finished_at = if finished.is_empty() {
        None
    } else {
        Some(parse_ts("runs.finished_at", &finished)?)
    };
    Ok(run)
}

/// A row of four text columns (keys and a time, parsed by the caller).
pub(super) fn four_texts(row: &Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

pub(super) fn snapshot_row(row: &Row<'_>) -> rusqlite::Result<RawSnapshot> {
    Ok(RawSnapshot {
        id: row.get(0)?,
        run_id: row.get(1)?,
        provider: row.get(2)?,
        policy: row.get(3)?,
        target: row.get(4)?,
        slot: row.get(5)?,
        name: row.get(6)?,
        snapshot_id: row.get(7)?,
        state: row.get(8)?,
        full: row.get(9)?,
        created_at: row.get(10)?,
        completed_at: row.get(11)?,
        deleted_at: row.get(12)?,
        error: row.get(13)?,
        size_bytes: row.get(14)?,
    })
}

pub(super) fn op_row(row: &Row<'_>) -> rusqlite::Result<RawOp> {
    Ok(RawOp {
        id: row.get(0)?,
        kind: row.get(1)?,
        provider: row.get(2)?,
        reference: row.get(3)?,
        snapshot_row: row.get(4)?,
        snapshot_id: row.get(5)?,
        run_id: row.get(6)?,
        policy: row.get(7)?,
        target: row.get(8)?,
        started_at: row.get(9)?,
        next_poll_at: row.get(10)?,
        poll_interval_ms: row.get(11)?,
        deadline: row.get(12)?,
    })
}

pub(super) struct RawSnapshot {
    id: i64,
    run_id: i64,
    provider: String,
    policy: String,
    target: String,
    slot: String,
    name: String,
    snapshot_id: String,
    state: String,
    full: bool,
    created_at: String,
    completed_at: Option<String>,
    deleted_at: Option<String>,
    error: Option<String>,
    size_bytes: Option<i64>,
}

impl RawSnapshot {
    pub(super) fn parse(self) -> Result<SnapshotRow> {
        Ok(SnapshotRow {
            id: self.id,
            run_id: self.run_id,
            provider: self.provider,
            policy: self.policy,
            target: self.target,
            slot: parse_ts("snapshots.slot", &self.slot)?,
            name: self.name,
            snapshot_id: self.snapshot_id,
            state: LedgerState::parse(&self.state)?,
            full: self.full,
            created_at: parse_ts("snapshots.created_at", &self.created_at)?,
            completed_at: parse_opt_ts("snapshots.completed_at", self.completed_at)?,
            deleted_at: parse_opt_ts("snapshots.deleted_at", self.deleted_at)?,
            error: self.error,
            size_bytes: crate::state::read_size(self.size_bytes)?,
        })
    }
}

pub(super) struct RawOp {
    pub(super) id: i64,
    kind: String,
    provider: String,
    reference: String,
    snapshot_row: i64,
    snapshot_id: String,
    run_id: i64,
    policy: String,
    target: String,
    started_at: String,
    next_poll_at: String,
    poll_interval_ms: i64,
    deadline: String,
}

impl RawOp {
    pub(super) fn parse(self) -> Result<OpRow> {
        Ok(OpRow {
            id: self.id,
            kind: op_kind(&self.kind)?,
            provider: self.provider,
            reference: self.reference,
            snapshot_row: self.snapshot_row,
            snapshot_id: self.snapshot_id,
            run_id: self.run_id,
            policy: self.policy,
            target: self.target,
            started_at: parse_ts("operations.started_at", &self.started_at)?,
            next_poll_at: parse_ts("operations.next_poll_at", &self.next_poll_at)?,
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(0) as u64),
            deadline: parse_ts("operations.deadline", &self.deadline)?,
        })
    }
}

/// How one table's rows are read: the raw row, its id, and its parse.
pub(super) struct Reader<R, T> {
    pub table: &'static str,
    pub row: fn(&Row<'_>) -> rusqlite::Result<R>,
    pub id: fn(&R) -> i64,
    pub parse: fn(R) -> Result<T>,
}

impl<R, T> Reader<R, T> {
    /// Every row `sql` selects that can be read, and the ones that cannot
    /// (reported, not fatal): one corrupt row never hides the others.
    pub(super) fn each_readable(
        &self,
        conn: &Connection,
        sql: &str,
    ) -> Result<(Vec<T>, Vec<Unreadable>)> {
        let mut stmt = conn.prepare(sql)?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for raw in stmt.query_map([], self.row)? {
            match raw {
                Ok(raw) => {
                    let id = (self.id)(&raw);
                    match (self.parse)(raw) {
                        Ok(row) => good.push(row),
                        Err(e) => bad.push(Unreadable::new(self.table, id, e)),
                    }
                }
                Err(e) => bad.push(Unreadable::new(self.table, -1, e)),
            }
        }
        Ok((good, bad))
    }
}
