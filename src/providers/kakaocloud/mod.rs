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
mod select;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;

use self::client::{encode, segment, Client, Host};
use self::wire::{
    CreateSnapshot, CreateSnapshotBody, Instance, InstanceList, Pagination, RestoreBody,
    RestoreResponse, RestoreSpec, Snapshot, SnapshotEnvelope, SnapshotList, VolumeEnvelope,
};
use super::http::ApiClient;
use super::{
    parse_slot_label, Capabilities, ChainInfo, CreateRequest, Created, DeleteStarted, ErrorKind,
    OpKind, OpStatus, OperationRef, Provider, ProviderError, RemoteSnapshot, RestoreRequest,
    RestoreStarted, SnapshotState,
};
use crate::config::KakaoCloudSettings;
use crate::domain::{Cloud, ResourceKind};

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
            other => Err(ProviderError::new(
                ErrorKind::Permanent,
                call,
                format!(
                    "resource {other:?} is not supported by kakaocloud (use volume or instance)"
                ),
            )),
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

    async fn list_instances(
        &self,
        filter: &str,
        value: &str,
    ) -> Result<Vec<Instance>, ProviderError> {
        let mut pager = Pager::new(LIST_INSTANCES);
        let mut out: Vec<Instance> = Vec::new();
        loop {
            let query = [
                (filter, value.to_string()),
                ("limit", PAGE.to_string()),
                ("offset", pager.offset().to_string()),
            ];
            let page: InstanceList = self
                .client
                .json(
                    LIST_INSTANCES,
                    Method::GET,
                    Host::Bcs,
                    "/api/v1/instances",
                    &query,
                    None,
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
            let query = [
                ("volume_id", volume_id.to_string()),
                ("sort_keys", "created_at".to_string()),
                ("sort_dirs", "asc".to_string()),
                ("limit", PAGE.to_string()),
                ("offset", pager.offset().to_string()),
            ];
            let page: SnapshotList = self
                .client
                .json(
                    LIST_SNAPSHOTS,
                    Method::GET,
                    Host::Volume,
                    "/api/v1/snapshots",
                    &query,
                    None,
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
        match self
            .client
            .json::<SnapshotEnvelope>(GET_SNAPSHOT, Method::GET, Host::Volume, &path, &[], None)
            .await
        {
            Ok(r) => r
                .snapshot
                .map(Some)
                .ok_or_else(|| errors::unexpected(GET_SNAPSHOT, "no snapshot in the answer")),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A volume's status and zone, or None on 404.
    async fn get_volume(&self, id: &str) -> Result<Option<wire::Volume>, ProviderError> {
        let path = format!("/api/v1/volumes/{}", segment(id));
        match self
            .client
            .json::<VolumeEnvelope>(GET_VOLUME, Method::GET, Host::Volume, &path, &[], None)
            .await
        {
            Ok(r) => r
                .volume
                .map(Some)
                .ok_or_else(|| errors::unexpected(GET_VOLUME, "no volume in the answer")),
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
            return Ok(Created {
                snapshot_id: s.id.clone(),
                operation: s.id.clone(),
            });
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
        let body = encode(
            CREATE,
            &CreateSnapshotBody {
                snapshot: CreateSnapshot {
                    name,
                    description: &description,
                    is_incremental: !full,
                },
            },
        )?;
        let path = format!("/api/v1/volumes/{}/snapshots", segment(volume_id));
        let r: SnapshotEnvelope = self
            .client
            .json(CREATE, Method::POST, Host::Volume, &path, &[], Some(&body))
            .await?;
        let id = r
            .snapshot
            .map(|s| s.id.trim().to_string())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| errors::unexpected(CREATE, "2xx but no snapshot id"))?;
        Ok(Created {
            snapshot_id: id.clone(),
            operation: id,
        })
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
    fn kind(&self) -> &'static str {
        "kakaocloud"
    }

    fn capabilities(&self) -> Capabilities {
        Cloud::KakaoCloud.capabilities()
    }

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
        let id = snapshot_id.trim();
        if id.is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                DELETE,
                "empty snapshot id",
            ));
        }
        let path = format!("/api/v1/snapshots/{}", segment(id));
        match self
            .client
            .send(DELETE, Method::DELETE, Host::Volume, &path, &[], None)
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
        let body = encode(
            RESTORE,
            &RestoreBody {
                restore: RestoreSpec {
                    name: &name,
                    availability_zone: zone.as_deref(),
                },
            },
        )?;
        let path = format!("/api/v1/snapshots/{}/restore", segment(id));
        let r: RestoreResponse = self
            .client
            .json(RESTORE, Method::POST, Host::Volume, &path, &[], Some(&body))
            .await?;
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
}

/// Pagination by `limit`/`offset`, read whole or not at all (an error,
/// never a partial answer):
/// - with `pagination.total`, pages until the total; a total that changes,
///   an empty page before it, or fewer distinct ids than it is an error;
/// - without a total, a short page proves nothing (the server's maximum
///   `limit` is not documented), so pages until one brings nothing new;
/// - each page after the first starts one item early, at the last item of
///   the page before: if that item is no longer there the listing shifted
///   between the calls (a delete before the boundary, perhaps evened out by
///   a create so the count still adds up) and an item may have been
///   skipped: an error;
/// - a page that brings no new id (a server that ignores `offset`) and
///   more than [`MAX_PAGES`] pages are errors.
struct Pager {
    call: &'static str,
    /// Items read so far: the offset of the first one not read yet.
    next: u64,
    /// The id of the last item read: the next page must start with it.
    boundary: Option<String>,
    total: Option<u64>,
    seen: HashSet<String>,
    pages: usize,
}

/// A listing of more pages than this is refused.
const MAX_PAGES: usize = 10_000;

impl Pager {
    fn new(call: &'static str) -> Self {
        Pager {
            call,
            next: 0,
            boundary: None,
            total: None,
            seen: HashSet::new(),
            pages: 0,
        }
    }

    /// The `offset` to ask for next.
    fn offset(&self) -> u64 {
        match self.boundary {
            Some(_) => self.next.saturating_sub(1),
            None => self.next,
        }
    }

    /// Take one page (the ids of its items, in order); whether to ask for
    /// the next.
    fn absorb<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        pagination: Option<Pagination>,
    ) -> Result<bool, ProviderError> {
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(self.incomplete(format!("more than {MAX_PAGES} pages")));
        }
        if let Some(t) = pagination.and_then(|p| p.total) {
            match self.total {
                Some(old) if old != t => {
                    return Err(
                        self.incomplete(format!("total changed from {old} to {t} between pages"))
                    )
                }
                _ => self.total = Some(t),
            }
        }
        let asked = self.offset();
        let mut ids = ids.into_iter();
        if let Some(expected) = &self.boundary {
            match ids.next() {
                Some(first) if first == expected => {}
                Some(first) => {
                    return Err(self.incomplete(format!(
                        "the listing changed while it was read: offset {asked} was {expected}, \
                         now {first} (an item may have been skipped)"
                    )))
                }
                None if self.total.is_none() => {
                    return Err(self.incomplete(format!(
                        "the listing changed while it was read: offset {asked} ({expected}) \
                         is gone"
                    )))
                }
                None => {}
            }
        }
        let (mut fresh, mut new) = (0u64, 0u64);
        for id in ids {
            fresh += 1;
            if self.seen.insert(id.to_string()) {
                new += 1;
            }
            self.boundary = Some(id.to_string());
        }
        if fresh == 0 {
            return match self.total {
                Some(t) if self.next < t => {
                    Err(self.incomplete(format!("empty page at offset {} of {t}", self.next)))
                }
                _ => Ok(false),
            };
        }
        if new == 0 {
            return Err(self.incomplete(format!(
                "the page at offset {asked} repeats items already read (is offset ignored?)"
            )));
        }
        self.next += fresh;
        Ok(match self.total {
            Some(t) => self.next < t,
            None => true,
        })
    }

    fn finish<T>(&self, items: Vec<T>) -> Result<Vec<T>, ProviderError> {
        match self.total {
            Some(t) if (self.seen.len() as u64) < t => Err(self.incomplete(format!(
                "{} distinct items read, total is {t} (items moved between pages)",
                self.seen.len()
            ))),
            _ => Ok(items),
        }
    }

    fn incomplete(&self, detail: String) -> ProviderError {
        ProviderError::new(
            ErrorKind::Transient,
            self.call,
            format!("listing incomplete: {detail}"),
        )
    }
}

