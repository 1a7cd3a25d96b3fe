//! The WebSocket endpoint: handshake checks, one task per session, and the handle tests
//! use to inspect sessions.

use super::audio::AudioBank;
use super::config::RealtimeConfig;
use super::log::{SessionLog, SharedLog};
use super::protocol::ApiError;
use super::session::{Out, Session};
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use futures_util::SinkExt;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Close code the GA API uses for connections made with the beta header.
const BETA_CLOSE_CODE: u16 = 4000;
const BETA_REASON: &str = "beta_api_shape_disabled";

struct Shared {
    cfg: Arc<RealtimeConfig>,
    bank: Arc<AudioBank>,
    sessions: Mutex<Vec<SharedLog>>,
    closed: watch::Sender<usize>,
    shutdown: watch::Receiver<bool>,
}

/// A running simulator. Dropping it (or calling [`RealtimeSim::shutdown`]) stops accepting
/// connections and closes open sessions with 1001.
pub struct RealtimeSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl RealtimeSim {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(addr: SocketAddr, cfg: RealtimeConfig) -> std::io::Result<RealtimeSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            bank: Arc::new(AudioBank::new(cfg.delta_ms.max(1))),
            cfg: Arc::new(cfg),
            sessions: Mutex::new(Vec::new()),
            closed: watch::channel(0).0,
            shutdown: shutdown_rx,
        });
        let app = Router::new()
            .route("/v1/realtime", get(handshake))
            .with_state(Arc::clone(&shared));
        // Small frames must not wait for Nagle: latency is what the load test measures.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("realtime simulator stopped: {e}");
            }
        });
        Ok(RealtimeSim {
            addr,
            shared,
            shutdown,
            server,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/v1/realtime`; clients append `?model=…`.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/realtime", self.addr)
    }

    /// A snapshot of every session so far, in connection order.
    pub fn sessions(&self) -> Vec<SessionLog> {
        let logs: Vec<SharedLog> = lock(&self.shared.sessions).clone();
        logs.iter().map(SharedLog::snapshot).collect()
    }

    /// Waits until at least `n` sessions have closed; false on timeout.
    pub async fn wait_sessions_closed(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.closed.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await,
            Ok(Ok(_))
        )
    }

    /// Stops the server and closes open sessions.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for RealtimeSim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.server.abort();
    }
}

/// Runs a simulator on `addr` until ctrl-c.
pub async fn serve(addr: SocketAddr, cfg: RealtimeConfig) -> std::io::Result<()> {
    let sim = RealtimeSim::start(addr, cfg).await?;
    tracing::info!("OpenAI Realtime simulator listening on {}", sim.url());
    tokio::signal::ctrl_c().await?;
    sim.shutdown();
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn http_error(status: StatusCode, e: &ApiError) -> Response {
    let body = json!({"error": {
        "message": e.message,
        "type": e.kind,
        "param": e.param,
        "code": e.code,
    }});
    (status, axum::Json(body)).into_response()
}

async fn handshake(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if super::wire::bearer_key(authorization).is_none() {
        let mut e = ApiError::invalid(
            "missing_api_key",
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        );
        e.code = None;
        return http_error(StatusCode::UNAUTHORIZED, &e);
    }
    let model = query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()))
        .and_then(|mut pairs| {
            pairs
                .find(|(k, _)| k == "model")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|m| !m.is_empty());
    let Some(model) = model else {
        return http_error(StatusCode::BAD_REQUEST, &ApiError::missing("model"));
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let beta = headers.contains_key("openai-beta");
    let index = {
        let sessions = lock(&shared.sessions);
        sessions.len()
    };
    if shared
        .cfg
        .refuse_after_sessions
        .is_some_and(|n| index >= n as usize)
    {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, &ApiError::server_error());
    }
    let faulted = shared.cfg.fault_sessions.is_none_or(|n| index < n as usize);
    let log = SharedLog::new(SessionLog::new(model.clone(), true, beta));
    lock(&shared.sessions).push(log.clone());
    ws.on_upgrade(move |socket| async move {
        let reason = if beta {
            refuse_beta(socket, &log).await
        } else {
            run(socket, &shared, &log, model, faulted).await
        };
        {
            let mut l = log.lock();
            l.closed = true;
            if l.close_reason.is_none() {
                l.close_reason = Some(reason);
            }
        }
        shared.closed.send_modify(|n| *n += 1);
    })
}

async fn refuse_beta(mut socket: WebSocket, log: &SharedLog) -> String {
    let e = ApiError::invalid(
        BETA_REASON,
        "The beta Realtime API shape is disabled. Remove the 'OpenAI-Beta: realtime=v1' header and use the GA interface.",
    );
    let v = e.to_event("event_beta".to_owned(), None);
    let _ = socket.send(Message::Text(v.to_string().into())).await;
    log.lock().errors_sent.push(v);
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: BETA_CLOSE_CODE,
            reason: BETA_REASON.into(),
        })))
        .await;
    BETA_REASON.to_owned()
}

/// The session task: reads frames, sleeps until the session's next deadline, and writes
/// whatever the session queued. Returns why the connection ended.
async fn run(
    mut socket: WebSocket,
    shared: &Shared,
    log: &SharedLog,
    model: String,
    faulted: bool,
) -> String {
    let mut shutdown = shared.shutdown.clone();
    let mut session = Session::new(
        Arc::clone(&shared.cfg),
        Arc::clone(&shared.bank),
        log.clone(),
        model,
        Instant::now(),
    );
    if !faulted {
        session.clear_faults();
    }
    if *shutdown.borrow() {
        session.shutdown();
    }
    let mut buf = Vec::new();
    // One timer entry per session, re-armed only when the deadline moves.
    let first = session.next_deadline();
    let mut armed = Some(first);
    let sleep = tokio::time::sleep_until(first);
    tokio::pin!(sleep);
    loop {
        session.drain_out(&mut buf);
        if !buf.is_empty()
            && let Err(e) = write_all(&mut socket, &mut buf).await
        {
            return format!("transport error: {e}");
        }
        if session.is_closed() {
            return "server closed".to_owned();
        }
        if session.is_dropped() {
            // Dropping the socket ends the TCP connection with no close frame.
            return "dropped (fault injection)".to_owned();
        }
        let next = session.next_deadline();
        if armed != Some(next) {
            armed = Some(next);
            sleep.as_mut().reset(next);
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    session.shutdown();
                }
            }
            msg = socket.recv() => match msg {
                None => return "client disconnected".to_owned(),
                Some(Err(e)) => return format!("transport error: {e}"),
                Some(Ok(Message::Text(t))) => session.handle_text(t.as_str(), Instant::now()),
                Some(Ok(Message::Binary(_))) => session.handle_binary(),
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(f) => format!("client closed (code {})", f.code),
                        None => "client closed".to_owned(),
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            },
            () = &mut sleep => {
                // A fired timer stays ready until reset, so always re-arm after it.
                armed = None;
                session.on_timer(Instant::now());
            }
        }
    }
}

async fn write_all(socket: &mut WebSocket, buf: &mut Vec<Out>) -> Result<(), axum::Error> {
    for out in buf.drain(..) {
        let msg = match out {
            Out::Text(s) => Message::Text(s.into()),
            Out::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        socket.feed(msg).await?;
    }
    socket.flush().await
}
