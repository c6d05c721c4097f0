//! QingCloud's world as the simulator keeps it: credentials, volumes,
//! instances, snapshots (with their chains) and jobs, and the API's
//! rules that act on them.
//!
//! Only creation facts are stored. Every status (job pending → working →
//! successful/failed, snapshot pending → available, deleting → deleted →
//! ceased) is derived from the clock when read, so nothing needs a timer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::errors::ApiError;

/// Account owner shown on every object.
pub(crate) const OWNER: &str = "usr-snapsim1";
/// Size of seeded volumes and instance disks, in GB.
const DEFAULT_DISK_GB: u64 = 20;
/// Size reported for an incremental point, in MB.
const INCREMENTAL_SIZE_MB: u64 = 512;
/// A deleted snapshot can be recovered for two hours, then it is ceased.
const DELETED_RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceKind {
    Volume,
    Instance,
}

impl ResourceKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Volume => "volume",
            ResourceKind::Instance => "instance",
        }
    }
}

/// A volume or an instance that can be snapshotted.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub kind: ResourceKind,
    pub size_gb: u64,
    pub create_time: DateTime<Utc>,
    /// Tags as key → value; a key-less QingCloud tag is `name → ""`.
    pub tags: BTreeMap<String, String>,
    /// The newest point taken; the effective head is its nearest ancestor
    /// still alive (see [`QingState::effective_head`]).
    pub head: Option<String>,
    /// The CreateVolumeFromSnapshot job that makes this volume; `None` for
    /// a seeded resource (there from the start).
    pub create_job: Option<String>,
}

/// A volume's or instance's state at one instant, derived from its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceView {
    /// `pending` while its creating job runs, then `available` (a volume)
    /// or `running` (an instance); `ceased` when the job failed.
    pub status: &'static str,
    /// `creating` while pending, else empty.
    pub transition: &'static str,
    pub status_time: DateTime<Utc>,
}

pub(crate) use crate::sim::faults::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Pending,
    Working,
    Successful,
    Failed,
}

impl JobStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Working => "working",
            JobStatus::Successful => "successful",
            JobStatus::Failed => "failed",
        }
    }
}

/// The job statuses DescribeJobs accepts as a filter.
pub(crate) const JOB_STATUSES: &[&str] = &[
    "pending",
    "working",
    "successful",
    "failed",
    "done with failure",
];

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: String,
    pub seq: u64,
    pub zone: String,
    pub action: &'static str,
    pub resource_ids: Vec<String>,
    pub create_time: DateTime<Utc>,
    pending_until: DateTime<Utc>,
    finish_at: DateTime<Utc>,
    outcome: Outcome,
}

impl Job {
    pub(crate) fn status(&self, now: DateTime<Utc>) -> JobStatus {
        if now < self.pending_until {
            return JobStatus::Pending;
        }
        match self.outcome {
            Outcome::Never => JobStatus::Working,
            _ if now < self.finish_at => JobStatus::Working,
            Outcome::Succeed => JobStatus::Successful,
            Outcome::Fail => JobStatus::Failed,
        }
    }

    pub(crate) fn status_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.status(now) {
            JobStatus::Pending => self.create_time,
            JobStatus::Working => self.pending_until,
            JobStatus::Successful | JobStatus::Failed => self.finish_at,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub id: String,
    pub seq: u64,
    pub zone: String,
    pub name: String,
    pub resource_id: String,
    pub full: bool,
    pub root_id: String,
    /// `None` for a full snapshot (shown as `"self"`).
    pub parent_id: Option<String>,
    pub size_mb: u64,
    /// Set by ModifySnapshotAttributes; `None` is shown as `null`.
    pub description: Option<String>,
    pub create_time: DateTime<Utc>,
    /// `None` for a snapshot seeded as already available (manual).
    pub create_job: Option<String>,
    pub delete_job: Option<String>,
    /// When the capture finishes (`is_taken` = 1), before it is available.
    taken_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapStatus {
    Pending,
    Available,
    Deleted,
    Ceased,
}

impl SnapStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SnapStatus::Pending => "pending",
            SnapStatus::Available => "available",
            SnapStatus::Deleted => "deleted",
            SnapStatus::Ceased => "ceased",
        }
    }

    fn is_alive(self) -> bool {
        matches!(self, SnapStatus::Pending | SnapStatus::Available)
    }
}

