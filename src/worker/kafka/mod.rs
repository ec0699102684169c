//! Kafka clients and the messages the worker produces: results (keyed by
//! request id) and dead letters (the original bytes, or a reference to them
//! when too large, plus headers naming the error and where the message came
//! from). Producing retries transient failures with backoff until shutdown;
//! a send that can never succeed ends with a typed error instead of holding
//! its partition forever (`send_error`).

mod letter;
mod originals;
mod publisher;
mod send_error;
mod stall;

pub use letter::{Letter, HEADER_ORIGINAL_BYTES, HEADER_ORIGINAL_SHA256, HEADER_PAYLOAD_REF};
pub use originals::{Kept, Originals};
pub use publisher::{DeadLetterSent, Publisher};
pub use send_error::{SendError, SendFailure};
pub use stall::STALL_AFTER_RETRIES;

use secrecy::ExposeSecret;
use std::collections::HashMap;

use rdkafka::config::ClientConfig;
use rdkafka::message::Headers;
use rdkafka::producer::FutureProducer;

use crate::settings::KafkaSettings;

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
    with_options(c, k)
}

/// `kafka.options` over `c`: an operator's setting wins over a default.
fn with_options(mut c: ClientConfig, k: &KafkaSettings) -> ClientConfig {
    for (key, value) in &k.options {
        let value = value.expose_secret();
        c.set(key, value);
    }
    c
}

pub fn producer(k: &KafkaSettings) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    let mut defaults = ClientConfig::new();
    defaults
        .set("bootstrap.servers", &k.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        // Topics are provisioned (or created by `kafka.create_topics`), never
        // created as a side effect of a send or a metadata request: a
        // misspelt or missing topic is reported, not silently made.
        .set("allow.auto.create.topics", "false");
    with_options(defaults, k).create()
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
