//! Validation of `VoiceTenant` and `KnowledgeBase`: every rule in one place, every error
//! names its field.
//!
//! This is the source of truth. The CRD schema repeats the rules an API server can check
//! (patterns, bounds, CEL for the cross-field ones) so `kubectl apply` refuses a bad
//! manifest early, but the gateway and the operator always run these.

mod knowledge;

use std::fmt;

// Re-exported: the number and SID checks are also what callers reach for here.
pub use crate::format::{is_account_sid, is_e164};

use crate::format::{
    RECORDING_PREFIX_MAX, is_dns_subdomain, is_env_name, is_language, is_not_blank,
    is_recording_prefix, is_s3_bucket, is_secret_key, is_sip_uri, is_transfer_name, is_ws_url,
};
use crate::secret::SecretRef;
use crate::tenant::{
    ANALYSIS_FIELDS_MAX, AgentSpec, ENUM_CHOICES_MAX, FIELD_DESCRIPTION_MAX, FallbackAction,
    FallbackSpec, GatewaySpec, RECORDING_DISCLOSURE_MAX, RUBRIC_MAX, RecordingSpec, TransferTarget,
    TurnDetectionKind, TurnDetectionSpec, VoiceTenant, VoiceTenantSpec,
};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the offending field, e.g. `spec.phoneNumbers[1]`.
    pub field: String,
    /// The rule, phrased so that "FIELD RULE" reads as a sentence.
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// All rules a manifest breaks (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join("; "))
    }
}

// The bounds live in `limits` (the types publish them in their schemas, the rules here
// check them); re-exported so callers find every rule's number here too.
pub use crate::limits::*;

/// Collects broken rules instead of stopping at the first, so one run reports them all.
struct Collector(Vec<FieldError>);

impl Collector {
    fn check(&mut self, ok: bool, field: impl Into<String>, rule: impl Into<String>) {
        if !ok {
            self.0.push(FieldError {
                field: field.into(),
                rule: rule.into(),
            });
        }
    }

    fn not_blank(&mut self, value: &str, field: &str, rule: &str) {
        self.check(is_not_blank(value), field, rule);
    }

    fn secret(&mut self, field: &str, r: &SecretRef) {
        self.check(
            r.sources_set() == 1,
            field,
            "must set exactly one of secretKeyRef, env, file, awsSecretsManager",
        );
        if let Some(a) = &r.aws_secrets_manager {
            self.not_blank(
                &a.secret_id,
                &format!("{field}.awsSecretsManager.secretId"),
                "must not be empty",
            );
            self.check(
                a.secret_id.len() <= crate::secret::SECRET_ID_MAX as usize,
                format!("{field}.awsSecretsManager.secretId"),
                "must be at most 2048 characters",
            );
            for (name, v) in [("key", &a.key), ("versionStage", &a.version_stage)] {
                if let Some(v) = v {
                    self.not_blank(
                        v,
                        &format!("{field}.awsSecretsManager.{name}"),
                        "must not be empty",
                    );
                }
            }
        }
        if let Some(s) = &r.secret_key_ref {
            self.check(
                is_dns_subdomain(&s.name),
                format!("{field}.secretKeyRef.name"),
                "must be a valid Secret name (lowercase DNS subdomain, at most 253 characters)",
            );
            self.check(
                is_secret_key(&s.key),
                format!("{field}.secretKeyRef.key"),
                "must be a valid Secret key (letters, digits, '-', '_', '.'; at most 253 characters)",
            );
        }
        if let Some(e) = &r.env {
            self.check(
                is_env_name(e),
                format!("{field}.env"),
                "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
            );
        }
        if let Some(f) = &r.file {
            self.not_blank(f, &format!("{field}.file"), "must not be empty");
        }
    }

    fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

impl VoiceTenant {
    /// Checks `metadata.name` (the tenant's identity, also on a laptop) and every rule of
    /// the spec; returns all broken ones at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Collector(Vec::new());
        name_rules(&mut c, self.metadata.name.as_deref());
        spec_rules(&mut c, &self.spec);
        c.finish()
    }
}

