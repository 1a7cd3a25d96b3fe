//! The OpenAI Realtime API, GA shapes only: session configuration, wire events, and the
//! WebSocket client behind a small backend trait.

pub mod client;
pub mod session_config;
pub mod wire;

pub use client::{RealtimeBackend, RealtimeError, RealtimeSocket, WsBackend};
