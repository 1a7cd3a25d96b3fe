-- Field-level encryption (VoiceTenant spec.encryption): the call's data key, wrapped by
-- the tenant's KMS key under the encryption context {tenant, call_sid}, base64. NULL for
-- calls whose transcript and tool calls are stored in clear.
ALTER TABLE calls ADD COLUMN data_key TEXT;
