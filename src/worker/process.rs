//! One request message, from bytes to a stored and published verdict, or to
//! the dead-letter topic. Permanent failures (bad message, bad image) are
//! dead-lettered; transient ones (database, broker) are retried inside the
//! writer and publisher, so they never reach here as failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use uuid::Uuid;

use super::fetch::Fetcher;
use super::kafka::{Publisher, HEADER_TRACEPARENT};
use super::metrics::Metrics;
use super::request::{parse_request, Request};
use super::retry::Transient;
use super::trace;
use super::writer::{WriteError, Writer};
use crate::analyze::{analyze_bytes, AnalyzeError};
use crate::engine::{Backend, EngineError, Tasks};
use crate::image_store::ImageStore;
use crate::settings::Settings;
use crate::store::{NewVerdict, Source, Store};
use crate::verdict::Verdict;

/// A consumed message, owned so it can outlive the consumer's buffer.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub source: Source,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verdict stored and published.
    Done,
    /// A verdict existed already; it was republished.
    Duplicate,
    /// Sent to the dead-letter topic and recorded.
    DeadLettered,
    /// Shutting down: not finished, its offset must not be stored.
    Abandoned,
}

impl Outcome {
    pub fn finished(self) -> bool {
        self != Outcome::Abandoned
    }
}

/// The result message: the verdict plus what the request said about itself.
#[derive(Serialize)]
struct ResultMessage<'a> {
    schema_version: u32,
    request_id: Uuid,
    tenant: Option<&'a str>,
    metadata: &'a serde_json::Value,
    image: ImageRef<'a>,
    verdict: &'a Verdict,
}

#[derive(Serialize)]
struct ImageRef<'a> {
    sha256: &'a str,
    source: &'a str,
}

pub struct Processor<B> {
    pub backend: Arc<B>,
    pub store: Store,
    pub writer: Writer,
    pub publisher: Publisher,
    pub fetcher: Fetcher,
    pub images: ImageStore,
    pub metrics: Metrics,
    pub settings: Settings,
    pub cancel: tokio_util::sync::CancellationToken,
}

/// A permanent failure, on its way to the dead-letter topic.
pub(super) struct Reject {
    pub request_id: Option<Uuid>,
    pub kind: &'static str,
    pub reason: String,
}

