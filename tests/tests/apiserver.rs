//! Our CRDs, manifests and custom-resource handling against a real Kubernetes API server
//! (`scripts/kube-apiserver.sh`: envtest's full server, or the CRD-serving API server of
//! Kubernetes 1.36): the schema, CEL rules, server-side apply, printer columns, the status
//! subresource and finalizers are the server's own, not a simulation of them.
//!
//! Every test applies both generated CRD files first (idempotent), so the tests are
//! independent of each other and of their order; each works on objects of its own names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};
use switchboard_crds::{KnowledgeBase, VoiceTenant};

/// The field manager of everything these tests write.
const MANAGER: &str = "switchboard-tests";
/// Namespace of the test objects (exists on a full server, any name works on a CRD-only one).
const NAMESPACE: &str = "default";
const WAIT: Duration = Duration::from_secs(30);

/// A client for the server `scripts/kube-apiserver.sh` started, or `None` (skip).
async fn server() -> Option<Client> {
    let client = switchboard_tests::kube::apiserver_client().await?;
    install_crds(&client).await;
    Some(client)
}

/// Whether the server serves the built-in APIs too (envtest's kube-apiserver).
fn full_server() -> bool {
    std::env::var("SWITCHBOARD_TEST_KUBE_KIND").as_deref() == Ok("full")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The YAML documents of a file, empty documents left out.
fn documents(text: &str, origin: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{origin} is not YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The chart's CRD template as Helm renders it with `crds.create: true` (the default):
/// its only template constructs are the leading comment and the `if` around the CRDs.
/// Anything else fails here, so a new construct cannot be applied unrendered.
fn render_chart_crds(template: &str) -> String {
    let mut out = String::new();
    let mut in_comment = false;
    for line in template.lines() {
        let t = line.trim();
        if in_comment || t.starts_with("{{- /*") || t.starts_with("{{/*") {
            in_comment = !t.ends_with("*/}}");
            continue;
        }
        if t == "{{- if .Values.crds.create }}" || t == "{{- end }}" {
            continue;
        }
        assert!(
            !line.contains("{{"),
            "the chart's CRD template has a construct this test does not render: {line}"
        );
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Server-side applies both generated CRD files (the chart's after the plain one: the
/// same CRDs plus Helm's keep annotation) and waits until every CRD is Established.
async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let plain = read("crds/generated/crds.yaml");
    let chart = render_chart_crds(&read("charts/switchboard/templates/crds/crds.yaml"));
    for (origin, text) in [
        ("crds/generated/crds.yaml", plain),
        ("the chart's CRDs", chart),
    ] {
        let crds = documents(&text, origin);
        assert_eq!(crds.len(), 2, "{origin}: VoiceTenant and KnowledgeBase");
        for crd in crds {
            let name = crd["metadata"]["name"]
                .as_str()
                .expect("a CRD has a name")
                .to_string();
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("{origin}: the server refused CRD {name}: {e}"));
            tokio::time::timeout(
                WAIT,
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap_or_else(|_| panic!("{origin}: CRD {name} not Established after {WAIT:?}"))
            .expect("watching the CRD");
        }
    }
}

fn tenants(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::erase::<VoiceTenant>(&()),
    )
}

fn knowledge_bases(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::erase::<KnowledgeBase>(&()),
    )
}

/// The example manifest at `relative` (one document), renamed to `name` in [`NAMESPACE`].
fn example(relative: &str, name: &str) -> Value {
    let mut docs = documents(&read(relative), relative);
    assert_eq!(docs.len(), 1, "{relative}: one manifest");
    let mut doc = docs.remove(0);
    doc["metadata"] = json!({ "name": name, "namespace": NAMESPACE });
    doc
}

fn demo_tenant(name: &str) -> Value {
    example("examples/tenants/demo.yaml", name)
}

fn demo_knowledge(name: &str) -> Value {
    example("examples/knowledge/demo.yaml", name)
}

/// Server-side applies `doc` with the API that serves its kind.
async fn apply(client: &Client, doc: &Value, dry_run: bool) -> Result<DynamicObject, kube::Error> {
    let api = match doc["kind"].as_str() {
        Some("VoiceTenant") => tenants(client),
        Some("KnowledgeBase") => knowledge_bases(client),
        other => panic!("not one of our kinds: {other:?}"),
    };
    let name = doc["metadata"]["name"]
        .as_str()
        .expect("a manifest has a name");
    let mut params = PatchParams::apply(MANAGER).force();
    params.dry_run = dry_run;
    api.patch(name, &params, &Patch::Apply(doc)).await
}

/// Every `.yaml` file under `examples/`, recursively, sorted.
fn example_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("examples"), &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn every_example_manifest_is_accepted() {
    let Some(client) = server().await else { return };
    let files = example_files();
    assert!(
        files.len() >= 3,
        "examples/ has tenants and knowledge bases"
    );
    let mut applied = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("an example reads");
        let origin = path.display().to_string();
        for doc in documents(&text, &origin) {
            let namespace = doc["metadata"]["namespace"].as_str().unwrap_or(NAMESPACE);
            if full_server() {
                // A full server refuses objects in a namespace that does not exist.
                let ns: Api<Namespace> = Api::all(client.clone());
                let body = json!({ "apiVersion": "v1", "kind": "Namespace",
                    "metadata": { "name": namespace } });
                ns.patch(
                    namespace,
                    &PatchParams::apply(MANAGER),
                    &Patch::Apply(&body),
                )
                .await
                .expect("the example's namespace");
            }
            let mut doc = doc.clone();
            doc["metadata"]["namespace"] = json!(namespace);
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let api = Api::<DynamicObject>::namespaced_with(
                client.clone(),
                namespace,
                &match kind.as_str() {
                    "VoiceTenant" => ApiResource::erase::<VoiceTenant>(&()),
                    "KnowledgeBase" => ApiResource::erase::<KnowledgeBase>(&()),
                    other => panic!("{origin}: not one of our kinds: {other}"),
                },
            );
            let name = doc["metadata"]["name"]
                .as_str()
                .expect("a name")
                .to_string();
            // The server outlives a test run (scripts/kube-apiserver.sh keeps it): an
            // object left by an earlier run of an older example would make this apply an
            // update. Nothing puts finalizers on these objects, so the delete is immediate.
            let _ = api.delete(&name, &DeleteParams::default()).await;
            let stored = api
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&doc),
                )
                .await
                .unwrap_or_else(|e| panic!("{origin}: {kind} {name} refused: {e}"));
            assert_eq!(
                stored.metadata.generation,
                Some(1),
                "{origin}: {kind} {name}"
            );
            // The server filled in the schema's defaults: the manifest is what runs.
            let spec = &stored.data["spec"];
            match kind.as_str() {
                "VoiceTenant" => assert!(spec["deletionPolicy"].is_string(), "{origin}: {spec}"),
                _ => assert!(spec["backend"]["type"].is_string(), "{origin}: {spec}"),
            }
            applied += 1;
        }
    }
    assert!(applied >= 3, "{applied} example manifests applied");
}

