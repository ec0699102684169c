//! The engine thread: loads the model, owns every llama.cpp object, and runs
//! the scheduler between commands. LoRA adapters need `&mut LlamaModel`, so
//! loading a new adapter file drops the context and makes a new one; so does
//! an adapter's own projector (a new mtmd context).
//!
//! Each turn of the serving loop: receive commands → admit waiting jobs →
//! (when idle) apply a pending adapter swap → step the batch, which replies
//! to the jobs it finishes. The conversation cache lives with the context:
//! an adapter change empties it (a new context starts with an empty one).

use std::collections::VecDeque;

use llama_cpp_2::llama_backend::LlamaBackend;
use tokio::sync::{mpsc, oneshot};

use super::adapters::{Adapters, Switch};
use super::load::{backend_in, load_err, wanted_mmproj, Loaded};
use super::scheduler::{Job, Scheduler};
use super::{AdapterSpec, Command, EngineConfig, EngineError, EngineInfo};
use crate::domain::ModelIdentity;

type Ready = oneshot::Sender<Result<EngineInfo, EngineError>>;

/// An adapter change waiting for the requests in flight to finish.
struct SwapRequest {
    adapter: Option<AdapterSpec>,
    reply: oneshot::Sender<Result<ModelIdentity, EngineError>>,
}

/// Accepted work that has not started: prepared jobs in arrival order, and
/// an adapter swap that holds back everything behind it.
#[derive(Default)]
struct Backlog {
    waiting: VecDeque<Job>,
    swap: Option<SwapRequest>,
}

/// Why serving on one context ended.
enum ContextEnd {
    /// The command queue closed (or the starter went away): stop.
    Closed,
    /// An adapter file or a projector must be loaded, which needs the context gone.
    LoadAdapter(SwapRequest),
}

/// What receiving commands found.
enum Inbox {
    Open,
    Closed,
}

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
    let backend = backend_in(config.engine.backends_dir())?;
    let mut loaded = Loaded::open(config, backend)?;
    let mut backlog = Backlog::default();
    loop {
        match serve_context(config, backend, &mut loaded, rx, ready, &mut backlog)? {
            ContextEnd::Closed => return Ok(()),
            ContextEnd::LoadAdapter(request) => backlog.swap = load_adapter(&mut loaded, request),
        }
    }
}

/// Makes a context and serves on it until the queue closes or an adapter
/// file must be loaded.
fn serve_context(
    config: &EngineConfig,
    backend: &LlamaBackend,
    loaded: &mut Loaded,
    rx: &mut mpsc::Receiver<Command>,
    ready: &mut Option<Ready>,
    backlog: &mut Backlog,
) -> Result<ContextEnd, EngineError> {
    let mut ctx = loaded
        .model
        .new_context(backend, loaded.context_params(config))
        .map_err(|e| load_err("context", &e))?;
    loaded.adapters.apply(&mut ctx)?;
    let identity = loaded.adapters.identity(&loaded.base);
    let mut sched = Scheduler::new(
        &loaded.model,
        &mut ctx,
        &mut loaded.mtmd,
        &loaded.shared,
        identity,
    );
    if !announce_ready(ready, &sched, loaded.image_tokens) {
        return Ok(ContextEnd::Closed);
    }
    if let Some(request) = backlog.swap.take() {
        // The adapter file was loaded while no context existed.
        debug_assert!(request.adapter == loaded.adapters.active.as_ref().map(|(_, s)| s.clone()));
        let _ = request.reply.send(Ok(sched.identity.clone()));
    }

    loop {
        if let Inbox::Closed = receive(rx, &sched, backlog, loaded.shared.max_jobs) {
            return Ok(ContextEnd::Closed);
        }
        admit(&mut sched, &mut backlog.waiting);
        if sched.is_idle() && backlog.waiting.is_empty() {
            if let Some(request) = backlog.swap.take() {
                // A different projector needs a new mtmd context, which the
                // scheduler holds: like a new adapter file, it waits for no context.
                let wanted = wanted_mmproj(&loaded.configured_mmproj, request.adapter.as_ref());
                if wanted != loaded.mmproj {
                    return Ok(ContextEnd::LoadAdapter(request));
                }
                if let Some(request) =
                    swap_when_idle(&mut loaded.adapters, &mut sched, request, &loaded.base)
                {
                    return Ok(ContextEnd::LoadAdapter(request));
                }
            }
            continue;
        }
        sched.step();
    }
}

