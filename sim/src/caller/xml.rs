//! A small, strict XML reader: enough for TwiML, and loud about anything malformed.
//!
//! Supports the XML declaration, processing instructions, comments, CDATA, the five
//! predefined entities and character references. Refuses DTDs, unknown entities,
//! mismatched or unclosed tags, duplicate attributes and content after the root.

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
    let mut p = Parser {
        src: input.strip_prefix('\u{feff}').unwrap_or(input),
        pos: 0,
    };
    p.skip_misc()?;
    if p.rest().starts_with("<!DOCTYPE") {
        return Err(p.err("DTDs are not accepted"));
    }
    if !p.rest().starts_with('<') {
        return Err(p.err("expected the root element"));
    }
    let root = p.element()?;
    p.skip_misc()?;
    if !p.rest().is_empty() {
        return Err(p.err("content after the root element"));
    }
    Ok(root)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn err(&self, what: &str) -> XmlError {
        XmlError {
            at: self.pos,
            what: what.to_owned(),
        }
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Consumes everything up to and including `end`, returning what came before it.
    fn until(&mut self, end: &str, what: &str) -> Result<&'a str, XmlError> {
        let rest = self.rest();
        let Some(i) = rest.find(end) else {
            return Err(self.err(what));
        };
        self.pos += i + end.len();
        Ok(&rest[..i])
    }

    /// Whitespace, comments and processing instructions (incl. the XML declaration).
    fn skip_misc(&mut self) -> Result<(), XmlError> {
        loop {
            self.skip_ws();
            if self.eat("<!--") {
                self.until("-->", "unterminated comment")?;
            } else if self.eat("<?") {
                self.until("?>", "unterminated processing instruction")?;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<&'a str, XmlError> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '>' | '=' | '<' | '"' | '\''))
            .unwrap_or(rest.len());
        let name = &rest[..len];
        let starts_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':');
        if !starts_ok {
            return Err(self.err("expected a name"));
        }
        self.pos += len;
        Ok(name)
    }

    fn element(&mut self) -> Result<Element, XmlError> {
        if !self.eat("<") {
            return Err(self.err("expected '<'"));
        }
        let mut el = Element {
            name: self.name()?.to_owned(),
            ..Element::default()
        };
        loop {
            let before = self.pos;
            self.skip_ws();
            if self.eat("/>") {
                return Ok(el);
            }
            if self.eat(">") {
                break;
            }
            if self.pos == before {
                return Err(self.err("expected whitespace before an attribute"));
            }
            let name = self.name()?.to_owned();
            self.skip_ws();
            if !self.eat("=") {
                return Err(self.err("expected '=' after attribute name"));
            }
            self.skip_ws();
            let quote = if self.eat("\"") {
                "\""
            } else if self.eat("'") {
                "'"
            } else {
                return Err(self.err("attribute value must be quoted"));
            };
            let start = self.pos;
            let raw = self.until(quote, "unterminated attribute value")?;
            if raw.contains('<') {
                return Err(XmlError {
                    at: start,
                    what: "'<' in attribute value".to_owned(),
                });
            }
            let value = decode_entities(raw, start)?;
            if el.attr(&name).is_some() {
                return Err(self.err("duplicate attribute"));
            }
            el.attrs.push((name, value));
        }
        self.content(&mut el)?;
        Ok(el)
    }

    /// Children up to and including the matching end tag.
    fn content(&mut self, el: &mut Element) -> Result<(), XmlError> {
        let mut text = String::new();
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Err(self.err("unclosed element"));
            }
            if self.eat("</") {
                let name = self.name()?;
                if name != el.name {
                    return Err(self.err("mismatched end tag"));
                }
                self.skip_ws();
                if !self.eat(">") {
                    return Err(self.err("expected '>' to end the end tag"));
                }
                flush_text(&mut text, el);
                return Ok(());
            } else if self.eat("<!--") {
                self.until("-->", "unterminated comment")?;
            } else if self.eat("<![CDATA[") {
                text.push_str(self.until("]]>", "unterminated CDATA section")?);
            } else if self.eat("<?") {
                self.until("?>", "unterminated processing instruction")?;
            } else if rest.starts_with('<') {
                flush_text(&mut text, el);
                let child = self.element()?;
                el.children.push(Node::Element(child));
            } else {
                let len = rest.find('<').unwrap_or(rest.len());
                let start = self.pos;
                self.pos += len;
                text.push_str(&decode_entities(&rest[..len], start)?);
            }
        }
    }
}

fn flush_text(text: &mut String, el: &mut Element) {
    if !text.is_empty() {
        el.children.push(Node::Text(std::mem::take(text)));
    }
}

fn decode_entities(raw: &str, at: usize) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';') else {
            return Err(XmlError {
                at: at + raw.len() - rest.len() + amp,
                what: "'&' without ';'".to_owned(),
            });
        };
        let entity = &after[..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        let Some(c) = decoded else {
            return Err(XmlError {
                at: at + raw.len() - rest.len() + amp,
                what: format!("unknown entity &{entity};"),
            });
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
