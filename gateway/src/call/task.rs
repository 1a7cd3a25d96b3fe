//! The per-call task: reads both sockets, feeds the state machine, writes its actions.
//!
//! One task per call owns the Twilio socket, the Realtime socket and the
//! [`CallSession`]. Nothing here takes a lock shared with other calls or waits on the
//! database: records go through the write-behind queue after the call has ended.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as TwMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as RtMessage;

use super::history;
use super::session::{Action, CallSession, CallSummary, Input, Observation, Resume};
use crate::admission::Refusal;
use crate::clock::unix_ms;
use crate::cost;
use crate::endings::{AfterStream, Outcome, TransferredLeg};
use crate::realtime::client::ConnectParams;
use crate::realtime::wire::{ServerEvent, parse_server_event};
use crate::realtime::{RealtimeError, RealtimeSocket};
use crate::recording::Recorder;
use crate::state::AppState;
use crate::tenants::Tenant;
use crate::tools::transfer_call;
use crate::twilio::media::{self, Inbound, Start};
use switchboard_store::{CallEnd, CallStart, StoreOp};

/// How long Twilio has to send `start` after the upgrade.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Timer resolution of the session (stall padding, limits).
const TICK: Duration = Duration::from_millis(250);
/// Bound on one write (or close) to Twilio's socket: a peer that stops reading must not
/// hold the call task (and the model session) forever.
pub const TWILIO_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Peer errors logged per call before going quiet (all are counted).
const LOGGED_ERRORS_PER_CALL: u32 = 5;

/// The running call's own handles: the gateway's shared state, which call this is (the
/// path's CallSid until `start` confirms it), and how many peer errors it has logged.
struct CallTask {
    state: AppState,
    call_sid: String,
    logged: u32,
}

impl CallTask {
    fn malformed(&mut self, kind: &str, detail: &dyn std::fmt::Display) {
        self.state
            .metrics
            .malformed
            .with_label_values(&[kind])
            .inc();
        if self.logged < LOGGED_ERRORS_PER_CALL {
            self.logged += 1;
            tracing::warn!(call_sid = self.call_sid, kind, %detail, "refused a peer message");
        }
    }
}

/// The admission table's key of agent leg `leg` (1 = the first) of `call_sid`: each leg
/// has its own stream, admitted once.
pub fn admission_key(call_sid: &str, leg: u32) -> String {
    if leg <= 1 {
        call_sid.to_owned()
    } else {
        format!("{call_sid}.{leg}")
    }
}