/// How a bad manifest is made and what the server must answer.
struct Bad {
    /// What is wrong.
    what: &'static str,
    /// The valid base manifest: the demo tenant or the demo knowledge base.
    kind: &'static str,
    /// JSON pointer and the value put there.
    set: Vec<(&'static str, Value)>,
    /// Substrings of the server's message (field path and rule).
    expect: &'static [&'static str],
}

fn bad_manifests() -> Vec<Bad> {
    let vt = "VoiceTenant";
    let kb = "KnowledgeBase";
    vec![
        Bad {
            what: "a number not in E.164",
            kind: vt,
            set: vec![("/spec/phoneNumbers", json!(["5550006"]))],
            expect: &[
                "spec.phoneNumbers[0]",
                "should match",
                r"^\+[1-9][0-9]{1,14}$",
            ],
        },
        Bad {
            what: "no number",
            kind: vt,
            set: vec![("/spec/phoneNumbers", json!([]))],
            expect: &["spec.phoneNumbers", "should have at least 1 items"],
        },
        Bad {
            what: "an unknown deletionPolicy",
            kind: vt,
            set: vec![("/spec/deletionPolicy", json!("Destroy"))],
            expect: &[
                "spec.deletionPolicy",
                "Unsupported value",
                "\"Retain\"",
                "\"Delete\"",
            ],
        },
        Bad {
            what: "maxCallDurationSeconds over the Realtime session limit",
            kind: vt,
            set: vec![("/spec/agent/maxCallDurationSeconds", json!(7200))],
            expect: &[
                "spec.agent.maxCallDurationSeconds",
                "less than or equal to 3600",
            ],
        },
        Bad {
            what: "silenceTimeoutSeconds over maxCallDurationSeconds",
            kind: vt,
            set: vec![
                ("/spec/agent/maxCallDurationSeconds", json!(60)),
                ("/spec/agent/silenceTimeoutSeconds", json!(120)),
            ],
            expect: &[
                "spec.agent.silenceTimeoutSeconds",
                "silenceTimeoutSeconds must not exceed maxCallDurationSeconds",
            ],
        },
        Bad {
            what: "a realtimeUrl that is not a WebSocket URL",
            kind: vt,
            set: vec![(
                "/spec/openai/realtimeUrl",
                json!("https://api.openai.com/v1/realtime"),
            )],
            expect: &["spec.openai.realtimeUrl", "should match", r"^wss?://\S+$"],
        },
        Bad {
            what: "a secret both from the environment and a file",
            kind: vt,
            set: vec![(
                "/spec/openai/apiKey",
                json!({ "env": "OPENAI_API_KEY", "file": "/run/key" }),
            )],
            expect: &[
                "spec.openai.apiKey",
                "must set exactly one of secretKeyRef, env, file",
            ],
        },
        Bad {
            what: "a secret from nowhere",
            kind: vt,
            set: vec![("/spec/twilio/authToken", json!({}))],
            expect: &[
                "spec.twilio.authToken",
                "must set exactly one of secretKeyRef, env, file",
            ],
        },
        Bad {
            what: "a malformed Twilio account SID",
            kind: vt,
            set: vec![("/spec/twilio/accountSid", json!("AC123"))],
            expect: &["spec.twilio.accountSid", "should match"],
        },
        Bad {
            what: "maxReplicas under minReplicas",
            kind: vt,
            set: vec![(
                "/spec/gateway",
                json!({ "autoscaling": { "minReplicas": 5, "maxReplicas": 2 } }),
            )],
            expect: &[
                "spec.gateway.autoscaling.maxReplicas",
                "maxReplicas must be at least minReplicas",
            ],
        },
        Bad {
            what: "fixed replicas and autoscaling together",
            kind: vt,
            set: vec![(
                "/spec/gateway",
                json!({ "replicas": 2, "autoscaling": { "minReplicas": 1, "maxReplicas": 3 } }),
            )],
            expect: &["spec.gateway", "set replicas or autoscaling, not both"],
        },
        Bad {
            what: "a Pinecone backend without its settings",
            kind: kb,
            set: vec![("/spec/backend", json!({ "type": "pinecone" }))],
            expect: &[
                "spec.backend.pinecone",
                "pinecone must be set when type is pinecone",
            ],
        },
        Bad {
            what: "an unknown backend",
            kind: kb,
            set: vec![("/spec/backend", json!({ "type": "faiss" }))],
            expect: &["spec.backend.type", "Unsupported value"],
        },
        Bad {
            what: "a chunk overlap over half the chunk",
            kind: kb,
            set: vec![("/spec/chunking", json!({ "size": 200, "overlap": 150 }))],
            expect: &[
                "spec.chunking.overlap",
                "overlap must be at most half of size",
            ],
        },
        Bad {
            what: "a recording prefix that climbs out of the tenant's directory",
            kind: vt,
            set: vec![(
                "/spec/recordings",
                json!({ "enabled": true, "prefix": "calls/../other-tenant" }),
            )],
            expect: &[
                "spec.recordings.prefix",
                "should match",
                switchboard_crds::format::RECORDING_PREFIX_PATTERN,
            ],
        },
        Bad {
            what: "a chunk size over 8000",
            kind: kb,
            set: vec![("/spec/chunking", json!({ "size": 9000, "overlap": 50 }))],
            expect: &["spec.chunking.size", "less than or equal to 8000"],
        },
    ]
}

