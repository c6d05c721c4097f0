//! A whole ledger as plain owned rows, independent of the backend: what
//! `snapwarden migrate-state` reads out of the SQLite ledger
//! ([`super::SqliteLedger::export`]) and writes into an empty PostgreSQL
//! ledger ([`super::PgLedger::import`]), with the checks both sides must
//! agree on.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::AuditEntry;
use super::{DeleteHold, Pause, RunRow, SnapshotHold, SnapshotRow};

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

/// A post hook owed, as stored (its run's fields live in the run's row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPostHook {
    pub run_id: i64,
    /// The post hook's argv.
    pub command: Vec<String>,
    pub resource: String,
    pub since: DateTime<Utc>,
}

impl DumpPostHook {
    /// The command as the ledger stores it (a JSON array of strings).
    pub fn command_json(&self) -> String {
        // Serializing a list of strings cannot fail.
        serde_json::to_string(&self.command).unwrap_or_default()
    }
}

/// An audit entry with its row id (the order entries of one time were
/// recorded in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpAudit {
    pub id: i64,
    pub entry: AuditEntry,
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
    pub post_hooks_owed: Vec<DumpPostHook>,
    /// Every pause stored, in force or not, by scope.
    pub pauses: Vec<Pause>,
    /// Every snapshot hold stored, in force or not, by policy, target and
    /// snapshot id (the target-wide hold first). The snapshots' delete
    /// claims are not carried: a claim lasts only while a daemon prunes,
    /// and every daemon is stopped for a copy.
    pub snapshot_holds: Vec<SnapshotHold>,
    /// The audit trail, by id.
    pub audit_log: Vec<DumpAudit>,
}

/// The tables a dump carries, in the order an import writes them (every
/// table after the ones its foreign keys point to).
pub const TABLES: [&str; 14] = [
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
    "post_hooks_owed",
    "pauses",
    "snapshot_holds",
    "audit_log",
];

/// What one table must look like on both sides after a copy: its row
/// count, the largest and the sum of its ids (tables with an id), a
/// count per value of the column that says where a row stands (runs and
/// snapshots: `state`; operations: `outcome`, "in flight" while none),
/// and sums over every value (times in milliseconds, texts in
/// characters, numbers and flags as numbers; see [`value_columns`]): a
/// row lost, added, renumbered or moved to another state shows, and so
/// does a time shifted, a text cut or a flag flipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCheck {
    pub rows: i64,
    pub max_id: Option<i64>,
    pub id_sum: i64,
    pub by_state: BTreeMap<String, i64>,
    pub time_ms_sum: i128,
    pub text_chars: i128,
    pub number_sum: i128,
}

/// The columns of `table` whose values a [`TableCheck`] sums, as SQL
/// expressions: (times, texts, numbers). [`LedgerDump::checks`] sums the
/// same values of the dump's rows.
pub fn value_columns(
    table: &str,
) -> (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
) {
    match table {
        "runs" => (
            &["slot", "started_at", "finished_at"],
            &["policy", "target", "provider", "name", "state", "error"],
            &["\"full\"::int"],
        ),
        "snapshots" => (
            &["slot", "created_at", "completed_at", "deleted_at"],
            &[
                "provider",
                "policy",
                "target",
                "name",
                "snapshot_id",
                "state",
                "error",
            ],
            &["run_id", "\"full\"::int", "COALESCE(size_bytes, 0)"],
        ),
        "operations" => (
            &["started_at", "next_poll_at", "deadline", "finished_at"],
            &["kind", "provider", "reference", "outcome", "error"],
            &["snapshot", "poll_interval_ms"],
        ),
        "schedule" => (&["last_slot"], &["policy"], &[]),
        "provider_secrets" => (&["updated_at"], &["provider", "key", "value", "seed"], &[]),
        "delete_holds" => (&["since"], &["policy", "target", "reason"], &[]),
        "policy_rules" => (&["updated_at"], &["policy", "provider", "rules"], &[]),
        "snapshot_sources" => (&[], &["source"], &[]),
        "targets" => (&[], &["policy", "target", "provider"], &[]),
        "alerts_delivered" => (&["at"], &["policy", "target", "kind"], &[]),
        "post_hooks_owed" => (&["since"], &["command", "resource"], &[]),
        "pauses" => (
            &["since", "until_at"],
            &["scope", "reason", "paused_by"],
            &[],
        ),
        "snapshot_holds" => (
            &["since", "until_at"],
            &["policy", "target", "snapshot_id", "reason", "held_by"],
            &[],
        ),
        "audit_log" => (
            &["at"],
            &["actor", "action", "policy", "target", "snapshot", "detail"],
            &[],
        ),
        _ => (&[], &[], &[]),
    }
}

