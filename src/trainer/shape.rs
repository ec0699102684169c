//! The base model's shape, as read from its GGUF: what the forward pass and
//! the LoRA pairs are sized from.

use crate::domain::lora::Projection;

/// Hyper-parameters of the base, from the GGUF's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseConfig {
    pub architecture: String,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub eps: f32,
    pub rope_base: f32,
}

impl BaseConfig {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Output width of a projection, for sizing its LoRA B.
    pub fn out_dim(&self, p: Projection) -> usize {
        match p {
            Projection::K | Projection::V => self.head_dim() * self.n_head_kv,
            Projection::Q | Projection::O => self.n_embd,
        }
    }
}
