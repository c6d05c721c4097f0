//! HTTP plumbing shared by the provider clients: one reqwest client per
//! provider (TLS always verified, optional extra CA), the client-side rate
//! limit, and bounded reading of response bodies. Nothing cloud-specific.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{ErrorKind, ProviderError};

/// Responses larger than this are refused rather than buffered.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Settings every provider kind shares.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub requests_per_second: f64,
    pub request_timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
}

/// A rate-limited HTTP client for one configured provider.
#[derive(Clone)]
pub struct ApiClient {
    pub http: reqwest::Client,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// The configured rate, for providers that plan their calls by it.
    requests_per_second: f64,
    /// Requests waiting for the rate limit right now.
    waiting: Arc<AtomicUsize>,
    /// Waiting requests queue here, first come first served, so only the
    /// head of the queue waits on the limiter (which otherwise wakes every
    /// waiter for every token: quadratic work with thousands waiting).
    queue: Arc<tokio::sync::Mutex<()>>,
    /// The `[providers.NAME]` this client serves, for metrics.
    provider: Arc<str>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").finish_non_exhaustive()
    }
}

/// Counts a request as waiting for the rate limit while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why an [`ApiClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cannot read ca_file {path}: {source}")]
    CaRead {
        path: String,
        source: std::io::Error,
    },
    #[error("ca_file {path} holds no usable PEM certificate: {source}")]
    CaParse {
        path: String,
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

impl ApiClient {
    pub fn new(settings: &HttpSettings) -> Result<Self, ClientBuildError> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("snapwarden/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(path) = &settings.ca_file {
            builder = builder.add_root_certificate(load_ca(path)?);
        }
        Ok(ApiClient {
            http: builder.build()?,
            limiter: Arc::new(limiter(settings.requests_per_second)),
            requests_per_second: settings.requests_per_second,
            waiting: Arc::default(),
            queue: Arc::default(),
            provider: Arc::from(""),
        })
    }

    /// Name the provider this client serves (the label of its metrics).
    pub fn for_provider(mut self, name: &str) -> Self {
        self.provider = Arc::from(name);
        self
    }

    /// The `[providers.NAME]` this client serves (the label of its metrics).
    pub fn provider_name(&self) -> &str {
        &self.provider
    }

    /// The configured rate limit, requests per second.
    pub fn requests_per_second(&self) -> f64 {
        self.requests_per_second
    }

    /// Whether no request is waiting for the rate limit: then a request
    /// made now delays no other.
    pub fn is_idle(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) == 0
    }

    /// Wait until the rate limit allows one more request; requests that
    /// must wait are let through in the order they came.
    pub async fn until_ready(&self) {
        if self.is_idle() && self.limiter.check().is_ok() {
            return;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Waiting(&self.waiting);
        let _turn = self.queue.lock().await;
        self.limiter.until_ready().await;
    }

    /// Wait until the rate limit allows one more request, ahead of the
    /// queue of [`ApiClient::until_ready`]: for reads that finish work
    /// already in flight (status and listing pages), so a queue of new
    /// creates or deletes does not hold them back. They share the tokens
    /// with the head of that queue.
    pub async fn until_ready_ahead(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Waiting(&self.waiting);
        self.limiter.until_ready().await;
    }

    /// Wait for the rate limit, then build the request (so signatures and
    /// time stamps are made at the moment of sending), send it and read the
    /// body, refusing bodies over [`MAX_BODY_BYTES`]. Transport failures map
    /// to [`ErrorKind::Transient`].
    pub async fn send(
        &self,
        call: &str,
        build: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), ProviderError> {
        self.until_ready().await;
        let started = std::time::Instant::now();
        let result = self.exchange(call, build(&self.http)).await;
        let outcome = match &result {
            Ok((status, _, _)) if status.is_success() => "ok",
            Ok((status, _, _)) if status.is_server_error() => "http_5xx",
            Ok(_) => "http_4xx",
            Err(_) => "transport",
        };
        crate::observe::metrics::api_request(&self.provider, call, outcome, started.elapsed());
        result
    }

    async fn exchange(
        &self,
        call: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), ProviderError> {
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(call, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(len) = response.content_length() {
            if len as usize > MAX_BODY_BYTES {
                return Err(too_large(call));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(call, &e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large(call));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }
}

fn too_large(call: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Transient,
        call,
        format!("response body larger than {MAX_BODY_BYTES} bytes refused"),
    )
}

/// A transport-level failure, described without the URL (which may carry a
/// signature in its query string).
pub fn transport_error(call: &str, e: &reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "connection broken while reading the response"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut certificate = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        // rustls' error reaches here wrapped in an io::Error, whose
        // `source()` skips the wrapped error itself.
        let tls = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            certificate = certificate_problem(tls).or(certificate);
        } else if let Some(rest) = detail.strip_prefix("invalid peer certificate: ") {
            // The connector may re-box the error as text; rustls' wording.
            certificate = Some(match rest {
                "UnknownIssuer" => {
                    "the server's certificate is not signed by a trusted CA (unknown issuer)"
                        .to_string()
                }
                other => format!("the server's certificate was rejected ({other})"),
            });
        }
        source = s.source();
    }
    if let Some(why) = certificate {
        // Not retryable: the same certificate will be refused again.
        return ProviderError::new(
            ErrorKind::Permanent,
            call,
            format!(
                "TLS certificate verification failed: {why}; if the endpoint uses a private \
                 CA, set `ca_file` to that CA's certificate (PEM)"
            ),
        );
    }
    let message = if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    };
    ProviderError::new(ErrorKind::Transient, call, message)
}

