//! The memory a LLaMA-7B LoRA run would need with the trainer as it is:
//! computed, not measured, with the activation count calibrated on the
//! bench-size training run of `dfa bench --train`.

/// Bytes the trainer as written (F32 everywhere) needs for a LLaMA base, and
/// with a BF16 base; activations per the usual per-layer count for one
/// sequence of `seq` tokens kept for backward (no recomputation).
pub(super) struct Estimate {
    pub base_f32_gib: f64,
    pub base_bf16_gib: f64,
    pub lora_state_mib: f64,
    pub activations_f32_gib: f64,
}

impl Estimate {
    fn llama(
        n_embd: f64,
        n_layer: f64,
        n_ff: f64,
        n_head: f64,
        n_vocab: f64,
        rank: f64,
        seq: f64,
    ) -> Estimate {
        let params =
            n_vocab * n_embd * 2.0 + n_layer * (4.0 * n_embd * n_embd + 3.0 * n_embd * n_ff);
        let lora = n_layer * 4.0 * 2.0 * rank * n_embd;
        // Per layer, per token: ~34·E values (norms, projections, FFN inputs and
        // outputs) plus 5·heads·seq for the attention scores and softmax; F32.
        let per_layer = seq * (34.0 * n_embd + 5.0 * n_head * seq + 2.0 * n_ff) * 4.0;
        let gib = 1024.0f64.powi(3);
        Estimate {
            base_f32_gib: params * 4.0 / gib,
            base_bf16_gib: params * 2.0 / gib,
            // Weights, gradients and AdamW's two moments, F32.
            lora_state_mib: lora * 4.0 * 4.0 / 1024.0 / 1024.0,
            activations_f32_gib: per_layer * n_layer / gib,
        }
    }

    /// LLaMA-7B (hidden 4096, 32 layers, FFN 11008) at rank 16, one
    /// 700-token sequence (576 image tokens + text).
    fn seven_b() -> Estimate {
        Estimate::llama(4096.0, 32.0, 11008.0, 32.0, 32000.0, 16.0, 700.0)
    }
}

/// The 7B estimate with its activations scaled by what the bench-size run
/// kept over the textbook count.
pub(super) struct SevenB {
    e: Estimate,
    /// Measured activations over the textbook count, on the bench-size run.
    factor: f64,
    /// Activations per sequence, GiB.
    act: f64,
    /// Everything in GiB, F32 base weights.
    total: f64,
    /// `total` with BF16 base weights.
    with_bf16: f64,
}

impl SevenB {
    /// Calibrated on the bench-size run's tokens per example and its
    /// training-memory growth (MiB).
    pub(super) fn calibrated(tokens_per_example: usize, step_mib: f64) -> SevenB {
        let seq = tokens_per_example as f64;
        let bench_formula = Estimate::llama(1024.0, 8.0, 2816.0, 16.0, 32000.0, 8.0, seq);
        let factor = (step_mib / 1024.0) / bench_formula.activations_f32_gib;
        let e = Estimate::seven_b();
        let act = e.activations_f32_gib * factor;
        let total = e.base_f32_gib + e.lora_state_mib / 1024.0 + act;
        let with_bf16 = total - (e.base_f32_gib - e.base_bf16_gib);
        SevenB {
            e,
            factor,
            act,
            total,
            with_bf16,
        }
    }

    /// Whether it fits one 80 GB GPU, which holds 74.5 GiB.
    fn verdict(&self) -> String {
        let with_bf16 = self.with_bf16;
        match (self.total < 74.5, with_bf16 < 74.5) {
            (true, _) => "so a 7B LoRA fits one 80 GB GPU as the trainer is today".to_string(),
            (false, true) => format!(
                "so a 7B LoRA does not fit one 80 GB GPU with F32 weights, but does with `retrain.weights_dtype = \"bf16\"` ({with_bf16:.0} GiB)"
            ),
            (false, false) => format!(
                "so a 7B LoRA needs activation recomputation or a fused attention backward before it fits one 80 GB GPU (BF16 weights alone: {with_bf16:.0} GiB)"
            ),
        }
    }