/// Runs agent leg `leg` of a call (1 = the first; later ones follow a transfer nobody
/// answered) on an upgraded Twilio media stream.
pub async fn run(
    state: AppState,
    tenant: Arc<Tenant>,
    path_call_sid: String,
    leg: u32,
    socket: WebSocket,
) {
    let mut ctx = CallTask {
        state: state.clone(),
        call_sid: path_call_sid.clone(),
        logged: 0,
    };
    // The task owns both sockets and never reads and writes one at the same time, so
    // they are not split: a split's halves share the socket through a lock taken on every
    // poll, which is per-frame cost for nothing.
    let mut tw = socket;
    let Some(start) = wait_for_start(&mut ctx, &mut tw).await else {
        let _ = tokio::time::timeout(TWILIO_WRITE_TIMEOUT, tw.close()).await;
        return;
    };
    // Time zero of the recording: Twilio's media timestamps count from the stream start.
    let stream_started = Instant::now();
    let token = start
        .custom_parameters
        .get("token")
        .map(String::as_str)
        .unwrap_or("");
    if start.call_sid != path_call_sid || start.account_sid != tenant.spec.twilio.account_sid {
        ctx.malformed(
            "stream_without_webhook",
            &format_args!(
                "start for {} does not match a webhook of tenant {}",
                start.call_sid, tenant.name
            ),
        );
        let _ = tokio::time::timeout(TWILIO_WRITE_TIMEOUT, tw.close()).await;
        return;
    }
    // Admitted here, before any Realtime session is adopted or opened: a stream without a
    // valid, unexpired token or already opened on this replica never costs a model
    // session. The slot is held until the call ends.
    let admitted = match state.admissions.consume(
        &tenant.name,
        &tenant.credentials().stream_keys(),
        &admission_key(&start.call_sid, leg),
        token,
    ) {
        Ok(slot) => slot,
        Err(refusal) => {
            state
                .metrics
                .stream_refusals
                .with_label_values(&[refusal.label()])
                .inc();
            match refusal {
                Refusal::BadToken => ctx.malformed(
                    "stream_without_webhook",
                    &format_args!(
                        "start for {} does not match a webhook of tenant {}: {refusal}",
                        start.call_sid, tenant.name
                    ),
                ),
                Refusal::AtCapacity => {
                    tracing::warn!(call_sid = start.call_sid, tenant = tenant.name, max = state.max_calls, %refusal, "refused media stream: busy");
                }
                Refusal::Replay | Refusal::Expired => {
                    tracing::warn!(call_sid = start.call_sid, tenant = tenant.name, %refusal, "refused media stream");
                }
            }
            let _ =
                tokio::time::timeout(TWILIO_WRITE_TIMEOUT, tw.send(refusal_close(refusal))).await;
            return;
        }
    };
    if admitted.adopted() {
        tracing::info!(
            call_sid = start.call_sid,
            tenant = tenant.name,
            "stream admitted by another replica's webhook: adopted"
        );
    }
    // Holds the call slot and the drain (see `admission`) until the call has ended.
    let slot = admitted;
    state.metrics.active_calls.inc();
    let started = Instant::now();
    // A return leg continues the record of the legs before it (parked when the call was
    // transferred); without them (another replica ran the first leg) it starts afresh.
    let parked = if leg > 1 {
        state.endings.take_leg(&start.call_sid)
    } else {
        None
    };
    let call_started = parked.as_ref().map_or(started, |p| p.call_started);
    let resume = (leg > 1).then(|| resume_from(parked, started));
    let param = |k: &str| start.custom_parameters.get(k).cloned().unwrap_or_default();
    // As at the webhook: a full queue must not hold up the greeting.
    let start_op = StoreOp::Start(CallStart {
        call_sid: start.call_sid.clone(),
        tenant: tenant.name.clone(),
        from: param("from"),
        to: param("to"),
        started_at_ms: unix_ms(),
    });
    if state.writer.try_submit(start_op).is_err() {
        state
            .metrics
            .store_dropped
            .with_label_values(&["start"])
            .inc();
        tracing::warn!(
            call_sid = start.call_sid,
            "write-behind queue full: start record dropped"
        );
    }

    // Only the first agent leg is recorded: a return leg's recording would take the
    // same object key.
    let mut recorder = if leg <= 1 {
        state.recordings.begin(
            tenant.spec.recordings.as_ref(),
            &tenant.name,
            &start.call_sid,
            unix_ms(),
            tenant.settings.max_call_ms,
            stream_started,
        )
    } else {
        None
    };
    let outcome = match open_realtime(&state, &tenant, &start.call_sid, leg).await {
        Ok(rt) => {
            let leg = Leg {
                number: leg,
                resume,
                call_started,
            };
            relay(&mut ctx, &tenant, &start, &mut tw, rt, &mut recorder, leg).await
        }
        Err(e) => {
            tracing::error!(call_sid = start.call_sid, tenant = tenant.name, error = %e, "could not open a Realtime session; ending the call");
            // Closing the stream makes Twilio run the fallback after `</Connect>`: the
            // caller hears an apology, not silence.
            state
                .endings
                .record(&start.call_sid, Outcome::OpenAiConnectFailed);
            let _ = tokio::time::timeout(TWILIO_WRITE_TIMEOUT, tw.close()).await;
            CallEnd {
                call_sid: start.call_sid.clone(),
                tenant: tenant.name.clone(),
                ended_at_ms: 0,
                outcome: Outcome::OpenAiConnectFailed.as_str().into(),
                detail: Some(e.to_string()),
                transcript: Vec::new(),
                usage: Default::default(),
                model: None,
                cost: None,
                tool_calls: Vec::new(),
                barge_ins: 0,
                reconnects: Vec::new(),
                data_key: None,
            }
        }
    };
    // The call is over: its socket and buffers go now, not after the recording's WAV
    // (made in turn with other calls' on the recordings' file threads).
    drop(tw);
    let mut record = outcome;
    record.ended_at_ms = unix_ms();
    price(
        &state,
        &tenant,
        &mut record,
        started.elapsed().as_secs_f64(),
    );
    state
        .metrics
        .calls_total
        .with_label_values(&[record.outcome.as_str()])
        .inc();
    state
        .metrics
        .call_duration
        .observe(started.elapsed().as_secs_f64());
    state.metrics.active_calls.dec();
    tracing::info!(
        call_sid = record.call_sid,
        tenant = record.tenant,
        outcome = record.outcome,
        secs = started.elapsed().as_secs(),
        "call ended"
    );
    // Sealed first when the tenant encrypts its records (never queued in clear).
    crate::records::submit_end(&state, &tenant, record).await;
    if let Some(r) = recorder {
        // The slot goes back now; the drain still waits for the WAV. The WAV waits its
        // turn on a task of its own: this call's task, which is as large as the relay's
        // state (≈ 17 KiB), ends now instead of when the WAV is made; calls ending
        // together held all of theirs until their WAVs were done (docs/performance.md,
        // "Recordings").
        let draining = slot.release();
        tokio::spawn(async move {
            r.finish().await;
            drop(draining);
        });
    }
}

