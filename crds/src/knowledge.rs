//! The `KnowledgeBase` resource: documents a tenant's agent may answer from, where their
//! vectors live, how they are embedded, chunked and retrieved.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::{
    AWS_REGION_PATTERN, DNS_SUBDOMAIN_MAX, DNS_SUBDOMAIN_PATTERN, HTTP_URL_PATTERN,
    NOT_BLANK_PATTERN, PINECONE_INDEX_MAX, PINECONE_INDEX_PATTERN, S3_BUCKET_PATTERN,
    SECRET_KEY_PATTERN,
};
use crate::limits::{
    CATEGORY_MAX, CHUNK_SIZE_MAX, CHUNK_SIZE_MIN, DESCRIPTION_MAX, EMBEDDING_DIMENSIONS_MAX,
    MODEL_NAME_MAX, SOURCES_MAX, TITLE_MAX, TOP_K_MAX,
};
use crate::secret::SecretRef;

/// The local embedder's model (run in-process; the lookup never leaves the pod).
pub const LOCAL_EMBEDDER_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Dimensions of the local embedder's vectors.
pub const LOCAL_EMBEDDER_DIMENSIONS: u32 = 384;
/// Default model of the `openai` embedder.
pub const DEFAULT_OPENAI_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// Default base URL of the `openai` embedder (`POST {baseUrl}/embeddings`).
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Most dimensions pgvector can index with HNSW (type `vector`).
pub const PGVECTOR_MAX_DIMENSIONS: u32 = 2000;

/// OpenAI embedding models whose dimensions are known without asking: (model, native
/// dimensions, whether it takes the `dimensions` request parameter to shorten vectors).
const KNOWN_OPENAI_MODELS: &[(&str, u32, bool)] = &[
    ("text-embedding-3-small", 1536, true),
    ("text-embedding-3-large", 3072, true),
    ("text-embedding-ada-002", 1536, false),
];

/// Desired state of one knowledge base.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "voice.switchboard.dev",
    version = "v1alpha1",
    kind = "KnowledgeBase",
    namespaced,
    status = "KnowledgeBaseStatus",
    derive = "PartialEq",
    shortname = "kb",
    category = "switchboard",
    doc = "Documents a tenant's voice agent may answer from: their sources, the vector backend (pgvector or Pinecone), the embedder, chunking and retrieval settings.",
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Backend","type":"string","jsonPath":".spec.backend.type"}"#,
    printcolumn = r#"{"name":"Documents","type":"integer","jsonPath":".status.documents"}"#,
    printcolumn = r#"{"name":"Chunks","type":"integer","jsonPath":".status.chunks"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(
    transform = crate::schema::k8s_number_formats,
    extend("x-kubernetes-validations" = [{
        "rule": "self.backend.type != 'pgvector' || self.embedder.type != 'openai' || !has(self.embedder.openai) || (has(self.embedder.openai.dimensions) ? self.embedder.openai.dimensions <= 2000 : self.embedder.openai.model != 'text-embedding-3-large')",
        "message": "pgvector indexes at most 2000 dimensions: set embedder.openai.dimensions to 2000 or fewer",
        "fieldPath": ".embedder.openai.dimensions"
    }])
)]
pub struct KnowledgeBaseSpec {
    /// Name of the `VoiceTenant` (same namespace) this knowledge base belongs to.
    /// Immutable.
    #[schemars(
        regex(pattern = DNS_SUBDOMAIN_PATTERN),
        length(max = DNS_SUBDOMAIN_MAX),
        extend("x-kubernetes-validations" = [{
            "rule": "self == oldSelf",
            "message": "tenant is immutable"
        }])
    )]
    pub tenant: String,
    /// What the knowledge base covers, in a sentence; tells the model when to search it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = DESCRIPTION_MAX))]
    pub description: Option<String>,
    /// Where the vectors are stored and searched.
    #[serde(default)]
    pub backend: BackendSpec,
    /// What turns text into vectors, at ingestion and for each query.
    #[serde(default)]
    pub embedder: EmbedderSpec,
    /// How documents are cut into chunks.
    #[serde(default)]
    pub chunking: ChunkingSpec,
    /// How many passages a lookup returns, and how close they must be.
    #[serde(default)]
    pub retrieval: RetrievalSpec,
    /// Where the documents come from (at least one source).
    #[schemars(length(min = 1, max = SOURCES_MAX))]
    pub sources: Vec<SourceSpec>,
}

