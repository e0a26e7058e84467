/*
 * Reading collections: listing, opening a version (manifest hash checked,
 * chunks.db read-only, BM25 loaded, dense index memory-mapped) and searching
 * it by BM25, dense vectors or both fused, with metadata filters applied
 * inside the index searches.
 *
 * What it deliberately does not do: re-hash chunks.db and the index files on
 * every open (their hashes are in the manifest for audits), or change a
 * version.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "collection_internal.h"
#include "qai/index.h"

struct qai_collection {
    char name[72];
    int version;
    char path[PATH_MAX + 32];
    char *manifest_text;
    cJSON *manifest;
    sqlite3 *db;
    qai_bm25 *bm;
    qai_index *dense;
    size_t n_chunks;
    int64_t max_id;
    bool has_model;
    const char *model_name, *model_path, *model_sha; /* in manifest */
    int dim;
    coll_embedder emb;
    bool emb_open;
    char emb_override[PATH_MAX];
};

/* ---- listing --------------------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static qai_status stat_dir(const char *cdir, const char *name, qai_collection_info *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    DIR *d = opendir(cdir);
    if (!d) return qai_error(QAI_ERR_NOT_FOUND, "no collection '%s'", name);
    int all[4096], n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        if (s[0] != 'v' || !isdigit((unsigned char)s[1])) continue;
        bool ok = true;
        for (const char *p = s + 1; *p; p++) ok &= isdigit((unsigned char)*p) != 0;
        if (!ok || strlen(s) > 9) continue;
        if (n < 4096) all[n++] = atoi(s + 1);
    }
    closedir(d);
    qsort(all, (size_t)n, sizeof *all, cmp_int);
    int first = n > 64 ? n - 64 : 0;
    for (int i = first; i < n; i++) out->versions[out->n_versions++] = all[i];
    out->current = coll_read_current(cdir);
    return QAI_OK;
}

qai_status qai_collection_stat(const char *data_dir, const char *name, qai_collection_info *out) {
    char cdir[PATH_MAX];
    qai_status st = coll_dir(data_dir, name, cdir, sizeof cdir);
    if (st) return st;
    struct stat sb;
    if (stat(cdir, &sb) || !S_ISDIR(sb.st_mode)) return qai_error(QAI_ERR_NOT_FOUND, "no collection '%s'", name);
    return stat_dir(cdir, name, out);
}

static int cmp_info(const void *a, const void *b) {
    return strcmp(((const qai_collection_info *)a)->name, ((const qai_collection_info *)b)->name);
}

qai_status qai_collection_list(const char *data_dir, qai_collection_info **out, int *n) {
    *out = NULL;
    *n = 0;
    char home[PATH_MAX], root[PATH_MAX + 16];
    char cdir[PATH_MAX + 300];
    qai_status st = qai_home_dir(data_dir && *data_dir ? data_dir : NULL, home, sizeof home);
    if (st) return st;
    snprintf(root, sizeof root, "%s/collections", home);
    DIR *d = opendir(root);
    if (!d) return QAI_OK; /* none yet */
    qai_collection_info *v = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!qai_collection_name_ok(e->d_name)) continue;
        if (strlen(root) + strlen(e->d_name) + 2 > sizeof cdir) continue;
        snprintf(cdir, sizeof cdir, "%s/%s", root, e->d_name);
        struct stat sb;
        if (stat(cdir, &sb) || !S_ISDIR(sb.st_mode)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            qai_collection_info *nv = qai_realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                closedir(d);
                qai_free(v);
                *n = 0;
                return QAI_ERR_NOMEM;
            }
            v = nv;
        }
        stat_dir(cdir, e->d_name, &v[*n]);
        if (v[*n].n_versions) (*n)++;
    }
    closedir(d);
    if (*n) qsort(v, (size_t)*n, sizeof *v, cmp_info);
    *out = v;
    return QAI_OK;
}

/* ---- open ------------------------------------------------------------------------------ */

void qai_collection_close(qai_collection *c) {
    if (!c) return;
    if (c->emb_open) coll_embedder_close(&c->emb);
    if (c->dense) qai_index_free(c->dense);
    if (c->bm) qai_bm25_free(c->bm);
    if (c->db) sqlite3_close(c->db);
    cJSON_Delete(c->manifest);
    qai_free(c->manifest_text);
    qai_free(c);
}

