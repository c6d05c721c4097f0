//! `[alerts]`: where alerts go and which events are sent.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use crate::config::diagnostics::list;
use crate::config::model::{AlertEvent, AlertsConfig, Secret};
use crate::config::raw::{RawAlerts, RawSecret};
use crate::config::values::{self, DurationRule, DAY, HOUR, MINUTE};
use crate::config::Cx;

const ALERT_EVENTS: &[(&str, AlertEvent)] = &[
    ("failure", AlertEvent::Failure),
    ("recovery", AlertEvent::Recovery),
    ("stale", AlertEvent::Stale),
    ("selector_empty", AlertEvent::SelectorEmpty),
    ("deletes_held", AlertEvent::DeletesHeld),
    ("slot_skipped", AlertEvent::SlotSkipped),
    ("leadership", AlertEvent::Leadership),
];

pub(super) fn alerts(raw: &RawAlerts, span: Range<usize>, cx: &mut Cx<'_>) -> Option<AlertsConfig> {
    let mut ok = true;

    if raw.webhook_url.is_none() && raw.command.is_none() {
        cx.diag.error(
            span,
            "[alerts] has no destination: set `webhook_url` (JSON POST per event) and/or \
             `command` (event JSON on stdin), or remove the [alerts] section",
        );
        ok = false;
    }

    let webhook_url = match &raw.webhook_url {
        None => None,
        Some(v) => {
            let url = values::http_url(v, "webhook_url", &mut cx.diag);
            ok &= url.is_some();
            Some(v.get_ref().clone())
        }
    };

    let webhook_headers = match &raw.webhook_headers {
        None => Some(BTreeMap::new()),
        Some(headers) => webhook_headers(headers, raw.webhook_url.is_some(), cx),
    };

    let command = match &raw.command {
        None => None,
        Some(cmd) => {
            let argv: Vec<String> = cmd.get_ref().iter().map(|a| a.get_ref().clone()).collect();
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                cx.diag.error(
                    cmd.span(),
                    "`command` must be a non-empty array whose first element is the program, \
                     e.g. [\"/usr/local/bin/page-oncall\"]",
                );
                ok = false;
            }
            Some(argv)
        }
    };

    let on = match &raw.on {
        None => Some(vec![
            AlertEvent::Failure,
            AlertEvent::Recovery,
            AlertEvent::Stale,
            AlertEvent::DeletesHeld,
            AlertEvent::SlotSkipped,
            AlertEvent::Leadership,
        ]),
        Some(list_value) => events(list_value, cx),
    };

    let repeat_after = values::duration_or(
        raw.repeat_after.as_ref(),
        24 * HOUR,
        &DurationRule::up_to("repeat_after", 30 * DAY).at_least(MINUTE),
        &mut cx.diag,
    );

    if !ok {
        return None;
    }
    Some(AlertsConfig {
        webhook_url,
        webhook_headers: webhook_headers?,
        command,
        on: on?,
        repeat_after: repeat_after?,
    })
}

/// `webhook_headers`: only with `webhook_url`; HTTP token names, values on
/// one line. The values are secrets: described, never shown.
fn webhook_headers(
    headers: &Spanned<BTreeMap<Spanned<String>, Spanned<RawSecret>>>,
    webhook_url_given: bool,
    cx: &mut Cx<'_>,
) -> Option<BTreeMap<String, Secret>> {
    let mut ok = true;
    if !webhook_url_given {
        cx.diag.error(
            headers.span(),
            "`webhook_headers` is set but `webhook_url` is not",
        );
        ok = false;
    }
    let mut out = BTreeMap::new();
    for (name, value) in headers.get_ref() {
        let n = name.get_ref();
        let token = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            cx.diag.error(
                name.span(),
                format!("`webhook_headers`: {n:?} is not a valid HTTP header name"),
            );
            ok = false;
        }
        let v = &value.get_ref().0;
        if v.is_empty() || v.contains(['\r', '\n', '\0']) {
            // The value is treated as a secret: described, never shown.
            cx.diag.error(
                value.span(),
                format!("`webhook_headers`: the value of {n:?} must be non-empty and on one line"),
            );
            ok = false;
        }
        out.insert(n.clone(), Secret::new(v.clone()));
    }
    ok.then_some(out)
}

/// `on`: known events, each once, not none at all; a warning for each of
/// `failure` and `slot_skipped` left out.
fn events(list_value: &Spanned<Vec<Spanned<String>>>, cx: &mut Cx<'_>) -> Option<Vec<AlertEvent>> {
    let mut ok = true;
    let names: Vec<&str> = ALERT_EVENTS.iter().map(|(n, _)| *n).collect();
    if list_value.get_ref().is_empty() {
        cx.diag.error(
            list_value.span(),
            format!(
                "`on` is empty, so no alert would ever be sent: list events from {} \
                 or remove the key for the default",
                list(&names)
            ),
        );
        ok = false;
    }
    let mut events = Vec::new();
    for item in list_value.get_ref() {
        match ALERT_EVENTS.iter().find(|(n, _)| n == item.get_ref()) {
            Some((_, e)) if events.contains(e) => {
                cx.diag.error(
                    item.span(),
                    format!("`on`: event {:?} is listed twice", item.get_ref()),
                );
                ok = false;
            }
            Some((_, e)) => events.push(*e),
            None => {
                cx.diag.error(
                    item.span(),
                    format!(
                        "`on`: unknown alert event {:?} (expected any of: {})",
                        item.get_ref(),
                        list(&names)
                    ),
                );
                ok = false;
            }
        }
    }
    // Every due slot ends as a snapshot or an alert: without these
    // two, a missed backup would be logged and counted, not heard.
    for (name, event) in [
        ("failure", AlertEvent::Failure),
        ("slot_skipped", AlertEvent::SlotSkipped),
    ] {
        if !list_value.get_ref().is_empty() && !events.contains(&event) {
            cx.diag.warn(
                list_value.span(),
                format!(
                    "`on` leaves out {name:?}: a slot that {} would not be alerted",
                    match event {
                        AlertEvent::Failure => "fails",
                        _ => "is skipped (no snapshot taken)",
                    }
                ),
            );
        }
    }
    ok.then_some(events)
}
