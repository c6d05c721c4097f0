//! Target selection on UCloudStack: DescribeDisk (SG-disk), pages of
//! `Limit` 100 by `Offset` until `TotalCount`, each disk's `DiskID` and
//! `Name`. UCloudStack has no tags. A `TotalCount` that changes between
//! pages, an empty page before it, or fewer distinct disks than it says is
//! an incomplete listing: an error, never a partial answer.

use std::collections::HashSet;

use serde::Deserialize;

use super::{errors, UCloudStack, BATCH};
use crate::providers::{not_selectable, ErrorKind, ProviderError, Resource};

const DESCRIBE_DISK: &str = "DescribeDisk";

/// DiskStatus values of a disk that is gone or going (SG-disk).
const GONE: &[&str] = &["Deleting", "Deleted", "Releasing", "Released"];

#[derive(Debug, Deserialize)]
struct DescribeDiskResponse {
    #[serde(
        rename = "TotalCount",
        default,
        deserialize_with = "crate::providers::wire::flex_u64"
    )]
    total_count: Option<u64>,
    #[serde(rename = "Infos", default)]
    infos: Option<Vec<DiskInfo>>,
}

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
    pub(super) async fn select_resources(
        &self,
        resource: &str,
    ) -> Result<Vec<Resource>, ProviderError> {
        if resource != "disk" {
            return Err(not_selectable("ucloudstack", DESCRIBE_DISK, resource));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut offset: u64 = 0;
        let mut total: Option<u64> = None;
        loop {
            let params = vec![
                ("Limit".to_string(), BATCH.to_string()),
                ("Offset".to_string(), offset.to_string()),
            ];
            let page: DescribeDiskResponse = self.client.call(DESCRIBE_DISK, params).await?;
            let Some(page_total) = page.total_count else {
                return Err(errors::unexpected(
                    DESCRIBE_DISK,
                    "no TotalCount in a listing",
                ));
            };
            match total {
                None => total = Some(page_total),
                Some(t) if t != page_total => {
                    return Err(incomplete(format!(
                        "TotalCount changed from {t} to {page_total} between pages"
                    )));
                }
                Some(_) => {}
            }
            if offset >= page_total {
                break;
            }
            let infos = page.infos.unwrap_or_default();
            if infos.is_empty() {
                return Err(incomplete(format!(
                    "empty page at Offset {offset} of {page_total}"
                )));
            }
            offset += infos.len() as u64;
            for info in infos {
                let Some(id) = info.disk_id.filter(|i| !i.trim().is_empty()) else {
                    return Err(errors::unexpected(DESCRIBE_DISK, "a disk without a DiskID"));
                };
                if !seen.insert(id.clone()) {
                    continue;
                }
                if info
                    .disk_status
                    .as_deref()
                    .is_some_and(|s| GONE.contains(&s))
                {
                    continue;
                }
                out.push(Resource {
                    id,
                    name: info.name.unwrap_or_default(),
                    tags: Default::default(),
                });
            }
            if offset >= page_total {
                break;
            }
        }
        let total = total.unwrap_or(0);
        if (seen.len() as u64) != total {
            return Err(incomplete(format!(
                "{} distinct disks read, TotalCount is {total}",
                seen.len()
            )));
        }
        Ok(out)
    }
}

fn incomplete(detail: String) -> ProviderError {
    ProviderError::new(
        ErrorKind::Transient,
        DESCRIBE_DISK,
        format!("listing incomplete: {detail}"),
    )
}
