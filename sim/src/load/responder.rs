//! A minimal GA Realtime responder for load: it talks without pause and listens only to
//! measure.
//!
//! Per connection: `session.created`; `session.updated` for each `session.update`; on the
//! first `response.create` (or right after `session.updated` when configured) one response
//! opens and streams 20 ms µ-law deltas at real time until the socket closes. Each
//! `input_audio_buffer.append` is read only for its tag, to time the inbound relay. Unlike
//! the full simulator (`crate::realtime`) there is no VAD, no script and no validation:
//! the point is steady traffic both ways at the lowest cost per frame. The handshake check
//! and the session and item objects are the full simulator's (`crate::realtime::wire`).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::frames::{Conn, Frame};
use super::ga::{self, Ids};
use super::scan::{self, Field};
use super::shared::{Gauge, Shared};
use super::tag::{FrameEncoder, Tag, read_tag};

/// One frame of assistant audio, 20 ms.
const FRAME: Duration = Duration::from_millis(20);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// How the responder behaves.
#[derive(Debug, Clone, Copy)]
pub struct ResponderConfig {
    /// Held before answering each WebSocket handshake (stands in for TCP+TLS+WS to OpenAI).
    pub handshake_delay: Duration,
    /// Start talking right after `session.updated` instead of waiting for `response.create`.
    pub talk_on_session_updated: bool,
    /// How far ahead of real time the audio runs: the first deltas go out at once, then
    /// one every 20 ms (the real API generates faster than playout, so Twilio holds
    /// audio ahead of the caller).
    pub lead: Duration,
}

/// Serves `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, cfg: ResponderConfig, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let index = shared
                    .sessions
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                tokio::spawn(session(stream, index, cfg, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "load responder: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// The handshake check: the Realtime path and a bearer key, as OpenAI requires.
#[allow(clippy::result_large_err)] // the signature is tungstenite's callback type
fn check_request(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    let refuse = |status: StatusCode, why: &str| {
        let mut r = ErrorResponse::new(Some(why.to_owned()));
        *r.status_mut() = status;
        r
    };
    if !req.uri().path().starts_with("/v1/realtime") {
        return Err(refuse(StatusCode::NOT_FOUND, "not a Realtime endpoint"));
    }
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if crate::realtime::wire::bearer_key(authorization).is_none() {
        return Err(refuse(StatusCode::UNAUTHORIZED, "missing bearer API key"));
    }
    Ok(resp)
}

async fn session(stream: TcpStream, index: u32, cfg: ResponderConfig, shared: Arc<Shared>) {
    let _open = Gauge::up(&shared.sessions_open);
    if !cfg.handshake_delay.is_zero() {
        tokio::time::sleep(cfg.handshake_delay).await;
    }
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        check_request,
        Some(super::ws_config()),
    )
    .await
    {
        Ok(ws) => ws,
        Err(_) => {
            Shared::bump(&shared.sessions_refused);
            return;
        }
    };
    // The handshake was tungstenite's; the open connection is framed by `frames` (see
    // there why). The relay sends nothing before the handshake's answer, so nothing is
    // left in tungstenite's buffer.
    let mut conn = Conn::new(ws.into_inner(), false);
    let ids = Ids::new(shared.run_id, index);
    let mut events = 0u64;
    let mut event_id = || {
        events += 1;
        format!("event_{}_c{events}", ids.session)
    };
    conn.queue_text(&ga::session_event("session.created", &event_id(), &ids));
    if conn.flush().await.is_err() {
        return;
    }
    let encoder = FrameEncoder::new(index % 7 + 1);
    let untagged = !shared.outbound.sent_at.has(index);
    let prefix = ga::delta_prefix(&ids);
    // Set when the response starts; the timer is armed only from then on.
    let mut talk_start: Option<Instant> = None;
    let mut seq = 0u32;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut replies: Vec<String> = Vec::new();

    loop {
        tokio::select! {
            // The socket first: its messages carry receive times, and a fixed order
            // spares a random draw per wake-up.
            biased;
            read = conn.fill() => {
                let at = shared.clock.now_ns();
                if read.is_err() {
                    break;
                }
                let mut closing = false;
                loop {
                    let text = match conn.next_frame() {
                        Ok(Some(Frame::Text(r))) => match conn.text(&r) {
                            Ok(t) => t,
                            Err(_) => {
                                closing = true;
                                break;
                            }
                        },
                        Ok(Some(Frame::Other)) => continue,
                        Ok(None) => break,
                        Ok(Some(Frame::Close)) | Err(_) => {
                            closing = true;
                            break;
                        }
                    };
                    let Some([kind, audio]) = scan::fields(text, ["type", "audio"]) else {
                        continue;
                    };
                    let start = match kind.as_ref().and_then(Field::as_str).unwrap_or("") {
                        "input_audio_buffer.append" => {
                            if let Some(tag) = audio.as_ref().and_then(Field::as_str).and_then(read_tag) {
                                shared.inbound.received(tag, at);
                            }
                            false
                        }
                        "session.update" => {
                            replies.push(ga::session_event("session.updated", &event_id(), &ids));
                            cfg.talk_on_session_updated
                        }
                        "response.create" => true,
                        _ => false,
                    };
                    if start && talk_start.is_none() {
                        replies.extend(ga::response_start(&ids, &mut event_id));
                        let now = Instant::now();
                        talk_start = Some(now.checked_sub(cfg.lead).unwrap_or(now));
                        timer.as_mut().reset(now);
                    }
                }
                for r in replies.drain(..) {
                    conn.queue_text(&r);
                }
                if closing || conn.flush().await.is_err() {
                    break;
                }
            }
            () = &mut timer, if talk_start.is_some() => {
                let tag = Tag { stream: index, seq };
                // More sessions than table rows: still real traffic, just not timed.
                let delta = if untagged {
                    ga::delta(&prefix, seq, encoder.plain())
                } else {
                    ga::delta_with(&prefix, seq, encoder.payload_len(), |s| encoder.push_payload(tag, s))
                };
                if !untagged {
                    shared.outbound.sending(tag, shared.clock.now_ns());
                }
                conn.queue_text(&delta);
                if conn.flush().await.is_err() {
                    break;
                }
                seq = seq.wrapping_add(1);
                if let Some(t0) = talk_start {
                    // Absolute schedule: a late tick is caught up, never drifts.
                    timer.as_mut().reset(t0 + FRAME * seq);
                }
            }
        }
    }
    conn.queue_close();
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.flush()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_needs_the_realtime_path_and_a_bearer_key() {
        let req = |path: &str, auth: Option<&str>| {
            let mut b = Request::builder().uri(path);
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            b.body(()).unwrap()
        };
        let ok = check_request(
            &req("/v1/realtime?model=gpt-realtime", Some("Bearer sk-x")),
            Response::new(()),
        );
        assert!(ok.is_ok());
        let no_key = check_request(&req("/v1/realtime", None), Response::new(()));
        assert_eq!(no_key.unwrap_err().status(), StatusCode::UNAUTHORIZED);
        let empty = check_request(&req("/v1/realtime", Some("Bearer  ")), Response::new(()));
        assert_eq!(empty.unwrap_err().status(), StatusCode::UNAUTHORIZED);
        let path = check_request(&req("/other", Some("Bearer sk")), Response::new(()));
        assert_eq!(path.unwrap_err().status(), StatusCode::NOT_FOUND);
    }
}
