//! The effective session configuration and GA `session.update` validation and merging.

use super::codec::AudioFormat;
use super::protocol::ApiError;
use super::vad::VadParams;
use serde_json::{Map, Value, json};

/// Top-level fields of the beta session shape. GA refuses them by name.
const BETA_FIELDS: &[&str] = &[
    "modalities",
    "input_audio_format",
    "output_audio_format",
    "voice",
    "turn_detection",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "temperature",
    "max_response_output_tokens",
    "speed",
];

const SESSION_FIELDS: &[&str] = &[
    "type",
    "model",
    "output_modalities",
    "instructions",
    "audio",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "truncation",
    "tracing",
    "include",
    "prompt",
    "reasoning",
    "parallel_tool_calls",
];

const VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
];

/// Turn detection as configured.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnDetection {
    /// Energy VAD with explicit parameters.
    ServerVad {
        /// 0.0..=1.0.
        threshold: f64,
        /// Audio kept before the detected onset.
        prefix_padding_ms: u64,
        /// Silence that ends a turn.
        silence_duration_ms: u64,
        /// Respond automatically at the end of a turn.
        create_response: bool,
        /// Cancel the active response when speech starts.
        interrupt_response: bool,
        /// Prompt the caller after this much silence following a response.
        idle_timeout_ms: Option<u64>,
    },
    /// Model-judged turn ends; simulated as energy VAD whose silence depends on eagerness.
    SemanticVad {
        /// `low`, `medium`, `high` or `auto`.
        eagerness: String,
        /// Respond automatically at the end of a turn.
        create_response: bool,
        /// Cancel the active response when speech starts.
        interrupt_response: bool,
    },
}

impl TurnDetection {
    fn server_vad_default() -> Self {
        Self::ServerVad {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            create_response: true,
            interrupt_response: true,
            idle_timeout_ms: None,
        }
    }

    /// Detector parameters.
    pub fn vad_params(&self) -> VadParams {
        match self {
            Self::ServerVad {
                threshold,
                prefix_padding_ms,
                silence_duration_ms,
                ..
            } => VadParams::new(*threshold, *prefix_padding_ms, *silence_duration_ms),
            Self::SemanticVad { eagerness, .. } => {
                let silence = match eagerness.as_str() {
                    "high" => 300,
                    "low" => 1200,
                    _ => 600,
                };
                VadParams::new(0.5, 300, silence)
            }
        }
    }

    /// Whether a turn end creates a response.
    pub fn create_response(&self) -> bool {
        match self {
            Self::ServerVad {
                create_response, ..
            }
            | Self::SemanticVad {
                create_response, ..
            } => *create_response,
        }
    }

    /// Whether speech cancels the active response.
    pub fn interrupt_response(&self) -> bool {
        match self {
            Self::ServerVad {
                interrupt_response, ..
            }
            | Self::SemanticVad {
                interrupt_response, ..
            } => *interrupt_response,
        }
    }

    /// Idle timeout (server VAD only).
    pub fn idle_timeout_ms(&self) -> Option<u64> {
        match self {
            Self::ServerVad {
                idle_timeout_ms, ..
            } => *idle_timeout_ms,
            Self::SemanticVad { .. } => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::ServerVad {
                threshold,
                prefix_padding_ms,
                silence_duration_ms,
                create_response,
                interrupt_response,
                idle_timeout_ms,
            } => json!({
                "type": "server_vad",
                "threshold": threshold,
                "prefix_padding_ms": prefix_padding_ms,
                "silence_duration_ms": silence_duration_ms,
                "idle_timeout_ms": idle_timeout_ms,
                "create_response": create_response,
                "interrupt_response": interrupt_response,
            }),
            Self::SemanticVad {
                eagerness,
                create_response,
                interrupt_response,
            } => json!({
                "type": "semantic_vad",
                "eagerness": eagerness,
                "create_response": create_response,
                "interrupt_response": interrupt_response,
            }),
        }
    }
}

