/*
 * llama2.c checkpoint → GGUF importer (layout in include/qai/convert.h).
 *
 * The checkpoint is mapped and validated (header ranges, exact file size)
 * before anything is written; tensor data goes from the mapping straight into
 * the GGUF writer without copies. The vocabulary comes from the tokenizer
 * layer's qai_vocab_read_llama2c.
 *
 * What it deliberately does not do: llama2.c's versioned "ak42" exports, or
 * any change to the weights (no permutation: llama2.c's rope is ggml's normal
 * rope).
 */
#include <string.h>
#include <sys/stat.h>

#include "qai/convert.h"

#define LLAMA2C_HEADER_BYTES 28
#define LLAMA2C_VERSIONED_MAGIC 0x616b3432u /* "ak42" as a little-endian u32 */

typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} llama2c_config;

static qai_status set_u32_ids(qai_gguf_writer *w, const char *key, int32_t id) {
    return id >= 0 ? qai_gguf_set_u32(w, key, (uint32_t)id) : QAI_OK;
}

qai_status qai_convert_set_vocab(qai_gguf_writer *w, const qai_vocab_desc *d) {
    if (!w || !d || d->n_tokens <= 0 || !d->tokens)
        return qai_error(QAI_ERR_ARG, "qai_convert_set_vocab: empty vocabulary");
    qai_status st;
    bool spm = d->kind == QAI_VOCAB_SPM;
    if ((st = qai_gguf_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2"))) return st;
    if (!spm && (st = qai_gguf_set_str(w, "tokenizer.ggml.pre", d->pre ? d->pre : "default"))) return st;
    if ((st = qai_gguf_set_arr_str(w, "tokenizer.ggml.tokens", d->tokens, d->token_lens, (uint64_t)d->n_tokens)))
        return st;
    if (d->scores &&
        (st = qai_gguf_set_arr_data(w, "tokenizer.ggml.scores", QAI_GGUF_FLOAT32, d->scores, (uint64_t)d->n_tokens)))
        return st;
    if (d->types &&
        (st = qai_gguf_set_arr_data(w, "tokenizer.ggml.token_type", QAI_GGUF_INT32, d->types, (uint64_t)d->n_tokens)))
        return st;
    if (d->n_merges > 0 && d->merges &&
        (st = qai_gguf_set_arr_str(w, "tokenizer.ggml.merges", d->merges, NULL, (uint64_t)d->n_merges)))
        return st;
    if ((st = set_u32_ids(w, "tokenizer.ggml.bos_token_id", d->bos)) ||
        (st = set_u32_ids(w, "tokenizer.ggml.eos_token_id", d->eos)) ||
        (st = set_u32_ids(w, "tokenizer.ggml.unknown_token_id", d->unk)) ||
        (st = set_u32_ids(w, "tokenizer.ggml.eot_token_id", d->eot)) ||
        (st = set_u32_ids(w, "tokenizer.ggml.eom_token_id", d->eom)) ||
        (st = set_u32_ids(w, "tokenizer.ggml.padding_token_id", d->pad)) ||
        (st = set_u32_ids(w, "tokenizer.ggml.seperator_token_id", d->sep))) /* sic: the GGUF key is misspelled */
        return st;
    if ((st = qai_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", d->add_bos)) ||
        (st = qai_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", d->add_eos)))
        return st;
    if (spm && (st = qai_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", d->add_space_prefix))) return st;
    return QAI_OK;
}

/* "dir/stories260K.bin" → "stories260K" (into buf). */
static void stem(const char *path, char *buf, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, cap, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    if (!buf[0]) snprintf(buf, cap, "llama");
}

static qai_status check_config(const char *path, const llama2c_config *c) {
    struct {
        const char *name;
        int64_t v, max;
        int off;
    } f[] = {
        {"dim", c->dim, 1 << 16, 0},
        {"hidden_dim", c->hidden_dim, 1 << 20, 4},
        {"n_layers", c->n_layers, 4096, 8},
        {"n_heads", c->n_heads, 4096, 12},
        {"n_kv_heads", c->n_kv_heads, 4096, 16},
        {"vocab_size", c->vocab_size < 0 ? -(int64_t)c->vocab_size : c->vocab_size, 1 << 24, 20},
        {"seq_len", c->seq_len, 1 << 24, 24},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 1 || f[i].v > f[i].max)
            return qai_error(QAI_ERR_FORMAT,
                             "'%s': %s at offset %d is %lld, expected 1 to %lld; not a llama2.c checkpoint?", path,
                             f[i].name, f[i].off, (long long)f[i].v, (long long)f[i].max);
    if (c->dim % c->n_heads)
        return qai_error(QAI_ERR_FORMAT, "'%s': dim %d (offset 0) is not a multiple of n_heads %d (offset 12)", path,
                         c->dim, c->n_heads);
    if ((c->dim / c->n_heads) % 2)
        return qai_error(QAI_ERR_FORMAT, "'%s': head size %d (dim %d / n_heads %d) is odd; rope needs it even", path,
                         c->dim / c->n_heads, c->dim, c->n_heads);
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return qai_error(QAI_ERR_FORMAT, "'%s': n_kv_heads %d (offset 16) does not divide n_heads %d (offset 12)", path,
                         c->n_kv_heads, c->n_heads);
    return QAI_OK;
}

/* True if both paths name the same existing file (so writing one would replace the other). */
static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

qai_status qai_convert_llama2c(const char *model_bin, const char *tokenizer_bin, const char *out_gguf) {
    if (!model_bin || !tokenizer_bin || !out_gguf)
        return qai_error(QAI_ERR_ARG, "qai_convert_llama2c: model, tokenizer and output paths are required");
    if (same_file(out_gguf, model_bin) || same_file(out_gguf, tokenizer_bin))
        return qai_error(QAI_ERR_ARG, "'%s': the output would overwrite an input file", out_gguf);
    qai_mapped_file mf;
    qai_status st = qai_file_map(model_bin, &mf);
    if (st) return st;
    qai_vocab_desc vd;
    memset(&vd, 0, sizeof vd);
    bool have_vocab = false;
    qai_gguf_writer *w = NULL;

    if (mf.size < LLAMA2C_HEADER_BYTES) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': %zu bytes is too short for a llama2.c header (%d bytes)", model_bin,
                       mf.size, LLAMA2C_HEADER_BYTES);
        goto done;
    }
    uint32_t magic;
    memcpy(&magic, mf.data, 4);
    if (magic == LLAMA2C_VERSIONED_MAGIC) {
        st = qai_error(QAI_ERR_UNSUPPORTED,
                       "'%s': a llama2.c versioned export (magic 'ak42' at offset 0) is not supported; export the "
                       "model with llama2.c's legacy format (export.py --version 0)",
                       model_bin);
        goto done;
    }
    llama2c_config c;
    memcpy(&c, mf.data, sizeof c);
    if ((st = check_config(model_bin, &c))) goto done;

    bool shared = c.vocab_size > 0;
    int64_t V = shared ? c.vocab_size : -(int64_t)c.vocab_size;
    int64_t D = c.dim, H = c.hidden_dim, L = c.n_layers, S = c.seq_len;
    int64_t hs = D / c.n_heads, KV = c.n_kv_heads * hs;
    /* Floats in file order; every product is < 2^62 with the limits above. */
    enum { EMB, RMS_ATT, WQ, WK, WV, WO, RMS_FFN, W1, W2, W3, RMS_FINAL, FREQ, WCLS, N_PARTS };
    uint64_t count[N_PARTS] = {
        [EMB] = (uint64_t)(V * D),     [RMS_ATT] = (uint64_t)(L * D),    [WQ] = (uint64_t)(L * D * D),
        [WK] = (uint64_t)(L * KV * D), [WV] = (uint64_t)(L * KV * D),    [WO] = (uint64_t)(L * D * D),
        [RMS_FFN] = (uint64_t)(L * D), [W1] = (uint64_t)(L * H * D),     [W2] = (uint64_t)(L * D * H),
        [W3] = (uint64_t)(L * H * D),  [RMS_FINAL] = (uint64_t)D,        [FREQ] = (uint64_t)(S * hs), /* real + imag */
        [WCLS] = shared ? 0 : (uint64_t)(V * D),
    };
    uint64_t off[N_PARTS], pos = LLAMA2C_HEADER_BYTES;
    for (int i = 0; i < N_PARTS; i++) {
        off[i] = pos;
        pos += count[i] * 4;
    }
    if (pos != mf.size) {
        st = qai_error(QAI_ERR_FORMAT,
                       "'%s': file is %zu bytes but its header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, "
                       "n_kv_heads %d, vocab_size %d, seq_len %d) implies %llu bytes%s",
                       model_bin, mf.size, c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
                       c.seq_len, (unsigned long long)pos,
                       mf.size < pos ? " (truncated?)" : " (trailing data, or a different format)");
        goto done;
    }

    if ((st = qai_vocab_read_llama2c(tokenizer_bin, &vd))) goto done;
    have_vocab = true;
    if (vd.n_tokens != V) {
        st = qai_error(QAI_ERR_FORMAT, "'%s' has %d tokens but '%s' has vocab_size %lld (offset 20); wrong tokenizer?",
                       tokenizer_bin, vd.n_tokens, model_bin, (long long)V);
        goto done;
    }

    w = qai_gguf_writer_new();
    if (!w) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    char name[256];
    stem(model_bin, name, sizeof name);
    if ((st = qai_gguf_set_str(w, "general.architecture", "llama")) || (st = qai_gguf_set_str(w, "general.name", name)) ||
        (st = qai_gguf_set_u32(w, "general.file_type", 0)) || /* LLAMA_FTYPE_ALL_F32 */
        (st = qai_gguf_set_u32(w, "llama.context_length", (uint32_t)S)) ||
        (st = qai_gguf_set_u32(w, "llama.embedding_length", (uint32_t)D)) ||
        (st = qai_gguf_set_u32(w, "llama.block_count", (uint32_t)L)) ||
        (st = qai_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)H)) ||
        (st = qai_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)hs)) ||
        (st = qai_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c.n_heads)) ||
        (st = qai_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c.n_kv_heads)) ||
        (st = qai_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f)) ||
        (st = qai_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f)) ||
        (st = qai_gguf_set_u32(w, "llama.vocab_size", (uint32_t)V)) || (st = qai_convert_set_vocab(w, &vd)))
        goto done;

    /* Tensors in llama.cpp's order: token_embd, output_norm, output, then per
     * layer q, k, v, output, attn_norm, gate, down, up, ffn_norm. */
    const uint8_t *base = mf.data;
    int64_t ne[2];
