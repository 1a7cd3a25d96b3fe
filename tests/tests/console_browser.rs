//! The console in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver, `scripts/chromium.sh`; gated by `switchboard_testenv`). A simulated
//! caller asks a question the agent answers from the knowledge base (a tool call) and
//! interrupts the answer (a barge-in); the gateway records the call in its data
//! directory. Then, in the browser: sign in with the API key, find the call in the list,
//! open it, play its recording and see the highlighted line move, follow the answer to the
//! passages behind it. Screenshots go to `$SWITCHBOARD_ARTIFACTS/console/` (default
//! `<target>/tmp/artifacts/console/`). The call page's time to interactive (Performance
//! API) is printed, not asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use switchboard_sim::caller::{default_script, place_call};
use switchboard_tests::{API_KEY, Env, EnvOptions};

/// chromedriver on a free loopback port; killed and reaped on every path.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(bin: &PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Driver {
            child: Command::new(bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (scripts/chromium.sh installs it)"),
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if reqwest::get(format!("{}/status", driver.url))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {port}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("SWITCHBOARD_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts"))
        .join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let path = artifacts().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new()).await.unwrap()
}

/// Polls `script` (a function body returning a value) until it returns something truthy.
async fn wait_js(c: &Client, what: &str, script: &str, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let v = js(c, script).await;
        if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            screenshot(c, "failure.png").await;
            panic!("timed out waiting for {what} (last: {v})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_review_a_call_in_the_browser() {
    let Some(driver_bin) = switchboard_tests::services::chromedriver() else {
        return;
    };
    // The knowledge lookup embeds with the local MiniLM model.
    if switchboard_tests::services::model_dir().is_none() {
        return;
    }
    let kb = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/knowledge/demo.yaml");
    // Post-call analysis against the Chat Completions simulator, with the key the harness
    // gives the tenant's `spec.openai.apiKey` named as its own.
    let chat = switchboard_sim::chat::ChatSim::start(switchboard_sim::chat::ChatSimConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        api_key: "sk-test-e2e".into(),
    })
    .await
    .unwrap();
    let env = Env::start(EnvOptions {
        agent_extra: "    knowledgeBases: [demo-faq]\n".into(),
        knowledge: vec![kb],
        spec_extra: format!(
            "  recordings:\n    enabled: true\n  analysis:\n    model: gpt-4o-mini\n    \
             baseUrl: {}\n    apiKey: {}\n    fields:\n      - name: topic\n        type: string\n        \
             description: What the caller asked about.\n",
            chat.base_url(),
            switchboard_tests::OPENAI_KEY_REF,
        ),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    // The simulator's default conversation: the second question is answered from the
    // knowledge base, and the caller interrupts that answer.
    let report = place_call(&env.call(default_script(true, None)))
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    let rec = env.record(&sid).await.unwrap();
    assert_eq!(rec.tool_calls.len(), 1, "{:#?}", rec.tool_calls);
    assert!(rec.transcript.iter().any(|t| t.interrupted), "no barge-in");
    let stored = env.recording(&sid).await.unwrap();
    // The analysis runs after the record is written: wait for it before opening the page.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while env.record(&sid).await.unwrap().analysis.sentiment.is_none() {
        assert!(std::time::Instant::now() < deadline, "no analysis stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (driver, _profile, c) = browser(&driver_bin).await;
    let result = review(&c, &env.base, &sid, &rec, stored.duration_ms).await;
    let _ = c.close().await;
    drop(driver);
    result.unwrap();
}

/// chromedriver and a headless Chromium session in a fresh profile (kept alive by the
/// returned guards).
async fn browser(driver_bin: &PathBuf) -> (Driver, tempfile::TempDir, Client) {
    let driver = Driver::start(driver_bin).await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--mute-audio",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in chromium");
    (driver, profile, c)
}

/// Issue 15 §5's console figure against a running gateway (`bench/api.sh` runs it on its
/// 1,000,000-call database): signs in with `SWITCHBOARD_BENCH_KEY` at
/// `SWITCHBOARD_BENCH_BASE`, then loads the call page of each CallSid in
/// `SWITCHBOARD_BENCH_SIDS` (comma-separated) once, each a call not read before, and
/// prints the median and p95 from navigation start to the page's `call-interactive` mark.
/// A benchmark: prints, asserts only that every page became interactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by bench/api.sh against its gateway"]
async fn bench_console_call_page() {
    let Some(driver_bin) = switchboard_tests::services::chromedriver() else {
        return;
    };
    switchboard_tests::init();
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let (base, key, sids) = (
        var("SWITCHBOARD_BENCH_BASE"),
        var("SWITCHBOARD_BENCH_KEY"),
        var("SWITCHBOARD_BENCH_SIDS"),
    );
    let (driver, _profile, c) = browser(&driver_bin).await;
    c.goto(&format!("{base}/console/")).await.unwrap();
    let field = c.wait().for_element(Locator::Id("key")).await.unwrap();
    field.send_keys(&key).await.unwrap();
    c.find(Locator::Css("#signin-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#calls tr[data-sid] a"))
        .await
        .unwrap();
    let mut ttis = Vec::new();
    for sid in sids.split(',').filter(|s| !s.is_empty()) {
        c.goto("about:blank").await.unwrap();
        c.goto(&format!("{base}/console/#/call/{sid}"))
            .await
            .unwrap();
        let tti = wait_js(
            &c,
            "the call page",
            "const m = performance.getEntriesByName('call-interactive')[0]; return m && m.startTime",
            Duration::from_secs(20),
        )
        .await;
        ttis.push(tti.as_f64().unwrap());
    }
    let _ = c.close().await;
    drop(driver);
    assert!(!ttis.is_empty(), "SWITCHBOARD_BENCH_SIDS names no call");
    ttis.sort_by(f64::total_cmp);
    let at = |q: f64| ttis[((ttis.len() as f64 * q).ceil() as usize).clamp(1, ttis.len()) - 1];
    println!(
        "console call page: n={} time to interactive p50 {:.1} ms p95 {:.1} ms max {:.1} ms",
        ttis.len(),
        at(0.5),
        at(0.95),
        ttis[ttis.len() - 1]
    );
}

async fn review(
    c: &Client,
    base: &str,
    sid: &str,
    rec: &switchboard_store::CallRecord,
    recording_ms: u64,
) -> Result<(), fantoccini::error::CmdError> {
    let long = Duration::from_secs(20);
    // Sign in.
    c.goto(&format!("{base}/console/")).await?;
    let key = c.wait().for_element(Locator::Id("key")).await?;
    key.send_keys(API_KEY).await?;
    screenshot(c, "1-sign-in.png").await;
    c.find(Locator::Css("#signin-form button[type=submit]"))
        .await?
        .click()
        .await?;

    // The call is in the list; open it.
    let row = format!("#calls tr[data-sid='{sid}'] a");
    let link = c.wait().for_element(Locator::Css(&row)).await?;
    let who = c.find(Locator::Id("who")).await?.text().await?;
    assert!(who.starts_with("demo"), "{who}");
    screenshot(c, "2-call-list.png").await;
    link.click().await?;
    wait_js(
        c,
        "the call page",
        "return performance.getEntriesByName('call-interactive').length",
        long,
    )
    .await;

    // The transcript is marked: the barge-in on the interrupted line, the tool call.
    let lines = c
        .find_all(Locator::Css("#transcript li.agent, #transcript li.caller"))
        .await?;
    assert_eq!(lines.len(), rec.transcript.len());
    c.find(Locator::Css("#transcript li.interrupted .mark.barge"))
        .await?;
    let tool = c.find(Locator::Css("#transcript li.tool")).await?;
    assert!(tool.text().await?.contains("search_knowledge_base"));

    // Play from the first line: the audio runs and the highlighted line moves on.
    let metadata = wait_js(
        c,
        "the recording's metadata",
        "const a = document.querySelector('#audio'); return a.readyState >= 1 && a.duration",
        long,
    )
    .await;
    let duration_s = metadata.as_f64().unwrap();
    assert!(
        (duration_s * 1000.0 - recording_ms as f64).abs() < 100.0,
        "{duration_s} s"
    );
    lines[0].click().await?;
    let first = wait_js(
        c,
        "a highlighted line",
        "const p = document.querySelector('#transcript li.playing'); \
         return p && [...document.querySelectorAll('#transcript li')].indexOf(p) + 1",
        long,
    )
    .await;
    let t0 = js(c, "return document.querySelector('#audio').currentTime").await;
    // The second transcript line starts a few seconds in: wait for playback to reach it.
    let moved = wait_js(
        c,
        "the highlight to move to a later line",
        &format!(
            "const p = document.querySelector('#transcript li.playing'); \
             const i = p && [...document.querySelectorAll('#transcript li')].indexOf(p) + 1; \
             return i > {first} && i"
        ),
        Duration::from_secs(40),
    )
    .await;
    let t1 = js(c, "return document.querySelector('#audio').currentTime").await;
    assert!(
        t1.as_f64().unwrap() > t0.as_f64().unwrap() + 0.5,
        "{t0} → {t1}"
    );
    assert_eq!(
        js(
            c,
            "return document.querySelectorAll('#transcript li.playing').length"
        )
        .await,
        json!(1)
    );
    eprintln!("highlight moved from line {first} to line {moved} ({t0} s → {t1} s)");
    screenshot(c, "3-playing.png").await;
    js(c, "document.querySelector('#audio').pause(); return true").await;

    // Follow the answer to the passages behind it.
    let sources = c.find(Locator::Css("#transcript li .mark.sources")).await?;
    sources.click().await?;
    let open = wait_js(
        c,
        "the tool call's passages",
        "const d = document.querySelector('#transcript li.tool details'); \
         return d && d.open && document.activeElement === d.parentElement && \
                d.querySelectorAll('.passage').length",
        long,
    )
    .await;
    let passages = c
        .find_all(Locator::Css("#transcript li.tool details .passage"))
        .await?;
    assert_eq!(open.as_u64().unwrap() as usize, passages.len());
    let text = passages[0].text().await?;
    assert!(text.contains("score"), "{text}");
    assert!(passages[0].is_displayed().await?);
    screenshot(c, "4-passages.png").await;

    // The analysis: its summary and the tenant's extracted field.
    let summary = c
        .find(Locator::Css("#analysis p.summary"))
        .await?
        .text()
        .await?;
    assert!(!summary.trim().is_empty(), "empty summary");
    let field = c
        .find(Locator::Css("#analysis dl.fields dt"))
        .await?
        .text()
        .await?;
    assert_eq!(field, "topic");

    // Time to interactive of the call page, loaded afresh (signed in): navigation start
    // to the page's `call-interactive` mark, seven loads, the median printed.
    let mut ttis = Vec::new();
    let mut dcl = Vec::new();
    for _ in 0..7 {
        c.goto("about:blank").await?;
        c.goto(&format!("{base}/console/#/call/{sid}")).await?;
        let tti = wait_js(
            c,
            "the reloaded call page",
            "const m = performance.getEntriesByName('call-interactive')[0]; return m && m.startTime",
            long,
        )
        .await;
        ttis.push(tti.as_f64().unwrap());
        let nav = js(
            c,
            "return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd",
        )
        .await;
        dcl.push(nav.as_f64().unwrap_or(0.0));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "console call page: time to interactive median {:.1} ms of {:?} (navigation start → \
         transcript, player, analysis and cost rendered); DOMContentLoaded median {:.1} ms",
        median(&mut ttis),
        ttis,
        median(&mut dcl)
    );
    Ok(())
}