/// The vector store of a knowledge base.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'pinecone' || has(self.pinecone)",
        "message": "pinecone must be set when type is pinecone",
        "fieldPath": ".pinecone"
    },
    {
        "rule": "self.type == 'pinecone' || !has(self.pinecone)",
        "message": "pinecone is only allowed with type pinecone",
        "fieldPath": ".pinecone"
    }
]))]
pub struct BackendSpec {
    /// `pgvector` (a table in the tenant's database schema) or `pinecone`.
    #[serde(default, rename = "type")]
    pub kind: BackendKind,
    /// Pinecone settings; required with type `pinecone`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinecone: Option<PineconeSpec>,
}

/// Which vector store holds the knowledge base.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A pgvector table (HNSW, cosine) in the tenant's schema of the shared Postgres.
    #[default]
    Pgvector,
    /// A Pinecone serverless index.
    Pinecone,
}

/// A Pinecone serverless index.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PineconeSpec {
    /// Index name; created (dimension of the embedder, cosine metric) when missing.
    #[schemars(
        regex(pattern = PINECONE_INDEX_PATTERN),
        length(max = PINECONE_INDEX_MAX)
    )]
    pub index: String,
    /// Cloud the index is created in.
    pub cloud: PineconeCloud,
    /// Region the index is created in (`us-east-1`, `us-central1`, `eastus2`, …).
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub region: String,
    /// API key, sent as the `Api-Key` header.
    pub api_key: SecretRef,
    /// Namespace inside the index. Absent: the knowledge base's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub namespace: Option<String>,
    /// Control-plane URL override (the simulator, Pinecone Local). Absent:
    /// `https://api.pinecone.io`. In a cluster its host must be one the operator allows
    /// (`--pinecone-hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HTTP_URL_PATTERN))]
    pub api_url: Option<String>,
}

impl PineconeSpec {
    /// The namespace to use for the knowledge base named `kb_name`.
    pub fn namespace_or<'a>(&'a self, kb_name: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(kb_name)
    }
}

/// Cloud of a Pinecone serverless index.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PineconeCloud {
    /// Amazon Web Services.
    Aws,
    /// Google Cloud.
    Gcp,
    /// Microsoft Azure.
    Azure,
}

/// The embedder: the same one embeds the documents and every query.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'openai' || has(self.openai)",
        "message": "openai must be set when type is openai",
        "fieldPath": ".openai"
    },
    {
        "rule": "self.type == 'openai' || !has(self.openai)",
        "message": "openai is only allowed with type openai",
        "fieldPath": ".openai"
    }
]))]
pub struct EmbedderSpec {
    /// `local` (all-MiniLM-L6-v2 in the pod, 384 dimensions) or `openai` (any
    /// OpenAI-compatible embeddings endpoint).
    #[serde(default, rename = "type")]
    pub kind: EmbedderKind,
    /// OpenAI-compatible settings; required with type `openai`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<OpenAiEmbedderSpec>,
}

impl EmbedderSpec {
    /// Length of the vectors this embedder produces: 384 for `local`; for `openai` the
    /// `dimensions` set, else the model's native length. `None` only for a spec that fails
    /// validation (an unknown model without `dimensions`, or `openai` settings missing).
    pub fn dimensions(&self) -> Option<u32> {
        match self.kind {
            EmbedderKind::Local => Some(LOCAL_EMBEDDER_DIMENSIONS),
            EmbedderKind::Openai => self
                .openai
                .as_ref()
                .and_then(OpenAiEmbedderSpec::dimensions),
        }
    }
}

