//! `dfa analyze` as a newcomer runs it: the real binary on files.

mod common;

use std::path::Path;
use std::process::Command;

use image::ImageFormat;
use serde_json::Value;

fn dfa(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dfa"));
    cmd.current_dir(dir)
        .env("DFA__MODEL__TINY_DIR", common::tiny_dir())
        .env("DFA__ENGINE__THREADS", "2")
        .env("DFA__ANALYSIS__MAX_EXPLAIN_TOKENS", "16")
        .env_remove("DFA_ENV");
    cmd
}

/// A PNG whose header claims `w`x`h` pixels but carries almost no data.
fn claimed_huge_png(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = common::encode(&common::picture(1, 16, 16), ImageFormat::Png);
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn bad_images_get_typed_errors_and_good_ones_still_get_verdicts() {
    common::tiny();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jpeg = common::encode(&common::picture(7, 96, 96), ImageFormat::Jpeg);
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "good-1.png",
            common::encode(&common::picture(1, 64, 64), ImageFormat::Png),
        ),
        ("empty.jpg", Vec::new()),
        ("text.jpg", b"hello, I am not a JPEG at all\n".to_vec()),
        ("truncated.jpg", jpeg[..jpeg.len() / 2].to_vec()),
        ("bomb.png", claimed_huge_png(50_000, 50_000)),
        (
            "dot.png",
            common::encode(&common::picture(2, 1, 1), ImageFormat::Png),
        ),
        ("good-2.jpg", jpeg.clone()),
    ];
    for (name, bytes) in &files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let mut cmd = dfa(d);
    cmd.arg("analyze");
    for (name, _) in &files {
        cmd.arg(name);
    }
    cmd.arg("missing.png");
    let out = cmd.output().expect("run dfa");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "some images failed, so the exit status must say so"
    );
    assert!(
        stderr.contains("MEANINGLESS"),
        "the tiny-model warning is missing: {stderr}"
    );

    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(
        lines.len(),
        files.len() + 1,
        "one line per image, stderr: {stderr}"
    );
    let expected = [
        ("good-1.png", None),
        ("empty.jpg", Some("empty")),
        ("text.jpg", Some("unsupported_format")),
        ("truncated.jpg", Some("corrupt")),
        ("bomb.png", Some("too_large")),
        ("dot.png", Some("too_small")),
        ("good-2.jpg", None),
        ("missing.png", Some("io")),
    ];
    for (line, (name, kind)) in lines.iter().zip(expected) {
        assert_eq!(line["image"], name, "lines keep the input order");
        match kind {
            None => {
                assert_eq!(line["ok"], true, "{line}");
                let v = &line["verdict"];
                let p = v["p_fake"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&p));
                // The default analysis.threshold is 0.5.
                let expected = if p >= 0.5 { "fake" } else { "real" };
                assert_eq!(v["label"], expected, "{line}");
                assert_eq!(v["model"]["base_sha256"].as_str().unwrap().len(), 64);
                assert!(v["timings_ms"]["total"].as_f64().unwrap() > 0.0);
            }
            Some(kind) => {
                assert_eq!(line["ok"], false, "{line}");
                assert_eq!(line["error"]["kind"], kind, "{line}");
                assert!(!line["error"]["message"].as_str().unwrap().is_empty());
            }
        }
    }
}

#[test]
fn adapter_flag_and_questions_show_in_the_verdict() {
    common::tiny();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("face.png");
    std::fs::write(
        &img,
        common::encode(&common::picture(3, 64, 64), ImageFormat::Png),
    )
    .unwrap();
    let out = dfa(dir.path())
        .args(["analyze", "--explain", "--question", "Why?", "--adapter"])
        .arg(&common::tiny().adapters[0])
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &line["verdict"];
    assert_eq!(v["model"]["adapter"]["id"], "lora-a");
    assert!(v["explanation"].is_string());
    assert_eq!(v["answers"][0]["question"], "Why?");
}

#[test]
fn impossible_setting_is_named_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = dfa(dir.path())
        .env("DFA__ANALYSIS__THRESHOLD", "1.5")
        .args(["analyze", "x.png"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("analysis.threshold"), "{stderr}");
}
