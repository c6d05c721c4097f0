//! The IAM token service (`POST /identity/v3/auth/tokens` with an
//! application credential, Keystone's error shapes) and the `X-Auth-Token`
//! check every other call passes first.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::model;
use super::{ApiError, Ctx, Reply};

/// `X-Auth-Token`: present, known and not expired.
pub(super) fn check_token(ctx: &Ctx<'_>, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = crate::sim::pipeline::header_str(headers, "x-auth-token");
    if token.is_empty() {
        return Err(ApiError::unauthorized("X-Auth-Token header is required."));
    }
    if !ctx.state.token_valid(token, ctx.now) {
        return Err(ApiError::unauthorized(
            "The token is invalid or has expired.",
        ));
    }
    Ok(())
}

/// `POST /identity/v3/auth/tokens` with an application credential.
pub(super) fn issue_token(
    ctx: &mut Ctx<'_>,
    headers: &HeaderMap,
    raw_body: Option<&Bytes>,
    body: &Option<Value>,
) -> Result<Reply, ApiError> {
    let json_ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json_ct {
        return Err(ApiError::keystone(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "Content-Type must be application/json.",
        ));
    }
    if raw_body.is_none_or(|b| b.is_empty()) || body.is_none() {
        return Err(ApiError::keystone(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "The request body is not valid JSON.",
        ));
    }
    let identity = body
        .as_ref()
        .and_then(|b| b.pointer("/auth/identity"))
        .ok_or_else(|| {
            ApiError::keystone(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "auth.identity is required.",
            )
        })?;
    let methods_ok = identity
        .get("methods")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x == "application_credential"));
    let cred = identity.get("application_credential");
    let id = cred
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = cred
        .and_then(|c| c.get("secret"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !methods_ok || id.is_empty() {
        return Err(ApiError::keystone(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "methods must include application_credential, with its id and secret.",
        ));
    }
    let now = ctx.now;
    let Some((token, issued)) = ctx.state.issue_token(id, secret, now) else {
        return Err(ApiError::keystone(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The request you have made requires authentication.",
        ));
    };
    Ok(Reply {
        status: StatusCode::CREATED,
        body: Some(token_body(&issued)),
        headers: vec![("x-subject-token", token)],
    })
}

/// `GET /identity/v3/auth/tokens` (Keystone v3 token validation): a
/// missing or bad `X-Auth-Token` is 401 (Keystone's error shape); the
/// `X-Subject-Token` is answered 200 with its token body and echoed in the
/// header, or 404 when unknown or expired.
pub(super) fn validate_token(ctx: &Ctx<'_>, headers: &HeaderMap) -> Result<Reply, ApiError> {
    let caller = crate::sim::pipeline::header_str(headers, "x-auth-token");
    if !ctx.state.token_valid(caller, ctx.now) {
        return Err(ApiError::keystone(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The request you have made requires authentication.",
        ));
    }
    let subject = crate::sim::pipeline::header_str(headers, "x-subject-token");
    if subject.is_empty() {
        return Err(ApiError::keystone(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "X-Subject-Token header is required.",
        ));
    }
    let issued = ctx.state.live_token(subject, ctx.now).ok_or_else(|| {
        ApiError::keystone(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("Could not find token: {subject}."),
        )
    })?;
    Ok(Reply {
        status: StatusCode::OK,
        body: Some(token_body(issued)),
        headers: vec![("x-subject-token", subject.to_string())],
    })
}

/// The `{"token": …}` body of an issued or validated token.
fn token_body(issued: &model::IssuedToken) -> Value {
    let micro = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    json!({"token": {
        "methods": ["application_credential"],
        "expires_at": micro(issued.expires_at),
        "issued_at": micro(issued.issued_at),
        "project": {"id": model::PROJECT_ID, "name": "sim", "domain": {"id": "default", "name": "Default"}},
        "user": {"id": model::USER_ID, "name": "sim-user", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "sim-role-member", "name": "member"}],
        "application_credential": {"id": issued.credential_id, "name": "snapwarden", "restricted": true},
        "catalog": [],
        "audit_ids": [issued.audit_id],
    }})
}
