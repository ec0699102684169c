//! Prometheus metrics and the /healthz + /metrics endpoint.

use std::net::SocketAddr;

use super::health::Health;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub consumed: IntCounter,
    pub verdicts_written: IntCounter,
    pub duplicates: IntCounter,
    /// Images whose stored analysis (same bytes, same model) was reused.
    pub reposts: IntCounter,
    pub dead_lettered: IntCounterVec,
    /// Dead letters the dead-letter topic refused for good (their originals
    /// are kept on disk and their rejections recorded).
    pub dead_letters_unsent: IntCounterVec,
    pub retries: IntCounterVec,
    pub corrections: IntCounterVec,
    /// 1 for the adapter this worker serves ("none": the base model).
    pub serving_adapter: IntGaugeVec,
    pub in_flight: IntGauge,
    /// Messages behind the end of each partition this worker holds
    /// (librdkafka's statistics), for dashboards; KEDA reads the group's lag
    /// from the brokers itself.
    pub consumer_lag: IntGaugeVec,
    pub write_batch_size: Histogram,
    pub stage_seconds: HistogramVec,
    /// What /healthz reports.
    pub health: Health,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let consumed = IntCounter::new("dfa_messages_consumed_total", "Request messages consumed")
            .expect("constant metric definition");
        let verdicts_written =
            IntCounter::new("dfa_verdicts_written_total", "Verdict rows inserted")
                .expect("constant metric definition");
        let duplicates = IntCounter::new(
            "dfa_duplicate_requests_total",
            "Requests whose verdict already existed (redelivery or duplicate)",
        )
        .expect("constant metric definition");
        let reposts = IntCounter::new(
            "dfa_reposts_reused_total",
            "Images analysed before by the same model whose analysis was reused",
        )
        .expect("constant metric definition");
        let dead_lettered = IntCounterVec::new(
            Opts::new(
                "dfa_dead_lettered_total",
                "Messages sent to the dead-letter topic",
            ),
            &["kind"],
        )
        .expect("constant metric definition");
        let dead_letters_unsent = IntCounterVec::new(
            Opts::new(
                "dfa_dead_letters_unsent_total",
                "Dead letters the dead-letter topic refused; recorded in Postgres, original kept on disk",
            ),
            &["kind"],
        )
        .expect("constant metric definition");
        let retries = IntCounterVec::new(
            Opts::new(
                "dfa_transient_retries_total",
                "Retries after transient failures",
            ),
            &["stage"],
        )
        .expect("constant metric definition");
        let corrections = IntCounterVec::new(
            Opts::new(
                "dfa_corrections_total",
                "Feedback messages stored, by what they did (inserted, superseded, unchanged)",
            ),
            &["outcome"],
        )
        .expect("constant metric definition");
        let serving_adapter = IntGaugeVec::new(
            Opts::new(
                "dfa_serving_adapter",
                "1 for the LoRA adapter this worker applies (adapter=\"none\": base model)",
            ),
            &["adapter"],
        )
        .expect("constant metric definition");
        let in_flight = IntGauge::new("dfa_requests_in_flight", "Requests being processed")
            .expect("constant metric definition");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "dfa_consumer_lag",
                "Messages between the committed position and the end of each assigned partition",
            ),
            &["topic", "partition"],
        )
        .expect("constant metric definition");
        let write_batch_size = Histogram::with_opts(
            HistogramOpts::new("dfa_write_batch_size", "Verdicts per database transaction")
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ]),
        )
        .expect("constant metric definition");
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("dfa_stage_seconds", "Latency per stage")
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 18).unwrap_or_default()),
            &["stage"],
        )
        .expect("constant metric definition");
        let m = Metrics {
            registry,
            consumed,
            verdicts_written,
            duplicates,
            reposts,
            dead_lettered,
            dead_letters_unsent,
            retries,
            corrections,
            serving_adapter,
            in_flight,
            consumer_lag,
            write_batch_size,
            stage_seconds,
            health: Health::new(),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.consumed.clone()),
            Box::new(m.verdicts_written.clone()),
            Box::new(m.duplicates.clone()),
            Box::new(m.reposts.clone()),
            Box::new(m.dead_lettered.clone()),
            Box::new(m.dead_letters_unsent.clone()),
            Box::new(m.retries.clone()),
            Box::new(m.corrections.clone()),
            Box::new(m.serving_adapter.clone()),
            Box::new(m.in_flight.clone()),
            Box::new(m.consumer_lag.clone()),
            Box::new(m.write_batch_size.clone()),
            Box::new(m.stage_seconds.clone()),
        ];
        for c in collectors {
            // Names are fixed and distinct; registration cannot collide.
            let _ = m.registry.register(c);
        }
        m
    }

    /// Records which adapter is applied now.
    pub fn set_serving_adapter(&self, id: &str) {
        self.serving_adapter.reset();
        self.serving_adapter.with_label_values(&[id]).set(1);
    }

    pub fn observe(&self, stage: &str, seconds: f64) {
        self.stage_seconds
            .with_label_values(&[stage])
            .observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves /healthz and /metrics until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(|State(m): State<Metrics>| async move { m.render() }),
        )
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

/// 200 while every check passes, else 503; the body names each check.
async fn healthz(
    State(m): State<Metrics>,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let report = m.health.report();
    let code = if m.health.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string(&report).unwrap_or_default() + "\n";
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_prometheus_text() {
        let m = Metrics::new();
        m.consumed.inc();
        m.dead_lettered.with_label_values(&["invalid_json"]).inc();
        m.observe("analyse", 0.25);
        let text = m.render();
        assert!(text.contains("dfa_messages_consumed_total 1"), "{text}");
        assert!(
            text.contains("dfa_dead_lettered_total{kind=\"invalid_json\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("dfa_stage_seconds_bucket{stage=\"analyse\""),
            "{text}"
        );
    }
}
