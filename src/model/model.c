/* Loading a Llama-family model from GGUF: hyper-parameters from the
 * <arch>.* keys, weights used in place from the mmap, shapes and types checked
 * so the forward pass can trust them. Encoders ("bert") are described by
 * bert.c, with the helpers here.
 *
 * The one conversion: matmul weights whose type has a repacked layout for the
 * active kernels (Q8_0, Q4_0 on AVX-512: qai_repack_type) are copied into it
 * at load, on a thread pool, into one arena on transparent huge pages
 * (qai_alloc_huge: small matrices share 2 MB pages with big ones, and the
 * whole ~1 GB streams through huge-page TLB entries; the model owns it), and
 * the pages of each original are released from the
 * mapping as soon as it is repacked (MADV_DONTNEED; they stay in the page
 * cache and fault back in if something reads the GGUF tensor). The token embedding keeps its original
 * (rows are looked up); a tied output head gets its own repacked copy.
 * QAI_NO_REPACK=1 keeps every weight in place (zero-copy). */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model_internal.h"

size_t qai_weight_row_bytes(const qai_weight *w) { return qai_row_size(w->type, w->cols); }

static qai_status get_int_key(const qai_gguf *g, const char *arch, const char *suffix, int64_t *out, bool required,
                              int64_t dflt) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    qai_status st = qai_gguf_get_int(g, key, out);
    if (st == QAI_ERR_NOT_FOUND) {
        if (required) return qai_error(QAI_ERR_FORMAT, "metadata key '%s' is missing", key);
        *out = dflt;
        return QAI_OK;
    }
    if (st == QAI_OK && (*out < 0 || *out > (1 << 30)))
        return qai_error(QAI_ERR_FORMAT, "metadata key '%s' has an absurd value %lld", key, (long long)*out);
    return st;
}

static qai_status get_float_key(const qai_gguf *g, const char *arch, const char *suffix, float *out, float dflt) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    qai_status st = qai_gguf_get_float(g, key, &v);
    if (st == QAI_ERR_NOT_FOUND) {
        *out = dflt;
        return QAI_OK;
    }
    if (st == QAI_OK) *out = (float)v;
    return st;
}

/* Looks up a tensor and checks its shape (ne0 = row length, ne1 = rows; ne1 = 0
 * for a vector) and that qai can compute with its type. */
static qai_status find_tensor(const qai_gguf *g, const char *name, int64_t ne0, int64_t ne1, bool optional,
                              const qai_gguf_tensor **out) {
    const qai_gguf_tensor *t = qai_gguf_find_tensor(g, name);
    *out = t;
    if (!t) {
        if (optional) return QAI_OK;
        return qai_error(QAI_ERR_FORMAT, "tensor '%s' is missing", name);
    }
    int64_t want_dims = ne1 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && (ne1 ? t->ne[1] == ne1 : true);
    for (int d = (int)want_dims; d < QAI_GGUF_MAX_DIMS; d++) ok = ok && t->ne[d] == 1;
    if (!ok) {
        if (ne1)
            return qai_error(QAI_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld], expected [%lld, %lld]", name,
                             (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)ne0,
                             (long long)ne1);
        return qai_error(QAI_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld], expected [%lld]", name,
                         (long long)t->ne[0], (long long)t->ne[1], (long long)ne0);
    }
    const qai_type_traits *tr = qai_type_info(t->type);
    if (!tr || !tr->supported || t->type == QAI_TYPE_Q8_K)
        return qai_error(QAI_ERR_UNSUPPORTED,
                         "tensor '%s' has type %s, which qai cannot compute with yet (supported: f32, f16, bf16, q8_0, "
                         "q4_0, q4_k, q6_k); requantize it with 'qai quantize'",
                         name, tr ? tr->name : "unknown");
    return QAI_OK;
}

static qai_status get_vector(const qai_gguf *g, const char *name, int64_t n, bool optional, const float **out) {
    const qai_gguf_tensor *t;
    *out = NULL;
    qai_status st = find_tensor(g, name, n, 0, optional, &t);
    if (st || !t) return st;
    if (t->type != QAI_TYPE_F32)
        return qai_error(QAI_ERR_UNSUPPORTED, "tensor '%s' has type %s; norms and biases must be f32", name,
                         qai_type_info(t->type)->name);
    *out = t->data;
    return QAI_OK;
}

