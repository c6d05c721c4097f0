//! Provider kinds: which `kind` values exist, the keys every kind shares,
//! and the dispatch to one module per kind. Adding a cloud means one new
//! file here (its raw section, its checks) and one arm in each `match` on
//! [`Kind`]; nothing else in `config/` knows about a particular cloud.
//!
//! A provider section is read in two steps so that `deny_unknown_fields`
//! and `Spanned` keep working: first `kind` is read from the parsed table,
//! then the same table (with its original byte spans) is deserialized into
//! the common keys and into the kind's own struct.

mod kakaocloud;
mod lightsail;
mod powervs;
mod qingcloud;
mod ucloudstack;

use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostics::list;
use super::model::{ProviderConfig, ProviderSettings};
use super::raw::{check_keys, deserialize_table, expect_table, fields_of};
use super::values::{self, DurationRule, MINUTE};
use super::Cx;
use crate::domain::ResourceKind;

/// A provider kind: the clouds of the shared vocabulary. The config side of
/// each (its keys, its checks, its settings) is dispatched from here.
pub(crate) use crate::domain::Cloud as Kind;

/// Every kind's config name, in the order shown to users.
fn names() -> Vec<&'static str> {
    Kind::ALL.iter().map(|k| k.name()).collect()
}

impl Kind {
    /// Kind-specific shape check of one target id, e.g. `vol-` prefixes.
    pub(crate) fn check_target(self, resource: ResourceKind, target: &str) -> Result<(), String> {
        match self {
            Kind::QingCloud => qingcloud::check_target(resource, target),
            Kind::UCloudStack => ucloudstack::check_target(resource, target),
            Kind::KakaoCloud => kakaocloud::check_target(resource, target),
            Kind::PowerVs => powervs::check_target(resource, target),
            Kind::Lightsail => lightsail::check_target(resource, target),
        }
    }

    /// The kind's own keys (besides [`CommonRaw`]'s).
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::QingCloud => fields_of::<qingcloud::RawQingCloud>(),
            Kind::UCloudStack => fields_of::<ucloudstack::RawUCloudStack>(),
            Kind::KakaoCloud => fields_of::<kakaocloud::RawKakaoCloud>(),
            Kind::PowerVs => fields_of::<powervs::RawPowerVs>(),
            Kind::Lightsail => fields_of::<lightsail::RawLightsail>(),
        }
    }

    fn build(
        self,
        section: &Section<'_, '_>,
        common: &CommonRaw,
        cx: &mut Cx<'_>,
    ) -> Option<ProviderSettings> {
        let endpoint = common.endpoint.as_ref();
        match self {
            Kind::QingCloud => {
                build_with(section, endpoint, cx, qingcloud::build).map(ProviderSettings::QingCloud)
            }
            Kind::UCloudStack => build_with(section, endpoint, cx, ucloudstack::build)
                .map(ProviderSettings::UCloudStack),
            Kind::KakaoCloud => build_with(section, endpoint, cx, kakaocloud::build)
                .map(ProviderSettings::KakaoCloud),
            Kind::PowerVs => {
                build_with(section, endpoint, cx, powervs::build).map(ProviderSettings::PowerVs)
            }
            Kind::Lightsail => {
                build_with(section, endpoint, cx, lightsail::build).map(ProviderSettings::Lightsail)
            }
        }
    }
}

/// A kind's `build` (section, its own keys, `endpoint`), with its own keys
/// read from the section first.
type Build<R, S> = fn(&Section<'_, '_>, &R, Option<&Spanned<String>>, &mut Cx<'_>) -> Option<S>;

fn build_with<R: DeserializeOwned, S>(
    section: &Section<'_, '_>,
    endpoint: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
    build: Build<R, S>,
) -> Option<S> {
    let raw = deserialize_table(section.span.clone(), section.table, &mut cx.diag)?;
    build(section, &raw, endpoint, cx)
}

/// Keys every kind takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommonRaw {
    /// Read (and checked) before this struct, by `read_kind`; listed here
    /// so that the key is known.
    #[serde(rename = "kind")]
    _kind: Option<serde::de::IgnoredAny>,
    endpoint: Option<Spanned<String>>,
    requests_per_second: Option<Spanned<f64>>,
    max_in_flight: Option<Spanned<i64>>,
    ca_file: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    price_per_gib_month: Option<Spanned<f64>>,
}

