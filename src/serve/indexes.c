/* Collections in qai serve: POST /v1/indexes/{name}/search and /upsert, and
 * the retrieval that grounds a chat completion (http.c calls these).
 *
 * Collections live under the server's data directory (collections/NAME/, see
 * qai/collection.h). Each one is opened on its first use and kept open in a
 * small cache; every use compares the cached version with CURRENT (one small
 * file read) and reopens when an ingest or an upsert made a newer version, so
 * searches never see a half-built version and always see the newest complete
 * one. A collection handle is not thread safe once it holds an embedding
 * model (dense/hybrid), so each cache entry has its own mutex held during a
 * search: searches of one collection run one at a time, different
 * collections in parallel.
 *
 * Reranking ("rerank": true on /search): the hits are re-scored by query
 * likelihood (qai_rerank_*, qai/collection.h) with one of the server's
 * models, which http.c registers with serve_indexes_set_models once they are
 * loaded. Each model gets one reranker (its own context: n_seq 8 sequences of
 * template + 256 passage + 64 query tokens, at most the model's context),
 * made on first use and guarded by its own mutex: reranks with one model run
 * one at a time, and never under a collection's mutex.
 *
 * What it does not do: evict collections (the cache holds every collection
 * searched since the start; each holds its memory-mapped indexes and, after a
 * dense search, its embedding model); rerank through routes (a route name is
 * not a model name here); rerank the chat "retrieval" option. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "serve_internal.h"

#define BAD(param, code, ...) serve_err(err, 400, "invalid_request_error", code, param, __VA_ARGS__)

typedef struct ix_entry {
    char name[72];
    qai_collection *c;
    pthread_mutex_t mu; /* guards c and its use */
    struct ix_entry *next;
} ix_entry;

typedef struct {
    char *name;
    qai_model *m;       /* borrowed from the server */
    qai_reranker *r;    /* made on first use */
    pthread_mutex_t mu; /* guards r and its use */
} ix_model;

struct serve_indexes {
    char data_dir[PATH_MAX];
    pthread_mutex_t mu; /* guards the list */
    ix_entry *head;
    ix_model *models;   /* set once by serve_indexes_set_models, before requests */
    int n_models;
    bool models_set;
    int n_threads;
};

#define RERANK_K_DEFAULT 30
#define RERANK_K_MAX 1000

qai_status serve_indexes_set_models(serve_indexes *ix, const char *const *names, qai_model *const *models, int n,
                                    int n_threads) {
    if (ix->models_set) return qai_error(QAI_ERR_ARG, "serve: the indexes' models are already set");
    if (n < 0 || (n && (!names || !models))) return qai_error(QAI_ERR_ARG, "serve: no models");
    if (n && !(ix->models = qai_calloc((size_t)n, sizeof *ix->models))) return QAI_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        ix->models[i].m = models[i];
        pthread_mutex_init(&ix->models[i].mu, NULL);
        ix->n_models = i + 1;
        if (!(ix->models[i].name = qai_strdup(names[i] ? names[i] : ""))) return QAI_ERR_NOMEM;
    }
    ix->n_threads = n_threads;
    ix->models_set = true;
    return QAI_OK;
}

qai_status serve_indexes_new(const char *data_dir, serve_indexes **out) {
    *out = NULL;
    serve_indexes *ix = qai_calloc(1, sizeof *ix);
    if (!ix) return QAI_ERR_NOMEM;
    qai_status st = qai_home_dir(data_dir, ix->data_dir, sizeof ix->data_dir);
    if (st) {
        qai_free(ix);
        return st;
    }
    pthread_mutex_init(&ix->mu, NULL);
    *out = ix;
    return QAI_OK;
}

