//! How a message ends, and the rules that decide it: what is dead-lettered
//! (a permanent failure), what is abandoned (shutdown: left unfinished, to
//! be redelivered), and what is finished. No I/O; `process` applies them.

use uuid::Uuid;

use super::kafka::SendError;
use super::retry::GaveUp;
use super::writer::WriteError;
use crate::engine::analyze::AnalyzeError;
use crate::engine::EngineError;
use crate::faces::FaceError;

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

/// A permanent failure, on its way to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reject {
    pub request_id: Option<Uuid>,
    pub kind: &'static str,
    pub reason: String,
}

/// Why a message stopped before its last phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Halt {
    /// Permanent: dead-letter it.
    Reject(Reject),
    /// Shutting down: leave it unfinished, to be redelivered.
    Abandon,
}

/// The result of one phase of processing.
pub(super) type Step<T> = Result<T, Halt>;

impl Halt {
    pub(super) fn reject(request_id: Option<Uuid>, kind: &'static str, reason: String) -> Halt {
        Halt::Reject(Reject {
            request_id,
            kind,
            reason,
        })
    }

    /// A storage call that was retried: given up at shutdown, or refused.
    pub(super) fn from_retry<E: std::fmt::Display>(
        gave_up: GaveUp<E>,
        request_id: Option<Uuid>,
        kind: &'static str,
    ) -> Halt {
        match gave_up {
            GaveUp::Stopped => Halt::Abandon,
            GaveUp::Permanent(e) => Halt::reject(request_id, kind, e.to_string()),
        }
    }

    /// The engine stops only when the process does: that is a shutdown,
    /// not a bad image.
    pub(super) fn from_analysis(e: AnalyzeError, request_id: Uuid) -> Halt {
        match e {
            AnalyzeError::Engine(EngineError::Stopped)
            | AnalyzeError::Faces(FaceError::Cancelled) => Halt::Abandon,
            e => Halt::reject(Some(request_id), e.kind(), e.to_string()),
        }
    }

    /// A result that could not be published. One the results topic will
    /// never take is dead-lettered (Kafka Connect's `errors.tolerance`:
    /// a record that cannot be produced goes to the DLQ, and the partition
    /// moves on); shutdown, or a producer that must be restarted, leaves the
    /// request to be redelivered (its verdict is stored: it is republished).
    pub(super) fn from_send(e: SendError, request_id: Uuid, result_bytes: usize) -> Halt {
        let reason = format!("{e} (result of {result_bytes} bytes)");
        match e {
            SendError::Cancelled | SendError::Fatal { .. } => Halt::Abandon,
            SendError::TooLarge { .. } => {
                Halt::reject(Some(request_id), "result_too_large", reason)
            }
            SendError::Refused { .. } => Halt::reject(Some(request_id), "publish_refused", reason),
        }
    }

    pub(super) fn from_write(e: WriteError, request_id: Uuid) -> Halt {
        match e {
            WriteError::Cancelled => Halt::Abandon,
            e @ WriteError::Rejected(_) => {
                Halt::reject(Some(request_id), "database_rejected", e.to_string())
            }
            WriteError::Conflict(reason) => {
                Halt::reject(Some(request_id), "request_id_conflict", reason)
            }
        }
    }
}

/// A message delivered `attempts` times (this delivery included) whose
/// earlier deliveries never finished: each time, the worker holding it died
/// (OOM, crash) or let it go unfinished. Past `max_attempts` of those it is
/// dead-lettered rather than handed to the next worker to die on, as a
/// poison message is after its delivery limit in SQS (`maxReceiveCount`) or
/// RabbitMQ quorum queues (`delivery-limit`). A first delivery always passes
/// (`max_attempts` is at least 1).
pub(super) fn check_deliveries(attempts: i32, max_attempts: u32) -> Step<()> {
    let unfinished = i64::from(attempts) - 1;
    if unfinished < i64::from(max_attempts) {
        return Ok(());
    }
    Err(Halt::reject(
        None,
        "crash_loop",
        format!(
            "delivery {attempts}: the {unfinished} deliveries before it never finished \
             (the worker died or stopped with it in flight; worker.max_attempts = {max_attempts})"
        ),
    ))
}