/// What was wrong with the server's certificate, in words, if `e` is a
/// certificate verification failure.
pub(crate) fn certificate_problem(e: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        C::UnknownIssuer => {
            "the server's certificate is not signed by a trusted CA (unknown issuer)".to_string()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for this host name".to_string()
        }
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired".to_string(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet".to_string()
        }
        C::BadSignature => "the server's certificate has a bad signature".to_string(),
        other => format!("the server's certificate was rejected ({other:?})"),
    })
}

/// A configured base URL: http(s) with a host, its query and fragment
/// dropped; `what` names it in the error (`QingCloud endpoint`).
pub(crate) fn base_url(what: &str, raw: &str) -> Result<reqwest::Url, String> {
    let mut url =
        reqwest::Url::parse(raw.trim()).map_err(|e| format!("invalid {what} {raw:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "invalid {what} {raw:?}: expected an http(s) URL with a host"
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Reads `Retry-After` in its delta-seconds form.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn load_ca(path: &Path) -> Result<reqwest::Certificate, ClientBuildError> {
    let pem = std::fs::read(path).map_err(|source| ClientBuildError::CaRead {
        path: path.display().to_string(),
        source,
    })?;
    reqwest::Certificate::from_pem(&pem).map_err(|source| ClientBuildError::CaParse {
        path: path.display().to_string(),
        source,
    })
}

fn limiter(requests_per_second: f64) -> DefaultDirectRateLimiter {
    // Validation guarantees a positive finite rate; fractional rates become
    // one request per 1/rate seconds.
    let rps = if requests_per_second.is_finite() && requests_per_second > 0.0 {
        requests_per_second
    } else {
        1.0
    };
    let quota = if rps >= 1.0 {
        let per_sec = NonZeroU32::new(rps.round().max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(per_sec).allow_burst(per_sec)
    } else {
        Quota::with_period(Duration::from_secs_f64(1.0 / rps))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
    };
    RateLimiter::direct(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limiter_spaces_requests() {
        let l = limiter(20.0);
        let start = std::time::Instant::now();
        for _ in 0..40 {
            l.until_ready().await;
        }
        // 20 burst + 20 more at 20/s: at least ~0.9 s.
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }

    /// A one-connection-per-answer HTTP server on loopback that writes
    /// `head` and then `body_len` bytes of body in 64 KiB pieces.
    async fn serve_big(head: String, body_len: usize) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let head = head.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    if conn.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let piece = vec![b'x'; 64 * 1024];
                    let mut left = body_len;
                    while left > 0 {
                        let n = left.min(piece.len());
                        if conn.write_all(&piece[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                });
            }
        });
        addr
    }

    fn client() -> ApiClient {
        at_rate(100.0).for_provider("test")
    }

    /// A client allowed `requests_per_second`, with a 10 s timeout.
    fn at_rate(requests_per_second: f64) -> ApiClient {
        ApiClient::new(&HttpSettings {
            requests_per_second,
            request_timeout: Duration::from_secs(10),
            ca_file: None,
        })
        .expect("client")
    }

    #[tokio::test]
    async fn requests_waiting_for_the_rate_limit_are_counted() {
        let api = at_rate(10.0);
        // The burst passes without waiting.
        for _ in 0..10 {
            api.until_ready().await;
        }
        assert!(api.is_idle());
        let (a, b) = (api.clone(), api.clone());
        let waiter = tokio::spawn(async move { a.until_ready().await });
        tokio::time::timeout(Duration::from_secs(5), async {
            while b.is_idle() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the 11th request is counted while it waits");
        waiter.await.expect("waiter");
        assert!(api.is_idle());
    }

    #[tokio::test]
    async fn requests_that_wait_for_the_rate_limit_go_first_come_first_served() {
        let api = at_rate(100.0);
        for _ in 0..100 {
            api.until_ready().await;
        }
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (a, o) = (api.clone(), order.clone());
            let before = api_waiting(&api);
            tasks.push(tokio::spawn(async move {
                a.until_ready().await;
                o.lock().expect("order").push(i);
            }));
            // Task i is queued before task i + 1 starts.
            while api_waiting(&api) <= before && !tasks[i].is_finished() {
                tokio::task::yield_now().await;
            }
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order"), (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn reads_ahead_pass_a_queue_of_waiting_requests() {
        let api = at_rate(50.0);
        for _ in 0..50 {
            api.until_ready().await;
        }
        // 40 queued requests: 0.8 s of tokens at 50/s.
        let queued: Vec<_> = (0..40)
            .map(|_| {
                let a = api.clone();
                tokio::spawn(async move { a.until_ready().await })
            })
            .collect();
        while api_waiting(&api) < 40 {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        api.until_ready_ahead().await;
        let ahead = started.elapsed();
        let left = queued.iter().filter(|t| !t.is_finished()).count();
        assert!(
            left >= 20,
            "the read went ahead of most of the queue ({left} left, {ahead:?})"
        );
        for t in queued {
            t.await.expect("queued");
        }
    }

    fn api_waiting(api: &ApiClient) -> usize {
        api.waiting.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_body_declared_larger_than_the_limit_is_refused_unread() {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        // Only 1 MiB is ever sent: the client must refuse on the header.
        let addr = serve_big(head, 1024 * 1024).await;
        let e = client()
            .send("Big", |http| http.get(format!("http://{addr}/")))
            .await
            .expect_err("refused");
        assert!(e.message.contains("larger than"), "{e}");
        assert_eq!(e.call, "Big");
    }

    #[tokio::test]
    async fn a_streamed_body_past_the_limit_is_refused() {
        // No length given: the body streams until the connection closes.
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
            .to_string();
        let addr = serve_big(head, MAX_BODY_BYTES + 64 * 1024).await;
        let e = client()
            .send("Stream", |http| http.get(format!("http://{addr}/")))
            .await
            .expect_err("refused");
        assert!(e.message.contains("larger than"), "{e}");
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY_BYTES}\r\nConnection: close\r\n\r\n"
        );
        let addr = serve_big(head, MAX_BODY_BYTES).await;
        let (status, _, body) = client()
            .send("Exact", |http| http.get(format!("http://{addr}/")))
            .await
            .expect("read");
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_eq!(body.len(), MAX_BODY_BYTES);
    }
}