/// Puts `value` at the JSON pointer `pointer`, creating missing objects on the way.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut at = doc;
    let keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let (last, parents) = keys.split_last().expect("a non-empty pointer");
    for key in parents {
        at = at
            .as_object_mut()
            .unwrap_or_else(|| panic!("{pointer}: {key} is under a non-object"))
            .entry(key.to_string())
            .or_insert_with(|| json!({}));
    }
    at.as_object_mut()
        .unwrap_or_else(|| panic!("{pointer}: not under an object"))
        .insert(last.to_string(), value);
}

fn refusal(result: Result<DynamicObject, kube::Error>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: accepted, but the server must refuse it"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{what}: {status:?}");
            status.message
        }
        Err(e) => panic!("{what}: not an API refusal: {e}"),
    }
}

#[tokio::test]
async fn bad_manifests_are_refused_with_their_messages() {
    let Some(client) = server().await else { return };
    // The valid bases are accepted: each refusal below is the one change's doing.
    apply(&client, &demo_tenant("bad-base"), true)
        .await
        .expect("the base tenant");
    apply(&client, &demo_knowledge("bad-base"), true)
        .await
        .expect("the base knowledge base");
    let mut failures = Vec::new();
    for bad in bad_manifests() {
        let mut doc = match bad.kind {
            "VoiceTenant" => demo_tenant("bad"),
            _ => demo_knowledge("bad"),
        };
        for (pointer, value) in &bad.set {
            set(&mut doc, pointer, value.clone());
        }
        let message = refusal(apply(&client, &doc, true).await, bad.what);
        let missing: Vec<_> = bad
            .expect
            .iter()
            .filter(|e| !message.contains(**e))
            .collect();
        if !missing.is_empty() {
            failures.push(format!("{}: {missing:?} not in {message:?}", bad.what));
        }
    }
    assert!(
        failures.is_empty(),
        "refused, but not as expected:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_knowledge_base_keeps_its_tenant() {
    let Some(client) = server().await else { return };
    let name = "immutable-tenant";
    let api = knowledge_bases(&client);
    let _ = api.delete(name, &DeleteParams::default()).await;
    let mut doc = demo_knowledge(name);
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(doc.clone()).expect("an object"),
        )
        .await
        .expect("the knowledge base is created");
    assert_eq!(created.data["spec"]["tenant"], "demo");
    doc["spec"]["tenant"] = json!("someone-else");
    let message = refusal(
        apply(&client, &doc, false).await,
        "moving the knowledge base",
    );
    assert!(
        message.contains("spec.tenant") && message.contains("tenant is immutable"),
        "{message}"
    );
    // Other changes still go through.
    doc["spec"]["tenant"] = json!("demo");
    doc["spec"]["description"] = json!("Still the demo tenant's.");
    apply(&client, &doc, false)
        .await
        .expect("a change that keeps the tenant");
    api.delete(name, &DeleteParams::default())
        .await
        .expect("cleanup");
}

