//! Kafka clients and the messages the worker produces: results (keyed by
//! request id) and dead letters (the original bytes plus headers naming the
//! error and where the message came from). Producing retries transient
//! failures with backoff; it never gives up on a message silently.

use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::retry::{GaveUp, RetryPolicy};
use crate::settings::KafkaSettings;
use crate::store::Source;

pub const HEADER_ERROR_KIND: &str = "dfa-error-kind";
pub const HEADER_ERROR_REASON: &str = "dfa-error-reason";
pub const HEADER_ORIGINAL_TOPIC: &str = "dfa-original-topic";
pub const HEADER_ORIGINAL_PARTITION: &str = "dfa-original-partition";
pub const HEADER_ORIGINAL_OFFSET: &str = "dfa-original-offset";
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// Settings shared by consumer and producer.
pub fn client_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.options {
        let value = value.expose_secret();
        c.set(key, value);
    }
    c
}

pub fn producer(k: &KafkaSettings) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    client_config(k)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
}

/// Headers of a consumed message, as strings (non-UTF-8 values are skipped).
pub fn header_map<H: Headers>(headers: Option<&H>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(h) = headers {
        for header in h.iter() {
            if let Some(Ok(value)) = header.value.map(std::str::from_utf8) {
                map.insert(header.key.to_string(), value.to_string());
            }
        }
    }
    map
}

fn with_header(headers: OwnedHeaders, key: &str, value: &str) -> OwnedHeaders {
    headers.insert(Header {
        key,
        value: Some(value.as_bytes()),
    })
}

pub struct Publisher {
    producer: FutureProducer,
    results_topic: String,
    dlq_topic: String,
    retry: RetryPolicy,
    metrics: Metrics,
    cancel: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
#[error("shutting down before the message was produced")]
pub struct Cancelled;

impl Publisher {
    pub fn new(
        producer: FutureProducer,
        k: &KafkaSettings,
        retry: RetryPolicy,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Publisher {
        Publisher {
            producer,
            results_topic: k.results_topic.clone(),
            dlq_topic: k.dlq_topic.clone(),
            retry,
            metrics,
            cancel,
        }
    }

    /// Publishes a result, keyed by request id, with the trace context.
    pub async fn result(
        &self,
        key: &str,
        payload: &str,
        traceparent: Option<&str>,
    ) -> Result<(), Cancelled> {
        let mut headers = OwnedHeaders::new();
        if let Some(tp) = traceparent {
            headers = with_header(headers, HEADER_TRACEPARENT, tp);
        }
        self.produce(
            &self.results_topic,
            Some(key.as_bytes()),
            payload.as_bytes(),
            headers,
            "publish",
        )
        .await
    }

    /// Sends the original message to the dead-letter topic with its reason.
    pub async fn dead_letter(
        &self,
        source: &Source,
        key: Option<&[u8]>,
        payload: &[u8],
        kind: &str,
        reason: &str,
        traceparent: Option<&str>,
    ) -> Result<(), Cancelled> {
        let mut headers = OwnedHeaders::new();
        headers = with_header(headers, HEADER_ERROR_KIND, kind);
        headers = with_header(headers, HEADER_ERROR_REASON, reason);
        headers = with_header(headers, HEADER_ORIGINAL_TOPIC, &source.topic);
        headers = with_header(
            headers,
            HEADER_ORIGINAL_PARTITION,
            &source.partition.to_string(),
        );
        headers = with_header(headers, HEADER_ORIGINAL_OFFSET, &source.offset.to_string());
        if let Some(tp) = traceparent {
            headers = with_header(headers, HEADER_TRACEPARENT, tp);
        }
        self.produce(&self.dlq_topic, key, payload, headers, "dead_letter")
            .await
    }

    async fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
        stage: &'static str,
    ) -> Result<(), Cancelled> {
        let send = || {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic)
                .payload(payload)
                .headers(headers.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            self.producer.send(record, Duration::from_secs(10))
        };
        // Every producer error is retried: a message is never given up on
        // while the worker runs.
        let on_retry = |(e, _): &(KafkaError, OwnedMessage), wait: Duration| {
            self.metrics.retries.with_label_values(&[stage]).inc();
            tracing::warn!(error = %e, topic, retry_in_ms = wait.as_millis() as u64, "produce failed; retrying");
        };
        self.retry
            .run(&self.cancel, send, |_| true, on_retry)
            .await
            .map(|_| ())
            // With every error retried, only shutdown ends the attempts.
            .map_err(|_: GaveUp<_>| Cancelled)
    }
}
