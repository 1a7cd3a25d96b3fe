//! Reads a few top-level fields of a JSON object in one pass, without building a value.
//!
//! The load generator receives about a hundred messages per call per second and needs two
//! or three fields of each (`event`, `streamSid`, a payload's first 16 characters). A full
//! serde parse of every message was a measurable share of the generator's CPU, and the
//! generator's own cost caps how many calls one core can drive. This scanner checks the
//! object's structure (balanced, strings terminated, literals and numbers made of legal
//! characters, nothing after the object) and returns the raw text of the wanted fields;
//! strings are unescaped only when they contain an escape.

use std::borrow::Cow;

/// One field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<'a> {
    /// A string, unescaped.
    Str(Cow<'a, str>),
    /// An object, as its raw text including the braces.
    Object(&'a str),
    /// Anything else (number, literal, array), as raw text.
    Other(&'a str),
}

impl<'a> Field<'a> {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The object's raw text, if this is one.
    pub fn as_object(&self) -> Option<&'a str> {
        match self {
            Field::Object(o) => Some(o),
            _ => None,
        }
    }
}

/// The values of the top-level fields `names` of the JSON object `text`, in the order of
/// `names` (`None` for a field that is absent). `None` overall when `text` is not a JSON
/// object. A repeated field keeps its last value, as most JSON readers do.
pub fn fields<'a, const N: usize>(
    text: &'a str,
    names: [&str; N],
) -> Option<[Option<Field<'a>>; N]> {
    let mut c = Cursor {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let mut out: [Option<Field<'a>>; N] = std::array::from_fn(|_| None);
    c.ws();
    c.eat(b'{')?;
    c.ws();
    if c.peek() == Some(b'}') {
        c.i += 1;
    } else {
        loop {
            c.ws();
            let (ks, ke, kesc) = c.string()?;
            c.ws();
            c.eat(b':')?;
            c.ws();
            let key = &text[ks..ke];
            let want = if kesc {
                None // no wanted name needs escaping
            } else {
                names.iter().position(|n| *n == key)
            };
            match want {
                Some(at) => out[at] = Some(c.value()?),
                None => c.skip_value()?,
            }
            c.ws();
            match c.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == c.b.len()).then_some(out)
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string starting at the cursor: (content start, content end, has escapes); the
    /// cursor ends after the closing quote.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            match self.next()? {
                b'"' => return Some((start, self.i - 1, escaped)),
                b'\\' => {
                    escaped = true;
                    self.next()?;
                }
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    fn value(&mut self) -> Option<Field<'a>> {
        match self.peek()? {
            b'"' => {
                let (s, e, esc) = self.string()?;
                if esc {
                    // Rare: let serde decode (and check) the escapes.
                    let quoted = &self.s[s - 1..=e];
                    serde_json::from_str::<String>(quoted)
                        .ok()
                        .map(|v| Field::Str(Cow::Owned(v)))
                } else {
                    Some(Field::Str(Cow::Borrowed(&self.s[s..e])))
                }
            }
            b'{' => {
                let s = self.i;
                self.skip_value()?;
                Some(Field::Object(&self.s[s..self.i]))
            }
            _ => {
                let s = self.i;
                self.skip_value()?;
                Some(Field::Other(&self.s[s..self.i]))
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                // Brackets must nest properly; strings inside may hold any bracket.
                let mut stack: Vec<u8> = Vec::new();
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' => stack.push(b'}'),
                        b'[' => stack.push(b']'),
                        c @ (b'}' | b']') => {
                            if stack.pop()? != c {
                                return None;
                            }
                            if stack.is_empty() {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        c if c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r') => return None,
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let s = self.i;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a'..=b'z')
                ) {
                    self.i += 1;
                }
                let tok = &self.b[s..self.i];
                let literal = matches!(tok, b"true" | b"false" | b"null");
                let number = !tok.is_empty()
                    && tok
                        .iter()
                        .all(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
                (literal || number).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_of(f: &Option<Field<'_>>) -> Option<String> {
        f.as_ref().and_then(|f| f.as_str()).map(str::to_owned)
    }

    #[test]
    fn reads_the_wanted_fields_in_any_order() {
        let m = r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"outbound","payload":"AAAA"}}"#;
        let [event, sid, media, mark] = fields(m, ["event", "streamSid", "media", "mark"]).unwrap();
        assert_eq!(str_of(&event).as_deref(), Some("media"));
        assert_eq!(str_of(&sid).as_deref(), Some("MZ1"));
        assert_eq!(mark, None);
        let media = media.unwrap();
        let [payload] = fields(media.as_object().unwrap(), ["payload"]).unwrap();
        assert_eq!(str_of(&payload).as_deref(), Some("AAAA"));

        let reordered = " { \"media\" : { \"payload\" : \"x\" } ,\n\"streamSid\":\"MZ2\", \"event\" : \"media\" } ";
        let [event, sid] = fields(reordered, ["event", "streamSid"]).unwrap();
        assert_eq!(str_of(&event).as_deref(), Some("media"));
        assert_eq!(str_of(&sid).as_deref(), Some("MZ2"));
        assert_eq!(fields("{}", ["a"]).unwrap(), [None]);
    }

    #[test]
    fn escapes_are_decoded_and_skipped_values_may_hold_anything() {
        let m = r#"{"x":[1,{"y":"}]\""},-2.5e3,true,null],"mark":{"name":"a\"b\u00e9"},"n":12,"event":"mark"}"#;
        let [mark, event, n] = fields(m, ["mark", "event", "n"]).unwrap();
        let [name] = fields(mark.unwrap().as_object().unwrap(), ["name"]).unwrap();
        assert_eq!(str_of(&name).as_deref(), Some("a\"bé"));
        assert_eq!(str_of(&event).as_deref(), Some("mark"));
        assert_eq!(n, Some(Field::Other("12")));
    }

    #[test]
    fn anything_that_is_not_one_json_object_is_refused() {
        for bad in [
            "",
            "nope",
            "[]",
            "42",
            r#"{"event":"media""#,
            r#"{"event":"media",}"#,
            r#"{"event" "media"}"#,
            r#"{"event":"media"} trailing"#,
            r#"{"event":"me"#,
            r#"{"a":[1,2}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":tru}"#,
            r#"{"a":}"#,
            "{\"a\":\"line\nbreak\"}",
            r#"{"a":"\x"}"#,
        ] {
            assert!(fields(bad, ["event", "a"]).is_none(), "accepted {bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(bad).is_err(),
                "serde accepts {bad:?}"
            );
        }
    }

    #[test]
    fn agrees_with_serde_on_the_relays_messages() {
        let msgs = [
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"U2JMZAAAAAEAAAAC/w=="}}"#,
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"item_1:20:g0:m1"}}"#,
            r#"{"event":"clear","streamSid":"MZ1"}"#,
            r#"{"type":"input_audio_buffer.append","audio":"U2JMZA=="}"#,
            r#"{"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcmu"}}},"tools":[],"temperature":0.8}}"#,
        ];
        for m in msgs {
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            let got = fields(m, ["event", "streamSid", "type", "audio"]).unwrap();
            for (name, f) in ["event", "streamSid", "type", "audio"].iter().zip(got) {
                assert_eq!(
                    str_of(&f).as_deref(),
                    v.get(*name).and_then(|x| x.as_str()),
                    "{name} of {m}"
                );
            }
        }
    }
}
