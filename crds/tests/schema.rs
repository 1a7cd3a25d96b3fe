//! The generated CRD: acceptable to an API server, and in agreement with the Rust side
//! (string formats, defaults).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use switchboard_crds::format::*;
use switchboard_crds::{KnowledgeBase, VoiceTenant, parse_knowledge_base, parse_tenant};

type Predicate = fn(&str) -> bool;

/// (pattern, predicate, samples): both forms must give the same answer for every sample.
const FORMATS: &[(&str, Predicate, &[&str])] = &[
    (
        FIELD_NAME_PATTERN,
        is_field_name,
        &[
            "intent",
            "partySize",
            "caller_name",
            "a",
            "",
            "1st",
            "_x",
            "a-b",
            "a b",
            "x\n",
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd",
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde",
        ],
    ),
    (
        NOT_BLANK_PATTERN,
        is_not_blank,
        &["", " ", "\t\n", "a", " a "],
    ),
    (
        E164_PATTERN,
        is_e164,
        &[
            "+15005550006",
            "+12",
            "+1",
            "+123456789012345",
            "+1234567890123456",
            "15005550006",
            "+05005550006",
            "+1 500",
            "+1-500",
            "++1500",
            "+1500\n",
        ],
    ),
    (
        ACCOUNT_SID_PATTERN,
        is_account_sid,
        &[
            "AC0123456789abcdef0123456789ABCDEF",
            "AC0123456789abcdef0123456789abcde",
            "AC0123456789abcdef0123456789abcdef0",
            "ac0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdeg",
            "PN0123456789abcdef0123456789abcdef",
        ],
    ),
    (
        DNS_SUBDOMAIN_PATTERN,
        |s| is_dns_subdomain(s) || s.len() > 253,
        &[
            "a",
            "demo",
            "acme.dental-2",
            "a-b.c-d",
            "",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "A",
            "a_b",
            "a.-b",
            "0",
            "1.2.3",
        ],
    ),
    (
        SECRET_KEY_PATTERN,
        |s| is_secret_key(s) || s.len() > 253,
        &["key", "api_key.txt", "A-B", "", "a/b", "a b", ".", "..x"],
    ),
    (
        ENV_NAME_PATTERN,
        is_env_name,
        &["A", "_", "_A1", "OPENAI_API_KEY", "", "1A", "A-B", "A B"],
    ),
    (
        WS_URL_PATTERN,
        is_ws_url,
        &[
            "wss://a",
            "ws://127.0.0.1:9000/x?y=1",
            "wss://",
            "ws://",
            "https://a",
            "wss://a b",
            "WSS://a",
        ],
    ),
    (
        LANGUAGE_PATTERN,
        is_language,
        &["en", "de", "EN", "eng", "e", "", "e1"],
    ),
    (
        S3_BUCKET_PATTERN,
        is_s3_bucket,
        &[
            "abc",
            "acme.calls-1",
            "ab",
            "Abc",
            "-ab",
            "ab-",
            "a_b",
            "a23456789012345678901234567890123456789012345678901234567890123",
        ],
    ),
    (
        HTTP_URL_PATTERN,
        is_http_url,
        &[
            "https://api.openai.com/v1",
            "http://127.0.0.1:11434/v1",
            "https://",
            "http://",
            "wss://a",
            "ftp://a",
            "https://a b",
            "HTTPS://a",
            "api.openai.com",
        ],
    ),
    (
        API_KEY_SID_PATTERN,
        is_api_key_sid,
        &[
            "SK0123456789abcdef0123456789ABCDEF",
            "AC0123456789abcdef0123456789ABCDEF",
            "SK0123",
            "",
        ],
    ),
    (
        SIP_URI_PATTERN,
        is_sip_uri,
        &[
            "sip:desk@pbx.example.com",
            "sips:+15551234567@trunk.example.com;transport=tls",
            "sip:@host",
            "sip:user@",
            "sip:user",
            "sip:a b@host",
            "sip:<a>@host",
            "tel:+15551234567",
            "SIP:a@b",
            "",
        ],
    ),
    (
        TRANSFER_NAME_PATTERN,
        |s| is_transfer_name(s) || s.len() > 64,
        &[
            "front-desk",
            "billing_2",
            "a",
            "",
            "2nd",
            "-a",
            "Front",
            "a.b",
            "a b",
        ],
    ),
    (
        PINECONE_INDEX_PATTERN,
        |s| is_pinecone_index(s) || s.len() > 45,
        &["faq", "demo-faq-2", "0", "", "-a", "a-", "a.b", "A", "a_b"],
    ),
    (
        AWS_REGION_PATTERN,
        is_aws_region,
        &[
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-10",
            "us-central1",
            "eastus2",
            "eu-central",
            "US-east-1",
            "use-east-1",
            "us--1",
            "us-east-",
            "u-east-1",
            "",
        ],
    ),
    (
        switchboard_crds::REALTIME_MODEL_PATTERN,
        switchboard_crds::is_realtime_model,
        &[
            "gpt-realtime",
            "gpt-realtime-2",
            "gpt-realtime-2.1",
            "gpt-realtime-2.1-mini",
            "gpt-realtime-mini",
            "gpt-realtime-1.5",
            "gpt-realtime-2025-08-28",
            "gpt-4o-realtime-preview",
            "gpt-4o-mini-realtime-preview-2024-12-17",
            "gpt-realtime-3",
            "gpt-realtime-2x",
            "gpt-4o",
            "GPT-REALTIME",
            "gpt-realtime ",
            "",
        ],
    ),
    (
        RECORDING_PREFIX_PATTERN,
        is_recording_prefix,
        &[
            "",
            "/",
            "///",
            "calls",
            "/calls/",
            "calls/2026",
            "a.b/c_d-e",
            ".hidden",
            "...",
            "..x/y",
            "x.",
            ".",
            "..",
            "a/../b",
            "a/./b",
            "/../",
            "a//b",
            "a b",
            "a\\b",
            "a/b\n",
            "c:",
            "%2e%2e",
            "ü",
        ],
    ),
    (
        switchboard_crds::IAM_ROLE_ARN_PATTERN,
        switchboard_crds::is_iam_role_arn,
        &[
            "arn:aws:iam::123456789012:role/gateway",
            "arn:aws:iam::123456789012:role/team/voice/gateway-acme",
            "arn:aws-cn:iam::123456789012:role/g",
            "arn:aws-us-gov:iam::123456789012:role/a+b=c,d.e@f_g-h",
            "arn:aws:iam::12345678901:role/short-account",
            "arn:aws:iam::1234567890123:role/long-account",
            "arn:aws:iam::12345678901a:role/letter",
            "arn:aws:iam::123456789012:user/not-a-role",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a//b",
            "arn:aws:iam::123456789012:role/has space",
            "arn:aws:iam::123456789012:role/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "arn:aws:iam::123456789012:role/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "arn:aws:sts::123456789012:role/sts",
            "arn:other:iam::123456789012:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/regional",
            "",
        ],
    ),
];

