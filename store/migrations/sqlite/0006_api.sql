-- Admin API v1 (issue 15 §2, §3): what a call cost and the usage it came from, the
-- analysis columns the list filters on (filled by post-call analysis, §1), every status
-- callback in order, and the indexes the API's queries use.
ALTER TABLE calls ADD COLUMN usage_cached_text_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN usage_cached_audio_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN model TEXT;
-- Millionths of a US dollar: sums in aggregates stay exact.
ALTER TABLE calls ADD COLUMN cost_micro_usd INTEGER;
-- The prices and the breakdown the cost came from (JSON written by the gateway).
ALTER TABLE calls ADD COLUMN cost_detail TEXT;
ALTER TABLE calls ADD COLUMN analysis_sentiment TEXT;
ALTER TABLE calls ADD COLUMN analysis_success BOOLEAN;
ALTER TABLE calls ADD COLUMN analysis TEXT;
-- When the model called the tool (the transcript's clock), for marking it in the transcript.
ALTER TABLE tool_calls ADD COLUMN at_ms INTEGER;

-- The list's order and cursor: (started_at_ms, call_sid) newest first, per tenant.
CREATE INDEX calls_tenant_started ON calls (tenant, started_at_ms DESC, call_sid DESC)
    WHERE started_at_ms IS NOT NULL;

-- Every status callback of a call (the row keeps only the newest).
CREATE TABLE call_status_events (
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    sequence_number INTEGER NOT NULL,
    status TEXT NOT NULL,
    duration_s INTEGER,
    received_at_ms INTEGER,
    PRIMARY KEY (call_sid, sequence_number)
) WITHOUT ROWID;
