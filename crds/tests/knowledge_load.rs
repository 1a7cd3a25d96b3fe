//! Reading `KnowledgeBase` manifests: defaults, strictness, messages.

#![allow(clippy::unwrap_used)]

use switchboard_crds::{
    BackendKind, ChunkingSpec, DEFAULT_OPENAI_BASE_URL, EmbedderKind, EmbedderSpec, LoadError,
    PineconeCloud, RetrievalSpec, parse_knowledge_base, parse_tenant,
};

const MINIMAL: &str = "\
apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata:
  name: faq
spec:
  tenant: demo
  sources:
    - inline:
        documents:
          - title: Opening hours
            content: Monday to Friday, 8am to 6pm.
";

/// MINIMAL with `extra` inserted as the first lines under `spec:`.
fn with_spec(extra: &str) -> String {
    MINIMAL.replace("spec:\n", &format!("spec:\n{extra}"))
}

#[test]
fn defaults_are_filled_from_a_minimal_manifest() {
    let kb = parse_knowledge_base(MINIMAL).unwrap();
    let s = &kb.spec;
    assert_eq!(s.tenant, "demo");
    assert_eq!(s.description, None);
    assert_eq!(s.backend.kind, BackendKind::Pgvector);
    assert_eq!(s.backend.pinecone, None);
    assert_eq!(s.embedder, EmbedderSpec::default());
    assert_eq!(s.embedder.kind, EmbedderKind::Local);
    assert_eq!(s.embedder.dimensions(), Some(384));
    assert_eq!((s.chunking.size, s.chunking.overlap), (500, 50));
    assert_eq!(s.chunking, ChunkingSpec::default());
    assert_eq!((s.retrieval.top_k, s.retrieval.min_score), (4, 0.3));
    assert_eq!(s.retrieval, RetrievalSpec::default());
    let doc = &s.sources[0].inline.as_ref().unwrap().documents[0];
    assert_eq!(doc.document_id(), "Opening hours");
    assert_eq!(doc.category, None);
    assert!(kb.status.is_none());
}

#[test]
fn openai_embedder_defaults() {
    let kb = parse_knowledge_base(&with_spec(
        "  embedder:\n    type: openai\n    openai: {apiKey: {env: OPENAI_API_KEY}}\n",
    ))
    .unwrap();
    let o = kb.spec.embedder.openai.as_ref().unwrap();
    assert_eq!(o.model, "text-embedding-3-small");
    assert_eq!(o.base_url, DEFAULT_OPENAI_BASE_URL);
    assert_eq!(o.dimensions, None);
    assert_eq!(kb.spec.embedder.dimensions(), Some(1536));
}

#[test]
fn pinecone_backend_reads_back() {
    let kb = parse_knowledge_base(&with_spec(
        "  backend:\n    type: pinecone\n    pinecone:\n      index: demo\n      cloud: gcp\n      region: us-central1\n      apiKey: {secretKeyRef: {name: pinecone, key: api-key}}\n",
    ))
    .unwrap();
    let p = kb.spec.backend.pinecone.as_ref().unwrap();
    assert_eq!(p.cloud, PineconeCloud::Gcp);
    assert_eq!(p.namespace_or(kb.metadata.name.as_deref().unwrap()), "faq");
    assert_eq!(p.api_url, None);
}

#[test]
fn round_trip_keeps_everything() {
    let text = with_spec(
        "  description: Hours.\n  chunking: {size: 800, overlap: 100}\n  retrieval: {topK: 6, minScore: 0.45}\n",
    ) + "    - configMap: {name: faq, keys: [a.md]}\n    - s3: {bucket: faq-docs, prefix: faq/, region: eu-west-1}\n";
    let kb = parse_knowledge_base(&text).unwrap();
    assert_eq!(kb.spec.sources.len(), 3);
    let again = parse_knowledge_base(&serde_saphyr::to_string(&kb).unwrap()).unwrap();
    assert_eq!(again, kb);
}

#[test]
fn status_reads_back() {
    let text = format!(
        "{MINIMAL}status:\n  observedGeneration: 2\n  documents: 8\n  chunks: 11\n  lastSync: \"2025-06-01T10:00:00Z\"\n  contentHash: ab12\n"
    );
    let status = parse_knowledge_base(&text).unwrap().status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!((status.documents, status.chunks), (8, 11));
    assert_eq!(status.content_hash.as_deref(), Some("ab12"));
    assert_eq!(
        status.last_sync.unwrap().0.to_string(),
        "2025-06-01T10:00:00Z"
    );
}

#[test]
fn unknown_fields_inside_sources_are_named() {
    let text = MINIMAL.replace(
        "            content: Monday to Friday, 8am to 6pm.\n",
        "            content: Monday to Friday, 8am to 6pm.\n            tags: [hours]\n",
    ) + "  retreival: {topK: 2}\n";
    let err = parse_knowledge_base(&text).unwrap_err();
    let LoadError::Invalid { kind, name, errors } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!((*kind, name.as_str()), ("KnowledgeBase", "faq"));
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.retreival", "spec.sources[0].inline.documents[0].tags"]
    );
}

#[test]
fn misspelt_required_fields_are_named_with_their_lines_before_the_missing_one() {
    let text = MINIMAL
        .replace("  tenant: demo", "  tenat: demo")
        .replace("            content:", "            contnet:");
    let err = parse_knowledge_base(&text).unwrap_err();
    assert!(matches!(err, LoadError::Parse { .. }), "{err:?}");
    let msg = err.to_string();
    let expected = "not a valid KnowledgeBase manifest: \
        spec.sources[0].inline.documents[0].contnet: is not a known field (line 11); \
        did you mean `content`?; \
        spec.tenat: is not a known field (line 6); did you mean `tenant`?; \
        missing field";
    assert!(msg.starts_with(expected), "{msg}");
}

#[test]
fn broken_rules_name_the_kind_and_field() {
    let text = with_spec("  chunking: {size: 200, overlap: 150}\n");
    let msg = parse_knowledge_base(&text).unwrap_err().to_string();
    assert!(msg.starts_with("invalid KnowledgeBase faq: "), "{msg}");
    assert!(
        msg.contains("spec.chunking.overlap: must be at most half of size"),
        "{msg}"
    );
}

#[test]
fn parse_errors_name_the_kind_and_line() {
    let text = with_spec("  retrieval: {topK: many}\n");
    let err = parse_knowledge_base(&text).unwrap_err();
    let LoadError::Parse { kind, message } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    assert_eq!(*kind, "KnowledgeBase");
    assert!(message.contains("line 6"), "{message}");
    assert!(
        err.to_string()
            .starts_with("not a valid KnowledgeBase manifest: "),
        "{err}"
    );
    let missing = MINIMAL.replace("  tenant: demo\n", "");
    let err = parse_knowledge_base(&missing).unwrap_err();
    assert!(err.to_string().contains("tenant"), "{err}");
}

#[test]
fn kinds_are_not_mixed_up() {
    let err = parse_tenant(MINIMAL).unwrap_err();
    assert!(
        matches!(&err, LoadError::WrongKind { expected_kind: "VoiceTenant", kind, .. } if kind == "KnowledgeBase"),
        "{err:?}"
    );
    let tenant = MINIMAL.replace("kind: KnowledgeBase", "kind: VoiceTenant");
    let err = parse_knowledge_base(&tenant).unwrap_err();
    assert!(
        matches!(
            &err,
            LoadError::WrongKind {
                expected_kind: "KnowledgeBase",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("kind KnowledgeBase, got \"voice.switchboard.dev/v1alpha1\" \"VoiceTenant\""),
        "{err}"
    );
}
