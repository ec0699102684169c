//! Loading a model for the engine: llama.cpp's backend, the model and its
//! vision tower, the startup adapter, the prompts' fixed tokens, and the
//! checks that one request fits the configured context.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{
    mtmd_default_marker, MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputText,
};
use llama_cpp_2::token::LlamaToken;

use super::adapters::Adapters;
use super::render::ChatFormat;
use super::scheduler::Shared;
use super::{AdapterSpec, EngineConfig, EngineError};
use crate::domain::sha256_file;
use crate::domain::ModelIdentity;
use crate::settings::{FlashAttention, KvCacheKind};

/// llama.cpp's backend, initialised once per process: the first caller's
/// `backends_dir` (used by `gpu` builds) is the one that counts.
pub fn backend() -> Result<&'static LlamaBackend, EngineError> {
    backend_in(None)
}

/// `backend`, loading backend modules from `backends_dir` in a `gpu` build.
pub fn backend_in(backends_dir: Option<&Path>) -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let verbose = std::env::var_os("DFA_LLAMA_LOGS").is_some();
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(verbose),
            );
            if let Some(dir) = super::devices::load_backend_modules(backends_dir)? {
                tracing::info!(dir = %dir.display(), "llama.cpp backend modules loaded");
            }
            let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            for d in super::devices::list() {
                tracing::info!(
                    device = %d.name,
                    backend = %d.backend,
                    description = %d.description,
                    gpu = d.gpu,
                    memory_free_mib = d.memory_free >> 20,
                    "llama.cpp device"
                );
            }
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| EngineError::Load(format!("llama.cpp backend: {e}")))
}

/// A loaded model and what stays fixed while it is loaded.
pub(super) struct Loaded {
    pub model: LlamaModel,
    /// The model files' identity, without an adapter.
    pub base: ModelIdentity,
    pub mtmd: MtmdContext,
    /// The mmproj `mtmd` was opened from: `model.mmproj`, or the active
    /// adapter's own projector.
    pub mmproj: PathBuf,
    /// `model.mmproj`, served when the adapter brings no projector.
    pub configured_mmproj: PathBuf,
    pub adapters: Adapters,
    pub shared: Shared,
    pub image_tokens: usize,
    pub threads: i32,
    pub threads_batch: i32,
    pub model_gpu_layers: u32,
}

pub(super) fn wanted_mmproj<'a>(
    configured: &'a Path,
    adapter: Option<&'a AdapterSpec>,
) -> &'a Path {
    adapter
        .and_then(|a| a.mmproj.as_deref())
        .unwrap_or(configured)
}

/// `open_mtmd`, refusing what the engine cannot serve.
fn open_checked_mtmd(
    model: &LlamaModel,
    mmproj: &Path,
    threads: i32,
    use_gpu: bool,
) -> Result<(MtmdContext, String), EngineError> {
    let (mtmd, marker) = open_mtmd(model, mmproj, threads, use_gpu)?;
    if !mtmd.support_vision() {
        return Err(EngineError::Load(format!(
            "{} has no vision encoder",
            mmproj.display()
        )));
    }
    if mtmd.decode_use_mrope() || mtmd.decode_use_non_causal() {
        return Err(EngineError::Load(
            "this mmproj needs M-RoPE or non-causal image decoding; only LLaVA-style models are supported".into(),
        ));
    }
    Ok((mtmd, marker))
}

