-- Issue 10: `dfa serve`. API tokens, and who answered each turn.

-- One row per token made by `dfa tokens create`. Only the sha256 of the
-- secret is stored; the secret is printed once and never again.
CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL CHECK (name <> '' AND char_length(name) <= 200),
    role         TEXT NOT NULL CHECK (role IN ('reviewer', 'analyst', 'admin')),
    -- Set: the token sees only this tenant's verdicts.
    tenant       TEXT CHECK (tenant <> ''),
    token_sha256 TEXT NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at   TIMESTAMPTZ
);

-- The adapter that produced an assistant turn (NULL: the base model, or a
-- user turn). `author` is the token name of whoever asked a follow-up.
ALTER TABLE conversation_messages ADD COLUMN adapter_id TEXT;
