/*
 * Pieces shared by ingesting and reading collections: folder names, CURRENT,
 * the embedding model wrapper, manifest hashing and the crash test hook.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collection_internal.h"
#include "qai/tokenizer.h"

bool qai_collection_name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64 || name[0] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) return false;
    }
    return true;
}

qai_status coll_dir(const char *data_dir, const char *name, char *out, size_t cap) {
    if (!qai_collection_name_ok(name))
        return qai_error(QAI_ERR_ARG,
                         "invalid collection name '%s': use 1-64 letters, digits, '.', '_' or '-', not starting "
                         "with '.'",
                         name ? name : "");
    char home[PATH_MAX];
    qai_status st = qai_home_dir(data_dir && *data_dir ? data_dir : NULL, home, sizeof home);
    if (st) return st;
    /* absolute, so recorded paths stay valid from any folder */
    char abs[PATH_MAX];
    if (realpath(home, abs)) snprintf(home, sizeof home, "%s", abs);
    if ((size_t)snprintf(out, cap, "%s/collections/%s", home, name) >= cap)
        return qai_error(QAI_ERR_RANGE, "data directory path too long: '%s'", home);
    return QAI_OK;
}

static int parse_vdir(const char *s) {
    if (s[0] != 'v' || !isdigit((unsigned char)s[1])) return 0;
    long v = 0;
    for (const char *p = s + 1; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 100000000) return 0;
        v = v * 10 + (*p - '0');
    }
    return (int)v;
}

int coll_read_current(const char *cdir) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/CURRENT", cdir);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char line[64] = {0};
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    return parse_vdir(line);
}

int coll_max_version(const char *cdir) {
    DIR *d = opendir(cdir);
    if (!d) return 0;
    int best = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int v = parse_vdir(e->d_name);
        if (v > best) best = v;
    }
    closedir(d);
    return best;
}

