//! The learning loop on the tiny model, a real broker and Postgres: verdicts,
//! reviewers' corrections on the feedback topic, `dfa retrain`, promotion,
//! hot swap in the running worker, the gate, rollback, and bad input.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::services::{Env, Worker};
use dfa::learning::items::is_held_out;
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// Forged faces are reddish, real ones bluish: a rule a LoRA can learn from
/// the tiny model's image embeddings and apply to images it never saw.
fn class_picture(fake: bool, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base: [i32; 3] = if fake { [205, 70, 60] } else { [60, 80, 205] };
    let (cx, cy, r) = (rng.gen_range(8..40), rng.gen_range(8..40), rng.gen_range(4..12));
    let blob: [i32; 3] = [rng.gen_range(0..256), rng.gen_range(0..256), rng.gen_range(0..256)];
    RgbImage::from_fn(48, 48, |x, y| {
        let inside = (x as i32 - cx).pow(2) + (y as i32 - cy).pow(2) < r * r;
        let mut px = |c: usize| {
            let v = if inside { blob[c] } else { base[c] + rng.gen_range(-45..45) };
            v.clamp(0, 255) as u8
        };
        image::Rgb([px(0), px(1), px(2)])
    })
}

fn png(img: &RgbImage) -> Vec<u8> {
    common::encode(img, image::ImageFormat::Png)
}

fn request(id: Uuid, img: &RgbImage) -> Vec<u8> {
    serde_json::json!({
        "schema_version": 1,
        "request_id": id,
        "image": {"base64": base64::engine::general_purpose::STANDARD.encode(png(img))},
    })
    .to_string()
    .into_bytes()
}

fn correction(id: Uuid, fake: bool, minute: u32) -> Vec<u8> {
    let mut c = serde_json::json!({
        "request_id": id,
        "reviewer": "reviewer-1",
        "label": if fake { "fake" } else { "real" },
        "created_at": format!("2026-11-27T10:{minute:02}:00Z"),
    });
    if fake {
        c["forgery_type"] = "face_swap".into();
    }
    c.to_string().into_bytes()
}

/// An image of the test set: its request id, whether it is forged, its picture.
struct Case {
    id: Uuid,
    fake: bool,
    picture: RgbImage,
}

fn cases(prefix: u128, n: usize, seed: u64) -> Vec<Case> {
    (0..n)
        .map(|i| Case {
            id: Uuid::from_u128((prefix << 64) | i as u128),
            fake: i % 2 == 0,
            picture: class_picture(i % 2 == 0, seed + i as u64),
        })
        .collect()
}

async fn analyse(env: &Env, cases: &[Case], salt: u128) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for c in cases {
        let id = Uuid::from_u128(c.id.as_u128() ^ (salt << 120));
        env.produce(&id.to_string(), &request(id, &c.picture), &[]).await;
        ids.push(id);
    }
    ids
}

async fn verdicts(env: &Env) -> HashMap<Uuid, (String, Option<String>)> {
    sqlx::query_as::<_, (Uuid, String, Option<String>)>("SELECT request_id, label, adapter_id FROM verdicts")
        .fetch_all(&env.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, label, adapter)| (id, (label, adapter)))
        .collect()
}

async fn wait_verdicts(env: &Env, n: i64) {
    let got = env.wait_count("SELECT count(*) FROM verdicts", n, Duration::from_secs(120)).await;
    assert_eq!(got, n, "verdicts stored");
}

fn accuracy(v: &HashMap<Uuid, (String, Option<String>)>, ids: &[Uuid], cases: &[&Case]) -> f64 {
    let right = ids
        .iter()
        .zip(cases)
        .filter(|(id, c)| v[*id].0 == if c.fake { "fake" } else { "real" })
        .count();
    right as f64 / ids.len() as f64
}

/// Retrain settings for the tiny model: small and quick, deterministic.
const TRAIN_ENV: [(&str, &str); 7] = [
    ("DFA__RETRAIN__RANK", "4"),
    ("DFA__RETRAIN__ALPHA", "8"),
    ("DFA__RETRAIN__DROPOUT", "0"),
    ("DFA__RETRAIN__EPOCHS", "8"),
    ("DFA__RETRAIN__LEARNING_RATE", "0.005"),
    ("DFA__RETRAIN__BATCH_SIZE", "4"),
    ("DFA__ENGINE__THREADS", "2"),
];

