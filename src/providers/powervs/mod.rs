//! IBM Power Virtual Server ("pcloud") provider, also IP4G through its
//! broker: snapshots of PVM instances, tracked on the snapshot itself
//! (`status` + `percentComplete`; there is no job for a snapshot).
//!
//! Owns the PowerVS dialect: bearer tokens (`auth`), wire shapes (`wire`),
//! error classification (`errors`), and here the calls and the mapping of
//! snapshot states onto the engine's words. It never retries or sleeps
//! (the engine owns the retry policy); re-issuing a token once after a 401
//! is auth plumbing.
//!
//! The marker is the description `snapwarden policy=P target=T slot=S`;
//! the deterministic name is the fallback for snapshots whose description
//! was lost (they are stamped again with PUT when found by name).

mod auth;
mod errors;
mod select;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::Method;

use self::auth::Auth;
pub use self::auth::{
    device_code, device_token, seed_of, DeviceLogin, DevicePoll, REFRESH_TOKEN_KEY,
};
use self::wire::{Snapshot, SnapshotCreate, SnapshotCreateResponse, SnapshotUpdate, Snapshots};
use super::http::ApiClient;
use super::{
    cloud_identity, parse_slot_label, require_resource, require_selectable, require_snapshot_id,
    CreateRequest, Created, DeleteStarted, ErrorKind, Marker, OpKind, OpStatus, OperationRef,
    Provider, ProviderError, RemoteSnapshot, RestoreRequest, RestoreStarted, SecretStore,
    SnapshotState,
};
use crate::config::{PowerVsSettings, Secret};
use crate::domain::{Cloud, ResourceKind};

/// `SnapshotCreate.name`: at most 120 of `[a-zA-Z0-9_.-]`.
const NAME_MAX: usize = 120;
/// `description`: at most 255 characters.
const DESCRIPTION_MAX: usize = 255;
const MARKER_PREFIX: &str = "snapwarden";

const CREATE: &str = "pcloud.pvminstances.snapshots.post";
const LIST: &str = "pcloud.cloudinstances.snapshots.getall";
const GET: &str = "pcloud.cloudinstances.snapshots.get";
const UPDATE: &str = "pcloud.cloudinstances.snapshots.put";
const DELETE: &str = "pcloud.cloudinstances.snapshots.delete";
const RESTORE: &str = "pcloud.pvminstances.snapshots.restore.post";
const VOLUME_SNAPSHOTS: &str = "v1.volume-snapshots.getall";

/// One PowerVS workspace.
pub struct PowerVs {
    /// `{endpoint}/pcloud/v1/cloud-instances/{cid}`.
    base: String,
    /// `{endpoint}`: the `/v1` views hang off it (the workspace is named
    /// by the CRN header there, not in the path).
    root: String,
    crn: String,
    api: ApiClient,
    auth: Auth,
}

impl PowerVs {
    pub fn new(
        name: &str,
        settings: &PowerVsSettings,
        api: ApiClient,
        secrets: Option<Arc<dyn SecretStore>>,
    ) -> PowerVs {
        PowerVs {
            base: format!(
                "{}/pcloud/v1/cloud-instances/{}",
                settings.endpoint, settings.cloud_instance_id
            ),
            root: settings.endpoint.trim_end_matches('/').to_string(),
            crn: settings.crn.clone(),
            auth: Auth::new(
                name,
                &settings.endpoint,
                &settings.auth,
                api.clone(),
                secrets,
            ),
            api,
        }
    }

