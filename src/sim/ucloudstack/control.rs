//! UCloudStack's part of the control API (`/_sim/ucloudstack/…`): seed key
//! pairs, disks and snapshots made outside snapwarden (Manual, or anything
//! else a test needs), set the per-disk snapshot cap, and read every
//! snapshot back, deleted ones included.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::NewSnapshot;
use crate::sim::control::{ok, parse_json, require, Answer, ControlError};
use crate::sim::Simulator;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/ucloudstack/credentials", post(add_credentials))
        .route("/_sim/ucloudstack/disks", get(list_disks).post(add_disk))
        .route(
            "/_sim/ucloudstack/snapshots",
            get(list_snapshots).post(add_snapshot),
        )
        .route("/_sim/ucloudstack/limits", get(get_limits).post(set_limits))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    public_key: String,
    private_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDisk {
    region: String,
    zone: String,
    disk_id: String,
    #[serde(default)]
    name: Option<String>,
    /// Bound to a powered-on VM (rollback answers 2501).
    #[serde(default)]
    vm_running: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedSnapshot {
    region: String,
    zone: String,
    disk_id: String,
    name: String,
    #[serde(default)]
    remark: Option<String>,
    /// `Manual` (default) or `Automatic`.
    #[serde(default, rename = "type")]
    snapshot_type: Option<String>,
    #[serde(default)]
    create_time: Option<DateTime<Utc>>,
    /// Stay `Createing` this long (e.g. the platform's own scheduler is
    /// taking a snapshot: the disk answers 2502 meanwhile). Default 0.
    #[serde(default)]
    creating_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    /// Per-disk snapshot cap; 0 = unlimited.
    snapshots_per_disk: u32,
}

/// A disk's place: its region, zone and id, none empty.
fn require_disk(region: &str, zone: &str, disk_id: &str) -> Result<(), ControlError> {
    require(&[("region", region), ("zone", zone), ("disk_id", disk_id)])
}

async fn add_credentials(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let c: Credentials = parse_json(&body)?;
    require(&[
        ("public_key", &c.public_key),
        ("private_key", &c.private_key),
    ])?;
    sim.lock()
        .ucloudstack
        .add_credentials(&c.public_key, &c.private_key);
    Ok(ok())
}

async fn add_disk(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let d: NewDisk = parse_json(&body)?;
    require_disk(&d.region, &d.zone, &d.disk_id)?;
    sim.lock().ucloudstack.seed_disk(
        &d.region,
        &d.zone,
        &d.disk_id,
        d.name.as_deref().unwrap_or(""),
        d.vm_running,
    );
    Ok(Json(json!({ "disk_id": d.disk_id })))
}

async fn list_disks(State(sim): State<Simulator>) -> Json<Value> {
    let state = sim.lock();
    let disks: Vec<Value> = state
        .ucloudstack
        .disks
        .values()
        .map(|d| {
            json!({
                "disk_id": d.id,
                "name": d.name,
                "region": d.region,
                "zone": d.zone,
                "vm_running": d.vm_running,
            })
        })
        .collect();
    Json(json!({ "disks": disks }))
}

async fn add_snapshot(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let s: SeedSnapshot = parse_json(&body)?;
    require_disk(&s.region, &s.zone, &s.disk_id)?;
    let snapshot_type = s.snapshot_type.as_deref().unwrap_or("Manual");
    if !matches!(snapshot_type, "Manual" | "Automatic") {
        return Err(ControlError::bad_request(
            "type must be Manual or Automatic",
        ));
    }
    let id = sim.lock().ucloudstack.seed_snapshot(
        &NewSnapshot {
            region: &s.region,
            zone: &s.zone,
            disk_id: &s.disk_id,
            name: &s.name,
            remark: s.remark.as_deref().unwrap_or(""),
            snapshot_type,
        },
        s.create_time.unwrap_or_else(Utc::now),
        std::time::Duration::from_millis(s.creating_ms),
    );
    Ok(Json(json!({ "snapshot_id": id })))
}

async fn get_limits(State(sim): State<Simulator>) -> Json<Value> {
    Json(json!({ "snapshots_per_disk": sim.lock().ucloudstack.snapshot_cap }))
}

async fn set_limits(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let l: Limits = parse_json(&body)?;
    sim.lock().ucloudstack.snapshot_cap = l.snapshots_per_disk;
    Ok(Json(json!({ "snapshots_per_disk": l.snapshots_per_disk })))
}

async fn list_snapshots(State(sim): State<Simulator>) -> Json<Value> {
    let now = Utc::now();
    let state = sim.lock();
    let snapshots: Vec<Value> = state
        .ucloudstack
        .snapshots_newest_first()
        .into_iter()
        .map(|s| {
            let status = s.status(now);
            json!({
                "snapshot_id": s.id,
                "name": s.name,
                "remark": s.remark,
                "type": s.snapshot_type,
                "disk_id": s.disk_id,
                "region": s.region,
                "zone": s.zone,
                // A deleted snapshot no longer listed by the API shows as
                // "Deleted" here.
                "status": status.map_or("Deleted", |st| st.as_str()),
                "deleted": s.deleted_at.is_some(),
                "create_time": s.create_time.timestamp(),
            })
        })
        .collect();
    Json(json!({ "snapshots": snapshots }))
}
