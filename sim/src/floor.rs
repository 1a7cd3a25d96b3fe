//! `sim floor`: the calibration floor, a relay with no logic.
//!
//! It does the least any Twilio ↔ Realtime bridge must: answers the webhook with a
//! `<Connect><Stream>` to itself (same `<Parameter>` names as the gateway, no signature
//! checks), opens the Realtime session when the stream starts (bearer key, minimal GA
//! `session.update`, `response.create` once `session.updated` arrives), forwards each
//! caller `media` payload as `input_audio_buffer.append` and each
//! `response.output_audio.delta` as a Twilio `media` plus a `mark`, so a caller behaves
//! exactly as it does against the gateway. It runs on the gateway's stack (tokio, axum
//! WebSockets towards Twilio, tokio-tungstenite towards Realtime, serde_json), so a load
//! run against it measures the cost of relaying itself, and the gateway's numbers over the
//! floor's isolate what the gateway's own logic costs. By default both sockets are tuned
//! for small real-time messages (TCP_NODELAY, 4 KiB WebSocket read buffers): the floor is
//! then the best a relay on this stack can do; [`FloorConfig::tuned`] `= false` keeps the
//! stack's defaults instead.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as TwMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Form, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as RtMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Handshake limit towards the Realtime endpoint (the gateway's default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// WebSocket read buffer when tuned. Messages here are ~300 bytes; tungstenite's default
/// (128 KiB) is resident per socket and zero-filled before every read.
const READ_BUFFER: usize = 4 * 1024;
/// How long closing each socket may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The minimal GA session: µ-law both ways, so payloads pass through untouched.
const SESSION_UPDATE: &str = r#"{"type":"session.update","session":{"type":"realtime","output_modalities":["audio"],"audio":{"input":{"format":{"type":"audio/pcmu"}},"output":{"format":{"type":"audio/pcmu"}}}}}"#;
const RESPONSE_CREATE: &str = r#"{"type":"response.create"}"#;

/// How to run the floor.
#[derive(Debug, Clone)]
pub struct FloorConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Realtime WebSocket URL (`?model=` is added).
    pub realtime_url: String,
    /// Model for `?model=`.
    pub model: String,
    /// Bearer key sent to the Realtime endpoint.
    pub api_key: String,
    /// Tune both sockets for small real-time messages: TCP_NODELAY and 4 KiB WebSocket read
    /// buffers. `false` keeps the stack's defaults (Nagle's algorithm on, 128 KiB read
    /// buffers), to measure what those cost a relay.
    pub tuned: bool,
}

/// Why the floor could not start.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running floor relay; stops when dropped.
#[derive(Debug)]
pub struct Floor {
    addr: SocketAddr,
    server: JoinHandle<()>,
}

struct FloorState {
    tuned: bool,
    ws_base: String,
    realtime_url: String,
    api_key: String,
}

impl Floor {
    /// Binds and starts serving.
    pub async fn start(cfg: FloorConfig) -> Result<Self, FloorError> {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| FloorError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FloorError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let state = Arc::new(FloorState {
            tuned: cfg.tuned,
            ws_base: format!("ws://{addr}"),
            realtime_url: with_model(&cfg.realtime_url, &cfg.model),
            api_key: cfg.api_key,
        });
        let app = Router::new()
            .route("/twilio/voice", post(voice))
            .route("/twilio/stream/{tenant}/{call_sid}", any(stream))
            .with_state(state);
        // Nagle's algorithm would hold each mark (and the media behind it) until the
        // previous segment is acknowledged: up to one caller frame (20 ms) on loopback, a
        // round trip on a real network. A relay sends small real-time messages, so it is off.
        let tuned = cfg.tuned;
        let listener = listener.tap_io(move |tcp| {
            if tuned {
                let _ = tcp.set_nodelay(true);
            }
        });
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "floor: HTTP server failed");
            }
        });
        Ok(Self { addr, server })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn with_model(url: &str, model: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let model: String = form_urlencoded::byte_serialize(model.as_bytes()).collect();
    format!("{url}{sep}model={model}")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

async fn voice(
    State(st): State<Arc<FloorState>>,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| params.get(k).map_or("", String::as_str);
    let call_sid: String = get("CallSid")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let twiml = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{base}/twilio/stream/floor/{sid}">"#,
            r#"<Parameter name="tenant" value="floor"/><Parameter name="from" value="{from}"/>"#,
            r#"<Parameter name="to" value="{to}"/><Parameter name="token" value="floor"/>"#,
            "</Stream></Connect></Response>"
        ),
        base = st.ws_base,
        sid = call_sid,
        from = xml_escape(get("From")),
        to = xml_escape(get("To")),
    );
    ([(header::CONTENT_TYPE, "text/xml")], twiml).into_response()
}

async fn stream(
    State(st): State<Arc<FloorState>>,
    Path((_tenant, _call_sid)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Response {
    let ws = if st.tuned {
        ws.read_buffer_size(READ_BUFFER)
    } else {
        ws
    };
    ws.on_upgrade(move |socket| relay(st, socket))
}

#[derive(Deserialize)]
struct TwilioIn<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, rename = "streamSid", borrow)]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    media: Option<TwilioMedia<'a>>,
}

#[derive(Deserialize)]
struct TwilioMedia<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RealtimeIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    delta: Option<Cow<'a, str>>,
}

/// Appends `s` as a JSON string literal. Text that needs no escaping (base64 payloads,
/// SIDs, mark names: every per-frame value) is copied as is; anything else goes through
/// serde_json. The floor must be the cheapest correct relay, so it builds its per-frame
/// messages the cheapest correct way (one buffer, no intermediate values).
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

