//! UCloudStack provider: disk snapshots through CreateSnapshot /
//! DescribeSnapshot / DeleteSnapshot / RollbackSnapshot.
//!
//! Owns the UCloudStack dialect: signing (`sign`), wire shapes (`wire`),
//! RetCodes (`errors`), one signed call (`client`), and here the naming and
//! marking of our snapshots and the mapping of `SnapshotStatus` onto the
//! engine's words. Never retries or sleeps; never decides what to delete.
//!
//! There is no job API: an operation is the snapshot id itself, and its
//! state is the snapshot's `SnapshotStatus`.
//!
//! Ownership: every snapshot snapwarden makes carries `Type=Automatic`, a
//! 30-character `Name` (`sw-{hash of policy+target}-{slot}`) and the full
//! identity in `Remark` (`snapwarden policy=P target=T slot=S`). A snapshot
//! is ours only if all three agree; `Type=Manual` (or any other type) is
//! never ours. An answer without `Type` (deployments older than the
//! reference revision) is judged by name and Remark alone.

mod client;
mod errors;
mod select;
mod sign;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sha1::{Digest, Sha1};

use self::client::{Client, UCloudStackApi as Api};
use self::wire::{
    CreateSnapshotResponse, DescribeSnapshotResponse, Described, Empty, SnapshotInfo,
};
use super::http::ApiClient;
use super::query_api::paging::{self, Paging};
use super::query_api::{unique, Dialect};
use super::{
    cloud_identity, parse_slot_label, require_resource, require_selectable, require_snapshot_id,
    CreateRequest, Created, DeleteStarted, ErrorKind, Marker, OpKind, OpStatus, OperationRef,
    Provider, ProviderError, RemoteSnapshot, RestoreRequest, RestoreStarted, SnapshotState,
};
use crate::config::UCloudStackSettings;
use crate::domain::{Cloud, ResourceKind};

/// `Limit` of DescribeSnapshot (max 100), and the ids asked per call: the
/// status batch UCloudStack's capabilities declare.
const BATCH: usize = Cloud::UCloudStack.capabilities().max_status_batch;
/// Longest `Name` CreateSnapshot accepts.
pub const MAX_NAME_CHARS: usize = 30;
/// Longest `Remark` CreateSnapshot accepts.
pub const MAX_REMARK_CHARS: usize = 100;
/// The start of every name snapwarden gives a snapshot.
pub const NAME_PREFIX: &str = "sw-";
/// The first word of every Remark snapwarden writes.
const REMARK_TAG: &str = "snapwarden";
/// The `Type` snapwarden sets on every snapshot it makes.
pub const TYPE_AUTOMATIC: &str = "Automatic";

const CREATE: &str = "CreateSnapshot";
const DESCRIBE: &str = "DescribeSnapshot";
const DELETE: &str = "DeleteSnapshot";
const ROLLBACK: &str = "RollbackSnapshot";
const RENAME: &str = "ModifyNameAndRemark";

/// A UCloudStack account in one region and zone.
pub struct UCloudStack {
    client: Client,
    project_id: Option<String>,
}

impl UCloudStack {
    pub fn new(settings: &UCloudStackSettings, api: ApiClient) -> UCloudStack {
        UCloudStack {
            client: Client::new(settings, api),
            project_id: settings.project_id.clone(),
        }
    }

    #[cfg(test)]
    fn client_endpoint(&self) -> Option<String> {
        self.client.endpoint_for_tests()
    }

    /// One page of a Describe call: `params`, then `Limit` (100) and
    /// `Offset`.
    async fn describe_page<T: DeserializeOwned>(
        &self,
        call: &str,
        mut params: Vec<(String, String)>,
        offset: u64,
    ) -> Result<Described<T>, ProviderError> {
        params.push(("Limit".to_string(), BATCH.to_string()));
        params.push(("Offset".to_string(), offset.to_string()));
        self.client.call(call, params).await
    }

