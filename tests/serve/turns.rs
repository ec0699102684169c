//! Follow-ups on one verdict answered at the same time: the one stored
//! second never saw the first, so it is refused rather than stored as if it
//! had (the route answers 409 and the reviewer asks again).

use chrono::Utc;
use dfa::store::{FollowUp, Store};

use crate::common::services::Env;
use crate::harness::{seed_verdict, Seed};

fn follow_up(question: &str, expected_turn: Option<i32>) -> FollowUp<'_> {
    FollowUp {
        author: "ana",
        question,
        answer: "an answer",
        adapter_id: None,
        expected_turn,
    }
}

#[tokio::test]
async fn a_follow_up_is_stored_only_at_the_turn_its_answer_saw() {
    let env = Env::new("serve_turns").await;
    let store = Store::connect(&env.db_url, 2).await.expect("connect");
    let seed = Seed::new(&"a".repeat(64), Utc::now());
    seed_verdict(&env.pool, &seed).await;
    let id = seed.request_id;

    // Two answers generated on the same empty conversation: the first one
    // stored takes turn 0, the second is refused and stores nothing.
    let first = store
        .append_follow_up(id, &follow_up("first", Some(0)))
        .await;
    assert_eq!(first.expect("stored"), Some(0));
    let second = store
        .append_follow_up(id, &follow_up("second", Some(0)))
        .await;
    assert_eq!(second.expect("no database error"), None);
    let turns = store.conversation(id).await.expect("read");
    let texts: Vec<&str> = turns.iter().map(|t| t.content.as_str()).collect();
    assert_eq!(texts, ["first", "an answer"], "the refused one left no row");

    // Asked again on the conversation as it now is, it is stored after.
    let again = store
        .append_follow_up(id, &follow_up("second", Some(2)))
        .await;
    assert_eq!(again.expect("stored"), Some(2));
    // Without an expectation it goes after whatever is there.
    let any = store.append_follow_up(id, &follow_up("third", None)).await;
    assert_eq!(any.expect("stored"), Some(4));
}
