//! AWS Lightsail provider: instance snapshots (`resource = "instance"`) and
//! disk snapshots (`resource = "disk"`) through the official AWS SDK.
//!
//! Owns the Lightsail dialect: the SDK client (`client`), error names
//! (`errors`), and here the mapping of operations, snapshot states and tags
//! onto the engine's words. It never retries or sleeps (the engine owns the
//! retry policy, the SDK's own retries are off) and never decides what to
//! keep or delete.
//!
//! - Marker: every snapshot is created with the tags `snapwarden:policy`,
//!   `snapwarden:target` and `snapwarden:slot`; a listed snapshot is ours
//!   only if it carries all three for the listed policy and target and is
//!   not a copy of a Lightsail automatic snapshot.
//! - Names: `{policy}-{target}-p{N}-{slot}`, N the policy name's length
//!   ([`snapshot_name`]). Lightsail names are unique in the account, and
//!   every character a name may hold may also be in a policy name, so the
//!   plain `{policy}-{target}-{slot}` of two pairs could be the same
//!   (policy `db` on `prod-web`, `db-prod` on `web`); the length tells
//!   where the policy ends. Ownership never rests on the name (the tags
//!   decide), so snapshots named the old way are still recognised.
//! - Ids: a snapshot's id is `InstanceSnapshot/<name>` or
//!   `DiskSnapshot/<name>`. Lightsail addresses snapshots by name, and the
//!   trait's `delete`/`poll` get no resource type, so the id carries it.
//! - Operations: a create returns two operations (one on the snapshot, one
//!   on the source); the engine's operation string holds both ids,
//!   comma-separated, and an operation is done only when every one is
//!   terminal. Then the snapshot's own state is confirmed.

mod client;
mod errors;
mod select;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_lightsail::types::{DiskSnapshot, InstanceSnapshot, Operation, Tag};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::http::{ApiClient, ClientBuildError};
use super::{
    parse_slot_label, Capabilities, CreateRequest, Created, DeleteStarted, ErrorKind, Marker,
    OpKind, OpStatus, OperationRef, Provider, ProviderError, RemoteSnapshot, RestoreRequest,
    RestoreStarted, SnapshotState,
};
use crate::config::LightsailSettings;
use crate::domain::{Cloud, ResourceKind};

/// The ownership marker's tag keys.
pub const TAG_POLICY: &str = "snapwarden:policy";
pub const TAG_TARGET: &str = "snapwarden:target";
pub const TAG_SLOT: &str = "snapwarden:slot";

/// A runaway pagination guard: far more pages than any account holds.
const MAX_PAGES: usize = 10_000;

/// The deterministic name of a marker's snapshot:
/// `{policy}-{target}-p{N}-{slot}`, where N is the length of the policy
/// name. It is a pure function of the marker and different for every
/// (policy, target, slot): the slot label has a fixed length and ends the
/// name, `p{N}` is the last `-`-separated part before it and holds no `-`,
/// and N then says where the policy ends and the target begins. Policy
/// names (`[A-Za-z0-9][A-Za-z0-9_-]*`) and target names (Lightsail's
/// `\w[\w-]*\w`) keep it within Lightsail's name rules.
pub fn snapshot_name(marker: &Marker) -> String {
    format!(
        "{}-{}-p{}-{}",
        marker.policy,
        marker.target,
        marker.policy.len(),
        crate::domain::slot_label(marker.slot)
    )
}

/// Which of Lightsail's two snapshot families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Instance,
    Disk,
}

impl Family {
    /// Position in [`Lightsail::listings`].
    fn index(self) -> usize {
        match self {
            Family::Instance => 0,
            Family::Disk => 1,
        }
    }

    fn of_resource(resource: ResourceKind, call: &str) -> Result<Family, ProviderError> {
        match resource {
            ResourceKind::Instance => Ok(Family::Instance),
            ResourceKind::Disk => Ok(Family::Disk),
            other => Err(ProviderError::new(
                ErrorKind::Permanent,
                call,
                format!("resource {other:?} is not supported by lightsail (use instance or disk)"),
            )),
        }
    }

