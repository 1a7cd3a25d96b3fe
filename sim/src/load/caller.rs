//! One load call, as Twilio places it: signed webhook, TwiML, signed media stream with a
//! tagged 20 ms frame every 20 ms of real time, marks echoed by a playout clock, `stop`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::frames::{Conn, Frame, FrameError};
use super::scan::{self, Field};
use super::shared::{Gauge, Shared};
use super::tag::{FrameEncoder, Tag, read_tag};
use super::twilio::{self, Answer};
use crate::playout::TimedPlayout;

/// One caller frame.
const FRAME: Duration = Duration::from_millis(20);
/// How long the gateway has to close the stream after `stop`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What every call of a run shares.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// `{gateway}/twilio/voice`: the URL requested and signed.
    pub voice_url: String,
    /// Called number.
    pub to: String,
    /// Account that owns the number.
    pub account_sid: String,
    /// Signs the webhook and the stream handshake.
    pub auth_token: String,
    /// Media streamed per call.
    pub duration: Duration,
    /// Time between the TwiML answer and opening the stream (Twilio's own latency).
    pub stream_delay: Duration,
    /// Limit for the webhook answer and the stream handshake.
    pub timeout: Duration,
}

/// Why a call failed; `kind` is a short stable label for counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Label, e.g. `busy`, `closed_early`.
    pub kind: String,
    /// Details for the first few failures.
    pub detail: String,
}

fn fail(kind: impl Into<String>, detail: impl Into<String>) -> Failure {
    Failure {
        kind: kind.into(),
        detail: detail.into(),
    }
}

/// How a call went.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// Webhook sent → first agent audio received.
    pub setup: Option<Duration>,
    /// Set when the call did not stream for its whole duration.
    pub failure: Option<Failure>,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Places call `index` at `start_at`.
pub async fn run_call(
    index: u32,
    start_at: Instant,
    cfg: Arc<CallSettings>,
    http: reqwest::Client,
    shared: Arc<Shared>,
) -> CallOutcome {
    tokio::time::sleep_until(start_at.into()).await;
    let call_sid = format!("CA{:08x}{:024x}", shared.run_id, index);
    let webhook_at = Instant::now();
    let mut setup = None;
    let result = async {
        let (url, params) = webhook(&cfg, &http, &call_sid, index).await?;
        if !cfg.stream_delay.is_zero() {
            tokio::time::sleep(cfg.stream_delay).await;
        }
        let ws = open_stream(&cfg, &url).await?;
        let call = Stream {
            index,
            call_sid: &call_sid,
            stream_sid: format!("MZ{:08x}{:024x}", shared.run_id, index),
            cfg: &cfg,
            shared: &shared,
            webhook_at,
        };
        call.run(ws, &params, &mut setup).await
    }
    .await;
    CallOutcome {
        setup,
        failure: result.err(),
    }
}

async fn webhook(
    cfg: &CallSettings,
    http: &reqwest::Client,
    call_sid: &str,
    index: u32,
) -> Result<(String, Vec<(String, String)>), Failure> {
    let from = format!("+1555{:07}", index % 10_000_000);
    let params = twilio::webhook_params(&cfg.account_sid, call_sid, &from, &cfg.to);
    let signature = crate::signature::twilio_signature(&cfg.auth_token, &cfg.voice_url, &params);
    let response = http
        .post(&cfg.voice_url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .timeout(cfg.timeout)
        .send()
        .await
        .map_err(|e| fail("webhook_error", e.to_string()))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| fail("webhook_error", e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("webhook_http_{}", status.as_u16()), body));
    }
    match twilio::parse_answer(&body) {
        Answer::Stream { url, params } => Ok((url, params)),
        Answer::Rejected => Err(fail("busy", body)),
        Answer::Other => Err(fail("no_stream", body)),
    }
}

