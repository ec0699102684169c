// GPU check of the learning loop's output (scripts/gpu-check): llama.cpp's
// CUDA backend applies an adapter written by dfa's trainer and must give the
// trainer's logits, as the CPU backend does. Inputs come from the ignored
// test `write_gpu_check_case` in tests/trainer.rs.
#include "llama.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

struct Case {
    std::vector<llama_token> tokens;
    uint32_t first = 0, rows = 0, vocab = 0;
    std::vector<float> with_lora, base;
};

static uint32_t read_u32(std::ifstream & f) {
    uint32_t v = 0;
    f.read(reinterpret_cast<char *>(&v), 4);
    return v;
}

static bool load_case(const char * path, Case & c) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    uint32_t n = read_u32(f);
    for (uint32_t i = 0; i < n; i++) c.tokens.push_back((llama_token) read_u32(f));
    c.first = read_u32(f);
    c.rows = read_u32(f);
    c.vocab = read_u32(f);
    c.with_lora.resize((size_t) c.rows * c.vocab);
    c.base.resize((size_t) c.rows * c.vocab);
    f.read(reinterpret_cast<char *>(c.with_lora.data()), c.with_lora.size() * 4);
    f.read(reinterpret_cast<char *>(c.base.data()), c.base.size() * 4);
    return (bool) f;
}

// Decodes the case's tokens 'reps' times; returns the scored rows' logits and
// the mean decode time. `offload`: let the CUDA backend run host-weight ops.
static std::vector<float> run(llama_model * model, llama_adapter_lora * lora, const Case & c,
                              bool offload, int reps, double & ms) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.op_offload = offload;
    llama_context * ctx = llama_init_from_model(model, cp);
    std::vector<float> out;
    if (!ctx) return out;
    float scale = 1.0f;
    llama_set_adapters_lora(ctx, lora ? &lora : nullptr, lora ? 1 : 0, &scale);
    llama_batch b = llama_batch_init((int32_t) c.tokens.size(), 0, 1);
    for (size_t i = 0; i < c.tokens.size(); i++) {
        b.token[i] = c.tokens[i];
        b.pos[i] = (llama_pos) i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = i >= c.first && i < c.first + c.rows;
    }
    b.n_tokens = (int32_t) c.tokens.size();
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; r++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        if (llama_decode(ctx, b) != 0) return out;
    }
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    for (uint32_t r = 0; r < c.rows; r++) {
        const float * got = llama_get_logits_ith(ctx, (int32_t) (c.first + r));
        out.insert(out.end(), got, got + c.vocab);
    }
    llama_batch_free(b);
    llama_free(ctx);
    return out;
}

static double max_diff(const std::vector<float> & a, const std::vector<float> & b) {
    if (a.size() != b.size()) return -1;
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) worst = std::fmax(worst, std::fabs((double) a[i] - b[i]));
    return worst;
}

// The adapter's own effect: (with − without), compared between two runs.
static double max_delta_diff(const std::vector<float> & a_with, const std::vector<float> & a_base,
                             const std::vector<float> & b_with, const std::vector<float> & b_base) {
    if (a_with.size() != b_with.size() || a_base.size() != b_base.size() || a_with.size() != a_base.size()) return -1;
    double worst = 0;
    for (size_t i = 0; i < a_with.size(); i++) {
        worst = std::fmax(worst, std::fabs(((double) a_with[i] - a_base[i]) - ((double) b_with[i] - b_base[i])));
    }
    return worst;
}

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s model.gguf adapter.gguf case.bin\n", argv[0]);
        return 2;
    }
    Case c;
    if (!load_case(argv[3], c)) {
        fprintf(stderr, "cannot read %s\n", argv[3]);
        return 2;
    }
    llama_backend_init();
    int failures = 0;
    // Tolerances: the CPU path must match the trainer as in tests/trainer.rs.
    // CUDA kernels round differently (measured on an H100: 1.5e-2 on the base
    // model's logits alone), so GPU passes get the serving-default tolerance.
    struct Pass { const char * name; int ngl; bool offload; double tolerance; };
    for (Pass p : {Pass{"cpu", 0, false, 1e-4}, Pass{"cpu+op_offload", 0, true, 2e-2}, Pass{"gpu", 999, true, 2e-2}}) {
        llama_model_params mp = llama_model_default_params();
        mp.n_gpu_layers = p.ngl;
        llama_model * model = llama_model_load_from_file(argv[1], mp);
        llama_adapter_lora * lora = model ? llama_adapter_lora_init(model, argv[2]) : nullptr;
        if (!model || !lora) {
            fprintf(stderr, "cannot load the model or the adapter\n");
            return 1;
        }
        double ms_lora = 0, ms_base = 0;
        std::vector<float> with = run(model, lora, c, p.offload, 20, ms_lora);
        std::vector<float> base = run(model, nullptr, c, p.offload, 20, ms_base);
        double d_lora = max_diff(with, c.with_lora), d_base = max_diff(base, c.base);
        double d_delta = max_delta_diff(with, base, c.with_lora, c.base);
        printf("{\"backend\":\"%s\",\"gpu_offload\":%s,\"tokens\":%zu,\"max_abs_diff_with_adapter\":%.3g,"
               "\"max_abs_diff_base\":%.3g,\"max_abs_diff_adapter_effect\":%.3g,\"decode_ms_with_adapter\":%.3f,\"decode_ms_base\":%.3f}\n",
               p.name, llama_supports_gpu_offload() ? "true" : "false", c.tokens.size(), d_lora, d_base, d_delta,
               ms_lora, ms_base);
        fflush(stdout);
        if (d_lora < 0 || d_lora > p.tolerance || d_base > p.tolerance || d_delta > p.tolerance) failures++;
        llama_model_free(model);
    }
    llama_backend_free();
    return failures ? 1 : 0;
}