/// A snapshot's state at one instant, derived from its jobs.
#[derive(Debug, Clone)]
pub(crate) struct SnapView {
    pub status: SnapStatus,
    /// `creating`, `deleting` or empty.
    pub transition: &'static str,
    pub is_taken: bool,
    pub status_time: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// `start + duration`, saturating: an absurd `job_duration_ms` from the
/// control API means "never", not a panic.
fn after(start: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Default)]
pub(crate) struct QingState {
    credentials: HashMap<String, String>,
    pub(crate) resources: BTreeMap<String, Resource>,
    pub(crate) snapshots: HashMap<String, Snapshot>,
    pub(crate) jobs: HashMap<String, Job>,
    next_seq: u64,
    /// Snapshot ids per `resource_id` and per `root_id` (chain), in the order
    /// they were made. Snapshots are never removed (ceased ones stay), so
    /// these only grow with [`QingState::insert_snapshot`]; they let a
    /// request cost what its answer costs, not what the whole account holds.
    by_resource: HashMap<String, Vec<String>>,
    by_root: HashMap<String, Vec<String>>,
    /// Tags made by CreateTag, by id.
    pub(crate) tags: HashMap<String, super::tags::Tag>,
}

/// One new async job's parameters.
pub(crate) struct JobPlan {
    pub duration: Duration,
    pub outcome: Outcome,
}

impl QingState {
    pub(crate) fn add_credentials(&mut self, access_key_id: &str, secret: &str) {
        self.credentials
            .insert(access_key_id.to_string(), secret.to_string());
    }

    pub(crate) fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.credentials.get(access_key_id).map(String::as_str)
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Replace the tags of a resource; false if there is no such resource.
    pub(crate) fn set_tags(&mut self, id: &str, tags: BTreeMap<String, String>) -> bool {
        match self.resources.get_mut(id) {
            Some(r) => {
                r.tags = tags;
                true
            }
            None => false,
        }
    }

    pub(crate) fn seed_resource(&mut self, zone: &str, id: &str, name: &str, kind: ResourceKind) {
        let now = Utc::now();
        let old = self.resources.get(id);
        let head = old.and_then(|r| r.head.clone());
        // Seeding an existing resource again renames it, nothing more.
        let (tags, create_time) =
            old.map_or((BTreeMap::new(), now), |r| (r.tags.clone(), r.create_time));
        let size_gb = old.map_or(DEFAULT_DISK_GB, |r| r.size_gb);
        self.resources.insert(
            id.to_string(),
            Resource {
                id: id.to_string(),
                zone: zone.to_string(),
                name: name.to_string(),
                kind,
                size_gb,
                create_time,
                tags,
                head,
                create_job: old.and_then(|r| r.create_job.clone()),
            },
        );
    }

    /// How `r` stands at `now`: a restored volume is `pending`/`creating`
    /// while its job runs (as the CLI transcript of a restore shows), then
    /// `available`; a failed job leaves it `ceased`.
    pub(crate) fn resource_view(&self, r: &Resource, now: DateTime<Utc>) -> ResourceView {
        let ready = match r.kind {
            ResourceKind::Volume => "available",
            ResourceKind::Instance => "running",
        };
        match self.job_status(r.create_job.as_ref(), now) {
            None => ResourceView {
                status: ready,
                transition: "",
                status_time: r.create_time,
            },
            Some((JobStatus::Pending | JobStatus::Working, _)) => ResourceView {
                status: "pending",
                transition: "creating",
                status_time: r.create_time,
            },
            Some((JobStatus::Successful, job)) => ResourceView {
                status: ready,
                transition: "",
                status_time: job.finish_at,
            },
            Some((JobStatus::Failed, job)) => ResourceView {
                status: "ceased",
                transition: "",
                status_time: job.finish_at,
            },
        }
    }