qai_status qai_collection_open(const char *data_dir, const char *name, int version, qai_collection **out) {
    *out = NULL;
    char cdir[PATH_MAX];
    qai_status st = coll_dir(data_dir, name, cdir, sizeof cdir);
    if (st) return st;
    struct stat sb;
    if (stat(cdir, &sb) || !S_ISDIR(sb.st_mode))
        return qai_error(QAI_ERR_NOT_FOUND, "no collection '%s' (create it with qai ingest PATHS --into %s)", name,
                         name);
    if (version <= 0) {
        version = coll_read_current(cdir);
        if (!version) return qai_error(QAI_ERR_NOT_FOUND, "collection '%s' has no complete version yet", name);
    }
    qai_collection *c = qai_calloc(1, sizeof *c);
    if (!c) return QAI_ERR_NOMEM;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->version = version;
    snprintf(c->path, sizeof c->path, "%s/v%d", cdir, version);
    if (stat(c->path, &sb) || !S_ISDIR(sb.st_mode)) {
        qai_collection_close(c);
        return qai_error(QAI_ERR_NOT_FOUND, "collection '%s' has no version %d", name, version);
    }
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/" COLL_MANIFEST, c->path);
    size_t n = 0;
    if ((st = qai_file_read(p, &c->manifest_text, &n))) goto fail;
    void *mj = NULL;
    if ((st = coll_manifest_parse(c->manifest_text, n, p, &mj))) goto fail;
    c->manifest = mj;
    const cJSON *em = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->manifest, "options"),
                                                       "embed_model");
    if (cJSON_IsObject(em)) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(em, "name"), *b = cJSON_GetObjectItemCaseSensitive(em, "path"),
                    *s = cJSON_GetObjectItemCaseSensitive(em, "sha256"), *d = cJSON_GetObjectItemCaseSensitive(em, "dim");
        c->has_model = true;
        c->model_name = a->valuestring;
        c->model_path = b->valuestring;
        c->model_sha = s->valuestring;
        c->dim = d->valueint;
    }
    snprintf(p, sizeof p, "%s/" COLL_CHUNKS, c->path);
    if (sqlite3_open_v2(p, &c->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        st = qai_error(QAI_ERR_IO, "cannot open '%s'", p);
        goto fail;
    }
    sqlite3_busy_timeout(c->db, 5000);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*), coalesce(max(id), 0) FROM chunks", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': %s", p, sqlite3_errmsg(c->db));
        sqlite3_finalize(q);
        goto fail;
    }
    c->n_chunks = (size_t)sqlite3_column_int64(q, 0);
    c->max_id = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    snprintf(p, sizeof p, "%s/" COLL_BM25, c->path);
    if ((st = qai_bm25_load(p, &c->bm))) goto fail;
    if (c->has_model) {
        snprintf(p, sizeof p, "%s/" COLL_DENSE, c->path);
        if ((st = qai_index_open(p, &c->dense))) goto fail;
        if (qai_index_get_params(c->dense)->dim != c->dim) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': dimension %d differs from the manifest's %d", p,
                           qai_index_get_params(c->dense)->dim, c->dim);
            goto fail;
        }
    }
    *out = c;
    return QAI_OK;
fail:
    qai_collection_close(c);
    return st;
}

const char *qai_collection_name(const qai_collection *c) { return c->name; }
int qai_collection_version(const qai_collection *c) { return c->version; }
const char *qai_collection_path(const qai_collection *c) { return c->path; }
const char *qai_collection_manifest(const qai_collection *c) { return c->manifest_text; }
size_t qai_collection_n_chunks(const qai_collection *c) { return c->n_chunks; }

bool qai_collection_embed_model(const qai_collection *c, const char **name, const char **path, const char **sha256,
                                int *dim) {
    if (!c->has_model) return false;
    if (name) *name = c->model_name;
    if (path) *path = c->model_path;
    if (sha256) *sha256 = c->model_sha;
    if (dim) *dim = c->dim;
    return true;
}

/* ---- search ---------------------------------------------------------------------------- */

void qai_search_params_default(qai_search_params *p) {
    memset(p, 0, sizeof *p);
    p->mode = QAI_RETRIEVE_HYBRID;
    p->fusion = QAI_FUSE_RRF;
    p->dense_weight = 0.5f;
    p->k = 8;
}

typedef struct {
    const uint8_t *ok;
    int64_t max_id;
} bitmap_filter;

static bool filter_cb(void *ctx, uint64_t id) {
    const bitmap_filter *f = ctx;
    return id <= (uint64_t)f->max_id && f->ok[id];
}

static bool key_ok(const char *k) {
    if (!*k) return false;
    for (; *k; k++)
        if (!(isalnum((unsigned char)*k) || *k == '_' || *k == '-' || *k == '.')) return false;
    return true;
}

/* "language" and "content_type" are other names of "lang" and "type". */
static const char *filter_key(const char *k) {
    if (k && !strcmp(k, "language")) return "lang";
    if (k && !strcmp(k, "content_type")) return "type";
    return k;
}

