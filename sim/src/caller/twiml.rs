//! Reading the TwiML a gateway answers the incoming-call webhook with.

use std::collections::BTreeMap;

use super::xml::{self, Element, XmlError};

/// Twilio's limit on `<Parameter>` name + value, in characters ("must be under 500").
const PARAMETER_LIMIT: usize = 500;

/// What the TwiML tells Twilio to do with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Twiml {
    /// `<Connect><Stream>`: open a bidirectional media stream.
    Connect(StreamTarget),
    /// The call is not connected to a stream; the text says how it was refused
    /// (`reject (busy)`, `hangup after say "…"`, …).
    Refused(String),
}

/// A `<Connect><Stream>` target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamTarget {
    /// The `url` attribute as written.
    pub url: String,
    /// The `name` attribute, if any.
    pub name: Option<String>,
    /// `<Parameter name value/>` pairs; they arrive in `start.customParameters`.
    pub parameters: BTreeMap<String, String>,
    /// Verbs that run before `<Connect>` (e.g. a `<Say>` pre-roll), as short descriptions.
    pub preamble: Vec<String>,
    /// `<Connect action>`: requested when the gateway closes the stream; when set, Twilio
    /// ignores the verbs after `</Connect>`.
    pub action: Option<String>,
    /// Verbs after `</Connect>`, run when the gateway closes the stream (no `action`).
    pub after: Vec<FollowUp>,
    /// Things Twilio would reject or silently change (reported as violations).
    pub warnings: Vec<String>,
}

/// A verb Twilio runs after a media stream the gateway closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// `<Say>`: the caller hears the text.
    Say(String),
    /// `<Hangup/>`: the call ends; later verbs are not run.
    Hangup,
    /// Any other verb, described (`play …`, `dial`, …); the simulator does not act on it.
    Other(String),
}

/// Reads verbs to run in order (after `</Connect>`, or a `<Connect action>` answer).
fn follow_ups<'a>(verbs: impl Iterator<Item = &'a Element>) -> Vec<FollowUp> {
    verbs
        .map(|verb| match verb.name.as_str() {
            "Say" => FollowUp::Say(verb.text().trim().to_owned()),
            "Hangup" => FollowUp::Hangup,
            other => FollowUp::Other(other.to_ascii_lowercase()),
        })
        .collect()
}

/// Parses the answer to a `<Connect action>` request: a `<Response>` of verbs.
pub fn parse_follow_up(body: &str) -> Result<Vec<FollowUp>, TwimlError> {
    let root = xml::parse(body)?;
    if root.name != "Response" {
        return Err(invalid(format!(
            "root element is <{}>, not <Response>",
            root.name
        )));
    }
    Ok(follow_ups(root.elements()))
}

/// Why a webhook answer is not TwiML the simulator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// Not well-formed XML.
    #[error(transparent)]
    Malformed(#[from] XmlError),
    /// Well-formed, but not valid TwiML or using a verb the simulator does not play.
    #[error("invalid TwiML: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> TwimlError {
    TwimlError::Invalid(msg.into())
}

/// Parses a webhook answer. Verbs before `<Connect>` that only play something
/// (`Say`, `Play`, `Pause`, `Start`) are accepted as a preamble; `Reject` and `Hangup` (or
/// running out of verbs) refuse the call; any other verb is an error.
pub fn parse_twiml(body: &str) -> Result<Twiml, TwimlError> {
    let root = xml::parse(body)?;
    if root.name != "Response" {
        return Err(invalid(format!(
            "root element is <{}>, not <Response>",
            root.name
        )));
    }
    if root.has_text() {
        return Err(invalid("text directly inside <Response>"));
    }
    let mut preamble = Vec::new();
    let mut verbs = root.elements();
    while let Some(verb) = verbs.next() {
        match verb.name.as_str() {
            "Say" => preamble.push(format!("say \"{}\"", verb.text().trim())),
            "Play" => preamble.push(format!("play {}", verb.text().trim())),
            "Pause" => preamble.push(format!("pause {}s", verb.attr("length").unwrap_or("1"))),
            "Start" => preamble.push("start".to_owned()),
            "Connect" => {
                let mut target = connect(verb)?;
                target.preamble = preamble;
                target.action = verb.attr("action").map(str::to_owned);
                target.after = follow_ups(verbs);
                return Ok(Twiml::Connect(target));
            }
            "Reject" => {
                let reason = verb.attr("reason").unwrap_or("rejected");
                return Ok(Twiml::Refused(format!("reject ({reason})")));
            }
            "Hangup" => return Ok(Twiml::Refused(refusal("hangup", &preamble))),
            other => return Err(invalid(format!("unsupported verb <{other}>"))),
        }
    }
    Ok(Twiml::Refused(refusal(
        "no <Connect>, Twilio hangs up",
        &preamble,
    )))
}