/// The schemas of every CRD this build publishes.
fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("VoiceTenant", support::tenant_schema()),
        ("KnowledgeBase", support::knowledge_schema()),
    ]
}

#[test]
fn patterns_and_predicates_agree() {
    for (pattern, predicate, samples) in FORMATS {
        for s in *samples {
            assert_eq!(
                support::pattern_matches(pattern, s),
                predicate(s),
                "pattern {pattern} and its predicate disagree on {s:?}"
            );
        }
    }
}

/// Every schema node under `value`, with its path.
fn nodes<'a>(schema: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), schema));
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            nodes(v, format!("{path}.{k}"), out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            nodes(&schema[key], format!("{path}.{key}"), out);
        }
    }
}

fn all_nodes(schema: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    nodes(schema, String::new(), &mut out);
    out
}

#[test]
fn every_pattern_is_a_known_format() {
    let known: Vec<&str> = FORMATS.iter().map(|f| f.0).collect();
    for (kind, schema) in schemas() {
        let patterns: Vec<(String, &str)> = all_nodes(&schema)
            .into_iter()
            .filter_map(|(path, node)| node["pattern"].as_str().map(|p| (path, p)))
            .collect();
        assert!(patterns.len() >= 10, "{kind}: {patterns:?}");
        for (path, p) in patterns {
            assert!(
                known.contains(&p),
                "{kind} {path}: pattern {p} has no tested predicate"
            );
        }
    }
}

