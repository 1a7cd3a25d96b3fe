//! Numeric bounds of the API: published in the CRD schemas by the types ([`crate::tenant`],
//! [`crate::knowledge`]) and checked by [`crate::validate`]. A module of their own so the
//! types never import the validator that imports them.

// VoiceTenant.

/// Longest `displayName`, in characters.
pub const DISPLAY_NAME_MAX: u32 = 200;
/// Shortest `maxCallDurationSeconds`.
pub const MAX_CALL_DURATION_MIN: u32 = 10;
/// Upper bound for `maxCallDurationSeconds`: one Realtime session lasts at most 60 minutes.
pub const MAX_CALL_DURATION_LIMIT: u32 = 3600;
/// Shortest `turnDetection.silenceDurationMs`.
pub const SILENCE_DURATION_MIN_MS: u32 = 100;
/// Longest `turnDetection.silenceDurationMs`.
pub const SILENCE_DURATION_MAX_MS: u32 = 10_000;
/// Longest `turnDetection.prefixPaddingMs`.
pub const PREFIX_PADDING_MAX_MS: u32 = 5_000;

/// Most `agent.transfer` targets.
pub const TRANSFER_TARGETS_MAX: u32 = 16;
/// Longest transfer target `name`.
pub const TRANSFER_NAME_MAX: u32 = 64;
/// Longest transfer target `description`, in characters.
pub const TRANSFER_DESCRIPTION_MAX: u32 = 500;
/// Shortest `ringTimeoutSeconds`.
pub const RING_TIMEOUT_MIN: u32 = 5;
/// Longest `ringTimeoutSeconds` (Twilio's `<Dial timeout>` limit).
pub const RING_TIMEOUT_MAX: u32 = 600;
/// Longest `fallback.apology` and `fallback.voicemailPrompt`, in characters.
pub const APOLOGY_MAX: u32 = 500;
/// Longest `fallback.maxRecordingSeconds`.
pub const RECORDING_MAX_SECONDS: u32 = 3600;

// KnowledgeBase.

/// Longest `description`, in characters.
pub const DESCRIPTION_MAX: u32 = 1000;
/// Most entries in `sources` (also keeps the CRD's CEL cost estimate small).
pub const SOURCES_MAX: u32 = 32;
/// Longest inline document title, in characters.
pub const TITLE_MAX: u32 = 200;
/// Longest inline document category, in characters.
pub const CATEGORY_MAX: u32 = 100;
/// Shortest `chunking.size`.
pub const CHUNK_SIZE_MIN: u32 = 100;
/// Longest `chunking.size`.
pub const CHUNK_SIZE_MAX: u32 = 8000;
/// Largest `retrieval.topK`: passages beyond a handful only lengthen the model's input.
pub const TOP_K_MAX: u32 = 20;
/// Longest `embedder.openai.model`, in characters (also bounds the CEL rules' cost).
pub const MODEL_NAME_MAX: u32 = 200;
/// Largest `embedder.openai.dimensions` (Pinecone's limit).
pub const EMBEDDING_DIMENSIONS_MAX: u32 = 20_000;
