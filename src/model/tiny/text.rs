//! The text model: a LLaMA GGUF whose vocabulary holds every prompt word.

use candle_core::quantized::gguf_file::Value;
use rand_chacha::ChaCha8Rng;

use super::vocab;
use super::{normal, s, u, GenerateError, Meta, ModelShape, Tensors, Vocabulary};

pub(super) fn text_metadata(shape: &ModelShape, vocab: &Vocabulary) -> Meta {
    let head_dim = shape.n_embd / shape.n_head as usize;
    vec![
        ("general.architecture".into(), s("llama")),
        ("general.name".into(), s("dfa-generated-random")),
        ("llama.context_length".into(), Value::U32(shape.n_ctx_train)),
        ("llama.embedding_length".into(), u(shape.n_embd)),
        ("llama.block_count".into(), u(shape.n_layer)),
        ("llama.feed_forward_length".into(), u(shape.n_ff)),
        (
            "llama.attention.head_count".into(),
            Value::U32(shape.n_head),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(shape.n_head_kv),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.rope.dimension_count".into(), u(head_dim)),
        ("llama.rope.freq_base".into(), Value::F32(10000.0)),
        ("tokenizer.ggml.model".into(), s("llama")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(vocab.tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(vocab.scores.iter().map(|&x| Value::F32(x)).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(vocab.types.iter().map(|&t| Value::I32(t as i32)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(vocab::BOS)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(vocab::EOS)),
        (
            "tokenizer.ggml.unknown_token_id".into(),
            Value::U32(vocab::UNK),
        ),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
        ("tokenizer.ggml.add_eos_token".into(), Value::Bool(false)),
    ]
}

pub(super) fn text_tensors(
    shape: &ModelShape,
    n_vocab: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Tensors, GenerateError> {
    let e = shape.n_embd;
    let kv = e / shape.n_head as usize * shape.n_head_kv as usize;
    let w = shape.dtype;
    let inv = |n: usize| 1.0 / (n as f32).sqrt();
    let mut t = vec![normal(
        rng,
        "token_embd.weight",
        &[n_vocab, e],
        0.0,
        1.0,
        w,
    )?];
    let ff = shape.n_ff;
    // (tensor, shape, mean, std) per block, in llama.cpp's order.
    let block: [(&str, Vec<usize>, f32, f32); 9] = [
        ("attn_norm.weight", vec![e], 1.0, 0.1),
        ("attn_q.weight", vec![e, e], 0.0, inv(e)),
        ("attn_k.weight", vec![kv, e], 0.0, inv(e)),
        ("attn_v.weight", vec![kv, e], 0.0, inv(e)),
        ("attn_output.weight", vec![e, e], 0.0, inv(e)),
        ("ffn_norm.weight", vec![e], 1.0, 0.1),
        ("ffn_gate.weight", vec![ff, e], 0.0, inv(e)),
        ("ffn_up.weight", vec![ff, e], 0.0, inv(e)),
        ("ffn_down.weight", vec![e, ff], 0.0, inv(ff)),
    ];
    for l in 0..shape.n_layer {
        for (name, dims, mean, std) in &block {
            let name = format!("blk.{l}.{name}");
            t.push(normal(rng, &name, dims, *mean, *std, w)?);
        }
    }
    t.push(normal(rng, "output_norm.weight", &[e], 1.0, 0.1, w)?);
    // Logits with a standard deviation of ~3 so answers differ visibly.
    t.push(normal(
        rng,
        "output.weight",
        &[n_vocab, e],
        0.0,
        3.0 * inv(e),
        w,
    )?);
    Ok(t)
}
