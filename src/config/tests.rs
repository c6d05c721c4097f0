//! Unit tests of loading: defaults, secrets, redaction, positions.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

const SECRET: &str = "s3cr3t-Value-That-Must-Not-Leak";

/// A minimal valid file; `provider_extra` goes into the provider section
/// and `policy_extra` into the policy.
fn config(provider_extra: &str, policy_extra: &str) -> String {
    format!(
        r#"[providers.qc]
kind = "qingcloud"
zone = "ap2a"
access_key_id = "QYACCESSKEYID"
{provider_extra}

[[policy]]
name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-1"]
schedule = "0 30 2 * * *"
retain = 7
{policy_extra}
"#
    )
}

fn env_with(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_with_env(text, Path::new("/etc/snapwarden/test.toml"), &env_with(env))
}

fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    match load_env(text, env) {
        Ok(c) => panic!("expected problems, got a config: {c:?}"),
        Err(e) => e.problems,
    }
}

/// Line and column (1-based) of the first occurrence of `needle`.
fn pos_of(text: &str, needle: &str) -> String {
    pos_at(text, text.find(needle).expect("needle in text"))
}

/// Line and column (1-based) of a byte offset.
fn pos_at(text: &str, off: usize) -> String {
    let line = text[..off].matches('\n').count() + 1;
    let col = off - text[..off].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{col}")
}

#[test]
fn defaults_are_filled_in() {
    let text = config("secret_access_key_env = \"QY\"", "");
    let c = load_env(&text, &[("QY", SECRET)]).expect("valid");
    assert_eq!(c.daemon.log_format, LogFormat::Text);
    assert_eq!(c.daemon.timezone, chrono_tz::Tz::UTC);
    assert_eq!(c.daemon.state_path, Path::new("./snapwarden.db"));
    assert!(c.daemon.metrics_listen.is_none());
    assert!(c.alerts.is_none());

    let p = &c.providers["qc"];
    assert_eq!(p.requests_per_second, 5.0);
    assert_eq!(p.max_in_flight, 20);
    assert_eq!(p.request_timeout, Duration::from_secs(30));
    assert!(p.ca_file.is_none());
    let ProviderSettings::QingCloud(qc) = &p.settings else {
        panic!("not a qingcloud section")
    };
    assert_eq!(qc.endpoint, "https://api.qingcloud.com/iaas/");
    assert_eq!(qc.secret_access_key.expose(), SECRET);

    let pol = &c.policies[0];
    assert_eq!(pol.timing.poll_interval, Duration::from_secs(10));
    assert_eq!(pol.timing.poll_max_interval, Duration::from_secs(120));
    assert_eq!(pol.timing.timeout, Duration::from_secs(7200));
    assert_eq!(pol.timing.jitter, Duration::ZERO);
    assert!(!pol.catch_up);
    assert_eq!(pol.full_every, None);
    assert_eq!(pol.schedule.timezone(), chrono_tz::Tz::UTC);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn state_path_defaults_under_state_directory() {
    let text = config("secret_access_key_env = \"QY\"", "");
    let c = load_env(
        &text,
        &[
            ("QY", SECRET),
            ("STATE_DIRECTORY", "/var/lib/snapwarden:/other"),
        ],
    )
    .expect("valid");
    assert_eq!(
        c.daemon.state_path,
        Path::new("/var/lib/snapwarden/state.db")
    );
}

#[test]
fn policy_time_zone_defaults_to_the_daemon_zone() {
    let text = format!(
        "[daemon]\ntimezone = \"Asia/Shanghai\"\n\n{}",
        config("secret_access_key_env = \"QY\"", "")
    );
    let c = load_env(&text, &[("QY", SECRET)]).expect("valid");
    assert_eq!(c.policies[0].schedule.timezone(), chrono_tz::Asia::Shanghai);
}

#[test]
fn alerts_defaults() {
    let text = format!(
        "[alerts]\ncommand = [\"/bin/true\"]\n\n{}",
        config("secret_access_key_env = \"QY\"", "")
    );
    let c = load_env(&text, &[("QY", SECRET)]).expect("valid");
    let a = c.alerts.expect("alerts present");
    assert_eq!(
        a.on,
        [
            AlertEvent::Failure,
            AlertEvent::Recovery,
            AlertEvent::Stale,
            AlertEvent::DeletesHeld,
            AlertEvent::SlotSkipped,
            AlertEvent::Leadership
        ]
    );
    assert_eq!(a.repeat_after, Duration::from_secs(86_400));
}

#[test]
fn secret_from_file_is_trimmed_and_warns_on_loose_mode() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qc.secret");
    std::fs::write(&file, format!("  {SECRET}\n\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg_path = dir.path().join("snapwarden.toml");
    // Relative to the config file's folder.
    let text = config("secret_access_key_file = \"qc.secret\"", "");
    let c = load_with_env(&text, &cfg_path, &env_with(&[])).expect("valid");
    let ProviderSettings::QingCloud(qc) = &c.providers["qc"].settings else {
        panic!("not a qingcloud section")
    };
    assert_eq!(qc.secret_access_key.expose(), SECRET);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = load_with_env(&text, &cfg_path, &env_with(&[])).expect("valid");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("readable by group or others"));
        assert!(c.warnings[0].contains(&pos_of(&text, "\"qc.secret\"")));
    }
}

