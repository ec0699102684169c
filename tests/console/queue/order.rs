//! The queue's order over its four classes, its filters, and `next`.

use super::*;

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
