//! Producing results and dead letters. Transient failures are retried with
//! backoff until shutdown (`/healthz` fails while a send is held); a send
//! that can never succeed ends with a `SendError`, so its message can be
//! dead-lettered and its partition move on.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::letter::{self, Letter};
use super::originals::{Kept, Originals};
use super::send_error::{SendError, SendFailure};
use super::stall::{SendHealth, STALL_AFTER_RETRIES};
use super::HEADER_TRACEPARENT;
use crate::settings::Settings;
use crate::worker::health::Check;
use crate::worker::metrics::Metrics;
use crate::worker::retry::{GaveUp, RetryPolicy};

pub struct Publisher {
    producer: FutureProducer,
    results_topic: String,
    dlq_topic: String,
    /// `kafka.dlq_max_payload_bytes`: larger originals are referenced.
    max_payload: usize,
    originals: Originals,
    retry: RetryPolicy,
    metrics: Metrics,
    sends: SendHealth,
    cancel: CancellationToken,
}

/// How a dead letter went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterSent {
    /// With the original payload.
    Inline,
    /// With an empty payload and headers referencing the kept original.
    ByReference(Kept),
    /// The dead-letter topic refused even the referencing letter; the
    /// original is kept on disk, and the caller records the rejection.
    Unsent { error: SendError, kept: Kept },
}

