//! Simulated Twilio caller.
