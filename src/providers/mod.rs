//! The provider trait: the only thing the engine knows about a cloud.
//!
//! A provider creates a snapshot, reports the status of operations in
//! flight (batched), lists the snapshots of one target and deletes one
//! snapshot. Everything cloud-specific (signing, wire format, status names,
//! error codes, how "made by snapwarden" is marked) lives in the cloud's
//! module below this one and must not leak into the engine.

pub(crate) mod chains;
pub mod http;
pub mod kakaocloud;
pub mod lightsail;
pub mod powervs;
pub mod qingcloud;
pub(crate) mod query_api;
#[cfg(test)]
pub(crate) mod tests;
pub mod ucloudstack;
pub mod wire;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::Cloud;
pub use crate::domain::{
    parse_slot_label, Capabilities, ChainInfo, ErrorKind, Marker, OpKind, Resource, ResourceKind,
    RestoreMode, Selectable,
};

/// A failed provider call. `message` is safe to log: it never contains a
/// secret, a token or a signature.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call}: {kind} error{}: {message}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// The API call that failed, e.g. `CreateSnapshots`.
    pub call: String,
    /// The provider's own error code, when it gave one.
    pub code: Option<String>,
    pub message: String,
    /// A delay the provider asked for (Retry-After), if any.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, call: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            call: call.into(),
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

/// Cut an API message to at most `max` characters (an echoed page or a
/// runaway message never needs more), marking the cut with `…`.
pub fn truncate_message(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// A success answer that is not the expected JSON shape. `detail` must not
/// hold the body itself (serde's messages give line and column only).
/// Retryable, like any answer we cannot use.
pub fn malformed(call: &str, detail: impl std::fmt::Display, body_len: usize) -> ProviderError {
    ProviderError::new(
        ErrorKind::Transient,
        call,
        format!(
            "malformed response from {call}: {} ({body_len} bytes)",
            truncate_message(&detail.to_string(), 500)
        ),
    )
}

/// A success answer whose content makes no sense (no id, no job, no
/// token). Retryable, like any answer we cannot use.
pub fn unexpected(call: &str, detail: impl Into<String>) -> ProviderError {
    ProviderError::new(
        ErrorKind::Transient,
        call,
        format!("unexpected response from {call}: {}", detail.into()),
    )
}

/// A request the cloud cannot take (an empty id or name, a resource kind
/// it does not snapshot): refused before any call. Not retryable.
pub(crate) fn refused(call: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::Permanent, call, message)
}

/// The error for a resource kind `cloud` cannot take; the message names
/// the kinds it can, from its capabilities.
pub(crate) fn unsupported_resource(
    cloud: Cloud,
    call: &str,
    resource: ResourceKind,
) -> ProviderError {
    let supported: Vec<&str> = cloud
        .capabilities()
        .resources
        .iter()
        .map(|r| r.as_str())
        .collect();
    refused(
        call,
        format!(
            "resource {resource:?} is not supported by {} (use {})",
            cloud.name(),
            supported.join(" or ")
        ),
    )
}

/// A create for a resource kind `cloud` does not snapshot is refused
/// before any call.
pub(crate) fn require_resource(
    cloud: Cloud,
    call: &str,
    resource: ResourceKind,
) -> Result<(), ProviderError> {
    if cloud.capabilities().takes(resource) {
        Ok(())
    } else {
        Err(unsupported_resource(cloud, call, resource))
    }
}

/// The methods of [`Provider`] that only say which cloud it is: `kind`
/// and `capabilities` both come from the one [`Cloud`] given, so they
/// cannot disagree; `names: f` also names snapshots by the cloud's own
/// pure function `f` instead of [`Marker::default_name`].
macro_rules! cloud_identity {
    ($cloud:expr, names: $name:path) => {
        $crate::providers::cloud_identity!($cloud);

        fn snapshot_name(&self, marker: &$crate::providers::Marker) -> String {
            $name(marker)
        }
    };
    ($cloud:expr) => {
        fn kind(&self) -> &'static str {
            $cloud.name()
        }

        fn capabilities(&self) -> $crate::providers::Capabilities {
            $cloud.capabilities()
        }
    };
}
pub(crate) use cloud_identity;

/// An empty snapshot id is refused before any call.
pub(crate) fn require_snapshot_id(call: &str, snapshot_id: &str) -> Result<(), ProviderError> {
    if snapshot_id.trim().is_empty() {
        return Err(refused(call, "empty snapshot id"));
    }
    Ok(())
}

/// A create needs a target and a snapshot name.
pub(crate) fn require_target_and_name(
    call: &str,
    req: &CreateRequest,
) -> Result<(), ProviderError> {
    if req.target.trim().is_empty() || req.name.trim().is_empty() {
        return Err(refused(call, "empty target or snapshot name"));
    }
    Ok(())
}

