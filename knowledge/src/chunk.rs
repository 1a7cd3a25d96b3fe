//! Splitting documents into passages small enough to embed and to read back to a caller.
//!
//! Sizes are counted in **characters** (Unicode scalar values), not model tokens: the
//! chunker runs before any embedder is chosen and must give the same chunks whatever
//! model indexes them. English prose runs at roughly 4 characters per MiniLM word piece,
//! so the default 800 characters stays under the model's 256-token window.
//!
//! Markdown headings (`#` … `######`, outside code fences) start new sections: a chunk
//! never spans two sections, and its heading path ("Hours > Weekend") is embedded with it
//! so a passage keeps its context. Inside a section, paragraphs (blank-line separated;
//! a fenced code block counts as one paragraph) are packed greedily up to the size; a
//! paragraph that alone exceeds it is cut at sentence ends, then at spaces, then anywhere.
//! Consecutive chunks of one section share up to `overlap` characters, cut at a word
//! boundary, so a fact that straddles a cut is still whole in one of them.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How documents are cut into chunks. Sizes are in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkingConfig {
    /// Largest chunk body in characters, before the overlap carried over from the
    /// previous chunk is prepended (the title/heading line added for embedding is extra
    /// too). At least [`MIN_CHUNK_SIZE`].
    pub size: usize,
    /// Characters repeated from the end of one chunk at the start of the next, within a
    /// section. Clamped to half of `size`.
    pub overlap: usize,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        Self {
            size: 800,
            overlap: 120,
        }
    }
}

/// Smallest chunk size accepted: below this, sentences shatter into meaningless bits.
pub const MIN_CHUNK_SIZE: usize = 64;

/// A source document as the operator or the laptop loader hands it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Stable identifier within the knowledge base (e.g. `inline/opening-hours`,
    /// `configmap/faq/hours.md`, `s3/docs/menu.html`). Chunk ids derive from it.
    pub id: String,
    /// Human title, embedded with every chunk and returned with hits.
    pub title: String,
    /// Plain text or markdown.
    pub content: String,
    /// Optional grouping (as the RAG editor's categories); embedded with every chunk.
    #[serde(default)]
    pub category: Option<String>,
}

/// One passage of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// `{doc_id}#{8 hex of the heading path's sha256}-{n}`: stable while the chunk's own
    /// section keeps its heading and the chunks before it in that section keep their
    /// count, whatever happens to other sections or documents.
    pub id: String,
    /// The document this chunk comes from.
    pub doc_id: String,
    /// The document's title.
    pub title: String,
    /// Headings from the document's top to this chunk's section, outermost first.
    pub headings: Vec<String>,
    /// The passage itself (what a caller is read back).
    pub text: String,
    /// sha256 hex of [`Chunk::embedding_text`]: changes exactly when what gets embedded
    /// changes.
    pub hash: String,
}

impl Chunk {
    /// What the embedder sees: title (and category), heading path, then the passage.
    pub fn embedding_text(&self) -> String {
        embedding_text(&self.title, &self.headings, &self.text)
    }
}

fn embedding_text(title: &str, headings: &[String], text: &str) -> String {
    let mut out = String::with_capacity(title.len() + text.len() + 32);
    out.push_str(title);
    for h in headings {
        out.push_str(" > ");
        out.push_str(h);
    }
    out.push('\n');
    out.push_str(text);
    out
}