/* Chunk ids passing every filter, as a byte map over 0..max_id. */
static qai_status build_filter(qai_collection *c, const qai_search_params *p, uint8_t **out) {
    *out = NULL;
    char sql[8192] = "SELECT id FROM chunks WHERE 1";
    size_t len = strlen(sql);
    for (int i = 0; i < p->n_filters; i++) {
        const char *k = filter_key(p->filters[i].key);
        const char *cond;
        if (!k || !p->filters[i].value) return qai_error(QAI_ERR_ARG, "filter %d has no key or value", i + 1);
        if (!strcmp(k, "source")) cond = " AND source GLOB ?";
        else if (!strcmp(k, "type")) cond = " AND content_type = ?";
        else if (!strcmp(k, "lang")) cond = " AND lang = ?";
        else if (!strcmp(k, "section")) cond = " AND section GLOB ?";
        else if (!strcmp(k, "record")) cond = " AND record_id = ?";
        else if (!strcmp(k, "title")) cond = " AND title GLOB ?";
        else if (key_ok(k)) cond = " AND CAST(json_extract(meta, ?) AS TEXT) = ?";
        else
            return qai_error(QAI_ERR_ARG,
                             "filter key '%s': use source, type, lang, section, record, title or a metadata field "
                             "name (letters, digits, '_', '-', '.')",
                             k);
        if (len + strlen(cond) + 1 >= sizeof sql) return qai_error(QAI_ERR_ARG, "too many filters");
        strcat(sql, cond);
        len += strlen(cond);
    }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &q, NULL) != SQLITE_OK)
        return qai_error(QAI_ERR_IO, "filtering chunks: %s", sqlite3_errmsg(c->db));
    int b = 1;
    for (int i = 0; i < p->n_filters; i++) {
        const char *k = filter_key(p->filters[i].key), *v = p->filters[i].value;
        if (!strcmp(k, "type")) v = coll_type_alias(v);
        if (!strcmp(k, "source") || !strcmp(k, "type") || !strcmp(k, "lang") || !strcmp(k, "section") ||
            !strcmp(k, "record") || !strcmp(k, "title"))
            sqlite3_bind_text(q, b++, v, -1, SQLITE_TRANSIENT);
        else {
            char path[300];
            snprintf(path, sizeof path, "$.\"%s\"", k);
            sqlite3_bind_text(q, b++, path, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, b++, v, -1, SQLITE_TRANSIENT);
        }
    }
    uint8_t *ok = qai_calloc((size_t)c->max_id + 1, 1);
    if (!ok) {
        sqlite3_finalize(q);
        return QAI_ERR_NOMEM;
    }
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        if (id >= 0 && id <= c->max_id) ok[id] = 1;
    }
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) {
        qai_free(ok);
        return qai_error(QAI_ERR_IO, "filtering chunks: %s", sqlite3_errmsg(c->db));
    }
    *out = ok;
    return QAI_OK;
}

static qai_status open_embedder(qai_collection *c, const qai_search_params *p) {
    const char *path = p->embed_model ? p->embed_model : c->model_path;
    if (c->emb_open && !strcmp(c->emb_override, path)) return QAI_OK;
    if (c->emb_open) coll_embedder_close(&c->emb);
    c->emb_open = false;
    qai_status st = coll_embedder_open(path, p->n_threads, &c->emb);
    if (st) {
        if (!p->embed_model)
            return qai_error_wrap(st,
                                  "collection '%s' was embedded with '%s', which cannot be loaded (give the same "
                                  "model with -m, or use --mode bm25)",
                                  c->name, c->model_path);
        return st;
    }
    if (strcmp(c->emb.sha256, c->model_sha) || c->emb.dim != c->dim) {
        qai_status e = qai_error(QAI_ERR_ARG,
                                 "'%s' (sha256 %.16s..., dim %d) is not the model that embedded collection '%s' "
                                 "('%s', sha256 %.16s..., dim %d): query and passage vectors must come from the same "
                                 "model",
                                 path, c->emb.sha256, c->emb.dim, c->name, c->model_name, c->model_sha, c->dim);
        coll_embedder_close(&c->emb);
        return e;
    }
    c->emb_open = true;
    snprintf(c->emb_override, sizeof c->emb_override, "%s", path);
    return QAI_OK;
}

static char *col_dup(sqlite3_stmt *q, int i) {
    const char *t = (const char *)sqlite3_column_text(q, i);
    return t ? qai_strdup(t) : NULL;
}

