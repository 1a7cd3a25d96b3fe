//! Every validation rule, table-driven: broken alone it is reported with its field and
//! rule; at its edge values it accepts. The same tables check that the published CRD
//! schema (OpenAPI validations + CEL) refuses and accepts the same manifests.

#![allow(clippy::unwrap_used)]

mod support;

use switchboard_crds::{
    AgentSpec, AnalysisField, AnalysisSpec, ApiKeySpec, AutoscalingSpec, ConsoleSpec, DatabaseSpec,
    DeletionPolicy, Eagerness, FieldType, GatewaySpec, GreetingSpec, OpenAiSpec, PricingSpec,
    RecordingSpec, SecretKeySelector, SecretRef, TranscriptionSpec, TurnDetectionKind,
    TurnDetectionSpec, TwilioSpec, VoiceTenant, VoiceTenantSpec,
};

fn base() -> VoiceTenantSpec {
    VoiceTenantSpec {
        display_name: "Demo Dental".into(),
        phone_numbers: vec!["+15005550006".into()],
        agent: AgentSpec::default(),
        twilio: TwilioSpec {
            account_sid: "AC0123456789abcdef0123456789ABCDEF".into(),
            auth_token: SecretRef::env("TWILIO_AUTH_TOKEN"),
            secondary_auth_token: None,
            api_key: None,
            validate_signatures: true,
        },
        openai: OpenAiSpec {
            api_key: SecretRef::env("OPENAI_API_KEY"),
            realtime_url: None,
        },
        gateway: None,
        database: None,
        recordings: None,
        encryption: None,
        aws: None,
        deletion_policy: DeletionPolicy::Retain,
        logging: None,
        console: None,
        pricing: None,
        analysis: None,
    }
}

fn api_key(name: &str, secret: SecretRef) -> ApiKeySpec {
    ApiKeySpec {
        name: name.into(),
        secret,
    }
}

fn analysis(s: &mut VoiceTenantSpec) -> &mut AnalysisSpec {
    s.analysis.get_or_insert(AnalysisSpec {
        model: "gpt-4o-mini".into(),
        base_url: None,
        api_key: None,
        summary: true,
        sentiment: true,
        success_rubric: None,
        fields: Vec::new(),
        min_turns: 2,
    })
}

fn field(name: &str, kind: FieldType, choices: &[&str]) -> AnalysisField {
    AnalysisField {
        name: name.into(),
        kind,
        description: "what the caller wanted".into(),
        choices: choices.iter().map(|c| c.to_string()).collect(),
    }
}

fn gateway(s: &mut VoiceTenantSpec) -> &mut GatewaySpec {
    s.gateway.get_or_insert_with(GatewaySpec::default)
}

fn autoscaling(s: &mut VoiceTenantSpec) -> &mut AutoscalingSpec {
    gateway(s).autoscaling.get_or_insert(AutoscalingSpec {
        min_replicas: 1,
        max_replicas: 3,
        target_cpu_utilization: None,
    })
}

fn semantic(s: &mut VoiceTenantSpec) -> &mut TurnDetectionSpec {
    let td = &mut s.agent.turn_detection;
    td.kind = TurnDetectionKind::SemanticVad;
    td.threshold = None;
    td.prefix_padding_ms = None;
    td.silence_duration_ms = None;
    td
}

fn selector(name: &str, key: &str) -> SecretRef {
    SecretRef {
        secret_key_ref: Some(SecretKeySelector {
            name: name.into(),
            key: key.into(),
        }),
        ..SecretRef::default()
    }
}

type Mutation = fn(&mut VoiceTenantSpec);