void serve_indexes_free(serve_indexes *ix) {
    if (!ix) return;
    for (ix_entry *e = ix->head, *nx; e; e = nx) {
        nx = e->next;
        qai_collection_close(e->c);
        pthread_mutex_destroy(&e->mu);
        qai_free(e);
    }
    for (int i = 0; i < ix->n_models; i++) {
        qai_rerank_free(ix->models[i].r);
        qai_free(ix->models[i].name);
        pthread_mutex_destroy(&ix->models[i].mu);
    }
    qai_free(ix->models);
    pthread_mutex_destroy(&ix->mu);
    qai_free(ix);
}

const char *serve_indexes_dir(const serve_indexes *ix) { return ix->data_dir; }

void serve_retr_free(serve_retr *q) {
    if (!q) return;
    qai_free(q->index);
    qai_free(q->query);
    for (int i = 0; i < q->n_filters; i++) {
        qai_free((char *)q->filters[i].key);
        qai_free((char *)q->filters[i].value);
    }
    qai_free(q->filters);
    memset(q, 0, sizeof *q);
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

qai_status serve_retr_parse(const struct cJSON *o, const char *prefix, bool want_index, bool want_query, int k_default,
                            serve_retr *q, qai_serve_error *err) {
    memset(q, 0, sizeof *q);
    q->k = k_default;
    q->mode = -1;
    q->fusion = -1;
    q->dense_weight = NAN;
    char pn[64];
#define PARAM(f) (snprintf(pn, sizeof pn, "%s%s", prefix, f), pn)
    if (!cJSON_IsObject(o)) {
        int pl = (int)strlen(prefix) - (prefix[0] ? 1 : 0); /* "retrieval." -> "retrieval" */
        snprintf(pn, sizeof pn, "%.*s", pl, prefix);
        return BAD(prefix[0] ? pn : NULL, "invalid_type", "%s%s%s must be a JSON object, not %s", prefix[0] ? "'" : "",
                   prefix[0] ? pn : "the request body", prefix[0] ? "'" : "", type_name(o));
    }
    if (want_index) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "index");
        if (!v) return BAD(PARAM("index"), "missing_field", "'%sindex' is required (a collection name)", prefix);
        if (!cJSON_IsString(v)) return BAD(PARAM("index"), "invalid_type", "'%sindex' must be a string, not %s", prefix, type_name(v));
        if (!qai_collection_name_ok(v->valuestring))
            return BAD(PARAM("index"), "invalid_value", "'%sindex': '%.100s' is not a collection name (1-64 of A-Z a-z 0-9 . _ -)",
                       prefix, v->valuestring);
        if (!(q->index = qai_strdup(v->valuestring))) goto nomem;
    }
    if (want_query) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "query");
        if (!v) return BAD("query", "missing_field", "'query' is required");
        if (!cJSON_IsString(v)) return BAD("query", "invalid_type", "'query' must be a string, not %s", type_name(v));
        if (!v->valuestring[strspn(v->valuestring, " \t\r\n")])
            return BAD("query", "invalid_value", "'query' is empty");
        if (!(q->query = qai_strdup(v->valuestring))) goto nomem;
    }
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "k");
    if (k) {
        if (!cJSON_IsNumber(k) || k->valuedouble != floor(k->valuedouble) || k->valuedouble < 1 || k->valuedouble > 100)
            return BAD(PARAM("k"), cJSON_IsNumber(k) ? "invalid_value" : "invalid_type", "'%sk' must be an integer in [1, 100]", prefix);
        q->k = (int)k->valuedouble;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "mode");
    if (m && !cJSON_IsNull(m)) {
        const char *s = cJSON_IsString(m) ? m->valuestring : NULL;
        qai_retrieve_mode mode;
        if (qai_retrieve_mode_from_name(s, &mode)) q->mode = (int)mode;
        else
            return BAD(PARAM("mode"), s ? "invalid_value" : "invalid_type", "'%smode' must be \"bm25\", \"dense\" or \"hybrid\"", prefix);
    }
    const cJSON *fu = cJSON_GetObjectItemCaseSensitive(o, "fusion");
    if (fu && !cJSON_IsNull(fu)) {
        const char *s = cJSON_IsString(fu) ? fu->valuestring : NULL;
        qai_fusion_kind kind;
        if (qai_fusion_from_name(s, &kind)) q->fusion = (int)kind;
        else return BAD(PARAM("fusion"), s ? "invalid_value" : "invalid_type", "'%sfusion' must be \"rrf\" or \"weighted\"", prefix);
    }
    const cJSON *dw = cJSON_GetObjectItemCaseSensitive(o, "dense_weight");
    if (dw && !cJSON_IsNull(dw)) {
        if (!cJSON_IsNumber(dw) || !(dw->valuedouble >= 0 && dw->valuedouble <= 1))
            return BAD(PARAM("dense_weight"), cJSON_IsNumber(dw) ? "invalid_value" : "invalid_type",
                       "'%sdense_weight' must be a number in [0, 1]", prefix);
        if (q->fusion == QAI_FUSE_RRF)
            return BAD(PARAM("dense_weight"), "invalid_value", "'%sdense_weight' applies to \"fusion\": \"weighted\", not \"rrf\"",
                       prefix);
        q->dense_weight = (float)dw->valuedouble;
        q->fusion = QAI_FUSE_WEIGHTED;
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "filter");
    if (f && !cJSON_IsNull(f)) {
        if (!cJSON_IsObject(f))
            return BAD(PARAM("filter"), "invalid_type", "'%sfilter' must be an object of key: value, not %s", prefix, type_name(f));
        int n = cJSON_GetArraySize(f);
        if (n > 32) return BAD(PARAM("filter"), "invalid_value", "'%sfilter' has %d keys; at most 32", prefix, n);
        if (n && !(q->filters = qai_calloc((size_t)n, sizeof *q->filters))) goto nomem;
        for (const cJSON *x = f->child; x; x = x->next) {
            char num[64];
            const char *val;
            if (cJSON_IsString(x)) val = x->valuestring;
            else if (cJSON_IsNumber(x)) {
                if (x->valuedouble == floor(x->valuedouble) && fabs(x->valuedouble) < 1e15)
                    snprintf(num, sizeof num, "%.0f", x->valuedouble);
                else snprintf(num, sizeof num, "%.17g", x->valuedouble);
                val = num;
            } else if (cJSON_IsBool(x)) val = cJSON_IsTrue(x) ? "true" : "false";
            else
                return BAD(PARAM("filter"), "invalid_type", "'%sfilter.%.40s' must be a string, number or boolean, not %s", prefix,
                           x->string, type_name(x));
            if (!x->string || !x->string[0]) return BAD(PARAM("filter"), "invalid_value", "'%sfilter' has an empty key", prefix);
            char *ks = qai_strdup(x->string), *vs = qai_strdup(val);
            if (!ks || !vs) {
                qai_free(ks);
                qai_free(vs);
                goto nomem;
            }
            q->filters[q->n_filters].key = ks;
            q->filters[q->n_filters++].value = vs;
        }
    }
    return QAI_OK;