/// The close frame of a refused stream: 1013 "try again later" when the replica is
/// full, 1008 "policy violation" otherwise.
fn refusal_close(refusal: Refusal) -> TwMessage {
    let code = match refusal {
        Refusal::AtCapacity => 1013,
        Refusal::Replay | Refusal::Expired | Refusal::BadToken => 1008,
    };
    TwMessage::Close(Some(axum::extract::ws::CloseFrame {
        code,
        reason: refusal.label().into(),
    }))
}

async fn wait_for_start(ctx: &mut CallTask, rx: &mut WebSocket) -> Option<Start> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let msg = match tokio::time::timeout_at(deadline, rx.next()).await {
            Err(_) => {
                ctx.malformed("no_start", &"no start message within 10 s");
                return None;
            }
            Ok(None | Some(Err(_))) => return None,
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            TwMessage::Text(t) => match media::parse(t.as_str()) {
                Ok(Inbound::Start(s)) => return Some(s),
                Ok(Inbound::Connected) => {}
                Ok(Inbound::Stop) => return None,
                Ok(Inbound::Media { .. }) => {
                    ctx.malformed("media_before_start", &"media before start")
                }
                Ok(_) => ctx.malformed("event_before_start", &"event before start"),
                Err(e) => ctx.malformed(e.kind(), &e),
            },
            TwMessage::Binary(_) => ctx.malformed("binary_frame", &"binary frame"),
            TwMessage::Close(_) => return None,
            TwMessage::Ping(_) | TwMessage::Pong(_) => {}
        }
    }
}

/// The [`Resume`] of a return leg starting at `now`: the parked legs' record, their
/// conversation and the "transfer failed" note.
fn resume_from(parked: Option<TransferredLeg>, now: Instant) -> Resume {
    let Some(p) = parked else {
        return Resume {
            note: transfer_call::failed_note("the person you asked for", "no-answer"),
            ..Resume::default()
        };
    };
    let status = p.dial_status.as_deref().unwrap_or("no-answer");
    Resume {
        earlier: history::turns_from_record(&p.transcript, &p.tool_calls),
        note: transfer_call::failed_note(&p.target, status),
        offset_ms: u64::try_from(now.saturating_duration_since(p.call_started).as_millis())
            .unwrap_or(u64::MAX),
        transcript: p.transcript,
        tool_calls: p.tool_calls,
        usage: p.usage,
        barge_ins: p.barge_ins,
        reconnects: p.reconnects,
    }
}

async fn open_realtime(
    state: &AppState,
    tenant: &Tenant,
    call_sid: &str,
    leg: u32,
) -> Result<RealtimeSocket, RealtimeError> {
    let t0 = Instant::now();
    // Only the first leg was pre-connected by its webhook.
    let parked = if leg <= 1 {
        state.parking.take(call_sid)
    } else {
        None
    };
    if let Some(parked) = parked {
        match parked.handle.await {
            Ok(Ok(ws)) => {
                state
                    .metrics
                    .preconnect
                    .with_label_values(&["adopted"])
                    .inc();
                state
                    .metrics
                    .setup_latency
                    .with_label_values(&["preconnected"])
                    .observe(t0.elapsed().as_secs_f64());
                return Ok(ws);
            }
            Ok(Err(e)) => {
                state
                    .metrics
                    .preconnect
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(call_sid, error = %e, "pre-connect failed; connecting again");
            }
            Err(e) => {
                state
                    .metrics
                    .preconnect
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(call_sid, error = %e, "pre-connect task died; connecting again");
            }
        }
    } else {
        state.metrics.preconnect.with_label_values(&["fresh"]).inc();
    }
    let ws = state.backend.connect(connect_params(tenant)).await?;
    state
        .metrics
        .setup_latency
        .with_label_values(&["fresh"])
        .observe(t0.elapsed().as_secs_f64());
    Ok(ws)
}

/// Which agent leg of the call a relay runs.
struct Leg {
    /// 1 for the first.
    number: u32,
    /// A return leg's carried record and history.
    resume: Option<Resume>,
    /// When the call's first leg started.
    call_started: Instant,
}

enum Frame {
    None,
    Inbound,
    Outbound,
}

