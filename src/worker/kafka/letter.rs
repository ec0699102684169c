//! What a dead letter carries: the original message when it is small
//! enough, else an empty payload and headers naming where the original is
//! kept (the "claim check" pattern: a record's bulk lives in a store and the
//! record carries its reference). Pure: the headers and the size rules.

use rdkafka::message::{Header, OwnedHeaders};

use super::originals::Kept;
use super::{
    HEADER_ERROR_KIND, HEADER_ERROR_REASON, HEADER_ORIGINAL_OFFSET, HEADER_ORIGINAL_PARTITION,
    HEADER_ORIGINAL_TOPIC, HEADER_TRACEPARENT,
};
use crate::store::Source;

/// The original payload's size in bytes, when the letter references it.
pub const HEADER_ORIGINAL_BYTES: &str = "dfa-original-bytes";
/// The original payload's sha256 (lower-case hex), when referenced.
pub const HEADER_ORIGINAL_SHA256: &str = "dfa-original-sha256";
/// Where the original payload is kept, when referenced: a path under
/// `image_store.dir/dead-letters/`, as the worker sees it.
pub const HEADER_PAYLOAD_REF: &str = "dfa-payload-ref";

/// Why a message was dead-lettered and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Letter<'a> {
    pub source: &'a Source,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub kind: &'a str,
    pub reason: &'a str,
    pub traceparent: Option<&'a str>,
}

/// Whether a payload of `len` bytes travels in the dead letter itself.
pub fn fits_inline(len: usize, max_payload_bytes: usize) -> bool {
    len <= max_payload_bytes
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The headers of `letter`'s dead letter; `reference` names the kept
/// original when the payload is left out. The reason is cut to
/// `max_reason_bytes`: a header counts against the broker's message size
/// like the payload does.
pub fn headers(
    letter: &Letter<'_>,
    reference: Option<&Kept>,
    max_reason_bytes: usize,
) -> OwnedHeaders {
    let reason = truncate_at_char_boundary(letter.reason, max_reason_bytes);
    let partition = letter.source.partition.to_string();
    let offset = letter.source.offset.to_string();
    let mut pairs: Vec<(&str, String)> = vec![
        (HEADER_ERROR_KIND, letter.kind.to_string()),
        (HEADER_ERROR_REASON, reason.to_string()),
        (HEADER_ORIGINAL_TOPIC, letter.source.topic.clone()),
        (HEADER_ORIGINAL_PARTITION, partition),
        (HEADER_ORIGINAL_OFFSET, offset),
    ];
    if let Some(kept) = reference {
        pairs.push((HEADER_ORIGINAL_BYTES, kept.bytes.to_string()));
        pairs.push((HEADER_ORIGINAL_SHA256, kept.sha256.clone()));
        pairs.push((HEADER_PAYLOAD_REF, kept.path.display().to_string()));
    }
    if let Some(tp) = letter.traceparent {
        pairs.push((HEADER_TRACEPARENT, tp.to_string()));
    }
    pairs
        .iter()
        .fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::kafka::header_map;

    fn source() -> Source {
        Source {
            topic: "dfa.requests".into(),
            partition: 3,
            offset: 42,
        }
    }

    fn letter<'a>(source: &'a Source, reason: &'a str) -> Letter<'a> {
        Letter {
            source,
            key: None,
            payload: b"{bad",
            kind: "invalid_json",
            reason,
            traceparent: None,
        }
    }

    #[test]
    fn payloads_up_to_the_limit_travel_inline() {
        assert!(fits_inline(900_000, 900_000));
        assert!(!fits_inline(900_001, 900_000));
        assert!(fits_inline(0, 0));
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_at_char_boundary("short", 10), "short");
        assert_eq!(truncate_at_char_boundary("abcdef", 3), "abc");
        // "é" is two bytes: a cut in its middle backs off before it.
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
        assert_eq!(truncate_at_char_boundary("aé", 3), "aé");
        assert_eq!(truncate_at_char_boundary("日本", 1), "");
    }

    #[test]
    fn an_inline_letter_names_the_error_and_the_source() {
        let source = source();
        let h = header_map(Some(&headers(
            &letter(&source, "expected value"),
            None,
            100,
        )));
        assert_eq!(h[HEADER_ERROR_KIND], "invalid_json");
        assert_eq!(h[HEADER_ERROR_REASON], "expected value");
        assert_eq!(h[HEADER_ORIGINAL_TOPIC], "dfa.requests");
        assert_eq!(h[HEADER_ORIGINAL_PARTITION], "3");
        assert_eq!(h[HEADER_ORIGINAL_OFFSET], "42");
        assert!(!h.contains_key(HEADER_PAYLOAD_REF));
        assert!(!h.contains_key(HEADER_TRACEPARENT));
    }

    #[test]
    fn a_referencing_letter_names_the_kept_original_and_cuts_the_reason() {
        let source = source();
        let kept = Kept {
            bytes: 1_000_000,
            sha256: "ab".repeat(32),
            path: "/var/dfa/images/dead-letters/abab".into(),
        };
        let mut l = letter(&source, "ééé");
        l.traceparent = Some("00-trace");
        let h = header_map(Some(&headers(&l, Some(&kept), 5)));
        assert_eq!(h[HEADER_ERROR_REASON], "éé");
        assert_eq!(h[HEADER_ORIGINAL_BYTES], "1000000");
        assert_eq!(h[HEADER_ORIGINAL_SHA256], "ab".repeat(32));
        assert_eq!(h[HEADER_PAYLOAD_REF], "/var/dfa/images/dead-letters/abab");
        assert_eq!(h[HEADER_TRACEPARENT], "00-trace");
    }
}
