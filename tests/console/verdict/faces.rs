//! Faces on the verdict page, over plain HTTP: a verdict stored with two
//! faces (as the worker stores it) gets a box over each face, in the
//! image's pixels, a numbered list with the primary face marked, and a face
//! selector in the ask box; a `no_face` verdict says no face was found.

use dfa::domain::access::Role;
use reqwest::header::COOKIE;
use reqwest::StatusCode;

use crate::common;
use crate::harness::{no_face_verdict, png, two_faces_verdict, Harness};
use crate::http::{client, sign_in, HttpSession};

use super::page;

async fn html(h: &Harness, s: &HttpSession, path: &str) -> String {
    let r = client()
        .get(h.url(path))
        .header(COOKIE, s.cookie_header())
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.expect("html")
}

/// The `name="…"` attribute values of every tag starting with `start`.
fn attr(html: &str, start: &str, name: &str) -> Vec<String> {
    html.split(start)
        .skip(1)
        .filter_map(|rest| {
            let tag = rest.split('>').next()?;
            let i = tag.find(&format!(" {name}=\""))?;
            tag[i + name.len() + 3..]
                .split('"')
                .next()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_face_has_a_box_on_the_image_and_a_place_in_the_list() {
    let h = Harness::start("console_faces").await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let s = sign_in(&h, &token).await;
    let picture = common::encode(&common::two_faces(), image::ImageFormat::Png);
    let sha = h.put_image(&picture).await;
    let two = two_faces_verdict();
    let id = two.request_id;
    h.store_verdict(two, &sha, picture.len()).await;

    let page = html(&h, &s, &page(id)).await;
    // The overlay is drawn in the image's own pixels (2000×1200).
    assert_eq!(
        attr(&page, "<svg id=\"face-boxes\"", "viewBox"),
        ["0 0 2000 1200"]
    );
    let start = "<rect class=\"face-box\"";
    let boxes: Vec<(u32, u32, u32, u32)> = attr(&page, start, "x")
        .iter()
        .zip(attr(&page, start, "y"))
        .zip(attr(&page, start, "width"))
        .zip(attr(&page, start, "height"))
        .map(|(((x, y), w), hh)| {
            (
                x.parse().unwrap(),
                y.parse().unwrap(),
                w.parse().unwrap(),
                hh.parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(boxes, common::TWO_FACES_AT, "one box per face, where it is");
    assert_eq!(attr(&page, "<g class=\"face-mark", "data-face"), ["0", "1"]);
    assert_eq!(
        page.matches("<g class=\"face-mark face-fake primary\"")
            .count(),
        1
    );
    // The list: both faces, the primary one (the more suspicious) marked.
    assert_eq!(attr(&page, "<li class=\"face", "data-face"), ["0", "1"]);
    assert!(
        page.contains("<li class=\"face primary\" data-face=\"1\">"),
        "{page}"
    );
    assert!(page.contains("face 1: the blending edge shows."));
    assert!(page.contains("Not analysed: 1 too small"));
    // The ask box names the face, the primary one unless changed.
    assert!(page.contains("<select id=\"ask-face\" name=\"face\">"));
    assert!(page.contains("<option value=\"1\" selected>"));
    assert!(page.contains("<option value=\"0\">"));

    // No face: said instead of a label and scores; still correctable.
    let blank = png(9);
    let blank_sha = h.put_image(&blank).await;
    let none = no_face_verdict();
    let none_id = none.request_id;
    h.store_verdict(none, &blank_sha, blank.len()).await;
    let page = html(&h, &s, &super::page(none_id)).await;
    assert!(page.contains("id=\"no-face\""), "{page}");
    assert!(page.contains("No face was found in this image"));
    assert!(!page.contains("id=\"scores\""), "no scores to draw");
    assert!(!page.contains("id=\"face-boxes\""));
    assert!(!page.contains("name=\"face\""));
    assert!(page.contains("id=\"correction\""));
    h.stop().await;
}

/// In a browser, the boxes lie over the faces as the image is shown
/// (scaled to the column, letterboxed): each box's rectangle on screen is
/// the face's, through the image's own scale and offset.
#[tokio::test(flavor = "multi_thread")]
async fn the_boxes_sit_over_the_faces_as_the_browser_shows_the_image() {
    let h = Harness::start("console_faces_browser").await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let picture = common::encode(&common::two_faces(), image::ImageFormat::Png);
    let sha = h.put_image(&picture).await;
    let two = two_faces_verdict();
    let id = two.request_id;
    h.store_verdict(two, &sha, picture.len()).await;
    let b = crate::browser::Browser::start("verdict_faces", &h).await;
    b.sign_in(&token).await;
    b.goto(&page(id)).await;
    b.wait_js(
        "const i = document.getElementById('image'); return i.complete ? i.naturalWidth : 0;",
        |v| v.as_u64() == Some(2000),
    )
    .await;
    // Where each face box is on screen, relative to the image's content
    // (object-fit: contain centres it in the element), in image pixels.
    let boxes = b
        .js(
            "const img = document.getElementById('image').getBoundingClientRect();
             const s = Math.min(img.width / 2000, img.height / 1200);
             const ox = img.left + (img.width - 2000 * s) / 2, oy = img.top + (img.height - 1200 * s) / 2;
             return [...document.querySelectorAll('#face-boxes rect.face-box')].map(r => {
               const b = r.getBoundingClientRect();
               return [(b.left - ox) / s, (b.top - oy) / s, b.width / s, b.height / s];
             });",
            vec![],
        )
        .await;
    let boxes = boxes.as_array().expect("boxes");
    assert_eq!(boxes.len(), 2, "{boxes:?}");
    for (shown, at) in boxes.iter().zip(common::TWO_FACES_AT) {
        let got: Vec<f64> = shown
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let want = [at.0, at.1, at.2, at.3].map(f64::from);
        for (g, w) in got.iter().zip(want) {
            // A stroke straddles the edge: within a few image pixels.
            assert!((g - w).abs() < 8.0, "shown {got:?}, face at {want:?}");
        }
    }
    b.screenshot("verdict-faces").await;
    b.close().await;
    h.stop().await;
}
