//! Stream admission: what lets a media stream become a call.
//!
//! The webhook (signed by Twilio) is the only thing that proves a call is real; the
//! stream that follows carries a token the webhook issued. The token is MAC'd with a key
//! derived from the tenant's Twilio auth token for this one purpose (HKDF-SHA256), so a
//! stream token never doubles as a webhook signature key and vice versa. It covers the
//! tenant, the CallSid and an expiry (`--stream-admission-seconds`, default 60 s), so any
//! replica of the tenant's gateway can verify it without asking anyone.
//!
//! A token alone would be replayable: a captured `start` message (the token travels in
//! its custom parameters) would reopen the call, start a second model session and
//! overwrite the real transcript. So each webhook also records an admission in this
//! process's [`Admissions`] table, and a CallSid whose stream was opened stays refused
//! while it is live and for [`ENDED_RETENTION`] after it ended. The table's lock is taken
//! on the webhook, on the handshake, on `start` and at the call's end, never per audio
//! frame.
//!
//! # Several replicas
//!
//! A tenant's gateway runs as several replicas behind one Service, and Twilio's webhook
//! and its stream are separate connections: the stream may reach a replica that did not
//! answer the webhook. [`Admissions::consume`] therefore has two ways to admit a stream
//! whose token verifies and has not expired:
//!
//! - this replica holds the admission (it answered the webhook): the stream consumes it
//!   and inherits the call slot the webhook took;
//! - it does not: the stream is *adopted*: the CallSid is recorded as opened here and a
//!   call slot (`--max-calls`) is taken now, or the stream is refused busy
//!   ([`Refusal::AtCapacity`]). The webhook replica's unused admission expires with its
//!   TTL and releases its slot.
//!
//! Either way a second open of the same CallSid on the same replica is refused, live or
//! ended.
//!
//! An admission also holds the drain ([`crate::drain::CallGuard`]) and hands it to its
//! call: on SIGTERM a call answered here whose stream has not opened yet keeps the
//! server up like a live one, until it ends or its admission expires.
//!
//! **Residual risk.** Without a store shared by the replicas, "opened" is known per
//! replica: a captured token can open the call once more on every replica that has not
//! seen it opened, within the token's lifetime, including the webhook's replica when the
//! real stream went elsewhere (it still holds the unused admission). The token travels
//! only inside TLS (the `start` message on the wss connection), every handshake must
//! carry a valid Twilio signature, and the token dies after its TTL; replicas' clocks must
//! agree to well within that TTL (the expiry is wall-clock time). Recording opened
//! CallSids in a shared store (the call store's Postgres) would close the gap; that is not
//! built.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::unix_ms;
use crate::drain::{CallGuard, Drain};

/// HKDF `info` of the stream admission key: names the purpose, so the same auth token
/// yields unrelated keys for anything else derived from it later.
const STREAM_KEY_INFO: &[u8] = b"switchboard stream admission v1";

/// Bytes of the MAC carried in a token (128 bits).
const TAG_BYTES: usize = 16;

/// The key that MACs a tenant's stream tokens. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct StreamKey([u8; 32]);

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(..)")
    }
}

impl StreamKey {
    /// Derives the stream key from a tenant's Twilio auth token.
    pub fn derive(auth_token: &str) -> Self {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit: expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, auth_token.as_bytes()).expand(STREAM_KEY_INFO, &mut key);
        Self(key)
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        for p in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") never MAC alike.
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    /// The hex tag over `parts`.
    pub fn tag(&self, parts: &[&[u8]]) -> String {
        hex::encode(&self.mac(parts).finalize().into_bytes()[..TAG_BYTES])
    }

    /// Whether `tag` is the hex tag over `parts` (constant-time compare).
    pub fn verify(&self, parts: &[&[u8]], tag: &str) -> bool {
        let Ok(bytes) = hex::decode(tag) else {
            return false;
        };
        bytes.len() == TAG_BYTES && self.mac(parts).verify_truncated_left(&bytes).is_ok()
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 accepts keys of any length")
}

/// How long an ended call's CallSid stays refused. Past it a replayed token has long
/// expired anyway; only a replayed *webhook* (Twilio signatures carry no time) could
/// admit it again.
pub const ENDED_RETENTION: Duration = Duration::from_secs(3600);

/// Why a webhook got no admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// This CallSid's stream was already opened (live or recently ended): a replayed
    /// webhook.
    #[error("the stream of this call was already opened")]
    AlreadyStreamed,
    /// Every call slot (`--max-calls`) is taken by a live call or a pending admission.
    #[error("at capacity")]
    AtCapacity,
}

