//! The QingCloud actions the simulator answers, their parameters (list
//! flattening `name.N`, paging) and their JSON shapes (as the
//! API reference and the official CLI's answers show them).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::model::{JobPlan, QingState, ResourceKind, Snapshot, JOB_STATUSES, OWNER};
use super::tags;
use super::{format_time, Params, DIALECT};
use crate::sim::faults::{FaultKind, FaultRegistry};
use crate::sim::form::{self, Paging};

/// Default page size and the server-side cap.
const PAGING: Paging = Paging {
    offset: "offset",
    limit: "limit",
    default_limit: 20,
    max_limit: 100,
};

/// What one action may touch.
pub(crate) struct Ctx<'a> {
    pub qing: &'a mut QingState,
    pub planner: JobPlanner<'a>,
    pub job_id_as_array: bool,
    pub params: &'a Params,
    pub zone: &'a str,
    pub now: DateTime<Utc>,
}

/// Decides how a new async job ends (faults) and how long it runs.
pub(crate) struct JobPlanner<'a> {
    pub faults: &'a mut FaultRegistry,
    pub duration: Duration,
    /// Set when a `fail_job`/`never_finish` fault shaped a new job.
    pub fault_hit: Option<FaultKind>,
}

impl JobPlanner<'_> {
    /// Called by the model only once a request is valid, so a job fault is
    /// used up by a job that really exists.
    fn plan(&mut self, action: &str) -> JobPlan {
        JobPlan {
            duration: self.duration,
            outcome: self
                .faults
                .job_outcome(DIALECT, action, &mut self.fault_hit),
        }
    }
}

/// Runs `action`; the result carries `action` and `ret_code` 0.
pub(crate) fn dispatch(action: &str, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let mut body = match action {
        "CreateSnapshots" => create_snapshots(ctx)?,
        "DescribeSnapshots" => describe_snapshots(ctx)?,
        "DeleteSnapshots" => delete_snapshots(ctx)?,
        "ModifySnapshotAttributes" => modify_snapshot_attributes(ctx)?,
        "CreateVolumeFromSnapshot" => create_volume_from_snapshot(ctx)?,
        "ApplySnapshots" => apply_snapshots(ctx)?,
        "CreateTag" => tags::create_tag(ctx)?,
        "DescribeTags" => tags::describe_tags(ctx)?,
        "AttachTags" => tags::attach_tags(ctx)?,
        "DescribeJobs" => describe_jobs(ctx)?,
        "DescribeVolumes" => describe_resources(ctx, ResourceKind::Volume)?,
        "DescribeInstances" => describe_resources(ctx, ResourceKind::Instance)?,
        other => return Err(ApiError::unknown_action(other)),
    };
    body.insert("action".into(), json!(format!("{action}Response")));
    body.insert("ret_code".into(), json!(0));
    Ok(Value::Object(body))
}

fn create_snapshots(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let resources = list_param(ctx.params, "resources")?;
    if resources.is_empty() {
        return Err(ApiError::missing("resources.1"));
    }
    let is_full = flag_param(ctx.params, "is_full")?.unwrap_or(false);
    let name = ctx.params.get("snapshot_name").map_or("", String::as_str);
    let planner = &mut ctx.planner;
    let (job_id, ids) =
        ctx.qing
            .create_snapshots(ctx.zone, &resources, name, is_full, ctx.now, || {
                planner.plan("CreateSnapshots")
            })?;
    let mut out = Map::new();
    // The documented shape is a string; the Go SDK saw an array in 2024.
    let job = if ctx.job_id_as_array {
        json!([job_id])
    } else {
        json!(job_id)
    };
    out.insert("job_id".into(), job);
    out.insert("snapshots".into(), json!(ids));
    Ok(out)
}

fn create_volume_from_snapshot(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let snapshot = ctx
        .params
        .get("snapshot")
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::missing("snapshot"))?;
    let name = ctx.params.get("volume_name").cloned().unwrap_or_default();
    let planner = &mut ctx.planner;
    let (job_id, volume_id) =
        ctx.qing
            .create_volume_from_snapshot(ctx.zone, &snapshot, &name, ctx.now, || {
                planner.plan("CreateVolumeFromSnapshot")
            })?;
    let mut out = Map::new();
    out.insert("job_id".into(), json!(job_id));
    out.insert("volume_id".into(), json!(volume_id));
    Ok(out)
}

