//! Test fixtures the QingCloud and UCloudStack client tests share: a tiny
//! canned-JSON server on loopback that records each call's parameters and
//! answers what the test scripts. Each dialect's tests check the request
//! (signature, method, common parameters) their own way and hand the
//! parameters to [`Fake::answer`]. A fixture, not the simulator.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Router;
use serde_json::Value;

use crate::providers::http::{ApiClient, HttpSettings};

/// One call's parameters, decoded.
pub(crate) type Params = BTreeMap<String, String>;
type Responder = Box<dyn Fn(&Params) -> (u16, Value) + Send + Sync>;

/// What the fixture answers: a status, headers (`retry-after: 7` on a
/// 429) and a body (a JSON value, or a `Value::String` sent raw).
pub(crate) type Reply = (StatusCode, HeaderMap, String);

pub(crate) struct Fake {
    /// The parameter that names the action (`action`, `Action`).
    action_key: &'static str,
    calls: Mutex<Vec<Params>>,
    respond: Responder,
}

impl Fake {
    pub(crate) fn new(
        action_key: &'static str,
        respond: impl Fn(&Params) -> (u16, Value) + Send + Sync + 'static,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            action_key,
            calls: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        })
    }

    /// Record a call that passed the dialect's checks and answer it.
    pub(crate) fn answer(&self, params: Params) -> Reply {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(params.clone());
        }
        let (status, body) = (self.respond)(&params);
        reply(status, body)
    }

    pub(crate) fn calls(&self) -> Vec<Params> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Each call's action, in order.
    pub(crate) fn actions(&self) -> Vec<String> {
        self.param(self.action_key)
    }

    /// Each call's value of `key` ("" where absent), in order.
    pub(crate) fn param(&self, key: &str) -> Vec<String> {
        self.calls().iter().map(|c| p(c, key).to_string()).collect()
    }
}

pub(crate) fn reply(status: u16, body: Value) -> Reply {
    let mut headers = HeaderMap::new();
    if status == 429 {
        headers.insert("retry-after", HeaderValue::from_static("7"));
    }
    let body = match body {
        Value::String(s) => s, // raw, possibly non-JSON body
        other => other.to_string(),
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        headers,
        body,
    )
}

/// Serve `app` on an OS-chosen loopback port for the rest of the test.
pub(crate) async fn listen(app: Router) -> SocketAddr {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("local_addr: {e}"),
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// An HTTP client fast enough for tests (1000 requests/s, 5 s timeout).
pub(crate) fn api() -> ApiClient {
    match ApiClient::new(&HttpSettings {
        requests_per_second: 1000.0,
        request_timeout: Duration::from_secs(5),
        ca_file: None,
    }) {
        Ok(a) => a,
        Err(e) => panic!("client: {e}"),
    }
}

pub(crate) fn ok(v: Value) -> (u16, Value) {
    (200, v)
}

/// Owned `(key, value)` pairs, as the signing functions take them.
pub(crate) fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A JSON fixture read as `T`; a fixture that does not parse fails the test.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(s: &str) -> T {
    match serde_json::from_str(s) {
        Ok(v) => v,
        Err(e) => panic!("parse failed: {e}"),
    }
}

/// A parameter's value, or "" when absent.
pub(crate) fn p<'a>(params: &'a Params, key: &str) -> &'a str {
    params.get(key).map(String::as_str).unwrap_or("")
}

/// The values of `name.{first}..`, in index order, up to the first gap.
pub(crate) fn list_of(params: &Params, name: &str, first: usize) -> Vec<String> {
    (first..)
        .map_while(|i| params.get(&format!("{name}.{i}")).cloned())
        .collect()
}
