//! Every manifest in examples/tenants and examples/knowledge parses, validates, and would be
//! accepted by an API server with the generated CRD; docs/api.md shows them and names every
//! field.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use switchboard_crds::{
    BackendKind, ChunkingSpec, DeletionPolicy, EmbedderKind, KnowledgeBase, RetrievalSpec,
    SecretRef, TurnDetectionKind, VoiceTenant, parse_knowledge_base, parse_tenant,
};

fn examples_dir() -> PathBuf {
    examples("tenants")
}

fn examples(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(sub)
        .canonicalize()
        .unwrap()
}

/// Every `.yaml` file of a directory, as (file name, text).
fn yaml_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out.sort();
    out
}

fn load_kb(name: &str) -> KnowledgeBase {
    let path = examples("knowledge").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_knowledge_base(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
    assert_eq!(s.agent.knowledge_bases, ["demo-faq"]);
}

#[test]
fn every_knowledge_example_parses_validates_and_fits_the_crd() {
    let schema = support::knowledge_schema();
    let files = yaml_files(&examples("knowledge"));
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert!(names.contains(&"demo.yaml"), "{names:?}");
    let tenants: Vec<VoiceTenant> = yaml_files(&examples_dir())
        .iter()
        .map(|(_, text)| parse_tenant(text).unwrap())
        .collect();
    for (name, text) in &files {
        let kb = parse_knowledge_base(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Value = serde_saphyr::from_str(text).unwrap();
        let refusals = support::refusals(&schema, &raw);
        assert!(refusals.is_empty(), "{name}: {refusals:?}");
        // Its tenant is an example too, and lists it among the knowledge bases it searches.
        let kb_name = kb.metadata.name.clone().unwrap();
        let tenant = tenants
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(kb.spec.tenant.as_str()))
            .unwrap_or_else(|| panic!("{name}: no example tenant {}", kb.spec.tenant));
        assert!(
            tenant.spec.agent.knowledge_bases.contains(&kb_name),
            "{name}: tenant {} does not list {kb_name}",
            kb.spec.tenant
        );
    }
}

#[test]
fn demo_faq_answers_the_demo_questions() {
    let kb = load_kb("demo.yaml");
    assert_eq!(kb.metadata.name.as_deref(), Some("demo-faq"));
    let s = &kb.spec;
    assert_eq!(s.tenant, "demo");
    assert_eq!(s.backend.kind, BackendKind::Pgvector);
    assert_eq!(s.embedder.kind, EmbedderKind::Local);
    assert_eq!(s.chunking, ChunkingSpec::default());
    assert_eq!(s.retrieval, RetrievalSpec::default());
    assert_eq!(s.sources.len(), 1);
    let docs = &s.sources[0].inline.as_ref().unwrap().documents;
    let ids: Vec<&str> = docs.iter().map(|d| d.document_id()).collect();
    assert_eq!(
        ids,
        [
            "opening-hours",
            "address-parking",
            "insurance",
            "new-patients",
            "emergencies",
            "cancellation-policy",
            "payment",
            "children"
        ]
    );
    let text = |id: &str| {
        let d = docs.iter().find(|d| d.document_id() == id).unwrap();
        assert!(d.category.is_some(), "{id}: no category");
        d.content.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    // The same hours as the tenant's instructions.
    let hours = text("opening-hours");
    for fact in [
        "Monday to Friday from 8am to 6pm",
        "Saturday from 9am to 1pm",
        "closed on Sunday",
    ] {
        assert!(hours.contains(fact), "{fact}: {hours}");
    }
    assert!(text("cancellation-policy").contains("24 hours"));
    assert!(text("address-parking").contains("parking"));
    assert!(text("insurance").contains("PPO"));
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
    // Its database is the operator's to provision: the tenant's namespace holds no
    // database URL (least of all the admin's).
    assert!(s.database.is_none());
    assert_eq!(s.agent.turn_detection.kind, TurnDetectionKind::SemanticVad);
    assert_eq!(s.deletion_policy, DeletionPolicy::Retain);
}

fn api_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The heading that starts the KnowledgeBase part of docs/api.md.
const KB_HEADING: &str = "\n# API reference: `KnowledgeBase`\n";

/// docs/api.md split into its VoiceTenant and its KnowledgeBase part.
fn api_doc_parts() -> (String, String) {
    let doc = api_doc();
    let (tenant, kb) = doc
        .split_once(KB_HEADING)
        .unwrap_or_else(|| panic!("docs/api.md has no heading {KB_HEADING:?}"));
    (tenant.to_string(), kb.to_string())
}

#[test]
fn api_doc_shows_the_examples_verbatim() {
    let (tenant_doc, kb_doc) = api_doc_parts();
    for (sub, doc) in [("tenants", &tenant_doc), ("knowledge", &kb_doc)] {
        for (name, text) in yaml_files(&examples(sub)) {
            assert!(
                doc.contains(&format!("```yaml\n{text}```")),
                "docs/api.md does not show examples/{sub}/{name} as it is"
            );
        }
    }
}

/// Field paths under `spec`, not descending into SecretRefs (documented once) or into
/// Kubernetes' own ResourceRequirements. Fields of list items are written `list[].field`.
fn spec_fields(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (key, sub) in props {
        let child = format!("{path}.{key}");
        out.push(child.clone());
        let is_secret_ref = sub["properties"].get("secretKeyRef").is_some();
        if is_secret_ref || child == "spec.gateway.resources" {
            continue;
        }
        if sub["type"] == "array" {
            spec_fields(&sub["items"], &format!("{child}[]"), out);
        } else {
            spec_fields(sub, &child, out);
        }
    }
}

#[test]
fn api_doc_names_every_field() {
    let (doc, _) = api_doc_parts();
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

#[test]
fn api_doc_names_every_knowledge_base_field() {
    let (_, doc) = api_doc_parts();
    let schema = support::knowledge_schema();
    let mut fields = Vec::new();
    spec_fields(&schema["properties"]["spec"], "spec", &mut fields);
    assert!(fields.len() > 30, "{fields:?}");
    // Kubernetes' own Condition is documented by reference.
    let status = &schema["properties"]["status"]["properties"];
    fields.extend(
        status
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("status.{k}")),
    );
    for field in fields {
        assert!(
            doc.contains(&format!("| `{field}` |")),
            "docs/api.md's KnowledgeBase part has no row for {field}"
        );
    }
}