    /// A manual snapshot, full and available at once. It becomes the
    /// resource's head unless a newer point exists.
    pub(crate) fn seed_snapshot(
        &mut self,
        zone: &str,
        resource_id: &str,
        name: &str,
        create_time: DateTime<Utc>,
    ) -> String {
        if !self.resources.contains_key(resource_id) {
            let kind = if resource_id.starts_with("i-") {
                ResourceKind::Instance
            } else {
                ResourceKind::Volume
            };
            self.seed_resource(zone, resource_id, "", kind);
        }
        let id = self.new_snapshot_id();
        let seq = self.next_seq();
        let size_mb = self
            .resources
            .get(resource_id)
            .map_or(DEFAULT_DISK_GB, |r| r.size_gb)
            * 1024;
        self.insert_snapshot(Snapshot {
            id: id.clone(),
            seq,
            zone: zone.to_string(),
            name: name.to_string(),
            resource_id: resource_id.to_string(),
            full: true,
            root_id: id.clone(),
            parent_id: None,
            size_mb,
            description: None,
            create_time,
            create_job: None,
            delete_job: None,
            taken_at: create_time,
        });
        let now = Utc::now();
        let newer_head = self
            .effective_head(resource_id, now)
            .is_some_and(|h| h.create_time > create_time);
        if !newer_head {
            if let Some(r) = self.resources.get_mut(resource_id) {
                r.head = Some(id.clone());
            }
        }
        id
    }

    /// The one way a snapshot enters the state: the map and its indexes.
    fn insert_snapshot(&mut self, snap: Snapshot) {
        self.by_resource
            .entry(snap.resource_id.clone())
            .or_default()
            .push(snap.id.clone());
        self.by_root
            .entry(snap.root_id.clone())
            .or_default()
            .push(snap.id.clone());
        self.snapshots.insert(snap.id.clone(), snap);
    }

