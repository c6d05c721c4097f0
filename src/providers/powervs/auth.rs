//! Bearer tokens for pcloud calls, three ways:
//!
//! - IBM Cloud IAM: the API key exchanged (form POST) at `iam_endpoint`;
//! - IP4G: a refresh token exchanged at `{endpoint}/auth/v1/token`; a new
//!   refresh token in the answer replaces the old one, in memory and in the
//!   [`SecretStore`] (the state database), so a restart uses the newest;
//! - a static bearer token, never refreshed.
//!
//! A token is cached and refreshed once 80 % of its lifetime has passed,
//! and never used within 10 s of its expiry (a quarter of the lifetime for
//! tokens shorter than 40 s). A lifetime is believed up to a week (a larger
//! or absurd answer is cut to that, never a panic). After a 401 the caller
//! asks for one re-issue.
//! Tokens never appear in logs, errors or Debug output.
//! Also here: the IP4G device flow calls used by `snapwarden login` (single
//! calls; the command does the waiting).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use super::errors;
use super::wire;
use crate::config::{PowerVsAuth, Secret};
use crate::providers::http::{self, ApiClient};
use crate::providers::{ErrorKind, ProviderError, SecretStore, StoredSecret};

pub(super) const IAM_CALL: &str = "iam.token";
pub(super) const IP4G_CALL: &str = "ip4g.token";
const DEVICE_CODE_CALL: &str = "ip4g.device.code";
const DEVICE_TOKEN_CALL: &str = "ip4g.device.token";

/// Key of the IP4G refresh token in the [`SecretStore`].
pub const REFRESH_TOKEN_KEY: &str = "ip4g_refresh_token";

/// Never use a token this close to its expiry (IBM's SDK rule).
const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// The longest token lifetime believed (IAM tokens live an hour): a larger
/// `expires_in` or `expires` only makes the token be refreshed sooner, and
/// an absurd one (1e13 s) can never overflow a date.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// Bounds of the device flow's poll interval and code lifetime (RFC 8628
/// answers 5 s and 10-30 min): a larger answer is cut to these.
const DEVICE_INTERVAL: (f64, f64) = (1.0, 60.0);
const DEVICE_MAX_WAIT: f64 = 3600.0;

enum Mode {
    Iam {
        api_key: Secret,
        url: String,
    },
    Ip4g {
        url: String,
        configured: Option<Secret>,
        seed: String,
        store: Option<Arc<dyn SecretStore>>,
    },
    Static {
        token: Secret,
        expires: Option<DateTime<Utc>>,
    },
}

/// A cached access token and when to replace it.
#[derive(Clone)]
struct Access {
    token: Secret,
    /// Not used after this.
    usable_until: DateTime<Utc>,
    /// Replaced (if the token service answers) after this.
    refresh_after: DateTime<Utc>,
}

#[derive(Default)]
struct Cache {
    access: Option<Access>,
    /// IP4G: the newest refresh token this process holds.
    refresh: Option<Secret>,
}

/// The token source of one provider.
pub(super) struct Auth {
    provider: String,
    mode: Mode,
    api: ApiClient,
    /// Held across a token exchange so concurrent calls wait for one
    /// exchange instead of each making their own.
    cache: tokio::sync::Mutex<Cache>,
}