/// `metadata.name` is required even on a laptop: it names the resource in records,
/// metrics and indexes.
fn name_rules(c: &mut Collector, name: Option<&str>) {
    match name {
        None | Some("") => c.check(false, "metadata.name", "must be set"),
        Some(name) => c.check(
            is_dns_subdomain(name),
            "metadata.name",
            "must be a lowercase DNS subdomain (a-z, 0-9, '-', '.'; at most 253 characters)",
        ),
    }
}

impl VoiceTenantSpec {
    /// Checks every rule; returns all broken ones at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Collector(Vec::new());
        spec_rules(&mut c, self);
        c.finish()
    }
}

fn spec_rules(c: &mut Collector, spec: &VoiceTenantSpec) {
    c.not_blank(&spec.display_name, "spec.displayName", "must not be empty");
    c.check(
        spec.display_name.chars().count() <= DISPLAY_NAME_MAX as usize,
        "spec.displayName",
        format!("must be at most {DISPLAY_NAME_MAX} characters"),
    );
    c.check(
        !spec.phone_numbers.is_empty(),
        "spec.phoneNumbers",
        "must list at least one number",
    );
    for (i, n) in spec.phone_numbers.iter().enumerate() {
        c.check(
            is_e164(n),
            format!("spec.phoneNumbers[{i}]"),
            format!("must be E.164 ('+' then 2 to 15 digits, e.g. +15005550006), got {n:?}"),
        );
        c.check(
            !spec.phone_numbers[..i].contains(n),
            format!("spec.phoneNumbers[{i}]"),
            format!("must not repeat {n}"),
        );
    }
    agent_rules(c, &spec.agent);
    c.check(
        is_account_sid(&spec.twilio.account_sid),
        "spec.twilio.accountSid",
        "must be 'AC' followed by 32 hex digits",
    );
    c.secret("spec.twilio.authToken", &spec.twilio.auth_token);
    if let Some(r) = &spec.twilio.secondary_auth_token {
        c.secret("spec.twilio.secondaryAuthToken", r);
    }
    if let Some(k) = &spec.twilio.api_key {
        c.check(
            crate::format::is_api_key_sid(&k.sid),
            "spec.twilio.apiKey.sid",
            "must be 'SK' followed by 32 hex digits",
        );
        c.secret("spec.twilio.apiKey.secret", &k.secret);
    }
    c.secret("spec.openai.apiKey", &spec.openai.api_key);
    if let Some(u) = &spec.openai.realtime_url {
        c.check(
            is_ws_url(u),
            "spec.openai.realtimeUrl",
            "must be a ws:// or wss:// URL",
        );
    }
    if let Some(g) = &spec.gateway {
        gateway_rules(c, g);
    }
    if let Some(u) = spec.database.as_ref().and_then(|d| d.url.as_ref()) {
        c.secret("spec.database.url", u);
    }
    if let Some(console) = &spec.console {
        for (i, k) in console.api_keys.iter().enumerate() {
            let field = format!("spec.console.apiKeys[{i}]");
            c.check(
                crate::tenant::is_key_name(&k.name),
                format!("{field}.name"),
                "must be a DNS label (lower-case letters, digits and '-', at most 63)",
            );
            c.check(
                !console.api_keys[..i].iter().any(|o| o.name == k.name),
                format!("{field}.name"),
                format!("must not repeat {:?}", k.name),
            );
            c.secret(&format!("{field}.secret"), &k.secret);
        }
    }
    if let Some(p) = &spec.pricing {
        for (name, v) in p.fields() {
            if let Some(v) = v {
                c.check(
                    v.is_finite() && v >= 0.0,
                    format!("spec.pricing.{name}"),
                    "must be a price of zero or more (US dollars)",
                );
            }
        }
    }
    if let Some(e) = &spec.encryption {
        c.not_blank(
            &e.kms_key_id,
            "spec.encryption.kmsKeyId",
            "must not be empty",
        );
    }
    if let Some(r) = &spec.recordings {
        recording_rules(c, r);
    }
    if let Some(arn) = spec.aws.as_ref().and_then(|a| a.role_arn.as_ref()) {
        c.check(
            crate::tenant::is_iam_role_arn(arn),
            "spec.aws.roleArn",
            "must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/[path/]name)",
        );
    }
    if let Some(a) = &spec.analysis {
        analysis_rules(c, a);
    }
}

