//! TwiML responses to the incoming-call webhook and what follows a stream.

use switchboard_crds::{DialAddress, FallbackAction, FallbackSpec};

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
/// that died mid-call): never silence. Built from `spec.agent.fallback`: the apology,
/// then hang up, dial, or take a voicemail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// `<Say>` the apology, then `<Hangup/>`.
    Apologize(String),
    /// `<Say>` the apology, then `<Dial>` (a `<Hangup/>` after it: nothing follows).
    Dial {
        /// Said first.
        apology: String,
        /// `<Number>` or `<Sip>`.
        noun: DialNoun,
        /// `callerId`, when set.
        caller_id: Option<String>,
        /// `timeout`, seconds.
        ring_timeout: u32,
    },
    /// `<Say>` the apology and the prompt, then `<Record>` whose action (the gateway's
    /// voicemail route) keeps the recording with the call.
    Voicemail {
        /// Said first.
        apology: String,
        /// Said before the beep.
        prompt: String,
        /// `maxLength`, seconds.
        max_seconds: u32,
    },
}

/// The apology spoken when a call cannot be continued.
pub const DEFAULT_APOLOGY: &str = switchboard_crds::DEFAULT_APOLOGY;

impl Default for Fallback {
    fn default() -> Self {
        Self::Apologize(DEFAULT_APOLOGY.to_owned())
    }
}

/// What `<Dial>` dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialNoun {
    /// `<Number>` (E.164).
    Number(String),
    /// `<Sip>` (a SIP URI).
    Sip(String),
}

impl DialNoun {
    /// From the API type.
    pub fn from_address(a: DialAddress<'_>) -> Self {
        match a {
            DialAddress::Number(n) => Self::Number(n.to_owned()),
            DialAddress::Sip(s) => Self::Sip(s.to_owned()),
        }
    }

    fn xml(&self) -> String {
        match self {
            Self::Number(n) => format!("<Number>{}</Number>", xml_escape(n)),
            Self::Sip(s) => format!("<Sip>{}</Sip>", xml_escape(s)),
        }
    }
}

/// A `<Dial>` verb: `noun`, ringing `ring_timeout` s, with `caller_id` when set, and
/// `action` (POST) requested when the dialled leg ends.
pub fn dial_verb(
    noun: &DialNoun,
    caller_id: Option<&str>,
    ring_timeout: u32,
    action: Option<&str>,
) -> String {
    let mut s = String::from("<Dial");
    if let Some(a) = action {
        s.push_str(&format!(" action=\"{}\" method=\"POST\"", xml_escape(a)));
    }
    s.push_str(&format!(" timeout=\"{ring_timeout}\""));
    if let Some(c) = caller_id {
        s.push_str(&format!(" callerId=\"{}\"", xml_escape(c)));
    }
    s.push('>');
    s.push_str(&noun.xml());
    s.push_str("</Dial>");
    s
}

/// A whole document: `verbs` inside `<Response>`.
pub fn document(verbs: &str) -> String {
    format!("{HEAD}<Response>{verbs}</Response>")
}

impl Fallback {
    /// From `spec.agent.fallback`.
    pub fn from_spec(f: &FallbackSpec) -> Self {
        match f.action {
            FallbackAction::Hangup => Self::Apologize(f.apology.clone()),
            FallbackAction::Dial => Self::Dial {
                apology: f.apology.clone(),
                noun: DialNoun::from_address(f.address()),
                caller_id: f.caller_id.clone(),
                ring_timeout: f.ring_timeout_seconds,
            },
            FallbackAction::Voicemail => Self::Voicemail {
                apology: f.apology.clone(),
                prompt: f.voicemail_prompt().to_owned(),
                max_seconds: f.max_recording_seconds,
            },
        }
    }

    /// The verbs, without `<Response>`; `voicemail_action` is where `<Record>` posts the
    /// recording.
    pub fn verbs(&self, voicemail_action: &str) -> String {
        match self {
            Self::Apologize(text) => format!("<Say>{}</Say><Hangup/>", xml_escape(text)),
            Self::Dial {
                apology,
                noun,
                caller_id,
                ring_timeout,
            } => format!(
                "<Say>{}</Say>{}<Hangup/>",
                xml_escape(apology),
                dial_verb(noun, caller_id.as_deref(), *ring_timeout, None)
            ),
            Self::Voicemail {
                apology,
                prompt,
                max_seconds,
            } => format!(
                "<Say>{}</Say><Say>{}</Say><Record action=\"{}\" method=\"POST\" maxLength=\"{max_seconds}\" playBeep=\"true\"/><Hangup/>",
                xml_escape(apology),
                xml_escape(prompt),
                xml_escape(voicemail_action)
            ),
        }
    }

    /// A whole TwiML document running the fallback.
    pub fn twiml(&self, voicemail_action: &str) -> String {
        document(&self.verbs(voicemail_action))
    }
}

/// `<Connect><Stream>`: a bidirectional media stream to `url` with custom parameters,
/// followed by `after` (verbs: the tenant's fallback, [`Fallback::verbs`]).
///
/// No `action` on `<Connect>`: when the stream ends Twilio goes on with the verbs after
/// `</Connect>`, which are already in its hands. That is what makes a gateway process
/// that dies mid-call (or every replica unreachable) end in the fallback rather than in
/// Twilio's "an application error has occurred": an action URL would have to be fetched
/// from a gateway. Endings that must not play the fallback (a goodbye, a transfer) reach
/// Twilio through its REST API before the stream closes (the call is hung up or given
/// new TwiML, and the verbs after `</Connect>` never run).
pub fn connect_stream(url: &str, params: &[(&str, &str)], after: &str) -> String {
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
    s.push_str("</Stream></Connect>");
    s.push_str(after);
    s.push_str("</Response>");
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
        let after = Fallback::default().verbs("https://gw/vm");
        let t = connect_stream("wss://gw/x?a&b", &[("from", "a\"<b>&")], &after);
        assert!(t.contains("<Connect><Stream url=\"wss://gw/x?a&amp;b\">"));
        assert!(t.contains("value=\"a&quot;&lt;b&gt;&amp;\""));
        // The fallback follows the stream in the same document: nothing to fetch when
        // the stream ends.
        assert!(
            t.ends_with(&format!("</Stream></Connect>{after}</Response>")),
            "{t}"
        );
        assert!(!t.contains("action="), "{t}");
    }

    #[test]
    fn fallback_apologizes_then_hangs_up() {
        let t = Fallback::Apologize("Sorry & goodbye".into()).twiml("https://gw/vm");
        assert!(t.ends_with("<Response><Say>Sorry &amp; goodbye</Say><Hangup/></Response>"));
        let spec: FallbackSpec = serde_json::from_value(serde_json::json!({
            "action": "dial", "number": "+15551230001", "ringTimeoutSeconds": 15
        }))
        .unwrap_or_default();
        let t = Fallback::from_spec(&spec).twiml("https://gw/vm");
        assert!(
            t.contains("<Dial timeout=\"15\"><Number>+15551230001</Number></Dial><Hangup/>"),
            "{t}"
        );
        let spec: FallbackSpec = serde_json::from_value(serde_json::json!({
            "action": "voicemail", "maxRecordingSeconds": 60
        }))
        .unwrap_or_default();
        let t = Fallback::from_spec(&spec).twiml("https://gw/vm?a&b");
        assert!(
            t.contains("<Record action=\"https://gw/vm?a&amp;b\" method=\"POST\" maxLength=\"60\""),
            "{t}"
        );
        assert!(hangup().ends_with("<Response><Hangup/></Response>"));
    }
}
