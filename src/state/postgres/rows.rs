//! Rows read into their types with typed gets: a value that does not
//! decode (a state outside its enum, a column of another type) is
//! `StateError::Corrupt`, never a panic.

use std::time::Duration;

use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::providers::OpKind;
use crate::state::{
    corrupt, LedgerState, OpRow, Result, RunRow, RunState, SnapshotRow, StateError, Unreadable,
};

/// Column `idx` of `row`, or what made it unreadable.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize, what: &'static str) -> Result<T> {
    row.try_get(idx).map_err(|e| StateError::Corrupt {
        what,
        value: super::pg_message(&e),
    })
}

pub(super) fn op_kind(s: &str) -> Result<OpKind> {
    match s {
        "create" => Ok(OpKind::Create),
        "delete" => Ok(OpKind::Delete),
        "restore" => Ok(OpKind::Restore),
        other => Err(corrupt("operations.kind", other)),
    }
}

/// A row of `RUN_COLUMNS`.
pub(super) fn run_row(row: &Row) -> Result<RunRow> {
    Ok(RunRow {
        id: get(row, 0, "runs.id")?,
        policy: get(row, 1, "runs.policy")?,
        target: get(row, 2, "runs.target")?,
        provider: get(row, 3, "runs.provider")?,
        slot: get(row, 4, "runs.slot")?,
        name: get(row, 5, "runs.name")?,
        full: get(row, 6, "runs.full")?,
        state: RunState::parse(get(row, 7, "runs.state")?)?,
        started_at: get(row, 8, "runs.started_at")?,
        finished_at: get(row, 9, "runs.finished_at")?,
        error: get(row, 10, "runs.error")?,
    })
}

/// A row of `SNAPSHOT_COLUMNS`.
pub(super) fn snapshot_row(row: &Row) -> Result<SnapshotRow> {
    Ok(SnapshotRow {
        id: get(row, 0, "snapshots.id")?,
        run_id: get(row, 1, "snapshots.run_id")?,
        provider: get(row, 2, "snapshots.provider")?,
        policy: get(row, 3, "snapshots.policy")?,
        target: get(row, 4, "snapshots.target")?,
        slot: get(row, 5, "snapshots.slot")?,
        name: get(row, 6, "snapshots.name")?,
        snapshot_id: get(row, 7, "snapshots.snapshot_id")?,
        state: LedgerState::parse(get(row, 8, "snapshots.state")?)?,
        full: get(row, 9, "snapshots.full")?,
        created_at: get(row, 10, "snapshots.created_at")?,
        completed_at: get(row, 11, "snapshots.completed_at")?,
        deleted_at: get(row, 12, "snapshots.deleted_at")?,
        error: get(row, 13, "snapshots.error")?,
        size_bytes: crate::state::read_size(get(row, 14, "snapshots.size_bytes")?)?,
    })
}

/// A row of `OP_COLUMNS`.
pub(super) fn op_row(row: &Row) -> Result<OpRow> {
    let interval: i64 = get(row, 11, "operations.poll_interval_ms")?;
    Ok(OpRow {
        id: get(row, 0, "operations.id")?,
        kind: op_kind(get(row, 1, "operations.kind")?)?,
        provider: get(row, 2, "operations.provider")?,
        reference: get(row, 3, "operations.reference")?,
        snapshot_row: get(row, 4, "operations.snapshot")?,
        snapshot_id: get(row, 5, "snapshots.snapshot_id")?,
        run_id: get(row, 6, "snapshots.run_id")?,
        policy: get(row, 7, "snapshots.policy")?,
        target: get(row, 8, "snapshots.target")?,
        started_at: get(row, 9, "operations.started_at")?,
        next_poll_at: get(row, 10, "operations.next_poll_at")?,
        poll_interval: Duration::from_millis(u64::try_from(interval).unwrap_or(0)),
        deadline: get(row, 12, "operations.deadline")?,
    })
}

/// Every row that can be read, and the ones that cannot (reported, not
/// fatal): one corrupt row never hides the others. The id is column 0.
pub(super) fn each_readable<T>(
    rows: &[Row],
    table: &'static str,
    read: fn(&Row) -> Result<T>,
) -> (Vec<T>, Vec<Unreadable>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for row in rows {
        match read(row) {
            Ok(r) => good.push(r),
            Err(e) => {
                let id = row.try_get::<_, i64>(0).unwrap_or(-1);
                bad.push(Unreadable::new(table, id, e));
            }
        }
    }
    (good, bad)
}

/// Every row read, or the first that cannot be.
pub(super) fn all<T>(rows: &[Row], read: fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(read).collect()
}
