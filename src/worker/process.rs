//! One request message, from bytes to a stored and published verdict, or to
//! the dead-letter topic. Permanent failures (bad message, bad image) are
//! dead-lettered; transient ones (database, broker, image store) are retried
//! until shutdown, so they never reach here as failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::producer::FutureProducer;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::fatal::Fatal;
use super::fetch::Fetcher;
use super::health::Check;
use super::kafka::{DeadLetterSent, Letter, Publisher, SendError, HEADER_TRACEPARENT};
use super::metrics::Metrics;
pub use super::outcome::Outcome;
use super::outcome::{check_deliveries, dead_letter_outcome, Halt, Reject, Step};
use super::request::{inline_image_sha256, parse_request, request_sha256_given, Request};
use super::retry::{GaveUp, RetryPolicy, Transient};
use super::trace;
use super::writer::{conflict, WriteError, Writer};
use crate::domain::Verdict;
use crate::engine::analyze::{analyze_bytes, analyze_reusing, Stages};
use crate::engine::{Backend, Tasks};
use crate::faces::{FaceError, FaceStage};
use crate::images::ImageStore;
use crate::intake::Intake;
use crate::settings::Settings;
use crate::store::{NewVerdict, Source, Store};

/// A consumed message, owned so it can outlive the consumer's buffer.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub source: Source,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
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

/// A request's image, fetched.
struct Fetched {
    bytes: Arc<Vec<u8>>,
    sha256: String,
}

/// The verdict row to store, with the result message it will publish.
fn new_verdict(
    msg: &Incoming,
    request: &Request,
    request_sha256: String,
    image: Fetched,
    verdict: Verdict,
) -> Result<NewVerdict, serde_json::Error> {
    let source_ref = request.image.reference();
    let result = serde_json::to_string(&ResultMessage {
        schema_version: super::request::SCHEMA_VERSION,
        request_id: request.request_id,
        tenant: request.tenant.as_deref(),
        metadata: &request.metadata,
        image: ImageRef {
            sha256: &image.sha256,
            source: &source_ref,
        },
        verdict: &verdict,
    })?;
    Ok(NewVerdict {
        verdict,
        tenant: request.tenant.clone(),
        metadata: request.metadata.clone(),
        image_bytes: image.bytes.len() as i64,
        image_sha256: image.sha256,
        image_source: source_ref,
        request_sha256,
        source: msg.source.clone(),
        result,
    })
}

pub struct Processor<B> {
    pub backend: Arc<B>,
    pub store: Store,
    pub writer: Writer,
    pub publisher: Publisher,
    pub fetcher: Fetcher,
    pub images: ImageStore,
    /// Image decoding within the process's decode memory budget.
    pub intake: Intake,
    pub faces: FaceStage,
    pub metrics: Metrics,
    pub settings: Settings,
    pub retry: RetryPolicy,
    /// Cancelled when the shutdown grace period is over: work in progress
    /// then gives up and stays unfinished.
    pub cancel: CancellationToken,
    /// Raised when a stage the worker needs (engine, writer) has ended.
    pub fatal: Fatal,
}

impl<B: Backend> Processor<B> {
    /// Wires the sinks (writer, publisher, image store) for `settings`;
    /// spawns the writer, so it needs a Tokio runtime.
    pub fn new(
        backend: Arc<B>,
        store: Store,
        producer: FutureProducer,
        metrics: Metrics,
        settings: Settings,
        cancel: CancellationToken,
    ) -> Result<Processor<B>, FaceError> {
        let faces = FaceStage::new(&settings.faces)?;
        let w = &settings.worker;
        let retry = RetryPolicy::from_settings(w);
        let writer = Writer::spawn(
            store.clone(),
            metrics.clone(),
            w.write_batch_max,
            retry,
            cancel.clone(),
        );
        let publisher = Publisher::new(producer, &settings, retry, metrics.clone(), cancel.clone());
        Ok(Processor {
            backend,
            store,
            writer,
            publisher,
            fetcher: Fetcher::new(w, &settings.image),
            images: ImageStore::new(&settings.image_store.dir),
            intake: Intake::new(&settings.image),
            faces,
            metrics,
            retry,
            cancel,
            fatal: Fatal::new(),
            settings,
        })
    }

