//! KakaoCloud's part of the control API (`/_sim/kakaocloud/…`): seed
//! credentials, volumes (or detach one), instances (with their volumes) and manual
//! snapshots; read snapshots back, deleted ones included; change the token
//! lifetime and page size; revoke every token (a 401 on the next call).

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::format_time;
use crate::sim::control::{ok, parse_json, require, Answer, ControlError};
use crate::sim::Simulator;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/kakaocloud/credentials", post(add_credentials))
        .route("/_sim/kakaocloud/volumes", post(add_volume))
        .route("/_sim/kakaocloud/instances", post(add_instance))
        .route(
            "/_sim/kakaocloud/snapshots",
            get(list_snapshots).post(add_snapshot),
        )
        .route(
            "/_sim/kakaocloud/settings",
            get(get_settings).post(patch_settings),
        )
        .route("/_sim/kakaocloud/tokens/revoke", post(revoke_tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    id: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVolume {
    volume_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    size_gb: Option<u64>,
    /// Detach the (existing) volume from its instance.
    #[serde(default)]
    detach: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInstance {
    instance_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    volumes: Vec<AttachedVolume>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachedVolume {
    volume_id: String,
    #[serde(default)]
    is_root: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSnapshot {
    volume_id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    token_ttl_ms: Option<u64>,
    page_limit: Option<u64>,
}

async fn add_credentials(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let c: Credentials = parse_json(&body)?;
    require(&[("id", &c.id), ("secret", &c.secret)])?;
    sim.add_kakaocloud_credentials(&c.id, &c.secret);
    Ok(ok())
}

async fn add_volume(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let v: NewVolume = parse_json(&body)?;
    require(&[("volume_id", &v.volume_id)])?;
    let name = v.name.unwrap_or_else(|| v.volume_id.clone());
    let mut state = sim.lock();
    state
        .kakaocloud
        .seed_volume(&v.volume_id, &name, v.size_gb, None);
    if v.detach {
        state.kakaocloud.detach_volume(&v.volume_id);
    }
    Ok(Json(json!({ "volume_id": v.volume_id })))
}

async fn add_instance(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let i: NewInstance = parse_json(&body)?;
    require(&[("instance_id", &i.instance_id)])?;
    for v in &i.volumes {
        require(&[("volumes[].volume_id", &v.volume_id)])?;
    }
    let name = i.name.unwrap_or_else(|| i.instance_id.clone());
    let volumes: Vec<(String, bool)> = i
        .volumes
        .iter()
        .map(|v| (v.volume_id.clone(), v.is_root))
        .collect();
    sim.seed_kakaocloud_instance(&i.instance_id, &name, &volumes);
    Ok(Json(json!({ "instance_id": i.instance_id })))
}

async fn add_snapshot(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let s: NewSnapshot = parse_json(&body)?;
    require(&[("volume_id", &s.volume_id), ("name", &s.name)])?;
    let id = sim.lock().kakaocloud.seed_snapshot(
        &s.volume_id,
        &s.name,
        s.description.as_deref(),
        s.created_at.unwrap_or_else(Utc::now),
    );
    Ok(Json(json!({ "snapshot_id": id })))
}

async fn list_snapshots(State(sim): State<Simulator>) -> Json<Value> {
    let now = Utc::now();
    let state = sim.lock();
    let mut all: Vec<_> = state.kakaocloud.snapshots.values().collect();
    all.sort_by_key(|s| s.seq);
    let snapshots: Vec<Value> = all
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "description": s.description,
                "volume_id": s.volume_id,
                "status": s.status(now).unwrap_or("deleted"),
                "is_incremental": s.is_incremental,
                "parent_id": s.parent_id,
                "manual": s.manual,
                "created_at": format_time(s.created_at),
                "deleted_at": s.deleted_at(now).map(format_time),
            })
        })
        .collect();
    Json(json!({ "snapshots": snapshots }))
}

fn settings_view(sim: &Simulator) -> Value {
    let state = sim.lock();
    json!({
        "token_ttl_ms": state.kakaocloud.token_ttl.as_millis() as u64,
        "page_limit": state.kakaocloud.page_limit,
    })
}

async fn get_settings(State(sim): State<Simulator>) -> Json<Value> {
    Json(settings_view(&sim))
}

async fn patch_settings(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let p: SettingsPatch = parse_json(&body)?;
    {
        let mut state = sim.lock();
        if let Some(ms) = p.token_ttl_ms {
            state.kakaocloud.token_ttl = std::time::Duration::from_millis(ms);
        }
        if let Some(n) = p.page_limit {
            if n == 0 {
                return Err(ControlError::bad_request("page_limit must be at least 1"));
            }
            state.kakaocloud.page_limit = n;
        }
    }
    Ok(Json(settings_view(&sim)))
}

async fn revoke_tokens(State(sim): State<Simulator>) -> Json<Value> {
    let n = sim.lock().kakaocloud.revoke_tokens();
    Json(json!({ "revoked": n }))
}
