//! The checked configuration: plain data produced by validation, with no
//! I/O left to do. Everything the rest of the program reads comes from here.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::{Resource, ResourceKind, Rules};
use crate::schedule::blackout::Blackout;
use crate::schedule::Schedule;

/// The whole policy file, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub alerts: Option<AlertsConfig>,
    /// Provider sections by name (`[providers.NAME]`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Policies in file order.
    pub policies: Vec<Policy>,
    /// The environment variables secrets are read from (`*_env` keys):
    /// a hook never inherits them.
    pub secret_env: Vec<String>,
    /// Non-fatal findings (literal secrets, plain-http endpoints, ...),
    /// each already prefixed with `file:line:column`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The SQLite ledger. Default: `$STATE_DIRECTORY/state.db`, else
    /// `./snapwarden.db`. Unused when `shared` is set.
    pub state_path: PathBuf,
    /// The PostgreSQL ledger shared by several nodes (`state_url`), with
    /// leadership; `None` for the SQLite ledger of one bastion.
    pub shared: Option<SharedState>,
    pub log_format: LogFormat,
    /// Zone for policies without their own `timezone`.
    pub timezone: Tz,
    pub metrics_listen: Option<SocketAddr>,
    /// Default for policies without their own `max_deletes_per_run`. Default 10.
    pub max_deletes_per_run: u32,
}

/// A ledger in PostgreSQL, shared by the nodes of a high-availability
/// pair: one leads (schedules, creates, polls, deletes), the others wait.
#[derive(Debug, Clone)]
pub struct SharedState {
    /// `postgres://user@host:port/db?sslmode=...`, without a password.
    pub url: String,
    /// From `state_password_file`/`_env`; `None`: the server needs none
    /// (trust, peer, certificate) or `~/.pgpass`-style setups are not used.
    pub password: Option<Secret>,
    /// This node's name in the lease and in `status`. Default: the host name.
    pub node_name: String,
    /// How long a lease lasts without renewal. Default 15 s.
    pub lease_duration: Duration,
    /// How often the leader renews. Default 5 s.
    pub renew_every: Duration,
    /// A slot that came due at most this long before a takeover is still
    /// run by the new leader, whatever `catch_up` says. Default 60 s.
    pub takeover_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertEvent {
    Failure,
    Recovery,
    Stale,
    SelectorEmpty,
    /// Deletions held back: the per-run deletion budget was exceeded, or a
    /// reload would delete more than the budget (waits for `prune --yes`).
    DeletesHeld,
    /// A due slot was not run because the target's previous run was still
    /// open: that slot has no snapshot.
    SlotSkipped,
    /// A node of a shared ledger took the lead, lost it, or cannot reach
    /// the ledger (no snapshot is taken meanwhile).
    Leadership,
}

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub webhook_url: Option<String>,
    pub webhook_headers: BTreeMap<String, Secret>,
    pub command: Option<Vec<String>>,
    /// Default: failure, recovery, stale, deletes_held, slot_skipped.
    pub on: Vec<AlertEvent>,
    /// Reminder interval for an unrecovered failure. Default 24h.
    pub repeat_after: Duration,
}

/// A secret value. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for building requests, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One `[providers.NAME]` section.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub settings: ProviderSettings,
    /// Client-side rate limit. Default 5.
    pub requests_per_second: f64,
    /// Snapshot operations in flight at once on this provider. Default 20.
    pub max_in_flight: usize,
    /// Extra trusted CA (PEM) for private clouds.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one HTTP request. Default 30s. Key: `request_timeout`.
    pub request_timeout: Duration,
    /// What a GiB of snapshot costs a month here (any currency), for the
    /// estimate `status` shows. None: no estimate.
    pub price_per_gib_month: Option<f64>,
}

/// The kind-specific part of a provider section.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    QingCloud(QingCloudSettings),
    UCloudStack(UCloudStackSettings),
    KakaoCloud(KakaoCloudSettings),
    PowerVs(PowerVsSettings),
    Lightsail(LightsailSettings),
}