static qai_status get_matrix(const qai_gguf *g, const char *name, int64_t cols, int64_t rows, bool optional,
                             qai_weight *w) {
    const qai_gguf_tensor *t;
    memset(w, 0, sizeof *w);
    qai_status st = find_tensor(g, name, cols, rows, optional, &t);
    if (st || !t) return st;
    w->data = t->data;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    return QAI_OK;
}

qai_status qai_model_int_key(const qai_gguf *g, const char *arch, const char *suffix, int64_t *out, bool required,
                             int64_t dflt) {
    return get_int_key(g, arch, suffix, out, required, dflt);
}
qai_status qai_model_float_key(const qai_gguf *g, const char *arch, const char *suffix, float *out, float dflt) {
    return get_float_key(g, arch, suffix, out, dflt);
}
qai_status qai_model_vector(const qai_gguf *g, const char *name, int64_t n, bool optional, const float **out) {
    return get_vector(g, name, n, optional, out);
}
qai_status qai_model_matrix(const qai_gguf *g, const char *name, int64_t cols, int64_t rows, bool optional,
                            qai_weight *w) {
    return get_matrix(g, name, cols, rows, optional, w);
}

/* What every architecture shares once its tensors are found: the parameter
 * count and the tokenizer, which must fit the embedding rows. */
static qai_status load_tail(qai_model *m) {
    qai_gguf *g = m->gguf;
    qai_model_info *hp = &m->info;
    uint64_t np = 0;
    for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
        const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
        uint64_t c = 1;
        for (int d = 0; d < t->n_dims; d++) c *= (uint64_t)t->ne[d];
        np += c;
    }
    hp->n_params = np;
    qai_status st = qai_tokenizer_from_gguf(g, &m->tok);
    if (st) return st;
    if (qai_tokenizer_n_vocab(m->tok) > hp->n_vocab)
        return qai_error(QAI_ERR_FORMAT, "the vocabulary has %d tokens but token_embd.weight has only %d rows",
                         qai_tokenizer_n_vocab(m->tok), hp->n_vocab);
    return QAI_OK;
}

