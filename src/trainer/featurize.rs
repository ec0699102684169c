//! The llama.cpp side of training: the serving tokenizer and chat format turn
//! (image, question, answer) into token sequences exactly as the engine would
//! see them, and the serving mtmd encoder turns images into embeddings, so
//! training sees what serving sees. Also computes llama.cpp's own logits for
//! an example (the trainer/llama.cpp agreement check).
//!
//! Everything here is blocking FFI: call it from a blocking thread.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{
    MtmdBitmap, MtmdContext, MtmdInputChunkType, MtmdInputChunks, MtmdInputText,
};
use llama_cpp_2::token::LlamaToken;

use super::{Example, ExampleImage, ImageEmbedding, TrainError};
use crate::domain::prompts::{Prompts, Turn};
use crate::engine::llama::{self, ChatFormat};
use crate::intake::DecodedImage;
use crate::settings::{ChatTemplateChoice, FlashAttention, KvCacheKind};

/// Loads an adapter file onto the base model in llama.cpp once, to refuse
/// files it rejects (wrong names or shapes) before they are registered.
pub fn check_adapter(gguf: &Path, adapter: &Path) -> Result<(), TrainError> {
    let backend = llama::backend().map_err(|e| llama_err("backend", &e))?;
    let mut model = LlamaModel::load_from_file(backend, gguf, &LlamaModelParams::default())
        .map_err(|e| llama_err(&gguf.display().to_string(), &e))?;
    model
        .lora_adapter_init(adapter)
        .map(|_| ())
        .map_err(|e| llama_err(&adapter.display().to_string(), &e))
}

pub struct Featurizer {
    model: LlamaModel,
    mtmd: MtmdContext,
    format: ChatFormat,
    prompts: Prompts,
    marker: String,
    threads: i32,
}

/// The KV cache and attention settings llama.cpp computes reference logits with.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceSettings {
    pub kv_cache_type: KvCacheKind,
    pub flash_attention: FlashAttention,
}

fn llama_err(what: &str, e: &dyn std::fmt::Display) -> TrainError {
    TrainError::Llama(format!("{what}: {e}"))
}

impl Featurizer {
    pub fn load(
        gguf: &Path,
        mmproj: &Path,
        prompts: Prompts,
        chat_template: ChatTemplateChoice,
        threads: u32,
    ) -> Result<Featurizer, TrainError> {
        let backend = llama::backend().map_err(|e| llama_err("backend", &e))?;
        let model = LlamaModel::load_from_file(backend, gguf, &LlamaModelParams::default())
            .map_err(|e| llama_err(&gguf.display().to_string(), &e))?;
        let threads = llama::resolve_threads(threads);
        let (mtmd, marker) = llama::open_mtmd(&model, mmproj, threads, false)
            .map_err(|e| llama_err("mmproj", &e))?;
        let format = ChatFormat::choose(&model, chat_template, &prompts)
            .map_err(|e| llama_err("chat format", &e))?;
        Ok(Featurizer {
            model,
            mtmd,
            format,
            prompts,
            marker,
            threads,
        })
    }

    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    fn image_chunks(&self, image: &DecodedImage) -> Result<MtmdInputChunks, TrainError> {
        let bitmap = MtmdBitmap::from_image_data(image.width(), image.height(), image.rgb())
            .map_err(|e| llama_err("bitmap", &e))?;
        self.mtmd
            .tokenize(
                MtmdInputText {
                    text: self.marker.clone(),
                    add_special: false,
                    parse_special: true,
                },
                &[&bitmap],
            )
            .map_err(|e| llama_err("mtmd tokenize", &e))
    }

    /// The image's embeddings from the serving vision tower and projector.
    pub fn encode_image(&mut self, image: &DecodedImage) -> Result<ImageEmbedding, TrainError> {
        let chunks = self.image_chunks(image)?;
        let n_embd = self.model.n_embd() as usize;
        for i in 0..chunks.len() {
            let Some(chunk) = chunks.get(i) else { continue };
            if chunk.chunk_type() != MtmdInputChunkType::Image {
                continue;
            }
            self.mtmd
                .encode_chunk(&chunk)
                .map_err(|e| llama_err("mtmd encode", &e))?;
            let n_tokens = chunk.n_tokens();
            let data = mtmd_shim::output_embeddings(&self.mtmd, n_tokens * n_embd)?;
            return Ok(ImageEmbedding {
                n_tokens,
                n_embd,
                data,
            });
        }
        Err(TrainError::Llama("mtmd produced no image chunk".into()))
    }

