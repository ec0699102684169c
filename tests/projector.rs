//! DFA-GPT's recipe on the tiny model: the candle vision tower and projector
//! reproduce llama.cpp's mtmd image embeddings, training the projector with
//! the LoRA lowers the loss deterministically, and the written mmproj is
//! served by llama.cpp exactly as the trainer computes it.

mod common;

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use dfa::domain::prompts::Prompts;
use dfa::intake::{decode_image, DecodedImage};
use dfa::model::tiny::{generate, ModelShape};
use dfa::settings::{ChatTemplateChoice, FlashAttention, KvCacheKind};
use dfa::trainer::adapter_file::write_adapter;
use dfa::trainer::base::BaseModel;
use dfa::trainer::featurize::{Featurizer, ReferenceSettings};
use dfa::trainer::lora::{LoraSet, Projection};
use dfa::trainer::projector::ProjectorSet;
use dfa::trainer::vision::VisionTower;
use dfa::trainer::{self, Example, ExampleImage, TrainConfig, TrainError};
use image::ImageFormat;

/// Agreement bound on max |ours − llama.cpp|, relative to the largest
/// |embedding| llama.cpp returns. Measured on the tiny model: ≈ 6e-4 (F32 and
/// F16 weights alike), F16-sized and not reduced by reproducing ggml's CPU
/// roundings (F16 im2col, the GELU table, F16 K/V), so consistent with mtmd's
/// CPU flash attention accumulating softmax·V in F16 key by key (not
/// reproduced). Structural mistakes are ≥ 600× larger: the class token first
/// (as Hugging Face's CLIP) gives 0.74, running one layer fewer 0.39.
const REL_TOL: f32 = 5e-3;

fn featurizer(mmproj: &Path) -> Featurizer {
    featurizer_for(&common::tiny().gguf, mmproj)
}

fn featurizer_for(gguf: &Path, mmproj: &Path) -> Featurizer {
    Featurizer::load(
        gguf,
        mmproj,
        Prompts::embedded(),
        ChatTemplateChoice::Auto,
        2,
    )
    .expect("featurizer loads")
}

fn image(seed: u32, w: u32, h: u32) -> DecodedImage {
    let bytes = common::encode(&common::picture(seed, w, h), ImageFormat::Png);
    decode_image(&bytes, &common::settings().image).expect("decode")
}

/// Square and not, larger, smaller and at the tower's 32-px input size.
fn images() -> Vec<(&'static str, DecodedImage)> {
    vec![
        ("64x64", image(3, 64, 64)),
        ("32x32 (input size)", image(4, 32, 32)),
        ("50x30", image(5, 50, 30)),
        ("20x45", image(6, 20, 45)),
        ("97x61", image(7, 97, 61)),
    ]
}

fn tower() -> VisionTower {
    VisionTower::load(&common::tiny().mmproj, &Device::Cpu).expect("tower loads")
}

/// (max |ours − theirs|, max |theirs|).
fn compare(ours: &[f32], theirs: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), theirs.len(), "embedding size");
    let diff = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    (diff, theirs.iter().map(|x| x.abs()).fold(0.0, f32::max))
}

/// The worst relative disagreement over `images()` between the candle
/// tower + `projector` and llama.cpp loading `mmproj`.
fn worst_disagreement(projector: &ProjectorSet, mmproj: &Path) -> f32 {
    worst_disagreement_with(&common::tiny().gguf, &tower(), projector, mmproj)
}

fn worst_disagreement_with(
    gguf: &Path,
    tower: &VisionTower,
    projector: &ProjectorSet,
    mmproj: &Path,
) -> f32 {
    let mut f = featurizer_for(gguf, mmproj);
    let mut worst: f32 = 0.0;
    for (name, img) in images() {
        let theirs = f.encode_image(&img).expect("mtmd encodes");
        let ours = projector
            .project(&tower.features(&img).expect("features"))
            .expect("project");
        assert_eq!(
            (ours.n_tokens, ours.n_embd),
            (theirs.n_tokens, theirs.n_embd),
            "{name}: shape"
        );
        let (d, m) = compare(&ours.data, &theirs.data);
        eprintln!("{name}: max |Δ| {d:e} of max |x| {m:.3} ({:e})", d / m);
        assert!(d <= REL_TOL * m, "{name}: max |Δ| {d} > {REL_TOL} × {m}");
        worst = worst.max(d / m);
    }
    worst
}