#[test]
fn secret_file_missing_names_key_and_position_not_value() {
    let text = config("secret_access_key_file = \"/nonexistent/qc.secret\"", "");
    let p = problems(&text, &[]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("secret_access_key_file"), "{p:?}");
    assert!(p[0].contains(&pos_of(&text, "\"/nonexistent")), "{p:?}");
    // The value may be a secret pasted into the wrong key: not echoed.
    assert!(!p[0].contains("/nonexistent/qc.secret"), "{p:?}");
    assert!(p[0].contains("does not exist"), "{p:?}");
}

#[test]
fn secret_from_env() {
    let text = config("secret_access_key_env = \"QY_SECRET\"", "");
    let c = load_env(&text, &[("QY_SECRET", &format!("{SECRET}\n"))]).expect("valid");
    let ProviderSettings::QingCloud(qc) = &c.providers["qc"].settings else {
        panic!("not a qingcloud section")
    };
    assert_eq!(qc.secret_access_key.expose(), SECRET);

    let p = problems(&text, &[]);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("environment variable QY_SECRET is not set"),
        "{p:?}"
    );
    assert!(p[0].contains("secret_access_key_env"), "{p:?}");

    let p = problems(&text, &[("QY_SECRET", "")]);
    assert!(p[0].contains("QY_SECRET is empty"), "{p:?}");
}

#[test]
fn literal_secret_is_accepted_with_a_positioned_warning() {
    let text = config(&format!("secret_access_key = \"{SECRET}\""), "");
    let c = load_env(&text, &[]).expect("valid");
    let ProviderSettings::QingCloud(qc) = &c.providers["qc"].settings else {
        panic!("not a qingcloud section")
    };
    assert_eq!(qc.secret_access_key.expose(), SECRET);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let expected = format!(
        "/etc/snapwarden/test.toml:{}: secret `secret_access_key` is written in the config file",
        pos_of(&text, &format!("\"{SECRET}\""))
    );
    assert!(c.warnings[0].starts_with(&expected), "{:?}", c.warnings);
    assert!(!c.warnings[0].contains(SECRET));
}

#[test]
fn secret_given_two_ways_is_an_error_at_the_second() {
    let text = config(
        &format!("secret_access_key = \"{SECRET}\"\nsecret_access_key_env = \"QY\""),
        "",
    );
    let p = problems(&text, &[("QY", SECRET)]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&pos_of(&text, "\"QY\"")), "{p:?}");
    assert!(p[0].contains("given 2 ways"), "{p:?}");
}

