-- Verdicts, the images they were made from, rejected requests, and each
-- verdict's conversation. Typed columns carry what analysts filter on; JSONB
-- carries the nested parts. `result` keeps the exact result message (json
-- keeps its text byte for byte), so a redelivered request republishes it unchanged.

CREATE TABLE images (
    sha256        TEXT PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    byte_size     BIGINT NOT NULL CHECK (byte_size >= 0),
    first_source  TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE verdicts (
    request_id        UUID PRIMARY KEY,
    tenant            TEXT,
    label             TEXT NOT NULL CHECK (label IN ('real', 'fake')),
    p_fake            REAL NOT NULL CHECK (p_fake >= 0 AND p_fake <= 1),
    forgery_type      TEXT CHECK (forgery_type IN
                        ('face_swap', 'face_reenactment', 'face_editing', 'entire_face_synthesis')),
    type_scores       JSONB NOT NULL,
    artifacts         JSONB NOT NULL,
    explanation       TEXT,
    answers           JSONB NOT NULL,
    image_sha256      TEXT NOT NULL REFERENCES images (sha256),
    image_source      TEXT NOT NULL,
    base_model_sha256 TEXT NOT NULL,
    mmproj_sha256     TEXT NOT NULL,
    adapter_id        TEXT,
    adapter_sha256    TEXT,
    processing_ms     DOUBLE PRECISION NOT NULL,
    timings_ms        JSONB NOT NULL,
    metadata          JSONB NOT NULL DEFAULT '{}'::jsonb,
    source_topic      TEXT NOT NULL,
    source_partition  INTEGER NOT NULL,
    source_offset     BIGINT NOT NULL,
    result            JSON NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);

-- Analysts' queries: a time range, optionally by label, type or tenant.
CREATE INDEX verdicts_created_at ON verdicts (created_at);
CREATE INDEX verdicts_label_created_at ON verdicts (label, created_at);
CREATE INDEX verdicts_type_created_at ON verdicts (forgery_type, created_at)
    WHERE forgery_type IS NOT NULL;
CREATE INDEX verdicts_tenant_created_at ON verdicts (tenant, created_at);
CREATE INDEX verdicts_image_sha256 ON verdicts (image_sha256);
CREATE INDEX verdicts_adapter_created_at ON verdicts (adapter_id, created_at);

-- Requests that could not be analysed (dead-lettered), one row per message.
CREATE TABLE rejected_requests (
    id               BIGSERIAL PRIMARY KEY,
    source_topic     TEXT NOT NULL,
    source_partition INTEGER NOT NULL,
    source_offset    BIGINT NOT NULL,
    request_id       UUID,
    error_kind       TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX rejected_requests_created_at ON rejected_requests (created_at);

-- The turns of a verdict's conversation: the questions asked with the
-- request, then reviewers' follow-ups.
CREATE TABLE conversation_messages (
    request_id UUID NOT NULL REFERENCES verdicts (request_id) ON DELETE CASCADE,
    turn       INTEGER NOT NULL CHECK (turn >= 0),
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    author     TEXT,
    content    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, turn)
);