impl ProviderSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderSettings::QingCloud(_) => "qingcloud",
            ProviderSettings::UCloudStack(_) => "ucloudstack",
            ProviderSettings::KakaoCloud(_) => "kakaocloud",
            ProviderSettings::PowerVs(_) => "powervs",
            ProviderSettings::Lightsail(_) => "lightsail",
        }
    }
}

/// `kind = "qingcloud"`.
#[derive(Debug, Clone)]
pub struct QingCloudSettings {
    /// Lower-case zone id, e.g. `ap2a`; sent as `zone` on every call.
    pub zone: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Default `https://api.qingcloud.com/iaas/`.
    pub endpoint: String,
}

/// `kind = "ucloudstack"`.
#[derive(Debug, Clone)]
pub struct UCloudStackSettings {
    /// The deployment's API URL (required), e.g. `https://console.example.com/api`.
    pub endpoint: String,
    /// Sent as `Region` on every call, e.g. `cn`.
    pub region: String,
    /// Sent as `Zone` on every call, e.g. `zone-01`.
    pub zone: String,
    pub public_key: String,
    pub private_key: Secret,
    /// `ProjectID` on CreateSnapshot, only when set.
    pub project_id: Option<String>,
    /// `CompanyID` on every call, only when set (admin accounts).
    pub company_id: Option<i64>,
    /// `MemberID` on every call, only when set.
    pub member_id: Option<i64>,
}

/// `kind = "kakaocloud"`.
#[derive(Debug, Clone)]
pub struct KakaoCloudSettings {
    /// Volume API base URL (volumes and snapshots).
    pub endpoint: String,
    /// BCS API base URL (instances).
    pub bcs_endpoint: String,
    /// The full token URL (`…/identity/v3/auth/tokens`).
    pub iam_endpoint: String,
    pub application_credential_id: String,
    pub application_credential_secret: Secret,
}

/// `kind = "powervs"`: IBM Power Virtual Server, or IP4G through its broker.
#[derive(Debug, Clone)]
pub struct PowerVsSettings {
    /// Base URL without a trailing `/`: pcloud calls go to
    /// `{endpoint}/pcloud/v1/…`, IP4G tokens to `{endpoint}/auth/v1/…`.
    pub endpoint: String,
    /// The workspace GUID (path segment of every pcloud call).
    pub cloud_instance_id: String,
    /// Sent as the `CRN` header on every pcloud call.
    pub crn: String,
    pub auth: PowerVsAuth,
}

/// How a powervs provider gets its bearer token.
#[derive(Debug, Clone)]
pub enum PowerVsAuth {
    /// IBM Cloud IAM: the API key exchanged at `iam_endpoint`.
    ApiKey {
        api_key: Secret,
        iam_endpoint: String,
    },
    /// IP4G token service at `{endpoint}/auth/v1/token`. `None`: the first
    /// refresh token comes from `snapwarden login` (the state database).
    RefreshToken { refresh_token: Option<Secret> },
    /// A static token, never refreshed.
    BearerToken { bearer_token: Secret },
}

/// `kind = "lightsail"`.
#[derive(Debug, Clone)]
pub struct LightsailSettings {
    /// e.g. `eu-central-1`.
    pub region: String,
    pub credentials: LightsailCredentials,
    /// Override (private endpoint, simulator); None = the SDK's endpoint
    /// for the region (or `AWS_ENDPOINT_URL[_LIGHTSAIL]`).
    pub endpoint: Option<String>,
}

/// Where Lightsail credentials come from.
#[derive(Debug, Clone)]
pub enum LightsailCredentials {
    /// `access_key_id` + `secret_access_key[_file|_env]`.
    Static {
        access_key_id: String,
        secret_access_key: Secret,
    },
    /// The standard AWS chain (environment, shared profile, web identity,
    /// container, EC2 instance role), with `profile` if given.
    Chain { profile: Option<String> },
}

