//! A running media stream: real-time 20 ms pacing out, strict reading in.

use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::CallReport;
use super::script::{Action, Ear, ScriptRunner};
use super::stream::{GatewayMessage, Outbound, parse_gateway_text};
use super::turns::Turns;
use crate::mulaw::BYTES_PER_MS;
use crate::playout::Playout;
use crate::twilio_rest::Control;

/// The media-stream WebSocket as `connect_async` returns it.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const FRAME: Duration = Duration::from_millis(20);
/// How long to wait for the gateway to finish the close handshake after `stop`.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Identity of the stream being run.
pub(crate) struct Stream<'a> {
    pub account_sid: &'a str,
    pub call_sid: &'a str,
    pub stream_sid: &'a str,
    /// When the webhook went out (for `setup_ms`).
    pub webhook_sent: Instant,
    pub record_audio: bool,
    /// Where to publish the steps begun ([`super::CallConfig::progress`]).
    pub progress: Option<&'a std::sync::atomic::AtomicUsize>,
}

/// Why the stream loop ended.
enum End {
    CallerHungUp,
    GatewayClosed,
    Control(Control),
}

/// The stream loop's end once a REST request already delivered to the call is counted:
/// the gateway closes a stream only after Twilio has answered its REST update or
/// hang-up, and Twilio acts on those at once (the stream ends, the new TwiML runs, the
/// verbs after `</Connect>` never do). A close seen first in the loop (both were ready at
/// once) is therefore the consequence of the REST request, not a stream that failed.
fn settle(end: End, delivered: Option<Control>) -> End {
    match (end, delivered) {
        (End::GatewayClosed, Some(c)) => End::Control(c),
        (end, _) => end,
    }
}

/// How a media stream ended, for what the call does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The script hung up (or the stream failed on the caller's side).
    CallerHungUp,
    /// The gateway closed the stream (Twilio then requests `<Connect action>`).
    GatewayClosed,
    /// A REST update replaced the call's TwiML: the stream ended; run this next.
    Redirected(String),
    /// A REST update ended the call.
    HungUpByRest,
}

struct Call<'a> {
    ids: &'a Stream<'a>,
    out: Outbound,
    playout: Playout,
    turns: Turns,
    runner: ScriptRunner,
    /// Messages waiting to be written.
    pending: Vec<Message>,
}

/// Runs the stream until the script hangs up or the gateway ends it; fills `report`.
pub(crate) async fn run(
    ws: Ws,
    ids: &Stream<'_>,
    script: Vec<super::Step>,
    report: &mut CallReport,
    mut control: Option<&mut mpsc::UnboundedReceiver<Control>>,
) -> StreamEnd {
    let (sink, mut source) = ws.split();
    // Writes go through their own task so that a gateway that stops reading cannot stop
    // the caller from hearing it (Twilio keeps both directions independent).
    let (tx, rx) = mpsc::unbounded_channel();
    let mut writer = tokio::spawn(write_all(sink, rx));
    let mut call = Call {
        ids,
        out: Outbound::new(ids.account_sid, ids.call_sid, ids.stream_sid),
        playout: Playout::new(ids.record_audio),
        turns: Turns::default(),
        runner: ScriptRunner::new(script),
        pending: Vec::new(),
    };
    let connected = call.out.connected();
    let start = call.out.start(&report.custom_parameters);
    call.pending.push(Message::text(connected));
    call.pending.push(Message::text(start));

    let t0 = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval_at(t0, FRAME);
    // A late tick must not send a burst faster than real time: missed slots are dropped
    // (and counted), the timeline stays on the wall clock.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut next_slot: u64 = 0;

    let end = loop {
        if !hand_over(&tx, &mut call.pending) {
            break End::GatewayClosed;
        }
        tokio::select! {
            _ = ticker.tick() => {
                let due = t0.elapsed().as_millis() as u64 / FRAME.as_millis() as u64;
                let mut hung_up = false;
                while next_slot <= due && !hung_up {
                    hung_up = call.slot(next_slot, next_slot == due, report);
                    next_slot += 1;
                }
                if hung_up {
                    break End::CallerHungUp;
                }
            }
            Some(c) = async {
                match control.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => break End::Control(c),
            incoming = source.next() => match incoming {
                Some(Ok(Message::Text(text))) => call.on_text(text.as_str(), report),
                Some(Ok(Message::Binary(_))) => report
                    .violations
                    .push("31950 binary frame: Twilio accepts only JSON text messages".to_owned()),
                Some(Ok(Message::Close(_))) | None => break End::GatewayClosed,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    report.violations.push(format!("stream broken without a close handshake: {e}"));
                    break End::GatewayClosed;
                }
            },
        }
    };

    let end = settle(end, control.as_mut().and_then(|rx| rx.try_recv().ok()));
    let result = match &end {
        End::CallerHungUp => StreamEnd::CallerHungUp,
        End::GatewayClosed => StreamEnd::GatewayClosed,
        End::Control(Control::Twiml(doc)) => StreamEnd::Redirected(doc.clone()),
        End::Control(Control::Hangup) => StreamEnd::HungUpByRest,
    };
    match end {
        // Twilio ends the stream itself when the call is redirected or hung up through
        // the REST API: `stop`, then the close.
        End::CallerHungUp | End::Control(_) => {
            let stop = call.out.stop();
            call.pending.push(Message::text(stop));
            if hand_over(&tx, &mut call.pending) {
                // Closing the channel makes the writer send the close frame after `stop`.
                drop(tx);
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    // Drain until the gateway answers the close (or drops the socket).
                    while let Some(Ok(msg)) = source.next().await {
                        if msg.is_close() {
                            break;
                        }
                    }
                })
                .await;
            } else {
                report.ended_by_gateway = true;
            }
        }
        End::GatewayClosed => {
            report.ended_by_gateway = true;
            drop(tx);
        }
    }
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    report.stream_ms = t0.elapsed().as_millis() as u64;
    report.heard_ms_total = call.playout.played_bytes() / BYTES_PER_MS as u64;
    report.agent_silences_ms = call.turns.silences_ms().to_vec();
    report.turns = call.turns.finish();
    report.heard_audio = call.playout.into_recording();
    result
}