fn append(payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() + 48);
    out.push_str(r#"{"type":"input_audio_buffer.append","audio":"#);
    push_json_str(&mut out, payload);
    out.push('}');
    out
}

fn media(stream_sid: &str, payload: &str) -> String {
    let mut out = String::with_capacity(stream_sid.len() + payload.len() + 64);
    out.push_str(r#"{"event":"media","streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push_str(r#","media":{"payload":"#);
    push_json_str(&mut out, payload);
    out.push_str("}}");
    out
}

fn mark(stream_sid: &str, n: u64) -> String {
    let mut out = String::with_capacity(stream_sid.len() + 64);
    out.push_str(r#"{"event":"mark","streamSid":"#);
    push_json_str(&mut out, stream_sid);
    out.push_str(r#","mark":{"name":"m"#);
    out.push_str(&n.to_string());
    out.push_str(r#""}}"#);
    out
}

async fn connect_realtime(
    st: &FloorState,
) -> Option<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let mut req = st.realtime_url.as_str().into_client_request().ok()?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", st.api_key)).ok()?;
    req.headers_mut().insert("authorization", auth);
    let config = st
        .tuned
        .then(|| WebSocketConfig::default().read_buffer_size(READ_BUFFER));
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(req, config, st.tuned),
    )
    .await
    {
        Ok(Ok((ws, _))) => Some(ws),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "floor: Realtime connect failed");
            None
        }
        Err(_) => {
            tracing::warn!("floor: Realtime connect timed out");
            None
        }
    }
}

async fn relay(st: Arc<FloorState>, socket: WebSocket) {
    // One task owns each socket, so neither is split (a split takes a lock on every poll).
    let mut tw = socket;
    let stream_sid = loop {
        match tw.next().await {
            Some(Ok(TwMessage::Text(t))) => {
                if let Ok(m) = serde_json::from_str::<TwilioIn<'_>>(t.as_str())
                    && m.event == "start"
                    && let Some(sid) = m.stream_sid
                {
                    break sid.into_owned();
                }
            }
            Some(Ok(TwMessage::Close(_)) | Err(_)) | None => return,
            Some(Ok(_)) => {}
        }
    };
    let Some(mut rt) = connect_realtime(&st).await else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, tw.close()).await;
        return;
    };
    let mut rt_open = rt.send(RtMessage::text(SESSION_UPDATE)).await.is_ok();
    let mut tw_open = true;
    let mut greeted = false;
    let mut marks = 0u64;
    while rt_open && tw_open {
        tokio::select! {
            msg = tw.next() => match msg {
                Some(Ok(TwMessage::Text(t))) => {
                    let Ok(m) = serde_json::from_str::<TwilioIn<'_>>(t.as_str()) else { continue };
                    match (m.event.as_ref(), m.media) {
                        ("media", Some(media)) => {
                            rt_open = rt.send(RtMessage::text(append(&media.payload))).await.is_ok();
                        }
                        ("stop", _) => tw_open = false,
                        _ => {}
                    }
                }
                Some(Ok(TwMessage::Close(_)) | Err(_)) | None => tw_open = false,
                Some(Ok(_)) => {}
            },
            msg = rt.next() => match msg {
                Some(Ok(RtMessage::Text(t))) => {
                    let Ok(ev) = serde_json::from_str::<RealtimeIn<'_>>(t.as_str()) else { continue };
                    match (ev.kind.as_ref(), ev.delta) {
                        ("response.output_audio.delta", Some(delta)) => {
                            marks += 1;
                            // Both frames in one write, as any bridge that batches would.
                            tw_open = tw.feed(TwMessage::Text(media(&stream_sid, &delta).into())).await.is_ok()
                                && tw.feed(TwMessage::Text(mark(&stream_sid, marks).into())).await.is_ok()
                                && tw.flush().await.is_ok();
                        }
                        ("session.updated", _) if !greeted => {
                            greeted = true;
                            rt_open = rt.send(RtMessage::text(RESPONSE_CREATE)).await.is_ok();
                        }
                        _ => {}
                    }
                }
                Some(Ok(RtMessage::Close(_)) | Err(_)) | None => rt_open = false,
                Some(Ok(_)) => {}
            },
        }
    }
    if rt_open {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, rt.send(RtMessage::Close(None))).await;
    }
    if tw_open {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, tw.close()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_valid_json_with_the_payload_untouched() {
        let p = "no+JhoaJjpzS/A==";
        let a: serde_json::Value = serde_json::from_str(&append(p)).unwrap();
        assert_eq!(a["type"], "input_audio_buffer.append");
        assert_eq!(a["audio"], p);
        let m: serde_json::Value = serde_json::from_str(&media("MZ1", p)).unwrap();
        assert_eq!(m["media"]["payload"], p);
        assert_eq!(m["streamSid"], "MZ1");
        let k: serde_json::Value = serde_json::from_str(&mark("MZ1", 3)).unwrap();
        assert_eq!(k["mark"]["name"], "m3");
        let s: serde_json::Value = serde_json::from_str(SESSION_UPDATE).unwrap();
        assert_eq!(s["session"]["type"], "realtime");
        assert_eq!(
            with_model("ws://h/v1/realtime", "gpt-realtime"),
            "ws://h/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(with_model("ws://h/r?x=1", "a b"), "ws://h/r?x=1&model=a+b");
        assert_eq!(xml_escape("a\"<&"), "a&quot;&lt;&amp;");
        // Text that needs escaping is still escaped.
        let odd: serde_json::Value = serde_json::from_str(&media("M\"Z\\1\n", "a")).unwrap();
        assert_eq!(odd["streamSid"], "M\"Z\\1\n");
    }
}
