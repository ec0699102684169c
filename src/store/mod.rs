//! Postgres: verdicts, images, rejected requests, conversations. Writes are
//! idempotent, keyed by `request_id` (verdicts) or by the source offset
//! (rejections), so redelivered messages never double a row.

mod learning;

pub use learning::{CorrectionWrite, RegistryError};

use std::collections::HashSet;

use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::Verdict;
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

/// A verdict to store, with what the request said about it.
#[derive(Debug, Clone)]
pub struct NewVerdict {
    pub verdict: Verdict,
    pub tenant: Option<String>,
    pub metadata: Value,
    pub image_sha256: String,
    pub image_bytes: i64,
    pub image_source: String,
    pub source: Source,
    /// The exact result message to publish.
    pub result: String,
}

/// Bind parameters one verdict row takes in `insert_verdicts`; the batch
/// limit (`worker.write_batch_max`) keeps a statement within PostgreSQL's 65535.
pub const VERDICT_BINDS: usize = 23;

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

    /// The stored result message of a request, if it was analysed before.
    pub async fn find_result(&self, request_id: Uuid) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT result::text FROM verdicts WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    /// Inserts a batch in one transaction. A request already stored keeps its
    /// first row; the returned results are the stored ones, so a duplicate
    /// republishes exactly what the first delivery published. Also returns
    /// how many rows were new.
    pub async fn insert_verdicts(
        &self,
        batch: &[NewVerdict],
    ) -> Result<(usize, Vec<(Uuid, String)>), StoreError> {
        if batch.is_empty() {
            return Ok((0, Vec::new()));
        }
        let mut tx = self.pool.begin().await?;
        insert_images(&mut tx, batch).await?;
        let new = insert_verdict_rows(&mut tx, batch).await?;
        insert_conversations(&mut tx, batch, &new).await?;
        let ids: Vec<Uuid> = batch.iter().map(|n| n.verdict.request_id).collect();
        let stored: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT request_id, result::text FROM verdicts WHERE request_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((new.len(), stored))
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

type Tx<'a> = sqlx::Transaction<'a, Postgres>;

/// The images of a batch, each once (content-addressed).
async fn insert_images(tx: &mut Tx<'_>, batch: &[NewVerdict]) -> Result<(), sqlx::Error> {
    let mut images =
        QueryBuilder::<Postgres>::new("INSERT INTO images (sha256, byte_size, first_source) ");
    images.push_values(batch, |mut b, v| {
        b.push_bind(&v.image_sha256)
            .push_bind(v.image_bytes)
            .push_bind(&v.image_source);
    });
    images.push(" ON CONFLICT (sha256) DO NOTHING");
    images.build().execute(&mut **tx).await?;
    Ok(())
}

/// The verdict rows; returns the request ids that were new.
async fn insert_verdict_rows(
    tx: &mut Tx<'_>,
    batch: &[NewVerdict],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO verdicts (request_id, tenant, label, p_fake, forgery_type, type_scores, \
         artifacts, explanation, answers, image_sha256, image_source, base_model_sha256, \
         mmproj_sha256, adapter_id, adapter_sha256, processing_ms, timings_ms, metadata, \
         source_topic, source_partition, source_offset, result, created_at) ",
    );
    q.push_values(batch, |mut b, n| {
        let v = &n.verdict;
        let adapter = v.model.adapter.as_ref();
        b.push_bind(v.request_id)
            .push_bind(&n.tenant)
            .push_bind(v.label)
            .push_bind(v.p_fake)
            .push_bind(v.forgery_type)
            .push_bind(Json(&v.type_scores))
            .push_bind(Json(&v.artifacts))
            .push_bind(&v.explanation)
            .push_bind(Json(&v.answers))
            .push_bind(&n.image_sha256)
            .push_bind(&n.image_source)
            .push_bind(&v.model.base_sha256)
            .push_bind(&v.model.mmproj_sha256)
            .push_bind(adapter.map(|a| a.id.clone()))
            .push_bind(adapter.map(|a| a.sha256.clone()))
            .push_bind(v.timings_ms.total)
            .push_bind(Json(&v.timings_ms))
            .push_bind(&n.metadata)
            .push_bind(&n.source.topic)
            .push_bind(n.source.partition)
            .push_bind(n.source.offset)
            .push_bind(&n.result)
            .push_unseparated("::json")
            .push_bind(v.created_at);
    });
    q.push(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
    let inserted: Vec<(Uuid,)> = q.build_query_as().fetch_all(&mut **tx).await?;
    Ok(inserted.into_iter().map(|r| r.0).collect())
}

/// The conversation of each new verdict: its questions and answers, as turns.
async fn insert_conversations(
    tx: &mut Tx<'_>,
    batch: &[NewVerdict],
    new: &HashSet<Uuid>,
) -> Result<(), sqlx::Error> {
    let turns: Vec<(Uuid, i32, &str, &str)> = batch
        .iter()
        .filter(|n| new.contains(&n.verdict.request_id))
        .flat_map(|n| {
            let id = n.verdict.request_id;
            n.verdict
                .answers
                .iter()
                .zip(0i32..)
                .flat_map(move |(a, i)| {
                    [
                        (id, 2 * i, "user", a.question.as_str()),
                        (id, 2 * i + 1, "assistant", a.answer.as_str()),
                    ]
                })
        })
        .collect();
    if turns.is_empty() {
        return Ok(());
    }
    let mut m = QueryBuilder::<Postgres>::new(
        "INSERT INTO conversation_messages (request_id, turn, role, content) ",
    );
    m.push_values(&turns, |mut b, t| {
        b.push_bind(t.0)
            .push_bind(t.1)
            .push_bind(t.2)
            .push_bind(t.3);
    });
    m.push(" ON CONFLICT DO NOTHING");
    m.build().execute(&mut **tx).await?;
    Ok(())
}