impl Auth {
    pub(super) fn new(
        provider: &str,
        endpoint: &str,
        auth: &PowerVsAuth,
        api: ApiClient,
        store: Option<Arc<dyn SecretStore>>,
    ) -> Auth {
        let mode = match auth {
            PowerVsAuth::ApiKey {
                api_key,
                iam_endpoint,
            } => Mode::Iam {
                api_key: api_key.clone(),
                url: iam_endpoint.clone(),
            },
            PowerVsAuth::RefreshToken { refresh_token } => Mode::Ip4g {
                url: format!("{endpoint}/auth/v1/token"),
                configured: refresh_token.clone(),
                seed: seed_of(refresh_token.as_ref()),
                store,
            },
            PowerVsAuth::BearerToken { bearer_token } => Mode::Static {
                token: bearer_token.clone(),
                expires: jwt_expiry(bearer_token.expose()),
            },
        };
        Auth {
            provider: provider.to_string(),
            mode,
            api,
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// A token to send now: the cached one, or a fresh one when it is due.
    pub(super) async fn token(&self) -> Result<Secret, ProviderError> {
        if let Mode::Static { token, expires } = &self.mode {
            return static_token(token, *expires, Utc::now());
        }
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if let Some(a) = cache.access.clone() {
            if now < a.refresh_after {
                return Ok(a.token);
            }
            if now < a.usable_until {
                // Due, but still good: a failed refresh keeps it in use.
                return match self.exchange(&mut cache).await {
                    Ok(t) => Ok(t),
                    Err(e) => {
                        tracing::warn!(provider = %self.provider, error = %e, "token refresh failed; the current token is still valid");
                        Ok(a.token)
                    }
                };
            }
        }
        self.exchange(&mut cache).await
    }

    /// After a 401 with `rejected`: one fresh token, unless another call
    /// already replaced it.
    pub(super) async fn reissue(&self, rejected: &Secret) -> Result<Secret, ProviderError> {
        if let Mode::Static { .. } = &self.mode {
            return Err(ProviderError::new(
                ErrorKind::Auth,
                "pcloud",
                "the static bearer_token was rejected (401): it has expired or was revoked; \
                 give a fresh one, or use api_key / refresh_token so snapwarden can renew it",
            ));
        }
        let mut cache = self.cache.lock().await;
        if let Some(a) = &cache.access {
            if a.token != *rejected && Utc::now() < a.usable_until {
                return Ok(a.token.clone());
            }
        }
        cache.access = None;
        self.exchange(&mut cache).await
    }

    async fn exchange(&self, cache: &mut Cache) -> Result<Secret, ProviderError> {
        let access = match &self.mode {
            Mode::Iam { api_key, url } => self.iam(api_key, url).await?,
            Mode::Ip4g {
                url,
                configured,
                seed,
                store,
            } => {
                self.ip4g(cache, url, configured.as_ref(), seed, store.as_deref())
                    .await?
            }
            Mode::Static { token, expires } => {
                return static_token(token, *expires, Utc::now());
            }
        };
        tracing::debug!(provider = %self.provider, refresh_after = %access.refresh_after, "new access token");
        let token = access.token.clone();
        cache.access = Some(access);
        Ok(token)
    }

    /// POST to a token service at `url` asking for JSON, the body set by
    /// `body`; the time it was sent (lifetimes count from it) and the answer.
    async fn post_token(
        &self,
        call: &str,
        url: &str,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(DateTime<Utc>, StatusCode, HeaderMap, Vec<u8>), ProviderError> {
        let sent = Utc::now();
        let (status, headers, answer) = self
            .api
            .send(call, |c| {
                body(
                    c.post(url)
                        .header(reqwest::header::ACCEPT, "application/json"),
                )
            })
            .await?;
        Ok((sent, status, headers, answer))
    }

    async fn iam(&self, api_key: &Secret, url: &str) -> Result<Access, ProviderError> {
        let (sent, status, headers, body) = self
            .post_token(IAM_CALL, url, |r| {
                r.form(&[
                    ("grant_type", "urn:ibm:params:oauth:grant-type:apikey"),
                    ("apikey", api_key.expose()),
                ])
            })
            .await?;
        if !status.is_success() {
            let parsed: wire::IamError = serde_json::from_slice(&body).unwrap_or_default();
            let detail = match (parsed.error_code, parsed.error_message) {
                (Some(c), Some(m)) => format!("{m} ({c})"),
                (None, Some(m)) => m,
                (Some(c), None) => c,
                (None, None) => format!("HTTP {}", status.as_u16()),
            };
            let detail = errors::truncate(&detail.replace(api_key.expose(), "[redacted]"));
            return Err(token_error(
                IAM_CALL,
                status.as_u16(),
                &headers,
                format!("IBM Cloud IAM rejected the api_key: {detail}"),
                format!("IBM Cloud IAM token service failed: {detail}"),
            ));
        }
        let t: wire::IamToken = serde_json::from_slice(&body)
            .map_err(|e| errors::malformed(IAM_CALL, e, body.len()))?;
        let from_lifetime = wire::seconds(t.expires_in.as_ref()).map(|s| sent + lifetime(s));
        let from_expiration = t
            .expiration
            .as_ref()
            .and_then(serde_json::Number::as_i64)
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
        // The earlier of the two: `expiration` is the server's clock,
        // `expires_in` counted from our send time is immune to skew.
        let expires = match (from_lifetime, from_expiration) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => {
                return Err(errors::malformed(
                    IAM_CALL,
                    "neither expires_in nor expiration in the token answer",
                    body.len(),
                ))
            }
        };
        Ok(plan(Secret::new(t.access_token), sent, expires))
    }

    async fn ip4g(
        &self,
        cache: &mut Cache,
        url: &str,
        configured: Option<&Secret>,
        seed: &str,
        store: Option<&dyn SecretStore>,
    ) -> Result<Access, ProviderError> {
        let current = self.current_refresh(cache, configured, seed, store).await?;
        let (sent, status, headers, body) = self
            .post_token(IP4G_CALL, url, |r| {
                r.json(&wire::Ip4gTokenRequest {
                    refresh_token: current.expose(),
                    source: "cli",
                })
            })
            .await?;
        if !status.is_success() {
            let e = errors::http_error(
                IP4G_CALL,
                status.as_u16(),
                &headers,
                &body,
                &[current.expose()],
            );
            return Err(token_error(
                IP4G_CALL,
                status.as_u16(),
                &headers,
                format!(
                    "the IP4G token service rejected the refresh token ({}): it has expired, \
                     was revoked or was already replaced; run `snapwarden login -c FILE \
                     --provider {}`",
                    e.message, self.provider
                ),
                format!("IP4G token service failed: {}", e.message),
            ));
        }
        let t: wire::Ip4gToken = serde_json::from_slice(&body)
            .map_err(|e| errors::malformed(IP4G_CALL, e, body.len()))?;
        if let Some(new) = t.refresh_token.filter(|r| !r.trim().is_empty()) {
            if new != current.expose() {
                self.keep_rotated(cache, Secret::new(new), &current, seed, store)
                    .await;
            }
        }
        let expires = t
            .expires
            .as_deref()
            .and_then(wire::parse_time)
            .ok_or_else(|| {
                errors::malformed(IP4G_CALL, "no valid `expires` in the token", body.len())
            })?;
        Ok(plan(Secret::new(t.access_token), sent, expires))
    }

    /// IP4G rotated the refresh token: the new one replaces the old in
    /// memory and, where there is a store, in the state database.
    async fn keep_rotated(
        &self,
        cache: &mut Cache,
        new: Secret,
        replaced: &Secret,
        seed: &str,
        store: Option<&dyn SecretStore>,
    ) {
        cache.refresh = Some(new.clone());
        match store {
            Some(store) => {
                let saved = store
                    .store_secret(
                        &self.provider,
                        REFRESH_TOKEN_KEY,
                        &StoredSecret {
                            value: new,
                            seed: seed.to_string(),
                        },
                        Some(replaced),
                    )
                    .await;
                match saved {
                    Ok(()) => {
                        tracing::info!(provider = %self.provider, "IP4G refresh token rotated; the new one is saved in the state database")
                    }
                    Err(e) => {
                        tracing::warn!(provider = %self.provider, error = %e, "IP4G refresh token rotated but cannot be saved: a restart will need `snapwarden login`")
                    }
                }
            }
            None => {
                tracing::info!(provider = %self.provider, "IP4G refresh token rotated (kept in memory)")
            }
        }
    }

    /// The refresh token to use: the store's if it descends from the
    /// configured one (another process may have rotated it), else the one
    /// this process holds, else the configured one.
    async fn current_refresh(
        &self,
        cache: &mut Cache,
        configured: Option<&Secret>,
        seed: &str,
        store: Option<&dyn SecretStore>,
    ) -> Result<Secret, ProviderError> {
        if let Some(store) = store {
            match store.load_secret(&self.provider, REFRESH_TOKEN_KEY).await {
                Ok(Some(s)) if s.seed == seed => {
                    cache.refresh = Some(s.value.clone());
                    return Ok(s.value);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(provider = %self.provider, error = %e, "cannot read the stored IP4G refresh token")
                }
            }
        }
        cache
            .refresh
            .clone()
            .or_else(|| configured.cloned())
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorKind::Auth,
                    IP4G_CALL,
                    format!(
                        "no IP4G refresh token: run `snapwarden login -c FILE --provider {}` \
                         (or set refresh_token_file / refresh_token_env)",
                        self.provider
                    ),
                )
            })
    }
}

