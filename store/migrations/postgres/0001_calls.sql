-- Call records, created in the first schema of the connection's search_path (one schema
-- per tenant). Usage counters live on the call row: one row per call, read together.
CREATE TABLE calls (
    call_sid TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    from_number TEXT,
    to_number TEXT,
    started_at_ms BIGINT,
    ended_at_ms BIGINT,
    outcome TEXT,
    detail TEXT,
    status TEXT,
    duration_s BIGINT,
    status_sequence BIGINT,
    barge_ins BIGINT NOT NULL DEFAULT 0,
    usage_responses BIGINT NOT NULL DEFAULT 0,
    usage_total_tokens BIGINT NOT NULL DEFAULT 0,
    usage_input_tokens BIGINT NOT NULL DEFAULT 0,
    usage_output_tokens BIGINT NOT NULL DEFAULT 0,
    usage_input_audio_tokens BIGINT NOT NULL DEFAULT 0,
    usage_input_text_tokens BIGINT NOT NULL DEFAULT 0,
    usage_cached_tokens BIGINT NOT NULL DEFAULT 0,
    usage_output_audio_tokens BIGINT NOT NULL DEFAULT 0,
    usage_output_text_tokens BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX calls_started_at ON calls (started_at_ms DESC NULLS LAST);

CREATE TABLE transcript_entries (
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('caller', 'agent')),
    text TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    interrupted BOOLEAN NOT NULL,
    heard_ms BIGINT,
    PRIMARY KEY (call_sid, seq)
);

-- seq is the tool call's position in the call: model call ids are not guaranteed unique.
CREATE TABLE tool_calls (
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    output TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    PRIMARY KEY (call_sid, seq)
);