nomem:
    return serve_err(err, 500, "server_error", "out_of_memory", NULL, "out of memory");
#undef PARAM
}

/* The entry for name, opened at CURRENT, locked; NULL with *e filled. */
static ix_entry *acquire(serve_indexes *ix, const char *name, const char *param, qai_serve_error *e) {
    qai_collection_info info;
    qai_status st = qai_collection_stat(ix->data_dir, name, &info);
    if (st == QAI_ERR_NOT_FOUND || (!st && !info.current)) {
        serve_err(e, 404, "not_found_error", "index_not_found", param, "the index '%.100s' does not exist", name);
        return NULL;
    }
    if (st) {
        serve_err(e, 500, "server_error", "index_error", param, "index '%.100s': %.300s", name, qai_last_error());
        return NULL;
    }
    pthread_mutex_lock(&ix->mu);
    ix_entry *en = ix->head;
    while (en && strcmp(en->name, name)) en = en->next;
    if (!en && (en = qai_calloc(1, sizeof *en))) {
        snprintf(en->name, sizeof en->name, "%s", name);
        pthread_mutex_init(&en->mu, NULL);
        en->next = ix->head;
        ix->head = en;
    }
    pthread_mutex_unlock(&ix->mu);
    if (!en) {
        serve_err(e, 500, "server_error", "out_of_memory", NULL, "out of memory");
        return NULL;
    }
    pthread_mutex_lock(&en->mu);
    if (!en->c || qai_collection_version(en->c) != info.current) {
        qai_collection *c = NULL;
        st = qai_collection_open(ix->data_dir, name, info.current, &c);
        if (st) {
            pthread_mutex_unlock(&en->mu);
            serve_err(e, 500, "server_error", "index_error", param, "cannot open index '%.100s': %.300s", name, qai_last_error());
            return NULL;
        }
        qai_collection_close(en->c);
        en->c = c;
    }
    return en;
}

