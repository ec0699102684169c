//! Follow-ups on the verdict page: the answer streams in and stays; a
//! refused one says why.

use dfa::domain::access::Role;
use serde_json::json;

use super::{page, seeded};
use crate::browser::Browser;
use crate::harness::Harness;

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_streams_into_the_conversation_and_stays_after_a_reload() {
    // A long answer, so that it takes the tiny model long enough to arrive
    // in several pieces (16 tokens can come in one read).
    let mut engine = crate::common::engine_config(None);
    engine.max_answer_tokens = 256;
    let h = Harness::start_on("console_verdict_ask", |_| {}, engine).await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let seed = seeded(&h, 5).await;
    let b = Browser::start("verdict_ask", &h).await;
    b.sign_in(&token).await;
    b.goto(&page(seed.request_id)).await;

    // Records, per observer callback (one per chunk the page read: it
    // handles a chunk's events in one task), the answer's text length while
    // it is still streaming. A server that buffered the answer would give
    // one callback at most.
    b.js(
        "window.streamedLengths = [];
         new MutationObserver(() => {
             const a = document.querySelector('.turn.streaming[data-state=streaming] .text');
             if (a && a.textContent.length > 0) window.streamedLengths.push(a.textContent.length);
         }).observe(document.getElementById('conversation'), {childList: true, subtree: true, characterData: true});",
        vec![],
    )
    .await;
    let question = "Which region looks edited?";
    b.find("#question").await.send_keys(question).await.unwrap();
    b.find("#ask button[type=submit]")
        .await
        .click()
        .await
        .unwrap();

    let answer = b.find("#conversation .turn[data-state=done] .text").await;
    let shown = answer
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(!shown.trim().is_empty(), "an answer appeared");
    let lengths: Vec<u64> =
        serde_json::from_value(b.js("return window.streamedLengths;", vec![]).await).unwrap();
    let mut growing = lengths.clone();
    growing.dedup();
    assert!(
        growing.len() >= 2 && growing.windows(2).all(|w| w[0] < w[1]),
        "the answer grew on the page in several steps before it was done: {lengths:?}"
    );
    assert!(!b.has(".turn.streaming").await);

    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT role, author, content FROM conversation_messages WHERE request_id = $1 ORDER BY turn",
    )
    .bind(seed.request_id)
    .fetch_all(&h.env.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                "user".to_string(),
                Some("rita".to_string()),
                question.to_string()
            ),
            ("assistant".to_string(), None, shown.clone()),
        ]
    );

    b.client.refresh().await.unwrap();
    let turns = b
        .js(
            "return [...document.querySelectorAll('#conversation .turn:not(.screening)')]
                .map(t => [t.querySelector('.author').textContent, t.querySelector('.text').textContent]);",
            vec![],
        )
        .await;
    assert_eq!(
        turns,
        json!([["rita", question], ["DFA-GPT", shown]]),
        "still there"
    );
    b.close().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_follow_up_says_why_and_leaves_the_question_to_ask_again() {
    let h = Harness::start_with("console_verdict_ask_limit", |s| {
        s.serve.questions_per_minute = 1;
        s.serve.questions_burst = 1;
    })
    .await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let seed = seeded(&h, 10).await;
    let b = Browser::start("verdict_ask_limit", &h).await;
    b.sign_in(&token).await;
    b.goto(&page(seed.request_id)).await;

    let ask = |q: &'static str| {
        let b = &b;
        async move {
            b.find("#question").await.send_keys(q).await.unwrap();
            b.find("#ask-submit").await.click().await.unwrap();
        }
    };
    ask("Is the hairline natural?").await;
    b.find("#conversation .turn[data-state=done]").await;
    ask("And the ears?").await;
    let status = b.wait_text("#ask-status", |t| t.contains("retry in")).await;
    assert!(
        status.contains("Too many questions; retry in"),
        "{status:?}"
    );
    let kept = b.find("#question").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("And the ears?"), "left to ask again");
    let asked = b
        .js(
            "return [...document.querySelectorAll('#conversation .turn[data-role=user]:not(.screening) .text')]
                .map(t => t.textContent);",
            vec![],
        )
        .await;
    assert_eq!(
        asked,
        json!(["Is the hairline natural?"]),
        "the refused one is not shown"
    );
    assert!(b.find("#ask-submit").await.is_enabled().await.unwrap());
    b.close().await;
    h.stop().await;
}
