/*
 * data.c — token datasets: `qai data prepare` (text, Markdown, JSONL into
 * token shards and a manifest) and the reader the trainer uses. Formats are
 * described in include/qai/data.h and docs/data.md.
 *
 * Determinism: documents are tokenized on several threads but written in input
 * order; the train/val decision of a document depends only on its bytes and the
 * seed (the first 8 bytes of SHA-256(seed as u64 LE || text), little-endian,
 * compared with val_fraction × 2^64), so adding inputs never moves an existing
 * document from one split to the other.
 *
 * What it does not do: deduplication, PII scrubbing or format conversion (PDF,
 * HTML, man pages) — those belong to ingest; shuffling — the trainer samples
 * windows at random positions.
 */
#include "qai/data.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qai/gguf.h"
#include "qai/ingest.h"
#include "qai/tokenizer.h"
#include "qai/tokenizer_train.h"
#include "qai/train.h"

#define MANIFEST_NAME "manifest.json"
#define DEFAULT_SHARD_TOKENS (64ull << 20)

const char *qai_split_name(qai_split split) { return split == QAI_SPLIT_VAL ? "val" : "train"; }

static const char *doc_split_name(qai_doc_split d) {
    return d == QAI_DOCS_BLANK ? "blank" : d == QAI_DOCS_LINE ? "line" : "file";
}

static bool is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* ---- the canonical text behind manifest_hash ----------------------------------- */

/* The manifest hash covers every field except input paths and the hash itself,
 * one line each, in manifest order. Computed from the cJSON tree so that the
 * writer and the reader (which checks it) share one definition. The tree must
 * have been validated (all fields present with the right types). */
static qai_status manifest_hash(const cJSON *m, char out[65]) {
    qai_strbuf b = {0};
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(m, "tokenizer");
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(m, "settings");
    qai_strbuf_printf(&b, "qai-dataset %d\n", cJSON_GetObjectItemCaseSensitive(m, "version")->valueint);
    qai_strbuf_printf(&b, "tokenizer %s %.0f %.0f %.0f\n", cJSON_GetObjectItemCaseSensitive(tk, "sha256")->valuestring,
              cJSON_GetObjectItemCaseSensitive(tk, "n_vocab")->valuedouble,
              cJSON_GetObjectItemCaseSensitive(tk, "bos")->valuedouble,
              cJSON_GetObjectItemCaseSensitive(tk, "eos")->valuedouble);
    qai_strbuf_printf(&b, "token_bytes %.0f\n", cJSON_GetObjectItemCaseSensitive(m, "token_bytes")->valuedouble);
    qai_strbuf_printf(&b, "settings %.17g %s %s %.0f\n", cJSON_GetObjectItemCaseSensitive(set, "val_fraction")->valuedouble,
              cJSON_GetObjectItemCaseSensitive(set, "seed")->valuestring,
              cJSON_GetObjectItemCaseSensitive(set, "doc_split")->valuestring,
              cJSON_GetObjectItemCaseSensitive(set, "shard_tokens")->valuedouble);
    const cJSON *in;
    cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(m, "inputs")) {
        const cJSON *sk = cJSON_GetObjectItemCaseSensitive(in, "skipped");
        qai_strbuf_printf(&b, "input %s %.0f %.0f %s\n", cJSON_GetObjectItemCaseSensitive(in, "sha256")->valuestring,
                  cJSON_GetObjectItemCaseSensitive(in, "size")->valuedouble,
                  cJSON_GetObjectItemCaseSensitive(in, "docs")->valuedouble, cJSON_IsString(sk) ? "skipped" : "used");
    }
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(m, "splits");
    for (int s = 0; s < 2; s++) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(splits, qai_split_name((qai_split)s));
        qai_strbuf_printf(&b, "split %s %.0f %.0f\n", qai_split_name((qai_split)s),
                  cJSON_GetObjectItemCaseSensitive(sp, "docs")->valuedouble,
                  cJSON_GetObjectItemCaseSensitive(sp, "tokens")->valuedouble);
        const cJSON *sh;
        cJSON_ArrayForEach(sh, cJSON_GetObjectItemCaseSensitive(sp, "shards")) {
            qai_strbuf_printf(&b, "shard %s %.0f %s\n", cJSON_GetObjectItemCaseSensitive(sh, "name")->valuestring,
                      cJSON_GetObjectItemCaseSensitive(sh, "tokens")->valuedouble,
                      cJSON_GetObjectItemCaseSensitive(sh, "sha256")->valuestring);
        }
    }
    if (b.oom) {
        qai_free(b.p);
        return qai_error(QAI_ERR_NOMEM, "out of memory hashing a manifest");
    }
    uint8_t h[32];
    qai_sha256(b.p, b.n, h);
    qai_hex(h, 32, out);
    qai_free(b.p);
    return QAI_OK;
}

/* ---- manifest validation ----------------------------------------------------------- */

typedef struct {
    const char *name; /* manifest name for messages */
} vctx;

static qai_status bad(const vctx *v, const char *field, const char *what) {
    return qai_error(QAI_ERR_FORMAT, "manifest '%s': field '%s' %s", v->name, field, what);
}

/* An integer field in [min, max] (JSON numbers are doubles: integers up to 2^53 are exact). */
static qai_status need_int(const vctx *v, const cJSON *obj, const char *key, const char *path, double min, double max,
                           uint64_t *out) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!x) return bad(v, path, "is missing");
    if (!cJSON_IsNumber(x)) return bad(v, path, "is not a number");
    double d = x->valuedouble;
    if (!(d >= min && d <= max) || d != floor(d)) {
        char msg[96];
        snprintf(msg, sizeof msg, "is %.17g, expected an integer in [%.0f, %.0f]", d, min, max);
        return bad(v, path, msg);
    }
    if (out) *out = (uint64_t)d;
    return QAI_OK;
}

static qai_status need_str(const vctx *v, const cJSON *obj, const char *key, const char *path, const char **out) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!x) return bad(v, path, "is missing");
    if (!cJSON_IsString(x) || !x->valuestring) return bad(v, path, "is not a string");
    if (out) *out = x->valuestring;
    return QAI_OK;
}

static qai_status need_hex(const vctx *v, const cJSON *obj, const char *key, const char *path) {
    const char *s = NULL;
    qai_status st = need_str(v, obj, key, path, &s);
    if (st) return st;
    if (!is_hex64(s)) return bad(v, path, "is not 64 lowercase hex digits");
    return QAI_OK;
}

static qai_status need_obj(const vctx *v, const cJSON *obj, const char *key, const cJSON **out) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!x) return bad(v, key, "is missing");
    if (!cJSON_IsObject(x)) return bad(v, key, "is not an object");
    *out = x;
    return QAI_OK;
}

#define MAX_COUNT 9007199254740992.0 /* 2^53 */

/* A shard name must be a plain file name: no path separators, no "..". */
static bool plain_name(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 200) return false;
    for (const char *p = s; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x20) return false;
    return true;
}

