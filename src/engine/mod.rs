//! The analysis engine: one dedicated thread owns every piece of llama.cpp
//! state (model, mtmd context, KV cache, adapters); async callers talk to it
//! through a bounded queue. Requests in flight together share `llama_decode`
//! calls (continuous batching over sequence ids of one unified KV cache).

mod adapters;
pub mod analyze;
mod config;
pub mod devices;
pub mod instant;
mod load;
mod render;
mod scheduler;
pub mod scoring;
mod thread;

pub use config::{AdapterSpec, EngineConfig, SEQS_PER_REQUEST};

/// The llama.cpp setup the engine runs on, shared with the trainer's
/// featurizer so that both turn images and prompts into tokens alike: one
/// backend per process, one recipe for the mtmd context, one chat format.
pub mod llama {
    pub use super::load::{backend, backend_in, kv_and_attention, open_mtmd, resolve_threads};
    pub use super::render::ChatFormat;
}

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::domain::prompts::{Prompts, Turn};
use crate::domain::{Answer, ModelIdentity, TypeScores};
use crate::intake::DecodedImage;

/// When to generate the artifact description.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Explain {
    Never,
    /// Screening mode: only when `p_fake` reaches the threshold.
    IfFake {
        threshold: f32,
    },
    Always,
}

/// What to compute for one image.
#[derive(Debug, Clone)]
pub struct Tasks {
    /// Detection and classification, scored from logits.
    pub screen: bool,
    pub explain: Explain,
    /// Earlier turns of a conversation about this image.
    pub history: Vec<Turn>,
    /// Questions answered in order, each seeing the answers before it.
    pub questions: Vec<String>,
    /// Return the full logits after the detection question (diagnostics, tests).
    pub keep_detection_logits: bool,
    /// The caller's name for the conversation about this image
    /// (`domain::dialogue::conversation_key`). The engine keeps the KV
    /// state of recent conversations under it (`engine.conversation_cache_bytes`),
    /// so the next question about the same image decodes only its new tokens.
    pub image_key: Option<String>,
    /// Receives the last question's answer piece by piece (valid UTF-8) as
    /// it is generated; the full answer still comes in the `Analysis`, and
    /// the pieces concatenate to it exactly (leading and trailing whitespace
    /// is never sent). The engine never blocks on it: pieces wait while the
    /// channel is full. When the receiver is dropped the engine stops the
    /// request (`Cancelled`).
    pub stream: Option<mpsc::Sender<String>>,
}

impl Tasks {
    pub fn screening(explain_threshold: f32) -> Tasks {
        Tasks {
            screen: true,
            explain: Explain::IfFake {
                threshold: explain_threshold,
            },
            history: Vec::new(),
            questions: Vec::new(),
            keep_detection_logits: false,
            image_key: None,
            stream: None,
        }
    }

    /// Screening with the explanation generated always (`explain`) or only
    /// above `explain_threshold`, plus questions to answer.
    pub fn requested(explain: bool, explain_threshold: f32, questions: Vec<String>) -> Tasks {
        Tasks {
            explain: if explain {
                Explain::Always
            } else {
                Explain::IfFake {
                    threshold: explain_threshold,
                }
            },
            questions,
            ..Tasks::screening(explain_threshold)
        }
    }

    /// A follow-up question in a conversation, without re-scoring.
    pub fn follow_up(history: Vec<Turn>, question: String) -> Tasks {
        Tasks {
            screen: false,
            explain: Explain::Never,
            history,
            questions: vec![question],
            keep_detection_logits: false,
            image_key: None,
            stream: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AnalysisRequest {
    pub image: DecodedImage,
    pub tasks: Tasks,
}

/// Milliseconds spent in each engine stage for one request. A batched decode
/// counts fully for every request it served (it is the latency they saw).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineTimings {
    /// Vision tower plus decoding the image tokens into the KV cache.
    pub encode_image: f64,
    pub prefill: f64,
    pub generate: f64,
    /// From submission to reply, queueing included.
    pub total: f64,
}

#[derive(Debug, Clone)]
pub struct Analysis {
    pub p_fake: Option<f32>,
    pub type_scores: Option<TypeScores>,
    pub explanation: Option<String>,
    pub answers: Vec<Answer>,
    pub detection_logits: Option<Vec<f32>>,
    /// Tokens generated for the explanation and answers.
    pub generated_tokens: usize,
    /// KV positions restored from the conversation cache instead of decoded
    /// (0: a cold start, image included).
    pub reused_tokens: usize,
    pub model: ModelIdentity,
    pub timings: EngineTimings,
}

/// What the engine learned about its model at load time.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub model: ModelIdentity,
    pub image_tokens: usize,
    pub n_vocab: usize,
    pub chat_template: &'static str,
    /// Requests the engine analyses concurrently.
    pub capacity: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("cannot load model: {0}")]
    Load(String),
    #[error("invalid setting `{key}`: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("prompt error: {0}")]
    Prompt(String),
    #[error("the model cannot process this image: {0}")]
    Image(String),
    #[error("request needs {needed} KV cells, the context has {available} (raise engine.n_ctx)")]
    TooLong { needed: usize, available: usize },
    #[error("llama.cpp failed: {0}")]
    Inference(String),
    #[error("cannot apply adapter: {0}")]
    Adapter(String),
    #[error("the engine has stopped")]
    Stopped,
    #[error("the caller stopped listening; the request was cancelled")]
    Cancelled,
}

