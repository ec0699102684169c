//! In-process worker pieces over a fake backend, against a test's database
//! and topics: the settings, a `Processor`, and consumed messages.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::common;
use common::fake_backend::FakeBackend;
use common::services::Env;
use dfa::settings::Settings;
use dfa::store::{Source, Store};
use dfa::worker::metrics::Metrics;
use dfa::worker::process::{Incoming, Processor};
use tokio_util::sync::CancellationToken;

/// The embedded settings pointed at `env`'s broker, topics, group,
/// database and an image store under `images`.
pub fn settings(env: &Env, images: &Path) -> Settings {
    let mut s = common::settings();
    s.kafka.brokers = common::services::brokers();
    s.kafka.requests_topic = env.requests.clone();
    s.kafka.results_topic = env.results.clone();
    s.kafka.dlq_topic = env.dlq.clone();
    s.kafka.feedback_topic = env.feedback.clone();
    s.kafka.group_id = env.group.clone();
    s.database.url = env.db_url.clone().into();
    s.image_store.dir = images.to_string_lossy().into_owned();
    s
}

/// A `Processor` over `backend` with `settings`.
pub async fn processor_with(
    env: &Env,
    backend: FakeBackend,
    settings: Settings,
) -> Processor<FakeBackend> {
    let store = Store::connect(&env.db_url, 2).await.expect("connect");
    let producer = dfa::worker::kafka::producer(&settings.kafka).expect("producer");
    Processor::new(
        Arc::new(backend),
        store,
        producer,
        Metrics::new(),
        settings,
        CancellationToken::new(),
    )
    .expect("processor")
}

/// A `Processor` over `backend`; its images go to `images`.
pub async fn processor(env: &Env, backend: FakeBackend, images: &Path) -> Processor<FakeBackend> {
    processor_with(env, backend, settings(env, images)).await
}

/// A message as consumed from partition 0 of `topic`.
pub fn message(topic: &str, offset: i64, payload: Vec<u8>) -> Incoming {
    Incoming {
        source: Source {
            topic: topic.to_string(),
            partition: 0,
            offset,
        },
        key: Some(b"key".to_vec()),
        payload,
        headers: HashMap::new(),
    }
}
