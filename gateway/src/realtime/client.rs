//! Connecting to a Realtime endpoint over WebSocket.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Read buffer of a Realtime socket.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Largest server event accepted (`session.created` carries the full configuration).
const MAX_SERVER_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// An open Realtime WebSocket.
pub type RealtimeSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// The URL or key cannot form a request.
    #[error("bad Realtime request: {0}")]
    Request(String),
    /// TCP, TLS or the WebSocket handshake failed (includes HTTP 401/403 from OpenAI).
    #[error("connecting to {url}: {source}")]
    Connect {
        /// URL (without the key).
        url: String,
        /// Cause.
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// No answer in time.
    #[error("connecting to {0} timed out")]
    Timeout(String),
}

/// What a backend needs to open one session. Its `Debug` never prints the API key.
#[derive(Clone)]
pub struct ConnectParams {
    /// Base WebSocket URL (`wss://api.openai.com/v1/realtime`).
    pub url: String,
    /// Model, appended as `?model=`.
    pub model: String,
    /// API key.
    pub api_key: String,
    /// The `session.update` sent right after the handshake, before any audio.
    pub session_update: String,
}

impl std::fmt::Debug for ConnectParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectParams")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The seam between a call and its voice model backend. The GA Realtime WebSocket is the
/// one implementation today; a SIP-direct or GPT-Live backend would be another.
pub trait RealtimeBackend: Send + Sync + 'static {
    /// Opens a session configured with `params.session_update`.
    fn connect(
        &self,
        params: ConnectParams,
    ) -> Pin<Box<dyn Future<Output = Result<RealtimeSocket, RealtimeError>> + Send>>;
}

/// The OpenAI Realtime GA WebSocket backend.
#[derive(Debug, Clone)]
pub struct WsBackend {
    /// Handshake timeout.
    pub timeout: Duration,
}

impl Default for WsBackend {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
        }
    }
}

/// `url` with `?model=` (or `&model=`) appended.
pub fn url_with_model(url: &str, model: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let model: String = form_urlencoded::byte_serialize(model.as_bytes()).collect();
    format!("{url}{sep}model={model}")
}

impl RealtimeBackend for WsBackend {
    fn connect(
        &self,
        params: ConnectParams,
    ) -> Pin<Box<dyn Future<Output = Result<RealtimeSocket, RealtimeError>> + Send>> {
        let timeout = self.timeout;
        Box::pin(async move {
            let url = url_with_model(&params.url, &params.model);
            let mut req = url
                .as_str()
                .into_client_request()
                .map_err(|e| RealtimeError::Request(e.to_string()))?;
            let auth =
                HeaderValue::from_str(&format!("Bearer {}", params.api_key)).map_err(|_| {
                    RealtimeError::Request("API key is not a valid header value".into())
                })?;
            // GA only: no `OpenAI-Beta` header (OpenAI refuses the beta shape).
            req.headers_mut().insert("authorization", auth);
            // Small read buffer (deltas are a few KB; the 128 KiB default is per call) and
            // no Nagle delay on the frames we relay.
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_BYTES)
                .max_message_size(Some(MAX_SERVER_MESSAGE_BYTES));
            let connect = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
            let (mut ws, _resp) = tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| RealtimeError::Timeout(url.clone()))?
                .map_err(|e| RealtimeError::Connect {
                    url: url.clone(),
                    source: Box::new(e),
                })?;
            ws.send(Message::text(params.session_update))
                .await
                .map_err(|e| RealtimeError::Connect {
                    url,
                    source: Box::new(e),
                })?;
            Ok(ws)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_added_to_the_query() {
        assert_eq!(
            url_with_model("wss://api.openai.com/v1/realtime", "gpt-realtime"),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(
            url_with_model("wss://x/r?api-version=1", "m"),
            "wss://x/r?api-version=1&model=m"
        );
    }
}