/// sha256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Cuts `doc` into chunks. Empty documents give no chunks.
pub fn chunk_document(doc: &Document, config: &ChunkingConfig) -> Vec<Chunk> {
    let size = config.size.max(MIN_CHUNK_SIZE);
    let overlap = config.overlap.min(size / 2);
    let title = match &doc.category {
        Some(c) if !c.trim().is_empty() => format!("{} ({})", doc.title.trim(), c.trim()),
        _ => doc.title.trim().to_owned(),
    };
    let mut out = Vec::new();
    // Sections that repeat a heading path continue its numbering, so ids stay unique.
    let mut next_n: HashMap<String, usize> = HashMap::new();
    for section in sections(&doc.content) {
        let bodies = pack(&section.paragraphs, size, overlap);
        let path_hash = sha256_hex(section.headings.join("\u{1f}").as_bytes());
        for text in bodies {
            let counter = next_n.entry(path_hash.clone()).or_insert(0);
            let n = *counter;
            *counter += 1;
            let mut id = String::with_capacity(doc.id.len() + 16);
            let _ = write!(id, "{}#{}-{}", doc.id, &path_hash[..8], n);
            let hash = sha256_hex(embedding_text(&title, &section.headings, &text).as_bytes());
            out.push(Chunk {
                id,
                doc_id: doc.id.clone(),
                title: title.clone(),
                headings: section.headings.clone(),
                text,
                hash,
            });
        }
    }
    out
}

struct Section {
    headings: Vec<String>,
    paragraphs: Vec<String>,
}