    /// Every snapshot (any status) of `resource_id`, in no particular order.
    pub(crate) fn snapshots_of_resource<'a>(
        &'a self,
        resource_id: &str,
    ) -> impl Iterator<Item = &'a Snapshot> + 'a {
        self.by_resource
            .get(resource_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.snapshots.get(id))
    }

    /// Every snapshot (any status) of the chain rooted at `root_id`.
    fn snapshots_of_chain<'a>(&'a self, root_id: &str) -> impl Iterator<Item = &'a Snapshot> + 'a {
        self.by_root
            .get(root_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.snapshots.get(id))
    }

    fn new_snapshot_id(&self) -> String {
        loop {
            let id = crate::sim::random_id("ss-", 8);
            if !self.snapshots.contains_key(&id) {
                return id;
            }
        }
    }

    fn new_job(
        &mut self,
        zone: &str,
        action: &'static str,
        resource_ids: Vec<String>,
        plan: &JobPlan,
        now: DateTime<Utc>,
    ) -> String {
        let id = loop {
            let len = rand::Rng::random_range(&mut rand::rng(), 8..=12);
            let id = crate::sim::random_id("j-", len);
            if !self.jobs.contains_key(&id) {
                break id;
            }
        };
        let seq = self.next_seq();
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                seq,
                zone: zone.to_string(),
                action,
                resource_ids,
                create_time: now,
                pending_until: after(now, plan.duration / 4),
                finish_at: after(now, plan.duration),
                outcome: plan.outcome,
            },
        );
        id
    }

    fn job_status(&self, id: Option<&String>, now: DateTime<Utc>) -> Option<(JobStatus, &Job)> {
        let job = self.jobs.get(id?)?;
        Some((job.status(now), job))
    }

    pub(crate) fn view(&self, snap: &Snapshot, now: DateTime<Utc>) -> SnapView {
        let mut available_since = snap.create_time;
        if let Some((status, job)) = self.job_status(snap.create_job.as_ref(), now) {
            match status {
                JobStatus::Pending | JobStatus::Working => {
                    return SnapView {
                        status: SnapStatus::Pending,
                        transition: "creating",
                        is_taken: now >= snap.taken_at,
                        status_time: snap.create_time,
                        deleted_at: None,
                    }
                }
                JobStatus::Failed => {
                    return SnapView {
                        status: SnapStatus::Ceased,
                        transition: "",
                        is_taken: false,
                        status_time: job.finish_at,
                        deleted_at: None,
                    }
                }
                JobStatus::Successful => available_since = job.finish_at,
            }
        }
        let available = SnapView {
            status: SnapStatus::Available,
            transition: "",
            is_taken: true,
            status_time: available_since,
            deleted_at: None,
        };
        match self.job_status(snap.delete_job.as_ref(), now) {
            None | Some((JobStatus::Failed, _)) => available,
            Some((JobStatus::Pending | JobStatus::Working, job)) => SnapView {
                transition: "deleting",
                status_time: job.create_time,
                ..available
            },
            Some((JobStatus::Successful, job)) => {
                let ceased = job
                    .finish_at
                    .checked_add_signed(DELETED_RETENTION)
                    .is_some_and(|t| now >= t);
                SnapView {
                    status: if ceased {
                        SnapStatus::Ceased
                    } else {
                        SnapStatus::Deleted
                    },
                    transition: "",
                    is_taken: true,
                    status_time: job.finish_at,
                    deleted_at: Some(job.finish_at),
                }
            }
        }
    }

    /// The resource's current point: its newest snapshot, or, when that one
    /// failed or was deleted, the nearest ancestor still pending/available.
    pub(crate) fn effective_head(
        &self,
        resource_id: &str,
        now: DateTime<Utc>,
    ) -> Option<&Snapshot> {
        let mut cursor = self.resources.get(resource_id)?.head.clone();
        while let Some(id) = cursor {
            let snap = self.snapshots.get(&id)?;
            if self.view(snap, now).status.is_alive() {
                return Some(snap);
            }
            cursor = snap.parent_id.clone();
        }
        None
    }

    /// CreateSnapshots: one job for all resources; returns the job id and the
    /// new snapshot ids in resource order.
    pub(crate) fn create_snapshots(
        &mut self,
        zone: &str,
        resources: &[String],
        name: &str,
        is_full: bool,
        now: DateTime<Utc>,
        plan: impl FnOnce() -> JobPlan,
    ) -> Result<(String, Vec<String>), ApiError> {
        let mut seen = HashSet::new();
        for rid in resources {
            let in_zone = self.resources.get(rid).is_some_and(|r| r.zone == zone);
            if !in_zone {
                return Err(ApiError::not_found(rid));
            }
            let busy = !seen.insert(rid.as_str())
                || self
                    .snapshots_of_resource(rid)
                    .any(|s| self.view(s, now).status == SnapStatus::Pending);
            if busy {
                return Err(ApiError::busy(rid, "creating"));
            }
        }
        let plan = plan();
        let mut new_ids = Vec::with_capacity(resources.len());
        let mut job_resources = Vec::with_capacity(resources.len() * 2);
        let mut drafts = Vec::with_capacity(resources.len());
        for rid in resources {
            let id = loop {
                let id = self.new_snapshot_id();
                if !new_ids.contains(&id) {
                    break id;
                }
            };
            let parent = if is_full {
                None
            } else {
                self.effective_head(rid, now)
                    .filter(|h| {
                        let v = self.view(h, now);
                        v.status == SnapStatus::Available && v.transition.is_empty()
                    })
                    .map(|h| (h.id.clone(), h.root_id.clone()))
            };
            let disk_mb = self
                .resources
                .get(rid)
                .map_or(DEFAULT_DISK_GB, |r| r.size_gb)
                * 1024;
            drafts.push((id.clone(), rid.clone(), parent, disk_mb));
            job_resources.push(rid.clone());
            job_resources.push(id.clone());
            new_ids.push(id);
        }
        let job_id = self.new_job(zone, "CreateSnapshots", job_resources, &plan, now);
        for (id, rid, parent, disk_mb) in drafts {
            let seq = self.next_seq();
            let (full, root_id, parent_id, size_mb) = match parent {
                Some((parent_id, root_id)) => {
                    (false, root_id, Some(parent_id), INCREMENTAL_SIZE_MB)
                }
                None => (true, id.clone(), None, disk_mb),
            };
            self.insert_snapshot(Snapshot {
                id: id.clone(),
                seq,
                zone: zone.to_string(),
                name: name.to_string(),
                resource_id: rid.clone(),
                full,
                root_id,
                parent_id,
                size_mb,
                description: None,
                create_time: now,
                create_job: Some(job_id.clone()),
                delete_job: None,
                taken_at: after(now, plan.duration / 2),
            });
            if let Some(r) = self.resources.get_mut(&rid) {
                r.head = Some(id);
            }
        }
        Ok((job_id, new_ids))
    }

    /// CreateVolumeFromSnapshot: a new volume (same zone) from an available
    /// snapshot, under one job. Returns (job id, new volume id).
    pub(crate) fn create_volume_from_snapshot(
        &mut self,
        zone: &str,
        snapshot_id: &str,
        volume_name: &str,
        now: DateTime<Utc>,
        plan: impl FnOnce() -> JobPlan,
    ) -> Result<(String, String), ApiError> {
        let snap = self.snapshot_in(zone, snapshot_id)?;
        let view = self.view(snap, now);
        match view.status {
            SnapStatus::Available if view.transition.is_empty() => {}
            SnapStatus::Deleted | SnapStatus::Ceased => {
                return Err(ApiError::not_found(snapshot_id))
            }
            // Still being made or being deleted: the documented refusal,
            // which (unlike "please try later") is not worth repeating as is.
            _ => return Err(ApiError::snapshot_not_available(snapshot_id)),
        }
        // The new volume is as large as the snapshot's source.
        let size_gb = self
            .resources
            .get(&snap.resource_id)
            .map_or(DEFAULT_DISK_GB, |r| r.size_gb);
        let volume_id = loop {
            let id = crate::sim::random_id("vol-", 8);
            if !self.resources.contains_key(&id) {
                break id;
            }
        };
        let plan = plan();
        let job = self.new_job(
            zone,
            "CreateVolumeFromSnapshot",
            vec![volume_id.clone()],
            &plan,
            now,
        );
        self.resources.insert(
            volume_id.clone(),
            Resource {
                id: volume_id.clone(),
                zone: zone.to_string(),
                name: volume_name.to_string(),
                kind: ResourceKind::Volume,
                size_gb,
                create_time: now,
                tags: BTreeMap::new(),
                head: None,
                create_job: Some(job.clone()),
            },
        );
        Ok((job, volume_id))
    }

    /// ApplySnapshots: rolls each snapshot's resource back to it, under one
    /// job. Each snapshot must be available (not being made or deleted),
    /// one per resource. The applied point becomes the resource's head, so
    /// its next incremental snapshot continues from there.
    pub(crate) fn apply_snapshots(
        &mut self,
        zone: &str,
        ids: &[String],
        now: DateTime<Utc>,
        plan: impl FnOnce() -> JobPlan,
    ) -> Result<String, ApiError> {
        let mut targets: Vec<(String, String)> = Vec::with_capacity(ids.len());
        for id in ids {
            let snap = self.snapshot_in(zone, id)?;
            let view = self.view(snap, now);
            match view.status {
                SnapStatus::Deleted | SnapStatus::Ceased => return Err(ApiError::not_found(id)),
                SnapStatus::Pending => return Err(ApiError::busy(id, "creating")),
                SnapStatus::Available if !view.transition.is_empty() => {
                    return Err(ApiError::busy(id, view.transition))
                }
                SnapStatus::Available => {}
            }
            if targets.iter().any(|(_, rid)| *rid == snap.resource_id) {
                return Err(ApiError::invalid("snapshots", id));
            }
            let rid = snap.resource_id.clone();
            if self
                .snapshots_of_resource(&rid)
                .any(|s| self.view(s, now).status == SnapStatus::Pending)
            {
                return Err(ApiError::busy(&rid, "creating"));
            }
            targets.push((id.clone(), rid));
        }
        let plan = plan();
        let resource_ids = targets
            .iter()
            .flat_map(|(id, rid)| [id.clone(), rid.clone()])
            .collect();
        let job = self.new_job(zone, "ApplySnapshots", resource_ids, &plan, now);
        for (id, rid) in targets {
            if let Some(r) = self.resources.get_mut(&rid) {
                r.head = Some(id);
            }
        }
        Ok(job)
    }

    /// The snapshot `id` in `zone`, or ResourceNotFound.
    fn snapshot_in(&self, zone: &str, id: &str) -> Result<&Snapshot, ApiError> {
        self.snapshots
            .get(id)
            .filter(|s| s.zone == zone)
            .ok_or_else(|| ApiError::not_found(id))
    }

    /// ModifySnapshotAttributes: a new name and/or description for one
    /// snapshot, synchronous (no job). A parameter left out keeps its
    /// value; an empty description clears it (shown as `null` again;
    /// UNCONFIRMED on the real cloud, which documents no clearing). A
    /// deleted snapshot is ResourceNotFound, as for DeleteSnapshots.
    pub(crate) fn modify_snapshot(
        &mut self,
        zone: &str,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let snap = self.snapshot_in(zone, id)?;
        if matches!(
            self.view(snap, now).status,
            SnapStatus::Deleted | SnapStatus::Ceased
        ) {
            return Err(ApiError::not_found(id));
        }
        if let Some(s) = self.snapshots.get_mut(id) {
            if let Some(name) = name {
                s.name = name.to_string();
            }
            if let Some(d) = description {
                s.description = Some(d.to_string()).filter(|d| !d.is_empty());
            }
        }
        Ok(())
    }

    /// DeleteSnapshots: each named snapshot and all its descendants (a full
    /// snapshot's whole chain) go to `deleting` under one job.
    pub(crate) fn delete_snapshots(
        &mut self,
        zone: &str,
        ids: &[String],
        now: DateTime<Utc>,
        plan: impl FnOnce() -> JobPlan,
    ) -> Result<String, ApiError> {
        for id in ids {
            let snap = self.snapshot_in(zone, id)?;
            let view = self.view(snap, now);
            match view.status {
                SnapStatus::Deleted | SnapStatus::Ceased => return Err(ApiError::not_found(id)),
                SnapStatus::Pending => return Err(ApiError::busy(id, "creating")),
                SnapStatus::Available if !view.transition.is_empty() => {
                    return Err(ApiError::busy(id, view.transition))
                }
                SnapStatus::Available => {}
            }
        }
        let mut doomed: Vec<String> = Vec::new();
        let mut frontier: Vec<String> = ids.to_vec();
        while let Some(id) = frontier.pop() {
            if doomed.contains(&id) {
                continue;
            }
            // A child shares its parent's chain (root), so only that chain
            // is searched.
            let root = self.snapshots.get(&id).map(|s| s.root_id.clone());
            frontier.extend(
                root.iter()
                    .flat_map(|r| self.snapshots_of_chain(r))
                    .filter(|s| s.parent_id.as_deref() == Some(id.as_str()))
                    .map(|s| s.id.clone()),
            );
            doomed.push(id);
        }
        // Descendants already gone or already being deleted are left alone;
        // one still being created blocks the whole request, as a chain
        // cannot lose a point that is still capturing.
        let mut affected = Vec::new();
        for id in doomed {
            let Some(snap) = self.snapshots.get(&id) else {
                continue;
            };
            let view = self.view(snap, now);
            match view.status {
                SnapStatus::Pending => return Err(ApiError::busy(&id, "creating")),
                SnapStatus::Available if view.transition.is_empty() => affected.push(id),
                _ => {}
            }
        }
        let plan = plan();
        let job_id = self.new_job(zone, "DeleteSnapshots", ids.to_vec(), &plan, now);
        for id in affected {
            if let Some(s) = self.snapshots.get_mut(&id) {
                s.delete_job = Some(job_id.clone());
            }
        }
        Ok(job_id)
    }

    /// Snapshots in `zone`, newest first.
    pub(crate) fn snapshots_newest_first(&self, zone: Option<&str>) -> Vec<&Snapshot> {
        newest_first(self.snapshots.values(), zone)
    }

    /// The smallest set of snapshots a DescribeSnapshots filter can match,
    /// newest first: the named ids, else the resource's snapshots, else all
    /// in `zone`. The caller still applies every filter; this only narrows
    /// where it looks (the answer is the same, its cost is not).
    pub(crate) fn snapshot_candidates(
        &self,
        zone: &str,
        ids: &[String],
        resource_id: Option<&str>,
    ) -> Vec<&Snapshot> {
        if !ids.is_empty() {
            named_newest_first(&self.snapshots, ids, zone)
        } else if let Some(rid) = resource_id {
            newest_first(self.snapshots_of_resource(rid), Some(zone))
        } else {
            self.snapshots_newest_first(Some(zone))
        }
    }

    /// Jobs in `zone`, newest first.
    pub(crate) fn jobs_newest_first(&self, zone: Option<&str>) -> Vec<&Job> {
        newest_first(self.jobs.values(), zone)
    }

    /// The jobs named in `ids` (each once; unknown ones left out) in `zone`,
    /// newest first: what DescribeJobs with `jobs.N` looks at.
    pub(crate) fn jobs_by_id(&self, zone: &str, ids: &[String]) -> Vec<&Job> {
        named_newest_first(&self.jobs, ids, zone)
    }

    /// Alive members of the chain rooted at `root_id`.
    pub(crate) fn chain_members(&self, root_id: &str, now: DateTime<Utc>) -> Vec<&Snapshot> {
        self.snapshots_of_chain(root_id)
            .filter(|s| self.view(s, now).status.is_alive())
            .collect()
    }
}