/// One `[[policy]]`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// Name of a `[providers.NAME]` section (validated to exist).
    pub provider: String,
    /// Validated against the provider kind.
    pub resource: ResourceKind,
    /// Parsed cron expression in the policy's zone.
    pub schedule: Schedule,
    /// Default false.
    pub catch_up: bool,
    /// What each run snapshots.
    pub targets: Targets,
    /// What pruning keeps, in the schedule's zone.
    pub rules: Rules,
    /// Deletion budget per target per run: retention deletes at most this
    /// many, then stops and alerts (`deletes_held`). Default: `[daemon]`'s,
    /// else 10.
    pub max_deletes_per_run: u32,
    /// Every Nth snapshot full, the rest incremental. None: every one full.
    pub full_every: Option<u32>,
    pub timing: Timing,
    pub health: Health,
    /// Commands run around each create; None: no hooks.
    pub hooks: Option<Hooks>,
    /// When none of its creates or deletes may start; None: no windows.
    pub blackout: Option<Blackout>,
}

/// A policy's hooks, for application-consistent snapshots: `pre` runs
/// before the create (freeze), `post` as soon as the cloud accepted it,
/// or the create failed (thaw).
#[derive(Debug, Clone)]
pub struct Hooks {
    /// `pre_snapshot`: program (an absolute path) and arguments.
    pub pre: Option<Vec<String>>,
    /// `post_snapshot`: program (an absolute path) and arguments.
    pub post: Option<Vec<String>>,
    /// `hook_timeout`, default 60 s: each hook is killed past it.
    pub timeout: Duration,
    /// `on_pre_failure`, default skip.
    pub on_pre_failure: OnPreFailure,
}

/// What a failed pre hook does to the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPreFailure {
    /// No snapshot: the slot fails and alerts.
    Skip,
    /// The snapshot is taken anyway (crash-consistent), and the failure
    /// is logged and noted on the run.
    Snapshot,
}

/// A policy's targets: the ones it names and the ones it selects.
#[derive(Debug, Clone)]
pub struct Targets {
    /// `targets`: no duplicates; may be empty when `select` is set.
    pub named: Vec<String>,
    /// Targets picked at each run from the provider's listing, in addition
    /// to `named`.
    pub select: Option<Selector>,
    /// Only these volumes of an instance (kinds with
    /// `Capabilities::volume_subset`). None: all of them.
    pub volume_ids: Option<Vec<String>>,
}

/// How a run waits: its start delay, its polling, its time limit.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Default 10s.
    pub poll_interval: Duration,
    /// Default 2m.
    pub poll_max_interval: Duration,
    /// Default 2h.
    pub timeout: Duration,
    /// Default 0s.
    pub jitter: Duration,
}

impl Timing {
    /// The end of a run or call begun at `from`.
    pub fn deadline(&self, from: DateTime<Utc>) -> DateTime<Utc> {
        from + chrono::Duration::from_std(self.timeout).unwrap_or_default()
    }
}

/// When a policy counts as unhealthy.
#[derive(Debug, Clone)]
pub struct Health {
    /// No successful run for this long is stale (alert, `monitor` WARNING).
    /// Default: twice the schedule's interval, at least 1h.
    pub stale_after: Duration,
    /// `monitor` is CRITICAL at this many consecutive failed runs. Default 3.
    pub critical_after_failures: u32,
}

/// `select`: resources whose name matches the glob and that carry every
/// listed tag with that value. At least one of the two is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub name: Option<glob::Pattern>,
    pub tags: BTreeMap<String, String>,
}

impl Selector {
    /// Whether a listed resource is picked.
    pub fn matches(&self, resource: &Resource) -> bool {
        self.name.as_ref().is_none_or(|p| p.matches(&resource.name))
            && self
                .tags
                .iter()
                .all(|(k, v)| resource.tags.get(k) == Some(v))
    }
}

impl fmt::Display for Selector {
    /// `name="web-*" tags={env="prod"}`, for logs and `plan`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = &self.name {
            parts.push(format!("name={:?}", p.as_str()));
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = self
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            parts.push(format!("tags={{{}}}", tags.join(", ")));
        }
        f.write_str(&parts.join(" "))
    }
}