#define ADD(nm, part, layer_bytes, ne0, ne1, nd)                                                                       \
    do {                                                                                                               \
        ne[0] = (ne0), ne[1] = (ne1);                                                                                  \
        uint64_t lb_ = (uint64_t)(layer_bytes);                                                                        \
        if ((st = qai_gguf_add_tensor(w, nm, QAI_TYPE_F32, nd, ne, base + off[part] + lb_ * (uint64_t)l,             \
                                      (size_t)((ne0) * (ne1) * 4))))                                                   \
            goto done;                                                                                                 \
    } while (0)
    {
        int64_t l = 0;
        ADD("token_embd.weight", EMB, 0, D, V, 2);
        ADD("output_norm.weight", RMS_FINAL, 0, D, 1, 1);
        if (!shared) ADD("output.weight", WCLS, 0, D, V, 2);
    }
    for (int64_t l = 0; l < L; l++) {
        char tn[64];
#define BLK(suffix) (snprintf(tn, sizeof tn, "blk.%lld." suffix, (long long)l), tn)
        ADD(BLK("attn_q.weight"), WQ, D * D * 4, D, D, 2);
        ADD(BLK("attn_k.weight"), WK, KV * D * 4, D, KV, 2);
        ADD(BLK("attn_v.weight"), WV, KV * D * 4, D, KV, 2);
        ADD(BLK("attn_output.weight"), WO, D * D * 4, D, D, 2);
        ADD(BLK("attn_norm.weight"), RMS_ATT, D * 4, D, 1, 1);
        ADD(BLK("ffn_gate.weight"), W1, H * D * 4, D, H, 2);
        ADD(BLK("ffn_down.weight"), W2, D * H * 4, H, D, 2);
        ADD(BLK("ffn_up.weight"), W3, H * D * 4, D, H, 2);
        ADD(BLK("ffn_norm.weight"), RMS_FFN, D * 4, D, 1, 1);
#undef BLK
    }
