//! Feedback messages: a reviewer's correction of a stored verdict. The
//! signature is checked first (`signature`), then the payload is parsed and
//! validated (`parse`, pure), then the worker stores it idempotently.

mod parse;
mod signature;

pub use parse::parse_feedback;
pub use signature::{check_signature, UNSIGNED};

use chrono::Utc;

use super::outcome::{Halt, Outcome, Step};
use super::process::{Incoming, Processor};
use crate::domain::signature::SIGNATURE_HEADER;
use crate::engine::Backend;
use crate::store::CorrectionWrite;

impl<B: Backend> Processor<B> {
    /// Stores a correction; unsigned or forged feedback (when signatures
    /// are checked) and an unknown request_id are dead-lettered.
    pub(super) async fn process_feedback(&self, msg: &Incoming) -> Step<Outcome> {
        // Before parsing: what an unauthenticated producer wrote is not
        // looked at further than its signature.
        let signature = msg.headers.get(SIGNATURE_HEADER).map(String::as_str);
        check_signature(&self.settings.feedback, &msg.payload, signature)
            .map_err(|e| Halt::reject(None, UNSIGNED, e.to_string()))?;
        let max_skew = self.settings.worker.feedback_max_skew;
        let correction = parse_feedback(&msg.payload, Utc::now(), max_skew)
            .map_err(|e| Halt::reject(None, e.kind(), e.to_string()))?;
        let request_id = Some(correction.request_id);
        tracing::Span::current()
            .record("request_id", tracing::field::display(correction.request_id));
        let write = self
            .with_retry("store_correction", || {
                self.store.upsert_correction(&correction, &msg.source)
            })
            .await
            .map_err(|gave_up| Halt::from_retry(gave_up, request_id, "database_rejected"))?;
        if write == CorrectionWrite::UnknownRequest {
            return Err(Halt::reject(
                request_id,
                "unknown_request",
                format!("no verdict with request_id {}", correction.request_id),
            ));
        }
        tracing::info!(?write, reviewer = %correction.reviewer, "correction stored");
        self.metrics
            .corrections
            .with_label_values(&[write.as_str()])
            .inc();
        Ok(Outcome::Done)
    }
}
