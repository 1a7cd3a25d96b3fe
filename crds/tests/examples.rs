//! Every manifest in examples/tenants parses, validates, and would be accepted by an API
//! server with the generated CRD; docs/api.md shows them and names every field.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use switchboard_crds::{DeletionPolicy, SecretRef, TurnDetectionKind, VoiceTenant, parse_tenant};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/tenants")
        .canonicalize()
        .unwrap()
}

fn load(name: &str) -> VoiceTenant {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_tenant(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_parses_validates_and_fits_the_crd() {
    let schema = support::tenant_schema();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let tenant = parse_tenant(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(tenant.validate(), Ok(()), "{}", path.display());
        let raw: Value = serde_saphyr::from_str(&text).unwrap();
        let refusals = support::refusals(&schema, &raw);
        assert!(refusals.is_empty(), "{}: {refusals:?}", path.display());
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for expected in ["acme-cluster.yaml", "demo.yaml"] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} missing: {seen:?}"
        );
    }
}

#[test]
fn demo_is_the_laptop_tenant() {
    let t = load("demo.yaml");
    assert_eq!(t.metadata.name.as_deref(), Some("demo"));
    let s = &t.spec;
    assert_eq!(s.display_name, "Demo Dental");
    assert_eq!(s.phone_numbers, ["+15005550006"]);
    let greeting = s.agent.greeting.as_ref().unwrap();
    assert!(!greeting.interruptible);
    assert!(greeting.text.contains("Demo Dental"));
    assert!(s.agent.instructions.contains("dental"));
    assert_eq!(s.twilio.auth_token, SecretRef::env("TWILIO_AUTH_TOKEN"));
    assert_eq!(s.openai.api_key, SecretRef::env("OPENAI_API_KEY"));
    assert!(s.gateway.is_none() && s.database.is_none());
}

#[test]
fn acme_is_the_cluster_tenant() {
    let t = load("acme-cluster.yaml");
    let s = &t.spec;
    let names: Vec<&str> = [&s.twilio.auth_token, &s.openai.api_key]
        .iter()
        .map(|r| r.secret_key_ref.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["acme-twilio", "acme-openai"]);
    let gateway = s.gateway.as_ref().unwrap();
    let autoscaling = gateway.autoscaling.as_ref().unwrap();
    assert_eq!(
        (autoscaling.min_replicas, autoscaling.max_replicas),
        (2, 10)
    );
    assert!(gateway.resources.is_some());
    let url = s.database.as_ref().unwrap().url.as_ref().unwrap();
    assert!(url.secret_key_ref.is_some());
    assert_eq!(s.agent.turn_detection.kind, TurnDetectionKind::SemanticVad);
    assert_eq!(s.deletion_policy, DeletionPolicy::Retain);
}

fn api_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn api_doc_shows_the_examples_verbatim() {
    let doc = api_doc();
    for name in ["demo.yaml", "acme-cluster.yaml"] {
        let text = std::fs::read_to_string(examples_dir().join(name)).unwrap();
        assert!(
            doc.contains(&format!("```yaml\n{text}```")),
            "docs/api.md does not show examples/tenants/{name} as it is"
        );
    }
}

/// Field paths under `spec`, not descending into SecretRefs (documented once) or into
/// Kubernetes' own ResourceRequirements.
fn spec_fields(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (key, sub) in props {
        let child = format!("{path}.{key}");
        out.push(child.clone());
        let is_secret_ref = sub["properties"].get("secretKeyRef").is_some();
        if !is_secret_ref && child != "spec.gateway.resources" {
            spec_fields(sub, &child, out);
        }
    }
}

#[test]
fn api_doc_names_every_field() {
    let doc = api_doc();
    let schema = support::tenant_schema();
    let mut fields = Vec::new();
    spec_fields(&schema["properties"]["spec"], "spec", &mut fields);
    assert!(fields.len() > 40, "{fields:?}");
    fields.extend(["secretKeyRef.name", "secretKeyRef.key", "env", "file"].map(String::from));
    fields.extend(["status.observedGeneration", "status.conditions"].map(String::from));
    for field in fields {
        assert!(
            doc.contains(&format!("| `{field}` |")),
            "docs/api.md has no row for {field}"
        );
    }
}
