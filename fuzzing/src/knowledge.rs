//! Knowledge documents: chunking ([`chunk`]) and HTML to text ([`html`]).

use std::collections::HashSet;

use switchboard_knowledge::chunk::{MIN_CHUNK_SIZE, sha256_hex};
use switchboard_knowledge::{ChunkingConfig, Document, chunk_document};
use switchboard_operator::knowledge::s3::html;

/// `switchboard_knowledge::chunk_document` on a document whose content is the input after
/// its first two bytes, which pick the size (byte 0 × 8 characters, so small sizes are
/// common) and the overlap (byte 1 × 4).
///
/// Must hold: see [`check_chunks`].
pub fn chunk(data: &[u8]) {
    let (size, overlap, content) = match data {
        [s, o, rest @ ..] => (usize::from(*s) * 8, usize::from(*o) * 4, rest),
        _ => (0, 0, data),
    };
    let config = ChunkingConfig { size, overlap };
    let doc = Document {
        id: "fuzz/doc".into(),
        title: "Fuzz".into(),
        content: crate::text(content).into_owned(),
        category: (size % 16 == 8).then(|| "cat".into()),
    };
    check_chunks(&doc, &config);
}

/// `switchboard_operator::knowledge::s3::html::to_text` on the input as an HTML object
/// (what an S3 source does with `text/html` objects), its text then chunked with the
/// default settings as the knowledge base would; `decode_entities` on the input.
///
/// Must hold: no panic; the text has no trailing whitespace; text without `&` is unchanged
/// by `decode_entities`; the chunks as in [`check_chunks`].
pub fn html(data: &[u8]) {
    let input = crate::text(data);
    let text = html::to_text(&input);
    assert_eq!(text.trim_end(), text, "trailing whitespace");
    let decoded = html::decode_entities(&input);
    if !input.contains('&') {
        assert_eq!(decoded, input);
    }
    let doc = Document {
        id: "s3/fuzz.html".into(),
        title: "fuzz.html".into(),
        content: text,
        category: None,
    };
    check_chunks(&doc, &ChunkingConfig::default());
}

/// What every chunking must satisfy: no panic; the same input gives the same chunks;
/// every chunk is non-empty, at most `size + overlap + 1` characters (the size and
/// overlap as clamped by the chunker; one space joins the overlap), has a unique id
/// starting with the document id, and a hash that is the sha256 of its embedding text.
pub fn check_chunks(doc: &Document, config: &ChunkingConfig) {
    let chunks = chunk_document(doc, config);
    let size = config.size.max(MIN_CHUNK_SIZE);
    let overlap = config.overlap.min(size / 2);
    let mut ids = HashSet::new();
    for c in &chunks {
        assert!(!c.text.trim().is_empty(), "empty chunk {c:?}");
        let len = c.text.chars().count();
        assert!(
            len <= size + overlap + 1,
            "{len} chars > {size} + {overlap} + 1"
        );
        assert!(ids.insert(c.id.clone()), "duplicate id {}", c.id);
        assert!(c.id.starts_with(&format!("{}#", doc.id)), "id {}", c.id);
        assert_eq!(c.doc_id, doc.id);
        assert_eq!(c.hash, sha256_hex(c.embedding_text().as_bytes()));
    }
    assert_eq!(chunk_document(doc, config), chunks, "not deterministic");
}