fn refusal(what: &str, preamble: &[String]) -> String {
    if preamble.is_empty() {
        what.to_owned()
    } else {
        format!("{what} after {}", preamble.join(", "))
    }
}

fn connect(verb: &Element) -> Result<StreamTarget, TwimlError> {
    if verb.has_text() {
        return Err(invalid("text inside <Connect>"));
    }
    let mut nouns = verb.elements();
    let (Some(stream), None) = (nouns.next(), nouns.next()) else {
        return Err(invalid("<Connect> must hold exactly one noun"));
    };
    if stream.name != "Stream" {
        return Err(invalid(format!(
            "<Connect><{}> is not a media stream",
            stream.name
        )));
    }
    if stream.has_text() {
        return Err(invalid("text inside <Stream>"));
    }
    let url = stream
        .attr("url")
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| invalid("<Stream> without url"))?;
    let mut target = StreamTarget {
        url: url.to_owned(),
        name: stream.attr("name").map(str::to_owned),
        ..StreamTarget::default()
    };
    for param in stream.elements() {
        if param.name != "Parameter" {
            return Err(invalid(format!("<{}> inside <Stream>", param.name)));
        }
        let (Some(name), Some(value)) = (param.attr("name"), param.attr("value")) else {
            return Err(invalid("<Parameter> needs name and value"));
        };
        if name.chars().count() + value.chars().count() >= PARAMETER_LIMIT {
            target.warnings.push(format!(
                "<Parameter name=\"{name}\"> name+value is not under {PARAMETER_LIMIT} characters"
            ));
        }
        target.parameters.insert(name.to_owned(), value.to_owned());
    }
    Ok(target)
}

