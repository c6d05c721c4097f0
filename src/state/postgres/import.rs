//! Filling an empty PostgreSQL ledger with a [`LedgerDump`] (`snapwarden
//! migrate-state`): every table in one transaction, ids kept, the
//! identity sequences moved past them, and the copy checked against the
//! dump before the commit.

use std::time::Instant;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use super::PgLedger;
use crate::state::dump::{value_columns, LedgerDump, TableCheck, IN_FLIGHT, TABLES};
use crate::state::{ImportReport, Result, StateError};

/// How long the import waits for a table lock another session holds
/// (a daemon mid-transaction) before it gives up.
const LOCK_TIMEOUT: &str = "5s";

type Param = Box<dyn ToSql + Sync + Send>;

fn p<T: ToSql + Sync + Send + 'static>(v: T) -> Param {
    Box::new(v)
}

/// Write `rows` into `table` with one `COPY ... FROM STDIN BINARY`
/// (streamed: no statement per row, no parameter limit); `columns` are
/// the columns with their types, `values` one row's values in that order.
async fn copy_all<T>(
    tx: &Transaction<'_>,
    table: &str,
    columns: &[(&str, Type)],
    rows: &[T],
    values: fn(&T) -> Vec<Param>,
) -> Result<()> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let types: Vec<Type> = columns.iter().map(|(_, t)| t.clone()).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({}) FROM STDIN BINARY",
            names.join(", ")
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for row in rows {
        let params = values(row);
        if params.len() != types.len() {
            return Err(StateError::Lost(format!(
                "the copy of {table} gave {} values for {} columns",
                params.len(),
                types.len()
            )));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// How a table's check is computed in SQL: its id column and its state
/// expression, where it has them.
fn check_columns(table: &str) -> (Option<&'static str>, Option<String>) {
    match table {
        "runs" | "snapshots" => (Some("id"), Some("state".to_string())),
        "operations" => (
            Some("id"),
            Some(format!("COALESCE(outcome, '{IN_FLIGHT}')")),
        ),
        "snapshot_sources" => (Some("snapshot"), None),
        "post_hooks_owed" => (Some("run_id"), None),
        "audit_log" => (Some("id"), Some("action".to_string())),
        _ => (None, None),
    }
}

/// `table`'s [`TableCheck`] as the database sees it.
async fn table_check(tx: &Transaction<'_>, table: &str) -> Result<TableCheck> {
    let (id, state) = check_columns(table);
    let mut check = TableCheck::default();
    match id {
        Some(id) => {
            let row = tx
                .query_one(
                    &format!(
                        "SELECT count(*), max({id}), COALESCE(sum({id}), 0)::bigint FROM {table}"
                    ),
                    &[],
                )
                .await?;
            check.rows = row.try_get(0)?;
            check.max_id = row.try_get(1)?;
            check.id_sum = row.try_get(2)?;
        }
        None => {
            check.rows = tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .try_get(0)?;
        }
    }
    let (times, texts, numbers) = value_columns(table);
    let sum = |terms: Vec<String>| {
        if terms.is_empty() {
            "0".to_string()
        } else {
            terms.join(" + ")
        }
    };
    let times = sum(times
        .iter()
        .map(|c| format!("COALESCE(round(extract(epoch FROM {c}) * 1000)::bigint, 0)"))
        .collect());
    let texts = sum(texts
        .iter()
        .map(|c| format!("COALESCE(char_length({c}), 0)"))
        .collect());
    // numeric: a row's numbers (a size near i64::MAX and its run id) may
    // add up past a bigint.
    let numbers = sum(numbers.iter().map(|c| format!("{c}::numeric")).collect());
    let row = tx
        .query_one(
            &format!(
                "SELECT COALESCE(sum({times}), 0)::text, COALESCE(sum({texts}), 0)::text,
                        COALESCE(sum({numbers}), 0)::text FROM {table}"
            ),
            &[],
        )
        .await?;
    let number = |i: usize| -> Result<i128> {
        let text: String = row.try_get(i)?;
        text.parse()
            .map_err(|_| crate::state::corrupt("a sum of the copy", &text))
    };
    check.time_ms_sum = number(0)?;
    check.text_chars = number(1)?;
    check.number_sum = number(2)?;
    if let Some(state) = state {
        for row in tx
            .query(
                &format!("SELECT {state}, count(*) FROM {table} GROUP BY 1"),
                &[],
            )
            .await?
        {
            check.by_state.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok(check)
}

impl PgLedger {
    /// Write `dump` into this ledger, which must be empty (no row in any
    /// table the dump carries) and led by no live node, in one
    /// transaction; ids are kept and each identity sequence is moved past
    /// the largest, so new rows get fresh ids. Before the commit every
    /// table's [`TableCheck`] must equal the dump's; else nothing is
    /// written and the mismatch is the error.
    pub async fn import(&self, dump: &LedgerDump) -> Result<ImportReport> {
        let started = Instant::now();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
             LOCK TABLE {} IN EXCLUSIVE MODE",
            TABLES.join(", ")
        ))
        .await?;
        self.refuse_unless_empty(&tx).await?;

        copy_history(&tx, dump).await?;
        copy_settings(&tx, dump).await?;
        copy_hooks(&tx, dump).await?;
        copy_pauses(&tx, dump).await?;
        copy_snapshot_holds(&tx, dump).await?;
        copy_audit_log(&tx, dump).await?;
        reset_sequences(&tx).await?;
        let tables = self.verify(&tx, dump).await?;
        tx.commit().await?;
        Ok(ImportReport {
            tables,
            elapsed: started.elapsed(),
        })
    }

    /// Every table's [`TableCheck`] as copied, which must equal the
    /// dump's: else the mismatch is the error (and the caller's
    /// transaction, dropped, rolls back).
    async fn verify(
        &self,
        tx: &Transaction<'_>,
        dump: &LedgerDump,
    ) -> Result<Vec<(&'static str, TableCheck)>> {
        let expected = dump.checks();
        let mut tables = Vec::with_capacity(expected.len());
        let mut mismatches = Vec::new();
        for (table, want) in expected {
            let got = table_check(tx, table).await?;
            if got != want {
                mismatches.push(format!("{table}: copied {got:?}, expected {want:?}"));
            }
            tables.push((table, got));
        }
        if !mismatches.is_empty() {
            // Dropping the transaction rolls it back.
            return Err(StateError::ImportMismatch(format!(
                "the copy into {} does not match the SQLite ledger, so nothing was written: {}",
                self.location(),
                mismatches.join("; ")
            )));
        }
        Ok(tables)
    }

    /// Refuse a ledger that holds any row of the tables an import writes,
    /// or whose scheduler lease a node holds.
    async fn refuse_unless_empty(&self, tx: &Transaction<'_>) -> Result<()> {
        let mut found = Vec::new();
        for table in TABLES {
            let n: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .try_get(0)?;
            if n > 0 {
                found.push(format!(
                    "{table} has {n} row{}",
                    if n == 1 { "" } else { "s" }
                ));
            }
        }
        if !found.is_empty() {
            return Err(StateError::ImportRefused(format!(
                "the PostgreSQL ledger {} is not empty ({}); nothing was copied: point the copy at an empty database (CREATE DATABASE ...)",
                self.location(),
                found.join(", ")
            )));
        }
        if let Some(row) = tx
            .query_opt(
                "SELECT holder FROM leader_lease WHERE name = 'scheduler' AND expires_at > now()",
                &[],
            )
            .await?
        {
            let holder: String = row.try_get(0)?;
            return Err(StateError::ImportRefused(format!(
                "a snapwarden daemon ({holder}) leads the PostgreSQL ledger {}; nothing was copied: stop every daemon that uses it first",
                self.location()
            )));
        }
        Ok(())
    }
}

/// The run history: runs, their snapshots, and the operations on them, in
/// that order (each refers to the one before).
async fn copy_history(tx: &Transaction<'_>, dump: &LedgerDump) -> Result<()> {
    // A size PostgreSQL cannot store is refused before anything is copied.
    for s in &dump.snapshots {
        if let Some(bytes) = s.size_bytes {
            crate::state::stored_size(s.id, bytes)?;
        }
    }
    copy_all(
        tx,
        "runs",
        &[
            ("id", Type::INT8),
            ("policy", Type::TEXT),
            ("target", Type::TEXT),
            ("provider", Type::TEXT),
            ("slot", Type::TIMESTAMPTZ),
            ("name", Type::TEXT),
            ("\"full\"", Type::BOOL),
            ("state", Type::TEXT),
            ("started_at", Type::TIMESTAMPTZ),
            ("finished_at", Type::TIMESTAMPTZ),
            ("error", Type::TEXT),
        ],
        &dump.runs,
        |r| {
            vec![
                p(r.id),
                p(r.policy.clone()),
                p(r.target.clone()),
                p(r.provider.clone()),
                p(r.slot),
                p(r.name.clone()),
                p(r.full),
                p(r.state.as_str()),
                p(r.started_at),
                p(r.finished_at),
                p(r.error.clone()),
            ]
        },
    )
    .await?;
    copy_all(
        tx,
        "snapshots",
        &[
            ("id", Type::INT8),
            ("run_id", Type::INT8),
            ("provider", Type::TEXT),
            ("policy", Type::TEXT),
            ("target", Type::TEXT),
            ("slot", Type::TIMESTAMPTZ),
            ("name", Type::TEXT),
            ("snapshot_id", Type::TEXT),
            ("state", Type::TEXT),
            ("\"full\"", Type::BOOL),
            ("created_at", Type::TIMESTAMPTZ),
            ("completed_at", Type::TIMESTAMPTZ),
            ("deleted_at", Type::TIMESTAMPTZ),
            ("error", Type::TEXT),
            ("size_bytes", Type::INT8),
        ],
        &dump.snapshots,
        |s| {
            vec![
                p(s.id),
                p(s.run_id),
                p(s.provider.clone()),
                p(s.policy.clone()),
                p(s.target.clone()),
                p(s.slot),
                p(s.name.clone()),
                p(s.snapshot_id.clone()),
                p(s.state.as_str()),
                p(s.full),
                p(s.created_at),
                p(s.completed_at),
                p(s.deleted_at),
                p(s.error.clone()),
                // Checked before the copy (see `copy_history`).
                p(s.size_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX))),
            ]
        },
    )
    .await?;
    copy_all(
        tx,
        "operations",
        &[
            ("id", Type::INT8),
            ("snapshot", Type::INT8),
            ("kind", Type::TEXT),
            ("provider", Type::TEXT),
            ("reference", Type::TEXT),
            ("started_at", Type::TIMESTAMPTZ),
            ("next_poll_at", Type::TIMESTAMPTZ),
            ("poll_interval_ms", Type::INT8),
            ("deadline", Type::TIMESTAMPTZ),
            ("finished_at", Type::TIMESTAMPTZ),
            ("outcome", Type::TEXT),
            ("error", Type::TEXT),
        ],
        &dump.operations,
        |o| {
            vec![
                p(o.id),
                p(o.snapshot),
                p(o.kind.clone()),
                p(o.provider.clone()),
                p(o.reference.clone()),
                p(o.started_at),
                p(o.next_poll_at),
                p(o.poll_interval_ms),
                p(o.deadline),
                p(o.finished_at),
                p(o.outcome.clone()),
                p(o.error.clone()),
            ]
        },
    )
    .await?;
    Ok(())
}

