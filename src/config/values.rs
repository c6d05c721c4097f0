//! Checks of single values shared by every section: durations, integers,
//! names, time zones, URLs, addresses. Each reports a positioned problem
//! naming the key, what was wrong and what was expected, and returns `None`
//! on failure so that callers carry on checking the rest.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use reqwest::Url;
use toml::Spanned;

use super::diagnostics::{did_you_mean, Diagnostics};

pub(crate) const MINUTE: Duration = Duration::from_secs(60);
pub(crate) const HOUR: Duration = Duration::from_secs(3600);
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// `2h 30m` style, for messages.
pub(crate) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Bounds of one duration key.
pub(crate) struct DurationRule {
    pub key: &'static str,
    /// Zero is meaningless for most keys (a zero timeout, a zero poll).
    pub allow_zero: bool,
    pub min: Option<Duration>,
    pub max: Duration,
}

impl DurationRule {
    /// Greater than zero and at most `max`.
    pub(crate) const fn up_to(key: &'static str, max: Duration) -> Self {
        DurationRule {
            key,
            allow_zero: false,
            min: None,
            max,
        }
    }

    /// This rule with a lower bound too.
    pub(crate) const fn at_least(self, min: Duration) -> Self {
        DurationRule {
            min: Some(min),
            ..self
        }
    }
}

/// A humantime duration within its rule's bounds.
pub(crate) fn duration(
    value: &Spanned<String>,
    rule: &DurationRule,
    diag: &mut Diagnostics<'_>,
) -> Option<Duration> {
    let key = rule.key;
    let text = value.get_ref().trim();
    let d = match humantime::parse_duration(text) {
        Ok(d) => d,
        Err(e) => {
            diag.error(
                value.span(),
                format!(
                    "`{key}`: invalid duration {text:?} ({e}); expected a number with a unit, \
                     such as \"90s\", \"15m\", \"2h\" or \"7d\""
                ),
            );
            return None;
        }
    };
    if d.is_zero() && !rule.allow_zero {
        diag.error(
            value.span(),
            format!("`{key}` must be greater than zero, got {text:?}"),
        );
        return None;
    }
    if let Some(min) = rule.min {
        if d < min && !(d.is_zero() && rule.allow_zero) {
            diag.error(
                value.span(),
                format!(
                    "`{key}` must be at least {}, got {text:?}",
                    fmt_duration(min)
                ),
            );
            return None;
        }
    }
    if d > rule.max {
        diag.error(
            value.span(),
            format!(
                "`{key}` = {text:?} is too long: at most {} is accepted",
                fmt_duration(rule.max)
            ),
        );
        return None;
    }
    Some(d)
}

/// An optional duration with a default.
pub(crate) fn duration_or(
    value: Option<&Spanned<String>>,
    default: Duration,
    rule: &DurationRule,
    diag: &mut Diagnostics<'_>,
) -> Option<Duration> {
    match value {
        Some(v) => duration(v, rule, diag),
        None => Some(default),
    }
}

