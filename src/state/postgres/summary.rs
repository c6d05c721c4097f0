//! Per-target summaries for `status`, `monitor` and alerts. All targets
//! are summarised in a fixed number of queries (not three per target):
//! a round trip per target made `summaries` of a thousand targets hold the
//! ledger's connection for a second.

use std::collections::HashMap;

use tokio_postgres::Row;

use super::rows::{get, run_row};
use super::{PgLedger, RUN_COLUMNS};
use crate::state::{bytes_kept, corrupt, OpRow, Result, RunRow, Streak, TargetSummary};

/// The runs `status` reads of a target: newest first, back to its newest
/// success (which ends any failure streak), skipped slots left out. The
/// slots of a target are unique, so these are the runs from the newest
/// success's slot on. `$1`/`$2` or the outer `t` name the target.
fn recent_runs_sql(policy: &str, target: &str) -> String {
    format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE policy = {policy} AND target = {target} AND state != 'skipped'
           AND slot >= COALESCE((SELECT MAX(slot) FROM runs
                WHERE policy = {policy} AND target = {target} AND state = 'succeeded'), '-infinity')"
    )
}

/// (policy, target) → a count, from rows of (policy, target, count).
fn counts(rows: &[Row], what: &'static str) -> Result<HashMap<(String, String), u32>> {
    rows.iter()
        .map(|r| {
            let n: i64 = get(r, 2, what)?;
            Ok((
                (get(r, 0, what)?, get(r, 1, what)?),
                u32::try_from(n).unwrap_or(u32::MAX),
            ))
        })
        .collect()
}

/// The kept snapshots of each target: how many, how many of them have a
/// size recorded, and the sum of those sizes (as text: a sum of bigints
/// is numeric, and may pass i64::MAX).
const KEPT_SQL: &str = "SELECT policy, target, COUNT(*), COUNT(size_bytes),
            COALESCE(SUM(size_bytes), 0)::text
     FROM snapshots WHERE state IN ('available', 'deleting') GROUP BY policy, target";

/// What [`KEPT_SQL`] gives of one target, from column `at` on: the
/// count of kept snapshots and their `bytes_kept`.
fn kept(row: &Row, at: usize) -> Result<(u32, Option<u64>)> {
    let kept: i64 = get(row, at, "snapshots")?;
    let sized: i64 = get(row, at + 1, "snapshots.size_bytes")?;
    let sum: String = get(row, at + 2, "snapshots.size_bytes")?;
    // A sum above u64::MAX is shown as u64::MAX, as SQLite's saturates.
    let sum = sum.parse::<u64>().or_else(|_| match sum.parse::<u128>() {
        Ok(_) => Ok(u64::MAX),
        Err(_) => Err(corrupt("a sum of snapshots.size_bytes", &sum)),
    })?;
    let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok((
        u32::try_from(kept).unwrap_or(u32::MAX),
        bytes_kept(as_u64(kept), as_u64(sized), sum),
    ))
}

const SKIPPED_SQL: &str =
    "SELECT policy, target, COUNT(*) FROM runs WHERE state = 'skipped' GROUP BY policy, target";

impl PgLedger {
    /// Every (policy, target) the ledger knows, in byte order of policy
    /// and target (as SQLite sorts text), with what `status` shows.
    pub async fn summaries(&self) -> Result<Vec<TargetSummary>> {
        let mut in_flight: HashMap<(String, String), Vec<OpRow>> = HashMap::new();
        for op in self.ops_in_flight().await? {
            in_flight
                .entry((op.policy.clone(), op.target.clone()))
                .or_default()
                .push(op);
        }
        let client = self.client().await?;
        let targets = client
            .query(
                r#"SELECT policy, target, provider FROM targets
                   ORDER BY policy COLLATE "C", target COLLATE "C""#,
                &[],
            )
            .await?;
        let recent = client
            .query(
                &format!(
                    "SELECT r.* FROM targets t CROSS JOIN LATERAL ({}) r
                     ORDER BY r.slot DESC, r.id DESC",
                    recent_runs_sql("t.policy", "t.target")
                ),
                &[],
            )
            .await?;
        let mut runs: HashMap<(String, String), Vec<RunRow>> = HashMap::new();
        for row in &recent {
            let run = run_row(row)?;
            runs.entry((run.policy.clone(), run.target.clone()))
                .or_default()
                .push(run);
        }
        let kept = client
            .query(KEPT_SQL, &[])
            .await?
            .iter()
            .map(|r| {
                Ok((
                    (
                        get(r, 0, "snapshots.policy")?,
                        get(r, 1, "snapshots.target")?,
                    ),
                    kept(r, 2)?,
                ))
            })
            .collect::<Result<HashMap<(String, String), (u32, Option<u64>)>>>()?;
        let skipped = counts(&client.query(SKIPPED_SQL, &[]).await?, "runs")?;
        drop(client);
        let mut out = Vec::with_capacity(targets.len());
        for r in &targets {
            let key: (String, String) =
                (get(r, 0, "targets.policy")?, get(r, 1, "targets.target")?);
            let provider: String = get(r, 2, "targets.provider")?;
            out.push(summary(
                &key.0,
                &key.1,
                &provider,
                runs.remove(&key).unwrap_or_default(),
                kept.get(&key).copied().unwrap_or((0, None)),
                skipped.get(&key).copied().unwrap_or(0),
                in_flight.remove(&key).unwrap_or_default(),
            ));
        }
        Ok(out)
    }

    /// One (policy, target), without its operations in flight; `None` if
    /// it has never run.
    pub async fn target_summary(
        &self,
        policy: &str,
        target: &str,
    ) -> Result<Option<TargetSummary>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT provider FROM runs WHERE policy = $1 AND target = $2 ORDER BY id DESC LIMIT 1",
                &[&policy, &target],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let provider: String = get(&row, 0, "runs.provider")?;
        let runs = client
            .query(
                &format!(
                    "{} ORDER BY slot DESC, id DESC",
                    recent_runs_sql("$1", "$2")
                ),
                &[&policy, &target],
            )
            .await?
            .iter()
            .map(run_row)
            .collect::<Result<Vec<_>>>()?;
        let count = |row: Row, what| -> Result<u32> {
            let n: i64 = get(&row, 0, what)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        };
        let kept = kept(
            &client
                .query_one(
                    "SELECT COUNT(*), COUNT(size_bytes), COALESCE(SUM(size_bytes), 0)::text
                     FROM snapshots WHERE policy = $1 AND target = $2
                       AND state IN ('available', 'deleting')",
                    &[&policy, &target],
                )
                .await?,
            0,
        )?;
        let skipped = count(
            client
                .query_one(
                    "SELECT COUNT(*) FROM runs WHERE policy = $1 AND target = $2 AND state = 'skipped'",
                    &[&policy, &target],
                )
                .await?,
            "runs",
        )?;
        Ok(Some(summary(
            policy,
            target,
            &provider,
            runs,
            kept,
            skipped,
            Vec::new(),
        )))
    }
}

/// A target's summary from its recent runs (newest first, back to its
/// newest success) and its counts.
fn summary(
    policy: &str,
    target: &str,
    provider: &str,
    runs: Vec<RunRow>,
    (snapshots_kept, bytes_kept): (u32, Option<u64>),
    skipped: u32,
    in_flight: Vec<OpRow>,
) -> TargetSummary {
    let mut streak = Streak::default();
    for r in runs {
        if !streak.take(r) {
            break;
        }
    }
    streak.summary(
        (policy, target, provider),
        snapshots_kept,
        bytes_kept,
        skipped,
        in_flight,
    )
}
