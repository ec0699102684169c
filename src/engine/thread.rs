//! The engine thread: loads the model, owns every llama.cpp object, and runs
//! the scheduler between commands. LoRA adapters need `&mut LlamaModel`, so
//! loading a new adapter file drops the context and makes a new one.

use std::collections::VecDeque;
use std::ffi::CString;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::OnceLock;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_2::mtmd::{
    mtmd_default_marker, MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputText,
};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

use super::identity::sha256_file;
use super::render::ChatFormat;
use super::scheduler::{Job, Scheduler, Shared};
use super::{AdapterSpec, Command, EngineConfig, EngineError, EngineInfo};
use crate::settings::{FlashAttention, KvCacheKind, SEQS_PER_REQUEST};
use crate::verdict::{AdapterIdentity, ModelIdentity};

/// llama.cpp's backend may be initialised once per process.
pub(crate) fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let verbose = std::env::var_os("DFA_LLAMA_LOGS").is_some();
            llama_cpp_2::send_logs_to_tracing(
                llama_cpp_2::LogOptions::default().with_logs_enabled(verbose),
            );
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load(format!("llama.cpp backend: {e}")))
}

struct LoadedAdapter {
    path: PathBuf,
    sha256: String,
    adapter: LlamaLoraAdapter,
}

/// The adapter state of the model: every file loaded so far (llama.cpp frees
/// adapters only with the model) and which one is applied.
struct Adapters {
    loaded: Vec<LoadedAdapter>,
    active: Option<(usize, AdapterSpec)>,
}

impl Adapters {
    fn find(&self, path: &PathBuf) -> Option<usize> {
        self.loaded.iter().position(|a| &a.path == path)
    }

    fn load(&mut self, model: &mut LlamaModel, spec: &AdapterSpec) -> Result<usize, EngineError> {
        if let Some(i) = self.find(&spec.path) {
            return Ok(i);
        }
        if !spec.path.is_file() {
            return Err(EngineError::Adapter(format!(
                "file not found: {}",
                spec.path.display()
            )));
        }
        let sha256 = sha256_file(&spec.path).map_err(|e| EngineError::Adapter(e.to_string()))?;
        let adapter = model
            .lora_adapter_init(&spec.path)
            .map_err(|e| EngineError::Adapter(format!("{}: {e}", spec.path.display())))?;
        self.loaded.push(LoadedAdapter {
            path: spec.path.clone(),
            sha256,
            adapter,
        });
        Ok(self.loaded.len() - 1)
    }

    /// Applies the active adapter to a context (or clears it).
    fn apply(&mut self, ctx: &mut LlamaContext) -> Result<(), EngineError> {
        let err = |e: String| EngineError::Adapter(e);
        match &self.active {
            Some((i, spec)) => ctx
                .lora_adapter_set(&mut self.loaded[*i].adapter, spec.scale)
                .map_err(|e| err(e.to_string())),
            None => match self.loaded.first_mut() {
                Some(first) => ctx
                    .lora_adapter_remove(&mut first.adapter)
                    .map_err(|e| err(e.to_string())),
                None => Ok(()),
            },
        }
    }

    fn identity(&self, base: &ModelIdentity) -> ModelIdentity {
        ModelIdentity {
            adapter: self.active.as_ref().map(|(i, spec)| AdapterIdentity {
                id: spec.id.clone(),
                sha256: self.loaded[*i].sha256.clone(),
                scale: spec.scale,
            }),
            ..base.clone()
        }
    }
}

type Ready = oneshot::Sender<Result<EngineInfo, EngineError>>;
type SwapRequest = (
    Option<AdapterSpec>,
    oneshot::Sender<Result<ModelIdentity, EngineError>>,
);

pub(crate) fn run(config: EngineConfig, mut rx: mpsc::Receiver<Command>, ready: Ready) {
    let mut ready = Some(ready);
    if let Err(e) = serve(&config, &mut rx, &mut ready) {
        match ready.take() {
            Some(r) => {
                let _ = r.send(Err(e));
            }
            None => tracing::error!(error = %e, "engine stopped"),
        }
    }
}

