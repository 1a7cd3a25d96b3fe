//! Every `KnowledgeBase` validation rule, table-driven: broken alone it is reported with its
//! field and rule; at its edge values it accepts. The same tables check that the published
//! CRD schema (OpenAPI validations + CEL) refuses and accepts the same manifests.

#![allow(clippy::unwrap_used)]

mod support;

use switchboard_crds::{
    BackendKind, BackendSpec, ChunkingSpec, ConfigMapSource, EmbedderKind, EmbedderSpec,
    InlineDocument, InlineSource, KnowledgeBase, KnowledgeBaseSpec, OpenAiEmbedderSpec,
    PineconeCloud, PineconeSpec, RetrievalSpec, S3Source, SecretKeySelector, SecretRef, SourceSpec,
};

fn doc(id: Option<&str>, title: &str) -> InlineDocument {
    InlineDocument {
        id: id.map(str::to_string),
        title: title.into(),
        content: "Open Monday to Friday, 8am to 6pm.".into(),
        category: None,
    }
}

fn inline(documents: Vec<InlineDocument>) -> SourceSpec {
    SourceSpec {
        inline: Some(InlineSource { documents }),
        ..SourceSpec::default()
    }
}

fn config_map(name: &str, keys: &[&str]) -> SourceSpec {
    SourceSpec {
        config_map: Some(ConfigMapSource {
            name: name.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }),
        ..SourceSpec::default()
    }
}

fn s3(bucket: &str, prefix: Option<&str>) -> SourceSpec {
    SourceSpec {
        s3: Some(S3Source {
            bucket: bucket.into(),
            prefix: prefix.map(str::to_string),
            region: None,
        }),
        ..SourceSpec::default()
    }
}

fn base() -> KnowledgeBaseSpec {
    KnowledgeBaseSpec {
        tenant: "demo".into(),
        description: None,
        backend: BackendSpec::default(),
        embedder: EmbedderSpec::default(),
        chunking: ChunkingSpec::default(),
        retrieval: RetrievalSpec::default(),
        sources: vec![inline(vec![doc(Some("hours"), "Opening hours")])],
    }
}

fn pinecone(s: &mut KnowledgeBaseSpec) -> &mut PineconeSpec {
    s.backend.kind = BackendKind::Pinecone;
    s.backend.pinecone.get_or_insert(PineconeSpec {
        index: "faq".into(),
        cloud: PineconeCloud::Aws,
        region: "us-east-1".into(),
        api_key: SecretRef::env("PINECONE_API_KEY"),
        namespace: None,
        api_url: None,
    })
}

fn openai(s: &mut KnowledgeBaseSpec) -> &mut OpenAiEmbedderSpec {
    s.embedder.kind = EmbedderKind::Openai;
    s.embedder.openai.get_or_insert(OpenAiEmbedderSpec {
        model: "text-embedding-3-small".into(),
        dimensions: None,
        api_key: SecretRef::env("OPENAI_API_KEY"),
        base_url: "https://api.openai.com/v1".into(),
    })
}

fn first_doc(s: &mut KnowledgeBaseSpec) -> &mut InlineDocument {
    &mut s.sources[0].inline.as_mut().unwrap().documents[0]
}

type Mutation = fn(&mut KnowledgeBaseSpec);

