//! The trainer against llama.cpp on the tiny model: the forward passes agree,
//! training learns deterministically, and adapters written by the trainer
//! or imported from PEFT are applied by llama.cpp as the trainer computes.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use dfa::domain::prompts::Prompts;
use dfa::settings::{ChatTemplateChoice, FlashAttention, KvCacheKind};
use dfa::trainer::adapter_file::write_adapter;
use dfa::trainer::base::BaseModel;
use dfa::trainer::featurize::{Featurizer, ReferenceSettings};
use dfa::trainer::lora::{LoraSet, Projection};
use dfa::trainer::{self, Example, TrainConfig};

fn featurizer() -> Featurizer {
    let m = common::tiny();
    Featurizer::load(
        &m.gguf,
        &m.mmproj,
        Prompts::embedded(),
        ChatTemplateChoice::Auto,
        2,
    )
    .expect("featurizer loads")
}

fn base() -> BaseModel {
    BaseModel::load(&common::tiny().gguf, &Device::Cpu).expect("base loads")
}

/// Detection examples: even seeds forged, odd seeds real.
fn detection_examples(f: &mut Featurizer, seeds: &[u32]) -> Vec<Example> {
    let question = f.prompts().detection.question.clone();
    seeds
        .iter()
        .map(|&s| {
            let emb = Arc::new(f.encode_image(&common::decoded(s)).expect("encode"));
            let answer = if s % 2 == 0 { "Yes." } else { "No." };
            f.example(Some(emb), &[], &question, answer)
                .expect("example")
        })
        .collect()
}

fn lora_for(base: &BaseModel, cfg: &TrainConfig) -> LoraSet {
    LoraSet::init(
        &base.config,
        &cfg.targets,
        cfg.rank,
        cfg.alpha,
        cfg.seed,
        &Device::Cpu,
    )
    .expect("init")
}

fn trained(base: &BaseModel, examples: &[Example], seed: u64) -> LoraSet {
    let cfg = common::train_config(seed, &Projection::ALL, false);
    let mut lora = lora_for(base, &cfg);
    trainer::train(base, &mut lora, examples, &cfg, |_, _, _| {}).expect("train");
    lora
}

