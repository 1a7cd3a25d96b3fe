//! The chunker on hostile input: random documents built from odd Unicode (combining
//! marks, emoji sequences, right-to-left text, CJK full stops, every kind of whitespace
//! and line break, markdown markers) at random sizes and overlaps. Seeded, so a failure
//! reproduces; property-style without a property-testing crate.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::collections::HashSet;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard_knowledge::chunk::{MIN_CHUNK_SIZE, sha256_hex};
use switchboard_knowledge::{Chunk, ChunkingConfig, Document, chunk_document};

/// Pieces a hostile document is assembled from: multi-byte characters next to the
/// places the chunker cuts (sentence ends, whitespace, headings, fences).
const ATOMS: &[&str] = &[
    "a",
    "Word",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    ".",
    ". ",
    "!",
    "?",
    "。",
    "。 ",
    "é",
    "e\u{301}",                   // e + combining acute
    "\u{1F469}\u{200D}\u{1F4BB}", // woman technologist (ZWJ sequence)
    "\u{1F1EB}\u{1F1F7}",         // flag: regional indicators
    "\u{5D0}\u{5D1}\u{5D2}",      // Hebrew
    "\u{202E}",                   // right-to-left override
    "\u{A0}",                     // no-break space
    "\u{3000}",                   // ideographic space
    "\u{2028}",                   // line separator
    "\u{85}",                     // next line
    "\u{FEFF}",                   // byte order mark
    "\u{0}",                      // NUL
    "\u{10FFFF}",                 // last scalar value
    "日本語の文章",
    "# ",
    "## Heading ##",
    "\n# Title\n",
    "\n### Ünïcödé héading\n",
    "\n```\n",
    "\n~~~\n",
    "#",
    "`",
];

fn random_text(rng: &mut StdRng, atoms: usize) -> String {
    (0..atoms)
        .map(|_| ATOMS[rng.random_range(0..ATOMS.len())])
        .collect()
}

fn check(doc: &Document, config: &ChunkingConfig, chunks: &[Chunk]) {
    let size = config.size.max(MIN_CHUNK_SIZE);
    let overlap = config.overlap.min(size / 2);
    let mut ids = HashSet::new();
    for c in chunks {
        let len = c.text.chars().count();
        assert!(!c.text.trim().is_empty(), "empty chunk from {doc:?}");
        assert!(
            len <= size.saturating_add(overlap).saturating_add(1),
            "{len} chars > {size} + {overlap} + 1 from {doc:?}"
        );
        assert!(
            ids.insert(c.id.clone()),
            "duplicate id {} from {doc:?}",
            c.id
        );
        assert!(c.id.starts_with(&format!("{}#", doc.id)));
        assert_eq!(c.hash, sha256_hex(c.embedding_text().as_bytes()));
        assert_eq!(c.doc_id, doc.id);
    }
}

#[test]
fn random_unicode_documents_never_panic_and_keep_the_invariants() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for round in 0..600 {
        let atoms = rng.random_range(0..400);
        let doc = Document {
            id: format!("doc-{round}-{}", random_text(&mut rng, 2)),
            title: random_text(&mut rng, 3),
            content: random_text(&mut rng, atoms),
            category: rng.random_bool(0.3).then(|| random_text(&mut rng, 2)),
        };
        let config = ChunkingConfig {
            size: rng.random_range(0..200),
            overlap: rng.random_range(0..150),
        };
        let chunks = chunk_document(&doc, &config);
        check(&doc, &config, &chunks);
        assert_eq!(chunks, chunk_document(&doc, &config), "not deterministic");
    }
}

#[test]
fn unbroken_runs_of_multibyte_characters_are_cut_on_char_boundaries() {
    for atom in ATOMS {
        for size in [MIN_CHUNK_SIZE, 65, 100] {
            let doc = Document {
                id: "d".into(),
                title: "t".into(),
                content: atom.repeat(700),
                category: None,
            };
            for overlap in [0, 1, 7, size / 2] {
                let config = ChunkingConfig { size, overlap };
                check(&doc, &config, &chunk_document(&doc, &config));
            }
        }
    }
}

#[test]
fn extreme_settings_are_clamped_not_overflowed() {
    let doc = Document {
        id: "d".into(),
        title: "t".into(),
        content: "Some text. ".repeat(50) + &"é".repeat(300),
        category: None,
    };
    for (size, overlap) in [
        (usize::MAX, usize::MAX),
        (usize::MAX, 0),
        (0, usize::MAX),
        (usize::MAX / 2 + 1, usize::MAX / 2),
    ] {
        let config = ChunkingConfig { size, overlap };
        let chunks = chunk_document(&doc, &config);
        assert!(!chunks.is_empty());
        check(&doc, &config, &chunks);
    }
}

/// One huge paragraph without a break must not cost time quadratic in its length (each
/// cut used to recount every remaining character).
#[test]
fn a_huge_unbroken_paragraph_is_cut_in_linear_time() {
    let doc = Document {
        id: "d".into(),
        title: "t".into(),
        content: "é".repeat(2_000_000),
        category: None,
    };
    let config = ChunkingConfig {
        size: MIN_CHUNK_SIZE,
        overlap: 0,
    };
    let start = Instant::now();
    let chunks = chunk_document(&doc, &config);
    let elapsed = start.elapsed();
    assert_eq!(chunks.len(), 2_000_000usize.div_ceil(MIN_CHUNK_SIZE));
    check(&doc, &config, &chunks);
    // Unoptimised builds on a busy machine: generous, but far below the quadratic
    // cost (minutes) of recounting 2M characters at each of 31k cuts.
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");
}