/// The effective configuration of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// `sess_…`.
    pub id: String,
    /// Model from the URL.
    pub model: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// `["audio"]` or `["text"]`.
    pub output_modalities: Vec<String>,
    /// System instructions.
    pub instructions: String,
    /// Input audio format.
    pub input_format: AudioFormat,
    /// `null` or `{type}`.
    pub noise_reduction: Value,
    /// `null` (off) or the transcription object.
    pub transcription: Value,
    /// `None` = manual turns.
    pub turn_detection: Option<TurnDetection>,
    /// Output audio format.
    pub output_format: AudioFormat,
    /// Voice name or `{id}`.
    pub voice: Value,
    /// Output speed multiplier.
    pub speed: f64,
    /// Tool definitions.
    pub tools: Vec<Value>,
    /// `auto`, `none`, `required` or a named tool.
    pub tool_choice: Value,
    /// Per-response cap or `"inf"`.
    pub max_output_tokens: Value,
    /// Context truncation strategy.
    pub truncation: Value,
    /// Tracing configuration.
    pub tracing: Value,
    /// Stored prompt reference.
    pub prompt: Value,
    /// Extra output fields.
    pub include: Value,
    /// Reasoning-model knobs, reported only once set.
    pub extra: Map<String, Value>,
}

impl SessionConfig {
    /// The defaults a new session reports in `session.created`.
    pub fn new(id: String, model: String, expires_at: u64) -> Self {
        Self {
            id,
            model,
            expires_at,
            output_modalities: vec!["audio".to_owned()],
            instructions: "You are a helpful, friendly voice assistant. Keep answers short."
                .to_owned(),
            input_format: AudioFormat::Pcm,
            noise_reduction: Value::Null,
            transcription: Value::Null,
            turn_detection: Some(TurnDetection::server_vad_default()),
            output_format: AudioFormat::Pcm,
            voice: json!("alloy"),
            speed: 1.0,
            tools: Vec::new(),
            tool_choice: json!("auto"),
            max_output_tokens: json!("inf"),
            truncation: json!("auto"),
            tracing: Value::Null,
            prompt: Value::Null,
            include: Value::Null,
            extra: Map::new(),
        }
    }

    /// Whether the session produces audio (as opposed to text-only output).
    pub fn audio_output(&self) -> bool {
        self.output_modalities.iter().any(|m| m == "audio")
    }

