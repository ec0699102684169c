//! The service itself: health, metrics, the OpenAPI document, tokens.

use dfa::domain::access::Role;
use reqwest::StatusCode;

use crate::harness::Harness;

#[tokio::test]
async fn healthz_and_metrics_need_no_token_the_openapi_document_any() {
    let h = Harness::start("serve_basics").await;
    let (status, body) = h.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["database"], true);
    assert_eq!(body["checks"]["engine"], true);

    let (status, _) = h.get("/api/openapi.json", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "every /api call needs a token"
    );
    let analyst = h.token(Role::Analyst, "bo", None).await;
    let (status, doc) = h.get("/api/openapi.json", Some(&analyst)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{doc}"
    );
    assert!(doc["paths"]["/api/adapters"]["get"].is_object(), "{doc}");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let metrics = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dfa_http_requests_total{route=\"/api/openapi.json\",status=\"200\"} 1"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let h = Harness::start("serve_revoke").await;
    let admin = h.token(Role::Admin, "ops", None).await;
    assert_eq!(h.get("/api/adapters", Some(&admin)).await.0, StatusCode::OK);
    let tokens = h.app.store.list_tokens().await.unwrap();
    assert!(h.app.store.revoke_token(tokens[0].id).await.unwrap());
    let (status, body) = h.get("/api/adapters", Some(&admin)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(
        h.get("/api/adapters", Some("dfa_nonsense")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/api/adapters", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    h.stop().await;
}

#[tokio::test]
async fn only_admins_touch_the_registry() {
    let h = Harness::start("serve_adapters").await;
    let reviewer = h.token(Role::Reviewer, "ana", None).await;
    let analyst = h.token(Role::Analyst, "bo", None).await;
    let admin = h.token(Role::Admin, "ops", None).await;
    for t in [&reviewer, &analyst] {
        let (status, body) = h.get("/api/adapters", Some(t)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = h
            .post("/api/adapters/rollback", Some(t), &serde_json::json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, body) = h.get("/api/adapters", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(0));
    let (status, body) = h
        .post(
            "/api/adapters/nope/promote",
            Some(&admin),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h
        .post(
            "/api/adapters/rollback",
            Some(&admin),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    h.stop().await;
}