async fn relay(
    ctx: &mut CallTask,
    tenant: &Arc<Tenant>,
    start: &Start,
    tw: &mut WebSocket,
    mut rt: RealtimeSocket,
    recorder: &mut Option<Recorder>,
    leg: Leg,
) -> CallEnd {
    let Leg {
        number: leg,
        resume,
        call_started,
    } = leg;
    let state = ctx.state.clone();
    let m = &state.metrics;
    let lat_in = m.relay_latency.with_label_values(&["inbound"]);
    let lat_out = m.relay_latency.with_label_values(&["outbound"]);
    let frames_in = m.frames.with_label_values(&["inbound"]);
    let frames_out = m.frames.with_label_values(&["outbound"]);
    let clock = Instant::now();
    let ms_at = |at: Instant| {
        u64::try_from(at.saturating_duration_since(clock).as_millis()).unwrap_or(u64::MAX)
    };
    let mut session = match resume {
        None => CallSession::new(
            tenant.settings.clone(),
            start.stream_sid.clone(),
            ms_at(Instant::now()),
        ),
        Some(r) => CallSession::resume(
            tenant.settings.clone(),
            start.stream_sid.clone(),
            ms_at(Instant::now()),
            r,
        ),
    };
    session.set_unix_origin(
        u64::try_from(unix_ms())
            .unwrap_or(0)
            .saturating_sub(ms_at(Instant::now())),
    );
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The drain deadline is checked with an atomic load on every wake-up (frames every
    // 20 ms, the tick every 250 ms) rather than awaited: awaiting a watch channel in the
    // loop registers and unregisters this call under a mutex every gateway call shares,
    // twice per frame.
    let deadline = state.drain.deadline();
    let mut deadline_fired = *deadline.borrow();
    let mut inputs: VecDeque<(Input, Instant, Frame)> = VecDeque::new();
    let mut actions = Vec::with_capacity(8);
    let mut summary = None;
    let mut tw_open = true;
    let mut rt_open = true;
    // Tool runs finish on their own tasks; their results come back here so the lookup
    // never stalls the audio of this call.
    // Both channels carry boxes: tokio's mpsc allocates its first block of 32 slots when
    // the channel is made, whatever its bound, and a slot holding a WebSocket stream made
    // that block ≈ 44 KiB in every call (heaptrack; docs/performance.md, "Recordings").
    let (tool_tx, mut tool_rx) = tokio::sync::mpsc::channel::<Box<(String, String)>>(8);
    // A new Realtime session is connected on its own task (a reconnect never stalls the
    // caller's audio) and parked in `next_rt` until the session says to switch.
    let (conn_tx, mut conn_rx) =
        tokio::sync::mpsc::channel::<Box<Result<RealtimeSocket, RealtimeError>>>(1);
    let mut next_rt: Option<RealtimeSocket> = None;
    // Whether Twilio took the transfer's `<Dial>` (REST update).
    let mut moved = false;
    // Tool runs and connects in flight: their channels are polled only while there are
    // some (polling an empty channel on every frame's wake-up showed in profiles).
    let (mut tools_running, mut connecting) = (0usize, 0usize);
    if deadline_fired {
        inputs.push_back((Input::DrainDeadline, Instant::now(), Frame::None));
    }

    while summary.is_none() {
        if !deadline_fired {
            match deadline.has_changed() {
                Ok(false) => {}
                Ok(true) => {
                    deadline_fired = true;
                    inputs.push_back((Input::DrainDeadline, Instant::now(), Frame::None));
                }
                // The drain controller is gone: no deadline will ever come.
                Err(_) => deadline_fired = true,
            }
        }
        if inputs.is_empty() {
            let item = tokio::select! {
                msg = tw.next(), if tw_open => {
                    let at = Instant::now();
                    let (input, frame) = from_twilio(ctx, msg, &mut tw_open);
                    input.map(|i| (i, at, frame))
                }
                msg = rt.next(), if rt_open => {
                    let at = Instant::now();
                    let (input, frame) = from_realtime(ctx, msg, &mut rt_open);
                    input.map(|i| (i, at, frame))
                }
                Some(done) = tool_rx.recv(), if tools_running > 0 => {
                    tools_running -= 1;
                    let (call_id, output) = *done;
                    Some((Input::ToolResult { call_id, output }, Instant::now(), Frame::None))
                }
                Some(connected) = conn_rx.recv(), if connecting > 0 => {
                    connecting -= 1;
                    let input = match *connected {
                        Ok(ws) => {
                            if let Some(stale) = next_rt.replace(ws) {
                                close_in_background(stale);
                            }
                            Input::RealtimeConnected
                        }
                        Err(e) => {
                            tracing::warn!(call_sid = ctx.call_sid, error = %e, "Realtime reconnect failed");
                            Input::RealtimeConnectFailed(e.to_string())
                        }
                    };
                    Some((input, Instant::now(), Frame::None))
                }
                _ = tick.tick() => Some((Input::Tick, Instant::now(), Frame::None)),
            };
            match item {
                Some(i) => inputs.push_back(i),
                None => continue,
            }
        }
        let Some((input, at, frame)) = inputs.pop_front() else {
            continue;
        };
        if let Some(r) = recorder.as_mut() {
            match &input {
                Input::Media {
                    timestamp_ms,
                    payload,
                    ..
                } => r.caller(*timestamp_ms, payload),
                Input::Tick => r.tick(),
                _ => {}
            }
        }
        session.handle(ms_at(at), input, &mut actions);
        // Every write to Twilio for this input shares one deadline; a timer is only made
        // when a write would block (see `bounded`).
        let write_deadline = tokio::time::Instant::from_std(at) + TWILIO_WRITE_TIMEOUT;
        let mut relayed = false;
        // Frames of one input (a media chunk and its mark) are queued with `feed` and
        // written with one flush per socket: one write syscall instead of one per frame.
        let (mut tw_fed, mut rt_fed) = (false, false);
        for action in actions.drain(..) {
            match action {
                Action::Twilio(text) => {
                    if tw_open
                        && let Err(failed) =
                            bounded(write_deadline, tw.feed(TwMessage::Text(text.into()))).await
                    {
                        tw_open = false;
                        inputs.push_back((failed.input(), Instant::now(), Frame::None));
                    }
                    tw_fed = true;
                    relayed |= matches!(frame, Frame::Outbound);
                }
                Action::Realtime(text) => {
                    if rt_open && rt.feed(RtMessage::text(text)).await.is_err() {
                        rt_open = false;
                        inputs.push_back((
                            Input::RealtimeClosed { code: None },
                            Instant::now(),
                            Frame::None,
                        ));
                    }
                    rt_fed = true;
                    relayed |= matches!(frame, Frame::Inbound);
                }
                Action::Observe(o) => observe(&state, &ctx.call_sid, o),
                Action::RunTool {
                    call_id,
                    name,
                    arguments,
                } => {
                    let run = state
                        .tools
                        .run(&tenant.name, &tenant.spec, &name, &arguments);
                    let tx = tool_tx.clone();
                    tools_running += 1;
                    tokio::spawn(async move {
                        let output = run.await;
                        let _ = tx.send(Box::new((call_id, output))).await;
                    });
                }
                Action::ConnectRealtime => {
                    let connect = state.backend.connect(connect_params(tenant));
                    let tx = conn_tx.clone();
                    connecting += 1;
                    tokio::spawn(async move {
                        let _ = tx.send(Box::new(connect.await)).await;
                    });
                }
                Action::DropRealtime => {
                    if rt_open && rt_fed {
                        let _ = rt.flush().await;
                    }
                    rt_fed = false;
                    rt_open = false;
                    let _ = tokio::time::timeout(
                        Duration::from_millis(200),
                        rt.send(RtMessage::Close(None)),
                    )
                    .await;
                    drop_realtime_inputs(&mut inputs);
                }
                Action::SwitchRealtime => {
                    if let Some(new) = next_rt.take() {
                        if rt_open && rt_fed {
                            let _ = rt.flush().await;
                        }
                        let old = std::mem::replace(&mut rt, new);
                        if rt_open {
                            close_in_background(old);
                        }
                        rt_open = true;
                        rt_fed = false;
                        drop_realtime_inputs(&mut inputs);
                    }
                }
                Action::Transfer { target } => {
                    // The leg's record is parked before the call moves: a transfer nobody
                    // answers brings the caller back on a new stream whose task takes it,
                    // and that can happen before this task gets past the move.
                    if let Some(s) = &summary {
                        state.endings.park_leg(
                            &start.call_sid,
                            transferred_leg(s, &target, leg, call_started),
                        );
                    }
                    // The caller heard the hand-off: move the call now (off the audio
                    // path: the agent's audio is over, the call is ending).
                    if tw_fed && tw_open && bounded(write_deadline, tw.flush()).await.is_err() {
                        tw_open = false;
                    }
                    tw_fed = false;
                    moved = move_call(&state, tenant, &start.call_sid, leg, &target).await;
                }
                Action::End(s) => {
                    if let Some(r) = recorder.as_mut() {
                        r.ended(at);
                    }
                    summary = Some(s);
                }
                Action::Record(ev) => {
                    if let Some(r) = recorder.as_mut() {
                        r.recorded(ev, at);
                    }
                }
            }
        }
        if tw_fed
            && tw_open
            && let Err(failed) = bounded(write_deadline, tw.flush()).await
        {
            tw_open = false;
            inputs.push_back((failed.input(), Instant::now(), Frame::None));
        }
        if rt_fed && rt_open && rt.flush().await.is_err() {
            rt_open = false;
            inputs.push_back((
                Input::RealtimeClosed { code: None },
                Instant::now(),
                Frame::None,
            ));
        }
        if relayed {
            match frame {
                Frame::Inbound => {
                    frames_in.inc();
                    lat_in.observe(at.elapsed().as_secs_f64());
                }
                Frame::Outbound => {
                    frames_out.inc();
                    lat_out.observe(at.elapsed().as_secs_f64());
                }
                Frame::None => {}
            }
        }
    }
    // Close the model session first: a caller who hung up must stop costing tokens now.
    if rt_open {
        let _ = tokio::time::timeout(Duration::from_secs(1), rt.send(RtMessage::Close(None))).await;
    }
    let s = summary.unwrap_or_else(unreachable_summary);
    // Before the stream closes. What the caller hears next is in Twilio's hands: the
    // TwiML that started this stream has the fallback after `</Connect>`, so a stream
    // that just closes (a failure) plays it with no request to any gateway. Endings that
    // must not play it are told to Twilio through its REST API first (the transfer's
    // `<Dial>` was, above; the hang-up after a goodbye is, here), after which the
    // stream's end runs nothing. The endings table only answers streams started by TwiML
    // with a `<Connect action>` (written by earlier versions, calls that were already
    // running across an upgrade).
    if s.outcome == Outcome::Transferred {
        if !moved {
            let target = s.detail.clone().unwrap_or_default();
            state
                .endings
                .record_after(&start.call_sid, AfterStream::Transfer(leg, target));
        }
    } else {
        state.endings.record(&start.call_sid, s.outcome);
    }
    if matches!(
        s.outcome,
        Outcome::AgentHangup | Outcome::SilenceTimeout | Outcome::MaxDuration
    ) {
        // Awaited before the stream closes: once Twilio has ended the call, the verbs
        // after `</Connect>` (the apology) never run. When the API cannot be reached
        // (after the client's retries) the stream closes anyway and the caller hears
        // the fallback after the goodbye: an apology too many, never silence. A 404
        // (the caller already gone) is success.
        if let Err(e) = state
            .twilio
            .hang_up(&tenant.rest_credentials(), &start.call_sid)
            .await
        {
            tracing::warn!(call_sid = start.call_sid, error = %e, "REST hang-up failed; the fallback after the stream plays");
        }
    }
    if tw_open {
        let _ = tokio::time::timeout(TWILIO_WRITE_TIMEOUT, tw.close()).await;
    }
    CallEnd {
        call_sid: start.call_sid.clone(),
        tenant: tenant.name.clone(),
        ended_at_ms: 0,
        outcome: s.outcome.as_str().to_string(),
        detail: s.detail,
        transcript: s.transcript,
        usage: s.usage,
        tool_calls: s.tool_calls,
        barge_ins: s.barge_ins,
        reconnects: s.reconnects,
        model: None,
        cost: None,
        data_key: None,
    }
}

/// What the return leg of an unanswered transfer carries from agent leg `leg`, which
/// ended with `s` handing the call to `target`.
fn transferred_leg(
    s: &CallSummary,
    target: &str,
    leg: u32,
    call_started: Instant,
) -> TransferredLeg {
    TransferredLeg {
        target: target.to_owned(),
        leg,
        call_started,
        transcript: s.transcript.clone(),
        tool_calls: s.tool_calls.clone(),
        usage: s.usage.clone(),
        barge_ins: s.barge_ins,
        reconnects: s.reconnects.clone(),
        dial_status: None,
    }
}

/// Why a write to Twilio failed.
enum WriteFailed {
    /// The socket is gone.
    Closed,
    /// The peer did not take the write within [`TWILIO_WRITE_TIMEOUT`].
    Stalled,
}

impl WriteFailed {
    fn input(self) -> Input {
        match self {
            WriteFailed::Closed => Input::TwilioClosed,
            WriteFailed::Stalled => Input::TwilioStalled(format!(
                "Twilio did not take a media write within {} s",
                TWILIO_WRITE_TIMEOUT.as_secs()
            )),
        }
    }
}

/// One write to Twilio's socket, bounded by `deadline`: a peer that stops reading fills
/// the socket's buffers and would otherwise hold the call task (and its model session)
/// forever.
async fn bounded(
    deadline: tokio::time::Instant,
    write: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), WriteFailed> {
    let mut write = std::pin::pin!(write);
    // Nearly every write completes at once (the socket buffer has room): polled once
    // first, it needs no timer at all. Creating one would clone the runtime handle, an
    // atomic every call shares, twice per frame.
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
    if let std::task::Poll::Ready(done) = first {
        return done.map_err(|_| WriteFailed::Closed);
    }
    match tokio::time::timeout_at(deadline, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteFailed::Closed),
        Err(_) => Err(WriteFailed::Stalled),
    }
}