    /// The GA session object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "output_modalities": self.output_modalities,
            "instructions": self.instructions,
            "tools": self.tools,
            "tool_choice": self.tool_choice,
            "max_output_tokens": self.max_output_tokens,
            "tracing": self.tracing,
            "truncation": self.truncation,
            "prompt": self.prompt,
            "expires_at": self.expires_at,
            "audio": {
                "input": {
                    "format": self.input_format.to_json(),
                    "transcription": self.transcription,
                    "noise_reduction": self.noise_reduction,
                    "turn_detection": self.turn_detection.as_ref().map(TurnDetection::to_json),
                },
                "output": {
                    "format": self.output_format.to_json(),
                    "voice": self.voice,
                    "speed": self.speed,
                },
            },
            "include": self.include,
        });
        if let Some(obj) = v.as_object_mut() {
            for (k, val) in &self.extra {
                obj.insert(k.clone(), val.clone());
            }
        }
        v
    }

    /// Validates a `session.update` payload and returns the merged configuration. Nothing
    /// changes on error. `voice_locked` is true once the session has produced audio.
    pub fn updated(&self, session: &Value, voice_locked: bool) -> Result<Self, ApiError> {
        let obj = session
            .as_object()
            .ok_or_else(|| ApiError::invalid_type("session", "an object"))?;
        for key in obj.keys() {
            if BETA_FIELDS.contains(&key.as_str()) || !SESSION_FIELDS.contains(&key.as_str()) {
                return Err(ApiError::unknown_parameter(&format!("session.{key}")));
            }
        }
        match obj.get("type") {
            None | Some(Value::Null) => return Err(ApiError::missing("session.type")),
            Some(Value::String(t)) if t == "realtime" => {}
            Some(Value::String(t)) if t == "transcription" => {
                return Err(ApiError::invalid_value(
                    "session.type",
                    "Cannot change a realtime session into a transcription session.",
                ));
            }
            Some(other) => {
                return Err(ApiError::invalid_value(
                    "session.type",
                    format!(
                        "Invalid value: {other}. Supported values are: 'realtime' and 'transcription'."
                    ),
                ));
            }
        }
        let mut next = self.clone();
        for (key, val) in obj {
            let path = format!("session.{key}");
            match key.as_str() {
                "type" => {}
                "model" => {
                    let m = as_str(val, &path)?;
                    if m != self.model {
                        return Err(ApiError::invalid_value(
                            &path,
                            "The model of a session cannot be changed after it is created.",
                        ));
                    }
                }
                "output_modalities" => next.output_modalities = modalities(val, &path)?,
                "instructions" => next.instructions = as_str(val, &path)?.to_owned(),
                "audio" => next.merge_audio(val, voice_locked)?,
                "tools" => next.tools = tools(val, &path)?,
                "tool_choice" => next.tool_choice = tool_choice(val, &path)?,
                "max_output_tokens" => next.max_output_tokens = max_output_tokens(val, &path)?,
                "truncation" => next.truncation = truncation(val, &path)?,
                "tracing" => next.tracing = val.clone(),
                "prompt" => next.prompt = val.clone(),
                "include" => next.include = val.clone(),
                _ => {
                    next.extra.insert(key.clone(), val.clone());
                }
            }
        }
        Ok(next)
    }

    fn merge_audio(&mut self, audio: &Value, voice_locked: bool) -> Result<(), ApiError> {
        let audio = object(audio, "session.audio", &["input", "output"])?;
        if let Some(input) = audio.get("input") {
            let input = object(
                input,
                "session.audio.input",
                &[
                    "format",
                    "noise_reduction",
                    "transcription",
                    "turn_detection",
                ],
            )?;
            if let Some(f) = input.get("format") {
                self.input_format = format(f, "session.audio.input.format")?;
            }
            if let Some(nr) = input.get("noise_reduction") {
                self.noise_reduction = noise_reduction(nr)?;
            }
            if let Some(t) = input.get("transcription") {
                self.transcription = transcription(t)?;
            }
            if let Some(td) = input.get("turn_detection") {
                self.turn_detection = turn_detection(td)?;
            }
        }
        if let Some(output) = audio.get("output") {
            let output = object(
                output,
                "session.audio.output",
                &["format", "voice", "speed"],
            )?;
            if let Some(f) = output.get("format") {
                self.output_format = format(f, "session.audio.output.format")?;
            }
            if let Some(v) = output.get("voice") {
                let v = voice(v)?;
                if voice_locked && v != self.voice {
                    return Err(ApiError::invalid(
                        "cannot_update_voice",
                        "Cannot update a conversation's voice if assistant audio is present.",
                    )
                    .with_param("session.audio.output.voice"));
                }
                self.voice = v;
            }
            if let Some(s) = output.get("speed") {
                let path = "session.audio.output.speed";
                let s = s
                    .as_f64()
                    .ok_or_else(|| ApiError::invalid_type(path, "a number"))?;
                if !(0.25..=1.5).contains(&s) {
                    return Err(ApiError::invalid_value(
                        path,
                        format!("Invalid '{path}': {s}. Expected a value between 0.25 and 1.5."),
                    ));
                }
                self.speed = s;
            }
        }
        Ok(())
    }
}

fn as_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, ApiError> {
    v.as_str()
        .ok_or_else(|| ApiError::invalid_type(path, "a string"))
}

fn object<'a>(
    v: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid_type(path, "an object"))?;
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::unknown_parameter(&format!("{path}.{k}")));
    }
    Ok(obj)
}