static qai_status load(qai_model *m) {
    qai_gguf *g = m->gguf;
    qai_model_info *hp = &m->info;
    const char *arch;
    if (qai_gguf_get_str(g, "general.architecture", &arch) != QAI_OK)
        return qai_error(QAI_ERR_FORMAT, "metadata key 'general.architecture' is missing");
    hp->pooling = QAI_POOLING_MEAN;
    if (!strcmp(arch, "bert")) {
        snprintf(hp->arch, sizeof hp->arch, "%s", arch);
        qai_status st = qai_bert_load(m);
        return st ? st : load_tail(m);
    }
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2"))
        return qai_error(QAI_ERR_UNSUPPORTED, "architecture '%s' is not supported yet (supported: llama, qwen2, bert)",
                         arch);
    snprintf(hp->arch, sizeof hp->arch, "%s", arch);
    int64_t v;
    qai_status st;
    if ((st = get_int_key(g, arch, "embedding_length", &v, true, 0))) return st;
    hp->n_embd = (int)v;
    if ((st = get_int_key(g, arch, "block_count", &v, true, 0))) return st;
    hp->n_layer = (int)v;
    if ((st = get_int_key(g, arch, "feed_forward_length", &v, true, 0))) return st;
    hp->n_ff = (int)v;
    if ((st = get_int_key(g, arch, "attention.head_count", &v, true, 0))) return st;
    hp->n_head = (int)v;
    if ((st = get_int_key(g, arch, "attention.head_count_kv", &v, false, hp->n_head))) return st;
    hp->n_head_kv = (int)v;
    if ((st = get_int_key(g, arch, "context_length", &v, false, 2048))) return st;
    hp->n_ctx_train = (int)v;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_ff <= 0)
        return qai_error(QAI_ERR_FORMAT, "model dimensions must be positive (embd %d, layers %d, heads %d/%d, ffn %d)",
                         hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
    if (hp->n_head % hp->n_head_kv)
        return qai_error(QAI_ERR_FORMAT, "head count %d is not a multiple of the KV head count %d", hp->n_head,
                         hp->n_head_kv);
    if ((st = get_int_key(g, arch, "attention.key_length", &v, false, hp->n_embd / hp->n_head))) return st;
    hp->head_dim = (int)v;
    if (hp->head_dim <= 0 || hp->head_dim % 2)
        return qai_error(QAI_ERR_FORMAT, "head size %d must be positive and even", hp->head_dim);
    if ((st = get_int_key(g, arch, "rope.dimension_count", &v, false, hp->head_dim))) return st;
    hp->n_rot = (int)v;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return qai_error(QAI_ERR_FORMAT, "rope.dimension_count %d must be even and at most the head size %d",
                         hp->n_rot, hp->head_dim);
    if ((st = get_float_key(g, arch, "attention.layer_norm_rms_epsilon", &hp->norm_eps, 1e-5f))) return st;
    if ((st = get_float_key(g, arch, "rope.freq_base", &hp->rope_theta, 10000.0f))) return st;
    float factor = 0;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *scaling = NULL;
    qai_gguf_get_str(g, key, &scaling);
    if ((st = get_float_key(g, arch, "rope.scaling.factor", &factor, 0))) return st;
    if (!scaling || !strcmp(scaling, "none")) factor = 0;
    else if (strcmp(scaling, "linear"))
        return qai_error(QAI_ERR_UNSUPPORTED, "rope scaling '%s' is not supported yet (supported: none, linear)",
                         scaling);
    hp->rope_freq_scale = factor > 0 ? 1.0f / factor : 1.0f;
    hp->rope_type = strcmp(arch, "qwen2") ? QAI_ROPE_NORM : QAI_ROPE_NEOX;
    hp->qkv_bias = !strcmp(arch, "qwen2");

    const qai_gguf_tensor *te = qai_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return qai_error(QAI_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
    hp->n_vocab = (int)te->ne[1];
    const int D = hp->n_embd, S = hp->head_dim, H = hp->n_head, G = hp->n_head_kv, F = hp->n_ff, V = hp->n_vocab;
    if ((st = get_matrix(g, "token_embd.weight", D, V, false, &m->tok_embd))) return st;
    if ((st = get_vector(g, "output_norm.weight", D, false, &m->out_norm))) return st;
    if ((st = get_matrix(g, "output.weight", D, V, true, &m->output))) return st;
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output) m->output = m->tok_embd;
    if ((st = get_vector(g, "rope_freqs.weight", hp->n_rot / 2, true, &m->rope_freqs))) return st;

    m->layers = qai_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return QAI_ERR_NOMEM;
    for (int l = 0; l < hp->n_layer; l++) {
        qai_layer *L = &m->layers[l];
        char n[96];
#define T(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, l), n)
        if ((st = get_vector(g, T("attn_norm.weight"), D, false, &L->attn_norm))) return st;
        if ((st = get_matrix(g, T("attn_q.weight"), D, H * S, false, &L->wq))) return st;
        if ((st = get_matrix(g, T("attn_k.weight"), D, G * S, false, &L->wk))) return st;
        if ((st = get_matrix(g, T("attn_v.weight"), D, G * S, false, &L->wv))) return st;
        if ((st = get_matrix(g, T("attn_output.weight"), H * S, D, false, &L->wo))) return st;
        if ((st = get_vector(g, T("attn_q.bias"), H * S, !hp->qkv_bias, &L->bq))) return st;
        if ((st = get_vector(g, T("attn_k.bias"), G * S, !hp->qkv_bias, &L->bk))) return st;
        if ((st = get_vector(g, T("attn_v.bias"), G * S, !hp->qkv_bias, &L->bv))) return st;
        if ((st = get_vector(g, T("ffn_norm.weight"), D, false, &L->ffn_norm))) return st;
        if ((st = get_matrix(g, T("ffn_gate.weight"), D, F, false, &L->w_gate))) return st;
        if ((st = get_matrix(g, T("ffn_up.weight"), D, F, false, &L->w_up))) return st;
        if ((st = get_matrix(g, T("ffn_down.weight"), F, D, false, &L->w_down))) return st;
#undef T
    }
    return load_tail(m);
}

/* ---- repacking at load ---- */

/* Calls fn on each matmul weight of a (possibly partly) loaded model — not
 * tok_embd and the bert embeddings: rows of those are looked up — and stops
 * at the first error. */
