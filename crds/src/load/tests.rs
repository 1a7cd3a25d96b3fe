use super::*;
use crate::tenant::{AgentSpec, DeletionPolicy, TranscriptionSpec, TurnDetectionKind};

const MINIMAL: &str = "\
apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata:
  name: minimal
spec:
  displayName: Minimal
  phoneNumbers: [\"+15005550006\"]
  twilio:
    accountSid: AC0123456789abcdef0123456789abcdef
    authToken: {env: TWILIO_AUTH_TOKEN}
  openai:
    apiKey: {env: OPENAI_API_KEY}
";

/// MINIMAL with `extra` inserted as the first lines under `spec:` (each line indented by
/// two spaces already).
fn with_spec(extra: &str) -> String {
    MINIMAL.replace("spec:\n", &format!("spec:\n{extra}"))
}

#[test]
fn defaults_are_filled_from_a_minimal_manifest() {
    let t = parse_tenant(MINIMAL).unwrap();
    assert_eq!(t.metadata.name.as_deref(), Some("minimal"));
    let s = &t.spec;
    assert_eq!(s.agent, AgentSpec::default());
    assert_eq!(s.agent.model, "gpt-realtime");
    assert_eq!(s.agent.voice, "marin");
    assert_eq!(s.agent.max_call_duration_seconds, 1800);
    assert_eq!(s.agent.silence_timeout_seconds, 60);
    assert_eq!(s.agent.turn_detection.kind, TurnDetectionKind::ServerVad);
    assert_eq!(s.agent.turn_detection.threshold, Some(0.5));
    assert_eq!(s.agent.turn_detection.prefix_padding_ms, Some(300));
    assert_eq!(s.agent.turn_detection.silence_duration_ms, Some(500));
    assert_eq!(s.agent.transcription, Some(TranscriptionSpec::default()));
    assert!(s.agent.greeting.is_none());
    assert!(s.twilio.validate_signatures);
    assert_eq!(s.deletion_policy, DeletionPolicy::Retain);
    assert!(s.gateway.is_none() && s.database.is_none() && s.recordings.is_none());
}

#[test]
fn partial_agent_keeps_defaults_for_the_rest() {
    let t = parse_tenant(&with_spec("  agent: {voice: cedar}\n")).unwrap();
    assert_eq!(t.spec.agent.voice, "cedar");
    assert_eq!(t.spec.agent.model, "gpt-realtime");
    assert_eq!(t.spec.agent.max_call_duration_seconds, 1800);
}

#[test]
fn null_transcription_turns_it_off_and_survives_a_round_trip() {
    let t = parse_tenant(&with_spec("  agent: {transcription: null}\n")).unwrap();
    assert_eq!(t.spec.agent.transcription, None);
    let again = parse_tenant(&serde_saphyr::to_string(&t).unwrap()).unwrap();
    assert_eq!(again.spec.agent.transcription, None);
    assert_eq!(again, t);
}

#[test]
fn type_errors_carry_line_and_column() {
    let text = with_spec("  agent:\n    maxCallDurationSeconds: lots\n");
    let err = parse_tenant(&text).unwrap_err();
    let LoadError::Parse { message: msg, .. } = &err else {
        panic!("expected a parse error, got {err:?}");
    };
    // The bad value sits on line 7 of the manifest.
    assert!(msg.contains("line 7"), "{msg}");
    assert!(msg.contains("column 29"), "{msg}");
    assert!(msg.contains("`maxCallDurationSeconds: lots`"), "{msg}");
}

#[test]
fn syntax_errors_carry_line() {
    let text = MINIMAL.replace("  displayName: Minimal\n", "  displayName: [Minimal\n");
    let err = parse_tenant(&text).unwrap_err();
    assert!(matches!(err, LoadError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn missing_required_field_is_a_parse_error_naming_it() {
    let text = MINIMAL.replace("  displayName: Minimal\n", "");
    let err = parse_tenant(&text).unwrap_err();
    assert!(matches!(err, LoadError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("displayName"), "{err}");
}

#[test]
fn a_misspelt_required_field_is_named_with_its_line_before_the_missing_one() {
    let text = MINIMAL.replace("  phoneNumbers:", "  phoneNumber:");
    let err = parse_tenant(&text).unwrap_err();
    assert!(matches!(err, LoadError::Parse { .. }), "{err:?}");
    let msg = err.to_string();
    let unknown = "spec.phoneNumber: is not a known field (line 7); did you mean `phoneNumbers`?";
    let (Some(first), Some(then)) = (msg.find(unknown), msg.find("missing field")) else {
        panic!("{msg}");
    };
    assert!(first < then, "the unknown key comes first: {msg}");
}

#[test]
fn duplicate_keys_are_refused() {
    let text = with_spec("  displayName: Other\n");
    let err = parse_tenant(&text).unwrap_err();
    assert!(matches!(err, LoadError::Parse { .. }), "{err:?}");
}

#[test]
fn wrong_kind_is_refused() {
    let text = MINIMAL.replace("kind: VoiceTenant", "kind: KnowledgeBase");
    match parse_tenant(&text).unwrap_err() {
        LoadError::WrongKind {
            expected_api, kind, ..
        } => {
            assert_eq!(expected_api, "voice.switchboard.dev/v1alpha1");
            assert_eq!(kind, "KnowledgeBase");
        }
        other => panic!("expected WrongKind, got {other:?}"),
    }
}

#[test]
fn wrong_api_version_is_refused() {
    let text = MINIMAL.replace("voice.switchboard.dev/v1alpha1", "v1");
    let err = parse_tenant(&text).unwrap_err();
    assert!(
        matches!(&err, LoadError::WrongKind { api_version, .. } if api_version == "v1"),
        "{err:?}"
    );
}

#[test]
fn text_that_is_not_a_mapping_is_refused() {
    assert!(matches!(
        parse_tenant("just words").unwrap_err(),
        LoadError::WrongKind { .. }
    ));
    assert!(parse_tenant("").is_err());
}

#[test]
fn unknown_fields_are_named() {
    let text = with_spec("  agent:\n    greeting: {text: Hi, interuptible: true}\n  colour: red\n");
    let err = parse_tenant(&text).unwrap_err();
    let LoadError::Invalid { name, errors, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(name, "minimal");
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.agent.greeting.interuptible", "spec.colour"]);
    assert!(err.to_string().contains("is not a known field"), "{err}");
    let rules: Vec<&str> = errors.0.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "is not a known field (line 7); did you mean `interruptible`?",
            "is not a known field (line 8); misspelt?"
        ]
    );
}

#[test]
fn unknown_fields_inside_lists_and_maps_are_named() {
    let text = with_spec(
        "  gateway:\n    resources:\n      limits: {memory: 1Gi}\n      claims: [{name: gpu, size: 2}]\n",
    );
    let err = parse_tenant(&text).unwrap_err();
    let LoadError::Invalid { errors, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.gateway.resources.claims[0].size"]);
}

#[test]
fn status_and_metadata_fields_are_accepted() {
    let text = MINIMAL.replace(
        "  name: minimal\n",
        "  name: minimal\n  labels: {team: voice}\n  annotations: {note: x}\n",
    ) + "status:\n  observedGeneration: 3\n";
    let t = parse_tenant(&text).unwrap();
    assert_eq!(t.status.and_then(|s| s.observed_generation), Some(3));
}

#[test]
fn missing_name_is_invalid() {
    let text = MINIMAL.replace("metadata:\n  name: minimal\n", "metadata: {}\n");
    let err = parse_tenant(&text).unwrap_err();
    assert!(
        err.to_string().contains("metadata.name: must be set"),
        "{err}"
    );
}

#[test]
fn invalid_message_names_field_and_rule() {
    let text = MINIMAL.replace("\"+15005550006\"", "\"555-0100\"");
    let err = parse_tenant(&text).unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("invalid VoiceTenant minimal: "), "{msg}");
    assert!(msg.contains("spec.phoneNumbers[0]: must be E.164"), "{msg}");
    assert!(msg.contains("\"555-0100\""), "{msg}");
}