static qai_status validate(const vctx *v, const cJSON *m) {
    qai_status st;
    char path[160];
    if (!cJSON_IsObject(m)) return qai_error(QAI_ERR_FORMAT, "manifest '%s': not a JSON object", v->name);
    const char *fmt = NULL;
    if ((st = need_str(v, m, "format", "format", &fmt))) return st;
    if (strcmp(fmt, "qai-dataset")) return bad(v, "format", "is not \"qai-dataset\"");
    uint64_t ver = 0, tb = 0;
    if ((st = need_int(v, m, "version", "version", 0, 1e9, &ver))) return st;
    if (ver != QAI_DATASET_VERSION) {
        return qai_error(QAI_ERR_UNSUPPORTED, "manifest '%s': version %llu is not supported (this qai reads %d)",
                         v->name, (unsigned long long)ver, QAI_DATASET_VERSION);
    }
    const cJSON *tk = NULL, *set = NULL, *splits = NULL;
    if ((st = need_obj(v, m, "tokenizer", &tk))) return st;
    if ((st = need_str(v, tk, "path", "tokenizer.path", NULL))) return st;
    if ((st = need_hex(v, tk, "sha256", "tokenizer.sha256"))) return st;
    uint64_t n_vocab = 0, eos = 0;
    if ((st = need_int(v, tk, "n_vocab", "tokenizer.n_vocab", 1, (double)INT32_MAX, &n_vocab))) return st;
    if ((st = need_int(v, tk, "bos", "tokenizer.bos", -1, (double)n_vocab - 1, NULL))) return st;
    if ((st = need_int(v, tk, "eos", "tokenizer.eos", 0, (double)n_vocab - 1, &eos))) return st;
    if ((st = need_int(v, m, "token_bytes", "token_bytes", 2, 4, &tb))) return st;
    if (tb != (n_vocab <= 65536 ? 2u : 4u)) return bad(v, "token_bytes", "does not match tokenizer.n_vocab (2 up to 65536 tokens, else 4)");
    if ((st = need_obj(v, m, "settings", &set))) return st;
    const cJSON *vf = cJSON_GetObjectItemCaseSensitive(set, "val_fraction");
    if (!cJSON_IsNumber(vf) || !(vf->valuedouble >= 0 && vf->valuedouble <= 0.5))
        return bad(v, "settings.val_fraction", "is missing or not a number in [0, 0.5]");
    const char *seed = NULL, *ds = NULL;
    if ((st = need_str(v, set, "seed", "settings.seed", &seed))) return st;
    char *end;
    errno = 0;
    (void)strtoull(seed, &end, 10);
    if (!*seed || *end || errno || *seed == '-') return bad(v, "settings.seed", "is not a decimal u64 in a string");
    if ((st = need_str(v, set, "doc_split", "settings.doc_split", &ds))) return st;
    if (strcmp(ds, "file") && strcmp(ds, "blank") && strcmp(ds, "line"))
        return bad(v, "settings.doc_split", "is not one of \"file\", \"blank\", \"line\"");
    if ((st = need_int(v, set, "shard_tokens", "settings.shard_tokens", 1, MAX_COUNT, NULL))) return st;

    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(m, "inputs");
    if (!cJSON_IsArray(inputs)) return bad(v, "inputs", "is missing or not an array");
    int i = 0;
    const cJSON *in;
    cJSON_ArrayForEach(in, inputs) {
        snprintf(path, sizeof path, "inputs[%d]", i);
        if (!cJSON_IsObject(in)) return bad(v, path, "is not an object");
        snprintf(path, sizeof path, "inputs[%d].path", i);
        if ((st = need_str(v, in, "path", path, NULL))) return st;
        snprintf(path, sizeof path, "inputs[%d].sha256", i);
        if ((st = need_hex(v, in, "sha256", path))) return st;
        snprintf(path, sizeof path, "inputs[%d].size", i);
        if ((st = need_int(v, in, "size", path, 0, MAX_COUNT, NULL))) return st;
        snprintf(path, sizeof path, "inputs[%d].docs", i);
        if ((st = need_int(v, in, "docs", path, 0, MAX_COUNT, NULL))) return st;
        const cJSON *sk = cJSON_GetObjectItemCaseSensitive(in, "skipped");
        snprintf(path, sizeof path, "inputs[%d].skipped", i);
        if (sk && !cJSON_IsString(sk)) return bad(v, path, "is not a string");
        i++;
    }
    if ((st = need_obj(v, m, "splits", &splits))) return st;
    for (int s = 0; s < 2; s++) {
        const char *sn = qai_split_name((qai_split)s);
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(splits, sn);
        snprintf(path, sizeof path, "splits.%s", sn);
        if (!cJSON_IsObject(sp)) return bad(v, path, "is missing or not an object");
        uint64_t n_tok = 0, sum = 0;
        snprintf(path, sizeof path, "splits.%s.docs", sn);
        if ((st = need_int(v, sp, "docs", path, 0, MAX_COUNT, NULL))) return st;
        snprintf(path, sizeof path, "splits.%s.tokens", sn);
        if ((st = need_int(v, sp, "tokens", path, 0, MAX_COUNT, &n_tok))) return st;
        const cJSON *shards = cJSON_GetObjectItemCaseSensitive(sp, "shards");
        snprintf(path, sizeof path, "splits.%s.shards", sn);
        if (!cJSON_IsArray(shards)) return bad(v, path, "is missing or not an array");
        int k = 0;
        const cJSON *sh;
        cJSON_ArrayForEach(sh, shards) {
            snprintf(path, sizeof path, "splits.%s.shards[%d]", sn, k);
            if (!cJSON_IsObject(sh)) return bad(v, path, "is not an object");
            const char *name = NULL;
            snprintf(path, sizeof path, "splits.%s.shards[%d].name", sn, k);
            if ((st = need_str(v, sh, "name", path, &name))) return st;
            if (!plain_name(name)) return bad(v, path, "is not a plain file name");
            uint64_t t = 0;
            snprintf(path, sizeof path, "splits.%s.shards[%d].tokens", sn, k);
            if ((st = need_int(v, sh, "tokens", path, 1, MAX_COUNT, &t))) return st;
            snprintf(path, sizeof path, "splits.%s.shards[%d].sha256", sn, k);
            if ((st = need_hex(v, sh, "sha256", path))) return st;
            sum += t;
            if (sum > (uint64_t)MAX_COUNT) return bad(v, path, "makes the split too long");
            k++;
        }
        if (sum != n_tok) {
            snprintf(path, sizeof path, "splits.%s.tokens", sn);
            return bad(v, path, "is not the sum of its shards' tokens");
        }
    }
    const char *mh = NULL;
    if ((st = need_hex(v, m, "manifest_hash", "manifest_hash"))) return st;
    need_str(v, m, "manifest_hash", "manifest_hash", &mh);
    char h[65];
    if ((st = manifest_hash(m, h))) return st;
    if (strcmp(h, mh)) {
        return qai_error(QAI_ERR_FORMAT,
                         "manifest '%s': field 'manifest_hash' is %s but the manifest's contents hash to %s (edited or "
                         "damaged)",
                         v->name, mh, h);
    }
    return QAI_OK;
}

qai_status qai_dataset_manifest_parse(const char *text, size_t n, const char *name, void **out_json) {
    if (out_json) *out_json = NULL;
    if (!text) return qai_error(QAI_ERR_ARG, "qai_dataset_manifest_parse: text is NULL");
    const char *nm = name ? name : "manifest";
    const char *end = NULL;
    cJSON *m = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (!m) {
        size_t off = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        const char *e = cJSON_GetErrorPtr();
        if (e && e >= text && e <= text + n) off = (size_t)(e - text);
        return qai_error(QAI_ERR_FORMAT, "manifest '%s': not valid JSON (near byte %zu)", nm, off);
    }
    vctx v = {nm};
    qai_status st = validate(&v, m);
    if (st || !out_json) cJSON_Delete(m);
    else *out_json = m;
    return st;
}

/* ---- reading -------------------------------------------------------------------------- */

typedef struct {
    char *name;
    qai_mapped_file mf;
    uint64_t n_tokens, start;
    uint8_t sha[32];
} shard;

struct qai_dataset {
    char *dir;
    int32_t n_vocab, bos, eos;
    int token_bytes;
    char tok_hash[65], man_hash[65];
    uint64_t n_docs[2], n_tokens[2];
    shard *shards[2];
    size_t n_shards[2];
};