/// Puts the model and the cost on the record and counts them per tenant (once per call,
/// after it ended: never on the audio path).
fn price(state: &AppState, tenant: &Tenant, record: &mut CallEnd, seconds: f64) {
    let model = tenant.spec.agent.model.clone();
    let m = &state.metrics;
    match cost::prices_for(&model, tenant.spec.pricing.as_ref()) {
        Some((prices, source)) => {
            let c = cost::compute(&model, &record.usage, seconds, prices, source);
            m.cost_usd
                .with_label_values(&[tenant.name.as_str()])
                .inc_by(c.total_usd);
            let t = c.tokens;
            for (class, n) in [
                ("text_input", t.text_input),
                ("text_cached_input", t.text_cached_input),
                ("text_output", t.text_output),
                ("audio_input", t.audio_input),
                ("audio_cached_input", t.audio_cached_input),
                ("audio_output", t.audio_output),
            ] {
                m.tokens
                    .with_label_values(&[tenant.name.as_str(), class])
                    .inc_by(n);
            }
            record.cost = Some(c.to_record());
        }
        None => {
            m.unpriced_calls
                .with_label_values(&[tenant.name.as_str()])
                .inc();
        }
    }
    record.model = Some(model);
}

/// The session input for one read from the Twilio socket (`None`: nothing to handle).
fn from_twilio(
    ctx: &mut CallTask,
    msg: Option<Result<TwMessage, axum::Error>>,
    open: &mut bool,
) -> (Option<Input>, Frame) {
    let input = match msg {
        Some(Ok(TwMessage::Text(t))) => match media::parse(t.as_str()) {
            Ok(Inbound::Media {
                timestamp_ms,
                payload,
                bytes,
            }) => {
                return (
                    Some(Input::Media {
                        timestamp_ms,
                        payload,
                        bytes,
                    }),
                    Frame::Inbound,
                );
            }
            Ok(Inbound::Mark { name }) => Some(Input::Mark(name)),
            Ok(Inbound::Dtmf { digit }) => Some(Input::Dtmf(digit)),
            Ok(Inbound::Stop) => Some(Input::Stop),
            Ok(Inbound::Connected | Inbound::Start(_)) => {
                ctx.malformed(
                    "repeated_start",
                    &"connected/start after the stream started",
                );
                None
            }
            Err(e) => {
                ctx.malformed(e.kind(), &e);
                None
            }
        },
        Some(Ok(TwMessage::Binary(_))) => {
            ctx.malformed("binary_frame", &"binary frame from Twilio");
            None
        }
        Some(Ok(TwMessage::Ping(_) | TwMessage::Pong(_))) => None,
        Some(Ok(TwMessage::Close(_))) | None => {
            *open = false;
            Some(Input::TwilioClosed)
        }
        Some(Err(e)) => {
            ctx.malformed("twilio_socket_error", &e);
            *open = false;
            Some(Input::TwilioClosed)
        }
    };
    (input, Frame::None)
}

