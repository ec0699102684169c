//! The reviewers' queue order: flagged verdicts first (label `fake`, or
//! p_fake near the threshold), within each uncorrected before corrected,
//! then newest first. A verdict's place is its `QueueClass`, then
//! (created_at, request_id) descending; a page starts after a `QueueKey`,
//! handed to browsers as an opaque cursor.
//!
//! A verdict's class only ever rises (labels and p_fake never change, and
//! corrections are added, not removed), so a reviewer paging through the
//! queue while others correct verdicts never misses a row: at worst a row
//! corrected meanwhile comes round again among the corrected ones.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{BadCursor, Keyset};
use crate::domain::Label;

/// Which verdicts the queue flags: every `fake`, and every one whose p_fake
/// lies within `near` of `threshold` (`console.near_threshold`,
/// `analysis.threshold`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flagging {
    pub threshold: f32,
    pub near: f32,
}

impl Flagging {
    /// The p_fake band that flags a `real` verdict, both ends included. The
    /// store compares the REAL column with these very f32 values, so the
    /// page's pills and the database's order agree to the last bit.
    pub fn band(&self) -> (f32, f32) {
        (self.threshold - self.near, self.threshold + self.near)
    }

    /// Within the band around the threshold, whatever the label.
    pub fn near(&self, p_fake: f32) -> bool {
        let (lo, hi) = self.band();
        (lo..=hi).contains(&p_fake)
    }

    pub fn flags(&self, label: Label, p_fake: f32) -> bool {
        label == Label::Fake || self.near(p_fake)
    }
}

/// A verdict's priority in the queue, first to last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueueClass {
    FlaggedTodo,
    FlaggedDone,
    Todo,
    Done,
}

impl QueueClass {
    /// In queue order.
    pub const ALL: [QueueClass; 4] = [
        QueueClass::FlaggedTodo,
        QueueClass::FlaggedDone,
        QueueClass::Todo,
        QueueClass::Done,
    ];

    pub fn of(flagged: bool, corrected: bool) -> QueueClass {
        match (flagged, corrected) {
            (true, false) => QueueClass::FlaggedTodo,
            (true, true) => QueueClass::FlaggedDone,
            (false, false) => QueueClass::Todo,
            (false, true) => QueueClass::Done,
        }
    }

    pub fn flagged(self) -> bool {
        matches!(self, QueueClass::FlaggedTodo | QueueClass::FlaggedDone)
    }

    pub fn corrected(self) -> bool {
        matches!(self, QueueClass::FlaggedDone | QueueClass::Done)
    }

    /// This class and the ones after it, in queue order.
    pub fn and_after(self) -> impl Iterator<Item = QueueClass> {
        QueueClass::ALL.into_iter().filter(move |c| *c >= self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueClass::FlaggedTodo => "flagged_todo",
            QueueClass::FlaggedDone => "flagged_done",
            QueueClass::Todo => "todo",
            QueueClass::Done => "done",
        }
    }

    fn byte(self) -> u8 {
        self as u8
    }

    fn from_byte(b: u8) -> Option<QueueClass> {
        QueueClass::ALL.get(usize::from(b)).copied()
    }
}

impl fmt::Display for QueueClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueClass {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, BadCursor> {
        QueueClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(BadCursor)
    }
}

/// A verdict's place in the queue; a page holds the rows after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueKey {
    pub class: QueueClass,
    pub at: Keyset,
}

const VERSION: u8 = 1;
const LEN: usize = 1 + 1 + Keyset::BYTES;

impl QueueKey {
    /// base64url of a version byte, the class, the microseconds of
    /// created_at and the request id (as `Keyset::encode`, plus the class).
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.push(self.class.byte());
        bytes.extend_from_slice(&self.at.to_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(cursor: &str) -> Result<QueueKey, BadCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| BadCursor)?;
        if bytes.len() != LEN || bytes[0] != VERSION {
            return Err(BadCursor);
        }
        let class = QueueClass::from_byte(bytes[1]).ok_or(BadCursor)?;
        Ok(QueueKey {
            class,
            at: Keyset::from_bytes(&bytes[2..])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    const RULE: Flagging = Flagging {
        threshold: 0.5,
        near: 0.15,
    };

    #[test]
    fn fakes_and_near_misses_are_flagged() {
        assert!(RULE.flags(Label::Fake, 0.99));
        assert!(
            RULE.flags(Label::Fake, 0.01),
            "a fake is flagged whatever its p_fake"
        );
        assert!(RULE.flags(Label::Real, 0.45));
        assert!(
            RULE.flags(Label::Real, RULE.band().0),
            "the band's ends count"
        );
        assert!(RULE.flags(Label::Real, RULE.band().1));
        assert!(!RULE.flags(Label::Real, 0.1));
        assert!(!RULE.flags(Label::Real, 0.3));
        let none = Flagging {
            threshold: 0.5,
            near: 0.0,
        };
        assert!(none.flags(Label::Real, 0.5) && !none.flags(Label::Real, 0.49));
    }

    #[test]
    fn flagged_uncorrected_comes_first_and_corrected_unflagged_last() {
        let order: Vec<_> = [(true, false), (true, true), (false, false), (false, true)]
            .into_iter()
            .map(|(f, c)| QueueClass::of(f, c))
            .collect();
        assert_eq!(order, QueueClass::ALL);
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        for c in QueueClass::ALL {
            assert_eq!(QueueClass::of(c.flagged(), c.corrected()), c);
            assert_eq!(c.as_str().parse(), Ok(c));
        }
        assert_eq!("flagged".parse::<QueueClass>(), Err(BadCursor));
        let rest: Vec<_> = QueueClass::FlaggedDone.and_after().collect();
        assert_eq!(rest, QueueClass::ALL[1..]);
    }

    #[test]
    fn a_cursor_round_trips_and_nothing_else_decodes() {
        for class in QueueClass::ALL {
            let k = QueueKey {
                class,
                at: Keyset {
                    created_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
                    request_id: Uuid::new_v4(),
                },
            };
            let c = k.encode();
            assert!(c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(QueueKey::decode(&c), Ok(k));
        }
        let keyset = Keyset {
            created_at: Utc::now(),
            request_id: Uuid::nil(),
        }
        .encode();
        let mut bad_class = vec![VERSION, 4];
        bad_class.extend_from_slice(&[0; 24]);
        for bad in [
            "",
            "x",
            "' OR '1'='1",
            keyset.as_str(),
            &URL_SAFE_NO_PAD.encode(&bad_class),
            &URL_SAFE_NO_PAD.encode([2u8; LEN]),
        ] {
            assert_eq!(QueueKey::decode(bad), Err(BadCursor), "{bad:?}");
        }
    }
}