/// Each rule broken on its own: (what, mutation, field named, words of the rule).
const BROKEN: &[(&str, Mutation, &str, &str)] = &[
    (
        "upper-case tenant",
        |s| s.tenant = "Demo".into(),
        "spec.tenant",
        "VoiceTenant name",
    ),
    (
        "empty tenant",
        |s| s.tenant = String::new(),
        "spec.tenant",
        "VoiceTenant name",
    ),
    (
        "blank description",
        |s| s.description = Some(" ".into()),
        "spec.description",
        "must not be empty",
    ),
    (
        "long description",
        |s| s.description = Some("x".repeat(1001)),
        "spec.description",
        "at most 1000 characters",
    ),
    (
        "pinecone type without settings",
        |s| s.backend.kind = BackendKind::Pinecone,
        "spec.backend.pinecone",
        "must be set when type is pinecone",
    ),
    (
        "pinecone settings with pgvector",
        |s| {
            pinecone(s);
            s.backend.kind = BackendKind::Pgvector;
        },
        "spec.backend.pinecone",
        "only allowed with type pinecone",
    ),
    (
        "upper-case index",
        |s| pinecone(s).index = "FAQ".into(),
        "spec.backend.pinecone.index",
        "Pinecone index name",
    ),
    (
        "index with dot",
        |s| pinecone(s).index = "faq.v2".into(),
        "spec.backend.pinecone.index",
        "Pinecone index name",
    ),
    (
        "long index",
        |s| pinecone(s).index = "a".repeat(46),
        "spec.backend.pinecone.index",
        "Pinecone index name",
    ),
    (
        "blank region",
        |s| pinecone(s).region = String::new(),
        "spec.backend.pinecone.region",
        "must not be empty",
    ),
    (
        "pinecone key without source",
        |s| pinecone(s).api_key = SecretRef::default(),
        "spec.backend.pinecone.apiKey",
        "exactly one of secretKeyRef, env, file",
    ),
    (
        "pinecone key bad env name",
        |s| pinecone(s).api_key = SecretRef::env("1KEY"),
        "spec.backend.pinecone.apiKey.env",
        "environment variable name",
    ),
    (
        "blank namespace",
        |s| pinecone(s).namespace = Some(String::new()),
        "spec.backend.pinecone.namespace",
        "must not be empty",
    ),
    (
        "api URL without scheme",
        |s| pinecone(s).api_url = Some("api.pinecone.io".into()),
        "spec.backend.pinecone.apiUrl",
        "http:// or https:// URL",
    ),
    (
        "openai type without settings",
        |s| s.embedder.kind = EmbedderKind::Openai,
        "spec.embedder.openai",
        "must be set when type is openai",
    ),
    (
        "openai settings with local",
        |s| {
            openai(s);
            s.embedder.kind = EmbedderKind::Local;
        },
        "spec.embedder.openai",
        "only allowed with type openai",
    ),
    (
        "blank model",
        |s| {
            let o = openai(s);
            o.model = " ".into();
            o.dimensions = Some(768);
        },
        "spec.embedder.openai.model",
        "must not be empty",
    ),
    (
        "long model",
        |s| {
            let o = openai(s);
            o.model = "m".repeat(201);
            o.dimensions = Some(768);
        },
        "spec.embedder.openai.model",
        "at most 200 characters",
    ),
    (
        "zero dimensions",
        |s| openai(s).dimensions = Some(0),
        "spec.embedder.openai.dimensions",
        "between 1 and 20000",
    ),
    (
        "too many dimensions",
        |s| {
            pinecone(s);
            let o = openai(s);
            o.model = "nomic-embed-text".into();
            o.dimensions = Some(20_001);
        },
        "spec.embedder.openai.dimensions",
        "between 1 and 20000",
    ),
    (
        "unknown model without dimensions",
        |s| openai(s).model = "nomic-embed-text".into(),
        "spec.embedder.openai.dimensions",
        "must be set for models other than",
    ),
    (
        "small model lengthened",
        |s| openai(s).dimensions = Some(1537),
        "spec.embedder.openai.dimensions",
        "at most 1536 for text-embedding-3-small",
    ),
    (
        "large model lengthened",
        |s| {
            pinecone(s);
            let o = openai(s);
            o.model = "text-embedding-3-large".into();
            o.dimensions = Some(3073);
        },
        "spec.embedder.openai.dimensions",
        "at most 3072 for text-embedding-3-large",
    ),
    (
        "ada with dimensions",
        |s| {
            let o = openai(s);
            o.model = "text-embedding-ada-002".into();
            o.dimensions = Some(1536);
        },
        "spec.embedder.openai.dimensions",
        "must not be set for text-embedding-ada-002",
    ),
    (
        "large model on pgvector",
        |s| openai(s).model = "text-embedding-3-large".into(),
        "spec.embedder.openai.dimensions",
        "at most 2000 with backend pgvector",
    ),
    (
        "too many dimensions for pgvector",
        |s| {
            let o = openai(s);
            o.model = "text-embedding-3-large".into();
            o.dimensions = Some(2001);
        },
        "spec.embedder.openai.dimensions",
        "at most 2000 with backend pgvector",
    ),
    (
        "openai key without source",
        |s| openai(s).api_key = SecretRef::default(),
        "spec.embedder.openai.apiKey",
        "exactly one of secretKeyRef, env, file",
    ),
    (
        "openai key bad secret name",
        |s| {
            openai(s).api_key = SecretRef {
                secret_key_ref: Some(SecretKeySelector {
                    name: "Keys".into(),
                    key: "openai".into(),
                }),
                ..SecretRef::default()
            }
        },
        "spec.embedder.openai.apiKey.secretKeyRef.name",
        "valid Secret name",
    ),
    (
        "base URL ws",
        |s| openai(s).base_url = "wss://api.openai.com/v1".into(),
        "spec.embedder.openai.baseUrl",
        "http:// or https:// URL",
    ),
    (
        "base URL with space",
        |s| openai(s).base_url = "http://localhost 8080".into(),
        "spec.embedder.openai.baseUrl",
        "http:// or https:// URL",
    ),
    (
        "chunk too small",
        |s| {
            s.chunking = ChunkingSpec {
                size: 99,
                overlap: 0,
            }
        },
        "spec.chunking.size",
        "between 100 and 8000",
    ),
    (
        "chunk too large",
        |s| s.chunking.size = 8001,
        "spec.chunking.size",
        "between 100 and 8000",
    ),
    (
        "overlap over half",
        |s| s.chunking.overlap = 251,
        "spec.chunking.overlap",
        "at most half of size",
    ),
    (
        "overlap equal to size",
        |s| {
            s.chunking = ChunkingSpec {
                size: 400,
                overlap: 400,
            }
        },
        "spec.chunking.overlap",
        "at most half of size",
    ),
    (
        "zero topK",
        |s| s.retrieval.top_k = 0,
        "spec.retrieval.topK",
        "between 1 and 20",
    ),
    (
        "large topK",
        |s| s.retrieval.top_k = 21,
        "spec.retrieval.topK",
        "between 1 and 20",
    ),
    (
        "negative minScore",
        |s| s.retrieval.min_score = -0.01,
        "spec.retrieval.minScore",
        "between 0.0 and 1.0",
    ),
    (
        "minScore above 1",
        |s| s.retrieval.min_score = 1.01,
        "spec.retrieval.minScore",
        "between 0.0 and 1.0",
    ),
    (
        "minScore NaN",
        |s| s.retrieval.min_score = f64::NAN,
        "spec.retrieval.minScore",
        "between 0.0 and 1.0",
    ),
    (
        "no sources",
        |s| s.sources.clear(),
        "spec.sources",
        "at least one source",
    ),
    (
        "too many sources",
        |s| {
            s.sources = (0..33)
                .map(|i| config_map(&format!("faq-{i}"), &[]))
                .collect()
        },
        "spec.sources",
        "at most 32 sources",
    ),
    (
        "empty source",
        |s| s.sources.push(SourceSpec::default()),
        "spec.sources[1]",
        "exactly one of inline, configMap, s3",
    ),
    (
        "source of two kinds",
        |s| s.sources[0].s3 = s3("faq-docs", None).s3,
        "spec.sources[0]",
        "exactly one of inline, configMap, s3",
    ),
    (
        "inline without documents",
        |s| s.sources = vec![inline(Vec::new())],
        "spec.sources[0].inline.documents",
        "at least one document",
    ),
    (
        "id with space",
        |s| first_doc(s).id = Some("opening hours".into()),
        "spec.sources[0].inline.documents[0].id",
        "letters, digits",
    ),
    (
        "id with slash",
        |s| first_doc(s).id = Some("faq/hours".into()),
        "spec.sources[0].inline.documents[0].id",
        "letters, digits",
    ),
    (
        "blank title",
        |s| first_doc(s).title = "\t".into(),
        "spec.sources[0].inline.documents[0].title",
        "must not be empty",
    ),
    (
        "long title",
        |s| first_doc(s).title = "t".repeat(201),
        "spec.sources[0].inline.documents[0].title",
        "at most 200 characters",
    ),
    (
        "blank content",
        |s| first_doc(s).content = "\n\n".into(),
        "spec.sources[0].inline.documents[0].content",
        "must not be empty",
    ),
    (
        "blank category",
        |s| first_doc(s).category = Some(String::new()),
        "spec.sources[0].inline.documents[0].category",
        "must not be empty",
    ),
    (
        "long category",
        |s| first_doc(s).category = Some("c".repeat(101)),
        "spec.sources[0].inline.documents[0].category",
        "at most 100 characters",
    ),
    (
        "repeated id",
        |s| {
            s.sources
                .push(inline(vec![doc(Some("hours"), "Hours again")]))
        },
        "spec.sources[1].inline.documents[0].id",
        "must not repeat document id \"hours\"",
    ),
    (
        "repeated title without ids",
        |s| {
            s.sources = vec![inline(vec![
                doc(None, "Opening hours"),
                doc(None, "Opening hours"),
            ])]
        },
        "spec.sources[0].inline.documents[1].title",
        "must not repeat document id \"Opening hours\"",
    ),
    (
        "bad ConfigMap name",
        |s| s.sources.push(config_map("FAQ", &[])),
        "spec.sources[1].configMap.name",
        "valid ConfigMap name",
    ),
    (
        "bad ConfigMap key",
        |s| s.sources.push(config_map("faq", &["a/b.md"])),
        "spec.sources[1].configMap.keys[0]",
        "valid ConfigMap key",
    ),
    (
        "repeated ConfigMap key",
        |s| s.sources.push(config_map("faq", &["a.md", "a.md"])),
        "spec.sources[1].configMap.keys[1]",
        "must not repeat a.md",
    ),
    (
        "repeated ConfigMap",
        |s| {
            s.sources.push(config_map("faq", &["a.md"]));
            s.sources.push(config_map("faq", &["b.md"]));
        },
        "spec.sources[2].configMap.name",
        "must not repeat ConfigMap faq",
    ),
    (
        "bad bucket",
        |s| s.sources.push(s3("Faq_Docs", None)),
        "spec.sources[1].s3.bucket",
        "S3 bucket name",
    ),
    (
        "bad region",
        |s| {
            let mut source = s3("faq-docs", None);
            source.s3.as_mut().unwrap().region = Some("eu-central".into());
            s.sources.push(source);
        },
        "spec.sources[1].s3.region",
        "AWS region code",
    ),
    (
        "nested S3 prefixes",
        |s| {
            s.sources.push(s3("faq-docs", Some("faq/")));
            s.sources.push(s3("faq-docs", Some("faq/prices/")));
        },
        "spec.sources[2].s3.prefix",
        "must not overlap the prefix of sources[1]",
    ),
    (
        "whole bucket and a prefix",
        |s| {
            s.sources.push(s3("faq-docs", Some("faq/")));
            s.sources.push(s3("faq-docs", None));
        },
        "spec.sources[2].s3.prefix",
        "must not overlap the prefix of sources[1]",
    ),
];

