//! QingCloud IaaS provider: snapshots of volumes and instances through
//! CreateSnapshots / DescribeJobs / DescribeSnapshots / DeleteSnapshots.
//!
//! Owns the QingCloud dialect: signing (`sign`), wire shapes (`wire`),
//! error codes (`errors`), one signed call (`client`), and here the
//! mapping of jobs and snapshot states onto the engine's words. It never
//! retries or sleeps (the engine owns the retry policy) and never decides
//! what to keep or delete.
//!
//! QingCloud has no description on create, so the provider-side marker is
//! the deterministic name `{policy}-{target}-{slot}`.

mod client;
mod errors;
mod select;
mod sign;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use self::client::{Client, QingCloudApi as Api};
use self::wire::{
    CreateSnapshotsResponse, DeleteSnapshotsResponse, DescribeJobsResponse,
    DescribeSnapshotsResponse, ModifySnapshotAttributesResponse, Snapshot,
};
use super::http::ApiClient;
use super::query_api::paging::{self, Page, Paging};
use super::query_api::{unique, Dialect};
use super::{
    cloud_identity, require_resource, require_snapshot_id, require_target_and_name, ChainInfo,
    CreateRequest, Created, DeleteStarted, ErrorKind, Marker, OpKind, OpStatus, OperationRef,
    Provider, ProviderError, RemoteSnapshot, RestoreRequest, RestoreStarted, SnapshotState,
};
use crate::config::QingCloudSettings;
use crate::domain::{Cloud, ResourceKind};

/// Ids per DescribeJobs / DescribeSnapshots call, and the page size of a
/// listing: the API returns at most 100 items per call, the status batch
/// QingCloud's capabilities declare.
const BATCH: usize = Cloud::QingCloud.capabilities().max_status_batch;

const CREATE: &str = "CreateSnapshots";
const DELETE: &str = "DeleteSnapshots";
const RESTORE: &str = "CreateVolumeFromSnapshot";
const DESCRIBE_JOBS: &str = "DescribeJobs";
const DESCRIBE_SNAPSHOTS: &str = "DescribeSnapshots";
const MODIFY: &str = "ModifySnapshotAttributes";

/// The hold note's cap in a snapshot's `description`. The API reference
/// gives no limit for it (UNCONFIRMED); 255 is a cap every console field
/// of this kind takes, and hold notes are far shorter.
const HOLD_NOTE_MAX: usize = 255;

/// A QingCloud account in one zone.
pub struct QingCloud {
    client: Client,
}

impl QingCloud {
    pub fn new(settings: &QingCloudSettings, api: ApiClient) -> QingCloud {
        QingCloud {
            client: Client::new(settings, api),
        }
    }