/// Why a media stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The CallSid's stream was already opened (live or ended).
    #[error("replayed stream: this call's stream was already opened")]
    Replay,
    /// The admission expired before the stream used it.
    #[error("the stream admission expired")]
    Expired,
    /// A valid token for a call this replica never admitted, and every call slot
    /// (`--max-calls`) is taken.
    #[error("at capacity: no call slot for a stream admitted by another replica")]
    AtCapacity,
    /// The token is malformed or not MAC'd for this tenant and CallSid.
    #[error("bad stream token")]
    BadToken,
}

impl Refusal {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Replay => "replay",
            Refusal::Expired => "expired",
            Refusal::AtCapacity => "busy",
            Refusal::BadToken => "bad_token",
        }
    }
}

struct Pending {
    /// The call slot this admission reserves; dropped (released) if it expires unused.
    permit: OwnedSemaphorePermit,
    /// An answered call holds the drain like a live one: Twilio opens its stream after
    /// SIGTERM as readily as before.
    guard: CallGuard,
    tenant: String,
    expires: Instant,
    /// Tells a re-issued admission (a retried webhook) from the one a timer expires.
    id: u64,
}

#[derive(Default)]
struct Table {
    pending: HashMap<String, Pending>,
    /// CallSids whose stream was opened: `true` while live.
    spent: HashMap<String, bool>,
    /// Ended calls, oldest first, for the retention sweep.
    ended: VecDeque<(Instant, String)>,
    next_id: u64,
}

impl Table {
    fn sweep(&mut self, now: Instant) {
        while let Some((at, _)) = self.ended.front() {
            if now.saturating_duration_since(*at) < ENDED_RETENTION {
                break;
            }
            if let Some((_, sid)) = self.ended.pop_front()
                && self.spent.get(&sid) == Some(&false)
            {
                self.spent.remove(&sid);
            }
        }
    }
}

/// The in-process admission table (see the module docs), and the call slots of
/// `--max-calls`: the webhook takes a slot atomically with its admission (no
/// check-then-act), the stream inherits it, the call holds it until it ends.
pub struct Admissions {
    table: Mutex<Table>,
    ttl: Duration,
    slots: Arc<Semaphore>,
    max_calls: usize,
    drain: Arc<Drain>,
}

/// A consumed admission: the call holds it until it ends, then the CallSid is marked
/// ended (still refused for [`ENDED_RETENTION`]).
pub struct CallSlot {
    admissions: Arc<Admissions>,
    call_sid: String,
    adopted: bool,
    _permit: OwnedSemaphorePermit,
    /// The call's claim on the drain, from the webhook's admission (or taken on adoption).
    guard: Option<CallGuard>,
}

impl CallSlot {
    /// Whether the stream was adopted: its webhook was answered by another replica.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// The call has ended: its slot goes back (another call may be admitted) and its
    /// CallSid is marked ended, while the returned claim on the drain is held until the
    /// call's remaining work (its recording's WAV) is done.
    pub fn release(mut self) -> Option<CallGuard> {
        self.guard.take()
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut t = self.admissions.lock();
        let sid = std::mem::take(&mut self.call_sid);
        t.spent.insert(sid.clone(), false);
        t.ended.push_back((Instant::now(), sid));
    }
}

