//! Lightsail's part of the control API (`/_sim/lightsail/…`): seed
//! credentials, instances, disks and snapshots made outside snapwarden
//! (untagged manual ones, foreign-tagged ones, kept copies of automatic
//! snapshots); read instances, disks, snapshots and operations back; set the page size.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{Family, SeedSnapshot, SeedTag};
use crate::sim::control::{ok, parse_json, Answer, ControlError};
use crate::sim::Simulator;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/lightsail/credentials", post(add_credentials))
        .route(
            "/_sim/lightsail/instances",
            get(list_instances).post(add_instance),
        )
        .route("/_sim/lightsail/disks", get(list_disks).post(add_disk))
        .route(
            "/_sim/lightsail/snapshots",
            get(list_snapshots).post(add_snapshot),
        )
        .route("/_sim/lightsail/operations", get(list_operations))
        .route("/_sim/lightsail/settings", post(settings))
        .route("/_sim/lightsail/seed", post(seed_bulk))
}

/// Many instances, disks and snapshots in one request and one lock (a
/// benchmark seeds tens of thousands), each item as its own endpoint takes
/// it, applied in the order instances, disks, snapshots. A snapshot that
/// cannot be seeded answers 400 naming it; the items before it stay seeded.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bulk {
    #[serde(default)]
    instances: Vec<NewResource>,
    #[serde(default)]
    disks: Vec<NewResource>,
    #[serde(default)]
    snapshots: Vec<SeedSnapshot>,
}

async fn seed_bulk(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let b: Bulk = parse_json(&body)?;
    let now = Utc::now();
    let mut state = sim.lock();
    let ls = &mut state.lightsail;
    let (instances, disks, snapshots) = (b.instances.len(), b.disks.len(), b.snapshots.len());
    for (family, list) in [(Family::Instance, b.instances), (Family::Disk, b.disks)] {
        for r in list {
            ls.seed_resource(family, &r.name, r.availability_zone.as_deref(), r.tags);
        }
    }
    for (i, s) in b.snapshots.iter().enumerate() {
        ls.seed_snapshot(s, now)
            .map_err(|e| ControlError::bad_request(format!("snapshots[{i}] ({}): {e}", s.name)))?;
    }
    Ok(Json(
        json!({ "instances": instances, "disks": disks, "snapshots": snapshots }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    /// Temporary credentials: the token requests must carry.
    #[serde(default)]
    session_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewResource {
    name: String,
    #[serde(default)]
    availability_zone: Option<String>,
    /// `[{key, value?}]`; given again for a known name, replaces its tags.
    #[serde(default)]
    tags: Option<Vec<SeedTag>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    page_size: usize,
}

async fn add_credentials(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let c: Credentials = parse_json(&body)?;
    let mut state = sim.lock();
    match &c.session_token {
        Some(token) => {
            state
                .lightsail
                .add_session_credentials(&c.access_key_id, &c.secret_access_key, token)
        }
        None => state
            .lightsail
            .add_credentials(&c.access_key_id, &c.secret_access_key),
    }
    Ok(ok())
}

async fn add_instance(State(sim): State<Simulator>, body: Bytes) -> Answer {
    add_resource(&sim, &body, Family::Instance)
}

async fn add_disk(State(sim): State<Simulator>, body: Bytes) -> Answer {
    add_resource(&sim, &body, Family::Disk)
}

fn add_resource(sim: &Simulator, body: &Bytes, family: Family) -> Answer {
    let r: NewResource = parse_json(body)?;
    sim.lock()
        .lightsail
        .seed_resource(family, &r.name, r.availability_zone.as_deref(), r.tags);
    Ok(Json(json!({ "name": r.name })))
}

async fn add_snapshot(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let s: SeedSnapshot = parse_json(&body)?;
    sim.lock()
        .lightsail
        .seed_snapshot(&s, Utc::now())
        .map_err(ControlError::bad_request)?;
    Ok(Json(json!({ "name": s.name })))
}

async fn list_snapshots(State(sim): State<Simulator>) -> Json<Value> {
    Json(json!({ "snapshots": sim.lock().lightsail.snapshots_view(Utc::now()) }))
}

async fn list_instances(State(sim): State<Simulator>) -> Json<Value> {
    let now = Utc::now();
    Json(json!({ "instances": sim.lock().lightsail.resources_view(Family::Instance, now) }))
}

async fn list_disks(State(sim): State<Simulator>) -> Json<Value> {
    let now = Utc::now();
    Json(json!({ "disks": sim.lock().lightsail.resources_view(Family::Disk, now) }))
}

async fn list_operations(State(sim): State<Simulator>) -> Json<Value> {
    Json(json!({ "operations": sim.lock().lightsail.operations_view(Utc::now()) }))
}

async fn settings(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let s: Settings = parse_json(&body)?;
    sim.lock().lightsail.set_page_size(s.page_size);
    Ok(Json(json!({ "page_size": s.page_size.max(1) })))
}
