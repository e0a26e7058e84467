/*
 * Checkpoints (everything a run needs to continue to the bit) and the export
 * of the trained model as a GGUF.
 *
 * Checkpoint layout (little-endian):
 *   offset  0  u8[8]  magic "QAICKPT\0"
 *           8  u32    version (1)
 *          12  u32    n_desc: parameter tensors
 *          16  u64    n_floats: floats in each of params, m, v
 *          24  u64    config_len: bytes of the config JSON
 *          32  u64    step (optimizer steps done)
 *          40  u64    tokens_seen
 *          48  u64[4] data stream random state
 *          80  f64    elapsed seconds
 *          88  u8[64] dataset manifest hash (hex, zero-padded; zeros for random data); for the
 *                 contrastive objective the SHA-256 of the pairs file
 *         152  config JSON (config_len bytes)
 *              n_desc × descriptor: char name[64], i64 ne[2], u64 off, u8 decay, u8 alias, u8[6] 0  (96 bytes)
 *              f32 params[n_floats], f32 m[n_floats], f32 v[n_floats]
 *              u8[32] SHA-256 of every byte before it
 * A checkpoint is only accepted whole: size, hash and descriptors must match.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/model.h"
#include "qai/tensor.h"
#include "train/train_internal.h"

#define CKPT_MAGIC "QAICKPT"
enum { CKPT_VERSION = 1, CKPT_HEADER = 152, CKPT_DESC = 96 };

typedef struct {
    char magic[8];
    uint32_t version, n_desc;
    uint64_t n_floats, config_len, step, tokens_seen, rng[4];
    double elapsed;
    char manifest_hash[64];
} ckpt_header;
_Static_assert(sizeof(ckpt_header) == CKPT_HEADER, "checkpoint header layout");

typedef struct {
    char name[64];
    int64_t ne[2];
    uint64_t off;
    uint8_t decay, alias, pad[6];
} ckpt_desc;
_Static_assert(sizeof(ckpt_desc) == CKPT_DESC, "checkpoint descriptor layout");

static qai_status write_hashed(FILE *f, qai_sha256_ctx *h, const void *p, size_t n) {
    qai_sha256_update(h, p, n);
    return fwrite(p, 1, n, f) == n ? QAI_OK : QAI_ERR_IO;
}

qai_status qai_trainer_save(qai_trainer *t, const char *path) {
    char *cfg = qai_train_config_to_json(&t->cfg);
    if (!cfg) return QAI_ERR_NOMEM;
    ckpt_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    h.version = CKPT_VERSION;
    h.n_desc = (uint32_t)t->n_desc;
    h.n_floats = t->n_floats;
    h.config_len = strlen(cfg);
    h.step = (uint64_t)t->step;
    h.tokens_seen = t->tokens_seen;
    memcpy(h.rng, t->data_rng.s, sizeof h.rng);
    h.elapsed = t->elapsed_s;
    if (t->ds) memcpy(h.manifest_hash, qai_dataset_manifest_hash(t->ds), 64);
    if (t->pairs) memcpy(h.manifest_hash, qai_pairs_sha256(t->pairs), 64);

    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) {
        qai_free(cfg);
        return st;
    }
    qai_sha256_ctx hc;
    qai_sha256_init(&hc);
    st = write_hashed(af.f, &hc, &h, sizeof h);
    if (!st) st = write_hashed(af.f, &hc, cfg, h.config_len);
    for (int i = 0; i < t->n_desc && !st; i++) {
        ckpt_desc d;
        memset(&d, 0, sizeof d);
        memcpy(d.name, t->desc[i].name, sizeof d.name);
        d.ne[0] = t->desc[i].ne[0];
        d.ne[1] = t->desc[i].ne[1];
        d.off = t->desc[i].off;
        d.decay = t->desc[i].decay;
        d.alias = t->desc[i].alias;
        st = write_hashed(af.f, &hc, &d, sizeof d);
    }
    const float *arrays[3] = {t->params, t->m, t->v};
    for (int a = 0; a < 3 && !st; a++) st = write_hashed(af.f, &hc, arrays[a], t->n_floats * sizeof(float));
    uint8_t digest[32];
    qai_sha256_final(&hc, digest);
    if (!st && fwrite(digest, 1, 32, af.f) != 32) st = QAI_ERR_IO;
    qai_free(cfg);
    if (st) {
        qai_atomic_abort(&af);
        return qai_error(QAI_ERR_IO, "cannot write checkpoint '%s'", path);
    }
    return qai_atomic_commit(&af);
}

/* The keys a resumed run may change: none of them alters the trajectory. */
static bool may_override(const char *key) {
    static const char *ok[] = {"max_steps", "eval_every", "eval_batches", "ckpt_every", "out", "ckpt_dir", "threads"};
    char k[64];
    size_t n = strcspn(key, "=");
    if (n >= sizeof k) return false;
    for (size_t i = 0; i < n; i++) k[i] = key[i] == '-' ? '_' : key[i];
    k[n] = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(ok[i], k)) return true;
    return false;
}