fn analysis_rules(c: &mut Collector, a: &crate::tenant::AnalysisSpec) {
    use crate::tenant::{FieldType, RESERVED_FIELD_NAMES, is_field_name};
    c.not_blank(&a.model, "spec.analysis.model", "must not be empty");
    c.check(
        a.model.len() <= 200,
        "spec.analysis.model",
        "must be at most 200 characters",
    );
    if let Some(u) = &a.base_url {
        c.check(
            crate::format::is_http_url(u) && u.len() <= 2048,
            "spec.analysis.baseUrl",
            "must be an http:// or https:// URL (at most 2048 characters)",
        );
    }
    if let Some(k) = &a.api_key {
        c.secret("spec.analysis.apiKey", k);
    }
    if let Some(r) = &a.success_rubric {
        c.not_blank(r, "spec.analysis.successRubric", "must not be empty");
        c.check(
            r.chars().count() <= RUBRIC_MAX as usize,
            "spec.analysis.successRubric",
            format!("must be at most {RUBRIC_MAX} characters"),
        );
    }
    c.check(
        a.summary || a.sentiment || a.success_rubric.is_some() || !a.fields.is_empty(),
        "spec.analysis",
        "must ask for at least one of summary, sentiment, successRubric, fields",
    );
    c.check(
        a.min_turns <= 1000,
        "spec.analysis.minTurns",
        "must be at most 1000",
    );
    c.check(
        a.fields.len() <= ANALYSIS_FIELDS_MAX as usize,
        "spec.analysis.fields",
        format!("must list at most {ANALYSIS_FIELDS_MAX} fields"),
    );
    for (i, f) in a.fields.iter().enumerate() {
        let field = format!("spec.analysis.fields[{i}]");
        c.check(
            is_field_name(&f.name) && !RESERVED_FIELD_NAMES.contains(&f.name.as_str()),
            format!("{field}.name"),
            "must be a letter then letters, digits or '_' (at most 64), not summary, sentiment or success",
        );
        c.check(
            !a.fields[..i].iter().any(|o| o.name == f.name),
            format!("{field}.name"),
            format!("must not repeat {:?}", f.name),
        );
        c.not_blank(
            &f.description,
            &format!("{field}.description"),
            "must not be empty",
        );
        c.check(
            f.description.chars().count() <= FIELD_DESCRIPTION_MAX as usize,
            format!("{field}.description"),
            format!("must be at most {FIELD_DESCRIPTION_MAX} characters"),
        );
        if f.kind == FieldType::Enum {
            c.check(
                !f.choices.is_empty() && f.choices.len() <= ENUM_CHOICES_MAX as usize,
                format!("{field}.choices"),
                format!("must list 1 to {ENUM_CHOICES_MAX} choices for type enum"),
            );
            for (j, ch) in f.choices.iter().enumerate() {
                c.check(
                    is_not_blank(ch) && ch.len() <= 200 && !f.choices[..j].contains(ch),
                    format!("{field}.choices[{j}]"),
                    "must be non-empty, at most 200 characters and not repeat",
                );
            }
        } else {
            c.check(
                f.choices.is_empty(),
                format!("{field}.choices"),
                "is only allowed for type enum",
            );
        }
    }
}