/// Each rule broken on its own: (what, mutation, field named, words of the rule).
const BROKEN: &[(&str, Mutation, &str, &str)] = &[
    (
        "analysis field name reserved",
        |s| analysis(s).fields = vec![field("summary", FieldType::String, &[])],
        "spec.analysis.fields[0].name",
        "not summary",
    ),
    (
        "analysis field names repeated",
        |s| {
            analysis(s).fields = vec![
                field("intent", FieldType::String, &[]),
                field("intent", FieldType::Number, &[]),
            ]
        },
        "spec.analysis.fields[1].name",
        "must not repeat",
    ),
    (
        "analysis enum without choices",
        |s| analysis(s).fields = vec![field("intent", FieldType::Enum, &[])],
        "spec.analysis.fields[0].choices",
        "for type enum",
    ),
    (
        "analysis choices on a string field",
        |s| analysis(s).fields = vec![field("intent", FieldType::String, &["a"])],
        "spec.analysis.fields[0].choices",
        "only allowed for type enum",
    ),
    (
        "analysis base URL not http",
        |s| analysis(s).base_url = Some("ftp://models.example".into()),
        "spec.analysis.baseUrl",
        "http://",
    ),
    (
        "analysis asks for nothing",
        |s| {
            let a = analysis(s);
            a.summary = false;
            a.sentiment = false;
        },
        "spec.analysis",
        "at least one of",
    ),
    (
        "analysis API key with two sources",
        |s| {
            analysis(s).api_key = Some(SecretRef {
                file: Some("/k".into()),
                ..SecretRef::env("K")
            })
        },
        "spec.analysis.apiKey",
        "exactly one",
    ),
    (
        "API key name not a DNS label",
        |s| {
            s.console = Some(ConsoleSpec {
                api_keys: vec![api_key("Ops_Board", SecretRef::env("K"))],
            })
        },
        "spec.console.apiKeys[0].name",
        "DNS label",
    ),
    (
        "API key names repeated",
        |s| {
            s.console = Some(ConsoleSpec {
                api_keys: vec![
                    api_key("ops", SecretRef::env("K1")),
                    api_key("ops", SecretRef::env("K2")),
                ],
            })
        },
        "spec.console.apiKeys[1].name",
        "must not repeat",
    ),
    (
        "API key without a source",
        |s| {
            s.console = Some(ConsoleSpec {
                api_keys: vec![api_key("ops", SecretRef::default())],
            })
        },
        "spec.console.apiKeys[0].secret",
        "exactly one of",
    ),
    (
        "negative price",
        |s| {
            s.pricing = Some(PricingSpec {
                audio_output: Some(-1.0),
                ..PricingSpec::default()
            })
        },
        "spec.pricing.audioOutput",
        "zero or more",
    ),
    (
        "blank display name",
        |s| s.display_name = "  ".into(),
        "spec.displayName",
        "must not be empty",
    ),
    (
        "long display name",
        |s| s.display_name = "x".repeat(201),
        "spec.displayName",
        "at most 200 characters",
    ),
    (
        "no numbers",
        |s| s.phone_numbers.clear(),
        "spec.phoneNumbers",
        "at least one number",
    ),
    (
        "number without +",
        |s| s.phone_numbers = vec!["15005550006".into()],
        "spec.phoneNumbers[0]",
        "must be E.164",
    ),
    (
        "number with leading 0",
        |s| s.phone_numbers = vec!["+05005550006".into()],
        "spec.phoneNumbers[0]",
        "must be E.164",
    ),
    (
        "number too long",
        |s| s.phone_numbers = vec!["+1234567890123456".into()],
        "spec.phoneNumbers[0]",
        "must be E.164",
    ),
    (
        "number too short",
        |s| s.phone_numbers = vec!["+1".into()],
        "spec.phoneNumbers[0]",
        "must be E.164",
    ),
    (
        "number with spaces",
        |s| s.phone_numbers = vec!["+1 500 555 0006".into()],
        "spec.phoneNumbers[0]",
        "must be E.164",
    ),
    (
        "repeated number",
        |s| s.phone_numbers.push("+15005550006".into()),
        "spec.phoneNumbers[1]",
        "must not repeat +15005550006",
    ),
    (
        "blank model",
        |s| s.agent.model = String::new(),
        "spec.agent.model",
        "must not be empty",
    ),
    (
        "blank voice",
        |s| s.agent.voice = " ".into(),
        "spec.agent.voice",
        "must not be empty",
    ),
    (
        "blank greeting",
        |s| {
            s.agent.greeting = Some(GreetingSpec {
                text: "\n".into(),
                interruptible: false,
            })
        },
        "spec.agent.greeting.text",
        "must not be empty",
    ),
    (
        "call too short",
        |s| {
            s.agent.max_call_duration_seconds = 9;
            s.agent.silence_timeout_seconds = 0;
        },
        "spec.agent.maxCallDurationSeconds",
        "between 10 and 3600",
    ),
    (
        "call too long",
        |s| s.agent.max_call_duration_seconds = 3601,
        "spec.agent.maxCallDurationSeconds",
        "between 10 and 3600",
    ),
    (
        "silence timeout over call length",
        |s| s.agent.silence_timeout_seconds = 1801,
        "spec.agent.silenceTimeoutSeconds",
        "must not exceed maxCallDurationSeconds",
    ),
    (
        "threshold above 1",
        |s| s.agent.turn_detection.threshold = Some(1.01),
        "spec.agent.turnDetection.threshold",
        "between 0.0 and 1.0",
    ),
    (
        "threshold below 0",
        |s| s.agent.turn_detection.threshold = Some(-0.1),
        "spec.agent.turnDetection.threshold",
        "between 0.0 and 1.0",
    ),
    (
        "threshold NaN",
        |s| s.agent.turn_detection.threshold = Some(f64::NAN),
        "spec.agent.turnDetection.threshold",
        "between 0.0 and 1.0",
    ),
    (
        "silence duration short",
        |s| s.agent.turn_detection.silence_duration_ms = Some(99),
        "spec.agent.turnDetection.silenceDurationMs",
        "between 100 and 10000",
    ),
    (
        "silence duration long",
        |s| s.agent.turn_detection.silence_duration_ms = Some(10_001),
        "spec.agent.turnDetection.silenceDurationMs",
        "between 100 and 10000",
    ),
    (
        "prefix padding long",
        |s| s.agent.turn_detection.prefix_padding_ms = Some(5_001),
        "spec.agent.turnDetection.prefixPaddingMs",
        "at most 5000",
    ),
    (
        "eagerness with server_vad",
        |s| s.agent.turn_detection.eagerness = Some(Eagerness::High),
        "spec.agent.turnDetection.eagerness",
        "only allowed with type semantic_vad",
    ),
    (
        "threshold with semantic_vad",
        |s| semantic(s).threshold = Some(0.5),
        "spec.agent.turnDetection.threshold",
        "only allowed with type server_vad",
    ),
    (
        "prefix padding with semantic_vad",
        |s| semantic(s).prefix_padding_ms = Some(300),
        "spec.agent.turnDetection.prefixPaddingMs",
        "only allowed with type server_vad",
    ),
    (
        "silence duration with semantic_vad",
        |s| semantic(s).silence_duration_ms = Some(500),
        "spec.agent.turnDetection.silenceDurationMs",
        "only allowed with type server_vad",
    ),
    (
        "idle timeout with semantic_vad",
        |s| semantic(s).idle_timeout_ms = Some(8_000),
        "spec.agent.turnDetection.idleTimeoutMs",
        "only allowed with type server_vad",
    ),
    (
        "blank transcription model",
        |s| {
            s.agent.transcription = Some(TranscriptionSpec {
                model: String::new(),
                language: None,
            })
        },
        "spec.agent.transcription.model",
        "must not be empty",
    ),
    (
        "upper-case language",
        |s| {
            s.agent.transcription = Some(TranscriptionSpec {
                language: Some("EN".into()),
                ..TranscriptionSpec::default()
            })
        },
        "spec.agent.transcription.language",
        "ISO-639-1",
    ),
    (
        "three-letter language",
        |s| {
            s.agent.transcription = Some(TranscriptionSpec {
                language: Some("eng".into()),
                ..TranscriptionSpec::default()
            })
        },
        "spec.agent.transcription.language",
        "ISO-639-1",
    ),
    (
        "bad knowledge base name",
        |s| s.agent.knowledge_bases = vec!["FAQ_base".into()],
        "spec.agent.knowledgeBases[0]",
        "KnowledgeBase name",
    ),
    (
        "repeated knowledge base",
        |s| s.agent.knowledge_bases = vec!["faq".into(), "faq".into()],
        "spec.agent.knowledgeBases[1]",
        "must not repeat faq",
    ),
    (
        "short account SID",
        |s| s.twilio.account_sid = "AC123".into(),
        "spec.twilio.accountSid",
        "'AC' followed by 32 hex digits",
    ),
    (
        "non-hex account SID",
        |s| s.twilio.account_sid = format!("AC{}", "x".repeat(32)),
        "spec.twilio.accountSid",
        "'AC' followed by 32 hex digits",
    ),
    (
        "wrong SID prefix",
        |s| s.twilio.account_sid = format!("PN{}", "0".repeat(32)),
        "spec.twilio.accountSid",
        "'AC' followed by 32 hex digits",
    ),
    (
        "auth token without source",
        |s| s.twilio.auth_token = SecretRef::default(),
        "spec.twilio.authToken",
        "exactly one of secretKeyRef, env, file",
    ),
    (
        "auth token with two sources",
        |s| s.twilio.auth_token.file = Some("/run/token".into()),
        "spec.twilio.authToken",
        "exactly one of secretKeyRef, env, file",
    ),
    (
        "api key without source",
        |s| s.openai.api_key = SecretRef::default(),
        "spec.openai.apiKey",
        "exactly one of secretKeyRef, env, file",
    ),
    (
        "bad secret name",
        |s| s.openai.api_key = selector("OpenAI", "key"),
        "spec.openai.apiKey.secretKeyRef.name",
        "valid Secret name",
    ),
    (
        "secret name with empty label",
        |s| s.openai.api_key = selector("a..b", "key"),
        "spec.openai.apiKey.secretKeyRef.name",
        "valid Secret name",
    ),
    (
        "bad secret key",
        |s| s.openai.api_key = selector("openai", "api/key"),
        "spec.openai.apiKey.secretKeyRef.key",
        "valid Secret key",
    ),
    (
        "empty secret key",
        |s| s.openai.api_key = selector("openai", ""),
        "spec.openai.apiKey.secretKeyRef.key",
        "valid Secret key",
    ),
    (
        "bad env name",
        |s| s.openai.api_key = SecretRef::env("1KEY"),
        "spec.openai.apiKey.env",
        "environment variable name",
    ),
    (
        "blank file",
        |s| {
            s.openai.api_key = SecretRef {
                file: Some(" ".into()),
                ..SecretRef::default()
            }
        },
        "spec.openai.apiKey.file",
        "must not be empty",
    ),
    (
        "secrets manager reference and env at once",
        |s| {
            s.openai.api_key.aws_secrets_manager = Some(switchboard_crds::AwsSecretsManagerRef {
                secret_id: "tenants/demo".into(),
                ..Default::default()
            })
        },
        "spec.openai.apiKey",
        "exactly one of secretKeyRef, env, file, awsSecretsManager",
    ),
    (
        "blank secrets manager id",
        |s| {
            s.openai.api_key = SecretRef {
                aws_secrets_manager: Some(switchboard_crds::AwsSecretsManagerRef {
                    secret_id: " ".into(),
                    key: Some("openai".into()),
                    version_stage: None,
                }),
                ..SecretRef::default()
            }
        },
        "spec.openai.apiKey.awsSecretsManager.secretId",
        "must not be empty",
    ),
    (
        "blank KMS key",
        |s| {
            s.encryption = Some(switchboard_crds::EncryptionSpec {
                kms_key_id: "".into(),
            })
        },
        "spec.encryption.kmsKeyId",
        "must not be empty",
    ),
    (
        "http realtime URL",
        |s| s.openai.realtime_url = Some("https://api.openai.com/v1/realtime".into()),
        "spec.openai.realtimeUrl",
        "ws:// or wss:// URL",
    ),
    (
        "realtime URL without host",
        |s| s.openai.realtime_url = Some("wss://".into()),
        "spec.openai.realtimeUrl",
        "ws:// or wss:// URL",
    ),
    (
        "negative replicas",
        |s| gateway(s).replicas = Some(-1),
        "spec.gateway.replicas",
        "must not be negative",
    ),
    (
        "replicas with autoscaling",
        |s| {
            autoscaling(s);
            gateway(s).replicas = Some(2)
        },
        "spec.gateway.replicas",
        "not be set together with autoscaling",
    ),
    (
        "autoscaling from zero",
        |s| autoscaling(s).min_replicas = 0,
        "spec.gateway.autoscaling.minReplicas",
        "at least 1",
    ),
    (
        "autoscaling max below min",
        |s| autoscaling(s).max_replicas = 0,
        "spec.gateway.autoscaling.maxReplicas",
        "at least minReplicas",
    ),
    (
        "cpu target 0",
        |s| autoscaling(s).target_cpu_utilization = Some(0),
        "spec.gateway.autoscaling.targetCpuUtilization",
        "between 1 and 100",
    ),
    (
        "cpu target 101",
        |s| autoscaling(s).target_cpu_utilization = Some(101),
        "spec.gateway.autoscaling.targetCpuUtilization",
        "between 1 and 100",
    ),
    (
        "zero calls per pod",
        |s| gateway(s).max_calls_per_pod = Some(0),
        "spec.gateway.maxCallsPerPod",
        "at least 1",
    ),
    (
        "blank image",
        |s| gateway(s).image = Some(String::new()),
        "spec.gateway.image",
        "must not be empty",
    ),
    (
        "database URL with two sources",
        |s| {
            s.database = Some(DatabaseSpec {
                url: Some(SecretRef {
                    file: Some("/db".into()),
                    ..SecretRef::env("DATABASE_URL")
                }),
            })
        },
        "spec.database.url",
        "exactly one of secretKeyRef, env, file",
    ),
    (
        "upper-case bucket",
        |s| {
            s.recordings = Some(RecordingSpec {
                enabled: true,
                bucket: Some("Calls".into()),
                ..RecordingSpec::default()
            })
        },
        "spec.recordings.bucket",
        "S3 bucket name",
    ),
    (
        "short bucket",
        |s| {
            s.recordings = Some(RecordingSpec {
                enabled: true,
                bucket: Some("ab".into()),
                ..RecordingSpec::default()
            })
        },
        "spec.recordings.bucket",
        "S3 bucket name",
    ),
    (
        "blank disclosure",
        |s| {
            s.recordings = Some(RecordingSpec {
                enabled: true,
                disclosure: Some("  ".into()),
                ..RecordingSpec::default()
            })
        },
        "spec.recordings.disclosure",
        "must not be empty",
    ),
    (
        "blank KMS key",
        |s| {
            s.recordings = Some(RecordingSpec {
                enabled: true,
                kms_key_id: Some(String::new()),
                ..RecordingSpec::default()
            })
        },
        "spec.recordings.kmsKeyId",
        "must not be empty",
    ),
];