/// A message sent to the dead-letter topic is finished once its audit row
/// is recorded, or refused (the letter itself is durable); not when
/// shutdown interrupted the recording: then it will be redelivered and
/// dead-lettered again.
pub(super) fn dead_letter_outcome<E: std::fmt::Display>(
    recorded: Result<(), GaveUp<E>>,
) -> Outcome {
    match recorded {
        Ok(()) => Outcome::DeadLettered,
        Err(GaveUp::Stopped) => Outcome::Abandoned,
        Err(GaveUp::Permanent(e)) => {
            tracing::error!(error = %e, "rejection not recorded");
            Outcome::DeadLettered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Uuid {
        Uuid::from_u128(7)
    }

    fn kind_of(halt: Halt) -> Option<&'static str> {
        match halt {
            Halt::Reject(r) => Some(r.kind),
            Halt::Abandon => None,
        }
    }

    #[test]
    fn only_an_abandoned_message_is_unfinished() {
        use Outcome::*;
        let finished = [Done, Duplicate, DeadLettered, Abandoned].map(Outcome::finished);
        assert_eq!(finished, [true, true, true, false]);
    }

    #[test]
    fn a_stopped_engine_abandons_and_a_bad_image_is_rejected() {
        let stopped = AnalyzeError::Engine(EngineError::Stopped);
        assert_eq!(Halt::from_analysis(stopped, id()), Halt::Abandon);
        let bad = AnalyzeError::Engine(EngineError::Image("no face".into()));
        let halt = Halt::from_analysis(bad, id());
        assert_eq!(kind_of(halt.clone()), Some("image_encode"));
        let Halt::Reject(r) = halt else {
            unreachable!()
        };
        assert_eq!(r.request_id, Some(id()));
        let too_long = AnalyzeError::Engine(EngineError::TooLong {
            needed: 9,
            available: 4,
        });
        assert_eq!(
            kind_of(Halt::from_analysis(too_long, id())),
            Some("too_long")
        );
    }

    #[test]
    fn a_detection_cut_short_by_shutdown_abandons_and_a_failed_one_is_rejected() {
        let cancelled = AnalyzeError::Faces(FaceError::Cancelled);
        assert_eq!(Halt::from_analysis(cancelled, id()), Halt::Abandon);
        let failed = AnalyzeError::Faces(FaceError::Detector("panicked".into()));
        assert_eq!(
            kind_of(Halt::from_analysis(failed, id())),
            Some("face_detection")
        );
    }

    #[test]
    fn a_cancelled_write_abandons_and_a_refused_one_is_rejected() {
        assert_eq!(Halt::from_write(WriteError::Cancelled, id()), Halt::Abandon);
        let refused = Halt::from_write(WriteError::Rejected("constraint".into()), id());
        assert_eq!(kind_of(refused), Some("database_rejected"));
    }

    #[test]
    fn a_request_id_stored_for_another_request_is_a_conflict() {
        let halt = Halt::from_write(WriteError::Conflict("hash differs".into()), id());
        let Halt::Reject(r) = halt else {
            panic!("a conflict is rejected")
        };
        assert_eq!(r.kind, "request_id_conflict");
        assert_eq!(r.request_id, Some(id()));
        assert_eq!(r.reason, "hash differs");
    }

    #[test]
    fn only_more_unfinished_deliveries_than_max_attempts_is_a_crash_loop() {
        assert_eq!(check_deliveries(1, 1), Ok(()), "a first delivery passes");
        assert_eq!(check_deliveries(1, 3), Ok(()));
        assert_eq!(
            check_deliveries(3, 3),
            Ok(()),
            "two crashes of three allowed"
        );
        assert_eq!(
            check_deliveries(4, 3).map_err(kind_of),
            Err(Some("crash_loop"))
        );
        assert_eq!(
            check_deliveries(2, 1).map_err(kind_of),
            Err(Some("crash_loop"))
        );
        let Err(Halt::Reject(r)) = check_deliveries(9, 3) else {
            panic!("nine deliveries with three allowed")
        };
        assert!(r.reason.contains("delivery 9"), "{}", r.reason);
        assert!(r.reason.contains("8 deliveries"), "{}", r.reason);
        assert_eq!(r.request_id, None, "not parsed: its id is unknown");
    }

    #[test]
    fn a_result_never_publishable_is_rejected_and_shutdown_abandons() {
        let too_large = SendError::TooLarge {
            topic: "results".into(),
            reason: "Message size too large".into(),
        };
        let halt = Halt::from_send(too_large, id(), 1_200_000);
        let Halt::Reject(r) = halt else {
            panic!("a result too large is rejected")
        };
        assert_eq!((r.kind, r.request_id), ("result_too_large", Some(id())));
        assert!(r.reason.contains("1200000 bytes"), "{}", r.reason);
        let refused = SendError::Refused {
            topic: "results".into(),
            reason: "Topic authorization failed".into(),
        };
        assert_eq!(
            kind_of(Halt::from_send(refused, id(), 10)),
            Some("publish_refused")
        );
        assert_eq!(
            Halt::from_send(SendError::Cancelled, id(), 1),
            Halt::Abandon
        );
        let fatal = SendError::Fatal {
            reason: "fenced".into(),
        };
        assert_eq!(Halt::from_send(fatal, id(), 1), Halt::Abandon);
    }

    #[test]
    fn a_retry_stopped_by_shutdown_abandons() {
        let stopped = Halt::from_retry(GaveUp::<String>::Stopped, Some(id()), "image_store");
        assert_eq!(stopped, Halt::Abandon);
        let refused = Halt::from_retry(GaveUp::Permanent("read-only".to_string()), None, "x");
        assert_eq!(kind_of(refused), Some("x"));
    }

    #[test]
    fn a_sent_dead_letter_is_finished_unless_shutdown_stopped_its_record() {
        assert_eq!(dead_letter_outcome::<String>(Ok(())), Outcome::DeadLettered);
        let refused = Err(GaveUp::Permanent("constraint".to_string()));
        assert_eq!(dead_letter_outcome(refused), Outcome::DeadLettered);
        assert_eq!(
            dead_letter_outcome::<String>(Err(GaveUp::Stopped)),
            Outcome::Abandoned
        );
    }
}
