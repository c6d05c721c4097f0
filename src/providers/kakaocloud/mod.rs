//! KakaoCloud BCS provider: volume snapshots through the Volume API, and
//! instance targets resolved through the BCS instance API into their
//! attached volumes (one snapshot per volume).
//!
//! Owns the KakaoCloud dialect: the IAM token and one call (`client`),
//! wire shapes (`wire`), error classification (`errors`), and here the
//! mapping of snapshot states, markers and incremental chains onto the
//! engine's words. It never retries or sleeps (the engine owns the retry
//! policy; re-issuing an expired token once is auth plumbing) and never
//! decides what to keep or delete.
//!
//! The marker is the snapshot's description,
//! `snapwarden policy={policy} target={target} slot={slot label}`: every
//! volume snapshot of an instance target carries the slot, so crash
//! reconciliation finds them all. Names are the engine's deterministic
//! name, with `-{volume_id}` appended for instance targets.

mod client;
mod errors;
mod mapping;
mod pager;
mod select;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;

use self::client::{segment, Client, Host, Request};
use self::wire::{
    CreateSnapshot, CreateSnapshotBody, Instance, InstanceList, RestoreBody, RestoreResponse,
    RestoreSpec, Snapshot, SnapshotEnvelope, SnapshotList, VolumeEnvelope,
};
use super::http::ApiClient;
use super::{
    cloud_identity, require_snapshot_id, unsupported_resource, CreateRequest, Created,
    DeleteStarted, ErrorKind, OpKind, OpStatus, OperationRef, Provider, ProviderError,
    RemoteSnapshot, RestoreRequest, RestoreStarted, SnapshotState,
};
use crate::config::KakaoCloudSettings;
use crate::domain::{Cloud, ResourceKind};
#[cfg(test)]
use mapping::chain_info;
use mapping::{marker_of, op_status, remote_snapshot, snapshot_state, unique};
pub use mapping::{marker_slot, marker_text, volume_snapshot_name};
use pager::Pager;
#[cfg(test)]
use pager::MAX_PAGES;

/// Page size of every listing (`limit`); the server's maximum is not
/// documented, so the loop follows what it actually returns.
const PAGE: u64 = 100;

const LIST_INSTANCES: &str = "ListInstances";
const CREATE: &str = "CreateSnapshot";
const LIST_SNAPSHOTS: &str = "ListSnapshots";
const GET_SNAPSHOT: &str = "GetSnapshot";
const DELETE: &str = "DeleteSnapshot";
const RESTORE: &str = "RestoreSnapshot";
const GET_VOLUME: &str = "GetVolume";
const UPDATE_SNAPSHOT: &str = "UpdateSnapshot";
/// The longest description the hold mark is fitted into.
const DESCRIPTION_MAX: usize = 255;

/// A KakaoCloud project (the one the access key was issued in).
pub struct KakaoCloud {
    client: Client,
}

impl KakaoCloud {
    pub fn new(settings: &KakaoCloudSettings, api: ApiClient) -> KakaoCloud {
        KakaoCloud {
            client: Client::new(settings, api),
        }
    }

