//! Target selection on KakaoCloud: instances by the BCS list
//! (`GET /api/v1/instances`), volumes by the Volume API list
//! (`GET /api/v1/volumes`), every page by `limit`/`offset` until
//! the end (see [`Pager`]). Names only: instances have no tags, so none
//! are offered for volumes either.

use serde::Deserialize;

use super::client::Host;
use super::wire::Pagination;
use super::{KakaoCloud, Pager, LIST_INSTANCES};
use crate::domain::ResourceKind;
use crate::providers::{not_selectable, ProviderError, Resource};

const LIST_VOLUMES: &str = "ListVolumes";

/// Statuses of something that is gone or going.
const GONE: &[&str] = &["deleting", "deleted", "error_deleting"];

#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(default)]
    instances: Option<Vec<Item>>,
    #[serde(default)]
    volumes: Option<Vec<Item>>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
struct Item {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl KakaoCloud {
    pub(super) async fn select_resources(
        &self,
        resource: ResourceKind,
    ) -> Result<Vec<Resource>, ProviderError> {
        let (call, host, path) = match resource {
            ResourceKind::Instance => (LIST_INSTANCES, Host::Bcs, "/api/v1/instances"),
            ResourceKind::Volume => (LIST_VOLUMES, Host::Volume, "/api/v1/volumes"),
            other => return Err(not_selectable("kakaocloud", LIST_INSTANCES, other)),
        };
        let mut pager = Pager::new(call);
        let mut items: Vec<Item> = Vec::new();
        loop {
            let page: Listing = self.next_page(&pager, host, path, &[], true).await?;
            let got = if call == LIST_VOLUMES {
                page.volumes
            } else {
                page.instances
            }
            .unwrap_or_default();
            let more = pager.absorb(got.iter().map(|i| i.id.as_str()), page.pagination)?;
            for i in got {
                if !items.iter().any(|o| o.id == i.id) {
                    items.push(i);
                }
            }
            if !more {
                break;
            }
        }
        let items = pager.finish(items)?;
        Ok(items
            .into_iter()
            .filter(|i| {
                !i.status
                    .as_deref()
                    .is_some_and(|s| GONE.contains(&s.to_ascii_lowercase().as_str()))
            })
            .map(|i| Resource {
                name: i.name.unwrap_or_default(),
                id: i.id,
                tags: Default::default(),
            })
            .collect())
    }
}