/// ATX heading level and text, if `line` is one (`# Title`, up to three leading spaces).
fn heading(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim_end();
    Some((level, text))
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// Splits markdown into sections at headings and each section into paragraphs.
fn sections(content: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    // (level, text) of the open headings, outermost first.
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_fence = false;

    let flush_paragraph = |current: &mut String, paragraphs: &mut Vec<String>| {
        let p = current.trim();
        if !p.is_empty() {
            paragraphs.push(p.to_owned());
        }
        current.clear();
    };

    for line in content.lines() {
        if in_fence {
            current.push_str(line);
            current.push('\n');
            if is_fence(line) {
                in_fence = false;
                flush_paragraph(&mut current, &mut paragraphs);
            }
            continue;
        }
        if is_fence(line) {
            flush_paragraph(&mut current, &mut paragraphs);
            in_fence = true;
            current.push_str(line);
            current.push('\n');
            continue;
        }
        if let Some((level, text)) = heading(line) {
            flush_paragraph(&mut current, &mut paragraphs);
            if !paragraphs.is_empty() {
                out.push(Section {
                    headings: stack.iter().map(|(_, t)| t.clone()).collect(),
                    paragraphs: std::mem::take(&mut paragraphs),
                });
            }
            while stack.last().is_some_and(|(l, _)| *l >= level) {
                stack.pop();
            }
            stack.push((level, text.to_owned()));
            continue;
        }
        if line.trim().is_empty() {
            flush_paragraph(&mut current, &mut paragraphs);
        } else {
            current.push_str(line.trim_end());
            current.push('\n');
        }
    }
    flush_paragraph(&mut current, &mut paragraphs);
    if !paragraphs.is_empty() {
        out.push(Section {
            headings: stack.iter().map(|(_, t)| t.clone()).collect(),
            paragraphs,
        });
    }
    out
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Byte index just after the first `n` characters of `s` (or its length).
fn byte_at_char(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// Cuts a paragraph longer than `size` into pieces of at most `size` characters,
/// preferring sentence ends, then whitespace.
fn split_long(paragraph: &str, size: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = paragraph.trim();
    loop {
        // Only the first `size + 1` characters are looked at: recounting the whole rest at
        // every cut made one huge unbroken paragraph cost time quadratic in its length.
        let limit = byte_at_char(rest, size);
        if limit == rest.len() {
            break;
        }
        let window = &rest[..limit];
        // Never cut in the first third: tiny fragments carry no meaning.
        let floor = byte_at_char(rest, size / 3);
        let sentence_end = window
            .char_indices()
            .filter(|&(i, c)| {
                i >= floor
                    && matches!(c, '.' | '!' | '?' | '。')
                    && rest[i + c.len_utf8()..].starts_with(char::is_whitespace)
            })
            .map(|(i, c)| i + c.len_utf8())
            .next_back();
        let space = window
            .char_indices()
            .filter(|&(i, c)| i >= floor && c.is_whitespace())
            .map(|(i, _)| i)
            .next_back();
        let cut = sentence_end.or(space).unwrap_or(limit);
        let piece = rest[..cut].trim();
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// The last `overlap` characters or fewer of `text`, starting at a word boundary.
fn tail(text: &str, overlap: usize) -> &str {
    if overlap == 0 {
        return "";
    }
    let total = char_len(text);
    if total <= overlap {
        return text;
    }
    let start = byte_at_char(text, total - overlap);
    let window = &text[start..];
    // Start after the first whitespace so the overlap begins on a whole word.
    match window.find(char::is_whitespace) {
        Some(i) => window[i..].trim_start(),
        None => "",
    }
}

/// Packs paragraphs into chunk bodies of at most `size` characters plus overlap.
fn pack(paragraphs: &[String], size: usize, overlap: usize) -> Vec<String> {
    let pieces: Vec<String> = paragraphs
        .iter()
        .flat_map(|p| {
            if char_len(p) > size {
                split_long(p, size)
            } else {
                vec![p.clone()]
            }
        })
        .collect();

    let mut bodies: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0usize;
    for piece in pieces {
        let piece_len = char_len(&piece);
        let joined_len = if current.is_empty() {
            piece_len
        } else {
            current_len + 2 + piece_len
        };
        if !current.is_empty() && joined_len > size {
            bodies.push(std::mem::take(&mut current));
            current_len = 0;
        }
        if !current.is_empty() {
            current.push_str("\n\n");
            current_len += 2;
        }
        current.push_str(&piece);
        current_len += piece_len;
    }
    if !current.is_empty() {
        bodies.push(current);
    }

    if overlap == 0 || bodies.len() < 2 {
        return bodies;
    }
    let mut out = Vec::with_capacity(bodies.len());
    out.push(bodies[0].clone());
    for pair in bodies.windows(2) {
        let carried = tail(&pair[0], overlap);
        if carried.is_empty() {
            out.push(pair[1].clone());
        } else {
            out.push(format!("{carried} {}", pair[1]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, content: &str) -> Document {
        Document {
            id: id.into(),
            title: "Guide".into(),
            content: content.into(),
            category: None,
        }
    }

    fn cfg(size: usize, overlap: usize) -> ChunkingConfig {
        ChunkingConfig { size, overlap }
    }

    #[test]
    fn short_paragraphs_share_a_chunk() {
        let chunks = chunk_document(&doc("d", "First para.\n\nSecond para."), &cfg(200, 0));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "First para.\n\nSecond para.");
        assert!(chunks[0].headings.is_empty());
    }

    #[test]
    fn headings_start_new_chunks_and_form_a_path() {
        let md = "Intro text.\n\n# Hours\n\n## Weekend\nSaturday 9-5.\n\n## Weekdays\nMon-Fri 8-6.\n\n# Parking\nFree lot behind the shop.";
        let chunks = chunk_document(&doc("d", md), &cfg(500, 50));
        let paths: Vec<String> = chunks.iter().map(|c| c.headings.join(" > ")).collect();
        assert_eq!(
            paths,
            vec!["", "Hours > Weekend", "Hours > Weekdays", "Parking"]
        );
        assert_eq!(chunks[1].text, "Saturday 9-5.");
        assert_eq!(
            chunks[1].embedding_text(),
            "Guide > Hours > Weekend\nSaturday 9-5."
        );
    }

    #[test]
    fn hashes_in_code_fences_are_not_headings() {
        let md = "# Setup\n```sh\n# not a heading\necho hi\n```\nAfter.";
        let chunks = chunk_document(&doc("d", md), &cfg(500, 0));
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].text.contains("# not a heading"));
        assert_eq!(chunks[0].headings, vec!["Setup".to_owned()]);
    }

    #[test]
    fn chunks_respect_size_and_overlap() {
        let para = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        let chunks = chunk_document(&doc("d", &para), &cfg(300, 60));
        assert!(chunks.len() >= 6, "{}", chunks.len());
        for c in &chunks {
            assert!(char_len(&c.text) <= 300 + 60 + 1, "{}", char_len(&c.text));
        }
        for pair in chunks.windows(2) {
            let prev_end: String = pair[0].text.chars().rev().take(20).collect();
            let prev_end: String = prev_end.chars().rev().collect();
            let head: String = pair[1].text.chars().take(80).collect();
            assert!(
                head.contains(prev_end.trim()),
                "{head:?} lacks {prev_end:?}"
            );
        }
    }

    #[test]
    fn sentences_are_preferred_cut_points() {
        let text = format!("{} Second sentence here.", "a".repeat(150) + ".");
        let pieces = split_long(&text, 160);
        assert_eq!(pieces[0], format!("{}.", "a".repeat(150)));
        assert_eq!(pieces[1], "Second sentence here.");
    }

    #[test]
    fn unbroken_text_is_cut_hard_on_char_boundaries() {
        let text = "é".repeat(500);
        let pieces = split_long(&text, 100);
        assert_eq!(pieces.len(), 5);
        assert!(pieces.iter().all(|p| char_len(p) == 100));
    }

    #[test]
    fn ids_are_stable_across_unrelated_edits() {
        let before = "# A\nAlpha.\n\n# B\nBeta.";
        let after = "# A\nAlpha changed a lot.\n\n# New\nInserted.\n\n# B\nBeta.";
        let a = chunk_document(&doc("d", before), &cfg(200, 0));
        let b = chunk_document(&doc("d", after), &cfg(200, 0));
        assert_eq!(a[0].id, b[0].id);
        assert_ne!(a[0].hash, b[0].hash);
        let beta_a = a.iter().find(|c| c.text == "Beta.").unwrap();
        let beta_b = b.iter().find(|c| c.text == "Beta.").unwrap();
        assert_eq!(beta_a.id, beta_b.id);
        assert_eq!(beta_a.hash, beta_b.hash);
        assert!(a[0].id.starts_with("d#"));
        // Same content under another document: different ids.
        let other = chunk_document(&doc("e", before), &cfg(200, 0));
        assert_ne!(other[0].id, a[0].id);
    }

    #[test]
    fn hash_is_sha256_of_embedding_text_and_covers_title() {
        let mut d = doc("d", "Body.");
        let c1 = chunk_document(&d, &cfg(200, 0));
        assert_eq!(c1[0].hash, sha256_hex(c1[0].embedding_text().as_bytes()));
        assert_eq!(c1[0].hash.len(), 64);
        d.title = "Other".into();
        let c2 = chunk_document(&d, &cfg(200, 0));
        assert_eq!(c1[0].id, c2[0].id);
        assert_ne!(c1[0].hash, c2[0].hash);
    }

    #[test]
    fn empty_documents_and_sections_give_no_chunks() {
        assert!(chunk_document(&doc("d", "  \n\n"), &cfg(200, 0)).is_empty());
        let chunks = chunk_document(&doc("d", "# Empty\n# Full\nText."), &cfg(200, 0));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].headings, vec!["Full".to_owned()]);
    }

    #[test]
    fn ids_are_unique_within_a_document() {
        let md = format!("# A\n{}\n\n# A\n{}", "x y ".repeat(200), "z w ".repeat(200));
        let chunks = chunk_document(&doc("d", &md), &cfg(100, 20));
        let mut ids: Vec<&str> = chunks.iter().map(|c| c.id.as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate chunk ids");
    }

    #[test]
    fn heading_syntax() {
        assert_eq!(heading("## Hours ##"), Some((2, "Hours")));
        assert_eq!(heading("#hashtag"), None);
        assert_eq!(heading("    # indented code"), None);
        assert_eq!(heading("####### seven"), None);
    }
}
