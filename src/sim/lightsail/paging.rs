//! Page tokens: an offset for resource listings, the last name for
//! snapshot listings.

use base64::Engine as _;
use serde_json::{json, Value};

pub(super) fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"v\":1,\"o\":{offset}}}"))
}

/// A snapshot listing's token: the page resumes after this name (stable
/// while snapshots come and go between pages, as an offset is not).
pub(super) fn encode_snapshot_token(after: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({ "v": 2, "after": after }).to_string())
}

pub(super) fn decode_snapshot_token(t: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v.get("v")?.as_u64()? != 2 {
        return None;
    }
    Some(v.get("after")?.as_str()?.to_string())
}

pub(super) fn decode_token(t: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    usize::try_from(v.get("o")?.as_u64()?).ok()
}

/// An operation listing's token: the page resumes after this operation in
/// (createdAt, id) order, which new operations only extend.
pub(super) fn encode_op_token(created_ms: i64, id: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({ "v": 3, "t": created_ms, "id": id }).to_string())
}

pub(super) fn decode_op_token(t: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v.get("v")?.as_u64()? != 3 {
        return None;
    }
    Some((v.get("t")?.as_i64()?, v.get("id")?.as_str()?.to_string()))
}
