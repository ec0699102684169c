//! Image store retention against real Postgres: images unused for
//! `image_store.retain_days` are deleted, those of corrected verdicts and
//! fresh ones are kept; the sweeper does it at start; `dfa images prune`
//! does it on demand.

use crate::common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::services::Env;
use dfa::images::{spawn_sweeper, sweep_once, ImageStore, SweepReport};
use dfa::settings::ImageStoreSettings;
use dfa::store::Store;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(t)
        .expect("set mtime");
}

/// A stored verdict of image `sha`, corrected by a reviewer or not.
async fn verdict(env: &Env, sha: &str, corrected: bool) {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO images (sha256, byte_size, first_source) VALUES ($1, 5, 'test') \
         ON CONFLICT DO NOTHING",
    )
    .bind(sha)
    .execute(&env.pool)
    .await
    .expect("image row");
    sqlx::query(
        "INSERT INTO verdicts (request_id, label, p_fake, type_scores, artifacts, answers, \
           image_sha256, image_source, base_model_sha256, mmproj_sha256, processing_ms, \
           timings_ms, source_topic, source_partition, source_offset, result, created_at) \
         VALUES ($1, 'real', 0.1, '{}', '[]', '[]', $2, 'test', 'm', 'p', 1, '{}', 't', 0, 0, '{}', now())",
    )
    .bind(id)
    .bind(sha)
    .execute(&env.pool)
    .await
    .expect("verdict row");
    if corrected {
        sqlx::query(
            "INSERT INTO corrections (request_id, reviewer, label, created_at, \
               source_topic, source_partition, source_offset) \
             VALUES ($1, 'reviewer', 'fake', now(), 't', 0, 0)",
        )
        .bind(id)
        .execute(&env.pool)
        .await
        .expect("correction row");
    }
}

/// The store of this test with: `old` (40 days unused, uncorrected verdict),
/// `corrected` (40 days unused, one of its two verdicts corrected), `fresh`
/// (uncorrected, used now), `orphan` (40 days unused, no verdict), and an
/// old file of another module under the same root.
struct World {
    images: ImageStore,
    old: String,
    corrected: String,
    fresh: String,
    orphan: String,
}

async fn world(env: &Env) -> World {
    let images = ImageStore::new(env.dir.join("images"));
    let w = World {
        old: sha('a'),
        corrected: sha('b'),
        fresh: sha('c'),
        orphan: sha('d'),
        images,
    };
    let long_ago = SystemTime::now() - 40 * DAY;
    for s in [&w.old, &w.corrected, &w.fresh, &w.orphan] {
        w.images
            .put(s, b"image".to_vec().into())
            .await
            .expect("put");
        if s != &w.fresh {
            set_mtime(&w.images.path_of(s), long_ago);
        }
    }
    verdict(env, &w.old, false).await;
    verdict(env, &w.corrected, false).await;
    verdict(env, &w.corrected, true).await;
    verdict(env, &w.fresh, false).await;
    let other = env.dir.join("images/dead-letters");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(other.join("x"), b"x").expect("write");
    set_mtime(&other.join("x"), long_ago);
    w
}

fn present(w: &World, s: &str) -> bool {
    w.images.path_of(s).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_old_uncorrected_images_and_keeps_corrected_and_fresh_ones() {
    let env = Env::new("img_sweep").await;
    let w = world(&env).await;
    let store = Store::connect(&env.db_url, 2).await.expect("connect");
    let stop = CancellationToken::new();

    let off = sweep_once(&w.images, &store, 0, &stop)
        .await
        .expect("sweep");
    assert_eq!(
        off,
        SweepReport::default(),
        "retain_days = 0 keeps everything"
    );
    assert!(present(&w, &w.old));

    let report = sweep_once(&w.images, &store, 30, &stop)
        .await
        .expect("sweep");
    assert!(
        !present(&w, &w.old),
        "an old image of an uncorrected verdict is deleted"
    );
    assert!(
        !present(&w, &w.orphan),
        "an old image of no verdict is deleted"
    );
    assert!(
        present(&w, &w.corrected),
        "an image of a corrected verdict is kept"
    );
    assert!(present(&w, &w.fresh), "a fresh image is kept");
    assert!(
        env.dir.join("images/dead-letters/x").exists(),
        "not an image"
    );
    assert_eq!(
        report,
        SweepReport {
            deleted: 2,
            kept_corrected: 1,
            bytes_freed: 10,
            failed: 0
        }
    );
    assert_eq!(w.images.get(&w.corrected).expect("kept"), b"image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_sweeps_and_cleans_temporary_files_at_start_then_stops() {
    let env = Env::new("img_sweeper").await;
    let w = world(&env).await;
    let crashed = w.images.dir().join("aa/.tmp.crashed");
    std::fs::write(&crashed, b"half").expect("temp");
    set_mtime(&crashed, SystemTime::now() - DAY);
    let store = Store::connect(&env.db_url, 2).await.expect("connect");
    let settings = ImageStoreSettings {
        dir: w.images.dir().to_string_lossy().into_owned(),
        retain_days: 30,
    };
    let stop = CancellationToken::new();
    let sweeper = spawn_sweeper(w.images.clone(), store, &settings, stop.clone());

    let swept = common::poll_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async { (present(&w, &w.old), crashed.exists()) },
        |&(old, temp)| !old && !temp,
    )
    .await;
    assert_eq!(
        swept,
        (false, false),
        "(old image, crashed temp file) still there"
    );
    assert!(present(&w, &w.corrected) && present(&w, &w.fresh));

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), sweeper)
        .await
        .expect("the sweeper stops when told")
        .expect("the sweeper did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_prune_runs_one_pass_and_reports_it() {
    let env = Env::new("img_prune").await;
    let w = world(&env).await;
    let out = env.run_dfa(
        &["images", "prune"],
        &[("DFA__IMAGE_STORE__RETAIN_DAYS", "30")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(report["deleted"], 2, "{report}");
    assert_eq!(report["kept_corrected"], 1, "{report}");
    assert!(!present(&w, &w.old) && !present(&w, &w.orphan));
    assert!(present(&w, &w.corrected) && present(&w, &w.fresh));
}
