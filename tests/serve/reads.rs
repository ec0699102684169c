//! Reading verdicts: every filter of `/api/verdicts`, keyset pagination
//! with ties, tenant isolation on every read route, 400s naming the
//! parameter, and injection attempts. The fixture here (eight verdicts
//! with corrections) also serves `reads_stats`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use dfa::domain::access::Role;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::harness::{Harness, Seed};

/// Verdicts with faces and without one (issue 12).
mod faces;

/// Every seeded verdict's `now`: fixed, so buckets are known.
pub fn t0() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().unwrap()
}

/// `t0` as a query value (`+` would be a space in a query).
pub fn at(hours_before_t0: i64) -> String {
    (t0() - Duration::hours(hours_before_t0)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Stores a reviewer's correction of `request_id`, as the worker would.
pub async fn correct(
    pool: &PgPool,
    request_id: Uuid,
    reviewer: &str,
    label: &str,
    forgery_type: Option<&str>,
    created_at: DateTime<Utc>,
) {
    sqlx::query(
        "INSERT INTO corrections (request_id, reviewer, label, forgery_type, created_at, \
             source_topic, source_partition, source_offset) VALUES ($1, $2, $3, $4, $5, 'test', 0, 0)",
    )
    .bind(request_id)
    .bind(reviewer)
    .bind(label)
    .bind(forgery_type)
    .bind(created_at)
    .execute(pool)
    .await
    .expect("correction row");
}

/// Eight verdicts, newest first `a`…`h`:
///
/// | | label | type | p_fake | tenant | adapter | made | corrections (standing last) |
/// |---|---|---|---|---|---|---|---|
/// | a | fake | face_swap | 0.95 | acme | ad1 | t0-1h | r1: real |
/// | b | fake | face_editing | 0.75 | acme | – | t0-2h | r1: fake/face_editing |
/// | c | real | – | 0.10 | beta | ad1 | t0-3h | – |
/// | d | real | – | 0.45 | – | – | t0-4h | r1: fake/face_swap |
/// | e | fake | entire_face_synthesis | 0.99 | beta | ad2 | t0-30h | r1: fake/face_swap |
/// | f | fake | face_swap | 0.55 | – | ad1 | t0-50h | r1: fake (no type) |
/// | g | real | – | 0.30 | acme | ad2 | t0-70h | – |
/// | h | fake | face_swap | 0.60 | – | – | t0-90h | r1: real, then r2: fake/face_swap |
pub async fn fixture(h: &Harness) -> HashMap<&'static str, Uuid> {
    let sha = "ab".repeat(32);
    #[allow(clippy::type_complexity)]
    let rows: [(
        &str,
        &str,
        Option<&str>,
        f32,
        Option<&str>,
        Option<&str>,
        i64,
    ); 8] = [
        (
            "a",
            "fake",
            Some("face_swap"),
            0.95,
            Some("acme"),
            Some("ad1"),
            1,
        ),
        (
            "b",
            "fake",
            Some("face_editing"),
            0.75,
            Some("acme"),
            None,
            2,
        ),
        ("c", "real", None, 0.10, Some("beta"), Some("ad1"), 3),
        ("d", "real", None, 0.45, None, None, 4),
        (
            "e",
            "fake",
            Some("entire_face_synthesis"),
            0.99,
            Some("beta"),
            Some("ad2"),
            30,
        ),
        ("f", "fake", Some("face_swap"), 0.55, None, Some("ad1"), 50),
        ("g", "real", None, 0.30, Some("acme"), Some("ad2"), 70),
        ("h", "fake", Some("face_swap"), 0.60, None, None, 90),
    ];
    let mut ids = HashMap::new();
    for (name, label, forgery_type, p_fake, tenant, adapter, hours) in rows {
        let mut s = Seed::new(&sha, t0() - Duration::hours(hours));
        s.label = label;
        s.forgery_type = forgery_type;
        s.p_fake = p_fake;
        s.tenant = tenant.map(str::to_string);
        s.adapter_id = adapter.map(str::to_string);
        if label == "real" {
            s.explanation = None;
        }
        h.seed(&s).await;
        ids.insert(name, s.request_id);
    }
    let pool = &h.env.pool;
    let when = t0();
    correct(pool, ids["a"], "r1", "real", None, when).await;
    correct(pool, ids["b"], "r1", "fake", Some("face_editing"), when).await;
    correct(pool, ids["d"], "r1", "fake", Some("face_swap"), when).await;
    correct(pool, ids["e"], "r1", "fake", Some("face_swap"), when).await;
    correct(pool, ids["f"], "r1", "fake", None, when).await;
    correct(pool, ids["h"], "r1", "real", None, when).await;
    correct(
        pool,
        ids["h"],
        "r2",
        "fake",
        Some("face_swap"),
        when + Duration::minutes(5),
    )
    .await;
    ids
}

/// The names of the items of a list answer, in order.
fn names(ids: &HashMap<&'static str, Uuid>, body: &Value) -> String {
    let by_id: HashMap<String, &str> = ids.iter().map(|(n, id)| (id.to_string(), *n)).collect();
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|i| by_id[i["request_id"].as_str().unwrap()])
        .collect()
}

