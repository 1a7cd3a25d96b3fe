//! The simulator's HTTP side: `POST /v1/chat/completions` with bearer auth, fault
//! injection and a request log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::answer::answer_for;
use super::validate::check_request;

/// Where the simulator listens and the key it accepts.
#[derive(Debug, Clone)]
pub struct ChatSimConfig {
    /// Address to bind (port 0: any free port).
    pub listen: SocketAddr,
    /// The API key clients must send as `Authorization: Bearer …`.
    pub api_key: String,
}

#[derive(Default)]
struct Faults {
    remaining: u32,
    status: u16,
}

struct Shared {
    cfg: ChatSimConfig,
    faults: Mutex<Faults>,
    log: Mutex<Vec<Value>>,
    ids: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulator; dropping it stops the listener.
pub struct ChatSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl ChatSim {
    /// Binds and starts serving.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn start(cfg: ChatSimConfig) -> std::io::Result<ChatSim> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg,
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            ids: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .fallback(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "Invalid URL",
                    None,
                    None,
                )
            })
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("chat simulator stopped: {e}");
            }
        });
        Ok(ChatSim {
            addr,
            shared,
            server,
        })
    }

    /// The base URL clients configure, e.g. `http://127.0.0.1:40123/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next `n` requests (after authentication) answer `status` with an error body.
    pub fn fail_next(&self, n: u32, status: u16) {
        *lock(&self.shared.faults) = Faults {
            remaining: n,
            status,
        };
    }

    /// Every request body received, in order (failed ones included).
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for ChatSim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(
    status: StatusCode,
    kind: &str,
    message: &str,
    param: Option<String>,
    code: Option<&str>,
) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
            .to_string(),
    )
        .into_response()
}

async fn completions(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if key != Some(s.cfg.api_key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect API key provided.",
            None,
            Some("invalid_api_key"),
        );
    }
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    if let Ok(v) = &parsed {
        lock(&s.log).push(v.clone());
    }
    {
        let mut f = lock(&s.faults);
        if f.remaining > 0 {
            f.remaining -= 1;
            let status =
                StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(
                status,
                if status == StatusCode::TOO_MANY_REQUESTS {
                    "requests"
                } else {
                    "server_error"
                },
                "The server had an error while processing your request. Sorry about that!",
                None,
                None,
            );
        }
    }
    let Ok(req) = parsed else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "We could not parse the JSON body of your request.",
            None,
            None,
        );
    };
    let schema = match check_request(&req) {
        Ok(schema) => schema,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &e.message,
                e.param,
                None,
            );
        }
    };
    let transcript = req["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let content = match &schema {
        Some(schema) => answer_for(schema, &transcript).to_string(),
        None => transcript.lines().next().unwrap_or_default().to_string(),
    };
    // Roughly four characters a token, like the API's own rule of thumb.
    let prompt_tokens = body.len() / 4;
    let completion_tokens = content.len() / 4 + 1;
    let id = s.ids.fetch_add(1, Ordering::Relaxed);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = json!({
        "id": format!("chatcmpl-sim{id}"),
        "object": "chat.completion",
        "created": created,
        "model": req["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_sim",
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out.to_string(),
    )
        .into_response()
}
