//! Issue 9, defects 5 and 6: the URL fetcher reaches no internal address
//! unless allowed, keeps credentials and signatures out of what it stores
//! and says, retries transient failures a bounded number of times and
//! dead-letters the rest at once. The real `dfa worker` for the address
//! policy; the `Processor` in-process over a fake backend for retries.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::child::metric_sum;
use common::fake_backend::FakeBackend;
use common::services::Env;
use dfa::worker::process::{Outcome, Processor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(120);

/// A valid PNG the tiny model can analyse.
fn png() -> Vec<u8> {
    common::encode(&common::picture(7, 48, 48), image::ImageFormat::Png)
}

fn response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// An HTTP server on 127.0.0.1 answering its n-th connection with
/// `answers[n]` (the last one from then on). Returns its address and the
/// number of connections it accepted.
async fn image_server(answers: Vec<Vec<u8>>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let answer = answers[n.min(answers.len() - 1)].clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock.write_all(&answer).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

fn url_request(id: Uuid, url: &str) -> Vec<u8> {
    serde_json::json!({"schema_version": 1, "request_id": id, "image": {"url": url}})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_image_server_is_refused_by_default_and_reached_when_allow_listed() {
    let env = Env::new("fetch_guard").await;
    let (addr, accepted) = image_server(vec![response("200 OK", &png())]).await;
    let port = addr.port();
    // Refused three ways: the scheme (plain http), the address (an IP
    // literal), the address a name resolves to.
    let refused = [
        format!("http://{addr}/face.png?X-Amz-Signature=topsecret"),
        format!("https://{addr}/face.png"),
        format!("https://localhost:{port}/face.png"),
    ];
    for url in &refused {
        let id = Uuid::new_v4();
        env.produce(&id.to_string(), &url_request(id, url), &[])
            .await;
    }
    let mut worker = env.start_worker(&[]);
    let dead = env.read_topic(&env.dlq, refused.len(), LONG).await;
    assert_eq!(
        dead.len(),
        refused.len(),
        "worker log:\n{}",
        worker.stderr()
    );
    for m in &dead {
        assert_eq!(
            m.headers["dfa-error-kind"], "fetch_refused",
            "{:?}",
            m.headers
        );
        let reason = &m.headers["dfa-error-reason"];
        assert!(
            !reason.contains("127.0.0.1"),
            "the address is not echoed: {reason}"
        );
    }
    let (ok, log) = worker.terminate(LONG);
    assert!(ok, "{log}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the image server saw no connection"
    );
    assert!(
        !log.contains("topsecret"),
        "a URL's signature was logged: {log}"
    );

    // Allow-listed (`worker.fetch_allow_hosts`, set as an indexed list from
    // the environment) and with plain http allowed, the same server's image
    // gets a verdict; what is stored and published names it without the
    // credentials, query and fragment the request carried.
    let id = Uuid::new_v4();
    let secret_url = format!("http://user:hunter2@{addr}/face.png?X-Amz-Signature=topsecret#f");
    env.produce(&id.to_string(), &url_request(id, &secret_url), &[])
        .await;
    let mut worker = env.start_worker(&[
        ("DFA__WORKER__FETCH_ALLOW_HOSTS[0]", "127.0.0.1"),
        ("DFA__WORKER__FETCH_ALLOW_HTTP", "true"),
    ]);
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", 1, LONG)
        .await;
    assert_eq!(rows, 1, "worker log:\n{}", worker.stderr());
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    let clean = format!("http://{addr}/face.png");
    let stored: String = sqlx::query_scalar("SELECT image_source FROM verdicts")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(stored, clean);
    let results = env.read_topic(&env.results, 1, LONG).await;
    assert_eq!(results.len(), 1);
    let result: serde_json::Value = serde_json::from_slice(&results[0].payload).unwrap();
    assert_eq!(result["image"]["source"], clean.as_str());
    let (ok, log) = worker.terminate(LONG);
    assert!(ok, "{log}");
    for secret in ["topsecret", "hunter2"] {
        assert!(!log.contains(secret), "{secret} was logged: {log}");
    }
    assert_eq!(env.count("SELECT count(*) FROM rejected_requests").await, 3);
}

// In-process: retries of transient failures, over a fake backend.

async fn processor(env: &Env, images: &Path) -> Processor<FakeBackend> {
    let mut s = crate::inproc::settings(env, images);
    s.worker.fetch_allow_hosts = vec!["127.0.0.1".into()];
    s.worker.fetch_allow_http = true;
    s.worker.fetch_max_attempts = 4;
    s.worker.retry_initial = Duration::from_millis(10);
    s.worker.retry_max = Duration::from_millis(50);
    crate::inproc::processor_with(env, FakeBackend::scoring(0.9), s).await
}

use crate::inproc::message;

async fn rejection_reason(env: &Env, id: Uuid) -> (String, String) {
    sqlx::query_as(&format!(
        "SELECT error_kind, reason FROM rejected_requests WHERE request_id = '{id}'"
    ))
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_transient_fetch_failures_are_retried_and_client_errors_are_not() {
    let env = Env::new("fetch_retry").await;
    let p = processor(&env, &env.dir.join("images")).await;
    let retries = || metric_sum(&p.metrics.render(), "dfa_transient_retries_total");

    // 503 twice, then the image: a verdict on the third attempt.
    let busy = response("503 Service Unavailable", b"overloaded");
    let (flaky, flaky_seen) =
        image_server(vec![busy.clone(), busy, response("200 OK", &png())]).await;
    let id = Uuid::new_v4();
    let url = format!("http://{flaky}/face.png");
    assert_eq!(
        p.handle(&message(&env.requests, 0, url_request(id, &url)))
            .await,
        Outcome::Done
    );
    assert_eq!(flaky_seen.load(Ordering::SeqCst), 3, "three attempts");
    assert_eq!(retries(), 2.0);
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 1);

    // 404: dead-lettered after exactly one attempt.
    let (missing, missing_seen) =
        image_server(vec![response("404 Not Found", b"no such key")]).await;
    let id = Uuid::new_v4();
    let url = format!("http://{missing}/face.png");
    assert_eq!(
        p.handle(&message(&env.requests, 1, url_request(id, &url)))
            .await,
        Outcome::DeadLettered
    );
    assert_eq!(missing_seen.load(Ordering::SeqCst), 1, "one attempt");
    assert_eq!(retries(), 2.0, "no retry");
    let (kind, reason) = rejection_reason(&env, id).await;
    assert_eq!(kind, "fetch_failed");
    assert_eq!(reason, "image URL answered HTTP 404 (1 attempt)");

    // 503 for good: dead-lettered after worker.fetch_max_attempts.
    let (down, down_seen) = image_server(vec![response("503 Service Unavailable", b"")]).await;
    let id = Uuid::new_v4();
    let url = format!("http://{down}/face.png");
    assert_eq!(
        p.handle(&message(&env.requests, 2, url_request(id, &url)))
            .await,
        Outcome::DeadLettered
    );
    assert_eq!(down_seen.load(Ordering::SeqCst), 4);
    let (kind, reason) = rejection_reason(&env, id).await;
    assert_eq!(kind, "fetch_failed");
    assert_eq!(
        reason,
        "image URL answered HTTP 503 (gave up after 4 attempts)"
    );

    let dead = env.read_topic(&env.dlq, 2, LONG).await;
    let kinds: Vec<&str> = dead
        .iter()
        .map(|m| m.headers["dfa-error-kind"].as_str())
        .collect();
    assert_eq!(kinds, ["fetch_failed", "fetch_failed"]);
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_abandons_a_fetch_being_retried() {
    let env = Env::new("fetch_stop").await;
    let mut p = processor(&env, &env.dir.join("images")).await;
    p.retry =
        dfa::worker::retry::RetryPolicy::new(Duration::from_secs(3600), Duration::from_secs(3600));
    let (down, down_seen) = image_server(vec![response("503 Service Unavailable", b"")]).await;
    let id = Uuid::new_v4();
    let url = format!("http://{down}/face.png");
    let cancel = p.cancel.clone();
    let msg = message(&env.requests, 0, url_request(id, &url));
    let handled = tokio::spawn(async move { p.handle(&msg).await });
    let seen = common::poll_until(
        LONG,
        Duration::from_millis(20),
        || async { down_seen.load(Ordering::SeqCst) },
        |n| *n >= 1,
    )
    .await;
    assert_eq!(seen, 1, "the first attempt was made");
    cancel.cancel();
    let outcome = tokio::time::timeout(LONG, handled)
        .await
        .expect("the stop ends the wait")
        .unwrap();
    assert_eq!(outcome, Outcome::Abandoned);
    assert_eq!(env.count("SELECT count(*) FROM rejected_requests").await, 0);
}