qai_status serve_indexes_search(serve_indexes *ix, const char *name, const char *query, const serve_retr *q,
                                const char *param, qai_collection_hit **hits, int *n, int *version, qai_serve_error *e) {
    *hits = NULL;
    *n = 0;
    ix_entry *en = acquire(ix, name, param, e);
    if (!en) return QAI_ERR_FORMAT;
    qai_search_params sp;
    qai_search_params_default(&sp);
    sp.k = q->k;
    if (q->mode >= 0) {
        sp.mode = (qai_retrieve_mode)q->mode;
        sp.mode_given = true;
    }
    if (q->fusion >= 0) sp.fusion = (qai_fusion_kind)q->fusion;
    if (!isnan(q->dense_weight)) sp.dense_weight = q->dense_weight;
    sp.filters = q->filters;
    sp.n_filters = q->n_filters;
    *version = qai_collection_version(en->c);
    qai_status st = qai_collection_search(en->c, query, &sp, hits, n);
    pthread_mutex_unlock(&en->mu);
    if (st == QAI_ERR_ARG || st == QAI_ERR_FORMAT || st == QAI_ERR_UNSUPPORTED) /* e.g. dense without vectors */
        return serve_err(e, 400, "invalid_request_error", "invalid_value", q->mode >= 0 ? "mode" : NULL, "index '%.100s': %.300s",
                         name, qai_last_error());
    if (st) {
        serve_err(e, 500, "server_error", "index_error", NULL, "index '%.100s': %.300s", name, qai_last_error());
        return st;
    }
    return QAI_OK;
}

void serve_put_hits(sbuf *b, const qai_collection_hit *h, int n, const char *name, int version) {
    sb_puts(b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < n; i++) {
        const qai_collection_hit *x = &h[i];
        sb_printf(b, "%s{\"rank\":%d,\"chunk_id\":%llu,\"score\":%.6g,\"source\":", i ? "," : "", i + 1,
                  (unsigned long long)x->chunk_id, (double)x->score);
        sb_json_str(b, x->source, strlen(x->source));
        sb_printf(b, ",\"span\":[%zu,%zu],\"section\":", x->start, x->end);
        sb_json_str(b, x->section, strlen(x->section));
        sb_puts(b, ",\"title\":");
        if (x->title) sb_json_str(b, x->title, strlen(x->title));
        else sb_puts(b, "null");
        sb_puts(b, ",\"record_id\":");
        if (x->record_id) sb_json_str(b, x->record_id, strlen(x->record_id));
        else sb_puts(b, "null");
        sb_puts(b, ",\"content_type\":");
        sb_json_str(b, x->content_type ? x->content_type : "", x->content_type ? strlen(x->content_type) : 0);
        sb_puts(b, ",\"lang\":");
        sb_json_str(b, x->lang ? x->lang : "", x->lang ? strlen(x->lang) : 0);
        sb_printf(b, ",\"meta\":%s,\"rank_bm25\":%d,\"rank_dense\":%d,", x->meta_json ? x->meta_json : "null",
                  x->rank_bm25, x->rank_dense);
        if (x->rank_retrieval)
            sb_printf(b, "\"rerank_score\":%.6g,\"rank_retrieval\":%d,", (double)x->rerank_score, x->rank_retrieval);
        sb_puts(b, "\"collection\":");
        sb_json_str(b, name, strlen(name));
        sb_printf(b, ",\"version\":%d,\"text\":", version);
        sb_json_str(b, x->text, strlen(x->text));
        sb_puts(b, "}");
    }
    sb_puts(b, "],\"index\":");
    sb_json_str(b, name, strlen(name));
    sb_printf(b, ",\"version\":%d}", version);
}