impl Admissions {
    /// An empty table whose admissions expire after `ttl`, with `max_calls` call slots.
    /// Each admission and each call holds `drain` (counted in [`Drain::active`]) until it
    /// expires or ends.
    pub fn new(ttl: Duration, max_calls: usize, drain: Arc<Drain>) -> Arc<Self> {
        let max_calls = max_calls.min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            table: Mutex::new(Table::default()),
            ttl,
            slots: Arc::new(Semaphore::new(max_calls)),
            max_calls,
            drain,
        })
    }

    /// Call slots taken (live calls and admissions waiting for their stream).
    pub fn slots_in_use(&self) -> usize {
        self.max_calls - self.slots.available_permits()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every critical section is a few map operations that cannot leave the table
        // half-updated, so a poisoned lock is still consistent.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a stream for `call_sid` of `tenant` (the webhook was signed); returns the
    /// token the stream must present. A retried webhook for a call whose stream has not
    /// opened yet gets a fresh token for the same admission.
    pub fn admit(
        self: &Arc<Self>,
        tenant: &str,
        key: &StreamKey,
        call_sid: &str,
    ) -> Result<String, AdmitError> {
        let now = Instant::now();
        let expires_ms = now_ms().saturating_add(ttl_ms(self.ttl));
        let id = {
            let mut t = self.lock();
            t.sweep(now);
            if t.spent.contains_key(call_sid) {
                return Err(AdmitError::AlreadyStreamed);
            }
            // A retried webhook keeps the slot its first attempt took.
            let (permit, guard) = match t.pending.remove(call_sid) {
                Some(p) => (p.permit, p.guard),
                None => (
                    self.slots
                        .clone()
                        .try_acquire_owned()
                        .map_err(|_| AdmitError::AtCapacity)?,
                    self.drain.call_started(),
                ),
            };
            t.next_id += 1;
            let id = t.next_id;
            t.pending.insert(
                call_sid.to_string(),
                Pending {
                    permit,
                    guard,
                    tenant: tenant.to_string(),
                    expires: now + self.ttl,
                    id,
                },
            );
            id
        };
        let table = Arc::downgrade(self);
        let sid = call_sid.to_string();
        let ttl = self.ttl;
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            if let Some(a) = table.upgrade() {
                let mut t = a.lock();
                if t.pending.get(&sid).is_some_and(|p| p.id == id) {
                    t.pending.remove(&sid);
                    tracing::info!(call_sid = sid, "stream admission expired unused");
                }
            }
        });
        let expires = expires_ms.to_string();
        let tag = key.tag(&[tenant.as_bytes(), call_sid.as_bytes(), expires.as_bytes()]);
        Ok(format!("{expires}.{tag}"))
    }

    /// Whether `call_sid`'s stream was already opened (live or ended): a handshake for it
    /// is a replay, refused before the upgrade.
    pub fn is_spent(&self, call_sid: &str) -> bool {
        self.lock().spent.contains_key(call_sid)
    }

    /// Admits the stream of `call_sid` with the `token` from its `start`: consumes this
    /// replica's admission, or adopts a stream another replica's webhook admitted (see
    /// the module docs). Either way at most one stream per CallSid on this replica, and
    /// only before the token's expiry.
    pub fn consume(
        self: &Arc<Self>,
        tenant: &str,
        keys: &[StreamKey],
        call_sid: &str,
        token: &str,
    ) -> Result<CallSlot, Refusal> {
        let (expires, tag) = token.split_once('.').ok_or(Refusal::BadToken)?;
        // Several keys only during an auth token rotation's grace (the token may have
        // been issued under the previous one).
        if !keys.iter().any(|key| {
            key.verify(
                &[tenant.as_bytes(), call_sid.as_bytes(), expires.as_bytes()],
                tag,
            )
        }) {
            return Err(Refusal::BadToken);
        }
        let expires_ms: u64 = expires.parse().map_err(|_| Refusal::BadToken)?;
        let mut t = self.lock();
        if t.spent.contains_key(call_sid) {
            return Err(Refusal::Replay);
        }
        if now_ms() >= expires_ms {
            return Err(Refusal::Expired);
        }
        let (permit, guard, adopted) = match t.pending.remove(call_sid) {
            Some(p) if p.tenant != tenant => {
                t.pending.insert(call_sid.to_string(), p);
                return Err(Refusal::BadToken);
            }
            Some(p) if Instant::now() >= p.expires => return Err(Refusal::Expired),
            Some(p) => (p.permit, p.guard, false),
            // Another replica answered the webhook: the slot is taken here, now, under
            // the same lock that marks the CallSid opened (two racing streams: one wins).
            None => match self.slots.clone().try_acquire_owned() {
                Ok(permit) => (permit, self.drain.call_started(), true),
                Err(_) => return Err(Refusal::AtCapacity),
            },
        };
        t.spent.insert(call_sid.to_string(), true);
        Ok(CallSlot {
            admissions: self.clone(),
            call_sid: call_sid.to_string(),
            adopted,
            _permit: permit,
            guard: Some(guard),
        })
    }

    /// Admissions waiting for their stream.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

