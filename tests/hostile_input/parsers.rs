//! Property tests of the message parsers: on any bytes, any string and any
//! valid-shaped message with hostile values, they return a validated value
//! or a typed error of a documented kind, never panic; and what they accept
//! keeps their documented promises.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use dfa::domain::{parse_artifacts, render_artifacts, Artifact, Label};
use dfa::worker::feedback::parse_feedback;
use dfa::worker::request::{parse_request, ImageSource, Request, RequestError};
use proptest::prelude::*;

use super::json::{self, field, quote};
use crate::assert_documented;

/// The kinds a message parser may give (docs/messages.md).
const PARSE_KINDS: [&str; 4] = [
    "invalid_json",
    "missing_field",
    "invalid_field",
    "schema_version",
];

const REQUEST_FIELDS: [&str; 8] = [
    "message",
    "schema_version",
    "request_id",
    "image",
    "tasks",
    "questions",
    "tenant",
    "metadata",
];

const FEEDBACK_FIELDS: [&str; 9] = [
    "feedback",
    "schema_version",
    "request_id",
    "reviewer",
    "label",
    "forgery_type",
    "artifacts",
    "note",
    "created_at",
];

const SKEW: Duration = Duration::from_secs(300);

fn now() -> DateTime<Utc> {
    "2026-11-27T12:00:00Z".parse().expect("a timestamp")
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Failures print their minimal input; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A rejection is of a parser kind, and an invalid field names a real one.
fn check_rejection(err: &RequestError, fields: &[&str], input: &[u8]) {
    let what = String::from_utf8_lossy(&input[..input.len().min(300)]).into_owned();
    assert_documented(err.kind(), &PARSE_KINDS, &what);
    if let RequestError::InvalidField { field, .. } = err {
        let root = field.split(['.', '[']).next().unwrap_or_default();
        assert!(fields.contains(&root), "{what}: unknown field `{field}`");
    }
}

fn no_nul_in(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => !s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().all(no_nul_in),
        serde_json::Value::Object(m) => m.iter().all(|(k, v)| !k.contains('\0') && no_nul_in(v)),
        _ => true,
    }
}

/// What an accepted request promises (docs/messages.md).
fn check_request(r: &Request) {
    assert!(r.questions.len() <= 8, "{r:?}");
    assert!(r.questions.iter().all(|q| !q.trim().is_empty()), "{r:?}");
    assert!(r.questions.iter().all(|q| !q.contains('\0')), "{r:?}");
    if let Some(t) = &r.tenant {
        assert!(!t.trim().is_empty() && t.chars().count() <= 200, "{t:?}");
        assert!(!t.contains('\0'), "{t:?}");
    }
    assert!(no_nul_in(&r.metadata), "{:?}", r.metadata);
    if let ImageSource::Url(u) = &r.image {
        assert!(!u.contains('\0'), "{u:?}");
    }
}

fn parse_any_request(bytes: &[u8], allow_local_paths: bool) {
    match parse_request(bytes, allow_local_paths) {
        Ok(r) => check_request(&r),
        Err(e) => check_rejection(&e, &REQUEST_FIELDS, bytes),
    }
}

fn parse_any_feedback(bytes: &[u8]) {
    match parse_feedback(bytes, now(), SKEW) {
        Ok(c) => {
            assert!(c.created_at <= now() + TimeDelta::seconds(300), "{c:?}");
            assert!(!c.reviewer.trim().is_empty() && c.reviewer.chars().count() <= 200);
            assert!(!c.reviewer.contains('\0'));
            assert!(c.note.iter().all(|n| !n.contains('\0')));
            let artifacts = c.artifacts.iter().flatten();
            assert!(c.artifacts.as_ref().is_none_or(|a| a.len() <= 32));
            for a in artifacts {
                assert!(!a.region.trim().is_empty() && !a.text.trim().is_empty());
                assert!(!a.region.contains('\0') && !a.text.contains('\0'));
            }
            if c.label == Label::Real {
                assert!(c.forgery_type.is_none() && c.artifacts.is_none(), "{c:?}");
            }
        }
        Err(e) => check_rejection(&e, &FEEDBACK_FIELDS, bytes),
    }
}

