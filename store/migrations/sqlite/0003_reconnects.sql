-- Why a call moved to a new Realtime session, once per move, comma-separated in order
-- (dropped, closed, error, session_limit, rotation); empty when it never did.
ALTER TABLE calls ADD COLUMN reconnects TEXT NOT NULL DEFAULT '';