/// Validates `output_modalities`: exactly one of `audio` or `text`.
pub fn modalities(v: &Value, path: &str) -> Result<Vec<String>, ApiError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ApiError::invalid_type(path, "an array"))?;
    match arr.as_slice() {
        [Value::String(m)] if m == "audio" || m == "text" => Ok(vec![m.clone()]),
        _ => Err(ApiError::invalid_value(
            path,
            format!("Invalid '{path}': {v}. Supported combinations are: ['text'] and ['audio']."),
        )),
    }
}

fn format(v: &Value, path: &str) -> Result<AudioFormat, ApiError> {
    object(v, path, &["type", "rate"])?;
    AudioFormat::from_json(v).ok_or_else(|| {
        ApiError::invalid_value(
            &format!("{path}.type"),
            format!(
                "Invalid '{path}': {v}. Supported formats are: audio/pcm (rate 24000), audio/pcmu, audio/pcma."
            ),
        )
    })
}

fn noise_reduction(v: &Value) -> Result<Value, ApiError> {
    let path = "session.audio.input.noise_reduction";
    if v.is_null() {
        return Ok(Value::Null);
    }
    let obj = object(v, path, &["type"])?;
    match obj.get("type").and_then(Value::as_str) {
        Some("near_field" | "far_field") => Ok(v.clone()),
        _ => Err(ApiError::invalid_value(
            &format!("{path}.type"),
            "Supported noise reduction types are: near_field, far_field.",
        )),
    }
}

fn transcription(v: &Value) -> Result<Value, ApiError> {
    let path = "session.audio.input.transcription";
    if v.is_null() {
        return Ok(Value::Null);
    }
    let obj = object(
        v,
        path,
        &[
            "model",
            "language",
            "prompt",
            "languages",
            "keywords",
            "delay",
        ],
    )?;
    if let Some(m) = obj.get("model") {
        as_str(m, &format!("{path}.model"))?;
    }
    Ok(v.clone())
}

fn turn_detection(v: &Value) -> Result<Option<TurnDetection>, ApiError> {
    let path = "session.audio.input.turn_detection";
    if v.is_null() {
        return Ok(None);
    }
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing(&format!("{path}.type")))?;
    let flag = |obj: &Map<String, Value>, k: &str| -> Result<bool, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(true),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::invalid_type(&format!("{path}.{k}"), "a boolean")),
        }
    };
    let ms = |obj: &Map<String, Value>, k: &str, default: u64| -> Result<u64, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x
                .as_u64()
                .ok_or_else(|| ApiError::invalid_type(&format!("{path}.{k}"), "an integer")),
        }
    };
    match kind {
        "server_vad" => {
            let obj = object(
                v,
                path,
                &[
                    "type",
                    "threshold",
                    "prefix_padding_ms",
                    "silence_duration_ms",
                    "create_response",
                    "interrupt_response",
                    "idle_timeout_ms",
                ],
            )?;
            let threshold = match obj.get("threshold") {
                None | Some(Value::Null) => 0.5,
                Some(t) => t.as_f64().ok_or_else(|| {
                    ApiError::invalid_type(&format!("{path}.threshold"), "a number")
                })?,
            };
            if !(0.0..=1.0).contains(&threshold) {
                return Err(ApiError::invalid_value(
                    &format!("{path}.threshold"),
                    "Expected a value between 0.0 and 1.0.",
                ));
            }
            let idle_timeout_ms = match obj.get("idle_timeout_ms") {
                None | Some(Value::Null) => None,
                Some(_) => Some(ms(obj, "idle_timeout_ms", 0)?),
            };
            Ok(Some(TurnDetection::ServerVad {
                threshold,
                prefix_padding_ms: ms(obj, "prefix_padding_ms", 300)?,
                silence_duration_ms: ms(obj, "silence_duration_ms", 500)?,
                create_response: flag(obj, "create_response")?,
                interrupt_response: flag(obj, "interrupt_response")?,
                idle_timeout_ms,
            }))
        }
        "semantic_vad" => {
            let obj = object(
                v,
                path,
                &["type", "eagerness", "create_response", "interrupt_response"],
            )?;
            let eagerness = match obj.get("eagerness") {
                None | Some(Value::Null) => "auto".to_owned(),
                Some(Value::String(e))
                    if ["low", "medium", "high", "auto"].contains(&e.as_str()) =>
                {
                    e.clone()
                }
                Some(_) => {
                    return Err(ApiError::invalid_value(
                        &format!("{path}.eagerness"),
                        "Supported values are: low, medium, high, auto.",
                    ));
                }
            };
            Ok(Some(TurnDetection::SemanticVad {
                eagerness,
                create_response: flag(obj, "create_response")?,
                interrupt_response: flag(obj, "interrupt_response")?,
            }))
        }
        other => Err(ApiError::invalid_value(
            &format!("{path}.type"),
            format!("Invalid turn detection type '{other}'. Supported: server_vad, semantic_vad."),
        )),
    }
}