/// The session input for one read from the Realtime socket (`None`: nothing to handle).
fn from_realtime(
    ctx: &mut CallTask,
    msg: Option<Result<RtMessage, tokio_tungstenite::tungstenite::Error>>,
    open: &mut bool,
) -> (Option<Input>, Frame) {
    match msg {
        Some(Ok(RtMessage::Text(t))) => match parse_server_event(t.as_str()) {
            Ok(ev) => {
                let frame = if matches!(ev, ServerEvent::AudioDelta { .. }) {
                    Frame::Outbound
                } else {
                    Frame::None
                };
                if let ServerEvent::Error(e) = &ev {
                    tracing::warn!(
                        call_sid = ctx.call_sid,
                        code = e.code.as_deref().unwrap_or(""),
                        message = e.message.as_deref().unwrap_or(""),
                        "Realtime error event"
                    );
                }
                (Some(Input::Realtime(ev)), frame)
            }
            Err(e) => {
                ctx.malformed("openai_bad_event", &e);
                (None, Frame::None)
            }
        },
        Some(Ok(RtMessage::Close(frame))) => {
            *open = false;
            tracing::info!(call_sid = ctx.call_sid, reason = ?frame, "Realtime closed the session");
            let code = frame.map(|f| u16::from(f.code));
            (Some(Input::RealtimeClosed { code }), Frame::None)
        }
        None => {
            *open = false;
            (Some(Input::RealtimeClosed { code: None }), Frame::None)
        }
        Some(Err(e)) => {
            *open = false;
            tracing::warn!(call_sid = ctx.call_sid, error = %e, "Realtime socket failed");
            (Some(Input::RealtimeClosed { code: None }), Frame::None)
        }
        Some(Ok(_)) => (None, Frame::None),
    }
}