/* "rerank", "rerank_k", "model" of a search request: *mi the model's index,
 * -1 when not reranking; an error (400/404/501) otherwise. */
static qai_status parse_rerank(const serve_indexes *ix, const cJSON *root, int *mi, int *rerank_k, qai_serve_error *err) {
    *mi = -1;
    *rerank_k = RERANK_K_DEFAULT;
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(root, "rerank"), *rk = cJSON_GetObjectItemCaseSensitive(root, "rerank_k"),
                *mo = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (rr && !cJSON_IsNull(rr) && !cJSON_IsBool(rr))
        return BAD("rerank", "invalid_type", "'rerank' must be a boolean, not %s", type_name(rr));
    if (rk && !cJSON_IsNull(rk)) {
        if (!cJSON_IsNumber(rk) || rk->valuedouble != floor(rk->valuedouble) || rk->valuedouble < 1 || rk->valuedouble > RERANK_K_MAX)
            return BAD("rerank_k", cJSON_IsNumber(rk) ? "invalid_value" : "invalid_type", "'rerank_k' must be an integer in [1, %d]",
                       RERANK_K_MAX);
        *rerank_k = (int)rk->valuedouble;
    }
    if (mo && !cJSON_IsNull(mo) && !cJSON_IsString(mo))
        return BAD("model", "invalid_type", "'model' must be a string, not %s", type_name(mo));
    if (!cJSON_IsTrue(rr)) return QAI_OK;
    if (!ix->models_set)
        return serve_err(err, 501, "server_error", "rerank_unavailable", "rerank",
                         "reranking is not available: this server did not register its models with the indexes");
    const char *want = cJSON_IsString(mo) ? mo->valuestring : NULL;
    if (!want || !*want) {
        if (ix->n_models != 1)
            return BAD("model", "missing_field", "'model' is required with 'rerank': this server has %d models (GET /v1/models lists them)",
                       ix->n_models);
        *mi = 0;
    } else {
        for (int i = 0; i < ix->n_models && *mi < 0; i++)
            if (!strcmp(ix->models[i].name, want)) *mi = i;
        if (*mi < 0) return serve_err(err, 404, "not_found_error", "model_not_found", "model", "the model '%.200s' does not exist", want);
    }
    const qai_model_info *info = qai_model_get_info(ix->models[*mi].m);
    if (info->is_encoder)
        return BAD("model", "invalid_value",
                   "the model '%.200s' is an encoder (embeddings only); reranking scores query likelihood with a decoder model",
                   ix->models[*mi].name);
    return QAI_OK;
}

/* Reranks the first rerank_k hits with model mi (its reranker made on first use). */
static qai_status rerank_hits(serve_indexes *ix, int mi, const char *query, qai_collection_hit *h, int n, int rerank_k,
                              qai_serve_error *err) {
    ix_model *im = &ix->models[mi];
    pthread_mutex_lock(&im->mu);
    qai_status st = QAI_OK;
    if (!im->r) {
        qai_rerank_params rp;
        qai_rerank_params_default(&rp);
        rp.n_threads = ix->n_threads;
        st = qai_rerank_new_from_model(im->m, &rp, &im->r);
    }
    if (!st) st = qai_rerank_hits(im->r, query, h, n, rerank_k);
    pthread_mutex_unlock(&im->mu);
    if (st == QAI_ERR_ARG || st == QAI_ERR_RANGE || st == QAI_ERR_UNSUPPORTED) /* e.g. a query over the budget */
        return BAD("query", "invalid_value", "rerank with '%.100s': %.300s", im->name, qai_last_error());
    if (st) return serve_err(err, 500, "server_error", "rerank_error", NULL, "rerank with '%.100s': %.300s", im->name, qai_last_error());
    return QAI_OK;
}