impl Loaded {
    /// Loads the model, the vision tower and the configured adapter, and
    /// checks that one request fits the context.
    pub fn open(config: &EngineConfig, backend: &LlamaBackend) -> Result<Loaded, EngineError> {
        let placement = super::devices::place(
            config.engine.n_gpu_layers,
            &config.engine.device,
            &super::devices::list(),
        )
        .map_err(|reason| EngineError::Config {
            key: "engine.device",
            reason,
        })?;
        let gpu_layers = placement.gpu_layers;
        let threads = resolve_threads(config.engine.threads);
        let threads_batch = resolve_threads(config.engine.threads_batch);

        let mut model_params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
        if let Some(devices) = &placement.devices {
            model_params = model_params
                .with_devices(devices)
                .map_err(|e| EngineError::Config {
                    key: "engine.device",
                    reason: e.to_string(),
                })?;
        }
        tracing::info!(gpu_layers, devices = ?placement.devices, "placing the model");
        let mut model = LlamaModel::load_from_file(backend, &config.gguf, &model_params)
            .map_err(|e| load_err(&config.gguf.display().to_string(), &e))?;
        let mmproj = wanted_mmproj(&config.mmproj, config.adapter.as_ref()).to_path_buf();
        let base = ModelIdentity {
            base_sha256: sha256_file(&config.gguf)
                .map_err(|e| load_err("hashing the model", &e))?,
            mmproj_sha256: sha256_file(&mmproj).map_err(|e| load_err("hashing the mmproj", &e))?,
            adapter: None,
        };
        let (mtmd, marker) = open_checked_mtmd(&model, &mmproj, threads, gpu_layers > 0)?;

        let mut adapters = Adapters::new();
        if let Some(spec) = &config.adapter {
            let i = adapters.load(&mut model, spec)?;
            adapters.active = Some((i, spec.clone()));
        }

        let mut shared = shared_state(config, &model, marker)?;
        let image_tokens = count_image_tokens(&mtmd, &shared.marker)?;
        shared.image_tokens = image_tokens;
        check_context_fits(config, &model, &shared, image_tokens)?;
        Ok(Loaded {
            model,
            base,
            mtmd,
            mmproj,
            configured_mmproj: config.mmproj.clone(),
            adapters,
            shared,
            image_tokens,
            threads,
            threads_batch,
            model_gpu_layers: gpu_layers,
        })
    }

    /// The mmproj `adapter` is served with.
    pub fn mmproj_for<'a>(&'a self, adapter: Option<&'a AdapterSpec>) -> &'a Path {
        wanted_mmproj(&self.configured_mmproj, adapter)
    }

    /// Serves images through `path`'s projector from now on. A projector
    /// trained with a LoRA keeps the vision tower and the image token count;
    /// one that changes the count would not fit the checked context, so it is
    /// refused and the current one stays.
    pub fn reopen_mtmd(&mut self, path: &Path) -> Result<(), EngineError> {
        let sha256 = sha256_file(path).map_err(|e| load_err("hashing the mmproj", &e))?;
        let use_gpu = !matches!(self.model_gpu_layers, 0);
        let (mtmd, marker) = open_checked_mtmd(&self.model, path, self.threads, use_gpu)?;
        let tokens = count_image_tokens(&mtmd, &marker)?;
        if tokens != self.image_tokens {
            return Err(EngineError::Load(format!(
                "{}: {tokens} tokens per image where the served mmproj has {}",
                path.display(),
                self.image_tokens
            )));
        }
        self.mtmd = mtmd;
        self.mmproj = path.to_path_buf();
        self.base.mmproj_sha256 = sha256;
        Ok(())
    }

    /// The parameters of each new context (one per adapter file load).
    pub fn context_params(&self, config: &EngineConfig) -> LlamaContextParams {
        context_params(config, self.threads, self.threads_batch)
    }
}

pub(super) fn load_err(what: &str, e: &dyn std::fmt::Display) -> EngineError {
    EngineError::Load(format!("{what}: {e}"))
}

/// The mtmd context (vision tower + projector) for `model`, and the image
/// marker its prompts use.
pub fn open_mtmd(
    model: &LlamaModel,
    mmproj: &std::path::Path,
    threads: i32,
    use_gpu: bool,
) -> Result<(MtmdContext, String), EngineError> {
    let marker = mtmd_default_marker().to_string();
    let params = MtmdContextParams {
        use_gpu,
        print_timings: false,
        n_threads: threads,
        media_marker: CString::new(marker.clone()).map_err(|e| load_err("marker", &e))?,
        image_min_tokens: -1,
        image_max_tokens: -1,
    };
    let path = mmproj
        .to_str()
        .ok_or_else(|| EngineError::Load("mmproj path is not UTF-8".into()))?;
    let mtmd = MtmdContext::init_from_file(path, model, &params).map_err(|e| load_err(path, &e))?;
    Ok((mtmd, marker))
}

/// llama.cpp's names for the KV cache type and flash-attention settings.
pub fn kv_and_attention(
    kv: KvCacheKind,
    fa: FlashAttention,
) -> (KvCacheType, llama_cpp_sys_2::llama_flash_attn_type) {
    let kv = match kv {
        KvCacheKind::F32 => KvCacheType::F32,
        KvCacheKind::F16 => KvCacheType::F16,
    };
    let fa = match fa {
        FlashAttention::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        FlashAttention::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        FlashAttention::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    };
    (kv, fa)
}