#[test]
fn secret_missing_entirely() {
    let text = config("", "");
    let p = problems(&text, &[]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("1:1: missing secret `secret_access_key`"),
        "{p:?}"
    );
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    // A valid config: Debug of the whole thing.
    let text = format!(
        "[alerts]\nwebhook_url = \"https://hooks.example.com/x\"\n\
         webhook_headers = {{ Authorization = \"Bearer {SECRET}\" }}\n\n{}",
        config("secret_access_key_env = \"QY\"", "")
    );
    let c = load_env(&text, &[("QY", SECRET)]).expect("valid");
    let debug = format!("{c:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("s3cr3t"), "{debug}");

    // Invalid configs whose problems sit next to a secret.
    let broken = [
        // literal + env
        config(
            &format!("secret_access_key = \"{SECRET}\"\nsecret_access_key_env = \"QY\""),
            "",
        ),
        // a secret of the wrong type
        config("secret_access_key = 987654321", ""),
        // the secret pasted into the `_env` key
        config(&format!("secret_access_key_env = \"{SECRET}\""), ""),
        // literal secret in an otherwise broken section
        config(
            &format!("secret_access_key = \"{SECRET}\"\nzoen = \"x\""),
            "retain = 0",
        ),
        // header with a line break in its value
        format!(
            "[alerts]\nwebhook_url = \"https://h.example.com/\"\n\
             webhook_headers = {{ X = \"{SECRET}\\n\" }}\n\n{}",
            config("secret_access_key_env = \"QY\"", "")
        ),
    ];
    for text in &broken {
        let err = load_env(text, &[("QY", SECRET)]).expect_err("invalid");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("987654321"), "{shown}");
    }

    // The secret arriving through the environment into an error path.
    let text = config("secret_access_key_env = \"QY\"", "retain = -1");
    let err = load_env(&text, &[("QY", SECRET)]).expect_err("invalid");
    assert!(!format!("{err:?}").contains(SECRET));
}

#[test]
fn syntax_errors_are_positioned() {
    let text = "[daemon]\nlog_format = \"text\ntimezone = \"UTC\"\n";
    let p = problems(text, &[]);
    assert!(!p.is_empty());
    assert!(p[0].starts_with("/etc/snapwarden/test.toml:2:"), "{p:?}");
}

#[test]
fn type_errors_inside_a_provider_section_point_into_it() {
    let text = config(
        "secret_access_key_env = \"QY\"\nmax_in_flight = \"many\"",
        "",
    );
    let p = problems(&text, &[("QY", SECRET)]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(&format!(
            "/etc/snapwarden/test.toml:{}: `max_in_flight`: invalid type: a string, \
             expected an integer",
            pos_of(&text, "\"many\"")
        )),
        "{p:?}"
    );

    let text = config("secret_access_key_env = \"QY\"\nzone_id = \"ap2a\"", "");
    let p = problems(&text, &[("QY", SECRET)]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(&format!(
        "{}: unknown key `zone_id`",
        pos_of(&text, "zone_id")
    )));
    assert!(p[0].contains("did you mean `zone`?"), "{p:?}");
}

