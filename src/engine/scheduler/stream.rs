//! Streaming the last answer to the caller as it is generated.
//!
//! Tokens are bytes, and a token may end in the middle of a character, so
//! bytes are held back until they decode. The final answer is
//! `String::from_utf8_lossy(all bytes).trim()` (see `Scheduler::detokenize`);
//! the pieces concatenate to exactly that: invalid bytes become U+FFFD as
//! `from_utf8_lossy` makes them, leading whitespace is never sent, and
//! whitespace is held back until a later non-whitespace character follows
//! it (whitespace at the end is trimmed from the answer, so it is never sent).
//!
//! The engine thread never blocks on the caller: a full channel keeps the
//! text pending for a later step, a closed one cancels the request.

use tokio::sync::mpsc::{self, error::TrySendError};

/// Bytes in, text out: the decoding and whitespace rules above, without a
/// channel (pure).
#[derive(Debug, Default)]
pub(super) struct Pieces {
    /// Bytes that may still be completed into a character.
    raw: Vec<u8>,
    /// Whitespace seen after the last non-whitespace character.
    held: String,
    /// Whether a non-whitespace character has been seen.
    started: bool,
}

impl Pieces {
    /// Adds a token's bytes; returns the text that is now final.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.raw.extend_from_slice(bytes);
        let mut decoded = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.raw[start..]) {
                Ok(text) => {
                    decoded.push_str(text);
                    start = self.raw.len();
                    break;
                }
                Err(e) => {
                    let valid = &self.raw[start..start + e.valid_up_to()];
                    decoded.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            decoded.push(char::REPLACEMENT_CHARACTER);
                            start += e.valid_up_to() + bad;
                        }
                        // An incomplete character at the end: wait for more.
                        None => {
                            start += e.valid_up_to();
                            break;
                        }
                    }
                }
            }
        }
        self.raw.drain(..start);
        self.take_chars(&decoded)
    }

    /// The end of the answer: an incomplete character left is one U+FFFD
    /// (as `from_utf8_lossy` makes it); trailing whitespace is dropped.
    pub fn finish(&mut self) -> String {
        let tail = String::from_utf8_lossy(&self.raw).into_owned();
        self.raw.clear();
        let out = self.take_chars(&tail);
        self.held.clear();
        out
    }

    fn take_chars(&mut self, decoded: &str) -> String {
        let mut out = String::new();
        for c in decoded.chars() {
            if c.is_whitespace() {
                if self.started {
                    self.held.push(c);
                }
            } else {
                self.started = true;
                out.push_str(&self.held);
                self.held.clear();
                out.push(c);
            }
        }
        out
    }
}

/// The caller's end of a streamed answer.
pub(super) struct AnswerStream {
    tx: mpsc::Sender<String>,
    pub(super) pieces: Pieces,
    /// Text the channel had no room for yet.
    unsent: String,
}

/// The caller went away: the request is cancelled.
#[derive(Debug, PartialEq)]
pub(super) struct Gone;

impl AnswerStream {
    pub fn new(tx: mpsc::Sender<String>) -> AnswerStream {
        AnswerStream {
            tx,
            pieces: Pieces::default(),
            unsent: String::new(),
        }
    }

    /// Queues text and sends what the channel takes.
    pub fn offer(&mut self, text: String) -> Result<(), Gone> {
        self.unsent.push_str(&text);
        self.flush()
    }

    /// Sends the pending text as one piece if the channel has room.
    pub fn flush(&mut self) -> Result<(), Gone> {
        if self.unsent.is_empty() {
            return if self.tx.is_closed() {
                Err(Gone)
            } else {
                Ok(())
            };
        }
        match self.tx.try_send(std::mem::take(&mut self.unsent)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(text)) => {
                self.unsent = text;
                Ok(())
            }
            Err(TrySendError::Closed(_)) => Err(Gone),
        }
    }

    /// Whether everything generated has been handed to the channel.
    pub fn is_flushed(&self) -> bool {
        self.unsent.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_all(chunks: &[&[u8]]) -> String {
        let mut p = Pieces::default();
        let mut out: String = chunks.iter().map(|c| p.push(c)).collect();
        out.push_str(&p.finish());
        out
    }

    fn answer(chunks: &[&[u8]]) -> String {
        String::from_utf8_lossy(&chunks.concat()).trim().to_string()
    }

    #[test]
    fn a_character_split_across_tokens_is_sent_once_complete() {
        let e = "é".as_bytes();
        let mut p = Pieces::default();
        assert_eq!(p.push(b"caf"), "caf");
        assert_eq!(p.push(&e[..1]), "", "half a character is held back");
        assert_eq!(p.push(&e[1..]), "é");
        assert_eq!(p.finish(), "");
    }

    #[test]
    fn leading_and_trailing_whitespace_is_never_sent() {
        let mut p = Pieces::default();
        assert_eq!(p.push(b" \n "), "");
        assert_eq!(p.push(b" Yes"), "Yes");
        assert_eq!(p.push(b", it "), ", it", "trailing whitespace waits");
        assert_eq!(p.push(b" is."), "  is.");
        assert_eq!(p.push(b"\n\n"), "");
        assert_eq!(p.finish(), "", "the answer is trimmed at its end");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_as_in_the_answer() {
        let chunks: &[&[u8]] = &[b"a\xff", b"b\xe2\x82", b"x", b"\xf0\x9f"];
        assert_eq!(stream_all(chunks), answer(chunks));
        assert_eq!(stream_all(chunks), "a\u{FFFD}b\u{FFFD}x\u{FFFD}");
    }

    #[test]
    fn pieces_concatenate_to_the_trimmed_lossy_answer_for_any_bytes() {
        let alphabet: &[&[u8]] = &[
            b" ",
            b"\n",
            b"a",
            b"\xe2",
            b"\x82",
            b"\xac",
            b"\xf0",
            b"\x9f",
            b"\x98",
            b"\x80",
            b"\xff",
            b"\xc3",
            b"\xa9",
            "\u{3000}".as_bytes(),
            b"\t",
            b"z.",
        ];
        let mut state = 0x9e3779b97f4a7c15u64;
        for case in 0..3000 {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            let n = case % 12;
            for _ in 0..n {
                let mut chunk = Vec::new();
                for _ in 0..1 + (state >> 61) as usize % 3 {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    chunk.extend_from_slice(alphabet[(state >> 33) as usize % alphabet.len()]);
                }
                chunks.push(chunk);
            }
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            assert_eq!(stream_all(&refs), answer(&refs), "case {case}: {chunks:?}");
        }
    }

    #[test]
    fn a_full_channel_keeps_text_pending_and_nothing_is_lost() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut s = AnswerStream::new(tx);
        s.offer("a".into()).unwrap();
        s.offer("b".into()).unwrap();
        s.offer("c".into()).unwrap();
        assert!(!s.is_flushed());
        assert_eq!(rx.try_recv().unwrap(), "a");
        s.flush().unwrap();
        assert!(s.is_flushed());
        assert_eq!(rx.try_recv().unwrap(), "bc");
        s.flush().unwrap();
        assert!(rx.try_recv().is_err(), "nothing pending, nothing sent");
    }

    #[test]
    fn a_dropped_receiver_is_noticed_with_or_without_text() {
        let (tx, rx) = mpsc::channel(4);
        let mut s = AnswerStream::new(tx);
        assert!(!s.is_closed());
        drop(rx);
        assert!(s.is_closed());
        assert_eq!(s.flush(), Err(Gone));
        assert_eq!(s.offer("x".into()), Err(Gone));
    }
}
