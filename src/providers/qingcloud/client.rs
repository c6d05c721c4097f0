//! One signed QingCloud API call: common parameters, a fresh signature,
//! the GET request built from exactly the signed query, and the response
//! read into either the action's type or a classified [`ProviderError`].
//!
//! Owns the endpoint and the credentials. Does not retry and never sleeps
//! (the engine owns the retry policy); never logs the URL, the signature
//! or the secret.

use std::time::Instant;

use chrono::Utc;
use serde::de::DeserializeOwned;

use super::errors;
use super::sign;
use super::wire::Envelope;
use crate::config::{QingCloudSettings, Secret};
use crate::providers::http::{self, ApiClient};
use crate::providers::query_api::{self, Dialect};
use crate::providers::{ErrorKind, ProviderError};

/// The endpoint, split once: the URL up to the path (no query) and the
/// path that is signed.
#[derive(Debug, Clone)]
struct Endpoint {
    base: String,
    path: String,
}

fn parse_endpoint(endpoint: &str) -> Result<Endpoint, String> {
    let url = query_api::parse_endpoint("QingCloud", endpoint)?;
    Ok(Endpoint {
        path: url.path().to_string(),
        base: url.as_str().to_string(),
    })
}

pub(super) struct Client {
    zone: String,
    access_key_id: String,
    secret: Secret,
    /// An endpoint that does not parse fails every call with a permanent
    /// error rather than panicking at construction.
    endpoint: Result<Endpoint, String>,
    api: ApiClient,
}

impl Client {
    pub(super) fn new(settings: &QingCloudSettings, api: ApiClient) -> Client {
        Client {
            zone: settings.zone.trim().to_ascii_lowercase(),
            access_key_id: settings.access_key_id.clone(),
            secret: settings.secret_access_key.clone(),
            endpoint: parse_endpoint(&settings.endpoint),
            api,
        }
    }

    /// Sign and send `action` with `params` (the action's own parameters;
    /// the common ones are added here, with a fresh time stamp), and parse
    /// a `ret_code: 0` body as `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        action: &str,
        params: Vec<(String, String)>,
    ) -> Result<T, ProviderError> {
        let endpoint = self
            .endpoint
            .as_ref()
            .map_err(|e| ProviderError::new(ErrorKind::Permanent, action, e.clone()))?;

        let started = Instant::now();
        // Kept to scrub it from any message the API echoes back.
        let mut signature = String::new();
        let sent = self
            .api
            .send(action, |http: &reqwest::Client| {
                let mut all = params;
                all.extend([
                    ("action".to_string(), action.to_string()),
                    ("zone".to_string(), self.zone.clone()),
                    // Signed after the rate-limit wait: a queued request
                    // never goes out with a stale time stamp.
                    ("time_stamp".to_string(), sign::time_stamp(Utc::now())),
                    ("access_key_id".to_string(), self.access_key_id.clone()),
                    ("version".to_string(), "1".to_string()),
                    (
                        "signature_method".to_string(),
                        sign::SIGNATURE_METHOD.to_string(),
                    ),
                    (
                        "signature_version".to_string(),
                        sign::SIGNATURE_VERSION.to_string(),
                    ),
                ]);
                let signed = sign::sign("GET", &endpoint.path, &all, self.secret.expose());
                signature = signed.signature.clone();
                // Built by hand so the query goes out exactly as signed; the
                // URL carries the signature and is never logged.
                http.get(format!(
                    "{}?{}",
                    endpoint.base,
                    signed.query_with_signature()
                ))
            })
            .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (status, headers, body) = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(action, zone = %self.zone, elapsed_ms, kind = %e.kind, "qingcloud call failed in transport");
                return Err(e);
            }
        };

        if status != reqwest::StatusCode::OK {
            tracing::debug!(action, zone = %self.zone, http_status = status.as_u16(), elapsed_ms, "qingcloud call: non-200 status");
            return Err(errors::http_error(
                action,
                status.as_u16(),
                http::retry_after(&headers),
            ));
        }

        let decoded = QingCloudApi::decode(action, &body, |m| self.scrub(m, &signature));
        if let Err(e) = &decoded {
            tracing::debug!(action, zone = %self.zone, elapsed_ms, kind = %e.kind, "qingcloud call: error answer");
        }
        decoded
    }

    #[cfg(test)]
    pub(super) fn endpoint_for_tests(&self) -> String {
        self.endpoint
            .as_ref()
            .map(|e| e.base.clone())
            .unwrap_or_default()
    }

    /// Remove the secret and this request's signature (as sent and
    /// percent-encoded) from a server message, in case the server echoes
    /// what it was sent.
    fn scrub(&self, message: &str, signature: &str) -> String {
        let encoded = sign::encode(signature);
        query_api::scrub(message, &[self.secret.expose(), signature, &encoded])
    }
}

/// QingCloud's shape of the shared query API: `ret_code`/`message`,
/// `name.1…` lists, `total_count`/`offset` paging, codes per `errors`.
pub(super) struct QingCloudApi;

impl Dialect for QingCloudApi {
    type Envelope = Envelope;
    const LOG_NAME: &'static str = "qingcloud";
    const RET_CODE_FIELD: &'static str = "ret_code";
    const FIRST_INDEX: usize = 1;
    const TOTAL_FIELD: &'static str = "total_count";
    const OFFSET_FIELD: &'static str = "offset";

    fn classify(ret_code: i64, message: &str) -> ErrorKind {
        errors::classify(ret_code, message)
    }

    fn hint(ret_code: i64) -> Option<&'static str> {
        errors::hint(ret_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_path_is_taken_from_the_url() {
        let e = parse_endpoint("https://api.qingcloud.com/iaas/").map_err(|e| e.to_string());
        let e = e.as_ref().map(|e| (e.base.as_str(), e.path.as_str()));
        assert_eq!(e, Ok(("https://api.qingcloud.com/iaas/", "/iaas/")));
        let e = parse_endpoint("http://127.0.0.1:8080/iaas/?x=1#f").map_err(|e| e.to_string());
        let e = e.as_ref().map(|e| (e.base.as_str(), e.path.as_str()));
        assert_eq!(e, Ok(("http://127.0.0.1:8080/iaas/", "/iaas/")));
        let e = parse_endpoint("https://private.example").map_err(|e| e.to_string());
        let e = e.as_ref().map(|e| (e.base.as_str(), e.path.as_str()));
        assert_eq!(e, Ok(("https://private.example/", "/")));
        assert!(parse_endpoint("not a url").is_err());
        assert!(parse_endpoint("ftp://x/iaas/").is_err());
    }

    #[test]
    fn list_params_are_one_based() {
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            QingCloudApi::list_param("jobs", &ids),
            vec![
                ("jobs.1".to_string(), "a".to_string()),
                ("jobs.2".to_string(), "b".to_string())
            ]
        );
    }
}