/// One provider section being checked.
pub(crate) struct Section<'a, 'i> {
    /// `[providers.NAME]`, for messages.
    pub what: String,
    /// The section header (where missing keys are reported).
    pub span: Range<usize>,
    pub table: &'a DeTable<'i>,
}

impl Section<'_, '_> {
    /// Reports a required key that is absent.
    pub(crate) fn missing(&self, key: &str, expected: &str, cx: &mut Cx<'_>) {
        cx.diag
            .missing(self.span.clone(), &self.what, key, expected);
    }

    /// A required key's value, or (reported) `None` where it is absent.
    pub(crate) fn required<'v, T>(
        &self,
        value: Option<&'v Spanned<T>>,
        key: &str,
        expected: &str,
        cx: &mut Cx<'_>,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.missing(key, expected, cx);
        }
        value
    }
}

/// What reading one `[providers.NAME]` gave.
pub(crate) struct ParsedProvider {
    /// Known even when the rest of the section is invalid, so that policies
    /// naming this provider can still be checked against its kind.
    pub kind: Option<Kind>,
    pub config: Option<ProviderConfig>,
}

pub(crate) fn provider(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    cx: &mut Cx<'_>,
) -> ParsedProvider {
    let what = format!("[providers.{}]", name.get_ref());
    let failed = ParsedProvider {
        kind: None,
        config: None,
    };
    let Some(table) = expect_table(value, &what, &mut cx.diag) else {
        return failed;
    };
    let section = Section {
        what,
        span: value.span(),
        table,
    };
    let Some(kind) = read_kind(&section, cx) else {
        return failed;
    };

    let common_keys = fields_of::<CommonRaw>();
    let allowed: Vec<&str> = common_keys.iter().chain(kind.keys()).copied().collect();
    check_keys(
        table,
        &allowed,
        &format!("{} (kind \"{}\")", section.what, kind.name()),
        &mut cx.diag,
    );

    let name_ok = values::name(
        &Spanned::new(name.span(), name.get_ref().to_string()),
        "provider name",
        64,
        &mut cx.diag,
    );
    let Some(common) = deserialize_table::<CommonRaw>(section.span.clone(), table, &mut cx.diag)
    else {
        return ParsedProvider {
            kind: Some(kind),
            config: None,
        };
    };
    let limits = common_limits(&common, cx);
    let settings = kind.build(&section, &common, cx);
    let config = match (name_ok, limits, settings) {
        (true, Some(limits), Some(settings)) => Some(ProviderConfig {
            name: name.get_ref().to_string(),
            settings,
            requests_per_second: limits.requests_per_second,
            max_in_flight: limits.max_in_flight,
            ca_file: limits.ca_file,
            request_timeout: limits.request_timeout,
            price_per_gib_month: limits.price_per_gib_month,
        }),
        _ => None,
    };
    ParsedProvider {
        kind: Some(kind),
        config,
    }
}

fn read_kind(section: &Section<'_, '_>, cx: &mut Cx<'_>) -> Option<Kind> {
    let Some(value) = section.table.get("kind") else {
        section.missing("kind", &format!("the cloud: one of {}", list(&names())), cx);
        return None;
    };
    let Some(kind) = value.get_ref().as_str() else {
        cx.diag.error(
            value.span(),
            format!(
                "`kind` must be a string, found a {} (expected one of: {})",
                value.get_ref().type_str(),
                list(&names())
            ),
        );
        return None;
    };
    if let Some(k) = Kind::from_name(kind) {
        return Some(k);
    }
    let hint = super::diagnostics::did_you_mean(kind, names());
    cx.diag.error(
        value.span(),
        format!(
            "unknown provider kind {kind:?} (expected one of: {}){hint}",
            list(&names())
        ),
    );
    None
}