/// An integer in `min..=max`.
pub(crate) fn integer_in(
    value: &Spanned<i64>,
    key: &str,
    min: i64,
    max: i64,
    meaning: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<i64> {
    let v = *value.get_ref();
    if v < min {
        diag.error(
            value.span(),
            format!("`{key}` must be at least {min} ({meaning}), got {v}"),
        );
        None
    } else if v > max {
        diag.error(
            value.span(),
            format!("`{key}` must be at most {max} ({meaning}), got {v}"),
        );
        None
    } else {
        Some(v)
    }
}

/// A count in `1..=max`.
pub(crate) fn count(
    value: &Spanned<i64>,
    key: &str,
    max: i64,
    meaning: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<u32> {
    integer_in(value, key, 1, max, meaning, diag).map(|n| n as u32)
}

/// A required-shape word: non-empty and without spaces (`noun` says what
/// it is, e.g. "key id").
pub(crate) fn word(
    value: &Spanned<String>,
    key: &str,
    noun: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<String> {
    let v = value.get_ref();
    if v.trim().is_empty() || v.contains(char::is_whitespace) {
        diag.error(
            value.span(),
            format!("`{key}` must be a non-empty {noun} without spaces"),
        );
        None
    } else {
        Some(v.clone())
    }
}

/// A policy or provider name: it goes into snapshot names, logs and metric
/// labels, so it is kept to `[A-Za-z0-9][A-Za-z0-9_-]*`.
pub(crate) fn name(
    value: &Spanned<String>,
    key: &str,
    max_len: usize,
    diag: &mut Diagnostics<'_>,
) -> bool {
    let v = value.get_ref();
    let well_formed = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if v.is_empty() {
        diag.error(value.span(), format!("`{key}` must not be empty"));
        false
    } else if !well_formed {
        diag.error(
            value.span(),
            format!(
                "`{key}` {v:?} is not a valid name: expected a letter or digit followed by \
                 letters, digits, `_` or `-`"
            ),
        );
        false
    } else if v.len() > max_len {
        diag.error(
            value.span(),
            format!(
                "`{key}` {v:?} is {} characters long: at most {max_len} are allowed \
                 (it becomes part of snapshot names)",
                v.len()
            ),
        );
        false
    } else {
        true
    }
}

/// An IANA time zone name.
pub(crate) fn time_zone(
    value: &Spanned<String>,
    key: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<Tz> {
    let v = value.get_ref();
    if let Ok(tz) = Tz::from_str(v) {
        return Some(tz);
    }
    let hint = did_you_mean(v, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()));
    diag.error(
        value.span(),
        format!(
            "`{key}`: unknown time zone {v:?} (expected an IANA zone name such as \"UTC\" \
             or \"Europe/Berlin\"){hint}"
        ),
    );
    None
}

/// An optional [`http_url`] with a default, as text.
pub(crate) fn http_url_or(
    value: Option<&Spanned<String>>,
    key: &str,
    default: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<String> {
    match value {
        None => Some(default.to_string()),
        Some(v) => http_url(v, key, diag).map(|u| u.to_string()),
    }
}

/// An `http`/`https` URL with a host. Plain http is accepted with a warning
/// unless the host is loopback (a simulator or a local proxy).
pub(crate) fn http_url(
    value: &Spanned<String>,
    key: &str,
    diag: &mut Diagnostics<'_>,
) -> Option<Url> {
    let v = value.get_ref();
    // The text is not echoed: a webhook URL often carries a token.
    let url = match Url::parse(v) {
        Ok(u) => u,
        Err(e) => {
            diag.error(
                value.span(),
                format!("`{key}` is not a valid URL ({e}); expected e.g. \"https://host/path\""),
            );
            return None;
        }
    };
    match url.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback(&url) {
                diag.warn(
                    value.span(),
                    format!(
                        "`{key}` uses plain http to a non-loopback host: requests travel \
                         unencrypted; use https"
                    ),
                );
            }
        }
        other => {
            diag.error(
                value.span(),
                format!("`{key}` has scheme {other:?}: expected an http:// or https:// URL"),
            );
            return None;
        }
    }
    if url.host().is_none() {
        diag.error(value.span(), format!("`{key}` has no host"));
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        diag.error(
            value.span(),
            format!("`{key}` must not contain a user name or password; use the secret keys"),
        );
        return None;
    }
    Some(url)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || IpAddr::from_str(bare).is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn spanned(s: &str) -> Spanned<String> {
        Spanned::new(0..s.len(), s.to_string())
    }

    #[test]
    fn loopback_http_is_quiet_other_http_warns() {
        let text = "x";
        let mut d = Diagnostics::new(Path::new("f"), text);
        assert!(http_url(&spanned("http://127.0.0.1:8080/iaas/"), "endpoint", &mut d).is_some());
        assert!(http_url(&spanned("http://localhost/"), "endpoint", &mut d).is_some());
        assert!(http_url(&spanned("http://[::1]:9/"), "endpoint", &mut d).is_some());
        let (p, w) = d.into_parts();
        assert!(p.is_empty() && w.is_empty(), "{p:?} {w:?}");

        let mut d = Diagnostics::new(Path::new("f"), text);
        assert!(http_url(&spanned("http://api.example.com/"), "endpoint", &mut d).is_some());
        assert!(http_url(&spanned("ftp://api.example.com/"), "endpoint", &mut d).is_none());
        let (p, w) = d.into_parts();
        assert_eq!((p.len(), w.len()), (1, 1), "{p:?} {w:?}");
    }

    #[test]
    fn durations_respect_bounds() {
        let rule = DurationRule {
            key: "timeout",
            allow_zero: false,
            min: None,
            max: 7 * DAY,
        };
        let mut d = Diagnostics::new(Path::new("f"), "x");
        assert_eq!(duration(&spanned("2h"), &rule, &mut d), Some(2 * HOUR));
        assert_eq!(duration(&spanned("0s"), &rule, &mut d), None);
        assert_eq!(duration(&spanned("8d"), &rule, &mut d), None);
        assert_eq!(duration(&spanned("10"), &rule, &mut d), None);
        let (p, _) = d.into_parts();
        assert_eq!(p.len(), 3);
        assert!(p[0].contains("greater than zero"), "{p:?}");
        assert!(p[1].contains("at most 7days"), "{p:?}");
        assert!(p[2].contains("invalid duration"), "{p:?}");
    }
}