/// `secs` (finite, non-negative) as a token lifetime, at most
/// [`MAX_TOKEN_LIFETIME`].
fn lifetime(secs: f64) -> chrono::Duration {
    let secs = secs.min(MAX_TOKEN_LIFETIME.as_secs_f64());
    chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

/// Refresh after 80 % of the lifetime, never use within the margin; a
/// lifetime beyond [`MAX_TOKEN_LIFETIME`] counts as that.
fn plan(token: Secret, received: DateTime<Utc>, expires: DateTime<Utc>) -> Access {
    let expires = received
        .checked_add_signed(chrono::Duration::seconds(
            MAX_TOKEN_LIFETIME.as_secs() as i64
        ))
        .map_or(expires, |cap| expires.min(cap));
    let lifetime = (expires - received).max(chrono::Duration::zero());
    let margin = chrono::Duration::from_std(SAFETY_MARGIN)
        .unwrap_or_default()
        .min(lifetime / 4);
    let usable_until = expires - margin;
    let refresh_after = (expires - lifetime / 5).min(usable_until);
    Access {
        token,
        usable_until,
        refresh_after,
    }
}

fn static_token(
    token: &Secret,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Secret, ProviderError> {
    match expires {
        Some(exp) if now >= exp => Err(ProviderError::new(
            ErrorKind::Auth,
            "pcloud",
            format!(
                "the static bearer_token expired at {} ({}s ago): static tokens are never \
                 renewed; give a fresh one, or use api_key / refresh_token",
                exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                (now - exp).num_seconds()
            ),
        )),
        _ => Ok(token.clone()),
    }
}

/// A token endpoint's non-2xx answer: 4xx means the credential is wrong
/// (never retried), 429 and 5xx are the service's trouble.
fn token_error(
    call: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    rejected: String,
    failed: String,
) -> ProviderError {
    let (kind, message) = match status {
        429 => (ErrorKind::Throttled, failed),
        400..=499 => (ErrorKind::Auth, rejected),
        _ => (ErrorKind::Transient, failed),
    };
    let mut e = ProviderError::new(kind, call, message).with_code(format!("http {status}"));
    if let Some(after) = http::retry_after(headers) {
        e = e.with_retry_after(after);
    }
    e
}

/// Which configured refresh token a stored chain descends from: a short
/// hash, never the token; `login` when none is configured.
pub fn seed_of(configured: Option<&Secret>) -> String {
    match configured {
        None => "login".to_string(),
        Some(s) => {
            let digest = Sha256::digest(format!("snapwarden-seed:{}", s.expose()).as_bytes());
            digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
        }
    }
}

/// The `exp` claim of a JWT-shaped token, if it has one.
pub(super) fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::<Utc>::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

/// What `snapwarden login` shows the operator.
#[derive(Debug, Clone)]
pub struct DeviceLogin {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_url: String,
    pub interval: Duration,
    pub expires_in: Duration,
}

/// One poll of the device token endpoint.
#[derive(Debug)]
pub enum DevicePoll {
    /// Not approved yet; poll again after the interval.
    Pending,
    /// Poll less often (add 5 s to the interval).
    SlowDown,
    /// Approved: the first refresh token.
    Granted(Secret),
}

/// `POST {endpoint}/auth/v1/device/code`.
pub async fn device_code(api: &ApiClient, endpoint: &str) -> Result<DeviceLogin, ProviderError> {
    let url = format!("{endpoint}/auth/v1/device/code");
    let (status, headers, body) = api
        .send(DEVICE_CODE_CALL, |c| {
            c.post(&url)
                .header(reqwest::header::ACCEPT, "application/json")
        })
        .await?;
    if !status.is_success() {
        return Err(errors::http_error(
            DEVICE_CODE_CALL,
            status.as_u16(),
            &headers,
            &body,
            &[],
        ));
    }
    let d: wire::DeviceCode = serde_json::from_slice(&body)
        .map_err(|e| errors::malformed(DEVICE_CODE_CALL, e, body.len()))?;
    Ok(DeviceLogin {
        device_code: Secret::new(d.device_code),
        user_code: d.user_code,
        verification_url: d.verification_url,
        interval: Duration::from_secs_f64(
            wire::seconds(d.interval.as_ref())
                .unwrap_or(5.0)
                .clamp(DEVICE_INTERVAL.0, DEVICE_INTERVAL.1),
        ),
        expires_in: Duration::from_secs_f64(
            wire::seconds(d.expires_in.as_ref())
                .unwrap_or(600.0)
                .min(DEVICE_MAX_WAIT),
        ),
    })
}

/// `POST {endpoint}/auth/v1/device/token` once.
pub async fn device_token(
    api: &ApiClient,
    endpoint: &str,
    device_code: &Secret,
) -> Result<DevicePoll, ProviderError> {
    let url = format!("{endpoint}/auth/v1/device/token");
    let (status, headers, body) = api
        .send(DEVICE_TOKEN_CALL, |c| {
            c.post(&url)
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&serde_json::json!({ "deviceCode": device_code.expose() }))
        })
        .await?;
    if status.is_success() {
        let t: wire::Ip4gToken = serde_json::from_slice(&body)
            .map_err(|e| errors::malformed(DEVICE_TOKEN_CALL, e, body.len()))?;
        return Ok(match t.refresh_token.filter(|r| !r.trim().is_empty()) {
            Some(r) => DevicePoll::Granted(Secret::new(r)),
            None => DevicePoll::Pending,
        });
    }
    let e = errors::http_error(
        DEVICE_TOKEN_CALL,
        status.as_u16(),
        &headers,
        &body,
        &[device_code.expose()],
    );
    let lower = e.message.to_ascii_lowercase();
    if lower.contains("slow_down") || status.as_u16() == 429 {
        Ok(DevicePoll::SlowDown)
    } else if lower.contains("pending") {
        Ok(DevicePoll::Pending)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn an_hour_token_is_refreshed_after_48_minutes_and_dropped_10s_before_expiry() {
        let a = plan(Secret::new("x"), t(0), t(3600));
        assert_eq!(a.refresh_after, t(2880));
        assert_eq!(a.usable_until, t(3590));
    }

    #[test]
    fn short_tokens_keep_a_quarter_of_their_lifetime_as_margin() {
        let a = plan(Secret::new("x"), t(0), t(12));
        assert_eq!(a.usable_until, t(9));
        assert_eq!(a.refresh_after, t(9));
        let a = plan(Secret::new("x"), t(0), t(-5));
        assert!(a.usable_until <= t(0));
    }

    #[test]
    fn lifetimes_beyond_a_week_count_as_a_week() {
        let week = 7 * 86_400;
        for far in [t(week * 10), DateTime::<Utc>::MAX_UTC] {
            let a = plan(Secret::new("x"), t(0), far);
            assert_eq!(a.usable_until, t(week - 10));
            assert_eq!(a.refresh_after, t(week - week / 5));
        }
        assert_eq!(lifetime(1e300), chrono::Duration::seconds(week));
        assert_eq!(lifetime(f64::MAX), chrono::Duration::seconds(week));
        assert_eq!(lifetime(3600.5), chrono::Duration::milliseconds(3_600_500));
    }

    #[test]
    fn static_tokens_say_plainly_when_they_expired() {
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"exp\":{}}}", 1_700_000_100));
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.sig");
        assert_eq!(jwt_expiry(&token), Some(t(100)));
        assert_eq!(jwt_expiry("opaque-token"), None);
        let secret = Secret::new(token.clone());
        assert!(static_token(&secret, jwt_expiry(&token), t(50)).is_ok());
        let e = static_token(&secret, jwt_expiry(&token), t(160)).err();
        let e = e
            .map(|e| (e.kind, e.message))
            .unwrap_or((ErrorKind::Permanent, String::new()));
        assert_eq!(e.0, ErrorKind::Auth);
        assert!(
            e.1.contains("expired at") && e.1.contains("60s ago"),
            "{}",
            e.1
        );
        assert!(!e.1.contains(&token));
    }

    #[test]
    fn seeds_are_short_hashes_not_tokens() {
        let s = seed_of(Some(&Secret::new("refresh-abc")));
        assert_eq!(s.len(), 16);
        assert!(!s.contains("refresh"));
        assert_ne!(s, seed_of(Some(&Secret::new("refresh-abd"))));
        assert_eq!(seed_of(None), "login");
    }
}
