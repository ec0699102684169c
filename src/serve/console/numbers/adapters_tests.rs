use serde_json::json;

use super::*;

#[test]
fn the_gates_figures_read_in_short() {
    let m = json!({
        "candidate": {"heldout_detection": {"correct": 8, "total": 10},
                      "heldout_classification": {"correct": 1, "total": 2},
                      "corrected": {"correct": 5, "total": 6}},
        "active": {"corrected": {"correct": 2, "total": 6}},
        "compared_with": null,
        "decision": {"promote": "better on the corrections"}
    });
    assert_eq!(
        key_metrics(&m),
        [
            "held-out 8/10",
            "corrections 5/6 (was 2/6)",
            "gate: promote"
        ]
    );
    assert!(key_metrics(&json!({})).is_empty(), "imports have none");
    assert!(key_metrics(&json!({"candidate": {"corrected": {"correct": "x"}}})).is_empty());
    assert!(key_metrics(&Value::Null).is_empty());
}

#[test]
fn ids_stay_one_path_segment() {
    assert_eq!(path_segment("retrain-1a2b3c4d"), "retrain-1a2b3c4d");
    assert_eq!(path_segment("a b/c?d"), "a%20b%2Fc%3Fd");
    assert_eq!(path_segment("é"), "%C3%A9");
}

#[test]
fn a_form_without_its_token_has_none() {
    assert_eq!(
        form_csrf(&Bytes::from_static(b"csrf=abc")).as_deref(),
        Some("abc")
    );
    assert_eq!(form_csrf(&Bytes::from_static(b"")), None);
    assert_eq!(form_csrf(&Bytes::from_static(b"other=1")), None);
    assert_eq!(form_csrf(&Bytes::from_static(b"{\"csrf\":\"abc\"}")), None);
}

#[test]
fn only_registry_refusals_stay_on_the_page() {
    assert!(stays_on_page(&ApiError::NotFound("adapter")));
    assert!(stays_on_page(&ApiError::Conflict("x".into())));
    assert!(!stays_on_page(&ApiError::Forbidden("analyst")));
    assert!(!stays_on_page(&ApiError::Csrf));
}
