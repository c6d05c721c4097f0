//! Fault injection shared by every dialect.
//!
//! A fault targets one dialect and optionally one action. Faults on the
//! answer (`throttle`, `quota`, `server_error`, `latency`, `drop_connection`,
//! `malformed`, `incomplete`) are picked per request by [`FaultRegistry::for_request`];
//! faults on the outcome of an async job (`fail_job`, `never_finish`) are
//! taken by the dialect when it creates a job ([`FaultRegistry::for_job`]).
//! `count` limits how many requests (or jobs) a fault hits; `probability`
//! rolls per matching request, and a miss does not use up the count.
//!
//! What each answer fault does to the request itself is a deliberate choice,
//! made to test the client's hardest paths:
//! - `throttle`, `quota`, `server_error`: rejected before it is processed
//!   (as a gateway would); nothing changes.
//! - `latency`, `drop_connection`, `malformed`: the request IS processed and
//!   only the answer is delayed or lost, so the client faces an unknown
//!   outcome and must reconcile before retrying a create.
//! - `incomplete` (QingCloud only): the request is processed and the answer
//!   claims one item more than it carries (`total_count` + 1), the way a
//!   listing looks when a page went missing; the client must not trust it.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::conn::ConnHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultKind {
    FailJob,
    NeverFinish,
    Throttle,
    Quota,
    ServerError,
    Latency,
    DropConnection,
    Malformed,
    Incomplete,
}

/// Dialects whose answers carry an item count that `incomplete` can bend.
const COUNTED_DIALECTS: &[&str] = &["qingcloud"];

impl FaultKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FaultKind::FailJob => "fail_job",
            FaultKind::NeverFinish => "never_finish",
            FaultKind::Throttle => "throttle",
            FaultKind::Quota => "quota",
            FaultKind::ServerError => "server_error",
            FaultKind::Latency => "latency",
            FaultKind::DropConnection => "drop_connection",
            FaultKind::Malformed => "malformed",
            FaultKind::Incomplete => "incomplete",
        }
    }

    fn is_job_fault(self) -> bool {
        matches!(self, FaultKind::FailJob | FaultKind::NeverFinish)
    }
}

/// How an async job or change ends, fixed when it starts (faults decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeed,
    Fail,
    Never,
}

impl Outcome {
    /// The outcome a job fault (from [`FaultRegistry::for_job`]) gives.
    pub(crate) fn of(fault: Option<FaultKind>) -> Outcome {
        match fault {
            Some(FaultKind::FailJob) => Outcome::Fail,
            Some(FaultKind::NeverFinish) => Outcome::Never,
            _ => Outcome::Succeed,
        }
    }
}

/// `POST /_sim/faults` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    pub dialect: String,
    #[serde(default)]
    pub action: Option<String>,
    pub fault: FaultKind,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fault {
    pub id: String,
    pub dialect: String,
    pub action: Option<String>,
    pub fault: FaultKind,
    /// Hits left; `None` = unlimited.
    pub remaining: Option<u64>,
    pub probability: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

impl Fault {
    fn matches(&self, dialect: &str, action: &str) -> bool {
        self.dialect == dialect
            && self.action.as_deref().is_none_or(|a| a == action)
            && self.remaining != Some(0)
    }

    /// Rolls the probability; on a hit uses up one count.
    fn try_hit(&mut self, rng: &mut impl Rng) -> bool {
        let hit = self.probability >= 1.0 || rng.random::<f64>() < self.probability;
        if hit {
            if let Some(n) = self.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
        }
        hit
    }
}

/// Faults that hit one request's answer.
#[derive(Debug, Default, Clone)]
pub(crate) struct RequestFaults {
    /// Added delay before the answer is sent (the longest matching latency).
    pub latency: Option<Duration>,
    /// At most one fault that replaces or loses the answer.
    pub answer: Option<FaultKind>,
}

impl RequestFaults {
    /// Names for the request journal, e.g. `"latency,malformed"`.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.latency.is_some() {
            names.push(FaultKind::Latency.name());
        }
        if let Some(kind) = self.answer {
            names.push(kind.name());
        }
        names
    }
}

#[derive(Default)]
pub(crate) struct FaultRegistry {
    next_id: u64,
    faults: Vec<Fault>,
}

impl FaultRegistry {
    /// Validates and stores a fault; returns its id or what is wrong.
    pub(crate) fn add(&mut self, spec: FaultSpec) -> Result<String, String> {
        if !super::DIALECTS.contains(&spec.dialect.as_str()) {
            return Err(format!(
                "unknown dialect {:?}; known: {}",
                spec.dialect,
                super::DIALECTS.join(", ")
            ));
        }
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err(format!(
                "probability must be within 0.0..=1.0, got {probability}"
            ));
        }
        if spec.fault == FaultKind::Incomplete && !COUNTED_DIALECTS.contains(&spec.dialect.as_str())
        {
            return Err(format!(
                "an incomplete fault needs a dialect whose answers carry a count ({})",
                COUNTED_DIALECTS.join(", ")
            ));
        }
        if spec.fault == FaultKind::Latency && spec.latency_ms.is_none() {
            return Err("a latency fault needs latency_ms".to_string());
        }
        self.next_id += 1;
        let id = format!("flt-{}", self.next_id);
        self.faults.push(Fault {
            id: id.clone(),
            dialect: spec.dialect,
            action: spec.action.filter(|a| !a.is_empty()),
            fault: spec.fault,
            remaining: spec.count,
            probability,
            latency_ms: spec.latency_ms,
        });
        Ok(id)
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Picks the answer faults for one request, in the order they were added:
    /// every matching latency adds up to the longest, the first other answer
    /// fault that hits wins.
    pub(crate) fn for_request(&mut self, dialect: &str, action: &str) -> RequestFaults {
        let mut rng = rand::rng();
        let mut picked = RequestFaults::default();
        for fault in self.faults.iter_mut() {
            if fault.fault.is_job_fault() || !fault.matches(dialect, action) {
                continue;
            }
            let is_latency = fault.fault == FaultKind::Latency;
            if (!is_latency && picked.answer.is_some()) || !fault.try_hit(&mut rng) {
                continue;
            }
            if is_latency {
                let delay = Duration::from_millis(fault.latency_ms.unwrap_or(0));
                picked.latency = Some(picked.latency.map_or(delay, |d| d.max(delay)));
            } else {
                picked.answer = Some(fault.fault);
            }
        }
        picked
    }