/// Edge values every rule must accept.
const ACCEPTED: &[(&str, Mutation)] = &[
    ("description", |s| s.description = Some("é".repeat(1000))),
    ("dotted tenant", |s| s.tenant = "acme.dental-2".into()),
    ("pinecone", |s| {
        let p = pinecone(s);
        p.index = "a".repeat(45);
        p.cloud = PineconeCloud::Gcp;
        p.region = "us-central1".into();
        p.namespace = Some("Demo FAQ".into());
        p.api_url = Some("http://127.0.0.1:5080".into());
    }),
    ("openai defaults", |s| {
        openai(s);
    }),
    ("small model shortened", |s| openai(s).dimensions = Some(1)),
    ("small model at its length", |s| {
        openai(s).dimensions = Some(1536)
    }),
    ("large model at pgvector's limit", |s| {
        let o = openai(s);
        o.model = "text-embedding-3-large".into();
        o.dimensions = Some(2000);
    }),
    ("large model on pinecone", |s| {
        pinecone(s);
        openai(s).model = "text-embedding-3-large".into();
    }),
    ("ada", |s| openai(s).model = "text-embedding-ada-002".into()),
    ("compatible endpoint", |s| {
        let o = openai(s);
        o.model = "nomic-embed-text".into();
        o.dimensions = Some(768);
        o.base_url = "http://127.0.0.1:11434/v1".into();
        o.api_key = SecretRef {
            file: Some("/run/secrets/key".into()),
            ..SecretRef::default()
        };
    }),
    ("largest dimensions on pinecone", |s| {
        pinecone(s);
        let o = openai(s);
        o.model = "nomic-embed-text".into();
        o.dimensions = Some(20_000);
    }),
    ("smallest chunks", |s| {
        s.chunking = ChunkingSpec {
            size: 100,
            overlap: 50,
        }
    }),
    ("largest chunks without overlap", |s| {
        s.chunking = ChunkingSpec {
            size: 8000,
            overlap: 0,
        }
    }),
    ("retrieval bounds", |s| {
        s.retrieval = RetrievalSpec {
            top_k: 1,
            min_score: 0.0,
        }
    }),
    ("retrieval upper bounds", |s| {
        s.retrieval = RetrievalSpec {
            top_k: 20,
            min_score: 1.0,
        }
    }),
    ("full document", |s| {
        let d = first_doc(s);
        d.id = Some("Hours_v2.1".into());
        d.title = "é".repeat(200);
        d.category = Some("c".repeat(100));
    }),
    ("ids default to distinct titles", |s| {
        s.sources = vec![inline(vec![doc(None, "Hours"), doc(None, "Parking")])]
    }),
    ("an id equal to another document's title", |s| {
        s.sources = vec![inline(vec![doc(Some("Hours"), "A"), doc(None, "B")])]
    }),
    ("every kind of source", |s| {
        s.sources
            .push(config_map("faq", &["hours.md", "prices.html"]));
        s.sources.push(config_map("faq-2", &[]));
        let mut source = s3("faq-docs", Some("faq/"));
        source.s3.as_mut().unwrap().region = Some("us-gov-west-1".into());
        s.sources.push(source);
        s.sources.push(s3("faq-docs", Some("prices/")));
        s.sources.push(s3("other-docs", Some("faq/")));
    }),
    ("32 sources", |s| {
        s.sources = (0..32)
            .map(|i| config_map(&format!("faq-{i}"), &[]))
            .collect()
    }),
];