static int hexv(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

qai_status qai_dataset_open(const char *dir, qai_dataset **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_dataset_open: out must not be NULL");
    *out = NULL;
    if (!dir) return qai_error(QAI_ERR_ARG, "qai_dataset_open: dir is NULL");
    size_t dl = strlen(dir);
    char *mpath = qai_malloc(dl + sizeof MANIFEST_NAME + 2);
    if (!mpath) return QAI_ERR_NOMEM;
    sprintf(mpath, "%s/%s", dir, MANIFEST_NAME);
    char *text;
    size_t n;
    qai_status st = qai_file_read(mpath, &text, &n);
    if (st) {
        struct stat sb;
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = qai_error(QAI_ERR_NOT_FOUND, "dataset '%s': not a directory", dir);
        else
            st = qai_error(QAI_ERR_NOT_FOUND, "dataset '%s': no %s (not made by 'qai data prepare', or unfinished)", dir,
                           MANIFEST_NAME);
        qai_free(mpath);
        return st;
    }
    cJSON *m = NULL;
    st = qai_dataset_manifest_parse(text, n, mpath, (void **)&m);
    qai_free(text);
    if (st) {
        qai_free(mpath);
        return st;
    }
    qai_dataset *ds = qai_calloc(1, sizeof *ds);
    if (!ds || !(ds->dir = qai_strdup(dir))) {
        qai_free(ds);
        cJSON_Delete(m);
        qai_free(mpath);
        return QAI_ERR_NOMEM;
    }
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(m, "tokenizer");
    ds->n_vocab = (int32_t)cJSON_GetObjectItemCaseSensitive(tk, "n_vocab")->valuedouble;
    ds->bos = (int32_t)cJSON_GetObjectItemCaseSensitive(tk, "bos")->valuedouble;
    ds->eos = (int32_t)cJSON_GetObjectItemCaseSensitive(tk, "eos")->valuedouble;
    ds->token_bytes = (int)cJSON_GetObjectItemCaseSensitive(m, "token_bytes")->valuedouble;
    snprintf(ds->tok_hash, sizeof ds->tok_hash, "%s", cJSON_GetObjectItemCaseSensitive(tk, "sha256")->valuestring);
    snprintf(ds->man_hash, sizeof ds->man_hash, "%s", cJSON_GetObjectItemCaseSensitive(m, "manifest_hash")->valuestring);
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(m, "splits");
    for (int s = 0; s < 2 && !st; s++) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(splits, qai_split_name((qai_split)s));
        ds->n_docs[s] = (uint64_t)cJSON_GetObjectItemCaseSensitive(sp, "docs")->valuedouble;
        ds->n_tokens[s] = (uint64_t)cJSON_GetObjectItemCaseSensitive(sp, "tokens")->valuedouble;
        const cJSON *shards = cJSON_GetObjectItemCaseSensitive(sp, "shards");
        size_t ns = (size_t)cJSON_GetArraySize(shards);
        ds->shards[s] = qai_calloc(ns ? ns : 1, sizeof(shard));
        if (!ds->shards[s]) {
            st = QAI_ERR_NOMEM;
            break;
        }
        uint64_t start = 0;
        const cJSON *sh;
        cJSON_ArrayForEach(sh, shards) {
            shard *d = &ds->shards[s][ds->n_shards[s]];
            d->mf.fd = -1;
            const char *name = cJSON_GetObjectItemCaseSensitive(sh, "name")->valuestring;
            const char *hex = cJSON_GetObjectItemCaseSensitive(sh, "sha256")->valuestring;
            for (int k = 0; k < 32; k++) d->sha[k] = (uint8_t)(hexv(hex[2 * k]) << 4 | hexv(hex[2 * k + 1]));
            d->n_tokens = (uint64_t)cJSON_GetObjectItemCaseSensitive(sh, "tokens")->valuedouble;
            d->start = start;
            start += d->n_tokens;
            d->name = qai_strdup(name);
            ds->n_shards[s]++;
            if (!d->name) {
                st = QAI_ERR_NOMEM;
                break;
            }
            char *sp_path = qai_malloc(dl + strlen(name) + 2);
            if (!sp_path) {
                st = QAI_ERR_NOMEM;
                break;
            }
            sprintf(sp_path, "%s/%s", dir, name);
            st = qai_file_map(sp_path, &d->mf);
            if (st) {
                qai_error_wrap(st, "dataset '%s': shard '%s'", dir, name);
                qai_free(sp_path);
                break;
            }
            uint64_t want = QAI_SHARD_HEADER_SIZE + d->n_tokens * (uint64_t)ds->token_bytes;
            const uint8_t *h = d->mf.data;
            uint32_t ver, tb;
            uint64_t cnt;
            if (d->mf.size < QAI_SHARD_HEADER_SIZE || memcmp(h, QAI_SHARD_MAGIC, 4)) {
                st = qai_error(QAI_ERR_FORMAT, "shard '%s': not a qai token shard (bad magic at offset 0)", sp_path);
            } else if (memcpy(&ver, h + 4, 4), ver != 1) {
                st = qai_error(QAI_ERR_FORMAT, "shard '%s': version %u at offset 4 is not supported", sp_path, ver);
            } else if (memcpy(&tb, h + 8, 4), tb != (uint32_t)ds->token_bytes) {
                st = qai_error(QAI_ERR_FORMAT, "shard '%s': %u bytes per token at offset 8, the manifest says %d",
                               sp_path, tb, ds->token_bytes);
            } else if (memcpy(&cnt, h + 16, 8), cnt != d->n_tokens) {
                st = qai_error(QAI_ERR_FORMAT, "shard '%s': %llu tokens at offset 16, the manifest says %llu", sp_path,
                               (unsigned long long)cnt, (unsigned long long)d->n_tokens);
            } else if (d->mf.size != want) {
                st = qai_error(QAI_ERR_FORMAT, "shard '%s': %zu bytes, expected %llu (truncated or padded)", sp_path,
                               d->mf.size, (unsigned long long)want);
            }
            qai_free(sp_path);
            if (st) break;
        }
    }
    cJSON_Delete(m);
    qai_free(mpath);
    if (st) {
        qai_dataset_close(ds);
        return st;
    }
    *out = ds;
    return QAI_OK;
}

void qai_dataset_close(qai_dataset *ds) {
    if (!ds) return;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < ds->n_shards[s]; i++) {
            if (ds->shards[s][i].mf.fd >= 0 || ds->shards[s][i].mf.data) qai_file_unmap(&ds->shards[s][i].mf);
            qai_free(ds->shards[s][i].name);
        }
        qai_free(ds->shards[s]);
    }
    qai_free(ds->dir);
    qai_free(ds);
}

qai_status qai_dataset_verify(const qai_dataset *ds) {
    if (!ds) return qai_error(QAI_ERR_ARG, "qai_dataset_verify: dataset is NULL");
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < ds->n_shards[s]; i++) {
            const shard *d = &ds->shards[s][i];
            uint8_t h[32];
            qai_sha256(d->mf.data, d->mf.size, h);
            if (memcmp(h, d->sha, 32)) {
                char got[65], want[65];
                qai_hex(h, 32, got);
                qai_hex(d->sha, 32, want);
                return qai_error(QAI_ERR_FORMAT, "dataset '%s': shard '%s' has sha256 %s, the manifest says %s",
                                 ds->dir, d->name, got, want);
            }
        }
    return QAI_OK;
}

int32_t qai_dataset_n_vocab(const qai_dataset *ds) { return ds ? ds->n_vocab : 0; }
int32_t qai_dataset_bos(const qai_dataset *ds) { return ds ? ds->bos : -1; }
int32_t qai_dataset_eos(const qai_dataset *ds) { return ds ? ds->eos : -1; }
const char *qai_dataset_tokenizer_hash(const qai_dataset *ds) { return ds ? ds->tok_hash : ""; }
const char *qai_dataset_manifest_hash(const qai_dataset *ds) { return ds ? ds->man_hash : ""; }
int qai_dataset_token_bytes(const qai_dataset *ds) { return ds ? ds->token_bytes : 0; }
uint64_t qai_dataset_n_tokens(const qai_dataset *ds, qai_split s) {
    return ds && (s == QAI_SPLIT_TRAIN || s == QAI_SPLIT_VAL) ? ds->n_tokens[s] : 0;
}
uint64_t qai_dataset_n_docs(const qai_dataset *ds, qai_split s) {
    return ds && (s == QAI_SPLIT_TRAIN || s == QAI_SPLIT_VAL) ? ds->n_docs[s] : 0;
}
size_t qai_dataset_n_shards(const qai_dataset *ds, qai_split s) {
    return ds && (s == QAI_SPLIT_TRAIN || s == QAI_SPLIT_VAL) ? ds->n_shards[s] : 0;
}