    /// Where each job stands, for every id asked (≤ 100 per call; see
    /// [`by_batch_or_one_by_one`] for a batch that fails with 2100).
    async fn describe_jobs(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, JobState>, ProviderError> {
        let call = |ids| self.jobs_call(ids);
        by_batch_or_one_by_one(ids, call, record_jobs, |id, e, out| {
            out.insert(
                id.clone(),
                JobState::Unknown(format!(
                    "job {id} is unknown to DescribeJobs: {}",
                    e.message
                )),
            );
        })
        .await
    }

    async fn jobs_call(&self, ids: Vec<String>) -> Result<Vec<wire::Job>, ProviderError> {
        let mut params = Api::list_param("jobs", &ids);
        params.push(("limit".into(), BATCH.to_string()));
        let r: DescribeJobsResponse = self.client.call(DESCRIBE_JOBS, params).await?;
        check_whole(DESCRIBE_JOBS, r.job_set.len(), r.total_count)?;
        Ok(r.job_set)
    }

    /// The snapshots among `ids` that exist (any status), ≤ 100 per call;
    /// an id missing from the answer does not exist. 2100 on a batch falls
    /// back to one call per id, like [`Self::describe_jobs`].
    async fn describe_snapshots_by_id(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Snapshot>, ProviderError> {
        let call = |ids| self.snapshots_call(ids);
        let record = |_: &[String], set, out: &mut _| record_snapshots(set, out);
        by_batch_or_one_by_one(ids, call, record, |_, _, _| {}).await
    }

    async fn snapshots_call(&self, ids: Vec<String>) -> Result<Vec<Snapshot>, ProviderError> {
        let mut params = Api::list_param("snapshots", &ids);
        params.push(("verbose".into(), "0".into()));
        params.push(("limit".into(), BATCH.to_string()));
        let r: DescribeSnapshotsResponse = self.client.call(DESCRIBE_SNAPSHOTS, params).await?;
        // A cut answer would make a missing snapshot look deleted.
        check_whole(DESCRIBE_SNAPSHOTS, r.snapshot_set.len(), r.total_count)?;
        Ok(r.snapshot_set)
    }
}

#[async_trait]
impl Provider for QingCloud {
    cloud_identity!(Cloud::QingCloud);

    /// One CreateSnapshots call.
    async fn create(&self, req: &CreateRequest) -> Result<Vec<Created>, ProviderError> {
        require_resource(Cloud::QingCloud, CREATE, req.resource)?;
        require_target_and_name(CREATE, req)?;
        let params = vec![
            ("resources.1".to_string(), req.target.clone()),
            ("snapshot_name".to_string(), req.name.clone()),
            (
                "is_full".to_string(),
                if req.full { "1" } else { "0" }.to_string(),
            ),
        ];
        let r: CreateSnapshotsResponse = self.client.call(CREATE, params).await?;
        created_from_response(r)
    }

    /// One DescribeJobs per 100 distinct jobs, then one DescribeSnapshots
    /// per 100 snapshots whose jobs succeeded (plus one call per id in a
    /// batch that 2100 poisoned). No calls for an empty input.
    async fn poll(&self, ops: &[OperationRef]) -> Result<Vec<OpStatus>, ProviderError> {
        let job_ids = unique(
            ops.iter()
                .map(|op| op.operation.trim())
                .filter(|j| !j.is_empty()),
        );
        let jobs = self.describe_jobs(&job_ids).await?;

        // Confirm on the resource only what the job says is done. An op
        // without a job id (never produced by `create`/`delete`) goes
        // straight to the resource check.
        let to_confirm = unique(
            ops.iter()
                .filter(|op| op.kind != OpKind::Restore)
                .filter(|op| match job_of(op, &jobs) {
                    None => true,
                    Some(state) => matches!(state, JobState::Successful | JobState::Unknown(_)),
                })
                .map(|op| op.snapshot_id.trim())
                .filter(|s| !s.is_empty()),
        );
        let snapshots = self.describe_snapshots_by_id(&to_confirm).await?;

        Ok(ops
            .iter()
            .map(|op| op_status(op, job_of(op, &jobs), &snapshots))
            .collect())
    }

    /// DescribeSnapshots pages of 100, each later page from the last item
    /// of the one before (1 call when empty or up to 100; see `paging`).
    async fn list(
        &self,
        _resource: ResourceKind,
        target: &str,
        policy: &str,
    ) -> Result<Vec<RemoteSnapshot>, ProviderError> {
        let mut out = Vec::new();
        let paging = Paging::of::<Api>(DESCRIBE_SNAPSHOTS, "snapshots");
        let fetch = |offset: u64| async move {
            let params = vec![
                ("resource_id".to_string(), target.to_string()),
                ("verbose".to_string(), "0".to_string()),
                ("limit".to_string(), BATCH.to_string()),
                ("offset".to_string(), offset.to_string()),
            ];
            let page: DescribeSnapshotsResponse =
                self.client.call(DESCRIBE_SNAPSHOTS, params).await?;
            Ok(Page {
                total: page.total_count,
                items: Ok(page.snapshot_set),
            })
        };
        paging::read_all(
            &paging,
            fetch,
            |s: &Snapshot| Ok(s.snapshot_id.clone()),
            |_, s| out.push(remote_snapshot(&s, policy, target)),
        )
        .await?;
        super::chains::protect_unknown_chains(&mut out);
        Ok(out)
    }

    /// One DeleteSnapshots call.
    async fn delete(&self, snapshot_id: &str) -> Result<DeleteStarted, ProviderError> {
        require_snapshot_id(DELETE, snapshot_id)?;
        let params = vec![("snapshots.1".to_string(), snapshot_id.to_string())];
        match self
            .client
            .call::<DeleteSnapshotsResponse>(DELETE, params)
            .await
        {
            Ok(r) => match r
                .job_id
                .map(wire::JobIds::into_vec)
                .unwrap_or_default()
                .into_iter()
                .next()
            {
                Some(job) => Ok(DeleteStarted::Tracking(job)),
                None => Err(errors::unexpected(DELETE, "ret_code 0 but no job_id")),
            },
            Err(e) if is_not_found(&e) => Ok(DeleteStarted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// One CreateVolumeFromSnapshot call: a new volume, followed by its job.
    async fn restore(&self, req: &RestoreRequest) -> Result<RestoreStarted, ProviderError> {
        if req.resource != ResourceKind::Volume {
            return Err(ProviderError::new(
                ErrorKind::Permanent,
                RESTORE,
                "qingcloud restores volume snapshots only (CreateVolumeFromSnapshot)",
            ));
        }
        let name = req
            .new_name
            .clone()
            .unwrap_or_else(|| format!("{}-restored", req.target));
        let params = vec![
            ("snapshot".to_string(), req.snapshot_id.clone()),
            ("volume_name".to_string(), name),
        ];
        let r: wire::CreateVolumeFromSnapshotResponse = self.client.call(RESTORE, params).await?;
        let job = r
            .job_id
            .map(wire::JobIds::into_vec)
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| errors::unexpected(RESTORE, "ret_code 0 but no job_id"))?;
        Ok(RestoreStarted {
            resource_id: r.volume_id,
            operation: job,
        })
    }

    /// DescribeVolumes / DescribeInstances pages of 100, tags included.
    async fn list_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<super::Resource>, ProviderError> {
        self.select_resources(resource).await
    }

    /// DescribeSnapshots for the current description, then one
    /// ModifySnapshotAttributes call (synchronous: no job) with only
    /// `snapshot` and `description`, so the name stays as it is.
    /// snapwarden writes no description otherwise (its marker is the
    /// name); an operator's text there is kept first, the hold mark after
    /// it (see [`super::with_hold`]). Clearing a description that was the
    /// mark alone sends an empty one: the reference names no other way to
    /// clear it, and whether the cloud then shows empty or null is
    /// UNCONFIRMED. A snapshot DescribeSnapshots does not list still gets
    /// the call, so that an unknown one is the cloud's own 2100.
    async fn mark_hold(
        &self,
        snapshot_id: &str,
        _name: &str,
        note: Option<&str>,
    ) -> Result<(), ProviderError> {
        require_snapshot_id(MODIFY, snapshot_id)?;
        let listed = self.snapshots_call(vec![snapshot_id.to_string()]).await?;
        let current = listed
            .iter()
            .find(|s| s.snapshot_id == snapshot_id)
            .and_then(|s| s.description.as_deref())
            .unwrap_or("");
        let description = super::held_field(
            Cloud::QingCloud,
            MODIFY,
            ("description", snapshot_id),
            current,
            note,
            HOLD_NOTE_MAX,
        )?;
        let params = vec![
            ("snapshot".to_string(), snapshot_id.to_string()),
            ("description".to_string(), description),
        ];
        let _: ModifySnapshotAttributesResponse = self.client.call(MODIFY, params).await?;
        Ok(())
    }
}

/// Where a job stands, in this module's words.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JobState {
    Running,
    Successful,
    Failed(String),
    /// DescribeJobs does not know the job (jobs expire, e.g. while the
    /// daemon was down): the snapshot itself says how it ended.
    Unknown(String),
}

/// `pending`/`working` run, `successful` succeeded; every other value
/// (`failed`, `done with failure`, anything new) is a failure, never a
/// success.
fn job_state(job_id: &str, action: Option<&str>, status: Option<&str>) -> JobState {
    let raw = status.unwrap_or("").trim();
    match raw.to_ascii_lowercase().as_str() {
        "pending" | "working" => JobState::Running,
        "successful" => JobState::Successful,
        _ => {
            let action = action
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            JobState::Failed(format!("job {job_id}{action} ended with status {raw:?}"))
        }
    }
}

/// Asks `call` for `ids`, ≤ 100 per call, each answer going to `record`
/// (into what is returned) with the ids it was asked for. A batch that fails with 2100 (one
/// unknown id poisons the whole call) is asked again one id at a time so
/// the known ones still get an answer; an id unknown on its own goes to
/// `unknown`.
async fn by_batch_or_one_by_one<T, O: Default, Fut>(
    ids: &[String],
    call: impl Fn(Vec<String>) -> Fut,
    record: impl Fn(&[String], T, &mut O),
    unknown: impl Fn(&String, ProviderError, &mut O),
) -> Result<O, ProviderError>
where
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut out = O::default();
    for chunk in ids.chunks(BATCH) {
        match call(chunk.to_vec()).await {
            Ok(answer) => record(chunk, answer, &mut out),
            Err(e) if is_not_found(&e) => {
                for id in chunk {
                    let one = std::slice::from_ref(id);
                    match call(one.to_vec()).await {
                        Ok(answer) => record(one, answer, &mut out),
                        Err(e) if is_not_found(&e) => unknown(id, e, &mut out),
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn record_jobs(asked: &[String], jobs: Vec<wire::Job>, out: &mut HashMap<String, JobState>) {
    let asked_set: HashSet<&str> = asked.iter().map(String::as_str).collect();
    for job in jobs {
        if asked_set.contains(job.job_id.as_str()) {
            let state = job_state(
                &job.job_id,
                job.job_action.as_deref(),
                job.status.as_deref(),
            );
            if state != JobState::Running {
                tracing::info!(
                    job = %job.job_id,
                    action = job.job_action.as_deref().unwrap_or(""),
                    status = job.status.as_deref().unwrap_or(""),
                    "qingcloud job finished"
                );
            }
            out.insert(job.job_id, state);
        }
    }
    for id in asked {
        out.entry(id.clone()).or_insert_with(|| {
            JobState::Failed(format!("job {id} was not returned by DescribeJobs"))
        });
    }
}

fn record_snapshots(set: Vec<Snapshot>, out: &mut HashMap<String, Snapshot>) {
    for s in set {
        out.insert(s.snapshot_id.clone(), s);
    }
}

/// The job state of an op: None when the op carries no job id.
fn job_of<'a>(op: &OperationRef, jobs: &'a HashMap<String, JobState>) -> Option<&'a JobState> {
    let id = op.operation.trim();
    if id.is_empty() {
        None
    } else {
        // Every non-empty id was asked, so it is in the map; a miss would
        // be a bug here, and is kept pending rather than trusted.
        Some(jobs.get(id).unwrap_or(&UNKNOWN_JOB))
    }
}

static UNKNOWN_JOB: JobState = JobState::Running;

fn op_status(
    op: &OperationRef,
    job: Option<&JobState>,
    snapshots: &HashMap<String, Snapshot>,
) -> OpStatus {
    match job {
        Some(JobState::Running) => OpStatus::Pending { progress: None },
        Some(JobState::Failed(reason)) => OpStatus::Failed {
            reason: reason.clone(),
        },
        None if op.snapshot_id.trim().is_empty() => OpStatus::Failed {
            reason: "operation has neither a job id nor a snapshot id".to_string(),
        },
        // A restore is done when its job is: the new volume is the job's.
        Some(JobState::Successful) if op.kind == OpKind::Restore => OpStatus::Succeeded,
        Some(JobState::Unknown(why)) if op.kind == OpKind::Restore => OpStatus::Failed {
            reason: why.clone(),
        },
        // An expired job: how the snapshot stands is the answer (a good
        // snapshot is never written off because its job was forgotten).
        Some(JobState::Unknown(why)) => {
            let bare = OperationRef {
                operation: String::new(),
                ..op.clone()
            };
            match confirm(&bare, snapshots.get(op.snapshot_id.trim())) {
                OpStatus::Failed { reason } => OpStatus::Failed {
                    reason: format!("{why}; {reason}"),
                },
                other => other,
            }
        }
        Some(JobState::Successful) | None => confirm(op, snapshots.get(op.snapshot_id.trim())),
    }
}

/// The resource check after a successful job (or for an op with no job).
fn confirm(op: &OperationRef, snapshot: Option<&Snapshot>) -> OpStatus {
    let status = snapshot
        .and_then(|s| s.status.as_deref())
        .map(|s| s.trim().to_ascii_lowercase());
    let id = &op.snapshot_id;
    let after = if op.operation.trim().is_empty() {
        String::new()
    } else {
        format!(" after job {} succeeded", op.operation.trim())
    };
    match op.kind {
        OpKind::Create => match (snapshot, status.as_deref()) {
            (None, _) => OpStatus::Failed {
                reason: format!("snapshot {id} does not exist{after}"),
            },
            (Some(_), Some("available" | "suspended")) => OpStatus::Succeeded,
            (Some(_), Some(s @ ("deleted" | "ceased"))) => OpStatus::Failed {
                reason: format!("snapshot {id} is {s}{after}"),
            },
            // `pending`, empty or a status we do not know: not terminal,
            // and never a success.
            (Some(_), _) => OpStatus::Pending { progress: None },
        },
        OpKind::Delete => match (snapshot, status.as_deref()) {
            (None, _) | (Some(_), Some("deleted" | "ceased")) => OpStatus::Succeeded,
            (Some(_), _) => OpStatus::Pending { progress: None },
        },
        // A restore is judged by its job alone; without one there is
        // nothing to follow.
        OpKind::Restore => OpStatus::Failed {
            reason: "restore operation without a job id".to_string(),
        },
    }
}

fn created_from_response(r: CreateSnapshotsResponse) -> Result<Vec<Created>, ProviderError> {
    let snapshots: Vec<String> = r
        .snapshots
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if snapshots.is_empty() {
        return Err(errors::unexpected(
            CREATE,
            "ret_code 0 but no snapshot ids in the response",
        ));
    }
    let jobs = r.job_id.map(wire::JobIds::into_vec).unwrap_or_default();
    let job_for = |i: usize| -> Option<&String> {
        match jobs.len() {
            1 => jobs.first(),
            n if n == snapshots.len() => jobs.get(i),
            _ => None,
        }
    };
    snapshots
        .iter()
        .enumerate()
        .map(|(i, snapshot_id)| match job_for(i) {
            Some(job) => Ok(Created {
                snapshot_id: snapshot_id.clone(),
                operation: job.clone(),
            }),
            None => Err(errors::unexpected(
                CREATE,
                format!(
                    "{} job ids for {} snapshots (snapshots: {})",
                    jobs.len(),
                    snapshots.len(),
                    snapshots.join(", ")
                ),
            )),
        })
        .collect()
}

/// A listed snapshot in the engine's words.
fn remote_snapshot(s: &Snapshot, policy: &str, target: &str) -> RemoteSnapshot {
    let name = s.snapshot_name.clone().unwrap_or_default();
    RemoteSnapshot {
        id: s.snapshot_id.clone(),
        marker_slot: Marker::slot_of_name(&name, policy, target),
        source: s
            .resource
            .as_ref()
            .and_then(|r| r.resource_id.clone())
            .unwrap_or_else(|| target.to_string()),
        name,
        created_at: s.created_at(),
        state: snapshot_state(s.status.as_deref(), s.transition_status.as_deref()),
        chain: chain_info(s),
        cloud_id: None,
        size_bytes: s
            .size
            .and_then(|mib| u64::try_from(mib).ok())
            .and_then(|mib| mib.checked_mul(1 << 20)),
    }
}

/// `pending` → Creating, `available`/`suspended` → Available,
/// `deleted`/`ceased` → Gone, a `deleting` transition → Deleting; an
/// unknown status is Creating, never Available.
fn snapshot_state(status: Option<&str>, transition: Option<&str>) -> SnapshotState {
    let status = status.unwrap_or("").trim().to_ascii_lowercase();
    let base = match status.as_str() {
        "available" | "suspended" => SnapshotState::Available,
        "deleted" | "ceased" => SnapshotState::Gone,
        _ => SnapshotState::Creating,
    };
    let deleting = transition.is_some_and(|t| t.trim().eq_ignore_ascii_case("deleting"));
    if deleting && base != SnapshotState::Gone {
        SnapshotState::Deleting
    } else {
        base
    }
}

/// Chain facts from `snapshot_type`, `root_id`, `parent_id`. A full
/// snapshot with no root_id is its own root; an incremental with a parent
/// but no root_id has its parent as the root retention falls back to. An
/// incremental without a parent (or a snapshot of unknown type) cannot be
/// described here: it gets no chain info, and
/// [`super::chains::protect_unknown_chains`]
/// covers it from the whole listing.
fn chain_info(s: &Snapshot) -> Option<ChainInfo> {
    let non_empty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let root = non_empty(&s.root_id);
    let parent = non_empty(&s.parent_id);
    let full = match s.snapshot_type {
        Some(1) => true,
        Some(0) => false,
        _ => match parent.as_deref() {
            Some("self") => true,
            Some(_) => false,
            None => return None,
        },
    };
    if full {
        Some(ChainInfo {
            full: true,
            root_id: root.unwrap_or_else(|| s.snapshot_id.clone()),
            parent_id: None,
        })
    } else {
        let parent = parent.filter(|p| p != "self")?;
        Some(ChainInfo {
            full: false,
            root_id: root.unwrap_or_else(|| parent.clone()),
            parent_id: Some(parent),
        })
    }
}

/// Whether `name` is the deterministic name of `policy` and `target`
/// (QingCloud's create has no description, so the name is the marker).
pub fn is_marked(name: &str, policy: &str, target: &str) -> bool {
    Marker::slot_of_name(name, policy, target).is_some()
}

/// A by-id lookup must fit in one page: if the server says there are more
/// than it sent, absence would be misread as "gone" or "unknown".
fn check_whole(call: &str, got: usize, total: Option<u64>) -> Result<(), ProviderError> {
    match total {
        Some(t) if t > got as u64 => Err(errors::unexpected(
            call,
            format!("{got} items returned of total_count {t}"),
        )),
        _ => Ok(()),
    }
}

fn is_not_found(e: &ProviderError) -> bool {
    e.kind == ErrorKind::NotFound && e.code.as_deref() == Some("2100")
}

/// Fuzzing entry (`fuzz/`): `body` as the answer of each action the
/// provider reads, through the client's decoding and this module's
/// mapping (jobs → states → [`OpStatus`], snapshots → [`RemoteSnapshot`]
/// and chain facts, create/delete answers → ids). Results are discarded;
/// the only contract is that no input panics.
#[cfg(any(feature = "fuzz", test))]
#[doc(hidden)]
pub fn fuzz_parse_response(body: &[u8]) {
    let keep = |m: &str| m.to_string();
    let (policy, target) = ("daily", "vol-fuzz");
    let mut jobs = HashMap::new();
    if let Ok(r) = Api::decode::<DescribeJobsResponse>(DESCRIBE_JOBS, body, keep) {
        let _ = check_whole(DESCRIBE_JOBS, r.job_set.len(), r.total_count);
        let asked: Vec<String> = r.job_set.iter().map(|j| j.job_id.clone()).collect();
        record_jobs(&asked, r.job_set, &mut jobs);
    }
    let mut snapshots = HashMap::new();
    if let Ok(r) = Api::decode::<DescribeSnapshotsResponse>(DESCRIBE_SNAPSHOTS, body, keep) {
        let _ = check_whole(DESCRIBE_SNAPSHOTS, r.snapshot_set.len(), r.total_count);
        let mut listed: Vec<RemoteSnapshot> = r
            .snapshot_set
            .iter()
            .map(|s| remote_snapshot(s, policy, target))
            .collect();
        super::chains::protect_unknown_chains(&mut listed);
        record_snapshots(r.snapshot_set, &mut snapshots);
    }
    let ids: Vec<(String, String)> = jobs
        .keys()
        .cloned()
        .chain([String::new()])
        .flat_map(|j| {
            snapshots
                .keys()
                .cloned()
                .chain([String::new()])
                .map(move |s| (j.clone(), s))
                .collect::<Vec<_>>()
        })
        .take(64)
        .collect();
    for op in super::query_api::ops_of_every_kind(ids) {
        let _ = op_status(&op, job_of(&op, &jobs), &snapshots);
    }
    if let Ok(r) = Api::decode::<CreateSnapshotsResponse>(CREATE, body, keep) {
        let _ = created_from_response(r);
    }
    if let Ok(r) = Api::decode::<DeleteSnapshotsResponse>(DELETE, body, keep) {
        let _ = r.job_id.map(wire::JobIds::into_vec);
    }
    if let Ok(r) = Api::decode::<wire::CreateVolumeFromSnapshotResponse>(RESTORE, body, keep) {
        let _ = r.job_id.map(wire::JobIds::into_vec);
    }
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
            Some("availablex"),
            Some("error"),
        ] {
            assert_eq!(
                snapshot_state(raw, None),
                SnapshotState::Creating,
                "{raw:?}"
            );
        }
        assert_eq!(
            snapshot_state(Some("Available"), None),
            SnapshotState::Available
        );
        assert_eq!(
            snapshot_state(Some("available"), Some("deleting")),
            SnapshotState::Deleting
        );
    }
}
