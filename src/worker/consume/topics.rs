//! The topics the worker needs exist: checked at start, named once in the
//! log when missing, reported by /healthz until they exist (re-checked in
//! the background), and created at start when `kafka.create_topics` says so
//! (development stacks; production topics are provisioned with their own
//! partitions and retention).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::super::health::{Check, Health};
use super::super::kafka;
use crate::settings::KafkaSettings;

const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
const RECHECK_EVERY: Duration = Duration::from_secs(2);
/// Partitions of a topic `kafka.create_topics` creates.
const CREATED_PARTITIONS: i32 = 4;

fn needed(k: &KafkaSettings) -> Vec<String> {
    vec![
        k.requests_topic.clone(),
        k.feedback_topic.clone(),
        k.results_topic.clone(),
        k.dlq_topic.clone(),
    ]
}

/// Asks for metadata as a consumer does: unlike a producer's request, it
/// never creates the topic on a broker that auto-creates.
type MetadataClient = Arc<BaseConsumer>;

fn metadata_client(k: &KafkaSettings) -> anyhow::Result<MetadataClient> {
    let client: BaseConsumer = kafka::client_config(k)
        .set("allow.auto.create.topics", "false")
        .create()
        .context("creating the metadata client")?;
    Ok(Arc::new(client))
}

/// The topics in `topics` the cluster does not have; a broker that cannot
/// be asked is an error.
fn missing(client: &BaseConsumer, topics: &[String]) -> anyhow::Result<Vec<String>> {
    let mut absent = Vec::new();
    for topic in topics {
        let metadata = client
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .with_context(|| format!("asking the brokers about topic {topic}"))?;
        let exists = metadata.topics().iter().any(|t| {
            t.name() == topic
                && t.error().is_none_or(|e| {
                    !matches!(
                        RDKafkaErrorCode::from(e),
                        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                    )
                })
                && !t.partitions().is_empty()
        });
        if !exists {
            absent.push(topic.clone());
        }
    }
    Ok(absent)
}

async fn missing_off_thread(
    client: &MetadataClient,
    topics: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || missing(&client, &topics))
        .await
        .context("metadata thread")?
}

async fn create(k: &KafkaSettings, topics: &[String]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka::client_config(k)
        .create()
        .context("creating the admin client")?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, CREATED_PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .context("creating topics")?
    {
        match result {
            Ok(topic) => tracing::info!(%topic, "created topic (kafka.create_topics)"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(%topic, "topic exists already")
            }
            Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Checks (and, when allowed, creates) the topics; while some are missing,
/// /healthz fails naming them, and a background task re-checks until they
/// all exist.
pub async fn ensure(
    k: &KafkaSettings,
    health: &Health,
    stop: &CancellationToken,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let client = metadata_client(k)?;
    let mut absent = missing_off_thread(&client, needed(k)).await?;
    if !absent.is_empty() && k.create_topics {
        create(k, &absent).await?;
        absent = missing_off_thread(&client, absent).await?;
    }
    if absent.is_empty() {
        return Ok(None);
    }
    let named = absent.join(", ");
    tracing::error!(
        topics = %named,
        "missing Kafka topics: create them (or set kafka.create_topics = true on a development stack); \
         /healthz fails until they exist"
    );
    health.fail(Check::Topics, format!("missing topics: {named}"));
    let (health, stop) = (health.clone(), stop.clone());
    Ok(Some(tokio::spawn(async move {
        while !absent.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RECHECK_EVERY) => {}
            }
            match missing_off_thread(&client, absent.clone()).await {
                Ok(still) => absent = still,
                Err(e) => tracing::debug!(error = %e, "topic re-check"),
            }
            if !absent.is_empty() {
                health.fail(
                    Check::Topics,
                    format!("missing topics: {}", absent.join(", ")),
                );
            }
        }
        health.pass(Check::Topics);
        tracing::info!("all topics exist now");
    })))
}
