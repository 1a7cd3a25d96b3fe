//! Validation of a `KnowledgeBase`.

use crate::format::{
    is_aws_region, is_dns_subdomain, is_http_url, is_pinecone_index, is_s3_bucket, is_secret_key,
};
use crate::knowledge::{
    BackendKind, BackendSpec, ChunkingSpec, ConfigMapSource, EmbedderKind, EmbedderSpec,
    InlineSource, KnowledgeBase, KnowledgeBaseSpec, OpenAiEmbedderSpec, PGVECTOR_MAX_DIMENSIONS,
    RetrievalSpec, S3Source, known_model,
};

use super::{Collector, ValidationErrors, name_rules};
use crate::limits::{
    CATEGORY_MAX, CHUNK_SIZE_MAX, CHUNK_SIZE_MIN, DESCRIPTION_MAX, EMBEDDING_DIMENSIONS_MAX,
    MODEL_NAME_MAX, SOURCES_MAX, TITLE_MAX, TOP_K_MAX,
};

impl KnowledgeBase {
    /// Checks `metadata.name` (the knowledge base's identity, also the default Pinecone
    /// namespace) and every rule of the spec; returns all broken ones at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Collector(Vec::new());
        name_rules(&mut c, self.metadata.name.as_deref());
        spec_rules(&mut c, &self.spec);
        c.finish()
    }
}

impl KnowledgeBaseSpec {
    /// Checks every rule; returns all broken ones at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Collector(Vec::new());
        spec_rules(&mut c, self);
        c.finish()
    }
}