fn recording_rules(c: &mut Collector, r: &RecordingSpec) {
    if let Some(p) = &r.prefix {
        c.check(
            is_recording_prefix(p) && p.len() <= RECORDING_PREFIX_MAX as usize,
            "spec.recordings.prefix",
            "must be '/'-separated segments of A-Z, a-z, 0-9, '.', '_', '-' (no '.' or '..' segments, at most 256 characters)",
        );
    }
    if let Some(b) = &r.bucket {
        c.check(
            is_s3_bucket(b),
            "spec.recordings.bucket",
            "must be an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-'; starting and ending with a letter or digit)",
        );
    }
    if let Some(k) = &r.kms_key_id {
        c.not_blank(
            k,
            "spec.recordings.kmsKeyId",
            "must not be empty (omit it for none)",
        );
    }
    if let Some(d) = &r.disclosure {
        c.not_blank(
            d,
            "spec.recordings.disclosure",
            "must not be empty (omit it for none)",
        );
        c.check(
            d.chars().count() <= RECORDING_DISCLOSURE_MAX as usize,
            "spec.recordings.disclosure",
            format!("must be at most {RECORDING_DISCLOSURE_MAX} characters"),
        );
    }
}

fn agent_rules(c: &mut Collector, a: &AgentSpec) {
    c.not_blank(&a.model, "spec.agent.model", "must not be empty");
    c.check(
        a.model.trim().is_empty() || crate::session_options::is_realtime_model(&a.model),
        "spec.agent.model",
        "must be a Realtime model: gpt-realtime, gpt-realtime-2, gpt-realtime-2.1, gpt-realtime-2.1-mini, gpt-realtime-mini, gpt-realtime-1.5 (or a dated snapshot, e.g. gpt-realtime-2025-08-28)",
    );
    if a.reasoning.is_some() {
        c.check(
            crate::session_options::is_reasoning_model(&a.model),
            "spec.agent.reasoning",
            "is only for reasoning models (gpt-realtime-2, gpt-realtime-2.1, gpt-realtime-2.1-mini)",
        );
    }
    let t = &a.truncation;
    if t.kind == crate::session_options::TruncationKind::RetentionRatio {
        c.check(
            t.retention_ratio.is_some_and(|r| r > 0.0 && r <= 1.0),
            "spec.agent.truncation.retentionRatio",
            "must be set, above 0 and at most 1, with type: retentionRatio",
        );
    } else {
        c.check(
            t.retention_ratio.is_none() && t.post_instructions_tokens.is_none(),
            "spec.agent.truncation",
            "retentionRatio and postInstructionsTokens need type: retentionRatio",
        );
    }
    if let Some(n) = t.post_instructions_tokens {
        c.check(
            (1..=128_000).contains(&n),
            "spec.agent.truncation.postInstructionsTokens",
            "must be between 1 and 128000",
        );
    }
    let e = &a.call_ending;
    c.check(
        e.idle_reprompts <= 10,
        "spec.agent.callEnding.idleReprompts",
        "must be at most 10",
    );
    c.check(
        (1..=120).contains(&e.grace_seconds),
        "spec.agent.callEnding.graceSeconds",
        "must be between 1 and 120",
    );
    c.not_blank(
        &e.goodbye,
        "spec.agent.callEnding.goodbye",
        "must not be empty",
    );
    c.not_blank(&a.voice, "spec.agent.voice", "must not be empty");
    if let Some(g) = &a.greeting {
        c.not_blank(
            &g.text,
            "spec.agent.greeting.text",
            "must not be empty (omit greeting for none)",
        );
    }
    c.check(
        (MAX_CALL_DURATION_MIN..=MAX_CALL_DURATION_LIMIT).contains(&a.max_call_duration_seconds),
        "spec.agent.maxCallDurationSeconds",
        format!("must be between {MAX_CALL_DURATION_MIN} and {MAX_CALL_DURATION_LIMIT}"),
    );
    c.check(
        a.silence_timeout_seconds <= a.max_call_duration_seconds,
        "spec.agent.silenceTimeoutSeconds",
        "must not exceed maxCallDurationSeconds",
    );
    turn_detection_rules(c, &a.turn_detection);
    if let Some(t) = &a.transcription {
        c.not_blank(
            &t.model,
            "spec.agent.transcription.model",
            "must not be empty (set transcription to null to turn it off)",
        );
        if let Some(l) = &t.language {
            c.check(
                is_language(l),
                "spec.agent.transcription.language",
                "must be an ISO-639-1 code (two lowercase letters, e.g. en)",
            );
        }
    }
    for (i, kb) in a.knowledge_bases.iter().enumerate() {
        let field = format!("spec.agent.knowledgeBases[{i}]");
        c.check(
            is_dns_subdomain(kb),
            &field,
            "must be a KnowledgeBase name (lowercase DNS subdomain)",
        );
        c.check(
            !a.knowledge_bases[..i].contains(kb),
            &field,
            format!("must not repeat {kb}"),
        );
    }
    c.check(
        a.transfer.len() <= TRANSFER_TARGETS_MAX as usize,
        "spec.agent.transfer",
        format!("must list at most {TRANSFER_TARGETS_MAX} targets"),
    );
    for (i, t) in a.transfer.iter().enumerate() {
        transfer_rules(c, &format!("spec.agent.transfer[{i}]"), t);
        c.check(
            !a.transfer[..i].iter().any(|o| o.name == t.name),
            format!("spec.agent.transfer[{i}].name"),
            format!("must not repeat {}", t.name),
        );
    }
    fallback_rules(c, &a.fallback);
}

