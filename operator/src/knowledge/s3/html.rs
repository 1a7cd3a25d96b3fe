//! HTML → text for the chunker: headings become Markdown `#` lines (so a chunk never spans
//! two sections), block elements become blank-line-separated paragraphs, list items
//! `- ` lines; `<head>`, `<title>`, `<script>`, `<style>`, `<template>`, `<noscript>`,
//! `<svg>` and comments are dropped; character references are decoded; inline whitespace
//! collapses to one space (kept as is inside `<pre>`).
//!
//! Tokenizing and character references are `html5gum`'s: a WHATWG-compliant streaming
//! tokenizer with the spec's full table of named references, linear in its input, that
//! never fails. Why not `scraper`/`html5ever`: they build the whole document tree (and
//! bring the tree builder's atom tables) for what is a single pass over tokens here —
//! text, headings, paragraphs — and `html2text` adds a renderer that wraps lines at a fixed
//! width and adds link footnotes. Without a tree builder, which elements hold raw text
//! (`<script>`, `<style>`…) comes from `html5gum::naive_next_state`.
//!
//! Kept from the tolerant converter this replaced: a tag cut off by the end of the
//! document stays as text, and `<svg …/>` is empty even when the `/` ends an unquoted
//! attribute value.

use html5gum::{DefaultEmitter, Error, HtmlString, Token, Tokenizer, naive_next_state};

/// Elements whose content is never text for the agent.
// Not `head`: its end tag is optional (minifiers drop it), and skipping to a `</head>`
// that never comes would drop the whole page; its text-bearing children are listed here.
const DROPPED: [&str; 6] = ["script", "style", "template", "noscript", "svg", "title"];

/// Elements that start and end a paragraph.
const BLOCKS: [&str; 33] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "html",
    "legend",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tr",
    "ul",
];

/// At most this many bytes of an HTML document are converted (the rest is ignored).
///
/// Objects are already refused over [`super::S3Settings::max_object_bytes`] (5 MiB by
/// default) before they are downloaded; this bounds the conversion's work even when that
/// limit is raised. The tokenizer is linear, so the work per object is at most a constant
/// times this.
pub const MAX_HTML_BYTES: usize = 16 * 1024 * 1024;

/// Characters that say nothing to a reader (soft hyphen, zero-width non-joiner and
/// joiner): dropped from the text rather than left inside words.
const INVISIBLE: [char; 3] = ['\u{ad}', '\u{200c}', '\u{200d}'];

/// The text of `html`, with headings as Markdown `#` lines and paragraphs separated by
/// one blank line.
pub fn to_text(html: &str) -> String {
    convert(html, MAX_HTML_BYTES).text
}

/// What a conversion produced, and how much work it took (for the tests' work bounds).
struct Converted {
    text: String,
    /// Tokens read from the tokenizer.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by the tests' work bounds")
    )]
    tokens: usize,
}

