//! The engine on real llama.cpp with the generated tiny model.

mod common;

use dfa::engine::{Analysis, AnalysisRequest, Backend, Engine, Explain, Tasks};
use futures::future::join_all;

fn screening() -> Tasks {
    Tasks {
        explain: Explain::Never,
        keep_detection_logits: true,
        ..Tasks::screening(0.5)
    }
}

async fn screen(engine: &Engine, seed: u32) -> Analysis {
    engine
        .analyze(AnalysisRequest {
            image: common::decoded(seed),
            tasks: screening(),
        })
        .await
        .expect("analysis")
}

fn logits(a: &Analysis) -> &[f32] {
    a.detection_logits.as_deref().expect("logits kept")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_loads_and_the_image_changes_the_logits() {
    let engine = common::engine(None).await;
    let info = engine.info();
    assert_eq!(info.image_tokens, 16, "32 px / patch 8 = 16 image tokens");
    assert_eq!(info.chat_template, "vicuna_v1");
    assert_eq!(info.model.base_sha256.len(), 64);
    assert!(info.model.adapter.is_none());

    let a = screen(&engine, 1).await;
    let b = screen(&engine, 2).await;
    assert_eq!(logits(&a).len(), info.n_vocab);
    let max_diff = logits(&a)
        .iter()
        .zip(logits(&b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff > 1e-3,
        "different images gave the same logits (max diff {max_diff})"
    );
    let (pa, pb) = (a.p_fake.unwrap(), b.p_fake.unwrap());
    assert!((pa - pb).abs() > 1e-4, "p_fake {pa} vs {pb}");
    assert!((0.0..=1.0).contains(&pa));

    let scores = a.type_scores.unwrap().as_array();
    assert!(
        (scores.iter().sum::<f32>() - 1.0).abs() < 1e-5,
        "{scores:?}"
    );
    assert!(scores.iter().all(|&s| s > 0.0));

    // The same image twice gives the same answer.
    let again = screen(&engine, 1).await;
    assert!((again.p_fake.unwrap() - pa).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lora_moves_p_fake_and_removing_it_restores_the_base_exactly() {
    let engine = common::engine(None).await;
    let base = screen(&engine, 3).await;

    let identity = engine
        .set_adapter(Some(common::adapter(0, 1.0)))
        .await
        .unwrap();
    assert_eq!(identity.adapter.as_ref().unwrap().id, "tiny-0");
    let full = screen(&engine, 3).await;
    assert_eq!(full.model.adapter.as_ref().unwrap().scale, 1.0);
    let (p0, p1) = (base.p_fake.unwrap(), full.p_fake.unwrap());
    assert!(
        (p0 - p1).abs() > 0.01,
        "adapter barely moved p_fake: {p0} -> {p1}"
    );

    engine
        .set_adapter(Some(common::adapter(0, 0.5)))
        .await
        .unwrap();
    let half = screen(&engine, 3).await.p_fake.unwrap();
    let (lo, hi) = (p0.min(p1), p0.max(p1));
    assert!(
        lo < half && half < hi,
        "scale 0.5 gave {half}, outside ({lo}, {hi})"
    );

    // A second adapter file is loaded at run time (new context).
    engine
        .set_adapter(Some(common::adapter(1, 1.0)))
        .await
        .unwrap();
    let other = screen(&engine, 3).await;
    assert_eq!(other.model.adapter.as_ref().unwrap().id, "tiny-1");
    assert_ne!(other.p_fake, full.p_fake);

    let identity = engine.set_adapter(None).await.unwrap();
    assert!(identity.adapter.is_none());
    let restored = screen(&engine, 3).await;
    assert_eq!(
        logits(&restored),
        logits(&base),
        "logits after removal differ from the base model's"
    );
    assert_eq!(restored.p_fake, base.p_fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_given_at_start_matches_one_set_later() {
    let with = common::engine(Some(common::adapter(0, 1.0))).await;
    let a = screen(&with, 4).await;
    assert_eq!(with.info().model.adapter.as_ref().unwrap().id, "tiny-0");
    let later = common::engine(None).await;
    later
        .set_adapter(Some(common::adapter(0, 1.0)))
        .await
        .unwrap();
    let b = screen(&later, 4).await;
    assert_eq!(logits(&a), logits(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_and_sequential_analyses_agree() {
    let engine = common::engine(None).await;
    let seeds: Vec<u32> = (10..18).collect();
    let mut sequential = Vec::new();
    for &s in &seeds {
        sequential.push(screen(&engine, s).await);
    }
    let concurrent = join_all(seeds.iter().map(|&s| {
        let engine = engine.clone();
        async move { screen(&engine, s).await }
    }))
    .await;
    for (i, (a, b)) in sequential.iter().zip(&concurrent).enumerate() {
        let (pa, pb) = (a.p_fake.unwrap(), b.p_fake.unwrap());
        assert!(
            (pa - pb).abs() <= 1e-4,
            "image {i}: p_fake {pa} alone vs {pb} batched"
        );
        let (ta, tb) = (
            a.type_scores.unwrap().as_array(),
            b.type_scores.unwrap().as_array(),
        );
        for k in 0..4 {
            assert!(
                (ta[k] - tb[k]).abs() <= 1e-4,
                "image {i} type {k}: {ta:?} vs {tb:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explanation_and_conversation_are_generated() {
    let engine = common::engine(None).await;
    let questions = vec!["Why?".to_string(), "Is the hairline natural?".to_string()];
    let a = engine
        .analyze(AnalysisRequest {
            image: common::decoded(5),
            tasks: Tasks {
                explain: Explain::Always,
                questions: questions.clone(),
                ..Tasks::screening(0.5)
            },
        })
        .await
        .unwrap();
    assert!(a.explanation.is_some());
    assert!(a.timings.generate > 0.0 && a.timings.prefill > 0.0 && a.timings.encode_image > 0.0);
    let asked: Vec<&str> = a.answers.iter().map(|x| x.question.as_str()).collect();
    assert_eq!(asked, ["Why?", "Is the hairline natural?"]);

    // A follow-up sees the conversation: the same question after a different
    // history is a different prompt, so the generation may differ, but both run.
    let follow = engine
        .analyze(AnalysisRequest {
            image: common::decoded(5),
            tasks: Tasks::follow_up(
                vec![dfa::domain::prompts::Turn {
                    question: "Why?".into(),
                    answer: a.answers[0].answer.clone(),
                }],
                "Is the hairline natural?".into(),
            ),
        })
        .await
        .unwrap();
    assert_eq!(follow.answers.len(), 1);
    assert!(follow.p_fake.is_none(), "a follow-up does not re-screen");
    // Greedy decoding is deterministic: asking with the same history as the
    // batched conversation reproduces its second answer.
    assert_eq!(follow.answers[0].answer, a.answers[1].answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screening_generates_text_only_above_the_explain_threshold() {
    let engine = common::engine(None).await;
    let run = |threshold: f32| {
        let engine = engine.clone();
        async move {
            engine
                .analyze(AnalysisRequest {
                    image: common::decoded(6),
                    tasks: Tasks::screening(threshold),
                })
                .await
                .unwrap()
        }
    };
    let never = run(1.0).await;
    assert!(never.p_fake.unwrap() < 1.0);
    assert!(never.explanation.is_none());
    assert_eq!(never.timings.generate, 0.0);
    let always = run(0.0).await;
    assert!(always.explanation.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_context_is_rejected_naming_the_setting() {
    let mut config = common::engine_config(None);
    config.engine.n_ctx = 64;
    config.engine.n_batch = 64;
    let err = Engine::start(config).await.err().expect("must be rejected");
    assert!(err.to_string().contains("engine.n_ctx"), "{err}");
}

/// The tiny mmproj with its projector's output bias shifted: what
/// `retrain.train_projector` produces, as far as the engine can tell.
fn shifted_mmproj(dir: &std::path::Path) -> std::path::PathBuf {
    use candle_core::{Device, Tensor};
    use dfa::trainer::projector::ProjectorSet;
    let original = &common::tiny().mmproj;
    let projector = ProjectorSet::from_mmproj(original, &Device::Cpu).expect("projector");
    let shifted: Vec<(String, Tensor)> = projector
        .named_tensors()
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name == "mm.2.bias")
        .map(|(name, t)| (name, (&t + 1.0).unwrap()))
        .collect();
    assert_eq!(shifted.len(), 1, "the tiny mmproj has mm.2.bias");
    let out = dir.join("shifted.mmproj.gguf");
    dfa::trainer::mmproj::write_replacing(original, &out, &shifted).expect("write the mmproj");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapters_own_projector_is_swapped_in_and_out_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mmproj = shifted_mmproj(dir.path());
    let engine = common::engine(None).await;
    let base_mmproj = engine.info().model.mmproj_sha256.clone();
    engine
        .set_adapter(Some(common::adapter(0, 1.0)))
        .await
        .unwrap();
    let lora_only = screen(&engine, 5).await;

    let pair = dfa::engine::AdapterSpec {
        mmproj: Some(mmproj.clone()),
        ..common::adapter(0, 1.0)
    };
    let identity = engine.set_adapter(Some(pair.clone())).await.unwrap();
    assert_eq!(
        identity.mmproj_sha256,
        dfa::domain::sha256_file(&mmproj).unwrap()
    );
    assert_ne!(identity.mmproj_sha256, base_mmproj);
    let with_projector = screen(&engine, 5).await;
    assert_eq!(with_projector.model.mmproj_sha256, identity.mmproj_sha256);
    assert_ne!(
        logits(&with_projector),
        logits(&lora_only),
        "the adapter's projector did not change what the model sees"
    );

    // A projector that cannot be opened is refused; the pair keeps serving.
    let broken = dir.path().join("broken.mmproj.gguf");
    std::fs::write(&broken, b"not a gguf").unwrap();
    let refused = engine
        .set_adapter(Some(dfa::engine::AdapterSpec {
            mmproj: Some(broken),
            ..common::adapter(1, 1.0)
        }))
        .await;
    assert!(refused.is_err(), "a broken mmproj was accepted");
    let still = screen(&engine, 5).await;
    assert_eq!(still.model, with_projector.model);
    assert_eq!(logits(&still), logits(&with_projector));

    // Back to the LoRA alone: the configured mmproj again, exactly.
    let identity = engine
        .set_adapter(Some(common::adapter(0, 1.0)))
        .await
        .unwrap();
    assert_eq!(identity.mmproj_sha256, base_mmproj);
    assert_eq!(logits(&screen(&engine, 5).await), logits(&lora_only));

    // A pair given at start serves as the same pair swapped in later.
    let started = common::engine(Some(pair)).await;
    assert_eq!(logits(&screen(&started, 5).await), logits(&with_projector));
}