    /// One pcloud call with `Authorization` and `CRN`; after a 401 the
    /// token is re-issued once and the call repeated once. Returns the body
    /// of a 2xx answer.
    async fn call(
        &self,
        call: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, ProviderError> {
        self.call_url(call, method, &format!("{}{path}", self.base), body)
            .await
    }

    /// [`Self::call`] at a whole URL.
    async fn call_url(
        &self,
        call: &str,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, ProviderError> {
        let mut token = self.auth.token().await?;
        let mut reissued = false;
        loop {
            let (status, headers, bytes) =
                self.send(call, &method, url, &token, body.as_ref()).await?;
            if status.is_success() {
                return Ok(bytes);
            }
            if status == reqwest::StatusCode::UNAUTHORIZED && !reissued {
                tracing::debug!(call, "pcloud answered 401; re-issuing the token once");
                token = self.auth.reissue(&token).await?;
                reissued = true;
                continue;
            }
            return Err(errors::http_error(
                call,
                status.as_u16(),
                &headers,
                &bytes,
                &[token.expose()],
            ));
        }
    }

    async fn send(
        &self,
        call: &str,
        method: &Method,
        url: &str,
        token: &Secret,
        body: Option<&serde_json::Value>,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), ProviderError> {
        self.api
            .send(call, |c| {
                let mut r = c
                    .request(method.clone(), url)
                    .bearer_auth(token.expose())
                    .header("CRN", &self.crn)
                    .header(reqwest::header::ACCEPT, "application/json");
                if let Some(b) = body {
                    r = r.json(b);
                }
                r
            })
            .await
    }

    async fn list_all(&self) -> Result<Vec<Snapshot>, ProviderError> {
        let body = self.call(LIST, Method::GET, "/snapshots", None).await?;
        let s: Snapshots =
            serde_json::from_slice(&body).map_err(|e| errors::malformed(LIST, e, body.len()))?;
        Ok(s.snapshots)
    }

    /// `GET {endpoint}/v1/volume-snapshots` (the workspace named by the CRN
    /// header): each volume snapshot's size in GiB by its id. A size is a
    /// figure for the operator, never a decision, so a failed or
    /// unreadable answer is logged and gives no sizes rather than failing
    /// the listing.
    async fn volume_snapshot_sizes(&self) -> Option<HashMap<String, f64>> {
        let url = format!("{}/v1/volume-snapshots", self.root);
        let read = match self
            .call_url(VOLUME_SNAPSHOTS, Method::GET, &url, None)
            .await
        {
            Ok(body) => serde_json::from_slice::<wire::VolumeSnapshotList>(&body)
                .map_err(|e| errors::malformed(VOLUME_SNAPSHOTS, e, body.len())),
            Err(e) => Err(e),
        };
        match read {
            Ok(list) => Some(
                list.volume_snapshots
                    .into_iter()
                    .filter_map(|v| {
                        let gib = v.size.as_ref().and_then(serde_json::Number::as_f64)?;
                        (gib.is_finite() && gib >= 0.0).then_some((v.id, gib))
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "volume snapshot sizes unknown for this listing");
                None
            }
        }
    }

    /// One snapshot; `None` when the API says 404/410.
    async fn get(&self, id: &str) -> Result<Option<Snapshot>, ProviderError> {
        match self.call(GET, Method::GET, &snapshot_path(id), None).await {
            Ok(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| errors::malformed(GET, e, body.len())),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT …/snapshots/{id}` (SnapshotUpdate).
    async fn update(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), ProviderError> {
        let body = serde_json::to_value(SnapshotUpdate { name, description })
            .map_err(|e| errors::malformed(UPDATE, e, 0))?;
        self.call(UPDATE, Method::PUT, &snapshot_path(id), Some(body))
            .await
            .map(|_| ())
    }

    /// A 409 on create: if a snapshot of this instance already has our
    /// name (a create that reached the cloud before a crash or a lost
    /// answer), it is this slot's snapshot: stamp the marker if it lacks
    /// it, and report it as created. Otherwise the instance is busy.
    async fn reconcile_conflict(
        &self,
        req: &CreateRequest,
        conflict: ProviderError,
    ) -> Result<Vec<Created>, ProviderError> {
        let all = match self.list_all().await {
            Ok(all) => all,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list snapshots to reconcile a 409");
                return Err(conflict);
            }
        };
        let Some(found) = all
            .iter()
            .find(|s| s.name.as_deref() == Some(req.name.as_str()))
        else {
            return Err(conflict);
        };
        if found.pvm_instance_id.as_deref() != Some(req.target.as_str()) {
            return Err(ProviderError::new(
                ErrorKind::Conflict,
                CREATE,
                format!(
                    "snapshot name {:?} is already used in the workspace by snapshot {} of \
                     instance {}",
                    req.name,
                    found.snapshot_id,
                    found.pvm_instance_id.as_deref().unwrap_or("?")
                ),
            ));
        }
        let marker = marker_text(&req.marker);
        if found.description.as_deref().map(super::without_hold) != Some(marker.as_str()) {
            tracing::info!(snapshot = %found.snapshot_id, "snapshot found by name; stamping snapwarden's description on it");
            self.update(&found.snapshot_id, None, Some(&marker)).await?;
        }
        Ok(vec![Created::followed_by_itself(found.snapshot_id.clone())])
    }
}

/// The path of the workspace's snapshot `id`.
fn snapshot_path(id: &str) -> String {
    format!("/snapshots/{}", segment(id))
}

#[async_trait]
impl Provider for PowerVs {
    cloud_identity!(Cloud::PowerVs, names: fit_name);

    /// One POST; 202 → `snapshotID`. A 409 is reconciled by name first.
    async fn create(&self, req: &CreateRequest) -> Result<Vec<Created>, ProviderError> {
        require_resource(Cloud::PowerVs, CREATE, req.resource)?;
        if req.target.trim().is_empty() || !valid_name(&req.name) {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                CREATE,
                format!(
                    "empty target, or snapshot name {:?} not 1–{NAME_MAX} of [a-zA-Z0-9_.-]",
                    req.name
                ),
            ));
        }
        let description = marker_text(&req.marker);
        let body = serde_json::to_value(SnapshotCreate {
            name: &req.name,
            description: &description,
            volume_ids: req.volume_ids.as_deref(),
        })
        .map_err(|e| errors::malformed(CREATE, e, 0))?;
        let path = format!("/pvm-instances/{}/snapshots", segment(&req.target));
        match self.call(CREATE, Method::POST, &path, Some(body)).await {
            Ok(body) => {
                let r: SnapshotCreateResponse = serde_json::from_slice(&body)
                    .map_err(|e| errors::malformed(CREATE, e, body.len()))?;
                let id = r.snapshot_id.trim().to_string();
                if id.is_empty() {
                    return Err(errors::malformed(CREATE, "empty snapshotID", body.len()));
                }
                Ok(vec![Created::followed_by_itself(id)])
            }
            Err(e) if e.code.as_deref().is_some_and(|c| c.starts_with("http 409")) => {
                self.reconcile_conflict(req, e).await
            }
            Err(e) => Err(e),
        }
    }

    /// One GET for a single operation; for several, one workspace listing
    /// plus a GET for each snapshot the listing does not show.
    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError> {
        let ids: Vec<&str> = unique(
            ops.iter()
                .map(|o| o.snapshot_id.trim())
                .filter(|s| !s.is_empty()),
        );
        let mut found: HashMap<String, Option<Snapshot>> = HashMap::new();
        if ids.len() > 1 {
            for s in self.list_all().await? {
                if ids.contains(&s.snapshot_id.as_str()) {
                    found.insert(s.snapshot_id.clone(), Some(s));
                }
            }
        }
        for id in ids {
            if !found.contains_key(id) {
                found.insert(id.to_string(), self.get(id).await?);
            }
        }
        Ok(ops
            .iter()
            .map(|op| match found.get(op.snapshot_id.trim()) {
                None => OpStatus::Failed {
                    reason: "operation without a snapshot id".to_string(),
                },
                Some(s) => op_status(op, s.as_ref()),
            })
            .collect())
    }

    /// The workspace listing (no pagination), this instance's snapshots;
    /// when there are any, one read of the volume-snapshot view gives each
    /// its size (see [`snapshot_size`]).
    async fn list(
        &self,
        _resource: ResourceKind,
        target: &str,
        policy: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError> {
        let ours: Vec<Snapshot> = self
            .list_all()
            .await?
            .into_iter()
            .filter(|s| s.pvm_instance_id.as_deref() == Some(target))
            .collect();
        let sizes = if ours.is_empty() {
            None
        } else {
            self.volume_snapshot_sizes().await
        };
        Ok(ours
            .iter()
            .map(|s| RemoteSnapshot {
                size_bytes: sizes.as_ref().and_then(|z| snapshot_size(s, z)),
                ..remote_snapshot(s, policy, target)
            })
            .collect())
    }

    /// One DELETE (202); 404/410 means already gone.
    async fn delete(&self, snapshot_id: &str) -> Result<DeleteStarted, ProviderError> {
        require_snapshot_id(DELETE, snapshot_id)?;
        match self
            .call(DELETE, Method::DELETE, &snapshot_path(snapshot_id), None)
            .await
        {
            Ok(_) => Ok(DeleteStarted::Tracking(snapshot_id.to_string())),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(DeleteStarted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// In place: `POST …/pvm-instances/{pvm}/snapshots/{id}/restore` with
    /// `force: false` (the instance must be shut off). Followed on the
    /// snapshot until it is `available` again after the restore started.
    async fn restore(&self, req: &RestoreRequest) -> Result<RestoreStarted, ProviderError> {
        if req.resource != ResourceKind::Instance {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                RESTORE,
                "powervs restores instance snapshots only",
            ));
        }
        let started = Utc::now();
        let path = format!(
            "/pvm-instances/{}/snapshots/{}/restore",
            segment(&req.target),
            segment(&req.snapshot_id)
        );
        let body = serde_json::to_value(wire::SnapshotRestore { force: false })
            .map_err(|e| errors::malformed(RESTORE, e, 0))?;
        self.call(RESTORE, Method::POST, &path, Some(body)).await?;
        Ok(RestoreStarted {
            resource_id: None,
            operation: format!("restore@{}", started.timestamp_millis()),
        })
    }

    /// `GET …/pvm-instances` (one answer, no paging; names, no tags).
    async fn list_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<super::Resource>, ProviderError> {
        require_selectable(Cloud::PowerVs, select::LIST_INSTANCES, resource)?;
        self.select_instances().await
    }

    /// GET the snapshot for its description, then one `PUT
    /// …/snapshots/{id}` (SnapshotUpdate) with the description only (the
    /// name stays): its own text (snapwarden's marker) first, the hold
    /// mark after it, within the 255 characters SnapshotUpdate takes. A
    /// snapshot the GET answers 404/410 for is NotFound.
    async fn mark_hold(
        &self,
        snapshot_id: &str,
        _name: &str,
        note: Option<&str>,
    ) -> Result<(), ProviderError> {
        require_snapshot_id(UPDATE, snapshot_id)?;
        let id = snapshot_id.trim();
        let Some(current) = self.get(id).await? else {
            return Err(ProviderError::new(
                ErrorKind::NotFound,
                GET,
                format!("snapshot {id} does not exist"),
            ));
        };
        let description = super::held_field(
            Cloud::PowerVs,
            UPDATE,
            ("description", id),
            current.description.as_deref().unwrap_or(""),
            note,
            DESCRIPTION_MAX,
        )?;
        self.update(id, None, Some(&description)).await
    }
}

/// `snapwarden policy=P target=T slot=S`, cut to 255 characters (a cut
/// marker does not parse; the name then stands in).
pub fn marker_text(m: &Marker) -> String {
    let text = format!(
        "{MARKER_PREFIX} policy={} target={} slot={}",
        m.policy,
        m.target,
        crate::domain::slot_label(m.slot)
    );
    text.chars().take(DESCRIPTION_MAX).collect()
}

/// The slot of a description that is exactly our marker for this policy
/// and target (a hold mark after it aside).
fn marker_slot(description: &str, policy: &str, target: &str) -> Option<chrono::DateTime<Utc>> {
    let mut parts = super::without_hold(description.trim()).split(' ');
    if parts.next()? != MARKER_PREFIX {
        return None;
    }
    let p = parts.next()?.strip_prefix("policy=")?;
    let t = parts.next()?.strip_prefix("target=")?;
    let s = parts.next()?.strip_prefix("slot=")?;
    if parts.next().is_some() || p != policy || t != target {
        return None;
    }
    parse_slot_label(s)
}

/// The deterministic name, fitted to `^[a-zA-Z0-9_.-]{1,120}$`: other
/// characters become `-`; a name too long keeps its ends and gains a hash
/// of the full target so two long targets never share a name.
fn fit_name(m: &Marker) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let name = clean(&m.default_name());
    if name.len() <= NAME_MAX {
        return name;
    }
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(m.target.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let slot = crate::domain::slot_label(m.slot);
    let policy = clean(&m.policy);
    // policy-TARGET…-hash-slot
    let room = NAME_MAX.saturating_sub(policy.len() + hash.len() + slot.len() + 3);
    let target: String = clean(&m.target).chars().take(room).collect();
    format!("{policy}-{target}-{hash}-{slot}")
}

/// The slot of a name that is exactly the deterministic name of this
/// policy and target for some slot.
fn name_slot(name: &str, policy: &str, target: &str) -> Option<chrono::DateTime<Utc>> {
    let label = name.get(name.len().checked_sub(16)?..)?;
    let slot = parse_slot_label(label)?;
    let expected = fit_name(&Marker {
        policy: policy.to_string(),
        target: target.to_string(),
        slot,
    });
    (expected == name).then_some(slot)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Where a snapshot stands, in this module's words.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    InProgress(Option<u8>),
    Available,
    Failed(String),
}

/// `available` with 100 % is done; a status containing `error` or `fail`
/// (any case) failed; everything else, unknown values included, is in
/// progress (never a success).
fn phase(s: &Snapshot) -> Phase {
    let raw = s.status.as_deref().unwrap_or("").trim();
    let status = raw.to_ascii_lowercase();
    if status.contains("error") || status.contains("fail") {
        let detail = s
            .status_detail
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| format!(": {}", errors::truncate(d)))
            .unwrap_or_default();
        return Phase::Failed(format!("snapshot {} is {raw:?}{detail}", s.snapshot_id));
    }
    if status == "available" && s.percent() == Some(100) {
        return Phase::Available;
    }
    Phase::InProgress(s.percent())
}

fn op_status(op: &OperationRef, s: Option<&Snapshot>) -> OpStatus {
    let id = op.snapshot_id.trim();
    match (op.kind, s) {
        (OpKind::Create, None) => OpStatus::Failed {
            reason: format!("snapshot {id} does not exist (404)"),
        },
        (OpKind::Create, Some(s)) => match phase(s) {
            Phase::Available => OpStatus::Succeeded,
            Phase::Failed(reason) => OpStatus::Failed { reason },
            Phase::InProgress(progress) => OpStatus::Pending { progress },
        },
        (OpKind::Delete, None) => OpStatus::Succeeded,
        (OpKind::Delete, Some(s)) => match phase(s) {
            Phase::Failed(reason) => OpStatus::Failed {
                reason: format!("delete: {reason}"),
            },
            _ => OpStatus::Pending { progress: None },
        },
        (OpKind::Restore, None) => OpStatus::Failed {
            reason: format!("snapshot {id} disappeared during the restore"),
        },
        (OpKind::Restore, Some(s)) => {
            let started = op
                .operation
                .strip_prefix("restore@")
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(chrono::DateTime::<Utc>::from_timestamp_millis);
            match phase(s) {
                Phase::Failed(reason) => OpStatus::Failed {
                    reason: format!("restore: {reason}"),
                },
                // Done once the snapshot is available again after the
                // restore started (not merely still available from before).
                Phase::Available
                    if s.action
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case("restore"))
                        || matches!((s.updated_at(), started), (Some(u), Some(t)) if u >= t) =>
                {
                    OpStatus::Succeeded
                }
                Phase::Available => OpStatus::Pending { progress: None },
                Phase::InProgress(progress) => OpStatus::Pending { progress },
            }
        }
    }
}

fn remote_snapshot(s: &Snapshot, policy: &str, target: &str) -> RemoteSnapshot {
    let name = s.name.clone().unwrap_or_default();
    let marker_slot = match s.description.as_deref().map(str::trim) {
        Some(d) if d.starts_with(MARKER_PREFIX) => marker_slot(d, policy, target),
        _ => name_slot(&name, policy, target),
    };
    let status = s
        .status
        .as_deref()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let state = match phase(s) {
        Phase::Available => SnapshotState::Available,
        Phase::Failed(_) => SnapshotState::Failed,
        Phase::InProgress(_) if status.contains("delet") => SnapshotState::Deleting,
        Phase::InProgress(_) => SnapshotState::Creating,
    };
    RemoteSnapshot {
        id: s.snapshot_id.clone(),
        name,
        source: s
            .pvm_instance_id
            .clone()
            .unwrap_or_else(|| target.to_string()),
        created_at: s.created_at(),
        state,
        marker_slot,
        chain: None,
        cloud_id: None,
        size_bytes: None,
    }
}

/// A PVM snapshot's size in bytes: the sum of its volume snapshots' sizes
/// (GiB × 2^30). Unknown when it names no volume snapshot or when any of
/// them has no size in `sizes` (a partial sum would understate it).
fn snapshot_size(s: &Snapshot, sizes: &HashMap<String, f64>) -> Option<u64> {
    let volumes = s.volume_snapshots.as_ref().filter(|v| !v.is_empty())?;
    let mut gib = 0.0;
    for id in unique(volumes.values().map(String::as_str)) {
        gib += sizes.get(id)?;
    }
    let bytes = (gib * f64::from(1u32 << 30)).round();
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// An id as one URL path segment.
fn segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id.trim(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%5F", "_")
        .replace("%2E", ".")
}

/// Distinct values in first-seen order.
fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(*v)).collect()
}

/// Fuzzing entry (`fuzz/`): `body` as the workspace listing, a single
/// snapshot and a create answer, read with the types the client uses and
/// mapped as the client maps them (phase → [`OpStatus`], listing →
/// [`RemoteSnapshot`] with marker/name slot); the text also goes through
/// the JWT `exp` reader. Results are discarded; the only contract is that
/// no input panics.
#[cfg(any(feature = "fuzz", test))]
#[doc(hidden)]
pub fn fuzz_parse_response(body: &[u8]) {
    let (policy, target) = ("daily", "pvm-fuzz");
    let mut found: Vec<Snapshot> = Vec::new();
    if let Ok(s) = serde_json::from_slice::<Snapshots>(body) {
        found.extend(s.snapshots.into_iter().take(64));
    }
    if let Ok(s) = serde_json::from_slice::<Snapshot>(body) {
        found.push(s);
    }
    for s in &found {
        let _ = remote_snapshot(s, policy, target);
        for kind in [OpKind::Create, OpKind::Delete, OpKind::Restore] {
            let op = OperationRef {
                kind,
                operation: s.snapshot_id.clone(),
                snapshot_id: s.snapshot_id.clone(),
            };
            let _ = op_status(&op, Some(s));
            let _ = op_status(&op, None);
        }
    }
    if let Ok(r) = serde_json::from_slice::<SnapshotCreateResponse>(body) {
        let _ = r.snapshot_id.trim();
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = auth::jwt_expiry(text);
        let _ = name_slot(text, policy, target);
        let _ = marker_slot(text, policy, target);
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    fn snapshot(status: Option<&str>, percent: Option<u8>) -> Snapshot {
        serde_json::from_value(serde_json::json!({
            "snapshotID": "s-1",
            "status": status,
            "percentComplete": percent,
        }))
        .expect("wire snapshot")
    }

    #[test]
    fn unknown_status_or_unfinished_available_is_never_done() {
        for (raw, pct) in [
            (Some("weird"), Some(100)),
            (None, Some(100)),
            (Some(""), None),
            (Some("available"), Some(99)),
            (Some("available"), None),
        ] {
            assert!(
                matches!(phase(&snapshot(raw, pct)), Phase::InProgress(_)),
                "{raw:?} {pct:?}"
            );
        }
        assert_eq!(
            phase(&snapshot(Some("available"), Some(100))),
            Phase::Available
        );
        assert!(matches!(
            phase(&snapshot(Some("Error"), None)),
            Phase::Failed(_)
        ));
    }
}