/// Tells the starter, once, that the model is loaded; `false` when the
/// starter has gone away.
fn announce_ready(ready: &mut Option<Ready>, sched: &Scheduler, image_tokens: usize) -> bool {
    let Some(r) = ready.take() else {
        return true;
    };
    let info = EngineInfo {
        model: sched.identity.clone(),
        image_tokens,
        n_vocab: sched.model.n_vocab() as usize,
        chat_template: sched.shared.format.name(),
        capacity: sched.shared.max_jobs,
    };
    r.send(Ok(info)).is_ok()
}

/// Takes commands until the backlog is full or a swap waits; blocks only
/// when there is nothing else to do.
fn receive(
    rx: &mut mpsc::Receiver<Command>,
    sched: &Scheduler,
    backlog: &mut Backlog,
    max_jobs: usize,
) -> Inbox {
    while backlog.swap.is_none() && backlog.waiting.len() < max_jobs {
        let command = if sched.is_idle() && backlog.waiting.is_empty() {
            match rx.blocking_recv() {
                Some(c) => c,
                None => return Inbox::Closed,
            }
        } else {
            match rx.try_recv() {
                Ok(c) => c,
                // Empty, or closed with work left: the work goes on, and the
                // blocking receive above sees the close once it is done.
                Err(_) => break,
            }
        };
        take_command(command, sched, backlog);
    }
    Inbox::Open
}

/// Prepares a request (a failure is answered at once) or records a swap.
fn take_command(command: Command, sched: &Scheduler, backlog: &mut Backlog) {
    match command {
        Command::Analyze {
            request,
            submitted,
            reply,
        } => match sched.prepare(request, submitted, reply) {
            Ok(job) => backlog.waiting.push_back(job),
            Err((reply, e)) => {
                let _ = reply.send(Err(e));
            }
        },
        Command::SetAdapter { adapter, reply } => {
            backlog.swap = Some(SwapRequest { adapter, reply })
        }
    }
}

/// Starts waiting jobs in order while they fit.
fn admit(sched: &mut Scheduler, waiting: &mut VecDeque<Job>) {
    while waiting.front().is_some_and(|job| sched.can_start(job)) {
        if let Some(job) = waiting.pop_front() {
            sched.start(job);
        }
    }
}

/// Applies a swap on the idle context and answers it, or hands it back when
/// its file must be loaded first.
fn swap_when_idle(
    adapters: &mut Adapters,
    sched: &mut Scheduler,
    request: SwapRequest,
    base: &ModelIdentity,
) -> Option<SwapRequest> {
    match adapters.switch(sched.ctx, request.adapter.clone()) {
        Ok(Switch::Applied) => {
            let identity = adapters.identity(base);
            if identity != sched.identity {
                // Cached KV states were computed with the previous adapter.
                sched.forget_conversations();
            }
            sched.identity = identity;
            let _ = request.reply.send(Ok(sched.identity.clone()));
            None
        }
        Ok(Switch::NeedsLoad) => Some(request),
        Err(e) => {
            let _ = request.reply.send(Err(e));
            None
        }
    }
}

/// Loads a swap's adapter file and projector (no context exists now) and
/// makes them active; returns the swap to answer once the next context is
/// up, or `None` when it was answered with an error (nothing changed then).
fn load_adapter(loaded: &mut Loaded, request: SwapRequest) -> Option<SwapRequest> {
    let index = match &request.adapter {
        Some(spec) => match loaded.adapters.load(&mut loaded.model, spec) {
            Ok(i) => Some(i),
            Err(e) => {
                let _ = request.reply.send(Err(e));
                return None;
            }
        },
        None => None,
    };
    let wanted = loaded.mmproj_for(request.adapter.as_ref()).to_path_buf();
    if wanted != loaded.mmproj {
        if let Err(e) = loaded.reopen_mtmd(&wanted) {
            let _ = request.reply.send(Err(e));
            return None;
        }
    }
    loaded.adapters.active = index.zip(request.adapter.clone());
    Some(request)
}
