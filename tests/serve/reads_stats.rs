//! `/api/stats` and the BI views of migration 0005, checked against the
//! eight verdicts of `reads::fixture`, whose figures are worked out by hand
//! there.

use dfa::domain::access::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::Harness;
use crate::reads::{at, fixture};

fn approx(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
}

#[tokio::test]
async fn stats_match_the_rows_worked_out_by_hand() {
    let h = Harness::start("reads_stats").await;
    fixture(&h).await;
    let token = h.token(Role::Analyst, "bo", None).await;
    let range = format!("since={}&until={}", at(100), at(0));

    let (status, s) = h.get(&format!("/api/stats?{range}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["bucket"], "day");
    assert_eq!(s["verdicts"], 8);
    // Days from 2026-03-06 (h) to 2026-03-10 (a, b, c, d).
    let days = s["buckets"].as_array().unwrap();
    let starts: Vec<&str> = days.iter().map(|d| d["start"].as_str().unwrap()).collect();
    assert_eq!(
        starts,
        [
            "2026-03-06T00:00:00Z",
            "2026-03-07T00:00:00Z",
            "2026-03-08T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-10T00:00:00Z"
        ]
    );
    let day = |i: usize, what: &str, key: &str| days[i][what][key].as_u64().unwrap();
    assert_eq!(days[4]["verdicts"], 4);
    assert_eq!((day(4, "labels", "fake"), day(4, "labels", "real")), (2, 2));
    assert_eq!(day(4, "forgery_types", "face_swap"), 1);
    assert_eq!(day(4, "forgery_types", "face_editing"), 1);
    assert_eq!(day(4, "forgery_types", "entire_face_synthesis"), 0);
    assert_eq!(day(3, "forgery_types", "entire_face_synthesis"), 1);
    assert_eq!(day(2, "forgery_types", "face_swap"), 1);
    assert_eq!((day(1, "labels", "real"), day(1, "labels", "fake")), (1, 0));
    assert_eq!(day(0, "forgery_types", "face_swap"), 1);

    // p_fake 0.95 0.75 0.10 0.45 0.99 0.55 0.30 0.60, in bins of 0.1.
    let hist: Vec<u64> = s["p_fake_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["verdicts"].as_u64().unwrap())
        .collect();
    assert_eq!(hist, [0, 1, 0, 1, 1, 1, 1, 1, 0, 2]);
    approx(&s["p_fake_histogram"][7]["from"], 0.7);

    // The standing correction is the truth ("fake" positive):
    // base model: b fake→fake, d real→fake, h fake→fake (r2 stands).
    // ad1: a fake→real, c uncorrected, f fake→fake. ad2: e fake→fake, g uncorrected.
    let adapters = s["adapters"].as_array().unwrap();
    assert_eq!(adapters.len(), 3, "{s}");
    let base = &adapters[0];
    assert_eq!(base["adapter"], Value::Null);
    assert_eq!(
        (base["verdicts"].as_u64(), base["corrected"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (
            &base["true_fake"],
            &base["false_fake"],
            &base["missed_fake"],
            &base["true_real"]
        ),
        (
            &Value::from(2),
            &Value::from(0),
            &Value::from(1),
            &Value::from(0)
        )
    );
    approx(&base["accuracy"], 2.0 / 3.0);
    approx(&base["precision"], 1.0);
    approx(&base["recall"], 2.0 / 3.0);
    let ad1 = &adapters[1];
    assert_eq!(ad1["adapter"], "ad1");
    assert_eq!(
        (ad1["verdicts"].as_u64(), ad1["corrected"].as_u64()),
        (Some(3), Some(2))
    );
    approx(&ad1["accuracy"], 0.5);
    approx(&ad1["precision"], 0.5);
    approx(&ad1["recall"], 1.0);
    let ad2 = &adapters[2];
    assert_eq!(ad2["adapter"], "ad2");
    assert_eq!(
        (ad2["verdicts"].as_u64(), ad2["corrected"].as_u64()),
        (Some(2), Some(1))
    );
    approx(&ad2["accuracy"], 1.0);

    // Weeks start on Monday (2026-03-02 and 2026-03-09); hours cover the range.
    let (_, w) = h
        .get(&format!("/api/stats?{range}&bucket=week"), Some(&token))
        .await;
    let weeks: Vec<(String, u64)> = w["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_string(),
                b["verdicts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        weeks,
        [
            ("2026-03-02T00:00:00Z".to_string(), 3),
            ("2026-03-09T00:00:00Z".to_string(), 5)
        ]
    );
    let (_, hours) = h
        .get(&format!("/api/stats?{range}&bucket=hour"), Some(&token))
        .await;
    let hours = hours["buckets"].as_array().unwrap();
    assert_eq!(hours.len(), 100);
    assert_eq!(
        hours
            .iter()
            .map(|b| b["verdicts"].as_u64().unwrap())
            .sum::<u64>(),
        8
    );

    // A narrower range and a tenant.
    let (_, acme) = h
        .get(&format!("/api/stats?{range}&tenant=acme"), Some(&token))
        .await;
    assert_eq!(acme["verdicts"], 3);
    let (_, recent) = h
        .get(
            &format!("/api/stats?since={}&until={}", at(10), at(0)),
            Some(&token),
        )
        .await;
    assert_eq!(recent["verdicts"], 4);

    // The default range is the last 30 days: 31 days touched, the first
    // and the last in part.
    let (status, default) = h.get("/api/stats", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(default["buckets"].as_array().map(Vec::len), Some(31));
    h.stop().await;
}

#[tokio::test]
async fn the_analyst_views_agree_with_the_api() {
    let h = Harness::start("reads_views").await;
    fixture(&h).await;
    let pool = &h.env.pool;
    let (verdicts, corrected, disagreements): (i64, i64, i64) = sqlx::query_as(
        "SELECT sum(verdicts)::bigint, sum(corrected)::bigint, sum(disagreements)::bigint FROM verdicts_daily",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((verdicts, corrected, disagreements), (8, 6, 4));
    let (day_rows,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM verdicts_daily WHERE day = '2026-03-10'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(day_rows, 4, "a, b, c, d differ in tenant, adapter or label");

    type Row = (Option<String>, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT adapter_id, sum(verdicts)::bigint, sum(corrected)::bigint, sum(true_fake)::bigint, \
                sum(false_fake)::bigint, sum(missed_fake)::bigint, sum(true_real)::bigint \
         FROM adapter_agreement GROUP BY adapter_id ORDER BY adapter_id NULLS FIRST",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (None, 3, 3, 2, 0, 1, 0),
            (Some("ad1".into()), 3, 2, 1, 1, 0, 0),
            (Some("ad2".into()), 2, 1, 1, 0, 0, 0),
        ]
    );
    let (accuracy,): (Option<f64>,) = sqlx::query_as(
        "SELECT accuracy FROM adapter_agreement WHERE adapter_id = 'ad1' AND day = '2026-03-10'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        accuracy,
        Some(0.0),
        "a, the one corrected that day, was wrong"
    );
    h.stop().await;
}
