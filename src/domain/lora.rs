//! What a LoRA adapter is made of: the attention projections it adapts and
//! the hyper-parameters it was trained with (recorded in the registry).

use serde::{Deserialize, Serialize};

/// An attention projection a LoRA can adapt. Read by `Projection::parse`, so
/// settings accept both naming schemes; written in llama.cpp's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub enum Projection {
    #[serde(rename = "attn_q")]
    Q,
    #[serde(rename = "attn_k")]
    K,
    #[serde(rename = "attn_v")]
    V,
    #[serde(rename = "attn_output")]
    O,
}

impl Projection {
    /// The llama.cpp tensor name part.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Projection::Q => "attn_q",
            Projection::K => "attn_k",
            Projection::V => "attn_v",
            Projection::O => "attn_output",
        }
    }

    /// Accepts both llama.cpp (`attn_q`) and Hugging Face (`q_proj`) names.
    pub fn parse(name: &str) -> Option<Projection> {
        match name {
            "attn_q" | "q_proj" | "q" => Some(Projection::Q),
            "attn_k" | "k_proj" | "k" => Some(Projection::K),
            "attn_v" | "v_proj" | "v" => Some(Projection::V),
            "attn_output" | "o_proj" | "o" => Some(Projection::O),
            _ => None,
        }
    }
}

impl TryFrom<String> for Projection {
    type Error = String;

    fn try_from(name: String) -> Result<Projection, String> {
        Projection::parse(&name).ok_or_else(|| {
            format!("unknown projection `{name}` (attn_q, attn_k, attn_v, attn_output)")
        })
    }
}

/// Hyper-parameters, recorded with every adapter in the registry (and read
/// from the `[retrain]` settings, by the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub targets: Vec<Projection>,
    pub rank: usize,
    pub alpha: f32,
    pub dropout: f32,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
}
