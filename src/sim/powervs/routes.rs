//! The pcloud handlers: snapshots (list, get, rename, delete, create,
//! restore) and the instance listing. Token and CRN are checked before a
//! handler runs.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::model::{self, Outcome, Snap};
use super::{api_error, json_body, text_member, Answer, ApiError, Ctx, DIALECT, OP_CREATE};

fn not_found(sid: &str) -> ApiError {
    api_error(
        StatusCode::NOT_FOUND,
        format!("snapshot does not exist. ID: {sid}"),
        "snapshot not found",
    )
}

fn find<'a>(ctx: &'a mut Ctx<'_>) -> Result<&'a mut Snap, ApiError> {
    let now = ctx.now;
    let (cid, sid) = (ctx.ids.cid.clone(), ctx.ids.sid.clone());
    ctx.pvs
        .snapshots
        .iter_mut()
        .find(|s| s.cloud_instance_id == cid && s.id == sid && !s.view(now).gone)
        .ok_or_else(|| not_found(&sid))
}

pub(super) fn list_snapshots(ctx: &mut Ctx<'_>) -> Answer {
    let list: Vec<Value> = ctx
        .pvs
        .live(&ctx.ids.cid, ctx.now)
        .map(|s| s.to_json(ctx.now))
        .collect();
    Ok((StatusCode::OK, json!({ "snapshots": list })))
}

/// `GET …/pvm-instances` → `{"pvmInstances": [PVMInstanceReference]}`
/// (no volume ids, no paging).
pub(super) fn list_instances(ctx: &mut Ctx<'_>) -> Answer {
    let cid = &ctx.ids.cid;
    let list: Vec<Value> = ctx
        .pvs
        .workspaces
        .get(cid)
        .map(|w| {
            w.instances
                .iter()
                .map(|(id, i)| {
                    json!({
                        "pvmInstanceID": id,
                        "serverName": i.name.as_deref().unwrap_or(id),
                        "status": "ACTIVE",
                        "health": { "status": "OK" },
                        "crn": model::resource_crn(cid, "pvm-instance", id),
                        "storagePool": "Tier3-Flash-1",
                        "href": format!("/pcloud/v1/cloud-instances/{cid}/pvm-instances/{id}"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((StatusCode::OK, json!({ "pvmInstances": list })))
}

/// `GET …/pvm-instances/{pvm}` → `PVMInstance`: the fields the model
/// requires (`volumeIDs` among them) with the simulator's values.
pub(super) fn get_instance(ctx: &mut Ctx<'_>) -> Answer {
    let (cid, pvm) = (&ctx.ids.cid, &ctx.ids.pvm);
    let Some(i) = ctx
        .pvs
        .workspaces
        .get(cid)
        .and_then(|w| w.instances.get(pvm))
    else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            format!("pvm-instance does not exist. ID: {pvm}"),
            "pvm-instance not found",
        ));
    };
    let disk: u64 = i.volume_ids.iter().map(|v| model::volume_size_gib(v)).sum();
    Ok((
        StatusCode::OK,
        json!({
            "pvmInstanceID": pvm,
            "serverName": i.name.as_deref().unwrap_or(pvm),
            "status": "ACTIVE",
            "health": { "status": "OK" },
            "crn": model::resource_crn(cid, "pvm-instance", pvm),
            "volumeIDs": i.volume_ids,
            "diskSize": disk as f64,
            "imageID": "sim-image-aix-7300",
            "memory": 8.0,
            "processors": 0.5,
            "procType": "shared",
            "osType": "aix",
            "storageType": "tier3",
            "storagePool": "Tier3-Flash-1",
            "networkIDs": [],
            "networks": [],
            "addresses": [],
            "srcs": [],
            "sysType": "s922",
        }),
    ))
}

/// `GET /v1/volume-snapshots` → `VolumeSnapshotList`: the volume
/// snapshots of the live snapshots of the workspace the CRN names.
pub(super) fn list_volume_snapshots(ctx: &mut Ctx<'_>) -> Answer {
    let list: Vec<Value> = ctx
        .pvs
        .live(&ctx.ids.cid, ctx.now)
        .flat_map(|s| s.volume_snapshots_json(ctx.now))
        .collect();
    Ok((StatusCode::OK, json!({ "volumeSnapshots": list })))
}

/// `GET /v1/volume-snapshots/{uuid}` → `SnapshotV1`.
pub(super) fn get_volume_snapshot(ctx: &mut Ctx<'_>) -> Answer {
    let vsid = &ctx.ids.sid;
    ctx.pvs
        .live(&ctx.ids.cid, ctx.now)
        .flat_map(|s| s.volume_snapshots_json(ctx.now))
        .find(|v| v["id"].as_str() == Some(vsid.as_str()))
        .map(|v| (StatusCode::OK, v))
        .ok_or_else(|| {
            api_error(
                StatusCode::NOT_FOUND,
                format!("volume snapshot does not exist. ID: {vsid}"),
                "volume snapshot not found",
            )
        })
}

pub(super) fn list_instance_snapshots(ctx: &mut Ctx<'_>) -> Answer {
    let list: Vec<Value> = ctx
        .pvs
        .live(&ctx.ids.cid, ctx.now)
        .filter(|s| s.pvm_instance_id == ctx.ids.pvm)
        .map(|s| s.to_json(ctx.now))
        .collect();
    Ok((StatusCode::OK, json!({ "snapshots": list })))
}

pub(super) fn get_snapshot(ctx: &mut Ctx<'_>) -> Answer {
    let now = ctx.now;
    let s = find(ctx)?;
    Ok((StatusCode::OK, s.to_json(now)))
}

pub(super) fn put_snapshot(ctx: &mut Ctx<'_>) -> Answer {
    let body = json_body(ctx)?;
    let name = body.get("name").and_then(Value::as_str).map(str::to_string);
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(n) = &name {
        check_name(n)?;
        ctx.logged.insert("name".into(), n.clone());
    }
    if let Some(d) = &description {
        check_description(d)?;
        ctx.logged.insert("description".into(), d.clone());
    }
    let now = ctx.now;
    if let Some(n) = &name {
        let (cid, sid) = (ctx.ids.cid.clone(), ctx.ids.sid.clone());
        if ctx.pvs.live(&cid, now).any(|s| s.name == *n && s.id != sid) {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                format!("a snapshot named {n} already exists"),
                "bad request",
            ));
        }
    }
    let s = find(ctx)?;
    if let Some(n) = name {
        s.name = n;
    }
    if let Some(d) = description {
        s.description = d;
    }
    s.updated = now;
    Ok((StatusCode::OK, s.to_json(now)))
}

pub(super) fn delete_snapshot(ctx: &mut Ctx<'_>) -> Answer {
    let now = ctx.now;
    let duration = chrono::Duration::from_std(ctx.job_duration).unwrap_or_default();
    let s = find(ctx)?;
    let v = s.view(now);
    if v.status == "creating" || v.status == "restoring" {
        return Err(api_error(
            StatusCode::CONFLICT,
            format!(
                "snapshot {} is {} and cannot be deleted now",
                s.id, v.status
            ),
            "conflict",
        ));
    }
    if s.delete.is_none() {
        s.delete = Some((now, now + duration));
    }
    Ok((StatusCode::ACCEPTED, json!({})))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 120
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("name in body should match '^[a-zA-Z0-9_.-]+$' and be at most 120 characters long: {name:?}"),
            "bad request",
        ))
    }
}