/// Turns a `<Stream url>` into the URL Twilio would connect to: relative URLs resolve
/// against the webhook URL (`http`→`ws`, `https`→`wss`), and any query string is dropped
/// as Twilio drops it. Returns the URL and a warning when something was dropped. Plain
/// `ws` is accepted so the simulator can reach local gateways without TLS.
pub fn resolve_stream_url(
    raw: &str,
    webhook_url: &str,
) -> Result<(String, Vec<String>), TwimlError> {
    let base = url::Url::parse(webhook_url)
        .map_err(|e| invalid(format!("webhook url {webhook_url}: {e}")))?;
    let mut url = base
        .join(raw)
        .map_err(|e| invalid(format!("stream url {raw:?}: {e}")))?;
    let scheme = match url.scheme() {
        "http" => Some("ws"),
        "https" => Some("wss"),
        "ws" | "wss" => None,
        other => return Err(invalid(format!("stream url scheme {other:?} is not wss"))),
    };
    if let Some(scheme) = scheme {
        url.set_scheme(scheme)
            .map_err(|()| invalid(format!("stream url {raw:?}: cannot use {scheme}")))?;
    }
    let mut warnings = Vec::new();
    if url.query().is_some() {
        warnings.push(format!(
            "stream url {raw:?} has a query string, which Twilio drops"
        ));
        url.set_query(None);
    }
    Ok((url.to_string(), warnings))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connect_stream_with_parameters_and_preamble() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>One moment &amp; please.</Say>
  <Connect action="https://gw.example.com/twilio/connect-done">
    <Stream url="wss://gw.example.com/twilio/stream/tnt_42" name="ai-leg">
      <Parameter name="tenant_id" value="tnt_42"/>
      <Parameter name="from" value="+15551234567"/>
    </Stream>
  </Connect>
</Response>"#;
        let Twiml::Connect(t) = parse_twiml(doc).unwrap() else {
            panic!("not a connect");
        };
        assert_eq!(t.url, "wss://gw.example.com/twilio/stream/tnt_42");
        assert_eq!(t.name.as_deref(), Some("ai-leg"));
        assert_eq!(
            t.parameters.get("tenant_id").map(String::as_str),
            Some("tnt_42")
        );
        assert_eq!(
            t.parameters.get("from").map(String::as_str),
            Some("+15551234567")
        );
        assert_eq!(t.preamble, ["say \"One moment & please.\""]);
        assert_eq!(
            t.action.as_deref(),
            Some("https://gw.example.com/twilio/connect-done")
        );
        assert!(t.after.is_empty());
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn verbs_after_connect_are_kept_for_when_the_stream_ends() {
        let doc = r#"<Response><Connect><Stream url="wss://a/b"/></Connect><Say>Sorry.</Say><Hangup/><Say>never</Say></Response>"#;
        let Twiml::Connect(t) = parse_twiml(doc).unwrap() else {
            panic!("not a connect");
        };
        assert_eq!(t.action, None);
        assert_eq!(
            t.after,
            [
                FollowUp::Say("Sorry.".into()),
                FollowUp::Hangup,
                FollowUp::Say("never".into())
            ]
        );
        assert_eq!(
            parse_follow_up("<Response><Hangup/></Response>").unwrap(),
            [FollowUp::Hangup]
        );
    }

    #[test]
    fn refusals_say_which() {
        assert_eq!(
            parse_twiml(r#"<Response><Reject reason="busy"/></Response>"#).unwrap(),
            Twiml::Refused("reject (busy)".into())
        );
        assert_eq!(
            parse_twiml("<Response><Reject/></Response>").unwrap(),
            Twiml::Refused("reject (rejected)".into())
        );
        assert_eq!(
            parse_twiml("<Response><Say>Not in service.</Say><Hangup/></Response>").unwrap(),
            Twiml::Refused("hangup after say \"Not in service.\"".into())
        );
        assert_eq!(
            parse_twiml("<Response/>").unwrap(),
            Twiml::Refused("no <Connect>, Twilio hangs up".into())
        );
    }

    #[test]
    fn anything_else_is_an_error() {
        for bad in [
            "<Response><Dial>+15551234567</Dial></Response>",
            "<Response><Connect><Room>r</Room></Connect></Response>",
            "<Response><Connect><Stream/></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://a/b\"><Parameter name=\"x\"/></Stream></Connect></Response>",
            "<Response><Connect><Stream url=\"wss://a/b\"/><Stream url=\"wss://a/c\"/></Connect></Response>",
            "<Respond/>",
            "<Response>hello</Response>",
            "not xml",
        ] {
            assert!(parse_twiml(bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn oversized_parameters_are_flagged() {
        let long = "x".repeat(495);
        let doc = format!(
            "<Response><Connect><Stream url=\"wss://a/b\"><Parameter name=\"abcde\" value=\"{long}\"/></Stream></Connect></Response>"
        );
        let Twiml::Connect(t) = parse_twiml(&doc).unwrap() else {
            panic!("not a connect");
        };
        assert_eq!(t.warnings.len(), 1);
    }

    #[test]
    fn stream_urls_resolve_like_twilio() {
        let hook = "https://gw.example.com/twilio/voice";
        assert_eq!(
            resolve_stream_url("/twilio/stream/t1", hook).unwrap(),
            ("wss://gw.example.com/twilio/stream/t1".to_owned(), vec![])
        );
        let (url, warnings) = resolve_stream_url("wss://gw.example.com/s?token=1", hook).unwrap();
        assert_eq!(url, "wss://gw.example.com/s");
        assert_eq!(warnings.len(), 1);
        let (url, warnings) =
            resolve_stream_url("/s", "http://127.0.0.1:8080/twilio/voice").unwrap();
        assert_eq!(url, "ws://127.0.0.1:8080/s");
        assert!(warnings.is_empty());
        assert!(resolve_stream_url("ftp://x/y", hook).is_err());
    }
}
