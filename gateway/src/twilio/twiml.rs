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
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// `<Connect><Stream>`: a bidirectional media stream to `url` with custom parameters.
pub fn connect_stream(url: &str, params: &[(&str, &str)]) -> String {
    let mut s = format!(
        "{HEAD}<Response><Connect><Stream url=\"{}\">",
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
    fn stream_twiml_escapes_values() {
        let t = connect_stream("wss://gw/x", &[("from", "a\"<b>&")]);
        assert!(t.contains("<Stream url=\"wss://gw/x\">"));
        assert!(t.contains("value=\"a&quot;&lt;b&gt;&amp;\""));
        assert!(t.ends_with("</Stream></Connect></Response>"));
    }
}