qai_status qai_dataset_get_shard(const qai_dataset *ds, qai_split s, size_t i, qai_dataset_shard *out) {
    if (!ds || !out || (s != QAI_SPLIT_TRAIN && s != QAI_SPLIT_VAL))
        return qai_error(QAI_ERR_ARG, "qai_dataset_get_shard: bad arguments");
    if (i >= ds->n_shards[s])
        return qai_error(QAI_ERR_RANGE, "dataset '%s': split '%s' has %zu shards, asked for shard %zu", ds->dir,
                         qai_split_name(s), ds->n_shards[s], i);
    const shard *d = &ds->shards[s][i];
    out->ids = d->mf.data + QAI_SHARD_HEADER_SIZE;
    out->n_tokens = d->n_tokens;
    out->start = d->start;
    out->name = d->name;
    return QAI_OK;
}

qai_status qai_dataset_read(const qai_dataset *ds, qai_split s, uint64_t off, size_t n, int32_t *out) {
    if (!ds || (s != QAI_SPLIT_TRAIN && s != QAI_SPLIT_VAL) || (!out && n))
        return qai_error(QAI_ERR_ARG, "qai_dataset_read: bad arguments");
    uint64_t total = ds->n_tokens[s];
    if (off > total || n > total - off)
        return qai_error(QAI_ERR_RANGE, "dataset '%s': window [%llu, %llu) is outside split '%s' of %llu tokens",
                         ds->dir, (unsigned long long)off, (unsigned long long)(off + n), qai_split_name(s),
                         (unsigned long long)total);
    if (n == 0) return QAI_OK;
    /* the last shard starting at or before off */
    size_t lo = 0, hi = ds->n_shards[s];
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ds->shards[s][mid].start <= off) lo = mid;
        else hi = mid;
    }
    size_t w = 0;
    for (size_t i = lo; w < n; i++) {
        const shard *d = &ds->shards[s][i];
        uint64_t a = off + w - d->start;
        uint64_t k = d->n_tokens - a;
        if (k > n - w) k = n - w;
        const uint8_t *p = d->mf.data + QAI_SHARD_HEADER_SIZE;
        if (ds->token_bytes == 2) {
            const uint16_t *v = (const uint16_t *)(const void *)p + a;
            for (uint64_t j = 0; j < k; j++) out[w + j] = v[j];
        } else {
            const uint32_t *v = (const uint32_t *)(const void *)p + a;
            for (uint64_t j = 0; j < k; j++) out[w + j] = (int32_t)v[j];
        }
        w += (size_t)k;
    }
    return QAI_OK;
}

qai_status qai_dataset_load_split(const qai_dataset *ds, qai_split s, int32_t **tokens, uint64_t *n) {
    if (!ds || !tokens || !n) return qai_error(QAI_ERR_ARG, "qai_dataset_load_split: bad arguments");
    *tokens = NULL;
    *n = 0;
    uint64_t total = qai_dataset_n_tokens(ds, s);
    if (total > SIZE_MAX / sizeof(int32_t) - 1) return qai_error(QAI_ERR_RANGE, "dataset '%s': split too large", ds->dir);
    int32_t *v = qai_malloc((size_t)(total ? total : 1) * sizeof *v);
    if (!v) return QAI_ERR_NOMEM;
    qai_status st = qai_dataset_read(ds, s, 0, (size_t)total, v);
    if (st) {
        qai_free(v);
        return st;
    }
    *tokens = v;
    *n = total;
    return QAI_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

void qai_data_prepare_opts_init(qai_data_prepare_opts *o) {
    memset(o, 0, sizeof *o);
    o->val_fraction = 0.01;
}

/* Strict UTF-8 check; returns the offset of the first NUL or invalid byte, or n. */
static size_t first_bad_byte(const uint8_t *s, size_t n, bool *is_nul) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0) {
                *is_nul = true;
                return i;
            }
            i++;
            continue;
        }
        int len;
        uint32_t v, min;
        if ((c & 0xE0) == 0xC0) len = 2, v = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, v = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, v = c & 0x07, min = 0x10000;
        else break;
        if ((size_t)len > n - i) break;
        int k = 1;
        for (; k < len; k++) {
            if ((s[i + (size_t)k] & 0xC0) != 0x80) break;
            v = v << 6 | (s[i + (size_t)k] & 0x3F);
        }
        if (k < len || v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) break;
        i += (size_t)len;
    }
    *is_nul = false;
    return i;
}

static bool all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v')) return false;
    return true;
}

/* ---- input files ---- */

/* How a file's text is read: as is, the "text" of each JSONL line, or
 * through the document extractors (man pages, also gzipped; HTML; CSV). */
typedef enum { IN_TEXT, IN_JSONL, IN_EXTRACT } in_kind;

typedef struct {
    char *path;
    in_kind kind;
} in_file;

typedef struct {
    in_file *v;
    size_t n, cap;
} file_list;

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static in_kind kind_of(const char *path) {
    if (ends_with(path, ".jsonl")) return IN_JSONL;
    qai_doc_type t = QAI_DOC_UNKNOWN;
    if (qai_doc_detect(path, NULL, 0, &t) != QAI_OK) return IN_TEXT;
    if (t == QAI_DOC_MAN || t == QAI_DOC_HTML || t == QAI_DOC_CSV || ends_with(path, ".gz")) return IN_EXTRACT;
    return IN_TEXT;
}

static qai_status files_push(file_list *l, const char *path) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        in_file *v = qai_realloc(l->v, cap * sizeof *v);
        if (!v) return QAI_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *p = qai_strdup(path);
    if (!p) return QAI_ERR_NOMEM;
    l->v[l->n++] = (in_file){p, kind_of(path)};
    return QAI_OK;
}

static bool wanted_in_dir(const char *name) {
    static const char *const ext[] = {".txt", ".text", ".md", ".markdown", ".rst", ".jsonl"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (ends_with(name, ext[i])) return true;
    return kind_of(name) == IN_EXTRACT;
}

static int cmp_names(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static qai_status walk(const char *dir, int depth, file_list *l, uint64_t *n_ignored) {
    if (depth > 64) return qai_error(QAI_ERR_RANGE, "input '%s': directories nested too deep (a symlink loop?)", dir);
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, cmp_names);
    if (n < 0) return qai_error(QAI_ERR_IO, "input '%s': cannot list the directory: %s", dir, strerror(errno));
    qai_status st = QAI_OK;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (st || name[0] == '.') continue;
        size_t pl = strlen(dir) + strlen(name) + 2;
        char *p = qai_malloc(pl);
        if (!p) {
            st = QAI_ERR_NOMEM;
            continue;
        }
        snprintf(p, pl, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
        struct stat sb;
        if (stat(p, &sb) != 0) {
            qai_log(QAI_LOG_WARN, "data: skipping '%s': %s", p, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(p, depth + 1, l, n_ignored);
        } else if (S_ISREG(sb.st_mode) && wanted_in_dir(name)) {
            st = files_push(l, p);
        } else {
            qai_log(QAI_LOG_INFO, "data: ignoring '%s' (not text, Markdown, JSONL, a man page, HTML or CSV)", p);
            (*n_ignored)++;
        }
        qai_free(p);
    }
    for (int i = 0; i < n; i++) free(ents[i]);
    free(ents);
    return st;
}

static void files_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++) qai_free(l->v[i].path);
    qai_free(l->v);
    memset(l, 0, sizeof *l);
}

/* Files as given, directories walked (name order, recursively, the wanted
 * extensions only); no text file at all is an error. */
static qai_status expand_inputs(const char *const *inputs, size_t n_inputs, file_list *files, uint64_t *n_ignored) {
    qai_status st = QAI_OK;
    struct stat sb;
    for (size_t i = 0; i < n_inputs && !st; i++) {
        if (!inputs[i]) return qai_error(QAI_ERR_ARG, "input %zu is NULL", i);
        if (stat(inputs[i], &sb) != 0) {
            st = qai_error(QAI_ERR_IO, "input '%s': %s", inputs[i], strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(inputs[i], 0, files, n_ignored);
        } else if (S_ISREG(sb.st_mode)) {
            st = files_push(files, inputs[i]);
        } else {
            st = qai_error(QAI_ERR_ARG, "input '%s' is not a file or a directory", inputs[i]);
        }
    }
    if (!st && files->n == 0)
        st = qai_error(QAI_ERR_ARG, "the inputs hold no text files (%llu other files ignored)",
                       (unsigned long long)*n_ignored);
    return st;
}

/* ---- documents and parallel tokenization ---- */

typedef struct {
    const char *text;
    size_t len;
    char *owned;       /* JSONL: the decoded text (freed after the batch) */
    int32_t *ids;      /* result */
    size_t n_ids;
    qai_status st;
} doc;

typedef struct {
    doc *v;
    size_t n, cap, bytes;
} doc_batch;

static qai_status batch_push(doc_batch *b, const char *text, size_t len, char *owned) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        doc *v = qai_realloc(b->v, cap * sizeof *v);
        if (!v) {
            qai_free(owned);
            return QAI_ERR_NOMEM;
        }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = (doc){text, len, owned, NULL, 0, QAI_OK};
    b->bytes += len;
    return QAI_OK;
}