#[test]
fn candle_tower_and_projector_match_llama_cpp_embeddings() {
    let mmproj = &common::tiny().mmproj;
    let projector = ProjectorSet::from_mmproj(mmproj, &Device::Cpu).unwrap();
    let worst = worst_disagreement(&projector, mmproj);
    eprintln!("worst relative disagreement: {worst:e}");

    // The bound discriminates: another image's embeddings are far outside it.
    let mut f = featurizer(mmproj);
    let (a, b) = (image(3, 64, 64), image(8, 64, 64));
    let ours = projector.project(&tower().features(&a).unwrap()).unwrap();
    let other = f.encode_image(&b).unwrap();
    let (d, m) = compare(&ours.data, &other.data);
    assert!(d > 10.0 * REL_TOL * m, "another image: {d} of {m}");
}

#[test]
fn f16_weights_agree_too() {
    // The tiny shape with F16 matrices, as real mmprojs store them: ggml
    // then rounds activations to F16 before each product.
    let dir = tempfile::tempdir().unwrap();
    let shape = ModelShape {
        dtype: GgmlDType::F16,
        ..ModelShape::tiny()
    };
    let m = generate(dir.path(), &shape, &["Has this face been forged?"], 9).unwrap();
    let tower = VisionTower::load(&m.mmproj, &Device::Cpu).unwrap();
    let projector = ProjectorSet::from_mmproj(&m.mmproj, &Device::Cpu).unwrap();
    let worst = worst_disagreement_with(&m.gguf, &tower, &projector, &m.mmproj);
    eprintln!("F16 weights, worst relative disagreement: {worst:e}");

    // Trained weights written back as F16 are served as the trainer rounds them.
    for v in projector.vars() {
        v.set(&v.as_tensor().affine(1.1, 0.01).unwrap()).unwrap();
    }
    let out = dir.path().join("mmproj-f16-trained.gguf");
    projector.write_mmproj(&m.mmproj, &out).unwrap();
    worst_disagreement_with(&m.gguf, &tower, &projector, &out);
}

/// Detection examples on tower features: even seeds forged, odd real.
fn feature_examples(f: &Featurizer, tower: &VisionTower, seeds: &[u32]) -> Vec<Example> {
    let question = f.prompts().detection.question.clone();
    seeds
        .iter()
        .map(|&s| {
            let feats = Arc::new(tower.features(&common::decoded(s)).expect("features"));
            let answer = if s % 2 == 0 { "Yes." } else { "No." };
            f.example_with(Some(ExampleImage::Features(feats)), &[], &question, answer)
                .expect("example")
        })
        .collect()
}

struct Trained {
    lora: LoraSet,
    projector: ProjectorSet,
    report: trainer::TrainReport,
}

