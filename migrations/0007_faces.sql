-- Issue 12: faces in whole uploads. Each face found is screened on its own;
-- the verdict carries its most suspicious face's label and scores. An image
-- without a face (faces.mode = 'detect') is stored with status 'no_face' and
-- no label, p_fake or type scores.

ALTER TABLE verdicts
    ADD COLUMN status TEXT NOT NULL DEFAULT 'analysed',
    -- How faces were found; rows from before face detection analysed the
    -- whole image, as 'off' does.
    ADD COLUMN face_mode TEXT NOT NULL DEFAULT 'off',
    -- Faces analysed (NULL with face_mode 'off').
    ADD COLUMN face_count INTEGER,
    -- The face whose verdict the image carries (faces.face_index).
    ADD COLUMN primary_face SMALLINT,
    -- Faces found but not analysed: {"too_small": n, "over_cap": n}.
    ADD COLUMN faces_skipped JSONB NOT NULL DEFAULT '{"too_small": 0, "over_cap": 0}'::jsonb,
    -- A repost: the verdict whose analysis of the same bytes by the same
    -- model this one reused instead of running the model.
    ADD COLUMN reused_from UUID,
    ALTER COLUMN label DROP NOT NULL,
    ALTER COLUMN p_fake DROP NOT NULL,
    ALTER COLUMN type_scores DROP NOT NULL;

-- NOT VALID, as in 0003: new rows are checked at once, and the existing ones
-- (which hold the defaults) are not scanned under the ALTER's exclusive lock.
-- `VALIDATE CONSTRAINT` can be run later under a lock that lets writes on.
ALTER TABLE verdicts
    ADD CONSTRAINT verdicts_status CHECK (status IN ('analysed', 'no_face')) NOT VALID,
    ADD CONSTRAINT verdicts_face_mode CHECK (face_mode IN ('detect', 'whole_image', 'off')) NOT VALID,
    ADD CONSTRAINT verdicts_face_count CHECK (face_count >= 0) NOT VALID,
    ADD CONSTRAINT verdicts_primary_face CHECK (primary_face >= 0) NOT VALID,
    ADD CONSTRAINT verdicts_screened_unless_no_face CHECK (
        (status = 'no_face') = (p_fake IS NULL)
        AND (label IS NULL) = (p_fake IS NULL)
        AND (type_scores IS NULL) = (p_fake IS NULL)) NOT VALID;

-- Repost lookups: the latest analysis of an image by one model. (Built in
-- the migration's transaction, so it blocks writes while it builds: on a
-- large table, create it CONCURRENTLY by hand before upgrading.)
CREATE INDEX IF NOT EXISTS verdicts_image_model ON verdicts
    (image_sha256, base_model_sha256, mmproj_sha256, adapter_sha256, created_at DESC);

-- One row per face analysed. Boxes and crops are in the original image's
-- pixels; `crop` is the square the model saw (before resizing).
CREATE TABLE faces (
    request_id     UUID NOT NULL REFERENCES verdicts (request_id) ON DELETE CASCADE,
    face_index     SMALLINT NOT NULL CHECK (face_index >= 0),
    x              INTEGER NOT NULL CHECK (x >= 0),
    y              INTEGER NOT NULL CHECK (y >= 0),
    w              INTEGER NOT NULL CHECK (w > 0),
    h              INTEGER NOT NULL CHECK (h > 0),
    crop_x         INTEGER NOT NULL CHECK (crop_x >= 0),
    crop_y         INTEGER NOT NULL CHECK (crop_y >= 0),
    crop_side      INTEGER NOT NULL CHECK (crop_side > 0),
    detector_score DOUBLE PRECISION NOT NULL,
    p_fake         REAL NOT NULL CHECK (p_fake >= 0 AND p_fake <= 1),
    label          TEXT NOT NULL CHECK (label IN ('real', 'fake')),
    forgery_type   TEXT CHECK (forgery_type IN
                     ('face_swap', 'face_reenactment', 'face_editing', 'entire_face_synthesis')),
    type_scores    JSONB NOT NULL,
    artifacts      JSONB NOT NULL,
    explanation    TEXT,
    PRIMARY KEY (request_id, face_index)
);

-- Analysts: suspicious faces across uploads.
CREATE INDEX faces_p_fake ON faces (p_fake DESC);

-- A follow-up is about one face of the verdict (NULL: the verdict's own
-- subject, its most suspicious face or the whole image).
ALTER TABLE conversation_messages ADD COLUMN face_index SMALLINT CHECK (face_index >= 0);

-- The analysts' views (0005) count only screened verdicts as agreeing or
-- disagreeing with their corrections: a no_face verdict claimed nothing.
-- Its rows stay in verdicts_daily under label NULL.
CREATE OR REPLACE VIEW verdicts_daily AS
SELECT (v.created_at AT TIME ZONE 'UTC')::date AS day,
       v.tenant,
       v.adapter_id,
       v.label,
       v.forgery_type,
       count(*) AS verdicts,
       avg(v.p_fake)::double precision AS mean_p_fake,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM corrections d WHERE d.request_id = v.request_id)) AS corrected,
       count(*) FILTER (WHERE v.label IS NOT NULL AND EXISTS (
           SELECT 1 FROM corrections d WHERE d.request_id = v.request_id
             AND (d.label <> v.label OR (d.forgery_type IS NOT NULL
                  AND d.forgery_type IS DISTINCT FROM v.forgery_type)))) AS disagreements
FROM verdicts v
GROUP BY 1, 2, 3, 4, 5;

CREATE OR REPLACE VIEW adapter_agreement AS
WITH counted AS (
    SELECT (v.created_at AT TIME ZONE 'UTC')::date AS day,
           v.tenant,
           v.adapter_id,
           count(*) AS verdicts,
           count(s.label) FILTER (WHERE v.label IS NOT NULL) AS corrected,
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
