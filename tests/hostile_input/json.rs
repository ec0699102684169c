//! Strategies for JSON text: valid shapes with hostile values (huge numbers,
//! NUL and other control characters, lone surrogates, deep nesting, wrong
//! types, any Unicode). Built as text, not as `serde_json::Value`, so that
//! what a `Value` cannot hold (1e400, 400 levels of nesting, duplicate keys)
//! reaches the parsers too.

use proptest::collection::vec;
use proptest::prelude::*;

/// A JSON string literal.
pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any::<String>().prop_map(|s| quote(&s)),
        3 => "\\PC{0,40}".prop_map(|s| quote(&s)),
        2 => "[a-z ]{0,12}".prop_map(|s| quote(&s)),
        1 => Just(r#""\u0000""#.to_string()),
        1 => Just(r#""a\u0000b""#.to_string()),
        // A lone surrogate escape: valid JSON text, no valid Unicode.
        1 => Just(r#""\ud800""#.to_string()),
        1 => Just(r#""\udfff\ud800""#.to_string()),
        // A raw control character inside a string: invalid JSON.
        1 => Just("\"a\u{1}b\"".to_string()),
        1 => Just(quote(&"x".repeat(5000))),
        1 => Just(quote("\u{feff}\u{202e}\u{10ffff}")),
        1 => Just(quote(" \t\n")),
    ]
}

/// Any JSON value, hostile ones weighted in.
pub fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        prop::sample::select(vec![
            "1e400",
            "-1e400",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890123456789",
            "0.0000000000000000000000000000000000000001e-400",
            "-0",
            "1.0",
        ])
        .prop_map(str::to_string),
        string(),
        (1usize..400).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        (1usize..400).prop_map(|d| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            vec((string(), inner), 0..6).prop_map(|kv| object(&kv)),
        ]
    })
}

/// A field of a message: absent, a plausible value, or any value. Mostly
/// plausible, so that a message's later fields are reached too.
pub fn field(
    name: &'static str,
    plausible: impl Strategy<Value = String> + 'static,
) -> impl Strategy<Value = Option<(String, String)>> {
    prop_oneof![
        1 => Just(None),
        24 => plausible.prop_map(move |v| Some((quote(name), v))),
        3 => value().prop_map(move |v| Some((quote(name), v))),
    ]
}

/// A JSON object of the present fields, sometimes with an unknown key or a
/// field repeated.
pub fn message(
    fields: Vec<BoxedStrategy<Option<(String, String)>>>,
) -> impl Strategy<Value = String> {
    let extra = prop_oneof![
        4 => Just(None),
        1 => (string(), value()).prop_map(Some),
    ];
    let repeat = prop::bool::weighted(0.1);
    (fields, extra, repeat).prop_map(|(fields, extra, repeat)| {
        let mut present: Vec<(String, String)> = fields.into_iter().flatten().collect();
        if repeat {
            if let Some(first) = present.first().cloned() {
                present.push(first);
            }
        }
        present.extend(extra);
        object(&present)
    })
}

/// Text a person could have typed, now and then hostile.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "\\PC{1,40}".prop_map(|s| quote(&s)),
        1 => string(),
    ]
}

pub fn uuid() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u128>().prop_map(|n| quote(&uuid::Uuid::from_u128(n).to_string())),
        Just(quote("6f1c3b0a-9d11-4a59-9f4e-2f1c3b0a9d11")),
        Just(quote("6F1C3B0A9D114A599F4E2F1C3B0A9D11")),
        Just(quote("urn:uuid:6f1c3b0a-9d11-4a59-9f4e-2f1c3b0a9d11")),
    ]
}

/// A small object of plain keys and text, numbers or arrays of them.
pub fn small_object() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        text(),
        any::<i64>().prop_map(|n| n.to_string()),
        array(text(), 0..4),
    ];
    vec((text(), item), 0..5).prop_map(|kv| object(&kv))
}

/// A JSON array of the given items.
pub fn array(
    item: impl Strategy<Value = String>,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = String> {
    vec(item, len).prop_map(|v| format!("[{}]", v.join(",")))
}

pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a str serialises")
}

fn object(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", body.join(","))
}