fn delete_snapshots(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let ids = list_param(ctx.params, "snapshots")?;
    if ids.is_empty() {
        return Err(ApiError::missing("snapshots.1"));
    }
    let planner = &mut ctx.planner;
    let job_id = ctx
        .qing
        .delete_snapshots(ctx.zone, &ids, ctx.now, || planner.plan("DeleteSnapshots"))?;
    let mut out = Map::new();
    out.insert("job_id".into(), json!(job_id));
    Ok(out)
}

/// ApplySnapshots `snapshots.N` (required): rolls their resources back;
/// answers `job_id` like the Go SDK's ApplySnapshotsOutput.
fn apply_snapshots(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let ids = list_param(ctx.params, "snapshots")?;
    if ids.is_empty() {
        return Err(ApiError::missing("snapshots.1"));
    }
    let planner = &mut ctx.planner;
    let job_id = ctx
        .qing
        .apply_snapshots(ctx.zone, &ids, ctx.now, || planner.plan("ApplySnapshots"))?;
    let mut out = Map::new();
    out.insert("job_id".into(), json!(job_id));
    Ok(out)
}

/// ModifySnapshotAttributes `snapshot` (required), `snapshot_name`,
/// `description`: answers only `action` and `ret_code`.
fn modify_snapshot_attributes(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let id = p
        .get("snapshot")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("snapshot"))?;
    let name = p.get("snapshot_name").map(String::as_str);
    let description = p.get("description").map(String::as_str);
    ctx.qing
        .modify_snapshot(ctx.zone, id, name, description, ctx.now)?;
    Ok(Map::new())
}

fn describe_snapshots(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let ids = list_param(p, "snapshots")?;
    let statuses = list_param(p, "status")?;
    let tags = list_param(p, "tags")?;
    let snapshot_type = match p.get("snapshot_type").map(String::as_str) {
        None | Some("") => None,
        Some("0") => Some(false),
        Some("1") => Some(true),
        Some(other) => return Err(ApiError::invalid("snapshot_type", other)),
    };
    let verbose = flag_param(p, "verbose")?.unwrap_or(false);
    let text = |name: &str| p.get(name).map(String::as_str).filter(|s| !s.is_empty());
    let (resource_id, search_word) = (text("resource_id"), text("search_word"));
    let (snapshot_name, root_id) = (text("snapshot_name"), text("root_id"));
    let (offset, limit) = paging(p)?;
    let (qing, now) = (&*ctx.qing, ctx.now);

    let matching: Vec<&Snapshot> = qing
        .snapshot_candidates(ctx.zone, &ids, resource_id)
        .into_iter()
        .filter(|s| {
            let status = qing.view(s, now).status.as_str();
            // Ceased snapshots are gone for good; deleted ones stay visible
            // (full ones can still be recovered) unless a status filter
            // leaves them out.
            status != "ceased"
                && (statuses.is_empty() || statuses.iter().any(|x| x == status))
                && (ids.is_empty() || ids.contains(&s.id))
                && (tags.is_empty() || qing.tags_of(&s.id).iter().any(|t| tags.contains(&t.id)))
                && resource_id.is_none_or(|r| s.resource_id == r)
                && snapshot_type.is_none_or(|full| s.full == full)
                && snapshot_name.is_none_or(|n| s.name == n)
                && root_id.is_none_or(|r| s.root_id == r)
                && search_word.is_none_or(|w| s.id.contains(w) || s.name.contains(w))
        })
        .collect();
    let keys = ("total_count", "snapshot_set");
    Ok(form::page(&matching, (offset, limit), keys, |s| {
        snapshot_json(qing, s, now, verbose)
    }))
}

