//! Validation of a `VoiceTenant`: every rule in one place, every error names its field.

use std::fmt;

use crate::secret::SecretRef;
use crate::tenant::{TurnDetectionKind, VoiceTenantSpec};

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

/// Upper bound for `maxCallDurationSeconds`: one Realtime session lasts at most 60 minutes.
pub const MAX_CALL_DURATION_LIMIT: u32 = 3600;

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

    fn secret(&mut self, field: &str, r: &SecretRef) {
        self.check(
            r.sources_set() == 1,
            field,
            "must set exactly one of secretKeyRef, env, file",
        );
        if let Some(s) = &r.secret_key_ref {
            self.check(
                is_dns_subdomain(&s.name),
                format!("{field}.secretKeyRef.name"),
                "must be a valid Secret name (lowercase DNS subdomain)",
            );
            self.check(
                !s.key.is_empty(),
                format!("{field}.secretKeyRef.key"),
                "must not be empty",
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
            self.check(!f.trim().is_empty(), format!("{field}.file"), "must not be empty");
        }
    }
}

/// Whether `s` is an E.164 number: `+`, a non-zero digit, then 1–14 digits.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `s` is a Twilio account SID: `AC` and 32 hex digits.
pub fn is_account_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("AC") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

impl VoiceTenantSpec {
    /// Checks every rule; returns all broken ones at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Collector(Vec::new());
        c.check(
            !self.display_name.trim().is_empty(),
            "spec.displayName",
            "must not be empty",
        );
        c.check(
            self.display_name.len() <= 200,
            "spec.displayName",
            "must be at most 200 characters",
        );
        c.check(
            !self.phone_numbers.is_empty(),
            "spec.phoneNumbers",
            "must list at least one number",
        );
        for (i, n) in self.phone_numbers.iter().enumerate() {
            c.check(
                is_e164(n),
                format!("spec.phoneNumbers[{i}]"),
                format!("must be E.164 ('+' then 2 to 15 digits, e.g. +15005550006), got {n:?}"),
            );
            c.check(
                !self.phone_numbers[..i].contains(n),
                format!("spec.phoneNumbers[{i}]"),
                format!("must not repeat {n}"),
            );
        }

        let a = &self.agent;
        c.check(!a.model.trim().is_empty(), "spec.agent.model", "must not be empty");
        c.check(!a.voice.trim().is_empty(), "spec.agent.voice", "must not be empty");
        if let Some(g) = &a.greeting {
            c.check(
                !g.text.trim().is_empty(),
                "spec.agent.greeting.text",
                "must not be empty (omit greeting for none)",
            );
        }
        c.check(
            (10..=MAX_CALL_DURATION_LIMIT).contains(&a.max_call_duration_seconds),
            "spec.agent.maxCallDurationSeconds",
            format!("must be between 10 and {MAX_CALL_DURATION_LIMIT}"),
        );
        c.check(
            a.silence_timeout_seconds <= a.max_call_duration_seconds,
            "spec.agent.silenceTimeoutSeconds",
            "must not exceed maxCallDurationSeconds",
        );
        let td = &a.turn_detection;
        if let Some(t) = td.threshold {
            c.check(
                (0.0..=1.0).contains(&t),
                "spec.agent.turnDetection.threshold",
                "must be between 0.0 and 1.0",
            );
        }
        if let Some(ms) = td.silence_duration_ms {
            c.check(
                (100..=10_000).contains(&ms),
                "spec.agent.turnDetection.silenceDurationMs",
                "must be between 100 and 10000",
            );
        }
        if let Some(ms) = td.prefix_padding_ms {
            c.check(
                ms <= 5_000,
                "spec.agent.turnDetection.prefixPaddingMs",
                "must be at most 5000",
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
        if let Some(t) = &a.transcription {
            c.check(
                !t.model.trim().is_empty(),
                "spec.agent.transcription.model",
                "must not be empty (omit transcription to turn it off)",
            );
        }

        c.check(
            is_account_sid(&self.twilio.account_sid),
            "spec.twilio.accountSid",
            "must be 'AC' followed by 32 hex digits",
        );
        c.secret("spec.twilio.authToken", &self.twilio.auth_token);
        c.secret("spec.openai.apiKey", &self.openai.api_key);
        if let Some(u) = &self.openai.realtime_url {
            c.check(
                u.starts_with("wss://") || u.starts_with("ws://"),
                "spec.openai.realtimeUrl",
                "must be a ws:// or wss:// URL",
            );
        }
        if let Some(g) = &self.gateway {
            if let Some(r) = g.replicas {
                c.check(r >= 0, "spec.gateway.replicas", "must not be negative");
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
            }
            if let Some(m) = g.max_calls_per_pod {
                c.check(m >= 1, "spec.gateway.maxCallsPerPod", "must be at least 1");
            }
        }
        if let Some(d) = &self.database
            && let Some(u) = &d.url
        {
            c.secret("spec.database.url", u);
        }
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(c.0))
        }
    }
}
