//! What the ledger remembers of alerts: which ones were delivered, so that
//! one decided just before the process died is sent again on the next
//! start (the alerter's own memory does not survive a restart).

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::rows::four_texts;
use super::{parse_ts, ts, Delivered, Result, SqliteLedger};

impl SqliteLedger {
    /// Record that an alert of `kind` decided at `at` reached the operator
    /// (never moves back in time).
    pub fn record_alert_delivered(
        &self,
        policy: &str,
        target: &str,
        kind: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO alerts_delivered (policy, target, kind, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (policy, target, kind) DO UPDATE SET at = excluded.at
             WHERE excluded.at > alerts_delivered.at",
            params![policy, target, kind, ts(at)],
        )?;
        Ok(())
    }

    /// Every delivered alert's newest time, per policy, target and kind.
    pub fn alerts_delivered(&self) -> Result<Delivered> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT policy, target, kind, at FROM alerts_delivered")?;
        let rows = stmt
            .query_map([], four_texts)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(p, t, k, at)| Ok(((p, t, k), parse_ts("alerts_delivered.at", &at)?)))
            .collect()
    }

    /// The newest slot of (policy, target) that was skipped, with why.
    pub fn newest_skipped(
        &self,
        policy: &str,
        target: &str,
    ) -> Result<Option<(DateTime<Utc>, Option<String>)>> {
        let row: Option<(String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT slot, error FROM runs WHERE policy = ?1 AND target = ?2
                   AND state = 'skipped' ORDER BY slot DESC LIMIT 1",
                params![policy, target],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(slot, why)| Ok((parse_ts("runs.slot", &slot)?, why)))
            .transpose()
    }
}
