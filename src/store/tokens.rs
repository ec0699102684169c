//! API tokens: made and revoked by `dfa tokens`, looked up by `dfa serve` on
//! every request by the sha256 of the presented secret.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::access::{Principal, Role};

/// A token as `dfa tokens list` shows it: never the secret, which is not kept.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub tenant: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a new token's hash; returns its id.
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        token_sha256: &str,
    ) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO api_tokens (name, role, tenant, token_sha256) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(role)
        .bind(tenant)
        .bind(token_sha256)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, name, role, tenant, created_at, revoked_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes a token at once (every later request with it is 401); false
    /// when no token has this id or it was already revoked.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The caller a presented token stands for; `None` when unknown or revoked.
    pub async fn principal(&self, token_sha256: &str) -> Result<Option<Principal>, StoreError> {
        let row: Option<(i64, String, Role, Option<String>)> = sqlx::query_as(
            "SELECT id, name, role, tenant FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(token_sha256)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(token_id, name, role, tenant)| Principal {
            token_id,
            name,
            role,
            tenant,
        }))
    }
}
