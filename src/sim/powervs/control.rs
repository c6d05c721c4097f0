//! PowerVS's part of the control API (`/_sim/powervs/…`): seed workspaces,
//! PVM instances, manual snapshots, API keys and IP4G refresh tokens;
//! approve a device login; revoke access tokens (to force a 401); change
//! token lifetimes and rotation; read snapshots and token counts back.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{default_crn, format_time, Workspace};
use crate::sim::control::{ok, parse_json, require, Answer, ControlError};
use crate::sim::Simulator;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/_sim/powervs/workspaces", post(add_workspace))
        .route("/_sim/powervs/instances", post(add_instance))
        .route(
            "/_sim/powervs/snapshots",
            get(list_snapshots).post(add_snapshot),
        )
        .route("/_sim/powervs/api_keys", post(add_api_key))
        .route("/_sim/powervs/refresh_tokens", post(add_refresh_token))
        .route("/_sim/powervs/device/approve", post(approve_device))
        .route("/_sim/powervs/revoke_access_tokens", post(revoke))
        .route("/_sim/powervs/tokens", get(tokens))
        .route("/_sim/powervs/settings", get(settings).post(patch_settings))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWorkspace {
    cloud_instance_id: String,
    #[serde(default)]
    crn: Option<String>,
}

async fn add_workspace(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let w: NewWorkspace = parse_json(&body)?;
    require(&[("cloud_instance_id", &w.cloud_instance_id)])?;
    let crn = w.crn.unwrap_or_else(|| default_crn(&w.cloud_instance_id));
    sim.seed_powervs_workspace(&w.cloud_instance_id, &crn);
    Ok(Json(
        json!({ "cloud_instance_id": w.cloud_instance_id, "crn": crn }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInstance {
    cloud_instance_id: String,
    pvm_instance_id: String,
    #[serde(default)]
    volume_ids: Vec<String>,
    /// `serverName` (default: the instance id); seeding again renames.
    #[serde(default)]
    name: Option<String>,
}

async fn add_instance(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let i: NewInstance = parse_json(&body)?;
    require(&[
        ("cloud_instance_id", &i.cloud_instance_id),
        ("pvm_instance_id", &i.pvm_instance_id),
    ])?;
    sim.seed_powervs_instance(&i.cloud_instance_id, &i.pvm_instance_id, i.volume_ids);
    if let Some(name) = &i.name {
        sim.lock()
            .powervs
            .set_instance_name(&i.cloud_instance_id, &i.pvm_instance_id, name);
    }
    Ok(Json(json!({ "pvm_instance_id": i.pvm_instance_id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSnapshot {
    cloud_instance_id: String,
    pvm_instance_id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    creation_date: Option<DateTime<Utc>>,
}

async fn add_snapshot(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let s: NewSnapshot = parse_json(&body)?;
    require(&[
        ("cloud_instance_id", &s.cloud_instance_id),
        ("pvm_instance_id", &s.pvm_instance_id),
        ("name", &s.name),
    ])?;
    let id = sim.seed_powervs_snapshot(
        &s.cloud_instance_id,
        &s.pvm_instance_id,
        &s.name,
        s.description.as_deref().unwrap_or(""),
        s.creation_date,
    );
    Ok(Json(json!({ "snapshot_id": id })))
}

async fn list_snapshots(State(sim): State<Simulator>) -> Json<Value> {
    let now = Utc::now();
    let state = sim.lock();
    let snapshots: Vec<Value> = state
        .powervs
        .snapshots
        .iter()
        .map(|s| {
            let v = s.view(now);
            json!({
                "snapshot_id": s.id,
                "cloud_instance_id": s.cloud_instance_id,
                "pvm_instance_id": s.pvm_instance_id,
                "name": s.name,
                "description": s.description,
                "volume_ids": s.volume_ids,
                "status": if v.gone { "gone" } else { v.status },
                "percent_complete": v.percent,
                "manual": s.manual,
                "creation_date": format_time(s.created),
                "gone": v.gone,
            })
        })
        .collect();
    Json(json!({ "snapshots": snapshots }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKey {
    api_key: String,
}

async fn add_api_key(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let k: ApiKey = parse_json(&body)?;
    require(&[("api_key", &k.api_key)])?;
    sim.add_powervs_api_key(&k.api_key);
    Ok(ok())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshToken {
    refresh_token: String,
}

async fn add_refresh_token(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let t: RefreshToken = parse_json(&body)?;
    require(&[("refresh_token", &t.refresh_token)])?;
    sim.add_powervs_refresh_token(&t.refresh_token);
    Ok(ok())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Approve {
    user_code: String,
}

async fn approve_device(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let a: Approve = parse_json(&body)?;
    let mut state = sim.lock();
    let device = state
        .powervs
        .devices
        .values_mut()
        .find(|d| d.user_code == a.user_code)
        .ok_or_else(|| {
            ControlError::bad_request(format!("no device login with user code {:?}", a.user_code))
        })?;
    device.approved = true;
    Ok(ok())
}

async fn revoke(State(sim): State<Simulator>) -> Json<Value> {
    let mut state = sim.lock();
    let n = state.powervs.access_tokens.len();
    state.powervs.access_tokens.clear();
    Json(json!({ "revoked": n }))
}

async fn tokens(State(sim): State<Simulator>) -> Json<Value> {
    let state = sim.lock();
    let p = &state.powervs;
    Json(json!({
        "issued": p.issued,
        "refresh_tokens_valid": p.refresh_tokens.values().filter(|v| **v).count(),
        "refresh_tokens_retired": p.refresh_tokens.values().filter(|v| !**v).count(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    token_lifetime_s: Option<u64>,
    rotate_refresh_tokens: Option<bool>,
    device_interval_s: Option<u64>,
}

fn settings_view(p: &super::PvsState) -> Value {
    json!({
        "token_lifetime_s": p.token_lifetime.as_secs(),
        "rotate_refresh_tokens": p.rotate_refresh_tokens,
        "device_interval_s": p.device_interval_s,
    })
}

async fn settings(State(sim): State<Simulator>) -> Json<Value> {
    Json(settings_view(&sim.lock().powervs))
}

async fn patch_settings(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let p: SettingsPatch = parse_json(&body)?;
    let mut state = sim.lock();
    let pvs = &mut state.powervs;
    if let Some(s) = p.token_lifetime_s {
        pvs.token_lifetime = Duration::from_secs(s);
    }
    if let Some(r) = p.rotate_refresh_tokens {
        pvs.rotate_refresh_tokens = r;
    }
    if let Some(i) = p.device_interval_s {
        pvs.device_interval_s = i;
    }
    Ok(Json(settings_view(pvs)))
}

impl Simulator {
    pub fn seed_powervs_workspace(&self, cloud_instance_id: &str, crn: &str) {
        let mut state = self.lock();
        let ws = state
            .powervs
            .workspaces
            .entry(cloud_instance_id.to_string())
            .or_insert_with(|| Workspace {
                crn: crn.to_string(),
                instances: Default::default(),
            });
        ws.crn = crn.to_string();
    }

    /// A PVM instance with these volumes (two made up when empty); the
    /// workspace is created with its default CRN if unknown.
    pub fn seed_powervs_instance(
        &self,
        cloud_instance_id: &str,
        pvm_instance_id: &str,
        volume_ids: Vec<String>,
    ) {
        self.lock()
            .powervs
            .seed_instance(cloud_instance_id, pvm_instance_id, volume_ids);
    }

    /// A snapshot made outside snapwarden, available at once; returns its id.
    pub fn seed_powervs_snapshot(
        &self,
        cloud_instance_id: &str,
        pvm_instance_id: &str,
        name: &str,
        description: &str,
        creation_date: Option<DateTime<Utc>>,
    ) -> String {
        self.lock().powervs.seed_snapshot(
            cloud_instance_id,
            pvm_instance_id,
            name,
            description,
            creation_date.unwrap_or_else(Utc::now),
        )
    }

    pub fn add_powervs_api_key(&self, api_key: &str) {
        self.lock().powervs.api_keys.insert(api_key.to_string());
    }

    pub fn add_powervs_refresh_token(&self, refresh_token: &str) {
        self.lock()
            .powervs
            .refresh_tokens
            .insert(refresh_token.to_string(), true);
    }
}