fn retrain(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> (serde_json::Value, String) {
    let mut all: Vec<(&str, &str)> = TRAIN_ENV.to_vec();
    all.extend_from_slice(extra);
    let mut cmd = vec!["retrain"];
    cmd.extend_from_slice(args);
    let out = env.run_dfa(&cmd, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "dfa retrain failed: {stderr}");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report JSON: {e}; stderr {stderr}"));
    (report, stderr)
}

async fn wait_for_log(worker: &Worker, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !worker.stderr().contains(needle) {
        assert!(Instant::now() < deadline, "worker never logged `{needle}`:\n{}", worker.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn active_adapter(env: &Env) -> Option<String> {
    sqlx::query_scalar("SELECT id FROM adapters WHERE status = 'active'")
        .fetch_optional(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn corrections_retrain_promote_hot_swap_gate_and_rollback() {
    let env = Env::new("loop").await;
    let worker = env.start_worker(&[]);
    let corrected = cases(0xC0, 24, 100);
    let unseen = cases(0x55, 8, 900);
    // The held-out split is a hash of the request id: fixed for these ids.
    let held: Vec<&Case> = corrected.iter().filter(|c| is_held_out(&format!("correction:{}", c.id), 0.2)).collect();
    assert!(held.len() >= 3 && held.len() <= 8, "{} held out", held.len());

    // 1. The base model's verdicts.
    analyse(&env, &corrected, 0).await;
    let unseen_before = analyse(&env, &unseen, 0).await;
    wait_verdicts(&env, 32).await;
    let before = verdicts(&env).await;
    let unseen_refs: Vec<&Case> = unseen.iter().collect();
    let accuracy_before = accuracy(&before, &unseen_before, &unseen_refs);
    let contradicted = corrected
        .iter()
        .filter(|c| before[&c.id].0 != if c.fake { "fake" } else { "real" })
        .count();
    assert!(contradicted > 0, "the corrections must contradict some verdicts");

    // 2. Reviewers correct them (an early, wrong correction is superseded).
    env.produce_feedback("x", &correction(corrected[0].id, !corrected[0].fake, 0)).await;
    for c in &corrected {
        env.produce_feedback(&c.id.to_string(), &correction(c.id, c.fake, 5)).await;
    }
    env.wait_count("SELECT count(*) FROM corrections WHERE created_at = '2026-11-27T10:05:00Z'", 24, Duration::from_secs(60)).await;
    assert_eq!(env.count("SELECT count(*) FROM corrections").await, 24);

    // 3. Retrain: the candidate is promoted, the worker switches without restart.
    let (report, _) = retrain(&env, &[], &[]);
    assert_eq!(report["outcome"], "promoted", "{report:#}");
    assert_eq!(report["new_corrections"], 24);
    let first = report["candidate"].as_str().unwrap().to_string();
    assert_eq!(active_adapter(&env).await.as_deref(), Some(first.as_str()));
    wait_for_log(&worker, &format!("now serving adapter adapter={first}")).await;

    let again = analyse(&env, &corrected, 1).await;
    let unseen_after = analyse(&env, &unseen, 1).await;
    wait_verdicts(&env, 64).await;
    let after = verdicts(&env).await;
    for (id, c) in again.iter().zip(&corrected) {
        assert_eq!(after[id].1.as_deref(), Some(first.as_str()), "verdicts name the new adapter");
        if !held.iter().any(|h| h.id == c.id) {
            assert_eq!(after[id].0, if c.fake { "fake" } else { "real" }, "a corrected image keeps its correction");
        }
    }
    let accuracy_after = accuracy(&after, &unseen_after, &unseen_refs);
    assert!(
        accuracy_after >= accuracy_before,
        "uncorrected images: accuracy {accuracy_before} before, {accuracy_after} after"
    );

    // 4. Nothing new: nothing to train, exit 0.
    let (report, _) = retrain(&env, &[], &[]);
    assert_eq!(report["outcome"], "nothing_to_train");
    assert!(report["message"].as_str().unwrap().contains("nothing to train"));

    // 5. The gate: a candidate taught flipped labels is rejected.
    let flipped = cases(0xF1, 16, 5000);
    analyse(&env, &flipped, 0).await;
    wait_verdicts(&env, 80).await;
    for c in &flipped {
        env.produce_feedback(&c.id.to_string(), &correction(c.id, !c.fake, 7)).await;
    }
    env.wait_count("SELECT count(*) FROM corrections", 40, Duration::from_secs(60)).await;
    let (report, _) = retrain(&env, &[], &[("DFA__RETRAIN__REPLAY_RATIO", "0")]);
    assert_eq!(report["outcome"], "rejected", "{report:#}");
    assert!(report["message"].as_str().unwrap().contains("worse than the active adapter"));
    assert_eq!(active_adapter(&env).await.as_deref(), Some(first.as_str()), "the active adapter stays");
    let status: String = sqlx::query_scalar("SELECT status FROM adapters WHERE id = $1")
        .bind(report["candidate"].as_str().unwrap())
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "rejected");

    // 6. Rollback: the workers return to the base model.
    let out = env.run_dfa(&["adapters", "rollback"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(active_adapter(&env).await, None);
    wait_for_log(&worker, "now serving adapter adapter=none").await;
    let last = analyse(&env, &unseen[..1], 2).await;
    wait_verdicts(&env, 81).await;
    let v = verdicts(&env).await;
    assert_eq!(v[&last[0]].1, None, "after rollback no adapter is applied");
    let listed = env.run_dfa(&["adapters", "list"], &[]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("\"status\":\"retired\"") && text.contains("\"status\":\"rejected\""));
}