qai_status qai_trainer_resume(const char *path, const char *const *overrides, qai_trainer **out) {
    *out = NULL;
    qai_mapped_file mf;
    qai_status st = qai_file_map(path, &mf);
    if (st) return st;
    const uint8_t *p = mf.data;
    ckpt_header h;
#define BAD(...)                                                                                                       \
    do {                                                                                                               \
        st = qai_error(QAI_ERR_FORMAT, __VA_ARGS__);                                                                   \
        goto done;                                                                                                     \
    } while (0)
    if (mf.size < CKPT_HEADER + 32) BAD("checkpoint '%s' is truncated (%zu bytes)", path, mf.size);
    memcpy(&h, p, sizeof h);
    if (memcmp(h.magic, CKPT_MAGIC, 8)) BAD("'%s' is not a qai checkpoint (bad magic at offset 0)", path);
    if (h.version != CKPT_VERSION) BAD("checkpoint '%s': version %u is not supported (offset 8)", path, h.version);
    if (h.n_desc > 1u << 20 || h.n_floats > (1ull << 40) || h.config_len > (1u << 20))
        BAD("checkpoint '%s': absurd sizes in the header (offsets 12-24)", path);
    uint64_t need = CKPT_HEADER + h.config_len + (uint64_t)h.n_desc * CKPT_DESC + 3 * h.n_floats * 4 + 32;
    if (mf.size != need)
        BAD("checkpoint '%s' is %zu bytes but its header describes %llu: truncated or corrupted", path, mf.size,
            (unsigned long long)need);
    uint8_t digest[32];
    qai_sha256(p, mf.size - 32, digest);
    if (memcmp(digest, p + mf.size - 32, 32))
        BAD("checkpoint '%s' is corrupted: its SHA-256 does not match (offset %zu)", path, mf.size - 32);

    qai_train_config c = qai_train_config_default();
    if ((st = qai_train_config_parse((const char *)p + CKPT_HEADER, h.config_len, path, &c))) goto done;
    for (const char *const *o = overrides; o && *o; o++) {
        const char *eq = strchr(*o, '=');
        if (!eq || !may_override(*o)) {
            st = qai_error(QAI_ERR_ARG, "'%.*s' cannot change when resuming (only max-steps, eval-every, "
                           "eval-batches, ckpt-every, out, ckpt-dir and threads can)", (int)strcspn(*o, "="), *o);
            goto done;
        }
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - *o), *o);
        if ((st = qai_train_config_set(&c, key, eq + 1))) goto done;
    }
    c.init = NULL; /* the weights come from the checkpoint */
    qai_trainer *t;
    if ((st = qai_trainer_new(&c, &t))) goto done;
    /* descriptors follow the config text, so they are not aligned: copy each out */
    const uint8_t *dp = p + CKPT_HEADER + h.config_len;
    bool same = h.n_desc == (uint32_t)t->n_desc && h.n_floats == t->n_floats;
    for (int i = 0; same && i < t->n_desc; i++) {
        ckpt_desc d;
        memcpy(&d, dp + (size_t)i * CKPT_DESC, sizeof d);
        same = !strncmp(d.name, t->desc[i].name, 64) && d.ne[0] == t->desc[i].ne[0] && d.ne[1] == t->desc[i].ne[1] &&
               d.off == t->desc[i].off && d.alias == t->desc[i].alias;
    }
    if (!same) {
        qai_trainer_free(t);
        BAD("checkpoint '%s': its tensors do not match the model its config describes", path);
    }
    if (t->ds && h.manifest_hash[0] && memcmp(h.manifest_hash, qai_dataset_manifest_hash(t->ds), 64)) {
        qai_trainer_free(t);
        BAD("checkpoint '%s' was trained on a different dataset than '%s' holds now (manifest hash differs)", path,
            c.data);
    }
    if (t->pairs && h.manifest_hash[0] && memcmp(h.manifest_hash, qai_pairs_sha256(t->pairs), 64)) {
        qai_trainer_free(t);
        BAD("checkpoint '%s' was trained on other pairs than '%s' holds now (SHA-256 differs)", path, c.pairs);
    }
    const uint8_t *arrays = p + CKPT_HEADER + h.config_len + (size_t)h.n_desc * CKPT_DESC; /* unaligned too */
    memcpy(t->params, arrays, t->n_floats * 4);
    memcpy(t->m, arrays + t->n_floats * 4, t->n_floats * 4);
    memcpy(t->v, arrays + 2 * t->n_floats * 4, t->n_floats * 4);
    t->step = (int)h.step;
    t->tokens_seen = h.tokens_seen;
    memcpy(t->data_rng.s, h.rng, sizeof h.rng);
    t->elapsed_s = h.elapsed;
    *out = t;
done:
#undef BAD
    qai_file_unmap(&mf);
    return st;
}

/* The tokenizer for the exported model: c->tokenizer, else the dataset's (its
 * manifest names the file; it must still hash the same). NULL: none found. */