#[test]
fn schemas_are_structural() {
    for (kind, schema) in schemas() {
        structural(kind, &schema);
    }
}

fn structural(kind: &str, schema: &Value) {
    for (path, node) in all_nodes(schema) {
        let path = format!("{kind}{path}");
        let obj = node.as_object().unwrap();
        for banned in [
            "$ref",
            "$defs",
            "definitions",
            "anyOf",
            "oneOf",
            "allOf",
            "not",
        ] {
            assert!(!obj.contains_key(banned), "{path}: has {banned}");
        }
        let typed = obj.get("type").and_then(Value::as_str).is_some()
            || node["x-kubernetes-int-or-string"] == json!(true);
        assert!(
            typed,
            "{path}: every node of a structural schema needs a type"
        );
        if obj.contains_key("properties") {
            assert_eq!(node["type"], "object", "{path}");
            assert!(!obj.contains_key("additionalProperties"), "{path}");
        }
        if let Some(format) = node["format"].as_str() {
            // The formats API servers recognise for what we use; others draw a warning.
            assert!(
                ["int32", "int64", "date-time"].contains(&format),
                "{path}: format {format} is not recognised by API servers"
            );
        }
        if node["x-kubernetes-list-type"] == json!("map") {
            let keys = node["x-kubernetes-list-map-keys"].as_array().unwrap();
            let required = node["items"]["required"].as_array().unwrap();
            assert!(keys.iter().all(|k| required.contains(k)), "{path}");
        }
    }
}

#[test]
fn defaults_in_the_schemas_are_valid() {
    // An API server refuses a CRD whose defaults break its own schema.
    for (kind, schema) in schemas() {
        for (path, node) in all_nodes(&schema) {
            if let Some(default) = node.get("default") {
                let refusals = support::refusals(
                    &json!({"type": "object", "properties": {"v": node}}),
                    &json!({"v": default}),
                );
                assert!(
                    refusals.is_empty(),
                    "{kind} {path}: default {default}: {refusals:?}"
                );
            }
        }
    }
}

