//! One signed UCloudStack API call: the common parameters (`Action`,
//! `PublicKey`, `Region`, `Zone`, and `CompanyID` / `MemberID` where the
//! config sets them), a signature over exactly the pairs sent, a form POST
//! to the configured endpoint, and the answer read into either the action's
//! type or a classified [`ProviderError`].
//!
//! Owns the endpoint and the keys. Single attempt, never sleeps, never
//! logs the body, the signature or the private key.

use std::time::Instant;

use serde::de::DeserializeOwned;

use super::errors;
use super::sign;
use super::wire::Envelope;
use crate::config::{Secret, UCloudStackSettings};
use crate::providers::http::{self, ApiClient};
use crate::providers::query_api::{self, Dialect};
use crate::providers::{ErrorKind, ProviderError};

pub(super) struct Client {
    /// An endpoint that does not parse fails every call with a permanent
    /// error rather than panicking at construction.
    endpoint: Result<String, String>,
    region: String,
    zone: String,
    public_key: String,
    private_key: Secret,
    company_id: Option<i64>,
    member_id: Option<i64>,
    api: ApiClient,
}

fn parse_endpoint(endpoint: &str) -> Result<String, String> {
    query_api::parse_endpoint("UCloudStack", endpoint).map(String::from)
}

impl Client {
    pub(super) fn new(settings: &UCloudStackSettings, api: ApiClient) -> Client {
        Client {
            endpoint: parse_endpoint(&settings.endpoint),
            region: settings.region.clone(),
            zone: settings.zone.clone(),
            public_key: settings.public_key.clone(),
            private_key: settings.private_key.clone(),
            company_id: settings.company_id,
            member_id: settings.member_id,
            api,
        }
    }

    /// Sign and send `action` with its own `params`, and parse a
    /// `RetCode: 0` body as `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        action: &str,
        params: Vec<(String, String)>,
    ) -> Result<T, ProviderError> {
        let endpoint = self
            .endpoint
            .as_ref()
            .map_err(|e| ProviderError::new(ErrorKind::Permanent, action, e.clone()))?;
        let mut all = params;
        all.extend([
            ("Action".to_string(), action.to_string()),
            ("PublicKey".to_string(), self.public_key.clone()),
            ("Region".to_string(), self.region.clone()),
            ("Zone".to_string(), self.zone.clone()),
        ]);
        if let Some(id) = self.company_id {
            all.push(("CompanyID".to_string(), id.to_string()));
        }
        if let Some(id) = self.member_id {
            all.push(("MemberID".to_string(), id.to_string()));
        }
        // No time stamp is signed, so the signature can be made up front.
        let signature = sign::signature(&all, self.private_key.expose());
        let body = sign::form_body(&all, &signature);

        let started = Instant::now();
        let sent = self
            .api
            .send(action, |client: &reqwest::Client| {
                client
                    .post(endpoint.as_str())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body)
            })
            .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (status, headers, body) = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(action, region = %self.region, elapsed_ms, kind = %e.kind, "ucloudstack call failed in transport");
                return Err(e);
            }
        };
        if status != reqwest::StatusCode::OK {
            tracing::debug!(
                action,
                http_status = status.as_u16(),
                elapsed_ms,
                "ucloudstack call: non-200 status"
            );
            return Err(errors::http_error(
                action,
                status.as_u16(),
                http::retry_after(&headers),
            ));
        }
        let decoded = UCloudStackApi::decode(action, &body, |m| self.scrub(m, &signature));
        if let Err(e) = &decoded {
            tracing::debug!(action, region = %self.region, elapsed_ms, kind = %e.kind, "ucloudstack call: error answer");
        }
        decoded
    }

    #[cfg(test)]
    pub(super) fn endpoint_for_tests(&self) -> Option<String> {
        self.endpoint.as_ref().ok().cloned()
    }

    /// Remove the private key and this request's signature from a server
    /// message, in case the server echoes what it was sent.
    fn scrub(&self, message: &str, signature: &str) -> String {
        query_api::scrub(message, &[self.private_key.expose(), signature])
    }
}

/// UCloudStack's shape of the shared query API: `RetCode`/`Message`,
/// 0-based `name.0…` arrays, `TotalCount`/`Offset` paging, codes per
/// `errors` (the kind depends on the code alone).
pub(super) struct UCloudStackApi;

impl Dialect for UCloudStackApi {
    type Envelope = Envelope;
    const LOG_NAME: &'static str = "ucloudstack";
    const RET_CODE_FIELD: &'static str = "RetCode";
    const FIRST_INDEX: usize = 0;
    const TOTAL_FIELD: &'static str = "TotalCount";
    const OFFSET_FIELD: &'static str = "Offset";

    fn classify(ret_code: i64, _message: &str) -> ErrorKind {
        errors::classify(ret_code)
    }

    fn hint(ret_code: i64) -> Option<&'static str> {
        errors::hint(ret_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("https://console.example.com/api?x=1").ok(),
            Some("https://console.example.com/api".to_string())
        );
        assert!(parse_endpoint("ftp://x/api").is_err());
        assert!(parse_endpoint("not a url").is_err());
    }

    #[test]
    fn arrays_are_zero_based() {
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            UCloudStackApi::list_param("SnapshotIDs", &ids),
            vec![
                ("SnapshotIDs.0".to_string(), "a".to_string()),
                ("SnapshotIDs.1".to_string(), "b".to_string())
            ]
        );
    }
}