#[test]
fn base_is_valid() {
    assert_eq!(base().validate(), Ok(()));
}

#[test]
fn every_rule_is_enforced_and_names_its_field() {
    for (what, mutate, field, words) in BROKEN {
        let mut spec = base();
        mutate(&mut spec);
        let errors = match spec.validate() {
            Ok(()) => panic!("{what}: accepted"),
            Err(e) => e.0,
        };
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
        assert_eq!(errors[0].field, *field, "{what}");
        assert!(
            errors[0].rule.contains(words),
            "{what}: {:?}",
            errors[0].rule
        );
        let shown = errors[0].to_string();
        assert!(shown.starts_with(&format!("{field}: ")), "{what}: {shown}");
    }
}

#[test]
fn edge_values_are_accepted() {
    for (what, mutate) in ACCEPTED {
        let mut spec = base();
        mutate(&mut spec);
        assert_eq!(spec.validate(), Ok(()), "{what}");
    }
}

#[test]
fn all_broken_rules_are_reported_at_once() {
    let mut spec = base();
    spec.tenant.clear();
    spec.chunking.size = 1;
    spec.sources.push(SourceSpec::default());
    let err = spec.validate().unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.tenant",
            "spec.chunking.size",
            "spec.chunking.overlap",
            "spec.sources[1]"
        ]
    );
}

