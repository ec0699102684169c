//! The learning loop on the tiny model, a real broker and Postgres: verdicts,
//! reviewers' corrections on the feedback topic, `dfa retrain`, promotion,
//! hot swap in the running worker, the gate, rollback, and bad input.
//!
//! Longer than most files on purpose: the closed loop is one story (verdicts →
//! corrections → retrain → swap → rollback) told across a few tests that share
//! one generated model and one `dfa` binary per test binary.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::services::{Env, Worker};
use common::{class_picture, TRAIN_ENV};
use dfa::domain::prompts::Prompts;
use dfa::learning::dataset::parse_dataset;
use dfa::learning::items::{is_held_out, ImageRef};
use image::RgbImage;
use uuid::Uuid;

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
        env.produce(&id.to_string(), &request(id, &c.picture), &[])
            .await;
        ids.push(id);
    }
    ids
}

async fn verdicts(env: &Env) -> HashMap<Uuid, (String, Option<String>)> {
    sqlx::query_as::<_, (Uuid, String, Option<String>)>(
        "SELECT request_id, label, adapter_id FROM verdicts",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, label, adapter)| (id, (label, adapter)))
    .collect()
}

async fn wait_verdicts(env: &Env, n: i64) {
    let got = env
        .wait_count("SELECT count(*) FROM verdicts", n, Duration::from_secs(120))
        .await;
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

fn retrain(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> (serde_json::Value, String) {
    let mut all: Vec<(&str, &str)> = TRAIN_ENV.to_vec();
    all.extend_from_slice(extra);
    let mut cmd = vec!["retrain"];
    cmd.extend_from_slice(args);
    let out = env.run_dfa(&cmd, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "dfa retrain failed: {stderr}");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report JSON: {e}; stderr {stderr}"));
    (report, stderr)
}

async fn wait_for_log(worker: &Worker, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !worker.stderr().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "worker never logged `{needle}`:\n{}",
            worker.stderr()
        );
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
    let held: Vec<&Case> = corrected
        .iter()
        .filter(|c| is_held_out(&format!("correction:{}", c.id), 0.2))
        .collect();
    assert!(
        held.len() >= 3 && held.len() <= 8,
        "{} held out",
        held.len()
    );

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
    assert!(
        contradicted > 0,
        "the corrections must contradict some verdicts"
    );

    // 2. Reviewers correct them (an early, wrong correction is superseded).
    env.produce_feedback("x", &correction(corrected[0].id, !corrected[0].fake, 0))
        .await;
    for c in &corrected {
        env.produce_feedback(&c.id.to_string(), &correction(c.id, c.fake, 5))
            .await;
    }
    let stored = env
        .wait_count(
            "SELECT count(*) FROM corrections WHERE created_at = '2026-11-27T10:05:00Z'",
            24,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        stored, 24,
        "every correction stored, superseding the early one"
    );
    assert_eq!(env.count("SELECT count(*) FROM corrections").await, 24);

    // 3. Retrain: the candidate is promoted, the worker switches without restart.
    let (report, _) = retrain(&env, &[], &[]);
    assert_eq!(report["outcome"], "promoted", "{report:#}");
    assert_eq!(report["new_corrections"], 24);
    let first = report["candidate"].as_str().unwrap().to_string();
    assert_eq!(active_adapter(&env).await.as_deref(), Some(first.as_str()));
    wait_for_log(&worker, &format!("now serving adapter adapter={first}")).await;
    let metrics = worker.metrics().await;
    assert!(
        metrics.contains(&format!("dfa_serving_adapter{{adapter=\"{first}\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("dfa_corrections_total{outcome=\"inserted\"} 24"),
        "{metrics}"
    );

    let again = analyse(&env, &corrected, 1).await;
    let unseen_after = analyse(&env, &unseen, 1).await;
    wait_verdicts(&env, 64).await;
    let after = verdicts(&env).await;
    for (id, c) in again.iter().zip(&corrected) {
        assert_eq!(
            after[id].1.as_deref(),
            Some(first.as_str()),
            "verdicts name the new adapter"
        );
        if !held.iter().any(|h| h.id == c.id) {
            assert_eq!(
                after[id].0,
                if c.fake { "fake" } else { "real" },
                "a corrected image keeps its correction"
            );
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
    assert!(report["message"]
        .as_str()
        .unwrap()
        .contains("nothing to train"));

    // 5. The gate: a candidate taught flipped labels is rejected.
    let flipped = cases(0xF1, 16, 5000);
    analyse(&env, &flipped, 0).await;
    wait_verdicts(&env, 80).await;
    for c in &flipped {
        env.produce_feedback(&c.id.to_string(), &correction(c.id, !c.fake, 7))
            .await;
    }
    let flipped_stored = env
        .wait_count(
            "SELECT count(*) FROM corrections WHERE created_at = '2026-11-27T10:07:00Z'",
            16,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(flipped_stored, 16, "every flipped correction stored");
    assert_eq!(env.count("SELECT count(*) FROM corrections").await, 40);
    let (report, _) = retrain(&env, &[], &[("DFA__RETRAIN__REPLAY_RATIO", "0")]);
    assert_eq!(report["outcome"], "rejected", "{report:#}");
    assert!(report["message"]
        .as_str()
        .unwrap()
        .contains("worse than the active adapter"));
    assert_eq!(
        active_adapter(&env).await.as_deref(),
        Some(first.as_str()),
        "the active adapter stays"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM adapters WHERE id = $1")
        .bind(report["candidate"].as_str().unwrap())
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "rejected");

    // 6. Rollback while requests are in flight: none is lost or failed, and
    // the workers return to the base model.
    let busy = cases(0xB5, 12, 7000);
    analyse(&env, &busy, 0).await;
    let out = env.run_dfa(&["adapters", "rollback"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(active_adapter(&env).await, None);
    wait_for_log(&worker, "now serving adapter adapter=none").await;
    wait_verdicts(&env, 92).await;
    let last = analyse(&env, &unseen[..1], 2).await;
    wait_verdicts(&env, 93).await;
    assert_eq!(
        env.count("SELECT count(*) FROM rejected_requests").await,
        0,
        "nothing dead-lettered"
    );
    let v = verdicts(&env).await;
    assert_eq!(v[&last[0]].1, None, "after rollback no adapter is applied");
    let listed = env.run_dfa(&["adapters", "list"], &[]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("\"status\":\"retired\"") && text.contains("\"status\":\"rejected\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn feedback_is_stored_once_superseded_by_later_and_bad_feedback_is_dead_lettered() {
    let env = Env::new("feedback").await;
    let _worker = env.start_worker(&[]);
    let known = cases(0xFE, 1, 1);
    analyse(&env, &known, 0).await;
    wait_verdicts(&env, 1).await;
    let id = known[0].id;
    // The same correction twice, an older one late, then a newer one.
    env.produce_feedback("k", &correction(id, true, 10)).await;
    env.produce_feedback("k", &correction(id, true, 10)).await;
    env.produce_feedback("k", &correction(id, false, 5)).await;
    let unknown = Uuid::from_u128(42);
    env.produce_feedback("k", &correction(unknown, true, 10))
        .await;
    env.produce_feedback("k", b"{not json").await;
    env.produce_feedback("k", br#"{"request_id":"00000000-0000-0000-0000-000000000001","reviewer":"r","label":"real","forgery_type":"face_swap","created_at":"2026-11-27T10:00:00Z"}"#).await;
    env.produce_feedback("k", &correction(id, false, 20)).await;

    let dead = env.read_topic(&env.dlq, 3, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 3);
    let mut kinds: Vec<&str> = dead
        .iter()
        .map(|m| m.headers["dfa-error-kind"].as_str())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["invalid_field", "invalid_json", "unknown_request"]);
    let unknown_dl = dead
        .iter()
        .find(|m| m.headers["dfa-error-kind"] == "unknown_request")
        .unwrap();
    assert!(unknown_dl.headers["dfa-error-reason"].contains(&unknown.to_string()));
    assert_eq!(unknown_dl.headers["dfa-original-topic"], env.feedback);
    let recorded = env
        .wait_count(
            "SELECT count(*) FROM rejected_requests",
            3,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(recorded, 3, "each dead-lettered correction is recorded");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT label, created_at FROM corrections")
                .fetch_all(&env.pool)
                .await
                .unwrap();
        if rows.len() == 1 && rows[0].0 == "real" {
            assert_eq!(rows[0].1.to_rfc3339(), "2026-11-27T10:20:00+00:00");
            break;
        }
        assert!(Instant::now() < deadline, "corrections: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut lines = Vec::new();
    for (i, c) in cases(0xDA, 10, 300).iter().enumerate() {
        let name = format!("images/{i}.png");
        std::fs::write(dir.join(&name), png(&c.picture)).unwrap();
        let answer = if c.fake { "Yes." } else { "No." };
        lines.push(
            serde_json::json!({
                "id": format!("item-{i}"), "image": name,
                "conversations": [
                    {"from": "human", "value": "<image>\nHas this face been forged?"},
                    {"from": "gpt", "value": answer}
                ]
            })
            .to_string(),
        );
        if i == 2 {
            lines.push(
                r#"{"id": "broken", "image": "x.png", "conversations": [{"from": "human""#.into(),
            );
        }
    }
    lines.push(serde_json::json!({
        "id": "gone", "image": "images/missing.png",
        "conversations": [{"from": "human", "value": "<image>\nHas this face been forged?"}, {"from": "gpt", "value": "No."}]
    }).to_string());
    let path = dir.join("dfa-instruct.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// How many of the dataset's labelled items with a readable image fall in
/// the held-out split (at the default `retrain.eval_fraction`).
fn held_out_dataset_items(path: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let base = path.parent().unwrap();
    let (items, _) = parse_dataset(&text, base, &Prompts::embedded());
    items
        .iter()
        .filter(|i| is_held_out(&i.key, 0.2) && i.label.is_some())
        .filter(|i| matches!(&i.image, ImageRef::File(p) if p.is_file()))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn retrain_reports_empty_feedback_bad_dataset_lines_and_missing_images() {
    let env = Env::new("retrain_input").await;
    // No corrections at all: nothing to train, exit 0.
    let (report, stderr) = retrain(&env, &[], &[]);
    assert_eq!(report["outcome"], "nothing_to_train");
    assert!(
        stderr.contains("nothing to train: no new corrections"),
        "{stderr}"
    );

    let dataset = write_dataset(&env.dir);
    let ds = dataset.to_str().unwrap();
    // --strict: the corrupt line is fatal and named.
    let out = env.run_dfa(&["retrain", "--dataset", ds, "--strict"], &TRAIN_ENV);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 4:") && stderr.contains("--strict"),
        "{stderr}"
    );
    assert_eq!(env.count("SELECT count(*) FROM adapters").await, 0);

    // --dry-run: reports the plan, trains nothing.
    let (report, _) = retrain(&env, &["--dataset", ds, "--dry-run"], &[]);
    assert_eq!(report["outcome"], "dry_run");
    assert_eq!(report["dataset_items"], 11);
    assert_eq!(env.count("SELECT count(*) FROM adapters").await, 0);

    // Default: the bad line and the missing image are reported and skipped;
    // a DFA-GPT-style adapter is trained from the dataset alone. The gate
    // judges it on the held-out dataset items only (no corrections); allowed
    // any drop there, it must promote.
    let held_out = held_out_dataset_items(&dataset);
    assert!(held_out > 0, "the dataset holds out no readable item");
    let (report, stderr) = retrain(
        &env,
        &["--dataset", ds],
        &[("DFA__RETRAIN__MAX_HELDOUT_DROP", "1")],
    );
    assert!(
        stderr.contains("line 4:") && stderr.contains("(skipped)"),
        "{stderr}"
    );
    assert!(stderr.contains("missing.png"), "{stderr}");
    let skipped = report["skipped"].as_array().unwrap();
    assert!(skipped
        .iter()
        .any(|s| s.as_str().unwrap().contains("missing.png")));
    assert_eq!(report["outcome"], "promoted", "{report:#}");
    assert_eq!(
        report["candidate_scores"]["heldout_detection"]["total"], held_out,
        "{report:#}"
    );
    assert_eq!(
        active_adapter(&env).await.as_deref(),
        report["candidate"].as_str()
    );
    let losses = report["train"]["epoch_losses"].as_array().unwrap();
    assert!(
        losses.last().unwrap().as_f64() < losses[0].as_f64(),
        "{losses:?}"
    );
    let row: (String, serde_json::Value) =
        sqlx::query_as("SELECT origin, training_data FROM adapters")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(row.0, "retrain");
    assert_eq!(row.1["dataset"]["items"], 11);
    assert!(row.1["dataset"]["sha256"].as_str().unwrap().len() == 64);

    // The gate judged with DFA-Bench's evaluator; its held-out report is
    // stored with the adapter, and `dfa adapters list` shows its headline.
    let metrics: serde_json::Value = sqlx::query_scalar("SELECT metrics FROM adapters")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let stored = &metrics["report"]["detection"];
    assert_eq!(stored["items"], held_out, "{metrics:#}");
    let tally = &report["candidate_scores"]["heldout_detection"];
    let accuracy = tally["correct"].as_f64().unwrap() / tally["total"].as_f64().unwrap();
    assert!((stored["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-12);
    assert_eq!(report["candidate_report"], metrics["report"]);
    assert!(metrics["active_report"]["detection"]["items"] == held_out);
    let listed = env.run_dfa(&["adapters", "list"], &[]);
    let line: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("one JSON line");
    assert_eq!(line["headline"]["accuracy"], stored["accuracy"]);
    assert_eq!(line["headline"]["heldout_items"], held_out);
    let table = env.run_dfa(&["adapters", "list", "--table"], &[]);
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with(report["candidate"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains(&format!("{:.1}%", 100.0 * accuracy)) && row.contains("trained"),
        "{table}"
    );

    // From a dataset, the projector is trained too (`train_projector =
    // "auto"`): the registry holds the pair, and the promoted pair serves.
    let (id, hyper, mmproj_path, mmproj_sha): (
        String,
        serde_json::Value,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as("SELECT id, hyper_parameters, mmproj_path, mmproj_sha256 FROM adapters")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(hyper["config"]["train_projector"], true, "{hyper:#}");
    let (mmproj_path, mmproj_sha) = (mmproj_path.unwrap(), mmproj_sha.unwrap());
    assert_eq!(mmproj_path, format!("{id}.mmproj.gguf"));
    let file = env.dir.join("adapters").join(&mmproj_path);
    assert_eq!(dfa::domain::sha256_file(&file).unwrap(), mmproj_sha);
    assert_ne!(
        mmproj_sha,
        dfa::domain::sha256_file(&common::tiny().mmproj).unwrap(),
        "the projector did not change"
    );
    let _worker = env.start_worker(&[]);
    let id = Uuid::from_u128(0xDA7A);
    env.produce(&id.to_string(), &request(id, &class_picture(true, 1)), &[])
        .await;
    wait_verdicts(&env, 1).await;
    let served: (Option<String>, String) =
        sqlx::query_as("SELECT adapter_id, mmproj_sha256 FROM verdicts")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        served,
        (report["candidate"].as_str().map(str::to_string), mmproj_sha)
    );
}

/// A PEFT adapter directory for the tiny model (hidden 64, 2 layers, 2 KV
/// heads of 16): q_proj and v_proj at rank 2; `in_dim` lets a test break it.
fn write_peft(dir: &std::path::Path, in_dim: usize) {
    use candle_core::{Device, Tensor};
    std::fs::create_dir_all(dir).unwrap();
    let mut tensors = HashMap::new();
    for layer in 0..2 {
        for (module, out) in [("q_proj", 64), ("v_proj", 32)] {
            let name = |ab: &str| {
                format!("base_model.model.model.layers.{layer}.self_attn.{module}.lora_{ab}.weight")
            };
            let a = Tensor::full(0.01f32, (2, in_dim), &Device::Cpu).unwrap();
            let b = Tensor::full(0.02f32, (out, 2), &Device::Cpu).unwrap();
            tensors.insert(name("A"), a);
            tensors.insert(name("B"), b);
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"]}"#,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn lora_import_registers_a_candidate_and_refuses_what_llama_cpp_cannot_load() {
    let env = Env::new("import").await;
    let good = env.dir.join("peft-good");
    write_peft(&good, 64);
    let out = env.run_dfa(
        &[
            "lora",
            "import",
            good.to_str().unwrap(),
            "--id",
            "peft-good",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row: (String, String, String) =
        sqlx::query_as("SELECT status, origin, path FROM adapters WHERE id = 'peft-good'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!((row.0.as_str(), row.1.as_str()), ("candidate", "import"));
    assert!(env.dir.join("adapters").join(&row.2).is_file());

    // Shapes that do not fit the base: llama.cpp refuses, nothing is registered.
    let bad = env.dir.join("peft-bad");
    write_peft(&bad, 48);
    let out = env.run_dfa(
        &["lora", "import", bad.to_str().unwrap(), "--id", "peft-bad"],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot apply this adapter"));
    assert_eq!(env.count("SELECT count(*) FROM adapters").await, 1);
    let files = std::fs::read_dir(env.dir.join("adapters")).unwrap().count();
    assert_eq!(files, 1, "a refused adapter leaves no file behind");
    let again = env.run_dfa(
        &[
            "lora",
            "import",
            good.to_str().unwrap(),
            "--id",
            "peft-good",
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already registered"));

    // A file that changed since it was registered is never promoted.
    let file = env.dir.join("adapters").join(&row.2);
    let original = std::fs::read(&file).unwrap();
    let mut tampered = original.clone();
    tampered.push(0);
    std::fs::write(&file, &tampered).unwrap();
    let out = env.run_dfa(&["adapters", "promote", "peft-good"], &[]);
    assert!(!out.status.success(), "a changed file was promoted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("differs from the registry's"), "{stderr}");
    assert_eq!(active_adapter(&env).await, None);
    std::fs::write(&file, &original).unwrap();

    // Operators can promote it; workers would then serve it.
    let out = env.run_dfa(&["adapters", "promote", "peft-good"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(active_adapter(&env).await.as_deref(), Some("peft-good"));
}
