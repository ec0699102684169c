//! The queue page: flagged first, uncorrected before corrected, newest
//! first; keyset pages that visit every row once; filters; tenants;
//! `/console/queue/next` walking the same order; and, in a browser, rows
//! with their thumbnails leading to the verdict page.

use chrono::{DateTime, Utc};
use dfa::domain::access::Role;
use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::browser::Browser;
use crate::harness::{png, Harness, Seed};
use crate::http::{client, sign_in, HttpSession};

/// Stores a reviewer's correction of `id`, as a worker would.
async fn correct(h: &Harness, id: Uuid, label: &str) {
    sqlx::query(
        "INSERT INTO corrections (request_id, reviewer, label, created_at, source_topic, \
             source_partition, source_offset) VALUES ($1, 'rita', $2, now(), 'test', 0, 0)",
    )
    .bind(id)
    .bind(label)
    .execute(&h.env.pool)
    .await
    .expect("correction row");
}

/// The seeded verdicts, by name, in the order the queue must list them.
struct Seeded {
    order: Vec<(&'static str, Uuid)>,
}

impl Seeded {
    fn id(&self, name: &str) -> Uuid {
        self.order
            .iter()
            .find(|(n, _)| *n == name)
            .expect("seeded")
            .1
    }

    fn ids(&self, names: &[&str]) -> Vec<String> {
        names.iter().map(|n| self.id(n).to_string()).collect()
    }

    fn all(&self) -> Vec<String> {
        self.order.iter().map(|(_, id)| id.to_string()).collect()
    }
}

/// Seven verdicts covering the four classes (threshold 0.5, near 0.15):
///
/// | | label | p_fake | type | tenant | made | corrected | class |
/// |---|---|---|---|---|---|---|---|
/// | b | real | 0.45 | – | – | t-5m | no | flagged to review |
/// | a | fake | 0.90 | face_swap | acme | t-10m | no | flagged to review |
/// | a2 | fake | 0.70 | face_editing | acme | t-10m (a's id is higher) | no | flagged to review |
/// | c | fake | 0.95 | face_swap | acme | t-1m | yes | flagged, corrected |
/// | d | real | 0.10 | – | beta | t-2m | no | to review |
/// | f | real | 0.20 | – | beta | t-20m | no | to review |
/// | e | real | 0.05 | – | – | t-3m | yes | corrected |
async fn seed_classes(h: &Harness) -> Seeded {
    let s = &h.app.settings;
    assert_eq!(
        (s.analysis.threshold, s.console.near_threshold),
        (0.5, 0.15),
        "the table above assumes the default flagging"
    );
    let t = Utc::now() - chrono::Duration::hours(1);
    let min = |m: i64| t - chrono::Duration::minutes(m);
    let (mut hi, mut lo) = (Uuid::new_v4(), Uuid::new_v4());
    if hi < lo {
        std::mem::swap(&mut hi, &mut lo);
    }
    type Row = (
        &'static str,
        &'static str,
        f32,
        Option<&'static str>,
        Option<&'static str>,
        DateTime<Utc>,
    );
    let rows: [Row; 7] = [
        ("b", "real", 0.45, None, None, min(5)),
        ("a", "fake", 0.90, Some("face_swap"), Some("acme"), min(10)),
        (
            "a2",
            "fake",
            0.70,
            Some("face_editing"),
            Some("acme"),
            min(10),
        ),
        ("c", "fake", 0.95, Some("face_swap"), Some("acme"), min(1)),
        ("d", "real", 0.10, None, Some("beta"), min(2)),
        ("f", "real", 0.20, None, Some("beta"), min(20)),
        ("e", "real", 0.05, None, None, min(3)),
    ];
    let mut order = Vec::new();
    for (i, (name, label, p, kind, tenant, at)) in rows.into_iter().enumerate() {
        let sha = h.put_image(&png(i as u32 + 1)).await;
        let mut seed = Seed::new(&sha, at);
        seed.request_id = match name {
            "a" => hi,
            "a2" => lo,
            _ => seed.request_id,
        };
        seed.label = label;
        seed.p_fake = p;
        seed.forgery_type = kind;
        seed.tenant = tenant.map(str::to_string);
        h.seed(&seed).await;
        order.push((name, seed.request_id));
    }
    let seeded = Seeded { order };
    correct(h, seeded.id("c"), "real").await;
    correct(h, seeded.id("e"), "fake").await;
    seeded
}

/// Undoes the template's HTML escaping of an attribute value.
fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every value of attribute `attr` in elements whose opening tag starts
/// with `start`, in page order.
fn attrs(html: &str, start: &str, attr: &str) -> Vec<String> {
    html.split(start)
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            let i = tag.find(&format!("{attr}=\""))?;
            let value = tag[i + attr.len() + 2..].split('"').next()?;
            Some(unescape(value))
        })
        .collect()
}