#[test]
fn all_validation_problems_are_reported_in_file_order() {
    let text = config(
        "secret_access_key_env = \"QY\"\nrequests_per_second = 0",
        "poll_interval = \"0s\"\ntimeout = \"30d\"\njitter = \"forever\"",
    )
    .replace("retain = 7", "retain = 0")
    .replace("\"vol-1\"", "\"vol-1\", \"vol-1\"");
    let p = problems(&text, &[("QY", SECRET)]);
    let at: Vec<String> = p
        .iter()
        .map(|s| {
            s.trim_start_matches("/etc/snapwarden/test.toml:")
                .split(": ")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let dup = pos_at(&text, text.rfind("\"vol-1\"").unwrap());
    assert_eq!(
        at,
        [
            pos_of(&text, "0\n"),
            dup,
            pos_at(&text, text.find("retain = 0").unwrap() + "retain = ".len()),
            pos_of(&text, "\"0s\""),
            pos_of(&text, "\"30d\""),
            pos_of(&text, "\"forever\""),
        ],
        "{p:#?}"
    );
}

#[test]
fn max_deletes_per_run_defaults_to_ten_and_daemon_sets_the_default() {
    let env = [("QY", SECRET)];
    let base = config("secret_access_key_env = \"QY\"", "");
    let c = load_env(&base, &env).expect("valid");
    assert_eq!(c.daemon.max_deletes_per_run, 10);
    assert_eq!(c.policies[0].max_deletes_per_run, 10);

    let text = format!("[daemon]\nmax_deletes_per_run = 3\n\n{base}");
    let c = load_env(&text, &env).expect("valid");
    assert_eq!(
        c.policies[0].max_deletes_per_run, 3,
        "[daemon] gives the default"
    );

    let text = format!(
        "[daemon]\nmax_deletes_per_run = 3\n\n{}",
        config("secret_access_key_env = \"QY\"", "max_deletes_per_run = 40")
    );
    let c = load_env(&text, &env).expect("valid");
    assert_eq!(
        c.policies[0].max_deletes_per_run, 40,
        "the policy's own wins"
    );
}

// ---------------------------------------------------------- shared ledger

fn with_daemon(daemon: &str) -> String {
    format!(
        "[daemon]\n{daemon}\n\n{}",
        config("secret_access_key_env = \"QY\"", "")
    )
}

#[test]
fn a_state_url_selects_the_shared_ledger_with_its_defaults() {
    let text = with_daemon(
        "state_url = \"postgres://snapwarden@db.internal:5432/snapwarden?sslmode=verify-full\"\n\
         state_password_env = \"DBPW\"",
    );
    let c = load_env(&text, &[("QY", SECRET), ("DBPW", SECRET)]).expect("valid");
    let shared = c.daemon.shared.clone().expect("a shared ledger");
    assert_eq!(
        shared.url,
        "postgres://snapwarden@db.internal:5432/snapwarden?sslmode=verify-full"
    );
    assert_eq!(shared.password.as_ref().map(Secret::expose), Some(SECRET));
    assert!(!shared.node_name.is_empty(), "the host name by default");
    assert_eq!(shared.lease_duration, Duration::from_secs(15));
    assert_eq!(shared.renew_every, Duration::from_secs(5));
    assert_eq!(shared.takeover_grace, Duration::from_secs(60));
    assert!(!format!("{:?}", c.daemon).contains(SECRET));

    let text = with_daemon(
        "state_url = \"postgresql://u@127.0.0.1/db\"\nnode_name = \"bastion-b\"\n\
         lease_duration = \"3s\"\nlease_renew_every = \"1s\"\ntakeover_grace = \"0s\"",
    );
    let shared = load_env(&text, &[("QY", SECRET)])
        .expect("valid")
        .daemon
        .shared
        .expect("shared");
    assert_eq!(shared.node_name, "bastion-b");
    assert!(shared.password.is_none());
    assert_eq!(shared.lease_duration, Duration::from_secs(3));
    assert_eq!(shared.takeover_grace, Duration::ZERO);
}

#[test]
fn without_a_state_url_the_ledger_is_sqlite() {
    let text = config("secret_access_key_env = \"QY\"", "");
    assert!(load_env(&text, &[("QY", SECRET)])
        .expect("valid")
        .daemon
        .shared
        .is_none());
}

#[test]
fn shared_ledger_mistakes_are_positioned_and_never_echo_a_password() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "state_path = \"/var/lib/x.db\"\nstate_url = \"postgres://u@h/db\"",
            "state_path",
            "exclude each other",
        ),
        (
            &format!("state_url = \"postgres://u:{SECRET}@h/db\""),
            "state_url",
            "holds a password",
        ),
        (
            &format!("state_url = \"postgres://u@h/db?password={SECRET}\""),
            "state_url",
            "holds a password",
        ),
        (
            "state_url = \"mysql://u@h/db\"",
            "state_url",
            "the scheme must be postgres://",
        ),
        ("state_url = \"postgres://u@h\"", "state_url", "no database name"),
        (
            "state_url = \"postgres://u@h/db?sslmode=verify\"",
            "state_url",
            "sslmode \"verify\" is not one of",
        ),
        (
            "state_password_env = \"DBPW\"",
            "state_password_env",
            "there is no `state_url`",
        ),
        ("node_name = \"a\"", "node_name", "there is no `state_url`"),
        (
            "state_url = \"postgres://u@h/db\"\nlease_duration = \"6s\"\nlease_renew_every = \"3s\"",
            "lease_renew_every",
            "at most a third of `lease_duration`",
        ),
        (
            "state_url = \"postgres://u@h/db\"\nnode_name = \"two words\"",
            "node_name",
            "without spaces",
        ),
        (
            "state_url = \"postgres://u@h/db\"\nstate_password = \"x\"\nstate_password_env = \"DBPW\"",
            "state_password_env",
            "given 2 ways",
        ),
    ];
    for (daemon, key, expected) in cases {
        let text = with_daemon(daemon);
        let p = problems(&text, &[("QY", SECRET), ("DBPW", SECRET)]);
        // On the key's line (at its value).
        let line = pos_of(&text, &format!("{key} ="))
            .split(':')
            .next()
            .map(str::to_string);
        let at = format!("test.toml:{}:", line.unwrap_or_default());
        assert!(
            p.iter().any(|m| m.contains(&at) && m.contains(expected)),
            "{daemon:?}: expected {expected:?} at {key}, got {p:?}"
        );
        assert!(
            p.iter().all(|m| !m.contains(SECRET)),
            "{daemon:?}: a message shows the password: {p:?}"
        );
    }
}

