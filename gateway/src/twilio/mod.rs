//! Twilio: request signatures, TwiML, the Media Streams wire protocol, and the REST calls
//! call control needs.

pub mod media;
pub mod redact;
pub mod rest;
pub mod signature;
pub mod twiml;
