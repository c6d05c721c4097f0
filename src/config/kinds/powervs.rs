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

/// IBM Cloud IAM's token endpoint.
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
    /// The keys of one auth mode's secret.
    fn secret(&self, mode: &'static str) -> SecretKeys<'_> {
        let (literal, file, env) = match mode {
            "api_key" => (&self.api_key, &self.api_key_file, &self.api_key_env),
            "refresh_token" => (
                &self.refresh_token,
                &self.refresh_token_file,
                &self.refresh_token_env,
            ),
            _ => (
                &self.bearer_token,
                &self.bearer_token_file,
                &self.bearer_token_env,
            ),
        };
        SecretKeys {
            name: mode,
            literal: literal.as_ref(),
            file: file.as_ref(),
            env: env.as_ref(),
        }
    }

    /// The auth modes whose secret is given in some form.
    fn secrets_given(&self) -> Vec<&'static str> {
        AUTH_MODES
            .iter()
            .copied()
            .filter(|m| self.secret(m).given())
            .collect()
    }
}

pub(super) fn build(
    section: &Section<'_, '_>,
    raw: &RawPowerVs,
    endpoint: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
) -> Option<PowerVsSettings> {
    let endpoint = section
        .required(
            endpoint,
            "endpoint",
            "the regional API, e.g. \"https://us-south.power-iaas.cloud.ibm.com\", or the \
             IP4G broker",
            cx,
        )
        .and_then(|e| values::http_url(e, "endpoint", &mut cx.diag))
        .map(|u| u.as_str().trim_end_matches('/').to_string());

    let cloud_instance_id = section
        .required(
            raw.cloud_instance_id.as_ref(),
            "cloud_instance_id",
            "the workspace GUID (also in the CRN)",
            cx,
        )
        .and_then(|id| {
            if is_path_segment(id.get_ref()) {
                return Some(id.get_ref().clone());
            }
            cx.diag.error(
                id.span(),
                "`cloud_instance_id` must be a non-empty workspace id without spaces, `/`, `?` \
                 or `#`",
            );
            None
        });

    let crn = section
        .required(
            raw.crn.as_ref(),
            "crn",
            "the workspace CRN, sent as the CRN header, e.g. \
             \"crn:v1:bluemix:public:power-iaas:dal12:a/ACCOUNT:WORKSPACE::\"",
            cx,
        )
        .and_then(|c| check_crn(c, cloud_instance_id.as_deref(), cx));

    let auth = auth(section, raw, cx);

    Some(PowerVsSettings {
        endpoint: endpoint?,
        cloud_instance_id: cloud_instance_id?,
        crn: crn?,
        auth: auth?,
    })
}

/// Which auth mode, and its secret.
fn auth(section: &Section<'_, '_>, raw: &RawPowerVs, cx: &mut Cx<'_>) -> Option<PowerVsAuth> {
    let given = raw.secrets_given();
    let mode = auth_mode(section, raw, &given, cx)?;
    if mode != "api_key" {
        if let Some(iam) = &raw.iam_endpoint {
            cx.diag.error(
                iam.span(),
                format!("`iam_endpoint` is only used with `api_key` (this section uses {mode})"),
            );
            return None;
        }
    }
    let secret = |cx: &mut Cx<'_>| secrets::resolve(raw.secret(mode), section.span.clone(), cx);
    match mode {
        "api_key" => {
            let iam_endpoint = values::http_url_or(
                raw.iam_endpoint.as_ref(),
                "iam_endpoint",
                DEFAULT_IAM_ENDPOINT,
                &mut cx.diag,
            );
            let api_key = secret(cx);
            Some(PowerVsAuth::ApiKey {
                api_key: api_key?,
                iam_endpoint: iam_endpoint?,
            })
        }
        "refresh_token" => {
            let refresh_token = if given.contains(&"refresh_token") {
                Some(secret(cx)?)
            } else {
                None
            };
            Some(PowerVsAuth::RefreshToken { refresh_token })
        }
        _ => Some(PowerVsAuth::BearerToken {
            bearer_token: secret(cx)?,
        }),
    }
}

/// `auth` may name the mode (and then no other mode's secret may be
/// given); without it the mode is the one whose secret is given.
fn auth_mode(
    section: &Section<'_, '_>,
    raw: &RawPowerVs,
    given: &[&'static str],
    cx: &mut Cx<'_>,
) -> Option<&'static str> {
    let Some(a) = &raw.auth else {
        return match given {
            [one] => Some(*one),
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
                None
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
                None
            }
        };
    };
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
    Some(mode)
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