    /// The snapshots among `ids` that DescribeSnapshot lists (any status),
    /// 100 ids per call, following `Offset` if an answer is cut. An id
    /// missing from the map is not listed.
    async fn describe_by_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SnapshotInfo>, ProviderError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(BATCH) {
            let asked: HashSet<&str> = chunk.iter().map(String::as_str).collect();
            let mut offset: u64 = 0;
            loop {
                let params = Api::list_param("SnapshotIDs", chunk);
                let page: DescribeSnapshotResponse =
                    self.describe_page(DESCRIBE, params, offset).await?;
                let infos = page.infos.unwrap_or_default();
                let got = infos.len() as u64;
                for info in infos {
                    if asked.contains(info.snapshot_id.as_str()) {
                        out.insert(info.snapshot_id.clone(), info);
                    }
                }
                offset += got;
                match page.total_count {
                    Some(total) if offset < total => {
                        if got == 0 {
                            return Err(errors::unexpected(
                                DESCRIBE,
                                format!("empty page at Offset {offset} of TotalCount {total}"),
                            ));
                        }
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Provider for UCloudStack {
    // Names: `sw-{10 hex of SHA-1(policy, target)}-{slot}`, exactly 30
    // characters.
    cloud_identity!(Cloud::UCloudStack, names: snapshot_name);

    /// One CreateSnapshot call with `Type=Automatic` and our Remark.
    async fn create(&self, req: &CreateRequest) -> Result<Vec<Created>, ProviderError> {
        require_resource(Cloud::UCloudStack, CREATE, req.resource)?;
        let name_len = req.name.chars().count();
        if req.target.trim().is_empty() || name_len == 0 || name_len > MAX_NAME_CHARS {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                CREATE,
                format!("empty disk id, or snapshot name not 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let mut params = vec![
            ("DiskID".to_string(), req.target.clone()),
            ("Name".to_string(), req.name.clone()),
            ("Remark".to_string(), remark(&req.marker)),
            ("Type".to_string(), TYPE_AUTOMATIC.to_string()),
        ];
        if let Some(project) = &self.project_id {
            params.push(("ProjectID".to_string(), project.clone()));
        }
        let r: CreateSnapshotResponse = self.client.call(CREATE, params).await?;
        let id = r
            .snapshot_id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| errors::unexpected(CREATE, "RetCode 0 but no SnapshotID"))?;
        Ok(vec![Created::followed_by_itself(id)])
    }

    /// One DescribeSnapshot per 100 distinct snapshots; none for no ops.
    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError> {
        let ids = unique(ops.iter().map(op_snapshot).filter(|s| !s.is_empty()));
        let infos = if ids.is_empty() {
            HashMap::new()
        } else {
            self.describe_by_ids(&ids).await?
        };
        Ok(ops
            .iter()
            .map(|op| op_status(op, infos.get(op_snapshot(op))))
            .collect())
    }

    /// DescribeSnapshot by `DiskID`, pages of 100 until `TotalCount`.
    async fn list(
        &self,
        _resource: ResourceKind,
        target: &str,
        policy: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError> {
        let mut out = Vec::new();
        let paging = Paging::of::<Api>(DESCRIBE, "snapshots");
        let fetch = |offset: u64| async move {
            let disk = vec![("DiskID".to_string(), target.to_string())];
            let page: DescribeSnapshotResponse = self.describe_page(DESCRIBE, disk, offset).await?;
            Ok(page.into_page())
        };
        paging::read_all(
            &paging,
            fetch,
            |info: &SnapshotInfo| Ok(info.snapshot_id.clone()),
            |_, info| {
                // A deployment that ignored the DiskID filter still only
                // gives us this disk's snapshots.
                if info.disk_id.as_deref().is_none_or(|d| d == target) {
                    out.push(remote_snapshot(&info, policy, target));
                }
            },
        )
        .await?;
        Ok(out)
    }

    /// Looks the snapshot up first: only a `Normal` snapshot that is not
    /// `Type=Manual` is deleted (one DeleteSnapshot call); one in progress
    /// is busy; one already gone needs no call.
    async fn delete(&self, snapshot_id: &str) -> Result<DeleteStarted, ProviderError> {
        require_snapshot_id(DELETE, snapshot_id)?;
        let id = snapshot_id.trim();
        let found = self.describe_by_ids(&[id.to_string()]).await?;
        let Some(info) = found.get(id) else {
            return Ok(DeleteStarted::AlreadyGone);
        };
        if !type_allows_ownership(info.snapshot_type.as_deref()) {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                DELETE,
                format!(
                    "snapshot {id} has Type={}: snapwarden deletes only Type=Automatic snapshots",
                    info.snapshot_type.as_deref().unwrap_or("")
                ),
            ));
        }
        let raw = info.status.as_deref().unwrap_or("");
        match status_of(info.status.as_deref()) {
            Status::Gone => return Ok(DeleteStarted::AlreadyGone),
            Status::Normal => {}
            Status::Creating | Status::RollingBack | Status::Unknown => {
                return Err(ProviderError::new(
                    ErrorKind::Busy,
                    DELETE,
                    format!("snapshot {id} is {raw:?}; only Normal snapshots can be deleted"),
                ))
            }
            Status::Failed => {
                return Err(ProviderError::new(
                    ErrorKind::Permanent,
                    DELETE,
                    format!("snapshot {id} is {raw:?}; only Normal snapshots can be deleted"),
                ))
            }
        }
        let params = vec![("SnapshotID".to_string(), id.to_string())];
        match self.client.call::<Empty>(DELETE, params).await {
            Ok(_) => Ok(DeleteStarted::Tracking(id.to_string())),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(DeleteStarted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// RollbackSnapshot in place; followed on the snapshot's status
    /// (`RollBacking` → `Normal`). The disk must be detached or its VM
    /// stopped: the API's refusal (2501, 2202) comes back with that hint.
    async fn restore(&self, req: &RestoreRequest) -> Result<RestoreStarted, ProviderError> {
        if req.resource != ResourceKind::Disk {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                ROLLBACK,
                "ucloudstack restores disk snapshots only (RollbackSnapshot, in place)",
            ));
        }
        let snapshot = req.snapshot_id.trim();
        if snapshot.is_empty() || req.target.trim().is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                ROLLBACK,
                "empty disk id or snapshot id",
            ));
        }
        let params = vec![
            ("DiskID".to_string(), req.target.clone()),
            ("SnapshotID".to_string(), snapshot.to_string()),
        ];
        self.client.call::<Empty>(ROLLBACK, params).await?;
        Ok(RestoreStarted {
            resource_id: None,
            operation: snapshot.to_string(),
        })
    }

    /// DescribeDisk pages of 100 until `TotalCount` (names; no tags).
    async fn list_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<super::Resource>, ProviderError> {
        require_selectable(Cloud::UCloudStack, select::DESCRIBE_DISK, resource)?;
        self.select_disks().await
    }

    /// DescribeSnapshot for the current Name and Remark, then one
    /// ModifyNameAndRemark (`ResourceID`, `Name` required, `Remark`) with
    /// the name as it is and the Remark's own text (snapwarden's marker)
    /// kept first, the hold mark after it within the 100 characters a
    /// Remark holds (see [`super::with_hold`]). A snapshot DescribeSnapshot
    /// does not list is NotFound without a write: ModifyNameAndRemark is
    /// generic over resources, and no snapshot-specific "not found" code
    /// for it is documented (8102 "resource does not exist" is expected,
    /// UNCONFIRMED).
    async fn mark_hold(
        &self,
        snapshot_id: &str,
        name: &str,
        note: Option<&str>,
    ) -> Result<(), ProviderError> {
        require_snapshot_id(RENAME, snapshot_id)?;
        let id = snapshot_id.trim();
        let found = self.describe_by_ids(&[id.to_string()]).await?;
        let Some(info) = found.get(id) else {
            return Err(ProviderError::new(
                ErrorKind::NotFound,
                DESCRIBE,
                format!("snapshot {id} is not listed"),
            ));
        };
        let current = info.name();
        let name = if current.is_empty() { name } else { current };
        if name.trim().is_empty() {
            return Err(super::refused(
                RENAME,
                format!("snapshot {id} has no name to keep"),
            ));
        }
        // A Remark may not hold `http://` or `https://`: a URL in a note
        // is broken up rather than refused.
        let note = note.map(|n| n.replace("://", ": //"));
        let remark = super::held_field(
            Cloud::UCloudStack,
            RENAME,
            ("Remark", id),
            info.remark.as_deref().unwrap_or(""),
            note.as_deref(),
            MAX_REMARK_CHARS,
        )?;
        let params = vec![
            ("ResourceID".to_string(), id.to_string()),
            ("Name".to_string(), name.to_string()),
            ("Remark".to_string(), remark),
        ];
        let _: Empty = self.client.call(RENAME, params).await?;
        Ok(())
    }
}

/// `sw-{hash}-{slot}`: 3 + 10 + 1 + 16 = 30 characters, a pure function of
/// the marker, unique per policy, target and slot.
pub fn snapshot_name(marker: &Marker) -> String {
    format!(
        "{NAME_PREFIX}{}-{}",
        identity_hash(&marker.policy, &marker.target),
        crate::domain::slot_label(marker.slot)
    )
}

/// The first 10 hex digits of SHA-1 over policy and target.
fn identity_hash(policy: &str, target: &str) -> String {
    let digest = Sha1::digest(format!("{policy}\n{target}").as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// `snapwarden policy=P target=T slot=S`, or, when that is longer than
/// the API's 100 characters, `snapwarden ref={hash} slot=S`.
pub fn remark(marker: &Marker) -> String {
    let slot = crate::domain::slot_label(marker.slot);
    let full = format!(
        "{REMARK_TAG} policy={} target={} slot={slot}",
        marker.policy, marker.target
    );
    if full.chars().count() <= MAX_REMARK_CHARS {
        full
    } else {
        format!(
            "{REMARK_TAG} ref={} slot={slot}",
            identity_hash(&marker.policy, &marker.target)
        )
    }
}

/// The slot a Remark names for this policy and target, in either form.
fn remark_slot(remark: &str, policy: &str, target: &str) -> Option<DateTime<Utc>> {
    let mut words = super::without_hold(remark).split(' ');
    if words.next() != Some(REMARK_TAG) {
        return None;
    }
    let mut fields = HashMap::new();
    for word in words {
        let (k, v) = word.split_once('=')?;
        if fields.insert(k, v).is_some() {
            return None;
        }
    }
    let slot = parse_slot_label(fields.get("slot")?)?;
    let ours = match (
        fields.get("policy"),
        fields.get("target"),
        fields.get("ref"),
    ) {
        (Some(p), Some(t), None) if fields.len() == 3 => *p == policy && *t == target,
        (None, None, Some(r)) if fields.len() == 2 => *r == identity_hash(policy, target),
        _ => false,
    };
    ours.then_some(slot)
}

/// `Automatic`, or no `Type` at all (older deployments). `Manual` and any
/// other value are never ours.
fn type_allows_ownership(snapshot_type: Option<&str>) -> bool {
    match snapshot_type.map(str::trim) {
        None | Some("") => true,
        Some(t) => t == TYPE_AUTOMATIC,
    }
}

/// The slot of snapwarden's marker on `info` for this policy and target:
/// the type allows it, the Remark names it, and the name is exactly the
/// one snapwarden gives that slot.
pub(crate) fn marker_slot(
    info: &SnapshotInfo,
    policy: &str,
    target: &str,
) -> Option<DateTime<Utc>> {
    if !type_allows_ownership(info.snapshot_type.as_deref()) {
        return None;
    }
    let slot = remark_slot(info.remark.as_deref().unwrap_or(""), policy, target)?;
    let expected = snapshot_name(&Marker {
        policy: policy.to_string(),
        target: target.to_string(),
        slot,
    });
    (info.name() == expected).then_some(slot)
}

/// `SnapshotStatus` in this module's words (both status sets the API has
/// used: the current revision's and the older one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Creating,
    Normal,
    RollingBack,
    Failed,
    Gone,
    Unknown,
}

fn status_of(raw: Option<&str>) -> Status {
    match raw.unwrap_or("").trim() {
        // `Createing` is the API's own spelling.
        "Createing" | "Creating" => Status::Creating,
        "Normal" => Status::Normal,
        "RollBacking" | "Rollbacking" => Status::RollingBack,
        "Failure" | "Failed" => Status::Failed,
        "Released" | "Deleting" | "Deleted" => Status::Gone,
        _ => Status::Unknown,
    }
}

fn warn_unknown(id: &str, raw: Option<&str>) {
    tracing::warn!(
        snapshot = id,
        status = raw.unwrap_or(""),
        "unknown UCloudStack SnapshotStatus; treated as in progress"
    );
}

/// The snapshot an operation follows: the operation reference (which is
/// the snapshot id on this cloud), else the snapshot id.
fn op_snapshot(op: &OperationRef) -> &str {
    let o = op.operation.trim();
    if o.is_empty() {
        op.snapshot_id.trim()
    } else {
        o
    }
}

fn op_status(op: &OperationRef, info: Option<&SnapshotInfo>) -> OpStatus {
    let id = op_snapshot(op);
    if id.is_empty() {
        return OpStatus::Failed {
            reason: "operation without a snapshot id".to_string(),
        };
    }
    let raw = info.and_then(|i| i.status.as_deref());
    let status = info.map(|i| status_of(i.status.as_deref()));
    let pending = OpStatus::Pending { progress: None };
    let failed = |what: String| OpStatus::Failed { reason: what };
    if status == Some(Status::Unknown) {
        warn_unknown(id, raw);
    }
    match op.kind {
        OpKind::Create => match status {
            None => failed(format!("snapshot {id} is not listed by DescribeSnapshot")),
            Some(Status::Creating | Status::Unknown) => pending,
            // A snapshot can only be rolled back to once it is complete.
            Some(Status::Normal | Status::RollingBack) => OpStatus::Succeeded,
            Some(Status::Failed | Status::Gone) => failed(format!(
                "snapshot {id} ended with SnapshotStatus {:?}",
                raw.unwrap_or("")
            )),
        },
        OpKind::Delete => match status {
            None | Some(Status::Gone) => OpStatus::Succeeded,
            Some(_) => pending,
        },
        OpKind::Restore => match status {
            None | Some(Status::Gone) => failed(format!("snapshot {id} vanished during rollback")),
            Some(Status::Normal) => OpStatus::Succeeded,
            Some(Status::Failed) => failed(format!(
                "snapshot {id} is {:?} after rollback",
                raw.unwrap_or("")
            )),
            Some(Status::RollingBack | Status::Creating | Status::Unknown) => pending,
        },
    }
}

/// A listed snapshot in the engine's words.
fn remote_snapshot(info: &SnapshotInfo, policy: &str, target: &str) -> RemoteSnapshot {
    let status = status_of(info.status.as_deref());
    let state = match status {
        Status::Creating => SnapshotState::Creating,
        Status::Normal | Status::RollingBack => SnapshotState::Available,
        Status::Failed => SnapshotState::Failed,
        Status::Gone => SnapshotState::Gone,
        Status::Unknown => {
            warn_unknown(&info.snapshot_id, info.status.as_deref());
            SnapshotState::Creating
        }
    };
    RemoteSnapshot {
        id: info.snapshot_id.clone(),
        name: info.name().to_string(),
        source: info
            .disk_id
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| target.to_string()),
        created_at: info.created_at(),
        state,
        marker_slot: marker_slot(info, policy, target),
        chain: None,
        cloud_id: None,
        size_bytes: info
            .size_gb
            .and_then(|gb| u64::try_from(gb).ok())
            .and_then(|gb| gb.checked_mul(1 << 30)),
    }
}

/// Fuzzing entry (`fuzz/`): `body` as the answer of each action the
/// provider reads, through the client's decoding and this module's
/// mapping (DescribeSnapshot items → [`OpStatus`] and [`RemoteSnapshot`]
/// with their marker, CreateSnapshot → the new id). Results are
/// discarded; the only contract is that no input panics.
#[cfg(any(feature = "fuzz", test))]
#[doc(hidden)]
pub fn fuzz_parse_response(body: &[u8]) {
    let keep = |m: &str| m.to_string();
    let (policy, target) = ("daily", "disk-fuzz");
    if let Ok(page) = Api::decode::<DescribeSnapshotResponse>(DESCRIBE, body, keep) {
        for info in page.infos.unwrap_or_default().iter().take(64) {
            let _ = remote_snapshot(info, policy, target);
            let id = &info.snapshot_id;
            for op in super::query_api::ops_of_every_kind([
                (id.clone(), id.clone()),
                (String::new(), id.clone()),
            ]) {
                let _ = op_status(&op, Some(info));
            }
        }
    }
    if let Ok(r) = Api::decode::<CreateSnapshotResponse>(CREATE, body, keep) {
        let _ = r.snapshot_id.map(|s| s.trim().to_string());
    }
    let _ = Api::decode::<Empty>(DELETE, body, keep);
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn unknown_or_missing_status_is_unknown_never_normal() {
        for raw in [
            Some("weird"),
            Some(""),
            None,
            Some("normal "),
            Some("NORMAL"),
        ] {
            let s = status_of(raw);
            // `normal ` trims to `normal`, which is not the API's `Normal`.
            assert_eq!(s, Status::Unknown, "{raw:?}");
        }
        assert_eq!(status_of(Some("Normal")), Status::Normal);
        assert_eq!(status_of(Some("Createing")), Status::Creating);
    }
}