/// Edge values every rule must accept.
const ACCEPTED: &[(&str, Mutation)] = &[
    ("200 multi-byte characters", |s| {
        s.display_name = "é".repeat(200)
    }),
    ("shortest and longest numbers", |s| {
        s.phone_numbers = vec!["+12".into(), "+123456789012345".into()]
    }),
    ("shortest call", |s| {
        s.agent.max_call_duration_seconds = 10;
        s.agent.silence_timeout_seconds = 10
    }),
    ("longest call", |s| s.agent.max_call_duration_seconds = 3600),
    ("no silence timeout", |s| {
        s.agent.silence_timeout_seconds = 0
    }),
    ("threshold bounds", |s| {
        s.agent.turn_detection.threshold = Some(0.0)
    }),
    ("threshold upper bound", |s| {
        s.agent.turn_detection.threshold = Some(1.0)
    }),
    ("silence duration bounds", |s| {
        s.agent.turn_detection.silence_duration_ms = Some(100)
    }),
    ("silence duration upper bound", |s| {
        s.agent.turn_detection.silence_duration_ms = Some(10_000)
    }),
    ("prefix padding bounds", |s| {
        s.agent.turn_detection.prefix_padding_ms = Some(5_000)
    }),
    ("server_vad with idle timeout", |s| {
        s.agent.turn_detection.idle_timeout_ms = Some(8_000)
    }),
    ("semantic_vad with eagerness", |s| {
        semantic(s).eagerness = Some(Eagerness::Low)
    }),
    ("semantic_vad bare", |s| {
        semantic(s);
    }),
    ("transcription off", |s| s.agent.transcription = None),
    ("transcription language", |s| {
        s.agent.transcription = Some(TranscriptionSpec {
            language: Some("en".into()),
            ..TranscriptionSpec::default()
        })
    }),
    ("knowledge bases", |s| {
        s.agent.knowledge_bases = vec!["faq".into(), "prices.v2".into()]
    }),
    ("greeting", |s| {
        s.agent.greeting = Some(GreetingSpec {
            text: "Hello!".into(),
            interruptible: true,
        })
    }),
    ("secretKeyRef", |s| {
        s.openai.api_key = selector("openai-key.prod", "api_key.txt")
    }),
    ("file", |s| {
        s.openai.api_key = SecretRef {
            file: Some("/run/secrets/openai".into()),
            ..SecretRef::default()
        }
    }),
    ("underscore env", |s| {
        s.openai.api_key = SecretRef::env("_KEY_2")
    }),
    ("ws URL", |s| {
        s.openai.realtime_url = Some("ws://127.0.0.1:9000/v1/realtime".into())
    }),
    ("zero replicas", |s| gateway(s).replicas = Some(0)),
    ("autoscaling of one", |s| {
        let a = autoscaling(s);
        a.max_replicas = 1;
        a.target_cpu_utilization = Some(100)
    }),
    ("calls per pod", |s| gateway(s).max_calls_per_pod = Some(1)),
    ("database", |s| {
        s.database = Some(DatabaseSpec {
            url: Some(selector("pg", "url")),
        })
    }),
    ("analysis with every part", |s| {
        let a = analysis(s);
        a.base_url = Some("http://127.0.0.1:9000/v1".into());
        a.api_key = Some(SecretRef::env("ANALYSIS_KEY"));
        a.success_rubric = Some("The caller booked an appointment.".into());
        a.fields = vec![
            field("intent", FieldType::Enum, &["booking", "question"]),
            field("partySize", FieldType::Number, &[]),
            field("callback_wanted", FieldType::Boolean, &[]),
            field("name", FieldType::String, &[]),
        ];
        a.min_turns = 0;
    }),
    ("database without URL", |s| {
        s.database = Some(DatabaseSpec { url: None })
    }),
    ("bucket", |s| {
        s.recordings = Some(RecordingSpec {
            enabled: true,
            bucket: Some("acme.calls-1".into()),
            prefix: Some("x/".into()),
            retention_days: 30,
            kms_key_id: Some("alias/acme-calls".into()),
            disclosure: Some("This call may be recorded.".into()),
        })
    }),
];