fn spec_rules(c: &mut Collector, spec: &KnowledgeBaseSpec) {
    c.check(
        is_dns_subdomain(&spec.tenant),
        "spec.tenant",
        "must be a VoiceTenant name (lowercase DNS subdomain, at most 253 characters)",
    );
    if let Some(d) = &spec.description {
        c.not_blank(
            d,
            "spec.description",
            "must not be empty (omit it for none)",
        );
        c.check(
            d.chars().count() <= DESCRIPTION_MAX as usize,
            "spec.description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        );
    }
    backend_rules(c, &spec.backend);
    embedder_rules(c, &spec.embedder);
    if spec.backend.kind == BackendKind::Pgvector
        && let Some(n) = spec.embedder.dimensions()
    {
        c.check(
            n <= PGVECTOR_MAX_DIMENSIONS,
            "spec.embedder.openai.dimensions",
            format!(
                "must be at most {PGVECTOR_MAX_DIMENSIONS} with backend pgvector (the most it can index; this embedder gives {n})"
            ),
        );
    }
    chunking_rules(c, &spec.chunking);
    retrieval_rules(c, &spec.retrieval);
    source_rules(c, spec);
}

fn backend_rules(c: &mut Collector, b: &BackendSpec) {
    match (b.kind, &b.pinecone) {
        (BackendKind::Pinecone, None) => c.check(
            false,
            "spec.backend.pinecone",
            "must be set when type is pinecone",
        ),
        (BackendKind::Pgvector, Some(_)) => c.check(
            false,
            "spec.backend.pinecone",
            "is only allowed with type pinecone",
        ),
        _ => {}
    }
    let Some(p) = &b.pinecone else {
        return;
    };
    c.check(
        is_pinecone_index(&p.index),
        "spec.backend.pinecone.index",
        "must be a Pinecone index name (at most 45 of a-z, 0-9, '-'; starting and ending with a letter or digit)",
    );
    c.not_blank(
        &p.region,
        "spec.backend.pinecone.region",
        "must not be empty",
    );
    c.secret("spec.backend.pinecone.apiKey", &p.api_key);
    if let Some(ns) = &p.namespace {
        c.not_blank(
            ns,
            "spec.backend.pinecone.namespace",
            "must not be empty (omit it to use the knowledge base's name)",
        );
    }
    if let Some(u) = &p.api_url {
        c.check(
            is_http_url(u),
            "spec.backend.pinecone.apiUrl",
            "must be an http:// or https:// URL",
        );
    }
}

fn embedder_rules(c: &mut Collector, e: &EmbedderSpec) {
    match (e.kind, &e.openai) {
        (EmbedderKind::Openai, None) => c.check(
            false,
            "spec.embedder.openai",
            "must be set when type is openai",
        ),
        (EmbedderKind::Local, Some(_)) => c.check(
            false,
            "spec.embedder.openai",
            "is only allowed with type openai",
        ),
        _ => {}
    }
    if let Some(o) = &e.openai {
        openai_rules(c, o);
    }
}

fn openai_rules(c: &mut Collector, o: &OpenAiEmbedderSpec) {
    const FIELD: &str = "spec.embedder.openai.dimensions";
    c.not_blank(&o.model, "spec.embedder.openai.model", "must not be empty");
    c.check(
        o.model.chars().count() <= MODEL_NAME_MAX as usize,
        "spec.embedder.openai.model",
        format!("must be at most {MODEL_NAME_MAX} characters"),
    );
    match (o.dimensions, known_model(&o.model)) {
        (Some(n), _) if !(1..=EMBEDDING_DIMENSIONS_MAX).contains(&n) => c.check(
            false,
            FIELD,
            format!("must be between 1 and {EMBEDDING_DIMENSIONS_MAX}"),
        ),
        (Some(_), Some((native, false))) => c.check(
            false,
            FIELD,
            format!("must not be set for {} (its vectors have {native})", o.model),
        ),
        (Some(n), Some((native, true))) => c.check(
            n <= native,
            FIELD,
            format!("must be at most {native} for {}", o.model),
        ),
        (None, None) => c.check(
            false,
            FIELD,
            "must be set for models other than text-embedding-3-small, text-embedding-3-large and text-embedding-ada-002",
        ),
        (Some(_), None) | (None, Some(_)) => {}
    }
    c.secret("spec.embedder.openai.apiKey", &o.api_key);
    c.check(
        is_http_url(&o.base_url),
        "spec.embedder.openai.baseUrl",
        "must be an http:// or https:// URL",
    );
}

fn chunking_rules(c: &mut Collector, ch: &ChunkingSpec) {
    c.check(
        (CHUNK_SIZE_MIN..=CHUNK_SIZE_MAX).contains(&ch.size),
        "spec.chunking.size",
        format!("must be between {CHUNK_SIZE_MIN} and {CHUNK_SIZE_MAX}"),
    );
    // At most half: with an overlap close to the size each chunk would advance by a few
    // characters and a document would turn into as many chunks as it has characters.
    c.check(
        u64::from(ch.overlap) * 2 <= u64::from(ch.size),
        "spec.chunking.overlap",
        "must be at most half of size",
    );
}

fn retrieval_rules(c: &mut Collector, r: &RetrievalSpec) {
    c.check(
        (1..=TOP_K_MAX).contains(&r.top_k),
        "spec.retrieval.topK",
        format!("must be between 1 and {TOP_K_MAX}"),
    );
    c.check(
        (0.0..=1.0).contains(&r.min_score),
        "spec.retrieval.minScore",
        "must be between 0.0 and 1.0",
    );
}

fn source_rules(c: &mut Collector, spec: &KnowledgeBaseSpec) {
    c.check(
        !spec.sources.is_empty(),
        "spec.sources",
        "must list at least one source",
    );
    c.check(
        spec.sources.len() <= SOURCES_MAX as usize,
        "spec.sources",
        format!("must list at most {SOURCES_MAX} sources"),
    );
    // Document ids must be unique across the knowledge base: they key its chunks in the
    // index, so two documents with one id would overwrite each other's chunks.
    let mut inline_ids: Vec<&str> = Vec::new();
    for (i, s) in spec.sources.iter().enumerate() {
        let field = format!("spec.sources[{i}]");
        c.check(
            s.sources_set() == 1,
            &field,
            "must set exactly one of inline, configMap, s3",
        );
        if let Some(inline) = &s.inline {
            inline_rules(c, &field, inline, &mut inline_ids);
        }
        if let Some(cm) = &s.config_map {
            config_map_rules(c, &field, cm);
            let earlier = spec.sources[..i]
                .iter()
                .filter_map(|s| s.config_map.as_ref())
                .any(|other| other.name == cm.name);
            c.check(
                !earlier,
                format!("{field}.configMap.name"),
                format!(
                    "must not repeat ConfigMap {} (list its keys in one source)",
                    cm.name
                ),
            );
        }
        if let Some(s3) = &s.s3 {
            s3_rules(c, &field, s3);
            let overlap = spec.sources[..i]
                .iter()
                .enumerate()
                .filter_map(|(j, s)| s.s3.as_ref().map(|o| (j, o)))
                .find(|(_, other)| prefixes_overlap(other, s3));
            if let Some((j, _)) = overlap {
                c.check(
                    false,
                    format!("{field}.s3.prefix"),
                    format!("must not overlap the prefix of sources[{j}] on the same bucket"),
                );
            }
        }
    }
}

/// Whether two S3 sources could read the same object.
fn prefixes_overlap(a: &S3Source, b: &S3Source) -> bool {
    let (pa, pb) = (
        a.prefix.as_deref().unwrap_or_default(),
        b.prefix.as_deref().unwrap_or_default(),
    );
    a.bucket == b.bucket && (pa.starts_with(pb) || pb.starts_with(pa))
}

fn inline_rules<'a>(
    c: &mut Collector,
    field: &str,
    inline: &'a InlineSource,
    seen: &mut Vec<&'a str>,
) {
    c.check(
        !inline.documents.is_empty(),
        format!("{field}.inline.documents"),
        "must list at least one document",
    );
    for (j, d) in inline.documents.iter().enumerate() {
        let doc = format!("{field}.inline.documents[{j}]");
        if let Some(id) = &d.id {
            c.check(
                is_secret_key(id),
                format!("{doc}.id"),
                "must be letters, digits, '-', '_', '.' (at most 253 characters)",
            );
        }
        c.not_blank(&d.title, &format!("{doc}.title"), "must not be empty");
        c.check(
            d.title.chars().count() <= TITLE_MAX as usize,
            format!("{doc}.title"),
            format!("must be at most {TITLE_MAX} characters"),
        );
        c.not_blank(&d.content, &format!("{doc}.content"), "must not be empty");
        if let Some(cat) = &d.category {
            c.not_blank(
                cat,
                &format!("{doc}.category"),
                "must not be empty (omit it for none)",
            );
            c.check(
                cat.chars().count() <= CATEGORY_MAX as usize,
                format!("{doc}.category"),
                format!("must be at most {CATEGORY_MAX} characters"),
            );
        }
        let id = d.document_id();
        let id_field = if d.id.is_some() { "id" } else { "title" };
        c.check(
            !seen.contains(&id),
            format!("{doc}.{id_field}"),
            format!("must not repeat document id {id:?} (a document's id defaults to its title)"),
        );
        seen.push(id);
    }
}

fn config_map_rules(c: &mut Collector, field: &str, cm: &ConfigMapSource) {
    c.check(
        is_dns_subdomain(&cm.name),
        format!("{field}.configMap.name"),
        "must be a valid ConfigMap name (lowercase DNS subdomain, at most 253 characters)",
    );
    for (k, key) in cm.keys.iter().enumerate() {
        let f = format!("{field}.configMap.keys[{k}]");
        c.check(
            is_secret_key(key),
            &f,
            "must be a valid ConfigMap key (letters, digits, '-', '_', '.'; at most 253 characters)",
        );
        c.check(
            !cm.keys[..k].contains(key),
            &f,
            format!("must not repeat {key}"),
        );
    }
}

fn s3_rules(c: &mut Collector, field: &str, s3: &S3Source) {
    c.check(
        is_s3_bucket(&s3.bucket),
        format!("{field}.s3.bucket"),
        "must be an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-'; starting and ending with a letter or digit)",
    );
    if let Some(r) = &s3.region {
        c.check(
            is_aws_region(r),
            format!("{field}.s3.region"),
            "must be an AWS region code (e.g. eu-central-1)",
        );
    }
}