/// One `snapshot_set` item with the fields the API and its CLI answer with.
fn snapshot_json(qing: &QingState, s: &Snapshot, now: DateTime<Utc>, verbose: bool) -> Value {
    let view = qing.view(s, now);
    let resource = qing.resources.get(&s.resource_id);
    let head = qing.effective_head(&s.resource_id, now);
    let is_head = head.is_some_and(|h| h.id == s.id);
    let mut item = json!({
        "snapshot_id": s.id,
        "snapshot_name": s.name,
        "description": s.description,
        "snapshot_type": if s.full { 1 } else { 0 },
        "status": view.status.as_str(),
        "transition_status": view.transition,
        "is_taken": u8::from(view.is_taken),
        "is_head": u8::from(is_head),
        "root_id": s.root_id,
        "parent_id": s.parent_id.as_deref().unwrap_or("self"),
        "size": s.size_mb,
        "virtual_size": resource.map_or(s.size_mb, |r| r.size_gb * 1024),
        "create_time": format_time(s.create_time),
        "status_time": format_time(view.status_time),
        "snapshot_time": format_time(s.create_time),
        "owner": OWNER,
        "provider": "self",
        "visibility": "private",
        "sub_code": 0,
        "tags": qing.tags_of(&s.id).iter().map(|t| t.short_json()).collect::<Vec<_>>(),
        "resource_project_info": [],
        "resource": {
            "resource_id": s.resource_id,
            "resource_name": resource.map_or("", |r| r.name.as_str()),
            "resource_type": resource.map_or("volume", |r| r.kind.as_str()),
        },
    });
    if let Some(obj) = item.as_object_mut() {
        if s.full {
            // Chain totals appear on the full snapshot only (doc spelling
            // `lastest_…` kept on purpose).
            let members = qing.chain_members(&s.id, now);
            let latest = members.iter().map(|m| m.create_time).max();
            let on_head_chain = head.is_some_and(|h| h.root_id == s.id);
            obj.insert("head_chain".into(), json!(u8::from(on_head_chain)));
            obj.insert("total_count".into(), json!(members.len()));
            obj.insert(
                "total_size".into(),
                json!(members.iter().map(|m| m.size_mb).sum::<u64>()),
            );
            obj.insert(
                "lastest_snapshot_time".into(),
                json!(latest.map(format_time)),
            );
        }
        if verbose {
            if let Some(r) = resource {
                obj.insert(
                    "snapshot_resource".into(),
                    json!({
                        "volume_id": r.id,
                        "size": r.size_gb,
                        "volume_type": 0,
                        "filesystem": "",
                    }),
                );
            }
        }
    }
    item
}

fn describe_jobs(ctx: &mut Ctx<'_>) -> Result<Map<String, Value>, ApiError> {
    let p = ctx.params;
    let ids = list_param(p, "jobs")?;
    let statuses = list_param(p, "status")?;
    if let Some(bad) = statuses
        .iter()
        .find(|s| !JOB_STATUSES.contains(&s.as_str()))
    {
        return Err(ApiError::invalid("status", bad));
    }
    let job_action = p.get("job_action").filter(|a| !a.is_empty());
    let (offset, limit) = paging(p)?;
    let (qing, now, zone) = (&*ctx.qing, ctx.now, ctx.zone);
    if let Some(unknown) = ids
        .iter()
        .find(|id| qing.jobs.get(*id).is_none_or(|j| j.zone != zone))
    {
        return Err(ApiError::not_found(unknown));
    }
    let candidates = if ids.is_empty() {
        qing.jobs_newest_first(Some(zone))
    } else {
        qing.jobs_by_id(zone, &ids)
    };
    let matching: Vec<_> = candidates
        .into_iter()
        .filter(|j| {
            let status = j.status(now).as_str();
            (ids.is_empty() || ids.contains(&j.id))
                && (statuses.is_empty() || statuses.iter().any(|s| s == status))
                && job_action.is_none_or(|a| j.action == a)
        })
        .collect();
    let keys = ("total_count", "job_set");
    Ok(form::page(&matching, (offset, limit), keys, |j| {
        json!({
            "job_id": j.id,
            "job_action": j.action,
            "status": j.status(now).as_str(),
            "create_time": format_time(j.create_time),
            "status_time": format_time(j.status_time(now)),
            "resource_ids": j.resource_ids.join(" "),
            "owner": OWNER,
            "directive": "",
            "error_codes": "",
        })
    }))
}