/// What the engine asks a provider to snapshot, and how to mark it.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The policy's `resource`.
    pub resource: ResourceKind,
    /// The target id as written in the policy.
    pub target: String,
    /// The deterministic name, already fitted by [`Provider::snapshot_name`].
    pub name: String,
    /// Who made it and for which slot; providers that can carry a
    /// description or tags write this as their marker.
    pub marker: Marker,
    /// Ask for a full (chain-starting) snapshot rather than an incremental.
    pub full: bool,
    /// The policy's `volume_ids`: only these volumes of an instance (kinds
    /// whose [`Capabilities::volume_subset`] is true); None = all of them.
    pub volume_ids: Option<Vec<String>>,
}

/// One snapshot a create call started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The cloud's snapshot id.
    pub snapshot_id: String,
    /// What to poll for completion: a job id, an operation id, or the
    /// snapshot id itself where the cloud has no job API.
    pub operation: String,
}

impl Created {
    /// A snapshot the cloud gives no job for: it is followed by itself.
    pub fn followed_by_itself(snapshot_id: String) -> Created {
        Created {
            operation: snapshot_id.clone(),
            snapshot_id,
        }
    }
}

/// An operation in flight, as the engine hands it back to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRef {
    pub kind: OpKind,
    /// The value of [`Created::operation`] or [`DeleteStarted::Tracking`].
    pub operation: String,
    pub snapshot_id: String,
}

/// Where an operation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpStatus {
    /// Not terminal yet. `progress` in percent where the cloud says.
    Pending { progress: Option<u8> },
    /// Create: the snapshot is usable. Delete: the snapshot is gone.
    Succeeded,
    /// Terminal failure, with the cloud's words for it.
    Failed { reason: String },
}

/// The answer to a delete call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteStarted {
    /// Follow this operation reference until it is terminal.
    Tracking(String),
    /// The snapshot was already gone.
    AlreadyGone,
}

/// A snapshot's state as the provider lists it, in the engine's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotState {
    Creating,
    Available,
    Failed,
    Deleting,
    Gone,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Creating => "creating",
            SnapshotState::Available => "available",
            SnapshotState::Failed => "failed",
            SnapshotState::Deleting => "deleting",
            SnapshotState::Gone => "gone",
        }
    }
}

/// One snapshot of a target as the provider lists it: ours or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSnapshot {
    pub id: String,
    pub name: String,
    /// The volume, disk or instance this snapshot is of. A target that
    /// stands for several (an instance's volumes) lists snapshots of each;
    /// retention counts per source.
    pub source: String,
    pub created_at: Option<DateTime<Utc>>,
    pub state: SnapshotState,
    /// The slot of snapwarden's marker for the listed policy and target,
    /// if the snapshot carries it (`None`: not marked as ours). The engine
    /// also requires the ledger to know the snapshot before it is treated
    /// as its own.
    pub marker_slot: Option<DateTime<Utc>>,
    pub chain: Option<ChainInfo>,
    /// The identifier the cloud's own CLI and console take for this
    /// snapshot, where it differs from `id` (which the engine and the
    /// ledger use). For display only; see [`RemoteSnapshot::cloud_id`].
    pub cloud_id: Option<String>,
    /// The snapshot's size in bytes, where the listing says.
    pub size_bytes: Option<u64>,
}

impl RemoteSnapshot {
    /// The identifier an operator gives the cloud's own tools.
    pub fn cloud_id(&self) -> &str {
        self.cloud_id.as_deref().unwrap_or(&self.id)
    }
}

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub resource: ResourceKind,
    pub target: String,
    pub snapshot_id: String,
    /// Name for the new resource (NewResource mode).
    pub new_name: Option<String>,
}

/// The answer to a restore call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreStarted {
    /// The new volume/instance, where the cloud makes one.
    pub resource_id: Option<String>,
    /// What to poll (as an [`OpKind::Restore`] operation).
    pub operation: String,
}

