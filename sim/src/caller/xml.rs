//! Reading TwiML as XML: `roxmltree` parses, this module keeps the small owned tree
//! `twiml` walks and the error type callers see.
//!
//! roxmltree is strict the way Twilio is: it refuses DTDs (by default), unknown entities,
//! mismatched or unclosed tags, duplicate attributes and content after the root; comments
//! and processing instructions are skipped and CDATA is read as text.

/// A node in the element tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A child element.
    Element(Element),
    /// Character data (entities already decoded).
    Text(String),
}

/// An element with its attributes in document order and its children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Element {
    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements, skipping text.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// All character data directly inside this element, concatenated.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Whether the element has non-whitespace character data directly inside it.
    pub fn has_text(&self) -> bool {
        self.children
            .iter()
            .any(|n| matches!(n, Node::Text(t) if !t.trim().is_empty()))
    }
}

/// Why a document is not well-formed XML (byte offset into the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML at byte {at}: {what}")]
pub struct XmlError {
    /// Byte offset where the problem was found.
    pub at: usize,
    /// What was wrong.
    pub what: String,
}

/// Parses a whole document and returns its root element.
pub(crate) fn parse(input: &str) -> Result<Element, XmlError> {
    let src = input.strip_prefix('\u{feff}').unwrap_or(input);
    let doc = roxmltree::Document::parse(src).map_err(|e| XmlError {
        at: byte_offset(src, e.pos()),
        what: e.to_string(),
    })?;
    Ok(element(doc.root_element()))
}

/// The owned copy of an element and everything under it.
fn element(node: roxmltree::Node<'_, '_>) -> Element {
    let mut el = Element {
        name: node.tag_name().name().to_owned(),
        attrs: node
            .attributes()
            .map(|a| (a.name().to_owned(), a.value().to_owned()))
            .collect(),
        children: Vec::new(),
    };
    for child in node.children() {
        if child.is_element() {
            el.children.push(Node::Element(element(child)));
        } else if let Some(text) = child.text().filter(|_| child.is_text()) {
            el.children.push(Node::Text(text.to_owned()));
        }
    }
    el
}

/// roxmltree reports a 1-based row and column (in characters); the error keeps the byte
/// offset it always had.
fn byte_offset(src: &str, pos: roxmltree::TextPos) -> usize {
    let row = usize::try_from(pos.row.saturating_sub(1)).unwrap_or(usize::MAX);
    let col = usize::try_from(pos.col.saturating_sub(1)).unwrap_or(usize::MAX);
    let line_start: usize = src.split_inclusive('\n').take(row).map(str::len).sum();
    let line = &src[line_start..];
    line_start + line.char_indices().nth(col).map_or(line.len(), |(i, _)| i)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_declaration_attributes_entities_and_nesting() {
        let doc = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi -->\n<a x='1' y=\"&lt;&amp;&#65;&#x42;\">\n  <b/>text<![CDATA[<raw>]]><c z=\"2\"></c >\n</a>\n";
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("x"), Some("1"));
        assert_eq!(root.attr("y"), Some("<&AB"));
        let names: Vec<_> = root.elements().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert!(root.text().contains("text<raw>"));
    }

    #[test]
    fn refuses_malformed_documents() {
        for bad in [
            "",
            "plain text",
            "<a>",
            "<a></b>",
            "<a><b></a></b>",
            "<a x=1/>",
            "<a x=\"1\" x=\"2\"/>",
            "<a x=\"1\"y=\"2\"/>",
            "<a>&nbsp;</a>",
            "<a>&amp</a>",
            "<a/><b/>",
            "<!DOCTYPE a><a/>",
            "<a><!-- open</a>",
            "<a x=\"<\"/>",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