impl EngineError {
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Load(_) => "model_load",
            EngineError::Config { .. } => "config",
            EngineError::Prompt(_) => "prompt",
            EngineError::Image(_) => "image_encode",
            EngineError::TooLong { .. } => "too_long",
            EngineError::Inference(_) => "inference",
            EngineError::Adapter(_) => "adapter",
            EngineError::Stopped => "stopped",
            EngineError::Cancelled => "cancelled",
        }
    }
}

pub(crate) enum Command {
    Analyze {
        request: AnalysisRequest,
        submitted: Instant,
        reply: oneshot::Sender<Result<Analysis, EngineError>>,
    },
    /// Applied once the requests in flight finish; later requests wait.
    SetAdapter {
        adapter: Option<AdapterSpec>,
        reply: oneshot::Sender<Result<ModelIdentity, EngineError>>,
    },
}

/// The model stage behind the CLI and the worker: anything that turns a
/// request into an analysis (the engine, or a benchmark stand-in).
pub trait Backend: Send + Sync {
    fn analyze(
        &self,
        request: AnalysisRequest,
    ) -> impl std::future::Future<Output = Result<Analysis, EngineError>> + Send;

    /// Replaces the adapter once in-flight requests finish; later ones wait.
    fn set_adapter(
        &self,
        adapter: Option<AdapterSpec>,
    ) -> impl std::future::Future<Output = Result<ModelIdentity, EngineError>> + Send;

    /// The model that answers now (its adapter changes with hot swaps).
    fn model(&self) -> ModelIdentity;

    /// The prompts it asks with: a verdict's turns, replayed as history for
    /// later questions, must read as the screening asked them.
    fn prompts(&self) -> &Prompts {
        static EMBEDDED: std::sync::OnceLock<Prompts> = std::sync::OnceLock::new();
        EMBEDDED.get_or_init(Prompts::embedded)
    }
}

/// Handle to the engine thread; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::Sender<Command>,
    info: Arc<EngineInfo>,
    prompts: Arc<Prompts>,
    /// The identity after the latest adapter swap.
    model: Arc<std::sync::Mutex<ModelIdentity>>,
}

impl Engine {
    /// Loads the model on a new thread and returns once it is ready.
    pub async fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        config.check()?;
        let (tx, rx) = mpsc::channel(config.engine.queue_capacity.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        let prompts = Arc::new(config.prompts.clone());
        std::thread::Builder::new()
            .name("dfa-engine".into())
            .spawn(move || thread::run(config, rx, ready_tx))
            .map_err(|e| EngineError::Load(format!("cannot spawn the engine thread: {e}")))?;
        let info = ready_rx.await.map_err(|_| EngineError::Stopped)??;
        Ok(Engine {
            tx,
            model: Arc::new(std::sync::Mutex::new(info.model.clone())),
            info: Arc::new(info),
            prompts,
        })
    }

    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// False once the engine thread has stopped (it failed, or shut down).
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Replaces the active adapter (or removes it) once in-flight work is done.
    pub async fn swap_adapter(
        &self,
        adapter: Option<AdapterSpec>,
    ) -> Result<ModelIdentity, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::SetAdapter { adapter, reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        let model = rx.await.map_err(|_| EngineError::Stopped)??;
        if let Ok(mut current) = self.model.lock() {
            *current = model.clone();
        }
        Ok(model)
    }
}

impl Backend for Engine {
    async fn analyze(&self, request: AnalysisRequest) -> Result<Analysis, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Analyze {
                request,
                submitted: Instant::now(),
                reply,
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    async fn set_adapter(
        &self,
        adapter: Option<AdapterSpec>,
    ) -> Result<ModelIdentity, EngineError> {
        self.swap_adapter(adapter).await
    }

    fn model(&self) -> ModelIdentity {
        self.model
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn prompts(&self) -> &Prompts {
        &self.prompts
    }
}
