//! A small client for Twilio's REST API: the two Call resource operations call control
//! needs (A5 of voice-protocols.md).
//!
//! - [`TwilioRest::update_twiml`]: `POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json` with
//!   `Twiml=…` replaces whatever the call is running, at once (its media stream ends);
//! - [`TwilioRest::hang_up`]: the same with `Status=completed`; a 404 means the call has
//!   already ended, which is what was wanted.
//!
//! Form-encoded, HTTP Basic auth with the account SID and auth token or an API key SID and
//! secret ([`Credentials`]), a timeout per attempt, and a bounded retry on 429 and 5xx
//! (and on transport errors) with backoff. Errors carry Twilio's JSON error body
//! (`code`, `message`, `more_info`, `status`). Never on the audio path: called once per
//! transfer or hang-up, from the call task after the call's audio is done.

use std::time::Duration;

use serde::Deserialize;

/// Where Twilio's REST API lives unless `--twilio-api-url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.twilio.com";
/// Limit of one request.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per operation (the first and two retries).
const ATTEMPTS: u32 = 3;
/// Wait before the first retry; doubled for the next.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest `Retry-After` honoured: a call waiting to be transferred cannot wait longer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Who the requests authenticate as. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    /// The account the call belongs to (`AC…`): part of the resource URL.
    pub account_sid: String,
    /// Basic-auth user: the account SID, or an API key SID (`SK…`).
    pub username: String,
    /// Basic-auth password: the auth token, or the API key's secret.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account_sid", &self.account_sid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Twilio's error body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// Twilio error code (e.g. 20404 not found, 21220 call not in progress).
    #[serde(default)]
    pub code: Option<u32>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Link to the error's documentation.
    #[serde(default)]
    pub more_info: Option<String>,
    /// HTTP status, repeated.
    #[serde(default)]
    pub status: Option<u16>,
}

/// Why a REST operation failed (after its retries).
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The request never got an answer (connect, TLS, timeout).
    #[error("Twilio REST request failed: {0}")]
    Transport(String),
    /// Twilio answered with an error.
    #[error("Twilio answered HTTP {status}: {code:?} {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Twilio's error code, when the body had one.
        code: Option<u32>,
        /// Twilio's message (or the start of the body).
        message: String,
    },
    /// The call or account SID is not shaped like one (nothing was sent).
    #[error("not a valid SID: {0:?}")]
    BadSid(String),
}

/// The part of the Call resource the gateway reads back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    /// `CA…`.
    pub sid: String,
    /// `queued`, `ringing`, `in-progress`, `completed`, …
    pub status: String,
}

/// What a hang-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUp {
    /// Twilio ended the call.
    Ended,
    /// The call had already ended (404).
    AlreadyEnded,
}

/// The client; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct TwilioRest {
    http: reqwest::Client,
    base: String,
}

impl TwilioRest {
    /// A client for the API at `base` (`https://api.twilio.com`, or a simulator).
    pub fn new(base: &str) -> Result<Self, RestError> {
        // reqwest is built without a rustls provider; the workspace's one is ring (a
        // binary that installed it already makes this a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| RestError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// The API base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn call_url(&self, creds: &Credentials, call_sid: &str) -> Result<String, RestError> {
        for sid in [creds.account_sid.as_str(), call_sid] {
            if !crate::twilio::media::is_sid(sid) {
                return Err(RestError::BadSid(sid.to_string()));
            }
        }
        Ok(format!(
            "{}/2010-04-01/Accounts/{}/Calls/{}.json",
            self.base, creds.account_sid, call_sid
        ))
    }

    /// Replaces the TwiML the call runs with `twiml` (its media stream ends at once).
    pub async fn update_twiml(
        &self,
        creds: &Credentials,
        call_sid: &str,
        twiml: &str,
    ) -> Result<CallResource, RestError> {
        let url = self.call_url(creds, call_sid)?;
        let body = self.post(&url, creds, &[("Twiml", twiml)]).await?;
        serde_json::from_str(&body).map_err(|e| RestError::Transport(format!("bad body: {e}")))
    }

    /// Ends the call (`Status=completed`); a call that already ended is not an error.
    pub async fn hang_up(&self, creds: &Credentials, call_sid: &str) -> Result<HangUp, RestError> {
        let url = self.call_url(creds, call_sid)?;
        match self.post(&url, creds, &[("Status", "completed")]).await {
            Ok(_) => Ok(HangUp::Ended),
            Err(RestError::Api { status: 404, .. }) => Ok(HangUp::AlreadyEnded),
            Err(e) => Err(e),
        }
    }

    /// POSTs `form` with retries on transport errors, 429 and 5xx; returns the 2xx body.
    async fn post(
        &self,
        url: &str,
        creds: &Credentials,
        form: &[(&str, &str)],
    ) -> Result<String, RestError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let sent = self
                .http
                .post(url)
                .basic_auth(&creds.username, Some(&creds.password))
                .header(reqwest::header::ACCEPT, "application/json")
                .form(form)
                .send()
                .await;
            let (err, wait) = match sent {
                Err(e) => (RestError::Transport(e.to_string()), backoff),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    let body = resp
                        .text()
                        .await
                        .map_err(|e| RestError::Transport(e.to_string()))?;
                    if (200..300).contains(&status) {
                        return Ok(body);
                    }
                    let err = api_error(status, &body);
                    if status != 429 && status < 500 {
                        return Err(err);
                    }
                    (err, retry_after.unwrap_or(backoff))
                }
            };
            if attempt >= ATTEMPTS {
                return Err(err);
            }
            tracing::warn!(attempt, error = %err, "Twilio REST request failed; retrying");
            tokio::time::sleep(wait).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

fn api_error(status: u16, body: &str) -> RestError {
    match serde_json::from_str::<ApiError>(body) {
        Ok(e) => RestError::Api {
            status,
            code: e.code,
            message: e.message.unwrap_or_default(),
        },
        Err(_) => RestError::Api {
            status,
            code: None,
            message: body.chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_and_secrets_never_printed() {
        let e = api_error(
            404,
            r#"{"code":20404,"message":"The requested resource was not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}"#,
        );
        assert!(matches!(
            e,
            RestError::Api {
                status: 404,
                code: Some(20404),
                ..
            }
        ));
        let e = api_error(502, "<html>bad gateway</html>");
        assert!(matches!(
            e,
            RestError::Api {
                status: 502,
                code: None,
                ..
            }
        ));
        let c = Credentials {
            account_sid: "AC1".into(),
            username: "AC1".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