/// One row's values, summed into a [`TableCheck`].
#[derive(Default)]
struct Values {
    times: i128,
    chars: i128,
    numbers: i128,
}

impl Values {
    fn time(mut self, t: Option<&DateTime<Utc>>) -> Self {
        self.times += t.map_or(0, |t| i128::from(t.timestamp_millis()));
        self
    }

    fn text(mut self, s: Option<&str>) -> Self {
        self.chars += s.map_or(0, |s| s.chars().count() as i128);
        self
    }

    fn number(mut self, n: impl Into<i128>) -> Self {
        self.numbers += n.into();
        self
    }
}

fn add_values(mut check: TableCheck, rows: impl Iterator<Item = Values>) -> TableCheck {
    for v in rows {
        check.time_ms_sum += v.times;
        check.text_chars += v.chars;
        check.number_sum += v.numbers;
    }
    check
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
        let checks = self
            .history_checks()
            .into_iter()
            .chain(self.settings_checks())
            .chain(self.hook_checks());
        TABLES.into_iter().zip(checks).collect()
    }

    /// The checks of runs, snapshots and operations.
    fn history_checks(&self) -> [TableCheck; 3] {
        let v = Values::default;
        [
            add_values(
                ids_check(
                    self.runs.iter().map(|r| r.id),
                    self.runs.iter().map(|r| r.state.as_str().to_string()),
                ),
                self.runs.iter().map(|r| {
                    v().time(Some(&r.slot))
                        .time(Some(&r.started_at))
                        .time(r.finished_at.as_ref())
                        .text(Some(&r.policy))
                        .text(Some(&r.target))
                        .text(Some(&r.provider))
                        .text(Some(&r.name))
                        .text(Some(r.state.as_str()))
                        .text(r.error.as_deref())
                        .number(i64::from(r.full))
                }),
            ),
            add_values(
                ids_check(
                    self.snapshots.iter().map(|s| s.id),
                    self.snapshots.iter().map(|s| s.state.as_str().to_string()),
                ),
                self.snapshots.iter().map(|s| {
                    v().time(Some(&s.slot))
                        .time(Some(&s.created_at))
                        .time(s.completed_at.as_ref())
                        .time(s.deleted_at.as_ref())
                        .text(Some(&s.provider))
                        .text(Some(&s.policy))
                        .text(Some(&s.target))
                        .text(Some(&s.name))
                        .text(Some(&s.snapshot_id))
                        .text(Some(s.state.as_str()))
                        .text(s.error.as_deref())
                        .number(s.run_id)
                        .number(i64::from(s.full))
                        .number(s.size_bytes.unwrap_or(0))
                }),
            ),
            add_values(
                ids_check(
                    self.operations.iter().map(|o| o.id),
                    self.operations
                        .iter()
                        .map(|o| o.outcome.clone().unwrap_or_else(|| IN_FLIGHT.to_string())),
                ),
                self.operations.iter().map(|o| {
                    v().time(Some(&o.started_at))
                        .time(Some(&o.next_poll_at))
                        .time(Some(&o.deadline))
                        .time(o.finished_at.as_ref())
                        .text(Some(&o.kind))
                        .text(Some(&o.provider))
                        .text(Some(&o.reference))
                        .text(o.outcome.as_deref())
                        .text(o.error.as_deref())
                        .number(o.snapshot)
                        .number(o.poll_interval_ms)
                }),
            ),
        ]
    }

    /// The checks of the other tables, in [`TABLES`] order.
    fn settings_checks(&self) -> [TableCheck; 7] {
        let v = Values::default;
        [
            add_values(
                count_check(self.schedule.len()),
                self.schedule
                    .iter()
                    .map(|(p, slot)| v().time(Some(slot)).text(Some(p))),
            ),
            add_values(
                count_check(self.provider_secrets.len()),
                self.provider_secrets.iter().map(|s| {
                    v().time(Some(&s.updated_at))
                        .text(Some(&s.provider))
                        .text(Some(&s.key))
                        .text(Some(&s.value))
                        .text(Some(&s.seed))
                }),
            ),
            add_values(
                count_check(self.delete_holds.len()),
                self.delete_holds.iter().map(|h| {
                    v().time(Some(&h.since))
                        .text(Some(&h.policy))
                        .text(Some(&h.target))
                        .text(Some(&h.reason))
                }),
            ),
            add_values(
                count_check(self.policy_rules.len()),
                self.policy_rules.iter().map(|r| {
                    v().time(Some(&r.updated_at))
                        .text(Some(&r.policy))
                        .text(Some(&r.provider))
                        .text(Some(&r.rules))
                }),
            ),
            add_values(
                ids_check(
                    self.snapshot_sources.iter().map(|(id, _)| *id),
                    std::iter::empty(),
                ),
                self.snapshot_sources
                    .iter()
                    .map(|(_, source)| v().text(Some(source))),
            ),
            add_values(
                count_check(self.targets.len()),
                self.targets.iter().map(|t| {
                    v().text(Some(&t.policy))
                        .text(Some(&t.target))
                        .text(Some(&t.provider))
                }),
            ),
            add_values(
                count_check(self.alerts_delivered.len()),
                self.alerts_delivered.iter().map(|a| {
                    v().time(Some(&a.at))
                        .text(Some(&a.policy))
                        .text(Some(&a.target))
                        .text(Some(&a.kind))
                }),
            ),
        ]
    }
}

