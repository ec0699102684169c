//! The 401/403/404 matrix: every route, every role, no token, a wrong
//! token, and a tenant token looking at another tenant's verdict.

use chrono::Utc;
use dfa::domain::access::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::harness::{png, Harness, Seed};

/// A route, and the roles that may call it.
struct Route {
    method: Method,
    /// `{id}` is replaced by a verdict's request id.
    path: &'static str,
    allowed: &'static [Role],
    /// Whether it names one verdict (so other tenants get 404).
    per_verdict: bool,
}

const ALL: &[Role] = &[Role::Reviewer, Role::Analyst, Role::Admin];

fn routes() -> Vec<Route> {
    let r = |method, path, allowed, per_verdict| Route {
        method,
        path,
        allowed,
        per_verdict,
    };
    vec![
        r(Method::GET, "/api/verdicts", ALL, false),
        r(Method::GET, "/api/verdicts/{id}", ALL, true),
        r(Method::GET, "/api/verdicts/{id}/image", ALL, true),
        r(
            Method::POST,
            "/api/verdicts/{id}/questions",
            &[Role::Reviewer, Role::Admin],
            true,
        ),
        r(
            Method::POST,
            "/api/verdicts/{id}/corrections",
            &[Role::Reviewer, Role::Admin],
            true,
        ),
        r(
            Method::GET,
            "/api/stats",
            &[Role::Analyst, Role::Admin],
            false,
        ),
        r(
            Method::GET,
            "/api/export?format=jsonl",
            &[Role::Analyst, Role::Admin],
            false,
        ),
        r(Method::GET, "/api/adapters", &[Role::Admin], false),
        r(
            Method::POST,
            "/api/adapters/none/promote",
            &[Role::Admin],
            false,
        ),
        r(
            Method::POST,
            "/api/adapters/rollback",
            &[Role::Admin],
            false,
        ),
    ]
}

/// Calls `route`; POST bodies are valid when `valid_body`, else bodies that
/// pass authorisation and then fail validation, so an allowed call does no
/// work (no model run, nothing published).
async fn call_with(
    h: &Harness,
    route: &Route,
    id: Uuid,
    token: Option<&str>,
    valid_body: bool,
) -> StatusCode {
    let path = route.path.replace("{id}", &id.to_string());
    let mut req = h.http.request(route.method.clone(), h.url(&path));
    if route.method == Method::POST {
        let body = match (valid_body, route.path.ends_with("/questions")) {
            (false, _) => json!({}),
            (true, true) => json!({"question": "Which region looks edited?"}),
            (true, false) => json!({"label": "real"}),
        };
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request").status()
}

async fn call(h: &Harness, route: &Route, id: Uuid, token: Option<&str>) -> StatusCode {
    call_with(h, route, id, token, false).await
}

#[tokio::test]
async fn every_route_checks_token_role_and_tenant() {
    let h = Harness::start("serve_access").await;
    let sha = h.put_image(&png(1)).await;
    let mut ours = Seed::new(&sha, Utc::now());
    ours.tenant = Some("acme".into());
    h.seed(&ours).await;
    let mut theirs = Seed::new(&sha, Utc::now());
    theirs.tenant = Some("globex".into());
    h.seed(&theirs).await;

    let mut tokens = Vec::new();
    for role in ALL {
        tokens.push((*role, h.token(*role, role.as_str(), None).await));
    }
    let revoked = h.token(Role::Admin, "gone", None).await;
    let gone_id = h.app.store.list_tokens().await.unwrap().last().unwrap().id;
    h.app.store.revoke_token(gone_id).await.unwrap();

    for route in routes() {
        let what = format!("{} {}", route.method, route.path);
        assert_eq!(
            call(&h, &route, ours.request_id, None).await,
            StatusCode::UNAUTHORIZED,
            "{what}: no token"
        );
        assert_eq!(
            call(&h, &route, ours.request_id, Some("dfa_0000")).await,
            StatusCode::UNAUTHORIZED,
            "{what}: unknown token"
        );
        assert_eq!(
            call(&h, &route, ours.request_id, Some(&revoked)).await,
            StatusCode::UNAUTHORIZED,
            "{what}: revoked token"
        );
        for (role, token) in &tokens {
            let status = call(&h, &route, ours.request_id, Some(token)).await;
            if route.allowed.contains(role) {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{what}: {role:?} may call it, got {status}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {role:?} may not");
            }
        }
    }

    // A tenant token: other tenants' verdicts do not exist for it, and
    // neither do unknown ids, with the same answer.
    for role in ALL {
        let token = h
            .token(*role, &format!("{}-acme", role.as_str()), Some("acme"))
            .await;
        for route in routes()
            .iter()
            .filter(|r| r.per_verdict && r.allowed.contains(role))
        {
            let what = format!("{} {} as {role:?}@acme", route.method, route.path);
            let own = call_with(&h, route, ours.request_id, Some(&token), true).await;
            assert!(
                own.is_success(),
                "{what}: its own tenant's verdict answered {own}"
            );
            assert_eq!(
                call_with(&h, route, theirs.request_id, Some(&token), true).await,
                StatusCode::NOT_FOUND,
                "{what}: another tenant's verdict"
            );
            assert_eq!(
                call_with(&h, route, Uuid::new_v4(), Some(&token), true).await,
                StatusCode::NOT_FOUND,
                "{what}: an unknown id"
            );
        }
    }
    h.stop().await;
}
