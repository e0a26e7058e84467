/*
 * qai_quantize_model: GGUF in, GGUF out with the tensor types llama.cpp's
 * llama-quantize would choose for the same type name (see qai/quantize.h for
 * the rules). Rows are converted on the thread pool; each row is dequantized
 * to f32 (when the input is not f32) and quantized with the reference
 * quantizers of src/tensor/quant.c, which write the same bytes as ggml's.
 *
 * What it deliberately does not do: importance matrices, the IQ/Q2_K/Q3_K/Q5_K
 * types, or streaming (the output tensors are held in memory until written).
 */
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "qai/gguf.h"
#include "qai/quantize.h"
#include "qai/tensor.h"

typedef struct {
    const char *name;
    qai_type base;      /* type of ordinary 2-D weights */
    uint32_t file_type; /* LLAMA_FTYPE */
    bool q4_k_m;        /* attn_v / ffn_down bumps */
} scheme;

static const scheme schemes[] = {
    {"f32", QAI_TYPE_F32, 0, false},   {"f16", QAI_TYPE_F16, 1, false},  {"bf16", QAI_TYPE_BF16, 32, false},
    {"q8_0", QAI_TYPE_Q8_0, 7, false}, {"q4_0", QAI_TYPE_Q4_0, 2, false}, {"q4_k", QAI_TYPE_Q4_K, 14, false},
    {"q6_k", QAI_TYPE_Q6_K, 18, false}, {"q4_k_m", QAI_TYPE_Q4_K, 15, true},
};

static const scheme *find_scheme(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (!strcasecmp(name, schemes[i].name)) return &schemes[i];
    return NULL;
}

int qai_quantize_file_type(const char *type_name) {
    const scheme *s = find_scheme(type_name);
    return s ? (int)s->file_type : -1;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* llama.cpp: the first and last eighth of the layers and every third layer in between */
static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* Whether llama-quantize would convert this tensor at all. */
static bool is_quantizable(const qai_gguf_tensor *t) {
    const char *n = t->name;
    if (!ends_with(n, "weight") || t->n_dims < 2) return false;
    if (strstr(n, "_norm.weight") || strstr(n, "ffn_gate_inp.weight")) return false;
    if (!strcmp(n, "position_embd.weight") || !strcmp(n, "token_types.weight")) return false;
    return true;
}

typedef struct {
    int i_attn_v, n_attn_v, i_ffn_down, n_ffn_down;
    bool has_output;
} mix_state;

/* The type for one quantizable tensor (llama_tensor_get_type for the types qai writes). */
static qai_type choose_type(const scheme *s, const qai_gguf_tensor *t, mix_state *ms) {
    qai_type ty = s->base;
    const qai_type_traits *tr = qai_type_info(ty);
    if (!tr->quantized) return ty;
    const char *n = t->name;
    if (!strcmp(n, "output.weight") || (!ms->has_output && !strcmp(n, "token_embd.weight"))) {
        if (ty != QAI_TYPE_Q8_0) ty = QAI_TYPE_Q6_K;
    } else if (strstr(n, "attn_v.weight")) {
        if (s->q4_k_m && use_more_bits(ms->i_attn_v, ms->n_attn_v)) ty = QAI_TYPE_Q6_K;
        ms->i_attn_v++;
    } else if (strstr(n, "ffn_down")) {
        if (s->q4_k_m && use_more_bits(ms->i_ffn_down, ms->n_ffn_down)) ty = QAI_TYPE_Q6_K;
        ms->i_ffn_down++;
    } else if (strstr(n, "attn_qkv.weight")) {
        /* llama.cpp uses Q5_K here for Q4_K_M; qai has no Q5_K, so the next type up */
        if (s->q4_k_m) ty = QAI_TYPE_Q6_K;
    }
    return ty;
}

/* ---- threaded row conversion ---- */

typedef struct {
    const qai_gguf_tensor *t;
    qai_type to;
    void *dst;
    int64_t nrows, ncols;
    float *scratch; /* nth * ncols floats */
    qai_status st;  /* first failure (set by any thread; all fail alike) */
} convert_job;

static void convert_rows(void *arg, int ith, int nth) {
    convert_job *j = arg;
    size_t in_rs = qai_row_size(j->t->type, j->ncols), out_rs = qai_row_size(j->to, j->ncols);
    float *buf = j->scratch + (size_t)ith * j->ncols;
    int64_t r0 = j->nrows * ith / nth, r1 = j->nrows * (ith + 1) / nth;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)j->t->data + (size_t)r * in_rs;
        const float *x = (const float *)src;
        if (j->t->type != QAI_TYPE_F32) {
            if (qai_dequantize_row(j->t->type, src, buf, j->ncols)) {
                j->st = QAI_ERR_UNSUPPORTED;
                return;
            }
            x = buf;
        }
        if (qai_quantize_rows(j->to, x, (uint8_t *)j->dst + (size_t)r * out_rs, 1, j->ncols)) {
            j->st = QAI_ERR_INTERNAL;
            return;
        }
    }
}

