/*
 * Training configuration: defaults, one table of keys (shared by the YAML/JSON
 * file, the command-line flags and the checkpoint), validation with messages
 * that name the key, and the JSON form stored in checkpoints and logs.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_internal.h"

qai_train_config qai_train_config_default(void) {
    return (qai_train_config){
        .dim = 288, .layers = 6, .heads = 6, .kv_heads = 0, .ffn = 768, .vocab = 4096,
        .rope_theta = 10000.0f, .norm_eps = 1e-5f,
        .data = "random", .seq = 256, .batch = 8, .grad_accum = 1, .max_steps = 1000,
        .lr = 1e-3f, .min_lr = 1e-4f, .warmup = 100,
        .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 1.0f,
        .eval_every = 100, .eval_batches = 8, .ckpt_every = 0,
        .out = "model.gguf", .seed = 1337, .threads = 0,
        .objective = QAI_OBJECTIVE_LM, .query_seq = 32, .temperature = 0.05f, .micro_batch = 0, .val_share = 0.05f,
    };
}

typedef enum { K_INT, K_FLOAT, K_BOOL, K_STR, K_U64, K_MATMUL, K_OBJECTIVE } key_kind;
typedef struct {
    const char *name;
    key_kind kind;
    size_t off;
} key_desc;

#define KEY(n, k) {#n, k, offsetof(qai_train_config, n)}
static const key_desc keys[] = {
    KEY(dim, K_INT),          KEY(layers, K_INT),        KEY(heads, K_INT),       KEY(kv_heads, K_INT),
    KEY(ffn, K_INT),          KEY(vocab, K_INT),         KEY(tie_embeddings, K_BOOL), KEY(rope_theta, K_FLOAT),
    KEY(norm_eps, K_FLOAT),   KEY(init, K_STR),          KEY(data, K_STR),        KEY(tokenizer, K_STR),
    KEY(seq, K_INT),          KEY(batch, K_INT),         KEY(grad_accum, K_INT),  KEY(max_steps, K_INT),
    KEY(lr, K_FLOAT),         KEY(min_lr, K_FLOAT),      KEY(warmup, K_INT),      KEY(beta1, K_FLOAT),
    KEY(beta2, K_FLOAT),      KEY(eps, K_FLOAT),         KEY(weight_decay, K_FLOAT), KEY(grad_clip, K_FLOAT),
    KEY(eval_every, K_INT),   KEY(eval_batches, K_INT),  KEY(ckpt_every, K_INT),  KEY(out, K_STR),
    KEY(ckpt_dir, K_STR),     KEY(seed, K_U64),          KEY(threads, K_INT),     KEY(matmul, K_MATMUL),
    KEY(objective, K_OBJECTIVE), KEY(pairs, K_STR),      KEY(pairs_from, K_STR),  KEY(query_seq, K_INT),
    KEY(temperature, K_FLOAT), KEY(micro_batch, K_INT),  KEY(val_share, K_FLOAT),
};

static const char *const matmul_names[] = {[QAI_MATMUL_FP32] = "fp32", [QAI_MATMUL_BF16] = "bf16"};
static const char *const objective_names[] = {[QAI_OBJECTIVE_LM] = "lm", [QAI_OBJECTIVE_CONTRASTIVE] = "contrastive"};
#undef KEY

/* Strings set from files and flags live here until qai_train_config_release. */
static char **strings;
static size_t n_strings;

void qai_train_config_release(void) {
    for (size_t i = 0; i < n_strings; i++) qai_free(strings[i]);
    qai_free(strings);
    strings = NULL;
    n_strings = 0;
}

static const char *keep(const char *s) {
    char **grown = qai_realloc(strings, (n_strings + 1) * sizeof *strings);
    if (!grown) return NULL;
    strings = grown;
    return strings[n_strings++] = qai_strdup(s);
}

static const key_desc *find_key(const char *name) {
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof norm) return NULL;
    for (size_t i = 0; i <= n; i++) norm[i] = name[i] == '-' ? '_' : name[i];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(keys[i].name, norm)) return &keys[i];
    return NULL;
}

