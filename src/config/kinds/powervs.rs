//! `kind = "powervs"`: IBM Power Virtual Server, and IBM Power for Google
//! Cloud (IP4G) through its service broker, which serves the same pcloud
//! paths.
//!
//! Three ways to authenticate, exactly one per section: `api_key` (IBM
//! Cloud IAM), `refresh_token` (the IP4G token service; `snapwarden login`
//! can provide the first one, then `auth = "refresh_token"` alone is
//! enough) or `bearer_token` (static).

use serde::Deserialize;
use toml::Spanned;

use super::Section;
use crate::config::model::{PowerVsAuth, PowerVsSettings};
use crate::config::raw::RawSecret;
use crate::config::secrets::{self, SecretKeys};
use crate::config::values;
use crate::config::Cx;
use crate::domain::ResourceKind;

/// IBM Cloud IAM's token endpoint (powervs.md §2a).
const DEFAULT_IAM_ENDPOINT: &str = "https://iam.cloud.ibm.com/identity/token";

const AUTH_MODES: &[&str] = &["api_key", "refresh_token", "bearer_token"];

/// The keys of a powervs section besides the common ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPowerVs {
    cloud_instance_id: Option<Spanned<String>>,
    crn: Option<Spanned<String>>,
    auth: Option<Spanned<String>>,
    iam_endpoint: Option<Spanned<String>>,
    api_key: Option<Spanned<RawSecret>>,
    api_key_file: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    refresh_token: Option<Spanned<RawSecret>>,
    refresh_token_file: Option<Spanned<String>>,
    refresh_token_env: Option<Spanned<String>>,
    bearer_token: Option<Spanned<RawSecret>>,
    bearer_token_file: Option<Spanned<String>>,
    bearer_token_env: Option<Spanned<String>>,
}

impl RawPowerVs {
    /// The auth modes whose secret is given in some form.
    fn secrets_given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.api_key.is_some() || self.api_key_file.is_some() || self.api_key_env.is_some() {
            out.push("api_key");
        }
        if self.refresh_token.is_some()
            || self.refresh_token_file.is_some()
            || self.refresh_token_env.is_some()
        {
            out.push("refresh_token");
        }
        if self.bearer_token.is_some()
            || self.bearer_token_file.is_some()
            || self.bearer_token_env.is_some()
        {
            out.push("bearer_token");
        }
        out
    }
}

pub(super) fn build(
    section: &Section<'_, '_>,
    raw: &RawPowerVs,
    endpoint: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
) -> Option<PowerVsSettings> {
    let endpoint = match endpoint {
        None => {
            section.missing(
                "endpoint",
                "the regional API, e.g. \"https://us-south.power-iaas.cloud.ibm.com\", or the \
                 IP4G broker",
                cx,
            );
            None
        }
        Some(e) => values::http_url(e, "endpoint", &mut cx.diag)
            .map(|u| u.as_str().trim_end_matches('/').to_string()),
    };

    let cloud_instance_id = match &raw.cloud_instance_id {
        None => {
            section.missing(
                "cloud_instance_id",
                "the workspace GUID (also in the CRN)",
                cx,
            );
            None
        }
        Some(id) if !is_path_segment(id.get_ref()) => {
            cx.diag.error(
                id.span(),
                "`cloud_instance_id` must be a non-empty workspace id without spaces, `/`, `?` \
                 or `#`",
            );
            None
        }
        Some(id) => Some(id.get_ref().clone()),
    };

    let crn = match &raw.crn {
        None => {
            section.missing(
                "crn",
                "the workspace CRN, sent as the CRN header, e.g. \
                 \"crn:v1:bluemix:public:power-iaas:dal12:a/ACCOUNT:WORKSPACE::\"",
                cx,
            );
            None
        }
        Some(c) => check_crn(c, cloud_instance_id.as_deref(), cx),
    };

    let auth = auth(section, raw, cx);

    Some(PowerVsSettings {
        endpoint: endpoint?,
        cloud_instance_id: cloud_instance_id?,
        crn: crn?,
        auth: auth?,
    })
}

