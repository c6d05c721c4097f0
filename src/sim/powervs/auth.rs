//! The token services: IBM IAM (`/identity/token`, apikey grant) and the
//! IP4G service (`/auth/v1/token` with rotating refresh tokens, and the
//! device flow at `/auth/v1/device/{code,token}`).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::model::{self, format_time, Issuer};
use super::{api_error, json_body, text_member, Answer, ApiError, Ctx, PvsState};
use crate::sim::form;

pub(super) fn iam_token(ctx: &mut Ctx<'_>) -> Answer {
    let form: BTreeMap<String, String> = form::decode_lossy(&String::from_utf8_lossy(ctx.body));
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    ctx.logged.insert("grant_type".into(), grant.clone());
    let iam_error = |status: StatusCode, code: &str, message: &str| ApiError {
        status,
        body: json!({
            "context": {"requestId": model::uuid_like(), "requestType": "incoming.Identity_Token"},
            "errorCode": code,
            "errorMessage": message,
        }),
    };
    if grant != "urn:ibm:params:oauth:grant-type:apikey" {
        return Err(iam_error(
            StatusCode::BAD_REQUEST,
            "BXNIM0109E",
            "Property 'grant_type' is missing or not supported",
        ));
    }
    let key = form.get("apikey").map(String::as_str).unwrap_or_default();
    if key.is_empty() {
        return Err(iam_error(
            StatusCode::BAD_REQUEST,
            "BXNIM0415E",
            "Provided API key could not be found",
        ));
    }
    if !ctx.pvs.api_keys.contains(key) {
        return Err(iam_error(
            StatusCode::BAD_REQUEST,
            "BXNIM0415E",
            "Provided API key could not be found",
        ));
    }
    let (token, expires) = ctx.pvs.issue_access(Issuer::Iam, ctx.now);
    Ok((
        StatusCode::OK,
        json!({
            "access_token": token,
            "refresh_token": "not_supported",
            "ims_user_id": 2222222,
            "token_type": "Bearer",
            "expires_in": (expires - ctx.now).num_seconds(),
            "expiration": expires.timestamp(),
            "scope": "ibm openid",
        }),
    ))
}

fn ip4g_token_json(pvs: &mut PvsState, now: DateTime<Utc>, refresh: &str) -> Value {
    let (token, expires) = pvs.issue_access(Issuer::Ip4g, now);
    json!({
        "accessToken": token,
        "expires": format_time(expires),
        "refreshToken": refresh,
        "type": "Bearer",
    })
}

pub(super) fn ip4g_token(ctx: &mut Ctx<'_>) -> Answer {
    let body = json_body(ctx)?;
    let source = body.get("source").and_then(Value::as_str).unwrap_or("cli");
    ctx.logged.insert("source".into(), source.to_string());
    if !matches!(source, "cli" | "web") {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("invalid source {source:?}: expected cli or web"),
            "bad request",
        ));
    }
    let refresh = text_member(&body, "refreshToken");
    match ctx.pvs.refresh_tokens.get(&refresh) {
        Some(true) => {}
        Some(false) => {
            return Err(api_error(
                StatusCode::UNAUTHORIZED,
                "refresh token has already been used or revoked",
                "invalid_grant",
            ))
        }
        None => {
            return Err(api_error(
                StatusCode::UNAUTHORIZED,
                "refresh token is invalid",
                "invalid_grant",
            ))
        }
    }
    let next = if ctx.pvs.rotate_refresh_tokens {
        ctx.pvs.refresh_tokens.insert(refresh, false);
        ctx.pvs.issue_refresh()
    } else {
        refresh
    };
    ctx.logged
        .insert("rotated".into(), ctx.pvs.rotate_refresh_tokens.to_string());
    Ok((StatusCode::OK, ip4g_token_json(ctx.pvs, ctx.now, &next)))
}

pub(super) fn device_code(ctx: &mut Ctx<'_>) -> Answer {
    let device = crate::sim::random_id("dc-", 40);
    let user_code = format!(
        "{}-{}",
        crate::sim::random_id("", 4).to_ascii_uppercase(),
        crate::sim::random_id("", 4).to_ascii_uppercase()
    );
    let expires_in = 600;
    ctx.pvs.devices.insert(
        device.clone(),
        model::Device {
            user_code: user_code.clone(),
            expires: ctx.now + chrono::Duration::seconds(expires_in),
            approved: false,
        },
    );
    ctx.logged.insert("userCode".into(), user_code.clone());
    Ok((
        StatusCode::OK,
        json!({
            "deviceCode": device,
            "expiresIn": expires_in,
            "interval": ctx.pvs.device_interval_s,
            "userCode": user_code,
            "verificationURL": "http://127.0.0.1/powervs/device",
        }),
    ))
}

pub(super) fn device_token(ctx: &mut Ctx<'_>) -> Answer {
    let body = json_body(ctx)?;
    let code = text_member(&body, "deviceCode");
    let Some(device) = ctx.pvs.devices.get(&code).cloned() else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "unknown or already used device code",
            "invalid_grant",
        ));
    };
    if ctx.now >= device.expires {
        ctx.pvs.devices.remove(&code);
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "the device code has expired",
            "expired_token",
        ));
    }
    if !device.approved {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "authorization pending: the user has not approved this device yet",
            "authorization_pending",
        ));
    }
    ctx.pvs.devices.remove(&code);
    let refresh = ctx.pvs.issue_refresh();
    Ok((StatusCode::OK, ip4g_token_json(ctx.pvs, ctx.now, &refresh)))
}
