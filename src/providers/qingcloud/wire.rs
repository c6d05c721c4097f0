//! QingCloud response bodies as serde types, lenient where the API is
//! known to vary (`job_id` string or array, `snapshot_type` number or
//! string, `lastest_`/`latest_snapshot_time`, null descriptions) and
//! ignoring fields it does not need. Parsing only: no mapping to engine
//! states happens here.

use chrono::{DateTime, Utc};
use serde::Deserialize;

crate::providers::query_api::envelope!(ret_code: "ret_code", message: "message");

/// `job_id`: documented as a string; the Go SDK reads an array since 2024.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum JobIds {
    One(String),
    Many(Vec<String>),
}

impl JobIds {
    /// The non-empty job ids, in order.
    pub fn into_vec(self) -> Vec<String> {
        let all = match self {
            JobIds::One(id) => vec![id],
            JobIds::Many(ids) => ids,
        };
        all.into_iter()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateSnapshotsResponse {
    #[serde(default)]
    pub job_id: Option<JobIds>,
    #[serde(default)]
    pub snapshots: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct CreateVolumeFromSnapshotResponse {
    #[serde(default)]
    pub job_id: Option<JobIds>,
    #[serde(default)]
    pub volume_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeleteSnapshotsResponse {
    #[serde(default)]
    pub job_id: Option<JobIds>,
}

/// ModifySnapshotAttributes answers only `action` and `ret_code` (which
/// the client checks before decoding this).
#[derive(Debug, Deserialize)]
pub struct ModifySnapshotAttributesResponse {}

#[derive(Debug, Deserialize)]
pub struct DescribeJobsResponse {
    pub job_set: Vec<Job>,
    #[serde(default, deserialize_with = "crate::providers::wire::flex_u64")]
    pub total_count: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub job_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub job_action: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DescribeSnapshotsResponse {
    pub snapshot_set: Vec<Snapshot>,
    #[serde(default, deserialize_with = "crate::providers::wire::flex_u64")]
    pub total_count: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub snapshot_id: String,
    #[serde(default)]
    pub snapshot_name: Option<String>,
    /// Never a marker (QingCloud sets none on create, so the marker is
    /// the name); read to keep an operator's text beside a hold mark.
    /// May be null.
    #[serde(default)]
    pub description: Option<String>,
    /// 0 incremental, 1 full; number or string on the wire.
    #[serde(default, deserialize_with = "crate::providers::wire::flex_i64")]
    pub snapshot_type: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub transition_status: Option<String>,
    #[serde(default)]
    pub root_id: Option<String>,
    /// `"self"` on a full snapshot.
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub snapshot_time: Option<String>,
    /// The volume or instance the snapshot is of.
    #[serde(default)]
    pub resource: Option<SnapshotResource>,
    /// In MiB (the reference's full snapshot of a 50 GB volume says
    /// 51200); number or string on the wire.
    #[serde(default, deserialize_with = "crate::providers::wire::flex_i64")]
    pub size: Option<i64>,
    // `lastest_snapshot_time` (doc) / `latest_snapshot_time` (Go SDK) and
    // the other chain totals are not needed and fall under "unknown fields
    // are ignored"; declaring them as serde aliases would turn a body that
    // carries both spellings into a duplicate-field error.
}

/// `resource` of a snapshot item.
#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotResource {
    #[serde(default)]
    pub resource_id: Option<String>,
}

impl Snapshot {
    /// When the snapshot was made: `create_time`, else `snapshot_time`.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        parse_time(self.create_time.as_deref())
            .or_else(|| parse_time(self.snapshot_time.as_deref()))
    }
}

/// ISO8601 / RFC 3339 UTC time; anything else (empty, null, garbage) → None.
pub fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?.trim();
    if s.is_empty() {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::query_api::fake::parse;

    #[test]
    fn job_id_as_string_or_array() {
        let r: CreateSnapshotsResponse = parse(
            r#"{"action":"CreateSnapshotsResponse","job_id":"j-aj3b6pjl","snapshots":["ss-qhnolmyt"],"ret_code":0}"#,
        );
        assert_eq!(
            r.job_id.map(JobIds::into_vec),
            Some(vec!["j-aj3b6pjl".to_string()])
        );
        let r: CreateSnapshotsResponse =
            parse(r#"{"job_id":["j-1","j-2"],"snapshots":["ss-1","ss-2"],"ret_code":0}"#);
        assert_eq!(
            r.job_id.map(JobIds::into_vec),
            Some(vec!["j-1".to_string(), "j-2".to_string()])
        );
        let r: CreateSnapshotsResponse = parse(r#"{"job_id":["", " "],"ret_code":0}"#);
        assert_eq!(r.job_id.map(JobIds::into_vec), Some(vec![]));
        assert!(r.snapshots.is_none());
    }

    #[test]
    fn envelope_reads_error_bodies() {
        let e: Envelope = parse(
            r#"{"ret_code":1400,"message":"PermissionDenied, resource [ss-u90rxvl1] is [creating], please try later"}"#,
        );
        assert_eq!(e.ret_code, Some(1400));
        let e: Envelope = parse(r#"{"ret_code":"0"}"#);
        assert_eq!(e.ret_code, Some(0));
        let e: Envelope = parse(r#"{"action":"x"}"#);
        assert_eq!(e.ret_code, None);
    }

    #[test]
    fn reference_describe_snapshots_item() {
        // An item as the official CLI printed it (every field kept).
        let r: DescribeSnapshotsResponse = parse(
            r#"{
  "action": "DescribeSnapshotsResponse",
  "snapshot_set": [
    {
      "status": "available", "head_chain": 0, "snapshot_name": "full-snap",
      "snapshot_id": "ss-umocjmc3", "owner": "usr-kylwuKxL", "description": null,
      "total_size": 51200, "sub_code": 0, "tags": [], "parent_id": "self",
      "provider": "self", "status_time": "2018-11-27T10:36:16Z", "size": 51200,
      "is_taken": 1, "snapshot_time": "2018-11-27T10:31:54Z", "root_id": "ss-umocjmc3",
      "visibility": "private", "virtual_size": 51200,
      "resource": {"resource_name": "test-snap", "resource_type": "volume", "resource_id": "vol-df3m8oal"},
      "is_head": 0, "lastest_snapshot_time": "2018-11-27T10:31:54Z", "total_count": 1,
      "snapshot_type": 1, "create_time": "2018-11-27T10:36:16Z", "resource_project_info": []
    }
  ],
  "ret_code": 0,
  "total_count": 1
}"#,
        );
        assert_eq!(r.total_count, Some(1));
        let s = &r.snapshot_set[0];
        assert_eq!(s.snapshot_id, "ss-umocjmc3");
        assert_eq!(s.snapshot_type, Some(1));
        assert_eq!(s.parent_id.as_deref(), Some("self"));
        assert_eq!(
            s.created_at().map(|t| t.to_rfc3339()),
            Some("2018-11-27T10:36:16+00:00".to_string())
        );
        // 51200 MiB: the 50 GB volume the reference restores it to.
        assert_eq!(s.size, Some(51200));
    }

    #[test]
    fn snapshot_type_as_string_and_both_latest_spellings() {
        let r: DescribeSnapshotsResponse = parse(
            r#"{"ret_code":0,"total_count":"2","snapshot_set":[
              {"snapshot_id":"ss-a","snapshot_type":"0","latest_snapshot_time":"2024-01-01T00:00:00Z",
               "lastest_snapshot_time":null,"snapshot_time":"2024-01-01T02:30:02Z","brand_new_field":{"x":[1]}},
              {"snapshot_id":"ss-b","snapshot_type":"1","description":"hi","create_time":"",
               "latest_snapshot_time":"2024-01-01T00:00:00Z","lastest_snapshot_time":"2024-01-01T00:00:00Z"}]}"#,
        );
        assert_eq!(r.total_count, Some(2));
        assert_eq!(r.snapshot_set[0].snapshot_type, Some(0));
        assert_eq!(r.snapshot_set[1].snapshot_type, Some(1));
        // create_time absent → snapshot_time.
        assert_eq!(
            r.snapshot_set[0].created_at().map(|t| t.to_rfc3339()),
            Some("2024-01-01T02:30:02+00:00".to_string())
        );
        // create_time empty and no snapshot_time → None.
        assert_eq!(r.snapshot_set[1].created_at(), None);
    }

    #[test]
    fn jobs_with_unknown_fields() {
        let r: DescribeJobsResponse = parse(
            r#"{"action":"DescribeJobsResponse","total_count":1,"ret_code":0,
             "job_set":[{"job_id":"j-aj3b6pjl","job_action":"CreateSnapshots","status":"successful",
               "resource_ids":"vol-df3m8oal ss-qhnolmyt","owner":"usr-1234abcd","error_codes":"",
               "create_time":"2024-01-01T02:30:01Z","status_time":"2024-01-01T02:31:40Z"}]}"#,
        );
        assert_eq!(r.job_set[0].status.as_deref(), Some("successful"));
    }

    #[test]
    fn missing_set_is_an_error() {
        assert!(serde_json::from_str::<DescribeJobsResponse>(r#"{"ret_code":0}"#).is_err());
        assert!(serde_json::from_str::<DescribeSnapshotsResponse>(r#"{"ret_code":0}"#).is_err());
    }
}