/// Which embedder a knowledge base uses.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// all-MiniLM-L6-v2, in-process ([`LOCAL_EMBEDDER_MODEL`], 384 dimensions).
    #[default]
    Local,
    /// An OpenAI-compatible `POST {baseUrl}/embeddings` endpoint.
    Openai,
}

/// An OpenAI-compatible embeddings endpoint.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.dimensions) || self.model in ['text-embedding-3-small', 'text-embedding-3-large', 'text-embedding-ada-002']",
        "message": "dimensions must be set for models other than text-embedding-3-small, text-embedding-3-large and text-embedding-ada-002",
        "fieldPath": ".dimensions"
    },
    {
        "rule": "!has(self.dimensions) || (self.model == 'text-embedding-3-small' ? self.dimensions <= 1536 : self.model == 'text-embedding-3-large' ? self.dimensions <= 3072 : self.model != 'text-embedding-ada-002')",
        "message": "dimensions must not exceed the model's own (text-embedding-3-small 1536, text-embedding-3-large 3072; text-embedding-ada-002 takes none)",
        "fieldPath": ".dimensions"
    }
]))]
pub struct OpenAiEmbedderSpec {
    /// Embedding model.
    #[serde(default = "default_embedding_model")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = MODEL_NAME_MAX))]
    pub model: String,
    /// Length of the vectors; sent as the `dimensions` request parameter when set.
    /// Required for models other than OpenAI's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = EMBEDDING_DIMENSIONS_MAX))]
    pub dimensions: Option<u32>,
    /// API key, sent as `Authorization: Bearer`.
    pub api_key: SecretRef,
    /// Base URL of the endpoint; requests go to `{baseUrl}/embeddings`. In a cluster its
    /// host must be one the operator allows (`--openai-hosts`).
    #[serde(default = "default_base_url")]
    #[schemars(regex(pattern = HTTP_URL_PATTERN))]
    pub base_url: String,
}

impl OpenAiEmbedderSpec {
    /// Length of the vectors: `dimensions` if set, else the native length of a known
    /// OpenAI model; `None` for another model without `dimensions`.
    pub fn dimensions(&self) -> Option<u32> {
        self.dimensions
            .or_else(|| known_model(&self.model).map(|(native, _)| native))
    }
}

/// `(native dimensions, takes the dimensions parameter)` of a known OpenAI model.
pub(crate) fn known_model(model: &str) -> Option<(u32, bool)> {
    KNOWN_OPENAI_MODELS
        .iter()
        .find(|m| m.0 == model)
        .map(|&(_, native, shortens)| (native, shortens))
}

fn default_embedding_model() -> String {
    DEFAULT_OPENAI_EMBEDDING_MODEL.into()
}
fn default_base_url() -> String {
    DEFAULT_OPENAI_BASE_URL.into()
}

/// How documents are cut into chunks, in characters (Unicode scalar values). Chunks
/// follow headings and paragraphs; a paragraph longer than `size` is split, and
/// consecutive chunks of one document share `overlap` characters.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.overlap * 2 <= self.size",
    "message": "overlap must be at most half of size",
    "fieldPath": ".overlap"
}]))]
pub struct ChunkingSpec {
    /// Longest chunk, in characters (100 to 8000).
    #[serde(default = "default_chunk_size")]
    #[schemars(range(min = CHUNK_SIZE_MIN, max = CHUNK_SIZE_MAX))]
    pub size: u32,
    /// Characters shared by consecutive chunks of a document (at most half of `size`).
    #[serde(default = "default_chunk_overlap")]
    pub overlap: u32,
}

impl Default for ChunkingSpec {
    fn default() -> Self {
        Self {
            size: default_chunk_size(),
            overlap: default_chunk_overlap(),
        }
    }
}

// About 120 word pieces of English: what MiniLM was trained on, so the local embedder sees
// the whole chunk.
fn default_chunk_size() -> u32 {
    500
}
fn default_chunk_overlap() -> u32 {
    50
}

/// What a lookup returns.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrievalSpec {
    /// Most passages returned per lookup (1 to 20).
    #[serde(default = "default_top_k")]
    #[schemars(range(min = 1, max = TOP_K_MAX))]
    pub top_k: u32,
    /// Passages less similar than this (cosine similarity, 0.0 to 1.0) are left out.
    #[serde(default = "default_min_score")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_score: f64,
}

