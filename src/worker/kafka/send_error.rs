//! Why producing a message failed, and whether trying again can help.
//! Pure: the classification of librdkafka's errors, no I/O.
//!
//! Kafka's own clients draw the same line: a `RetriableException` (leader
//! moved, broker down, timeout, topic not there yet) is retried; a record
//! the broker or the producer will never take (`RecordTooLargeException`,
//! `InvalidRecordException`, `TopicAuthorizationException`, …) fails the
//! send at once. Kafka Connect then routes such a record to its dead-letter
//! queue (`errors.tolerance = all`), which is what the worker does too.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// What a failed send calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// An outage (broker down, leader moving, topic not yet there, queue
    /// full, timed out): try again with backoff.
    Transient,
    /// The message is bigger than the producer or the broker accepts: it
    /// will never be sent as it is.
    TooLarge,
    /// The broker refuses it for good (authorisation, policy, an invalid
    /// record): it will never be sent to that topic.
    Refused,
    /// The idempotent producer hit a fatal error: it is unusable from now
    /// on and must be recreated (librdkafka: `RD_KAFKA_RESP_ERR__FATAL`),
    /// so no send from this process can succeed.
    Fatal,
}

impl SendFailure {
    pub fn of(error: &KafkaError) -> SendFailure {
        match error.rdkafka_error_code() {
            Some(code) => SendFailure::of_code(code),
            // Cancelled delivery futures and client-side oddities: nothing
            // says the message is at fault, so try again.
            None => SendFailure::Transient,
        }
    }

    pub fn of_code(code: RDKafkaErrorCode) -> SendFailure {
        use RDKafkaErrorCode as C;
        match code {
            // librdkafka checks `message.max.bytes` itself before sending
            // (MSG_SIZE_TOO_LARGE, local) and the broker checks its own
            // limits (the same code, or a batch/record size error).
            C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge => {
                SendFailure::TooLarge
            }
            // The worker's ACLs or its clock, not this message: every
            // message would fail alike, so dead-lettering them would drain
            // the topic into the DLQ. Kafka Connect fails the task on these;
            // so does the worker (exit non-zero, nothing committed).
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::InvalidTimestamp => SendFailure::Fatal,
            C::InvalidRecord
            | C::InvalidTopic
            | C::InvalidRequiredAcks
            | C::PolicyViolation
            | C::UnsupportedForMessageFormat
            | C::InvalidArgument => SendFailure::Refused,
            C::Fatal => SendFailure::Fatal,
            // Everything else, notably UnknownTopicOrPartition (the topic
            // may be created: /healthz names it meanwhile), MessageTimedOut,
            // QueueFull, transport failures and failed authentication (the
            // client's credentials, not this message: dead-lettering every
            // message would be wrong, and the DLQ would refuse them too).
            _ => SendFailure::Transient,
        }
    }
}

/// Why a send ended without the message being produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("shutting down before the message was produced")]
    Cancelled,
    #[error("too large for {topic}: {reason}")]
    TooLarge { topic: String, reason: String },
    #[error("{topic} refused the message: {reason}")]
    Refused { topic: String, reason: String },
    #[error("the Kafka producer failed fatally and must be restarted: {reason}")]
    Fatal { reason: String },
}

impl SendError {
    /// The error a permanent failure (`failure` is not `Transient`) ends
    /// the send with; `fatal` is the producer's own fatal error, when it
    /// has one (it names the cause better than `ERR__FATAL`).
    pub fn permanent(
        failure: SendFailure,
        topic: &str,
        error: &KafkaError,
        fatal: Option<String>,
    ) -> SendError {
        let reason = error.to_string();
        let topic = topic.to_string();
        match failure {
            SendFailure::TooLarge => SendError::TooLarge { topic, reason },
            SendFailure::Fatal => SendError::Fatal {
                reason: fatal.unwrap_or(reason),
            },
            SendFailure::Refused | SendFailure::Transient => SendError::Refused { topic, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RDKafkaErrorCode as C;

    fn production(code: RDKafkaErrorCode) -> SendFailure {
        SendFailure::of(&KafkaError::MessageProduction(code))
    }

    #[test]
    fn a_message_too_large_for_the_producer_or_the_broker_is_too_large() {
        for code in [
            C::MessageSizeTooLarge,
            C::InvalidMessageSize,
            C::MessageBatchTooLarge,
        ] {
            assert_eq!(production(code), SendFailure::TooLarge, "{code:?}");
        }
    }

    #[test]
    fn refusals_by_the_broker_are_permanent() {
        for code in [C::InvalidRecord, C::PolicyViolation, C::InvalidTopic] {
            assert_eq!(production(code), SendFailure::Refused, "{code:?}");
        }
    }

    #[test]
    fn a_fatal_producer_error_or_a_refusal_of_the_worker_itself_is_fatal() {
        for code in [
            C::Fatal,
            C::TopicAuthorizationFailed,
            C::ClusterAuthorizationFailed,
            C::InvalidTimestamp,
        ] {
            assert_eq!(production(code), SendFailure::Fatal, "{code:?}");
        }
    }

    #[test]
    fn outages_are_transient() {
        for code in [
            C::MessageTimedOut,
            C::QueueFull,
            C::UnknownTopicOrPartition,
            C::UnknownTopic,
            C::NotLeaderForPartition,
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::NotEnoughReplicas,
            C::RequestTimedOut,
            C::Authentication,
        ] {
            assert_eq!(production(code), SendFailure::Transient, "{code:?}");
        }
        assert_eq!(
            SendFailure::of(&KafkaError::Canceled),
            SendFailure::Transient
        );
    }

    #[test]
    fn a_permanent_error_names_the_topic_and_prefers_the_fatal_cause() {
        let too_large = KafkaError::MessageProduction(C::MessageSizeTooLarge);
        let e = SendError::permanent(SendFailure::TooLarge, "results", &too_large, None);
        assert!(matches!(&e, SendError::TooLarge { topic, .. } if topic == "results"));
        assert!(e.to_string().starts_with("too large for results: "), "{e}");
        let fatal = KafkaError::MessageProduction(C::Fatal);
        let e = SendError::permanent(
            SendFailure::Fatal,
            "results",
            &fatal,
            Some("OutOfOrderSequenceNumber".into()),
        );
        assert_eq!(
            e,
            SendError::Fatal {
                reason: "OutOfOrderSequenceNumber".into()
            }
        );
    }
}
