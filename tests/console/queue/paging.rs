//! Keyset pages and tenants.

use super::*;

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
