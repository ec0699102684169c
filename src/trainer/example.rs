//! What the trainer learns from: one supervised turn, with its image either
//! as llama.cpp's post-projector embeddings (the LoRA-only recipe, projector
//! frozen) or as the vision tower's pre-projector features (DFA-GPT's recipe,
//! where the projector is trained too and must run inside the graph).

use std::sync::Arc;

use candle_core::Tensor;

use super::base::BaseModel;
use super::projector::ProjectorSet;
use super::TrainError;

/// Image embeddings as llama.cpp's mtmd encoder produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEmbedding {
    pub n_tokens: usize,
    pub n_embd: usize,
    pub data: Vec<f32>,
}

/// The frozen vision tower's output for one image, before the projector:
/// `n_tokens` rows of the tower's width (`vision::VisionTower::features`).
#[derive(Debug, Clone, PartialEq)]
pub struct TowerFeatures {
    pub n_tokens: usize,
    pub n_embd: usize,
    pub data: Vec<f32>,
}

impl TowerFeatures {
    /// (n_tokens, n_embd) on `device`.
    pub fn tensor(&self, device: &candle_core::Device) -> Result<Tensor, TrainError> {
        Ok(Tensor::from_slice(
            &self.data,
            (self.n_tokens, self.n_embd),
            device,
        )?)
    }
}

/// An example's image, in the form its training recipe needs.
#[derive(Debug, Clone)]
pub enum ExampleImage {
    /// Post-projector embeddings from llama.cpp: the projector is frozen.
    Embedded(Arc<ImageEmbedding>),
    /// Pre-projector tower features: a `ProjectorSet` turns them into
    /// embeddings in the graph, so its weights get gradients.
    Features(Arc<TowerFeatures>),
}

impl ExampleImage {
    pub fn n_tokens(&self) -> usize {
        match self {
            ExampleImage::Embedded(e) => e.n_tokens,
            ExampleImage::Features(f) => f.n_tokens,
        }
    }
}

impl From<Arc<ImageEmbedding>> for ExampleImage {
    fn from(e: Arc<ImageEmbedding>) -> Self {
        ExampleImage::Embedded(e)
    }
}

impl From<Arc<TowerFeatures>> for ExampleImage {
    fn from(f: Arc<TowerFeatures>) -> Self {
        ExampleImage::Features(f)
    }
}

/// One supervised turn: text before the image (BOS included), the image,
/// then the text after it ending in the answer the loss is taken on.
#[derive(Debug, Clone)]
pub struct Example {
    pub prefix: Vec<u32>,
    pub image: Option<ExampleImage>,
    pub suffix: Vec<u32>,
    /// Index into `suffix` where the answer starts.
    pub answer_start: usize,
}

impl Example {
    pub fn image_tokens(&self) -> usize {
        self.image.as_ref().map_or(0, ExampleImage::n_tokens)
    }

    pub fn len(&self) -> usize {
        self.prefix.len() + self.image_tokens() + self.suffix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn answer_tokens(&self) -> &[u32] {
        &self.suffix[self.answer_start..]
    }

    /// First position whose logits predict an answer token.
    pub fn first_target_row(&self) -> usize {
        self.prefix.len() + self.image_tokens() + self.answer_start - 1
    }

    /// Input embeddings, (T, E), for an example whose image (if any) is
    /// llama.cpp's embeddings.
    pub fn embeddings(&self, base: &BaseModel) -> Result<Tensor, TrainError> {
        self.embeddings_with(base, None)
    }

    /// Input embeddings, (T, E); tower features go through `projector`.
    pub fn embeddings_with(
        &self,
        base: &BaseModel,
        projector: Option<&ProjectorSet>,
    ) -> Result<Tensor, TrainError> {
        let mut parts = vec![base.embed_tokens(&self.prefix)?];
        match &self.image {
            Some(ExampleImage::Embedded(img)) => parts.push(Tensor::from_slice(
                &img.data,
                (img.n_tokens, img.n_embd),
                &base.device,
            )?),
            Some(ExampleImage::Features(f)) => {
                let projector = projector.ok_or_else(|| {
                    TrainError::Projector(
                        "the example carries tower features; projecting them needs a projector"
                            .into(),
                    )
                })?;
                parts.push(projector.forward(&f.tensor(&base.device)?)?);
            }
            None => {}
        }
        if !self.suffix.is_empty() {
            parts.push(base.embed_tokens(&self.suffix)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}
