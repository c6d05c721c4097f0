//! The post hooks owed, as the SQLite ledger keeps them: recording one is
//! a decision (fenced: only the leader freezes), its removal a fact.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::rows::get;
use super::{ms, PgLedger};
use crate::state::{hook_command_json, parse_hook_command, readable_hooks, OwedHook, Result};

/// Every post hook owed with its run, oldest first.
const OWED_SQL: &str =
    "SELECT h.run_id, r.policy, r.target, r.provider, r.slot, r.name, h.resource, h.command, h.since
     FROM post_hooks_owed h JOIN runs r ON r.id = h.run_id
     ORDER BY h.since, h.run_id";

/// A row of [`OWED_SQL`].
fn owed_row(row: &Row) -> Result<OwedHook> {
    Ok(OwedHook {
        run_id: get(row, 0, "post_hooks_owed.run_id")?,
        policy: get(row, 1, "runs.policy")?,
        target: get(row, 2, "runs.target")?,
        provider: get(row, 3, "runs.provider")?,
        slot: get(row, 4, "runs.slot")?,
        name: get(row, 5, "runs.name")?,
        resource: get(row, 6, "post_hooks_owed.resource")?,
        command: parse_hook_command(get(row, 7, "post_hooks_owed.command")?)?,
        since: get(row, 8, "post_hooks_owed.since")?,
    })
}

impl PgLedger {
    /// Record, before a pre hook starts, that run `run_id` owes its post
    /// hook `command`; again for the same run: command and resource
    /// replaced, `since` kept. Fenced.
    pub async fn owe_post_hook(
        &self,
        run_id: i64,
        command: &[String],
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let command = hook_command_json(command)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.fenced(&tx).await?;
        tx.execute(
            "INSERT INTO post_hooks_owed (run_id, command, resource, since) VALUES ($1, $2, $3, $4)
             ON CONFLICT (run_id) DO UPDATE SET
                 command = excluded.command, resource = excluded.resource",
            &[&run_id, &command, &resource, &ms(now)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The post hook of `run_id` has run to its end: no longer owed.
    /// Whether it was. A fact, not fenced.
    pub async fn post_hook_ran(&self, run_id: i64) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM post_hooks_owed WHERE run_id = $1", &[&run_id])
            .await?;
        Ok(n > 0)
    }

    /// Every post hook owed, oldest `since` first (then run id); a row
    /// that cannot be read is logged and left out.
    pub async fn post_hooks_owed(&self) -> Result<Vec<OwedHook>> {
        let rows = self.client().await?.query(OWED_SQL, &[]).await?;
        Ok(readable_hooks(rows.iter().map(|row| {
            (row.try_get::<_, i64>(0).unwrap_or(-1), owed_row(row))
        })))
    }
}