qai_status qai_quantize_model(const char *in_gguf, const char *out_gguf, const char *type_name,
                              const qai_quantize_options *opts, qai_quantize_summary *summary) {
    uint64_t t0 = qai_time_ns();
    const scheme *s = find_scheme(type_name);
    if (!s)
        return qai_error(QAI_ERR_ARG,
                         "unknown quantization type '%s' (expected f32, f16, bf16, q8_0, q4_0, q4_k, q6_k or q4_k_m)",
                         type_name ? type_name : "");
    qai_quantize_summary sum = {0};
    sum.file_type = s->file_type;
    qai_gguf *g = NULL;
    qai_status st = qai_gguf_open(in_gguf, &g);
    if (st) return st;
    int64_t nt = qai_gguf_n_tensors(g);
    sum.n_tensors = nt;
    sum.file_in = qai_gguf_file_size(g);

    mix_state ms = {0};
    int64_t n_ffn_down = 0, max_cols = 0;
    for (int64_t i = 0; i < nt; i++) {
        const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
        if (strstr(t->name, "attn_v.weight") || strstr(t->name, "attn_qkv.weight") || strstr(t->name, "attn_kv_b.weight"))
            ms.n_attn_v++;
        else if (!strcmp(t->name, "output.weight"))
            ms.has_output = true;
        if (strstr(t->name, "ffn_down")) n_ffn_down++;
        if (t->ne[0] > max_cols) max_cols = t->ne[0];
    }
    /* llama.cpp counts ffn_down layers as the block count */
    const char *arch = NULL;
    int64_t n_layer = 0;
    if (!qai_gguf_get_str(g, "general.architecture", &arch) && arch) {
        char key[256];
        snprintf(key, sizeof key, "%s.block_count", arch);
        if (qai_gguf_get_int(g, key, &n_layer)) n_layer = 0;
    }
    ms.n_ffn_down = n_layer > 0 ? (int)n_layer : (int)n_ffn_down;

    qai_gguf_writer *w = qai_gguf_writer_new();
    void **bufs = qai_calloc((size_t)(nt > 0 ? nt : 1), sizeof(void *));
    int n_threads = opts && opts->n_threads > 0 ? opts->n_threads : qai_cpu_count();
    qai_pool *pool = n_threads > 1 ? qai_pool_new(n_threads) : NULL;
    int nth = pool ? qai_pool_size(pool) : 1;
    float *scratch = qai_malloc(sizeof(float) * (size_t)(max_cols > 0 ? max_cols : 1) * (size_t)nth);
    if (!w || !bufs || !scratch || (n_threads > 1 && !pool)) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < qai_gguf_n_kv(g); i++)
        if ((st = qai_gguf_set_kv_from(w, g, i))) goto done;
    if ((st = qai_gguf_set_u32(w, "general.quantization_version", 2))) goto done;
    if ((st = qai_gguf_set_u32(w, "general.file_type", s->file_type))) goto done;

    qai_progress prog;
    qai_progress_start(&prog, "quantizing", "tensors", (uint64_t)nt);
    if (opts && opts->quiet) prog.quiet = true;
    for (int64_t i = 0; i < nt; i++) {
        const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
        int64_t nel = 1;
        for (int d = 0; d < t->n_dims; d++) nel *= t->ne[d];
        sum.n_elements += (uint64_t)nel;
        sum.data_in += t->size;
        qai_type to = t->type;
        if (is_quantizable(t)) {
            to = choose_type(s, t, &ms);
            int bs = qai_type_info(to)->block_size;
            if (t->ne[0] % bs) {
                qai_type fb = to == QAI_TYPE_Q4_K || to == QAI_TYPE_Q6_K ? QAI_TYPE_Q8_0 : QAI_TYPE_F16;
                if (t->ne[0] % qai_type_info(fb)->block_size) fb = QAI_TYPE_F16;
                qai_log(QAI_LOG_WARN, "tensor '%s': rows of %lld elements are not a multiple of the %s block (%d): using %s",
                        t->name, (long long)t->ne[0], qai_type_info(to)->name, bs, qai_type_info(fb)->name);
                to = fb;
                sum.n_fallback++;
            }
        }
        const void *data = t->data;
        size_t size = t->size;
        if (to != t->type) {
            const qai_type_traits *from = qai_type_info(t->type);
            if (!from || !from->supported)
                st = qai_error(QAI_ERR_UNSUPPORTED, "tensor '%s': cannot convert from type %s", t->name,
                               from ? from->name : "?");
            if (st) goto done_prog;
            int64_t ncols = t->ne[0], nrows = nel / (ncols > 0 ? ncols : 1);
            size = qai_row_size(to, ncols) * (size_t)nrows;
            bufs[i] = qai_malloc(size ? size : 1);
            if (!bufs[i]) {
                st = QAI_ERR_NOMEM;
                goto done_prog;
            }
            convert_job job = {.t = t, .to = to, .dst = bufs[i], .nrows = nrows, .ncols = ncols, .scratch = scratch};
            qai_pool_run(pool, convert_rows, &job);
            if (job.st) {
                st = qai_error(job.st, "tensor '%s': converting %s to %s failed", t->name, from->name,
                               qai_type_info(to)->name);
                goto done_prog;
            }
            data = bufs[i];
            sum.n_converted++;
        }
        sum.data_out += size;
        if ((st = qai_gguf_add_tensor(w, t->name, to, t->n_dims, t->ne, data, size))) goto done_prog;
        qai_progress_update(&prog, (uint64_t)i + 1);
    }
    qai_progress_finish(&prog);
    if ((st = qai_gguf_writer_write(w, out_gguf))) goto done;
    struct stat sb;
    if (!stat(out_gguf, &sb)) sum.file_out = (uint64_t)sb.st_size;
    goto done;
done_prog:
    qai_progress_finish(&prog);
done:
    if (bufs)
        for (int64_t i = 0; i < nt; i++) qai_free(bufs[i]);
    qai_free(bufs);
    qai_free(scratch);
    qai_pool_free(pool);
    qai_gguf_writer_free(w);
    qai_gguf_close(g);
    sum.seconds = (double)(qai_time_ns() - t0) * 1e-9;
    if (summary) *summary = sum;
    return st;
}
