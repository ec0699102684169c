-- The learning loop: reviewers' corrections of verdicts, and the registry of
-- LoRA adapters trained from them.

-- Every insert or superseding update takes the next revision, so "corrections
-- since the last adapter" is `revision > watermark`.
CREATE SEQUENCE correction_revisions;

CREATE TABLE corrections (
    id               BIGSERIAL PRIMARY KEY,
    revision         BIGINT NOT NULL DEFAULT nextval('correction_revisions'),
    request_id       UUID NOT NULL REFERENCES verdicts (request_id),
    reviewer         TEXT NOT NULL CHECK (reviewer <> ''),
    label            TEXT NOT NULL CHECK (label IN ('real', 'fake')),
    forgery_type     TEXT CHECK (forgery_type IN
                       ('face_swap', 'face_reenactment', 'face_editing', 'entire_face_synthesis')),
    artifacts        JSONB,
    note             TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    source_topic     TEXT NOT NULL,
    source_partition INTEGER NOT NULL,
    source_offset    BIGINT NOT NULL,
    -- One standing correction per reviewer and verdict; a later one supersedes.
    UNIQUE (request_id, reviewer),
    CHECK (label = 'fake' OR forgery_type IS NULL)
);
CREATE INDEX corrections_revision ON corrections (revision);

CREATE TABLE adapters (
    id                 TEXT PRIMARY KEY,
    path               TEXT NOT NULL,
    sha256             TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    base_model_sha256  TEXT NOT NULL CHECK (base_model_sha256 ~ '^[0-9a-f]{64}$'),
    parent_id          TEXT REFERENCES adapters (id),
    status             TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'rejected', 'retired')),
    status_reason      TEXT,
    scale              REAL NOT NULL DEFAULT 1 CHECK (scale > 0),
    origin             TEXT NOT NULL CHECK (origin IN ('retrain', 'import')),
    -- Which corrections (revision range, counts) and dataset (path, sha256) it learned from.
    training_data      JSONB NOT NULL,
    hyper_parameters   JSONB NOT NULL,
    metrics            JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- The adapter that was active when this one was promoted: rollback's target.
    previous_active_id TEXT REFERENCES adapters (id),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    promoted_at        TIMESTAMPTZ,
    retired_at         TIMESTAMPTZ
);
CREATE UNIQUE INDEX adapters_one_active ON adapters ((true)) WHERE status = 'active';
CREATE INDEX adapters_created_at ON adapters (created_at);