typedef qai_status (*weight_fn)(qai_weight *w, void *arg);
static qai_status each_matmul_weight(qai_model *m, weight_fn fn, void *arg) {
    qai_status st = QAI_OK;
#define VISIT(w) (st = !st && (w)->data ? fn((w), arg) : st)
    for (int l = 0; m->layers && l < m->info.n_layer; l++) {
        qai_layer *L = &m->layers[l];
        VISIT(&L->wq), VISIT(&L->wk), VISIT(&L->wv), VISIT(&L->wo), VISIT(&L->w_gate), VISIT(&L->w_up),
            VISIT(&L->w_down);
    }
    for (int l = 0; m->bert_layers && l < m->info.n_layer; l++) {
        qai_bert_layer *L = &m->bert_layers[l];
        VISIT(&L->wq), VISIT(&L->wk), VISIT(&L->wv), VISIT(&L->wo), VISIT(&L->w_up), VISIT(&L->w_down);
    }
    if (!m->info.is_encoder) VISIT(&m->output);
#undef VISIT
    return st;
}

/* Releases the whole pages inside [p, p + size) of the read-only mapping
 * (they stay in the page cache: a later read of the GGUF tensor faults them
 * back in). */
static void drop_pages(const void *p, size_t size) {
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + pg - 1) & ~(pg - 1),
              b = ((uintptr_t)p + size) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Repacking runs as one pool run over chunks of REPACK_ROWS rows of every
 * weight (taken from an atomic counter), so a busy machine pays one barrier,
 * not one per tensor. The thread that finishes a weight's last chunk releases
 * the pages of its original from the mapping at once, so the file's pages and
 * the copies are not all resident at the same time (peak RSS about the file
 * size, not twice it). */
#define REPACK_ROWS 256
typedef struct {
    qai_weight *w;
    qai_type rt;
    uint8_t *dst;
    size_t offset;      /* of dst in the arena */
    int first;          /* first chunk id */
    atomic_int pending; /* chunks not yet done */
    bool drop;          /* release the original's pages when done */
} repack_item;

typedef struct {
    repack_item *items;
    int n, n_items, n_chunks;
    atomic_int next;
    uint8_t *arena;
    size_t arena_size;
    atomic_size_t next_populate;
} repack_job;

static qai_status count_weight(qai_weight *w, void *arg) {
    repack_job *j = arg;
    if (qai_repack_type(w->type) >= 0 && w->cols % 32 == 0) {
        if (j->items) j->items[j->n] = (repack_item){.w = w, .rt = (qai_type)qai_repack_type(w->type)};
        j->n++;
    }
    return QAI_OK;
}

/* Faults the arena in, 2 MB-aligned slices from a counter on every thread:
 * the kernel zeroes each fresh page, which is most of the load's CPU time,
 * and two threads writing into one huge page that is not there yet would
 * both fault on it. */
#define POPULATE_SLICE (16 * QAI_HUGE_PAGE)
static void populate_arena(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    repack_job *j = arg;
    for (;;) {
        size_t off = atomic_fetch_add_explicit(&j->next_populate, POPULATE_SLICE, memory_order_relaxed);
        if (off >= j->arena_size) break;
        size_t n = j->arena_size - off < POPULATE_SLICE ? j->arena_size - off : POPULATE_SLICE;
        qai_populate(j->arena + off, n); /* on failure the pages fault in at first write instead */
    }
}

static void repack_chunks(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    repack_job *j = arg;
    int i = 0;
    for (;;) {
        int id = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (id >= j->n_chunks) break;
        while (id >= (i + 1 < j->n_items ? j->items[i + 1].first : j->n_chunks)) i++;
        repack_item *it = &j->items[i];
        const qai_weight *w = it->w;
        int64_t r0 = (int64_t)(id - it->first) * REPACK_ROWS, nr = w->rows - r0 < REPACK_ROWS ? w->rows - r0 : REPACK_ROWS;
        /* 16-row groups are independent: a chunk is a smaller matrix */
        qai_repack(NULL, w->type, (const uint8_t *)w->data + (size_t)r0 * qai_row_size(w->type, w->cols), nr, w->cols,
                   it->rt, it->dst + (size_t)r0 * qai_row_size(it->rt, w->cols));
        if (atomic_fetch_sub_explicit(&it->pending, 1, memory_order_acq_rel) == 1 && it->drop)
            drop_pages(w->data, qai_matrix_size(w->type, w->rows, w->cols));
    }
}

