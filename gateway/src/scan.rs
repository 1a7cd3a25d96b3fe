//! A strict one-pass reader for the plain JSON objects peers send on every audio frame
//! (Twilio `media` and `mark`, Realtime `response.output_audio.delta`).
//!
//! It is the fast path in front of serde, never a replacement: it accepts only JSON whose
//! meaning is unambiguous without decoding anything (strings without escapes or control
//! characters, integers, objects of those) and refuses (`None`) everything else: escapes,
//! fractions, exponents, literals, arrays, malformed text. A caller that gets `None` parses
//! the same text with serde, which then gives the answer or the error it always gave, so
//! the fast path can change how fast a message is read but never what it means.

/// One member's value, as the fast path accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A string without escapes (its content, between the quotes).
    Str(&'a str),
    /// An integer (`-?(0|[1-9][0-9]*)`), as written.
    Int(&'a str),
    /// An object, as written (braces included); read it with [`object`].
    Object(&'a str),
}

impl<'a> Value<'a> {
    /// The string, if this is one.
    pub fn str(self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Calls `member(parent, key, value)` for each member of the JSON object `text` and of
/// the objects it holds, in order (`parent`: `None` for the top level, the key of the
/// object holding it for a nested member; an object's own call comes after its
/// members'), and returns `Some(())` when the whole text is such an object and every call
/// returned `Some`. `None` when the text holds anything the fast path does not read (see
/// the module) or when `member` refused: the caller then parses with serde. One pass:
/// nested members are not read again.
pub fn object<'a>(
    text: &'a str,
    mut member: impl FnMut(Option<&'a str>, &'a str, Value<'a>) -> Option<()>,
) -> Option<()> {
    let mut c = Cursor {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    c.ws();
    c.members(None, &mut member)?;
    c.ws();
    (c.i == c.b.len()).then_some(())
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

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// `{ "key": value, … }` at the cursor, inside the member `parent` (`None`: the top).
    fn members(
        &mut self,
        parent: Option<&'a str>,
        member: &mut impl FnMut(Option<&'a str>, &'a str, Value<'a>) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.value(parent, key, member)?;
            member(parent, key, value)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes or control characters; the cursor ends after it.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = string_end(&self.b[start..])?;
        self.i = start + len;
        self.eat(b'"')?; // a backslash or a control character: not for the fast path
        self.s.get(start..start + len)
    }

    /// The value of member `key` (inside `parent`) at the cursor.
    fn value(
        &mut self,
        parent: Option<&'a str>,
        key: &'a str,
        member: &mut impl FnMut(Option<&'a str>, &'a str, Value<'a>) -> Option<()>,
    ) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            // One level of nesting (Twilio's `media`, `mark`); deeper is serde's.
            b'{' if parent.is_none() => {
                let start = self.i;
                self.members(Some(key), member)?;
                self.s.get(start..self.i).map(Value::Object)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                self.eat(b'-');
                match self.peek()? {
                    b'0' => self.i += 1,
                    b'1'..=b'9' => {
                        while matches!(self.peek(), Some(b'0'..=b'9')) {
                            self.i += 1;
                        }
                    }
                    _ => return None,
                }
                // A fraction or an exponent follows: serde's business.
                if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'0'..=b'9')) {
                    return None;
                }
                self.s.get(start..self.i).map(Value::Int)
            }
            _ => None,
        }
    }
}

/// Where the string content `b` ends: the first `"`, `\\` or control character. Read
/// eight bytes at a time (a base64 payload is a few hundred bytes, on every frame).
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero when a byte of `v` is zero (exact as to whether, not as to which).
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut at = 0;
    for chunk in b.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let special = zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if special != 0 {
            break;
        }
        at += 8;
    }
    b[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|n| at + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Option<Vec<(String, Value<'_>)>> {
        let mut out = Vec::new();
        object(text, |p, k, v| {
            out.push((
                format!("{}{k}", p.map_or(String::new(), |p| format!("{p}."))),
                v,
            ));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn reads_plain_objects() {
        let m = members(r#" {"a":"x","b":-12,"c":{"d":"e","f":0}, "g" : "" } "#).unwrap();
        assert_eq!(
            m,
            vec![
                ("a".into(), Value::Str("x")),
                ("b".into(), Value::Int("-12")),
                ("c.d".into(), Value::Str("e")),
                ("c.f".into(), Value::Int("0")),
                ("c".into(), Value::Object(r#"{"d":"e","f":0}"#)),
                ("g".into(), Value::Str("")),
            ]
        );
        assert_eq!(members("{}"), Some(vec![]));
        assert_eq!(members(r#"{"é":"ü"}"#).unwrap()[0].1, Value::Str("ü"));
    }

    #[test]
    fn refuses_what_it_does_not_read_or_what_is_not_json() {
        for text in [
            "",
            " ",
            "[]",
            "\"a\"",
            "1",
            "{",
            "}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":"x",}"#,
            r#"{,"a":"x"}"#,
            r#"{"a":"x""b":"y"}"#,
            r#"{"a":"x"} x"#,
            r#"{"a":"x"}{}"#,
            r#"{"a":"x\"y"}"#,
            r#"{"a":"x\\y"}"#,
            r#"{"a":"\u0041"}"#,
            "{\"a\":\"x\ny\"}",
            "{\"a\":\"x\u{1}\"}",
            r#"{"a\"":"x"}"#,
            r#"{"a":"x}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":1E3}"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":-a}"#,
            r#"{"a":+1}"#,
            r#"{"a":true}"#,
            r#"{"a":false}"#,
            r#"{"a":null}"#,
            r#"{"a":[]}"#,
            r#"{"a":{"b":{"c":"d"}}}"#,
            r#"{"a":{"b":[1]}}"#,
            r#"{"a":{"b":"c",}}"#,
            r#"{"a":{"b":"c"}"#,
            r#"{"a":'x'}"#,
        ] {
            assert_eq!(members(text), None, "{text:?}");
        }
    }

    #[test]
    fn string_ends_are_found_at_every_position() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
                let mut b = vec![b'a'; len];
                assert_eq!(string_end(&b), None);
                // Bytes that look like the special ones to a careless word test.
                for (i, x) in b.iter_mut().enumerate() {
                    *x = [b'a', 0x20, 0x21, 0x7f, 0x80, 0xff, b'#', b'['][i % 8];
                }
                assert_eq!(string_end(&b), None, "{b:?}");
                for at in 0..len {
                    let mut c = b.clone();
                    c[at] = special;
                    assert_eq!(string_end(&c), Some(at), "{c:?}");
                }
            }
        }
    }

    #[test]
    fn a_refusing_member_refuses_the_object() {
        assert_eq!(
            object(r#"{"a":"x","b":"y"}"#, |_, k, _| (k != "b").then_some(())),
            None
        );
    }
}
