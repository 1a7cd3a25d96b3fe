//! WebSocket message framing for the load generator's open connections (RFC 6455 §5).
//!
//! The handshakes stay with tungstenite; once a connection is open, its socket is taken
//! out and framed here. The generator exchanges about two hundred small text messages per
//! call per second on one core, and the general-purpose stack's per-message work (waker
//! bookkeeping on every poll, a buffer zeroed before every read, a shared buffer split
//! and frozen per message) was a large part of what a call cost it. Here a read appends to
//! one buffer without zeroing it, every complete frame in it is handled in place, and the
//! frames written for one event go out in one write.
//!
//! Only what the relays send is supported: unfragmented text frames, ping, pong and
//! close. A fragmented or oversized message is a protocol error, which ends the call as a
//! failure rather than going unnoticed.

use std::io;
use std::ops::Range;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest message accepted (the relays' largest, `session.update`, is a few KiB).
const MAX_MESSAGE: usize = 1 << 20;
/// Room made for each read.
const READ_CHUNK: usize = 4 * 1024;

/// What a complete frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message; its bytes are at this range of the read buffer (see [`Conn::text`]).
    Text(Range<usize>),
    /// The peer is closing.
    Close,
    /// Ping, pong or binary: nothing for the load generator to act on (pings are answered).
    Other,
}

/// Why a connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the TCP connection.
    #[error("connection closed without a close frame")]
    Eof,
    /// The peer sent something this reader does not accept.
    #[error("websocket protocol: {0}")]
    Protocol(&'static str),
}

/// One open WebSocket connection.
#[derive(Debug)]
pub struct Conn<S> {
    io: S,
    /// Masks outgoing frames (the client side); the server side unmasks incoming ones.
    client: bool,
    rbuf: Vec<u8>,
    /// Bytes of `rbuf` already handled.
    parsed: usize,
    wbuf: Vec<u8>,
    mask_state: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Frames `io`, whose handshake is complete; `client` is the side that opened it.
    pub fn new(io: S, client: bool) -> Self {
        Self {
            io,
            client,
            rbuf: Vec::with_capacity(READ_CHUNK),
            parsed: 0,
            wbuf: Vec::with_capacity(1024),
            // Any non-zero seed: masks only need to differ, not to be secret, here.
            mask_state: rand::random::<u32>() | 1,
        }
    }

    /// Reads whatever the socket has (waits for at least one byte). Cancel-safe: bytes
    /// read are kept even if the caller stops waiting.
    pub async fn fill(&mut self) -> Result<(), FrameError> {
        if self.parsed > 0 {
            self.rbuf.drain(..self.parsed);
            self.parsed = 0;
        }
        self.rbuf.reserve(READ_CHUNK);
        match self.io.read_buf(&mut self.rbuf).await? {
            0 => Err(FrameError::Eof),
            _ => Ok(()),
        }
    }

    /// The next complete frame already read, if any. Pings are answered (queued; sent with
    /// the next [`Self::flush`]).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let buf = &mut self.rbuf[self.parsed..];
        let Some((header, len, mask)) = header(buf)? else {
            return Ok(None);
        };
        if len > MAX_MESSAGE {
            return Err(FrameError::Protocol("message too large"));
        }
        let end = header + len;
        if buf.len() < end {
            return Ok(None);
        }
        let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0F);
        if let Some(key) = mask {
            apply_mask(&mut buf[header..end], key);
        } else if !self.client {
            return Err(FrameError::Protocol("unmasked frame from a client"));
        }
        let start = self.parsed + header;
        self.parsed += end;
        if !fin || opcode == 0 {
            return Err(FrameError::Protocol("fragmented message"));
        }
        Ok(Some(match opcode {
            1 => Frame::Text(start..start + len),
            8 => Frame::Close,
            9 => {
                let payload = self.rbuf[start..start + len].to_vec();
                self.queue(10, &payload);
                Frame::Other
            }
            2 | 10 => Frame::Other,
            _ => return Err(FrameError::Protocol("unknown opcode")),
        }))
    }

    /// The text of a [`Frame::Text`] returned by the last calls to [`Self::next_frame`].
    pub fn text(&self, at: &Range<usize>) -> Result<&str, FrameError> {
        let bytes = self
            .rbuf
            .get(at.clone())
            .ok_or(FrameError::Protocol("stale frame"))?;
        std::str::from_utf8(bytes).map_err(|_| FrameError::Protocol("text is not UTF-8"))
    }

    /// Queues a text message.
    pub fn queue_text(&mut self, text: &str) {
        self.queue(1, text.as_bytes());
    }

    /// Queues a close frame (no status).
    pub fn queue_close(&mut self) {
        self.queue(8, &[]);
    }

    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        let w = &mut self.wbuf;
        w.push(0x80 | opcode);
        let mask_bit = if self.client { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => w.push(mask_bit | n as u8),
            n @ 126..=0xFFFF => {
                w.push(mask_bit | 126);
                w.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                w.push(mask_bit | 127);
                w.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let body = w.len();
        if self.client {
            // xorshift32: a different mask per frame, as RFC 6455 asks of clients.
            let mut x = self.mask_state;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.mask_state = x;
            let key = x.to_be_bytes();
            w.extend_from_slice(&key);
            let body = w.len();
            w.extend_from_slice(payload);
            apply_mask(&mut w[body..], key);
        } else {
            debug_assert_eq!(body, w.len());
            w.extend_from_slice(payload);
        }
    }

    /// Writes everything queued, in one write when the socket takes it.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        if !self.wbuf.is_empty() {
            let result = self.io.write_all(&self.wbuf).await;
            self.wbuf.clear();
            result?;
        }
        Ok(())
    }
}