    /// Lightsail's `resourceType` name, used as the id prefix.
    fn type_name(self) -> &'static str {
        match self {
            Family::Instance => "InstanceSnapshot",
            Family::Disk => "DiskSnapshot",
        }
    }

    fn id(self, name: &str) -> String {
        format!("{}/{name}", self.type_name())
    }

    /// `InstanceSnapshot/<name>` or `DiskSnapshot/<name>`.
    fn parse_id<'a>(id: &'a str, call: &str) -> Result<(Family, &'a str), ProviderError> {
        let parsed = match id.trim().split_once('/') {
            Some(("InstanceSnapshot", name)) => Some((Family::Instance, name)),
            Some(("DiskSnapshot", name)) => Some((Family::Disk, name)),
            _ => None,
        };
        parsed.filter(|(_, n)| !n.is_empty()).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Permanent,
                call,
                format!(
                    "{id:?} is not a Lightsail snapshot id of snapwarden's form \
                     (InstanceSnapshot/<name> or DiskSnapshot/<name>)"
                ),
            )
        })
    }

    fn get_call(self) -> &'static str {
        match self {
            Family::Instance => "GetInstanceSnapshot",
            Family::Disk => "GetDiskSnapshot",
        }
    }
}

/// One Lightsail account in one region.
pub struct Lightsail {
    client: client::Client,
    region: String,
    /// The rate limit (shared with `client`), which paces full listings.
    api: ApiClient,
    /// The newest full listing of each family ([`Family::index`]).
    listings: [SharedListing; 2],
}

/// Lightsail lists every snapshot of a family at once (no per-resource
/// filter), so a slot of N targets would read the whole account N times.
/// Callers share one listing instead, but only one that *started after
/// they asked*: it then reflects every change made before the call, as a
/// listing of their own would. Callers queue on the lock while a listing
/// runs; the first after it starts a new one, the rest of the queue reuse
/// it. A failed listing is not kept.
///
/// A listing costs one call per page, so listings are paced: while other
/// requests wait for the rate limit, a new one starts no sooner than its
/// predecessor's pages take at [`LISTING_SHARE`] of the rate limit (at
/// most [`MAX_LISTING_GAP`]). Callers asking in between wait for it, and
/// all of them share it.
#[derive(Default)]
struct SharedListing {
    newest: tokio::sync::Mutex<Option<Listing>>,
    /// Pages the newest listing took; 0 before the first.
    pages: AtomicUsize,
    /// Single-snapshot status calls made since the newest listing started
    /// (see [`Lightsail::poll`]).
    spent: AtomicUsize,
}

struct Listing {
    started: Instant,
    pages: usize,
    all: Arc<Vec<Listed>>,
}

/// What one poll still has to ask about a single operation.
enum Ask {
    /// Its snapshot, by Get*Snapshot (then its operations if need be).
    Snapshot(Family, String),
    /// Its operations, by GetOperation.
    Operations,
    /// Why its snapshot is in this error state, by GetOperation.
    WhyFailed(String),
}

/// The share of the rate limit full listings may take.
const LISTING_SHARE: f64 = 0.1;
/// The longest a caller waits for the next full listing to be allowed.
const MAX_LISTING_GAP: Duration = Duration::from_secs(30);
/// How often a paced listing looks whether the rate limit went idle.
const IDLE_CHECK: Duration = Duration::from_millis(50);
/// Due operations that make the first listing worth its unknown cost.
const FIRST_LISTING_AT: usize = 64;
/// Single-snapshot status calls in flight at once within one poll.
const POLL_CONCURRENCY: usize = 32;

impl SharedListing {
    /// Whether `k` more single-snapshot status calls would cost more than
    /// half a listing, counting those made since the last listing: then
    /// the next listing answers for them all. Before the first listing
    /// its cost is unknown: a listing then once `k` is large.
    fn prefers_listing(&self, k: usize) -> bool {
        match self.pages.load(Ordering::Relaxed) {
            0 => k >= FIRST_LISTING_AT,
            pages => self.spent.load(Ordering::Relaxed) + k > pages.div_ceil(2),
        }
    }

    fn spend(&self, calls: usize) {
        self.spent.fetch_add(calls, Ordering::Relaxed);
    }
}

/// The page tokens of one listing: a listing ends at an absent or empty
/// `nextPageToken`, and a token that comes back twice, or more than
/// [`MAX_PAGES`] pages, makes it incomplete (an error, never a partial
/// answer).
#[derive(Default)]
struct Pages(HashSet<String>);

impl Pages {
    /// The token of the next page, `None` after the last page.
    fn next(&mut self, call: &str, next: Option<String>) -> Result<Option<String>, ProviderError> {
        match next.filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) if !self.0.insert(t.clone()) => Err(ProviderError::new(
                ErrorKind::Transient,
                call,
                "listing incomplete: the same nextPageToken came back twice",
            )),
            Some(t) => Ok(Some(t)),
        }
    }

    fn too_many(call: &str) -> ProviderError {
        ProviderError::new(
            ErrorKind::Transient,
            call,
            format!("listing incomplete: more than {MAX_PAGES} pages"),
        )
    }
}