/// Moves the call to the transfer target's `<Dial>` with a REST update of the Call;
/// whether Twilio took it. When it cannot be told (after retries) the stream closes and
/// the caller hears the fallback after `</Connect>`.
async fn move_call(
    state: &AppState,
    tenant: &Tenant,
    call_sid: &str,
    leg: u32,
    target: &str,
) -> bool {
    let Some(twiml) = tenant.transfer_twiml(&state.public_base, call_sid, leg, target) else {
        tracing::error!(call_sid, target, "transfer target vanished");
        return false;
    };
    let t0 = Instant::now();
    match state
        .twilio
        .update_twiml(&tenant.rest_credentials(), call_sid, &twiml)
        .await
    {
        Ok(call) => {
            state.metrics.transfers.with_label_values(&["moved"]).inc();
            tracing::info!(
                call_sid,
                target,
                status = call.status,
                ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                "call moved to <Dial>"
            );
            true
        }
        Err(e) => {
            state
                .metrics
                .transfers
                .with_label_values(&["rest_failed"])
                .inc();
            tracing::warn!(call_sid, target, error = %e, "REST update failed; the caller hears the fallback after the stream");
            false
        }
    }
}

fn unreachable_summary() -> super::session::CallSummary {
    super::session::CallSummary {
        outcome: Outcome::GatewayError,
        detail: None,
        transcript: Vec::new(),
        usage: Default::default(),
        tool_calls: Vec::new(),
        barge_ins: 0,
        reconnects: Vec::new(),
    }
}