    fn tokenize(&self, text: &str, bos: bool) -> Vec<u32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), bos, true)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect()
    }

    /// One supervised turn, rendered and tokenized as the engine does: the
    /// answer's tokens follow the assistant prompt and end with EOS.
    pub fn example(
        &self,
        image: Option<Arc<ImageEmbedding>>,
        history: &[Turn],
        question: &str,
        answer: &str,
    ) -> Result<Example, TrainError> {
        self.example_with(image.map(ExampleImage::from), history, question, answer)
    }

    /// `example` for either image form: tower features
    /// (`vision::VisionTower::features`) when the projector is trained.
    pub fn example_with(
        &self,
        image: Option<ExampleImage>,
        history: &[Turn],
        question: &str,
        answer: &str,
    ) -> Result<Example, TrainError> {
        let (pre, post) = self
            .format
            .render(
                &self.model,
                &self.prompts.chat.system,
                &self.marker,
                history,
                question,
            )
            .map_err(|e| llama_err("render", &e))?;
        let (prefix, mut suffix) = match image {
            Some(_) => (self.tokenize(&pre, true), self.tokenize(&post, false)),
            // Text only: the marker is dropped, as if the message had no image.
            None => (self.tokenize(&format!("{pre}{post}"), true), Vec::new()),
        };
        let (prefix, answer_start) = if suffix.is_empty() {
            // Keep at least one prompt token before the answer in `suffix`.
            let mut prefix = prefix;
            let last = prefix.pop().ok_or(TrainError::NoExamples)?;
            suffix.push(last);
            (prefix, 1)
        } else {
            let n = suffix.len();
            (prefix, n)
        };
        suffix.extend(self.tokenize(answer, false));
        suffix.push(self.model.vocab().eos().0 as u32);
        Ok(Example {
            prefix,
            image,
            suffix,
            answer_start,
        })
    }

    /// llama.cpp's logits at the rows the trainer scores (one per answer
    /// token), with the adapter file at `scale` applied when given.
    pub fn reference_logits(
        &mut self,
        example: &Example,
        image: Option<&DecodedImage>,
        adapter: Option<(&Path, f32)>,
        settings: ReferenceSettings,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let backend = llama::backend().map_err(|e| llama_err("backend", &e))?;
        let mut lora = match adapter {
            Some((path, scale)) => Some((
                self.model
                    .lora_adapter_init(path)
                    .map_err(|e| llama_err(&path.display().to_string(), &e))?,
                scale,
            )),
            None => None,
        };
        let (kv, fa) = llama::kv_and_attention(settings.kv_cache_type, settings.flash_attention);
        let n = example.len() as u32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n.next_multiple_of(256)))
            .with_n_batch(n.max(512))
            .with_n_ubatch(n.max(512))
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            .with_type_k(kv)
            .with_type_v(kv)
            .with_flash_attention_policy(fa);
        let mut ctx = self
            .model
            .new_context(backend, params)
            .map_err(|e| llama_err("context", &e))?;
        if let Some((adapter, scale)) = lora.as_mut() {
            ctx.lora_adapter_set(adapter, *scale)
                .map_err(|e| llama_err("adapter", &e))?;
        }
        let decode_err = |e: &dyn std::fmt::Display| llama_err("decode", e);
        let mut pos = 0i32;
        let mut batch = LlamaBatch::new(example.len().max(1), 1);
        // Text before the image (no logits needed there).
        for &t in &example.prefix {
            batch
                .add(LlamaToken(t as i32), pos, &[0], false)
                .map_err(|e| decode_err(&e))?;
            pos += 1;
        }
        if let (Some(_), Some(img)) = (&example.image, image) {
            if !example.prefix.is_empty() {
                ctx.decode(&mut batch).map_err(|e| decode_err(&e))?;
                batch.clear();
            }
            let chunks = self.image_chunks(img)?;
            pos = chunks
                .eval_chunks(&mut self.mtmd, &mut ctx, pos, 0, n as i32, false)
                .map_err(|e| decode_err(&e))?;
        } else if example.image.is_some() {
            return Err(TrainError::Llama(
                "the example has an image; pass the decoded image".into(),
            ));
        }
        let first = example.first_target_row() as i32;
        let rows = example.answer_tokens().len() as i32;
        let start_index = batch.n_tokens();
        for &t in &example.suffix {
            let want = pos >= first && pos < first + rows;
            batch
                .add(LlamaToken(t as i32), pos, &[0], want)
                .map_err(|e| decode_err(&e))?;
            pos += 1;
        }
        ctx.decode(&mut batch).map_err(|e| decode_err(&e))?;
        // Batch index of position `first`: the suffix starts at start_index.
        let suffix_pos0 = (example.prefix.len() + example.image_tokens()) as i32;
        (0..rows)
            .map(|r| {
                let i = start_index + (first + r - suffix_pos0);
                Ok(ctx.get_logits_ith(i).to_vec())
            })
            .collect()
    }
}

/// Reads mtmd's output embeddings after `encode_chunk`.
///
/// llama-cpp-2 0.1.160 encodes chunks but keeps `MtmdContext`'s pointer
/// private and has no accessor for `mtmd_get_output_embd`. `MtmdContext` is
/// a struct with exactly one field, a non-null `mtmd_context` pointer (a
/// `#[repr(transparent)]` `NonNull`); the size assertion below fails the
/// build if that ever changes, and tests/trainer.rs checks the embeddings
/// reproduce llama.cpp's own logits, so a wrong read cannot go unnoticed.
mod mtmd_shim {
    use llama_cpp_2::mtmd::MtmdContext;

    use super::TrainError;

    const _: () = assert!(
        std::mem::size_of::<MtmdContext>()
            == std::mem::size_of::<*mut llama_cpp_sys_2::mtmd_context>()
    );

    pub fn output_embeddings(ctx: &MtmdContext, len: usize) -> Result<Vec<f32>, TrainError> {
        // SAFETY: MtmdContext is exactly one pointer wide (asserted above) and
        // its only field is the context pointer, so it lies at offset 0. The
        // pointer is valid while `ctx` is borrowed; mtmd only reads here.
        let raw =
            unsafe { *(ctx as *const MtmdContext as *const *mut llama_cpp_sys_2::mtmd_context) };
        // SAFETY: after a successful encode_chunk, mtmd_get_output_embd points
        // at n_tokens × n_embd floats owned by the context.
        let data = unsafe { llama_cpp_sys_2::mtmd_get_output_embd(raw) };
        if data.is_null() {
            return Err(TrainError::Llama("mtmd has no output embeddings".into()));
        }
        Ok(unsafe { std::slice::from_raw_parts(data, len) }.to_vec())
    }
}
