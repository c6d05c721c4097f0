//! The BCS and Volume API operations on the model: instance, volume and
//! snapshot reads and listings, and the snapshot create, delete and
//! restore. The token is checked before any of them runs.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::model::{self, KakaoState, DEFAULT_LIMIT};
use super::{auth, ApiError, Ctx, Op, Params, Reply};

/// An operation's answer.
type Answer = Result<Reply, ApiError>;

pub(super) fn run(
    op: &Op,
    ctx: &mut Ctx<'_>,
    headers: &HeaderMap,
    params: &Params,
    raw_body: Option<&Bytes>,
    body: &Option<Value>,
) -> Answer {
    if *op == Op::IssueToken {
        return auth::issue_token(ctx, headers, raw_body, body);
    }
    if *op == Op::ValidateToken {
        return auth::validate_token(ctx, headers);
    }
    auth::check_token(ctx, headers)?;
    let now = ctx.now;
    match op {
        Op::IssueToken => Err(ApiError::internal("unreachable")),
        Op::ValidateToken => Err(ApiError::internal("unreachable")),
        Op::ListInstances => list_instances(ctx.state, params, now),
        Op::GetInstance(id) => get_instance(ctx.state, id, now),
        Op::ListVolumes => list_volumes(ctx.state, params, now),
        Op::GetVolume(id) => get_volume(ctx.state, id, now),
        Op::CreateSnapshot(volume_id) => create_snapshot(ctx, volume_id, body),
        Op::ListSnapshots => list_snapshots(ctx.state, params, now),
        Op::GetSnapshot(id) => {
            let view = ctx.state.live_snapshot(id, now).map(|s| s.view(now));
            one("snapshot", "Snapshot", id, view)
        }
        Op::DeleteSnapshot(id) => {
            let outcome = ctx.outcome("DeleteSnapshot");
            ctx.state.delete_snapshot(id, ctx.duration, outcome, now)?;
            Ok(Reply {
                status: StatusCode::ACCEPTED,
                body: None,
                headers: Vec::new(),
            })
        }
        Op::UpdateSnapshot(id) => update_snapshot(ctx, id, body),
        Op::RestoreSnapshot(id) => restore_snapshot(ctx, id, body),
    }
}

fn get_instance(state: &KakaoState, id: &str, now: DateTime<Utc>) -> Answer {
    let view = state.instances.get(id).map(|i| state.instance_view(i, now));
    one("instance", "Instance", id, view)
}

fn get_volume(state: &KakaoState, id: &str, now: DateTime<Utc>) -> Answer {
    let view = state.volumes.get(id).map(|v| state.volume_view(v, now));
    one("volume", "Volume", id, view)
}

/// Whether the filter `key` is absent or equals `value`.
fn param_is(params: &Params, key: &str, value: &str) -> bool {
    params.get(key).is_none_or(|want| want == value)
}

/// Whether the filter `key` is absent or equals `value`, which is set.
fn param_is_some(params: &Params, key: &str, value: Option<&String>) -> bool {
    params.get(key).is_none_or(|want| value == Some(want))
}

/// `{key: view}` with 200, or 404 `<What> <id> could not be found.`.
fn one(key: &str, what: &str, id: &str, view: Option<Value>) -> Answer {
    let view =
        view.ok_or_else(|| ApiError::not_found(format!("{what} {id} could not be found.")))?;
    Ok(Reply::json(StatusCode::OK, json!({ key: view })))
}

/// `POST /volumes/{id}/snapshots` with `{"snapshot": {name, description,
/// is_incremental}}`.
fn create_snapshot(ctx: &mut Ctx<'_>, volume_id: &str, body: &Option<Value>) -> Answer {
    let spec = body
        .as_ref()
        .and_then(|b| b.get("snapshot"))
        .ok_or_else(|| ApiError::bad_request("body must be {\"snapshot\": {...}}"))?;
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("snapshot.name is required"))?;
    if name.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "snapshot.name is longer than 255 characters",
        ));
    }
    let description = match spec.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "snapshot.description must be a string",
            ))
        }
    };
    let is_incremental = spec
        .get("is_incremental")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            ApiError::bad_request("snapshot.is_incremental is required (true or false)")
        })?;
    let outcome = ctx.outcome("CreateSnapshot");
    let s = ctx.state.create_snapshot(
        volume_id,
        name,
        description,
        is_incremental,
        ctx.duration,
        outcome,
        ctx.now,
    )?;
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        json!({"snapshot": {"id": s.id, "name": s.name}}),
    ))
}

