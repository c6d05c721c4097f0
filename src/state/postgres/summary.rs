//! Per-target summaries for `status`, `monitor` and alerts.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::rows::{get, run_row};
use super::{PgLedger, RUN_COLUMNS};
use crate::state::{LedgerState, OpRow, Result, RunState, TargetSummary};

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
        let rows = client
            .query(
                r#"SELECT policy, target, provider FROM targets
                   ORDER BY policy COLLATE "C", target COLLATE "C""#,
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let policy: String = get(r, 0, "targets.policy")?;
            let target: String = get(r, 1, "targets.target")?;
            let provider: String = get(r, 2, "targets.provider")?;
            let ops = in_flight
                .remove(&(policy.clone(), target.clone()))
                .unwrap_or_default();
            out.push(summary(&client, &policy, &target, &provider, ops).await?);
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
        Ok(Some(
            summary(&client, policy, target, &provider, Vec::new()).await?,
        ))
    }
}

/// Reads the runs of (policy, target) newest first, only back to its
/// newest success (which ends any failure streak): the slots are unique
/// per target, so those are the runs from that success's slot on.
async fn summary(
    client: &Client,
    policy: &str,
    target: &str,
    provider: &str,
    in_flight: Vec<OpRow>,
) -> Result<TargetSummary> {
    let rows = client
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE policy = $1 AND target = $2 AND state != 'skipped'
                   AND slot >= COALESCE((SELECT MAX(slot) FROM runs
                        WHERE policy = $1 AND target = $2 AND state = 'succeeded'), '-infinity')
                 ORDER BY slot DESC, id DESC"
            ),
            &[&policy, &target],
        )
        .await?;
    let mut last_run = None;
    let mut last_success = None;
    let (mut consecutive_failures, mut streak_over) = (0u32, false);
    let mut last_error = None;
    for row in &rows {
        let r = run_row(row)?;
        if !r.state.is_open() && !streak_over {
            if r.state == RunState::Failed {
                consecutive_failures += 1;
                if last_error.is_none() {
                    last_error = r.error.clone();
                }
            } else {
                streak_over = true;
            }
        }
        let succeeded = r.state == RunState::Succeeded;
        if succeeded {
            last_success = Some(r.finished_at.unwrap_or(r.slot));
        }
        if last_run.is_none() {
            last_run = Some(r);
        }
        if succeeded {
            break;
        }
    }
    let kept = client
        .query_one(
            "SELECT COUNT(*) FROM snapshots WHERE policy = $1 AND target = $2 AND state IN ($3, $4)",
            &[
                &policy,
                &target,
                &LedgerState::Available.as_str(),
                &LedgerState::Deleting.as_str(),
            ],
        )
        .await?;
    let skipped = client
        .query_one(
            "SELECT COUNT(*) FROM runs WHERE policy = $1 AND target = $2 AND state = 'skipped'",
            &[&policy, &target],
        )
        .await?;
    let count = |row: &tokio_postgres::Row, what| -> Result<u32> {
        let n: i64 = get(row, 0, what)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    Ok(TargetSummary {
        policy: policy.to_string(),
        target: target.to_string(),
        provider: provider.to_string(),
        last_run,
        last_success,
        consecutive_failures,
        last_error: last_error.filter(|_| consecutive_failures > 0),
        snapshots_kept: count(&kept, "snapshots")?,
        in_flight,
        skipped: count(&skipped, "runs")?,
    })
}