/// [`to_text`] of the first `cap` bytes of `html` (cut at a character boundary).
fn convert(html: &str, cap: usize) -> Converted {
    let html = &html[..floor_char_boundary(html, cap)];
    let mut emitter = DefaultEmitter::<usize>::new_with_span();
    // Text after <script>, <style>, <title>, <textarea>… is raw text up to its end tag, as
    // a browser's tree builder would tell the tokenizer: `if (a<b)` opens no tag.
    emitter.naively_switch_states(true);
    let mut out = Writer::default();
    // Depth inside <pre> (whitespace kept).
    let mut pre = 0usize;
    // Inside a dropped element: everything up to its end tag is skipped.
    let mut skipping: Option<HtmlString> = None;
    // Where the last token ended, and whether the document ended inside a tag.
    let mut consumed = 0usize;
    let mut cut_tag = false;
    let mut tokens = 0usize;
    for token in Tokenizer::new_with_emitter(html, emitter) {
        let Ok(token) = token;
        tokens += 1;
        match token {
            Token::Error(error) => {
                cut_tag |= error.value == Error::EofInTag;
                continue;
            }
            Token::String(ref text) | Token::Comment(ref text) => {
                consumed = consumed.max(text.span.end);
            }
            Token::StartTag(ref tag) => consumed = consumed.max(tag.span.end),
            Token::EndTag(ref tag) => consumed = consumed.max(tag.span.end),
            Token::Doctype(ref doctype) => consumed = consumed.max(doctype.span.end),
        }
        if let Some(name) = &skipping {
            if matches!(&token, Token::EndTag(tag) if tag.name == *name) {
                skipping = None;
            }
            continue;
        }
        match token {
            Token::String(text) => {
                out.text(&visible(&String::from_utf8_lossy(&text.value)), pre > 0);
            }
            Token::StartTag(tag) => {
                // `<svg class=i/>`: the spec reads `i/` as the value, but minified pages
                // mean an empty element, and skipping to a `</svg>` that never comes would
                // drop the rest of the page.
                let self_closing = tag.self_closing
                    || html
                        .get(tag.span.start..tag.span.end)
                        .is_some_and(|source| source.ends_with("/>"));
                let name = String::from_utf8_lossy(&tag.name);
                // The tokenizer reads a raw-text element's content up to its end tag
                // whatever the start tag's syntax (`<script/>` too), as browsers do.
                let raw_text = naive_next_state(&tag.name).is_some();
                if DROPPED.contains(&name.as_ref()) && (raw_text || !self_closing) {
                    skipping = Some(tag.name);
                    continue;
                }
                start_tag(&mut out, &name, &mut pre);
            }
            Token::EndTag(tag) => end_tag(&mut out, &String::from_utf8_lossy(&tag.name), &mut pre),
            Token::Comment(_) | Token::Doctype(_) | Token::Error(_) => {}
        }
    }
    // A tag cut off by the end of the document was never markup: keep it as text.
    if cut_tag && skipping.is_none() {
        out.text(html.get(consumed..).unwrap_or_default(), pre > 0);
    }
    Converted {
        text: out.finish(),
        tokens,
    }
}

fn start_tag(out: &mut Writer, name: &str, pre: &mut usize) {
    if let Some(level) = heading_level(name) {
        out.paragraph();
        out.heading(level);
        return;
    }
    match name {
        "br" => out.line(),
        "li" => {
            out.line();
            out.literal("- ");
        }
        "td" | "th" => out.space(),
        "pre" => {
            out.paragraph();
            *pre += 1;
        }
        _ if BLOCKS.contains(&name) => out.paragraph(),
        _ => {}
    }
}

fn end_tag(out: &mut Writer, name: &str, pre: &mut usize) {
    if heading_level(name).is_some() {
        out.paragraph();
        return;
    }
    match name {
        "br" | "li" => out.line(),
        "pre" => {
            out.paragraph();
            *pre = pre.saturating_sub(1);
        }
        _ if BLOCKS.contains(&name) => out.paragraph(),
        _ => {}
    }
}

/// `s` without [`INVISIBLE`] characters.
fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(INVISIBLE) {
        s.replace(INVISIBLE, "").into()
    } else {
        s.into()
    }
}

/// The largest character boundary of `s` at or below `at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    // A UTF-8 character is at most 4 bytes: a boundary is among the last 4 positions.
    (at.saturating_sub(3)..=at)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// `h1`…`h6` → 1…6.
fn heading_level(name: &str) -> Option<usize> {
    let digit = name.strip_prefix('h')?;
    match digit {
        "1" | "2" | "3" | "4" | "5" | "6" => digit.parse().ok(),
        _ => None,
    }
}

/// Builds the output: pending breaks are resolved when text arrives, so a run of block
/// boundaries leaves one blank line and the text has no leading or trailing space.
#[derive(Default)]
struct Writer {
    out: String,
    /// 0 none, 1 space, 2 line break, 3 blank line.
    pending: u8,
}

impl Writer {
    fn space(&mut self) {
        self.pending = self.pending.max(1);
    }

    fn line(&mut self) {
        self.pending = self.pending.max(2);
    }

    fn paragraph(&mut self) {
        self.pending = 3;
    }

    fn heading(&mut self, level: usize) {
        self.flush();
        self.out.push_str(&"#".repeat(level));
        self.out.push(' ');
        // The heading's text follows at once, without the space its whitespace asks for.
        self.pending = 0;
    }