/// How long after a listing of `pages` pages the next may start.
fn listing_gap(pages: usize, requests_per_second: f64) -> Duration {
    let rate = requests_per_second * LISTING_SHARE;
    if !(rate.is_finite() && rate > 0.0) {
        return MAX_LISTING_GAP;
    }
    Duration::from_secs_f64(pages as f64 / rate).min(MAX_LISTING_GAP)
}

impl Lightsail {
    pub fn new(
        settings: &LightsailSettings,
        api: ApiClient,
        request_timeout: std::time::Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Lightsail, ClientBuildError> {
        Ok(Lightsail {
            api: api.clone(),
            client: client::Client::new(settings, api, request_timeout, ca_file)?,
            region: settings.region.clone(),
            listings: Default::default(),
        })
    }

    /// One snapshot by name, in a shape both families share.
    async fn get_snapshot(&self, family: Family, name: &str) -> Result<Listed, ProviderError> {
        let call = family.get_call();
        match family {
            Family::Instance => {
                let out = self
                    .client
                    .call(call, |c| {
                        c.get_instance_snapshot()
                            .instance_snapshot_name(name)
                            .send()
                    })
                    .await?;
                out.instance_snapshot()
                    .map(Listed::from_instance)
                    .ok_or_else(|| unexpected(call, "no instanceSnapshot in the answer"))
            }
            Family::Disk => {
                let out = self
                    .client
                    .call(call, |c| {
                        c.get_disk_snapshot().disk_snapshot_name(name).send()
                    })
                    .await?;
                out.disk_snapshot()
                    .map(Listed::from_disk)
                    .ok_or_else(|| unexpected(call, "no diskSnapshot in the answer"))
            }
        }
    }

    /// Every snapshot of one family as of a moment after this call began:
    /// shared with concurrent callers and paced (see [`SharedListing`]).
    async fn list_fresh(&self, family: Family) -> Result<Arc<Vec<Listed>>, ProviderError> {
        let asked = Instant::now();
        let shared = &self.listings[family.index()];
        let mut newest = shared.newest.lock().await;
        if let Some(last) = newest.as_ref() {
            if last.started >= asked {
                return Ok(last.all.clone());
            }
            let allowed = last.started + listing_gap(last.pages, self.api.requests_per_second());
            // Early when nothing waits for the rate limit: the listing
            // then delays no other request.
            while Instant::now() < allowed && !self.api.is_idle() {
                let left = allowed.saturating_duration_since(Instant::now());
                tokio::time::sleep(left.min(IDLE_CHECK)).await;
            }
        }
        let started = Instant::now();
        shared.spent.store(0, Ordering::Relaxed);
        let (all, pages) = self.list_all(family).await?;
        let all = Arc::new(all);
        shared.pages.store(pages, Ordering::Relaxed);
        *newest = Some(Listing {
            started,
            pages,
            all: all.clone(),
        });
        Ok(all)
    }

    /// Every snapshot of one family, all pages, and how many pages.
    async fn list_all(&self, family: Family) -> Result<(Vec<Listed>, usize), ProviderError> {
        let call = match family {
            Family::Instance => "GetInstanceSnapshots",
            Family::Disk => "GetDiskSnapshots",
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = Pages::default();
        for page in 1..=MAX_PAGES {
            let next = match family {
                Family::Instance => {
                    let page = self
                        .client
                        .call(call, |c| {
                            c.get_instance_snapshots()
                                .set_page_token(token.clone())
                                .send()
                        })
                        .await?;
                    out.extend(page.instance_snapshots().iter().map(Listed::from_instance));
                    page.next_page_token().map(str::to_string)
                }
                Family::Disk => {
                    let page = self
                        .client
                        .call(call, |c| {
                            c.get_disk_snapshots().set_page_token(token.clone()).send()
                        })
                        .await?;
                    out.extend(page.disk_snapshots().iter().map(Listed::from_disk));
                    page.next_page_token().map(str::to_string)
                }
            };
            match pages.next(call, next)? {
                None => return Ok((out, page)),
                Some(t) => token = Some(t),
            }
        }
        Err(Pages::too_many(call))
    }

    /// A create failed because the name is taken. Ours (an earlier create
    /// of this very slot whose answer was lost) → a transient error, so the
    /// engine looks again by listing and adopts it; anything else → conflict.
    async fn collision(
        &self,
        family: Family,
        req: &CreateRequest,
        err: ProviderError,
    ) -> ProviderError {
        match self.get_snapshot(family, &req.name).await {
            Ok(found)
                if found.source.as_deref() == Some(req.target.as_str())
                    && found.marker_slot(&req.marker.policy, &req.marker.target)
                        == Some(req.marker.slot) =>
            {
                ProviderError::new(
                    ErrorKind::Transient,
                    err.call.clone(),
                    format!(
                        "snapshot {} already exists and carries snapwarden's tags for this slot \
                         (an earlier create whose answer was lost); reconciling",
                        req.name
                    ),
                )
                .with_code(err.code.clone().unwrap_or_default())
            }
            Ok(_) => ProviderError::new(
                ErrorKind::Conflict,
                err.call.clone(),
                format!(
                    "the name {} is taken by a {} that is not snapwarden's for this slot: {}",
                    req.name,
                    family.type_name(),
                    err.message
                ),
            ),
            Err(e) if e.kind == ErrorKind::NotFound => ProviderError::new(
                ErrorKind::Conflict,
                err.call.clone(),
                format!(
                    "the name {} is taken by another Lightsail resource: {}",
                    req.name, err.message
                ),
            ),
            Err(e) => e,
        }
    }

    /// One create or delete, told by Get*Snapshot, and by its operations
    /// when the snapshot alone cannot tell; with the number of calls made.
    async fn poll_snapshot(
        &self,
        op: &OperationRef,
        family: Family,
        name: &str,
    ) -> Result<(OpStatus, usize), ProviderError> {
        let found = match self.get_snapshot(family, name).await {
            Ok(s) => Some(s),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match (op.kind, &found) {
            (OpKind::Create, Some(s)) if s.state == SnapshotState::Failed => {
                Ok((self.why_failed(op, &s.raw_state).await?, 2))
            }
            (OpKind::Create, Some(_)) | (OpKind::Delete, None) => {
                Ok((confirm(op, found.as_ref()), 1))
            }
            _ => Ok((self.poll_operations(op).await?, 2)),
        }
    }

    /// A create whose snapshot is in an error state: failed, in the
    /// operation's words where it has any.
    async fn why_failed(&self, op: &OperationRef, state: &str) -> Result<OpStatus, ProviderError> {
        let snapshot = format!("snapshot {} is in state {state:?}", op.snapshot_id);
        Ok(OpStatus::Failed {
            reason: match self.poll_operations(op).await? {
                OpStatus::Failed { reason } => format!("{reason}; {snapshot}"),
                _ => snapshot,
            },
        })
    }

    /// An operation whose snapshot did not settle it: any failed operation
    /// fails it, else it is still pending (a restore: done when all its
    /// operations succeeded).
    async fn poll_operations(&self, op: &OperationRef) -> Result<OpStatus, ProviderError> {
        let states = self.operations(&split_ids(&op.operation)).await?;
        Ok(match combined(&op.operation, &states) {
            OpState::Failed(reason) => OpStatus::Failed { reason },
            OpState::Succeeded if op.kind == OpKind::Restore => OpStatus::Succeeded,
            _ => OpStatus::Pending { progress: None },
        })
    }

    /// Where each operation id stands; an id GetOperation does not know is
    /// a failure of that operation, not of the whole poll.
    async fn operations(&self, ids: &[String]) -> Result<HashMap<String, OpState>, ProviderError> {
        let mut out = HashMap::new();
        for id in ids {
            let answer = self
                .client
                .call("GetOperation", |c| {
                    c.get_operation().operation_id(id).send()
                })
                .await;
            let state = match answer {
                Ok(o) => match o.operation() {
                    Some(op) => op_state(id, op),
                    None => OpState::Running,
                },
                Err(e) if e.kind == ErrorKind::NotFound => OpState::Failed(format!(
                    "operation {id} is unknown to GetOperation: {}",
                    e.message
                )),
                Err(e) => return Err(e),
            };
            out.insert(id.clone(), state);
        }
        Ok(out)
    }
}

#[async_trait]
impl Provider for Lightsail {
    fn kind(&self) -> &'static str {
        "lightsail"
    }

    fn capabilities(&self) -> Capabilities {
        Cloud::Lightsail.capabilities()
    }

    fn snapshot_name(&self, marker: &Marker) -> String {
        snapshot_name(marker)
    }

    /// One CreateInstanceSnapshot / CreateDiskSnapshot call, tagged.
    async fn create(&self, req: &CreateRequest) -> Result<Vec<Created>, ProviderError> {
        let call = match req.resource {
            ResourceKind::Disk => "CreateDiskSnapshot",
            _ => "CreateInstanceSnapshot",
        };
        let family = Family::of_resource(req.resource, call)?;
        if req.target.trim().is_empty() || req.name.trim().is_empty() {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                call,
                "empty target or snapshot name",
            ));
        }
        let tags = marker_tags(&req.marker);
        let answer = match family {
            Family::Instance => self
                .client
                .call(call, |c| {
                    c.create_instance_snapshot()
                        .instance_name(&req.target)
                        .instance_snapshot_name(&req.name)
                        .set_tags(Some(tags))
                        .send()
                })
                .await
                .map(|o| o.operations().to_vec()),
            Family::Disk => self
                .client
                .call(call, |c| {
                    c.create_disk_snapshot()
                        .disk_name(&req.target)
                        .disk_snapshot_name(&req.name)
                        .set_tags(Some(tags))
                        .send()
                })
                .await
                .map(|o| o.operations().to_vec()),
        };
        match answer {
            Ok(ops) => {
                let ids = operation_ids(&ops);
                if ids.is_empty() {
                    // Accepted, but nothing to follow: the snapshot may well
                    // exist, so this must be reconciled, never re-created.
                    return Err(ProviderError::new(
                        ErrorKind::Transient,
                        call,
                        "the create was answered without operations",
                    ));
                }
                Ok(vec![Created {
                    snapshot_id: family.id(&req.name),
                    operation: ids.join(","),
                }])
            }
            Err(e) if e.kind == ErrorKind::Conflict => Err(self.collision(family, req, e).await),
            Err(e) => Err(e),
        }
    }

