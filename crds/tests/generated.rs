//! The committed CRD YAML (plain, and as the Helm chart's template) must be what this
//! build generates.

#![allow(clippy::unwrap_used)]

use std::path::Path;

/// Fails with the regeneration command when the file at `relative` (from the workspace
/// root) differs from `generated`.
fn assert_fresh(relative: &str, generated: &str, crdgen_args: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(relative);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{relative} is stale (first difference at line {}). Regenerate it from the workspace root with\n\n    \
             cargo run -p switchboard-crds --bin crdgen{crdgen_args} > {relative}\n",
            first_difference + 1,
        );
    }
}

#[test]
fn committed_crds_match_the_types() {
    assert_fresh(
        switchboard_crds::CRDS_PATH,
        &switchboard_crds::crd_yaml().unwrap(),
        "",
    );
}

#[test]
fn committed_chart_crds_match_the_types() {
    assert_fresh(
        switchboard_crds::CHART_CRDS_PATH,
        &switchboard_crds::chart_crd_template().unwrap(),
        " -- --chart",
    );
}

#[test]
fn chart_crds_are_the_plain_crds_behind_the_value_and_kept_on_uninstall() {
    let plain = switchboard_crds::crd_yaml().unwrap();
    let chart = switchboard_crds::chart_crd_template().unwrap();
    let body = chart
        .split_once("{{- if .Values.crds.create }}\n")
        .unwrap()
        .1
        .strip_suffix("{{- end }}\n")
        .unwrap();
    let (key, value) = switchboard_crds::HELM_RESOURCE_POLICY;
    let annotation = format!("  annotations:\n    {key}: {value}\n");
    assert_eq!(
        body.matches(&annotation).count(),
        switchboard_crds::crds().len()
    );
    assert_eq!(body.replace(&annotation, ""), plain);
}