/// The server's Table rendering of a list (what `kubectl get` prints).
async fn table(client: &Client, plural: &str) -> Value {
    let uri = format!("/apis/voice.switchboard.dev/v1alpha1/namespaces/{NAMESPACE}/{plural}");
    let request = http::Request::get(uri)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .expect("a request");
    let text = client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("the Table of {plural}: {e}"));
    serde_json::from_str(&text).expect("a Table is JSON")
}

/// `Name` then the CRD's printer columns of priority 0, as the generated CRD declares them.
fn declared_columns(kind: &str) -> Vec<String> {
    let crds = documents(
        &read("crds/generated/crds.yaml"),
        "crds/generated/crds.yaml",
    );
    let crd = crds
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"));
    let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns");
    std::iter::once("Name".to_string())
        .chain(
            columns
                .iter()
                .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
                .map(|c| c["name"].as_str().expect("a column name").to_string()),
        )
        .collect()
}

/// Prints `table` as `kubectl get` would and returns the cells of row `name` by column.
fn row(table: &Value, name: &str) -> Vec<(String, Value)> {
    let columns: Vec<&Value> = table["columnDefinitions"]
        .as_array()
        .expect("columnDefinitions")
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
        .collect();
    let all = table["columnDefinitions"].as_array().expect("columns");
    let rows = table["rows"].as_array().expect("rows");
    let mut printed = vec![
        columns
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_uppercase())
            .collect::<Vec<_>>()
            .join("\t"),
    ];
    let mut found = None;
    for r in rows {
        let cells = r["cells"].as_array().expect("cells");
        let named: Vec<(String, Value)> = all
            .iter()
            .zip(cells)
            .filter(|(c, _)| c["priority"].as_i64().unwrap_or(0) == 0)
            .map(|(c, v)| (c["name"].as_str().unwrap_or("").to_string(), v.clone()))
            .collect();
        printed.push(
            named
                .iter()
                .map(|(_, v)| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "<none>".into(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\t"),
        );
        if named.first().is_some_and(|(_, v)| v == name) {
            found = Some(named);
        }
    }
    println!("{}", printed.join("\n"));
    found.unwrap_or_else(|| panic!("no row {name} in {table}"))
}

fn cell<'a>(row: &'a [(String, Value)], column: &str) -> &'a Value {
    &row.iter()
        .find(|(c, _)| c == column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .1
}

