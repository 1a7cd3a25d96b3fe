-- Call records. Usage counters live on the call row: one row per call, read together.
CREATE TABLE calls (
    call_sid TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    from_number TEXT,
    to_number TEXT,
    started_at_ms INTEGER,
    ended_at_ms INTEGER,
    outcome TEXT,
    detail TEXT,
    status TEXT,
    duration_s INTEGER,
    status_sequence INTEGER,
    barge_ins INTEGER NOT NULL DEFAULT 0,
    usage_responses INTEGER NOT NULL DEFAULT 0,
    usage_total_tokens INTEGER NOT NULL DEFAULT 0,
    usage_input_tokens INTEGER NOT NULL DEFAULT 0,
    usage_output_tokens INTEGER NOT NULL DEFAULT 0,
    usage_input_audio_tokens INTEGER NOT NULL DEFAULT 0,
    usage_input_text_tokens INTEGER NOT NULL DEFAULT 0,
    usage_cached_tokens INTEGER NOT NULL DEFAULT 0,
    usage_output_audio_tokens INTEGER NOT NULL DEFAULT 0,
    usage_output_text_tokens INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX calls_started_at ON calls (started_at_ms DESC);

CREATE TABLE transcript_entries (
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('caller', 'agent')),
    text TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    interrupted BOOLEAN NOT NULL,
    heard_ms INTEGER,
    PRIMARY KEY (call_sid, seq)
) WITHOUT ROWID;

-- seq is the tool call's position in the call: model call ids are not guaranteed unique.
CREATE TABLE tool_calls (
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    output TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    PRIMARY KEY (call_sid, seq)
) WITHOUT ROWID;