#[test]
fn base_is_valid() {
    assert_eq!(base().validate(), Ok(()));
}

#[test]
fn every_rule_is_enforced_and_names_its_field() {
    for (what, mutate, field, words) in BROKEN {
        let mut spec = base();
        mutate(&mut spec);
        let errors = match spec.validate() {
            Ok(()) => panic!("{what}: accepted"),
            Err(e) => e.0,
        };
        assert_eq!(errors.len(), 1, "{what}: {errors:?}");
        assert_eq!(errors[0].field, *field, "{what}");
        assert!(
            errors[0].rule.contains(words),
            "{what}: {:?}",
            errors[0].rule
        );
        let shown = errors[0].to_string();
        assert!(shown.starts_with(&format!("{field}: ")), "{what}: {shown}");
    }
}

#[test]
fn edge_values_are_accepted() {
    for (what, mutate) in ACCEPTED {
        let mut spec = base();
        mutate(&mut spec);
        assert_eq!(spec.validate(), Ok(()), "{what}");
    }
}

#[test]
fn all_broken_rules_are_reported_at_once() {
    let mut spec = base();
    spec.display_name.clear();
    spec.phone_numbers = vec!["0".into()];
    spec.twilio.account_sid.clear();
    let err = spec.validate().unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.displayName",
            "spec.phoneNumbers[0]",
            "spec.twilio.accountSid"
        ]
    );
    assert_eq!(err.to_string().matches("; ").count(), 2, "{err}");
}

