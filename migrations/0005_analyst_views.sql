-- Issue 10: analysts' reads. Indexes for the filters of GET /api/verdicts,
-- /api/stats and /api/export, and two views for BI tools.
--
-- Lists are newest first by (created_at DESC, request_id DESC) and paged by
-- keyset on that pair, so every index that serves a filtered page ends in
-- (created_at, request_id). They supersede 0001's (…, created_at) indexes.
--
-- Building them takes a SHARE lock on verdicts (writes wait). On a large
-- table, create them first with CREATE INDEX CONCURRENTLY under these same
-- names: IF NOT EXISTS then skips them here.

-- It also carries what the statistics count (INCLUDE), so /api/stats
-- over a range reads this index alone (an index-only scan) instead of the
-- wide rows.
CREATE INDEX IF NOT EXISTS verdicts_created_at_request_id
    ON verdicts (created_at, request_id) INCLUDE (label, forgery_type, p_fake, adapter_id, tenant);
CREATE INDEX IF NOT EXISTS verdicts_label_created_at_request_id
    ON verdicts (label, created_at, request_id);
CREATE INDEX IF NOT EXISTS verdicts_type_created_at_request_id
    ON verdicts (forgery_type, created_at, request_id) WHERE forgery_type IS NOT NULL;
CREATE INDEX IF NOT EXISTS verdicts_tenant_created_at_request_id
    ON verdicts (tenant, created_at, request_id);
CREATE INDEX IF NOT EXISTS verdicts_adapter_created_at_request_id
    ON verdicts (adapter_id, created_at, request_id);

DROP INDEX IF EXISTS verdicts_created_at;
DROP INDEX IF EXISTS verdicts_label_created_at;
DROP INDEX IF EXISTS verdicts_type_created_at;
DROP INDEX IF EXISTS verdicts_tenant_created_at;
DROP INDEX IF EXISTS verdicts_adapter_created_at;

-- A verdict's standing correction (the latest; the truth of the stats, the
-- `corrected` and `disagreement` filters) is one index probe.
CREATE INDEX IF NOT EXISTS corrections_request_id_latest
    ON corrections (request_id, created_at DESC, revision DESC);

-- verdicts_daily: one row per UTC day, tenant, adapter, label and forgery
-- type.
--   day            date     the UTC day of created_at
--   tenant         text     NULL: verdicts of requests without a tenant
--   adapter_id     text     NULL: the base model
--   label          text     'real' or 'fake' (the model's verdict)
--   forgery_type   text     NULL for real verdicts (and fakes without a type)
--   verdicts       bigint   how many
--   mean_p_fake    double   their mean p_fake
--   corrected      bigint   how many some reviewer corrected
--   disagreements  bigint   how many some reviewer's correction contradicts:
--                           another label, or (both fake) another forgery
--                           type named (the `disagreement` filter of the API)
-- Rows sum: group by any subset of the key columns in the BI tool.
CREATE VIEW verdicts_daily AS
SELECT (v.created_at AT TIME ZONE 'UTC')::date AS day,
       v.tenant,
       v.adapter_id,
       v.label,
       v.forgery_type,
       count(*) AS verdicts,
       avg(v.p_fake)::double precision AS mean_p_fake,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM corrections d WHERE d.request_id = v.request_id)) AS corrected,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM corrections d WHERE d.request_id = v.request_id
             AND (d.label <> v.label OR (d.forgery_type IS NOT NULL
                  AND d.forgery_type IS DISTINCT FROM v.forgery_type)))) AS disagreements
FROM verdicts v
GROUP BY 1, 2, 3, 4, 5;

-- adapter_agreement: how each adapter's verdicts agree with their standing
-- corrections, one row per UTC day, tenant and adapter ("fake" is the
-- positive class; only corrected verdicts count towards agreement).
--   day            date     the UTC day of the verdicts' created_at
--   tenant         text     NULL: requests without a tenant
--   adapter_id     text     NULL: the base model
--   verdicts       bigint   verdicts made
--   corrected      bigint   of those, with a correction
--   true_fake      bigint   verdict fake, correction fake
--   false_fake     bigint   verdict fake, correction real
--   missed_fake    bigint   verdict real, correction fake
--   true_real      bigint   verdict real, correction real
--   accuracy       double   (true_fake + true_real) / corrected; NULL if none
--   precision_fake double   true_fake / (true_fake + false_fake); NULL if none
--   recall_fake    double   true_fake / (true_fake + missed_fake); NULL if none
-- To aggregate over days, sum the counts and recompute the ratios.
CREATE VIEW adapter_agreement AS
WITH counted AS (
    SELECT (v.created_at AT TIME ZONE 'UTC')::date AS day,
           v.tenant,
           v.adapter_id,
           count(*) AS verdicts,
           count(s.label) AS corrected,
           count(*) FILTER (WHERE v.label = 'fake' AND s.label = 'fake') AS true_fake,
           count(*) FILTER (WHERE v.label = 'fake' AND s.label = 'real') AS false_fake,
           count(*) FILTER (WHERE v.label = 'real' AND s.label = 'fake') AS missed_fake,
           count(*) FILTER (WHERE v.label = 'real' AND s.label = 'real') AS true_real
    FROM verdicts v
    LEFT JOIN LATERAL (
        SELECT c.label FROM corrections c
        WHERE c.request_id = v.request_id
        ORDER BY c.created_at DESC, c.revision DESC LIMIT 1
    ) s ON true
    GROUP BY 1, 2, 3
)
SELECT day, tenant, adapter_id, verdicts, corrected, true_fake, false_fake, missed_fake, true_real,
       (true_fake + true_real)::double precision / NULLIF(corrected, 0) AS accuracy,
       true_fake::double precision / NULLIF(true_fake + false_fake, 0) AS precision_fake,
       true_fake::double precision / NULLIF(true_fake + missed_fake, 0) AS recall_fake
FROM counted;