fn now_ms() -> u64 {
    u64::try_from(unix_ms()).unwrap_or(0)
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_key_is_not_the_auth_token() {
        let token = "e2e-auth-token-0123456789";
        let key = StreamKey::derive(token);
        // The old scheme: HMAC keyed with the auth token itself.
        let mut old = Hmac::<Sha256>::new_from_slice(token.as_bytes()).unwrap();
        old.update(b"switchboard-stream:CA1");
        let old = hex::encode(&old.finalize().into_bytes()[..TAG_BYTES]);
        assert_ne!(key.tag(&[b"CA1"]), old);
        assert_ne!(key.0.as_slice(), token.as_bytes());
        assert!(key.verify(&[b"CA1"], &key.tag(&[b"CA1"])));
        assert!(!key.verify(&[b"CA2"], &key.tag(&[b"CA1"])));
        assert!(!StreamKey::derive("other").verify(&[b"CA1"], &key.tag(&[b"CA1"])));
        assert!(!key.verify(&[b"C", b"A1"], &key.tag(&[b"CA1"])));
        assert!(!key.verify(&[b"CA1"], "zz"));
        assert!(!key.verify(&[b"CA1"], &key.tag(&[b"CA1"])[..30]));
        assert_eq!(format!("{key:?}"), "StreamKey(..)");
    }

    #[tokio::test]
    async fn an_admission_is_consumed_once_and_expires() {
        let key = StreamKey::derive("t");
        let a = Admissions::new(Duration::from_millis(300), 10, Arc::default());
        let token = a.admit("demo", &key, "CA1").unwrap();
        assert_eq!(
            a.consume("other", std::slice::from_ref(&key), "CA1", &token)
                .err(),
            Some(Refusal::BadToken)
        );
        assert_eq!(
            a.consume("demo", std::slice::from_ref(&key), "CA2", &token)
                .err(),
            Some(Refusal::BadToken)
        );
        let slot = a
            .consume("demo", std::slice::from_ref(&key), "CA1", &token)
            .unwrap();
        assert_eq!(
            a.consume("demo", std::slice::from_ref(&key), "CA1", &token)
                .err(),
            Some(Refusal::Replay)
        );
        assert_eq!(
            a.admit("demo", &key, "CA1"),
            Err(AdmitError::AlreadyStreamed)
        );
        drop(slot);
        assert!(a.is_spent("CA1"), "an ended call stays refused");
        assert_eq!(
            a.consume("demo", std::slice::from_ref(&key), "CA1", &token)
                .err(),
            Some(Refusal::Replay)
        );

        let token = a.admit("demo", &key, "CA3").unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(a.pending(), 0, "the expired admission was swept");
        assert_eq!(
            a.consume("demo", std::slice::from_ref(&key), "CA3", &token)
                .err(),
            Some(Refusal::Expired)
        );
    }

    /// Replica B never saw the webhook that replica A answered: it adopts the stream once,
    /// with a slot of its own; A's unused admission gives its slot back at its expiry.
    #[tokio::test]
    async fn a_stream_admitted_by_another_replica_is_adopted_once() {
        let key = StreamKey::derive("t");
        let a = Admissions::new(Duration::from_millis(300), 10, Arc::default());
        let b = Admissions::new(Duration::from_millis(300), 1, Arc::default());
        let token = a.admit("demo", &key, "CA1").unwrap();
        assert_eq!(
            b.consume("demo", &[StreamKey::derive("other")], "CA1", &token)
                .err(),
            Some(Refusal::BadToken)
        );
        assert_eq!(
            b.consume("demo", std::slice::from_ref(&key), "CA2", &token)
                .err(),
            Some(Refusal::BadToken)
        );
        let call = b
            .consume("demo", std::slice::from_ref(&key), "CA1", &token)
            .unwrap();
        assert!(call.adopted());
        assert_eq!(b.slots_in_use(), 1);
        assert_eq!(
            b.consume("demo", std::slice::from_ref(&key), "CA1", &token)
                .err(),
            Some(Refusal::Replay)
        );
        assert_eq!(
            b.admit("demo", &key, "CA1"),
            Err(AdmitError::AlreadyStreamed),
            "a replayed webhook on B"
        );
        // B is full: a second adopted stream is refused busy, and not marked opened.
        let other = a.admit("demo", &key, "CA3").unwrap();
        assert_eq!(
            b.consume("demo", std::slice::from_ref(&key), "CA3", &other)
                .err(),
            Some(Refusal::AtCapacity)
        );
        assert!(!b.is_spent("CA3"));
        drop(call);
        assert!(b.is_spent("CA1"), "an ended adopted call stays refused");
        assert_eq!(
            b.consume("demo", std::slice::from_ref(&key), "CA1", &token)
                .err(),
            Some(Refusal::Replay)
        );
        assert_eq!(a.slots_in_use(), 2, "A still holds both reservations");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(a.slots_in_use(), 0, "A's unused admissions expired");
        assert_eq!(
            b.consume("demo", std::slice::from_ref(&key), "CA3", &other)
                .err(),
            Some(Refusal::Expired),
            "an expired token is not adopted"
        );
        assert_eq!(b.slots_in_use(), 0);
    }

    #[tokio::test]
    async fn slots_pass_from_admission_to_call_and_come_back() {
        let key = StreamKey::derive("t");
        let a = Admissions::new(Duration::from_millis(300), 2, Arc::default());
        let t1 = a.admit("demo", &key, "CA1").unwrap();
        a.admit("demo", &key, "CA2").unwrap();
        assert_eq!(a.admit("demo", &key, "CA3"), Err(AdmitError::AtCapacity));
        // A retried webhook reuses its slot.
        let t1 = {
            let _ = t1;
            a.admit("demo", &key, "CA1").unwrap()
        };
        assert_eq!(a.slots_in_use(), 2);
        let call = a
            .consume("demo", std::slice::from_ref(&key), "CA1", &t1)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            a.slots_in_use(),
            1,
            "the unused admission gave its slot back"
        );
        drop(call);
        assert_eq!(a.slots_in_use(), 0, "the ended call gave its slot back");
    }

    /// A call that has ended but still makes its recording's WAV gives its slot back (a
    /// new call may come in) and keeps holding the drain until the WAV is done.
    #[tokio::test]
    async fn a_released_call_frees_its_slot_but_still_holds_the_drain() {
        let key = StreamKey::derive("t");
        let drain = Arc::new(Drain::default());
        let a = Admissions::new(Duration::from_secs(30), 1, drain.clone());
        let t1 = a.admit("demo", &key, "CA1").unwrap();
        let call = a
            .consume("demo", std::slice::from_ref(&key), "CA1", &t1)
            .unwrap();
        assert_eq!(a.admit("demo", &key, "CA2"), Err(AdmitError::AtCapacity));
        let finishing = call.release();
        assert_eq!(a.slots_in_use(), 0);
        assert_eq!(drain.active(), 1, "the WAV is still being made");
        a.admit("demo", &key, "CA2").unwrap();
        assert!(
            a.consume("demo", std::slice::from_ref(&key), "CA1", &t1)
                .is_err(),
            "the ended call's stream is not admitted again"
        );
        drop(finishing);
        assert_eq!(drain.active(), 1, "only CA2's admission is left");
    }

    /// The drain counts a call from its webhook: an admission waiting for its stream holds
    /// it, the call inherits the claim, and an unused admission gives it back at expiry.
    #[tokio::test]
    async fn answered_calls_hold_the_drain_until_they_end_or_expire() {
        let key = StreamKey::derive("t");
        let drain = Arc::new(Drain::default());
        let a = Admissions::new(Duration::from_millis(300), 10, drain.clone());
        let t1 = a.admit("demo", &key, "CA1").unwrap();
        a.admit("demo", &key, "CA2").unwrap();
        assert_eq!(drain.active(), 2, "answered, not streaming yet");
        a.admit("demo", &key, "CA1").unwrap();
        assert_eq!(drain.active(), 2, "a retried webhook is the same call");
        let call = a
            .consume("demo", std::slice::from_ref(&key), "CA1", &t1)
            .unwrap();
        assert_eq!(
            drain.active(),
            2,
            "the stream took over the webhook's claim"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(drain.active(), 1, "the unused admission expired");
        // Adopted streams (another replica's webhook) are counted too.
        let b = Admissions::new(Duration::from_millis(300), 10, drain.clone());
        let other = a.admit("demo", &key, "CA3").unwrap();
        let adopted = b
            .consume("demo", std::slice::from_ref(&key), "CA3", &other)
            .unwrap();
        assert_eq!(drain.active(), 3);
        drop(call);
        drop(adopted);
        assert_eq!(drain.active(), 1, "A's admission of CA3 is still pending");
        tokio::time::timeout(Duration::from_secs(2), drain.wait_idle())
            .await
            .unwrap();
    }
}
