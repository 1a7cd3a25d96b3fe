-- Where a call's recording lives: an S3 object (bucket + key, never a URL) or, without a
-- bucket, a file under the gateway's recordings directory (key = its relative path).
-- Cleared when retention removed the recording.
ALTER TABLE calls ADD COLUMN recording_bucket TEXT;
ALTER TABLE calls ADD COLUMN recording_key TEXT;
ALTER TABLE calls ADD COLUMN recording_ms INTEGER;
ALTER TABLE calls ADD COLUMN recording_bytes INTEGER;
