//! A verdict's conversation: the questions asked with the request, then
//! reviewers' follow-ups, one row per turn (`conversation_messages`). Each
//! turn is about one face of the verdict: `face_index` NULL is the verdict's
//! own subject (its most suspicious face, or the whole image when it has no
//! face), as the request's own questions are; another face's turns carry its
//! index. Turns are numbered per verdict, whatever face they are about.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::prompts::Turn;
use crate::domain::{ForgeryType, Label};

/// One stored turn.
#[derive(Debug, Clone, Serialize)]
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
    /// The face the turn is about, when it is not the verdict's own subject
    /// (`face`: which face that is).
    pub face_index: Option<u32>,
}

impl TurnRecord {
    /// The face the turn is about, given the verdict's `primary_face`; None:
    /// the whole image (a verdict without faces).
    pub fn face(&self, primary_face: Option<u32>) -> Option<u32> {
        self.face_index.or(primary_face)
    }
}

#[derive(sqlx::FromRow)]
struct TurnRow {
    turn: i32,
    role: String,
    author: Option<String>,
    content: String,
    adapter_id: Option<String>,
    created_at: DateTime<Utc>,
    face_index: Option<i16>,
}

impl From<TurnRow> for TurnRecord {
    fn from(r: TurnRow) -> TurnRecord {
        TurnRecord {
            turn: r.turn,
            role: r.role,
            author: r.author,
            content: r.content,
            adapter_id: r.adapter_id,
            created_at: r.created_at,
            // The column's check keeps it non-negative.
            face_index: r.face_index.and_then(|i| u32::try_from(i).ok()),
        }
    }
}

/// What a follow-up needs of its verdict: who may see it, what the model
/// said when it screened the image (nothing for a `no_face` verdict), which
/// face that was, and where the image is.
#[derive(Debug, Clone)]
pub struct DialogueBasis {
    pub tenant: Option<String>,
    /// None: status `no_face`, nothing was screened.
    pub label: Option<Label>,
    pub forgery_type: Option<ForgeryType>,
    pub explanation: Option<String>,
    pub image_sha256: String,
    /// The face whose verdict the image carries; None: no faces (the whole
    /// image was screened, or nothing was).
    pub primary_face: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct BasisRow {
    tenant: Option<String>,
    label: Option<Label>,
    forgery_type: Option<ForgeryType>,
    explanation: Option<String>,
    image_sha256: String,
    primary_face: Option<i16>,
}

impl From<BasisRow> for DialogueBasis {
    fn from(r: BasisRow) -> DialogueBasis {
        DialogueBasis {
            tenant: r.tenant,
            label: r.label,
            forgery_type: r.forgery_type,
            explanation: r.explanation,
            image_sha256: r.image_sha256,
            // The column's check keeps it non-negative.
            primary_face: r.primary_face.and_then(|i| u32::try_from(i).ok()),
        }
    }
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
        let row: Option<BasisRow> = sqlx::query_as(
            "SELECT tenant, label, forgery_type, explanation, image_sha256, primary_face \
             FROM verdicts WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(DialogueBasis::from))
    }

    /// Every turn of a verdict's conversation, in order, whatever face it
    /// is about.
    pub async fn conversation(&self, request_id: Uuid) -> Result<Vec<TurnRecord>, StoreError> {
        let rows: Vec<TurnRow> = sqlx::query_as(
            "SELECT turn, role, author, content, adapter_id, created_at, face_index \
             FROM conversation_messages WHERE request_id = $1 ORDER BY turn",
        )
        .bind(request_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(TurnRecord::from).collect())
    }

    /// Appends a question about the verdict's own subject and its answer
    /// after the last turn (`append_follow_up_about` with no face).
    pub async fn append_follow_up(
        &self,
        request_id: Uuid,
        f: &FollowUp<'_>,
    ) -> Result<Option<i32>, StoreError> {
        self.append_follow_up_about(request_id, None, f).await
    }

    /// Appends a question and its answer after the last turn, both about
    /// `face` (None: the verdict's own subject). Concurrent follow-ups on one
    /// verdict are serialised by a lock on its row, so turns never collide.
    /// Returns the question's turn number, or `None` (nothing stored) when
    /// `expected_turn` is not the next turn: another follow-up was stored
    /// meanwhile. The check is per verdict, not per face: an answer about
    /// one face may be stored after a turn about another that it never saw,
    /// but refusing it too keeps one rule, and such races are rare.
    pub async fn append_follow_up_about(
        &self,
        request_id: Uuid,
        face: Option<u32>,
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
            "INSERT INTO conversation_messages \
             (request_id, turn, role, author, content, adapter_id, face_index) \
             VALUES ($1, $2, 'user', $3, $4, NULL, $7), ($1, $2 + 1, 'assistant', NULL, $5, $6, $7)",
        )
        .bind(request_id)
        .bind(next)
        .bind(f.author)
        .bind(f.question.replace('\0', "\u{FFFD}"))
        .bind(f.answer.replace('\0', "\u{FFFD}"))
        .bind(f.adapter_id)
        // SMALLINT by assignment: an index past its range is a data
        // exception (`Rejected`), never a wrapped value.
        .bind(face.map(i64::from))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(next))
    }
}

/// The stored turns about `face` (its `face_index`; None: the verdict's own
/// subject) as (question, answer) pairs, in order; a question without its
/// answer (never stored by `append_follow_up`) is skipped.
pub fn turns_of(records: &[TurnRecord], face: Option<u32>) -> Vec<Turn> {
    let mut turns = Vec::new();
    let mut question: Option<&str> = None;
    for r in records {
        match r.role.as_str() {
            "user" if r.face_index == face => question = Some(&r.content),
            "user" => question = None,
            // An answer goes with the question before it, about the same face.
            _ if r.face_index != face => question = None,
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
            face_index: None,
        }
    }

    fn about(face: u32, r: TurnRecord) -> TurnRecord {
        TurnRecord {
            face_index: Some(face),
            ..r
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
        let turns = turns_of(&records, None);
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[1].question, "q2");
        assert_eq!(turns[1].answer, "a2");
        assert!(turns_of(&[rec(0, "user", "dangling")], None).is_empty());
    }

    #[test]
    fn each_face_reads_only_its_own_turns() {
        let records = [
            rec(0, "user", "q own"),
            rec(1, "assistant", "a own"),
            about(1, rec(2, "user", "q one")),
            about(1, rec(3, "assistant", "a one")),
            about(2, rec(4, "user", "q two")),
            about(2, rec(5, "assistant", "a two")),
        ];
        let questions = |face| -> Vec<String> {
            turns_of(&records, face)
                .into_iter()
                .map(|t| format!("{} / {}", t.question, t.answer))
                .collect()
        };
        assert_eq!(questions(None), ["q own / a own"]);
        assert_eq!(questions(Some(1)), ["q one / a one"]);
        assert_eq!(questions(Some(2)), ["q two / a two"]);
        assert!(questions(Some(3)).is_empty());
        // A question about another face never pairs with a later answer.
        let torn = [
            rec(0, "user", "q own"),
            about(1, rec(1, "assistant", "a one")),
        ];
        assert!(turns_of(&torn, Some(1)).is_empty());
        assert!(turns_of(&torn, None).is_empty());
    }

    #[test]
    fn a_turn_without_a_face_index_is_about_the_primary_face() {
        let own = rec(0, "user", "q");
        assert_eq!(own.face(Some(2)), Some(2));
        assert_eq!(own.face(None), None, "a verdict without faces");
        assert_eq!(about(1, own).face(Some(2)), Some(1));
    }
}