#[test]
fn tenant_name_is_checked() {
    let spec = base();
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (Some("demo"), None),
        (Some("acme.dental-2"), None),
        (None, Some("must be set")),
        (Some(""), Some("must be set")),
        (Some("Demo"), Some("lowercase DNS subdomain")),
        (Some("-demo"), Some("lowercase DNS subdomain")),
    ];
    for (name, expected) in cases {
        let mut t = VoiceTenant::new("x", spec.clone());
        t.metadata.name = name.map(str::to_string);
        match (t.validate(), expected) {
            (Ok(()), None) => {}
            (Err(e), Some(words)) => {
                assert_eq!(e.0.len(), 1, "{name:?}: {e}");
                assert_eq!(e.0[0].field, "metadata.name");
                assert!(e.0[0].rule.contains(words), "{name:?}: {e}");
            }
            (got, _) => panic!("{name:?}: unexpected {got:?}"),
        }
    }
}

#[test]
fn tenant_validation_includes_the_spec() {
    let mut spec = base();
    spec.phone_numbers.clear();
    let err = VoiceTenant::new("demo", spec).validate().unwrap_err();
    assert_eq!(err.0[0].field, "spec.phoneNumbers");
}

/// Rules JSON cannot express to an API server: NaN has no JSON form.
const NOT_IN_SCHEMA: &[&str] = &["threshold NaN"];

