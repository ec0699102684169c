//! Durable delivery counts, keyed by source offset: how many times each
//! consumed message has been handed to a worker. A message whose count keeps
//! growing was in flight while workers died (OOM, crash): the worker
//! dead-letters it as `crash_loop` instead of dying on it again.
//!
//! A finished message's row is not deleted (that would cost a statement per
//! message): rows not seen for a while are pruned instead
//! (`forget_deliveries_before`), and a finished message is not delivered
//! again unless its offset commit was lost, so its count stays at one.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sqlx::{Postgres, QueryBuilder};

use super::binds::statements;
use super::{Source, Store, StoreError};

/// Binds per row of `note_deliveries`: topic, partition, offset, count.
const DELIVERY_BINDS: usize = 4;
/// Rows deleted per pruning statement, so that pruning never holds locks or
/// builds WAL for long at once.
const PRUNE_PAGE: i64 = 10_000;

type Key<'a> = (&'a str, i32, i64);

impl Store {
    /// Counts one more delivery of each source and returns, per source in
    /// order, how many deliveries it has had, this one included. One
    /// statement per 16 383 distinct sources (in one transaction when there
    /// are more), however many sources.
    pub async fn note_deliveries(&self, sources: &[Source]) -> Result<Vec<i32>, StoreError> {
        // Each key once per statement (ON CONFLICT DO UPDATE may not touch a
        // row twice), with how many times it was given; in key order, so
        // that concurrent batches lock rows in one order.
        let mut given: BTreeMap<Key<'_>, i32> = BTreeMap::new();
        for s in sources {
            *given.entry(key(s)).or_default() += 1;
        }
        let rows: Vec<(Key<'_>, i32)> = given.iter().map(|(k, n)| (*k, *n)).collect();
        let mut totals: HashMap<(String, i32, i64), i32> = HashMap::with_capacity(rows.len());
        let pieces: Vec<&[(Key<'_>, i32)]> = statements(&rows, DELIVERY_BINDS).collect();
        if let [one] = pieces.as_slice() {
            totals.extend(note(self.pool(), one).await?);
        } else {
            // All or nothing: a retried batch must not count a piece twice.
            let mut tx = self.pool().begin().await?;
            for piece in pieces {
                totals.extend(note(&mut *tx, piece).await?);
            }
            tx.commit().await?;
        }
        // A source given k times in this batch got attempts total-k+1 ..= total.
        let mut handed: HashMap<Key<'_>, i32> = HashMap::new();
        sources
            .iter()
            .map(|s| {
                let k = key(s);
                let total = totals
                    .get(&(k.0.to_string(), k.1, k.2))
                    .copied()
                    .ok_or(sqlx::Error::RowNotFound)?;
                let nth = handed.entry(k).or_default();
                *nth += 1;
                Ok(total - given[&k] + *nth)
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Takes back one delivery of `source`: it ended unfinished without a
    /// crash (a graceful shutdown let it go), so it must not count towards
    /// `crash_loop`.
    pub async fn release_delivery(&self, source: &Source) -> Result<(), StoreError> {
        sqlx::query(
            "WITH gone AS (DELETE FROM deliveries                WHERE topic = $1 AND partition = $2 AND \"offset\" = $3 AND attempts <= 1)              UPDATE deliveries SET attempts = attempts - 1              WHERE topic = $1 AND partition = $2 AND \"offset\" = $3 AND attempts > 1",
        )
        .bind(&source.topic)
        .bind(source.partition)
        .bind(source.offset)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes the counts of messages not delivered for `age`, a page at a
    /// time; returns how many were deleted.
    pub async fn forget_deliveries_before(&self, age: Duration) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let page = sqlx::query(
                "DELETE FROM deliveries WHERE ctid = ANY(ARRAY( \
                   SELECT ctid FROM deliveries \
                   WHERE last_seen < now() - make_interval(secs => $1) LIMIT $2))",
            )
            .bind(age.as_secs_f64())
            .bind(PRUNE_PAGE)
            .execute(self.pool())
            .await?
            .rows_affected();
            deleted += page;
            if page < PRUNE_PAGE as u64 {
                return Ok(deleted);
            }
        }
    }
}

fn key(s: &Source) -> Key<'_> {
    (s.topic.as_str(), s.partition, s.offset)
}

/// One statement: each key's count raised by how many times it was given.
async fn note<'c>(
    db: impl sqlx::PgExecutor<'c>,
    rows: &[(Key<'_>, i32)],
) -> Result<Vec<((String, i32, i64), i32)>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO deliveries (topic, partition, \"offset\", attempts) ",
    );
    q.push_values(rows, |mut b, ((topic, partition, offset), n)| {
        b.push_bind(*topic)
            .push_bind(*partition)
            .push_bind(*offset)
            .push_bind(*n);
    });
    q.push(
        " ON CONFLICT (topic, partition, \"offset\") DO UPDATE \
         SET attempts = deliveries.attempts + EXCLUDED.attempts, last_seen = now() \
         RETURNING topic, partition, \"offset\", attempts",
    );
    let returned: Vec<(String, i32, i64, i32)> = q.build_query_as().fetch_all(db).await?;
    Ok(returned
        .into_iter()
        .map(|(t, p, o, a)| ((t, p, o), a))
        .collect())
}
