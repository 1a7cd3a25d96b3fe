//! Fuzz target bodies: each `pub fn name(data: &[u8])` feeds bytes to a real parser of
//! Switchboard through its public entry point and asserts what must hold for any input
//! (no panic; where cheap, a round trip or agreement between two implementations). A
//! failed assertion is a finding, exactly like a panic inside the parser.
//!
//! `fuzz/` (a cargo-fuzz project outside the workspace) wraps each function in a one-line
//! `fuzz_target!`; `tests/corpus.rs` runs every committed corpus and artifact file through
//! its target once, which is how CI runs the corpora. [`TARGETS`] is the one list of both.
//!
//! Modules: [`twilio`] (Media Streams messages, form bodies and signatures), [`realtime`]
//! (Realtime server events and client event builders), [`twiml`] (the simulator's TwiML
//! reader and the gateway's TwiML builder), [`manifest`] (VoiceTenant / KnowledgeBase
//! YAML), [`knowledge`] (chunking, HTML to text).

pub mod knowledge;
pub mod manifest;
pub mod realtime;
pub mod twilio;
pub mod twiml;

pub use knowledge::{chunk, html};
pub use manifest::manifest;
pub use realtime::realtime_event;
pub use twilio::{twilio_media, twilio_signature};
pub use twiml::{twiml, twiml_roundtrip};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target by its cargo-fuzz name (`fuzz/fuzz_targets/<name>.rs`, corpus in
/// `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("twilio_media", twilio_media),
    ("realtime_event", realtime_event),
    ("twilio_signature", twilio_signature),
    ("twiml", twiml),
    ("twiml_roundtrip", twiml_roundtrip),
    ("manifest", manifest),
    ("chunk", chunk),
    ("html", html),
];

/// The input as text. Every parser here reads `&str` (WebSocket text frames, HTTP bodies
/// and files are UTF-8 checked before they reach it), so invalid bytes are replaced rather
/// than the input thrown away: the fuzzer's byte mutations still reach the parser.
pub(crate) fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