#[tokio::test]
async fn every_filter_narrows_the_list() {
    let h = Harness::start("reads_filters").await;
    let ids = fixture(&h).await;
    let token = h.token(Role::Reviewer, "ana", None).await;
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "abcdefgh"),
        (format!("since={}", at(3)), "abc"),
        (format!("until={}", at(3)), "defgh"),
        (format!("since={}&until={}", at(60), at(2)), "cdef"),
        ("label=fake".into(), "abefh"),
        ("label=real".into(), "cdg"),
        ("forgery_type=face_swap".into(), "afh"),
        ("forgery_type=entire_face_synthesis".into(), "e"),
        ("tenant=acme".into(), "abg"),
        ("min_p_fake=0.75".into(), "abe"),
        ("max_p_fake=0.45".into(), "cdg"),
        ("min_p_fake=0.3&max_p_fake=0.6".into(), "dfgh"),
        ("adapter=ad1".into(), "acf"),
        ("adapter=nobody".into(), ""),
        ("corrected=true".into(), "abdefh"),
        ("corrected=false".into(), "cg"),
        ("disagreement=true".into(), "adeh"),
        ("disagreement=false".into(), "bcfg"),
        ("label=fake&disagreement=false".into(), "bf"),
        (format!("label=fake&adapter=ad1&since={}", at(10)), "a"),
    ];
    for (query, want) in cases {
        let (status, body) = h.get(&format!("/api/verdicts?{query}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(names(&ids, &body), want, "{query}");
        assert_eq!(body["next_cursor"], Value::Null, "{query}");
    }

    // An item says what reviewers said: h's standing correction is r2's.
    let (_, body) = h
        .get("/api/verdicts?forgery_type=face_swap", Some(&token))
        .await;
    let item_h = &body["items"][2];
    assert_eq!(item_h["request_id"], ids["h"].to_string());
    assert_eq!(item_h["corrected"], true);
    assert_eq!(item_h["correction_label"], "fake");
    assert_eq!(item_h["correction_forgery_type"], "face_swap");
    assert_eq!(item_h["disagreement"], true, "r1 still contradicts it");
    assert_eq!(item_h["tenant"], Value::Null);
    assert_eq!(
        item_h["p_fake"].as_f64().map(|p| (p * 100.0).round()),
        Some(60.0)
    );
    let item_a = &body["items"][0];
    assert_eq!(item_a["adapter_id"], "ad1");
    assert_eq!(item_a["correction_label"], "real");

    // The OpenAPI document has the read routes and their parameters.
    let (_, doc) = h.get("/api/openapi.json", Some(&token)).await;
    for path in [
        "/api/verdicts",
        "/api/verdicts/{request_id}",
        "/api/verdicts/{request_id}/image",
        "/api/stats",
        "/api/export",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
    let params: Vec<&str> = doc["paths"]["/api/verdicts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["since", "label", "disagreement", "limit", "cursor"] {
        assert!(params.contains(&name), "{name}: {params:?}");
    }
    h.stop().await;
}

/// Pages of `limit` rows until `next_cursor` is null; the request ids in order.
async fn all_pages(h: &Harness, token: &str, query: &str, limit: u32) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/api/verdicts?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = h.get(&path, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        for i in items {
            seen.push((
                i["created_at"].as_str().unwrap().to_string(),
                i["request_id"].as_str().unwrap().to_string(),
            ));
        }
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(
                    items.len(),
                    limit as usize,
                    "only a full page has a next one"
                );
                cursor = Some(c.to_string());
            }
            None => return seen,
        }
    }
    panic!("pagination did not end");
}