typedef struct {
    const qai_tokenizer *tok;
    doc_batch *batch;
    atomic_size_t next;
    char err[512];
    atomic_int has_err;
} tok_job;

static void tok_worker(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    tok_job *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->batch->n) break;
        doc *d = &j->batch->v[i];
        d->st = qai_tokenizer_encode(j->tok, d->text, d->len, 0, &d->ids, &d->n_ids);
        if (d->st) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&j->has_err, &expected, 1))
                snprintf(j->err, sizeof j->err, "%s", qai_last_error());
        }
    }
}

/* ---- shard writers ---- */

typedef struct {
    char name[32];
    uint64_t tokens;
    char sha[65];
} shard_rec;

typedef struct {
    const char *dir;
    qai_split split;
    int tb;
    uint64_t shard_tokens;
    FILE *f;
    char *path;
    uint64_t cur;
    shard_rec *recs;
    size_t n_recs, cap_recs;
    uint64_t tokens, docs;
    uint8_t *buf;
    size_t buf_n;
} shard_writer;

enum { WBUF = 1 << 16 };

static qai_status sw_flush(shard_writer *w) {
    if (w->buf_n && fwrite(w->buf, 1, w->buf_n, w->f) != w->buf_n)
        return qai_error(QAI_ERR_IO, "cannot write '%s': %s", w->path, strerror(errno));
    w->buf_n = 0;
    return QAI_OK;
}

static qai_status sw_close_shard(shard_writer *w) {
    if (!w->f) return QAI_OK;
    qai_status st = sw_flush(w);
    if (!st) {
        uint8_t n8[8];
        for (int k = 0; k < 8; k++) n8[k] = (uint8_t)(w->cur >> (8 * k));
        if (fseek(w->f, 16, SEEK_SET) != 0 || fwrite(n8, 1, 8, w->f) != 8 || fflush(w->f) != 0 ||
            fsync(fileno(w->f)) != 0)
            st = qai_error(QAI_ERR_IO, "cannot write '%s': %s", w->path, strerror(errno));
    }
    if (fclose(w->f) != 0 && !st) st = qai_error(QAI_ERR_IO, "cannot close '%s': %s", w->path, strerror(errno));
    w->f = NULL;
    if (!st) {
        uint8_t h[32];
        st = qai_sha256_file(w->path, h, NULL);
        if (!st) qai_hex(h, 32, w->recs[w->n_recs - 1].sha);
        w->recs[w->n_recs - 1].tokens = w->cur;
    }
    qai_free(w->path);
    w->path = NULL;
    return st;
}

static qai_status sw_open_shard(shard_writer *w) {
    if (w->n_recs == w->cap_recs) {
        size_t cap = w->cap_recs ? w->cap_recs * 2 : 8;
        shard_rec *r = qai_realloc(w->recs, cap * sizeof *r);
        if (!r) return QAI_ERR_NOMEM;
        w->recs = r;
        w->cap_recs = cap;
    }
    shard_rec *r = &w->recs[w->n_recs++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s-%05zu.tok", qai_split_name(w->split), w->n_recs - 1);
    size_t pl = strlen(w->dir) + strlen(r->name) + 2;
    w->path = qai_malloc(pl);
    if (!w->path) return QAI_ERR_NOMEM;
    snprintf(w->path, pl, "%s/%s", w->dir, r->name);
    w->f = fopen(w->path, "wb");
    if (!w->f) return qai_error(QAI_ERR_IO, "cannot create '%s': %s", w->path, strerror(errno));
    uint8_t hdr[QAI_SHARD_HEADER_SIZE] = {0};
    memcpy(hdr, QAI_SHARD_MAGIC, 4);
    hdr[4] = QAI_DATASET_VERSION;
    hdr[8] = (uint8_t)w->tb;
    if (fwrite(hdr, 1, sizeof hdr, w->f) != sizeof hdr)
        return qai_error(QAI_ERR_IO, "cannot write '%s': %s", w->path, strerror(errno));
    w->cur = 0;
    return QAI_OK;
}

static qai_status sw_put(shard_writer *w, int32_t id) {
    qai_status st;
    if (!w->f || w->cur == w->shard_tokens) {
        if ((st = sw_close_shard(w)) || (st = sw_open_shard(w))) return st;
    }
    if (w->buf_n + 4 > WBUF && (st = sw_flush(w))) return st;
    uint32_t v = (uint32_t)id;
    for (int k = 0; k < w->tb; k++) w->buf[w->buf_n++] = (uint8_t)(v >> (8 * k));
    w->cur++;
    w->tokens++;
    return QAI_OK;
}

static void sw_release(shard_writer *w) {
    if (w->f) fclose(w->f);
    qai_free(w->path);
    qai_free(w->recs);
    qai_free(w->buf);
}

/* ---- removing a directory tree (a failed run's temporary dir, a replaced dataset) ---- */

static void rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            size_t pl = strlen(path) + strlen(e->d_name) + 2;
            char *p = qai_malloc(pl);
            if (!p) break;
            snprintf(p, pl, "%s/%s", path, e->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_tree(p);
            else unlink(p);
            qai_free(p);
        }
        closedir(d);
    }
    rmdir(path);
}

static void fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* ---- the run ---- */

typedef struct {
    const qai_data_prepare_opts *o;
    const qai_tokenizer *tok;
    qai_pool *pool;
    int32_t bos, eos;
    uint64_t val_threshold; /* doc goes to val when its hash < this */
    bool all_val;
    shard_writer w[2];
    doc_batch batch;
    qai_progress prog;
    uint64_t bytes_done;
    uint64_t docs_added;
} run;

static bool goes_to_val(const run *r, const char *text, size_t len) {
    if (r->all_val) return true;
    if (r->val_threshold == 0) return false;
    uint8_t seed[8];
    for (int k = 0; k < 8; k++) seed[k] = (uint8_t)(r->o->seed >> (8 * k));
    qai_sha256_ctx c;
    qai_sha256_init(&c);
    qai_sha256_update(&c, seed, 8);
    qai_sha256_update(&c, text, len);
    uint8_t h[32];
    qai_sha256_final(&c, h);
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) v |= (uint64_t)h[k] << (8 * k);
    return v < r->val_threshold;
}

/* Tokenizes the batch on the pool and appends each document to its split, in order. */
static qai_status flush_batch(run *r) {
    doc_batch *b = &r->batch;
    if (!b->n) return QAI_OK;
    tok_job job = {.tok = r->tok, .batch = b};
    atomic_init(&job.next, 0);
    atomic_init(&job.has_err, 0);
    qai_pool_run(r->pool, tok_worker, &job);
    qai_status st = QAI_OK;
    if (atomic_load(&job.has_err)) {
        for (size_t i = 0; i < b->n && !st; i++) st = b->v[i].st;
        qai_error(st, "%s", job.err);
    }
    for (size_t i = 0; i < b->n && !st; i++) {
        doc *d = &b->v[i];
        shard_writer *w = &r->w[goes_to_val(r, d->text, d->len) ? QAI_SPLIT_VAL : QAI_SPLIT_TRAIN];
        if (r->bos >= 0) st = sw_put(w, r->bos);
        for (size_t k = 0; k < d->n_ids && !st; k++) st = sw_put(w, d->ids[k]);
        if (!st) st = sw_put(w, r->eos);
        w->docs++;
        r->bytes_done += d->len;
    }
    for (size_t i = 0; i < b->n; i++) {
        qai_free(b->v[i].ids);
        qai_free(b->v[i].owned);
    }
    b->n = 0;
    b->bytes = 0;
    if (r->o->progress) qai_progress_update(&r->prog, r->bytes_done);
    return st;
}

