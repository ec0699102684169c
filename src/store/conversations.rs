//! A verdict's conversation: the questions asked with the request, then
//! reviewers' follow-ups, one row per turn (`conversation_messages`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::prompts::Turn;
use crate::domain::{ForgeryType, Label};

/// One stored turn.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TurnRecord {
    pub turn: i32,
    /// `user` or `assistant`.
    pub role: String,
    /// Who asked (a token's name); NULL for the request's own questions and
    /// for answers.
    pub author: Option<String>,
    pub content: String,
    /// The adapter that answered (assistant turns).
    pub adapter_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What a follow-up needs of its verdict: who may see it, what the model
/// said when it screened the image, and where the image is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DialogueBasis {
    pub tenant: Option<String>,
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
    pub explanation: Option<String>,
    pub image_sha256: String,
}

/// A question and its answer, to append as two turns.
#[derive(Debug, Clone)]
pub struct FollowUp<'a> {
    pub author: &'a str,
    pub question: &'a str,
    pub answer: &'a str,
    pub adapter_id: Option<&'a str>,
    /// The turn the question must take: the conversation as the model saw
    /// it when the answer was generated. `None`: after whatever is there.
    pub expected_turn: Option<i32>,
}

impl Store {
    pub async fn dialogue_basis(
        &self,
        request_id: Uuid,
    ) -> Result<Option<DialogueBasis>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT tenant, label, forgery_type, explanation, image_sha256 FROM verdicts WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every turn of a verdict's conversation, in order.
    pub async fn conversation(&self, request_id: Uuid) -> Result<Vec<TurnRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT turn, role, author, content, adapter_id, created_at FROM conversation_messages \
             WHERE request_id = $1 ORDER BY turn",
        )
        .bind(request_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Appends a question and its answer after the last turn. Concurrent
    /// follow-ups on one verdict are serialised by a lock on its row, so
    /// turns never collide. Returns the question's turn number, or `None`
    /// (nothing stored) when `expected_turn` is not the next turn: another
    /// follow-up was stored meanwhile, which this answer never saw.
    pub async fn append_follow_up(
        &self,
        request_id: Uuid,
        f: &FollowUp<'_>,
    ) -> Result<Option<i32>, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT 1 FROM verdicts WHERE request_id = $1 FOR UPDATE")
            .bind(request_id)
            .execute(&mut *tx)
            .await?;
        let next: i32 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(turn) + 1, 0) FROM conversation_messages WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_one(&mut *tx)
        .await?;
        if f.expected_turn.is_some_and(|e| e != next) {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO conversation_messages (request_id, turn, role, author, content, adapter_id) \
             VALUES ($1, $2, 'user', $3, $4, NULL), ($1, $2 + 1, 'assistant', NULL, $5, $6)",
        )
        .bind(request_id)
        .bind(next)
        .bind(f.author)
        .bind(f.question.replace('\0', "\u{FFFD}"))
        .bind(f.answer.replace('\0', "\u{FFFD}"))
        .bind(f.adapter_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(next))
    }
}

/// The stored turns as (question, answer) pairs, in order; a question
/// without its answer (never stored by `append_follow_up`) is skipped.
pub fn turns_of(records: &[TurnRecord]) -> Vec<Turn> {
    let mut turns = Vec::new();
    let mut question: Option<&str> = None;
    for r in records {
        match r.role.as_str() {
            "user" => question = Some(&r.content),
            _ => {
                if let Some(q) = question.take() {
                    turns.push(Turn {
                        question: q.to_string(),
                        answer: r.content.clone(),
                    });
                }
            }
        }
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(turn: i32, role: &str, content: &str) -> TurnRecord {
        TurnRecord {
            turn,
            role: role.into(),
            author: None,
            content: content.into(),
            adapter_id: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn turns_pair_questions_with_their_answers() {
        let records = [
            rec(0, "user", "q1"),
            rec(1, "assistant", "a1"),
            rec(2, "user", "q2"),
            rec(3, "assistant", "a2"),
        ];
        let turns = turns_of(&records);
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[1].question, "q2");
        assert_eq!(turns[1].answer, "a2");
        assert!(turns_of(&[rec(0, "user", "dangling")]).is_empty());
    }
}
