//! The admin API (`/api/v1`) and the console's sign-in over a real gateway, a simulated
//! call and the SQLite store: a key sees its tenant's calls and nothing else, the cost is
//! the one the price table gives for the usage the simulator reported, errors are
//! problem documents, the committed OpenAPI document is current and names exactly the
//! routes that answer, and a key's allowance runs out with a 429.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::Value;
use switchboard_gateway::cost;
use switchboard_gateway::http::v1;
use switchboard_sim::caller::{Step, one_question, place_call};
use switchboard_store::{CallRecording, CallStart, RecordingRef, StoreOp};
use switchboard_tests::{API_KEY, AUTH_TOKEN, Env, EnvOptions};

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn get(base: &str, path: &str, key: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = client().get(format!("{base}{path}"));
    if let Some(k) = key {
        req = req.header(AUTHORIZATION, format!("Bearer {k}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let ct = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.text().await.unwrap();
    (
        status,
        ct,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn assert_problem(status: StatusCode, ct: &str, body: &Value, want: StatusCode) {
    assert_eq!(status, want, "{body}");
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["status"], want.as_u16(), "{body}");
    assert!(body["type"].as_str().unwrap().starts_with("https://"));
    assert!(body["title"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reads_its_tenants_calls_through_the_api() {
    let env = Env::start(EnvOptions {
        agent_extra: "    model: gpt-realtime-2.1-mini\n".into(),
        api_requests_per_second: Some(1),
        api_burst: Some(60),
        // Recordings in the data directory (laptop mode): the recording route streams them.
        spec_extra: "  recordings:\n    enabled: true\n".into(),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let script = one_question(1200);
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    let rec = env.record(&sid).await.unwrap();
    env.recording(&sid).await.unwrap();
    let base = env.base.as_str();

    // The list: the call, with the price table's cost for the usage it stored.
    let (status, ct, list) = get(base, "/api/v1/calls", Some(API_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ct, "application/json");
    let calls = list["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{list}");
    assert_eq!(calls[0]["call_sid"], sid.as_str());
    assert_eq!(calls[0]["model"], "gpt-realtime-2.1-mini");
    assert!(list["next_cursor"].is_null());
    assert!(rec.usage.input_tokens > 0 && rec.usage.output_audio_tokens > 0);
    let (prices, source) = cost::prices_for("gpt-realtime-2.1-mini", None).unwrap();
    let want = cost::compute("gpt-realtime-2.1-mini", &rec.usage, 0.0, prices, source);
    let got = calls[0]["cost_usd"].as_f64().unwrap();
    assert!(got > 0.0);
    assert!(
        (got - want.total_usd).abs() < 2e-6,
        "{got} vs {}",
        want.total_usd
    );

    // One call: transcript, usage and the cost's detail.
    let (status, _, call) = get(base, &format!("/api/v1/calls/{sid}"), Some(API_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    assert_eq!(
        call["transcript"].as_array().unwrap().len(),
        rec.transcript.len()
    );
    assert!(!rec.transcript.is_empty());
    assert_eq!(call["usage"]["input_tokens"], rec.usage.input_tokens);
    assert_eq!(call["cost"]["detail"]["source"], source);
    assert_eq!(call["cost"]["detail"]["prices"]["audio_output"], 20.0);

    // Filters reach the store.
    let (_, _, none) = get(base, "/api/v1/calls?from=%2B19999999999", Some(API_KEY)).await;
    assert_eq!(none["calls"].as_array().unwrap().len(), 0, "{none}");
    let (_, _, long) = get(base, "/api/v1/calls?min_duration_s=3600", Some(API_KEY)).await;
    assert_eq!(long["calls"].as_array().unwrap().len(), 0, "{long}");
    let (_, _, kept) = get(base, "/api/v1/calls?transferred=false", Some(API_KEY)).await;
    assert_eq!(kept["calls"].as_array().unwrap().len(), 1, "{kept}");

    // Daily totals.
    let (status, _, daily) = get(base, "/api/v1/stats/daily", Some(API_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{daily}");
    let days = daily["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{daily}");
    assert_eq!(days[0]["calls"], 1);
    assert_eq!(days[0]["without_transfer_share"], 1.0);

    // Another tenant's call in the same store is "not found" for this key.
    env.gw()
        .state
        .store
        .apply(&StoreOp::Start(CallStart {
            call_sid: "CAother0000000000000000000000000".into(),
            tenant: "other".into(),
            from: "+15550001111".into(),
            to: "+15550002222".into(),
            started_at_ms: 1,
        }))
        .await
        .unwrap();
    let (s, ct, b) = get(
        base,
        "/api/v1/calls/CAother0000000000000000000000000",
        Some(API_KEY),
    )
    .await;
    assert_problem(s, &ct, &b, StatusCode::NOT_FOUND);
    let (_, _, list) = get(base, "/api/v1/calls", Some(API_KEY)).await;
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "{list}");

    // Refusals are problem documents; the Twilio auth token opens nothing here, and the
    // old route is gone.
    for key in [None, Some("not-a-key"), Some(AUTH_TOKEN)] {
        let (s, ct, b) = get(base, "/api/v1/calls", key).await;
        assert_problem(s, &ct, &b, StatusCode::UNAUTHORIZED);
    }
    let old = client()
        .get(format!("{base}/api/calls/{sid}"))
        .header(AUTHORIZATION, format!("Bearer {AUTH_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    let (s, ct, b) = get(base, "/api/v1/calls?cursor=bm90LWEtY3Vyc29y", Some(API_KEY)).await;
    assert_problem(s, &ct, &b, StatusCode::BAD_REQUEST);
    let (s, ct, b) = get(base, "/api/v1/calls?transferred=maybe", Some(API_KEY)).await;
    assert_problem(s, &ct, &b, StatusCode::BAD_REQUEST);

    // The console: sign in with the key into a session cookie, read with it, sign out.
    let signin = client()
        .post(format!("{base}/console/session"))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), StatusCode::OK);
    let cookie = signin.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let who: Value = serde_json::from_str(&signin.text().await.unwrap()).unwrap();
    assert_eq!(who["tenant"], "demo");
    let session = cookie.split(';').next().unwrap().to_string();
    let with_cookie = client()
        .get(format!("{base}/api/v1/calls"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), StatusCode::OK);
    let cross_site = client()
        .post(format!("{base}/console/session"))
        .header("origin", "https://evil.example")
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    // A look-alike host that merely starts with the gateway's public URL is another site.
    let look_alike = client()
        .post(format!("{base}/console/session"))
        .header("origin", format!("{base}.evil.example"))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(look_alike.status(), StatusCode::FORBIDDEN);
    let no_csrf = client()
        .delete(format!("{base}/console/session"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let out = client()
        .delete(format!("{base}/console/session"))
        .header(COOKIE, &session)
        .header("x-csrf-token", who["csrf"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let after = client()
        .get(format!("{base}/api/v1/calls"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let page = client()
        .get(format!("{base}/console/"))
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );

    // Per-tenant cost counter.
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("switchboard_call_cost_usd_total{tenant=\"demo\"}"),
        "{metrics}"
    );

    // The committed document is the generated one, and its paths are the routes.
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json"),
    )
    .unwrap();
    assert_eq!(
        committed.trim_end(),
        v1::openapi_json().trim_end(),
        "docs/openapi.json is stale: cargo run -p switchboard-gateway --example openapi > docs/openapi.json"
    );
    let (status, _, doc) = get(base, "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routes: BTreeSet<String> = v1::ROUTES.iter().map(|r| r.to_string()).collect();
    assert_eq!(documented, routes);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        assert_eq!(ops.as_object().unwrap().keys().collect::<Vec<_>>(), ["get"]);
        let mut concrete = path.replace("{call_sid}", &sid);
        if path == v1::RECORDING {
            // Its JSON form (the WAV itself is checked in its own test).
            concrete.push_str("?redirect=false");
        }
        let (s, ct, _) = get(base, &concrete, Some(API_KEY)).await;
        // A handler answered (the router's own 404/405 have no JSON body).
        assert!(
            s.is_success() && ct == "application/json",
            "{path}: {s} {ct}"
        );
    }

    // The key's allowance (burst 60, 1/s) runs out: 429 with Retry-After.
    let mut limited = None;
    for _ in 0..80 {
        let r = client()
            .get(format!("{base}/api/v1/stats/daily"))
            .header(AUTHORIZATION, format!("Bearer {API_KEY}"))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("no 429 within 80 requests");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()[CONTENT_TYPE], "application/problem+json");
}

/// A call's cost through the API, for a tenant whose `spec.agent` adds `agent_extra`.
async fn cost_of_a_call(agent_extra: &str) -> (Value, Value) {
    let env = Env::start(EnvOptions {
        agent_extra: agent_extra.into(),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let script = one_question(800);
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    let rec = env.record(&sid).await.unwrap();
    assert!(rec.usage.output_audio_tokens > 0, "{rec:#?}");
    let (_, _, list) = get(&env.base, "/api/v1/calls", Some(API_KEY)).await;
    let (status, _, call) = get(&env.base, &format!("/api/v1/calls/{sid}"), Some(API_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    (list["calls"][0].clone(), call)
}

/// The default model, `gpt-realtime`, is priced: the demo's calls carry a cost. A model
/// whose price was not found says "unknown" in the call's cost instead of a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_the_default_model_has_a_cost_and_an_unpriced_model_says_unknown() {
    let (summary, call) = cost_of_a_call("").await;
    assert_eq!(call["model"], "gpt-realtime", "{call}");
    let total = call["cost"]["total_usd"].as_f64().unwrap();
    assert!(total > 0.0, "{call}");
    assert_eq!(summary["cost_usd"].as_f64().unwrap(), total);
    let (_, source) = cost::prices_for("gpt-realtime", None).unwrap();
    assert_eq!(call["cost"]["detail"]["source"], source);
    assert_eq!(call["cost"]["detail"]["prices"]["audio_input"], 32.0);

    let (summary, call) = cost_of_a_call("    model: gpt-realtime-mini\n").await;
    assert_eq!(call["model"], "gpt-realtime-mini", "{call}");
    assert!(call["cost"]["total_usd"].is_null(), "{call}");
    assert_eq!(call["cost"]["detail"]["source"], "unknown", "{call}");
    assert!(
        call["cost"]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("no published price for gpt-realtime-mini"),
        "{call}"
    );
    assert!(summary["cost_usd"].is_null(), "{summary}");
}

async fn get_raw(
    base: &str,
    path: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client()
        .get(format!("{base}{path}"))
        .header(AUTHORIZATION, format!("Bearer {API_KEY}"));
    if let Some(r) = range {
        req = req.header(reqwest::header::RANGE, r);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_recording_is_streamed_with_ranges_to_its_tenant_only() {
    let env = Env::start(EnvOptions {
        spec_extra: "  recordings:\n    enabled: true\n".into(),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let script = vec![
        Step::WaitAgentDone {
            quiet_ms: 400,
            timeout_ms: 20_000,
        },
        Step::Hangup,
    ];
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    let stored = env.recording(&sid).await.unwrap();
    assert_eq!(stored.bucket, None);
    let file = std::fs::read(env.data_dir().join("recordings").join(&stored.key)).unwrap();
    assert_eq!(file.len() as u64, stored.bytes);
    assert!(file.len() > 1000, "a recording of the greeting");
    let base = env.base.as_str();
    let path = format!("/api/v1/calls/{sid}/recording");

    // The call's page names it.
    let (_, _, call) = get(base, &format!("/api/v1/calls/{sid}"), Some(API_KEY)).await;
    assert_eq!(call["recording"]["url"], path.as_str());
    assert_eq!(call["recording"]["bytes"], stored.bytes);

    // The whole file.
    let (status, h, body) = get_raw(base, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[CONTENT_TYPE], "audio/wav");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-length"], file.len().to_string().as_str());
    assert_eq!(body, file);
    assert_eq!(&body[..4], b"RIFF");

    // A range: the 44-byte header; an open range: the tail.
    let (status, h, body) = get_raw(base, &path, Some("bytes=0-43")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        h["content-range"],
        format!("bytes 0-43/{}", file.len()).as_str()
    );
    assert_eq!(h[CONTENT_TYPE], "audio/wav");
    assert_eq!(body, file[..44]);
    let (status, _, body) = get_raw(base, &path, Some("bytes=1000-")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, file[1000..]);

    // A range past the end: 416, a problem document, and the size.
    let (status, h, body) = get_raw(base, &path, Some(&format!("bytes={}-", file.len()))).await;
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_problem(
        status,
        h[CONTENT_TYPE].to_str().unwrap(),
        &problem,
        StatusCode::RANGE_NOT_SATISFIABLE,
    );
    assert_eq!(
        h["content-range"],
        format!("bytes */{}", file.len()).as_str()
    );

    // The JSON form names the route itself (a local recording has no presigned URL).
    let (status, _, link) = get(base, &format!("{path}?redirect=false"), Some(API_KEY)).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["storage"], "local");
    assert_eq!(link["url"], path.as_str());
    assert!(link["expires_at"].is_null());

    // Without a key: 401. A call without a recording, another tenant's call (even one
    // whose record names this very file) and an unknown call: 404, alike.
    let (s, ct, b) = get(base, &path, None).await;
    assert_problem(s, &ct, &b, StatusCode::UNAUTHORIZED);
    let store = &env.gw().state.store;
    let other = "CA0000000000000000000000000000beef";
    for (sid, tenant) in [
        (other, "other"),
        ("CA0000000000000000000000000000f00d", "demo"),
    ] {
        store
            .apply(&StoreOp::Start(CallStart {
                call_sid: sid.into(),
                tenant: tenant.into(),
                from: "+15550001111".into(),
                to: "+15550002222".into(),
                started_at_ms: 1,
            }))
            .await
            .unwrap();
    }
    let recording_of = |sid: &str, tenant: &str, key: &str| {
        StoreOp::Recording(CallRecording {
            call_sid: sid.into(),
            tenant: tenant.into(),
            recording: RecordingRef {
                bucket: None,
                key: key.into(),
                duration_ms: 1,
                bytes: stored.bytes,
            },
        })
    };
    store
        .apply(&recording_of(other, "other", &stored.key))
        .await
        .unwrap();
    for sid in [other, "CA0000000000000000000000000000f00d", "CAnope"] {
        let (s, ct, b) = get(
            base,
            &format!("/api/v1/calls/{sid}/recording"),
            Some(API_KEY),
        )
        .await;
        assert_problem(s, &ct, &b, StatusCode::NOT_FOUND);
    }
    // The path never chooses the file: a traversal in the URL is just an unknown call.
    let (s, _, _) = get(
        base,
        "/api/v1/calls/..%2F..%2Fdemo.yaml/recording",
        Some(API_KEY),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A record of this tenant whose key leaves the recordings directory is refused.
    let bad = "CA0000000000000000000000000000f00d";
    store
        .apply(&recording_of(bad, "demo", "../../demo.yaml.wav"))
        .await
        .unwrap();
    let (s, ct, b) = get(
        base,
        &format!("/api/v1/calls/{bad}/recording"),
        Some(API_KEY),
    )
    .await;
    assert_problem(s, &ct, &b, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        b["type"],
        "https://switchboard.dev/problems/recording-refused"
    );
}

/// Signs in to the console with `key`: the session cookie (`name=value`), or the status.
async fn sign_in(base: &str, key: &str) -> Result<String, StatusCode> {
    let r = client()
        .post(format!("{base}/console/session"))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::OK {
        return Err(r.status());
    }
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap();
    Ok(cookie.split(';').next().unwrap().to_string())
}

async fn with_cookie(base: &str, cookie: &str) -> StatusCode {
    client()
        .get(format!("{base}/api/v1/calls"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// A key rotated in its Secret (here the file `secretKeyRef` mounts) stops opening the API
/// at the next secrets refresh, without a restart, and so do the console sessions signed
/// in with it; the new value works. A session of the new key survives later refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_api_key_and_its_sessions_stop_working_at_the_next_refresh() {
    const NEW_KEY: &str = "e2e-rotated-key-fedcba9876543210fedcba9876543210";
    let env = Env::start(EnvOptions {
        secrets_refresh_seconds: 1,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let base = &env.base;
    let old_session = sign_in(base, API_KEY).await.unwrap();
    assert_eq!(with_cookie(base, &old_session).await, StatusCode::OK);
    assert_eq!(
        get(base, "/api/v1/calls", Some(API_KEY)).await.0,
        StatusCode::OK
    );

    std::fs::write(env.dir.path().join("api-key"), NEW_KEY).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(base, "/api/v1/calls", Some(API_KEY)).await.0 != StatusCode::UNAUTHORIZED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old key still opens the API 10 s after its rotation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        with_cookie(base, &old_session).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sign_in(base, API_KEY).await, Err(StatusCode::UNAUTHORIZED));
    assert_eq!(
        get(base, "/api/v1/calls", Some(NEW_KEY)).await.0,
        StatusCode::OK
    );
    let new_session = sign_in(base, NEW_KEY).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert_eq!(with_cookie(base, &new_session).await, StatusCode::OK);
    // The old value coming back does not revive the ended session.
    std::fs::write(env.dir.path().join("api-key"), API_KEY).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(base, "/api/v1/calls", Some(API_KEY)).await.0 != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restored key was not re-read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        with_cookie(base, &old_session).await,
        StatusCode::UNAUTHORIZED
    );
}
