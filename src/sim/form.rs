//! What the two form-encoded dialects (QingCloud and UCloudStack) share:
//! the decoding of a query string and form body into flat parameters,
//! indexed list parameters, offset/limit paging, and the decoded call the
//! pipeline carries. Each dialect keeps its own parameter names, limits and
//! error codes and passes them in; nothing here picks a code or a message
//! but the decoding ones, which both clouds word alike. The lenient form
//! reading the JSON dialects need for their token services is here too
//! ([`decode_lossy`]).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::Method;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

use super::faults::FaultKind;
use super::pipeline::Incoming;

pub(crate) type Params = BTreeMap<String, String>;

/// How a form dialect answers a parameter it cannot read.
pub(crate) trait FormError: Sized {
    /// The request could not be decoded; `what` says why.
    fn malformed(what: &str) -> Self;
    /// `key` carries `value`, which is not a list index the API accepts.
    fn bad_index(key: &str, value: &str) -> Self;
    /// The paging parameter `name` carries `raw`, not a non-negative number.
    fn bad_number(name: &str, raw: &str) -> Self;
    /// The error's code in the answer and the journal.
    fn ret_code(&self) -> i64;
}

/// Decodes a JSON body into parameters.
pub(crate) type JsonBody<E> = fn(&[u8], &mut Params) -> Result<(), E>;

/// Fills `params` from the query string and, for POST, the body: through
/// `json` when given, else as a form. Form decoding: `+` is a space, `%2B` a
/// plus; values must be UTF-8. On a decoding error `params` keeps what was
/// read so far (for the journal).
pub(crate) fn decode_request<E: FormError>(
    method: &Method,
    query: &str,
    body: &Result<Bytes, axum::Error>,
    json: Option<JsonBody<E>>,
    params: &mut Params,
) -> Result<(), E> {
    decode_form(query, params)?;
    if method != Method::POST {
        return Ok(());
    }
    let body = body
        .as_ref()
        .map_err(|_| E::malformed("the request body could not be read"))?;
    if let Some(json) = json {
        return json(body, params);
    }
    let text =
        std::str::from_utf8(body).map_err(|_| E::malformed("the request body is not UTF-8"))?;
    decode_form(text.trim_end_matches(['\r', '\n']), params)
}

pub(crate) fn decode_form<E: FormError>(input: &str, params: &mut Params) -> Result<(), E> {
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(decode_component(key)?, decode_component(value)?);
    }
    Ok(())
}

fn decode_component<E: FormError>(raw: &str) -> Result<String, E> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| E::malformed(&format!("[{raw}] is not valid UTF-8 once decoded")))
}

