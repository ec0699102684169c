//! LoRA adapters on the attention projections: the trainable A/B pairs in
//! PEFT's (r, in) / (out, r) layout, scaled by alpha / r. Their GGUF form is
//! in `adapter_file`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::adapter_file::{parse_lora_name, read_adapter, LoraTensorName};
use super::shape::BaseConfig;
use super::TrainError;
pub use crate::domain::lora::Projection;

struct Pair {
    a: Var,
    b: Var,
}

impl Pair {
    /// Trainable copies of A (r, in) and B (out, r).
    fn new(a: &Tensor, b: &Tensor) -> Result<Pair, TrainError> {
        Ok(Pair {
            a: Var::from_tensor(a)?,
            b: Var::from_tensor(b)?,
        })
    }
}

/// The trainable adapter: one A/B pair per (layer, projection).
pub struct LoraSet {
    pub rank: usize,
    pub alpha: f32,
    pairs: BTreeMap<(usize, Projection), Pair>,
    dropout: Option<(f32, RefCell<ChaCha8Rng>)>,
}

impl LoraSet {
    /// A fresh adapter: A drawn from a seeded normal (candle's own RNG cannot
    /// be seeded), B zero, so training starts from the base model exactly.
    pub fn init(
        config: &BaseConfig,
        targets: &[Projection],
        rank: usize,
        alpha: f32,
        seed: u64,
        device: &Device,
    ) -> Result<LoraSet, TrainError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let std = 1.0 / (config.n_embd as f32).sqrt();
        let mut pairs = BTreeMap::new();
        for l in 0..config.n_layer {
            for &p in targets {
                let a: Vec<f32> = (0..rank * config.n_embd)
                    .map(|_| {
                        let z: f32 = StandardNormal.sample(&mut rng);
                        std * z
                    })
                    .collect();
                let a = Tensor::from_vec(a, (rank, config.n_embd), device)?;
                let b = Tensor::zeros((config.out_dim(p), rank), candle_core::DType::F32, device)?;
                pairs.insert((l, p), Pair::new(&a, &b)?);
            }
        }
        Ok(LoraSet {
            rank,
            alpha,
            pairs,
            dropout: None,
        })
    }

    /// Turns input dropout on (training) with its own seeded generator.
    pub fn set_dropout(&mut self, p: f32, seed: u64) {
        self.dropout =
            (p > 0.0).then(|| (p, RefCell::new(ChaCha8Rng::seed_from_u64(seed ^ 0xD0D0))));
    }

    pub fn disable_dropout(&mut self) {
        self.dropout = None;
    }

    pub fn scale(&self) -> f64 {
        self.alpha as f64 / self.rank as f64
    }

    pub fn vars(&self) -> Vec<Var> {
        self.pairs
            .values()
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect()
    }

    /// (name, tensor) in GGUF naming, A then B for each pair.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.pairs
            .iter()
            .flat_map(|(&(l, p), pair)| {
                let name = |is_a| LoraTensorName::attention(l, p, is_a).gguf();
                [
                    (name(true), pair.a.as_tensor().clone()),
                    (name(false), pair.b.as_tensor().clone()),
                ]
            })
            .collect()
    }

    pub fn targets(&self) -> Vec<Projection> {
        let mut t: Vec<Projection> = self.pairs.keys().map(|(_, p)| *p).collect();
        t.sort();
        t.dedup();
        t
    }

    /// `y + scale · B·A·x` when this projection is adapted.
    pub(super) fn add_delta(
        &self,
        layer: usize,
        p: Projection,
        x: &Tensor,
        y: Tensor,
    ) -> Result<Tensor, TrainError> {
        let Some(pair) = self.pairs.get(&(layer, p)) else {
            return Ok(y);
        };
        let x = match &self.dropout {
            Some((rate, rng)) => {
                let keep = 1.0 - rate;
                let mut rng = rng.borrow_mut();
                let mask: Vec<f32> = (0..x.elem_count())
                    .map(|_| {
                        if rng.gen::<f32>() < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                (x * Tensor::from_vec(mask, x.shape(), x.device())?)?
            }
            None => x.clone(),
        };
        let delta = x.matmul(&pair.a.t()?)?.matmul(&pair.b.t()?)?;
        Ok((y + (delta * self.scale())?)?)
    }

    /// Reads an adapter GGUF whose tensors are all attention LoRAs of
    /// `config`'s shape (to continue training from a parent adapter).
    pub fn from_gguf(
        path: &Path,
        config: &BaseConfig,
        device: &Device,
    ) -> Result<LoraSet, TrainError> {
        let adapter = read_adapter(path, device)?;
        let mut pairs: BTreeMap<(usize, Projection), (Option<Tensor>, Option<Tensor>)> =
            BTreeMap::new();
        for (name, t) in adapter.tensors {
            let parsed = parse_lora_name(&name).ok_or_else(|| {
                TrainError::Adapter(format!(
                    "{}: `{name}` is not an attention LoRA tensor",
                    path.display()
                ))
            })?;
            let (layer, p, is_a) = parsed;
            let slot = pairs.entry((layer, p)).or_default();
            if is_a {
                slot.0 = Some(t);
            } else {
                slot.1 = Some(t);
            }
        }
        let mut rank = 0;
        let mut out = BTreeMap::new();
        for ((l, p), (a, b)) in pairs {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(TrainError::Adapter(format!(
                    "layer {l} {p:?}: lora_a or lora_b missing"
                )));
            };
            rank = a.dim(0)?;
            if l >= config.n_layer
                || a.dims() != [rank, config.n_embd]
                || b.dims() != [config.out_dim(p), rank]
            {
                return Err(TrainError::Adapter(format!(
                    "layer {l} {p:?}: shapes {:?}/{:?} do not fit the base",
                    a.dims(),
                    b.dims()
                )));
            }
            out.insert((l, p), Pair::new(&a, &b)?);
        }
        Ok(LoraSet {
            rank,
            alpha: adapter.alpha,
            pairs: out,
            dropout: None,
        })
    }
}
