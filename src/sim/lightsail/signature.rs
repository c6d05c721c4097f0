//! SigV4 verification: the simulator parses `Authorization`, looks up the
//! secret of the access key, and recomputes the signature with the
//! `aws-sigv4` crate over the received method, path, query, the headers the
//! client listed as signed, and the body. It never borrows the provider's
//! code: a client that signs wrongly must fail here.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};

use super::{ApiError, LightsailState};
use crate::sim::pipeline::header_str;

/// Requests signed further than this from the server clock are refused.
const SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

const SERVICE: &str = "lightsail";

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let auth = Authorization {
        access_key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    };
    (scope.next()? == "aws4_request").then_some(auth)
}

/// AWS's JSON services answer an unknown access key or a session token it
/// did not issue alike: HTTP 400, `UnrecognizedClientException`.
fn unrecognized_client() -> ApiError {
    ApiError::new(
        400,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

fn invalid_signature(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidSignatureException", message)
}

/// Access key, clock window, scope, then the signature itself.
#[allow(clippy::too_many_arguments)]
pub(super) fn authenticate(
    state: &LightsailState,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let raw = header_str(headers, "authorization");
    if raw.is_empty() {
        return Err(ApiError::new(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    }
    let auth = parse_authorization(raw).ok_or_else(|| {
        ApiError::new(
            400,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' \
             parameters of an AWS4-HMAC-SHA256 signature",
        )
    })?;
    let secret = state
        .secret(auth.access_key_id)
        .ok_or_else(unrecognized_client)?;
    // A session token must be the one the key was issued with; a long-term
    // key takes none, and a temporary key is useless without its token.
    let sent_token = headers
        .get("x-amz-security-token")
        .map(|v| v.to_str().unwrap_or_default());
    if sent_token != state.session_token(auth.access_key_id) {
        return Err(unrecognized_client());
    }
    let amz_date = header_str(headers, "x-amz-date");
    let signed_at = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map(|t| t.and_utc())
        .map_err(|_| {
            invalid_signature("X-Amz-Date is missing or not of the form YYYYMMDDTHHMMSSZ")
        })?;
    if (now - signed_at).abs() > SKEW {
        return Err(invalid_signature(format!(
            "Signature expired: {amz_date} is now earlier or later than the server time by more \
             than 15 minutes"
        )));
    }
    if auth.service != SERVICE || auth.date != signed_at.format("%Y%m%d").to_string() {
        return Err(invalid_signature(format!(
            "Credential should be scoped to a valid date and the service '{SERVICE}'"
        )));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(invalid_signature(format!(
                "'{required}' must be a signed header"
            )));
        }
    }
    let expected = compute(
        auth.access_key_id,
        secret,
        auth.region,
        signed_at.into(),
        method,
        path,
        query,
        headers,
        &auth.signed_headers,
        body,
    )
    .ok_or_else(|| invalid_signature("the request could not be canonicalized"))?;
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(invalid_signature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    Ok(())
}

/// The signature the client should have sent, over exactly the headers it
/// listed (so nothing is excluded or added here).
#[allow(clippy::too_many_arguments)]
pub(super) fn compute(
    access_key_id: &str,
    secret: &str,
    region: &str,
    time: SystemTime,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed_headers: &[&str],
    body: &[u8],
) -> Option<String> {
    let identity: Identity =
        Credentials::new(access_key_id, secret, None, None, "simulator").into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let mut values: Vec<(&str, String)> = Vec::new();
    for name in signed_headers {
        let all: Vec<&str> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if all.is_empty() {
            return None;
        }
        values.push((name, all.join(",")));
    }
    let uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let signable = SignableRequest::new(
        method,
        uri,
        values.iter().map(|(k, v)| (*k, v.as_str())),
        SignableBody::Bytes(body),
    )
    .ok()?;
    let output = sign(signable, &params).ok()?;
    Some(output.signature().to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// A signing vector computed with botocore and re-derived by hand.
    #[test]
    fn reproduces_the_documented_vector() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(
            "host",
            HeaderValue::from_static("lightsail.us-east-2.amazonaws.com"),
        );
        headers.insert("x-amz-date", HeaderValue::from_static("20240115T120000Z"));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("Lightsail_20161128.CreateInstanceSnapshot"),
        );
        let body =
            br#"{"instanceName":"web-1","instanceSnapshotName":"web-1-auto-20240115T120000Z"}"#;
        let time = DateTime::parse_from_rfc3339("2024-01-15T12:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        let sig = compute(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-east-2",
            time.into(),
            "POST",
            "/",
            "",
            &headers,
            &["content-type", "host", "x-amz-date", "x-amz-target"],
            body,
        );
        assert_eq!(
            sig.as_deref(),
            Some("6bac2ba391f60867fedf6d529442975be07b05cb34300b273f13fa3abc888614")
        );
    }

    #[test]
    fn parses_the_authorization_header() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-2/lightsail/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature=abc",
        )
        .expect("well formed");
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.region, "us-east-2");
        assert_eq!(a.signed_headers, vec!["content-type", "host", "x-amz-date"]);
        assert!(parse_authorization("Bearer x").is_none());
    }
}
