//! Parsing and validating a feedback message (docs/messages.md), pure: the
//! worker applies it to what it consumes, and `dfa serve` to what it is about
//! to publish, so both refuse the same corrections for the same reasons.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::{Artifact, Correction, ForgeryType, Label};
use crate::worker::request::{
    check_schema_version, from_json, parse_request_id, reject_nul, RequestError,
};

const MAX_REVIEWER_CHARS: usize = 200;
const MAX_NOTE_CHARS: usize = 4000;
const MAX_ARTIFACTS: usize = 32;

#[derive(Deserialize)]
struct Wire {
    schema_version: Option<serde_json::Value>,
    request_id: Option<String>,
    reviewer: Option<String>,
    label: Option<Label>,
    forgery_type: Option<ForgeryType>,
    artifacts: Option<Vec<Artifact>>,
    note: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

/// Parses one feedback payload; errors carry the same kinds as requests'.
///
/// `created_at` may lie at most `max_skew` after `now` (the caller's clock,
/// passed in so that parsing stays pure).
pub fn parse_feedback(
    payload: &[u8],
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<Correction, RequestError> {
    let wire: Wire = from_json(payload, "feedback")?;
    // schema_version is optional here (1 when absent), but never another one.
    if let Some(v) = wire.schema_version {
        check_schema_version(v)?;
    }
    let request_id = parse_request_id(wire.request_id)?;
    let reviewer = wire
        .reviewer
        .ok_or(RequestError::MissingField("reviewer"))?;
    if reviewer.trim().is_empty() || reviewer.chars().count() > MAX_REVIEWER_CHARS {
        return Err(RequestError::invalid(
            "reviewer",
            format!("must hold 1..{MAX_REVIEWER_CHARS} characters"),
        ));
    }
    let label = wire.label.ok_or(RequestError::MissingField("label"))?;
    let created_at = wire
        .created_at
        .ok_or(RequestError::MissingField("created_at"))?;
    check_not_future(created_at, now, max_skew)?;
    if label == Label::Real && wire.forgery_type.is_some() {
        return Err(RequestError::invalid(
            "forgery_type",
            "a real face has no forgery type",
        ));
    }
    if let Some(a) = &wire.artifacts {
        if label == Label::Real && !a.is_empty() {
            return Err(RequestError::invalid(
                "artifacts",
                "a real face has no forgery artifacts",
            ));
        }
        if a.len() > MAX_ARTIFACTS
            || a.iter()
                .any(|x| x.region.trim().is_empty() || x.text.trim().is_empty())
        {
            return Err(RequestError::invalid(
                "artifacts",
                format!("at most {MAX_ARTIFACTS} entries, each with a region and a text"),
            ));
        }
    }
    if wire
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(RequestError::invalid(
            "note",
            format!("at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    reject_nul("reviewer", [reviewer.as_str()])?;
    reject_nul("note", wire.note.as_deref())?;
    let artifact_texts = wire.artifacts.iter().flatten();
    reject_nul(
        "artifacts",
        artifact_texts.flat_map(|a| [a.region.as_str(), a.text.as_str()]),
    )?;
    Ok(Correction {
        request_id,
        reviewer,
        label,
        forgery_type: wire.forgery_type,
        artifacts: wire.artifacts.filter(|a| !a.is_empty()),
        note: wire.note.filter(|n| !n.trim().is_empty()),
        created_at,
    })
}

/// The latest `created_at` wins, so a correction dated in the far future
/// would outrank every later one for good. It is refused rather than clamped
/// to `now`: a clamped timestamp would move with each redelivery (breaking
/// "the same message twice changes nothing") and would still store a date the
/// reviewer never gave. Kafka brokers do the same with record timestamps
/// (`log.message.timestamp.after.max.ms`, KIP-937: too far ahead is refused).
fn check_not_future(
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<(), RequestError> {
    // A skew too large for chrono to add puts no bound at all.
    let latest = chrono::TimeDelta::from_std(max_skew)
        .ok()
        .and_then(|skew| now.checked_add_signed(skew));
    match latest {
        Some(latest) if created_at > latest => Err(RequestError::invalid(
            "created_at",
            format!(
                "{} lies in the future: at most {}s after the worker's clock ({})",
                created_at.to_rfc3339(),
                max_skew.as_secs(),
                now.to_rfc3339()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f1c3a52-9a4e-4c9b-8d0e-2b7f9d1e4a10";
    const SKEW: Duration = Duration::from_secs(300);

    /// A fixed worker clock, so that the skew tests are deterministic.
    fn now() -> DateTime<Utc> {
        "2026-11-27T12:00:00Z".parse().unwrap()
    }

    fn parse(json: serde_json::Value) -> Result<Correction, RequestError> {
        parse_feedback(json.to_string().as_bytes(), now(), SKEW)
    }

    fn dated(created_at: DateTime<Utc>) -> Result<Correction, RequestError> {
        parse(serde_json::json!({
            "request_id": ID, "reviewer": "ana", "label": "real",
            "created_at": created_at.to_rfc3339()
        }))
    }

    #[test]
    fn created_at_within_the_skew_is_accepted() {
        for ahead in [
            chrono::TimeDelta::days(-400),
            chrono::TimeDelta::zero(),
            chrono::TimeDelta::seconds(299),
            chrono::TimeDelta::seconds(300),
        ] {
            let at = now() + ahead;
            assert_eq!(dated(at).unwrap().created_at, at, "{ahead}");
        }
    }

    #[test]
    fn created_at_beyond_the_skew_is_refused_by_field() {
        for ahead in [
            chrono::TimeDelta::seconds(301),
            chrono::TimeDelta::days(1),
            chrono::TimeDelta::days(365 * 7000),
        ] {
            match dated(now() + ahead) {
                Err(RequestError::InvalidField { field, reason }) => {
                    assert_eq!(field, "created_at", "{ahead}");
                    assert!(reason.contains("future"), "{reason}");
                }
                other => panic!("{ahead} ahead: {other:?}"),
            }
        }
        let year_9999 = serde_json::json!({
            "request_id": ID, "reviewer": "ana", "label": "real",
            "created_at": "9999-12-31T23:59:59Z"
        });
        assert_eq!(parse(year_9999).unwrap_err().kind(), "invalid_field");
        // A skew chrono cannot add to now bounds nothing rather than failing.
        let far = now() + chrono::TimeDelta::days(365 * 7000);
        let huge = Duration::from_secs(u64::MAX);
        let json = format!(
            r#"{{"request_id":"{ID}","reviewer":"ana","label":"real","created_at":"{}"}}"#,
            far.to_rfc3339()
        );
        assert!(parse_feedback(json.as_bytes(), now(), huge).is_ok());
    }

    #[test]
    fn a_full_correction_parses() {
        let c = parse(serde_json::json!({
            "request_id": ID, "reviewer": "ana", "label": "fake", "forgery_type": "face_swap",
            "artifacts": [{"region": "eyes", "text": "mismatched reflections"}],
            "note": "obvious blend line", "created_at": "2026-11-27T10:00:00Z"
        }))
        .unwrap();
        assert_eq!(c.label, Label::Fake);
        assert_eq!(c.forgery_type, Some(ForgeryType::FaceSwap));
        assert_eq!(c.artifacts.unwrap()[0].region, "eyes");
    }

    #[test]
    fn bad_feedback_is_rejected_by_field() {
        let base = serde_json::json!({"request_id": ID, "reviewer": "ana", "label": "real", "created_at": "2026-11-27T10:00:00Z"});
        assert!(parse(base.clone()).is_ok());
        let with = |k: &str, v: serde_json::Value| {
            let mut m = base.clone();
            m[k] = v;
            parse(m).unwrap_err()
        };
        let field_of = |e: RequestError| match e {
            RequestError::InvalidField { field, .. } => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        assert_eq!(
            field_of(with("forgery_type", "face_swap".into())),
            "forgery_type"
        );
        assert_eq!(field_of(with("request_id", "nope".into())), "request_id");
        assert_eq!(field_of(with("reviewer", " ".into())), "reviewer");
        assert_eq!(field_of(with("reviewer", "a\u{0}b".into())), "reviewer");
        assert_eq!(field_of(with("note", "x\u{0}".into())), "note");
        assert_eq!(field_of(with("label", "maybe".into())), "label");
        assert_eq!(
            field_of(with("created_at", "yesterday".into())),
            "created_at"
        );
        assert_eq!(
            field_of(with("artifacts", serde_json::json!([{"region": "eyes"}]))),
            "artifacts[0]"
        );
        assert!(matches!(
            with("schema_version", 2.into()),
            RequestError::SchemaVersion(2)
        ));
        let mut m = base.clone();
        m.as_object_mut().unwrap().remove("created_at");
        assert!(matches!(
            parse(m).unwrap_err(),
            RequestError::MissingField("created_at")
        ));
        assert_eq!(
            parse_feedback(b"{nope", now(), SKEW).unwrap_err().kind(),
            "invalid_json"
        );
    }
}
