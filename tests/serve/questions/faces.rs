//! Follow-ups about one face: a verdict made as the worker makes it from a
//! real picture with two faces (the astronaut portrait pasted twice), and one
//! from a picture with none. Each face's conversation is its own: its crop,
//! its screening turns, its follow-ups, its cache key; a question names no
//! face it does not have.

use std::sync::Arc;

use dfa::domain::access::Role;
use dfa::domain::dialogue::{face_conversation_key, verdict_turns, Screened};
use dfa::domain::prompts::Turn;
use dfa::domain::{FaceMode, FaceVerdict, Verdict, VerdictStatus};
use dfa::engine::analyze::{analyze_bytes, Stages};
use dfa::engine::Tasks;
use dfa::intake::DecodedImage;
use dfa::serve::questions::subject::{continuation, subject};
use image::{imageops, ImageFormat, RgbImage};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ask_streaming_body, conversation, engine, events, questions, store_verdict};
use crate::harness::Harness;

fn encoded(img: RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
        .expect("PNG");
    bytes
}

/// samples/astronaut-face.jpg on a 2000×1200 canvas at full size and at
/// three quarters (tests/faces.rs finds both faces where they went).
fn two_astronauts() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/astronaut-face.jpg");
    let face = image::open(path).expect("sample").to_rgb8();
    let mut canvas = RgbImage::from_pixel(2000, 1200, image::Rgb([200, 205, 210]));
    imageops::overlay(&mut canvas, &face, 150, 300);
    let (w, h) = (face.width() * 3 / 4, face.height() * 3 / 4);
    let small = imageops::resize(&face, w, h, imageops::FilterType::CatmullRom);
    imageops::overlay(&mut canvas, &small, 1400, 500);
    encoded(canvas)
}

/// A verdict on `bytes` made as the worker makes it (faces detected, each
/// screened by the serve engine) and stored as the worker stores it.
async fn analysed(h: &Harness, bytes: Vec<u8>) -> Verdict {
    let sha = h.put_image(&bytes).await;
    let faces = h.app.faces.with_mode(FaceMode::Detect);
    let stages = Stages {
        intake: &h.app.intake,
        analysis: &h.app.settings.analysis,
        faces: &faces,
    };
    let tasks = Tasks::requested(true, 0.5, vec![]);
    let verdict = analyze_bytes(
        h.app.engine.as_ref(),
        Uuid::new_v4(),
        Arc::new(bytes),
        tasks,
        stages,
    )
    .await
    .expect("analysed");
    store_verdict(h, &sha, &verdict).await;
    verdict
}

/// What the next question about `face` would be given: its history, its
/// cache key and its image, as the route prepares it.
async fn next_question(
    h: &Harness,
    id: Uuid,
    face: Option<u32>,
) -> (Vec<Turn>, Option<String>, DecodedImage) {
    let basis = h
        .app
        .store
        .dialogue_basis(id)
        .await
        .expect("read")
        .expect("verdict");
    let subject = subject(&h.app, id, &basis, face).await.expect("a face");
    let c = continuation(&h.app, id, &basis, &subject, "Next?".into())
        .await
        .expect("prepared");
    (
        c.request.tasks.history,
        c.request.tasks.image_key,
        c.request.image,
    )
}

async fn decoded(h: &Harness, bytes: Vec<u8>) -> DecodedImage {
    h.app
        .intake
        .decode(Arc::new(bytes))
        .await
        .0
        .expect("decodes")
}

async fn crop_of(h: &Harness, bytes: &[u8], face: &FaceVerdict) -> DecodedImage {
    let whole = decoded(h, bytes.to_vec()).await;
    h.app.faces.crop(whole, face.crop).await.expect("crop")
}

fn turn(answer: &Value) -> Turn {
    Turn {
        question: answer["question"].as_str().expect("question").into(),
        answer: answer["answer"].as_str().expect("answer").into(),
    }
}

fn reused(answer: &Value) -> u64 {
    answer["reused_tokens"].as_u64().expect("reused_tokens")
}