struct Limits {
    requests_per_second: f64,
    max_in_flight: usize,
    ca_file: Option<PathBuf>,
    request_timeout: std::time::Duration,
    price_per_gib_month: Option<f64>,
}

/// The common keys other than `kind` and `endpoint` (whose default and
/// rules are the kind's).
fn common_limits(raw: &CommonRaw, cx: &mut Cx<'_>) -> Option<Limits> {
    let mut ok = true;

    let requests_per_second = match &raw.requests_per_second {
        None => 5.0,
        Some(v) => {
            let rps = *v.get_ref();
            if !rps.is_finite() || rps <= 0.0 {
                cx.diag.error(
                    v.span(),
                    format!("`requests_per_second` must be a number greater than zero, got {rps}"),
                );
                ok = false;
            } else if rps > 1000.0 {
                cx.diag.error(
                    v.span(),
                    format!("`requests_per_second` must be at most 1000, got {rps}"),
                );
                ok = false;
            }
            rps
        }
    };

    let max_in_flight = match &raw.max_in_flight {
        None => 20,
        Some(v) => match values::integer_in(
            v,
            "max_in_flight",
            1,
            10_000,
            "snapshot operations in flight at once",
            &mut cx.diag,
        ) {
            Some(n) => n as usize,
            None => {
                ok = false;
                0
            }
        },
    };

    let ca_file = raw.ca_file.as_ref().and_then(|v| {
        let path = check_ca_file(v, cx);
        ok &= path.is_some();
        path
    });

    let request_timeout = values::duration_or(
        raw.request_timeout.as_ref(),
        std::time::Duration::from_secs(30),
        &DurationRule {
            key: "request_timeout",
            allow_zero: false,
            min: Some(std::time::Duration::from_secs(1)),
            max: 10 * MINUTE,
        },
        &mut cx.diag,
    );

    let price_per_gib_month = raw.price_per_gib_month.as_ref().map(|v| {
        let price = *v.get_ref();
        if !price.is_finite() || price < 0.0 {
            cx.diag.error(
                v.span(),
                format!("`price_per_gib_month` must be a price of zero or more, got {price}"),
            );
            ok = false;
        }
        price
    });

    match (ok, request_timeout) {
        (true, Some(request_timeout)) => Some(Limits {
            requests_per_second,
            max_in_flight,
            ca_file,
            request_timeout,
            price_per_gib_month,
        }),
        _ => None,
    }
}

/// `ca_file` must exist, be readable and hold at least one PEM certificate.
fn check_ca_file(value: &Spanned<String>, cx: &mut Cx<'_>) -> Option<PathBuf> {
    let path = cx.resolve_path(value.get_ref());
    match std::fs::read(&path) {
        Ok(bytes) => {
            let pem = String::from_utf8_lossy(&bytes);
            if pem.contains("-----BEGIN CERTIFICATE-----") {
                Some(path)
            } else {
                cx.diag.error(
                    value.span(),
                    format!(
                        "`ca_file`: {} holds no PEM certificate \
                         (expected \"-----BEGIN CERTIFICATE-----\")",
                        path.display()
                    ),
                );
                None
            }
        }
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "does not exist".to_string(),
                _ => format!("cannot be read ({e})"),
            };
            cx.diag
                .error(value.span(), format!("`ca_file`: {} {why}", path.display()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_keys_never_shadow_common_keys() {
        let common = fields_of::<CommonRaw>();
        for kind in Kind::ALL {
            let name = kind.name();
            for key in kind.keys() {
                assert!(!common.contains(key), "{name} repeats common key {key}");
            }
        }
    }

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
    }
}
