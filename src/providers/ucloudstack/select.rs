//! Target selection on UCloudStack: DescribeDisk (SG-disk), pages of
//! `Limit` 100 by `Offset` until `TotalCount`, each disk's `DiskID` and
//! `Name`. UCloudStack has no tags. A `TotalCount` that changes between
//! pages, an empty page before it, or fewer distinct disks than it says is
//! an incomplete listing: an error, never a partial answer.

use serde::Deserialize;

use super::client::UCloudStackApi as Api;
use super::wire::Described;
use super::UCloudStack;
use crate::providers::query_api::paging::{self, Paging};
use crate::providers::query_api::{is_gone, required_id};
use crate::providers::{ProviderError, Resource};

pub(super) const DESCRIBE_DISK: &str = "DescribeDisk";

/// DiskStatus values of a disk that is gone or going (SG-disk).
const GONE: &[&str] = &["Deleting", "Deleted", "Releasing", "Released"];

type DescribeDiskResponse = Described<DiskInfo>;

#[derive(Debug, Deserialize)]
struct DiskInfo {
    #[serde(rename = "DiskID", default)]
    disk_id: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "DiskStatus", default)]
    disk_status: Option<String>,
}

impl UCloudStack {
    /// Every disk a selector could pick (the only kind this cloud
    /// lists; the caller checked the kind asked for).
    pub(super) async fn select_disks(&self) -> Result<Vec<Resource>, ProviderError> {
        let mut out = Vec::new();
        // More distinct disks than TotalCount is also refused.
        let paging = Paging {
            exact: true,
            ..Paging::of::<Api>(DESCRIBE_DISK, "disks")
        };
        let fetch = |offset: u64| async move {
            let page: DescribeDiskResponse = self
                .describe_page(DESCRIBE_DISK, Vec::new(), offset)
                .await?;
            Ok(page.into_page())
        };
        let id_of =
            |info: &DiskInfo| required_id(&info.disk_id, DESCRIBE_DISK, "a disk without a DiskID");
        paging::read_all(&paging, fetch, id_of, |id, info| {
            if !is_gone(info.disk_status.as_deref(), GONE) {
                out.push(Resource {
                    id,
                    name: info.name.unwrap_or_default(),
                    tags: Default::default(),
                });
            }
        })
        .await?;
        Ok(out)
    }
}