pub fn resolve_threads(n: u32) -> i32 {
    if n > 0 {
        n as i32
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(1)
    }
}

fn context_params(config: &EngineConfig, threads: i32, threads_batch: i32) -> LlamaContextParams {
    let config = &config.engine;
    let mut params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.n_ctx))
        .with_n_batch(config.n_batch)
        .with_n_ubatch(config.n_batch)
        .with_n_seq_max(config.n_seq_max)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads_batch);
    let (kv, fa) = kv_and_attention(config.kv_cache_type, config.flash_attention);
    params = params
        .with_type_k(kv)
        .with_type_v(kv)
        .with_flash_attention_policy(fa);
    params
}

fn shared_state(
    config: &EngineConfig,
    model: &LlamaModel,
    marker: String,
) -> Result<Shared, EngineError> {
    let prompts = config.prompts.clone();
    let format = ChatFormat::choose(model, config.chat_template, &prompts)?;
    let vocab = model.vocab();
    let first_token = |text: &str, field: &'static str| -> Result<Vec<LlamaToken>, EngineError> {
        let tokens = vocab.tokenize(text.as_bytes(), false, true);
        if tokens.is_empty() {
            return Err(EngineError::Prompt(format!(
                "`{field}` tokenizes to nothing"
            )));
        }
        Ok(tokens)
    };
    let yes = first_token(&prompts.detection.yes, "detection.yes")?[0];
    let no = first_token(&prompts.detection.no, "detection.no")?[0];
    if yes == no {
        return Err(EngineError::Prompt(
            "detection.yes and detection.no start with the same token".into(),
        ));
    }
    let answers = prompts.classification.answers.as_array();
    let mut candidates: [Vec<LlamaToken>; 4] = Default::default();
    for (slot, text) in candidates.iter_mut().zip(answers) {
        *slot = first_token(text, "classification.answers")?;
    }
    Ok(Shared {
        format,
        prompts,
        marker,
        yes,
        no,
        candidates,
        max_explain: config.max_explain_tokens as usize,
        max_answer: config.max_answer_tokens as usize,
        n_batch: config.engine.n_batch as usize,
        n_ctx: config.engine.n_ctx as usize,
        max_jobs: config.max_jobs(),
        image_tokens: 0,
        cache_bytes: usize::try_from(config.engine.conversation_cache_bytes).unwrap_or(usize::MAX),
    })
}

/// Image tokens per image: fixed for LLaVA-style projectors.
fn count_image_tokens(mtmd: &MtmdContext, marker: &str) -> Result<usize, EngineError> {
    let grey = vec![128u8; 64 * 64 * 3];
    let bitmap =
        MtmdBitmap::from_image_data(64, 64, &grey).map_err(|e| EngineError::Load(e.to_string()))?;
    let chunks = mtmd
        .tokenize(
            MtmdInputText {
                text: marker.to_string(),
                add_special: false,
                parse_special: true,
            },
            &[&bitmap],
        )
        .map_err(|e| EngineError::Load(format!("mtmd tokenize: {e}")))?;
    Ok(chunks.total_positions() as usize)
}

/// One screening request with an explanation must fit in the context.
fn check_context_fits(
    config: &EngineConfig,
    model: &LlamaModel,
    shared: &Shared,
    image_tokens: usize,
) -> Result<(), EngineError> {
    let p = &shared.prompts;
    let render = |q: &str| {
        shared
            .format
            .render(model, &p.chat.system, &shared.marker, &[], q)
    };
    let count = |text: &str, bos: bool| model.vocab().tokenize(text.as_bytes(), bos, true).len();
    let (pre, detect) = render(&p.detection.question)?;
    let (_, classify) = render(&p.classification.question)?;
    let (_, explain) = render(&p.artifacts.question)?;
    let needed = count(&pre, true)
        + image_tokens
        + count(&detect, false)
        + count(&classify, false)
        + shared.candidates.iter().map(Vec::len).sum::<usize>()
        + count(&explain, false)
        + shared.max_explain;
    if needed > config.engine.n_ctx as usize {
        return Err(EngineError::Config {
            key: "engine.n_ctx",
            reason: format!(
                "one request with an explanation needs {needed} KV cells ({image_tokens} image tokens + prompts + analysis.max_explain_tokens), but n_ctx is {}",
                config.engine.n_ctx
            ),
        });
    }
    Ok(())
}