    /// The volumes a target stands for: itself, or an instance's attached
    /// volumes (root first). An instance that matches nothing is NotFound.
    async fn volumes_of(
        &self,
        call: &str,
        resource: ResourceKind,
        target: &str,
    ) -> Result<Vec<String>, ProviderError> {
        if target.trim().is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                call,
                "empty target",
            ));
        }
        match resource {
            ResourceKind::Volume => Ok(vec![target.to_string()]),
            ResourceKind::Instance => {
                let instance = self.find_instance(target).await?;
                let mut volumes = instance.attached_volumes.clone().unwrap_or_default();
                volumes.sort_by(|a, b| {
                    b.is_root
                        .unwrap_or(false)
                        .cmp(&a.is_root.unwrap_or(false))
                        .then_with(|| a.id.cmp(&b.id))
                });
                let ids: Vec<String> = unique(volumes.iter().map(|v| v.id.trim()));
                if ids.is_empty() {
                    return Err(ProviderError::new(
                        ErrorKind::Permanent,
                        call,
                        format!(
                            "instance {target} ({}) has no attached volumes to snapshot",
                            instance.id
                        ),
                    ));
                }
                Ok(ids)
            }
            other => Err(unsupported_resource(Cloud::KakaoCloud, call, other)),
        }
    }

    /// The instance whose id is `target`, else the one whose name is
    /// exactly `target` (the API's `name` filter matches substrings).
    async fn find_instance(&self, target: &str) -> Result<Instance, ProviderError> {
        let by_id = self.list_instances("id", target).await?;
        if let Some(i) = by_id.into_iter().find(|i| i.id == target) {
            return Ok(i);
        }
        let named: Vec<Instance> = self
            .list_instances("name", target)
            .await?
            .into_iter()
            .filter(|i| i.name.as_deref() == Some(target))
            .collect();
        match named.len() {
            0 => Err(ProviderError::new(
                ErrorKind::NotFound,
                LIST_INSTANCES,
                format!("instance {target:?} not found: no instance has this id or name"),
            )),
            1 => Ok(named.into_iter().next().expect("one element")),
            n => Err(ProviderError::new(
                ErrorKind::Permanent,
                LIST_INSTANCES,
                format!(
                    "instance name {target:?} matches {n} instances ({}): use the instance id",
                    named
                        .iter()
                        .map(|i| i.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// The next page of a `limit`/`offset` listing of `path` on `host`
    /// (the pager's call): `filters` first, then `created_at` ascending if
    /// `oldest_first`, then the page size and the pager's offset.
    async fn next_page<T: DeserializeOwned>(
        &self,
        pager: &Pager,
        host: Host,
        path: &str,
        filters: &[(&str, &str)],
        oldest_first: bool,
    ) -> Result<T, ProviderError> {
        let mut query: Vec<(&str, String)> =
            filters.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if oldest_first {
            query.push(("sort_keys", "created_at".to_string()));
            query.push(("sort_dirs", "asc".to_string()));
        }
        query.push(("limit", PAGE.to_string()));
        query.push(("offset", pager.offset().to_string()));
        let req = Request::new(Method::GET, host, path).with_query(&query);
        self.client.json(pager.call(), req).await
    }

    async fn list_instances(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<Instance>, ProviderError> {
        let mut pager = Pager::new(LIST_INSTANCES);
        let mut out: Vec<Instance> = Vec::new();
        loop {
            let page: InstanceList = self
                .next_page(
                    &pager,
                    Host::Bcs,
                    "/api/v1/instances",
                    &[(filter, value)],
                    false,
                )
                .await?;
            let items = page.instances.unwrap_or_default();
            let more = pager.absorb(items.iter().map(|i| i.id.as_str()), page.pagination)?;
            for i in items {
                if !out.iter().any(|o| o.id == i.id) {
                    out.push(i);
                }
            }
            if !more {
                return pager.finish(out);
            }
        }
    }

    /// Every snapshot of one volume, all pages, oldest first.
    async fn volume_snapshots(&self, volume_id: &str) -> Result<Vec<Snapshot>, ProviderError> {
        let mut pager = Pager::new(LIST_SNAPSHOTS);
        let mut out: Vec<Snapshot> = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let page: SnapshotList = self
                .next_page(
                    &pager,
                    Host::Volume,
                    "/api/v1/snapshots",
                    &[("volume_id", volume_id)],
                    true,
                )
                .await?;
            let items = page.snapshots.unwrap_or_default();
            let more = pager.absorb(items.iter().map(|s| s.id.as_str()), page.pagination)?;
            for s in items {
                // A filter the server ignored must not leak other volumes.
                let of_volume = s.volume_id.as_deref().is_none_or(|v| v == volume_id);
                if of_volume && seen.insert(s.id.clone()) {
                    out.push(s);
                }
            }
            if !more {
                return pager.finish(out);
            }
        }
    }

    /// One snapshot, or None when the API says 404.
    async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>, ProviderError> {
        let path = format!("/api/v1/snapshots/{}", segment(id));
        self.get_one(GET_SNAPSHOT, &path, "snapshot", |r: SnapshotEnvelope| {
            r.snapshot
        })
        .await
    }

    /// A volume's status and zone, or None on 404.
    async fn get_volume(&self, id: &str) -> Result<Option<wire::Volume>, ProviderError> {
        let path = format!("/api/v1/volumes/{}", segment(id));
        self.get_one(GET_VOLUME, &path, "volume", |r: VolumeEnvelope| r.volume)
            .await
    }

    /// One object of the Volume API at `path`, taken out of its envelope
    /// by `inner`; None on 404. An envelope without the object (`what`)
    /// is an unexpected answer.
    async fn get_one<E: DeserializeOwned, T>(
        &self,
        call: &str,
        path: &str,
        what: &str,
        inner: impl FnOnce(E) -> Option<T>,
    ) -> Result<Option<T>, ProviderError> {
        match self
            .client
            .json::<E>(call, Request::new(Method::GET, Host::Volume, path))
            .await
        {
            Ok(r) => inner(r)
                .map(Some)
                .ok_or_else(|| errors::unexpected(call, format!("no {what} in the answer"))),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Start (or find already started) the snapshot of one volume.
    async fn create_one(
        &self,
        req: &CreateRequest,
        volume_id: &str,
        name: &str,
    ) -> Result<Created, ProviderError> {
        let existing = self.volume_snapshots(volume_id).await?;
        let policy = req.marker.policy.as_str();
        let target = req.marker.target.as_str();
        // An earlier attempt of this slot whose answer was lost: use it
        // rather than make a second one. One that failed is used too: the
        // run then fails and alerts, and the slot never gets two.
        if let Some(s) = existing.iter().find(|s| {
            marker_slot(s.description.as_deref(), policy, target) == Some(req.marker.slot)
                && matches!(
                    snapshot_state(s.status.as_deref()),
                    SnapshotState::Creating | SnapshotState::Available | SnapshotState::Failed
                )
        }) {
            tracing::info!(snapshot = %s.id, volume = volume_id, "snapshot of this slot already exists; using it");
            return Ok(Created::followed_by_itself(s.id.clone()));
        }
        // The first snapshot of a volume (for this policy) must be full.
        let has_base = existing.iter().any(|s| {
            marker_of(s.description.as_deref(), policy, target)
                && snapshot_state(s.status.as_deref()) == SnapshotState::Available
        });
        let full = req.full || !has_base;
        if full && !req.full {
            tracing::debug!(
                volume = volume_id,
                "no earlier snapshot of this policy on the volume: taking a full one"
            );
        }
        let description = marker_text(policy, target, req.marker.slot);
        let body = CreateSnapshotBody {
            snapshot: CreateSnapshot {
                name,
                description: &description,
                is_incremental: !full,
            },
        };
        let path = format!("/api/v1/volumes/{}/snapshots", segment(volume_id));
        let r: SnapshotEnvelope = self.client.post_volume(CREATE, &path, &body).await?;
        let id = r
            .snapshot
            .map(|s| s.id.trim().to_string())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| errors::unexpected(CREATE, "2xx but no snapshot id"))?;
        Ok(Created::followed_by_itself(id))
    }

    async fn poll_one(&self, op: &OperationRef) -> Result<OpStatus, ProviderError> {
        let pending = OpStatus::Pending { progress: None };
        match op.kind {
            OpKind::Create | OpKind::Delete => {
                let id = op.snapshot_id.trim();
                if id.is_empty() {
                    return Ok(OpStatus::Failed {
                        reason: "operation without a snapshot id".to_string(),
                    });
                }
                let snapshot = self.get_snapshot(id).await?;
                Ok(op_status(op.kind, id, snapshot.as_ref()))
            }
            OpKind::Restore => {
                let id = op.operation.trim();
                if id.is_empty() {
                    return Ok(OpStatus::Failed {
                        reason: "restore operation without a volume id".to_string(),
                    });
                }
                let status = self
                    .get_volume(id)
                    .await?
                    .and_then(|v| v.status)
                    .map(|s| s.trim().to_ascii_lowercase());
                Ok(match status.as_deref() {
                    Some("available" | "in_use" | "in-use") => OpStatus::Succeeded,
                    Some(s) if s.starts_with("error") => OpStatus::Failed {
                        reason: format!("restored volume {id} is {s}"),
                    },
                    // Not visible yet, or still creating/restoring.
                    _ => pending,
                })
            }
        }
    }
}

#[async_trait]
impl Provider for KakaoCloud {
    cloud_identity!(Cloud::KakaoCloud);

    /// Per volume: one listing (reuse a lost attempt, decide full vs
    /// incremental) and one create. An instance target first costs one
    /// instance listing (two when given by name).
    async fn create(&self, req: &CreateRequest) -> Result<Vec<Created>, ProviderError> {
        if req.name.trim().is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                CREATE,
                "empty snapshot name",
            ));
        }
        let volumes = self.volumes_of(CREATE, req.resource, &req.target).await?;
        let per_volume = req.resource == ResourceKind::Instance;
        let mut created = Vec::with_capacity(volumes.len());
        for v in &volumes {
            let name = if per_volume {
                volume_snapshot_name(&req.name, v)
            } else {
                req.name.clone()
            };
            // A failure part-way leaves the earlier volumes' snapshots on
            // the cloud; a retried create finds and reuses them.
            created.push(self.create_one(req, v, &name).await?);
        }
        Ok(created)
    }

    /// One GET per distinct snapshot (or restored volume).
    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError> {
        let mut answers: HashMap<(OpKind, String, String), OpStatus> = HashMap::new();
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let key = (op.kind, op.operation.clone(), op.snapshot_id.clone());
            let status = match answers.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let s = self.poll_one(op).await?;
                    answers.insert(key, s.clone());
                    s
                }
            };
            out.push(status);
        }
        Ok(out)
    }

    /// Every snapshot of every volume of the target, each with its volume
    /// as `source` and its chain.
    async fn list(
        &self,
        resource: ResourceKind,
        target: &str,
        policy: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError> {
        let volumes = self.volumes_of(LIST_SNAPSHOTS, resource, target).await?;
        let mut out = Vec::new();
        for v in &volumes {
            let snapshots = self.volume_snapshots(v).await?;
            let by_id: HashMap<&str, &Snapshot> =
                snapshots.iter().map(|s| (s.id.as_str(), s)).collect();
            for s in &snapshots {
                out.push(remote_snapshot(s, &by_id, v, policy, target));
            }
        }
        super::chains::protect_unknown_chains(&mut out);
        Ok(out)
    }

    /// One DELETE; followed by GET until 404.
    async fn delete(&self, snapshot_id: &str) -> Result<DeleteStarted, ProviderError> {
        require_snapshot_id(DELETE, snapshot_id)?;
        let id = snapshot_id.trim();
        let path = format!("/api/v1/snapshots/{}", segment(id));
        match self
            .client
            .send(DELETE, Request::new(Method::DELETE, Host::Volume, &path))
            .await
        {
            Ok(_) => Ok(DeleteStarted::Tracking(id.to_string())),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(DeleteStarted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// A new volume from the snapshot, in the source volume's zone;
    /// followed by the new volume's status.
    async fn restore(&self, req: &RestoreRequest) -> Result<RestoreStarted, ProviderError> {
        let id = req.snapshot_id.trim();
        let snapshot = self.get_snapshot(id).await?.ok_or_else(|| {
            ProviderError::new(
                ErrorKind::NotFound,
                RESTORE,
                format!("snapshot {id} not found"),
            )
        })?;
        let zone = match snapshot.volume_id.as_deref() {
            Some(v) => self.get_volume(v).await?.and_then(|v| v.availability_zone),
            None => None,
        };
        let name = req
            .new_name
            .clone()
            .unwrap_or_else(|| format!("{}-restored", snapshot.name.as_deref().unwrap_or(id)));
        let body = RestoreBody {
            restore: RestoreSpec {
                name: &name,
                availability_zone: zone.as_deref(),
            },
        };
        let path = format!("/api/v1/snapshots/{}/restore", segment(id));
        let r: RestoreResponse = self.client.post_volume(RESTORE, &path, &body).await?;
        let volume = r
            .restore
            .and_then(|r| r.volume_id)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| errors::unexpected(RESTORE, "2xx but no volume_id"))?;
        Ok(RestoreStarted {
            resource_id: Some(volume.clone()),
            operation: volume,
        })
    }

    /// BCS instances / Volume API volumes, every page (names; no tags).
    async fn list_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<super::Resource>, ProviderError> {
        self.select_resources(resource).await
    }

    /// GET the snapshot for its description, then one `PUT
    /// /api/v1/snapshots/{id}` with `{"snapshot": {"description": …}}`
    /// only (the name is left out, so it stays): the description's own
    /// text (snapwarden's marker) first, the hold mark after it, within
    /// 255 characters (the Cinder-style limit; KakaoCloud documents none:
    /// UNCONFIRMED). A snapshot the GET answers 404 for is NotFound.
    async fn mark_hold(
        &self,
        snapshot_id: &str,
        _name: &str,
        note: Option<&str>,
    ) -> Result<(), ProviderError> {
        require_snapshot_id(UPDATE_SNAPSHOT, snapshot_id)?;
        let id = snapshot_id.trim();
        let Some(current) = self.get_snapshot(id).await? else {
            return Err(ProviderError::new(
                ErrorKind::NotFound,
                GET_SNAPSHOT,
                format!("snapshot {id} does not exist"),
            )
            .with_code("404"));
        };
        let description = super::held_field(
            Cloud::KakaoCloud,
            UPDATE_SNAPSHOT,
            ("description", id),
            current.description.as_deref().unwrap_or(""),
            note,
            DESCRIPTION_MAX,
        )?;
        let body = wire::UpdateSnapshotBody {
            snapshot: wire::UpdateSnapshot {
                description: &description,
            },
        };
        let path = format!("/api/v1/snapshots/{}", segment(id));
        self.client.put_volume(UPDATE_SNAPSHOT, &path, &body).await
    }
}

/// Fuzzing entry (`fuzz/`): `body` as each answer the provider reads
/// (snapshot listing with its pagination, one snapshot, create, restore,
/// volume, instance listing), parsed as the client parses a 2xx body and
/// mapped as this module maps it ([`RemoteSnapshot`] with chain and
/// marker, [`OpStatus`]). Results are discarded; the only contract is that
/// no input panics.
#[cfg(any(feature = "fuzz", test))]
#[doc(hidden)]
pub fn fuzz_parse_response(body: &[u8]) {
    let (policy, target, volume) = ("daily", "vm-fuzz", "vol-fuzz");
    let parse =
        |call: &'static str| move |e: serde_json::Error| errors::malformed(call, e, body.len());
    let mut snapshots: Vec<Snapshot> = Vec::new();
    if let Ok(page) = serde_json::from_slice::<SnapshotList>(body).map_err(parse(LIST_SNAPSHOTS)) {
        let items = page.snapshots.unwrap_or_default();
        let mut pager = Pager::new(LIST_SNAPSHOTS);
        let _ = pager.absorb(items.iter().map(|s| s.id.as_str()), page.pagination);
        snapshots.extend(items.into_iter().take(64));
        let _ = pager.finish(snapshots.clone());
    }
    if let Ok(r) = serde_json::from_slice::<SnapshotEnvelope>(body).map_err(parse(GET_SNAPSHOT)) {
        snapshots.extend(r.snapshot);
    }
    let by_id: HashMap<&str, &Snapshot> = snapshots.iter().map(|s| (s.id.as_str(), s)).collect();
    for s in &snapshots {
        let _ = remote_snapshot(s, &by_id, volume, policy, target);
        for kind in [OpKind::Create, OpKind::Delete, OpKind::Restore] {
            let _ = op_status(kind, &s.id, Some(s));
            let _ = op_status(kind, &s.id, None);
        }
    }
    if let Ok(r) = serde_json::from_slice::<RestoreResponse>(body).map_err(parse(RESTORE)) {
        let _ = r.restore.and_then(|r| r.volume_id);
    }
    if let Ok(r) = serde_json::from_slice::<VolumeEnvelope>(body).map_err(parse(GET_VOLUME)) {
        let _ = r.volume;
    }
    let _ = serde_json::from_slice::<InstanceList>(body).map_err(parse(LIST_INSTANCES));
}