/// `PUT /snapshots/{id}` with `{"snapshot": {name?, description?}}`: a
/// member left out keeps its value, a null description clears it.
/// Answers 200 `{"snapshot": {"id", "name"}}`; an unknown snapshot is 404,
/// one still being created or deleted 409 (the update's declared errors).
pub(super) fn update_snapshot(ctx: &mut Ctx<'_>, id: &str, body: &Option<Value>) -> Answer {
    let spec = body
        .as_ref()
        .and_then(|b| b.get("snapshot"))
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("body must be {\"snapshot\": {...}}"))?;
    let name = match spec.get("name") {
        None => None,
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => {
            Some(n.as_str())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "snapshot.name must be a string of 1 to 255 characters",
            ))
        }
    };
    let description = match spec.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(d)) if d.chars().count() <= 255 => Some(Some(d.as_str())),
        Some(_) => {
            return Err(ApiError::bad_request(
                "snapshot.description must be a string of at most 255 characters",
            ))
        }
    };
    let s = ctx.state.update_snapshot(id, name, description, ctx.now)?;
    Ok(Reply::json(
        StatusCode::OK,
        json!({"snapshot": {"id": s.id, "name": s.name}}),
    ))
}

/// `POST /snapshots/{id}/restore` with `{"restore": {name,
/// availability_zone}}`: a new volume from the snapshot.
fn restore_snapshot(ctx: &mut Ctx<'_>, id: &str, body: &Option<Value>) -> Answer {
    let spec = body
        .as_ref()
        .and_then(|b| b.get("restore"))
        .ok_or_else(|| ApiError::bad_request("body must be {\"restore\": {...}}"))?;
    let field = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("restore.{k} is required")))
    };
    let name = field("name")?.to_string();
    let zone = field("availability_zone")?.to_string();
    let outcome = ctx.outcome("RestoreSnapshot");
    let v = ctx
        .state
        .restore(id, &name, &zone, ctx.duration, outcome, ctx.now)?;
    Ok(Reply::json(
        StatusCode::ACCEPTED,
        json!({"restore": {"snapshot_id": id, "volume_id": v.id, "volume_name": v.name}}),
    ))
}

/// `limit` (default 20, at most the page limit) and `offset`.
fn page_bounds(params: &Params, page_limit: u64) -> Result<(u64, u64), ApiError> {
    let num = |k: &str, default: u64| -> Result<u64, ApiError> {
        match params.get(k) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("{k} must be a non-negative integer"))),
        }
    };
    let limit = num("limit", DEFAULT_LIMIT)?;
    if limit == 0 {
        return Err(ApiError::bad_request("limit must be at least 1"));
    }
    Ok((limit.min(page_limit.max(1)), num("offset", 0)?))
}

fn sort_desc(params: &Params) -> Result<bool, ApiError> {
    if let Some(k) = params.get("sort_keys") {
        if k.split(',')
            .any(|k| !matches!(k.trim(), "created_at" | "name" | "updated_at"))
        {
            return Err(ApiError::bad_request(format!(
                "unsupported sort_keys {k:?}"
            )));
        }
    }
    match params.get("sort_dirs").map(String::as_str) {
        None | Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "sort_dirs must be asc or desc, not {other:?}"
        ))),
    }
}

/// A listed item: its creation order (time, then sequence) and its view.
type Found = ((DateTime<Utc>, u64), Value);

/// A listing under `key`: `found` in creation order (newest first unless
/// `sort_dirs=asc`), one page of it, and the pagination block.
fn listing(state: &KakaoState, params: &Params, key: &str, mut found: Vec<Found>) -> Answer {
    let (limit, offset) = page_bounds(params, state.page_limit)?;
    let desc = sort_desc(params)?;
    found.sort_by_key(|(created, _)| *created);
    if desc {
        found.reverse();
    }
    let items = found.into_iter().map(|(_, view)| view).collect();
    Ok(page(items, key, limit, offset))
}

fn page(items: Vec<Value>, key: &str, limit: u64, offset: u64) -> Reply {
    let total = items.len() as u64;
    let items: Vec<Value> = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    Reply::json(
        StatusCode::OK,
        json!({key: items, "pagination": {"total": total, "offset": offset, "limit": limit}}),
    )
}

