//! Every metric snapwarden exports, in one place (Prometheus text format
//! via prometheus-client). Other modules record through the functions here;
//! nobody else names a metric. The README's metrics table lists the same
//! names.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Snap {
    policy: String,
    target: String,
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SnapReason {
    policy: String,
    target: String,
    provider: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyTarget {
    policy: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderKind {
    provider: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiCall {
    provider: String,
    call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiOutcome {
    provider: String,
    call: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyReason {
    policy: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn op_histogram() -> Histogram {
    // 1 s .. ~9 h
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

fn api_histogram() -> Histogram {
    // 5 ms .. ~40 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

struct Metrics {
    registry: Registry,
    created: Family<Snap, Counter>,
    failed: Family<SnapReason, Counter>,
    deleted: Family<Snap, Counter>,
    delete_failed: Family<SnapReason, Counter>,
    last_success: Family<PolicyTarget, FloatGauge>,
    expected_interval: Family<PolicyLabel, FloatGauge>,
    next_run: Family<PolicyLabel, FloatGauge>,
    retained: Family<PolicyTarget, Gauge<i64, AtomicI64>>,
    in_flight: Family<ProviderLabel, Gauge<i64, AtomicI64>>,
    op_duration: Family<ProviderKind, Histogram, fn() -> Histogram>,
    api_requests: Family<ApiOutcome, Counter>,
    api_duration: Family<ApiCall, Histogram, fn() -> Histogram>,
    api_throttled: Family<ProviderLabel, Counter>,
    skipped: Family<PolicyReason, Counter>,
    alert_failures: Family<Channel, Counter>,
    budget_exceeded: Family<PolicyTarget, Counter>,
    deletes_held: Family<PolicyTarget, Gauge<i64, AtomicI64>>,
    intents_unrecorded: Family<PolicyLabel, Counter>,
    rows_unreadable: Family<TableLabel, Counter>,
    leader: Gauge,
    leader_epoch: Gauge,
    leader_changes: Counter,
    policy_paused: Family<PolicyLabel, Gauge<i64, AtomicI64>>,
    snapshot_bytes: Family<PolicyTarget, Gauge<i64, AtomicI64>>,
    /// The label values each (policy, target) was exported with, so that
    /// the series of a target that is gone can be removed.
    seen: Mutex<HashMap<(String, String), TargetSeries>>,
}

/// The series one (policy, target) has, beyond the (policy, target) ones.
#[derive(Default)]
struct TargetSeries {
    providers: BTreeSet<String>,
    /// (provider, reason) of `snapshots_failed`.
    failed: BTreeSet<(String, String)>,
    /// (provider, reason) of `snapshots_delete_failed`.
    delete_failed: BTreeSet<(String, String)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Channel {
    channel: String,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("snapwarden");
        let m = Metrics {
            created: Family::default(),
            failed: Family::default(),
            deleted: Family::default(),
            delete_failed: Family::default(),
            last_success: Family::default(),
            expected_interval: Family::default(),
            next_run: Family::default(),
            retained: Family::default(),
            in_flight: Family::default(),
            op_duration: Family::new_with_constructor(op_histogram),
            api_requests: Family::default(),
            api_duration: Family::new_with_constructor(api_histogram),
            api_throttled: Family::default(),
            skipped: Family::default(),
            alert_failures: Family::default(),
            budget_exceeded: Family::default(),
            deletes_held: Family::default(),
            intents_unrecorded: Family::default(),
            rows_unreadable: Family::default(),
            leader: Gauge::default(),
            leader_epoch: Gauge::default(),
            leader_changes: Counter::default(),
            policy_paused: Family::default(),
            snapshot_bytes: Family::default(),
            seen: Mutex::default(),
            registry: Registry::default(),
        };
        m.register_snapshots(&mut registry);
        m.register_operations(&mut registry);
        m.register_safety(&mut registry);
        m.register_leadership(&mut registry);
        let build = Family::<Version, Gauge>::default();
        build
            .get_or_create(&Version {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("build_info", "Always 1; the version is a label", build);
        Metrics { registry, ..m }
    }

    /// Snapshots and schedules per policy and target.
    fn register_snapshots(&self, registry: &mut Registry) {
        registry.register(
            "snapshots_created",
            "Snapshots created and confirmed usable",
            self.created.clone(),
        );
        registry.register(
            "snapshots_failed",
            "Snapshot runs that failed, by reason",
            self.failed.clone(),
        );
        registry.register(
            "snapshots_deleted",
            "Snapshots deleted by retention",
            self.deleted.clone(),
        );
        registry.register(
            "snapshots_delete_failed",
            "Deletes that failed, by reason",
            self.delete_failed.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful run per policy and target",
            self.last_success.clone(),
        );
        registry.register(
            "schedule_expected_interval_seconds",
            "Nominal interval between a policy's slots",
            self.expected_interval.clone(),
        );
        registry.register(
            "next_run_timestamp_seconds",
            "Unix time of a policy's next slot",
            self.next_run.clone(),
        );
        registry.register(
            "snapshots_retained",
            "Own snapshots kept per policy and target after the last prune",
            self.retained.clone(),
        );
        registry.register(
            "snapshot_bytes",
            "Bytes of the own snapshots kept per policy and target, as the cloud's listing gives them (absent where the cloud gives no size)",
            self.snapshot_bytes.clone(),
        );
    }

    /// Operations in flight and cloud API calls.
    fn register_operations(&self, registry: &mut Registry) {
        registry.register(
            "operations_in_flight",
            "Create/delete operations being followed",
            self.in_flight.clone(),
        );
        registry.register(
            "operation_duration_seconds",
            "Time from the start of a create/delete until it was terminal",
            self.op_duration.clone(),
        );
        registry.register(
            "api_requests",
            "Cloud API requests by call and outcome",
            self.api_requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "Duration of one cloud API request",
            self.api_duration.clone(),
        );
        registry.register(
            "api_throttled",
            "Calls the cloud answered with throttling",
            self.api_throttled.clone(),
        );
    }

    /// Skipped slots, alert delivery, deletion guards, the ledger.
    fn register_safety(&self, registry: &mut Registry) {
        registry.register(
            "runs_skipped",
            "Slots not run, by reason (overlap, catch_up_limit)",
            self.skipped.clone(),
        );
        registry.register(
            "alert_delivery_failures",
            "Alerts that could not be delivered, by channel (webhook, command)",
            self.alert_failures.clone(),
        );
        registry.register(
            "prune_budget_exceeded",
            "Runs whose retention wanted more deletes than max_deletes_per_run (pruning stopped)",
            self.budget_exceeded.clone(),
        );
        registry.register(
            "deletes_held",
            "1 while a reload's deletions wait for `prune --policy P --yes`",
            self.deletes_held.clone(),
        );
        registry.register(
            "intents_unrecorded",
            "Slots not run because the state database could not record the intent",
            self.intents_unrecorded.clone(),
        );
        registry.register(
            "ledger_rows_unreadable",
            "Ledger rows that could not be read and were left out of recovery (see the log)",
            self.rows_unreadable.clone(),
        );
    }
}

impl Metrics {
    /// Leadership of a shared ledger.
    fn register_leadership(&self, registry: &mut Registry) {
        registry.register(
            "leader",
            "1 while this process leads (schedules, creates, deletes); 0 on a standby",
            self.leader.clone(),
        );
        registry.register(
            "leader_epoch",
            "The lease epoch this process leads with (0 while it does not)",
            self.leader_epoch.clone(),
        );
        registry.register(
            "leader_changes",
            "Times this process became the leader",
            self.leader_changes.clone(),
        );
        registry.register(
            "policy_paused",
            "1 while the policy is paused (`snapwarden pause`; its slots are skipped), else 0",
            self.policy_paused.clone(),
        );
    }
}

/// Every metric family name as exported (counters without `_total`).
/// The README's table, the Prometheus rules and the tests check against it.
pub const NAMES: &[&str] = &[
    "snapwarden_snapshots_created",
    "snapwarden_snapshots_failed",
    "snapwarden_snapshots_deleted",
    "snapwarden_snapshots_delete_failed",
    "snapwarden_last_success_timestamp_seconds",
    "snapwarden_schedule_expected_interval_seconds",
    "snapwarden_next_run_timestamp_seconds",
    "snapwarden_snapshots_retained",
    "snapwarden_snapshot_bytes",
    "snapwarden_operations_in_flight",
    "snapwarden_operation_duration_seconds",
    "snapwarden_api_requests",
    "snapwarden_api_request_duration_seconds",
    "snapwarden_api_throttled",
    "snapwarden_runs_skipped",
    "snapwarden_alert_delivery_failures",
    "snapwarden_prune_budget_exceeded",
    "snapwarden_deletes_held",
    "snapwarden_intents_unrecorded",
    "snapwarden_ledger_rows_unreadable",
    "snapwarden_leader",
    "snapwarden_leader_epoch",
    "snapwarden_leader_changes",
    "snapwarden_policy_paused",
    "snapwarden_build_info",
];

/// Whether a series name (`..._total`, `..._bucket`, ...) belongs to a
/// family in [`NAMES`].
pub fn is_known_series(series: &str) -> bool {
    NAMES.contains(&series)
        || ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .any(|suffix| {
                series
                    .strip_suffix(suffix)
                    .is_some_and(|base| NAMES.contains(&base))
            })
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The whole registry in Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

/// Note that (policy, target) has series (`with` adds its label values).
fn seen(policy: &str, target: &str, with: impl FnOnce(&mut TargetSeries)) {
    let mut seen = metrics().seen.lock().unwrap_or_else(|p| p.into_inner());
    with(
        seen.entry((policy.to_string(), target.to_string()))
            .or_default(),
    );
}

/// Remove every series of the (policy, target) pairs not in `live` (a
/// target that left its selector, a policy removed by a reload): label
/// sets do not pile up as targets come and go.
pub fn forget_targets_except(live: &HashSet<(String, String)>) {
    let m = metrics();
    let gone: Vec<((String, String), TargetSeries)> = {
        let mut seen = m.seen.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<(String, String)> = seen
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| seen.remove(&k).map(|v| (k, v)))
            .collect()
    };
    for ((policy, target), series) in gone {
        let pt = PolicyTarget {
            policy: policy.clone(),
            target: target.clone(),
        };
        m.last_success.remove(&pt);
        m.retained.remove(&pt);
        m.snapshot_bytes.remove(&pt);
        m.budget_exceeded.remove(&pt);
        m.deletes_held.remove(&pt);
        for provider in &series.providers {
            m.created.remove(&snap(&policy, &target, provider));
            m.deleted.remove(&snap(&policy, &target, provider));
        }
        let with_reason =
            |(provider, reason): &(String, String)| snap_reason(&policy, &target, provider, reason);
        for pr in &series.failed {
            m.failed.remove(&with_reason(pr));
        }
        for pr in &series.delete_failed {
            m.delete_failed.remove(&with_reason(pr));
        }
    }
}

fn snap(policy: &str, target: &str, provider: &str) -> Snap {
    Snap {
        policy: policy.into(),
        target: target.into(),
        provider: provider.into(),
    }
}

fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

pub fn snapshot_created(policy: &str, target: &str, provider: &str) {
    count_snap(policy, target, provider, &metrics().created);
}

pub fn snapshot_failed(policy: &str, target: &str, provider: &str, reason: &str) {
    count_snap_reason(policy, target, provider, reason, &metrics().failed, |s| {
        &mut s.failed
    });
}

pub fn snapshot_deleted(policy: &str, target: &str, provider: &str) {
    count_snap(policy, target, provider, &metrics().deleted);
}

pub fn snapshot_delete_failed(policy: &str, target: &str, provider: &str, reason: &str) {
    count_snap_reason(
        policy,
        target,
        provider,
        reason,
        &metrics().delete_failed,
        |s| &mut s.delete_failed,
    );
}

/// One more in `family` for this (policy, target, provider), whose series
/// the target then has.
fn count_snap(policy: &str, target: &str, provider: &str, family: &Family<Snap, Counter>) {
    seen(policy, target, |s| {
        s.providers.insert(provider.into());
    });
    family.get_or_create(&snap(policy, target, provider)).inc();
}

/// One more in `family` for this (policy, target, provider, reason), kept
/// among the target's series by `series`.
fn count_snap_reason(
    policy: &str,
    target: &str,
    provider: &str,
    reason: &str,
    family: &Family<SnapReason, Counter>,
    series: fn(&mut TargetSeries) -> &mut BTreeSet<(String, String)>,
) {
    seen(policy, target, |s| {
        series(s).insert((provider.into(), reason.into()));
    });
    family
        .get_or_create(&snap_reason(policy, target, provider, reason))
        .inc();
}

fn snap_reason(policy: &str, target: &str, provider: &str, reason: &str) -> SnapReason {
    SnapReason {
        policy: policy.into(),
        target: target.into(),
        provider: provider.into(),
        reason: reason.into(),
    }
}

pub fn run_succeeded(policy: &str, target: &str, at: chrono::DateTime<chrono::Utc>) {
    seen(policy, target, |_| {});
    metrics()
        .last_success
        .get_or_create(&PolicyTarget {
            policy: policy.into(),
            target: target.into(),
        })
        .set(unix(at));
}

pub fn schedule(policy: &str, interval: Duration, next: Option<chrono::DateTime<chrono::Utc>>) {
    let p = PolicyLabel {
        policy: policy.into(),
    };
    metrics()
        .expected_interval
        .get_or_create(&p)
        .set(interval.as_secs_f64());
    metrics()
        .next_run
        .get_or_create(&p)
        .set(next.map(unix).unwrap_or(0.0));
}

/// Whether `policy` is paused now.
pub fn policy_paused(policy: &str, paused: bool) {
    metrics()
        .policy_paused
        .get_or_create(&PolicyLabel {
            policy: policy.into(),
        })
        .set(i64::from(paused));
}

pub fn retained(policy: &str, target: &str, count: usize) {
    seen(policy, target, |_| {});
    metrics()
        .retained
        .get_or_create(&PolicyTarget {
            policy: policy.into(),
            target: target.into(),
        })
        .set(count as i64);
}

/// The bytes of the snapshots `policy` keeps of `target`; None (a size
/// the cloud does not give) removes the series: unknown is never 0.
pub fn snapshot_bytes(policy: &str, target: &str, bytes: Option<u64>) {
    seen(policy, target, |_| {});
    let pt = PolicyTarget {
        policy: policy.into(),
        target: target.into(),
    };
    match bytes {
        Some(b) => {
            metrics()
                .snapshot_bytes
                .get_or_create(&pt)
                .set(i64::try_from(b).unwrap_or(i64::MAX));
        }
        None => {
            metrics().snapshot_bytes.remove(&pt);
        }
    }
}

pub fn operations_in_flight(provider: &str, count: usize) {
    metrics()
        .in_flight
        .get_or_create(&ProviderLabel {
            provider: provider.into(),
        })
        .set(count as i64);
}

pub fn operation_finished(provider: &str, kind: &str, took: Duration) {
    metrics()
        .op_duration
        .get_or_create(&ProviderKind {
            provider: provider.into(),
            kind: kind.into(),
        })
        .observe(took.as_secs_f64());
}

/// One HTTP request to a cloud. `outcome`: `ok`, `http_4xx`, `http_5xx`,
/// `transport`.
pub fn api_request(provider: &str, call: &str, outcome: &str, took: Duration) {
    metrics()
        .api_requests
        .get_or_create(&ApiOutcome {
            provider: provider.into(),
            call: call.into(),
            outcome: outcome.into(),
        })
        .inc();
    metrics()
        .api_duration
        .get_or_create(&ApiCall {
            provider: provider.into(),
            call: call.into(),
        })
        .observe(took.as_secs_f64());
}

pub fn api_throttled(provider: &str) {
    metrics()
        .api_throttled
        .get_or_create(&ProviderLabel {
            provider: provider.into(),
        })
        .inc();
}

pub fn run_skipped(policy: &str, reason: &str) {
    metrics()
        .skipped
        .get_or_create(&PolicyReason {
            policy: policy.into(),
            reason: reason.into(),
        })
        .inc();
}

pub fn alert_delivery_failed(channel: &str) {
    metrics()
        .alert_failures
        .get_or_create(&Channel {
            channel: channel.into(),
        })
        .inc();
}

pub fn prune_budget_exceeded(policy: &str, target: &str) {
    seen(policy, target, |_| {});
    metrics()
        .budget_exceeded
        .get_or_create(&PolicyTarget {
            policy: policy.into(),
            target: target.into(),
        })
        .inc();
}

pub fn deletes_held(policy: &str, target: &str, held: bool) {
    seen(policy, target, |_| {});
    metrics()
        .deletes_held
        .get_or_create(&PolicyTarget {
            policy: policy.into(),
            target: target.into(),
        })
        .set(i64::from(held));
}

pub fn ledger_row_unreadable(table: &str) {
    metrics()
        .rows_unreadable
        .get_or_create(&TableLabel {
            table: table.into(),
        })
        .inc();
}

pub fn intent_unrecorded(policy: &str) {
    metrics()
        .intents_unrecorded
        .get_or_create(&PolicyLabel {
            policy: policy.into(),
        })
        .inc();
}

/// This process leads with `epoch` (a shared ledger's lease, or 0 for a
/// ledger of its own), or no longer leads (`None`).
pub fn leading(epoch: Option<i64>) {
    let m = metrics();
    m.leader.set(i64::from(epoch.is_some()));
    m.leader_epoch.set(epoch.unwrap_or(0));
}

/// This process took the lease over.
pub fn became_leader() {
    metrics().leader_changes.inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_in_names_is_exported_and_nothing_else() {
        snapshot_created("p", "t", "qc");
        snapshot_failed("p", "t", "qc", "timeout");
        snapshot_deleted("p", "t", "qc");
        snapshot_delete_failed("p", "t", "qc", "timeout");
        run_succeeded("p", "t", chrono::Utc::now());
        schedule("p", Duration::from_secs(60), None);
        retained("p", "t", 1);
        operations_in_flight("qc", 0);
        operation_finished("qc", "create", Duration::from_secs(2));
        api_request("qc", "X", "ok", Duration::from_millis(3));
        api_throttled("qc");
        run_skipped("p", "overlap");
        alert_delivery_failed("webhook");
        prune_budget_exceeded("p", "t");
        deletes_held("p", "t", true);
        intent_unrecorded("p");
        ledger_row_unreadable("runs");
        policy_paused("p", true);
        snapshot_bytes("p", "t", Some(1 << 30));
        let text = render();
        let exported: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let names: std::collections::BTreeSet<&str> = NAMES.iter().copied().collect();
        assert_eq!(exported, names);
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let series = line.split(['{', ' ']).next().unwrap_or("");
            assert!(is_known_series(series), "{series}");
        }
    }

    /// The series of a target that is gone are removed; the
    /// live target's stay.
    #[test]
    fn series_of_gone_targets_are_removed() {
        for t in ["forget-gone", "forget-live"] {
            snapshot_created("forget-p", t, "qc");
            snapshot_failed("forget-p", t, "qc", "timeout");
            retained("forget-p", t, 2);
            run_succeeded("forget-p", t, chrono::Utc::now());
        }
        // Every other test's targets stay live (the registry is global).
        let gone = ("forget-p".to_string(), "forget-gone".to_string());
        let live: HashSet<(String, String)> = metrics()
            .seen
            .lock()
            .expect("seen")
            .keys()
            .filter(|k| **k != gone)
            .cloned()
            .collect();
        forget_targets_except(&live);
        let text = render();
        assert!(!text.contains("target=\"forget-gone\""), "{text}");
        assert!(text.contains("target=\"forget-live\""), "{text}");
    }

    #[test]
    fn names_carry_the_prefix_and_counters_end_in_total() {
        snapshot_created("p", "t", "qc");
        api_request("qc", "CreateSnapshots", "ok", Duration::from_millis(12));
        let text = render();
        assert!(
            text.contains(
                "snapwarden_snapshots_created_total{policy=\"p\",target=\"t\",provider=\"qc\"}"
            ),
            "{text}"
        );
        assert!(
            text.contains("snapwarden_api_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("snapwarden_build_info{version=\""), "{text}");
    }
}
