-- Indexes for the admin API list's equality filters (issue 15 §5, bench/api.sh): with a
-- selective filter (a caller's number, a rare outcome) the list would otherwise walk the
-- tenant's whole (started_at_ms, call_sid) index to fill a page, and a value that matches
-- nothing reads every row of the tenant. Each index keeps the list's order, so the page
-- is the first LIMIT entries of one range.
CREATE INDEX calls_tenant_from_started ON calls (tenant, from_number, started_at_ms DESC, call_sid DESC)
    WHERE started_at_ms IS NOT NULL;
CREATE INDEX calls_tenant_to_started ON calls (tenant, to_number, started_at_ms DESC, call_sid DESC)
    WHERE started_at_ms IS NOT NULL;
CREATE INDEX calls_tenant_outcome_started ON calls (tenant, outcome, started_at_ms DESC, call_sid DESC)
    WHERE started_at_ms IS NOT NULL;
CREATE INDEX calls_tenant_sentiment_started ON calls (tenant, analysis_sentiment, started_at_ms DESC, call_sid DESC)
    WHERE started_at_ms IS NOT NULL;
