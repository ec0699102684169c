//! Verdict rows: the batched, idempotent insert and the batched lookup of
//! what is stored under request ids. A request id is stored once; a later
//! row under it is answered with the stored row, so the caller can tell a
//! duplicate (same request hash) from a conflict (another request).

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use super::binds::statements;
use super::{Source, Store, StoreError};
use crate::domain::{FaceVerdict, Verdict};

/// A verdict to store, with what the request said about it.
#[derive(Debug, Clone)]
pub struct NewVerdict {
    pub verdict: Verdict,
    pub tenant: Option<String>,
    pub metadata: Value,
    pub image_sha256: String,
    pub image_bytes: i64,
    pub image_source: String,
    /// The hash of the canonical request (`worker::request::request_sha256`):
    /// what tells a duplicate of this request from another one reusing its id.
    pub request_sha256: String,
    pub source: Source,
    /// The exact result message to publish.
    pub result: String,
}

/// Bind parameters one verdict row takes in `insert_verdicts`. Rows are
/// split into statements within PostgreSQL's 65 535 anyway; the batch limit
/// (`worker.write_batch_max`, at most `settings::validate::MAX_WRITE_BATCH`)
/// keeps a batch to one verdict statement.
pub const VERDICT_BINDS: usize = 30;
const IMAGE_BINDS: usize = 3;
const TURN_BINDS: usize = 5;
const FACE_BINDS: usize = 16;

/// What is stored under a request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The result message published for it, byte for byte.
    pub result: String,
    /// The hash of the request that made it; None for rows stored before
    /// hashes were kept (migration 0003).
    pub request_sha256: Option<String>,
}

impl StoredResult {
    /// Whether the request hashing to `request_sha256` is the one stored
    /// (a duplicate) rather than another request reusing its id. A row with
    /// no hash matches any request, as every request matched it before.
    pub fn answers(&self, request_sha256: &str) -> bool {
        self.request_sha256
            .as_deref()
            .is_none_or(|stored| stored == request_sha256)
    }
}

/// What became of one row of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored by this batch: its own result is the stored one.
    Inserted,
    /// Its request id was stored already (earlier, or by a row before it in
    /// this batch); this is what is stored.
    Existing(StoredResult),
}

impl Store {
    /// What is stored under each of `ids` that has a verdict.
    pub async fn find_results(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, StoredResult>, StoreError> {
        Ok(stored_results(self.pool(), ids).await?)
    }

    /// Inserts a batch in one transaction and says, per row in order, whether
    /// it was stored or what was stored before under its request id. Only
    /// the conflicting rows are read back: a new row's stored result is the
    /// one it carried.
    pub async fn insert_verdicts(&self, batch: &[NewVerdict]) -> Result<Vec<Written>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // The first row of each request id is the one inserted; a later one
        // in the same batch is answered from it, like one arriving later.
        let mut seen = HashSet::with_capacity(batch.len());
        let first: Vec<bool> = batch
            .iter()
            .map(|n| seen.insert(n.verdict.request_id))
            .collect();
        let mut unique: Vec<&NewVerdict> = batch
            .iter()
            .zip(&first)
            .filter_map(|(n, f)| f.then_some(n))
            .collect();
        // Concurrent batches take their row locks in one order: key order.
        unique.sort_by_key(|n| n.verdict.request_id);

        let mut tx = self.pool().begin().await?;
        insert_images(&mut tx, &unique).await?;
        let inserted = insert_verdict_rows(&mut tx, &unique).await?;
        insert_conversations(&mut tx, &unique, &inserted).await?;
        insert_faces(&mut tx, &unique, &inserted).await?;
        let is_new = |i: usize, id: &Uuid| first[i] && inserted.contains(id);
        let conflicting: Vec<Uuid> = batch
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.verdict.request_id))
            .filter(|(i, id)| !is_new(*i, id))
            .map(|(_, id)| id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let stored = stored_results(&mut *tx, &conflicting).await?;
        let mut written = Vec::with_capacity(batch.len());
        for (i, n) in batch.iter().enumerate() {
            let id = n.verdict.request_id;
            written.push(if is_new(i, &id) {
                Written::Inserted
            } else {
                // Refused as a conflict, yet gone: deleted meanwhile. The
                // batch is rolled back and retried, which then inserts it.
                let found = stored.get(&id).ok_or(sqlx::Error::RowNotFound)?;
                Written::Existing(found.clone())
            });
        }
        tx.commit().await?;
        Ok(written)
    }
}

type Tx<'a> = sqlx::Transaction<'a, Postgres>;

/// One round trip however many ids: `= ANY($1)` takes them as one array.
async fn stored_results<'c>(
    db: impl PgExecutor<'c>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StoredResult>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT request_id, result::text, request_sha256 FROM verdicts WHERE request_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, result, request_sha256)| {
            (
                id,
                StoredResult {
                    result,
                    request_sha256,
                },
            )
        })
        .collect())
}