    /// How a new job of `dialect`'s `action` ends, by the next job fault
    /// queued for it; a fault that shaped it is kept in `hit`, for the
    /// request's journal entry.
    pub(crate) fn job_outcome(
        &mut self,
        dialect: &str,
        action: &str,
        hit: &mut Option<FaultKind>,
    ) -> Outcome {
        let fault = self.for_job(dialect, action);
        if fault.is_some() {
            *hit = fault;
        }
        Outcome::of(fault)
    }

    /// The outcome fault for a job created by `action`, if one hits.
    pub(crate) fn for_job(&mut self, dialect: &str, action: &str) -> Option<FaultKind> {
        let mut rng = rand::rng();
        self.faults
            .iter_mut()
            .filter(|f| f.fault.is_job_fault() && f.matches(dialect, action))
            .find_map(|f| f.try_hit(&mut rng).then_some(f.fault))
    }
}

/// `server_error`: what a failing load balancer sends, not the API's JSON.
pub(crate) fn server_error_response() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/html")],
        "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n\
         <body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n\
         </body>\r\n</html>\r\n",
    )
        .into_response()
}

/// `malformed`: HTTP 200 with the first half of the real JSON answer.
pub(crate) fn malformed_response(json: &[u8]) -> Response {
    let cut = json.len() / 2;
    let truncated = json.get(..cut).unwrap_or_default().to_vec();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        truncated,
    )
        .into_response()
}

/// `drop_connection`: close the connection without an answer. When the
/// router is served without [`ConnHandle`] (not through `Simulator::serve`),
/// the nearest we can do is a body that fails right away, which makes hyper
/// abort the connection mid-answer.
pub(crate) fn dropped_response(conn: Option<&ConnHandle>) -> Response {
    if let Some(conn) = conn {
        conn.drop_connection();
    }
    let failing = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "drop_connection fault",
        ))
    });
    Response::new(Body::from_stream(failing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fault: FaultKind, action: Option<&str>, count: Option<u64>) -> FaultSpec {
        FaultSpec {
            dialect: "qingcloud".into(),
            action: action.map(str::to_string),
            fault,
            count,
            probability: None,
            latency_ms: Some(5),
        }
    }

    #[test]
    fn count_is_honoured_and_action_filters() {
        let mut reg = FaultRegistry::default();
        reg.add(spec(FaultKind::Throttle, Some("CreateSnapshots"), Some(2)))
            .expect("valid fault");
        assert_eq!(reg.for_request("qingcloud", "DescribeJobs").answer, None);
        for _ in 0..2 {
            let f = reg.for_request("qingcloud", "CreateSnapshots");
            assert_eq!(f.answer, Some(FaultKind::Throttle));
        }
        assert_eq!(reg.for_request("qingcloud", "CreateSnapshots").answer, None);
    }

    #[test]
    fn job_faults_are_not_answer_faults() {
        let mut reg = FaultRegistry::default();
        reg.add(spec(FaultKind::FailJob, None, Some(1)))
            .expect("valid fault");
        assert_eq!(reg.for_request("qingcloud", "CreateSnapshots").answer, None);
        assert_eq!(
            reg.for_job("qingcloud", "CreateSnapshots"),
            Some(FaultKind::FailJob)
        );
        assert_eq!(reg.for_job("qingcloud", "CreateSnapshots"), None);
    }

    #[test]
    fn zero_probability_never_hits_and_keeps_count() {
        let mut reg = FaultRegistry::default();
        let mut s = spec(FaultKind::Malformed, None, Some(1));
        s.probability = Some(0.0);
        reg.add(s).expect("valid fault");
        for _ in 0..20 {
            assert_eq!(reg.for_request("qingcloud", "DescribeJobs").answer, None);
        }
        assert_eq!(reg.list()[0].remaining, Some(1));
    }

    #[test]
    fn rejects_bad_specs() {
        let mut reg = FaultRegistry::default();
        let mut s = spec(FaultKind::Throttle, None, None);
        s.dialect = "nocloud".into();
        assert!(reg.add(s).is_err());
        let mut s = spec(FaultKind::Throttle, None, None);
        s.probability = Some(1.5);
        assert!(reg.add(s).is_err());
        let mut s = spec(FaultKind::Latency, None, None);
        s.latency_ms = None;
        assert!(reg.add(s).is_err());
        let mut s = spec(FaultKind::Incomplete, None, None);
        s.dialect = "lightsail".into();
        assert!(reg.add(s).is_err());
        assert!(reg.add(spec(FaultKind::Incomplete, None, None)).is_ok());
    }
}