/// Validates a voice: a known name or a custom `{"id": …}`.
pub fn voice(v: &Value) -> Result<Value, ApiError> {
    let path = "session.audio.output.voice";
    match v {
        Value::String(name) if VOICES.contains(&name.as_str()) => Ok(v.clone()),
        Value::Object(o) if o.len() == 1 && o.get("id").is_some_and(Value::is_string) => {
            Ok(v.clone())
        }
        _ => Err(ApiError::invalid_value(
            path,
            format!(
                "Invalid value: {v}. Supported values are: {}.",
                VOICES.join(", ")
            ),
        )),
    }
}

/// Validates a tool list.
pub fn tools(v: &Value, path: &str) -> Result<Vec<Value>, ApiError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ApiError::invalid_type(path, "an array"))?;
    for (i, t) in arr.iter().enumerate() {
        let tpath = format!("{path}[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                object(t, &tpath, &["type", "name", "description", "parameters"])?;
                match t.get("name") {
                    Some(Value::String(n)) if !n.is_empty() => {}
                    _ => return Err(ApiError::missing(&format!("{tpath}.name"))),
                }
            }
            Some("mcp") => {}
            _ => {
                return Err(ApiError::invalid_value(
                    &format!("{tpath}.type"),
                    "Supported tool types are: function, mcp.",
                ));
            }
        }
    }
    Ok(arr.clone())
}

/// Validates `tool_choice`.
pub fn tool_choice(v: &Value, path: &str) -> Result<Value, ApiError> {
    match v {
        Value::String(s) if ["auto", "none", "required"].contains(&s.as_str()) => Ok(v.clone()),
        Value::Object(o)
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("function" | "mcp")
            ) =>
        {
            Ok(v.clone())
        }
        _ => Err(ApiError::invalid_value(
            path,
            "Supported values are: 'auto', 'none', 'required', or a tool object.",
        )),
    }
}

/// Validates `max_output_tokens`: 1..=4096 or `"inf"`.
pub fn max_output_tokens(v: &Value, path: &str) -> Result<Value, ApiError> {
    match v {
        Value::String(s) if s == "inf" => Ok(v.clone()),
        Value::Number(n) if n.as_u64().is_some_and(|n| (1..=4096).contains(&n)) => Ok(v.clone()),
        _ => Err(ApiError::invalid_value(
            path,
            "Expected an integer between 1 and 4096, or 'inf'.",
        )),
    }
}