/// The post hooks owed (after the runs they refer to).
async fn copy_hooks(tx: &Transaction<'_>, dump: &LedgerDump) -> Result<()> {
    copy_all(
        tx,
        "post_hooks_owed",
        &[
            ("run_id", Type::INT8),
            ("command", Type::TEXT),
            ("resource", Type::TEXT),
            ("since", Type::TIMESTAMPTZ),
        ],
        &dump.post_hooks_owed,
        |h| {
            vec![
                p(h.run_id),
                p(h.command_json()),
                p(h.resource.clone()),
                p(h.since),
            ]
        },
    )
    .await
}

/// The pauses (the every-policy pause under the empty scope).
async fn copy_pauses(tx: &Transaction<'_>, dump: &LedgerDump) -> Result<()> {
    copy_all(
        tx,
        "pauses",
        &[
            ("scope", Type::TEXT),
            ("reason", Type::TEXT),
            ("paused_by", Type::TEXT),
            ("since", Type::TIMESTAMPTZ),
            ("until_at", Type::TIMESTAMPTZ),
        ],
        &dump.pauses,
        |pause| {
            vec![
                p(pause.policy.clone().unwrap_or_default()),
                p(pause.reason.clone()),
                p(pause.by.clone()),
                p(pause.since),
                p(pause.until),
            ]
        },
    )
    .await
}