/// The description that marks a snapshot as snapwarden's.
pub fn marker_text(policy: &str, target: &str, slot: DateTime<Utc>) -> String {
    format!(
        "{}{}",
        marker_prefix(policy, target),
        crate::domain::slot_label(slot)
    )
}

fn marker_prefix(policy: &str, target: &str) -> String {
    format!("snapwarden policy={policy} target={target} slot=")
}

/// The slot of a description that is exactly our marker for `policy` and
/// `target`, and nothing else.
pub fn marker_slot(description: Option<&str>, policy: &str, target: &str) -> Option<DateTime<Utc>> {
    if policy.is_empty() || target.is_empty() {
        return None;
    }
    description?
        .strip_prefix(&marker_prefix(policy, target))
        .and_then(parse_slot_label)
}

fn marker_of(description: Option<&str>, policy: &str, target: &str) -> bool {
    marker_slot(description, policy, target).is_some()
}

/// `{name}-{volume_id}`: one name per volume of an instance target.
pub fn volume_snapshot_name(name: &str, volume_id: &str) -> String {
    format!("{name}-{volume_id}")
}

/// `available` → Available, `error` → Failed, `deleting` → Deleting;
/// `creating`, `restoring` and anything unknown → Creating, never
/// Available.
/// A listed snapshot of `volume` in the engine's words; `by_id` is the
/// volume's listing (for the chain).
fn remote_snapshot(
    s: &Snapshot,
    by_id: &HashMap<&str, &Snapshot>,
    volume: &str,
    policy: &str,
    target: &str,
) -> RemoteSnapshot {
    RemoteSnapshot {
        id: s.id.clone(),
        name: s.name.clone().unwrap_or_default(),
        source: s.volume_id.clone().unwrap_or_else(|| volume.to_string()),
        created_at: s.created_at(),
        state: snapshot_state(s.status.as_deref()),
        marker_slot: marker_slot(s.description.as_deref(), policy, target),
        chain: chain_info(s, by_id),
        cloud_id: None,
        size_bytes: None,
    }
}

