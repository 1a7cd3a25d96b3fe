//! The incremental-ingestion scenario every vector store passes (issue 4 §6): ingest →
//! update one document → only its chunks re-embedded → delete a document → its chunks
//! gone; a re-run with no change embeds nothing; other knowledge bases untouched; a model
//! switch re-embeds everything.

use std::collections::HashSet;

use switchboard_knowledge::{
    ChunkingConfig, Document, Embedder, VectorStore, chunk_document, ingest,
};

use super::CountingEmbedder;

pub const KB: &str = "shop";

pub fn chunking() -> ChunkingConfig {
    ChunkingConfig {
        size: 200,
        overlap: 40,
    }
}

pub fn docs() -> Vec<Document> {
    vec![
        Document {
            id: "hours".into(),
            title: "Opening hours".into(),
            content: "# Weekdays\nMonday to Friday 8am to 6pm.\n\n# Weekend\nSaturday 9am to 1pm. Closed on Sunday.".into(),
            category: Some("general".into()),
        },
        Document {
            id: "returns".into(),
            title: "Returns".into(),
            content: "Unused items can be returned within 30 days with a receipt. ".repeat(8),
            category: None,
        },
        Document {
            id: "parking".into(),
            title: "Parking".into(),
            content: "Free parking behind the building.".into(),
            category: None,
        },
    ]
}

pub fn ids_of(doc: &Document) -> HashSet<String> {
    chunk_document(doc, &chunking())
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// The three steps of the issue, plus the no-change re-run and model switch, on any store.
pub async fn incremental_steps(store: &dyn VectorStore) {
    let embedder = CountingEmbedder::default();
    let mut docs = docs();
    let total: usize = docs.iter().map(|d| ids_of(d).len()).sum();
    assert!(
        total >= 5,
        "fixture should make several chunks, made {total}"
    );

    // 1. First ingestion embeds everything.
    let first = ingest(KB, &docs, &chunking(), &embedder, store)
        .await
        .unwrap();
    assert_eq!(first.documents, 3);
    assert_eq!(first.chunks, total);
    assert_eq!(first.embedded, total);
    assert_eq!((first.deleted, first.unchanged), (0, 0));
    assert_eq!(embedder.take().0, total);
    assert_eq!(store.list_hashes(KB).await.unwrap().len(), total);

    // Nothing changed: nothing embedded, same content hash.
    let again = ingest(KB, &docs, &chunking(), &embedder, store)
        .await
        .unwrap();
    assert_eq!(
        (again.embedded, again.deleted, again.unchanged),
        (0, 0, total)
    );
    assert_eq!(again.content_hash, first.content_hash);
    assert_eq!(embedder.take().0, 0);

    // 2. Update one section of one document: only that chunk is re-embedded.
    docs[0].content = docs[0]
        .content
        .replace("Saturday 9am to 1pm", "Saturday 10am to 4pm");
    let updated = ingest(KB, &docs, &chunking(), &embedder, store)
        .await
        .unwrap();
    let (n, seen) = embedder.take();
    assert_eq!(updated.embedded, 1);
    assert_eq!(n, 1);
    assert!(seen[0].contains("Saturday 10am to 4pm"), "{seen:?}");
    assert!(seen[0].starts_with("Opening hours (general) > Weekend\n"));
    assert_eq!(updated.unchanged, total - 1);
    assert_ne!(updated.content_hash, first.content_hash);
    let q = CountingEmbedder::vector(&seen[0]);
    let hits = store.search(KB, &q, 1, 0.0).await.unwrap();
    assert_eq!(hits[0].doc_id, "hours");
    assert!(hits[0].text.contains("10am to 4pm"));
    assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);

    // 3. Delete a document: its chunks are gone, nothing embedded.
    let returns_ids = ids_of(&docs[1]);
    docs.remove(1);
    let deleted = ingest(KB, &docs, &chunking(), &embedder, store)
        .await
        .unwrap();
    assert_eq!(deleted.embedded, 0);
    assert_eq!(deleted.deleted, returns_ids.len());
    assert_eq!(embedder.take().0, 0);
    let stored = store.list_hashes(KB).await.unwrap();
    assert_eq!(stored.len(), total - returns_ids.len());
    assert!(stored.keys().all(|id| !returns_ids.contains(id)));
    let all = store.search(KB, &q, 100, -1.0).await.unwrap();
    assert_eq!(all.len(), stored.len());
    assert!(all.iter().all(|h| h.doc_id != "returns"));

    // Another knowledge base in the same store is untouched by all of this.
    let other = ingest("other", &docs[..1], &chunking(), &embedder, store)
        .await
        .unwrap();
    assert_eq!(other.embedded, ids_of(&docs[0]).len());
    embedder.take();
    let gone = ingest("other", &[], &chunking(), &embedder, store)
        .await
        .unwrap();
    assert_eq!(gone.deleted, other.chunks);
    assert_eq!(store.list_hashes(KB).await.unwrap().len(), stored.len());

    // A different model: everything re-embedded.
    let other_model = RenamedEmbedder(CountingEmbedder::default());
    let switched = ingest(KB, &docs, &chunking(), &other_model, store)
        .await
        .unwrap();
    assert_eq!(switched.embedded, switched.chunks);
}

/// The counting embedder under another model id.
pub struct RenamedEmbedder(pub CountingEmbedder);

impl Embedder for RenamedEmbedder {
    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<Vec<f32>>, switchboard_knowledge::EmbedError>>
    {
        self.0.embed(texts)
    }

    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }

    fn model_id(&self) -> &str {
        "fake:other"
    }
}
