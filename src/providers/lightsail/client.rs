//! The AWS SDK client for one configured Lightsail account and region.
//!
//! Built lazily on the first call (loading the SDK config is async; building
//! a provider is not). One TLS stack: rustls with ring, the same as the
//! other providers' reqwest clients. The SDK's own retries are disabled so
//! that the engine's retry policy is the only one; every call waits for the
//! provider's rate limit first. Every request the SDK puts on the wire is
//! counted and timed in the metrics the other clouds' requests go to
//! ([`RequestMetrics`], an SDK interceptor).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_lightsail::config::http::HttpResponse;
use aws_sdk_lightsail::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_lightsail::config::{ConfigBag, Credentials, Intercept, RuntimeComponents};
use aws_sdk_lightsail::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use super::errors;
use crate::config::{LightsailCredentials, LightsailSettings};
use crate::providers::http::{ApiClient, ClientBuildError};
use crate::providers::ProviderError;

pub(super) struct Client {
    settings: LightsailSettings,
    http: SharedHttpClient,
    request_timeout: Duration,
    /// The rate limit shared with nothing else (its reqwest client is unused).
    api: ApiClient,
    sdk: tokio::sync::OnceCell<aws_sdk_lightsail::Client>,
}

impl Client {
    pub(super) fn new(
        settings: &LightsailSettings,
        api: ApiClient,
        request_timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Client, ClientBuildError> {
        let mut trust = tls::TrustStore::default();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|source| ClientBuildError::CaRead {
                path: path.display().to_string(),
                source,
            })?;
            trust = trust.with_pem_certificate(pem);
        }
        let context = tls::TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| ClientBuildError::CaRead {
                path: ca_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(system roots)".to_string()),
                source: std::io::Error::other(e.to_string()),
            })?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(context)
            .build_https();
        Ok(Client {
            settings: settings.clone(),
            http,
            request_timeout,
            api,
            sdk: tokio::sync::OnceCell::new(),
        })
    }

    async fn sdk(&self) -> &aws_sdk_lightsail::Client {
        self.sdk
            .get_or_init(|| async {
                let s = &self.settings;
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(self.http.clone())
                    .region(Region::new(s.region.clone()))
                    // One retry policy: the engine's.
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(self.request_timeout.min(Duration::from_secs(10)))
                            .operation_attempt_timeout(self.request_timeout)
                            .build(),
                    );
                if let Some(endpoint) = &s.endpoint {
                    loader = loader.endpoint_url(endpoint.trim_end_matches('/'));
                }
                loader = match &s.credentials {
                    LightsailCredentials::Static {
                        access_key_id,
                        secret_access_key,
                    } => loader.credentials_provider(Credentials::new(
                        access_key_id.clone(),
                        secret_access_key.expose().to_string(),
                        None,
                        None,
                        "snapwarden-config",
                    )),
                    LightsailCredentials::Chain { profile: Some(p) } => {
                        loader.profile_name(p.clone())
                    }
                    LightsailCredentials::Chain { profile: None } => loader,
                };
                let config = aws_sdk_lightsail::config::Builder::from(&loader.load().await)
                    .interceptor(RequestMetrics {
                        provider: Arc::from(self.api.provider_name()),
                    })
                    .build();
                aws_sdk_lightsail::Client::from_conf(config)
            })
            .await
    }

    /// One SDK call after the rate limit, its error mapped by name.
    pub(super) async fn call<T, E, F, Fut>(&self, name: &str, f: F) -> Result<T, ProviderError>
    where
        F: FnOnce(aws_sdk_lightsail::Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let sdk = self.sdk().await.clone();
        // Reads follow work already in flight: they go ahead of queued
        // creates and deletes.
        if name.starts_with("Get") {
            self.api.until_ready_ahead().await;
        } else {
            self.api.until_ready().await;
        }
        f(sdk).await.map_err(|e| errors::from_sdk(name, e))
    }
}

/// Counts and times every request the SDK sends, in
/// `snapwarden_api_requests_total` and `snapwarden_api_request_duration_seconds`
/// with the labels the other clouds' requests carry: the provider's name,
/// the operation (`CreateInstanceSnapshot`, `GetInstanceSnapshots`, ...) and
/// the outcome by HTTP status (`ok`, `http_4xx`, `http_5xx`), or `transport`
/// when no answer came. An attempt that never reached the wire (no
/// credentials, a request that could not be built) is not a request and is
/// not counted.
#[derive(Debug)]
struct RequestMetrics {
    provider: Arc<str>,
}

/// When the current attempt's request went on the wire.
#[derive(Debug, Clone, Copy)]
struct Transmitted(Instant);

impl Storable for Transmitted {
    type Storer = StoreReplace<Self>;
}

impl Intercept for RequestMetrics {
    fn name(&self) -> &'static str {
        "snapwarden::RequestMetrics"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(Transmitted(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Transmitted(started)) = cfg.load::<Transmitted>().copied() else {
            return Ok(());
        };
        cfg.interceptor_state().unset::<Transmitted>();
        let call = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let outcome = outcome(context.response().map(|r| r.status().as_u16()));
        crate::observe::metrics::api_request(&self.provider, &call, outcome, started.elapsed());
        Ok(())
    }
}

/// The outcome label of one request by its answer's HTTP status, the
/// words `providers::http` uses for the other clouds.
fn outcome(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "ok",
        Some(500..=599) => "http_5xx",
        Some(_) => "http_4xx",
        None => "transport",
    }
}

#[cfg(test)]
mod tests {
    use super::outcome;

    #[test]
    fn outcomes_are_the_other_clouds_words() {
        assert_eq!(outcome(Some(200)), "ok");
        assert_eq!(outcome(Some(400)), "http_4xx");
        assert_eq!(outcome(Some(404)), "http_4xx");
        assert_eq!(outcome(Some(503)), "http_5xx");
        assert_eq!(outcome(None), "transport");
    }
}
