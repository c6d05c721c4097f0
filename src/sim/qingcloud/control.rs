//! QingCloud's part of the control API (`/_sim/qingcloud/…`): seed
//! credentials, volumes, instances and manual snapshots; read snapshots and
//! jobs back, deleted ones included.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::format_time;
use super::model::{QingState, ResourceKind};
use crate::sim::control::{ok, parse_json, require, require_in, Answer};
use crate::sim::Simulator;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/qingcloud/credentials", post(add_credentials))
        .route("/_sim/qingcloud/volumes", post(add_volume))
        .route("/_sim/qingcloud/instances", post(add_instance))
        .route(
            "/_sim/qingcloud/snapshots",
            get(list_snapshots).post(add_snapshot),
        )
        .route("/_sim/qingcloud/jobs", get(list_jobs))
        .route("/_sim/qingcloud/seed", post(seed_bulk))
}

/// Many volumes, instances and snapshots in one request and one lock (a
/// benchmark seeds tens of thousands): each item as its own endpoint takes
/// it, applied in the order volumes, instances, snapshots. Every item is
/// checked before any is applied.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bulk {
    #[serde(default)]
    volumes: Vec<NewVolume>,
    #[serde(default)]
    instances: Vec<NewInstance>,
    #[serde(default)]
    snapshots: Vec<NewSnapshot>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVolume {
    zone: String,
    volume_id: String,
    #[serde(default)]
    volume_name: Option<String>,
    /// Tags (key → value; "" for a key-less tag). Seeding an existing
    /// volume again renames it and replaces its tags.
    #[serde(default)]
    tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInstance {
    zone: String,
    instance_id: String,
    #[serde(default)]
    instance_name: Option<String>,
    #[serde(default)]
    tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSnapshot {
    zone: String,
    resource_id: String,
    snapshot_name: String,
    #[serde(default)]
    create_time: Option<DateTime<Utc>>,
}

type Tags = std::collections::BTreeMap<String, String>;

/// Seeds a volume or instance (an existing one is renamed) and sets its tags.
fn seed_resource(
    qing: &mut QingState,
    zone: &str,
    id: &str,
    name: Option<String>,
    tags: Option<Tags>,
    kind: ResourceKind,
) {
    qing.seed_resource(zone, id, &name.unwrap_or_default(), kind);
    qing.set_tags(id, tags.unwrap_or_default());
}

async fn add_credentials(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let c: Credentials = parse_json(&body)?;
    require(&[
        ("access_key_id", &c.access_key_id),
        ("secret_access_key", &c.secret_access_key),
    ])?;
    sim.add_qingcloud_credentials(&c.access_key_id, &c.secret_access_key);
    Ok(ok())
}

async fn add_volume(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let v: NewVolume = parse_json(&body)?;
    require(&[("zone", &v.zone), ("volume_id", &v.volume_id)])?;
    let qing = &mut sim.lock().qingcloud;
    seed_resource(
        qing,
        &v.zone,
        &v.volume_id,
        v.volume_name,
        v.tags,
        ResourceKind::Volume,
    );
    Ok(Json(json!({ "volume_id": v.volume_id })))
}

async fn add_instance(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let i: NewInstance = parse_json(&body)?;
    require(&[("zone", &i.zone), ("instance_id", &i.instance_id)])?;
    let qing = &mut sim.lock().qingcloud;
    let kind = ResourceKind::Instance;
    seed_resource(qing, &i.zone, &i.instance_id, i.instance_name, i.tags, kind);
    Ok(Json(json!({ "instance_id": i.instance_id })))
}

async fn add_snapshot(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let s: NewSnapshot = parse_json(&body)?;
    require(&[("zone", &s.zone), ("resource_id", &s.resource_id)])?;
    let id = sim.seed_qingcloud_snapshot(&s.zone, &s.resource_id, &s.snapshot_name, s.create_time);
    Ok(Json(json!({ "snapshot_id": id })))
}

async fn seed_bulk(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let b: Bulk = parse_json(&body)?;
    for (i, v) in b.volumes.iter().enumerate() {
        let fields = [("zone", v.zone.as_str()), ("volume_id", &v.volume_id)];
        require_in(&format!("volumes[{i}]."), &fields)?;
    }
    for (i, v) in b.instances.iter().enumerate() {
        let fields = [("zone", v.zone.as_str()), ("instance_id", &v.instance_id)];
        require_in(&format!("instances[{i}]."), &fields)?;
    }
    for (i, s) in b.snapshots.iter().enumerate() {
        let fields = [("zone", s.zone.as_str()), ("resource_id", &s.resource_id)];
        require_in(&format!("snapshots[{i}]."), &fields)?;
    }
    let now = Utc::now();
    let mut state = sim.lock();
    let qing = &mut state.qingcloud;
    for v in b.volumes {
        let kind = ResourceKind::Volume;
        seed_resource(qing, &v.zone, &v.volume_id, v.volume_name, v.tags, kind);
    }
    for i in b.instances {
        let kind = ResourceKind::Instance;
        seed_resource(qing, &i.zone, &i.instance_id, i.instance_name, i.tags, kind);
    }
    let ids: Vec<String> = b
        .snapshots
        .iter()
        .map(|s| {
            qing.seed_snapshot(
                &s.zone,
                &s.resource_id,
                &s.snapshot_name,
                s.create_time.unwrap_or(now),
            )
        })
        .collect();
    Ok(Json(json!({ "snapshot_ids": ids })))
}

async fn list_snapshots(State(sim): State<Simulator>) -> Json<Value> {
    let now = Utc::now();
    let state = sim.lock();
    let qing = &state.qingcloud;
    let snapshots: Vec<Value> = qing
        .snapshots_newest_first(None)
        .into_iter()
        .map(|s| {
            let view = qing.view(s, now);
            let resource_type = qing
                .resources
                .get(&s.resource_id)
                .map_or(ResourceKind::Volume, |r| r.kind);
            let is_head = qing
                .effective_head(&s.resource_id, now)
                .is_some_and(|h| h.id == s.id);
            json!({
                "snapshot_id": s.id,
                "snapshot_name": s.name,
                "resource_id": s.resource_id,
                "resource_type": resource_type.as_str(),
                "zone": s.zone,
                "status": view.status.as_str(),
                "transition_status": view.transition,
                "snapshot_type": if s.full { 1 } else { 0 },
                "size_mb": s.size_mb,
                "description": s.description,
                "root_id": s.root_id,
                "parent_id": s.parent_id.as_deref().unwrap_or("self"),
                "is_head": is_head,
                "is_taken": view.is_taken,
                "manual": s.create_job.is_none(),
                "create_job_id": s.create_job,
                "delete_job_id": s.delete_job,
                "create_time": format_time(s.create_time),
                "status_time": format_time(view.status_time),
                "deleted_at": view.deleted_at.map(format_time),
            })
        })
        .collect();
    Json(json!({ "snapshots": snapshots }))
}

async fn list_jobs(State(sim): State<Simulator>) -> Json<Value> {
    let now = Utc::now();
    let state = sim.lock();
    let jobs: Vec<Value> = state
        .qingcloud
        .jobs_newest_first(None)
        .into_iter()
        .map(|j| {
            json!({
                "job_id": j.id,
                "job_action": j.action,
                "zone": j.zone,
                "status": j.status(now).as_str(),
                "resource_ids": j.resource_ids.join(" "),
                "create_time": format_time(j.create_time),
                "status_time": format_time(j.status_time(now)),
            })
        })
        .collect();
    Json(json!({ "jobs": jobs }))
}