#[test]
fn name_is_checked() {
    let mut kb = KnowledgeBase::new("demo-faq", base());
    assert_eq!(kb.validate(), Ok(()));
    for (name, words) in [(None, "must be set"), (Some("FAQ"), "DNS subdomain")] {
        kb.metadata.name = name.map(str::to_string);
        let err = kb.validate().unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].field, "metadata.name");
        assert!(err.0[0].rule.contains(words), "{err}");
    }
    let mut spec = base();
    spec.sources.clear();
    let err = KnowledgeBase::new("demo-faq", spec).validate().unwrap_err();
    assert_eq!(err.0[0].field, "spec.sources");
}

/// Rules an API server cannot check: NaN has no JSON form, and rules across list items
/// (unique ids, ConfigMaps, S3 prefixes) would cost CEL quadratic time.
const NOT_IN_SCHEMA: &[&str] = &[
    "minScore NaN",
    "repeated id",
    "repeated title without ids",
    "repeated ConfigMap",
    "nested S3 prefixes",
    "whole bucket and a prefix",
];

fn as_object(spec: KnowledgeBaseSpec) -> serde_json::Value {
    serde_json::to_value(KnowledgeBase::new("kb", spec)).unwrap()
}

#[test]
fn schema_refuses_what_validate_refuses() {
    let schema = support::knowledge_schema();
    assert_eq!(
        support::refusals(&schema, &as_object(base())),
        Vec::<String>::new()
    );
    for (what, mutate, field, _) in BROKEN {
        if NOT_IN_SCHEMA.contains(what) {
            continue;
        }
        let mut spec = base();
        mutate(&mut spec);
        let refusals = support::refusals(&schema, &as_object(spec));
        assert!(!refusals.is_empty(), "{what}: the CRD schema accepts it");
        // The API server may report the enclosing object (CEL) or the list (sets).
        let related = refusals.iter().any(|r| {
            let path = r.split(": ").next().unwrap_or_default();
            let path = path.trim_start_matches('.');
            field.starts_with(path) || path.starts_with(field)
        });
        assert!(related, "{what}: refused for another field: {refusals:?}");
    }
}