void qai_collection_hits_free(qai_collection_hit *h, int n) {
    if (!h) return;
    for (int i = 0; i < n; i++) {
        qai_free(h[i].source);
        qai_free(h[i].record_id);
        qai_free(h[i].section);
        qai_free(h[i].title);
        qai_free(h[i].content_type);
        qai_free(h[i].lang);
        qai_free(h[i].meta_json);
        qai_free(h[i].text);
    }
    qai_free(h);
}

static int rank_of(const qai_hit *l, int n, uint64_t id) {
    for (int i = 0; i < n; i++)
        if (l[i].id == id) return i + 1;
    return 0;
}

qai_status qai_collection_search(qai_collection *c, const char *query, const qai_search_params *pp,
                                 qai_collection_hit **hits, int *n) {
    *hits = NULL;
    *n = 0;
    qai_search_params p;
    if (pp) p = *pp;
    else qai_search_params_default(&p);
    if (!query) return qai_error(QAI_ERR_ARG, "no query");
    if (p.k <= 0) p.k = 8;
    if (p.fusion != QAI_FUSE_RRF && p.fusion != QAI_FUSE_WEIGHTED) return qai_error(QAI_ERR_ARG, "unknown fusion %d", (int)p.fusion);
    if (p.fusion == QAI_FUSE_WEIGHTED && !(p.dense_weight >= 0.0f && p.dense_weight <= 1.0f))
        return qai_error(QAI_ERR_ARG, "the dense weight of weighted fusion must be in [0, 1], not %g", (double)p.dense_weight);
    if (!p.mode_given) p.mode = c->has_model ? QAI_RETRIEVE_HYBRID : QAI_RETRIEVE_BM25;
    if (p.mode != QAI_RETRIEVE_BM25 && !c->has_model)
        return qai_error(QAI_ERR_ARG,
                         "collection '%s' has no embeddings, so --mode %s cannot work: re-ingest it with an embedding "
                         "model (qai ingest PATHS --into %s -m MODEL.gguf) or use --mode bm25",
                         c->name, p.mode == QAI_RETRIEVE_DENSE ? "dense" : "hybrid", c->name);
    int cand = p.mode == QAI_RETRIEVE_HYBRID ? (p.candidates > 0 ? p.candidates : (4 * p.k > 50 ? 4 * p.k : 50)) : p.k;
    if (cand < p.k) cand = p.k;
    uint8_t *ok = NULL;
    qai_status st = p.n_filters ? build_filter(c, &p, &ok) : QAI_OK;
    if (st) return st;
    bitmap_filter bf = {ok, c->max_id};
    qai_hit *lex = NULL, *den = NULL, *fused = NULL;
    int nl = 0, nd = 0, nf = 0;
    float *qv = NULL;
    if (p.mode != QAI_RETRIEVE_DENSE) {
        if (!(lex = qai_malloc((size_t)cand * sizeof *lex))) st = QAI_ERR_NOMEM;
        if (!st) st = qai_bm25_search(c->bm, query, cand, ok ? filter_cb : NULL, &bf, lex, &nl);
    }
    if (!st && p.mode != QAI_RETRIEVE_BM25) {
        st = open_embedder(c, &p);
        if (!st && !(qv = qai_malloc((size_t)c->dim * sizeof *qv))) st = QAI_ERR_NOMEM;
        if (!st) st = coll_embed_text(&c->emb, query, strlen(query), qv, NULL);
        if (!st && !(den = qai_malloc((size_t)cand * sizeof *den))) st = QAI_ERR_NOMEM;
        qai_search_opts so = {.ef = p.ef > 0 ? p.ef : (2 * cand > 64 ? 2 * cand : 64),
                              .filter = ok ? filter_cb : NULL, .filter_ctx = &bf};
        if (!st) st = qai_index_search(c->dense, qv, cand, &so, den, &nd);
    }
    const qai_hit *final = NULL;
    int nfinal = 0;
    if (!st) {
        if (p.mode == QAI_RETRIEVE_BM25) final = lex, nfinal = nl < p.k ? nl : p.k;
        else if (p.mode == QAI_RETRIEVE_DENSE) final = den, nfinal = nd < p.k ? nd : p.k;
        else {
            const qai_hit *lists[2] = {den, lex};
            int lens[2] = {nd, nl};
            if (!(fused = qai_malloc((size_t)p.k * sizeof *fused))) st = QAI_ERR_NOMEM;
            else if (p.fusion == QAI_FUSE_WEIGHTED) {
                const float w[2] = {p.dense_weight, 1.0f - p.dense_weight};
                st = qai_fuse_weighted(lists, lens, w, 2, fused, p.k, &nf);
            }
            else st = qai_fuse_rrf(lists, lens, 2, 60, fused, p.k, &nf);
            final = fused;
            nfinal = nf;
        }
    }
    qai_collection_hit *h = NULL;
    sqlite3_stmt *q = NULL;
    if (!st && nfinal) {
        h = qai_calloc((size_t)nfinal, sizeof *h);
        if (!h) st = QAI_ERR_NOMEM;
        else if (sqlite3_prepare_v2(c->db,
                                    "SELECT source, record_id, start, end, section, title, content_type, lang, meta, "
                                    "text FROM chunks WHERE id = ?",
                                    -1, &q, NULL) != SQLITE_OK)
            st = qai_error(QAI_ERR_IO, "reading chunks: %s", sqlite3_errmsg(c->db));
        for (int i = 0; i < nfinal && !st; i++) {
            qai_collection_hit *x = &h[i];
            x->chunk_id = final[i].id;
            x->score = final[i].score;
            x->rank_bm25 = rank_of(lex, nl, x->chunk_id);
            x->rank_dense = rank_of(den, nd, x->chunk_id);
            sqlite3_bind_int64(q, 1, (sqlite3_int64)x->chunk_id);
            if (sqlite3_step(q) != SQLITE_ROW) {
                st = qai_error(QAI_ERR_FORMAT, "collection '%s' version %d: chunk %llu is indexed but not in chunks.db",
                               c->name, c->version, (unsigned long long)x->chunk_id);
                break;
            }
            x->source = col_dup(q, 0);
            x->record_id = col_dup(q, 1);
            x->start = (size_t)sqlite3_column_int64(q, 2);
            x->end = (size_t)sqlite3_column_int64(q, 3);
            x->section = col_dup(q, 4);
            x->title = col_dup(q, 5);
            x->content_type = col_dup(q, 6);
            x->lang = col_dup(q, 7);
            x->meta_json = col_dup(q, 8);
            x->text = col_dup(q, 9);
            if (!x->source || !x->text || !x->section) st = QAI_ERR_NOMEM;
            sqlite3_reset(q);
        }
        sqlite3_finalize(q);
    }
    qai_free(ok);
    qai_free(lex);
    qai_free(den);
    qai_free(fused);
    qai_free(qv);
    if (st) {
        qai_collection_hits_free(h, nfinal);
        return st;
    }
    *hits = h;
    *n = nfinal;
    return QAI_OK;
}

