//! The UCloudStack dialect, served at `/ucloudstack/api` (a deployment's
//! `http(s)://<console>/api`).
//!
//! One request goes: decode the form body (POST), the query (GET) or a JSON
//! body → answer faults → `Action`, `PublicKey` and the SHA-1 signature →
//! `Region`/`Zone` → the action (`actions`) → JSON with HTTP 200 and
//! `RetCode` 0 or an error code. Every request lands in the journal.
//!
//! The signature check is written here, independently of the client's.

mod actions;
mod control;
mod errors;
mod model;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sha1::{Digest, Sha1};

pub(crate) use control::routes as control_routes;
pub(crate) use model::{NewSnapshot, UcsState};

use super::faults::FaultKind;
pub(crate) use super::form::Params;
use super::form::{FormCall, JsonBody};
use super::pipeline::{self, Dialect, Incoming};
use super::{SimState, Simulator};
use errors::ApiError;

/// The dialect's name in the control API.
pub(crate) const DIALECT: &str = "ucloudstack";

/// Where the dialect is served.
pub(crate) const PATH: &str = "/ucloudstack/api";

pub(crate) fn routes() -> Router<Simulator> {
    Router::new().route(PATH, get(api).post(api))
}

async fn api(State(sim): State<Simulator>, req: Request) -> Response {
    pipeline::serve(&sim, req, Call::decode).await
}

/// One decoded call: its parameters, whether they decoded, its action.
struct Call(FormCall<ApiError>);

impl Call {
    fn decode(req: &Incoming) -> Call {
        let is_json = req
            .header(header::CONTENT_TYPE.as_str())
            .starts_with("application/json");
        Call(FormCall::decode(req, "Action", json_body(is_json)))
    }
}

impl Dialect for Call {
    const NAME: &'static str = DIALECT;
    type Reply = serde_json::Value;
    type Error = ApiError;

    fn action(&self) -> &str {
        &self.0.action
    }

    fn throttled(&self) -> ApiError {
        ApiError::too_frequent()
    }

    fn quota(&self, state: &SimState) -> ApiError {
        if self.0.action == "CreateSnapshot" {
            ApiError::snapshot_cap(state.ucloudstack.snapshot_cap)
        } else {
            ApiError::quota()
        }
    }

    fn dispatch(
        &mut self,
        state: &mut SimState,
        req: &Incoming,
    ) -> (Result<serde_json::Value, ApiError>, Option<FaultKind>) {
        let SimState {
            settings,
            faults: registry,
            ucloudstack,
            ..
        } = state;
        self.0.run(|params, action, job_fault| {
            authenticate(ucloudstack, params)?;
            let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
            let (region, zone) = (get("Region"), get("Zone"));
            if region.is_empty() {
                return Err(ApiError::missing("Region"));
            }
            ucloudstack.check_location(region, zone)?;
            let mut ctx = actions::Ctx {
                ucs: ucloudstack,
                faults: registry,
                duration: settings.job_duration,
                fault_hit: None,
                params,
                region,
                zone,
                now: req.now,
            };
            let result = actions::dispatch(action, &mut ctx);
            *job_fault = ctx.fault_hit;
            result
        })
    }

    fn respond(
        &self,
        result: &Result<serde_json::Value, ApiError>,
        fault: Option<FaultKind>,
    ) -> Response {
        let json = match result {
            Ok(value) => value.to_string(),
            Err(err) => err.to_json(&self.0.action).to_string(),
        };
        pipeline::json_200(json.into_bytes(), fault)
    }

    fn journal(
        self,
        result: Option<&Result<serde_json::Value, ApiError>>,
    ) -> (Params, Option<i64>) {
        self.0.journal("Signature", result)
    }
}

/// The JSON body decoder when the body is JSON (JSON scalars become their
/// text: numbers in decimal, booleans as `true`/`false`, as the signature
/// rules say); a form body otherwise.
fn json_body(is_json: bool) -> Option<JsonBody<ApiError>> {
    is_json.then_some(decode_json as JsonBody<ApiError>)
}

