//! Verdicts with faces and without one in the queue: a `no_face` verdict
//! (no label, no p_fake) is listed among the verdicts not flagged, with
//! "no face" where the p_fake bar would be, and `next` walks to it.

use dfa::domain::access::Role;

use super::{correct, get_page, next_of};
use crate::common;
use crate::harness::{no_face_verdict, png, two_faces_verdict, Harness};
use crate::http::sign_in;

#[tokio::test(flavor = "multi_thread")]
async fn a_verdict_without_a_face_is_listed_unflagged_and_says_no_face() {
    let h = Harness::start("console_queue_faces").await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let s = sign_in(&h, &token).await;
    let picture = common::encode(&common::two_faces(), image::ImageFormat::Png);
    let sha = h.put_image(&picture).await;
    let two = two_faces_verdict();
    let two_id = two.request_id;
    h.store_verdict(two, &sha, picture.len()).await;
    let blank = png(4);
    let blank_sha = h.put_image(&blank).await;
    let none = no_face_verdict();
    let none_id = none.request_id;
    h.store_verdict(none, &blank_sha, blank.len()).await;

    let p = get_page(&h, &s, "/console/queue").await;
    assert_eq!(
        p.ids,
        [two_id.to_string(), none_id.to_string()],
        "{}",
        p.html
    );
    assert!(
        p.html.contains(&format!(
            "<tr class=\"verdict flagged_todo\" data-id=\"{two_id}\">"
        )),
        "the fake face flags its image"
    );
    assert!(p.html.contains(&format!(
        "<tr class=\"verdict todo\" data-id=\"{none_id}\">"
    )));
    let row = p
        .html
        .split(&format!("data-id=\"{none_id}\""))
        .nth(1)
        .unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains(">no face</span>"), "{row}");
    assert!(!row.contains("class=\"pbar\""), "no p_fake bar: {row}");
    assert!(p.html.contains("Not flagged · to review"));
    // The flagged count leaves it out.
    assert!(
        p.html.contains("id=\"todo-count\" class=\"count-todo\">1<"),
        "{}",
        p.html
    );

    // Next after the two-face verdict is the face-less one; once corrected
    // it moves among the corrected ones, never out of the queue.
    let next = next_of(&h, &s, &format!("after={two_id}")).await;
    assert!(
        next.starts_with(&format!("/console/verdicts/{none_id}?")),
        "{next}"
    );
    correct(&h, none_id, "fake").await;
    let p = get_page(&h, &s, "/console/queue").await;
    assert!(p.html.contains(&format!(
        "<tr class=\"verdict done\" data-id=\"{none_id}\">"
    )));
    // Corrected meanwhile, it comes round again among the corrected.
    let next = next_of(&h, &s, &format!("after={none_id}&class=todo")).await;
    assert_eq!(next, format!("/console/verdicts/{none_id}?class=done"));
    h.stop().await;
}
