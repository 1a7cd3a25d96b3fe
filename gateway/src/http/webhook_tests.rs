//! The incoming-call webhook against a store that hangs: it must answer anyway.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use switchboard_store::queue::QueueMetrics;
use switchboard_store::{
    BoxFuture, CallRecord, CallStore, StoreError, StoreOp, WriteBehind, WriteBehindConfig,
};

use crate::admission::Admissions;
use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::preconnect::Parking;
use crate::realtime::WsBackend;
use crate::state::{AppState, Shared};
use crate::tenants::Tenants;
use crate::tools::NoExternalTools;

/// A database that accepts the connection and never answers.
struct Hanging;

impl CallStore for Hanging {
    fn apply<'a>(&'a self, _op: &'a StoreOp) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(std::future::pending())
    }
    fn get_call<'a>(
        &'a self,
        _call_sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallRecord>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn recent_calls(&self, _limit: u32) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn list_calls<'a>(
        &'a self,
        _q: &'a switchboard_store::CallQuery,
    ) -> BoxFuture<'a, Result<switchboard_store::CallPage, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn daily_stats<'a>(
        &'a self,
        _tenant: &'a str,
        _range: switchboard_store::DayRange,
    ) -> BoxFuture<'a, Result<Vec<switchboard_store::DailyStats>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn analysis_backlog<'a>(
        &'a self,
        _q: &'a switchboard_store::BacklogQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn mark_analysis<'a>(
        &'a self,
        _mark: &'a switchboard_store::AnalysisMark,
    ) -> BoxFuture<'a, Result<switchboard_store::MarkOutcome, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::pending())
    }
}

const TENANT: &str = "apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata:
  name: demo
spec:
  displayName: Demo
  phoneNumbers: [\"+15005550006\"]
  agent:
    instructions: Be brief.
  twilio:
    accountSid: AC0123456789abcdef0123456789abcdef
    validateSignatures: false
    authToken:
      env: UNUSED
  openai:
    apiKey:
      env: UNUSED
";

fn state(dir: &std::path::Path) -> AppState {
    let metrics = Metrics::new().expect("metrics");
    let store: Arc<dyn CallStore> = Arc::new(Hanging);
    let (writer, _task) = WriteBehind::start(
        store.clone(),
        WriteBehindConfig {
            capacity: 1,
            spool_dir: dir.join("spool"),
            retry_interval: Duration::from_secs(60),
        },
        QueueMetrics {
            depth: metrics.store_queue_depth.clone(),
            spooled: metrics.store_spooled.clone(),
            rejected: metrics.store_rejected.clone(),
        },
    )
    .expect("queue");
    let manifest = switchboard_crds::parse_tenant(TENANT).expect("tenant");
    let mut tenants = Tenants::default();
    tenants
        .insert(Arc::new(Tenants::build(
            "demo".into(),
            manifest.spec,
            "token".into(),
            "sk-test".into(),
            "ws://127.0.0.1:1/v1/realtime",
            false,
        )))
        .expect("insert");
    let recordings = Arc::new(
        crate::recording::Recordings::start(
            dir,
            Arc::new(crate::recording::S3::new(Default::default())),
            writer.clone(),
            metrics.registry(),
        )
        .expect("recordings"),
    );
    let analysis = Arc::new(
        crate::analysis::Analyzer::new(
            metrics.registry(),
            Default::default(),
            switchboard_crds::DEFAULT_ANALYSIS_BASE_URL,
        )
        .expect("analysis"),
    );
    Arc::new(Shared {
        parking: Parking::new(Duration::from_secs(15), metrics.clone()),
        tenants,
        metrics,
        backend: Arc::new(WsBackend::default()),
        writer,
        store,
        public_base: "http://gw.test".into(),
        max_calls: 1000,
        preconnect: false,
        drain: Arc::new(Drain::default()),
        tools: Arc::new(NoExternalTools),
        admissions: Admissions::new(Duration::from_secs(60), 1000, Arc::default()),
        endings: Default::default(),
        access: Default::default(),
        recordings,
        secrets: crate::secrets::SecretSource::new(dir.join("secrets"), Default::default()),
        rotation: Default::default(),
        aws: Default::default(),
        sealing: Default::default(),
        twilio: crate::twilio::rest::TwilioRest::new("http://127.0.0.1:1").expect("client"),
        analysis,
        call_store_url: None,
        knowledge: None,
    })
}

async fn webhook(state: &AppState, call_sid: &str) -> axum::response::Response {
    let body = format!(
        "CallSid={call_sid}&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B15551230000&To=%2B15005550006"
    );
    super::voice::incoming_call(
        State(state.clone()),
        Uri::from_static("/twilio/voice"),
        HeaderMap::new(),
        Bytes::from(body),
    )
    .await
}

#[tokio::test]
async fn a_full_store_queue_does_not_hold_up_the_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(dir.path());
    // The worker takes the first op and hangs in the store; the second fills the
    // channel; every later webhook finds the queue full.
    for i in 0..5 {
        let sid = format!("CA0123456789abcdef0123456789abc{i:03}");
        let answer = tokio::time::timeout(Duration::from_secs(10), webhook(&state, &sid))
            .await
            .expect("webhook answered while the store hangs");
        assert_eq!(answer.status(), StatusCode::OK);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .expect("body");
        assert!(
            String::from_utf8_lossy(&body).contains("<Stream"),
            "call {i} answered with a stream"
        );
    }
    let dropped = state
        .metrics
        .store_dropped
        .with_label_values(&["start"])
        .get();
    assert!(dropped >= 3, "dropped starts counted: {dropped}");
}

#[test]
fn tenant_debug_prints_neither_token_nor_key() {
    let manifest = switchboard_crds::parse_tenant(TENANT).expect("tenant");
    let tenant = Tenants::build(
        "demo".into(),
        manifest.spec,
        "twilio-token-s3cr3t".into(),
        "sk-live-s3cr3t".into(),
        "ws://127.0.0.1:1/v1/realtime",
        false,
    );
    let shown = format!("{tenant:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("<redacted>"));
    let params = crate::realtime::client::ConnectParams {
        url: tenant.realtime_url.clone(),
        model: "gpt-realtime".into(),
        api_key: tenant.credentials().api_key.clone(),
        session_update: String::new(),
    };
    assert!(!format!("{params:?}").contains("s3cr3t"));
}
