//! GetOperations, GetOperationsForResource and GetActiveNames over what the
//! simulator holds, paged by `pageToken` / `nextPageToken`.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::actions::Ctx;
use super::json::op_json;
use super::model::Op;
use super::paging::{
    decode_op_token, decode_snapshot_token, encode_op_token, encode_snapshot_token,
};
use super::ApiError;

type Input = serde_json::Map<String, Value>;

fn token<T>(input: &Input, decode: fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    match input.get("pageToken") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.is_empty() => Ok(None),
        Some(Value::String(t)) => decode(t)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("The pageToken is not valid")),
        Some(_) => Err(ApiError::serialization("pageToken must be a string")),
    }
}

/// Operations oldest first (by `createdAt`, then id), all of them or those
/// on `resource`; a page of the page size, `nextPageToken` while more
/// follow. A resource with neither a live name nor an operation is
/// `NotFoundException`.
pub(super) fn get_operations(
    ctx: &mut Ctx<'_>,
    input: &Input,
    resource: Option<&str>,
) -> Result<Value, ApiError> {
    let after = token(input, decode_op_token)?;
    let state = &*ctx.state;
    let now = ctx.now;
    let mut ops: Vec<&Op> = state
        .operations
        .values()
        .filter(|o| resource.is_none_or(|r| o.resource_name == r))
        .collect();
    if let Some(r) = resource {
        if ops.is_empty() && !state.name_in_use(r, now) {
            return Err(ApiError::not_found(format!(
                "The resource does not exist: {r}"
            )));
        }
    }
    ops.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let start = match &after {
        Some((ms, id)) => ops
            .iter()
            .position(|o| (o.created_at.timestamp_millis(), o.id.as_str()) > (*ms, id.as_str()))
            .unwrap_or(ops.len()),
        None => 0,
    };
    let size = state.page_size();
    let rest = &ops[start..];
    let page: Vec<Value> = rest.iter().take(size).map(|o| op_json(o, now)).collect();
    let mut out = json!({ "operations": page });
    if rest.len() > size {
        if let Some(last) = rest.get(size - 1) {
            out["nextPageToken"] = json!(encode_op_token(
                last.created_at.timestamp_millis(),
                &last.id
            ));
        }
    }
    Ok(out)
}

/// The names of every instance, disk and live snapshot (one name space), in
/// name order, a page at a time.
pub(super) fn get_active_names(ctx: &mut Ctx<'_>, input: &Input) -> Result<Value, ApiError> {
    let after = token(input, decode_snapshot_token)?;
    let state = &*ctx.state;
    let now = ctx.now;
    let mut names: BTreeSet<&str> = state.instances.keys().map(String::as_str).collect();
    names.extend(state.disks.keys().map(String::as_str));
    names.extend(
        state
            .snapshots
            .values()
            .filter(|s| s.gone_at.is_none_or(|t| now < t))
            .map(|s| s.name.as_str()),
    );
    let size = state.page_size();
    let rest: Vec<&str> = names
        .into_iter()
        .filter(|n| after.as_deref().is_none_or(|a| *n > a))
        .take(size + 1)
        .collect();
    let page: Vec<&str> = rest.iter().take(size).copied().collect();
    let mut out = json!({ "activeNames": page });
    if rest.len() > size {
        if let Some(last) = page.last() {
            out["nextPageToken"] = json!(encode_snapshot_token(last));
        }
    }
    Ok(out)
}