impl Default for RetrievalSpec {
    fn default() -> Self {
        Self {
            top_k: default_top_k(),
            min_score: default_min_score(),
        }
    }
}

fn default_top_k() -> u32 {
    4
}
fn default_min_score() -> f64 {
    0.3
}

/// One source of documents. Exactly one of the three fields must be set.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.inline) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.s3) ? 1 : 0) == 1",
    "message": "must set exactly one of inline, configMap, s3"
}]))]
pub struct SourceSpec {
    /// Documents written in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<InlineSource>,
    /// Keys of a ConfigMap in the knowledge base's namespace, one document each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    /// Text, Markdown and HTML objects under an S3 prefix, one document each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Source>,
}

impl SourceSpec {
    /// How many of the alternative sources are set (valid sources set exactly one).
    pub fn sources_set(&self) -> usize {
        usize::from(self.inline.is_some())
            + usize::from(self.config_map.is_some())
            + usize::from(self.s3.is_some())
    }
}

/// Documents written in the manifest.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineSource {
    /// The documents (at least one).
    #[schemars(length(min = 1))]
    pub documents: Vec<InlineDocument>,
}

/// One document written in the manifest.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineDocument {
    /// Stable identity of the document (letters, digits, `-`, `_`, `.`). Absent: the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(max = DNS_SUBDOMAIN_MAX))]
    pub id: Option<String>,
    /// Title, embedded with every chunk of the document and returned with its passages.
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = TITLE_MAX))]
    pub title: String,
    /// The text (Markdown headings and paragraphs guide the chunking).
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub content: String,
    /// Free-form category (`hours`, `billing`, …), returned with the passages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = CATEGORY_MAX))]
    pub category: Option<String>,
}

impl InlineDocument {
    /// The document's id in the index: `id`, else the title.
    pub fn document_id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.title)
    }
}

/// Keys of a ConfigMap, each one document.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// The ConfigMap's name (same namespace as the knowledge base).
    #[schemars(regex(pattern = DNS_SUBDOMAIN_PATTERN), length(max = DNS_SUBDOMAIN_MAX))]
    pub name: String,
    /// Keys to read. Absent or empty: every key of `data`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        inner(regex(pattern = SECRET_KEY_PATTERN), length(max = DNS_SUBDOMAIN_MAX)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub keys: Vec<String>,
}

impl ConfigMapSource {
    /// The id of the document read from `key`: `configmap/{name}/{key}`.
    pub fn document_id(&self, key: &str) -> String {
        format!("configmap/{}/{key}", self.name)
    }
}

/// Objects under an S3 prefix, each one document. Objects ending in `.txt`, `.md`,
/// `.markdown`, `.html` or `.htm` are read; others are skipped. Credentials come from the
/// AWS default chain (IRSA on EKS).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Source {
    /// Bucket name.
    #[schemars(regex(pattern = S3_BUCKET_PATTERN))]
    pub bucket: String,
    /// Key prefix (`faq/`). Absent: the whole bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The bucket's region (`eu-central-1`). Absent: the AWS default chain's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = AWS_REGION_PATTERN))]
    pub region: Option<String>,
}

impl S3Source {
    /// The id of the document read from object `key`: `s3://{bucket}/{key}`.
    pub fn document_id(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Whether an object of that key is a document (text, Markdown or HTML).
    pub fn is_document_key(key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        [".txt", ".md", ".markdown", ".html", ".htm"]
            .iter()
            .any(|ext| lower.ends_with(ext))
    }
}

/// Observed state, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::k8s_number_formats)]
pub struct KnowledgeBaseStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Documents in the index after the last sync.
    #[serde(default)]
    pub documents: u32,
    /// Chunks in the index after the last sync.
    #[serde(default)]
    pub chunks: u32,
    /// When the last successful sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<Time>,
    /// Hash of every source's content at the last sync (changes when any document does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