/// The images of a batch, each once (content-addressed).
async fn insert_images(tx: &mut Tx<'_>, batch: &[&NewVerdict]) -> Result<(), sqlx::Error> {
    let mut images: Vec<(&str, i64, &str)> = batch
        .iter()
        .map(|v| {
            (
                v.image_sha256.as_str(),
                v.image_bytes,
                v.image_source.as_str(),
            )
        })
        .collect();
    images.sort_by_key(|i| i.0);
    images.dedup_by_key(|i| i.0);
    for piece in statements(&images, IMAGE_BINDS) {
        let mut q =
            QueryBuilder::<Postgres>::new("INSERT INTO images (sha256, byte_size, first_source) ");
        q.push_values(piece, |mut b, i| {
            b.push_bind(i.0).push_bind(i.1).push_bind(i.2);
        });
        q.push(" ON CONFLICT (sha256) DO NOTHING");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The verdict rows; returns the request ids that were new.
async fn insert_verdict_rows(
    tx: &mut Tx<'_>,
    batch: &[&NewVerdict],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let mut new = HashSet::with_capacity(batch.len());
    for piece in statements(batch, VERDICT_BINDS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO verdicts (request_id, tenant, label, p_fake, forgery_type, type_scores, \
             artifacts, explanation, answers, image_sha256, image_source, base_model_sha256, \
             mmproj_sha256, adapter_id, adapter_sha256, processing_ms, timings_ms, metadata, \
             request_sha256, source_topic, source_partition, source_offset, result, created_at, \
             status, face_mode, face_count, primary_face, faces_skipped, reused_from) ",
        );
        // Keep VERDICT_BINDS equal to the binds pushed here.
        q.push_values(piece, |mut b, n| {
            let v = &n.verdict;
            let adapter = v.model.adapter.as_ref();
            b.push_bind(v.request_id)
                .push_bind(&n.tenant)
                .push_bind(v.label)
                .push_bind(v.p_fake)
                .push_bind(v.forgery_type)
                .push_bind(v.type_scores.as_ref().map(Json))
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
                .push_bind(&n.request_sha256)
                .push_bind(&n.source.topic)
                .push_bind(n.source.partition)
                .push_bind(n.source.offset)
                .push_bind(&n.result)
                .push_unseparated("::json")
                .push_bind(v.created_at)
                .push_bind(v.status.as_str())
                .push_bind(v.face_mode.as_str())
                .push_bind(v.face_count.map(|c| c as i32))
                .push_bind(v.primary_face.map(|i| i as i16))
                .push_bind(Json(&v.faces_skipped))
                .push_bind(v.reused_from);
        });
        q.push(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
        let inserted: Vec<(Uuid,)> = q.build_query_as().fetch_all(&mut **tx).await?;
        new.extend(inserted.into_iter().map(|r| r.0));
    }
    Ok(new)
}

/// The conversation of each new verdict: its questions and answers, as
/// turns (answers with the adapter that gave them), in as many statements
/// as the bind limit needs.
async fn insert_conversations(
    tx: &mut Tx<'_>,
    batch: &[&NewVerdict],
    new: &HashSet<Uuid>,
) -> Result<(), sqlx::Error> {
    type Row<'a> = (Uuid, i32, &'static str, &'a str, Option<&'a str>);
    let turns: Vec<Row<'_>> = batch
        .iter()
        .filter(|n| new.contains(&n.verdict.request_id))
        .flat_map(|n| {
            let id = n.verdict.request_id;
            let adapter = n.verdict.model.adapter.as_ref().map(|a| a.id.as_str());
            n.verdict
                .answers
                .iter()
                .zip(0i32..)
                .flat_map(move |(a, i)| {
                    [
                        (id, 2 * i, "user", a.question.as_str(), None),
                        (id, 2 * i + 1, "assistant", a.answer.as_str(), adapter),
                    ]
                })
        })
        .collect();
    for piece in statements(&turns, TURN_BINDS) {
        let mut m = QueryBuilder::<Postgres>::new(
            "INSERT INTO conversation_messages (request_id, turn, role, content, adapter_id) ",
        );
        m.push_values(piece, |mut b, t| {
            b.push_bind(t.0)
                .push_bind(t.1)
                .push_bind(t.2)
                .push_bind(t.3)
                .push_bind(t.4);
        });
        m.push(" ON CONFLICT DO NOTHING");
        m.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The faces of each new verdict. A redelivered request never gets here
/// (its verdict is not new), and the key (request, face) refuses a second
/// copy anyway.
async fn insert_faces(
    tx: &mut Tx<'_>,
    batch: &[&NewVerdict],
    new: &HashSet<Uuid>,
) -> Result<(), sqlx::Error> {
    let faces: Vec<(Uuid, &FaceVerdict)> = batch
        .iter()
        .filter(|n| new.contains(&n.verdict.request_id))
        .flat_map(|n| n.verdict.faces.iter().map(|f| (n.verdict.request_id, f)))
        .collect();
    for piece in statements(&faces, FACE_BINDS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO faces (request_id, face_index, x, y, w, h, crop_x, crop_y, crop_side, \
             detector_score, p_fake, label, forgery_type, type_scores, artifacts, explanation) ",
        );
        // Keep FACE_BINDS equal to the binds pushed here.
        q.push_values(piece, |mut b, (id, f)| {
            let px = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
            b.push_bind(*id)
                .push_bind(f.index as i16)
                .push_bind(px(f.bbox.x))
                .push_bind(px(f.bbox.y))
                .push_bind(px(f.bbox.w))
                .push_bind(px(f.bbox.h))
                .push_bind(px(f.crop.x))
                .push_bind(px(f.crop.y))
                .push_bind(px(f.crop.side))
                .push_bind(f.detector_score)
                .push_bind(f.p_fake)
                .push_bind(f.label)
                .push_bind(f.forgery_type)
                .push_bind(Json(&f.type_scores))
                .push_bind(Json(&f.artifacts))
                .push_bind(&f.explanation);
        });
        q.push(" ON CONFLICT (request_id, face_index) DO NOTHING");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_result_answers_its_own_request_and_a_legacy_row_any() {
        let stored = |h: Option<&str>| StoredResult {
            result: "{}".into(),
            request_sha256: h.map(str::to_string),
        };
        assert!(stored(Some("aa")).answers("aa"));
        assert!(!stored(Some("aa")).answers("bb"));
        assert!(stored(None).answers("bb"), "rows from before 0003 match");
    }
}
