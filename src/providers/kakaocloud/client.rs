//! One KakaoCloud call: the X-Auth-Token (issued from the application
//! credential, cached until 5 minutes before `expires_at`, re-issued once
//! on a 401), the request to the Volume or BCS host, and the mapping of a
//! non-2xx answer to a [`ProviderError`]. Single attempts otherwise: the
//! engine owns retries. The token, the secret and the URLs are never
//! logged and are scrubbed from any message the API echoes.

use std::time::Instant;

use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::errors;
use super::wire::{parse_time, TokenRequest, TokenResponse};
use crate::config::{KakaoCloudSettings, Secret};
use crate::providers::http::{self, ApiClient};
use crate::providers::{ErrorKind, ProviderError};

/// The call name of a token issue in errors and logs.
pub(super) const ISSUE_TOKEN: &str = "IssueToken";

/// Renew this long before `expires_at` (as the official
/// Terraform provider does). Tokens shorter-lived than twice this renew
/// at half their life instead, so a short token is not renewed per call.
const RENEW_BEFORE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Characters left as they are in one URL path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `id` as one path segment.
pub(super) fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// Which service a call goes to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Host {
    Volume,
    Bcs,
}

/// What one call sends: method, service, path, query and JSON body.
pub(super) struct Request<'a> {
    method: Method,
    host: Host,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<Vec<u8>>,
}

impl<'a> Request<'a> {
    /// `method` on `host`'s `path`, without query or body.
    pub(super) fn new(method: Method, host: Host, path: &'a str) -> Self {
        Request {
            method,
            host,
            path,
            query: &[],
            body: None,
        }
    }

    pub(super) fn with_query(self, query: &'a [(&'a str, String)]) -> Self {
        Request { query, ..self }
    }
}

#[derive(Clone)]
struct Token {
    value: Secret,
    renew_at: DateTime<Utc>,
}

pub(super) struct Client {
    volume: Result<String, String>,
    bcs: Result<String, String>,
    iam: Result<String, String>,
    credential_id: String,
    secret: Secret,
    /// One issue at a time: concurrent callers wait for the same token.
    token: tokio::sync::Mutex<Option<Token>>,
    api: ApiClient,
}

fn base_url(raw: &str, key: &str) -> Result<String, String> {
    let url = http::base_url(&format!("KakaoCloud {key}"), raw)?;
    Ok(url.as_str().trim_end_matches('/').to_string())
}

impl Client {
    pub(super) fn new(settings: &KakaoCloudSettings, api: ApiClient) -> Client {
        Client {
            volume: base_url(&settings.endpoint, "endpoint"),
            bcs: base_url(&settings.bcs_endpoint, "bcs_endpoint"),
            iam: base_url(&settings.iam_endpoint, "iam_endpoint"),
            credential_id: settings.application_credential_id.clone(),
            secret: settings.application_credential_secret.clone(),
            token: tokio::sync::Mutex::new(None),
            api,
        }
    }

    /// Send one call and parse its 2xx body as `T`.
    pub(super) async fn json<T: DeserializeOwned>(
        &self,
        call: &str,
        req: Request<'_>,
    ) -> Result<T, ProviderError> {
        let bytes = self.send(call, req).await?;
        serde_json::from_slice(&bytes).map_err(|e| errors::malformed(call, e, bytes.len()))
    }