    /// Creates and deletes are told by the snapshot itself (a create is
    /// done when its snapshot is available, a delete when it is gone);
    /// their operations are read only to explain a snapshot that is
    /// missing after a create or still there after a delete. Per family,
    /// one shared full listing answers for every due operation once that
    /// is cheaper than one Get*Snapshot each ([`SharedListing`]); restores
    /// are followed by their operations.
    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError> {
        let mut out: Vec<Option<OpStatus>> = vec![None; ops.len()];
        // Operations still to ask about one by one.
        let mut single: Vec<(usize, Ask)> = Vec::new();
        let mut by_family: [Vec<(usize, &str)>; 2] = Default::default();
        // Each operation's snapshot family, whose listing budget its single
        // calls count against.
        let parsed: Vec<_> = ops
            .iter()
            .map(|op| Family::parse_id(&op.snapshot_id, "poll"))
            .collect();
        for (i, (op, id)) in ops.iter().zip(&parsed).enumerate() {
            match id {
                _ if op.kind == OpKind::Restore => single.push((i, Ask::Operations)),
                Ok((family, name)) => by_family[family.index()].push((i, name)),
                Err(e) => {
                    out[i] = Some(OpStatus::Failed {
                        reason: e.message.clone(),
                    })
                }
            }
        }
        for family in [Family::Instance, Family::Disk] {
            let due = std::mem::take(&mut by_family[family.index()]);
            if due.is_empty() {
                continue;
            }
            if !self.listings[family.index()].prefers_listing(due.len()) {
                single.extend(
                    due.into_iter()
                        .map(|(i, name)| (i, Ask::Snapshot(family, name.to_string()))),
                );
                continue;
            }
            let all = self.list_fresh(family).await?;
            let listed: HashMap<&str, &Listed> = all.iter().map(|s| (s.name.as_str(), s)).collect();
            for (i, name) in due {
                match (ops[i].kind, listed.get(name)) {
                    (OpKind::Create, Some(found)) if found.state == SnapshotState::Failed => {
                        single.push((i, Ask::WhyFailed(found.raw_state.clone())))
                    }
                    (OpKind::Create, Some(found)) => out[i] = Some(confirm(&ops[i], Some(found))),
                    (OpKind::Delete, None) => out[i] = Some(OpStatus::Succeeded),
                    // Missing after a create, or still there after a
                    // delete: its operations tell why.
                    _ => single.push((i, Ask::Operations)),
                }
            }
        }

        let answers: Vec<(usize, Result<(OpStatus, usize), ProviderError>)> =
            futures::stream::iter(single)
                .map(|(i, ask)| async move {
                    let op = &ops[i];
                    let answer = match ask {
                        Ask::Snapshot(family, name) => self.poll_snapshot(op, family, &name).await,
                        Ask::Operations => self.poll_operations(op).await.map(|s| (s, 1)),
                        Ask::WhyFailed(state) => self.why_failed(op, &state).await.map(|s| (s, 1)),
                    };
                    (i, answer)
                })
                .buffer_unordered(POLL_CONCURRENCY)
                .collect()
                .await;
        let mut first_error = None;
        let mut answered = 0;
        let asked = answers.len();
        for (i, answer) in answers {
            match answer {
                Ok((status, calls)) => {
                    answered += 1;
                    if let Ok((family, _)) = &parsed[i] {
                        self.listings[family.index()].spend(calls);
                    }
                    out[i] = Some(status);
                }
                // Asked again at the next poll; the poll fails only when
                // nothing could be asked at all.
                Err(e) => {
                    first_error.get_or_insert(e);
                    out[i] = Some(OpStatus::Pending { progress: None });
                }
            }
        }
        if let Some(e) = first_error {
            if answered == 0 && asked > 0 {
                return Err(e);
            }
            tracing::debug!(error = %e, answered, asked, "some Lightsail status calls failed; those are asked again");
        }
        Ok(out
            .into_iter()
            .map(|s| s.unwrap_or(OpStatus::Pending { progress: None }))
            .collect())
    }

