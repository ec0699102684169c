//! Console sessions: a signed-in browser's cookie, stored as its sha256, tied
//! to the token it signed in with. Sign-out ends it here, so a copied cookie
//! stops working at once; so does revoking the token.

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::domain::access::{Principal, Role};

/// A live session: who it is, and the token its forms must send back.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub principal: Principal,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Stores a new session, and forgets those that ended or expired a day
    /// ago (sign-ins are rare enough to carry that sweep).
    pub async fn create_session(
        &self,
        id_sha256: &str,
        token_id: i64,
        csrf: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM console_sessions \
             WHERE least(expires_at, coalesce(ended_at, expires_at)) < now() - interval '1 day'",
        )
        .execute(self.pool())
        .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_sha256, token_id, csrf, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_sha256)
        .bind(token_id)
        .bind(csrf)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session of a cookie: `None` when unknown, ended, expired, or its
    /// token revoked.
    pub async fn session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, StoreError> {
        type Row = (i64, String, Role, Option<String>, String, DateTime<Utc>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT t.id, t.name, t.role, t.tenant, s.csrf, s.expires_at \
             FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > now() \
               AND t.revoked_at IS NULL",
        )
        .bind(id_sha256)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(token_id, name, role, tenant, csrf, expires_at)| SessionRecord {
                principal: Principal {
                    token_id,
                    name,
                    role,
                    tenant,
                },
                csrf,
                expires_at,
            },
        ))
    }

    /// Ends a session (sign-out); false when it was not live.
    pub async fn end_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE console_sessions SET ended_at = now() WHERE id_sha256 = $1 AND ended_at IS NULL",
        )
        .bind(id_sha256)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