static qai_status set_text(qai_train_config *c, const key_desc *k, const char *v, const char *where) {
    char *p = (char *)c + k->off, *end;
    errno = 0;
    switch (k->kind) {
    case K_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < -2147483647L || x > 2147483647L)
            return qai_error(QAI_ERR_ARG, "%s'%s': '%s' is not an integer", where, k->name, v);
        *(int *)p = (int)x;
        break;
    }
    case K_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *end || errno || *v == '-')
            return qai_error(QAI_ERR_ARG, "%s'%s': '%s' is not a non-negative integer", where, k->name, v);
        *(uint64_t *)p = x;
        break;
    }
    case K_FLOAT: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return qai_error(QAI_ERR_ARG, "%s'%s': '%s' is not a number", where, k->name, v);
        *(float *)p = (float)x;
        break;
    }
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *(bool *)p = true;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *(bool *)p = false;
        else return qai_error(QAI_ERR_ARG, "%s'%s': '%s' is not true or false", where, k->name, v);
        break;
    case K_MATMUL: {
        int m = -1;
        for (int i = 0; i < (int)(sizeof matmul_names / sizeof matmul_names[0]); i++)
            if (!strcmp(v, matmul_names[i])) m = i;
        if (m < 0) return qai_error(QAI_ERR_ARG, "%s'%s': '%s' is not fp32 or bf16", where, k->name, v);
        *(qai_train_matmul *)p = (qai_train_matmul)m;
        break;
    }
    case K_OBJECTIVE: {
        int m = -1;
        for (int i = 0; i < (int)(sizeof objective_names / sizeof objective_names[0]); i++)
            if (!strcmp(v, objective_names[i])) m = i;
        if (m < 0) return qai_error(QAI_ERR_ARG, "%s'%s': '%s' is not lm or contrastive", where, k->name, v);
        *(qai_train_objective *)p = (qai_train_objective)m;
        break;
    }
    case K_STR: {
        const char *s = keep(v);
        if (!s) return QAI_ERR_NOMEM;
        *(const char **)p = s;
        break;
    }
    }
    return QAI_OK;
}

qai_status qai_train_config_set(qai_train_config *c, const char *key, const char *value) {
    const key_desc *k = find_key(key);
    if (!k) return qai_error(QAI_ERR_ARG, "unknown training key '%s'", key);
    return set_text(c, k, value, "");
}

qai_status qai_train_config_load(const char *path, qai_train_config *c) {
    char *text;
    size_t n;
    qai_status st = qai_file_read(path, &text, &n);
    if (st) return st;
    st = qai_train_config_parse(text, n, path, c);
    qai_free(text);
    return st;
}

qai_status qai_train_config_parse(const char *text, size_t n, const char *path, qai_train_config *c) {
    void *j = NULL;
    qai_status st = qai_yaml_parse(text, n, path, &j); /* JSON is YAML too */
    if (st) return st;
    cJSON *root = j;
    char where[512];
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qai_error(QAI_ERR_FORMAT, "'%s': the config must be a mapping of keys to values", path);
    }
    cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const key_desc *k = find_key(it->string);
        if (!k) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': unknown key '%s' (see docs/train.md for the keys)", path, it->string);
            break;
        }
        snprintf(where, sizeof where, "'%s': key ", path);
        char num[64];
        const char *value = NULL;
        if (cJSON_IsString(it)) {
            if (k->kind != K_STR && k->kind != K_U64 && k->kind != K_MATMUL && k->kind != K_OBJECTIVE) { /* 64-bit seeds are written as strings */
                st = qai_error(QAI_ERR_FORMAT, "'%s': key '%s' must be a %s, not a string", path, k->name,
                               k->kind == K_BOOL ? "boolean" : "number");
                break;
            }
            value = it->valuestring;
        } else if (cJSON_IsBool(it)) {
            if (k->kind != K_BOOL) {
                st = qai_error(QAI_ERR_FORMAT, "'%s': key '%s' is not a boolean", path, k->name);
                break;
            }
            value = cJSON_IsTrue(it) ? "true" : "false";
        } else if (cJSON_IsNumber(it)) {
            if (k->kind == K_STR || k->kind == K_BOOL || k->kind == K_MATMUL || k->kind == K_OBJECTIVE) {
                st = qai_error(QAI_ERR_FORMAT, "'%s': key '%s' must be a %s, not a number", path, k->name,
                               k->kind == K_BOOL     ? "boolean"
                               : k->kind == K_MATMUL ? "string (fp32 or bf16)"
                               : k->kind == K_OBJECTIVE ? "string (lm or contrastive)"
                                                        : "string");
                break;
            }
            if (k->kind == K_FLOAT) snprintf(num, sizeof num, "%.17g", it->valuedouble);
            else if (it->valuedouble != floor(it->valuedouble)) {
                st = qai_error(QAI_ERR_FORMAT, "'%s': key '%s' must be an integer", path, k->name);
                break;
            } else snprintf(num, sizeof num, "%.0f", it->valuedouble);
            value = num;
        } else if (cJSON_IsNull(it)) {
            if (k->kind != K_STR) {
                st = qai_error(QAI_ERR_FORMAT, "'%s': key '%s' needs a value", path, k->name);
                break;
            }
            *(const char **)((char *)c + k->off) = NULL;
            continue;
        } else {
            st = qai_error(QAI_ERR_FORMAT, "'%s': key '%s' must be a single value", path, k->name);
            break;
        }
        if ((st = set_text(c, k, value, where))) break;
    }
    cJSON_Delete(root);
    return st;
}

