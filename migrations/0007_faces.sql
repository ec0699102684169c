-- Issue 12: faces in whole uploads. Each face found is screened on its own;
-- the verdict carries its most suspicious face's label and scores. An image
-- without a face (faces.mode = 'detect') is stored with status 'no_face' and
-- no label, p_fake or type scores.

ALTER TABLE verdicts
    ADD COLUMN status TEXT NOT NULL DEFAULT 'analysed'
        CHECK (status IN ('analysed', 'no_face')),
    -- How faces were found; rows from before face detection analysed the
    -- whole image, as 'off' does.
    ADD COLUMN face_mode TEXT NOT NULL DEFAULT 'off'
        CHECK (face_mode IN ('detect', 'whole_image', 'off')),
    -- Faces analysed (NULL with face_mode 'off').
    ADD COLUMN face_count INTEGER CHECK (face_count >= 0),
    -- The face whose verdict the image carries (faces.face_index).
    ADD COLUMN primary_face SMALLINT CHECK (primary_face >= 0),
    -- Faces found but not analysed: {"too_small": n, "over_cap": n}.
    ADD COLUMN faces_skipped JSONB NOT NULL DEFAULT '{"too_small": 0, "over_cap": 0}'::jsonb,
    -- A repost: the verdict whose analysis of the same bytes by the same
    -- model this one reused instead of running the model.
    ADD COLUMN reused_from UUID,
    ALTER COLUMN label DROP NOT NULL,
    ALTER COLUMN p_fake DROP NOT NULL,
    ALTER COLUMN type_scores DROP NOT NULL,
    ADD CONSTRAINT verdicts_screened_unless_no_face CHECK (
        (status = 'no_face') = (p_fake IS NULL)
        AND (label IS NULL) = (p_fake IS NULL)
        AND (type_scores IS NULL) = (p_fake IS NULL));

-- Repost lookups: the latest analysis of an image by one model.
CREATE INDEX verdicts_image_model ON verdicts
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