#[tokio::test(flavor = "multi_thread")]
async fn each_face_has_a_conversation_of_its_own() {
    let h = Harness::start_on("serve_ask_faces", |_| {}, engine(12)).await;
    let bytes = two_astronauts();
    let v = analysed(&h, bytes.clone()).await;
    let id = v.request_id;
    assert_eq!(v.faces.len(), 2, "both astronauts found: {:?}", v.faces);
    let primary = v.primary_face.expect("a primary face");
    let other = 1 - primary;
    let face = |i: u32| v.faces.iter().find(|f| f.index == i).expect("indexed");
    let (p_face, o_face) = (face(primary), face(other));
    let ivy = h.token(Role::Reviewer, "ivy", None).await;
    let ask = |body: Value| {
        let (h, ivy) = (&h, &ivy);
        async move {
            let (status, answer) = h.post(&questions(id), Some(ivy), &body).await;
            assert_eq!(status, StatusCode::OK, "{body}: {answer}");
            answer
        }
    };

    // Two questions about the other face: stored with its index, the second
    // continuing the first's conversation from the engine's cache.
    let first = ask(json!({"question": "Is this face real?", "face": other})).await;
    assert_eq!(first["face"], other);
    assert_eq!(first["turn"], 0);
    let second = ask(json!({"question": "Which region?", "face": other})).await;
    assert_eq!(second["face"], other);
    assert_eq!(second["turn"], 2, "turns are numbered per verdict");
    assert!(reused(&second) > 0, "continues face {other}'s: {second}");

    // The primary face's conversation shares nothing with it: no cached
    // state (another key), none of its turns.
    let (history, key, image) = next_question(&h, id, Some(primary)).await;
    let own = Screened {
        label: v.label.expect("screened"),
        forgery_type: v.forgery_type,
        explanation: v.explanation.as_deref(),
    };
    assert_eq!(
        own,
        Screened::of_face(p_face),
        "the verdict's turns are its primary face's"
    );
    assert_eq!(history, verdict_turns(&h.app.prompts, &own));
    assert_eq!(key, Some(face_conversation_key(id, None)));
    assert_eq!(image.rgb(), crop_of(&h, &bytes, p_face).await.rgb());
    let third = ask(json!({"question": "And this one?", "face": primary})).await;
    assert_eq!(third["face"], primary);
    assert_eq!(third["turn"], 4);
    assert_eq!(
        reused(&third),
        0,
        "nothing cached for face {primary}: {third}"
    );
    // No face named: the primary one, whose conversation it continues.
    let fourth = ask(json!({"question": "Why?"})).await;
    assert_eq!(fourth["face"], primary, "{fourth}");
    assert_eq!(fourth["turn"], 6);
    assert!(reused(&fourth) > 0, "continues face {primary}'s: {fourth}");

    // As stored: the other face's turns carry its index; the primary
    // face's, the verdict's own subject, none.
    let stored: Vec<(i32, Option<u32>)> = conversation(&h, id)
        .await
        .iter()
        .map(|t| (t.turn, t.face_index))
        .collect();
    let o = Some(other);
    assert_eq!(
        stored,
        [
            (0, o),
            (1, o),
            (2, o),
            (3, o),
            (4, None),
            (5, None),
            (6, None),
            (7, None)
        ]
    );
    let faces: Vec<Option<u32>> = conversation(&h, id)
        .await
        .iter()
        .map(|t| t.face(v.primary_face))
        .collect();
    assert_eq!(
        faces,
        [
            o,
            o,
            o,
            o,
            Some(primary),
            Some(primary),
            Some(primary),
            Some(primary)
        ]
    );

    // What each face's next question sees: its own screening turns and
    // follow-ups, its own crop, its own key.
    let (history, key, image) = next_question(&h, id, Some(other)).await;
    let mut expected = verdict_turns(&h.app.prompts, &Screened::of_face(o_face));
    expected.extend([turn(&first), turn(&second)]);
    assert_eq!(history, expected);
    assert_eq!(key, Some(face_conversation_key(id, Some(other))));
    assert_ne!(key, Some(face_conversation_key(id, None)));
    let o_crop = crop_of(&h, &bytes, o_face).await;
    assert_eq!(
        (image.width(), image.height()),
        (o_crop.width(), o_crop.height())
    );
    assert_eq!(image.rgb(), o_crop.rgb(), "face {other}'s crop");
    assert_ne!(image.rgb(), crop_of(&h, &bytes, p_face).await.rgb());
    for named in [Some(primary), None] {
        let (history, key, _) = next_question(&h, id, named).await;
        let mut expected = verdict_turns(&h.app.prompts, &own);
        expected.extend([turn(&third), turn(&fourth)]);
        assert_eq!(history, expected, "{named:?}");
        assert_eq!(key, Some(face_conversation_key(id, None)));
    }

    // Streamed, a question names its face alike.
    let body = json!({"question": "Eyes?", "face": other});
    let response = ask_streaming_body(&h, id, &ivy, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let events = events(&response.text().await.expect("body"));
    let (last, done) = events.last().expect("events");
    assert_eq!(last, "done", "{events:?}");
    assert_eq!(done["face"], other, "{done}");
    assert_eq!(done["turn"], 8);
    assert!(reused(done) > 0, "continues face {other}'s: {done}");
    let stored = conversation(&h, id).await;
    assert_eq!(stored.len(), 10);
    assert!(stored[8..].iter().all(|t| t.face_index == Some(other)));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_face_the_verdict_does_not_have_is_refused() {
    let h = Harness::start_on("serve_ask_faces_refused", |_| {}, engine(8)).await;
    let two = analysed(&h, two_astronauts()).await;
    let none = analysed(
        &h,
        encoded(RgbImage::from_pixel(800, 600, image::Rgb([250; 3]))),
    )
    .await;
    assert_eq!(none.status, VerdictStatus::NoFace);
    let ivy = h.token(Role::Reviewer, "ivy", None).await;
    for (id, face) in [
        (two.request_id, json!(2)),
        (two.request_id, json!(-1)),
        (two.request_id, json!("0")),
        (none.request_id, json!(0)),
    ] {
        let body = json!({"question": "Why?", "face": face});
        let (status, answer) = h.post(&questions(id), Some(&ivy), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], "face", "{body}: {answer}");
        // Streamed alike: refused before anything streams.
        let response = ask_streaming_body(&h, id, &ivy, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    for id in [two.request_id, none.request_id] {
        assert!(conversation(&h, id).await.is_empty(), "nothing stored");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_picture_without_a_face_is_asked_about_whole() {
    let h = Harness::start_on("serve_ask_no_face", |_| {}, engine(8)).await;
    let page = encoded(RgbImage::from_pixel(800, 600, image::Rgb([250; 3])));
    let v = analysed(&h, page.clone()).await;
    let id = v.request_id;
    assert_eq!(
        (v.status, v.label, v.primary_face),
        (VerdictStatus::NoFace, None, None)
    );
    let ivy = h.token(Role::Reviewer, "ivy", None).await;

    // Nothing was screened: no turns of its own, the whole image.
    let (history, key, image) = next_question(&h, id, None).await;
    assert!(history.is_empty(), "{history:?}");
    assert_eq!(key, Some(face_conversation_key(id, None)));
    assert_eq!(image.rgb(), decoded(&h, page).await.rgb());

    let (status, first) = h
        .post(
            &questions(id),
            Some(&ivy),
            &json!({"question": "What is this?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["face"], Value::Null, "the whole image");
    let stored: Vec<Option<u32>> = conversation(&h, id)
        .await
        .iter()
        .map(|t| t.face_index)
        .collect();
    assert_eq!(stored, [None, None]);
    let (history, _, _) = next_question(&h, id, None).await;
    assert_eq!(history, [turn(&first)], "its follow-ups alone");
    h.stop().await;
}