    /// The report's paragraph, after the training table.
    pub(super) fn paragraph(&self) -> String {
        let e = &self.e;
        let verdict = self.verdict();
        format!(
            "\nEstimate (computed, not measured) for a LLaMA-7B base (hidden 4096, 32 layers, FFN 11008) at rank 16 on the four \
             attention projections, one 700-token sequence (576 image tokens + text). Base weights: {:.1} GiB in F32 \
             ({:.1} GiB with `retrain.weights_dtype = \"bf16\"`). LoRA weights + gradients + AdamW moments: {:.0} MiB. Activations and gradients \
             kept for the backward pass: the textbook count (34·E + 5·heads·T + 2·FFN values per token and layer) gives {:.1} GiB, \
             and this run measured {:.1}x that count on the bench-size model (candle keeps every intermediate of the unfused \
             RoPE, softmax and RMSNorm), so about {:.0} GiB per sequence. \
             Total: about {:.0} GiB at any batch size (gradients are accumulated one example at a time), {verdict}. \
             The tiny and bench-size models train as they are.\n",
            e.base_f32_gib,
            e.base_bf16_gib,
            e.lora_state_mib,
            e.activations_f32_gib,
            self.factor,
            self.act,
            self.total,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Estimate;

    #[test]
    fn seven_b_estimate_matches_hand_arithmetic() {
        let e = Estimate::seven_b();
        // LLaMA-7B has 6.74e9 parameters: 25.1 GiB in F32, 12.6 GiB in BF16.
        assert!((e.base_f32_gib - 25.1).abs() < 0.2, "{}", e.base_f32_gib);
        assert!((e.base_bf16_gib - 12.55).abs() < 0.1);
        // 16.8 M LoRA parameters × 4 copies × 4 bytes = 256 MiB.
        assert!(
            (e.lora_state_mib - 256.0).abs() < 1.0,
            "{}",
            e.lora_state_mib
        );
        // 700 × (34·4096 + 5·32·700 + 2·11008) × 4 bytes × 32 layers = 22.8 GiB.
        assert!(
            (e.activations_f32_gib - 22.8).abs() < 0.1,
            "{}",
            e.activations_f32_gib
        );
    }

    #[test]
    fn calibration_scales_the_seven_b_activations_and_picks_the_verdict() {
        let tokens = 300;
        let textbook = Estimate::llama(1024.0, 8.0, 2816.0, 16.0, 32000.0, 8.0, tokens as f64);
        let step_mib = textbook.activations_f32_gib * 1024.0;

        // The bench run kept exactly the textbook count: 7B needs ~48 GiB.
        let as_counted = super::SevenB::calibrated(tokens, step_mib);
        assert!(
            (as_counted.factor - 1.0).abs() < 1e-12,
            "{}",
            as_counted.factor
        );
        assert!((as_counted.act - Estimate::seven_b().activations_f32_gib).abs() < 1e-9);
        assert!(as_counted.total < 74.5, "{}", as_counted.total);
        assert!(as_counted
            .paragraph()
            .contains("fits one 80 GB GPU as the trainer is today"));

        // 2.5 times the count: 82 GiB in F32, 70 GiB in BF16.
        let tight = super::SevenB::calibrated(tokens, 2.5 * step_mib);
        assert!(tight.total > 74.5 && tight.with_bf16 < 74.5);
        assert!(tight
            .paragraph()
            .contains("but does with `retrain.weights_dtype"));

        // Three times the count: 25 + 0.25 + 68 GiB in F32, 81 GiB in BF16.
        let unfused = super::SevenB::calibrated(tokens, 3.0 * step_mib);
        assert!(unfused.with_bf16 > 74.5, "{}", unfused.with_bf16);
        assert!(unfused
            .paragraph()
            .contains("needs activation recomputation"));
    }
}
