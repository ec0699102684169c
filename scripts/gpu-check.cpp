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

// Decodes the case's tokens; returns max |logit - expected| over the scored rows
// and the mean decode time over `reps` runs.
static double run(llama_model * model, llama_adapter_lora * lora, const Case & c,
                  const std::vector<float> & expected, int reps, double & ms) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) return -1;
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
    double worst = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; r++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        if (llama_decode(ctx, b) != 0) return -1;
    }
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    for (uint32_t r = 0; r < c.rows; r++) {
        const float * got = llama_get_logits_ith(ctx, (int32_t) (c.first + r));
        for (uint32_t v = 0; v < c.vocab; v++) {
            worst = std::fmax(worst, std::fabs((double) got[v] - expected[(size_t) r * c.vocab + v]));
        }
    }
    llama_batch_free(b);
    llama_free(ctx);
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
    for (int ngl : {0, 999}) {
        llama_model_params mp = llama_model_default_params();
        mp.n_gpu_layers = ngl;
        llama_model * model = llama_model_load_from_file(argv[1], mp);
        llama_adapter_lora * lora = model ? llama_adapter_lora_init(model, argv[2]) : nullptr;
        if (!model || !lora) {
            fprintf(stderr, "cannot load the model or the adapter\n");
            return 1;
        }
        double ms_lora = 0, ms_base = 0;
        double d_lora = run(model, lora, c, c.with_lora, 20, ms_lora);
        double d_base = run(model, nullptr, c, c.base, 20, ms_base);
        const char * where = ngl ? "gpu" : "cpu";
        printf("{\"backend\":\"%s\",\"gpu_offload\":%s,\"tokens\":%zu,\"max_abs_diff_with_adapter\":%.3g,"
               "\"max_abs_diff_base\":%.3g,\"decode_ms_with_adapter\":%.3f,\"decode_ms_base\":%.3f}\n",
               where, llama_supports_gpu_offload() ? "true" : "false", c.tokens.size(), d_lora, d_base,
               ms_lora, ms_base);
        if (d_lora < 0 || d_lora > 1e-3 || d_base < 0 || d_base > 1e-3) failures++;
        llama_model_free(model);
    }
    llama_backend_free();
    return failures ? 1 : 0;
}