fn serve(
    config: &EngineConfig,
    rx: &mut mpsc::Receiver<Command>,
    ready: &mut Option<Ready>,
) -> Result<(), EngineError> {
    let backend = backend()?;
    let load_err =
        |what: &str, e: &dyn std::fmt::Display| EngineError::Load(format!("{what}: {e}"));
    let threads = resolve_threads(config.threads);
    let threads_batch = resolve_threads(config.threads_batch);

    let model_params = LlamaModelParams::default().with_n_gpu_layers(config.n_gpu_layers);
    let mut model = LlamaModel::load_from_file(backend, &config.gguf, &model_params)
        .map_err(|e| load_err(&config.gguf.display().to_string(), &e))?;
    let base = ModelIdentity {
        base_sha256: sha256_file(&config.gguf).map_err(|e| load_err("hashing the model", &e))?,
        mmproj_sha256: sha256_file(&config.mmproj)
            .map_err(|e| load_err("hashing the mmproj", &e))?,
        adapter: None,
    };
    let (mut mtmd, marker) = open_mtmd(&model, &config.mmproj, threads, config.n_gpu_layers > 0)?;
    if !mtmd.support_vision() {
        return Err(EngineError::Load(format!(
            "{} has no vision encoder",
            config.mmproj.display()
        )));
    }
    if mtmd.decode_use_mrope() || mtmd.decode_use_non_causal() {
        return Err(EngineError::Load(
            "this mmproj needs M-RoPE or non-causal image decoding; only LLaVA-style models are supported".into(),
        ));
    }

    let mut adapters = Adapters {
        loaded: Vec::new(),
        active: None,
    };
    if let Some(spec) = &config.adapter {
        let i = adapters.load(&mut model, spec)?;
        adapters.active = Some((i, spec.clone()));
    }

    let shared = shared_state(config, &model, &mtmd, marker)?;
    let image_tokens = count_image_tokens(&mtmd, &shared.marker)?;
    check_context_fits(config, &model, &shared, image_tokens)?;

    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut pending_swap: Option<SwapRequest> = None;
    loop {
        let mut ctx = model
            .new_context(backend, context_params(config, threads, threads_batch))
            .map_err(|e| load_err("context", &e))?;
        adapters.apply(&mut ctx)?;
        let mut sched = Scheduler::new(
            &model,
            &mut ctx,
            &mut mtmd,
            &shared,
            adapters.identity(&base),
        );
        if let Some(r) = ready.take() {
            let info = EngineInfo {
                model: sched.identity.clone(),
                image_tokens,
                n_vocab: model.n_vocab() as usize,
                chat_template: shared.format.name(),
                capacity: shared.max_jobs,
            };
            if r.send(Ok(info)).is_err() {
                return Ok(());
            }
        }
        if let Some((spec, reply)) = pending_swap.take() {
            // The adapter file was loaded while no context existed.
            let _ = reply.send(Ok(sched.identity.clone()));
            debug_assert!(spec == adapters.active.as_ref().map(|(_, s)| s.clone()));
        }

        // Runs until the queue closes or an adapter file must be loaded.
        let need_load = loop {
            // Take commands: block only when there is nothing to do.
            while pending_swap.is_none() && waiting.len() < shared.max_jobs {
                let command = if sched.is_idle() && waiting.is_empty() {
                    match rx.blocking_recv() {
                        Some(c) => c,
                        None => return Ok(()),
                    }
                } else {
                    match rx.try_recv() {
                        Ok(c) => c,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            if sched.is_idle() && waiting.is_empty() {
                                return Ok(());
                            }
                            break;
                        }
                    }
                };
                match command {
                    Command::Analyze {
                        request,
                        submitted,
                        reply,
                    } => match sched.prepare(request, submitted, reply) {
                        Ok(job) => waiting.push_back(job),
                        Err((reply, e)) => {
                            let _ = reply.send(Err(e));
                        }
                    },
                    Command::SetAdapter { adapter, reply } => pending_swap = Some((adapter, reply)),
                }
            }
            while waiting.front().is_some_and(|job| sched.can_start(job)) {
                if let Some(job) = waiting.pop_front() {
                    sched.start(job);
                }
            }
            if sched.is_idle() && waiting.is_empty() {
                if let Some((spec, reply)) = pending_swap.take() {
                    match swap(&mut adapters, &mut sched, spec.clone(), &base) {
                        Ok(true) => {
                            let _ = reply.send(Ok(sched.identity.clone()));
                        }
                        Ok(false) => break (spec, reply),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                continue;
            }
            sched.step();
        };
        drop(sched);
        drop(ctx);
        let (spec, reply) = need_load;
        match spec.as_ref().map(|s| adapters.load(&mut model, s)) {
            Some(Err(e)) => {
                let _ = reply.send(Err(e));
            }
            Some(Ok(i)) => {
                adapters.active = spec.clone().map(|s| (i, s));
                pending_swap = Some((spec, reply));
            }
            None => unreachable_swap(reply),
        }
    }
}

/// Switches adapters without a new context when the file is already loaded;
/// `Ok(false)` means the file must be loaded first.
fn swap(
    adapters: &mut Adapters,
    sched: &mut Scheduler,
    spec: Option<AdapterSpec>,
    base: &ModelIdentity,
) -> Result<bool, EngineError> {
    let previous = adapters.active.take();
    adapters.active = match &spec {
        None => None,
        Some(s) => match adapters.find(&s.path) {
            Some(i) => Some((i, s.clone())),
            None => {
                adapters.active = previous;
                return Ok(false);
            }
        },
    };
    if let Err(e) = adapters.apply(sched.ctx) {
        adapters.active = previous;
        adapters.apply(sched.ctx)?;
        return Err(e);
    }
    sched.identity = adapters.identity(base);
    Ok(true)
}

fn unreachable_swap(reply: oneshot::Sender<Result<ModelIdentity, EngineError>>) {
    // Removing an adapter never needs a file load; answer rather than panic.
    let _ = reply.send(Err(EngineError::Adapter(
        "internal: nothing to load".into(),
    )));
}

/// The mtmd context (vision tower + projector) for `model`, and the image
/// marker its prompts use.
pub(crate) fn open_mtmd(
    model: &LlamaModel,
    mmproj: &std::path::Path,
    threads: i32,
    use_gpu: bool,
) -> Result<(MtmdContext, String), EngineError> {
    let load_err =
        |what: &str, e: &dyn std::fmt::Display| EngineError::Load(format!("{what}: {e}"));
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
pub(crate) fn kv_and_attention(
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

pub(crate) fn resolve_threads(n: u32) -> i32 {
    if n > 0 {
        n as i32
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(1)
    }
}

fn context_params(config: &EngineConfig, threads: i32, threads_batch: i32) -> LlamaContextParams {
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
    _mtmd: &MtmdContext,
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
    let max_jobs = (config
        .max_in_flight
        .min(config.n_seq_max / SEQS_PER_REQUEST))
    .max(1) as usize;
    Ok(Shared {
        format,
        prompts,
        marker,
        yes,
        no,
        candidates,
        max_explain: config.max_explain_tokens as usize,
        max_answer: config.max_answer_tokens as usize,
        n_batch: config.n_batch as usize,
        n_ctx: config.n_ctx as usize,
        max_jobs,
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
    if needed > config.n_ctx as usize {
        return Err(EngineError::Config {
            key: "engine.n_ctx",
            reason: format!(
                "one request with an explanation needs {needed} KV cells ({image_tokens} image tokens + prompts + analysis.max_explain_tokens), but n_ctx is {}",
                config.n_ctx
            ),
        });
    }
    Ok(())
}
