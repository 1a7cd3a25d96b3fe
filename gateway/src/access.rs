//! Who is reading through the admin API right now: the per-key rate limiter and the
//! console's sign-in sessions. Neither is touched on a call's audio path.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::api_keys::{ApiKey, ApiKeys, KeyId};

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Most live sessions kept in the process; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

/// Most live sessions one key may hold; its oldest go first beyond it. A console user
/// signs in from a few browsers; a script signing in in a loop must not fill the
/// process's table and push every other tenant's users out.
const MAX_SESSIONS_PER_KEY: usize = 16;

type Limiter =
    RateLimiter<KeyId, governor::state::keyed::DefaultKeyedStateStore<KeyId>, DefaultClock>;

/// A signed-in console session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The key the session was opened with.
    pub key: KeyId,
    /// Token the console sends back in `X-CSRF-Token` on state-changing requests.
    pub csrf: String,
    /// The key as it was at sign-in (its digest): the session ends when the key is
    /// rotated or removed.
    credential: ApiKey,
    opened: Instant,
    expires: Instant,
}

/// Rate limits and sessions.
pub struct Access {
    limiter: Limiter,
    clock: DefaultClock,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    max_sessions: usize,
    max_sessions_per_key: usize,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

impl Default for Access {
    fn default() -> Self {
        Self::new(10, 50)
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Access {
    /// `per_second` requests per key on average, bursts of up to `burst` (both at least 1).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
            sessions: Mutex::new(HashMap::new()),
            max_sessions: MAX_SESSIONS,
            max_sessions_per_key: MAX_SESSIONS_PER_KEY,
        }
    }

    /// The same with other session caps (per process, per key; both at least 1).
    pub fn with_session_caps(mut self, total: usize, per_key: usize) -> Self {
        self.max_sessions = total.max(1);
        self.max_sessions_per_key = per_key.max(1);
        self
    }

    /// Takes one request from `key`'s allowance; `Err(wait)` when it is used up.
    pub fn check_rate(&self, key: &KeyId) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Opens a session for `key`; returns its cookie token (only its digest is kept).
    /// Beyond the caps (per key, then per process) the oldest sessions end.
    pub fn open_session(&self, key: &ApiKey) -> (String, Session) {
        let token = random_hex();
        let now = Instant::now();
        let session = Session {
            key: key.id.clone(),
            csrf: random_hex(),
            credential: key.clone(),
            opened: now,
            expires: now + SESSION_TTL,
        };
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, v| v.expires > now);
        let mut own: Vec<([u8; 32], Instant)> = s
            .iter()
            .filter(|(_, v)| v.key == session.key)
            .map(|(k, v)| (*k, v.opened))
            .collect();
        if own.len() >= self.max_sessions_per_key {
            own.sort_by_key(|(_, opened)| *opened);
            for (k, _) in &own[..=own.len() - self.max_sessions_per_key] {
                s.remove(k);
            }
        }
        while s.len() >= self.max_sessions {
            let Some(oldest) = s.iter().min_by_key(|(_, v)| v.opened).map(|(k, _)| *k) else {
                break;
            };
            s.remove(&oldest);
        }
        s.insert(digest(&token), session.clone());
        (token, session)
    }

    /// The live session a cookie token names, if the key it was opened with is still one
    /// of `keys` (a session opened with a key since rotated or removed is ended here).
    pub fn session(&self, token: &str, keys: &ApiKeys) -> Option<Session> {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let id = digest(token);
        let live = s.get(&id)?;
        if live.expires > Instant::now() && keys.holds(&live.credential) {
            return Some(live.clone());
        }
        s.remove(&id);
        None
    }

    /// Ends the session a cookie token names.
    pub fn close_session(&self, token: &str) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.remove(&digest(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> KeyId {
        KeyId {
            tenant: "t".into(),
            name: n.into(),
        }
    }

    fn api_key(n: &str) -> ApiKey {
        ApiKey::new("t", n, &format!("{n}-0123456789abcdef0123456789abcdef"))
    }

    #[test]
    fn each_key_has_its_own_allowance() {
        let a = Access::new(1, 3);
        for _ in 0..3 {
            assert!(a.check_rate(&key("a")).is_ok());
        }
        let wait = a.check_rate(&key("a")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(a.check_rate(&key("b")).is_ok());
    }

    #[test]
    fn sessions_open_find_and_close() {
        let a = Access::default();
        let keys = ApiKeys::new(vec![api_key("a")]);
        let (token, s) = a.open_session(&api_key("a"));
        assert_eq!(a.session(&token, &keys).unwrap().csrf, s.csrf);
        assert!(a.session("nope", &keys).is_none());
        a.close_session(&token);
        assert!(a.session(&token, &keys).is_none());
    }

    #[test]
    fn a_session_ends_with_its_key() {
        let a = Access::default();
        let (token, _) = a.open_session(&api_key("a"));
        let rotated = ApiKeys::new(vec![ApiKey::new(
            "t",
            "a",
            "a-rotated-0123456789abcdef0123",
        )]);
        assert!(a.session(&token, &rotated).is_none());
        // Ended, not suspended: the old key coming back does not revive it.
        let keys = ApiKeys::new(vec![api_key("a")]);
        assert!(a.session(&token, &keys).is_none());
    }

    #[test]
    fn sessions_are_capped_per_key_and_per_process_oldest_first() {
        let a = Access::default().with_session_caps(4, 3);
        let keys = ApiKeys::new(vec![api_key("a"), api_key("b")]);
        let a_tokens: Vec<String> = (0..4).map(|_| a.open_session(&api_key("a")).0).collect();
        // Key a's first session went when its fourth opened; the other three live.
        assert!(a.session(&a_tokens[0], &keys).is_none());
        for t in &a_tokens[1..] {
            assert!(a.session(t, &keys).is_some());
        }
        // Key b is not pushed out by key a; the process cap (4) takes the oldest of all.
        let b1 = a.open_session(&api_key("b")).0;
        let b2 = a.open_session(&api_key("b")).0;
        assert!(a.session(&b1, &keys).is_some());
        assert!(
            a.session(&a_tokens[1], &keys).is_none(),
            "process cap: oldest first"
        );
        for t in [&a_tokens[2], &a_tokens[3], &b1, &b2] {
            assert!(a.session(t, &keys).is_some());
        }
        assert_eq!(a.sessions.lock().unwrap().len(), 4);
    }
}
