//! Rounding and activations as ggml's CPU kernels compute them, so candle
//! forwards agree with llama.cpp's vision encoder to F32 noise rather than
//! to F16 noise. Every function keeps a gradient path (casts pass the
//! gradient straight through), so the trainable projector uses them too.

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Tensor};

use super::TrainError;

/// Rounds to F16 and back.
pub fn round_f16(x: &Tensor) -> Result<Tensor, TrainError> {
    Ok(x.to_dtype(DType::F16)?.to_dtype(DType::F32)?)
}

/// Rounds to what a matmul with a weight stored as `dtype` computes with:
/// F16 and BF16 round; F32 is exact. (Block-quantized weights quantize the
/// input to Q8 in ggml; that is not reproduced.)
pub fn round_to(x: &Tensor, dtype: GgmlDType) -> Result<Tensor, TrainError> {
    Ok(match dtype {
        GgmlDType::F16 => round_f16(x)?,
        GgmlDType::BF16 => x.to_dtype(DType::BF16)?.to_dtype(DType::F32)?,
        _ => x.clone(),
    })
}

/// ggml's CPU `gelu` (tanh form) on F32: an F16 table indexed by the
/// F16-rounded input (GGML_GELU_FP16), x itself above 10 and 0 below −10.
pub fn ggml_gelu(x: &Tensor) -> Result<Tensor, TrainError> {
    let table = round_f16(&round_f16(x)?.gelu()?)?;
    let high = x.ge(10f32)?;
    let low = x.le(-10f32)?;
    let y = high.where_cond(x, &table)?;
    Ok(low.where_cond(&x.zeros_like()?, &y)?)
}

/// ggml's CPU `gelu_quick`, x·σ(1.702·x), from its F16 table (no clamping).
pub fn ggml_gelu_quick(x: &Tensor) -> Result<Tensor, TrainError> {
    let r = round_f16(x)?;
    round_f16(&candle_nn::ops::sigmoid(&(&r * 1.702)?)?.mul(&r)?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn values(t: Tensor) -> Vec<f32> {
        t.to_vec1().expect("f32 values")
    }

    #[test]
    fn gelu_matches_ggml_table_and_clamps() {
        let xs = [-12.0f32, -1.0, 0.0, 0.3337, 2.0, 11.001];
        let x = Tensor::new(&xs[..], &Device::Cpu).unwrap();
        let y = values(ggml_gelu(&x).unwrap());
        assert_eq!(y[0], 0.0, "below −10 is 0");
        assert_eq!(y[5], 11.001, "above 10 is x, unrounded");
        let f16 = |v: f32| {
            let t = Tensor::new(&[v][..], &Device::Cpu).unwrap();
            values(round_f16(&t).unwrap())[0]
        };
        for (&x, &y) in xs[1..5].iter().zip(&y[1..5]) {
            let xr = f16(x);
            let exact = 0.5 * xr * (1.0 + (0.797_884_6 * xr * (1.0 + 0.044715 * xr * xr)).tanh());
            assert_eq!(y, f16(exact), "gelu({x})");
        }
    }

    #[test]
    fn gradients_pass_through_the_rounding() {
        let x = candle_core::Var::new(&[0.5f32, 1.5][..], &Device::Cpu).unwrap();
        let grads = ggml_gelu(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = values(grads.get(x.as_tensor()).expect("a gradient").clone());
        // d/dx gelu: ≈ 0.867 at 0.5, ≈ 1.129 at 1.5
        assert!(
            (g[0] - 0.867).abs() < 0.01 && (g[1] - 1.129).abs() < 0.01,
            "{g:?}"
        );
    }
}