fn trainer_rows(base: &BaseModel, lora: Option<&LoraSet>, ex: &Example) -> Vec<Vec<f32>> {
    let hidden = base.hidden(&ex.embeddings(base).unwrap(), lora).unwrap();
    let rows = hidden
        .narrow(0, ex.first_target_row(), ex.answer_tokens().len())
        .unwrap();
    base.logits(&rows).unwrap().to_vec2::<f32>().unwrap()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row count");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "vocabulary size");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

const EXACT: ReferenceSettings = ReferenceSettings {
    kv_cache_type: KvCacheKind::F32,
    flash_attention: FlashAttention::Off,
};

fn write(lora: &LoraSet, base: &BaseModel, path: &Path) {
    write_adapter(
        path,
        &base.config.architecture,
        lora.alpha,
        &lora.named_tensors(),
        &[],
    )
    .expect("write adapter");
}

#[test]
fn trainer_and_llama_cpp_logits_agree_with_and_without_image() {
    let mut f = featurizer();
    let base = base();
    let examples = detection_examples(&mut f, &[2, 3, 4]);
    let lora = trained(&base, &examples, 7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trained.gguf");
    write(&lora, &base, &path);

    let image = common::decoded(11);
    let emb = Arc::new(f.encode_image(&image).unwrap());
    let with_image = f
        .example(
            Some(emb),
            &[],
            "Can you detail the specific regions of the facial image where artifacts is evident?",
            "The eyes show blending artifacts.",
        )
        .unwrap();
    let text_only = f
        .example(None, &[], "Has this face been forged?", "No.")
        .unwrap();
    assert!(with_image.image_tokens() > 0 && with_image.answer_tokens().len() > 3);

    let mut worst_exact: f32 = 0.0;
    let mut worst_serving: f32 = 0.0;
    for (ex, img) in [(&with_image, Some(&image)), (&text_only, None)] {
        for adapted in [false, true] {
            let ours = trainer_rows(&base, adapted.then_some(&lora), ex);
            let adapter = adapted.then_some((path.as_path(), 1.0));
            let exact = f.reference_logits(ex, img, adapter, EXACT).unwrap();
            let d = max_abs_diff(&ours, &exact);
            assert!(
                d <= 1e-4,
                "F32 cache, FA off: max |Δlogit| {d} (image {}, adapter {adapted})",
                img.is_some()
            );
            worst_exact = worst_exact.max(d);
            let serving = ReferenceSettings {
                kv_cache_type: KvCacheKind::F16,
                flash_attention: common::settings().engine.flash_attention,
            };
            let d = max_abs_diff(
                &ours,
                &f.reference_logits(ex, img, adapter, serving).unwrap(),
            );
            worst_serving = worst_serving.max(d);
        }
    }
    // With the serving default F16 KV cache, K and V are rounded to 11-bit
    // mantissas (relative error ≈ 5e-4) before attention; over two layers and
    // logits of magnitude ≈ 5 that gives a few 1e-3. 2e-2 leaves headroom
    // without hiding a real mismatch (a wrong RoPE or norm moves logits by ≥ 0.1).
    assert!(
        worst_serving <= 2e-2,
        "serving defaults: max |Δlogit| {worst_serving}"
    );
    eprintln!("max |Δlogit|: exact settings {worst_exact:e}, serving defaults {worst_serving:e}");
}

/// `retrain.weights_dtype = "bf16"`, on a tiny model stored in BF16: the
/// trainer and llama.cpp hold the same weights exactly, and both round the
/// activations to BF16 before each product with a weight (ggml's BF16 dot
/// product takes BF16 operands) and keep the product in F32, so they agree
/// as closely as in F32 (measured 1.9e-6; the F32 test's bound, 1e-4,
/// applies). A trainer that kept F32 activations against the same weights
/// misses llama.cpp by ≈ 5e-2 (checked, so the bound means something).
/// The trainer holding an F32 model's weights in BF16 is the other case:
/// see `bf16_weights_on_an_f32_model_are_within_bf16_rounding`.
#[test]
fn bf16_weights_agree_with_llama_cpp_on_a_bf16_model() {
    use candle_core::quantized::GgmlDType;
    use dfa::domain::lora::WeightsDtype;
    use dfa::model::tiny::{generate, ModelShape};

    let dir = tempfile::tempdir().unwrap();
    let shape = ModelShape {
        dtype: GgmlDType::BF16,
        ..ModelShape::tiny()
    };
    let prompts = Prompts::embedded();
    let m = generate(dir.path(), &shape, &prompts.all_texts(), 42).expect("bf16 model");
    let mut f = Featurizer::load(&m.gguf, &m.mmproj, prompts, ChatTemplateChoice::Auto, 2)
        .expect("featurizer loads");
    let bf16 = BaseModel::load_as(&m.gguf, &Device::Cpu, WeightsDtype::Bf16).unwrap();
    let f32_acts = BaseModel::load_as(&m.gguf, &Device::Cpu, WeightsDtype::F32).unwrap();
    // Trained with the BF16 base: the backward pass runs through BF16 products.
    let examples = detection_examples(&mut f, &[2, 3, 4]);
    let cfg = common::train_config(7, &Projection::ALL, false);
    let before = trainer::mean_loss(&bf16, None, &examples).unwrap();
    let mut lora = lora_for(&bf16, &cfg);
    trainer::train(&bf16, &mut lora, &examples, &cfg, |_, _, _| {}).unwrap();
    let after = trainer::mean_loss(&bf16, Some(&lora), &examples).unwrap();
    // Three examples, three epochs: 10.3 → 6.2 measured.
    assert!(
        after < before * 0.8,
        "BF16 training: loss {before} → {after}"
    );
    let path = dir.path().join("bf16-trained.gguf");
    write(&lora, &bf16, &path);

    let image = common::decoded(11);
    let emb = Arc::new(f.encode_image(&image).unwrap());
    let with_image = f
        .example(Some(emb), &[], "Has this face been forged?", "Yes.")
        .unwrap();
    let text_only = f
        .example(None, &[], "What type of forgery is it?", "Face swap.")
        .unwrap();
    let (mut worst_bf16, mut worst_f32_acts) = (0.0f32, 0.0f32);
    for (ex, img) in [(&with_image, Some(&image)), (&text_only, None)] {
        for adapted in [false, true] {
            let adapter = adapted.then_some((path.as_path(), 1.0));
            let reference = f.reference_logits(ex, img, adapter, EXACT).unwrap();
            let lora = adapted.then_some(&lora);
            worst_bf16 = worst_bf16.max(max_abs_diff(&trainer_rows(&bf16, lora, ex), &reference));
            worst_f32_acts =
                worst_f32_acts.max(max_abs_diff(&trainer_rows(&f32_acts, lora, ex), &reference));
        }
    }
    eprintln!(
        "BF16 model, max |Δlogit| against llama.cpp: weights_dtype bf16 {worst_bf16:e}, f32 {worst_f32_acts:e}"
    );
    assert!(worst_bf16 <= 1e-4, "bf16: max |Δlogit| {worst_bf16}");
    assert!(
        worst_f32_acts > 1e-2,
        "F32 activations against BF16 weights should visibly miss llama.cpp ({worst_f32_acts})"
    );
}

/// The usual case on a GPU: the served model is F32 or F16 and the trainer
/// holds its weights in BF16 to fit. BF16 keeps 8 bits of mantissa, so each
/// weight and each activation entering a product moves by up to 2⁻⁹ of
/// itself; over the two layers' seven products and the output that comes to
/// 0.6% of the largest logit here (6.5e-2 of 11.1, measured). The bound is
/// 2% of the largest logit, for other seeds' headroom; the F32 load of the
/// same file agrees to 1e-4, so the difference is BF16's alone. Training
/// on BF16 weights is an approximation of that size; the adapter it writes
/// is served on the original weights.
#[test]
fn bf16_weights_on_an_f32_model_are_within_bf16_rounding() {
    use dfa::domain::lora::WeightsDtype;

    let mut f = featurizer();
    let exact = base();
    let held = BaseModel::load_as(&common::tiny().gguf, &Device::Cpu, WeightsDtype::Bf16).unwrap();
    let image = common::decoded(5);
    let emb = Arc::new(f.encode_image(&image).unwrap());
    let ex = f
        .example(Some(emb), &[], "Has this face been forged?", "Yes.")
        .unwrap();
    let reference = f.reference_logits(&ex, Some(&image), None, EXACT).unwrap();
    let d_exact = max_abs_diff(&trainer_rows(&exact, None, &ex), &reference);
    let d_held = max_abs_diff(&trainer_rows(&held, None, &ex), &reference);
    let scale = reference
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    eprintln!(
        "F32 model, max |Δlogit| against llama.cpp: f32 {d_exact:e}, bf16 {d_held:e} (max |logit| {scale})"
    );
    assert!(d_exact <= 1e-4, "f32: {d_exact}");
    assert!(
        d_held <= 0.02 * scale,
        "bf16 weights of an F32 model: {d_held} (max |logit| {scale})"
    );
    assert!(
        d_held > d_exact,
        "BF16 rounding should show ({d_held} vs {d_exact})"
    );
}

#[test]
fn training_lowers_the_loss_deterministically_and_reaches_every_tensor() {
    let mut f = featurizer();
    let base = base();
    let examples = detection_examples(&mut f, &[1, 2, 3, 4, 5, 6]);
    let before = trainer::mean_loss(&base, None, &examples).unwrap();

    let cfg = common::train_config(3, &Projection::ALL, false);
    let mut a = lora_for(&base, &cfg);
    let report_a = trainer::train(&base, &mut a, &examples, &cfg, |_, _, _| {}).unwrap();
    let mut b = lora_for(&base, &cfg);
    let report_b = trainer::train(&base, &mut b, &examples, &cfg, |_, _, _| {}).unwrap();
    let after = trainer::mean_loss(&base, Some(&a), &examples).unwrap();
    assert!(after < before * 0.5, "loss {before} → {after}");
    assert_eq!(
        report_a.epoch_losses, report_b.epoch_losses,
        "same seed, same losses"
    );
    for ((na, ta), (_, tb)) in a.named_tensors().iter().zip(b.named_tensors()) {
        let d = (ta - &tb)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{na} differs between runs with the same seed");
    }
    let other = trained(&base, &examples, 4);
    assert_ne!(
        other.named_tensors()[0].1.to_vec2::<f32>().unwrap(),
        a.named_tensors()[0].1.to_vec2::<f32>().unwrap(),
        "another seed gives another adapter"
    );

    // After training, B ≠ 0, so every A and every B has a gradient path.
    let norms = trainer::gradient_norms(&base, &a, &examples).unwrap();
    assert_eq!(norms.len(), 2 * 4 * base.config.n_layer);
    for (name, norm) in &norms {
        assert!(
            *norm > 0.0 && norm.is_finite(),
            "{name} got gradient norm {norm}"
        );
    }
}

#[test]
fn peft_adapter_imports_and_llama_cpp_applies_it_like_the_trainers_own() {
    let mut f = featurizer();
    let base = base();
    let examples = detection_examples(&mut f, &[8, 9]);
    let lora = trained(&base, &examples, 5);
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("own.gguf");
    write(&lora, &base, &own);

    // The same weights in PEFT's layout and names.
    let peft_dir = dir.path().join("peft");
    std::fs::create_dir_all(&peft_dir).unwrap();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in lora.named_tensors() {
        let (layer, proj, is_a) = dfa::trainer::adapter_file::parse_lora_name(&name).unwrap();
        let module = match proj {
            Projection::Q => "q_proj",
            Projection::K => "k_proj",
            Projection::V => "v_proj",
            Projection::O => "o_proj",
        };
        let ab = if is_a { "A" } else { "B" };
        tensors.insert(
            format!("base_model.model.model.layers.{layer}.self_attn.{module}.lora_{ab}.weight"),
            t,
        );
    }
    candle_core::safetensors::save(&tensors, peft_dir.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        peft_dir.join("adapter_config.json"),
        format!(r#"{{"peft_type":"LORA","r":{},"lora_alpha":{},"target_modules":["q_proj","k_proj","v_proj","o_proj"],"bias":"none"}}"#, lora.rank, lora.alpha),
    )
    .unwrap();

    let imported = dfa::trainer::peft::read_peft(&peft_dir).unwrap();
    assert_eq!(imported.rank, lora.rank);
    let converted = dir.path().join("imported.gguf");
    write_adapter(&converted, "llama", imported.alpha, &imported.tensors, &[]).unwrap();

    let image = common::decoded(21);
    let emb = Arc::new(f.encode_image(&image).unwrap());
    let ex = f
        .example(Some(emb), &[], "Has this face been forged?", "Yes.")
        .unwrap();
    let by_own = f
        .reference_logits(&ex, Some(&image), Some((own.as_path(), 1.0)), EXACT)
        .unwrap();
    let by_imported = f
        .reference_logits(&ex, Some(&image), Some((converted.as_path(), 1.0)), EXACT)
        .unwrap();
    assert_eq!(
        max_abs_diff(&by_own, &by_imported),
        0.0,
        "imported adapter applies exactly as the trainer's own"
    );
    let base_only = f.reference_logits(&ex, Some(&image), None, EXACT).unwrap();
    assert!(
        max_abs_diff(&by_own, &base_only) > 1e-3,
        "the adapter changes the logits"
    );
    let ours = trainer_rows(&base, Some(&lora), &ex);
    assert!(max_abs_diff(&ours, &by_imported) <= 1e-4);
}

/// Not a CI test: writes the inputs of `scripts/gpu-check` (the tiny model,
/// an adapter trained here, a token sequence and the trainer's logits with
/// and without the adapter) into `$DFA_GPU_CASE_DIR`.
#[test]
#[ignore]
fn write_gpu_check_case() {
    let Some(out) = std::env::var_os("DFA_GPU_CASE_DIR").map(std::path::PathBuf::from) else {
        panic!("set DFA_GPU_CASE_DIR");
    };
    std::fs::create_dir_all(&out).unwrap();
    let mut f = featurizer();
    let base = base();
    let examples = detection_examples(&mut f, &[2, 3, 4, 5]);
    let lora = trained(&base, &examples, 11);
    write(&lora, &base, &out.join("adapter.gguf"));
    std::fs::copy(&common::tiny().gguf, out.join("model.gguf")).unwrap();
    let ex = f
        .example(
            None,
            &[],
            "Can you detail the specific regions of the facial image where artifacts is evident?",
            "The eyes show blending artifacts and the mouth is blurred.",
        )
        .unwrap();
    let tokens: Vec<u32> = ex.prefix.iter().chain(&ex.suffix).copied().collect();
    let mut bytes = Vec::new();
    let mut put = |v: u32| bytes.extend_from_slice(&v.to_le_bytes());
    put(tokens.len() as u32);
    tokens.iter().for_each(|&t| put(t));
    put(ex.first_target_row() as u32);
    put(ex.answer_tokens().len() as u32);
    put(base.config.n_vocab as u32);
    for adapter in [Some(&lora), None] {
        for row in trainer_rows(&base, adapter, &ex) {
            row.iter()
                .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
        }
    }
    std::fs::write(out.join("case.bin"), bytes).unwrap();
}
