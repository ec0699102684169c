//! Verdicts with faces and without one, stored as the worker stores them
//! (`Store::insert_verdicts`, faces rows included): the list, the detail
//! (every face with its box), the filters, the export, the statistics and
//! the learning loop's read of corrections all take them, a `no_face`
//! verdict's missing label and p_fake included.

use dfa::domain::access::Role;
use dfa::domain::{CropSquare, Label};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common;
use crate::harness::{no_face_verdict, pasted_face, png, two_faces_verdict, Harness};
use crate::reads::correct;

/// A two-face verdict of the two-face picture and a `no_face` verdict of
/// another image, stored as the worker stores them; their ids.
async fn stored(h: &Harness) -> (Uuid, Uuid) {
    let picture = common::encode(&common::two_faces(), image::ImageFormat::Png);
    let sha = h.put_image(&picture).await;
    let two = two_faces_verdict();
    let two_id = two.request_id;
    h.store_verdict(two, &sha, picture.len()).await;
    let blank = png(5);
    let blank_sha = h.put_image(&blank).await;
    let none = no_face_verdict();
    let none_id = none.request_id;
    h.store_verdict(none, &blank_sha, blank.len()).await;
    (two_id, none_id)
}

async fn ids(h: &Harness, token: &str, query: &str) -> Vec<String> {
    let (status, page) = h.get(&format!("/api/verdicts?{query}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["request_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_list_and_its_filters_take_faces_and_no_face() {
    let h = Harness::start("reads_faces_list").await;
    let token = h.token(Role::Analyst, "ana", None).await;
    let (two, none) = stored(&h).await;
    let (two, none) = (two.to_string(), none.to_string());

    let (status, page) = h.get("/api/verdicts", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let item = |id: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["request_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} listed: {page}"))
    };
    let (t, n) = (item(&two), item(&none));
    assert_eq!(
        (&t["status"], &t["label"], &t["face_count"]),
        (&json!("analysed"), &json!("fake"), &json!(2))
    );
    assert!((t["p_fake"].as_f64().unwrap() - 0.9).abs() < 1e-6, "{t}");
    assert_eq!(
        (&n["status"], &n["label"], &n["p_fake"], &n["face_count"]),
        (&json!("no_face"), &Value::Null, &Value::Null, &json!(0))
    );

    // Filters on label or p_fake never match a verdict without them.
    assert_eq!(ids(&h, &token, "label=fake").await, [two.as_str()]);
    assert!(ids(&h, &token, "label=real").await.is_empty());
    assert_eq!(ids(&h, &token, "min_p_fake=0").await, [two.as_str()]);
    assert_eq!(ids(&h, &token, "max_p_fake=1").await, [two.as_str()]);
    assert_eq!(ids(&h, &token, "status=no_face").await, [none.as_str()]);
    assert_eq!(ids(&h, &token, "status=analysed").await, [two.as_str()]);
    let (status, bad) = h.get("/api/verdicts?status=none", Some(&token)).await;
    assert_eq!(
        (status, &bad["field"]),
        (StatusCode::BAD_REQUEST, &json!("status"))
    );

    // A reviewer saying the face-less image is fake corrects it, yet
    // contradicts nothing: the verdict claimed nothing.
    let at = chrono::Utc::now();
    correct(
        &h.env.pool,
        none.parse().unwrap(),
        "r1",
        "fake",
        Some("face_swap"),
        at,
    )
    .await;
    assert_eq!(ids(&h, &token, "corrected=true").await, [none.as_str()]);
    assert!(ids(&h, &token, "disagreement=true").await.is_empty());
    assert_eq!(ids(&h, &token, "disagreement=false").await.len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn the_detail_has_every_face_with_its_box_and_no_face_says_so() {
    let h = Harness::start("reads_faces_detail").await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let (two, none) = stored(&h).await;

    let (status, v) = h.get(&format!("/api/verdicts/{two}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "analysed");
    assert_eq!(v["face_mode"], "detect");
    assert_eq!(
        (&v["face_count"], &v["primary_face"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(v["faces_skipped"], json!({"too_small": 1, "over_cap": 0}));
    assert_eq!(v["reused_from"], Value::Null);
    // The image's verdict is the more suspicious face's.
    assert_eq!(
        (&v["label"], &v["forgery_type"]),
        (&json!("fake"), &json!("face_swap"))
    );
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2, "{v}");
    for (i, f) in faces.iter().enumerate() {
        let (x, y, w, hh) = common::TWO_FACES_AT[i];
        assert_eq!(f["index"], i);
        assert_eq!(
            f["bbox"],
            json!({"x": x, "y": y, "w": w, "h": hh}),
            "face {i}"
        );
        let crop = pasted_face(i as u32, 0.5).crop;
        assert_eq!(
            f["crop"],
            json!({"x": crop.x, "y": crop.y, "side": crop.side}),
            "face {i}"
        );
        assert!((f["detector_score"].as_f64().unwrap() - 18.5).abs() < 1e-9);
    }
    assert_eq!(
        faces
            .iter()
            .map(|f| f["primary"].clone())
            .collect::<Vec<_>>(),
        [json!(false), json!(true)]
    );
    assert_eq!(
        (&faces[0]["label"], &faces[0]["forgery_type"]),
        (&json!("real"), &Value::Null)
    );
    assert!((faces[0]["p_fake"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    assert_eq!(faces[1]["label"], "fake");
    assert_eq!(
        faces[1]["artifacts"][0]["text"],
        "face 1: the blending edge shows."
    );
    assert!((faces[1]["type_scores"]["face_swap"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    // The verdict's own turns are its primary face's screening.
    let turns = v["conversation"].as_array().unwrap();
    assert_eq!(turns[1]["text"], "Yes.", "{v}");

    let (status, n) = h.get(&format!("/api/verdicts/{none}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{n}");
    assert_eq!(n["status"], "no_face");
    for field in [
        "label",
        "p_fake",
        "type_scores",
        "forgery_type",
        "primary_face",
    ] {
        assert_eq!(n[field], Value::Null, "{field}: {n}");
    }
    assert_eq!((&n["face_count"], &n["faces"]), (&json!(0), &json!([])));
    assert_eq!(n["conversation"], json!([]), "nothing screened, no turns");

    // A reviewer can still correct it (a face the detector missed).
    let (status, sent) = h
        .post(
            &format!("/api/verdicts/{none}/corrections"),
            Some(&token),
            &json!({"label": "fake", "forgery_type": "face_swap"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    h.stop().await;
}

#[tokio::test]
async fn exports_and_statistics_count_no_face_apart() {
    let h = Harness::start("reads_faces_export").await;
    let token = h.token(Role::Analyst, "ana", None).await;
    let (two, none) = stored(&h).await;
    correct(&h.env.pool, none, "r1", "real", None, chrono::Utc::now()).await;
    correct(&h.env.pool, two, "r1", "fake", None, chrono::Utc::now()).await;

    let csv = h.get_text("/api/export?format=csv", &token).await;
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let row = |id: Uuid| -> Vec<&str> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&id.to_string()))
            .unwrap();
        line.split(',').collect()
    };
    let (t, n) = (row(two), row(none));
    assert_eq!(
        (t[col("status")], t[col("label")], t[col("face_count")]),
        ("analysed", "fake", "2")
    );
    assert_eq!(t[col("p_fake")], "0.9");
    assert_eq!(
        (
            n[col("status")],
            n[col("label")],
            n[col("p_fake")],
            n[col("face_count")]
        ),
        ("no_face", "", "", "0")
    );

    let jsonl = h
        .get_text("/api/export?format=jsonl&status=no_face", &token)
        .await;
    let items: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 1, "{jsonl}");
    assert_eq!(
        (&items[0]["status"], &items[0]["label"]),
        (&json!("no_face"), &Value::Null)
    );

    let (status, s) = h.get("/api/stats", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (&s["verdicts"], &s["no_face"]),
        (&json!(2), &json!(1)),
        "{s}"
    );
    let bins: u64 = s["p_fake_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["verdicts"].as_u64().unwrap())
        .sum();
    assert_eq!(bins, 1, "only the screened verdict has a p_fake");
    let buckets = s["buckets"].as_array().unwrap();
    let in_buckets = |key: &str| -> u64 { buckets.iter().map(|b| b[key].as_u64().unwrap()).sum() };
    assert_eq!((in_buckets("verdicts"), in_buckets("no_face")), (2, 1));
    let labelled: u64 = buckets
        .iter()
        .flat_map(|b| b["labels"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(labelled, 1);
    // Both are corrected; only the one with a label counts towards agreement.
    let base = &s["adapters"][0];
    assert_eq!(
        (&base["verdicts"], &base["no_face"], &base["corrected"]),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(base["true_fake"], 1);
    h.stop().await;
}

/// Retraining reads every standing correction: one of a `no_face` verdict
/// must not fail the read, and one of a face verdict learns from the face
/// the verdict was about.
#[tokio::test]
async fn corrections_of_face_and_no_face_verdicts_are_training_items() {
    let h = Harness::start("reads_faces_learning").await;
    let (two, none) = stored(&h).await;
    correct(&h.env.pool, none, "r1", "fake", None, chrono::Utc::now()).await;
    correct(&h.env.pool, two, "r1", "real", None, chrono::Utc::now()).await;
    let rows = h.app.store.standing_corrections().await.expect("read");
    let of = |id: Uuid| rows.iter().find(|r| r.request_id == id).unwrap();
    assert_eq!((of(none).verdict_label, of(none).crop()), (None, None));
    assert_eq!(of(two).verdict_label, Some(Label::Fake));
    let primary: CropSquare = pasted_face(1, 0.9).crop;
    assert_eq!(of(two).crop(), Some(primary), "the primary face's crop");
    h.stop().await;
}
