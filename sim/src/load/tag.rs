//! The measurement tag carried in every audio frame the load generator produces.
//!
//! A tagged frame's first 12 bytes are [`MAGIC`], a stream index and a frame sequence
//! number (big-endian u32 each); the other 148 bytes are µ-law tone. Twelve bytes encode to
//! exactly 16 base64 characters with no padding, so a sender appends a pre-encoded tail
//! instead of re-encoding the whole frame, and a receiver decodes only 16 characters.
//! Payloads the generator did not make (a relay's silence padding) carry no magic and are
//! ignored.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::mulaw;

/// Bytes of the tag at the start of a frame.
pub const TAG_BYTES: usize = 12;
/// Base64 characters that encode the tag.
const TAG_CHARS: usize = 16;
/// Marks a frame as the load generator's. As µ-law these are loud samples, which is fine:
/// nothing listens to this audio.
const MAGIC: [u8; 4] = *b"SbLd";

/// Who sent a frame and which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Call index (caller frames) or responder session index (assistant frames).
    pub stream: u32,
    /// Frame number within the stream, from 0.
    pub seq: u32,
}

/// Builds tagged 20 ms frames as base64.
#[derive(Debug, Clone)]
pub struct FrameEncoder {
    tail: String,
    plain: String,
}

impl FrameEncoder {
    /// An encoder whose frames end in 148 bytes of speech-like tone (`seed` varies it).
    pub fn new(seed: u32) -> Self {
        let frame = mulaw::speech(20, seed);
        Self {
            tail: STANDARD.encode(&frame[TAG_BYTES..]),
            plain: STANDARD.encode(&frame),
        }
    }

    /// An untagged frame of the same tone (starts at a zero crossing, so never the magic).
    pub fn plain(&self) -> &str {
        &self.plain
    }

    /// The base64 payload of frame `tag` (160 bytes decoded).
    #[cfg(test)]
    pub fn payload(&self, tag: Tag) -> String {
        let mut out = String::with_capacity(self.payload_len());
        self.push_payload(tag, &mut out);
        out
    }

    /// Base64 characters of a tagged payload.
    pub fn payload_len(&self) -> usize {
        TAG_CHARS + self.tail.len()
    }

    /// Appends the payload of frame `tag` to `out`, so a message is built in one buffer.
    pub fn push_payload(&self, tag: Tag, out: &mut String) {
        let mut head = [0u8; TAG_BYTES];
        head[..4].copy_from_slice(&MAGIC);
        head[4..8].copy_from_slice(&tag.stream.to_be_bytes());
        head[8..].copy_from_slice(&tag.seq.to_be_bytes());
        STANDARD.encode_string(head, out);
        out.push_str(&self.tail);
    }
}

/// The tag at the start of a base64 payload, if it carries one.
pub fn read_tag(payload: &str) -> Option<Tag> {
    let head = payload.as_bytes().get(..TAG_CHARS)?;
    let mut bytes = [0u8; TAG_BYTES];
    let n = STANDARD.decode_slice(head, &mut bytes).ok()?;
    if n != TAG_BYTES || bytes[..4] != MAGIC {
        return None;
    }
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some(Tag {
        stream: word(4),
        seq: word(8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_one_valid_160_byte_frame_and_its_tag_reads_back() {
        let enc = FrameEncoder::new(3);
        let tag = Tag {
            stream: 70_001,
            seq: 4_000_000_123,
        };
        let p = enc.payload(tag);
        let decoded = STANDARD.decode(&p).unwrap();
        assert_eq!(decoded.len(), mulaw::FRAME_BYTES);
        assert_eq!(&decoded[TAG_BYTES..], &mulaw::speech(20, 3)[TAG_BYTES..]);
        assert_eq!(read_tag(&p), Some(tag));
        assert_eq!(read_tag(enc.plain()), None);
        assert_eq!(STANDARD.decode(enc.plain()).unwrap(), mulaw::speech(20, 3));
    }

    #[test]
    fn foreign_payloads_carry_no_tag() {
        assert_eq!(read_tag(&STANDARD.encode(mulaw::silence(20))), None);
        assert_eq!(read_tag(&STANDARD.encode(mulaw::speech(20, 1))), None);
        assert_eq!(read_tag("U2JMZA"), None);
        assert_eq!(read_tag("not base64 at all!!"), None);
        assert_eq!(read_tag(""), None);
    }
}
