//! The shipped Prometheus alerting rules parse, have the expected shape,
//! and only name metrics that snapwarden exports (`observe::metrics::NAMES`).
//! Where `promtool` is installed it checks the file too.

use std::process::Command;

use snapwarden::observe::metrics::is_known_series;
use yaml_rust2::YamlLoader;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus-alerts.yml");

fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("snapwarden_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn rules_parse_and_name_only_exported_metrics() {
    let text = std::fs::read_to_string(RULES).expect("read the rules");
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    let groups = docs[0]["groups"].as_vec().expect("groups");
    let mut alerts = Vec::new();
    for g in groups {
        for r in g["rules"].as_vec().expect("rules") {
            let alert = r["alert"].as_str().expect("alert name");
            let expr = r["expr"].as_str().expect("expr");
            assert!(
                r["labels"]["severity"].as_str().is_some(),
                "{alert}: severity"
            );
            assert!(
                r["annotations"]["summary"].as_str().is_some(),
                "{alert}: summary"
            );
            for name in metric_names(expr) {
                assert!(
                    is_known_series(&name),
                    "{alert} uses {name}, which snapwarden does not export"
                );
            }
            alerts.push(alert.to_string());
        }
    }
    for needed in [
        "SnapwardenDown",
        "SnapwardenSnapshotFailed",
        "SnapwardenBackupStale",
    ] {
        assert!(alerts.iter().any(|a| a == needed), "missing {needed}");
    }
}

#[test]
fn promtool_accepts_the_rules_where_installed() {
    match Command::new("promtool")
        .args(["check", "rules", RULES])
        .output()
    {
        Err(_) => {
            eprintln!("promtool not installed; the YAML and metric-name checks above still ran")
        }
        Ok(out) => assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}