/// One cloud. Implementations must be cheap to share (`Arc<dyn Provider>`)
/// and safe to call concurrently.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The config `kind` (e.g. `qingcloud`).
    fn kind(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// The deterministic name for a snapshot, fitted to the cloud's limits.
    /// Must be a pure function of the marker.
    fn snapshot_name(&self, marker: &Marker) -> String {
        marker.default_name()
    }

    /// Start a snapshot. Returns one entry per snapshot the call started
    /// (an instance target may produce several).
    async fn create(&self, req: &CreateRequest) -> Result<Vec<Created>, ProviderError>;

    /// Status of many operations at once; the answer has one entry per
    /// input, in the same order. Implementations split into calls of at
    /// most [`Capabilities::max_status_batch`] themselves.
    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError>;

    /// Every snapshot of one target (all pages), ours and not ours; own
    /// ones have `marker_slot` set for this `policy` and `target`.
    async fn list(
        &self,
        resource: ResourceKind,
        target: &str,
        policy: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError>;

    /// Start deleting one snapshot.
    async fn delete(&self, snapshot_id: &str) -> Result<DeleteStarted, ProviderError>;

    /// Start restoring a snapshot, the way [`Capabilities::restore`] says.
    async fn restore(&self, req: &RestoreRequest) -> Result<RestoreStarted, ProviderError>;

    /// Every resource of kind `resource` a selector could pick (all pages,
    /// deleted ones left out), for the kinds in [`Capabilities::select`].
    /// A listing that cannot be read whole is an error, never a partial
    /// answer: a missing resource would silently stop being backed up.
    async fn list_resources(&self, resource: ResourceKind) -> Result<Vec<Resource>, ProviderError>;

    /// Set (`Some(note)`) or clear (`None`) the hold mark on one snapshot,
    /// in the field the cloud has for it ([`Capabilities::hold_mark`] says
    /// which), so the hold shows in the cloud's console. Never changes
    /// anything else about the snapshot. `name` is the snapshot's name, for
    /// clouds whose update call must be given it again. A cloud without
    /// such a field answers [`no_hold_mark`], never a silent success.
    async fn mark_hold(
        &self,
        snapshot_id: &str,
        name: &str,
        note: Option<&str>,
    ) -> Result<(), ProviderError>;
}

/// The error of [`Provider::mark_hold`] on a cloud whose snapshots have
/// no field for it (`why` says which is missing). Not retryable.
pub fn no_hold_mark(cloud: Cloud, call: &str, why: &str) -> ProviderError {
    refused(
        call,
        format!("{} snapshots cannot carry a hold mark: {why}", cloud.name()),
    )
}

/// How a hold mark starts: `hold: <note>`.
const HOLD_MARK: &str = "hold: ";
/// What joins a field's own text and a hold mark after it.
const HOLD_JOIN: &str = " | ";

/// The text of a description-like field without the hold mark
/// [`with_hold`] adds: what snapwarden (its marker) or someone else put
/// there. Ownership markers are read from this part only.
pub fn without_hold(field: &str) -> &str {
    if field.starts_with(HOLD_MARK) {
        return "";
    }
    match field.find(&format!("{HOLD_JOIN}{HOLD_MARK}")) {
        Some(at) => &field[..at],
        None => field,
    }
}

/// A description-like field that also carries snapwarden's marker (or an
/// operator's text) with the hold mark set (`Some(note)`) or cleared
/// (`None`): the field's own text is kept whole and first, then
/// ` | hold: <note>`, the note cut to the room left in `max` characters.
/// None when not even one character of the note fits.
pub fn with_hold(field: &str, note: Option<&str>, max: usize) -> Option<String> {
    let base = without_hold(field);
    let Some(note) = note else {
        return Some(base.to_string());
    };
    let head = if base.is_empty() {
        HOLD_MARK.to_string()
    } else {
        format!("{base}{HOLD_JOIN}{HOLD_MARK}")
    };
    let room = max.checked_sub(head.chars().count())?;
    let note = fit_note(note, room);
    if note.is_empty() {
        return None;
    }
    Some(format!("{head}{note}"))
}

/// [`with_hold`] for [`Provider::mark_hold`]: the field's new text, or the
/// error that `field` (e.g. "description") of snapshot `id` leaves no room
/// for the note in its `max` characters.
pub fn held_field(
    cloud: Cloud,
    call: &str,
    (field, id): (&str, &str),
    current: &str,
    note: Option<&str>,
    max: usize,
) -> Result<String, ProviderError> {
    with_hold(current, note, max).ok_or_else(|| {
        no_hold_mark(
            cloud,
            call,
            &format!("the {field} of {id} leaves no room in its {max} characters"),
        )
    })
}

/// A hold note cut to the `max` characters a field holds (never inside a
/// character), with surrounding whitespace dropped.
pub fn fit_note(note: &str, max: usize) -> String {
    note.trim()
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// The error for a `resource` a provider cannot list.
pub fn not_selectable(kind: &str, call: &str, resource: ResourceKind) -> ProviderError {
    ProviderError::new(
        ErrorKind::Permanent,
        call,
        format!("{kind} cannot list resources of kind {resource:?} for target selection"),
    )
}

/// A listing for target selection of a kind `cloud` cannot list is
/// refused before any call.
pub(crate) fn require_selectable(
    cloud: Cloud,
    call: &str,
    resource: ResourceKind,
) -> Result<(), ProviderError> {
    if cloud.capabilities().selectable(resource).is_some() {
        Ok(())
    } else {
        Err(not_selectable(cloud.name(), call, resource))
    }
}

/// Where a provider keeps a secret that changes while it runs (a rotating
/// refresh token), so that a restart uses the newest. Implemented by the
/// state database; the provider never sees SQL.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// The stored value for (`provider`, `key`), if any.
    async fn load_secret(&self, provider: &str, key: &str) -> Result<Option<StoredSecret>, String>;
    /// Replace the stored value for (`provider`, `key`) if it still is
    /// `replaces` (or nothing is stored); `replaces: None` replaces
    /// whatever is stored (a new sign-in). A value another process stored
    /// meanwhile is kept and this is an error: a rotation is never lost
    /// by being overwritten with an older branch.
    async fn store_secret(
        &self,
        provider: &str,
        key: &str,
        secret: &StoredSecret,
        replaces: Option<&crate::config::Secret>,
    ) -> Result<(), String>;
}

/// A secret kept by a [`SecretStore`]. `seed` tells which configured value
/// the stored one descends from (a fingerprint, never the value), so that a
/// new value written into the config wins over an older stored chain.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub value: crate::config::Secret,
    pub seed: String,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("value", &self.value)
            .field("seed", &self.seed)
            .finish()
    }
}