/// A parsed frame header: its length, the payload's length, the mask key if masked.
type Header = (usize, usize, Option<[u8; 4]>);

/// Parses a frame header; `None` if incomplete.
fn header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (usize::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                (
                    usize::try_from(u64::from_be_bytes(w)).unwrap_or(usize::MAX),
                    10,
                )
            }
            None => return Ok(None),
        },
        n => (usize::from(n), 2),
    };
    let mask = if masked {
        let Some(k) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some((at, len, mask)))
}

fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A tungstenite peer on one end of a pipe, this framing on the other.
    async fn pair(
        we_are_client: bool,
    ) -> (
        Conn<tokio::io::DuplexStream>,
        tokio_tungstenite::WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(1 << 20); // room for every message sent before reading
        let role = if we_are_client {
            Role::Server
        } else {
            Role::Client
        };
        let peer = tokio_tungstenite::WebSocketStream::from_raw_socket(b, role, None).await;
        (Conn::new(a, we_are_client), peer)
    }

    async fn texts(conn: &mut Conn<tokio::io::DuplexStream>, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < n {
            conn.fill().await.unwrap();
            while let Some(f) = conn.next_frame().unwrap() {
                if let Frame::Text(r) = f {
                    got.push(conn.text(&r).unwrap().to_owned());
                }
            }
        }
        got
    }

    #[tokio::test]
    async fn exchanges_text_with_a_standard_peer_both_ways_and_in_both_roles() {
        for client in [true, false] {
            let (mut conn, mut peer) = pair(client).await;
            let long = "é".repeat(40_000); // 16- and 64-bit lengths
            for m in ["", "hello", &"x".repeat(200), &long] {
                peer.send(Message::text(m)).await.unwrap();
            }
            let got = texts(&mut conn, 4).await;
            assert_eq!(got, ["", "hello", &"x".repeat(200), &long]);

            conn.queue_text("one");
            conn.queue_text(&"y".repeat(300));
            conn.flush().await.unwrap();
            let a = peer.next().await.unwrap().unwrap();
            let b = peer.next().await.unwrap().unwrap();
            assert_eq!(a, Message::text("one"));
            assert_eq!(b, Message::text("y".repeat(300)));

            peer.send(Message::Ping(b"p".to_vec().into()))
                .await
                .unwrap();
            conn.fill().await.unwrap();
            assert_eq!(conn.next_frame().unwrap(), Some(Frame::Other));
            conn.flush().await.unwrap(); // the pong
            assert_eq!(
                peer.next().await.unwrap().unwrap(),
                Message::Pong(b"p".to_vec().into())
            );
            peer.send(Message::Close(None)).await.unwrap();
            conn.fill().await.unwrap();
            assert_eq!(conn.next_frame().unwrap(), Some(Frame::Close));
        }
    }

    #[tokio::test]
    async fn frames_split_across_reads_are_reassembled() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut conn = Conn::new(a, true);
        let frame = [0x81u8, 5, b'h', b'e', b'l', b'l', b'o'];
        let chunks: Vec<&[u8]> = frame.chunks(2).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            b.write_all(chunk).await.unwrap();
            conn.fill().await.unwrap();
            if i + 1 < chunks.len() {
                assert_eq!(conn.next_frame().unwrap(), None, "incomplete after {i}");
            }
        }
        let f = conn.next_frame().unwrap().unwrap();
        let Frame::Text(r) = f else { panic!("{f:?}") };
        assert_eq!(conn.text(&r).unwrap(), "hello");
        assert_eq!(conn.next_frame().unwrap(), None);
    }

    #[tokio::test]
    async fn what_the_relays_never_send_is_an_error() {
        for bytes in [
            vec![0x01u8, 1, b'a'],                   // fragment
            vec![0xC1, 1, b'a'],                     // reserved bit
            vec![0x83, 0],                           // unknown opcode
            vec![0x81, 2, 0xC3, 0x28],               // invalid UTF-8 is caught by text()
            vec![0x81, 127, 0, 0, 0, 0, 1, 0, 0, 0], // too large
        ] {
            let (a, mut b) = tokio::io::duplex(1 << 16);
            let mut conn = Conn::new(a, true);
            b.write_all(&bytes).await.unwrap();
            conn.fill().await.unwrap();
            let bad = match conn.next_frame() {
                Err(_) => true,
                Ok(Some(Frame::Text(r))) => conn.text(&r).is_err(),
                Ok(_) => false,
            };
            assert!(bad, "{bytes:?}");
        }
        // A server refuses unmasked client frames.
        let (a, mut b) = tokio::io::duplex(64);
        let mut server = Conn::new(a, false);
        b.write_all(&[0x81, 1, b'a']).await.unwrap();
        server.fill().await.unwrap();
        assert!(server.next_frame().is_err());
        drop(b);
        assert!(matches!(server.fill().await, Err(FrameError::Eof)));
    }
}