#undef ADD
    st = qai_gguf_writer_write(w, out_gguf);

done:
    qai_gguf_writer_free(w);
    if (have_vocab) qai_vocab_release(&vd);
    qai_file_unmap(&mf);
    return st;
}

qai_status qai_convert_llama2c_vocab(const char *tokenizer_bin, const char *out_gguf) {
    if (!tokenizer_bin || !out_gguf)
        return qai_error(QAI_ERR_ARG, "qai_convert_llama2c_vocab: tokenizer and output paths are required");
    if (same_file(out_gguf, tokenizer_bin))
        return qai_error(QAI_ERR_ARG, "'%s': the output would overwrite an input file", out_gguf);
    qai_vocab_desc vd;
    qai_status st = qai_vocab_read_llama2c(tokenizer_bin, &vd);
    if (st) return st;
    qai_gguf_writer *w = qai_gguf_writer_new();
    if (!w) {
        qai_vocab_release(&vd);
        return QAI_ERR_NOMEM;
    }
    char name[256];
    stem(tokenizer_bin, name, sizeof name);
    if (!(st = qai_gguf_set_str(w, "general.architecture", "llama")) && !(st = qai_gguf_set_str(w, "general.name", name)) &&
        !(st = qai_gguf_set_u32(w, "llama.vocab_size", (uint32_t)vd.n_tokens)) && !(st = qai_convert_set_vocab(w, &vd)))
        st = qai_gguf_writer_write(w, out_gguf);
    qai_gguf_writer_free(w);
    qai_vocab_release(&vd);
    return st;
}