/// Why a provider could not be built from its config section.
#[derive(Debug, thiserror::Error)]
#[error("provider {name}: {source}")]
pub struct BuildError {
    pub name: String,
    #[source]
    pub source: http::ClientBuildError,
}

/// Build the client for one `[providers.NAME]` section. The only place
/// that maps a config kind to its implementation. `secrets` is where
/// providers with rotating credentials keep them (None: memory only).
pub fn build(
    cfg: &crate::config::ProviderConfig,
    secrets: Option<std::sync::Arc<dyn SecretStore>>,
) -> Result<std::sync::Arc<dyn Provider>, BuildError> {
    let api = http::ApiClient::new(&http::HttpSettings {
        requests_per_second: cfg.requests_per_second,
        request_timeout: cfg.request_timeout,
        ca_file: cfg.ca_file.clone(),
    })
    .map_err(|source| BuildError {
        name: cfg.name.clone(),
        source,
    })?
    .for_provider(&cfg.name);
    Ok(match &cfg.settings {
        crate::config::ProviderSettings::QingCloud(s) => {
            std::sync::Arc::new(qingcloud::QingCloud::new(s, api))
        }
        crate::config::ProviderSettings::UCloudStack(s) => {
            std::sync::Arc::new(ucloudstack::UCloudStack::new(s, api))
        }
        crate::config::ProviderSettings::KakaoCloud(s) => {
            std::sync::Arc::new(kakaocloud::KakaoCloud::new(s, api))
        }
        crate::config::ProviderSettings::PowerVs(s) => {
            std::sync::Arc::new(powervs::PowerVs::new(&cfg.name, s, api, secrets))
        }
        crate::config::ProviderSettings::Lightsail(s) => std::sync::Arc::new(
            lightsail::Lightsail::new(s, api, cfg.request_timeout, cfg.ca_file.as_deref())
                .map_err(|source| BuildError {
                    name: cfg.name.clone(),
                    source,
                })?,
        ),
    })
}

#[cfg(test)]
mod hold_mark_tests {
    use super::{fit_note, with_hold, without_hold};

    #[test]
    fn a_hold_mark_follows_the_fields_own_text_and_goes_again() {
        let marker = "snapwarden policy=db target=v slot=20260101T000000Z";
        let held = with_hold(marker, Some("by ann: legal"), 100).expect("fits");
        assert_eq!(held, format!("{marker} | hold: by ann: legal"));
        assert_eq!(without_hold(&held), marker);
        assert_eq!(with_hold(&held, None, 100).as_deref(), Some(marker));
        // A second hold replaces the first, never stacks.
        let again = with_hold(&held, Some("by bob"), 100).expect("fits");
        assert_eq!(again, format!("{marker} | hold: by bob"));
        // An empty field holds the mark alone.
        assert_eq!(with_hold("", Some("x"), 100).as_deref(), Some("hold: x"));
        assert_eq!(without_hold("hold: x"), "");
        assert_eq!(with_hold("hold: x", None, 100).as_deref(), Some(""));
        // The note is cut to the room left; no room is None.
        let cut = with_hold(marker, Some(&"n".repeat(200)), 100).expect("fits");
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.starts_with(marker));
        assert_eq!(with_hold(&"m".repeat(95), Some("note"), 100), None);
        assert_eq!(without_hold("plain text"), "plain text");
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(fit_note("  héllo wörld ", 7), "héllo w");
        assert_eq!(fit_note("ab ", 10), "ab");
        assert_eq!(fit_note("abc d", 4), "abc");
    }
}
