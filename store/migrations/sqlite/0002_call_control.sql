-- Call control (issue 13): transfers to a person and fallback voicemails, kept with the call.
-- One row per transfer, keyed by the agent leg that asked for it (a call can come back to
-- the agent after an unanswered transfer and transfer again from its next leg).
CREATE TABLE call_transfers (
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    leg INTEGER NOT NULL,
    target TEXT NOT NULL,
    dial_status TEXT NOT NULL,
    dial_duration_s INTEGER,
    dial_call_sid TEXT,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (call_sid, leg)
) WITHOUT ROWID;

ALTER TABLE calls ADD COLUMN voicemail_url TEXT;
ALTER TABLE calls ADD COLUMN voicemail_duration_s INTEGER;
