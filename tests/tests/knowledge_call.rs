//! A caller asks a question; the model calls `search_knowledge_base`; the gateway embeds
//! the query with the local MiniLM, searches the demo knowledge base and returns the
//! passage; the answer is spoken and the grounding trail is stored with the call.

use std::path::PathBuf;

use serde_json::json;
use switchboard_sim::caller::{one_question, place_call};
use switchboard_sim::realtime::{RealtimeConfig, Turn};
use switchboard_tests::{Env, EnvOptions, metric};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knowledge_question_is_answered_from_the_tenants_documents() {
    // The gateway's local embedder reads the model from SWITCHBOARD_MODEL_DIR.
    if switchboard_tests::services::model_dir().is_none() {
        return;
    }
    let kb = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/knowledge/demo.yaml");
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            script: vec![Turn::call(
                "are you open on saturday",
                "search_knowledge_base",
                json!({"query": "opening hours on Saturday"}),
                "Here is what I found: {output}",
            )],
            ..RealtimeConfig::default()
        },
        agent_extra: "    knowledgeBases: [demo-faq]\n".into(),
        knowledge: vec![kb],
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let script = one_question(1200);
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");

    assert!(
        env.realtime
            .wait_sessions_closed(1, std::time::Duration::from_secs(5))
            .await
    );
    let s = &env.realtime.sessions()[0];
    let tools: Vec<&str> = s.session["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"search_knowledge_base"), "{tools:?}");
    assert_eq!(s.function_outputs.len(), 1, "{:#?}", s.events);
    let output: serde_json::Value = serde_json::from_str(&s.function_outputs[0].1).unwrap();
    let first = &output["passages"][0];
    assert!(
        first["text"].as_str().unwrap().contains("Saturday"),
        "top passage: {output:#}"
    );
    assert!(
        first["source"].as_str().unwrap().starts_with("demo-faq/"),
        "{output:#}"
    );
    // Scores reach the model as short decimals, not f32 noise (0.6940000057220459).
    let score = &s.function_outputs[0].1[s.function_outputs[0].1.find("\"score\":").unwrap()..];
    let digits = score[8..].split([',', '}']).next().unwrap();
    assert!(digits.len() <= 5, "score written as {digits}");
    let spoken = s.responses.last().unwrap();
    assert!(
        spoken.text.starts_with("Here is what I found"),
        "{:#?}",
        s.responses
    );
    // The model says a sentence of the best passage, as a real one would, not the JSON.
    let sentence = spoken.text["Here is what I found: ".len()..].trim_end_matches('.');
    assert!(!sentence.is_empty(), "{:#?}", s.responses);
    let passage = first["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        passage.contains(sentence),
        "{sentence:?} not in {passage:?}"
    );
    assert!(
        !spoken.text.contains('{') && !spoken.text.contains("passages"),
        "{:#?}",
        s.responses
    );

    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.tool_calls.len(), 1);
    let tc = &rec.tool_calls[0];
    assert_eq!(tc.name, "search_knowledge_base");
    assert!(tc.arguments.contains("Saturday"));
    assert!(
        tc.output.contains(first["source"].as_str().unwrap()),
        "the grounding trail keeps the chunk ids"
    );
    assert!(tc.latency_ms < 5_000);
    // The record keeps the raw output the model was given ...
    let raw: serde_json::Value = serde_json::from_str(&tc.output).unwrap();
    assert_eq!(raw["passages"][0]["text"], first["text"]);
    // ... and the agent's transcript turn is the spoken sentence.
    let said = rec
        .transcript
        .iter()
        .find(|e| e.text.starts_with("Here is what I found"))
        .unwrap_or_else(|| panic!("no answer in {:#?}", rec.transcript));
    assert!(said.text.contains(sentence), "{:#?}", rec.transcript);
    assert!(!said.text.contains('{'), "{:#?}", rec.transcript);
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_knowledge_lookups_total{result=\"hits\"}"),
        1.0
    );
}
