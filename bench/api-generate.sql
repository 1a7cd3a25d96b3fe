-- Synthetic call records for the admin API benchmark (bench/api.sh): :n calls of the
-- tenant :'tenant' spread over the 365 days before :now_ms (Unix ms), each with six
-- transcript lines, three status callbacks and, for one call in three, a knowledge
-- lookup. Deterministic for a given :n and :now_ms (no random(): values derive from the
-- row number), so two runs query the same data.
--
-- Run by bench/api.sh after the gateway created the schema (its migrations), e.g.
--   psql "$URL" -v n=1000000 -v tenant=demo -v now_ms=1796601600000 -f bench/api-generate.sql

\set ON_ERROR_STOP on
SET synchronous_commit = off;

-- Callers: a pool of 50,000 numbers with a skew (some call often), as a business sees.
INSERT INTO calls (
    call_sid, tenant, from_number, to_number, started_at_ms, ended_at_ms, outcome,
    status, duration_s, status_sequence, barge_ins,
    usage_responses, usage_total_tokens, usage_input_tokens, usage_output_tokens,
    usage_input_audio_tokens, usage_input_text_tokens, usage_cached_tokens,
    usage_output_audio_tokens, usage_output_text_tokens,
    usage_cached_text_tokens, usage_cached_audio_tokens,
    model, cost_micro_usd, analysis_sentiment, analysis_success, analysis, reconnects
)
SELECT
    'CA' || md5('bench-' || i),
    :'tenant',
    '+1555' || lpad(((i * i) % 50000)::text, 7, '0'),
    CASE WHEN i % 10 = 0 THEN '+15005550007' ELSE '+15005550006' END,
    start_ms,
    start_ms + dur * 1000,
    CASE
        WHEN i % 50 = 0 THEN 'transferred'
        WHEN i % 97 = 0 THEN 'silence'
        WHEN i % 211 = 0 THEN 'max_duration'
        WHEN i % 7 = 0 THEN 'agent_ended'
        ELSE 'caller_hangup'
    END,
    'completed',
    dur,
    3,
    i % 4,
    4 + i % 9,
    9000 + (i % 5000),
    7000 + (i % 4000),
    2000 + (i % 1000),
    5000 + (i % 3000),
    2000 + (i % 1000),
    3000,
    1800 + (i % 900),
    200 + (i % 100),
    2500,
    500,
    'gpt-realtime-2',
    150000 + (i % 200000),
    (ARRAY['positive', 'neutral', 'negative', 'unknown'])[(1 + i % 4)::int],
    (i % 5) <> 0,
    '{"summary":"Caller asked about opening hours and booked a cleaning."}',
    ''
FROM (
    SELECT i,
           :now_ms - (i::bigint * 365 * 86400000) / :n AS start_ms,
           20 + (i * 7919) % 580 AS dur
    FROM generate_series(1, :n::bigint) AS i
) AS g;

INSERT INTO transcript_entries (call_sid, seq, role, text, start_ms, end_ms, interrupted, heard_ms)
SELECT
    'CA' || md5('bench-' || i),
    s,
    CASE WHEN s % 2 = 0 THEN 'agent' ELSE 'caller' END,
    CASE WHEN s % 2 = 0
        THEN 'Thank you for calling Demo Dental. We are open Monday to Friday from eight to six.'
        ELSE 'Hi, I would like to know when you are open and book a cleaning next week.'
    END,
    s * 5000,
    s * 5000 + 4000,
    s = 2 AND i % 4 = 0,
    CASE WHEN s = 2 AND i % 4 = 0 THEN 1500 END
FROM generate_series(1, :n::bigint) AS i, generate_series(0, 5) AS s;

INSERT INTO tool_calls (call_sid, seq, call_id, name, arguments, output, latency_ms, at_ms)
SELECT
    'CA' || md5('bench-' || i),
    0,
    'call_' || i,
    'lookup_knowledge',
    '{"query":"opening hours"}',
    '{"passages":[{"source":"demo-faq/hours#0","title":"Opening hours","text":"Monday to Friday 8am to 6pm.","score":0.82}]}',
    35,
    12000
FROM generate_series(1, :n::bigint) AS i
WHERE i % 3 = 0;

INSERT INTO call_status_events (call_sid, sequence_number, status, duration_s, received_at_ms)
SELECT
    'CA' || md5('bench-' || i),
    q,
    (ARRAY['ringing', 'in-progress', 'completed'])[q],
    CASE WHEN q = 3 THEN 20 + (i * 7919) % 580 END,
    :now_ms - (i::bigint * 365 * 86400000) / :n
FROM generate_series(1, :n::bigint) AS i, generate_series(1, 3) AS q;

ANALYZE calls;
ANALYZE transcript_entries;
ANALYZE tool_calls;
ANALYZE call_status_events;