int serve_index_search_http(serve_indexes *ix, const char *name, const char *body, size_t len, sbuf *out,
                            qai_serve_error *err) {
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return BAD(NULL, "invalid_json", "the request body is not valid JSON"), err->status;
    serve_retr q;
    int mi = -1, rerank_k = RERANK_K_DEFAULT;
    qai_status st = serve_retr_parse(root, "", false, true, 8, &q, err);
    if (!st) st = parse_rerank(ix, root, &mi, &rerank_k, err);
    cJSON_Delete(root);
    if (st) {
        serve_retr_free(&q);
        return err->status;
    }
    /* reranking: the best max(k, rerank_k) candidates, the first rerank_k reranked, k kept */
    int k = q.k;
    if (mi >= 0 && rerank_k > q.k) q.k = rerank_k;
    qai_collection_hit *h;
    int n, version = 0;
    st = serve_indexes_search(ix, name, q.query, &q, NULL, &h, &n, &version, err);
    if (!st && mi >= 0) {
        st = rerank_hits(ix, mi, q.query, h, n, rerank_k, err);
        if (st) qai_collection_hits_free(h, n);
    }
    serve_retr_free(&q);
    if (st) return err->status;
    serve_put_hits(out, h, n < k ? n : k, name, version);
    qai_collection_hits_free(h, n);
    return 200;
}

