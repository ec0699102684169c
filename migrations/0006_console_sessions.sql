-- Issue 11: the review console. A browser signs in with a token once and then
-- holds a session cookie; only the sha256 of the cookie's secret is stored.
CREATE TABLE console_sessions (
    id_sha256  TEXT PRIMARY KEY CHECK (id_sha256 ~ '^[0-9a-f]{64}$'),
    -- Revoking the token ends its sessions too (the lookup joins api_tokens).
    token_id   BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    -- Sent back by every form and every cookie-authenticated POST.
    csrf       TEXT NOT NULL CHECK (csrf ~ '^[0-9a-f]{64}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    -- Set by sign-out: the cookie no longer works, whatever its expiry.
    ended_at   TIMESTAMPTZ
);

CREATE INDEX console_sessions_token_id ON console_sessions (token_id);