fn as_object(spec: VoiceTenantSpec) -> serde_json::Value {
    serde_json::to_value(VoiceTenant::new("t", spec)).unwrap()
}

#[test]
fn schema_refuses_what_validate_refuses() {
    let schema = support::tenant_schema();
    assert_eq!(
        support::refusals(&schema, &as_object(base())),
        Vec::<String>::new()
    );
    for (what, mutate, field, _) in BROKEN {
        if NOT_IN_SCHEMA.contains(what) {
            continue;
        }
        let mut spec = base();
        mutate(&mut spec);
        let refusals = support::refusals(&schema, &as_object(spec));
        assert!(!refusals.is_empty(), "{what}: the CRD schema accepts it");
        // The API server may report the enclosing object (CEL) or the list (sets).
        let related = refusals.iter().any(|r| {
            let path = r.split(": ").next().unwrap_or_default();
            let path = path.trim_start_matches('.');
            field.starts_with(path) || path.starts_with(field)
        });
        assert!(related, "{what}: refused for another field: {refusals:?}");
    }
}

#[test]
fn schema_accepts_what_validate_accepts() {
    let schema = support::tenant_schema();
    for (what, mutate) in ACCEPTED {
        let mut spec = base();
        mutate(&mut spec);
        let refusals = support::refusals(&schema, &as_object(spec));
        assert!(refusals.is_empty(), "{what}: {refusals:?}");
    }
}