#[test]
fn schema_accepts_what_validate_accepts() {
    let schema = support::knowledge_schema();
    for (what, mutate) in ACCEPTED {
        let mut spec = base();
        mutate(&mut spec);
        let refusals = support::refusals(&schema, &as_object(spec));
        assert!(refusals.is_empty(), "{what}: {refusals:?}");
    }
}

#[test]
fn tenant_cannot_change_but_the_rest_can() {
    let schema = support::knowledge_schema();
    let old = as_object(base());
    let mut moved = base();
    moved.tenant = "acme".into();
    let refusals = support::update_refusals(&schema, &as_object(moved), &old);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].contains("tenant is immutable"), "{refusals:?}");
    let mut edited = base();
    edited.retrieval.top_k = 8;
    openai(&mut edited);
    first_doc(&mut edited).content = "Open every day.".into();
    assert_eq!(
        support::update_refusals(&schema, &as_object(edited), &old),
        Vec::<String>::new()
    );
}

#[test]
fn dimensions_follow_the_embedder() {
    let mut spec = base();
    assert_eq!(spec.embedder.dimensions(), Some(384));
    openai(&mut spec);
    assert_eq!(spec.embedder.dimensions(), Some(1536));
    openai(&mut spec).dimensions = Some(512);
    assert_eq!(spec.embedder.dimensions(), Some(512));
    let o = openai(&mut spec);
    o.model = "text-embedding-3-large".into();
    o.dimensions = None;
    assert_eq!(spec.embedder.dimensions(), Some(3072));
    openai(&mut spec).model = "nomic-embed-text".into();
    assert_eq!(spec.embedder.dimensions(), None);
    spec.embedder.openai = None;
    assert_eq!(spec.embedder.dimensions(), None);
}

#[test]
fn document_ids_and_namespaces() {
    assert_eq!(doc(Some("hours"), "Opening hours").document_id(), "hours");
    assert_eq!(doc(None, "Opening hours").document_id(), "Opening hours");
    let cm = config_map("faq", &[]).config_map.unwrap();
    assert_eq!(cm.document_id("hours.md"), "configmap/faq/hours.md");
    let bucket = s3("faq-docs", Some("faq/")).s3.unwrap();
    assert_eq!(
        bucket.document_id("faq/hours.md"),
        "s3://faq-docs/faq/hours.md"
    );
    for (key, read) in [
        ("faq/hours.md", true),
        ("faq/HOURS.HTML", true),
        ("a.htm", true),
        ("a.markdown", true),
        ("notes.txt", true),
        ("logo.png", false),
        ("faq/", false),
        ("md", false),
    ] {
        assert_eq!(S3Source::is_document_key(key), read, "{key}");
    }
    let mut spec = base();
    let p = pinecone(&mut spec);
    assert_eq!(p.namespace_or("demo-faq"), "demo-faq");
    p.namespace = Some("faq".into());
    assert_eq!(p.namespace_or("demo-faq"), "faq");
}