    /// Processes one message to its end. Only shutdown may leave a message
    /// unfinished; if one is abandoned while the worker is not shutting
    /// down, a stage it needs has died, and the worker must not go on.
    pub async fn handle(&self, msg: &Incoming) -> Outcome {
        let (outcome, counted) = self.handle_traced(msg).await;
        if outcome == Outcome::Abandoned && self.cancel.is_cancelled() {
            if counted {
                self.release_delivery(msg).await;
            }
        } else if outcome == Outcome::Abandoned && self.fatal.reason().is_none() {
            let (check, reason) = if self.writer.is_closed() {
                (Check::Writer, "the verdict writer task ended")
            } else {
                (Check::Engine, "the engine thread ended")
            };
            self.metrics.health.fail(check, reason);
            self.fatal.raise(reason);
        }
        outcome
    }

    /// A graceful shutdown let `msg` go unfinished: that delivery was not a
    /// crash. Best effort, bounded: if it fails, the message merely counts
    /// one delivery more towards `worker.max_attempts`.
    async fn release_delivery(&self, msg: &Incoming) {
        let released = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.store.release_delivery(&msg.source),
        )
        .await;
        if !matches!(released, Ok(Ok(()))) {
            tracing::debug!("delivery count not released at shutdown");
        }
    }

    /// A panic while processing `msg` (a bug, not bad input): dead-lettered
    /// with the panic's message, so its partition moves on.
    pub async fn handle_panic(&self, msg: &Incoming, panic: &str) -> Outcome {
        tracing::error!(panic, "processing panicked");
        let reject = Reject {
            request_id: None,
            kind: "internal_error",
            reason: format!("processing panicked: {panic}"),
        };
        self.dead_letter(msg, reject, None).await
    }

    /// The outcome, and whether this delivery was counted.
    async fn handle_traced(&self, msg: &Incoming) -> (Outcome, bool) {
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
            let traceparent = traceparent.as_deref();
            let attempts = self.note_delivery(msg).await;
            let counted = matches!(attempts, Ok(Some(_)));
            let processed = match attempts {
                Err(halt) => Err(halt),
                Ok(attempts) if msg.source.topic == self.settings.kafka.feedback_topic => {
                    match self.check_attempts(attempts) {
                        Ok(()) => self.process_feedback(msg).await,
                        Err(halt) => Err(halt),
                    }
                }
                Ok(attempts) => self.process(msg, traceparent, attempts).await,
            };
            let outcome = match processed {
                Ok(outcome) => outcome,
                Err(Halt::Abandon) => Outcome::Abandoned,
                Err(Halt::Reject(reject)) => self.dead_letter(msg, reject, traceparent).await,
            };
            (outcome, counted)
        }
        .instrument(span)
        .await
    }

    /// Counts this delivery of `msg` durably, before anything else is done
    /// with it; returns how many deliveries it has had (None: not counted).
    /// Counts are batched by the writer task (one statement for all messages
    /// waiting) and retried while the database is down; a count the
    /// database refuses lets the message through.
    async fn note_delivery(&self, msg: &Incoming) -> Step<Option<i32>> {
        match self.writer.note_delivery(msg.source.clone()).await {
            Ok(attempts) => Ok(Some(attempts)),
            Err(WriteError::Cancelled) => Err(Halt::Abandon),
            Err(e) => {
                tracing::warn!(error = %e, "delivery not counted; processing it anyway");
                Ok(None)
            }
        }
    }

    /// `crash_loop` when too many deliveries before this one never finished.
    /// Checked only before work that could crash again: a request already
    /// stored (redelivered behind an unfinished one) is republished instead.
    fn check_attempts(&self, attempts: Option<i32>) -> Step<()> {
        match attempts {
            Some(n) => check_deliveries(n, self.settings.worker.max_attempts),
            None => Ok(()),
        }
    }

    /// A request's phases, each ending the message early when it must.
    async fn process(
        &self,
        msg: &Incoming,
        traceparent: Option<&str>,
        attempts: Option<i32>,
    ) -> Step<Outcome> {
        let request = self.parse(msg)?;
        let (request, request_sha256, inline_sha256) = self.hash_request(request).await?;
        // A redelivered or duplicated request: republish what was stored.
        if let Some(result) = self.find_existing(&request, &request_sha256).await? {
            self.metrics.duplicates.inc();
            self.publish(&request, &result, traceparent).await?;
            return Ok(Outcome::Duplicate);
        }
        self.check_attempts(attempts)?;
        let image = self.fetch(&request, inline_sha256).await?;
        let verdict = self.analyse(&request, &image).await?;
        // Kept before the verdict is stored, so every verdict's image can be
        // trained on once a reviewer corrects it.
        self.keep_image(&request, &image).await?;
        let new = new_verdict(msg, &request, request_sha256, image, verdict)
            .map_err(|e| Halt::reject(Some(request.request_id), "serialize", e.to_string()))?;
        let result = self.persist(&request, new).await?;
        self.publish(&request, &result, traceparent).await?;
        Ok(Outcome::Done)
    }

    fn parse(&self, msg: &Incoming) -> Step<Request> {
        let _consume = tracing::info_span!("consume").entered();
        let request = parse_request(&msg.payload, self.settings.worker.allow_local_paths)
            .map_err(|e| Halt::reject(None, e.kind(), e.to_string()))?;
        tracing::Span::current().record("request_id", tracing::field::display(request.request_id));
        Ok(request)
    }

    /// The request's hash (`request::request_sha256`), computed off the
    /// async threads: it reads an inline image's bytes.
    /// Also returns the inline image's sha256, which `fetch` reuses.
    async fn hash_request(&self, request: Request) -> Step<(Request, String, Option<String>)> {
        let id = request.request_id;
        tokio::task::spawn_blocking(move || {
            let inline = inline_image_sha256(&request);
            let sha256 = request_sha256_given(&request, inline.as_deref());
            (request, sha256, inline)
        })
        .await
        .map_err(|e| Halt::reject(Some(id), "internal_error", format!("hashing panicked: {e}")))
    }

    /// The result stored for this request, if it was analysed before; a
    /// `request_id_conflict` when its id is stored for another request.
    /// Looked up through the writer task, batched with every lookup waiting.
    async fn find_existing(&self, request: &Request, request_sha256: &str) -> Step<Option<String>> {
        let id = request.request_id;
        match self.writer.lookup(id).await {
            Ok(Some(stored)) if stored.answers(request_sha256) => Ok(Some(stored.result)),
            Ok(Some(stored)) => Err(Halt::from_write(
                conflict(id, stored.request_sha256.as_deref(), request_sha256),
                id,
            )),
            Ok(None) => Ok(None),
            Err(WriteError::Cancelled) => Err(Halt::Abandon),
            // A failed lookup is not fatal: the insert decides again.
            Err(e) => {
                tracing::debug!(error = %e, "duplicate check failed; the insert decides");
                Ok(None)
            }
        }
    }

    /// The image's bytes and sha256 (`known_sha256`: an inline image's,
    /// hashed already with the request).
    async fn fetch(&self, request: &Request, known_sha256: Option<String>) -> Step<Fetched> {
        let started = Instant::now();
        let on_retry = |e: &super::fetch::FetchError, wait: std::time::Duration| {
            self.metrics.retries.with_label_values(&["fetch"]).inc();
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "image fetch failed; retrying");
        };
        let bytes = self
            .fetcher
            .fetch_retrying(&request.image, &self.retry, &self.cancel, on_retry)
            .instrument(tracing::info_span!("fetch"))
            .await
            .map_err(|gave_up| match gave_up {
                GaveUp::Stopped => Halt::Abandon,
                GaveUp::Permanent(f) => {
                    Halt::reject(Some(request.request_id), f.kind(), f.to_string())
                }
            })?;
        self.metrics
            .observe("fetch", started.elapsed().as_secs_f64());
        let bytes = Arc::new(bytes);
        if let Some(sha256) = known_sha256 {
            return Ok(Fetched { sha256, bytes });
        }
        // Hashing up to image.max_bytes is CPU work: off the async threads.
        let shared = bytes.clone();
        let sha256 = tokio::task::spawn_blocking(move || crate::domain::sha256_hex(&shared))
            .await
            .map_err(|e| {
                Halt::reject(
                    Some(request.request_id),
                    "corrupt",
                    format!("hashing panicked: {e}"),
                )
            })?;
        Ok(Fetched { sha256, bytes })
    }

    async fn analyse(&self, request: &Request, image: &Fetched) -> Step<Verdict> {
        let s = &self.settings;
        let started = Instant::now();
        let tasks = Tasks {
            // The request's own questions run as a follow-up after the
            // screening and reuse its image prefix. Without questions
            // nothing would reuse it (reviewers ask through `dfa serve`'s own
            // engine), so no state is copied out.
            image_key: (!request.questions.is_empty())
                .then(|| crate::domain::dialogue::conversation_key(request.request_id)),
            ..Tasks::requested(
                request.explain,
                s.analysis.explain_threshold,
                request.questions.clone(),
            )
        };
        let stages = Stages {
            intake: &self.intake,
            analysis: &s.analysis,
            faces: &self.faces,
        };
        let (backend, id, bytes) = (
            self.backend.as_ref(),
            request.request_id,
            image.bytes.clone(),
        );
        let prior = self.repost_of(request, image).await;
        if prior.is_some() {
            self.metrics.reposts.inc();
        }
        let verdict = async {
            match &prior {
                Some(prior) => analyze_reusing(backend, id, bytes, tasks, stages, prior).await,
                None => analyze_bytes(backend, id, bytes, tasks, stages).await,
            }
        }
        .instrument(tracing::info_span!("analyse"))
        .await;
        self.metrics
            .observe("analyse", started.elapsed().as_secs_f64());
        verdict.map_err(|e| Halt::from_analysis(e, request.request_id))
    }

    /// A stored analysis of the same bytes by the model that would answer
    /// now, in the same face mode, when reposts are reused. A failed lookup
    /// only costs the analysis it could have saved.
    async fn repost_of(&self, request: &Request, image: &Fetched) -> Option<Verdict> {
        if !self.settings.faces.reuse_reposts {
            return None;
        }
        let model = self.backend.model();
        let found = self
            .store
            .analyses_of_image(
                &image.sha256,
                request.tenant.as_deref(),
                &model,
                self.faces.mode(),
            )
            .instrument(tracing::info_span!("repost_lookup"))
            .await;
        match found {
            Ok(results) => super::reposts::reusable(&results, &model, request.explain),
            Err(e) => {
                tracing::debug!(error = %e, "repost lookup failed; analysing the image");
                None
            }
        }
    }

    async fn keep_image(&self, request: &Request, image: &Fetched) -> Step<()> {
        self.with_retry("image_store", || {
            self.images.put(&image.sha256, image.bytes.clone())
        })
        .await
        .map_err(|gave_up| Halt::from_retry(gave_up, Some(request.request_id), "image_store"))
    }

    /// Stores the verdict (or finds the one stored first); returns the
    /// result message to publish.
    async fn persist(&self, request: &Request, new: NewVerdict) -> Step<String> {
        self.writer
            .write(new)
            .instrument(tracing::info_span!("persist"))
            .await
            .map_err(|e| Halt::from_write(e, request.request_id))
    }

    async fn publish(
        &self,
        request: &Request,
        result: &str,
        traceparent: Option<&str>,
    ) -> Step<()> {
        let started = Instant::now();
        let key = request.request_id.to_string();
        let sent = self
            .publisher
            .result(&key, result, traceparent)
            .instrument(tracing::info_span!("publish"))
            .await;
        self.metrics
            .observe("publish", started.elapsed().as_secs_f64());
        sent.map_err(|e| {
            self.producer_failed(&e);
            Halt::from_send(e, request.request_id, result.len())
        })
    }

    /// A producer that failed fatally cannot send anything again: the
    /// worker must restart (librdkafka: recreate the producer), and its
    /// unfinished messages are redelivered.
    fn producer_failed(&self, e: &SendError) {
        if let SendError::Fatal { .. } = e {
            self.fatal.raise(e.to_string());
        }
    }

    async fn dead_letter(
        &self,
        msg: &Incoming,
        reject: Reject,
        traceparent: Option<&str>,
    ) -> Outcome {
        tracing::warn!(kind = reject.kind, reason = %reject.reason, "dead-lettering request");
        let letter = Letter {
            source: &msg.source,
            key: msg.key.as_deref(),
            payload: &msg.payload,
            kind: reject.kind,
            reason: &reject.reason,
            traceparent,
        };
        let reason = match self.publisher.dead_letter(&letter).await {
            Err(e) => {
                self.producer_failed(&e);
                return Outcome::Abandoned;
            }
            // Refused by the dead-letter topic: the rejection row is then
            // the record, so it says where the original is kept.
            Ok(DeadLetterSent::Unsent { error, kept }) => format!(
                "{}; not sent to the dead-letter topic ({error}); original kept at {}",
                reject.reason,
                kept.path.display()
            ),
            Ok(DeadLetterSent::Inline | DeadLetterSent::ByReference(_)) => {
                self.metrics
                    .dead_lettered
                    .with_label_values(&[reject.kind])
                    .inc();
                reject.reason
            }
        };
        let recorded = self
            .with_retry("record_rejection", || {
                self.store
                    .record_rejection(&msg.source, reject.request_id, reject.kind, &reason)
            })
            .await;
        dead_letter_outcome(recorded)
    }

    /// Runs a storage call until it succeeds or fails permanently, retrying
    /// transient failures (counted and logged per stage) until shutdown.
    pub(super) async fn with_retry<T, E, F, Fut>(
        &self,
        stage: &'static str,
        call: F,
    ) -> Result<T, GaveUp<E>>
    where
        E: Transient + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        self.retry
            .run(&self.cancel, call, E::is_transient, |e, wait| {
                self.metrics.retries.with_label_values(&[stage]).inc();
                tracing::warn!(error = %e, stage, retry_in_ms = wait.as_millis() as u64, "storage unavailable; retrying");
            })
            .await
    }
}