fn train(base: &BaseModel, examples: &[Example], cfg: &TrainConfig) -> Trained {
    let lora = LoraSet::init(
        &base.config,
        &cfg.targets,
        cfg.rank,
        cfg.alpha,
        cfg.seed,
        &Device::Cpu,
    )
    .unwrap();
    let mut lora = lora;
    let projector = ProjectorSet::from_mmproj(&common::tiny().mmproj, &Device::Cpu).unwrap();
    let report = trainer::train_with(
        base,
        &mut lora,
        Some(&projector),
        examples,
        cfg,
        |_, _, _| {},
    )
    .expect("train");
    Trained {
        lora,
        projector,
        report,
    }
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

fn trainer_rows(base: &BaseModel, t: &Trained, ex: &Example) -> Vec<Vec<f32>> {
    let emb = ex.embeddings_with(base, Some(&t.projector)).unwrap();
    let hidden = base.hidden(&emb, Some(&t.lora)).unwrap();
    let rows = hidden
        .narrow(0, ex.first_target_row(), ex.answer_tokens().len())
        .unwrap();
    base.logits(&rows).unwrap().to_vec2().unwrap()
}

#[test]
fn training_the_projector_lowers_the_loss_and_llama_cpp_serves_the_result() {
    let base = BaseModel::load(&common::tiny().gguf, &Device::Cpu).unwrap();
    let tower = tower();
    let f = featurizer(&common::tiny().mmproj);
    let examples = feature_examples(&f, &tower, &[1, 2, 3, 4, 5, 6]);
    let cfg = common::train_config(3, &[Projection::Q, Projection::V], true);
    let original = ProjectorSet::from_mmproj(&common::tiny().mmproj, &Device::Cpu).unwrap();
    let before = trainer::mean_loss_with(&base, None, Some(&original), &examples).unwrap();

    let a = train(&base, &examples, &cfg);
    let after =
        trainer::mean_loss_with(&base, Some(&a.lora), Some(&a.projector), &examples).unwrap();
    eprintln!("loss {before} → {after}");
    assert!(after < before * 0.5, "loss {before} → {after}");

    // Deterministic: the same seed gives the same losses and weights.
    let b = train(&base, &examples, &cfg);
    assert_eq!(a.report.epoch_losses, b.report.epoch_losses);
    let (pa, pb) = (
        a.projector.named_tensors().unwrap(),
        b.projector.named_tensors().unwrap(),
    );
    for ((name, x), (_, y)) in pa.iter().zip(&pb) {
        assert_eq!(
            max_abs(&(x - y).unwrap()),
            0.0,
            "{name} differs between runs"
        );
    }
    // Every projector tensor moved from the mmproj's values.
    for ((name, trained), (_, init)) in pa.iter().zip(original.named_tensors().unwrap()) {
        let moved = max_abs(&(trained - &init).unwrap());
        assert!(moved > 1e-4, "{name} moved only {moved}");
    }

    // The written mmproj: llama.cpp's embeddings are the trained projector's.
    let dir = tempfile::tempdir().unwrap();
    let new_mmproj = dir.path().join("mmproj-trained.gguf");
    let sha = a
        .projector
        .write_mmproj(&common::tiny().mmproj, &new_mmproj)
        .unwrap();
    assert_eq!(sha.len(), 64);
    let worst = worst_disagreement(&a.projector, &new_mmproj);
    eprintln!("trained projector, worst relative disagreement: {worst:e}");
    let img = common::decoded(11);
    let (old, new) = (
        featurizer(&common::tiny().mmproj)
            .encode_image(&img)
            .unwrap(),
        featurizer(&new_mmproj).encode_image(&img).unwrap(),
    );
    let (d, m) = compare(&new.data, &old.data);
    assert!(
        d > 10.0 * REL_TOL * m,
        "served embeddings changed: {d} of {m}"
    );

    // And the trained pair (adapter + mmproj) gives llama.cpp's logits.
    let adapter = dir.path().join("adapter.gguf");
    write_adapter(
        &adapter,
        "llama",
        a.lora.alpha,
        &a.lora.named_tensors(),
        &[],
    )
    .unwrap();
    let mut served = featurizer(&new_mmproj);
    let feats = Arc::new(tower.features(&img).unwrap());
    let ex = served
        .example_with(
            Some(ExampleImage::Features(feats)),
            &[],
            "Has this face been forged?",
            "Yes.",
        )
        .unwrap();
    let exact = ReferenceSettings {
        kv_cache_type: KvCacheKind::F32,
        flash_attention: FlashAttention::Off,
    };
    let theirs = served
        .reference_logits(&ex, Some(&img), Some((adapter.as_path(), 1.0)), exact)
        .unwrap();
    let ours = trainer_rows(&base, &a, &ex);
    let mut d: f32 = 0.0;
    for (x, y) in ours.iter().zip(&theirs) {
        d = d.max(compare(x, y).0);
    }
    eprintln!("logits with the trained adapter + mmproj: max |Δ| {d:e}");
    // Measured ≈ 8e-4: the embeddings' F16-sized disagreement (above)
    // reaching the logits; a wrong projector or adapter moves them by ≥ 0.1.
    assert!(d <= 1e-2, "max |Δlogit| {d}");
}

#[test]
fn projector_training_refuses_inputs_that_would_not_train_it() {
    let base = BaseModel::load(&common::tiny().gguf, &Device::Cpu).unwrap();
    let mut f = featurizer(&common::tiny().mmproj);
    let cfg = common::train_config(1, &[Projection::Q, Projection::V], true);
    let mut lora = LoraSet::init(&base.config, &cfg.targets, 4, 8.0, 1, &Device::Cpu).unwrap();
    let projector = ProjectorSet::from_mmproj(&common::tiny().mmproj, &Device::Cpu).unwrap();
    let question = f.prompts().detection.question.clone();
    let emb = Arc::new(f.encode_image(&common::decoded(2)).unwrap());
    let embedded = vec![f.example(Some(emb), &[], &question, "Yes.").unwrap()];
    let err = trainer::train_with(
        &base,
        &mut lora,
        Some(&projector),
        &embedded,
        &cfg,
        |_, _, _| {},
    )
    .expect_err("post-projector embeddings cannot train the projector");
    assert!(matches!(err, TrainError::Projector(_)), "{err}");

    let features = feature_examples(&f, &tower(), &[2]);
    let err = trainer::train(&base, &mut lora, &features, &cfg, |_, _, _| {})
        .expect_err("no projector given");
    assert!(matches!(err, TrainError::Projector(_)), "{err}");
}