/// A `created_at` filter: a time in ISO 8601 (UTC), bare (that second)
/// or after one of the comparison prefixes the OpenStack Block Storage
/// API takes for its time filters (`gt:`, `gte:`, `lt:`, `lte:`, `eq:`,
/// `neq:`). Listed times have whole seconds, so they compare as such.
#[derive(Debug, Clone, Copy)]
struct TimeFilter {
    op: &'static str,
    at: i64,
}

impl TimeFilter {
    fn read(params: &Params, key: &str) -> Result<Option<TimeFilter>, ApiError> {
        let Some(raw) = params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let (op, time) = ["gte", "gt", "lte", "lt", "neq", "eq"]
            .iter()
            .find_map(|op| {
                raw.strip_prefix(op)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|t| (*op, t))
            })
            .unwrap_or(("eq", raw));
        let at = DateTime::parse_from_rfc3339(time)
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "{key} must be an ISO 8601 time, optionally after gt:, gte:, lt:, lte:, eq: or neq:, not {raw:?}"
                ))
            })?
            .timestamp();
        Ok(Some(TimeFilter { op, at }))
    }

    fn matches(self, t: DateTime<Utc>) -> bool {
        let t = t.timestamp();
        match self.op {
            "gt" => t > self.at,
            "gte" => t >= self.at,
            "lt" => t < self.at,
            "lte" => t <= self.at,
            "neq" => t != self.at,
            _ => t == self.at,
        }
    }
}

/// Whether `t` passes the optional time filter.
fn time_ok(filter: Option<TimeFilter>, t: DateTime<Utc>) -> bool {
    filter.is_none_or(|f| f.matches(t))
}

/// A boolean filter (`true`/`false`); anything else is 400.
fn bool_filter(params: &Params, key: &str) -> Result<Option<bool>, ApiError> {
    match params
        .get(key)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be true or false, not {other:?}"
        ))),
    }
}

/// `GET /api/v1/instances`: filters `id`, `name` (substring), `vm_state`,
/// `created_at`; sorted by `created_at`, paged.
fn list_instances(state: &KakaoState, params: &Params, now: DateTime<Utc>) -> Answer {
    let created = TimeFilter::read(params, "created_at")?;
    let found: Vec<Found> = state
        .instances
        .values()
        .filter(|i| params.get("id").is_none_or(|id| &i.id == id))
        .filter(|_| param_is(params, "vm_state", model::VM_STATE))
        .filter(|i| time_ok(created, i.created_at))
        .filter(|i| {
            params
                .get("name")
                .is_none_or(|n| i.name.contains(n.as_str()))
        })
        .map(|i| ((i.created_at, i.seq), state.instance_view(i, now)))
        .collect();
    listing(state, params, "instances", found)
}

/// `GET /api/v1/volumes`: filters `id`, `name` (exact), `instance_id`,
/// `status`, `is_root`, `created_at`; sorted by `created_at`, paged.
fn list_volumes(state: &KakaoState, params: &Params, now: DateTime<Utc>) -> Answer {
    let eq = |k: &str, v: &str| param_is(params, k, v);
    let is_root = bool_filter(params, "is_root")?;
    let created = TimeFilter::read(params, "created_at")?;
    let found: Vec<Found> = state
        .volumes
        .values()
        .filter(|v| is_root.is_none_or(|r| v.is_root == r) && time_ok(created, v.created_at))
        .filter(|v| eq("id", &v.id) && eq("name", &v.name) && eq("status", v.status(now)))
        .filter(|v| param_is_some(params, "instance_id", v.instance_id.as_ref()))
        .map(|v| ((v.created_at, v.seq), state.volume_view(v, now)))
        .collect();
    listing(state, params, "volumes", found)
}

fn list_snapshots(state: &KakaoState, params: &Params, now: DateTime<Utc>) -> Answer {
    let eq = |k: &str, v: &str| param_is(params, k, v);
    let created = TimeFilter::read(params, "created_at")?;
    let found: Vec<Found> = state
        .live_snapshots(now)
        .filter(|s| time_ok(created, s.created_at))
        .filter(|s| eq("id", &s.id) && eq("name", &s.name) && eq("volume_id", &s.volume_id))
        .filter(|s| eq("status", s.status(now).unwrap_or_default()))
        .filter(|s| {
            eq(
                "is_incremental",
                if s.is_incremental { "true" } else { "false" },
            )
        })
        .filter(|s| param_is_some(params, "parent_id", s.parent_id.as_ref()))
        .map(|s| ((s.created_at, s.seq), s.view(now)))
        .collect();
    listing(state, params, "snapshots", found)
}
