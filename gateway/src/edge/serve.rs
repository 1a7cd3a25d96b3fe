//! The accept loop: hyper's HTTP/1 server with the edge's timeouts and caps.
//!
//! `axum::serve` accepts every connection and sets no timeout; this loop takes a
//! [`ConnectionPermit`] per connection first (refusing over the caps with a canned 503),
//! and serves each with hyper's connection builder: a header-read timer (slowloris, idle
//! keep-alive), a cap on the request head and on the read buffer, upgrades for the media streams. The router carries
//! tower-http's request timeout and body limit.

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::limits::{ConnectionLimits, ConnectionPermit, Refused};
use super::metrics::EdgeMetrics;
use super::options::{MAX_BODY_BYTES, MAX_BUF_BYTES, MAX_HEAD_BYTES, ServeOptions};

/// The answer to a connection over a cap, written once without reading the request.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";
/// How long a stopping server waits for requests in flight (media streams are not among
/// them: by then every call has ended).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// `app` with the request timeout and the body limit. The timeout covers a request until
/// its response starts: for a media stream that is the 101 of the upgrade, so the call
/// that follows is not bounded by it.
pub fn layered(app: Router, opts: &ServeOptions) -> Router {
    app.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        opts.request_timeout(),
    ))
    .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
}

/// Serves `app` on `listener` until `stop` turns true, then lets requests in flight finish
/// (up to [`STOP_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ServeOptions,
    limits: Arc<ConnectionLimits>,
    metrics: EdgeMetrics,
    stop: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout())
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_BUF_BYTES)
        .keep_alive(true);
    // Each connection task holds a receiver; the server waits for all to be dropped.
    let (open_tx, open_rx) = watch::channel(());
    let mut accept_stop = stop.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = stopped(&mut accept_stop) => break,
        };
        let permit = match limits.admit(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                refuse(tcp, why);
                continue;
            }
        };
        // Nagle's algorithm would hold each small real-time message (a mark behind a media
        // chunk) until the previous segment is acknowledged: off for a relay.
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(Counted {
            io: tcp,
            _permit: permit,
        });
        let svc = TowerToHyperService::new(app.clone());
        let http = http.clone();
        let mut stop = stop.clone();
        let open = open_rx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut conn = pin!(http.serve_connection(io, svc).with_upgrades());
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    metrics.header_timeouts.inc();
                }
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    let _ = tokio::time::timeout(STOP_GRACE, open_tx.closed()).await;
}

/// Resolves when `stop` turns true; never when its sender is gone (the server then runs
/// until the runtime ends, as a dropped `Gateway` always did).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Over a cap: one non-blocking write of the 503 to a fresh (empty) send buffer, then the
/// socket is dropped. Nothing waits on the peer, so refusals cost no task and hold no
/// descriptor. A peer that had already sent its request may see a reset instead.
fn refuse(tcp: TcpStream, why: Refused) {
    let _ = tcp.try_write(REFUSAL);
    tracing::debug!(reason = why.label(), "connection refused");
}

async fn accept_failed(e: &io::Error) {
    // The peer gave up between SYN and accept: nothing to do.
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    // Out of descriptors or buffers: accepting again at once would spin.
    tracing::warn!(error = %e, "accept failed; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A socket carrying its connection permit, so the permit lives exactly as long as the
/// connection, through an upgrade to a media stream. Reads and writes pass straight
/// through.
struct Counted {
    io: TcpStream,
    _permit: ConnectionPermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
