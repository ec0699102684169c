//! Follow-up questions over HTTP: answered by the tiny model with the
//! verdict's conversation, persisted with the asker and the adapter, seen
//! by the next question; streamed as server-sent events; nothing stored
//! when the client leaves mid-stream; and every refusal (400, 403, 404,
//! 409, 429).

mod answers;
mod faces;
mod refusals;
mod streaming;

use std::time::Duration;

use chrono::Utc;
use dfa::store::TurnRecord;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common;
use crate::harness::{png, Harness, Seed};

const WAIT: Duration = Duration::from_secs(20);

fn questions(id: Uuid) -> String {
    format!("/api/verdicts/{id}/questions")
}

/// A fake verdict of a stored image.
async fn seed(h: &Harness, tenant: Option<&str>) -> Uuid {
    let sha = h.put_image(&png(3)).await;
    let mut s = Seed::new(&sha, Utc::now());
    s.tenant = tenant.map(str::to_string);
    h.seed(&s).await;
    s.request_id
}

/// A verdict whose image the store no longer holds.
async fn seed_without_image(h: &Harness) -> Uuid {
    let s = Seed::new(&"cd".repeat(32), Utc::now());
    h.seed(&s).await;
    s.request_id
}

/// Stores `verdict` (its faces included) as the worker stores it.
async fn store_verdict(h: &Harness, sha: &str, verdict: &dfa::domain::Verdict) {
    let stored = dfa::store::NewVerdict {
        verdict: verdict.clone(),
        tenant: None,
        metadata: json!({}),
        image_bytes: 1,
        image_source: "inline".into(),
        image_sha256: sha.to_string(),
        request_sha256: "e".repeat(64),
        source: dfa::store::Source {
            topic: "t".into(),
            partition: 0,
            offset: 0,
        },
        result: "{}".into(),
    };
    h.app
        .store
        .insert_verdicts(&[stored])
        .await
        .expect("stored");
}

/// A stored turn: (turn, role, author, content, adapter).
type Row<'a> = (i32, &'a str, Option<&'a str>, &'a str, Option<&'a str>);

fn rows(turns: &[TurnRecord]) -> Vec<Row<'_>> {
    turns
        .iter()
        .map(|t| {
            let (author, adapter) = (t.author.as_deref(), t.adapter_id.as_deref());
            (t.turn, t.role.as_str(), author, t.content.as_str(), adapter)
        })
        .collect()
}

async fn conversation(h: &Harness, id: Uuid) -> Vec<TurnRecord> {
    h.app.store.conversation(id).await.expect("conversation")
}

/// The tiny engine with the first test adapter, answering up to `tokens`.
fn engine(tokens: u32) -> dfa::engine::EngineConfig {
    let mut config = common::engine_config(Some(common::adapter(0, 1.0)));
    config.max_answer_tokens = tokens;
    config
}

/// POSTs a question asking for server-sent events.
async fn ask_streaming(h: &Harness, id: Uuid, token: &str, question: &str) -> reqwest::Response {
    ask_streaming_body(h, id, token, &json!({ "question": question })).await
}

/// POSTs a question body asking for server-sent events.
async fn ask_streaming_body(h: &Harness, id: Uuid, token: &str, body: &Value) -> reqwest::Response {
    h.http
        .post(h.url(&questions(id)))
        .bearer_auth(token)
        .header(ACCEPT, "text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

/// `(event, data)` of each complete event in an SSE body.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            Some((name?, serde_json::from_str(&data).expect("JSON data")))
        })
        .collect()
}