#[test]
fn a_price_per_gib_month_is_a_number_of_zero_or_more() {
    let env = [("QY_SECRET", SECRET)];
    let c = load_env(
        &config(
            "secret_access_key_env = \"QY_SECRET\"\nprice_per_gib_month = 0.05",
            "",
        ),
        &env,
    )
    .expect("valid");
    assert_eq!(c.providers["qc"].price_per_gib_month, Some(0.05));
    let c = load_env(&config("secret_access_key_env = \"QY_SECRET\"", ""), &env).expect("valid");
    assert_eq!(c.providers["qc"].price_per_gib_month, None);
    let text = config(
        "secret_access_key_env = \"QY_SECRET\"\nprice_per_gib_month = -1.0",
        "",
    );
    let p = problems(&text, &env);
    assert!(
        p[0].contains("`price_per_gib_month` must be a price of zero or more"),
        "{p:?}"
    );
}

#[test]
fn hooks_are_read_with_their_defaults() {
    let text = config(
        "secret_access_key_env = \"QY_SECRET\"",
        "pre_snapshot = [\"/bin/true\", \"--freeze\", \"/srv/db\"]\npost_snapshot = [\"/bin/true\"]",
    );
    let c = load_env(&text, &[("QY_SECRET", SECRET)]).expect("valid");
    let hooks = c.policies[0].hooks.as_ref().expect("hooks");
    assert_eq!(
        hooks.pre.as_deref(),
        Some(&["/bin/true".to_string(), "--freeze".into(), "/srv/db".into()][..])
    );
    assert_eq!(hooks.post.as_deref(), Some(&["/bin/true".to_string()][..]));
    assert_eq!(hooks.timeout, Duration::from_secs(60));
    assert_eq!(hooks.on_pre_failure, OnPreFailure::Skip);
    // Hooks never inherit the variables secrets come from.
    assert_eq!(c.secret_env, ["QY_SECRET"]);

    let text = config(
        "secret_access_key_env = \"QY_SECRET\"",
        "pre_snapshot = [\"/bin/true\"]\nhook_timeout = \"5s\"\non_pre_failure = \"snapshot\"",
    );
    let c = load_env(&text, &[("QY_SECRET", SECRET)]).expect("valid");
    let hooks = c.policies[0].hooks.as_ref().expect("hooks");
    assert_eq!(hooks.post, None);
    assert_eq!(hooks.timeout, Duration::from_secs(5));
    assert_eq!(hooks.on_pre_failure, OnPreFailure::Snapshot);

    let c = load_env(
        &config("secret_access_key_env = \"QY_SECRET\"", ""),
        &[("QY_SECRET", SECRET)],
    )
    .expect("valid");
    assert!(c.policies[0].hooks.is_none());
}

