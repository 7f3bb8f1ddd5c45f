-- The position of the last event of the append that took a claim: an idempotent request
-- retried after its answer was lost is answered from it (NULL for claims taken before).
ALTER TABLE unique_claims ADD COLUMN position INTEGER;
