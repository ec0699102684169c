//! Prometheus metrics of `dfa serve`: requests by route and status, their
//! latency, follow-up timings, and the adapter being served. Also the
//! middleware that records every request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::state::App;

#[derive(Clone)]
pub struct ServeMetrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    /// Follow-up stages: `first_token` and `answer` seconds, by cache `hit|miss`.
    pub follow_up: HistogramVec,
    /// Follow-ups by how they ended: `answered` (persisted), `abandoned`
    /// (the client left before the end; nothing stored), `failed`.
    pub follow_ups: IntCounterVec,
    pub serving_adapter: IntGaugeVec,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServeMetrics {
    pub fn new() -> ServeMetrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "dfa_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("dfa_http_request_seconds", "HTTP request latency by route")
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets")),
            &["route"],
        )
        .expect("valid metric");
        let follow_up = HistogramVec::new(
            HistogramOpts::new(
                "dfa_follow_up_seconds",
                "Follow-up question timings: stage first_token|answer, cache hit|miss",
            )
            .buckets(prometheus::exponential_buckets(0.005, 2.0, 14).expect("valid buckets")),
            &["stage", "cache"],
        )
        .expect("valid metric");
        let follow_ups = IntCounterVec::new(
            Opts::new(
                "dfa_follow_ups_total",
                "Follow-up questions by outcome: answered, abandoned (client left), failed",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let serving_adapter = IntGaugeVec::new(
            Opts::new("dfa_serving_adapter", "1 for the adapter the engine serves"),
            &["adapter"],
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(follow_up.clone()),
            Box::new(follow_ups.clone()),
            Box::new(serving_adapter.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        ServeMetrics {
            registry,
            requests,
            latency,
            follow_up,
            follow_ups,
            serving_adapter,
        }
    }

    pub fn set_serving_adapter(&self, id: &str) {
        self.serving_adapter.reset();
        self.serving_adapter.with_label_values(&[id]).set(1);
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Counts each request under its route pattern (never the raw path, which
/// holds ids) and status.
pub async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(req).await;
    let m = &app.metrics;
    m.latency
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}
