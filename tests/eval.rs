//! `dfa eval` (DFA-Bench) on the tiny model, real llama.cpp and Postgres: a
//! labelled dataset whose answers the test controls, the outputs checked
//! against numbers the test computes itself, bad input, and `--compare`
//! of the base model with an adapter trained on the dataset.

mod common;

use std::path::{Path, PathBuf};

use common::services::Env;
use common::{class_picture, TRAIN_ENV};

const CLASSIFY: &str = "What kind of technique is used to manipulate the image?";
const ARTIFACTS: &str =
    "Can you detail the specific regions of the facial image where artifacts is evident?";

/// 24 items, fakes reddish and reals bluish (`class_picture`); fakes say
/// their type and artifacts, two items hold a free-conversation turn, the
/// first 12 come from `set-a`; plus a corrupt line and a missing image.
fn write_dataset(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut lines = Vec::new();
    for i in 0..24u64 {
        let fake = i % 2 == 0;
        let name = format!("img/{i}.png");
        std::fs::write(
            dir.join(&name),
            common::encode(&class_picture(fake, 500 + i), image::ImageFormat::Png),
        )
        .unwrap();
        let mut conv = vec![
            serde_json::json!({"from": "human", "value": "<image>\nHas this face been forged?"}),
            serde_json::json!({"from": "gpt", "value": if fake { "Yes." } else { "No." }}),
        ];
        if fake {
            let ty = if i % 4 == 0 {
                "Face swapping is used."
            } else {
                "Face editing is used."
            };
            conv.extend([
                serde_json::json!({"from": "human", "value": CLASSIFY}),
                serde_json::json!({"from": "gpt", "value": ty}),
                serde_json::json!({"from": "human", "value": ARTIFACTS}),
                serde_json::json!({"from": "gpt", "value": "1. **Eyes**: the reflections differ.\n2. **Mouth and lips**: blurred teeth."}),
            ]);
        }
        if i < 2 {
            conv.extend([
                serde_json::json!({"from": "human", "value": "Why do you say so?"}),
                serde_json::json!({"from": "gpt", "value": "Because of the colours."}),
            ]);
        }
        let mut item =
            serde_json::json!({"id": format!("item-{i}"), "image": name, "conversations": conv});
        if i < 12 {
            item["source"] = "set-a".into();
        }
        lines.push(item.to_string());
        if i == 4 {
            lines.push(r#"{"id": "broken", "image": "#.into());
        }
    }
    lines.push(serde_json::json!({"id": "gone", "image": "img/missing.png", "conversations": [
        {"from": "human", "value": "<image>\nHas this face been forged?"}, {"from": "gpt", "value": "No."}]}).to_string());
    let path = dir.join("bench.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn eval(env: &Env, args: &[&str]) -> (std::process::Output, String) {
    let mut cmd = vec!["eval"];
    cmd.extend_from_slice(args);
    let out = env.run_dfa(&cmd, &TRAIN_ENV);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn predictions(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// ROC AUC by its definition: the share of (fake, real) pairs ordered
/// right, ties counting half.
fn pairwise_auc(scored: &[(f64, bool)]) -> f64 {
    let (mut good, mut pairs) = (0.0, 0.0);
    for (pf, _) in scored.iter().filter(|s| s.1) {
        for (pr, _) in scored.iter().filter(|s| !s.1) {
            pairs += 1.0;
            good += if pf > pr {
                1.0
            } else if pf == pr {
                0.5
            } else {
                0.0
            };
        }
    }
    good / pairs
}

fn detection_of(lines: &[serde_json::Value]) -> (f64, f64) {
    let scored: Vec<(f64, bool)> = lines
        .iter()
        .map(|l| (l["p_fake"].as_f64().unwrap(), l["truth_label"] == "fake"))
        .collect();
    let right = lines
        .iter()
        .filter(|l| l["label"] == l["truth_label"])
        .count();
    (right as f64 / lines.len() as f64, pairwise_auc(&scored))
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_reports_what_the_model_answers_and_compares_adapters() {
    let env = Env::new("eval").await;
    let dataset = write_dataset(&env.dir);
    let ds = dataset.to_str().unwrap();

    // --strict: the corrupt line is fatal and named; nothing is run.
    let (out, stderr) = eval(&env, &["--dataset", ds, "--strict", "--no-adapter"]);
    assert!(!out.status.success());
    assert!(stderr.contains("bad line(s) 6"), "{stderr}");

    // The base model: outputs, and numbers the test recomputes.
    let base_dir = env.dir.join("base");
    let (out, stderr) = eval(
        &env,
        &[
            "--dataset",
            ds,
            "--no-adapter",
            "--out",
            base_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("line 6:") && stderr.contains("(skipped)"),
        "{stderr}"
    );
    assert!(stderr.contains("missing.png"), "{stderr}");
    let report = json(&base_dir.join("report.json"));
    let stdout: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stdout["report"], report["report"]);
    let lines = predictions(&base_dir);
    assert_eq!(lines.len(), 24, "one line per readable item");
    assert_eq!(report["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(report["dataset"]["bad_lines"][0]["line"], 6);
    let (accuracy, auc) = detection_of(&lines);
    let d = &report["report"]["detection"];
    assert!(
        (d["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-12,
        "{d}"
    );
    assert!((d["roc_auc"].as_f64().unwrap() - auc).abs() < 1e-12, "{d}");
    assert_eq!(report["report"]["classification"]["items"], 12);
    assert_eq!(report["report"]["artifacts"]["items"], 12);
    assert_eq!(report["report"]["conversation"]["items"], 2);
    assert_eq!(report["report"]["slices"]["source:set-a"]["items"], 12);
    assert_eq!(report["report"]["slices"]["type:face_swap"]["items"], 6);
    let explained = lines
        .iter()
        .filter(|l| l["explanation"].is_string())
        .count();
    assert_eq!(explained, 12, "explanations where a reference exists");

    // The expected accuracy, from `dfa analyze` on the same images.
    let images: Vec<String> = (0..24)
        .map(|i| {
            env.dir
                .join(format!("img/{i}.png"))
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut args = vec!["analyze", "--no-adapter", "-q"];
    args.extend(images.iter().map(String::as_str));
    let analysed = env.run_dfa(&args, &TRAIN_ENV);
    assert!(
        analysed.status.success(),
        "{}",
        String::from_utf8_lossy(&analysed.stderr)
    );
    let right = String::from_utf8_lossy(&analysed.stdout)
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["verdict"]["label"] == if i % 2 == 0 { "fake" } else { "real" }
        })
        .count();
    assert!(
        (accuracy - right as f64 / 24.0).abs() < 1e-12,
        "eval {accuracy} vs analyze {right}/24"
    );

    // The plots draw the run.
    let roc = std::fs::read_to_string(base_dir.join("roc.svg")).unwrap();
    assert!(roc.starts_with("<svg") && roc.contains(&format!("AUC {auc:.3}")));
    let bins = std::fs::read_to_string(base_dir.join("reliability.svg")).unwrap();
    let nonempty = report["report"]["detection"]["items"].as_u64().unwrap();
    assert!(bins.matches("class=\"bin\"").count() as u64 <= nonempty);
    assert!(bins.matches("class=\"bin\"").count() >= 1);
    let confusion = std::fs::read_to_string(base_dir.join("confusion.svg")).unwrap();
    assert_eq!(confusion.matches("class=\"cell\"").count(), 16);
    let md = std::fs::read_to_string(base_dir.join("report.md")).unwrap();
    assert!(
        md.contains("## Detection (DF-D)") && md.contains("source:set-a"),
        "{md}"
    );

    // An adapter trained on the dataset, promoted; then base vs active.
    let trained = env.run_dfa(
        &["retrain", "--dataset", ds],
        &[
            TRAIN_ENV.as_slice(),
            &[("DFA__RETRAIN__MAX_HELDOUT_DROP", "1")],
        ]
        .concat(),
    );
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    // An earlier run of another dataset is not paired with this one.
    let other_dir = env.dir.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::copy(
        base_dir.join("predictions.jsonl"),
        other_dir.join("predictions.jsonl"),
    )
    .unwrap();
    let mut other = report.clone();
    other["dataset"]["sha256"] = "0".repeat(64).into();
    std::fs::write(other_dir.join("report.json"), other.to_string()).unwrap();
    let (out, stderr) = eval(
        &env,
        &[
            "--dataset",
            ds,
            "--compare",
            other_dir.to_str().unwrap(),
            "base",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr.contains("made from another dataset"), "{stderr}");

    let cmp_dir = env.dir.join("cmp");
    let (out, stderr) = eval(
        &env,
        &[
            "--dataset",
            ds,
            "--compare",
            base_dir.to_str().unwrap(),
            "active",
            "--out",
            cmp_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| accuracy |") && table.contains("CI ["),
        "{table}"
    );
    let cmp = json(&cmp_dir.join("compare.json"));
    let (active_accuracy, _) = detection_of(&predictions(&cmp_dir.join("b")));
    assert!(
        active_accuracy > accuracy,
        "trained adapter {active_accuracy} vs base {accuracy}"
    );
    let ci = &cmp["accuracy_interval"];
    let diff = ci["difference"].as_f64().unwrap();
    assert!(
        (diff - (active_accuracy - accuracy)).abs() < 1e-12,
        "{cmp:#}"
    );
    assert!(ci["low"].as_f64().unwrap() <= diff && diff <= ci["high"].as_f64().unwrap());
    assert_eq!(cmp["paired_items"], 24);
}
