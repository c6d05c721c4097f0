//! The request journal: every dialect request the simulator received,
//! including rejected and faulted ones, so tests can assert what a client
//! actually sent (`GET /_sim/requests`). Signatures and tokens are never
//! recorded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Oldest entries are dropped beyond this many, so a long `snapwarden sim`
/// session does not grow without bound.
const MAX_RECORDS: usize = 100_000;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestRecord {
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub dialect: String,
    pub method: String,
    pub action: String,
    /// All parameters except the signature.
    pub params: BTreeMap<String, String>,
    /// The provider-level result code, when the dialect has one and an answer
    /// was produced.
    pub ret_code: Option<i64>,
    /// HTTP status sent; `None` when the connection was dropped.
    pub http_status: Option<u16>,
    /// Faults that hit this request, comma-separated, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Default)]
pub(crate) struct Journal {
    next_seq: u64,
    records: std::collections::VecDeque<RequestRecord>,
    /// Requests per dialect and action since the last clear, kept apart
    /// from the records so they stay exact past [`MAX_RECORDS`] and cost
    /// nothing to read (`GET /_sim/counters`, for benchmarks).
    counters: BTreeMap<(String, String), u64>,
}

impl Journal {
    /// Stores `record`, assigning its sequence number.
    pub(crate) fn push(&mut self, mut record: RequestRecord) {
        self.next_seq += 1;
        record.seq = self.next_seq;
        *self
            .counters
            .entry((record.dialect.clone(), record.action.clone()))
            .or_default() += 1;
        if self.records.len() >= MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    pub(crate) fn filtered(
        &self,
        dialect: Option<&str>,
        action: Option<&str>,
    ) -> Vec<RequestRecord> {
        self.records
            .iter()
            .filter(|r| dialect.is_none_or(|d| r.dialect == d))
            .filter(|r| action.is_none_or(|a| r.action == a))
            .cloned()
            .collect()
    }

    /// `(dialect, action, requests)` since the last clear, sorted.
    pub(crate) fn counters(&self) -> Vec<(&str, &str, u64)> {
        self.counters
            .iter()
            .map(|((d, a), n)| (d.as_str(), a.as_str(), *n))
            .collect()
    }

    pub(crate) fn clear(&mut self) {
        self.records.clear();
        self.counters.clear();
    }
}