/// A queue page: its status, HTML, rows' ids and the next page's link.
struct Page {
    status: StatusCode,
    html: String,
    ids: Vec<String>,
    more: Option<String>,
}

async fn get_page(h: &Harness, s: &HttpSession, path: &str) -> Page {
    let r = client()
        .get(h.url(path))
        .header(COOKIE, s.cookie_header())
        .send()
        .await
        .expect("queue page");
    let status = r.status();
    let html = r.text().await.expect("html");
    Page {
        status,
        ids: attrs(&html, "<tr class=\"verdict", "data-id"),
        more: attrs(&html, "<a id=\"more\"", "href").into_iter().next(),
        html,
    }
}

/// Where `/console/queue/next?…` sends the browser.
async fn next_of(h: &Harness, s: &HttpSession, query: &str) -> String {
    let r = client()
        .get(h.url(&format!("/console/queue/next?{query}")))
        .header(COOKIE, s.cookie_header())
        .send()
        .await
        .expect("next");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "next?{query}");
    r.headers()[LOCATION]
        .to_str()
        .expect("location")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn flagged_first_then_uncorrected_then_newest_with_filters_and_next() {
    let h = Harness::start("console_queue_order").await;
    let seeded = seed_classes(&h).await;
    let s = sign_in(&h, &h.token(Role::Reviewer, "rita", None).await).await;

    let all = ["b", "a", "a2", "c", "d", "f", "e"];
    let p = get_page(&h, &s, "/console/queue").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.ids, seeded.ids(&all), "the queue's order");
    assert_eq!(p.more, None, "one page holds them all");
    assert!(
        p.html
            .contains("id=\"todo-count\" class=\"count-todo\">3</strong>"),
        "{}",
        p.html
    );
    // Each row says what it is; the links carry the class they were listed in.
    let row = |name: &str| {
        let id = seeded.id(name).to_string();
        let start = p.html.find(&format!("data-id=\"{id}\"")).expect("row");
        let end = p.html[start..].find("</tr>").expect("row end") + start;
        p.html[start..end].to_string()
    };
    for (name, flagged, corrected) in [
        ("b", true, false),
        ("a", true, false),
        ("c", true, true),
        ("d", false, false),
        ("e", false, true),
    ] {
        let r = row(name);
        assert_eq!(r.contains("pill flag"), flagged, "{name}: {r}");
        assert_eq!(r.contains("pill done"), corrected, "{name}: {r}");
        assert_eq!(r.contains("pill todo"), !corrected, "{name}: {r}");
        assert!(r.contains("class=\"thumb\""), "{name}: {r}");
    }
    assert!(row("c").contains("label fake") && row("c").contains("0.95"));
    let hrefs = attrs(&p.html, "<a class=\"open\"", "href");
    assert_eq!(
        hrefs[0],
        format!("/console/verdicts/{}?class=flagged_todo", seeded.id("b"))
    );

    // Filters narrow it, keep its order, and ride along in the links.
    let p = get_page(
        &h,
        &s,
        "/console/queue?tenant=&forgery_type=face_swap&min_p_fake=&max_p_fake=&since=&until=",
    )
    .await;
    assert_eq!(p.ids, seeded.ids(&["a", "c"]));
    assert_eq!(
        attrs(&p.html, "<a class=\"open\"", "href")[1],
        format!(
            "/console/verdicts/{}?forgery_type=face_swap&class=flagged_done",
            seeded.id("c")
        )
    );
    let p = get_page(&h, &s, "/console/queue?min_p_fake=0.4&max_p_fake=0,8").await;
    assert_eq!(p.ids, seeded.ids(&["b", "a2"]));
    let p = get_page(&h, &s, "/console/queue?tenant=beta").await;
    assert_eq!(p.ids, seeded.ids(&["d", "f"]));
    let since = (Utc::now() - chrono::Duration::minutes(66)).format("%Y-%m-%dT%H:%M:%S");
    let p = get_page(&h, &s, &format!("/console/queue?since={since}")).await;
    assert_eq!(
        p.ids,
        seeded.ids(&["b", "c", "d", "e"]),
        "since {since} (UTC)"
    );
    let p = get_page(&h, &s, "/console/queue?forgery_type=entire_face_synthesis").await;
    assert!(p.ids.is_empty());
    assert!(p.html.contains("id=\"empty\"") && p.html.contains("no verdict matches"));

    // A bad value is said on the page, not a 500.
    for (q, says) in [
        ("since=yesterday", "since: `yesterday` is not a time"),
        (
            "min_p_fake=2",
            "p_fake from: `2` is not a number from 0 to 1",
        ),
        ("cursor=abc", "this page link is no longer valid"),
    ] {
        let p = get_page(&h, &s, &format!("/console/queue?{q}")).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(p.html.contains(says), "{q}: {}", p.html);
        assert!(
            p.html.contains("id=\"filters\""),
            "{q}: the form is there to fix it"
        );
    }

    // `next` walks the same order, then goes back to the queue.
    let mut at = seeded.id(all[0]);
    for name in &all[1..] {
        let to = next_of(&h, &s, &format!("after={at}")).await;
        assert!(
            to.starts_with(&format!("/console/verdicts/{}?class=", seeded.id(name))),
            "after {at}: {to}"
        );
        at = seeded.id(name);
    }
    assert_eq!(
        next_of(&h, &s, &format!("after={at}")).await,
        "/console/queue"
    );
    // With filters kept, both ways.
    let to = next_of(
        &h,
        &s,
        &format!("after={}&forgery_type=face_swap", seeded.id("a")),
    )
    .await;
    assert_eq!(
        to,
        format!(
            "/console/verdicts/{}?forgery_type=face_swap&class=flagged_done",
            seeded.id("c")
        )
    );
    let to = next_of(
        &h,
        &s,
        &format!("after={}&forgery_type=face_swap", seeded.id("c")),
    )
    .await;
    assert_eq!(to, "/console/queue?forgery_type=face_swap");
    for bad in ["after=nope", &format!("after={}", Uuid::new_v4()), ""] {
        assert_eq!(next_of(&h, &s, bad).await, "/console/queue", "{bad}");
    }

    // A reviewer who corrects `a` and goes on gets the next flagged
    // verdict to review (a2), as the link from the queue says where `a`
    // was; without that, `a` now stands among the corrected ones.
    correct(&h, seeded.id("a"), "real").await;
    let to = next_of(
        &h,
        &s,
        &format!("after={}&class=flagged_todo", seeded.id("a")),
    )
    .await;
    assert!(
        to.starts_with(&format!("/console/verdicts/{}?", seeded.id("a2"))),
        "{to}"
    );
    let to = next_of(&h, &s, &format!("after={}", seeded.id("a"))).await;
    assert!(
        to.starts_with(&format!("/console/verdicts/{}?", seeded.id("d"))),
        "{to}"
    );
    let p = get_page(&h, &s, "/console/queue").await;
    assert_eq!(p.ids, seeded.ids(&["b", "a2", "c", "a", "d", "f", "e"]));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_of_two_visit_every_row_once_in_order() {
    let h = Harness::start_with("console_queue_pages", |s| s.console.page_size = 2).await;
    let seeded = seed_classes(&h).await;
    let s = sign_in(&h, &h.token(Role::Reviewer, "rita", None).await).await;

    let mut seen = Vec::new();
    let mut path = Some("/console/queue".to_string());
    let mut pages = 0;
    while let Some(p) = path.take() {
        let page = get_page(&h, &s, &p).await;
        assert_eq!(page.status, StatusCode::OK, "{p}");
        assert!(page.ids.len() <= 2, "{p}: {:?}", page.ids);
        seen.extend(page.ids);
        path = page.more;
        pages += 1;
        assert!(pages <= 10, "paging does not end: {seen:?}");
    }
    assert_eq!(seen, seeded.all(), "every row once, in the queue's order");
    assert_eq!(pages, 4);

    // Filtered pages keep the filter in `more`.
    let first = get_page(&h, &s, "/console/queue?max_p_fake=0.5").await;
    assert_eq!(first.ids, seeded.ids(&["b", "d"]));
    let more = first.more.expect("a second page");
    assert!(
        more.starts_with("/console/queue?max_p_fake=0.5&cursor="),
        "{more}"
    );
    let second = get_page(&h, &s, &more).await;
    assert_eq!(second.ids, seeded.ids(&["f", "e"]));
    assert_eq!(second.more, None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_reviewer_sees_only_its_own_tenant() {
    let h = Harness::start("console_queue_tenant").await;
    let seeded = seed_classes(&h).await;
    let s = sign_in(&h, &h.token(Role::Reviewer, "ann", Some("acme")).await).await;

    let acme = seeded.ids(&["a", "a2", "c"]);
    for q in ["", "?tenant=acme", "?forgery_type=&tenant="] {
        let p = get_page(&h, &s, &format!("/console/queue{q}")).await;
        assert_eq!(p.ids, acme, "{q}");
        assert!(
            !p.html.contains("id=\"f-tenant\""),
            "no tenant field for a tenant's reviewer"
        );
    }
    let p = get_page(&h, &s, "/console/queue?tenant=beta").await;
    assert!(p.ids.is_empty(), "another tenant's verdicts: {:?}", p.ids);
    assert!(p.html.contains("id=\"empty\""));

    // `next` never leads out of the tenant, nor starts from another's verdict.
    let to = next_of(&h, &s, &format!("after={}", seeded.id("c"))).await;
    assert_eq!(to, "/console/queue");
    let to = next_of(&h, &s, &format!("after={}", seeded.id("a2"))).await;
    assert!(
        to.starts_with(&format!("/console/verdicts/{}?", seeded.id("c"))),
        "{to}"
    );
    let to = next_of(&h, &s, &format!("after={}", seeded.id("b"))).await;
    assert_eq!(to, "/console/queue", "b has no tenant: invisible to acme");
    let to = next_of(&h, &s, &format!("after={}&tenant=beta", seeded.id("a"))).await;
    assert_eq!(to, "/console/queue?tenant=beta");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_opens_the_queue_and_a_verdict_from_it_in_a_browser() {
    let h = Harness::start("console_queue_browser").await;
    let seeded = seed_classes(&h).await;
    let token = h.token(Role::Reviewer, "rita@trust-and-safety", None).await;
    let b = Browser::start("queue", &h).await;
    b.sign_in(&token).await;
    b.goto("/console/queue").await;
    b.find("table#queue tr.verdict").await;

    let ids = b
        .js(
            "return [...document.querySelectorAll('tr.verdict')].map(r => r.dataset.id);",
            vec![],
        )
        .await;
    assert_eq!(ids, serde_json::json!(seeded.all()));
    // Every thumbnail loaded: the cookie authenticates the image route.
    let widths = b
        .wait_js(
            "return [...document.querySelectorAll('img.thumb')]
            .map(i => i.complete ? i.naturalWidth : 0);",
            |v| {
                v.as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|w| w.as_u64() > Some(0)))
            },
        )
        .await;
    let widths = widths.as_array().expect("widths").clone();
    assert_eq!(widths.len(), 7, "{widths:?}");
    assert!(
        widths.iter().all(|w| w.as_u64() > Some(0)),
        "thumbnails: {widths:?}"
    );
    assert_eq!(b.find("#todo-count").await.text().await.unwrap(), "3");
    b.screenshot("queue").await;

    let first = seeded.id("b");
    b.find(&format!("tr.verdict[data-id=\"{first}\"] a.open"))
        .await
        .click()
        .await
        .expect("open");
    let at = b
        .wait_path(|p| p.starts_with(&format!("/console/verdicts/{first}")))
        .await;
    assert!(
        at.starts_with(&format!("/console/verdicts/{first}?class=flagged_todo")),
        "{at}"
    );
    b.close().await;
    h.stop().await;
}
