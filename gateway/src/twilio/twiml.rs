//! TwiML responses to the incoming-call webhook.

/// Escapes text for an XML attribute or element.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // As references: a reader normalises literal ones (in attributes to spaces,
            // CR LF to LF), so only these come back as written.
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            // No XML 1.0 document may hold them, not even as references: a peer's NUL in
            // a `From` would otherwise make the whole answer unreadable to Twilio.
            c if !is_xml_char(c) => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out
}

/// Whether XML 1.0 allows `c` in a document (the `Char` production, §2.2); the builders
/// write U+FFFD in place of any other.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// What the caller gets when the media stream ends without the gateway having ended the
/// call on purpose (OpenAI unreachable, a fatal session error, a drain deadline, a pod
/// that died mid-call): never silence.
///
/// Only the apology exists today; per-tenant variants (`spec.agent.fallback`: dial a
/// number, voicemail) will be further variants rendered by [`Fallback::verbs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// `<Say>` the text, then `<Hangup/>`.
    Apologize(String),
}

/// The apology spoken when a call cannot be continued.
pub const DEFAULT_APOLOGY: &str = "We're sorry, we are having technical difficulties and cannot continue this call. Please call again later. Goodbye.";

impl Default for Fallback {
    fn default() -> Self {
        Self::Apologize(DEFAULT_APOLOGY.to_owned())
    }
}

impl Fallback {
    /// The verbs, without `<Response>`.
    pub fn verbs(&self) -> String {
        match self {
            Self::Apologize(text) => format!("<Say>{}</Say><Hangup/>", xml_escape(text)),
        }
    }

    /// A whole TwiML document running the fallback.
    pub fn twiml(&self) -> String {
        format!("{HEAD}<Response>{}</Response>", self.verbs())
    }
}

/// `<Connect action><Stream>`: a bidirectional media stream to `url` with custom
/// parameters. When the gateway closes the stream Twilio requests `action` (POST, signed)
/// and runs what it answers: [`hangup`] when the gateway ended the call on purpose,
/// [`Fallback::twiml`] otherwise. Verbs after `</Connect>` would be ignored by Twilio once
/// `action` is set, so none are written.
pub fn connect_stream(url: &str, action: &str, params: &[(&str, &str)]) -> String {
    let mut s = format!(
        "{HEAD}<Response><Connect action=\"{}\" method=\"POST\"><Stream url=\"{}\">",
        xml_escape(action),
        xml_escape(url)
    );
    for (name, value) in params {
        s.push_str(&format!(
            "<Parameter name=\"{}\" value=\"{}\"/>",
            xml_escape(name),
            xml_escape(value)
        ));
    }
    s.push_str("</Stream></Connect></Response>");
    s
}

/// Ends the call without another word (the agent already said goodbye).
pub fn hangup() -> String {
    format!("{HEAD}<Response><Hangup/></Response>")
}

/// A polite spoken refusal followed by a hang-up (unknown number).
pub fn say_and_hangup(text: &str) -> String {
    format!(
        "{HEAD}<Response><Say>{}</Say><Hangup/></Response>",
        xml_escape(text)
    )
}

/// A busy signal (over capacity); the caller's carrier plays it, Twilio bills nothing.
pub fn reject_busy() -> String {
    format!("{HEAD}<Response><Reject reason=\"busy\"/></Response>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_whitespace_as_references_and_replaces_what_xml_cannot_hold() {
        assert_eq!(xml_escape("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
        assert_eq!(
            xml_escape("x\0y\u{1}z\u{FFFE}"),
            "x\u{FFFD}y\u{FFFD}z\u{FFFD}"
        );
        assert_eq!(xml_escape("<&\"'>"), "&lt;&amp;&quot;&apos;&gt;");
    }

    #[test]
    fn stream_twiml_escapes_values() {
        let t = connect_stream("wss://gw/x", "https://gw/a?b&c", &[("from", "a\"<b>&")]);
        assert!(t.contains("<Stream url=\"wss://gw/x\">"));
        assert!(t.contains("<Connect action=\"https://gw/a?b&amp;c\" method=\"POST\">"));
        assert!(t.contains("value=\"a&quot;&lt;b&gt;&amp;\""));
        assert!(t.ends_with("</Stream></Connect></Response>"));
    }

    #[test]
    fn fallback_apologizes_then_hangs_up() {
        let t = Fallback::Apologize("Sorry & goodbye".into()).twiml();
        assert!(t.ends_with("<Response><Say>Sorry &amp; goodbye</Say><Hangup/></Response>"));
        assert!(hangup().ends_with("<Response><Hangup/></Response>"));
    }
}
