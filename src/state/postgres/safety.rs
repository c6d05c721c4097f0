//! Deletion holds and failed deletes, the policy rules and snapshot
//! sources, delivered alerts, and provider secrets.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::rows::get;
use super::{ms, PgLedger, SNAPSHOT_COLUMNS};
use crate::state::{DeleteHold, Delivered, LedgerState, Result, SnapshotRow};

impl PgLedger {
    /// Hold deletions of (`policy`, `target`); an existing hold keeps its
    /// start and takes the new reason. Fenced.
    pub async fn hold_deletes(
        &self,
        policy: &str,
        target: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.fenced(&tx).await?;
        tx.execute(
            "INSERT INTO delete_holds (policy, target, reason, since) VALUES ($1, $2, $3, $4)
             ON CONFLICT (policy, target) DO UPDATE SET reason = excluded.reason",
            &[&policy, &target, &reason, &ms(now)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The hold on (`policy`, `target`), if any.
    pub async fn delete_hold(&self, policy: &str, target: &str) -> Result<Option<DeleteHold>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT reason, since FROM delete_holds WHERE policy = $1 AND target = $2",
                &[&policy, &target],
            )
            .await?;
        row.map(|r| {
            Ok(DeleteHold {
                policy: policy.to_string(),
                target: target.to_string(),
                reason: get(&r, 0, "delete_holds.reason")?,
                since: get(&r, 1, "delete_holds.since")?,
            })
        })
        .transpose()
    }

    /// Every hold in force, by policy and target in byte order (as
    /// SQLite sorts text, whatever the database's collation).
    pub async fn delete_holds(&self) -> Result<Vec<DeleteHold>> {
        let rows = self
            .client()
            .await?
            .query(
                r#"SELECT policy, target, reason, since FROM delete_holds
                   ORDER BY policy COLLATE "C", target COLLATE "C""#,
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeleteHold {
                    policy: get(r, 0, "delete_holds.policy")?,
                    target: get(r, 1, "delete_holds.target")?,
                    reason: get(r, 2, "delete_holds.reason")?,
                    since: get(r, 3, "delete_holds.since")?,
                })
            })
            .collect()
    }

    /// Lift the hold on (`policy`, `target`); true if there was one.
    /// Fenced.
    pub async fn release_deletes(&self, policy: &str, target: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.fenced(&tx).await?;
        let n = tx
            .execute(
                "DELETE FROM delete_holds WHERE policy = $1 AND target = $2",
                &[&policy, &target],
            )
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Snapshots still in the ledger as ours whose last delete failed.
    pub async fn failed_deletes(&self) -> Result<Vec<SnapshotRow>> {
        self.query_snapshots(
            &format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots
                 WHERE state = $1 AND EXISTS (
                   SELECT 1 FROM operations o
                   WHERE o.snapshot = snapshots.id AND o.kind = 'delete' AND o.outcome = 'failed')
                 ORDER BY id"
            ),
            &[&LedgerState::Available.as_str()],
        )
        .await
    }

    /// The rules each policy last ran with.
    pub async fn policy_rules(&self) -> Result<HashMap<String, String>> {
        let rows = self
            .client()
            .await?
            .query("SELECT policy, rules FROM policy_rules", &[])
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get(r, 0, "policy_rules.policy")?,
                    get(r, 1, "policy_rules.rules")?,
                ))
            })
            .collect()
    }

    /// Remember the rules of each (policy, provider, encoded rules), in one
    /// transaction; only rows that changed are written. Fenced.
    pub async fn record_policy_rules(
        &self,
        rules: &[(&str, &str, &str)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        self.fenced(&tx).await?;
        let now = ms(now);
        for (policy, provider, encoded) in rules {
            tx.execute(
                "INSERT INTO policy_rules (policy, provider, rules, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (policy) DO UPDATE SET
                   provider = excluded.provider, rules = excluded.rules,
                   updated_at = excluded.updated_at
                 WHERE policy_rules.rules != excluded.rules
                    OR policy_rules.provider != excluded.provider",
                &[policy, provider, encoded, &now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The known sources of the live snapshots of one policy and target.
    pub async fn snapshot_sources(
        &self,
        provider: &str,
        policy: &str,
        target: &str,
    ) -> Result<HashMap<i64, String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT s.id, x.source FROM snapshots s JOIN snapshot_sources x ON x.snapshot = s.id
                 WHERE s.provider = $1 AND s.policy = $2 AND s.target = $3 AND s.state != $4",
                &[&provider, &policy, &target, &LedgerState::Deleted.as_str()],
            )
            .await?;
        sources(&rows)
    }

    /// The known source of every snapshot not deleted.
    pub async fn all_snapshot_sources(&self) -> Result<HashMap<i64, String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT s.id, x.source FROM snapshots s JOIN snapshot_sources x ON x.snapshot = s.id
                 WHERE s.state != $1",
                &[&LedgerState::Deleted.as_str()],
            )
            .await?;
        sources(&rows)
    }

    /// Remember the source each ledger row was listed under, in one
    /// transaction. A fact, not fenced.
    pub async fn record_snapshot_sources(&self, sources: &[(i64, &str)]) -> Result<()> {
        if sources.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (row, source) in sources {
            tx.execute(
                "INSERT INTO snapshot_sources (snapshot, source) VALUES ($1, $2)
                 ON CONFLICT (snapshot) DO UPDATE SET source = excluded.source",
                &[row, source],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record that an alert of `kind` decided at `at` reached the operator
    /// (never moves back in time). A fact, not fenced.
    pub async fn record_alert_delivered(
        &self,
        policy: &str,
        target: &str,
        kind: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO alerts_delivered (policy, target, kind, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (policy, target, kind) DO UPDATE SET at = excluded.at
                 WHERE excluded.at > alerts_delivered.at",
                &[&policy, &target, &kind, &ms(at)],
            )
            .await?;
        Ok(())
    }

    /// Every delivered alert's newest time, per policy, target and kind.
    pub async fn alerts_delivered(&self) -> Result<Delivered> {
        let rows = self
            .client()
            .await?
            .query("SELECT policy, target, kind, at FROM alerts_delivered", &[])
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    (
                        get(r, 0, "alerts_delivered.policy")?,
                        get(r, 1, "alerts_delivered.target")?,
                        get(r, 2, "alerts_delivered.kind")?,
                    ),
                    get(r, 3, "alerts_delivered.at")?,
                ))
            })
            .collect()
    }

    /// The newest slot of (policy, target) that was skipped, with why.
    pub async fn newest_skipped(
        &self,
        policy: &str,
        target: &str,
    ) -> Result<Option<(DateTime<Utc>, Option<String>)>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT slot, error FROM runs WHERE policy = $1 AND target = $2
                   AND state = 'skipped' ORDER BY slot DESC LIMIT 1",
                &[&policy, &target],
            )
            .await?;
        row.map(|r| Ok((get(&r, 0, "runs.slot")?, get(&r, 1, "runs.error")?)))
            .transpose()
    }

    /// A secret a provider keeps here: its value and seed.
    pub async fn load_secret(&self, provider: &str, key: &str) -> Result<Option<(String, String)>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT value, seed FROM provider_secrets WHERE provider = $1 AND key = $2",
                &[&provider, &key],
            )
            .await?;
        row.map(|r| {
            Ok((
                get(&r, 0, "provider_secrets.value")?,
                get(&r, 1, "provider_secrets.seed")?,
            ))
        })
        .transpose()
    }

    /// Replace the secret a provider keeps here, committed before return,
    /// if the stored value still is `replaces` (or nothing is stored; any
    /// value when `replaces` is `None`): whether it was stored. A fact,
    /// not fenced; the compare-and-swap keeps a rotation from being lost
    /// to another node's older branch.
    pub async fn store_secret(
        &self,
        provider: &str,
        key: &str,
        value: &str,
        seed: &str,
        replaces: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO provider_secrets (provider, key, value, seed, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (provider, key) DO UPDATE SET
                     value = excluded.value, seed = excluded.seed, updated_at = excluded.updated_at
                 WHERE $6::text IS NULL OR provider_secrets.value = $6::text",
                &[&provider, &key, &value, &seed, &ms(now), &replaces],
            )
            .await?;
        Ok(n == 1)
    }
}

fn sources(rows: &[tokio_postgres::Row]) -> Result<HashMap<i64, String>> {
    rows.iter()
        .map(|r| {
            Ok((
                get(r, 0, "snapshots.id")?,
                get(r, 1, "snapshot_sources.source")?,
            ))
        })
        .collect()
}
