//! The verdict's stored JSON as the page shows it: the artifact description
//! region by region, the request's metadata as name/value pairs, and the
//! "next" link that keeps the queue's filters. All of it is untrusted text;
//! the template escapes it.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Metadata entries shown; the API has the rest.
const MAX_METADATA: usize = 24;
/// Characters of one metadata value shown.
const MAX_VALUE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Region {
    pub region: String,
    pub text: String,
}

/// The `artifacts` JSON (`[{region, text}]`) as regions; entries of another
/// shape are skipped rather than failing the page.
pub fn regions(artifacts: &Value) -> Vec<Region> {
    let Some(items) = artifacts.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|a| {
            let text = a.get("text")?.as_str()?.trim();
            let region = a.get("region").and_then(Value::as_str).unwrap_or("").trim();
            (!text.is_empty()).then(|| Region {
                region: region.to_string(),
                text: text.to_string(),
            })
        })
        .collect()
}

#[derive(Debug, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub value: String,
}

/// The request's metadata, top-level entries in order (strings as they
/// are, anything else as compact JSON), bounded; a non-object as one entry.
/// The second value counts the entries left out.
pub fn metadata(metadata: &Value) -> (Vec<Entry>, usize) {
    match metadata {
        Value::Object(map) => {
            let entries = map
                .iter()
                .take(MAX_METADATA)
                .map(|(k, v)| Entry {
                    name: clip(k),
                    value: shown(v),
                })
                .collect();
            (entries, map.len().saturating_sub(MAX_METADATA))
        }
        Value::Null => (Vec::new(), 0),
        other => (
            vec![Entry {
                name: "metadata".into(),
                value: shown(other),
            }],
            0,
        ),
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => clip(s),
        other => clip(&other.to_string()),
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// `/console/queue/next?after=ID&…`: the page's own query (the queue's
/// filters, as the queue linked here) carried on, minus any `after`.
pub fn next_href(id: Uuid, query: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("after", &id.to_string());
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k != "after" {
            q.append_pair(&k, &v);
        }
    }
    format!("/console/queue/next?{}", q.finish())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn artifacts_of_another_shape_are_skipped() {
        let a = json!([
            {"region": " Eyes ", "text": "the reflections differ."},
            {"region": "Mouth"},
            {"text": "no region"},
            "loose",
            {"region": "Skin", "text": "  "}
        ]);
        assert_eq!(
            regions(&a),
            [
                Region {
                    region: "Eyes".into(),
                    text: "the reflections differ.".into()
                },
                Region {
                    region: "".into(),
                    text: "no region".into()
                },
            ]
        );
        assert!(regions(&json!({"region": "x"})).is_empty());
    }

    #[test]
    fn metadata_is_shown_as_bounded_text() {
        let long = "é".repeat(MAX_VALUE_CHARS + 5);
        let (entries, more) = metadata(&json!({"case": "A-1", "n": 3, "long": long}));
        assert_eq!(more, 0);
        let value = |name: &str| {
            let e = entries.iter().find(|e| e.name == name);
            e.map(|e| e.value.clone()).unwrap_or_default()
        };
        assert_eq!(value("case"), "A-1");
        assert_eq!(value("n"), "3");
        assert_eq!(value("long").chars().count(), MAX_VALUE_CHARS + 1);
        let many: serde_json::Map<_, _> = (0..30).map(|i| (format!("k{i}"), json!(i))).collect();
        let (entries, more) = metadata(&Value::Object(many));
        assert_eq!((entries.len(), more), (MAX_METADATA, 30 - MAX_METADATA));
        assert_eq!(metadata(&json!(null)).0, []);
        assert_eq!(metadata(&json!([1])).0[0].value, "[1]");
    }

    #[test]
    fn next_keeps_the_filters_and_replaces_after() {
        let id = Uuid::nil();
        assert_eq!(
            next_href(id, Some("tenant=a%20b&after=zzz&type=face_swap")),
            format!("/console/queue/next?after={id}&tenant=a+b&type=face_swap")
        );
        assert_eq!(
            next_href(id, None),
            format!("/console/queue/next?after={id}")
        );
    }
}