qai_status qai_train_config_validate(const qai_train_config *c) {
#define NEED(cond, ...)                                                                                                \
    if (!(cond)) return qai_error(QAI_ERR_ARG, __VA_ARGS__)
    NEED(c->dim > 0 && c->layers > 0 && c->heads > 0 && c->kv_heads >= 0 && c->ffn > 0 && c->vocab > 0,
         "dim, layers, heads, ffn and vocab must all be positive");
    NEED(c->dim % c->heads == 0, "heads (%d) must divide dim (%d)", c->heads, c->dim);
    NEED(c->kv_heads == 0 || c->heads % c->kv_heads == 0, "kv-heads (%d) must divide heads (%d)", c->kv_heads,
         c->heads);
    NEED((c->dim / c->heads) % 2 == 0, "the head size dim/heads = %d must be even (RoPE rotates pairs)",
         c->dim / c->heads);
    NEED(c->dim / c->heads <= 1024, "the head size dim/heads = %d is larger than 1024", c->dim / c->heads);
    NEED(c->seq >= 1 && c->batch >= 1 && c->grad_accum >= 1, "seq, batch and grad-accum must be at least 1");
    NEED((double)c->seq * c->batch <= 1 << 24, "batch × seq = %.0f tokens is too large", (double)c->seq * c->batch);
    NEED(c->max_steps >= 0, "max-steps must not be negative");
    NEED(c->lr > 0 && c->min_lr >= 0 && c->min_lr <= c->lr, "need 0 <= min-lr <= lr and lr > 0");
    NEED(c->warmup >= 0, "warmup must not be negative");
    NEED(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1, "beta1 and beta2 must be in [0, 1)");
    NEED(c->eps > 0 && c->weight_decay >= 0 && c->grad_clip >= 0, "eps must be positive, weight-decay and "
         "grad-clip not negative");
    NEED(c->eval_every >= 0 && c->eval_batches >= 0 && c->ckpt_every >= 0, "eval and checkpoint cadences must "
         "not be negative");
    NEED(c->rope_theta > 0 && c->norm_eps > 0, "rope-theta and norm-eps must be positive");
    NEED(c->threads >= 0 && c->threads <= 256, "threads must be between 0 (all CPUs) and 256");
    NEED(c->matmul == QAI_MATMUL_FP32 || c->matmul == QAI_MATMUL_BF16, "matmul must be fp32 or bf16");
    NEED(c->objective == QAI_OBJECTIVE_LM || c->objective == QAI_OBJECTIVE_CONTRASTIVE,
         "objective must be lm or contrastive");
    if (c->objective == QAI_OBJECTIVE_CONTRASTIVE) {
        NEED(c->pairs && *c->pairs, "the contrastive objective needs pairs: --pairs FILE.jsonl or --pairs-from "
             "COLLECTION");
        NEED(c->batch >= 2, "the contrastive objective needs batch >= 2 (in-batch negatives)");
        NEED(c->query_seq >= 2 && c->query_seq <= 4096, "query-seq must be between 2 and 4096");
        NEED(c->seq >= 2, "seq must be at least 2 for the contrastive objective");
        NEED(c->temperature >= 1e-3f && c->temperature <= 10, "temperature must be between 0.001 and 10");
        NEED(c->micro_batch >= 0 && c->micro_batch <= 4096, "micro-batch must be between 0 (16) and 4096");
        NEED(c->val_share >= 0 && c->val_share <= 0.5f, "val-share must be between 0 and 0.5");
    }
#undef NEED
    return QAI_OK;
}

char *qai_train_config_to_json(const qai_train_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const key_desc *k = &keys[i];
        const char *p = (const char *)c + k->off;
        switch (k->kind) {
        case K_INT: cJSON_AddNumberToObject(o, k->name, *(const int *)p); break;
        case K_FLOAT: cJSON_AddNumberToObject(o, k->name, *(const float *)p); break;
        case K_BOOL: cJSON_AddBoolToObject(o, k->name, *(const bool *)p); break;
        case K_U64: { /* as a string: a double cannot hold every 64-bit seed */
            char num[32];
            snprintf(num, sizeof num, "%llu", (unsigned long long)*(const uint64_t *)p);
            cJSON_AddStringToObject(o, k->name, num);
            break;
        }
        case K_MATMUL: cJSON_AddStringToObject(o, k->name, matmul_names[*(const qai_train_matmul *)p]); break;
        case K_OBJECTIVE:
            cJSON_AddStringToObject(o, k->name, objective_names[*(const qai_train_objective *)p]);
            break;
        case K_STR:
            if (*(const char *const *)p) cJSON_AddStringToObject(o, k->name, *(const char *const *)p);
            else cJSON_AddNullToObject(o, k->name);
            break;
        }
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return NULL;
    char *copy = qai_strdup(text);
    cJSON_free(text);
    return copy;
}
