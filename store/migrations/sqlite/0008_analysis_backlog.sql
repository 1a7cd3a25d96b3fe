-- Post-call analyses survive a gateway stop (issue 15 §1): a gateway finds the ended calls
-- still waiting for their analysis and claims each before analysing it, so two pods of a
-- tenant never both do (store/src/backlog.rs).
-- Who is analysing the call, and until when (a lease: a gateway that dies lets it lapse).
ALTER TABLE calls ADD COLUMN analysis_claim_owner TEXT;
ALTER TABLE calls ADD COLUMN analysis_claim_until_ms INTEGER;
-- Claims taken: a call whose analysis keeps failing is given up on after a few.
ALTER TABLE calls ADD COLUMN analysis_attempts INTEGER NOT NULL DEFAULT 0;
-- Why the analysis was given up for good (refused, an answer that does not fit).
ALTER TABLE calls ADD COLUMN analysis_failed TEXT;
-- The backlog query's rows: unanalysed ended calls of a tenant by end time.
CREATE INDEX calls_analysis_backlog ON calls (tenant, ended_at_ms)
    WHERE analysis IS NULL AND analysis_failed IS NULL AND ended_at_ms IS NOT NULL;
