//! The conversation cache and streamed answers on real llama.cpp with the
//! generated tiny model: follow-ups restore the image and the turns so far
//! instead of decoding them, and answer exactly as a cold engine does.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use dfa::domain::prompts::Turn;
use dfa::engine::{
    Analysis, AnalysisRequest, Backend, Engine, EngineConfig, EngineError, Explain, Tasks,
};
use tokio::sync::mpsc;

const MIB: u64 = 1024 * 1024;

fn config(cache_bytes: u64) -> EngineConfig {
    let mut config = common::engine_config(None);
    config.engine.conversation_cache_bytes = cache_bytes;
    config
}

async fn start(config: EngineConfig) -> Engine {
    Engine::start(config).await.expect("engine starts")
}

fn ask(key: &str, history: Vec<Turn>, question: &str) -> Tasks {
    Tasks {
        image_key: Some(key.into()),
        ..Tasks::follow_up(history, question.into())
    }
}

async fn run(engine: &Engine, seed: u32, tasks: Tasks) -> Result<Analysis, EngineError> {
    engine
        .analyze(AnalysisRequest {
            image: common::decoded(seed),
            tasks,
        })
        .await
}

async fn answer(engine: &Engine, seed: u32, tasks: Tasks) -> Analysis {
    run(engine, seed, tasks).await.expect("analysis")
}

fn turn(question: &str, a: &Analysis) -> Turn {
    Turn {
        question: question.into(),
        answer: a.answers.last().expect("an answer").answer.clone(),
    }
}

/// Runs `tasks` with a stream of `capacity`, reading every piece.
async fn streamed(engine: &Engine, seed: u32, tasks: Tasks) -> (Vec<String>, Analysis) {
    streamed_through(64, engine, seed, tasks).await
}

async fn streamed_through(
    capacity: usize,
    engine: &Engine,
    seed: u32,
    mut tasks: Tasks,
) -> (Vec<String>, Analysis) {
    let (tx, mut rx) = mpsc::channel(capacity);
    tasks.stream = Some(tx);
    let engine2 = engine.clone();
    let job = tokio::spawn(async move { run(&engine2, seed, tasks).await });
    let mut pieces = Vec::new();
    while let Some(piece) = rx.recv().await {
        pieces.push(piece);
    }
    let analysis = job.await.expect("task").expect("analysis");
    (pieces, analysis)
}

