//! The fetcher against scripted HTTP servers on loopback addresses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::worker::retry::RetryPolicy;

/// A server on `ip` answering its n-th connection with `answers[n]` (the
/// last one from then on), each one `Connection: close`. Returns its
/// address and the connections it accepted.
async fn server(ip: &str, answers: Vec<String>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    server_with(ip, |_| answers).await
}

/// As `server`, with answers that may name the server's own address.
async fn server_with(
    ip: &str,
    answers: impl FnOnce(std::net::SocketAddr) -> Vec<String>,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = answers(addr);
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
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

fn answer(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

fn ok(body: &str) -> String {
    answer("200 OK", "", body)
}

fn redirect_to(location: &str) -> String {
    answer("302 Found", &format!("Location: {location}\r\n"), "")
}

fn fetcher(allow_hosts: &[&str], max_attempts: u32) -> Fetcher {
    let mut s = crate::settings::Settings::embedded().unwrap();
    s.worker.fetch_allow_hosts = allow_hosts.iter().map(|h| h.to_string()).collect();
    s.worker.fetch_allow_http = true;
    s.worker.fetch_timeout = Duration::from_secs(5);
    s.worker.fetch_max_attempts = max_attempts;
    Fetcher::new(&s.worker, &s.image)
}

fn url(s: &str) -> ImageSource {
    ImageSource::Url(s.to_string())
}

#[tokio::test]
async fn an_allowed_host_is_fetched() {
    let (addr, accepted) = server("127.0.0.2", vec![ok("image")]).await;
    let f = fetcher(&["127.0.0.2"], 1);
    let got = f.fetch(&url(&format!("http://{addr}/x.png"))).await;
    assert_eq!(got.unwrap(), b"image");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_from_an_allowed_host_to_loopback_is_refused_unconnected() {
    let (target, target_seen) = server("127.0.0.1", vec![ok("internal")]).await;
    let (allowed, allowed_seen) = server(
        "127.0.0.2",
        vec![redirect_to(&format!("http://{target}/admin"))],
    )
    .await;
    let f = fetcher(&["127.0.0.2"], 1);
    let got = f.fetch(&url(&format!("http://{allowed}/x.png"))).await;
    assert_eq!(
        got,
        Err(FetchError::Refused(Refusal::Redirect(Box::new(
            Refusal::Address(AddressClass::Loopback)
        ))))
    );
    assert_eq!(allowed_seen.load(Ordering::SeqCst), 1);
    assert_eq!(target_seen.load(Ordering::SeqCst), 0, "never connected to");
    let reason = got.unwrap_err().to_string();
    assert!(!reason.contains("127.0.0.1"), "{reason}");
}

#[tokio::test]
async fn a_redirect_to_a_name_resolving_to_loopback_is_refused_unconnected() {
    let (target, target_seen) = server("127.0.0.1", vec![ok("internal")]).await;
    let location = format!("http://localhost:{}/admin", target.port());
    let (allowed, _) = server("127.0.0.2", vec![redirect_to(&location)]).await;
    let f = fetcher(&["127.0.0.2"], 1);
    let got = f.fetch(&url(&format!("http://{allowed}/x.png"))).await;
    assert_eq!(
        got,
        Err(FetchError::Refused(Refusal::Address(
            AddressClass::Loopback
        )))
    );
    assert_eq!(target_seen.load(Ordering::SeqCst), 0, "never connected to");
}

#[tokio::test]
async fn a_loopback_url_is_refused_before_connecting() {
    let (addr, seen) = server("127.0.0.1", vec![ok("image")]).await;
    let f = fetcher(&[], 1);
    for u in [
        format!("http://{addr}/x.png"),
        format!("http://localhost:{}/x.png", addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/x.png", addr.port()),
    ] {
        let got = f.fetch(&url(&u)).await;
        assert_eq!(
            got,
            Err(FetchError::Refused(Refusal::Address(
                AddressClass::Loopback
            ))),
            "{u}"
        );
        assert_eq!(got.unwrap_err().kind(), "fetch_refused");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn more_than_three_redirects_are_refused() {
    let (addr, seen) = server_with("127.0.0.2", |me| {
        vec![redirect_to(&format!("http://{me}/again"))]
    })
    .await;
    let f = fetcher(&["127.0.0.2"], 1);
    let got = f.fetch(&url(&format!("http://{addr}/"))).await;
    assert_eq!(got, Err(FetchError::Refused(Refusal::TooManyRedirects(3))));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        4,
        "the request and 3 redirects"
    );
}

#[tokio::test]
async fn an_error_answer_is_not_echoed() {
    let body = "stack trace: db password hunter2 at 10.0.0.5";
    let (addr, _) = server(
        "127.0.0.2",
        vec![answer("500 Internal Server Error", "", body)],
    )
    .await;
    let f = fetcher(&["127.0.0.2"], 1);
    let secret_url = format!("http://user:pw@{addr}/x.png?X-Amz-Signature=sig");
    let got = f.fetch(&url(&secret_url)).await.unwrap_err();
    assert_eq!(got, FetchError::Status { status: 500 });
    let reason = got.to_string();
    for leak in ["hunter2", "10.0.0.5", "sig", "pw", "127.0.0.2"] {
        assert!(!reason.contains(leak), "{leak} in {reason}");
    }
}

#[tokio::test]
async fn a_connection_failure_is_transient_and_names_no_address() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = fetcher(&["127.0.0.2"], 1);
    let got = f
        .fetch(&url(&format!("http://127.0.0.2:{port}/x.png")))
        .await
        .unwrap_err();
    assert_eq!(got, FetchError::Connect);
    assert!(got.is_transient());
    let missing = f
        .fetch(&url("http://no-such-host.invalid/x.png"))
        .await
        .unwrap_err();
    assert_eq!(missing, FetchError::Dns);
}

#[tokio::test]
async fn the_body_limit_holds_without_a_content_length() {
    let big = "x".repeat(64);
    let chunked = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n40\r\n{big}\r\n0\r\n\r\n"
    );
    let (addr, _) = server("127.0.0.2", vec![chunked]).await;
    let mut s = crate::settings::Settings::embedded().unwrap();
    s.worker.fetch_allow_hosts = vec!["127.0.0.2".into()];
    s.worker.fetch_allow_http = true;
    s.image.max_bytes = 63;
    let f = Fetcher::new(&s.worker, &s.image);
    let got = f.fetch(&url(&format!("http://{addr}/x.png"))).await;
    assert_eq!(got, Err(FetchError::TooLarge { limit: 63 }));
}

fn quick() -> RetryPolicy {
    RetryPolicy::new(Duration::from_millis(1), Duration::from_millis(5))
}

async fn fetch_retrying(
    f: &Fetcher,
    addr: std::net::SocketAddr,
) -> (Result<Vec<u8>, GaveUp<FetchFailed>>, usize) {
    let mut retries = 0;
    let got = f
        .fetch_retrying(
            &url(&format!("http://{addr}/x.png")),
            &quick(),
            &CancellationToken::new(),
            |_, _| retries += 1,
        )
        .await;
    (got, retries)
}

#[tokio::test]
async fn transient_answers_are_retried_until_the_image_comes() {
    let unavailable = answer("503 Service Unavailable", "", "busy");
    let throttled = answer("429 Too Many Requests", "", "slow down");
    let (addr, seen) = server("127.0.0.2", vec![unavailable, throttled, ok("image")]).await;
    let (got, retries) = fetch_retrying(&fetcher(&["127.0.0.2"], 4), addr).await;
    assert_eq!(got.unwrap(), b"image");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(retries, 2);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_limit() {
    let (addr, seen) = server("127.0.0.2", vec![answer("502 Bad Gateway", "", "")]).await;
    let (got, _) = fetch_retrying(&fetcher(&["127.0.0.2"], 3), addr).await;
    let Err(GaveUp::Permanent(failed)) = got else {
        panic!("expected a failure, got {got:?}");
    };
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.kind(), "fetch_failed");
    assert_eq!(
        failed.to_string(),
        "image URL answered HTTP 502 (gave up after 3 attempts)"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_client_error_or_a_refusal_is_not_retried() {
    let (addr, seen) = server("127.0.0.2", vec![answer("404 Not Found", "", "")]).await;
    let (got, retries) = fetch_retrying(&fetcher(&["127.0.0.2"], 4), addr).await;
    let Err(GaveUp::Permanent(failed)) = got else {
        panic!("expected a failure, got {got:?}");
    };
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.error, FetchError::Status { status: 404 });
    assert_eq!(
        failed.to_string(),
        "image URL answered HTTP 404 (1 attempt)"
    );
    assert_eq!((seen.load(Ordering::SeqCst), retries), (1, 0));

    let (loopback, seen) = server("127.0.0.1", vec![ok("image")]).await;
    let (got, _) = fetch_retrying(&fetcher(&[], 4), loopback).await;
    let Err(GaveUp::Permanent(failed)) = got else {
        panic!("expected a refusal, got {got:?}");
    };
    assert_eq!((failed.kind(), failed.attempts), ("fetch_refused", 1));
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn shutdown_ends_a_fetch_in_its_wait_or_its_attempt() {
    let (addr, _) = server("127.0.0.2", vec![answer("503 Service Unavailable", "", "")]).await;
    let f = fetcher(&["127.0.0.2"], 10);
    let stop = CancellationToken::new();
    let long = RetryPolicy::new(Duration::from_secs(3600), Duration::from_secs(3600));
    let canceller = stop.clone();
    let got = f
        .fetch_retrying(
            &url(&format!("http://{addr}/x.png")),
            &long,
            &stop,
            move |_, _| canceller.cancel(),
        )
        .await;
    assert_eq!(got, Err(GaveUp::Stopped), "in the wait");

    // A server that accepts and never answers: the attempt itself is cut.
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let canceller = stop.clone();
    tokio::spawn(async move {
        let _held = listener.accept().await;
        canceller.cancel();
        std::future::pending::<()>().await;
    });
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        f.fetch_retrying(
            &url(&format!("http://{addr}/x.png")),
            &quick(),
            &stop,
            |_, _| {},
        ),
    )
    .await
    .expect("the stop ends the attempt");
    assert_eq!(got, Err(GaveUp::Stopped), "in the attempt");
}
