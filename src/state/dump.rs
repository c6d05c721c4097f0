//! A whole ledger as plain owned rows, independent of the backend: what
//! `snapwarden migrate-state` reads out of the SQLite ledger
//! ([`super::SqliteLedger::export`]) and writes into an empty PostgreSQL
//! ledger ([`super::PgLedger::import`]), with the checks both sides must
//! agree on.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{DeleteHold, RunRow, SnapshotRow};

/// An operation row with every column (an [`super::OpRow`] leaves out
/// its outcome, which a finished operation needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOp {
    pub id: i64,
    pub snapshot: i64,
    /// `create`, `delete` or `restore`, as stored.
    pub kind: String,
    pub provider: String,
    pub reference: String,
    pub started_at: DateTime<Utc>,
    pub next_poll_at: DateTime<Utc>,
    pub poll_interval_ms: i64,
    pub deadline: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `succeeded` or `failed`; None while in flight.
    pub outcome: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpSecret {
    pub provider: String,
    pub key: String,
    pub value: String,
    pub seed: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPolicyRules {
    pub policy: String,
    pub provider: String,
    pub rules: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpTarget {
    pub policy: String,
    pub target: String,
    pub provider: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpAlert {
    pub policy: String,
    pub target: String,
    pub kind: String,
    pub at: DateTime<Utc>,
}

/// Every row of a ledger, table by table, in id (or key) order. The
/// health probe's row is not part of it: it is rewritten by every probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerDump {
    pub runs: Vec<RunRow>,
    pub snapshots: Vec<SnapshotRow>,
    pub operations: Vec<DumpOp>,
    /// (policy, last fired slot).
    pub schedule: Vec<(String, DateTime<Utc>)>,
    pub provider_secrets: Vec<DumpSecret>,
    pub delete_holds: Vec<DeleteHold>,
    pub policy_rules: Vec<DumpPolicyRules>,
    /// (snapshot row id, source).
    pub snapshot_sources: Vec<(i64, String)>,
    pub targets: Vec<DumpTarget>,
    pub alerts_delivered: Vec<DumpAlert>,
}

/// The tables a dump carries, in the order an import writes them (every
/// table after the ones its foreign keys point to).
pub const TABLES: [&str; 10] = [
    "runs",
    "snapshots",
    "operations",
    "schedule",
    "provider_secrets",
    "delete_holds",
    "policy_rules",
    "snapshot_sources",
    "targets",
    "alerts_delivered",
];

/// What one table must look like on both sides after a copy: its row
/// count, the largest and the sum of its ids (tables with an id), and a
/// count per value of the column that says where a row stands (runs and
/// snapshots: `state`; operations: `outcome`, "in flight" while none):
/// a row lost, added, renumbered or moved to another state shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCheck {
    pub rows: i64,
    pub max_id: Option<i64>,
    pub id_sum: i64,
    pub by_state: BTreeMap<String, i64>,
}

/// The outcome column of an operation still in flight, as checks count it.
pub const IN_FLIGHT: &str = "in flight";

fn ids_check(ids: impl Iterator<Item = i64>, states: impl Iterator<Item = String>) -> TableCheck {
    let mut check = TableCheck::default();
    for id in ids {
        check.rows += 1;
        check.id_sum = check.id_sum.wrapping_add(id);
        check.max_id = Some(check.max_id.map_or(id, |m| m.max(id)));
    }
    for s in states {
        *check.by_state.entry(s).or_default() += 1;
    }
    check
}

fn count_check(rows: usize) -> TableCheck {
    TableCheck {
        rows: i64::try_from(rows).unwrap_or(i64::MAX),
        ..TableCheck::default()
    }
}

impl LedgerDump {
    /// The check of each table of [`TABLES`], in that order.
    pub fn checks(&self) -> Vec<(&'static str, TableCheck)> {
        let checks = [
            ids_check(
                self.runs.iter().map(|r| r.id),
                self.runs.iter().map(|r| r.state.as_str().to_string()),
            ),
            ids_check(
                self.snapshots.iter().map(|s| s.id),
                self.snapshots.iter().map(|s| s.state.as_str().to_string()),
            ),
            ids_check(
                self.operations.iter().map(|o| o.id),
                self.operations
                    .iter()
                    .map(|o| o.outcome.clone().unwrap_or_else(|| IN_FLIGHT.to_string())),
            ),
            count_check(self.schedule.len()),
            count_check(self.provider_secrets.len()),
            count_check(self.delete_holds.len()),
            count_check(self.policy_rules.len()),
            ids_check(
                self.snapshot_sources.iter().map(|(id, _)| *id),
                std::iter::empty(),
            ),
            count_check(self.targets.len()),
            count_check(self.alerts_delivered.len()),
        ];
        TABLES.into_iter().zip(checks).collect()
    }
}

/// What an import wrote, per table (in [`TABLES`] order), each table's
/// check as the PostgreSQL ledger computed it after the writes, and how
/// long the copy took.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub tables: Vec<(&'static str, TableCheck)>,
    pub elapsed: std::time::Duration,
}