/// Form pairs decoded leniently (`+` as a space, invalid UTF-8 replaced),
/// for the dialects that only read a form, never reject one.
pub(crate) fn decode_lossy(input: &str) -> Params {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    input
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `name.<first>`, `name.<first + 1>`, … in index order (so `.10` comes
/// after `.2`); empty values are left out. An index below `first` or not a
/// number is the dialect's `bad_index`.
pub(crate) fn list_param<E: FormError>(
    params: &Params,
    name: &str,
    first: usize,
) -> Result<Vec<String>, E> {
    let prefix = format!("{name}.");
    let mut items = Vec::new();
    for (key, value) in params.range(prefix.clone()..) {
        let Some(index) = key.strip_prefix(&prefix) else {
            break;
        };
        match index.parse::<usize>() {
            Ok(n) if n >= first => items.push((n, value.clone())),
            _ => return Err(E::bad_index(key, value)),
        }
    }
    items.sort_by_key(|(n, _)| *n);
    Ok(items
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
        .collect())
}

/// A dialect's paging parameters and limits.
pub(crate) struct Paging {
    pub offset: &'static str,
    pub limit: &'static str,
    pub default_limit: usize,
    pub max_limit: usize,
}

impl Paging {
    /// The offset (default 0) and the limit (default `default_limit`,
    /// capped at `max_limit`).
    pub(crate) fn read<E: FormError>(&self, params: &Params) -> Result<(usize, usize), E> {
        let number = |name: &str| -> Result<Option<usize>, E> {
            match params.get(name).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(raw) => raw
                    .parse::<usize>()
                    .map(Some)
                    .map_err(|_| E::bad_number(name, raw)),
            }
        };
        let offset = number(self.offset)?.unwrap_or(0);
        let limit = number(self.limit)?
            .unwrap_or(self.default_limit)
            .min(self.max_limit);
        Ok((offset, limit))
    }
}

/// One page (`offset`, `limit`) of `matching`, each rendered, under the
/// second key, with the number of matches under the first.
pub(crate) fn page<T>(
    matching: &[T],
    (offset, limit): (usize, usize),
    (count_key, set_key): (&str, &str),
    render: impl FnMut(&T) -> Value,
) -> Map<String, Value> {
    let set: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(render)
        .collect();
    let mut out = Map::new();
    out.insert(count_key.into(), json!(matching.len()));
    out.insert(set_key.into(), Value::Array(set));
    out
}

/// One decoded call: its parameters, whether they decoded, and its action.
pub(crate) struct FormCall<E> {
    pub params: Params,
    decoded: Result<(), E>,
    pub action: String,
}

impl<E: FormError> FormCall<E> {
    /// Decodes `req`; the action is the parameter `action_param`.
    pub(crate) fn decode(req: &Incoming, action_param: &str, json: Option<JsonBody<E>>) -> Self {
        let mut params = Params::new();
        let decoded = decode_request(&req.method, &req.query, &req.body, json, &mut params);
        let action = params.get(action_param).cloned().unwrap_or_default();
        FormCall {
            params,
            decoded,
            action,
        }
    }

    /// Runs `run` with the parameters and the action if the request decoded,
    /// else answers the decoding error. `run` may note the job fault that
    /// shaped a new job in its last argument.
    pub(crate) fn run<T>(
        &mut self,
        run: impl FnOnce(&Params, &str, &mut Option<FaultKind>) -> Result<T, E>,
    ) -> (Result<T, E>, Option<FaultKind>) {
        let decoded = std::mem::replace(&mut self.decoded, Ok(()));
        let mut job_fault = None;
        let result = decoded.and_then(|()| run(&self.params, &self.action, &mut job_fault));
        (result, job_fault)
    }

    /// The journal's parameters (all but the signature `signature_param`)
    /// and `ret_code` (0 for success; none for `server_error`).
    pub(crate) fn journal<T>(
        self,
        signature_param: &str,
        result: Option<&Result<T, E>>,
    ) -> (Params, Option<i64>) {
        let mut logged = self.params;
        logged.remove(signature_param);
        let ret_code = result.map(|r| match r {
            Ok(_) => 0,
            Err(err) => err.ret_code(),
        });
        (logged, ret_code)
    }
}

/// Parameters from `(key, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Checks a dialect's list parameter reader: items in index order from
/// `first` (so `.10` after `.2`), other keys ignored, a non-numeric index
/// answered with `bad_code`.
#[cfg(test)]
pub(crate) fn check_list_param<E: FormError>(
    list_param: fn(&Params, &str) -> Result<Vec<String>, E>,
    name: &str,
    first: usize,
    bad_code: i64,
) {
    let p: Params = [
        (format!("{name}.10"), "j"),
        (format!("{name}.2"), "b"),
        (format!("{name}.{first}"), "a"),
        (format!("{name}X"), "nope"),
        ("snapshot_name".to_string(), "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    let items = list_param(&p, name).map_err(|e| e.ret_code());
    assert_eq!(
        items,
        Ok(vec!["a".into(), "b".into(), "j".into()]),
        "{name}"
    );
    let bad = params(&[(&format!("{name}.x"), "a")]);
    let code = list_param(&bad, name).map(|_| ()).map_err(|e| e.ret_code());
    assert_eq!(code, Err(bad_code), "{name}.x");
}

/// Checks a dialect's paging reader: offset 0 and limit `default` by
/// default, the limit capped at `max`, a negative limit answered with
/// `bad_code`.
#[cfg(test)]
pub(crate) fn check_paging<E: FormError>(
    paging: fn(&Params) -> Result<(usize, usize), E>,
    (offset, limit): (&str, &str),
    (default, max): (usize, usize),
    bad_code: i64,
) {
    let read = |pairs: &[(&str, &str)]| paging(&params(pairs)).map_err(|e| e.ret_code());
    assert_eq!(read(&[]), Ok((0, default)), "defaults");
    assert_eq!(read(&[(offset, "5"), (limit, "500")]), Ok((5, max)), "cap");
    assert_eq!(read(&[(limit, "-1")]), Err(bad_code), "negative {limit}");
}