static qai_status find_tokenizer(qai_trainer *t, qai_gguf **out) {
    *out = NULL;
    const char *path = t->cfg.tokenizer;
    char *from_manifest = NULL;
    if (!path && t->ds) {
        char mpath[4096];
        snprintf(mpath, sizeof mpath, "%s/manifest.json", t->cfg.data);
        char *text;
        size_t n;
        void *j = NULL;
        if (qai_file_read(mpath, &text, &n) == QAI_OK) {
            if (qai_dataset_manifest_parse(text, n, mpath, &j) == QAI_OK) {
                cJSON *tk = cJSON_GetObjectItemCaseSensitive((cJSON *)j, "tokenizer");
                cJSON *tp = cJSON_GetObjectItemCaseSensitive(tk, "path");
                if (cJSON_IsString(tp)) from_manifest = qai_strdup(tp->valuestring);
                cJSON_Delete(j);
            }
            qai_free(text);
        }
        if (from_manifest) {
            uint8_t d[32];
            char hex[65];
            if (qai_sha256_file(from_manifest, d, NULL) == QAI_OK) {
                qai_hex(d, 32, hex);
                if (!strcmp(hex, qai_dataset_tokenizer_hash(t->ds))) path = from_manifest;
            }
            if (!path)
                qai_log(QAI_LOG_WARN, "the dataset's tokenizer '%s' is gone or changed; pass --tokenizer",
                        from_manifest);
        }
    }
    qai_status st = QAI_OK;
    if (path) {
        st = qai_gguf_open(path, out);
        if (!st) {
            int64_t i = qai_gguf_find_kv(*out, "tokenizer.ggml.tokens");
            if (i < 0 || (int64_t)qai_gguf_arr_len(*out, i) != t->V) {
                st = qai_error(QAI_ERR_ARG, "tokenizer '%s' has %lld tokens but the model's vocabulary is %d", path,
                               i < 0 ? 0LL : (long long)qai_gguf_arr_len(*out, i), t->V);
                qai_gguf_close(*out);
                *out = NULL;
            }
        }
    }
    qai_free(from_manifest);
    return st;
}

qai_status qai_trainer_export_gguf(qai_trainer *t, const char *path) {
    qai_gguf *tok = NULL;
    qai_status st = find_tokenizer(t, &tok);
    if (st) return st;
    if (!tok && t->V < 259)
        return qai_error(QAI_ERR_ARG, "no tokenizer to store in '%s': pass --tokenizer tok.gguf", path);
    qai_gguf_writer *w = qai_gguf_writer_new();
    if (!w) {
        qai_gguf_close(tok);
        return QAI_ERR_NOMEM;
    }
    st = qai_gguf_set_str(w, "general.architecture", "llama");
    if (!st) st = qai_gguf_set_str(w, "general.name", t->contrastive ? "qai embedding model" : "qai trained model");
    if (!st) st = qai_gguf_set_u32(w, "general.file_type", 0); /* all F32 */
    if (!st) st = qai_gguf_set_u32(w, "llama.context_length", (uint32_t)t->ctx_len);
    if (!st && t->contrastive) st = qai_gguf_set_u32(w, "llama.pooling_type", 1); /* mean, as trained */
    if (!st) st = qai_gguf_set_u32(w, "llama.embedding_length", (uint32_t)t->D);
    if (!st) st = qai_gguf_set_u32(w, "llama.block_count", (uint32_t)t->L);
    if (!st) st = qai_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)t->F);
    if (!st) st = qai_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)t->S);
    if (!st) st = qai_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)t->H);
    if (!st) st = qai_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)t->G);
    if (!st) st = qai_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", t->eps);
    if (!st) st = qai_gguf_set_f32(w, "llama.rope.freq_base", t->rope_theta);
    if (!st) st = qai_gguf_set_u32(w, "llama.vocab_size", (uint32_t)t->V);
    if (tok) {
        for (int64_t i = 0; i < qai_gguf_n_kv(tok) && !st; i++)
            if (!strncmp(qai_gguf_kv_key(tok, i), "tokenizer.", 10)) st = qai_gguf_set_kv_from(w, tok, i);
    } else if (!st) {
        qai_log(QAI_LOG_WARN, "no tokenizer given: '%s' gets a byte-level vocabulary", path);
        st = qai_model_write_byte_vocab(w, t->V);
    }
    for (int i = 0; i < t->n_desc && !st; i++) {
        const qai_param_desc *d = &t->desc[i];
        if (d->alias) continue; /* tied: llama.cpp and qai use token_embd when output.weight is absent */
        int64_t ne[2] = {d->ne[0], d->ne[1]};
        st = qai_gguf_add_tensor(w, d->name, QAI_TYPE_F32, d->ne[1] > 1 ? 2 : 1, ne, t->params + d->off,
                                 (size_t)(d->ne[0] * d->ne[1]) * sizeof(float));
    }
    if (!st) st = qai_gguf_writer_write(w, path);
    qai_gguf_writer_free(w);
    qai_gguf_close(tok);
    return st;
}