/// What snapshots and jobs share for listing: a zone, a creation time and a
/// sequence number that breaks ties.
pub(crate) trait Listed {
    fn zone(&self) -> &str;
    fn order_key(&self) -> (DateTime<Utc>, u64);
}

impl Listed for Snapshot {
    fn zone(&self) -> &str {
        &self.zone
    }
    fn order_key(&self) -> (DateTime<Utc>, u64) {
        (self.create_time, self.seq)
    }
}

impl Listed for Job {
    fn zone(&self) -> &str {
        &self.zone
    }
    fn order_key(&self) -> (DateTime<Utc>, u64) {
        (self.create_time, self.seq)
    }
}

/// The items of `map` named in `ids` (each once; unknown ones left out)
/// in `zone`, newest first.
fn named_newest_first<'a, T: Listed>(
    map: &'a HashMap<String, T>,
    ids: &[String],
    zone: &str,
) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    let named = ids
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .filter_map(|id| map.get(id));
    newest_first(named, Some(zone))
}

/// Those in `zone` (all when None), newest first (create time, then
/// sequence, both descending).
fn newest_first<'a, T: Listed>(
    items: impl Iterator<Item = &'a T>,
    zone: Option<&str>,
) -> Vec<&'a T> {
    let mut list: Vec<&T> = items
        .filter(|x| zone.is_none_or(|z| x.zone() == z))
        .collect();
    list.sort_by_key(|x| std::cmp::Reverse(x.order_key()));
    list
}