/// Which auth mode, and its secret. `auth` may name the mode; without it
/// the mode is the one whose secret is given.
fn auth(section: &Section<'_, '_>, raw: &RawPowerVs, cx: &mut Cx<'_>) -> Option<PowerVsAuth> {
    let given = raw.secrets_given();
    let mode = match &raw.auth {
        Some(a) => {
            let m = a.get_ref().as_str();
            let Some(mode) = AUTH_MODES.iter().find(|x| **x == m) else {
                cx.diag.error(
                    a.span(),
                    format!(
                        "`auth` must be one of \"api_key\", \"refresh_token\" or \
                         \"bearer_token\", got {m:?}"
                    ),
                );
                return None;
            };
            if let Some(other) = given.iter().find(|g| *g != mode) {
                cx.diag.error(
                    a.span(),
                    format!(
                        "`auth = {mode:?}` but a `{other}` secret is given too: give only the \
                         secret of the mode in use"
                    ),
                );
                return None;
            }
            *mode
        }
        None => match given.as_slice() {
            [one] => *one,
            [] => {
                cx.diag.error(
                    section.span.clone(),
                    format!(
                        "no credentials in {}: give one of `api_key[_file|_env]` (IBM Cloud \
                         IAM), `refresh_token[_file|_env]` (IP4G; or `auth = \"refresh_token\"` \
                         after `snapwarden login`) or `bearer_token[_file|_env]` (static)",
                        section.what
                    ),
                );
                return None;
            }
            many => {
                cx.diag.error(
                    section.span.clone(),
                    format!(
                        "{} gives credentials for {} auth modes ({}): keep exactly one",
                        section.what,
                        many.len(),
                        many.join(", ")
                    ),
                );
                return None;
            }
        },
    };

    if mode != "api_key" {
        if let Some(iam) = &raw.iam_endpoint {
            cx.diag.error(
                iam.span(),
                format!("`iam_endpoint` is only used with `api_key` (this section uses {mode})"),
            );
            return None;
        }
    }

    match mode {
        "api_key" => {
            let iam_endpoint = match &raw.iam_endpoint {
                None => Some(DEFAULT_IAM_ENDPOINT.to_string()),
                Some(e) => values::http_url(e, "iam_endpoint", &mut cx.diag).map(String::from),
            };
            let api_key = secrets::resolve(
                SecretKeys {
                    name: "api_key",
                    literal: raw.api_key.as_ref(),
                    file: raw.api_key_file.as_ref(),
                    env: raw.api_key_env.as_ref(),
                },
                section.span.clone(),
                cx,
            );
            Some(PowerVsAuth::ApiKey {
                api_key: api_key?,
                iam_endpoint: iam_endpoint?,
            })
        }
        "refresh_token" => {
            let refresh_token = if given.contains(&"refresh_token") {
                Some(secrets::resolve(
                    SecretKeys {
                        name: "refresh_token",
                        literal: raw.refresh_token.as_ref(),
                        file: raw.refresh_token_file.as_ref(),
                        env: raw.refresh_token_env.as_ref(),
                    },
                    section.span.clone(),
                    cx,
                )?)
            } else {
                None
            };
            Some(PowerVsAuth::RefreshToken { refresh_token })
        }
        _ => {
            let bearer_token = secrets::resolve(
                SecretKeys {
                    name: "bearer_token",
                    literal: raw.bearer_token.as_ref(),
                    file: raw.bearer_token_file.as_ref(),
                    env: raw.bearer_token_env.as_ref(),
                },
                section.span.clone(),
                cx,
            );
            Some(PowerVsAuth::BearerToken {
                bearer_token: bearer_token?,
            })
        }
    }
}

/// `crn:v1:{cname}:{ctype}:{service}:{location}:a/{account}:{instance}::`;
/// the instance segment must be the workspace of `cloud_instance_id`.
fn check_crn(
    crn: &Spanned<String>,
    cloud_instance_id: Option<&str>,
    cx: &mut Cx<'_>,
) -> Option<String> {
    let c = crn.get_ref().trim();
    let parts: Vec<&str> = c.split(':').collect();
    if !c.starts_with("crn:v1:") || parts.len() < 8 || c.contains(char::is_whitespace) {
        cx.diag.error(
            crn.span(),
            "`crn` is not a CRN: expected \
             \"crn:v1:bluemix:public:power-iaas:ZONE:a/ACCOUNT:WORKSPACE::\"",
        );
        return None;
    }
    if let Some(cid) = cloud_instance_id {
        if parts[7] != cid {
            cx.diag.error(
                crn.span(),
                format!(
                    "`crn` names workspace {:?} but `cloud_instance_id` is {cid:?}: the API \
                     rejects a CRN header of another workspace",
                    parts[7]
                ),
            );
            return None;
        }
    }
    Some(c.to_string())
}

fn is_path_segment(s: &str) -> bool {
    !s.trim().is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '%'))
}

/// PVM instance ids go into URL paths.
pub(super) fn check_target(resource: ResourceKind, target: &str) -> Result<(), String> {
    if resource == ResourceKind::Instance && !is_path_segment(target) {
        return Err(format!(
            "target {target:?} is not a PVM instance id (no `/`, `?`, `#` or `%`)"
        ));
    }
    Ok(())
}