/// The tenant's connection parameters: every session of a call has the same
/// configuration.
fn connect_params(tenant: &Tenant) -> ConnectParams {
    ConnectParams {
        url: tenant.realtime_url.clone(),
        model: tenant.spec.agent.model.clone(),
        api_key: tenant.credentials().api_key.clone(),
        session_update: tenant.session_update.clone(),
    }
}

/// Closes a Realtime socket the call no longer uses without holding up the call.
fn close_in_background(mut ws: RealtimeSocket) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    });
}

/// Forgets queued inputs that came from a Realtime socket just given up.
fn drop_realtime_inputs(inputs: &mut VecDeque<(Input, Instant, Frame)>) {
    inputs.retain(|(i, _, _)| !matches!(i, Input::Realtime(_) | Input::RealtimeClosed { .. }));
}

fn observe(state: &AppState, call_sid: &str, o: Observation) {
    let m = &state.metrics;
    match o {
        Observation::BargeIn => m.barge_ins.inc(),
        Observation::ResponseLatency(ms) => m.response_latency.observe(ms as f64 / 1000.0),
        Observation::OpenAiError(code) => {
            // Codes are an open set from the peer: keep label cardinality bounded.
            let code = if code.len() <= 48
                && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                code
            } else {
                "other".into()
            };
            m.openai_errors.with_label_values(&[code.as_str()]).inc();
        }
        Observation::PaddedSilence(ms) => m.padded_silence_ms.inc_by(ms),
        Observation::LateDeltaDropped => m.late_deltas_dropped.inc(),
        Observation::OpenAiLost(cause) => {
            tracing::warn!(call_sid, cause, "Realtime session lost; reconnecting");
        }
        Observation::Reconnected { cause, gap_ms } => {
            m.openai_reconnects.with_label_values(&[cause]).inc();
            m.reconnect_gap.observe(gap_ms as f64 / 1000.0);
            tracing::info!(
                call_sid,
                cause,
                gap_ms,
                "call moved to a new Realtime session"
            );
        }
        Observation::Protocol(kind) => {
            m.malformed.with_label_values(&[kind]).inc();
            tracing::debug!(call_sid, kind, "protocol irregularity");
        }
    }
}