const MINIMAL: &str = "\
apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata: {name: t}
spec:
  displayName: T
  phoneNumbers: [\"+15005550006\"]
  twilio: {accountSid: AC0123456789abcdef0123456789abcdef, authToken: {env: T}}
  openai: {apiKey: {env: K}}
";

/// What the operator reads back from an API server (schema defaults) must equal what the
/// gateway reads from the same file on a laptop (serde defaults).
#[test]
fn schema_defaults_match_serde_defaults() {
    let schema = support::tenant_schema();
    for extra in [
        "",
        "  agent: {}\n",
        "  agent: {voice: cedar, greeting: {text: Hi}}\n",
        "  agent: {turnDetection: {type: semantic_vad}}\n",
        "  agent: {turnDetection: {}}\n",
        "  agent: {transcription: null}\n",
        "  agent: {transcription: {language: en}}\n",
        "  recordings: {bucket: calls}\n",
        "  twilio: {accountSid: AC0123456789abcdef0123456789abcdef, authToken: {env: T}, validateSignatures: false}\n",
    ] {
        let text = if extra.starts_with("  twilio") {
            MINIMAL.replace(
                "  twilio: {accountSid: AC0123456789abcdef0123456789abcdef, authToken: {env: T}}\n",
                extra,
            )
        } else {
            format!("{MINIMAL}{extra}")
        };
        let laptop = parse_tenant(&text).unwrap();
        let raw: Value = serde_saphyr::from_str(&text).unwrap();
        let stored = support::defaulted(&schema, &raw);
        let cluster: VoiceTenant = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(cluster, laptop, "{extra:?}: stored as {stored}");
        assert!(support::refusals(&schema, &raw).is_empty(), "{extra:?}");
    }
}

const KB_MINIMAL: &str = "\
apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata: {name: faq}
spec:
  tenant: demo
  sources:
    - inline: {documents: [{title: Hours, content: Open 8 to 6.}]}
";

#[test]
fn knowledge_schema_defaults_match_serde_defaults() {
    let schema = support::knowledge_schema();
    for extra in [
        "",
        "  backend: {}\n  embedder: {}\n  chunking: {}\n  retrieval: {}\n",
        "  chunking: {size: 1000}\n  retrieval: {minScore: 0.5}\n",
        "  embedder: {type: openai, openai: {apiKey: {env: K}}}\n",
        "  embedder: {type: openai, openai: {apiKey: {env: K}, model: m, dimensions: 8}}\n",
        "  backend: {type: pinecone, pinecone: {index: faq, cloud: aws, region: us-east-1, apiKey: {env: P}}}\n",
    ] {
        let text = format!("{KB_MINIMAL}{extra}");
        let laptop = parse_knowledge_base(&text).unwrap();
        let raw: Value = serde_saphyr::from_str(&text).unwrap();
        let stored = support::defaulted(&schema, &raw);
        let cluster: KnowledgeBase = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(cluster, laptop, "{extra:?}: stored as {stored}");
        assert!(support::refusals(&schema, &raw).is_empty(), "{extra:?}");
    }
}

/// (kind, CRD name, short name, printer columns).
const CRDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "VoiceTenant",
        "voicetenants.voice.switchboard.dev",
        "vt",
        &[
            "Ready", "Number", "Replicas", "Desired", "Age", "Display", "Numbers", "Webhook",
        ],
    ),
    (
        "KnowledgeBase",
        "knowledgebases.voice.switchboard.dev",
        "kb",
        &["Tenant", "Backend", "Documents", "Chunks", "Ready", "Age"],
    ),
];

#[test]
fn crd_metadata() {
    let crds = serde_json::to_value(switchboard_crds::crds()).unwrap();
    assert_eq!(crds.as_array().unwrap().len(), CRDS.len());
    for (crd, (kind, name, short, expected_columns)) in crds.as_array().unwrap().iter().zip(CRDS) {
        assert_eq!(crd["spec"]["names"]["kind"], *kind);
        assert_eq!(crd["metadata"]["name"], *name);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!([short]));
        assert_eq!(crd["spec"]["names"]["categories"], json!(["switchboard"]));
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], switchboard_crds::VERSION);
        assert_eq!(version["subresources"]["status"], json!({}));
        let columns = version["additionalPrinterColumns"].as_array().unwrap();
        let names: Vec<&str> = columns
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, *expected_columns, "{kind}");
        // A list prints as a JSON array: the default view shows one number, only `-o wide`
        // (priority 1) the whole list.
        for column in columns {
            let wide = column["priority"].as_i64().unwrap_or(0) > 0;
            match column["name"].as_str().unwrap() {
                "Number" => assert_eq!(column["jsonPath"], ".spec.phoneNumbers[0]"),
                "Numbers" => assert!(wide, "{column}"),
                _ => {}
            }
        }
        // Every column's path must exist in the schema, or kubectl shows it empty forever.
        let schema = &version["schema"]["openAPIV3Schema"];
        for column in columns {
            let path = column["jsonPath"].as_str().unwrap();
            if path.starts_with(".metadata") {
                continue;
            }
            // Filters such as `[?(@.type=="Ready")]` select list items.
            let mut depth = 0;
            let plain: String = path
                .chars()
                .filter(|&c| {
                    depth += i32::from(c == '[');
                    let keep = depth == 0;
                    depth -= i32::from(c == ']');
                    keep && c != ']'
                })
                .collect();
            let mut node = schema;
            for key in plain.trim_start_matches('.').split('.') {
                if node["type"] == "array" {
                    node = &node["items"];
                }
                node = &node["properties"][key];
                assert!(
                    node.is_object(),
                    "{kind}: column {path}: no {key} in the schema"
                );
            }
        }
    }
}
