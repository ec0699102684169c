use super::*;

fn query(q: &str) -> Result<Window, ApiError> {
    Window::parse(&parse_query::<NumbersQuery>(q)?)
}

#[test]
fn the_window_defaults_to_30_days_by_day() {
    assert_eq!(query("").unwrap(), Window::default());
    let w = query("days=90&bucket=week&tenant=+acme+").unwrap();
    assert_eq!(
        (w.days, w.bucket, w.tenant.as_deref()),
        (90, Bucket::Week, Some("acme"))
    );
    assert_eq!(
        query("tenant=").unwrap().tenant,
        None,
        "a blank field is no tenant"
    );
    for (q, field) in [
        ("days=0", "days"),
        ("days=367", "days"),
        ("days=x", "days"),
        ("bucket=hour", "bucket"),
        ("bucket=month", "bucket"),
        ("colour=red", "colour"),
        ("done=deleted", "done"),
    ] {
        match query(q) {
            Err(ApiError::BadRequest { field: f, .. }) => assert_eq!(f, field, "{q}"),
            other => panic!("{q}: {other:?}"),
        }
    }
}

#[test]
fn a_window_is_whole_buckets_up_to_now() {
    let now: DateTime<Utc> = "2026-03-31T15:20:00Z".parse().unwrap();
    let r = Window::default().request(now);
    assert_eq!(
        r.since,
        "2026-03-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(r.until, now);
    assert_eq!(
        r.bucket.starts(r.since, r.until).unwrap().len(),
        30,
        "30 bars"
    );
    let weeks = Window {
        days: 7,
        bucket: Bucket::Week,
        tenant: None,
    }
    .request(now);
    // 25 March is a Wednesday: its week began on Monday the 23rd.
    assert_eq!(
        weeks.since,
        "2026-03-23T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    let one = Window {
        days: 1,
        ..Window::default()
    }
    .request(now);
    assert_eq!(
        one.since,
        "2026-03-31T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn untrusted_names_are_escaped_in_the_page_and_its_charts() {
    use crate::domain::verdict_query::Agreement;
    use crate::store::{AdapterCounts, BucketCount};

    const XSS: &str = "<img src=x onerror=alert(1)>";
    let now: DateTime<Utc> = "2026-03-31T15:20:00Z".parse().unwrap();
    let window = Window {
        tenant: Some(XSS.into()),
        ..Window::default()
    };
    let req = window.request(now);
    let counts = [BucketCount {
        start: "2026-03-30T00:00:00Z".parse().unwrap(),
        label: Some(crate::domain::Label::Fake),
        forgery_type: None,
        verdicts: 2,
    }];
    let adapter = AdapterCounts {
        adapter_id: Some(XSS.into()),
        verdicts: 2,
        no_face: 0,
        agreement: Agreement {
            true_fake: 1,
            ..Agreement::default()
        },
    };
    let s = stats::assemble(
        &req,
        &counts,
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        vec![adapter],
    );
    let mut row = adapters::AdapterRow::from(crate::serve::adapters::AdapterView {
        id: XSS.into(),
        status: crate::domain::adapter::AdapterStatus::Candidate,
        status_reason: Some(XSS.into()),
        parent_id: Some(XSS.into()),
        sha256: String::new(),
        origin: crate::domain::adapter::AdapterOrigin::Import,
        metrics: serde_json::json!({"decision": {XSS: XSS}}),
        created_at: now,
        promoted_at: None,
        retired_at: None,
    });
    row.status = "active";
    let ctx = page_context(
        &window,
        &req,
        &s,
        Some(vec![row]),
        &Notice::Problem(XSS.into()),
        0.5,
    );
    let viewer = context! { name => XSS, role => "admin", tenant => (), can_ask => true,
    can_correct => true, can_stats => true, can_adapters => true };
    let html = super::super::pages::render(
        "numbers.html",
        context! { viewer, csrf => "c", nav => "numbers", ..ctx },
    )
    .expect("renders")
    .0;
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    for id in [
        "chart-daily",
        "chart-types",
        "chart-histogram",
        "chart-agreement",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("id=\"adapters\"") && html.contains("id=\"rollback\""));
}

#[test]
fn notices_round_trip_and_name_only_known_adapters() {
    let q = |s: &str| parse_query::<NumbersQuery>(s).unwrap();
    let promoted = Notice::Promoted {
        adapter: "ad 1/x".into(),
    };
    assert_eq!(Notice::from_query(&q(&promoted.query())), promoted);
    let back = Notice::RolledBack {
        retired: "a".into(),
        restored: None,
    };
    assert_eq!(Notice::from_query(&q(&back.query())), back);
    assert_eq!(Notice::from_query(&q("done=promoted")), Notice::None);

    let row = |id: &str, status: &'static str| adapters::AdapterRow {
        id: id.into(),
        status,
        status_reason: None,
        origin: "import",
        parent: None,
        created: String::new(),
        promoted: None,
        metrics: vec![],
        promotable: false,
        promote_path: String::new(),
    };
    let known = [row("ad 1/x", "active"), row("a", "retired")];
    let (text, ok) = promoted.sentence(&known).unwrap();
    assert!(ok && text.starts_with("Promoted ad 1/x"), "{text}");
    assert_eq!(
        back.sentence(&known).unwrap().0,
        "Rolled back a: the base model serves again."
    );
    let forged = Notice::Promoted {
        adapter: "Your account is locked, call 555".into(),
    };
    assert_eq!(forged.sentence(&known), None);
    let stale = Notice::Promoted {
        adapter: "a".into(),
    };
    assert_eq!(
        stale.sentence(&known),
        None,
        "a is not active: no claim it was promoted"
    );
    let undone = Notice::RolledBack {
        retired: "ad 1/x".into(),
        restored: None,
    };
    assert_eq!(undone.sentence(&known), None, "ad 1/x is still active");
    assert_eq!(
        promoted.sentence(&[]),
        None,
        "non-admins see no registry notices"
    );
    let (text, ok) = Notice::Problem("no adapter".into()).sentence(&[]).unwrap();
    assert_eq!((text.as_str(), ok), ("no adapter", false));
}