const char *coll_type_alias(const char *v) {
    static const char *map[][2] = {{"text", "text/plain"},      {"txt", "text/plain"},
                                   {"markdown", "text/markdown"}, {"md", "text/markdown"},
                                   {"html", "text/html"},        {"man", "text/troff"},
                                   {"troff", "text/troff"},      {"jsonl", "application/jsonl"},
                                   {"csv", "text/csv"},          {"pdf", "application/pdf"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(v, map[i][0])) return map[i][1];
    return v;
}

/* ---- embedder ------------------------------------------------------------------ */

qai_status coll_embedder_open(const char *path, int n_threads, coll_embedder *e) {
    memset(e, 0, sizeof *e);
    if (!realpath(path, e->path))
        return qai_error(QAI_ERR_IO, "embedding model '%s': %s", path, strerror(errno));
    uint8_t h[32];
    qai_status st = qai_sha256_file(e->path, h, NULL);
    if (st) return st;
    qai_hex(h, 32, e->sha256);
    if ((st = qai_model_open(e->path, &e->m))) return qai_error_wrap(st, "embedding model '%s'", path);
    const qai_model_info *mi = qai_model_get_info(e->m);
    e->dim = mi->n_embd;
    const char *gname = NULL;
    if (qai_gguf_get_str(qai_model_gguf(e->m), "general.name", &gname) == QAI_OK && gname && *gname)
        snprintf(e->name, sizeof e->name, "%s", gname);
    else {
        const char *b = strrchr(e->path, '/');
        b = b ? b + 1 : e->path;
        size_t bl = strlen(b) < sizeof e->name - 1 ? strlen(b) : sizeof e->name - 1;
        memcpy(e->name, b, bl);
        e->name[bl] = 0;
    }
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = mi->n_ctx_train > 0 && mi->n_ctx_train < 2048 ? mi->n_ctx_train : 2048;
    cp.n_batch = cp.n_ctx;
    cp.n_threads = n_threads;
    if ((st = qai_context_new(e->m, &cp, &e->ctx))) {
        qai_model_close(e->m);
        e->m = NULL;
        return qai_error_wrap(st, "embedding model '%s'", path);
    }
    e->n_ctx = qai_context_n_ctx(e->ctx);
    e->tok = qai_model_tokenizer(e->m);
    return QAI_OK;
}

void coll_embedder_close(coll_embedder *e) {
    if (e->ctx) qai_context_free(e->ctx);
    if (e->m) qai_model_close(e->m);
    e->ctx = NULL;
    e->m = NULL;
}

qai_status coll_embed_text(coll_embedder *e, const char *text, size_t n, float *out, bool *truncated) {
    int32_t *ids = NULL;
    size_t nid = 0;
    qai_status st = qai_tokenizer_encode(e->tok, text, n, QAI_TOK_ADD_SPECIAL, &ids, &nid);
    if (st) return st;
    if (truncated) *truncated = nid > (size_t)e->n_ctx;
    if (nid > (size_t)e->n_ctx) nid = (size_t)e->n_ctx;
    if (nid == 0) {
        qai_free(ids);
        return qai_error(QAI_ERR_ARG, "nothing to embed: the text gives no tokens");
    }
    st = qai_embed(e->ctx, 0, ids, (int)nid, out);
    qai_free(ids);
    return st;
}

int coll_count_tokens(void *ctx, const char *text, size_t n) {
    coll_embedder *e = ctx;
    int32_t *ids = NULL;
    size_t nid = 0;
    if (qai_tokenizer_encode(e->tok, text, n, 0, &ids, &nid) != QAI_OK) return (int)(n / 4 + 1);
    qai_free(ids);
    return nid > INT_MAX ? INT_MAX : (int)nid;
}

/* ---- manifest hash ------------------------------------------------------------- */

qai_status coll_manifest_hash(const void *jv, char hex[65]) {
    cJSON *c = cJSON_Duplicate((const cJSON *)jv, 1);
    if (!c) return qai_error(QAI_ERR_NOMEM, "out of memory hashing a manifest");
    cJSON_DeleteItemFromObjectCaseSensitive(c, "manifest_sha256");
    char *t = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    if (!t) return qai_error(QAI_ERR_NOMEM, "out of memory hashing a manifest");
    uint8_t h[32];
    qai_sha256(t, strlen(t), h);
    cJSON_free(t);
    qai_hex(h, 32, hex);
    return QAI_OK;
}

qai_status coll_manifest_parse(const char *text, size_t n, const char *name, void **out) {
    *out = NULL;
    if (memchr(text, 0, n))
        return qai_error(QAI_ERR_FORMAT, "'%s': NUL byte at offset %zu", name, (size_t)((const char *)memchr(text, 0, n) - text));
    /* a NUL-terminated copy: cJSON's length-limited parse does not see the end
     * of a buffer that ends in whitespace, but it sees a terminating NUL */
    char *copy = qai_malloc(n + 1);
    if (!copy) return QAI_ERR_NOMEM;
    memcpy(copy, text, n);
    copy[n] = 0;
    const char *end = NULL;
    cJSON *m = cJSON_ParseWithLengthOpts(copy, n + 1, &end, 1);
    size_t off = end && end >= copy ? (size_t)(end - copy) : 0;
    qai_free(copy);
    if (!m || !cJSON_IsObject(m)) {
        qai_status st = qai_error(QAI_ERR_FORMAT, "'%s' is not a JSON object (error near byte %zu)", name, off);
        cJSON_Delete(m);
        return st;
    }
    qai_status st = QAI_OK;
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(m, "manifest_sha256");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(m, "version");
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(m, "options");
    char hex[65];
    if ((st = coll_manifest_hash(m, hex))) goto fail;
    if (!cJSON_IsString(hs) || strcmp(hs->valuestring, hex)) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': field 'manifest_sha256' does not match the manifest's contents (%s)",
                       name, cJSON_IsString(hs) ? "edited or damaged" : "missing");
        goto fail;
    }
    if (!cJSON_IsNumber(fmt) || fmt->valuedouble < 1 || fmt->valuedouble > COLL_FORMAT) {
        st = qai_error(cJSON_IsNumber(fmt) && fmt->valuedouble > COLL_FORMAT ? QAI_ERR_UNSUPPORTED : QAI_ERR_FORMAT,
                       "'%s': field 'format' is not a format this qai reads (%d)", name, COLL_FORMAT);
        goto fail;
    }
    if (!cJSON_IsNumber(ver) || ver->valuedouble < 1 || ver->valuedouble > 1e8) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': field 'version' is not a version number", name);
        goto fail;
    }
    if (!cJSON_IsObject(opt)) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': field 'options' is missing", name);
        goto fail;
    }
    const cJSON *em = cJSON_GetObjectItemCaseSensitive(opt, "embed_model");
    if (em && !cJSON_IsNull(em)) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(em, "dim");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(em, "sha256");
        if (!cJSON_IsObject(em) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(em, "name")) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(em, "path")) || !cJSON_IsString(sh) ||
            strlen(sh->valuestring) != 64 || !cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 65536) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': field 'options.embed_model' is incomplete or invalid", name);
            goto fail;
        }
    }
    *out = m;
    return QAI_OK;
fail:
    cJSON_Delete(m);
    return st;
}
