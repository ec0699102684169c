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

mod browser;
mod faces;
mod order;
mod paging;
