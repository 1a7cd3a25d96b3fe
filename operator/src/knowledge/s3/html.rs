//! HTML → text for the chunker: headings become Markdown `#` lines (so a chunk never spans
//! two sections), block elements become blank-line-separated paragraphs, list items
//! `- ` lines; `<head>`, `<title>`, `<script>`, `<style>`, `<template>`, `<noscript>`,
//! `<svg>` and comments are dropped; character references are decoded; inline whitespace collapses to one
//! space (kept as is inside `<pre>`).
//!
//! Why not a crate: `html2text` (the well-kept option) brings html5ever's full parser,
//! its generated atom tables and a renderer that wraps lines at a fixed width and adds
//! link footnotes, all for what amounts to "text, headings, paragraphs" here. Documents
//! are the customer's FAQ pages, not hostile markup that must render exactly; this
//! tolerant tokenizer never fails and never panics, whatever the input (unclosed tags,
//! stray `<`, truncated entities are kept as text).

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

/// The text of `html`, with headings as Markdown `#` lines and paragraphs separated by
/// one blank line.
pub fn to_text(html: &str) -> String {
    let mut out = Writer::default();
    let mut rest = html;
    // Depth inside <pre> (whitespace kept).
    let mut pre = 0usize;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            out.text(&decode_entities(rest), pre > 0);
            break;
        };
        if lt > 0 {
            out.text(&decode_entities(&rest[..lt]), pre > 0);
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap_or(after.len());
            out.text(&after[..end], pre > 0);
            rest = after.get(end + 3..).unwrap_or("");
            continue;
        }
        let Some(tag) = parse_tag(rest) else {
            // A `<` that opens no tag ("a < b") is text.
            out.text("<", pre > 0);
            rest = &rest[1..];
            continue;
        };
        let self_closing = rest[..tag.len].ends_with("/>");
        rest = &rest[tag.len..];
        let name = tag.name.as_str();
        // `<svg …/>` has no content to skip.
        if !tag.closing && !self_closing && DROPPED.contains(&name) {
            // Skip to the matching end tag (none: the rest of the document is dropped).
            rest = skip_element(rest, name);
            continue;
        }
        if let Some(level) = heading_level(name) {
            out.paragraph();
            if !tag.closing {
                out.heading(level);
            }
            continue;
        }
        match name {
            "br" => out.line(),
            "li" => {
                out.line();
                if !tag.closing {
                    out.literal("- ");
                }
            }
            "td" | "th" if !tag.closing => out.space(),
            "pre" => {
                out.paragraph();
                pre = if tag.closing {
                    pre.saturating_sub(1)
                } else {
                    pre + 1
                };
            }
            _ if BLOCKS.contains(&name) => out.paragraph(),
            _ => {}
        }
    }
    out.finish()
}

/// `h1`…`h6` → 1…6.
fn heading_level(name: &str) -> Option<usize> {
    let digit = name.strip_prefix('h')?;
    match digit {
        "1" | "2" | "3" | "4" | "5" | "6" => digit.parse().ok(),
        _ => None,
    }
}

struct Tag {
    /// Lowercased element name (`!doctype` and `?xml` included).
    name: String,
    closing: bool,
    /// Bytes of `<…>`.
    len: usize,
}

/// The tag at the start of `s` (which starts with `<`), or `None` when the `<` opens no
/// tag (followed by a space, a digit, …) or is never closed.
fn parse_tag(s: &str) -> Option<Tag> {
    let body = &s[1..];
    let (closing, body) = match body.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let first = body.chars().next()?;
    if !(first.is_ascii_alphabetic() || (!closing && (first == '!' || first == '?'))) {
        return None;
    }
    let name: String = body
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect::<String>()
        .to_ascii_lowercase();
    // The end of the tag: the first `>` outside a quoted attribute value.
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                return Some(Tag {
                    name,
                    closing,
                    len: i + 1,
                });
            }
            _ => {}
        }
    }
    None
}

/// What follows the end tag of `name` in `s` (ASCII case-insensitive), or "" when it is
/// never closed.
fn skip_element<'a>(s: &'a str, name: &str) -> &'a str {
    let needle = format!("</{name}");
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(pos) = find_ascii_ci(&bytes[from..], needle.as_bytes()) {
        let start = from + pos;
        let after = start + needle.len();
        // `</scripts>` is not `</script>`.
        match bytes.get(after) {
            Some(b) if b.is_ascii_alphanumeric() => from = after,
            _ => {
                return s[after..].find('>').map_or("", |gt| &s[after + gt + 1..]);
            }
        }
    }
    ""
}

fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
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

/// `s` with character references (`&amp;`, `&#233;`, `&#xE9;`, common named ones)
/// decoded; unknown or malformed references stay as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // The longest reference we decode is well under 12 bytes.
        let window_end = rest
            .char_indices()
            .take(12)
            .last()
            .map_or(rest.len(), |(i, c)| i + c.len_utf8());
        let decoded = rest[..window_end]
            .find(';')
            .and_then(|semi| reference(&rest[1..semi]).map(|c| (c, semi + 1)));
        match decoded {
            Some((c, used)) => {
                if let Some(c) = c {
                    out.push(c);
                }
                rest = &rest[used..];
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

/// The character of reference `name` (between `&` and `;`): `Some(None)` for a
/// reference that decodes to nothing (soft hyphen), `None` when unknown.
fn reference(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        // NUL and invalid scalars become U+FFFD, as browsers do.
        let c = char::from_u32(code)
            .filter(|c| *c != '\0')
            .unwrap_or('\u{FFFD}');
        return Some(Some(c));
    }
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" => return Some(None),
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "minus" => '−',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "deg" => '°',
        "plusmn" => '±',
        "times" => '×',
        "divide" => '÷',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sect" => '§',
        "para" => '¶',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "iexcl" => '¡',
        "iquest" => '¿',
        "rarr" => '→',
        "larr" => '←',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "Eacute" => 'É',
        "aacute" => 'á',
        "agrave" => 'à',
        "acirc" => 'â',
        "iacute" => 'í',
        "oacute" => 'ó',
        "ocirc" => 'ô',
        "uacute" => 'ú',
        "ccedil" => 'ç',
        "ntilde" => 'ñ',
        "Ntilde" => 'Ñ',
        _ => return None,
    };
    Some(Some(c))
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
}