enum { BATCH_BYTES = 4 << 20 };

static qai_status add_doc(run *r, const char *text, size_t len, char *owned) {
    if (len == 0 || all_space(text, len)) {
        qai_free(owned);
        return QAI_OK;
    }
    r->docs_added++;
    qai_status st = batch_push(&r->batch, text, len, owned);
    if (!st && r->batch.bytes >= BATCH_BYTES) st = flush_batch(r);
    return st;
}

/* Cuts a text file into documents and queues them (r->docs_added counts them). */
static qai_status text_docs(run *r, const char *s, size_t n) {
    if (n >= 3 && (uint8_t)s[0] == 0xEF && (uint8_t)s[1] == 0xBB && (uint8_t)s[2] == 0xBF) s += 3, n -= 3; /* BOM */
    if (r->o->doc_split == QAI_DOCS_FILE) return add_doc(r, s, n, NULL);
    qai_status st = QAI_OK;
    size_t i = 0, para = SIZE_MAX, para_end = 0;
    while (i < n && !st) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n; /* the line is [i, e) */
        size_t le = e;
        if (le > i && s[le - 1] == '\r') le--;
        bool blank = all_space(s + i, le - i);
        if (r->o->doc_split == QAI_DOCS_LINE) {
            if (!blank) st = add_doc(r, s + i, le - i, NULL);
        } else if (blank) {
            if (para != SIZE_MAX) st = add_doc(r, s + para, para_end - para, NULL);
            para = SIZE_MAX;
        } else {
            if (para == SIZE_MAX) para = i;
            para_end = le;
        }
        i = e + 1;
    }
    if (!st && r->o->doc_split == QAI_DOCS_BLANK && para != SIZE_MAX) st = add_doc(r, s + para, para_end - para, NULL);
    return st;
}

/* Calls fn on the "text" of every JSONL line (the string is the callback's to
 * keep or free with qai_free). A bad line is an error naming the file, line and
 * byte, or with skip_bad a warning. */
typedef qai_status (*jsonl_text_fn)(void *ctx, char *text);
static qai_status jsonl_each(const char *path, const char *s, size_t n, bool skip_bad, jsonl_text_fn fn, void *ctx) {
    size_t i = 0;
    uint64_t line = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        line++;
        if (!all_space(s + i, e - i)) {
            cJSON *j = cJSON_ParseWithLength(s + i, e - i);
            const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
            const char *why = !j ? "not valid JSON" : !cJSON_IsObject(j) ? "not a JSON object"
                              : !t ? "has no \"text\" field" : !cJSON_IsString(t) ? "its \"text\" is not a string" : NULL;
            bool is_nul;
            if (!why && first_bad_byte((const uint8_t *)t->valuestring, strlen(t->valuestring), &is_nul) !=
                            strlen(t->valuestring))
                why = "its \"text\" is not valid UTF-8";
            if (why) {
                cJSON_Delete(j);
                if (!skip_bad)
                    return qai_error(QAI_ERR_FORMAT, "input '%s' line %llu (byte %zu): %s", path,
                                     (unsigned long long)line, i, why);
                qai_log(QAI_LOG_WARN, "data: skipping '%s' line %llu: %s", path, (unsigned long long)line, why);
            } else {
                char *copy = qai_strdup(t->valuestring);
                cJSON_Delete(j);
                if (!copy) return QAI_ERR_NOMEM;
                qai_status st = fn(ctx, copy);
                if (st) return st;
            }
        }
        i = e + 1;
    }
    return QAI_OK;
}

static qai_status queue_doc(void *r, char *text) { return add_doc(r, text, strlen(text), text); }

/* Queues the "text" of every JSONL line. */
static qai_status jsonl_docs(run *r, const char *path, const char *s, size_t n) {
    return jsonl_each(path, s, n, r->o->skip_bad, queue_doc, r);
}

static cJSON *add_num(cJSON *o, const char *k, double v) { return cJSON_AddNumberToObject(o, k, v); }