fn check_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > 255 {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "description in body should be at most 255 chars long",
            "bad request",
        ));
    }
    Ok(())
}

pub(super) fn create_snapshot(ctx: &mut Ctx<'_>) -> Answer {
    let body = json_body(ctx)?;
    let name = text_member(&body, "name");
    let description = text_member(&body, "description");
    let volume_ids: Option<Vec<String>> = match body.get("volumeIDs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        Some(_) => {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "volumeIDs must be an array of strings",
                "bad request",
            ))
        }
    };
    ctx.logged.insert("name".into(), name.clone());
    ctx.logged.insert("description".into(), description.clone());
    if let Some(v) = &volume_ids {
        ctx.logged.insert("volumeIDs".into(), v.join(","));
    }
    check_name(&name)?;
    check_description(&description)?;
    let (cid, pvm, now) = (ctx.ids.cid.clone(), ctx.ids.pvm.clone(), ctx.now);
    let Some(instance) = ctx
        .pvs
        .workspaces
        .get(&cid)
        .and_then(|w| w.instances.get(&pvm))
        .cloned()
    else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            format!("pvm-instance does not exist. ID: {pvm}"),
            "pvm-instance not found",
        ));
    };
    let volumes = match volume_ids {
        None => instance.volume_ids.clone(),
        Some(v) if v.is_empty() => instance.volume_ids.clone(),
        Some(v) => {
            if let Some(bad) = v.iter().find(|x| !instance.volume_ids.contains(x)) {
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    format!("volume {bad} is not attached to pvm-instance {pvm}"),
                    "bad request",
                ));
            }
            v
        }
    };
    if let Some(busy) = ctx.pvs.live(&cid, now).find(|s| {
        s.pvm_instance_id == pvm && matches!(s.view(now).status, "creating" | "restoring")
    }) {
        return Err(api_error(
            StatusCode::CONFLICT,
            format!(
                "pvm-instance {pvm} already has a snapshot or restore in progress ({})",
                busy.id
            ),
            "conflict",
        ));
    }
    if ctx.pvs.live(&cid, now).any(|s| s.name == name) {
        return Err(api_error(
            StatusCode::CONFLICT,
            format!("a snapshot with name {name} already exists in this cloud instance"),
            "conflict",
        ));
    }
    let outcome = Outcome::of(ctx.faults.for_job(DIALECT, OP_CREATE));
    let duration = chrono::Duration::from_std(ctx.job_duration).unwrap_or(chrono::Duration::MAX);
    let id = model::uuid_like();
    ctx.pvs.snapshots.push(Snap {
        id: id.clone(),
        cloud_instance_id: cid.clone(),
        pvm_instance_id: pvm,
        name,
        description,
        volume_ids: volumes,
        created: now,
        updated: now,
        finish_at: now
            .checked_add_signed(duration)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        outcome,
        manual: false,
        delete: None,
        restore: None,
    });
    ctx.logged.insert("snapshot_id".into(), id.clone());
    Ok((
        StatusCode::ACCEPTED,
        json!({
            "snapshotID": id,
            "crn": model::resource_crn(&cid, "snapshot", &id),
        }),
    ))
}

pub(super) fn restore_snapshot(ctx: &mut Ctx<'_>) -> Answer {
    let body = json_body(ctx)?;
    let force = body.get("force").and_then(Value::as_bool).unwrap_or(false);
    ctx.logged.insert("force".into(), force.to_string());
    let (now, pvm) = (ctx.now, ctx.ids.pvm.clone());
    let duration = chrono::Duration::from_std(ctx.job_duration).unwrap_or_default();
    let s = find(ctx)?;
    if s.pvm_instance_id != pvm {
        return Err(not_found(&s.id.clone()));
    }
    if s.view(now).status != "available" {
        return Err(api_error(
            StatusCode::CONFLICT,
            format!("snapshot {} is not available for a restore", s.id),
            "conflict",
        ));
    }
    s.restore = Some((now, now + duration));
    Ok((StatusCode::ACCEPTED, s.to_json(now)))
}
