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
        // The generated pictures hold no face: tests not about faces screen
        // them whole; the face tests pass --faces.
        .env("DFA__FACES__MODE", "off")
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

/// The drawn outline colours (src/cli/analyze/draw.rs): fake red, real green.
fn outline_colour(label: &str) -> image::Rgb<u8> {
    match label {
        "fake" => image::Rgb([225, 30, 30]),
        "real" => image::Rgb([0, 170, 60]),
        other => panic!("unexpected label {other}"),
    }
}

fn face_box(face: &Value) -> dfa::faces::FaceBox {
    let b = &face["bbox"];
    let n = |k: &str| b[k].as_u64().expect("bbox fields are integers") as u32;
    dfa::faces::FaceBox {
        x: n("x"),
        y: n("y"),
        w: n("w"),
        h: n("h"),
        score: 0.0,
    }
}

fn write_png(dir: &Path, name: &str, img: &image::RgbImage) {
    std::fs::write(dir.join(name), common::encode(img, ImageFormat::Png)).unwrap();
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn faces_are_found_boxed_and_drawn_and_a_blank_page_has_none() {
    common::tiny();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let group = common::two_faces();
    write_png(d, "group.png", &group);
    let page = image::RgbImage::from_pixel(1200, 1600, image::Rgb([250, 250, 250]));
    write_png(d, "page.png", &page);

    let out = dfa(d)
        .args([
            "analyze",
            "--faces",
            "detect",
            "--annotate",
            "drawn/new",
            "group.png",
            "page.png",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "{stderr}");

    // Two faces, largest first, each near where it was pasted.
    let v = &lines[0]["verdict"];
    assert_eq!(v["status"], "analysed", "{v}");
    assert_eq!(v["face_mode"], "detect");
    assert_eq!(v["face_count"], 2, "{v}");
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2, "{v}");
    let pasted = [common::TWO_FACES_AT[1], common::TWO_FACES_AT[0]];
    for (i, (face, (x, y, w, h))) in faces.iter().zip(pasted).enumerate() {
        assert_eq!(face["index"], i as u64);
        let want = dfa::faces::FaceBox {
            x,
            y,
            w,
            h,
            score: 0.0,
        };
        let iou = face_box(face).iou(&want);
        assert!(iou >= 0.5, "IoU {iou}: found {face}, pasted at {want:?}");
    }
    let most = faces
        .iter()
        .map(|f| f["p_fake"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(
        v["p_fake"].as_f64().unwrap(),
        most,
        "the image is its most suspicious face"
    );

    // The drawn copy: same size, each face's outline in its label's colour,
    // the canvas untouched away from the faces.
    let drawn_path = d.join("drawn/new/group.faces.png");
    assert_eq!(lines[0]["annotated"], "drawn/new/group.faces.png");
    let drawn = image::open(&drawn_path).expect("annotated PNG").to_rgb8();
    assert_eq!(drawn.dimensions(), group.dimensions());
    for face in faces {
        let b = face_box(face);
        let colour = outline_colour(face["label"].as_str().unwrap());
        for (x, y) in [
            (b.x, b.y + b.h / 2),
            (b.x + b.w - 1, b.y + b.h / 2),
            (b.x + b.w / 2, b.y + b.h - 1),
        ] {
            assert_eq!(
                drawn.get_pixel(x, y),
                &colour,
                "outline of {face} at ({x}, {y})"
            );
        }
        let (cx, cy) = (b.x + b.w / 2, b.y + b.h / 2);
        assert_eq!(
            drawn.get_pixel(cx, cy),
            group.get_pixel(cx, cy),
            "the face itself"
        );
    }
    for (x, y) in [(1000, 100), (50, 1150), (1999, 0)] {
        assert_eq!(drawn.get_pixel(x, y), group.get_pixel(x, y), "({x}, {y})");
    }

    // No face: nothing screened, a caption on the drawn copy.
    let v = &lines[1]["verdict"];
    assert_eq!(lines[1]["ok"], true);
    assert_eq!(v["status"], "no_face", "{v}");
    assert!(v["p_fake"].is_null() && v["label"].is_null(), "{v}");
    assert_eq!(v["face_count"], 0);
    let drawn = image::open(d.join("drawn/new/page.faces.png"))
        .expect("annotated PNG")
        .to_rgb8();
    assert_eq!(drawn.dimensions(), page.dimensions());
    assert_ne!(drawn, page, "the no-face caption is drawn");

    // People read the faces and their boxes on stderr.
    let b = face_box(&faces[0]);
    let box_text = format!("at x={} y={} {}x{}", b.x, b.y, b.w, b.h);
    assert!(stderr.contains("group.png: "), "{stderr}");
    assert!(stderr.contains(&box_text), "{box_text} in {stderr}");
    assert!(stderr.contains("page.png: no face"), "{stderr}");
}

#[test]
fn faces_off_screens_the_picture_whole_and_draws_nothing() {
    common::tiny();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let group = common::two_faces();
    write_png(d, "group.png", &group);
    let out = dfa(d)
        .env("DFA__FACES__MODE", "detect")
        .args([
            "analyze",
            "--faces",
            "off",
            "--annotate",
            "drawn",
            "group.png",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &line["verdict"];
    assert_eq!(v["face_mode"], "off", "{v}");
    assert!(v["face_count"].is_null(), "{v}");
    assert_eq!(v["faces"].as_array().map(Vec::len), Some(0), "{v}");
    let p = v["p_fake"].as_f64().expect("screened whole");
    assert!((0.0..=1.0).contains(&p));
    let drawn = image::open(d.join("drawn/group.faces.png"))
        .expect("written even with faces off")
        .to_rgb8();
    assert_eq!(drawn, group, "nothing drawn with faces off");
}

#[test]
fn an_annotate_dir_that_cannot_be_made_fails_before_any_image() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("taken"), b"a file").unwrap();
    let out = dfa(dir.path())
        .args(["analyze", "--annotate", "taken/out", "x.png"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no image was attempted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--annotate: cannot create taken/out"),
        "{stderr}"
    );
}
