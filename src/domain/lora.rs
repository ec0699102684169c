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

/// The modules a LoRA tensor can adapt, by (llama.cpp name, PEFT name for
/// LLaMA): the attention projections first, in `Projection` order. The one
/// table of both spellings; adapter files and settings read it.
pub const LORA_MODULES: [(&str, &str); 7] = [
    ("attn_q", "q_proj"),
    ("attn_k", "k_proj"),
    ("attn_v", "v_proj"),
    ("attn_output", "o_proj"),
    ("ffn_gate", "gate_proj"),
    ("ffn_up", "up_proj"),
    ("ffn_down", "down_proj"),
];

impl Projection {
    pub const ALL: [Projection; 4] = [Projection::Q, Projection::K, Projection::V, Projection::O];

    /// The llama.cpp tensor name part (`attn_q`).
    pub fn gguf_name(self) -> &'static str {
        LORA_MODULES[self as usize].0
    }

    /// The Hugging Face / PEFT module name (`q_proj`).
    pub fn peft_name(self) -> &'static str {
        LORA_MODULES[self as usize].1
    }

    /// Accepts llama.cpp (`attn_q`), Hugging Face (`q_proj`) and short (`q`) names.
    pub fn parse(name: &str) -> Option<Projection> {
        Projection::ALL.into_iter().find(|p| {
            name == p.gguf_name()
                || name == p.peft_name()
                || Some(name) == p.peft_name().strip_suffix("_proj")
        })
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
    /// DFA-GPT's recipe: train the vision projector (mm.0/mm.2) with the
    /// LoRA, the vision tower and the LLM frozen. Off: the LoRA alone.
    #[serde(default)]
    pub train_projector: bool,
    /// How the frozen base LLM's weights are held while training.
    #[serde(default)]
    pub weights_dtype: WeightsDtype,
}

/// `retrain.weights_dtype`: the frozen base weights in F32 (exact: the
/// trainer agrees with llama.cpp to 1e-4) or BF16 (half the memory, so a 7B
/// base fits one 80 GB GPU; the products are rounded to BF16's 8-bit
/// mantissa, see docs/BENCHMARKS.md). The LoRA and its optimiser stay F32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightsDtype {
    #[default]
    F32,
    Bf16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_parse_in_every_spelling() {
        for (p, names) in [
            (Projection::Q, ["attn_q", "q_proj", "q"]),
            (Projection::K, ["attn_k", "k_proj", "k"]),
            (Projection::V, ["attn_v", "v_proj", "v"]),
            (Projection::O, ["attn_output", "o_proj", "o"]),
        ] {
            for n in names {
                assert_eq!(Projection::parse(n), Some(p), "{n}");
            }
        }
        assert_eq!(Projection::parse("ffn_up"), None);
        assert_eq!(Projection::parse("gate"), None);
    }

    #[test]
    fn base_weights_are_f32_unless_bf16_is_asked_for() {
        let base = r#"{"targets":["q_proj"],"rank":8,"alpha":16.0,"dropout":0.0,
            "learning_rate":0.001,"weight_decay":0.0,"epochs":1,"batch_size":2,"seed":1"#;
        let plain: TrainConfig = serde_json::from_str(&format!("{base}}}")).unwrap();
        assert_eq!(plain.weights_dtype, WeightsDtype::F32);
        let bf16: TrainConfig =
            serde_json::from_str(&format!(r#"{base},"weights_dtype":"bf16"}}"#)).unwrap();
        assert_eq!(bf16.weights_dtype, WeightsDtype::Bf16);
        let wrong =
            serde_json::from_str::<TrainConfig>(&format!(r#"{base},"weights_dtype":"f16"}}"#));
        assert!(wrong.is_err());
    }

    #[test]
    fn projector_training_is_off_unless_asked_for() {
        let base = r#"{"targets":["q_proj"],"rank":8,"alpha":16.0,"dropout":0.0,
            "learning_rate":0.001,"weight_decay":0.0,"epochs":1,"batch_size":2,"seed":1"#;
        let off: TrainConfig = serde_json::from_str(&format!("{base}}}")).unwrap();
        assert!(
            !off.train_projector,
            "older records and settings lack the key"
        );
        let on: TrainConfig =
            serde_json::from_str(&format!(r#"{base},"train_projector":true}}"#)).unwrap();
        assert!(on.train_projector);
    }
}