/// Number xor SIP URI, each well formed; caller ID and ring timeout in range.
fn dial_rules(
    c: &mut Collector,
    field: &str,
    number: Option<&str>,
    sip: Option<&str>,
    caller_id: Option<&str>,
    ring_timeout: u32,
) {
    c.check(
        number.is_some() != sip.is_some(),
        field,
        "must set exactly one of number and sip",
    );
    if let Some(n) = number {
        c.check(
            is_e164(n),
            format!("{field}.number"),
            format!("must be E.164 ('+' then 2 to 15 digits), got {n:?}"),
        );
    }
    if let Some(s) = sip {
        c.check(
            is_sip_uri(s),
            format!("{field}.sip"),
            "must be a SIP URI (sip:user@host or sips:user@host)",
        );
    }
    if let Some(n) = caller_id {
        c.check(
            is_e164(n),
            format!("{field}.callerId"),
            format!("must be E.164 ('+' then 2 to 15 digits), got {n:?}"),
        );
    }
    c.check(
        (RING_TIMEOUT_MIN..=RING_TIMEOUT_MAX).contains(&ring_timeout),
        format!("{field}.ringTimeoutSeconds"),
        format!("must be between {RING_TIMEOUT_MIN} and {RING_TIMEOUT_MAX}"),
    );
}

fn transfer_rules(c: &mut Collector, field: &str, t: &TransferTarget) {
    c.check(
        is_transfer_name(&t.name),
        format!("{field}.name"),
        format!(
            "must be a lowercase letter then lowercase letters, digits, '-' or '_' (at most {TRANSFER_NAME_MAX})"
        ),
    );
    c.not_blank(
        &t.description,
        &format!("{field}.description"),
        "must not be empty (the model reads it to choose the target)",
    );
    c.check(
        t.description.chars().count() <= TRANSFER_DESCRIPTION_MAX as usize,
        format!("{field}.description"),
        format!("must be at most {TRANSFER_DESCRIPTION_MAX} characters"),
    );
    dial_rules(
        c,
        field,
        t.number.as_deref(),
        t.sip.as_deref(),
        t.caller_id.as_deref(),
        t.ring_timeout_seconds,
    );
}