fn hostile_request() -> impl Strategy<Value = String> {
    use base64::Engine as _;
    let image_value = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(b);
            format!(r#"{{"base64":"{b64}"}}"#)
        }),
        4 => "[a-z0-9./:?#@%-]{0,40}".prop_map(|s| format!(r#"{{"url":"https://{s}"}}"#)),
        1 => "[a-z0-9/.]{1,30}".prop_map(|s| format!(r#"{{"path":"/{s}"}}"#)),
        1 => json::string().prop_map(|s| format!(r#"{{"base64":{s}}}"#)),
        1 => json::string().prop_map(|s| format!(r#"{{"url":{s}}}"#)),
        1 => (json::value(), json::value()).prop_map(|(a, b)| format!(r#"{{"url":{a},"path":{b}}}"#)),
    ];
    let task = prop_oneof![
        8 => prop::sample::select(vec!["\"detection\"", "\"classification\"", "\"artifacts\""])
            .prop_map(str::to_string),
        1 => json::string(),
    ];
    json::message(vec![
        field("schema_version", Just("1".to_string())).boxed(),
        field("request_id", json::uuid()).boxed(),
        field("image", image_value).boxed(),
        field("tasks", json::array(task, 0..5)).boxed(),
        field("questions", json::array(json::text(), 0..10)).boxed(),
        field("tenant", json::text()).boxed(),
        field("metadata", json::small_object()).boxed(),
    ])
}

fn hostile_feedback() -> impl Strategy<Value = String> {
    // Around the test's clock: up to ten years back, or a hundred ahead.
    let instant = |from: i64, to: i64| {
        (from..to).prop_map(|s| quote(&(now() + TimeDelta::seconds(s)).to_rfc3339()))
    };
    let created_at = prop_oneof![
        6 => instant(-315_360_000, 600),
        2 => instant(600, 3_153_600_000),
        1 => prop::sample::select(vec![
            "9999-12-31T23:59:59Z",
            "+275760-09-13T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-27T10:00:00+99:99",
            "2016-12-31T23:59:60Z",
            "2026-11-27T12:04:59.999999999+00:00",
            "2026-11-27",
        ])
        .prop_map(quote),
    ];
    let label = prop_oneof![
        8 => prop::sample::select(vec!["\"real\"", "\"fake\""]),
        1 => prop::sample::select(vec!["\"Fake\"", "\"\"", "\"fake \""]),
    ]
    .prop_map(str::to_string);
    let forgery = prop::sample::select(vec![
        "null",
        "null",
        "\"face_swap\"",
        "\"entire_face_synthesis\"",
        "\"x\"",
    ])
    .prop_map(str::to_string);
    let artifact =
        (json::text(), json::text()).prop_map(|(r, t)| format!(r#"{{"region":{r},"text":{t}}}"#));
    json::message(vec![
        field("schema_version", Just("1".to_string())).boxed(),
        field("request_id", json::uuid()).boxed(),
        field("reviewer", json::text()).boxed(),
        field("label", label).boxed(),
        field("forgery_type", forgery).boxed(),
        field(
            "artifacts",
            prop_oneof![Just("null".to_string()), json::array(artifact, 0..36)],
        )
        .boxed(),
        field("note", json::text()).boxed(),
        field("created_at", created_at).boxed(),
    ])
}

/// Non-NUL text that is not all whitespace, of 1..=max characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 1..=max)
        .prop_map(|cs| cs.into_iter().collect::<String>())
        .prop_filter("not blank", |s| !s.trim().is_empty())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_parser_types_every_rejection_of_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        allow in any::<bool>(),
    ) {
        parse_any_request(&bytes, allow);
    }

    #[test]
    fn request_parser_types_every_rejection_of_any_string(s in any::<String>(), allow in any::<bool>()) {
        parse_any_request(s.as_bytes(), allow);
    }

    #[test]
    fn request_parser_types_every_rejection_of_hostile_json(
        msg in hostile_request(),
        allow in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        parse_any_request(msg.as_bytes(), allow);
        // Cut anywhere, even inside a UTF-8 sequence.
        parse_any_request(&msg.as_bytes()[..cut.index(msg.len() + 1)], allow);
    }

    #[test]
    fn a_request_with_any_tenant_of_1_to_200_characters_parses(tenant in text(200)) {
        let msg = format!(
            r#"{{"schema_version":1,"request_id":"6f1c3b0a-9d11-4a59-9f4e-2f1c3b0a9d11","image":{{"base64":"aGVsbG8="}},"tenant":{}}}"#,
            quote(&tenant)
        );
        let parsed = parse_request(msg.as_bytes(), false);
        prop_assert_eq!(parsed.map(|r| r.tenant), Ok(Some(tenant)));
    }

    #[test]
    fn feedback_parser_types_every_rejection_of_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        parse_any_feedback(&bytes);
    }

    #[test]
    fn feedback_parser_types_every_rejection_of_any_string(s in any::<String>()) {
        parse_any_feedback(s.as_bytes());
    }

    #[test]
    fn feedback_parser_types_every_rejection_of_hostile_json(
        msg in hostile_feedback(),
        cut in any::<prop::sample::Index>(),
    ) {
        parse_any_feedback(msg.as_bytes());
        parse_any_feedback(&msg.as_bytes()[..cut.index(msg.len() + 1)]);
    }

    #[test]
    fn feedback_created_at_is_bounded_by_now_plus_skew(ahead in -315_360_000i64..3_153_600_000) {
        let at = now() + TimeDelta::seconds(ahead);
        let msg = format!(
            r#"{{"request_id":"6f1c3a52-9a4e-4c9b-8d0e-2b7f9d1e4a10","reviewer":"ana","label":"real","created_at":{}}}"#,
            quote(&at.to_rfc3339())
        );
        match parse_feedback(msg.as_bytes(), now(), SKEW) {
            Ok(c) => prop_assert!(ahead <= 300 && c.created_at == at, "{} accepted", at),
            Err(RequestError::InvalidField { field, .. }) => {
                prop_assert!(ahead > 300 && field == "created_at", "{} refused at {}", at, field)
            }
            Err(other) => prop_assert!(false, "{}: {:?}", at, other),
        }
    }

    #[test]
    fn artifact_parser_gives_clean_items_for_any_text(s in any::<String>()) {
        check_items(&parse_artifacts(&s));
    }

    #[test]
    fn artifact_parser_gives_clean_items_for_list_like_text(
        lines in prop::collection::vec(
            (
                prop::sample::select(vec!["1.", "2)", "10.", "007)", "99999999999999999999999.", "", "-"]),
                prop::sample::select(vec![" **", "**", " ", ""]),
                "\\PC{0,20}",
                prop::sample::select(vec!["**:", ":**", "**", ":", ""]),
                "\\PC{0,30}",
                prop::sample::select(vec!["\n", "\r\n", "\n\n", "\u{2028}"]),
            ),
            0..12,
        ),
    ) {
        let text: String = lines
            .iter()
            .map(|(n, open, region, close, body, end)| format!("{n}{open}{region}{close}{body}{end}"))
            .collect();
        check_items(&parse_artifacts(&text));
    }

    #[test]
    fn rendered_artifact_lists_parse_back(
        items in prop::collection::vec(
            ("[^\n\r:*]{1,30}", "[^\n\r]{1,60}")
                .prop_filter("region and text hold something", |(r, t)| {
                    !r.trim().is_empty() && !t.trim().is_empty()
                })
                .prop_map(|(r, t)| Artifact { region: r.trim().into(), text: t.trim().into() }),
            0..10,
        ),
    ) {
        prop_assert_eq!(parse_artifacts(&render_artifacts(&items)), items);
    }
}

/// The artifact parser never fails: text that is no list gives no items. What
/// it gives is always a named region and one-line, trimmed text.
fn check_items(items: &[Artifact]) {
    for a in items {
        assert!(!a.region.is_empty() && a.region == a.region.trim(), "{a:?}");
        assert!(a.text == a.text.trim(), "{a:?}");
        assert!(!a.region.contains('\n') && !a.text.contains('\n'), "{a:?}");
    }
}