#[tokio::test]
async fn get_prints_the_printer_columns() {
    let Some(client) = server().await else { return };
    let (vt, kb) = ("columns", "columns-faq");
    apply(&client, &demo_tenant(vt), false)
        .await
        .expect("the tenant");
    let mut faq = demo_knowledge(kb);
    faq["spec"]["tenant"] = json!(vt);
    apply(&client, &faq, false)
        .await
        .expect("the knowledge base");
    let status = json!({ "status": {
        "observedGeneration": 1, "desiredReplicas": 2, "readyReplicas": 1,
        "conditions": [{ "type": "Ready", "status": "False", "reason": "Progressing",
            "message": "1 of 2 replicas ready", "lastTransitionTime": "2026-01-01T00:00:00Z" }] } });
    tenants(&client)
        .patch_status(vt, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the tenant's status");
    let kb_status = json!({ "status": {
        "observedGeneration": 1, "documents": 8, "chunks": 21,
        "conditions": [{ "type": "Ready", "status": "True", "reason": "Indexed",
            "message": "8 documents", "lastTransitionTime": "2026-01-01T00:00:00Z" }] } });
    knowledge_bases(&client)
        .patch_status(kb, &PatchParams::default(), &Patch::Merge(&kb_status))
        .await
        .expect("the knowledge base's status");

    println!("kubectl get vt");
    let vts = table(&client, "voicetenants").await;
    let names: Vec<&str> = vts["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, declared_columns("VoiceTenant"));
    let r = row(&vts, vt);
    assert_eq!(cell(&r, "Ready"), "False");
    // `kubectl get vt` shows the first number; the whole list is a priority-1 column
    // (`-o wide`), not printed here.
    assert_eq!(cell(&r, "Number"), "+15005550006");
    assert_eq!(cell(&r, "Replicas"), 1);
    assert_eq!(cell(&r, "Desired"), 2);
    assert!(cell(&r, "Age").is_string(), "Age: {r:?}");

    println!("kubectl get kb");
    let kbs = table(&client, "knowledgebases").await;
    let names: Vec<&str> = kbs["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, declared_columns("KnowledgeBase"));
    let r = row(&kbs, kb);
    assert_eq!(cell(&r, "Tenant"), vt);
    assert_eq!(
        cell(&r, "Backend"),
        "pgvector",
        "the schema's default backend"
    );
    assert_eq!(cell(&r, "Documents"), 8);
    assert_eq!(cell(&r, "Chunks"), 21);
    assert_eq!(cell(&r, "Ready"), "True");

    tenants(&client)
        .delete(vt, &DeleteParams::default())
        .await
        .expect("cleanup");
    knowledge_bases(&client)
        .delete(kb, &DeleteParams::default())
        .await
        .expect("cleanup");
}

/// Status through its subresource: it does not bump `generation`; a spec change does and
/// leaves `observedGeneration` behind until the status writer catches up; status written
/// through the main resource is dropped.
async fn status_subresource(api: Api<DynamicObject>, doc: Value) {
    let name = doc["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    let created = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .expect("created");
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({ "status": { "observedGeneration": 1 } });
    let after = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patched");
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "a status write is not a new generation"
    );
    assert_eq!(after.data["status"]["observedGeneration"], 1);

    let spec = match doc["kind"].as_str() {
        Some("VoiceTenant") => json!({ "spec": { "displayName": "Changed" } }),
        _ => json!({ "spec": { "description": "Changed." } }),
    };
    let changed = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .expect("spec patched");
    assert_eq!(
        changed.metadata.generation,
        Some(2),
        "a spec change is a new generation"
    );
    assert_eq!(
        changed.data["status"]["observedGeneration"], 1,
        "until the status writer catches up"
    );

    let sneaky = json!({ "status": { "observedGeneration": 99 } });
    let ignored = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .expect("a main-resource patch");
    assert_eq!(
        ignored.data["status"]["observedGeneration"], 1,
        "status only through /status"
    );
    assert_eq!(ignored.metadata.generation, Some(2));

    let caught_up = json!({ "status": { "observedGeneration": 2 } });
    let after = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&caught_up))
        .await
        .expect("status patched");
    assert_eq!(after.data["status"]["observedGeneration"], 2);
    assert_eq!(after.metadata.generation, Some(2));
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn voice_tenant_status_is_a_subresource() {
    let Some(client) = server().await else { return };
    status_subresource(tenants(&client), demo_tenant("status")).await;
}

#[tokio::test]
async fn knowledge_base_status_is_a_subresource() {
    let Some(client) = server().await else { return };
    status_subresource(knowledge_bases(&client), demo_knowledge("status")).await;
}

/// A finalizer holds a deleted object (with its `deletionTimestamp`) until it is removed.
async fn finalizer_holds_deletion(api: Api<DynamicObject>, doc: Value) {
    let name = doc["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    let finalizer = "voice.switchboard.dev/cleanup";
    let mut doc = doc;
    doc["metadata"]["finalizers"] = json!([finalizer]);
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&doc),
    )
    .await
    .expect("created with a finalizer");

    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete accepted");
    let held = api
        .get(&name)
        .await
        .expect("still there: the finalizer holds it");
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp set"
    );
    assert_eq!(
        held.metadata.finalizers.as_deref(),
        Some(&[finalizer.to_string()][..])
    );

    // The controller reports its cleanup while the object is held.
    let status = json!({ "status": { "observedGeneration": 1 } });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status while deleting");

    let release = json!({ "metadata": { "finalizers": null } });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("finalizer removed");
    // Removing the last finalizer of a deleted object deletes it; poll briefly all the same.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match api.get(&name).await {
            Err(kube::Error::Api(s)) if s.code == 404 => break,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "{name} still there {WAIT:?} after its finalizer went: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn voice_tenant_finalizer_holds_deletion() {
    let Some(client) = server().await else { return };
    finalizer_holds_deletion(tenants(&client), demo_tenant("finalized")).await;
}

#[tokio::test]
async fn knowledge_base_finalizer_holds_deletion() {
    let Some(client) = server().await else { return };
    finalizer_holds_deletion(knowledge_bases(&client), demo_knowledge("finalized")).await;
}
