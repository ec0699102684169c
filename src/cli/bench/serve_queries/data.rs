//! The benchmark's data: a scratch database, and a million verdicts
//! generated in it with one `INSERT … SELECT generate_series`.

use anyhow::Context;
use sqlx::PgPool;

use super::SPAN_DAYS;

/// `rows` verdicts over the last `SPAN_DAYS` days (30 % fake, 20 tenants,
/// three adapters: none, `adapter-1`, `adapter-2`), 1 % of them corrected
/// (four in five confirming), then VACUUM ANALYZE. The secondary indexes are
/// dropped for the load and rebuilt from their own definitions: a sort
/// each instead of a million insertions each.
pub(super) async fn generate(pool: &PgPool, rows: u64) -> anyhow::Result<()> {
    let rows = i64::try_from(rows).context("--verdict-rows")?;
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname, indexdef FROM pg_indexes \
         WHERE tablename = 'verdicts' AND indexname <> 'verdicts_pkey'",
    )
    .fetch_all(pool)
    .await?;
    let mut tx = pool.begin().await?;
    for (name, _) in &defs {
        // A name from the catalogue, quoted.
        sqlx::query(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO images (sha256, byte_size, first_source) VALUES ($1, 0, 'bench') ON CONFLICT DO NOTHING",
    )
    .bind("be".repeat(32))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT setseed(0.42)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO verdicts (request_id, tenant, label, p_fake, forgery_type, type_scores, artifacts, \
             explanation, answers, image_sha256, image_source, base_model_sha256, mmproj_sha256, adapter_id, \
             processing_ms, timings_ms, source_topic, source_partition, source_offset, result, created_at) \
         SELECT gen_random_uuid(), 'tenant-' || (i % 20), \
                CASE WHEN r < 0.3 THEN 'fake' ELSE 'real' END, \
                CASE WHEN r < 0.3 THEN 0.5 + r2 / 2 ELSE r2 / 2 END, \
                CASE WHEN r < 0.3 THEN (ARRAY['face_swap', 'face_reenactment', 'face_editing', \
                    'entire_face_synthesis'])[1 + i % 4] END, \
                '{}'::jsonb, '[]'::jsonb, \
                CASE WHEN r < 0.3 THEN '1. Eyes: the reflections differ.' END, '[]'::jsonb, \
                $2, 'bench', 'b', 'm', (ARRAY[NULL, 'adapter-1', 'adapter-2'])[1 + i % 3], \
                10.0, '{}'::jsonb, 'bench', 0, i, '{}'::json, \
                now() - make_interval(secs => i * $3::double precision / $1) \
         FROM (SELECT i, random() AS r, random() AS r2 FROM generate_series(1, $1) AS i) g",
    )
    .bind(rows)
    .bind("be".repeat(32))
    .bind((SPAN_DAYS * 86_400) as f64)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    for (_, def) in &defs {
        sqlx::query(def).execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO corrections (request_id, reviewer, label, forgery_type, created_at, \
             source_topic, source_partition, source_offset) \
         SELECT request_id, 'bench', \
                CASE WHEN (random() < 0.8) = (label = 'fake') THEN 'fake' ELSE 'real' END, NULL, \
                created_at + interval '1 hour', 'bench', 0, source_offset \
         FROM verdicts TABLESAMPLE BERNOULLI (1)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // As autovacuum leaves a table between bulk loads: statistics, and the
    // visibility map that lets the statistics scan the index alone.
    sqlx::query("VACUUM (ANALYZE) verdicts, corrections")
        .execute(pool)
        .await?;
    Ok(())
}
