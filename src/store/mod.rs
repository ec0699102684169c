//! Postgres: verdicts, images, rejected requests, conversations, delivery
//! counts. Writes are idempotent, keyed by `request_id` (verdicts) or by the
//! source offset (rejections), so redelivered messages never double a row;
//! delivery counts (`deliveries`) are the one thing a redelivery changes.

pub mod binds;
mod conversations;
mod deliveries;
mod faces;
mod images;
mod learning;
mod reads;
mod reposts;
mod sessions;
mod tokens;
mod verdicts;

pub use conversations::{turns_of, DialogueBasis, FollowUp, TurnRecord};
pub use learning::{CorrectionWrite, RegistryError};
pub use reads::QueueRow;
pub use reads::{AdapterCounts, BucketCount, CorrectionRecord, VerdictDetail, VerdictRow};
pub use sessions::SessionRecord;
pub use tokens::TokenRecord;
pub use verdicts::{NewVerdict, StoredResult, Written, VERDICT_BINDS};

use secrecy::ExposeSecret;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::settings::DatabaseSettings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database rejected the write: {0}")]
    Rejected(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True when retrying later can succeed (connection lost, server restarting).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // SQLSTATE classes 22 (data exception) and 23 (integrity constraint)
        // fail the same way every time; anything else may pass on retry.
        let permanent = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23"));
        if permanent {
            StoreError::Rejected(e)
        } else {
            StoreError::Unavailable(e)
        }
    }
}

/// Where a message came from, for traceability and idempotent rejections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Store { pool })
    }

    /// Connects with the `[database]` settings (the only place the secret
    /// URL is read) and migrates when `database.migrate_on_start` says so.
    pub async fn open(db: &DatabaseSettings, max_connections: u32) -> Result<Store, StoreError> {
        let store = Store::connect(db.url.expose_secret(), max_connections).await?;
        if db.migrate_on_start {
            store.migrate().await?;
        }
        Ok(store)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Records a dead-lettered message once per source offset.
    pub async fn record_rejection(
        &self,
        source: &Source,
        request_id: Option<Uuid>,
        kind: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rejected_requests (source_topic, source_partition, source_offset, request_id, error_kind, reason) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING",
        )
        .bind(&source.topic)
        .bind(source.partition)
        .bind(source.offset)
        .bind(request_id)
        .bind(kind)
        // The reason may quote the bad input, NULs included, which TEXT
        // cannot hold; the audit row must not be lost to that.
        .bind(reason.replace('\0', "\u{FFFD}"))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