qai_status qai_data_prepare(const char *const *inputs, size_t n_inputs, const char *out_dir,
                            const qai_data_prepare_opts *opts, qai_data_prepare_result *res) {
    qai_data_prepare_opts defaults;
    if (!opts) {
        qai_data_prepare_opts_init(&defaults);
        opts = &defaults;
    }
    if (res) memset(res, 0, sizeof *res);
    if (!out_dir || !*out_dir) return qai_error(QAI_ERR_ARG, "no output directory given");
    if (!inputs || n_inputs == 0) return qai_error(QAI_ERR_ARG, "no inputs given");
    if (!opts->tokenizer) return qai_error(QAI_ERR_ARG, "no tokenizer given");
    if (!(opts->val_fraction >= 0 && opts->val_fraction <= 0.5))
        return qai_error(QAI_ERR_ARG, "val fraction %g is outside [0, 0.5]", opts->val_fraction);
    if (opts->doc_split != QAI_DOCS_FILE && opts->doc_split != QAI_DOCS_BLANK && opts->doc_split != QAI_DOCS_LINE)
        return qai_error(QAI_ERR_ARG, "unknown document split %d", (int)opts->doc_split);
    uint64_t shard_tokens = opts->shard_tokens ? opts->shard_tokens : DEFAULT_SHARD_TOKENS;
    if (shard_tokens > (uint64_t)MAX_COUNT) return qai_error(QAI_ERR_ARG, "shard size too large");

    /* the output directory: strip trailing slashes; it must be new, empty, or replaced with force */
    char *out = qai_strdup(out_dir);
    if (!out) return QAI_ERR_NOMEM;
    for (size_t l = strlen(out); l > 1 && out[l - 1] == '/'; l--) out[l - 1] = 0;
    bool out_exists = false, out_nonempty = false;
    struct stat sb;
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            qai_status st = qai_error(QAI_ERR_ARG, "output '%s' exists and is not a directory", out);
            qai_free(out);
            return st;
        }
        out_exists = true;
        DIR *d = opendir(out);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) out_nonempty = true;
        if (d) closedir(d);
        if (out_nonempty && !opts->force) {
            qai_status st = qai_error(QAI_ERR_ARG,
                                      "output directory '%s' exists and is not empty (nothing was written; use --force "
                                      "to replace it)",
                                      out);
            qai_free(out);
            return st;
        }
    }

    qai_status st = QAI_OK;
    run r = {.o = opts, .bos = -1};
    file_list files = {0};
    uint64_t n_ignored = 0;
    qai_gguf *g = NULL;
    qai_tokenizer *tok = NULL;
    char *tmp = NULL;
    cJSON *m = NULL, *jinputs = NULL;
    char tok_hex[65];
    char *text = NULL;

    /* tokenizer */
    {
        FILE *f = fopen(opts->tokenizer, "rb");
        if (!f) {
            st = qai_error(QAI_ERR_IO, "cannot open tokenizer '%s': %s", opts->tokenizer, strerror(errno));
            goto done;
        }
        char magic[4] = {0};
        size_t got = fread(magic, 1, 4, f);
        fclose(f);
        if (got != 4 || memcmp(magic, "GGUF", 4)) {
            st = qai_error(QAI_ERR_FORMAT,
                           "tokenizer '%s' is not a GGUF file (make one with 'qai tokenizer train', or use a model's "
                           ".gguf)",
                           opts->tokenizer);
            goto done;
        }
        if ((st = qai_gguf_open(opts->tokenizer, &g))) goto done;
        if ((st = qai_tokenizer_from_gguf(g, &tok))) {
            qai_error_wrap(st, "tokenizer");
            goto done;
        }
        uint8_t h[32];
        if ((st = qai_sha256_file(opts->tokenizer, h, NULL))) goto done;
        qai_hex(h, 32, tok_hex);
        r.tok = tok;
        r.eos = qai_tokenizer_eos(tok);
        if (r.eos < 0) {
            st = qai_error(QAI_ERR_FORMAT, "tokenizer '%s' has no EOS token to separate documents", opts->tokenizer);
            goto done;
        }
        r.bos = qai_tokenizer_add_bos(tok) ? qai_tokenizer_bos(tok) : -1;
    }
    int32_t n_vocab = qai_tokenizer_n_vocab(tok);
    int tb = n_vocab <= 65536 ? 2 : 4;

    /* inputs */
    if ((st = expand_inputs(inputs, n_inputs, &files, &n_ignored))) goto done;

    /* the temporary directory next to the output */
    {
        size_t ol = strlen(out);
        char *parent = qai_strdup(out);
        if (!parent) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = 0;
            st = qai_mkdirs(parent);
        }
        qai_free(parent);
        if (st) goto done;
        tmp = qai_malloc(ol + 16);
        if (!tmp) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        snprintf(tmp, ol + 16, "%s.tmp.XXXXXX", out);
        if (!mkdtemp(tmp)) {
            st = qai_error(QAI_ERR_IO, "cannot create a temporary directory next to '%s': %s", out, strerror(errno));
            qai_free(tmp);
            tmp = NULL;
            goto done;
        }
        mode_t um = umask(0);
        umask(um);
        chmod(tmp, 0777 & ~um); /* mkdtemp makes it private; a dataset is a normal directory */
    }
    for (int s = 0; s < 2; s++) {
        r.w[s] = (shard_writer){.dir = tmp, .split = (qai_split)s, .tb = tb, .shard_tokens = shard_tokens};
        r.w[s].buf = qai_malloc(WBUF);
        if (!r.w[s].buf) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
    }
    r.all_val = opts->val_fraction >= 1.0;
    r.val_threshold = opts->val_fraction <= 0 ? 0 : (uint64_t)ldexp(opts->val_fraction, 64);
    r.pool = qai_pool_new(opts->n_threads);
    if (!r.pool) {
        st = qai_error(QAI_ERR_NOMEM, "cannot start %d threads", opts->n_threads);
        goto done;
    }

    m = cJSON_CreateObject();
    jinputs = cJSON_CreateArray();
    if (!m || !jinputs) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    uint64_t total_bytes = 0;
    for (size_t i = 0; i < files.n; i++)
        if (stat(files.v[i].path, &sb) == 0) total_bytes += (uint64_t)sb.st_size;
    if (opts->progress) qai_progress_start(&r.prog, "tokenizing", "bytes", total_bytes);

    uint64_t n_skipped = 0;
    for (size_t i = 0; i < files.n && !st; i++) {
        const in_file *fi = &files.v[i];
        size_t size;
        if ((st = qai_file_read(fi->path, &text, &size))) goto done;
        uint8_t h[32];
        char hex[65];
        qai_sha256(text, size, h);
        qai_hex(h, 32, hex);
        cJSON *ji = cJSON_CreateObject();
        if (!ji) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        cJSON_AddItemToArray(jinputs, ji);
        cJSON_AddStringToObject(ji, "path", fi->path);
        cJSON_AddStringToObject(ji, "sha256", hex);
        add_num(ji, "size", (double)size);
        bool is_nul;
        size_t badoff = fi->kind != IN_TEXT ? size : first_bad_byte((const uint8_t *)text, size, &is_nul);
        uint64_t before = r.docs_added;
        if (fi->kind == IN_EXTRACT) { /* the extractors say what is wrong; a link page (.so) has no text */
            qai_doc_list dl = {0};
            qai_status xs = qai_doc_read_file(fi->path, &dl);
            if (xs && (xs == QAI_ERR_UNSUPPORTED || opts->skip_bad)) {
                qai_log(xs == QAI_ERR_UNSUPPORTED ? QAI_LOG_INFO : QAI_LOG_WARN, "data: skipping '%s': %s", fi->path,
                        qai_last_error());
                cJSON_AddStringToObject(ji, "skipped", qai_last_error());
                n_skipped++;
            } else if (xs) {
                st = qai_error_wrap(xs, "input '%s' (use --skip-bad to skip such files)", fi->path);
                goto done;
            } else {
                for (int d = 0; d < dl.n_docs && !st; d++) st = text_docs(&r, dl.docs[d].text, dl.docs[d].len);
                if (!st) st = flush_batch(&r); /* documents point into the list */
            }
            qai_doc_list_free(&dl);
        } else if (badoff < size) {
            char why[128];
            snprintf(why, sizeof why, "%s at byte offset %zu", is_nul ? "binary (a NUL byte)" : "invalid UTF-8",
                     badoff);
            if (!opts->skip_bad) {
                st = qai_error(QAI_ERR_FORMAT, "input '%s' is not UTF-8 text: %s (use --skip-bad to skip such files)",
                               fi->path, why);
                goto done;
            }
            qai_log(QAI_LOG_WARN, "data: skipping '%s': %s", fi->path, why);
            cJSON_AddStringToObject(ji, "skipped", why);
            n_skipped++;
        } else {
            st = fi->kind == IN_JSONL ? jsonl_docs(&r, fi->path, text, size) : text_docs(&r, text, size);
            if (!st) st = flush_batch(&r); /* documents point into text */
        }
        add_num(ji, "docs", (double)(r.docs_added - before));
        qai_free(text);
        text = NULL;
    }
    if (st) goto done;
    if (opts->progress) qai_progress_finish(&r.prog);
    if (r.docs_added == 0) {
        st = qai_error(QAI_ERR_FORMAT, "empty corpus: %zu files hold no text%s", files.n,
                       n_skipped ? " that could be read (see the skipped files above)" : "");
        goto done;
    }
    if (r.w[QAI_SPLIT_TRAIN].tokens == 0) {
        st = qai_error(QAI_ERR_ARG, "every one of the %llu documents went to the validation split; "
                                    "lower --val or add documents",
                       (unsigned long long)r.docs_added);
        goto done;
    }
    if (opts->val_fraction > 0 && r.w[QAI_SPLIT_VAL].tokens == 0)
        qai_log(QAI_LOG_WARN, "data: no document went to the validation split (%llu documents, val fraction %g)",
                (unsigned long long)r.docs_added, opts->val_fraction);
    for (int s = 0; s < 2; s++)
        if ((st = sw_close_shard(&r.w[s]))) goto done;

    /* manifest */
    {
        cJSON_AddStringToObject(m, "format", "qai-dataset");
        add_num(m, "version", QAI_DATASET_VERSION);
        cJSON *jt = cJSON_AddObjectToObject(m, "tokenizer");
        if (!jt) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        cJSON_AddStringToObject(jt, "path", opts->tokenizer);
        cJSON_AddStringToObject(jt, "sha256", tok_hex);
        cJSON_AddStringToObject(jt, "model", qai_tokenizer_kind(tok) == QAI_VOCAB_SPM ? "llama" : "gpt2");
        add_num(jt, "n_vocab", n_vocab);
        add_num(jt, "bos", r.bos);
        add_num(jt, "eos", r.eos);
        add_num(m, "token_bytes", tb);
        cJSON *js = cJSON_AddObjectToObject(m, "settings");
        if (!js) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        add_num(js, "val_fraction", opts->val_fraction);
        char seed[24];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)opts->seed);
        cJSON_AddStringToObject(js, "seed", seed);
        cJSON_AddStringToObject(js, "doc_split", doc_split_name(opts->doc_split));
        add_num(js, "shard_tokens", (double)shard_tokens);
        cJSON_AddItemToObject(m, "inputs", jinputs);
        jinputs = NULL;
        cJSON *jsp = cJSON_AddObjectToObject(m, "splits");
        for (int s = 0; s < 2 && jsp; s++) {
            cJSON *o = cJSON_AddObjectToObject(jsp, qai_split_name((qai_split)s));
            if (!o) break;
            add_num(o, "docs", (double)r.w[s].docs);
            add_num(o, "tokens", (double)r.w[s].tokens);
            cJSON *arr = cJSON_AddArrayToObject(o, "shards");
            for (size_t k = 0; arr && k < r.w[s].n_recs; k++) {
                cJSON *x = cJSON_CreateObject();
                if (!x) break;
                cJSON_AddItemToArray(arr, x);
                cJSON_AddStringToObject(x, "name", r.w[s].recs[k].name);
                add_num(x, "tokens", (double)r.w[s].recs[k].tokens);
                cJSON_AddStringToObject(x, "sha256", r.w[s].recs[k].sha);
            }
        }
        char mh[65];
        vctx v = {"(being written)"};
        cJSON_AddStringToObject(m, "manifest_hash", "0000000000000000000000000000000000000000000000000000000000000000");
        /* validate what we are about to write with the reader's own checks (this
         * also catches a cJSON allocation failure that left a field out) */
        if ((st = manifest_hash(m, mh))) goto done;
        cJSON_ReplaceItemInObjectCaseSensitive(m, "manifest_hash", cJSON_CreateString(mh));
        if ((st = validate(&v, m))) {
            qai_error_wrap(QAI_ERR_INTERNAL, "the manifest does not validate");
            st = QAI_ERR_INTERNAL;
            goto done;
        }
        char *json = cJSON_Print(m);
        if (!json) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        size_t pl = strlen(tmp) + sizeof MANIFEST_NAME + 2;
        char *mp = qai_malloc(pl);
        if (!mp) {
            cJSON_free(json);
            st = QAI_ERR_NOMEM;
            goto done;
        }
        snprintf(mp, pl, "%s/%s", tmp, MANIFEST_NAME);
        qai_atomic_file af;
        st = qai_atomic_open(mp, &af);
        if (!st) {
            fputs(json, af.f);
            fputc('\n', af.f);
            st = qai_atomic_commit(&af);
        }
        cJSON_free(json);
        qai_free(mp);
        if (st) goto done;
        if (res) memcpy(res->manifest_hash, mh, 65);
    }

    /* into place */
    fsync_dir(tmp);
    if (out_nonempty) {
        size_t ol = strlen(out);
        char *old = qai_malloc(ol + 16);
        if (!old) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        snprintf(old, ol + 16, "%s.old.XXXXXX", out);
        if (!mkdtemp(old) || rename(out, old) != 0) {
            st = qai_error(QAI_ERR_IO, "cannot move the old '%s' aside: %s", out, strerror(errno));
            rmdir(old);
            qai_free(old);
            goto done;
        }
        if (rename(tmp, out) != 0) {
            st = qai_error(QAI_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
            rename(old, out); /* put the old dataset back */
            qai_free(old);
            goto done;
        }
        rm_tree(old);
        qai_free(old);
    } else {
        if (out_exists) rmdir(out); /* empty */
        if (rename(tmp, out) != 0) {
            st = qai_error(QAI_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
            goto done;
        }
    }
    qai_free(tmp);
    tmp = NULL;
    {
        char *parent = qai_strdup(out);
        if (parent) {
            char *slash = strrchr(parent, '/');
            if (slash) *slash = 0;
            fsync_dir(slash ? parent : ".");
            qai_free(parent);
        }
    }
    if (res) {
        res->n_files = files.n - n_skipped;
        res->n_skipped_files = n_skipped;
        for (int s = 0; s < 2; s++) res->n_docs[s] = r.w[s].docs, res->n_tokens[s] = r.w[s].tokens;
        res->n_bytes = r.bytes_done;
    }

done:
    if (st == QAI_ERR_NOMEM && !*qai_last_error()) qai_error(st, "out of memory");
    qai_free(text);
    for (size_t i = 0; i < r.batch.n; i++) {
        qai_free(r.batch.v[i].ids);
        qai_free(r.batch.v[i].owned);
    }
    qai_free(r.batch.v);
    for (int s = 0; s < 2; s++) sw_release(&r.w[s]);
    if (tmp) {
        rm_tree(tmp);
        qai_free(tmp);
    }
    qai_pool_free(r.pool);
    cJSON_Delete(m);
    cJSON_Delete(jinputs);
    qai_tokenizer_free(tok);
    qai_gguf_close(g);
    for (size_t i = 0; i < files.n; i++) qai_free(files.v[i].path);
    qai_free(files.v);
    qai_free(out);
    return st;
}

/* ---- tokenizer training over the same inputs ---- */

typedef struct {
    char *buf;
    size_t len, cap;
} text_buf;

/* JSONL "text" values are joined with newlines (a line is a sentence for bpe). */
static qai_status append_text(void *ctx, char *text) {
    text_buf *b = ctx;
    size_t n = strlen(text);
    if (b->len + n + 2 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + n + 2;
        char *grown = qai_realloc(b->buf, cap);
        if (!grown) {
            qai_free(text);
            return QAI_ERR_NOMEM;
        }
        b->buf = grown, b->cap = cap;
    }
    memcpy(b->buf + b->len, text, n);
    b->len += n;
    b->buf[b->len++] = '\n';
    qai_free(text);
    return QAI_OK;
}

qai_status qai_tokenizer_train_inputs(const char *const *inputs, size_t n_inputs, const qai_toktrain_opts *o,
                                      qai_vocab_desc *out, qai_toktrain_stats *stats, size_t *n_files) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_tokenizer_train_inputs: out must not be NULL");
    memset(out, 0, sizeof *out);
    if (n_files) *n_files = 0;
    file_list files = {0};
    uint64_t n_ignored = 0;
    qai_status st = expand_inputs(inputs, n_inputs, &files, &n_ignored);
    char **texts = st ? NULL : qai_calloc(files.n, sizeof *texts);
    size_t *lens = st ? NULL : qai_calloc(files.n, sizeof *lens);
    if (!st && (!texts || !lens)) st = QAI_ERR_NOMEM;
    uint64_t total = 0;
    for (size_t i = 0; !st && i < files.n; i++) {
        const char *path = files.v[i].path;
        char *raw;
        size_t n;
        if (files.v[i].kind == IN_EXTRACT) { /* the extracted documents' text, one after another */
            qai_doc_list dl = {0};
            qai_status xs = qai_doc_read_file(path, &dl);
            if (xs == QAI_ERR_UNSUPPORTED) { /* a link page (.so) has no text */
                qai_log(QAI_LOG_INFO, "tokenizer: skipping '%s': %s", path, qai_last_error());
                if (!(texts[i] = qai_calloc(1, 1))) st = QAI_ERR_NOMEM; /* an empty text */
                continue;
            }
            if ((st = xs)) break;
            text_buf b = {0};
            for (int d = 0; d < dl.n_docs && !st; d++) {
                char *copy = qai_malloc(dl.docs[d].len + 1);
                if (!copy) {
                    st = QAI_ERR_NOMEM;
                    break;
                }
                memcpy(copy, dl.docs[d].text, dl.docs[d].len);
                copy[dl.docs[d].len] = 0;
                st = append_text(&b, copy);
            }
            qai_doc_list_free(&dl);
            if (st) {
                qai_free(b.buf);
                break;
            }
            texts[i] = b.buf, lens[i] = b.len;
            total += lens[i];
            continue;
        }
        if ((st = qai_file_read(path, &raw, &n))) break;
        const char *nul = memchr(raw, 0, n);
        if (nul) {
            st = qai_error(QAI_ERR_FORMAT, "training file '%s' is binary (holds NUL bytes at offset %zu)", path,
                           (size_t)(nul - raw));
            qai_free(raw);
            break;
        }
        if (files.v[i].kind == IN_JSONL) {
            text_buf b = {0};
            st = jsonl_each(path, raw, n, false, append_text, &b);
            qai_free(raw);
            if (st) {
                qai_free(b.buf);
                break;
            }
            texts[i] = b.buf, lens[i] = b.len;
        } else {
            texts[i] = raw, lens[i] = n;
        }
        total += lens[i];
    }
    if (!st && total == 0)
        st = qai_error(QAI_ERR_ARG, "tokenizer training: the input files are empty (%zu files, 0 bytes of text)",
                       files.n);
    if (!st) st = qai_tokenizer_train((const char *const *)texts, lens, files.n, o, out, stats);
    if (!st && n_files) *n_files = files.n;
    for (size_t i = 0; texts && i < files.n; i++) qai_free(texts[i]);
    qai_free(texts);
    qai_free(lens);
    files_free(&files);
    return st;
}