fn fallback_rules(c: &mut Collector, f: &FallbackSpec) {
    const FIELD: &str = "spec.agent.fallback";
    c.not_blank(
        &f.apology,
        "spec.agent.fallback.apology",
        "must not be empty",
    );
    c.check(
        f.apology.chars().count() <= APOLOGY_MAX as usize,
        "spec.agent.fallback.apology",
        format!("must be at most {APOLOGY_MAX} characters"),
    );
    if f.action == FallbackAction::Dial {
        dial_rules(
            c,
            FIELD,
            f.number.as_deref(),
            f.sip.as_deref(),
            f.caller_id.as_deref(),
            f.ring_timeout_seconds,
        );
    } else {
        c.check(
            f.number.is_none() && f.sip.is_none() && f.caller_id.is_none(),
            FIELD,
            "number, sip and callerId are only allowed with action dial",
        );
    }
    match &f.voicemail_prompt {
        Some(p) if f.action == FallbackAction::Voicemail => {
            c.not_blank(
                p,
                "spec.agent.fallback.voicemailPrompt",
                "must not be empty",
            );
            c.check(
                p.chars().count() <= APOLOGY_MAX as usize,
                "spec.agent.fallback.voicemailPrompt",
                format!("must be at most {APOLOGY_MAX} characters"),
            );
        }
        Some(_) => c.check(
            false,
            "spec.agent.fallback.voicemailPrompt",
            "is only allowed with action voicemail",
        ),
        None => {}
    }
    c.check(
        (1..=RECORDING_MAX_SECONDS).contains(&f.max_recording_seconds),
        "spec.agent.fallback.maxRecordingSeconds",
        format!("must be between 1 and {RECORDING_MAX_SECONDS}"),
    );
}

fn turn_detection_rules(c: &mut Collector, td: &TurnDetectionSpec) {
    if let Some(t) = td.threshold {
        c.check(
            (0.0..=1.0).contains(&t),
            "spec.agent.turnDetection.threshold",
            "must be between 0.0 and 1.0",
        );
    }
    if let Some(ms) = td.silence_duration_ms {
        c.check(
            (SILENCE_DURATION_MIN_MS..=SILENCE_DURATION_MAX_MS).contains(&ms),
            "spec.agent.turnDetection.silenceDurationMs",
            format!("must be between {SILENCE_DURATION_MIN_MS} and {SILENCE_DURATION_MAX_MS}"),
        );
    }
    if let Some(ms) = td.prefix_padding_ms {
        c.check(
            ms <= PREFIX_PADDING_MAX_MS,
            "spec.agent.turnDetection.prefixPaddingMs",
            format!("must be at most {PREFIX_PADDING_MAX_MS}"),
        );
    }
    match td.kind {
        TurnDetectionKind::ServerVad => c.check(
            td.eagerness.is_none(),
            "spec.agent.turnDetection.eagerness",
            "is only allowed with type semantic_vad",
        ),
        TurnDetectionKind::SemanticVad => {
            for (set, name) in [
                (td.threshold.is_some(), "threshold"),
                (td.prefix_padding_ms.is_some(), "prefixPaddingMs"),
                (td.silence_duration_ms.is_some(), "silenceDurationMs"),
                (td.idle_timeout_ms.is_some(), "idleTimeoutMs"),
            ] {
                c.check(
                    !set,
                    format!("spec.agent.turnDetection.{name}"),
                    "is only allowed with type server_vad",
                );
            }
        }
    }
}

fn gateway_rules(c: &mut Collector, g: &GatewaySpec) {
    if let Some(r) = g.replicas {
        c.check(r >= 0, "spec.gateway.replicas", "must not be negative");
        c.check(
            g.autoscaling.is_none(),
            "spec.gateway.replicas",
            "must not be set together with autoscaling",
        );
    }
    if let Some(s) = &g.autoscaling {
        c.check(
            s.min_replicas >= 1,
            "spec.gateway.autoscaling.minReplicas",
            "must be at least 1",
        );
        c.check(
            s.max_replicas >= s.min_replicas,
            "spec.gateway.autoscaling.maxReplicas",
            "must be at least minReplicas",
        );
        if let Some(t) = s.target_cpu_utilization {
            c.check(
                (1..=100).contains(&t),
                "spec.gateway.autoscaling.targetCpuUtilization",
                "must be between 1 and 100",
            );
        }
    }
    if let Some(m) = g.max_calls_per_pod {
        c.check(m >= 1, "spec.gateway.maxCallsPerPod", "must be at least 1");
    }
    if let Some(i) = &g.image {
        c.not_blank(i, "spec.gateway.image", "must not be empty");
    }
}