const Q1: &str = "Why?";
const Q2: &str = "Is the hairline natural?";
const Q3: &str = "What about the eyes?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_restores_the_conversation_and_answers_as_a_cold_engine() {
    let warm = start(config(64 * MIB)).await;
    let cold = start(config(0)).await;
    let prefix_and_image = warm.info().image_tokens;

    let first = answer(&warm, 7, ask("img-7", vec![], Q1)).await;
    assert_eq!(first.reused_tokens, 0, "nothing cached yet");
    let cold_first = answer(&cold, 7, ask("img-7", vec![], Q1)).await;
    assert_eq!(first.answers, cold_first.answers);

    let history = vec![turn(Q1, &first)];
    let second = answer(&warm, 7, ask("img-7", history.clone(), Q2)).await;
    let cold_second = answer(&cold, 7, ask("img-7", history.clone(), Q2)).await;
    assert!(
        second.reused_tokens > prefix_and_image,
        "prefix, image and the first turn's text are restored: {} positions",
        second.reused_tokens
    );
    assert_eq!(
        cold_second.reused_tokens, 0,
        "a cache of 0 bytes never reuses"
    );
    assert_eq!(
        second.answers, cold_second.answers,
        "same KV, same greedy answer"
    );
    assert_eq!(second.timings.encode_image, 0.0, "no vision tower on a hit");

    // And the next turn again.
    let mut longer = history;
    longer.push(turn(Q2, &second));
    let third = answer(&warm, 7, ask("img-7", longer.clone(), Q3)).await;
    let cold_third = answer(&cold, 7, ask("img-7", longer, Q3)).await;
    assert!(
        third.reused_tokens > second.reused_tokens,
        "the conversation grew"
    );
    assert_eq!(third.answers, cold_third.answers);
    assert_eq!(cold_third.reused_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screening_leaves_its_image_for_the_follow_up() {
    let warm = start(config(64 * MIB)).await;
    let cold = start(config(0)).await;
    let screening = Tasks {
        image_key: Some("img-3".into()),
        explain: Explain::Never,
        ..Tasks::screening(0.5)
    };
    let screened = answer(&warm, 3, screening.clone()).await;
    assert_eq!(screened.reused_tokens, 0);
    assert!(screened.timings.encode_image > 0.0);

    let follow = answer(&warm, 3, ask("img-3", vec![], Q1)).await;
    assert!(
        follow.reused_tokens > warm.info().image_tokens,
        "prefix and image restored: {}",
        follow.reused_tokens
    );
    assert_eq!(follow.timings.encode_image, 0.0);
    let cold_follow = answer(&cold, 3, ask("img-3", vec![], Q1)).await;
    assert_eq!(follow.answers, cold_follow.answers);

    // A screening on a cached image skips the vision tower and scores alike.
    let again = answer(&warm, 3, screening).await;
    assert!(again.reused_tokens > 0);
    assert!((again.p_fake.unwrap() - screened.p_fake.unwrap()).abs() < 1e-5);

    // Another image under another key shares nothing.
    let other = answer(&warm, 4, ask("img-4", vec![], Q1)).await;
    assert_eq!(other.reused_tokens, 0);
}

/// One prefix-and-image state of the tiny model, estimated from its shape:
/// per cell 12 bytes of metadata plus K and V rows of every layer in f16.
fn image_state_bytes(positions: usize) -> u64 {
    let shape = dfa::model::tiny::ModelShape::tiny();
    let head_dim = shape.n_embd / shape.n_head as usize;
    let kv_row = head_dim * shape.n_head_kv as usize * 2;
    (positions * (12 + shape.n_layer * 2 * kv_row)) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_image_evicts_the_least_recently_used_within_the_budget() {
    let screen = |key: &str| Tasks {
        image_key: Some(key.into()),
        explain: Explain::Never,
        ..Tasks::screening(0.5)
    };
    // The positions of prefix and image, from an unbounded engine.
    let probe = start(config(64 * MIB)).await;
    answer(&probe, 1, screen("probe")).await;
    let positions = answer(&probe, 1, screen("probe")).await.reused_tokens;
    let one = image_state_bytes(positions);
    println!("one prefix+image state: {positions} positions, about {one} bytes");

    // Room for two states, not three.
    let mut c = config(one * 5 / 2);
    c.engine.kv_cache_type = dfa::settings::KvCacheKind::F16;
    let engine = start(c).await;
    for (seed, key) in [(1, "a"), (2, "b")] {
        answer(&engine, seed, screen(key)).await;
    }
    // Both fit: a is reused (and so becomes the most recent).
    assert!(answer(&engine, 1, screen("a")).await.reused_tokens > 0);
    answer(&engine, 3, screen("c")).await;
    // b was the least recently used.
    assert_eq!(answer(&engine, 2, screen("b")).await.reused_tokens, 0);
    // b's return evicted a; c stays.
    assert!(answer(&engine, 3, screen("c")).await.reused_tokens > 0);
    assert_eq!(answer(&engine, 1, screen("a")).await.reused_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_pieces_add_up_to_the_last_answer() {
    let engine = start(config(64 * MIB)).await;
    let tasks = Tasks {
        questions: vec![Q1.into(), Q2.into()],
        ..ask("img-5", vec![], Q1)
    };
    let (pieces, analysis) = streamed(&engine, 5, tasks).await;
    let last = &analysis.answers[1].answer;
    assert!(!last.is_empty(), "the tiny model says something");
    assert_eq!(pieces.concat(), *last, "pieces: {pieces:?}");
    assert!(pieces.iter().all(|p| !p.is_empty()));
    assert!(pieces.len() > 1, "streamed in pieces: {pieces:?}");

    // A streamed follow-up restored from the cache streams alike.
    let history = analysis
        .answers
        .iter()
        .map(|a| Turn {
            question: a.question.clone(),
            answer: a.answer.clone(),
        })
        .collect();
    let (pieces, follow) = streamed(&engine, 5, ask("img-5", history, Q3)).await;
    assert!(follow.reused_tokens > 0);
    assert_eq!(pieces.concat(), follow.answers[0].answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_follow_ups_share_a_cached_image_and_a_full_channel_loses_nothing() {
    let warm = start(config(64 * MIB)).await;
    let cold = start(config(0)).await;
    let first = answer(&warm, 11, ask("img-11", vec![], Q1)).await;
    let history = vec![turn(Q1, &first)];
    // Two reviewers at once on the same image, one reading through a
    // channel with room for a single piece (the engine must hold the rest).
    let (a, b) = tokio::join!(
        streamed_through(1, &warm, 11, ask("img-11", history.clone(), Q2)),
        streamed(&warm, 11, ask("img-11", history.clone(), Q3)),
    );
    for ((pieces, analysis), question) in [(a, Q2), (b, Q3)] {
        assert!(
            analysis.reused_tokens > warm.info().image_tokens,
            "{question}"
        );
        assert_eq!(pieces.concat(), analysis.answers[0].answer, "{question}");
        let cold = answer(&cold, 11, ask("img-11", history.clone(), question)).await;
        assert_eq!(analysis.answers, cold.answers, "{question}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_receiver_cancels_and_the_engine_serves_on() {
    let mut c = config(64 * MIB);
    c.max_answer_tokens = 48;
    let engine = start(c).await;
    let (full, expected) = streamed(&engine, 6, ask("img-6", vec![], Q1)).await;
    assert!(
        full.len() >= 3,
        "the test needs an answer of at least 3 pieces: {full:?}"
    );

    // Room for one piece: after the first is taken, the job cannot finish
    // until more are taken, so dropping the receiver must cancel it.
    let (tx, mut rx) = mpsc::channel(1);
    let tasks = Tasks {
        stream: Some(tx),
        ..ask("img-6", vec![], Q1)
    };
    let engine2 = engine.clone();
    let job = tokio::spawn(async move { run(&engine2, 6, tasks).await });
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a first piece in time");
    assert_eq!(first.as_deref(), Some(full[0].as_str()));
    drop(rx);
    let result = tokio::time::timeout(Duration::from_secs(30), job)
        .await
        .expect("the engine answers")
        .expect("task");
    assert!(
        matches!(result, Err(EngineError::Cancelled)),
        "got {result:?}"
    );
    assert_eq!(EngineError::Cancelled.kind(), "cancelled");

    // A receiver dropped before the job starts cancels it too.
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let tasks = Tasks {
        stream: Some(tx),
        ..ask("img-6", vec![], Q1)
    };
    assert!(matches!(
        run(&engine, 6, tasks).await,
        Err(EngineError::Cancelled)
    ));

    // The engine goes on, its sequences free: the same question, the same answer.
    let (again, analysis) = streamed(&engine, 6, ask("img-6", vec![], Q1)).await;
    assert_eq!(again, full);
    assert_eq!(analysis.answers, expected.answers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_change_forgets_the_cached_conversations() {
    let engine = start(config(64 * MIB)).await;
    let first = answer(&engine, 8, ask("img-8", vec![], Q1)).await;
    let history = vec![turn(Q1, &first)];
    assert!(
        answer(&engine, 8, ask("img-8", history.clone(), Q2))
            .await
            .reused_tokens
            > 0
    );

    // Loading an adapter file makes a new context: nothing carried over.
    engine
        .set_adapter(Some(common::adapter(0, 1.0)))
        .await
        .unwrap();
    let after = answer(&engine, 8, ask("img-8", history.clone(), Q2)).await;
    assert_eq!(after.reused_tokens, 0, "KV of the base model is not reused");
    assert!(after.model.adapter.is_some());

    // The same adapter again changes nothing: the cache stays.
    engine
        .set_adapter(Some(common::adapter(0, 1.0)))
        .await
        .unwrap();
    assert!(
        answer(&engine, 8, ask("img-8", history.clone(), Q2))
            .await
            .reused_tokens
            > 0
    );

    // Switching on the live context (the base again) empties it.
    engine.set_adapter(None).await.unwrap();
    let base = answer(&engine, 8, ask("img-8", history.clone(), Q2)).await;
    assert_eq!(base.reused_tokens, 0, "KV of the adapter is not reused");
    assert!(base.model.adapter.is_none());
}

/// Time to the first streamed piece of a follow-up, cold (an engine with no
/// cache: prefix, image and conversation decoded) and warm (restored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_follow_ups_reach_the_first_piece_sooner() {
    let warm = start(config(64 * MIB)).await;
    let cold = start(config(0)).await;
    let first = answer(&warm, 9, ask("img-9", vec![], Q1)).await;
    let history = vec![turn(Q1, &first)];
    let first_piece = |engine: Engine, history: Vec<Turn>| async move {
        let (tx, mut rx) = mpsc::channel(64);
        let tasks = Tasks {
            stream: Some(tx),
            ..ask("img-9", history, Q2)
        };
        let started = Instant::now();
        let job = tokio::spawn(async move { run(&engine, 9, tasks).await });
        rx.recv().await.expect("a piece");
        let elapsed = started.elapsed();
        while rx.recv().await.is_some() {}
        (elapsed, job.await.expect("task").expect("analysis"))
    };
    let mut cold_ms = Vec::new();
    let mut warm_ms = Vec::new();
    for _ in 0..5 {
        let (t, a) = first_piece(cold.clone(), history.clone()).await;
        assert_eq!(a.reused_tokens, 0);
        cold_ms.push(t.as_secs_f64() * 1000.0);
        let (t, a) = first_piece(warm.clone(), history.clone()).await;
        assert!(a.reused_tokens > 0);
        warm_ms.push(t.as_secs_f64() * 1000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "tiny model, first streamed piece of a follow-up: cold {:.2} ms, warm {:.2} ms (median of 5)",
        median(&mut cold_ms),
        median(&mut warm_ms)
    );
}