    /// Text written as is (a list marker).
    fn literal(&mut self, s: &str) {
        self.flush();
        self.out.push_str(s);
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            match self.pending {
                1 if !self.out.ends_with([' ', '\n']) => self.out.push(' '),
                2 => {
                    trim_end_spaces(&mut self.out);
                    self.out.push('\n');
                }
                3 => {
                    trim_end_spaces(&mut self.out);
                    self.out.push_str("\n\n");
                }
                _ => {}
            }
        }
        self.pending = 0;
    }

    fn text(&mut self, s: &str, preformatted: bool) {
        if preformatted {
            if !s.is_empty() {
                self.flush();
                self.out.push_str(s);
            }
            return;
        }
        for (i, word) in s.split(char::is_whitespace).enumerate() {
            if i > 0 {
                self.space();
            }
            if !word.is_empty() {
                self.flush();
                self.out.push_str(word);
            }
        }
    }

    fn finish(mut self) -> String {
        trim_end_spaces(&mut self.out);
        // Headings with no text ("# ") say nothing.
        self.out
            .split("\n\n")
            .map(str::trim_end)
            .filter(|p| !p.is_empty() && !p.chars().all(|c| c == '#'))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

fn trim_end_spaces(s: &mut String) {
    let len = s.trim_end_matches([' ', '\t']).len();
    s.truncate(len);
}

/// `s` with character references (`&amp;`, `&#233;`, `&#xE9;`, `&aring;`: all of
/// HTML's named references) decoded; a reference must end with `;`, and unknown or
/// malformed ones stay as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = reference_len(rest).and_then(|len| Some((reference(&rest[..len])?, len)));
        match decoded {
            Some((text, len)) => {
                out.push_str(&visible(&text));
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The longest reference looked at: HTML's longest name
/// (`&CounterClockwiseContourIntegral;`, 33 bytes) with room for zero-padded numbers.
const MAX_REFERENCE_BYTES: usize = 40;

/// Bytes of the `&name;` or `&#…;` at the start of `s` (which starts with `&`).
fn reference_len(s: &str) -> Option<usize> {
    let body = s.as_bytes().get(1..)?;
    let semi = body
        .iter()
        .take(MAX_REFERENCE_BYTES)
        .position(|b| *b == b';')?;
    let name = &body[..semi];
    let name = name.strip_prefix(b"#").unwrap_or(name);
    (!name.is_empty() && name.iter().all(u8::is_ascii_alphanumeric)).then_some(semi + 2)
}

/// What the spec's tokenizer makes of one complete reference, or `None` when it is not one
/// (unknown names stay as written; a longer unknown name that merely starts with a legacy
/// one, like `&notit;`, is unknown here).
fn reference(reference: &str) -> Option<String> {
    let mut text = String::new();
    for token in Tokenizer::new(reference) {
        let Ok(token) = token;
        if let Token::String(s) = token {
            text.push_str(&String::from_utf8_lossy(&s.value));
        }
    }
    // A whole reference consumes its `;`; a partial match leaves it.
    (text != reference && !text.ends_with(';')).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_markdown_and_paragraphs_are_separated() {
        let html = r#"<!DOCTYPE html>
<html><head><title>Ignored title</title><meta charset="utf-8">
<style>body { color: red; }</style></head>
<body>
  <h1>Visiting   us</h1>
  <p>We are open
     Monday to Friday.</p><p>Closed on <b>Sunday</b>.</p>
  <h2 class="x">Parking</h2>
  <div>Free parking<br>behind the building.</div>
  <script>var x = "<h1>not a heading</h1>";</script>
</body></html>"#;
        assert_eq!(
            to_text(html),
            "# Visiting us\n\nWe are open Monday to Friday.\n\nClosed on Sunday.\n\n## Parking\n\nFree parking\nbehind the building."
        );
    }

    #[test]
    fn pages_without_a_head_end_tag_or_with_self_closing_svg_keep_their_text() {
        // Minifiers omit `</head>` (it is optional); an inline `<svg/>` has no content.
        let html = "<html><head><meta charset=utf-8><title>T</title><body>\
                    <h1>Hours</h1><p>Open <svg class=i/>daily from nine.</p></body></html>";
        assert_eq!(to_text(html), "# Hours\n\nOpen daily from nine.");
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            to_text(
                "<p>Fish &amp; chips &lt;3 &#8364;5 &#x20AC;6 caf&eacute;&nbsp;open&hellip;</p>"
            ),
            "Fish & chips <3 €5 €6 café open…"
        );
        // Unknown, unterminated and invalid references stay or become U+FFFD.
        assert_eq!(
            decode_entities("a &bogus; b & c &#xD800; &amp"),
            "a &bogus; b & c \u{FFFD} &amp"
        );
    }

    #[test]
    fn lists_tables_and_pre() {
        let html = "<ul><li>Delta</li><li>Aetna</li></ul><table><tr><td>Mon</td><td>8-6</td></tr><tr><td>Sat</td><td>9-1</td></tr></table><pre>a  b\n c</pre>";
        assert_eq!(
            to_text(html),
            "- Delta\n- Aetna\n\nMon 8-6\n\nSat 9-1\n\na  b\n c"
        );
    }

    #[test]
    fn dropped_elements_comments_and_case() {
        let html = "<P>one</P><!-- <p>hidden</p> --><SCRIPT type='x'>if (a<b) {}</SCRIPT ><noscript>enable js</noscript><p>two</p>";
        assert_eq!(to_text(html), "one\n\ntwo");
        // </scripts> does not end a script.
        assert_eq!(to_text("<script>x</scripts>y</script>z"), "z");
    }

    #[test]
    fn malformed_input_is_text_never_a_panic() {
        assert_eq!(to_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(
            to_text("<p>unclosed <b attr=\"x>y"),
            "unclosed <b attr=\"x>y"
        );
        assert_eq!(to_text("<script>never closed"), "");
        assert_eq!(to_text("<!-- never closed"), "");
        assert_eq!(to_text("<h2></h2><p>x</p>"), "x");
        assert_eq!(to_text("é<p>ü&#"), "é\n\nü&#");
        for s in [
            "<",
            "</",
            "<!",
            "&",
            "&#x;",
            "<a href='>'>link</a>",
            "<![CDATA[x",
        ] {
            let _ = to_text(s);
        }
        assert_eq!(to_text("<a href='a>b'>link</a>"), "link");
    }

    #[test]
    fn all_named_references_decode() {
        assert_eq!(
            to_text(
                "<p>&aring;ngstr&ouml;m &Aring; &oslash; &hearts; &CounterClockwiseContourIntegral; &nGt; Kranken&shy;haus</p>"
            ),
            "ångström Å ø ♥ \u{2233} \u{226B}\u{20D2} Krankenhaus"
        );
        assert_eq!(
            decode_entities("&aring; &Omega; &notit; &amp;&lt;"),
            "å Ω &notit; &<"
        );
    }

    /// Inputs that made the hand-written tokenizer rescan the rest of the document at
    /// every `<` (quadratic), each `n` repetitions of a piece.
    fn pathological(n: usize) -> Vec<String> {
        [
            "<div",
            "<a x='",
            "<!--",
            "<script>",
            "<svg>",
            "</",
            "<",
            "&",
            "&#x",
            "&aring",
            "<h1>",
            "<li>",
            "<pre>",
            "<p>a<b",
            "<![CDATA[",
        ]
        .iter()
        .map(|piece| piece.repeat(n))
        .collect()
    }

    #[test]
    fn pathological_inputs_take_linear_work() {
        for html in pathological(100_000) {
            let converted = convert(&html, MAX_HTML_BYTES);
            let head = &html[..12];
            // Every token consumes input: no rescans, no token without progress.
            assert!(
                converted.tokens <= html.len() + 1,
                "{head}…: {} tokens for {} bytes",
                converted.tokens,
                html.len()
            );
            // No input byte turns into more than a few output bytes (`<h1>` → `\n\n# `).
            assert!(
                converted.text.len() <= 3 * html.len(),
                "{head}…: {} bytes of text for {} bytes",
                converted.text.len(),
                html.len()
            );
        }
        // 100k unclosed `<div`: one tag cut off by the end of the document, kept as text.
        let html = "<div".repeat(100_000);
        let converted = convert(&html, MAX_HTML_BYTES);
        assert!(converted.tokens <= 2, "{} tokens", converted.tokens);
        assert_eq!(converted.text, html);
    }

    #[test]
    fn input_over_the_cap_is_cut_at_a_character_boundary() {
        assert_eq!(convert("<p>abcdef</p>", 5).text, "ab");
        assert_eq!(convert("<p>éé</p>", 6).text, "é");
        assert_eq!(convert("éé", 0).text, "");
        // The cap bounds the work whatever the document.
        let html = "<p>x</p>".repeat(100_000);
        let converted = convert(&html, 8_000);
        assert_eq!(converted.text.matches('x').count(), 1_000);
        assert!(converted.tokens <= 8_000);
    }
}
