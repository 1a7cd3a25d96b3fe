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

use crate::api_keys::KeyId;

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Most live sessions kept; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

type Limiter =
    RateLimiter<KeyId, governor::state::keyed::DefaultKeyedStateStore<KeyId>, DefaultClock>;

/// A signed-in console session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The key the session was opened with.
    pub key: KeyId,
    /// Token the console sends back in `X-CSRF-Token` on state-changing requests.
    pub csrf: String,
    expires: Instant,
}

/// Rate limits and sessions.
pub struct Access {
    limiter: Limiter,
    clock: DefaultClock,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
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
        }
    }

    /// Takes one request from `key`'s allowance; `Err(wait)` when it is used up.
    pub fn check_rate(&self, key: &KeyId) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Opens a session for `key`; returns its cookie token (only its digest is kept).
    pub fn open_session(&self, key: KeyId) -> (String, Session) {
        let token = random_hex();
        let session = Session {
            key,
            csrf: random_hex(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        s.retain(|_, v| v.expires > now);
        if s.len() >= MAX_SESSIONS
            && let Some(oldest) = s.iter().min_by_key(|(_, v)| v.expires).map(|(k, _)| *k)
        {
            s.remove(&oldest);
        }
        s.insert(digest(&token), session.clone());
        (token, session)
    }

    /// The live session a cookie token names.
    pub fn session(&self, token: &str) -> Option<Session> {
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.get(&digest(token))
            .filter(|v| v.expires > Instant::now())
            .cloned()
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
        let (token, s) = a.open_session(key("a"));
        assert_eq!(a.session(&token).unwrap().csrf, s.csrf);
        assert!(a.session("nope").is_none());
        a.close_session(&token);
        assert!(a.session(&token).is_none());
    }
}
