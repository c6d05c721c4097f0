//! Target selection on PowerVS: `GET …/pvm-instances` lists every PVM
//! instance of the workspace in one answer (`pvmInstances`, no paging);
//! the target is `pvmInstanceID`, the name `serverName`.
//! Tags live in IBM's Global Tagging service, not in pcloud, so selection
//! is by name only.

use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;

use super::{errors, PowerVs};
use crate::providers::unexpected;
use crate::providers::{ProviderError, Resource};

pub(super) const LIST_INSTANCES: &str = "pcloud.pvminstances.getall";

#[derive(Debug, Deserialize)]
struct PvmInstances {
    #[serde(rename = "pvmInstances")]
    pvm_instances: Vec<PvmInstanceReference>,
}

#[derive(Debug, Deserialize)]
struct PvmInstanceReference {
    #[serde(rename = "pvmInstanceID", default)]
    pvm_instance_id: Option<String>,
    #[serde(rename = "serverName", default)]
    server_name: Option<String>,
}

impl PowerVs {
    /// Every instance a selector could pick (the only kind this cloud
    /// lists; the caller checked the kind asked for).
    pub(super) async fn select_instances(&self) -> Result<Vec<Resource>, ProviderError> {
        let body = self
            .call(LIST_INSTANCES, Method::GET, "/pvm-instances", None)
            .await?;
        let list: PvmInstances = serde_json::from_slice(&body)
            .map_err(|e| errors::malformed(LIST_INSTANCES, e, body.len()))?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for i in list.pvm_instances {
            let Some(id) = i.pvm_instance_id.filter(|s| !s.trim().is_empty()) else {
                return Err(unexpected(
                    LIST_INSTANCES,
                    "an instance without a pvmInstanceID",
                ));
            };
            if seen.insert(id.clone()) {
                out.push(Resource {
                    id,
                    name: i.server_name.unwrap_or_default(),
                    tags: Default::default(),
                });
            }
        }
        Ok(out)
    }
}
