//! PostgreSQL itself restarted under a running worker (`pg_ctlcluster …
//! restart`): nothing lost, nothing doubled. Its own test binary, because
//! the restart cuts every test's connections: cargo runs test binaries one
//! at a time, so nothing else is running. Needs `scripts/dev-up` and the
//! right to restart the cluster (root or the postgres user; scripts/test
//! runs as either).

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::services::{request, Env};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(240);

/// Restarts the local cluster (fast mode: open sessions are cut).
fn restart_postgres() {
    let clusters = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("pg_lsclusters (PostgreSQL's Debian tools)");
    let listing = String::from_utf8_lossy(&clusters.stdout);
    let mut first = listing.split_whitespace();
    let (version, name) = (
        first.next().expect("a cluster version"),
        first.next().expect("a cluster name"),
    );
    let status = Command::new("pg_ctlcluster")
        .args([version, name, "restart", "-m", "fast"])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "restarting PostgreSQL {version}/{name}");
}

async fn count_when_up(db_url: &str, sql: &str) -> Option<i64> {
    let pool = sqlx::PgPool::connect(db_url).await.ok()?;
    let n = sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&pool)
        .await
        .ok();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_loses_nothing_and_doubles_nothing() {
    let env = Env::new("pgrestart").await;
    let n = 200;
    let mut ids = Vec::new();
    let mut produce = |from: u32, to: u32| {
        let batch: Vec<(Uuid, Vec<u8>)> = (from..to)
            .map(|i| {
                let id = Uuid::new_v4();
                (id, request(id, i))
            })
            .collect();
        ids.extend(batch.iter().map(|(id, _)| *id));
        batch
    };
    for (id, payload) in produce(0, n / 2) {
        env.produce(&id.to_string(), &payload, &[]).await;
    }
    let mut worker = env.start_worker(&[]);
    let stored = env
        .wait_count("SELECT count(*) FROM verdicts", 10, LONG)
        .await;
    assert!(stored >= 10, "{}", worker.stderr());
    env.pool.close().await;

    restart_postgres();
    // Work continues after the restart, so the worker surely meets it.
    for (id, payload) in produce(n / 2, n) {
        env.produce(&id.to_string(), &payload, &[]).await;
    }
    let rows = common::poll_until(
        LONG,
        Duration::from_millis(300),
        || count_when_up(&env.db_url, "SELECT count(*) FROM verdicts"),
        |c| *c >= Some(n as i64),
    )
    .await;
    assert_eq!(rows, Some(n as i64), "worker log:\n{}", worker.stderr());
    let results = env.wait_topic_len(&env.results, n as i64, LONG).await;
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");

    let distinct = count_when_up(
        &env.db_url,
        "SELECT count(DISTINCT request_id) FROM verdicts",
    )
    .await;
    assert_eq!(distinct, Some(n as i64), "one row per request");
    assert_eq!(
        env.topic_len(&env.results),
        n as i64,
        "one result per request (seen {results} while running)"
    );
    let keys = env.result_keys(n as usize, LONG).await;
    let wanted: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(keys, wanted, "every request has its result");
    assert_eq!(env.topic_len(&env.dlq), 0, "nothing dead-lettered: {log}");
    assert_eq!(
        env.committed(),
        env.high_watermarks(&env.requests),
        "committed lag 0"
    );
}
