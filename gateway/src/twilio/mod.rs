//! Twilio: request signatures, TwiML, and the Media Streams wire protocol.

pub mod media;
pub mod redact;
pub mod signature;
pub mod twiml;