/// DescribeVolumes / DescribeInstances: minimal, enough to pick targets.
fn describe_resources(
    ctx: &mut Ctx<'_>,
    kind: ResourceKind,
) -> Result<Map<String, Value>, ApiError> {
    let (list_name, set_name, id_field, name_field) = match kind {
        ResourceKind::Volume => ("volumes", "volume_set", "volume_id", "volume_name"),
        ResourceKind::Instance => ("instances", "instance_set", "instance_id", "instance_name"),
    };
    let ids = list_param(ctx.params, list_name)?;
    let statuses = list_param(ctx.params, "status")?;
    let (offset, limit) = paging(ctx.params)?;
    let (qing, now, zone) = (&*ctx.qing, ctx.now, ctx.zone);
    let mut matching: Vec<_> = if ids.is_empty() {
        qing.resources.values().collect()
    } else {
        let mut seen = std::collections::HashSet::new();
        ids.iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| qing.resources.get(id))
            .collect()
    };
    // A ceased resource (a restore whose job failed) is gone unless a
    // status filter asks for it by name.
    matching.retain(|r| {
        let status = qing.resource_view(r, now).status;
        r.kind == kind
            && r.zone == zone
            && if statuses.is_empty() {
                status != "ceased"
            } else {
                statuses.iter().any(|s| s == status)
            }
    });
    matching.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.id.cmp(&b.id)));
    let set: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| {
            let latest = qing
                .snapshots_of_resource(&r.id)
                .filter(|s| qing.view(s, now).status.as_str() != "ceased")
                .map(|s| s.create_time)
                .max();
            let view = qing.resource_view(r, now);
            let mut item = json!({
                id_field: r.id,
                name_field: r.name,
                "description": null,
                "status": view.status,
                "transition_status": view.transition,
                "zone_id": r.zone,
                "create_time": format_time(r.create_time),
                "status_time": format_time(view.status_time),
                "owner": OWNER,
                "sub_code": 0,
                "tags": tags_json(&r.tags, &qing.tags_of(&r.id)),
                "resource_project_info": [],
            });
            if let Some(obj) = item.as_object_mut() {
                match kind {
                    ResourceKind::Volume => {
                        obj.insert("size".into(), json!(r.size_gb));
                        obj.insert("volume_type".into(), json!(0));
                        obj.insert(
                            "lastest_snapshot_time".into(),
                            json!(latest.map(format_time)),
                        );
                        // An unattached volume, field for field as the
                        // CLI transcript of DescribeVolumes shows one.
                        obj.insert(
                            "instance".into(),
                            json!({"instance_id": "", "instance_name": ""}),
                        );
                        obj.insert(
                            "instances".into(),
                            json!([{"instance_id": "", "instance_name": ""}]),
                        );
                        obj.insert(
                            "resources".into(),
                            json!([{
                                "device": "",
                                "resource_name": "",
                                "resource_type": "instance",
                                "resource_id": "",
                            }]),
                        );
                        obj.insert("repl".into(), json!("rpp-00000000"));
                        obj.insert("place_group_id".into(), json!("plg-00000000"));
                        obj.insert("extra".into(), Value::Null);
                    }
                    ResourceKind::Instance => {
                        obj.insert("instance_type".into(), json!("s1.small.r1"));
                        obj.insert("vcpus_current".into(), json!(1));
                        obj.insert("memory_current".into(), json!(1024));
                        obj.insert("volume_ids".into(), json!([]));
                    }
                }
            }
            item
        })
        .collect();
    let mut out = Map::new();
    out.insert("total_count".into(), json!(matching.len()));
    out.insert(set_name.into(), Value::Array(set));
    Ok(out)
}

/// A resource's `tags` as QingCloud lists them: `tag_key` + `tag_name`
/// (the value), or only `tag_name` for a key-less tag.
/// Seeded tags first, then those attached with AttachTags.
fn tags_json(tags: &std::collections::BTreeMap<String, String>, attached: &[&tags::Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| {
                let tag_id = format!("tag-{:08x}", fnv(&format!("{k}={v}")));
                if v.is_empty() {
                    json!({"tag_id": tag_id, "tag_name": k, "tag_key": "", "color": "#9f9bb7"})
                } else {
                    json!({"tag_id": tag_id, "tag_name": v, "tag_key": k, "color": "#9f9bb7"})
                }
            })
            .chain(attached.iter().map(|t| t.short_json()))
            .collect(),
    )
}

/// A stable small hash for made-up tag ids.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `name.1`, `name.2`, … in index order (so `.10` comes after `.2`).
fn list_param(params: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    form::list_param(params, name, 1)
}

/// A 0/1 flag; absent or empty = `None`.
fn flag_param(params: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some("0") => Ok(Some(false)),
        Some("1") => Ok(Some(true)),
        Some(other) => Err(ApiError::invalid(name, other)),
    }
}

/// `offset` (default 0) and `limit` (default 20, capped at 100).
pub(crate) fn paging(params: &Params) -> Result<(usize, usize), ApiError> {
    PAGING.read(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::form::{check_list_param, check_paging};

    #[test]
    fn list_params_follow_their_index_not_byte_order() {
        check_list_param(list_param, "resources", 1, 1100);
    }

    #[test]
    fn paging_defaults_and_cap() {
        check_paging(paging, ("offset", "limit"), (20, 100), 1100);
    }
}