/// The snapshot holds (a target-wide hold under the empty snapshot id).
async fn copy_snapshot_holds(tx: &Transaction<'_>, dump: &LedgerDump) -> Result<()> {
    copy_all(
        tx,
        "snapshot_holds",
        &[
            ("policy", Type::TEXT),
            ("target", Type::TEXT),
            ("snapshot_id", Type::TEXT),
            ("reason", Type::TEXT),
            ("held_by", Type::TEXT),
            ("since", Type::TIMESTAMPTZ),
            ("until_at", Type::TIMESTAMPTZ),
        ],
        &dump.snapshot_holds,
        |hold| {
            vec![
                p(hold.policy.clone()),
                p(hold.target.clone()),
                p(hold.snapshot_id.clone().unwrap_or_default()),
                p(hold.reason.clone()),
                p(hold.by.clone()),
                p(hold.since),
                p(hold.until),
            ]
        },
    )
    .await
}

/// The audit trail, ids kept (the order entries of one time were
/// recorded in).
async fn copy_audit_log(tx: &Transaction<'_>, dump: &LedgerDump) -> Result<()> {
    copy_all(
        tx,
        "audit_log",
        &[
            ("id", Type::INT8),
            ("at", Type::TIMESTAMPTZ),
            ("actor", Type::TEXT),
            ("action", Type::TEXT),
            ("policy", Type::TEXT),
            ("target", Type::TEXT),
            ("snapshot", Type::TEXT),
            ("detail", Type::TEXT),
        ],
        &dump.audit_log,
        |a| {
            let e = &a.entry;
            vec![
                p(a.id),
                p(e.at),
                p(e.actor.clone()),
                p(e.action.as_str().to_string()),
                p(e.policy.clone()),
                p(e.target.clone()),
                p(e.snapshot.clone()),
                p(e.detail.clone()),
            ]
        },
    )
    .await
}

