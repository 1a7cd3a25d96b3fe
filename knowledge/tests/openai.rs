//! The OpenAI-compatible embedder against a tiny local server speaking the same shapes:
//! batching, 429 with Retry-After then success, 5xx retries running out, no retry on
//! 4xx, dimension check, per-attempt timeout.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use switchboard_knowledge::{EmbedError, Embedder, OpenAiConfig, OpenAiEmbedder};

/// What the fake endpoint does with each request, by request number.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    /// First request: 429 with `Retry-After: 1`; then OK.
    RateLimitedOnce,
    /// Always 503.
    Unavailable,
    /// Always 400.
    BadRequest,
    /// Vectors one element short.
    WrongDimensions,
    /// First request hangs past the client's timeout; then OK.
    SlowOnce,
    /// Returns the data in reverse order, with indexes.
    Reversed,
}

#[derive(Clone)]
struct Fake {
    mode: Mode,
    requests: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
    auth: Arc<std::sync::Mutex<Vec<String>>>,
}

fn vector_for(text: &str, dims: usize) -> Vec<f32> {
    (0..dims).map(|i| (text.len() + i) as f32 / 100.0).collect()
}

async fn embeddings(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let n = fake.requests.fetch_add(1, Ordering::SeqCst);
    fake.bodies.lock().unwrap().push(body.clone());
    if let Some(a) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        fake.auth.lock().unwrap().push(a.to_owned());
    }
    match (fake.mode, n) {
        (Mode::RateLimitedOnce, 0) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                Json(json!({"error": {"message": "Rate limit reached", "type": "requests"}})),
            )
                .into_response();
        }
        (Mode::Unavailable, _) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "overloaded").into_response();
        }
        (Mode::BadRequest, _) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": "model not found"}})),
            )
                .into_response();
        }
        (Mode::SlowOnce, 0) => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    let dims = body["dimensions"].as_u64().unwrap_or(8) as usize;
    let dims = if matches!(fake.mode, Mode::WrongDimensions) {
        dims - 1
    } else {
        dims
    };
    let inputs: Vec<String> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_for(t, dims)}))
        .collect();
    if matches!(fake.mode, Mode::Reversed) {
        data.reverse();
    }
    Json(json!({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": 1, "total_tokens": 1}
    }))
    .into_response()
}

async fn serve(mode: Mode) -> (String, Fake) {
    let fake = Fake {
        mode,
        requests: Arc::default(),
        bodies: Arc::default(),
        auth: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), fake)
}

fn config(base: &str) -> OpenAiConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    OpenAiConfig {
        api_key: Some("sk-test".into()),
        dimensions: Some(8),
        batch_size: 3,
        timeout: Duration::from_millis(800),
        max_retries: 2,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(5),
        ..OpenAiConfig::new(base, "text-embedding-3-small")
    }
}

#[tokio::test]
async fn batches_requests_and_keeps_order() {
    let (base, fake) = serve(Mode::Ok).await;
    let e = OpenAiEmbedder::new(config(&base)).unwrap();
    let texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"];
    let out = e.embed(&texts).await.unwrap();
    assert_eq!(out.len(), 7);
    for (t, v) in texts.iter().zip(&out) {
        assert_eq!(v, &vector_for(t, 8));
    }
    assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
    let bodies = fake.bodies.lock().unwrap().clone();
    assert_eq!(bodies[0]["model"], "text-embedding-3-small");
    assert_eq!(bodies[0]["input"], json!(["a", "bb", "ccc"]));
    assert_eq!(bodies[0]["dimensions"], 8);
    assert_eq!(bodies[2]["input"], json!(["g"]));
    assert_eq!(fake.auth.lock().unwrap()[0], "Bearer sk-test");
    assert!(e.embed(&[]).await.unwrap().is_empty());
    assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn reordered_data_is_placed_by_index() {
    let (base, _fake) = serve(Mode::Reversed).await;
    let e = OpenAiEmbedder::new(config(&base)).unwrap();
    let out = e.embed(&["a", "bb", "ccc"]).await.unwrap();
    assert_eq!(out[0], vector_for("a", 8));
    assert_eq!(out[2], vector_for("ccc", 8));
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let (base, fake) = serve(Mode::RateLimitedOnce).await;
    let e = OpenAiEmbedder::new(config(&base)).unwrap();
    let start = Instant::now();
    let out = e.embed(&["hello"]).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(out[0], vector_for("hello", 8));
    assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, Retry-After was 1 s"
    );
}

#[tokio::test]
async fn server_errors_retry_then_give_up() {
    let (base, fake) = serve(Mode::Unavailable).await;
    let e = OpenAiEmbedder::new(config(&base)).unwrap();
    let err = e.embed(&["x"]).await.unwrap_err();
    assert!(matches!(err, EmbedError::Http { status: 503, .. }), "{err}");
    assert_eq!(
        fake.requests.load(Ordering::SeqCst),
        3,
        "1 attempt + 2 retries"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (base, fake) = serve(Mode::BadRequest).await;
    let e = OpenAiEmbedder::new(config(&base)).unwrap();
    let err = e.embed(&["x"]).await.unwrap_err();
    match err {
        EmbedError::Http { status, body } => {
            assert_eq!(status, 400);
            assert!(body.contains("model not found"));
        }
        other => panic!("{other}"),
    }
    assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn wrong_dimensions_are_rejected() {
    let (base, _fake) = serve(Mode::WrongDimensions).await;
    let e = OpenAiEmbedder::new(config(&base)).unwrap();
    let err = e.embed(&["x"]).await.unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::Dimensions {
                expected: 8,
                got: 7
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_hung_attempt_times_out_and_is_retried() {
    let (base, fake) = serve(Mode::SlowOnce).await;
    let e = OpenAiEmbedder::new(config(&base)).unwrap();
    let start = Instant::now();
    let out = e.embed(&["x"]).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = config(&format!("http://{addr}/v1"));
    c.max_retries = 1;
    let e = OpenAiEmbedder::new(c).unwrap();
    let err = e.embed(&["x"]).await.unwrap_err();
    assert!(matches!(err, EmbedError::Transport(_)), "{err}");
}
