//! A SentencePiece-style vocabulary that holds every word the project's
//! prompts and answers use, so llama.cpp tokenizes them into whole words.

use std::collections::BTreeSet;

/// Words beyond the prompts: the answers DFA-GPT gives (artifact
/// descriptions by region, classification explanations, conversation).
pub const ANSWER_CORPUS: &str = "\
Yes. No. The face is real. The face has been forged. This face is authentic.
Face swapping is used. This technique involves digitally replacing one person's face with another's.
Face reenactment is used. Face editing is used. Entire face synthesis is used.
1. **Forehead**: The skin texture on the forehead appears unnaturally smooth and blurred.
2. **Eye**: The eyes are misaligned, the reflections differ and the eyebrows look inconsistent.
3. **Cheek and Jawline**: A visible blending boundary runs along the jawline with colour mismatch.
4. **Mouth and Lips**: The teeth are blurred and the lips show irregular edges.
5. **Nose**: The nose shape is distorted with lighting that does not match.
6. **Hair and Hairline**: The hairline is irregular and the hair strands merge into the background.
7. **Ears**: The ears are asymmetric. 8. **Neck**: The skin tone of the neck differs.
There are no obvious artifacts. The lighting, shadows and texture are consistent and natural.
Why? What do you see? Where are the artifacts? Is the hairline natural? How confident are you?
I am not sure. Look at the left and right side of the face, the background and the edges.
0 1 2 3 4 5 6 7 8 9 10 a an the of in on at to is are was it this that and or but with without
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    Unused = 5,
    Byte = 6,
}

pub struct Vocabulary {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<TokenType>,
}

pub const UNK: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;

/// Builds the vocabulary from `texts`, padded with unused tokens up to
/// `pad_to` entries (real LLaMA vocabularies have 32 000; the output layer's
/// cost grows with it).
pub fn build_vocabulary(texts: &[&str], pad_to: usize) -> Vocabulary {
    let mut pieces = BTreeSet::new();
    for text in texts {
        for word in text.split_whitespace() {
            add_word(&mut pieces, word);
        }
    }
    let mut v = Vocabulary {
        tokens: vec!["<unk>".into(), "<s>".into(), "</s>".into()],
        scores: vec![0.0; 3],
        types: vec![TokenType::Unknown, TokenType::Control, TokenType::Control],
    };
    for b in 0..=255u8 {
        v.tokens.push(format!("<0x{b:02X}>"));
        v.scores.push(0.0);
        v.types.push(TokenType::Byte);
    }
    for piece in pieces {
        // llama.cpp's SPM merges the highest-scoring pair first: longer
        // pieces win, so words assemble whole.
        v.scores.push(piece.chars().count() as f32);
        v.tokens.push(piece);
        v.types.push(TokenType::Normal);
    }
    let mut i = 0;
    while v.tokens.len() < pad_to {
        v.tokens.push(format!("<unused{i}>"));
        v.scores.push(-1e9);
        v.types.push(TokenType::Unused);
        i += 1;
    }
    v
}

/// Adds a word's pieces and every prefix of each, with and without the
/// leading `▁` (a word after a newline has none).
fn add_word(pieces: &mut BTreeSet<String>, word: &str) {
    let mut parts: Vec<String> = Vec::new();
    let mut run = String::new();
    for c in word.chars() {
        if c.is_alphanumeric() {
            run.push(c);
        } else {
            if !run.is_empty() {
                parts.push(std::mem::take(&mut run));
            }
            parts.push(c.to_string());
        }
    }
    if !run.is_empty() {
        parts.push(run);
    }
    pieces.insert("▁".to_string());
    for (i, part) in parts.iter().enumerate() {
        add_prefixes(pieces, part);
        if i == 0 {
            add_prefixes(pieces, &format!("▁{part}"));
        }
    }
}

fn add_prefixes(pieces: &mut BTreeSet<String>, s: &str) {
    let mut prefix = String::new();
    for c in s.chars() {
        prefix.push(c);
        pieces.insert(prefix.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_every_prefix_of_every_word() {
        let v = build_vocabulary(&["Has this face been forged?"], 0);
        for t in ["▁H", "▁Ha", "▁Has", "Has", "▁forged", "?", "▁"] {
            assert!(v.tokens.iter().any(|x| x == t), "missing {t}");
        }
        assert_eq!(v.tokens[BOS as usize], "<s>");
        assert_eq!(v.tokens[3], "<0x00>");
    }

    #[test]
    fn pads_with_unused_tokens() {
        let v = build_vocabulary(&["a"], 400);
        assert_eq!(v.tokens.len(), 400);
        assert_eq!(v.types[399], TokenType::Unused);
        assert_eq!(v.tokens.len(), v.scores.len());
    }

    #[test]
    fn is_deterministic() {
        let a = build_vocabulary(&["x y z", ANSWER_CORPUS], 0);
        let b = build_vocabulary(&["x y z", ANSWER_CORPUS], 0);
        assert_eq!(a.tokens, b.tokens);
    }
}