/// Queues everything pending for the writer; `false` when the writer is gone (the
/// socket failed).
fn hand_over(tx: &mpsc::UnboundedSender<Message>, pending: &mut Vec<Message>) -> bool {
    pending.drain(..).all(|msg| tx.send(msg).is_ok())
}

/// Writes messages in order, flushing whenever the queue runs dry; closes the socket
/// (close frame) once the sender is dropped. Returns early when the socket fails.
async fn write_all(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(msg) = rx.recv().await {
        if sink.feed(msg).await.is_err() {
            return;
        }
        if rx.is_empty() && sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

impl Call<'_> {
    /// Plays out and decides slot `index`; only the current slot's frame is sent.
    /// Returns `true` when the caller hangs up.
    fn slot(&mut self, index: u64, send_frame: bool, report: &mut CallReport) -> bool {
        let now_ms = index * FRAME.as_millis() as u64;
        let tick = self.playout.tick();
        for name in tick.marks {
            self.echo_mark(&name, report);
        }
        self.turns
            .on_played(now_ms, tick.played, self.playout.buffered());
        let ear = Ear {
            turn_heard_ms: self.turns.current_heard_ms(),
            buffer_empty: self.playout.buffered() == 0,
            idle_ms: self.playout.idle_ms(),
        };
        let slot = self.runner.next_slot(now_ms, &ear);
        if let Some(p) = self.ids.progress {
            p.store(self.runner.begun(), std::sync::atomic::Ordering::Relaxed);
        }
        let mut speech_ended = false;
        for action in slot.actions {
            match action {
                Action::SpeechStart => self.turns.on_caller_speech_start(tick.played > 0),
                Action::SpeechEnd => speech_ended = true,
                Action::Dtmf(digit) => {
                    self.turns.on_caller_key(tick.played > 0);
                    let msg = self.out.dtmf(digit);
                    self.pending.push(Message::text(msg));
                }
                Action::Raw(text) => self.pending.push(Message::text(text)),
                Action::Binary(bytes) => self.pending.push(Message::binary(bytes)),
                Action::Timeout(why) => report.script_timeouts.push(why),
            }
        }
        if let Some(frame) = slot.frame {
            if send_frame {
                let msg = self.out.media(now_ms, &frame);
                self.pending.push(Message::text(msg));
                report.frames_sent += 1;
            } else {
                report.frames_dropped += 1;
            }
        }
        if speech_ended {
            self.turns.on_caller_speech_end();
        }
        slot.hangup
    }

    fn on_text(&mut self, text: &str, report: &mut CallReport) {
        match parse_gateway_text(text, self.ids.stream_sid) {
            Ok(GatewayMessage::Media(audio)) => {
                if report.setup_ms.is_none() && !audio.is_empty() {
                    report.setup_ms = Some(self.ids.webhook_sent.elapsed().as_secs_f64() * 1000.0);
                }
                self.playout.push_audio(&audio);
            }
            Ok(GatewayMessage::Mark(name)) => {
                report.marks_received += 1;
                if let Some(name) = self.playout.push_mark(name) {
                    self.echo_mark(&name, report);
                }
            }
            Ok(GatewayMessage::Clear) => {
                report.clears += 1;
                self.turns.on_clear();
                for name in self.playout.clear() {
                    self.echo_mark(&name, report);
                }
            }
            Err(violation) => report.violations.push(violation),
        }
    }

    fn echo_mark(&mut self, name: &str, report: &mut CallReport) {
        let msg = self.out.mark(name);
        self.pending.push(Message::text(msg));
        report.marks_echoed += 1;
        report.last_mark_echo_ms = Some(self.ids.webhook_sent.elapsed().as_millis() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rest_request_delivered_before_the_close_decides_how_the_stream_ended() {
        let doc = "<Response><Dial>+15551230001</Dial></Response>".to_owned();
        assert!(matches!(
            settle(End::GatewayClosed, Some(Control::Twiml(doc.clone()))),
            End::Control(Control::Twiml(d)) if d == doc
        ));
        assert!(matches!(
            settle(End::GatewayClosed, Some(Control::Hangup)),
            End::Control(Control::Hangup)
        ));
        assert!(matches!(
            settle(End::GatewayClosed, None),
            End::GatewayClosed
        ));
        // The caller hanging up first stays the caller's hang-up.
        assert!(matches!(
            settle(End::CallerHungUp, Some(Control::Hangup)),
            End::CallerHungUp
        ));
    }
}