qai_status qai_collection_twins(qai_collection *c, const char *source, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT d.dup_of_source FROM docs d JOIN files f ON d.file_id = f.id "
                           "WHERE f.path = ?1 AND d.dup_kind IS NOT NULL "
                           "UNION SELECT f.path FROM docs d JOIN files f ON d.file_id = f.id "
                           "WHERE d.dup_of_source = ?1 AND d.dup_kind IS NOT NULL",
                           -1, &q, NULL) != SQLITE_OK)
        return qai_error(QAI_ERR_IO, "reading duplicates: %s", sqlite3_errmsg(c->db));
    sqlite3_bind_text(q, 1, source, -1, SQLITE_TRANSIENT);
    char *names[256];
    int k = 0;
    size_t total = 0;
    while (k < 256 && sqlite3_step(q) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(q, 0);
        if (!s || !strcmp(s, source)) continue;
        names[k] = qai_strdup(s);
        if (!names[k]) break;
        total += strlen(s) + 1;
        k++;
    }
    sqlite3_finalize(q);
    char **blk = qai_malloc((size_t)k * sizeof(char *) + total + 1);
    if (!blk) {
        for (int i = 0; i < k; i++) qai_free(names[i]);
        return QAI_ERR_NOMEM;
    }
    char *p = (char *)(blk + k);
    for (int i = 0; i < k; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(p, names[i], l);
        blk[i] = p;
        p += l;
        qai_free(names[i]);
    }
    *out = blk;
    *n = k;
    return QAI_OK;
}

bool qai_retrieve_mode_from_name(const char *name, qai_retrieve_mode *out) {
    static const char *const names[] = {"bm25", "dense", "hybrid"};
    static const qai_retrieve_mode modes[] = {QAI_RETRIEVE_BM25, QAI_RETRIEVE_DENSE, QAI_RETRIEVE_HYBRID};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) {
            *out = modes[i];
            return true;
        }
    return false;
}

bool qai_fusion_from_name(const char *name, qai_fusion_kind *out) {
    if (name && !strcmp(name, "rrf")) *out = QAI_FUSE_RRF;
    else if (name && !strcmp(name, "weighted")) *out = QAI_FUSE_WEIGHTED;
    else return false;
    return true;
}