/// The recording prefix becomes part of file paths on a laptop: `..` segments and odd
/// characters are refused by the Rust rules (the gateway and the operator's validate
/// step; the CRD schema does not carry this rule yet).
#[test]
fn recording_prefixes_cannot_climb_out_of_the_recordings_directory() {
    for (prefix, ok) in [
        ("calls", true),
        ("/calls/2026/", true),
        ("a.b_c-d/e", true),
        ("", true),
        ("../../etc", false),
        ("calls/../../x", false),
        ("calls/./x", false),
        ("calls//x", false),
        ("calls x", false),
        ("calls\\..\\x", false),
    ] {
        let mut spec = base();
        spec.recordings = Some(RecordingSpec {
            enabled: true,
            prefix: Some(prefix.into()),
            ..RecordingSpec::default()
        });
        let result = spec.validate();
        assert_eq!(result.is_ok(), ok, "{prefix:?}: {result:?}");
        if let Err(e) = result {
            assert!(
                e.0.iter().any(|f| f.field == "spec.recordings.prefix"),
                "{prefix:?}: {e:?}"
            );
        }
    }
}

#[test]
fn a_gateway_role_must_be_an_iam_role_arn() {
    let mut s = base();
    s.aws = Some(switchboard_crds::AwsSpec {
        role_arn: Some("arn:aws:iam::123456789012:role/switchboard-acme".into()),
    });
    assert!(s.validate().is_ok());
    s.aws = Some(switchboard_crds::AwsSpec {
        role_arn: Some("arn:aws:iam::123456789012:user/someone".into()),
    });
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("spec.aws.roleArn"), "{err}");
}