fn decode_json(body: &[u8], params: &mut Params) -> Result<(), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::malformed("the JSON body does not parse"))?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::malformed("the JSON body is not an object"));
    };
    for (k, v) in object {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(ApiError::malformed(&format!("{k} is not a scalar"))),
        };
        params.insert(k.clone(), text);
    }
    Ok(())
}

/// `Action` present (154), `PublicKey` and `Signature` present (170), the
/// key known and the signature right (171).
fn authenticate(ucs: &UcsState, params: &Params) -> Result<(), ApiError> {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    if get("Action").is_empty() {
        return Err(ApiError::missing_action());
    }
    if get("PublicKey").is_empty() || get("Signature").is_empty() {
        return Err(ApiError::missing_signature());
    }
    let private_key = ucs
        .private_key(get("PublicKey"))
        .ok_or_else(ApiError::bad_signature)?;
    if !expected_signature(params, private_key).eq_ignore_ascii_case(get("Signature")) {
        return Err(ApiError::bad_signature());
    }
    Ok(())
}

/// SHA-1 hex of every `key` + `value` but `Signature`, in key order (a
/// `BTreeMap` iterates in byte order), followed by the private key.
pub(crate) fn expected_signature(params: &Params, private_key: &str) -> String {
    let mut hasher = Sha1::new();
    for (k, v) in params.iter().filter(|(k, _)| k.as_str() != "Signature") {
        hasher.update(k.as_bytes());
        hasher.update(v.as_bytes());
    }
    hasher.update(private_key.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::form::{decode_request, params};
    use axum::body::Bytes;
    use axum::http::Method;

    #[test]
    fn signature_matches_the_published_vector() {
        let p = params(&[
            ("Action", "DescribeVMInstance"),
            ("Offset", "0"),
            ("Limit", "20"),
            ("PublicKey", "1UxDcqTHEGGGviQFqlt870EbLuaSJPZOB8hZ74tL"),
            ("Signature", "ignored"),
        ]);
        assert_eq!(
            expected_signature(
                &p,
                "tcgX3Xi_mAKpQayggnVLWzerkWB_fH1KXuk05hUrus8KSziLVyjWXwKZ80FOOldC"
            ),
            "2d86e5b4186ac6e42b628f258a7037c7636c9a81"
        );
    }

    #[test]
    fn auth_codes() {
        let mut ucs = UcsState::default();
        ucs.add_credentials("pub", "priv");
        let mut p = params(&[("PublicKey", "pub"), ("Signature", "x")]);
        assert_eq!(authenticate(&ucs, &p).map_err(|e| e.ret_code), Err(154));
        p.insert("Action".into(), "DescribeSnapshot".into());
        assert_eq!(authenticate(&ucs, &p).map_err(|e| e.ret_code), Err(171));
        let sig = expected_signature(&p, "priv");
        p.insert("Signature".into(), sig);
        assert_eq!(authenticate(&ucs, &p), Ok(()));
        p.remove("Signature");
        assert_eq!(authenticate(&ucs, &p).map_err(|e| e.ret_code), Err(170));
    }

    #[test]
    fn json_and_form_bodies_decode_alike() {
        let mut a = Params::new();
        decode_request(
            &Method::POST,
            "",
            &Ok(Bytes::from_static(
                br#"{"Action":"DescribeSnapshot","Limit":100,"Remark":"a b"}"#,
            )),
            json_body(true),
            &mut a,
        )
        .expect("json");
        let mut b = Params::new();
        decode_request(
            &Method::POST,
            "",
            &Ok(Bytes::from_static(
                b"Action=DescribeSnapshot&Limit=100&Remark=a%20b",
            )),
            json_body(false),
            &mut b,
        )
        .expect("form");
        assert_eq!(a, b);
    }
}