static qai_status repack(qai_model *m) {
    const char *e = getenv("QAI_NO_REPACK");
    if (e && *e && strcmp(e, "0")) return QAI_OK;
    repack_job j = {0};
    each_matmul_weight(m, count_weight, &j);
    if (!j.n) return QAI_OK;
    uint64_t t0 = qai_time_ns();
    j.items = qai_calloc((size_t)j.n, sizeof *j.items);
    if (!j.items) return QAI_ERR_NOMEM;
    j.n_items = j.n;
    j.n = 0;
    each_matmul_weight(m, count_weight, &j);
    size_t off = 0;
    for (int i = 0; i < j.n_items; i++) {
        repack_item *it = &j.items[i];
        it->offset = off;
        off += (qai_matrix_size(it->rt, it->w->rows, it->w->cols) + 63) & ~(size_t)63;
        it->first = j.n_chunks;
        int nc = (int)((it->w->rows + REPACK_ROWS - 1) / REPACK_ROWS);
        atomic_init(&it->pending, nc);
        it->drop = it->w->data != m->tok_embd.data; /* a tied head: the embedding rows are still looked up */
        j.n_chunks += nc;
    }
    j.arena_size = off;
    j.arena = qai_alloc_huge(j.arena_size, 0);
    if (!j.arena) {
        qai_free(j.items);
        return qai_error(QAI_ERR_NOMEM, "cannot allocate %zu bytes to repack weights", j.arena_size);
    }
    for (int i = 0; i < j.n_items; i++) j.items[i].dst = j.arena + j.items[i].offset;
    atomic_init(&j.next, 0);
    atomic_init(&j.next_populate, 0);
    /* threads only pay off for more than a few MB */
    qai_pool *pool = j.arena_size > (16u << 20) ? qai_pool_new(0) : NULL;
    qai_pool_run(pool, populate_arena, &j);
    uint64_t t1 = qai_time_ns();
    qai_pool_run(pool, repack_chunks, &j);
    qai_pool_free(pool);
    for (int i = 0; i < j.n_items; i++) {
        qai_weight *w = j.items[i].w;
        w->data = j.items[i].dst;
        w->type = j.items[i].rt;
    }
    m->repack_arena = j.arena;
    m->repack_arena_size = j.arena_size;
    if (qai_log_get_level() <= QAI_LOG_DEBUG)
        qai_log(QAI_LOG_DEBUG, "repacked %d weights (%.1f MB) in %.2f s (%.2f s of it faulting the memory in); %.1f MB on huge pages",
                j.n_items, j.arena_size / 1e6, (qai_time_ns() - t0) / 1e9, (t1 - t0) / 1e9,
                qai_huge_page_bytes(j.arena, j.arena_size) / 1e6);
    qai_free(j.items);
    return QAI_OK;
}

qai_status qai_model_open(const char *path, qai_model **out) {
    *out = NULL;
    qai_model *m = qai_calloc(1, sizeof *m);
    if (!m) return QAI_ERR_NOMEM;
    qai_status st = qai_gguf_open(path, &m->gguf);
    if (st == QAI_OK) {
        st = load(m);
        if (st == QAI_OK) st = repack(m);
        if (st) qai_error_wrap(st, "cannot load model '%s'", path);
    }
    if (st) {
        qai_model_close(m);
        return st;
    }
    *out = m;
    return QAI_OK;
}

void qai_model_close(qai_model *m) {
    if (!m) return;
    qai_tokenizer_free(m->tok);
    qai_free_huge(m->repack_arena, m->repack_arena_size);
    qai_free(m->layers);
    qai_free(m->bert_layers);
    qai_gguf_close(m->gguf);
    qai_free(m);
}

const qai_model_info *qai_model_get_info(const qai_model *m) { return &m->info; }
const qai_tokenizer *qai_model_tokenizer(const qai_model *m) { return m->tok; }
const qai_gguf *qai_model_gguf(const qai_model *m) { return m->gguf; }

uint64_t qai_model_weight_bytes(const qai_model *m) {
    if (m->info.is_encoder) return qai_bert_weight_bytes(m);
    uint64_t b = 0;
    const qai_model_info *hp = &m->info;
    for (int l = 0; l < hp->n_layer; l++) {
        const qai_layer *L = &m->layers[l];
        const qai_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) b += qai_weight_row_bytes(ws[i]) * (uint64_t)ws[i]->rows;
        b += 2ull * hp->n_embd * sizeof(float);
    }
    b += qai_weight_row_bytes(&m->output) * (uint64_t)m->output.rows;
    b += qai_weight_row_bytes(&m->tok_embd); /* one embedding row */
    return b;
}
