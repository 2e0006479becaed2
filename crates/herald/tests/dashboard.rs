//! The Grafana dashboard in `deploy/grafana/` queries only metrics Herald's services define:
//! a renamed metric fails here instead of leaving an empty panel in production.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Names of the form `herald_…` in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("herald_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_dashboard_query_names_a_metric_herald_defines() {
    let defined: BTreeSet<String> = [
        "crates/herald-router/src/metrics.rs",
        "crates/herald-deliver/src/metrics.rs",
    ]
    .iter()
    .flat_map(|file| metric_names(&std::fs::read_to_string(repo().join(file)).unwrap()))
    .collect();
    assert!(defined.len() > 10, "{defined:?}");
    let text =
        std::fs::read_to_string(repo().join("deploy/grafana/herald-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut queried = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            for name in metric_names(target["expr"].as_str().unwrap()) {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name)
                    .to_owned();
                assert!(
                    defined.contains(&base),
                    "panel {} queries {name}, which no service defines",
                    panel["title"]
                );
                queried.insert(base);
            }
        }
    }
    // The operational core is on the dashboard: lag, throughput, latency and dead letters.
    for must in [
        "herald_router_consumer_lag",
        "herald_deliver_consumer_lag",
        "herald_router_events_total",
        "herald_deliver_attempts_total",
        "herald_deliver_attempt_seconds",
        "herald_router_dead_letters_total",
        "herald_deliver_dead_letters_total",
    ] {
        assert!(queried.contains(must), "{must} is not on the dashboard");
    }
}