#[test]
fn a_hook_that_is_not_an_executable_path_is_refused_at_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    let plain = plain.display().to_string();
    let cases = [
        (
            "pre_snapshot = []".to_string(),
            "pre_snapshot = []",
            "non-empty array",
        ),
        (
            "pre_snapshot = [\"fsfreeze\", \"-f\"]".to_string(),
            "\"fsfreeze\"",
            "must be an absolute path",
        ),
        (
            "post_snapshot = [\"/nonexistent/thaw\"]".to_string(),
            "\"/nonexistent/thaw\"",
            "/nonexistent/thaw cannot be read",
        ),
        (
            format!("post_snapshot = [\"{plain}\"]"),
            "\"/",
            "is not executable",
        ),
        (
            "pre_snapshot = [\"/tmp\"]".to_string(),
            "\"/tmp\"",
            "/tmp is not a file",
        ),
        (
            "pre_snapshot = [\"/bin/true\"]\non_pre_failure = \"ignore\"".to_string(),
            "\"ignore\"",
            "must be \"skip\"",
        ),
        (
            "pre_snapshot = [\"/bin/true\"]\nhook_timeout = \"2h\"".to_string(),
            "\"2h\"",
            "hook_timeout",
        ),
    ];
    for (extra, at, says) in cases {
        let text = config("secret_access_key_env = \"QY_SECRET\"", &extra);
        let p = problems(&text, &[("QY_SECRET", SECRET)]);
        assert_eq!(p.len(), 1, "{extra}: {p:?}");
        assert!(p[0].contains(says), "{extra}: {p:?}");
        assert!(
            p[0].contains(&format!("test.toml:{}", pos_of(&text, at))),
            "{extra}: {p:?}"
        );
    }
}

#[test]
fn hook_settings_without_a_hook_are_warned_about() {
    let text = config(
        "secret_access_key_env = \"QY_SECRET\"",
        "hook_timeout = \"5s\"",
    );
    let c = load_env(&text, &[("QY_SECRET", SECRET)]).expect("valid");
    assert!(c.policies[0].hooks.is_none());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("`hook_timeout` has no effect")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn blackout_windows_are_read_in_the_policy_zone_and_bad_ones_refused_at_their_position() {
    let env = [("QY_SECRET", SECRET)];
    let text = config(
        "secret_access_key_env = \"QY_SECRET\"",
        "timezone = \"Europe/Berlin\"\nblackout = [\"Sat 00:00-06:00\", \"2026-12-24..2026-12-26\"]",
    );
    let c = load_env(&text, &env).expect("valid");
    let b = c.policies[0].blackout.as_ref().expect("windows");
    // Saturday 2026-12-05 01:00 in Berlin is 00:00 UTC.
    let t = "2026-12-05T00:00:00Z".parse().expect("time");
    assert_eq!(
        b.covering(t),
        Some("2026-12-05T05:00:00Z".parse().expect("time"))
    );

    let text = config(
        "secret_access_key_env = \"QY_SECRET\"",
        "blackout = [\"Sat 00:00-06:00\", \"Caturday 01:00-02:00\"]",
    );
    let p = problems(&text, &env);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("is not a day"), "{p:?}");
    assert!(
        p[0].contains(&format!("test.toml:{}", pos_of(&text, "\"Caturday"))),
        "{p:?}"
    );
}