impl<B: Backend> Processor<B> {
    pub async fn handle(&self, msg: Incoming) -> Outcome {
        let propagate = self.settings.telemetry.propagate_trace_context;
        let parent = msg
            .headers
            .get(HEADER_TRACEPARENT)
            .filter(|_| propagate)
            .cloned();
        let span = tracing::info_span!(
            "request",
            request_id = tracing::field::Empty,
            topic = %msg.source.topic,
            partition = msg.source.partition,
            offset = msg.source.offset,
        );
        trace::set_parent(&span, parent.as_deref());
        async {
            let traceparent = if propagate {
                trace::current_traceparent().or(parent)
            } else {
                None
            };
            match self.process(&msg, traceparent.as_deref()).await {
                Ok(outcome) => outcome,
                Err(reject) => self.dead_letter(&msg, reject, traceparent.as_deref()).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn process(&self, msg: &Incoming, traceparent: Option<&str>) -> Result<Outcome, Reject> {
        let s = &self.settings;
        if msg.source.topic == s.kafka.feedback_topic {
            return self.process_feedback(msg).await;
        }
        let request = {
            let _consume = tracing::info_span!("consume").entered();
            parse_request(&msg.payload, s.worker.allow_local_paths).map_err(|e| Reject {
                request_id: None,
                kind: e.kind(),
                reason: e.to_string(),
            })?
        };
        tracing::Span::current().record("request_id", tracing::field::display(request.request_id));
        let reject = |kind: &'static str, reason: String| Reject {
            request_id: Some(request.request_id),
            kind,
            reason,
        };

        // A redelivered or duplicated request: republish what was stored.
        if let Some(result) = self.find_existing(request.request_id).await {
            self.metrics.duplicates.inc();
            let published = self.publish(&request, &result, traceparent).await;
            return Ok(published.map_or(Outcome::Abandoned, |_| Outcome::Duplicate));
        }

        let started = Instant::now();
        let bytes = self
            .fetcher
            .fetch(&request.image)
            .instrument(tracing::info_span!("fetch"))
            .await
            .map_err(|e| reject(e.kind(), e.to_string()))?;
        self.metrics
            .observe("fetch", started.elapsed().as_secs_f64());
        let image_sha256 = hex::encode(Sha256::digest(&bytes));
        let image_bytes = bytes.len() as i64;

        let started = Instant::now();
        let tasks = Tasks::requested(
            request.explain,
            s.analysis.explain_threshold,
            request.questions.clone(),
        );
        let bytes = std::sync::Arc::new(bytes);
        let verdict = analyze_bytes(
            self.backend.as_ref(),
            request.request_id,
            bytes.clone(),
            tasks,
            &s.image,
            &s.analysis,
        )
        .instrument(tracing::info_span!("analyse"))
        .await;
        self.metrics
            .observe("analyse", started.elapsed().as_secs_f64());
        let verdict = match verdict {
            Ok(v) => v,
            Err(AnalyzeError::Engine(EngineError::Stopped)) => return Ok(Outcome::Abandoned),
            Err(e) => return Err(reject(e.kind(), e.to_string())),
        };

        // Kept before the verdict is stored, so every verdict's image can be
        // trained on once a reviewer corrects it.
        match self
            .with_retry("image_store", || self.images.put(&image_sha256, &bytes))
            .await
        {
            None => return Ok(Outcome::Abandoned),
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(reject("image_store", e.to_string())),
        }
        drop(bytes);

        let source_ref = request.image.reference();
        let result = serde_json::to_string(&ResultMessage {
            schema_version: super::request::SCHEMA_VERSION,
            request_id: request.request_id,
            tenant: request.tenant.as_deref(),
            metadata: &request.metadata,
            image: ImageRef {
                sha256: &image_sha256,
                source: &source_ref,
            },
            verdict: &verdict,
        })
        .map_err(|e| reject("serialize", e.to_string()))?;
        let new = NewVerdict {
            verdict,
            tenant: request.tenant.clone(),
            metadata: request.metadata.clone(),
            image_sha256,
            image_bytes,
            image_source: source_ref,
            source: msg.source.clone(),
            result,
        };
        let stored = match self
            .writer
            .write(new)
            .instrument(tracing::info_span!("persist"))
            .await
        {
            Ok(stored) => stored,
            Err(WriteError::Cancelled) => return Ok(Outcome::Abandoned),
            Err(e @ WriteError::Rejected(_)) => {
                return Err(reject("database_rejected", e.to_string()))
            }
        };
        Ok(self
            .publish(&request, &stored, traceparent)
            .await
            .unwrap_or(Outcome::Abandoned))
    }

    async fn find_existing(&self, request_id: Uuid) -> Option<String> {
        // A failed lookup is not fatal: the insert is idempotent anyway.
        match self.store.find_result(request_id).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "duplicate check failed; the insert decides");
                None
            }
        }
    }

    async fn publish(
        &self,
        request: &Request,
        result: &str,
        traceparent: Option<&str>,
    ) -> Option<Outcome> {
        let started = Instant::now();
        let key = request.request_id.to_string();
        let sent = self
            .publisher
            .result(&key, result, traceparent)
            .instrument(tracing::info_span!("publish"))
            .await;
        self.metrics
            .observe("publish", started.elapsed().as_secs_f64());
        sent.ok().map(|_| Outcome::Done)
    }

    async fn dead_letter(
        &self,
        msg: &Incoming,
        reject: Reject,
        traceparent: Option<&str>,
    ) -> Outcome {
        tracing::warn!(kind = reject.kind, reason = %reject.reason, "dead-lettering request");
        let sent = self
            .publisher
            .dead_letter(
                &msg.source,
                msg.key.as_deref(),
                &msg.payload,
                reject.kind,
                &reject.reason,
                traceparent,
            )
            .await;
        if sent.is_err() {
            return Outcome::Abandoned;
        }
        self.metrics
            .dead_lettered
            .with_label_values(&[reject.kind])
            .inc();
        let recorded = self
            .with_retry("record_rejection", || {
                self.store.record_rejection(
                    &msg.source,
                    reject.request_id,
                    reject.kind,
                    &reject.reason,
                )
            })
            .await;
        match recorded {
            // Not recorded: the message will be redelivered and dead-lettered again.
            None => Outcome::Abandoned,
            Some(Ok(())) => Outcome::DeadLettered,
            Some(Err(e)) => {
                // The dead letter itself is durable; the audit row is best effort.
                tracing::error!(error = %e, "rejection not recorded");
                Outcome::DeadLettered
            }
        }
    }

    /// Runs a storage call until it succeeds or fails permanently, with
    /// backoff on transient failures; None when shutdown abandons it.
    pub(super) async fn with_retry<T, E, F, Fut>(
        &self,
        stage: &'static str,
        mut call: F,
    ) -> Option<Result<T, E>>
    where
        E: Transient + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut delay = std::time::Duration::from_millis(self.settings.worker.retry_initial_ms);
        let max = std::time::Duration::from_millis(self.settings.worker.retry_max_ms);
        loop {
            match call().await {
                Err(e) if e.is_transient() => {
                    self.metrics.retries.with_label_values(&[stage]).inc();
                    tracing::warn!(error = %e, stage, "storage unavailable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.cancel.cancelled() => return None,
                    }
                    delay = (delay * 2).min(max);
                }
                other => return Some(other),
            }
        }
    }
}