impl LedgerDump {
    /// The checks of the post hooks owed (the run id is its id), of the
    /// pauses (the every-policy pause's scope is the empty text) and of
    /// the snapshot holds (a target-wide hold's snapshot id is the empty
    /// text) and of the audit trail (counted by action).
    fn hook_checks(&self) -> [TableCheck; 4] {
        [
            add_values(
                ids_check(
                    self.post_hooks_owed.iter().map(|h| h.run_id),
                    std::iter::empty(),
                ),
                self.post_hooks_owed.iter().map(|h| {
                    Values::default()
                        .time(Some(&h.since))
                        .text(Some(&h.command_json()))
                        .text(Some(&h.resource))
                }),
            ),
            add_values(
                count_check(self.pauses.len()),
                self.pauses.iter().map(|p| {
                    Values::default()
                        .time(Some(&p.since))
                        .time(p.until.as_ref())
                        .text(p.policy.as_deref())
                        .text(Some(&p.reason))
                        .text(Some(&p.by))
                }),
            ),
            add_values(
                count_check(self.snapshot_holds.len()),
                self.snapshot_holds.iter().map(|h| {
                    Values::default()
                        .time(Some(&h.since))
                        .time(h.until.as_ref())
                        .text(Some(&h.policy))
                        .text(Some(&h.target))
                        .text(h.snapshot_id.as_deref())
                        .text(Some(&h.reason))
                        .text(Some(&h.by))
                }),
            ),
            add_values(
                ids_check(
                    self.audit_log.iter().map(|a| a.id),
                    self.audit_log
                        .iter()
                        .map(|a| a.entry.action.as_str().to_string()),
                ),
                self.audit_log.iter().map(|a| {
                    let e = &a.entry;
                    Values::default()
                        .time(Some(&e.at))
                        .text(Some(&e.actor))
                        .text(Some(e.action.as_str()))
                        .text(e.policy.as_deref())
                        .text(e.target.as_deref())
                        .text(e.snapshot.as_deref())
                        .text(Some(&e.detail))
                }),
            ),
        ]
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