    /// GetInstanceSnapshots / GetDiskSnapshots, every page, kept to the
    /// snapshots of `target`.
    async fn list(
        &self,
        resource: ResourceKind,
        target: &str,
        policy: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError> {
        let family = Family::of_resource(resource, "list")?;
        let all = self.list_fresh(family).await?;
        let mut seen = HashSet::new();
        Ok(all
            .iter()
            .filter(|s| s.source.as_deref() == Some(target))
            .filter(|s| seen.insert(s.name.clone()))
            .cloned()
            .map(|s| RemoteSnapshot {
                id: family.id(&s.name),
                marker_slot: s.marker_slot(policy, target),
                source: target.to_string(),
                created_at: s.created_at,
                state: s.state,
                // Lightsail's tools take the bare name.
                cloud_id: Some(s.name.clone()),
                size_bytes: s
                    .size_in_gb
                    .and_then(|gb| u64::try_from(gb).ok())
                    .map(|gb| gb << 30),
                name: s.name,
                chain: None,
            })
            .collect())
    }

    /// DeleteInstanceSnapshot / DeleteDiskSnapshot; its operation is
    /// followed to terminal, then the snapshot confirmed gone.
    async fn delete(&self, snapshot_id: &str) -> Result<DeleteStarted, ProviderError> {
        let (family, name) = Family::parse_id(snapshot_id, "DeleteSnapshot")?;
        let answer = match family {
            Family::Instance => self
                .client
                .call("DeleteInstanceSnapshot", |c| {
                    c.delete_instance_snapshot()
                        .instance_snapshot_name(name)
                        .send()
                })
                .await
                .map(|o| o.operations().to_vec()),
            Family::Disk => self
                .client
                .call("DeleteDiskSnapshot", |c| {
                    c.delete_disk_snapshot().disk_snapshot_name(name).send()
                })
                .await
                .map(|o| o.operations().to_vec()),
        };
        match answer {
            // No operation to follow: the poll goes straight to the check
            // that the snapshot is gone.
            Ok(ops) => Ok(DeleteStarted::Tracking(operation_ids(&ops).join(","))),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(DeleteStarted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// CreateInstancesFromSnapshot / CreateDiskFromSnapshot into a new
    /// resource in the source's availability zone (or `<region>a` when the
    /// source is gone), with the snapshot's bundle or size.
    async fn restore(&self, req: &RestoreRequest) -> Result<RestoreStarted, ProviderError> {
        let call = match req.resource {
            ResourceKind::Disk => "CreateDiskFromSnapshot",
            _ => "CreateInstancesFromSnapshot",
        };
        let family = Family::of_resource(req.resource, call)?;
        let name = match Family::parse_id(&req.snapshot_id, call) {
            Ok((f, name)) if f == family => name.to_string(),
            Ok(_) => {
                return Err(ProviderError::new(
                    ErrorKind::Permanent,
                    call,
                    format!("{} is not a {} snapshot", req.snapshot_id, req.resource),
                ))
            }
            // A bare snapshot name as an operator would type it.
            Err(_) => req.snapshot_id.trim().to_string(),
        };
        let new_name = req
            .new_name
            .clone()
            .unwrap_or_else(|| format!("{}-restored", req.target));
        let snap = self.get_snapshot(family, &name).await?;
        let source = snap.source.clone().unwrap_or_else(|| req.target.clone());
        let zone = self.zone_of(family, &source).await?;
        let ops = match family {
            Family::Instance => {
                let bundle = snap.bundle_id.clone().ok_or_else(|| {
                    unexpected(call, "the instance snapshot names no fromBundleId")
                })?;
                self.client
                    .call(call, |c| {
                        c.create_instances_from_snapshot()
                            .instance_names(&new_name)
                            .instance_snapshot_name(&name)
                            .availability_zone(&zone)
                            .bundle_id(bundle)
                            .send()
                    })
                    .await?
                    .operations()
                    .to_vec()
            }
            Family::Disk => {
                let size = snap
                    .size_in_gb
                    .ok_or_else(|| unexpected(call, "the disk snapshot has no sizeInGb"))?;
                self.client
                    .call(call, |c| {
                        c.create_disk_from_snapshot()
                            .disk_name(&new_name)
                            .disk_snapshot_name(&name)
                            .availability_zone(&zone)
                            .size_in_gb(size)
                            .send()
                    })
                    .await?
                    .operations()
                    .to_vec()
            }
        };
        let ids = operation_ids(&ops);
        if ids.is_empty() {
            return Err(unexpected(
                call,
                "the restore was answered without operations",
            ));
        }
        Ok(RestoreStarted {
            resource_id: Some(new_name),
            operation: ids.join(","),
        })
    }

    /// GetInstances / GetDisks, every page, tags included.
    async fn list_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<super::Resource>, ProviderError> {
        self.select_resources(resource).await
    }
}

impl Lightsail {
    /// The availability zone of a snapshot's source, or `<region>a` when
    /// the source no longer exists.
    async fn zone_of(&self, family: Family, source: &str) -> Result<String, ProviderError> {
        let fallback = format!("{}a", self.region);
        let zone = match family {
            Family::Instance => self
                .client
                .call("GetInstance", |c| {
                    c.get_instance().instance_name(source).send()
                })
                .await
                .map(|o| {
                    o.instance()
                        .and_then(|i| i.location())
                        .and_then(|l| l.availability_zone())
                        .map(str::to_string)
                }),
            Family::Disk => self
                .client
                .call("GetDisk", |c| c.get_disk().disk_name(source).send())
                .await
                .map(|o| {
                    o.disk()
                        .and_then(|d| d.location())
                        .and_then(|l| l.availability_zone())
                        .map(str::to_string)
                }),
        };
        match zone {
            Ok(z) => Ok(z
                .filter(|z| !z.is_empty() && z != "all")
                .unwrap_or(fallback)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(fallback),
            Err(e) => Err(e),
        }
    }
}

/// A snapshot of either family, reduced to what snapwarden reads.
#[derive(Debug, Clone)]
struct Listed {
    name: String,
    /// `fromInstanceName` (instance) or `fromDiskName` (disk).
    source: Option<String>,
    created_at: Option<DateTime<Utc>>,
    state: SnapshotState,
    /// The raw state, for messages.
    raw_state: String,
    progress: Option<u8>,
    tags: Vec<(String, String)>,
    from_auto: bool,
    bundle_id: Option<String>,
    size_in_gb: Option<i32>,
}

impl Listed {
    fn from_instance(s: &InstanceSnapshot) -> Listed {
        let raw = s
            .state()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default();
        Listed {
            name: s.name().unwrap_or_default().to_string(),
            source: s.from_instance_name().map(str::to_string),
            created_at: s.created_at().and_then(to_chrono),
            state: match raw.as_str() {
                "available" => SnapshotState::Available,
                "error" => SnapshotState::Failed,
                // `pending` and anything new: never Available.
                _ => SnapshotState::Creating,
            },
            progress: None,
            raw_state: raw,
            tags: tags_of(s.tags()),
            from_auto: s.is_from_auto_snapshot() == Some(true),
            bundle_id: s.from_bundle_id().map(str::to_string),
            size_in_gb: s.size_in_gb(),
        }
    }

    fn from_disk(s: &DiskSnapshot) -> Listed {
        let raw = s
            .state()
            .map(|x| x.as_str().to_string())
            .unwrap_or_default();
        Listed {
            name: s.name().unwrap_or_default().to_string(),
            source: s.from_disk_name().map(str::to_string),
            created_at: s.created_at().and_then(to_chrono),
            state: match raw.as_str() {
                "completed" => SnapshotState::Available,
                "error" => SnapshotState::Failed,
                // `pending`, `unknown` and anything new: never Available.
                _ => SnapshotState::Creating,
            },
            progress: s
                .progress()
                .and_then(|p| p.trim().trim_end_matches('%').parse::<u8>().ok())
                .map(|p| p.min(100)),
            raw_state: raw,
            tags: tags_of(s.tags()),
            from_auto: s.is_from_auto_snapshot() == Some(true),
            bundle_id: None,
            size_in_gb: s.size_in_gb(),
        }
    }

    /// The slot of snapwarden's marker tags for `policy` and `target`;
    /// copies of automatic snapshots are never ours.
    fn marker_slot(&self, policy: &str, target: &str) -> Option<DateTime<Utc>> {
        if self.from_auto || policy.is_empty() || target.is_empty() {
            return None;
        }
        let tag = |key: &str| {
            self.tags
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if tag(TAG_POLICY) != Some(policy) || tag(TAG_TARGET) != Some(target) {
            return None;
        }
        tag(TAG_SLOT).and_then(parse_slot_label)
    }
}

fn tags_of(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| {
            t.key()
                .map(|k| (k.to_string(), t.value().unwrap_or_default().to_string()))
        })
        .collect()
}

/// The three marker tags for a create.
fn marker_tags(m: &Marker) -> Vec<Tag> {
    [
        (TAG_POLICY, m.policy.clone()),
        (TAG_TARGET, m.target.clone()),
        (TAG_SLOT, crate::domain::slot_label(m.slot)),
    ]
    .into_iter()
    .map(|(k, v)| Tag::builder().key(k).value(v).build())
    .collect()
}

fn to_chrono(t: &aws_sdk_lightsail::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Where one operation (or a comma-joined group) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OpState {
    Running,
    Succeeded,
    Failed(String),
}

/// `isTerminal` decides; success is `Succeeded` or `Completed`, `Failed`
/// is a failure (with `errorCode`/`errorDetails`), and a terminal status
/// we do not know is a failure too, never a success.
fn op_state(id: &str, op: &Operation) -> OpState {
    let status = op.status().map(|s| s.as_str()).unwrap_or("");
    let what = op
        .operation_type()
        .map(|t| format!(" ({} on {})", t.as_str(), op.resource_name().unwrap_or("?")))
        .unwrap_or_default();
    let failed = || {
        let code = op.error_code().filter(|c| !c.is_empty());
        let details = op.error_details().filter(|d| !d.is_empty());
        let mut reason = format!("operation {id}{what} failed");
        if let Some(c) = code {
            reason.push_str(&format!(": errorCode {c}"));
        }
        if let Some(d) = details {
            reason.push_str(&format!(": {d}"));
        }
        OpState::Failed(reason)
    };
    match (op.is_terminal(), status) {
        (_, "Failed") => failed(),
        (Some(true), "Succeeded" | "Completed") => OpState::Succeeded,
        (Some(true), other) => {
            OpState::Failed(format!("operation {id}{what} ended with status {other:?}"))
        }
        _ => OpState::Running,
    }
}

/// All operations of one reference: any failure fails it, any running one
/// keeps it pending, all succeeded (or none to follow) succeeds.
fn combined(operation: &str, states: &HashMap<String, OpState>) -> OpState {
    let mut reasons = Vec::new();
    let mut running = false;
    for id in split_ids(operation) {
        match states.get(&id) {
            Some(OpState::Failed(r)) => reasons.push(r.clone()),
            Some(OpState::Succeeded) => {}
            Some(OpState::Running) | None => running = true,
        }
    }
    if !reasons.is_empty() {
        OpState::Failed(reasons.join("; "))
    } else if running {
        OpState::Running
    } else {
        OpState::Succeeded
    }
}

/// After every operation succeeded: the snapshot's own state decides.
fn confirm(op: &OperationRef, found: Option<&Listed>) -> OpStatus {
    let id = &op.snapshot_id;
    match op.kind {
        OpKind::Create => match found {
            // Just created and not listed yet (eventual consistency): wait.
            None => OpStatus::Pending { progress: None },
            Some(s) => match s.state {
                SnapshotState::Available => OpStatus::Succeeded,
                SnapshotState::Failed => OpStatus::Failed {
                    reason: format!("snapshot {id} is in state {:?}", s.raw_state),
                },
                _ => OpStatus::Pending {
                    progress: s.progress,
                },
            },
        },
        OpKind::Delete => match found {
            None => OpStatus::Succeeded,
            Some(_) => OpStatus::Pending { progress: None },
        },
        OpKind::Restore => OpStatus::Succeeded,
    }
}

fn operation_ids(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .filter_map(|o| o.id())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

fn split_ids(operation: &str) -> Vec<String> {
    operation
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn unexpected(call: &str, detail: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Transient,
        call,
        format!("unexpected answer: {detail}"),
    )
}