    /// POST `body` as JSON to the Volume API's `path`; the 2xx answer as `T`.
    pub(super) async fn post_volume<T: DeserializeOwned>(
        &self,
        call: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ProviderError> {
        let req = Request {
            body: Some(encode(call, body)?),
            ..Request::new(Method::POST, Host::Volume, path)
        };
        self.json(call, req).await
    }

    /// PUT `body` as JSON to the Volume API's `path`; any 2xx answer will
    /// do (its body is not read).
    pub(super) async fn put_volume(
        &self,
        call: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(), ProviderError> {
        let req = Request {
            body: Some(encode(call, body)?),
            ..Request::new(Method::PUT, Host::Volume, path)
        };
        self.send(call, req).await.map(|_| ())
    }

    /// Send one call; the body of a 2xx answer, or the mapped error. A 401
    /// re-issues the token and repeats the call once.
    pub(super) async fn send(
        &self,
        call: &str,
        req: Request<'_>,
    ) -> Result<Vec<u8>, ProviderError> {
        let Request {
            method,
            host,
            path,
            query,
            body,
        } = req;
        let base = match host {
            Host::Volume => &self.volume,
            Host::Bcs => &self.bcs,
        }
        .as_ref()
        .map_err(|e| ProviderError::new(ErrorKind::Permanent, call, e.clone()))?;
        let url = format!("{base}{path}");
        let mut reissued = false;
        loop {
            let token = self.token().await?;
            let started = Instant::now();
            let (status, headers, bytes) = self
                .api
                .send(call, |h: &reqwest::Client| {
                    let mut req = h
                        .request(method.clone(), &url)
                        .header("X-Auth-Token", token.expose())
                        .header(reqwest::header::ACCEPT, "application/json");
                    if !query.is_empty() {
                        req = req.query(query);
                    }
                    if let Some(b) = &body {
                        req = req
                            .header(reqwest::header::CONTENT_TYPE, "application/json")
                            .body(b.to_vec());
                    }
                    req
                })
                .await
                .inspect_err(|e| {
                    tracing::debug!(call, kind = %e.kind, "kakaocloud call failed in transport");
                })?;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::debug!(
                call,
                http_status = status.as_u16(),
                elapsed_ms,
                "kakaocloud call"
            );
            if status.is_success() {
                return Ok(bytes);
            }
            if status == StatusCode::UNAUTHORIZED && !reissued {
                // Expired early (role change, key rotation): one fresh token.
                reissued = true;
                self.forget(&token).await;
                continue;
            }
            return Err(errors::http_error(
                call,
                status.as_u16(),
                &bytes,
                http::retry_after(&headers),
                |m| self.scrub(m, &token),
            ));
        }
    }

    /// The cached token, or a new one when it is due for renewal.
    async fn token(&self) -> Result<Secret, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            if Utc::now() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        let fresh = self.issue().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drop the cached token if it is still the one that was rejected.
    async fn forget(&self, rejected: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == rejected) {
            *cached = None;
        }
    }

    async fn issue(&self) -> Result<Token, ProviderError> {
        let iam = self
            .iam
            .as_ref()
            .map_err(|e| ProviderError::new(ErrorKind::Permanent, ISSUE_TOKEN, e.clone()))?;
        let body = serde_json::to_vec(&TokenRequest::new(
            &self.credential_id,
            self.secret.expose(),
        ))
        .map_err(|e| errors::unexpected(ISSUE_TOKEN, format!("cannot encode the body: {e}")))?;
        let issued_locally = Utc::now();
        let (status, headers, bytes) = self
            .api
            .send(ISSUE_TOKEN, |h: &reqwest::Client| {
                h.post(iam)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(body)
            })
            .await?;
        if !status.is_success() {
            tracing::debug!(
                http_status = status.as_u16(),
                "kakaocloud token issue rejected"
            );
            return Err(errors::http_error(
                ISSUE_TOKEN,
                status.as_u16(),
                &bytes,
                http::retry_after(&headers),
                |m| m.replace(self.secret.expose(), "[redacted]"),
            ));
        }
        let value = headers
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| errors::unexpected(ISSUE_TOKEN, "no X-Subject-Token header"))?
            .to_string();
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| errors::malformed(ISSUE_TOKEN, e, bytes.len()))?;
        let token = parsed.token.as_ref();
        let expires_at = token
            .and_then(|t| t.expires_at.as_deref())
            .and_then(parse_time)
            .ok_or_else(|| errors::unexpected(ISSUE_TOKEN, "no valid token.expires_at"))?;
        let issued_at = token
            .and_then(|t| t.issued_at.as_deref())
            .and_then(parse_time)
            .unwrap_or(issued_locally);
        let renew_at = renew_at(issued_at, expires_at);
        tracing::debug!(expires_at = %expires_at, renew_at = %renew_at, "kakaocloud token issued");
        Ok(Token {
            value: Secret::new(value),
            renew_at,
        })
    }

    /// Remove the secret and the token from a server message.
    fn scrub(&self, message: &str, token: &Secret) -> String {
        let mut out = message.to_string();
        for needle in [self.secret.expose(), token.expose()] {
            if !needle.is_empty() {
                out = out.replace(needle, "[redacted]");
            }
        }
        out
    }
}

/// When to stop using a token: 5 minutes before it expires, or halfway
/// through its life if that is shorter.
pub(super) fn renew_at(issued_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> DateTime<Utc> {
    let life = (expires_at - issued_at).max(chrono::TimeDelta::zero());
    expires_at - RENEW_BEFORE.min(life / 2)
}

/// A request body as JSON bytes.
pub(super) fn encode(call: &str, body: &impl Serialize) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body)
        .map_err(|e| errors::unexpected(call, format!("cannot encode the request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn renewal_is_five_minutes_early_or_at_half_life() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 7, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let twelve_hours = t0 + chrono::TimeDelta::hours(12);
        assert_eq!(
            renew_at(t0, twelve_hours),
            twelve_hours - chrono::TimeDelta::minutes(5)
        );
        let two_secs = t0 + chrono::TimeDelta::seconds(2);
        assert_eq!(renew_at(t0, two_secs), t0 + chrono::TimeDelta::seconds(1));
        assert_eq!(renew_at(t0, t0), t0);
        assert_eq!(renew_at(two_secs, t0), t0);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("3f500f00-ed80"), "3f500f00-ed80");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn base_urls_lose_trailing_slash_and_query() {
        assert_eq!(
            base_url("http://127.0.0.1:1/kakaocloud/volume/?x=1", "endpoint"),
            Ok("http://127.0.0.1:1/kakaocloud/volume".to_string())
        );
        assert!(base_url("ftp://x", "endpoint").is_err());
    }
}