#[tokio::test]
async fn pages_hold_every_row_once_even_with_ties_in_created_at() {
    let h = Harness::start("reads_pages").await;
    let token = h.token(Role::Analyst, "bo", None).await;
    let sha = "cd".repeat(32);
    // 57 verdicts on 5 instants (ties), one in three real.
    let mut expected: Vec<(DateTime<Utc>, Uuid, &str)> = Vec::new();
    for i in 0..57 {
        let mut s = Seed::new(&sha, t0() - Duration::seconds(i % 5));
        if i % 3 == 0 {
            s.label = "real";
            s.forgery_type = None;
        }
        h.seed(&s).await;
        expected.push((s.created_at, s.request_id, s.label));
    }
    // Newest first, request id breaking ties (Postgres and uuid::Uuid both
    // compare the 16 bytes).
    expected.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));

    for limit in [1, 10, 19, 57, 500] {
        let got = all_pages(&h, &token, "", limit).await;
        let ids: Vec<String> = got.iter().map(|(_, id)| id.clone()).collect();
        let want: Vec<String> = expected.iter().map(|e| e.1.to_string()).collect();
        assert_eq!(ids, want, "limit {limit}");
    }
    let fakes = all_pages(&h, &token, "label=fake", 7).await;
    let want: Vec<String> = expected
        .iter()
        .filter(|e| e.2 == "fake")
        .map(|e| e.1.to_string())
        .collect();
    assert_eq!(fakes.iter().map(|f| f.1.clone()).collect::<Vec<_>>(), want);
    assert_eq!(
        fakes.iter().map(|f| &f.1).collect::<HashSet<_>>().len(),
        38,
        "no row twice"
    );

    // A page's position is a row, not an offset: rows stored meanwhile
    // (newer) neither repeat nor hide older ones.
    let (_, first) = h.get("/api/verdicts?limit=20", Some(&token)).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    for _ in 0..3 {
        h.seed(&Seed::new(&sha, t0() + Duration::hours(1))).await;
    }
    let (_, second) = h
        .get(
            &format!("/api/verdicts?limit=20&cursor={cursor}"),
            Some(&token),
        )
        .await;
    let second_ids: Vec<&str> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["request_id"].as_str().unwrap())
        .collect();
    let want: Vec<String> = expected[20..40].iter().map(|e| e.1.to_string()).collect();
    assert_eq!(second_ids, want);
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_token_sees_only_its_tenant_on_every_read_route() {
    let h = Harness::start("reads_tenants").await;
    let ids = fixture(&h).await;
    let acme = h.token(Role::Analyst, "acme-analyst", Some("acme")).await;
    let everyone = h.token(Role::Analyst, "global", None).await;

    for (query, want) in [
        ("", "abg"),
        ("tenant=acme", "abg"),
        ("tenant=beta", ""),
        ("label=real", "g"),
    ] {
        let (status, body) = h.get(&format!("/api/verdicts?{query}"), Some(&acme)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(names(&ids, &body), want, "{query}");
    }
    let (_, body) = h.get("/api/verdicts?tenant=beta", Some(&everyone)).await;
    assert_eq!(names(&ids, &body), "ce");

    for name in ["c", "d", "e"] {
        for path in ["", "/image"] {
            let (status, body) = h
                .get(&format!("/api/verdicts/{}{path}", ids[name]), Some(&acme))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{name}{path}: {body}");
            assert_eq!(body["error"], "not_found");
        }
    }
    let (status, _) = h
        .get(&format!("/api/verdicts/{}", ids["a"]), Some(&acme))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, stats) = h
        .get(
            &format!("/api/stats?since={}&until={}", at(100), at(0)),
            Some(&acme),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["verdicts"], 3);
    let (_, other) = h
        .get(
            &format!("/api/stats?since={}&until={}&tenant=beta", at(100), at(0)),
            Some(&acme),
        )
        .await;
    assert_eq!(other["verdicts"], 0);
    assert_eq!(other["adapters"].as_array().map(Vec::len), Some(0));

    let csv = export_text(&h, &acme, "format=csv").await;
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    for name in ["a", "b", "g"] {
        assert!(csv.contains(&ids[name].to_string()), "{name}: {csv}");
    }
    let csv = export_text(&h, &acme, "format=csv&tenant=beta").await;
    assert_eq!(csv.lines().count(), 1, "only the header: {csv}");
    h.stop().await;
}