impl Publisher {
    pub fn new(
        producer: FutureProducer,
        settings: &Settings,
        retry: RetryPolicy,
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> Publisher {
        let k = &settings.kafka;
        Publisher {
            producer,
            results_topic: k.results_topic.clone(),
            dlq_topic: k.dlq_topic.clone(),
            max_payload: k.dlq_max_payload_bytes,
            originals: Originals::under(&settings.image_store.dir),
            retry,
            sends: SendHealth::new(metrics.health.clone()),
            metrics,
            cancel,
        }
    }

    /// Publishes a result, keyed by request id, with the trace context.
    /// `TooLarge` / `Refused`: it can never be published (the caller
    /// dead-letters the request); `Fatal`: the producer is unusable.
    pub async fn result(
        &self,
        key: &str,
        payload: &str,
        traceparent: Option<&str>,
    ) -> Result<(), SendError> {
        let mut headers = OwnedHeaders::new();
        if let Some(tp) = traceparent {
            headers = headers.insert(Header {
                key: HEADER_TRACEPARENT,
                value: Some(tp.as_bytes()),
            });
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

    /// Sends `letter` to the dead-letter topic: inline up to
    /// `kafka.dlq_max_payload_bytes`, else by reference to the original kept
    /// on disk. Errs only at shutdown (`Cancelled`) or when the producer is
    /// unusable (`Fatal`): the message is then left to be redelivered.
    ///
    /// A dead letter the topic refuses for good must not hold its partition
    /// forever, nor may it be dropped. Kafka Connect, when its DLQ producer
    /// fails, logs the error, counts it (`deadletterqueue-produce-failures`)
    /// and moves on. Here the original is kept on disk first, and a refused
    /// inline letter is retried once as a small referencing letter (the
    /// common refusal is size: the payload plus headers over
    /// `message.max.bytes`, which the limit only approximates); if that is
    /// refused too, the error is logged and counted, and the caller records
    /// the rejection in Postgres with the path of the kept original, so the
    /// message is finished and still replayable.
    pub async fn dead_letter(&self, letter: &Letter<'_>) -> Result<DeadLetterSent, SendError> {
        let inline = letter::fits_inline(letter.payload.len(), self.max_payload);
        let first = if inline {
            self.send_letter(letter, None).await
        } else {
            let kept = self.keep(letter.payload).await?;
            match self.send_letter(letter, Some(&kept)).await {
                Ok(()) => return Ok(DeadLetterSent::ByReference(kept)),
                Err(e) => return self.unsent(letter, e, Some(kept)).await,
            }
        };
        match first {
            Ok(()) => Ok(DeadLetterSent::Inline),
            Err(e @ SendError::TooLarge { .. }) => {
                tracing::warn!(error = %e, "dead letter too large; sending it by reference");
                let kept = self.keep(letter.payload).await?;
                match self.send_letter(letter, Some(&kept)).await {
                    Ok(()) => Ok(DeadLetterSent::ByReference(kept)),
                    Err(e) => self.unsent(letter, e, Some(kept)).await,
                }
            }
            Err(e) => self.unsent(letter, e, None).await,
        }
    }

    async fn send_letter(&self, letter: &Letter<'_>, kept: Option<&Kept>) -> Result<(), SendError> {
        let headers = letter::headers(letter, kept, self.max_payload);
        let payload = if kept.is_some() {
            &[][..]
        } else {
            letter.payload
        };
        self.produce(&self.dlq_topic, letter.key, payload, headers, "dead_letter")
            .await
    }

    /// A dead letter refused for good: logged, counted, its original kept.
    async fn unsent(
        &self,
        letter: &Letter<'_>,
        error: SendError,
        kept: Option<Kept>,
    ) -> Result<DeadLetterSent, SendError> {
        if matches!(error, SendError::Cancelled | SendError::Fatal { .. }) {
            return Err(error);
        }
        let kept = match kept {
            Some(k) => k,
            None => self.keep(letter.payload).await?,
        };
        tracing::error!(
            %error,
            kind = letter.kind,
            original = %kept.path.display(),
            "the dead-letter topic refused the letter; the original is kept on disk and the rejection recorded"
        );
        self.metrics
            .dead_letters_unsent
            .with_label_values(&[letter.kind])
            .inc();
        Ok(DeadLetterSent::Unsent { error, kept })
    }

    /// Keeps an original on disk, retrying while the store is unwritable
    /// (an outage, like the image store's: `/healthz` says so meanwhile).
    async fn keep(&self, payload: &[u8]) -> Result<Kept, SendError> {
        let mut retries = 0;
        let on_retry = |e: &super::originals::KeepError, wait: Duration| {
            retries += 1;
            self.metrics
                .retries
                .with_label_values(&["dead_letter_store"])
                .inc();
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "dead-letter store unwritable; retrying");
            if retries >= STALL_AFTER_RETRIES {
                self.metrics.health.fail(Check::ImageStore, e.to_string());
            }
        };
        let kept = self
            .retry
            .run(
                &self.cancel,
                || self.originals.keep(payload),
                |_| true,
                on_retry,
            )
            .await;
        // Pass the check only if this store failed it, not another's.
        let health = &self.metrics.health;
        if health
            .failing(Check::ImageStore)
            .is_some_and(|r| r.starts_with("dead-letter store"))
        {
            health.pass(Check::ImageStore);
        }
        // Every failure is retried: only shutdown ends the attempts.
        kept.map_err(|_| SendError::Cancelled)
    }

    async fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
        stage: &'static str,
    ) -> Result<(), SendError> {
        let send = || {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic)
                .payload(payload)
                .headers(headers.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            self.producer.send(record, Duration::from_secs(10))
        };
        let retryable =
            |(e, _): &(KafkaError, OwnedMessage)| SendFailure::of(e) == SendFailure::Transient;
        let mut watch = self.sends.watch(topic);
        let on_retry = |(e, _): &(KafkaError, OwnedMessage), wait: Duration| {
            self.metrics.retries.with_label_values(&[stage]).inc();
            tracing::warn!(error = %e, topic, retry_in_ms = wait.as_millis() as u64, "produce failed; retrying");
            watch.retrying(&e.to_string());
        };
        let sent = self
            .retry
            .run(&self.cancel, send, retryable, on_retry)
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(GaveUp::Stopped) => Err(SendError::Cancelled),
            Err(GaveUp::Permanent((e, _))) => {
                let failure = SendFailure::of(&e);
                let fatal = (failure == SendFailure::Fatal)
                    .then(|| rdkafka::producer::Producer::client(&self.producer).fatal_error())
                    .flatten()
                    .map(|(code, reason)| format!("{reason} ({code:?})"));
                let error = SendError::permanent(failure, topic, &e, fatal);
                if let SendError::Fatal { reason } = &error {
                    self.sends.fatal(reason);
                }
                tracing::warn!(%error, topic, "produce failed for good");
                Err(error)
            }
        }
    }
}