fn snapshot_state(status: Option<&str>) -> SnapshotState {
    match status.unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "available" => SnapshotState::Available,
        "error" => SnapshotState::Failed,
        "deleting" => SnapshotState::Deleting,
        "deleted" => SnapshotState::Gone,
        _ => SnapshotState::Creating,
    }
}

/// Where a create or delete stands, from a GET of the snapshot.
fn op_status(kind: OpKind, id: &str, snapshot: Option<&Snapshot>) -> OpStatus {
    let pending = OpStatus::Pending { progress: None };
    let status = snapshot
        .and_then(|s| s.status.as_deref())
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match (kind, snapshot) {
        // Right after create the snapshot may not be visible yet (the
        // official provider retries 404s); the policy timeout bounds this.
        (OpKind::Create, None) => pending,
        (OpKind::Create, Some(_)) => match status.as_str() {
            "available" => OpStatus::Succeeded,
            "error" => OpStatus::Failed {
                reason: format!("snapshot {id} ended in status error"),
            },
            "deleting" | "deleted" => OpStatus::Failed {
                reason: format!("snapshot {id} is {status} before it became available"),
            },
            _ => pending,
        },
        (OpKind::Delete, None) => OpStatus::Succeeded,
        (OpKind::Delete, Some(_)) => match status.as_str() {
            "deleted" => OpStatus::Succeeded,
            "error" => OpStatus::Failed {
                reason: format!("snapshot {id} went to status error instead of being deleted"),
            },
            _ => pending,
        },
        (OpKind::Restore, _) => OpStatus::Failed {
            reason: "a restore is followed by its volume".to_string(),
        },
    }
}

/// Chain facts: a snapshot is full when `is_incremental` is false (or,
/// when the field is absent, when it has no parent). The root is found by
/// walking `parent_id` through the same volume's listing; an incremental
/// without a parent cannot be described and gets no chain info (the
/// listing then keeps everything older with it, see
/// [`super::chains::protect_unknown_chains`]).
fn chain_info(s: &Snapshot, by_id: &HashMap<&str, &Snapshot>) -> Option<ChainInfo> {
    let parent = non_empty(s.parent_id.as_deref());
    let full = match (s.is_incremental, &parent) {
        (Some(inc), _) => !inc,
        (None, p) => p.is_none(),
    };
    if full {
        return Some(ChainInfo {
            full: true,
            root_id: s.id.clone(),
            parent_id: None,
        });
    }
    let parent = parent?;
    let mut root = parent.clone();
    let mut steps = 0;
    while let Some(p) = by_id.get(root.as_str()) {
        let is_full = match (p.is_incremental, non_empty(p.parent_id.as_deref())) {
            (Some(inc), _) => !inc,
            (None, pp) => pp.is_none(),
        };
        match non_empty(p.parent_id.as_deref()) {
            Some(next) if !is_full && steps < by_id.len() => {
                root = next;
                steps += 1;
            }
            _ => break,
        }
    }
    Some(ChainInfo {
        full: false,
        root_id: root,
        parent_id: Some(parent),
    })
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Distinct non-empty values in first-seen order.
fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .filter(|v| !v.is_empty() && seen.insert(*v))
        .map(str::to_string)
        .collect()
}

/// Fuzzing entry (`fuzz/`): `body` as each answer the provider reads
/// (snapshot listing with its pagination, one snapshot, create, restore,
/// volume, instance listing), parsed as the client parses a 2xx body and
/// mapped as this module maps it ([`RemoteSnapshot`] with chain and
/// marker, [`OpStatus`]). Results are discarded; the only contract is that
/// no input panics.
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

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn unknown_or_missing_status_is_never_available() {
        for raw in [
            Some("weird"),
            Some(""),
            None,
            Some("backing-up"),
            Some("availabl"),
        ] {
            assert_eq!(snapshot_state(raw), SnapshotState::Creating, "{raw:?}");
        }
        assert_eq!(snapshot_state(Some("AVAILABLE")), SnapshotState::Available);
        assert_eq!(snapshot_state(Some("error")), SnapshotState::Failed);
    }
}
