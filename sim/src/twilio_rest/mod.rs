//! A Twilio REST API simulator: the Call resource's update
//! (`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`), as call control uses
//! it (voice-protocols.md A5).
//!
//! What it checks like Twilio: HTTP Basic auth (the account SID and its auth token, or an
//! API key SID and secret registered for the account), a form-encoded body, that the call
//! exists in that account and is in progress. What it answers like Twilio: the Call
//! resource as JSON (`sid`, `account_sid`, `status`, `direction`, `from`, `to`,
//! `api_version`, `uri`, …), and errors as Twilio's JSON error body
//! (`{"code", "message", "more_info", "status"}`: 20003 authentication, 20404 not found,
//! 21220 call not in progress, 21218 bad parameter). `Twiml=` hands the new TwiML to the
//! simulated caller of that call ([`Control::Twiml`]), which ends its media stream and
//! runs it; `Status=completed` ends the call ([`Control::Hangup`]).
//!
//! Knobs: [`TwilioRestSim::fail_next`] answers the next requests with a status (429,
//! 503) before serving normally, to exercise a client's retries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the REST API tells a simulated call to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Run this TwiML now (the media stream ends).
    Twiml(String),
    /// The call is ended (`Status=completed`).
    Hangup,
}

/// One request the simulator answered, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    /// The call in the path.
    pub call_sid: String,
    /// The form, in order.
    pub form: Vec<(String, String)>,
    /// The HTTP status answered.
    pub status: u16,
    /// The Basic-auth user.
    pub username: String,
}

struct LiveCall {
    account_sid: String,
    from: String,
    to: String,
    in_progress: bool,
    tx: mpsc::UnboundedSender<Control>,
}

#[derive(Default)]
struct Inner {
    /// Account SID → accepted (username, password) pairs.
    credentials: HashMap<String, Vec<(String, String)>>,
    calls: HashMap<String, LiveCall>,
    requests: Vec<RestRequest>,
    fail_next: Vec<u16>,
}

/// The simulator's state, shared by its server and the simulated callers.
#[derive(Clone, Default)]
pub struct TwilioRestSim {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for TwilioRestSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRestSim").finish_non_exhaustive()
    }
}

impl TwilioRestSim {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts `username:password` (the account SID and auth token, or an API key) for
    /// `account_sid`.
    pub fn allow(&self, account_sid: &str, username: &str, password: &str) {
        self.lock()
            .credentials
            .entry(account_sid.to_owned())
            .or_default()
            .push((username.to_owned(), password.to_owned()));
    }

    /// Registers a live call (the simulated caller does this when its call is answered);
    /// REST updates for it arrive on the returned receiver.
    pub fn register_call(
        &self,
        account_sid: &str,
        call_sid: &str,
        from: &str,
        to: &str,
    ) -> mpsc::UnboundedReceiver<Control> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().calls.insert(
            call_sid.to_owned(),
            LiveCall {
                account_sid: account_sid.to_owned(),
                from: from.to_owned(),
                to: to.to_owned(),
                in_progress: true,
                tx,
            },
        );
        rx
    }

    /// Marks a call completed (the caller hung up or the call ended).
    pub fn call_ended(&self, call_sid: &str) {
        if let Some(c) = self.lock().calls.get_mut(call_sid) {
            c.in_progress = false;
        }
    }

    /// Answers the next requests with these statuses (e.g. `[503, 429]`), then normally.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.lock().fail_next.extend_from_slice(statuses);
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<RestRequest> {
        self.lock().requests.clone()
    }

    /// Serves the API on `addr` until the task is dropped; returns the bound address.
    pub async fn serve(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                post(update_call),
            )
            .with_state(self.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((local, task))
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn call_json(call_sid: &str, c: &LiveCall, status: &str) -> Value {
    json!({
        "sid": call_sid,
        "account_sid": c.account_sid,
        "api_version": "2010-04-01",
        "direction": "inbound",
        "from": c.from,
        "from_formatted": c.from,
        "to": c.to,
        "to_formatted": c.to,
        "status": status,
        "answered_by": null,
        "annotation": null,
        "caller_name": null,
        "forwarded_from": null,
        "group_sid": null,
        "parent_call_sid": null,
        "phone_number_sid": null,
        "price": null,
        "price_unit": "USD",
        "queue_time": "0",
        "trunk_sid": null,
        "duration": null,
        "start_time": null,
        "end_time": null,
        "date_created": null,
        "date_updated": null,
        "uri": format!("/2010-04-01/Accounts/{}/Calls/{call_sid}.json", c.account_sid),
        "subresource_uris": {
            "recordings": format!("/2010-04-01/Accounts/{}/Calls/{call_sid}/Recordings.json", c.account_sid),
        },
    })
}

async fn update_call(
    State(sim): State<TwilioRestSim>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let (username, password) = basic_auth(&headers).unwrap_or_default();
    let call_sid = call.strip_suffix(".json").unwrap_or(&call).to_owned();
    let mut inner = sim.lock();
    let answer = answer(
        &mut inner, &account, &call_sid, &username, &password, &headers, &form,
    );
    let status = answer.status().as_u16();
    inner.requests.push(RestRequest {
        call_sid,
        form,
        status,
        username,
    });
    answer
}

fn answer(
    inner: &mut Inner,
    account: &str,
    call_sid: &str,
    username: &str,
    password: &str,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Response {
    if !inner.fail_next.is_empty() {
        let status = inner.fail_next.remove(0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return error(status, 20500, "Internal Server Error (simulated)");
    }
    let authorised = inner
        .credentials
        .get(account)
        .is_some_and(|pairs| pairs.iter().any(|(u, p)| u == username && p == password));
    if !authorised {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let resource = format!("/2010-04-01/Accounts/{account}/Calls/{call_sid}.json");
    let Some(c) = inner
        .calls
        .get_mut(call_sid)
        .filter(|c| c.account_sid == account)
    else {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource {resource} was not found"),
        );
    };
    if !form_encoded {
        return error(
            StatusCode::BAD_REQUEST,
            21218,
            "Invalid parameter: the body must be application/x-www-form-urlencoded",
        );
    }
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !c.in_progress {
        // Twilio: updating a call that has ended is refused (21220), except a hang-up of
        // one that already completed, which is a 404 once the call is gone; the
        // simulator keeps ended calls, so it answers 404 to a hang-up.
        if get("Status") == Some("completed") {
            return error(
                StatusCode::NOT_FOUND,
                20404,
                &format!("The requested resource {resource} was not found"),
            );
        }
        return error(
            StatusCode::BAD_REQUEST,
            21220,
            "Call is not in-progress. Cannot redirect.",
        );
    }
    let status = match (get("Twiml"), get("Url"), get("Status")) {
        (_, _, Some("completed") | Some("canceled")) => {
            c.in_progress = false;
            let _ = c.tx.send(Control::Hangup);
            "completed"
        }
        (Some(twiml), _, None) => {
            let _ = c.tx.send(Control::Twiml(twiml.to_owned()));
            "in-progress"
        }
        (None, Some(_), None) => {
            return error(
                StatusCode::BAD_REQUEST,
                21218,
                "Invalid parameter: Url is not supported by the simulator",
            );
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                21218,
                "Invalid parameter: one of Twiml, Url or Status is required",
            );
        }
    };
    let body = call_json(call_sid, c, status);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