async fn open_stream(cfg: &CallSettings, url: &str) -> Result<Ws, Failure> {
    let mut req = url
        .into_client_request()
        .map_err(|e| fail("stream_url", format!("{url}: {e}")))?;
    let signature = crate::signature::twilio_signature(&cfg.auth_token, url, &[]);
    let header =
        HeaderValue::from_str(&signature).map_err(|e| fail("stream_url", e.to_string()))?;
    req.headers_mut().insert("x-twilio-signature", header);
    let connect = tokio_tungstenite::connect_async_with_config(req, Some(super::ws_config()), true);
    match tokio::time::timeout(cfg.timeout, connect).await {
        Err(_) => Err(fail("stream_timeout", url.to_owned())),
        Ok(Err(e)) => Err(fail("stream_refused", format!("{url}: {e}"))),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// Decoded length of standard base64 text.
fn decoded_len(b64: &str) -> usize {
    let pad = b64.bytes().rev().take_while(|&b| b == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(pad)
}

struct Stream<'a> {
    index: u32,
    call_sid: &'a str,
    stream_sid: String,
    cfg: &'a CallSettings,
    shared: &'a Shared,
    webhook_at: Instant,
}

impl Stream<'_> {
    async fn run(
        &self,
        ws: Ws,
        params: &[(String, String)],
        setup: &mut Option<Duration>,
    ) -> Result<(), Failure> {
        // The handshake was tungstenite's; the open stream is framed by `frames` (see there
        // why). Nothing can be buffered past the handshake: the relay speaks after `start`.
        let mut conn = Conn::new(ws.into_inner(), true);
        let sid = self.stream_sid.as_str();
        let gone = |at: &str, e: &dyn std::fmt::Display| fail("closed_early", format!("{at}: {e}"));
        conn.queue_text(&twilio::connected());
        conn.queue_text(&twilio::start(
            sid,
            &self.cfg.account_sid,
            self.call_sid,
            params,
        ));
        conn.flush().await.map_err(|e| gone("start", &e))?;
        let _streaming = Gauge::up(&self.shared.streaming);
        let frames =
            u32::try_from(self.cfg.duration.as_millis() / FRAME.as_millis()).unwrap_or(u32::MAX);
        let encoder = FrameEncoder::new(self.index % 5 + 11);
        let mut seq_no: u64 = 1;
        let mut sent: u32 = 0;
        let mut playout = TimedPlayout::new(Instant::now());
        let mut marks = Vec::new();
        let t0 = Instant::now();
        let timer = tokio::time::sleep_until(t0.into());
        tokio::pin!(timer);

        while sent < frames {
            tokio::select! {
                // The socket first: its messages carry receive times, and a fixed order
                // spares a random draw per wake-up.
                biased;
                read = conn.fill() => {
                    let at_ns = self.shared.clock.now_ns();
                    let now = Instant::now();
                    let after = |sent: u32| format!("after {sent} of {frames} frames");
                    match read {
                        Ok(()) => {}
                        Err(FrameError::Eof) => return Err(gone(&format!("stream ended after {sent} of {frames} frames"), &"no close frame")),
                        Err(e) => return Err(gone(&after(sent), &e)),
                    }
                    while let Some(frame) = conn.next_frame().map_err(|e| gone(&after(sent), &e))? {
                        match frame {
                            Frame::Text(at) => {
                                let text = conn.text(&at).map_err(|e| gone(&after(sent), &e))?;
                                self.on_message(text, at_ns, now, &mut playout, &mut marks, setup);
                            }
                            Frame::Close => {
                                return Err(gone(&format!("closed by the relay after {sent} of {frames} frames"), &"close frame"));
                            }
                            Frame::Other => {}
                        }
                    }
                    // Only `clear` makes marks due outside a send tick.
                    for name in marks.drain(..) {
                        seq_no += 1;
                        conn.queue_text(&twilio::mark(seq_no, sid, &name));
                    }
                    conn.flush().await.map_err(|e| gone("mark", &e))?;
                }
                () = &mut timer => {
                    let now = Instant::now();
                    let lag = now.saturating_duration_since(t0 + FRAME * sent);
                    let lag_us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
                    self.shared.max_lag_us.fetch_max(lag_us, Ordering::Relaxed);
                    if lag > FRAME {
                        Shared::bump(&self.shared.late_frames);
                    }
                    let tag = Tag { stream: self.index, seq: sent };
                    seq_no += 1;
                    let chunk = u64::from(sent) + 1;
                    let ts = u64::from(sent) * 20;
                    let media = twilio::media_with(seq_no, sid, chunk, ts, encoder.payload_len(), |m| encoder.push_payload(tag, m));
                    self.shared.inbound.sending(tag, self.shared.clock.now_ns());
                    conn.queue_text(&media);
                    playout.due(now, &mut marks);
                    for name in marks.drain(..) {
                        seq_no += 1;
                        conn.queue_text(&twilio::mark(seq_no, sid, &name));
                    }
                    conn.flush().await.map_err(|e| gone("media", &e))?;
                    sent += 1;
                    timer.as_mut().reset((t0 + FRAME * sent).into());
                }
            }
        }
        // The call lasted its duration; Twilio now sends `stop` and the gateway hangs up.
        tokio::time::sleep_until((t0 + FRAME * sent).into()).await;
        seq_no += 1;
        conn.queue_text(&twilio::stop(
            seq_no,
            sid,
            &self.cfg.account_sid,
            self.call_sid,
        ));
        conn.queue_close();
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            conn.flush().await?;
            loop {
                conn.fill().await?;
                while let Some(frame) = conn.next_frame()? {
                    if frame == Frame::Close {
                        return Ok::<(), FrameError>(());
                    }
                }
            }
        })
        .await;
        if setup.is_none() {
            return Err(fail(
                "no_agent_audio",
                format!("{frames} frames streamed, no media back"),
            ));
        }
        Ok(())
    }

    fn on_message(
        &self,
        text: &str,
        at_ns: u64,
        now: Instant,
        playout: &mut TimedPlayout,
        marks: &mut Vec<String>,
        setup: &mut Option<Duration>,
    ) {
        let Some([event, stream_sid, media, mark]) =
            scan::fields(text, ["event", "streamSid", "media", "mark"])
        else {
            Shared::bump(&self.shared.protocol_errors);
            return;
        };
        if stream_sid.as_ref().and_then(Field::as_str) != Some(self.stream_sid.as_str()) {
            // Twilio refuses messages for another stream (warning 31951).
            Shared::bump(&self.shared.protocol_errors);
            return;
        }
        match event.as_ref().and_then(Field::as_str) {
            Some("media") => {
                let payload = media
                    .as_ref()
                    .and_then(Field::as_object)
                    .and_then(|m| scan::fields(m, ["payload"]))
                    .and_then(|[p]| p);
                let Some(Field::Str(payload)) = payload else {
                    Shared::bump(&self.shared.protocol_errors);
                    return;
                };
                if setup.is_none() {
                    *setup = Some(now.saturating_duration_since(self.webhook_at));
                }
                playout.audio(now, decoded_len(&payload));
                if let Some(tag) = read_tag(&payload) {
                    self.shared.outbound.received(tag, at_ns);
                }
            }
            Some("mark") => {
                let name = mark
                    .as_ref()
                    .and_then(Field::as_object)
                    .and_then(|m| scan::fields(m, ["name"]))
                    .and_then(|[n]| n);
                match name {
                    Some(Field::Str(name)) => playout.mark(name.into_owned()),
                    _ => Shared::bump(&self.shared.protocol_errors),
                }
            }
            Some("clear") => playout.clear(now, marks),
            _ => Shared::bump(&self.shared.protocol_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_messages_are_read_as_twilio_reads_them() {
        let shared = Shared::new(1, 1, 0);
        let cfg = CallSettings {
            voice_url: "http://x/twilio/voice".into(),
            to: "+1".into(),
            account_sid: "AC1".into(),
            auth_token: "t".into(),
            duration: Duration::from_secs(1),
            stream_delay: Duration::ZERO,
            timeout: Duration::from_secs(1),
        };
        let t0 = Instant::now();
        let call = Stream {
            index: 0,
            call_sid: "CA1",
            stream_sid: "MZ1".into(),
            cfg: &cfg,
            shared: &shared,
            webhook_at: t0,
        };
        let mut playout = TimedPlayout::new(t0);
        let (mut marks, mut setup) = (Vec::new(), None);
        let mut feed = |text: &str, marks: &mut Vec<String>| {
            call.on_message(text, 5, t0, &mut playout, marks, &mut setup);
        };
        let payload = FrameEncoder::new(1).payload(Tag { stream: 0, seq: 0 });
        feed(
            &format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{payload}"}}}}"#),
            &mut marks,
        );
        assert_eq!(Shared::get(&shared.outbound.received), 1, "tag read");
        feed(
            r#"{"streamSid":"MZ1","mark":{"name":"a\"1"},"event":"mark"}"#,
            &mut marks,
        );
        assert_eq!(Shared::get(&shared.protocol_errors), 0);
        feed(r#"{"event":"clear","streamSid":"MZ1"}"#, &mut marks);
        assert_eq!(marks, ["a\"1"], "a clear echoes the pending mark");
        assert_eq!(Shared::get(&shared.protocol_errors), 0);
        for bad in [
            r#"{"event":"media","streamSid":"MZ2","media":{"payload":"AAAA"}}"#,
            r#"{"event":"media","media":{"payload":"AAAA"}}"#,
            r#"{"event":"media","streamSid":"MZ1","media":{"track":"outbound"}}"#,
            r#"{"event":"mark","streamSid":"MZ1","mark":{}}"#,
            r#"{"event":"party","streamSid":"MZ1"}"#,
            r#"{"event":"media","streamSid":"MZ1""#,
            "not json",
        ] {
            feed(bad, &mut marks);
        }
        assert_eq!(Shared::get(&shared.protocol_errors), 7);
        assert!(setup.is_some(), "the first media set the setup time");
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(decoded_len(""), 0);
        assert_eq!(decoded_len("AAAA"), 3);
        assert_eq!(decoded_len("AAA="), 2);
        assert_eq!(decoded_len("AA=="), 1);
        let p = FrameEncoder::new(1).payload(Tag { stream: 1, seq: 2 });
        assert_eq!(decoded_len(&p), 160);
    }
}