/// Everything else the ledger keeps: the schedule, secrets, holds, rules,
/// sources, targets and delivered alerts.
async fn copy_settings(tx: &Transaction<'_>, dump: &LedgerDump) -> Result<()> {
    copy_all(
        tx,
        "schedule",
        &[("policy", Type::TEXT), ("last_slot", Type::TIMESTAMPTZ)],
        &dump.schedule,
        |(policy, slot)| vec![p(policy.clone()), p(*slot)],
    )
    .await?;
    copy_all(
        tx,
        "provider_secrets",
        &[
            ("provider", Type::TEXT),
            ("key", Type::TEXT),
            ("value", Type::TEXT),
            ("seed", Type::TEXT),
            ("updated_at", Type::TIMESTAMPTZ),
        ],
        &dump.provider_secrets,
        |s| {
            vec![
                p(s.provider.clone()),
                p(s.key.clone()),
                p(s.value.clone()),
                p(s.seed.clone()),
                p(s.updated_at),
            ]
        },
    )
    .await?;
    copy_all(
        tx,
        "delete_holds",
        &[
            ("policy", Type::TEXT),
            ("target", Type::TEXT),
            ("reason", Type::TEXT),
            ("since", Type::TIMESTAMPTZ),
        ],
        &dump.delete_holds,
        |h| {
            vec![
                p(h.policy.clone()),
                p(h.target.clone()),
                p(h.reason.clone()),
                p(h.since),
            ]
        },
    )
    .await?;
    copy_all(
        tx,
        "policy_rules",
        &[
            ("policy", Type::TEXT),
            ("provider", Type::TEXT),
            ("rules", Type::TEXT),
            ("updated_at", Type::TIMESTAMPTZ),
        ],
        &dump.policy_rules,
        |r| {
            vec![
                p(r.policy.clone()),
                p(r.provider.clone()),
                p(r.rules.clone()),
                p(r.updated_at),
            ]
        },
    )
    .await?;
    copy_all(
        tx,
        "snapshot_sources",
        &[("snapshot", Type::INT8), ("source", Type::TEXT)],
        &dump.snapshot_sources,
        |(id, source)| vec![p(*id), p(source.clone())],
    )
    .await?;
    copy_all(
        tx,
        "targets",
        &[
            ("policy", Type::TEXT),
            ("target", Type::TEXT),
            ("provider", Type::TEXT),
        ],
        &dump.targets,
        |t| {
            vec![
                p(t.policy.clone()),
                p(t.target.clone()),
                p(t.provider.clone()),
            ]
        },
    )
    .await?;
    copy_all(
        tx,
        "alerts_delivered",
        &[
            ("policy", Type::TEXT),
            ("target", Type::TEXT),
            ("kind", Type::TEXT),
            ("at", Type::TIMESTAMPTZ),
        ],
        &dump.alerts_delivered,
        |a| {
            vec![
                p(a.policy.clone()),
                p(a.target.clone()),
                p(a.kind.clone()),
                p(a.at),
            ]
        },
    )
    .await?;

    Ok(())
}

/// Ids were written explicitly, which moves no identity sequence: without
/// this the next intent would be given id 1 and collide.
async fn reset_sequences(tx: &Transaction<'_>) -> Result<()> {
    for table in ["runs", "snapshots", "operations", "audit_log"] {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               COALESCE(max(id), 1), max(id) IS NOT NULL)
                 FROM {table}"
            ),
            &[],
        )
        .await?;
    }
    Ok(())
}
