//! UCloudStack response bodies as serde types, lenient where the docs
//! disagree (`Name` in the table and SDK, `SnapshotName` in the example;
//! numbers that may come as strings; `Infos` absent or null on an empty
//! answer) and ignoring every field not needed. Parsing only.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use crate::providers::query_api::paging::Page;

crate::providers::query_api::envelope!(ret_code: "RetCode", message: "Message");

#[derive(Debug, Deserialize)]
pub struct CreateSnapshotResponse {
    #[serde(rename = "SnapshotID", default)]
    pub snapshot_id: Option<String>,
}

/// DeleteSnapshot / RollbackSnapshot: nothing beyond the envelope.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// One page of a Describe call (DescribeSnapshot, DescribeDisk): the
/// `TotalCount` and this page's `Infos`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Described<T> {
    #[serde(
        rename = "TotalCount",
        default,
        deserialize_with = "crate::providers::wire::flex_u64"
    )]
    pub total_count: Option<u64>,
    #[serde(rename = "Infos", default)]
    pub infos: Option<Vec<T>>,
}

impl<T> Described<T> {
    /// The page as the shared paging reads it (no `Infos`: no items).
    pub fn into_page(self) -> Page<T> {
        Page {
            total: self.total_count,
            items: Ok(self.infos.unwrap_or_default()),
        }
    }
}

pub type DescribeSnapshotResponse = Described<SnapshotInfo>;

#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotInfo {
    #[serde(rename = "SnapshotID")]
    pub snapshot_id: String,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    /// The spelling of the doc's response example.
    #[serde(rename = "SnapshotName", default)]
    snapshot_name: Option<String>,
    #[serde(rename = "Remark", default)]
    pub remark: Option<String>,
    #[serde(rename = "DiskID", default)]
    pub disk_id: Option<String>,
    #[serde(rename = "SnapshotStatus", default)]
    pub status: Option<String>,
    /// `Manual` | `Automatic`; absent on deployments older than the
    /// reference revision.
    #[serde(rename = "Type", default)]
    pub snapshot_type: Option<String>,
    #[serde(
        rename = "CreateTime",
        default,
        deserialize_with = "crate::providers::wire::flex_i64"
    )]
    pub create_time: Option<i64>,
    /// The reference gives no unit; read as GB, the unit of the API's
    /// disk sizes.
    #[serde(
        rename = "SnapshotSize",
        default,
        deserialize_with = "crate::providers::wire::flex_i64"
    )]
    pub size_gb: Option<i64>,
}

impl SnapshotInfo {
    /// `Name`, else `SnapshotName`.
    pub fn name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.snapshot_name.as_deref())
            .unwrap_or("")
    }

    /// `CreateTime` as an instant: Unix seconds (the unit is not
    /// documented; a value too large for seconds is read as milliseconds).
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        let t = self.create_time.filter(|t| *t > 0)?;
        if t > 100_000_000_000 {
            Utc.timestamp_millis_opt(t).single()
        } else {
            Utc.timestamp_opt(t, 0).single()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::query_api::fake::parse;

    #[test]
    fn doc_example_with_both_name_spellings() {
        let r: DescribeSnapshotResponse = parse(
            r#"{"Action":"DescribeSnapshotResponse","RetCode":0,"Message":"","TotalCount":2,"Infos":[
  {"SnapshotID":"snap-8d2kxm","SnapshotName":"db-nightly","Remark":"snapwarden policy=db",
   "DiskID":"disk-3f9kq2","DiskType":"Data","SnapshotStatus":"Createing","CreateTime":1704076200,"Region":"cn","Zone":"zone-01"},
  {"SnapshotID":"snap-71hqzt","Name":"x","SnapshotName":"y","Type":"Automatic","SnapshotStatus":"Normal",
   "CreateTime":"1703989800000","SnapshotSize":10,"Email":null,"ProjectID":"p-1"}]}"#,
        );
        assert_eq!(r.total_count, Some(2));
        let infos = r.infos.unwrap_or_default();
        assert_eq!(infos[0].name(), "db-nightly");
        assert_eq!(infos[1].name(), "x");
        assert_eq!(infos[0].snapshot_type, None);
        assert_eq!(infos[1].snapshot_type.as_deref(), Some("Automatic"));
        assert_eq!((infos[0].size_gb, infos[1].size_gb), (None, Some(10)));
        assert_eq!(
            infos[0].created_at().map(|t| t.timestamp()),
            Some(1_704_076_200)
        );
        assert_eq!(
            infos[1].created_at().map(|t| t.timestamp()),
            Some(1_703_989_800)
        );
    }

    #[test]
    fn envelopes_and_empty_answers() {
        let e: Envelope =
            parse(r#"{"Action":"CreateSnapshotResponse","RetCode":2502,"Message":"busy"}"#);
        assert_eq!(e.ret_code, Some(2502));
        let e: Envelope = parse(r#"{"RetCode":"0"}"#);
        assert_eq!(e.ret_code, Some(0));
        let r: DescribeSnapshotResponse = parse(r#"{"RetCode":0,"TotalCount":0,"Infos":null}"#);
        assert!(r.infos.is_none());
        assert!(serde_json::from_str::<DescribeSnapshotResponse>(
            r#"{"RetCode":0,"TotalCount":1,"Infos":[{"Name":"no id"}]}"#
        )
        .is_err());
    }
}