int serve_index_upsert_http(serve_indexes *ix, const char *name, const char *body, size_t len, sbuf *out,
                            qai_serve_error *err) {
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return BAD(NULL, "invalid_json", "the request body is not valid JSON"), err->status;
    int status = 200;
    qai_upsert_doc *docs = NULL;
    char **metas = NULL;
    int n = 0;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "documents");
    if (!cJSON_IsObject(root)) status = (BAD(NULL, "invalid_type", "the request body must be a JSON object"), 400);
    else if (!d) status = (BAD("documents", "missing_field", "'documents' is required"), 400);
    else if (!cJSON_IsArray(d)) status = (BAD("documents", "invalid_type", "'documents' must be an array, not %s", type_name(d)), 400);
    else if ((n = cJSON_GetArraySize(d)) == 0) status = (BAD("documents", "invalid_value", "'documents' is empty"), 400);
    else if (n > 100000) status = (BAD("documents", "invalid_value", "'documents' has %d entries; at most 100000 per request", n), 400);
    if (status == 200) {
        docs = qai_calloc((size_t)n, sizeof *docs);
        metas = qai_calloc((size_t)n, sizeof *metas);
        if (!docs || !metas) status = (serve_err(err, 500, "server_error", "out_of_memory", NULL, "out of memory"), 500);
    }
    int i = 0;
    for (const cJSON *x = status == 200 ? d->child : NULL; x && status == 200; x = x->next, i++) {
        char pn[64];
        snprintf(pn, sizeof pn, "documents[%d]", i);
        if (!cJSON_IsObject(x)) {
            status = (BAD(pn, "invalid_type", "'%s' must be an object, not %s", pn, type_name(x)), 400);
            break;
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id"), *t = cJSON_GetObjectItemCaseSensitive(x, "text"),
                    *m = cJSON_GetObjectItemCaseSensitive(x, "metadata");
        if (id && !cJSON_IsNull(id) && !cJSON_IsString(id)) {
            snprintf(pn, sizeof pn, "documents[%d].id", i);
            status = (BAD(pn, "invalid_type", "'%s' must be a string, not %s", pn, type_name(id)), 400);
        } else if (!t || !cJSON_IsString(t) || !t->valuestring[strspn(t->valuestring, " \t\r\n")]) {
            snprintf(pn, sizeof pn, "documents[%d].text", i);
            status = (BAD(pn, !t ? "missing_field" : cJSON_IsString(t) ? "invalid_value" : "invalid_type",
                          "'%s' must be a non-empty string", pn), 400);
        } else if (m && !cJSON_IsNull(m) && !cJSON_IsObject(m)) {
            snprintf(pn, sizeof pn, "documents[%d].metadata", i);
            status = (BAD(pn, "invalid_type", "'%s' must be an object, not %s", pn, type_name(m)), 400);
        } else if (m && (cJSON_GetObjectItemCaseSensitive(m, "id") || cJSON_GetObjectItemCaseSensitive(m, "text") ||
                         cJSON_GetObjectItemCaseSensitive(m, "content"))) {
            snprintf(pn, sizeof pn, "documents[%d].metadata", i);
            status = (BAD(pn, "invalid_value", "'%s' may not have the keys id, text or content", pn), 400);
        } else {
            docs[i].id = id && cJSON_IsString(id) ? id->valuestring : NULL;
            docs[i].text = t->valuestring;
            if (m && cJSON_IsObject(m)) {
                char *s = cJSON_PrintUnformatted(m);
                if (!s) status = (serve_err(err, 500, "server_error", "out_of_memory", NULL, "out of memory"), 500);
                metas[i] = s;
                docs[i].meta_json = s;
            }
        }
    }
    if (status == 200) {
        qai_ingest_opts o;
        qai_ingest_opts_default(&o);
        o.data_dir = ix->data_dir;
        o.n_threads = 1;
        qai_ingest_result r;
        qai_status st = qai_collection_upsert(name, docs, n, &o, &r);
        if (st == QAI_ERR_ARG)
            status = (BAD("documents", "invalid_value", "index '%.100s': %.300s", name, qai_last_error()), 400);
        else if (st)
            status = (serve_err(err, 500, "server_error", "index_error", NULL, "index '%.100s': %.300s", name, qai_last_error()), 500);
        else {
            sb_puts(out, "{\"index\":");
            sb_json_str(out, name, strlen(name));
            sb_printf(out, ",\"version\":%d,\"previous_version\":%d,\"added\":%d,\"chunks\":%zu}", r.version,
                      r.previous_version, n, r.chunks);
            qai_ingest_result_release(&r);
        }
    }
    for (int k = 0; metas && k < n; k++) cJSON_free(metas[k]);
    qai_free(metas);
    qai_free(docs);
    cJSON_Delete(root);
    return status;
}

void serve_put_citations(sbuf *b, const qai_collection_hit *h, int n) {
    sb_puts(b, "[");
    for (int i = 0; i < n; i++) {
        sb_printf(b, "%s{\"index\":%d,\"source\":", i ? "," : "", i + 1);
        sb_json_str(b, h[i].source, strlen(h[i].source));
        sb_printf(b, ",\"span\":[%zu,%zu],\"section\":", h[i].start, h[i].end);
        sb_json_str(b, h[i].section, strlen(h[i].section));
        sb_puts(b, ",\"record_id\":");
        if (h[i].record_id) sb_json_str(b, h[i].record_id, strlen(h[i].record_id));
        else sb_puts(b, "null");
        sb_printf(b, ",\"chunk_id\":%llu,\"score\":%.6g}", (unsigned long long)h[i].chunk_id, (double)h[i].score);
    }
    sb_puts(b, "]");
}

/* The system text of a grounded answer: qai rag's instruction and the
 * numbered passages (as qai rag numbers them). */
void serve_put_passages(sbuf *b, const qai_collection_hit *h, int n) {
    sb_puts(b, "Answer the question using only the numbered passages. Cite the passages you use as [1], [2]. "
               "If the passages do not contain the answer, say that you do not know.\n\nPassages:\n");
    for (int i = 0; i < n; i++)
        sb_printf(b, "\n[%d] (%s%s%s)\n%s\n", i + 1, h[i].source, h[i].section[0] ? ", " : "", h[i].section, h[i].text);
}
