//! Pinecone's REST shapes (API version [`super::API_VERSION`]) as far as the store uses
//! them: the control plane's index model and create request, the data plane's upsert,
//! query, delete, list, fetch and stats bodies, and both error body shapes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// `GET /indexes/{name}` and `POST /indexes` answer: the index model.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IndexModel {
    pub name: String,
    /// Absent on sparse indexes.
    #[serde(default)]
    pub dimension: Option<usize>,
    #[serde(default)]
    pub metric: Option<String>,
    /// Data-plane host without a scheme, e.g. `kb-abc123.svc.aped-4627-b74a.pinecone.io`.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub status: IndexStatus,
}

/// Readiness of an index.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct IndexStatus {
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub state: String,
}

/// `POST /indexes` body for a serverless dense index.
#[derive(Debug, Serialize)]
pub(crate) struct CreateIndex<'a> {
    pub name: &'a str,
    pub dimension: usize,
    pub metric: &'a str,
    pub vector_type: &'a str,
    pub spec: CreateSpec<'a>,
}

/// The `spec` of [`CreateIndex`].
#[derive(Debug, Serialize)]
pub(crate) struct CreateSpec<'a> {
    pub serverless: Serverless<'a>,
}

/// Where a serverless index lives.
#[derive(Debug, Serialize)]
pub(crate) struct Serverless<'a> {
    pub cloud: &'a str,
    pub region: &'a str,
}

/// One record of an upsert, serialised on its own so batches can be cut by size.
#[derive(Debug, Serialize)]
pub(crate) struct UpsertVector<'a> {
    pub id: &'a str,
    pub values: &'a [f32],
    pub metadata: ChunkMetadata<'a>,
}

/// What the store keeps beside each vector, so a search needs no second round trip and
/// ingestion can compare fingerprints.
#[derive(Debug, Serialize)]
pub(crate) struct ChunkMetadata<'a> {
    pub doc_id: &'a str,
    pub title: &'a str,
    pub text: &'a str,
    pub hash: &'a str,
}

/// Metadata as read back (every field optional: other writers may share the index).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StoredMetadata {
    #[serde(default)]
    pub doc_id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub hash: Option<String>,
}

/// `POST /query` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryRequest<'a> {
    pub namespace: &'a str,
    pub vector: &'a [f32],
    pub top_k: usize,
    pub include_metadata: bool,
    pub include_values: bool,
}

/// `POST /query` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct QueryResponse {
    #[serde(default)]
    pub matches: Vec<Match>,
}

/// One query match.
#[derive(Debug, Deserialize)]
pub(crate) struct Match {
    pub id: String,
    #[serde(default)]
    pub score: f32,
    #[serde(default)]
    pub metadata: Option<StoredMetadata>,
}

/// `POST /vectors/delete` body: either `ids` or `deleteAll`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteRequest<'a> {
    pub namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delete_all: bool,
}

/// `GET /vectors/list` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ListResponse {
    #[serde(default)]
    pub vectors: Vec<ListItem>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// One listed id.
#[derive(Debug, Deserialize)]
pub(crate) struct ListItem {
    pub id: String,
}

/// Where the next page starts; absent on the last page.
#[derive(Debug, Deserialize)]
pub(crate) struct Pagination {
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /vectors/fetch` answer: records by id (ids not found are absent).
#[derive(Debug, Deserialize)]
pub(crate) struct FetchResponse {
    #[serde(default)]
    pub vectors: HashMap<String, FetchedVector>,
}

/// One fetched record (its values are not needed and not kept).
#[derive(Debug, Deserialize)]
pub(crate) struct FetchedVector {
    #[serde(default)]
    pub metadata: Option<StoredMetadata>,
}

/// `POST /describe_index_stats` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatsResponse {
    #[serde(default)]
    pub namespaces: HashMap<String, NamespaceStats>,
    #[serde(default)]
    pub dimension: Option<usize>,
    #[serde(default)]
    pub total_vector_count: u64,
}

/// Per-namespace count.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NamespaceStats {
    #[serde(default)]
    pub vector_count: u64,
}

/// The human part of an error answer. Pinecone uses two shapes: the control plane's
/// `{"error": {"code": "NOT_FOUND", "message": …}, "status": 404}` and the data plane's
/// gRPC-style `{"code": 3, "message": …, "details": []}`; some gateways answer plain text.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Wrapped {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: serde_json::Value,
        #[serde(default)]
        message: String,
    }
    let described = |code: &serde_json::Value, message: &str| match code {
        serde_json::Value::String(c) if !c.is_empty() => format!("{c}: {message}"),
        _ => message.to_owned(),
    };
    if let Ok(w) = serde_json::from_slice::<Wrapped>(body) {
        return described(&w.error.code, &w.error.message);
    }
    if let Ok(i) = serde_json::from_slice::<Inner>(body)
        && !i.message.is_empty()
    {
        return described(&i.code, &i.message);
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let text = text.trim().trim_matches('"');
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes_and_text() {
        assert_eq!(
            error_message(
                br#"{"error":{"code":"NOT_FOUND","message":"Resource kb not found"},"status":404}"#
            ),
            "NOT_FOUND: Resource kb not found"
        );
        assert_eq!(
            error_message(br#"{"code":3,"message":"Vector dimension 3 does not match the dimension of the index 8","details":[]}"#),
            "Vector dimension 3 does not match the dimension of the index 8"
        );
        assert_eq!(error_message(b"\"Unauthorized\""), "Unauthorized");
        assert_eq!(error_message(b""), "(empty body)");
    }

    #[test]
    fn request_shapes() {
        let ids = vec!["a".to_owned()];
        let d = DeleteRequest {
            namespace: "kb",
            ids: Some(&ids),
            delete_all: false,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"namespace":"kb","ids":["a"]}"#
        );
        let d = DeleteRequest {
            namespace: "kb",
            ids: None,
            delete_all: true,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"namespace":"kb","deleteAll":true}"#
        );
        let q = QueryRequest {
            namespace: "kb",
            vector: &[0.5],
            top_k: 3,
            include_metadata: true,
            include_values: false,
        };
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"namespace":"kb","vector":[0.5],"topK":3,"includeMetadata":true,"includeValues":false}"#
        );
    }
}