fn truncation(v: &Value, path: &str) -> Result<Value, ApiError> {
    match v {
        Value::String(s) if s == "auto" || s == "disabled" => Ok(v.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("retention_ratio") => {
            Ok(v.clone())
        }
        _ => Err(ApiError::invalid_value(
            path,
            "Supported values are: 'auto', 'disabled', or a retention_ratio object.",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> SessionConfig {
        SessionConfig::new("sess_x".into(), "gpt-realtime".into(), 0)
    }

    fn telephony() -> Value {
        json!({
            "type": "realtime",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "instructions": "Be brief.",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "noise_reduction": {"type": "near_field"},
                    "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
                    "turn_detection": {"type": "server_vad", "threshold": 0.6,
                        "prefix_padding_ms": 200, "silence_duration_ms": 400,
                        "create_response": true, "interrupt_response": true,
                        "idle_timeout_ms": 8000}
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0}
            },
            "tools": [{"type": "function", "name": "search_knowledge_base",
                       "description": "Search.", "parameters": {"type": "object"}}],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "truncation": "auto"
        })
    }

    #[test]
    fn telephony_profile_is_accepted_and_merged() {
        let c = base().updated(&telephony(), false).unwrap();
        assert_eq!(c.input_format, AudioFormat::Pcmu);
        assert_eq!(c.output_format, AudioFormat::Pcmu);
        assert_eq!(c.voice, json!("marin"));
        assert_eq!(c.instructions, "Be brief.");
        assert_eq!(c.tools.len(), 1);
        let td = c.turn_detection.clone().unwrap();
        assert_eq!(td.idle_timeout_ms(), Some(8000));
        assert_eq!(td.vad_params().prefix_padding_ms, 200);
        let j = c.to_json();
        assert_eq!(j["audio"]["input"]["format"]["type"], "audio/pcmu");
        assert_eq!(j["audio"]["input"]["turn_detection"]["threshold"], 0.6);
    }

    #[test]
    fn absent_fields_keep_their_values() {
        let c = base().updated(&telephony(), false).unwrap();
        let c2 = c
            .updated(&json!({"type": "realtime", "instructions": "New."}), false)
            .unwrap();
        assert_eq!(c2.instructions, "New.");
        assert_eq!(c2.voice, json!("marin"));
        assert_eq!(c2.input_format, AudioFormat::Pcmu);
        let c3 = c2
            .updated(
                &json!({"type": "realtime", "audio": {"input": {"turn_detection": null}}}),
                false,
            )
            .unwrap();
        assert!(c3.turn_detection.is_none());
        assert_eq!(c3.input_format, AudioFormat::Pcmu);
    }

    #[test]
    fn missing_type_is_refused() {
        let e = base()
            .updated(&json!({"instructions": "x"}), false)
            .unwrap_err();
        assert_eq!(e.code, Some("missing_required_parameter"));
        assert_eq!(e.param.as_deref(), Some("session.type"));
    }

    #[test]
    fn beta_fields_are_unknown_parameters() {
        for field in BETA_FIELDS {
            let mut s = json!({"type": "realtime"});
            s[*field] = json!("x");
            let e = base().updated(&s, false).unwrap_err();
            assert_eq!(e.code, Some("unknown_parameter"), "{field}");
            assert_eq!(e.param, Some(format!("session.{field}")));
        }
        let e = base()
            .updated(
                &json!({"type": "realtime", "audio": {"input": {"input_audio_format": "g711_ulaw"}}}),
                false,
            )
            .unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("session.audio.input.input_audio_format")
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let cases = [
            json!({"type": "realtime", "output_modalities": ["audio", "text"]}),
            json!({"type": "realtime", "audio": {"input": {"format": {"type": "g711_ulaw"}}}}),
            json!({"type": "realtime", "audio": {"output": {"voice": "nova"}}}),
            json!({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}}),
            json!({"type": "realtime", "max_output_tokens": 5000}),
            json!({"type": "realtime", "model": "gpt-4o-realtime-preview"}),
            json!({"type": "beta"}),
        ];
        for c in cases {
            assert!(base().updated(&c, false).is_err(), "{c}");
        }
    }

    #[test]
    fn voice_is_locked_after_audio() {
        let s = json!({"type": "realtime", "audio": {"output": {"voice": "cedar"}}});
        assert_eq!(
            base().updated(&s, true).unwrap_err().code,
            Some("cannot_update_voice")
        );
        assert!(base().updated(&s, false).is_ok());
    }
}