async fn export_text(h: &Harness, token: &str, query: &str) -> String {
    let r = h
        .http
        .get(h.url(&format!("/api/export?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_bad_value_is_a_400_naming_its_parameter_and_injections_are_inert() {
    let h = Harness::start("reads_bad_values").await;
    let ids = fixture(&h).await;
    let token = h.token(Role::Admin, "ops", None).await;
    for (path, field) in [
        ("/api/verdicts?since=yesterday", "since"),
        ("/api/verdicts?until=2026-03-01", "until"),
        ("/api/verdicts?label=maybe", "label"),
        ("/api/verdicts?forgery_type=morph", "forgery_type"),
        ("/api/verdicts?min_p_fake=2", "min_p_fake"),
        ("/api/verdicts?max_p_fake=x", "max_p_fake"),
        ("/api/verdicts?corrected=maybe", "corrected"),
        ("/api/verdicts?disagreement=2", "disagreement"),
        ("/api/verdicts?limit=0", "limit"),
        ("/api/verdicts?limit=501", "limit"),
        ("/api/verdicts?cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("/api/verdicts?sort=asc", "sort"),
        ("/api/stats?bucket=month", "bucket"),
        ("/api/stats?since=now", "since"),
        ("/api/stats?label=fake", "label"),
        ("/api/export?format=xml", "format"),
        ("/api/export?format=csv&min_p_fake=-1", "min_p_fake"),
    ] {
        let (status, body) = h.get(path, Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"], "bad_request", "{path}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }

    let attacks = [
        "fake' OR '1'='1",
        "'; DROP TABLE verdicts; --",
        "1; SELECT pg_sleep(5)",
    ];
    let params = [
        "since",
        "until",
        "label",
        "forgery_type",
        "tenant",
        "min_p_fake",
        "max_p_fake",
        "adapter",
        "corrected",
        "disagreement",
        "limit",
        "cursor",
    ];
    for attack in attacks {
        let value: String = form_urlencoded::byte_serialize(attack.as_bytes()).collect();
        for p in params {
            let path = format!("/api/verdicts?{p}={value}");
            let (status, body) = h.get(&path, Some(&token)).await;
            match status {
                StatusCode::BAD_REQUEST => assert_eq!(body["field"], p, "{path}"),
                StatusCode::OK => assert_eq!(names(&ids, &body), "", "{path}"),
                other => panic!("{path}: {other} {body}"),
            }
        }
        for path in [
            format!("/api/stats?tenant={value}"),
            format!("/api/export?format=jsonl&tenant={value}"),
            format!("/api/export?format=jsonl&adapter={value}"),
            format!("/api/verdicts/{value}"),
            format!("/api/verdicts/{value}/image"),
        ] {
            let r = h
                .http
                .get(h.url(&path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            match status {
                StatusCode::OK if path.starts_with("/api/export") => {
                    assert_eq!(text, "", "{path}")
                }
                StatusCode::OK => assert!(text.contains("\"verdicts\":0"), "{path}: {text}"),
                StatusCode::NOT_FOUND => assert!(path.starts_with("/api/verdicts/")),
                other => panic!("{path}: {other} {text}"),
            }
        }
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM verdicts")
        .fetch_one(&h.env.pool)
        .await
        .expect("the table survives");
    assert_eq!(n, 8);
    h.stop().await;
}
