/* Reranking retrieved passages with a GGUF decoder model by query likelihood
 * (the "UPR" method: Sachan et al. 2022, "Improving Passage Retrieval with
 * Zero-Shot Question Generation"): a passage's score is the mean
 * log-probability of the query's tokens given a prompt made from the passage.
 *
 * Token layout of one candidate (one sequence of the context):
 *
 *     prompt ids  = encode(pre + passage' + post, add BOS)   P tokens
 *     query ids   = the tokens " <query>" adds after post    Q tokens
 *     fed tokens  = prompt ids, query ids[0 .. Q-2]          P + Q - 1 tokens
 *     logits of rows P-1 .. P+Q-2 predict query ids 0 .. Q-1
 *
 * where pre/post are the template's text around "{passage}" and passage' the
 * passage cut to its token budget. The query ids are the same for every
 * passage (they are the difference between encoding post + " " + query and
 * encoding post), so scores of different passages are comparable.
 *
 * Candidates are evaluated n_seq at a time: each on its own sequence of one
 * context, all their tokens in one qai_decode. A token attends only to its own
 * sequence's cache and every output element of the forward pass is computed
 * the same way whatever else the batch holds, so a score does not depend on
 * which other passages shared its pass, on n_seq, or on the thread count.
 *
 * What it deliberately does not do: cross-encoder (BERT "rank" pooling)
 * rerankers — the encoder forward pass has no token types and refuses
 * pooling_type 4; generation-based or listwise reranking. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qai/collection.h"
#include "qai/model.h"
#include "qai/tokenizer.h"

#define RERANK_SLACK 8 /* tokens for re-tokenization differences at the passage's edges */
#define RERANK_LOGIT_BYTES ((size_t)64 << 20) /* most logits memory one forward pass may ask for */

struct qai_reranker {
    qai_model *m;
    bool owns_model;
    qai_context *ctx;
    const qai_tokenizer *tok;
    char *pre, *post;         /* template text before and after "{passage}" */
    int n_template;           /* tokens of pre + post (BOS included) */
    int max_p, max_q, n_ctx, n_seq;
    bool truncate;
    int n_vocab;
};

void qai_rerank_params_default(qai_rerank_params *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "Passage: {passage}\nQuestion:";
    p->max_passage_tokens = 256;
    p->max_query_tokens = 64;
    p->truncate = true;
    p->n_seq = 8;
}

void qai_rerank_free(qai_reranker *r) {
    if (!r) return;
    if (r->ctx) qai_context_free(r->ctx);
    if (r->owns_model && r->m) qai_model_close(r->m);
    qai_free(r->pre);
    qai_free(r->post);
    qai_free(r);
}

void qai_rerank_limits(const qai_reranker *r, int *max_passage_tokens, int *max_query_tokens, int *n_ctx) {
    if (max_passage_tokens) *max_passage_tokens = r->max_p;
    if (max_query_tokens) *max_query_tokens = r->max_q;
    if (n_ctx) *n_ctx = r->n_ctx;
}

static qai_status encode(const qai_reranker *r, const char *text, size_t len, bool bos, int32_t **ids, size_t *n) {
    return qai_tokenizer_encode(r->tok, text, len, bos ? QAI_TOK_ADD_SPECIAL : 0, ids, n);
}

/* Drops an end-of-sequence token the vocabulary appends with ADD_SPECIAL
 * (add_eos): the query must follow the prompt directly. */
static void drop_trailing_eos(const qai_reranker *r, int32_t *ids, size_t *n) {
    int32_t eos = qai_tokenizer_eos(r->tok);
    if (*n > 1 && eos >= 0 && ids[*n - 1] == eos) (*n)--;
}

qai_status qai_rerank_new_from_model(qai_model *m, const qai_rerank_params *pp, qai_reranker **out) {
    *out = NULL;
    qai_rerank_params p;
    if (pp) p = *pp;
    else qai_rerank_params_default(&p);
    if (!m) return qai_error(QAI_ERR_ARG, "rerank: no model");
    const qai_model_info *hp = qai_model_get_info(m);
    if (hp->is_encoder)
        return qai_error(QAI_ERR_UNSUPPORTED,
                         "rerank: the model is an encoder ('%s'): query-likelihood reranking needs a decoder (llama, qwen2); "
                         "cross-encoder rerankers are not supported yet",
                         hp->arch);
    const char *tmpl = p.prompt ? p.prompt : "Passage: {passage}\nQuestion:";
    const char *mark = strstr(tmpl, "{passage}");
    if (!mark) return qai_error(QAI_ERR_ARG, "rerank: the prompt template '%.100s' has no {passage}", tmpl);
    if (strstr(mark + 9, "{passage}")) return qai_error(QAI_ERR_ARG, "rerank: the prompt template has {passage} twice");
    if (p.max_passage_tokens < 1 || p.max_passage_tokens > 1 << 20)
        return qai_error(QAI_ERR_ARG, "rerank: max_passage_tokens %d is not in [1, 1048576]", p.max_passage_tokens);
    if (p.max_query_tokens < 1 || p.max_query_tokens > 1 << 16)
        return qai_error(QAI_ERR_ARG, "rerank: max_query_tokens %d is not in [1, 65536]", p.max_query_tokens);
    if (p.n_seq < 1 || p.n_seq > 256) return qai_error(QAI_ERR_ARG, "rerank: n_seq %d is not in [1, 256]", p.n_seq);
    if (p.n_ctx < 0) return qai_error(QAI_ERR_ARG, "rerank: n_ctx %d is negative", p.n_ctx);

    qai_reranker *r = qai_calloc(1, sizeof *r);
    if (!r) return QAI_ERR_NOMEM;
    r->m = m;
    r->tok = qai_model_tokenizer(m);
    r->n_vocab = hp->n_vocab;
    r->truncate = p.truncate;
    r->max_q = p.max_query_tokens;
    r->n_seq = p.n_seq;
    r->pre = qai_malloc((size_t)(mark - tmpl) + 1);
    r->post = qai_strdup(mark + 9);
    qai_status st = QAI_OK;
    if (!r->pre || !r->post) {
        st = QAI_ERR_NOMEM;
        goto fail;
    }
    memcpy(r->pre, tmpl, (size_t)(mark - tmpl));
    r->pre[mark - tmpl] = 0;
    {
        /* the template's own tokens, passage empty */
        size_t lt = strlen(r->pre) + strlen(r->post);
        char *t = qai_malloc(lt + 1);
        if (!t) {
            st = QAI_ERR_NOMEM;
            goto fail;
        }
        snprintf(t, lt + 1, "%s%s", r->pre, r->post);
        int32_t *ids = NULL;
        size_t n = 0;
        st = encode(r, t, lt, true, &ids, &n);
        qai_free(t);
        qai_free(ids);
        if (st) goto fail;
        r->n_template = (int)n;
    }
    int fixed = r->n_template + r->max_q + RERANK_SLACK;
    int limit = hp->n_ctx_train > 0 ? hp->n_ctx_train : 4096;
    if (p.n_ctx > 0) {
        if (p.n_ctx > limit) {
            st = qai_error(QAI_ERR_ARG, "rerank: n_ctx %d is more than the model's context %d", p.n_ctx, limit);
            goto fail;
        }
        limit = p.n_ctx;
    }
    r->max_p = p.max_passage_tokens;
    if (fixed + r->max_p > limit) r->max_p = limit - fixed;
    if (r->max_p < 1) {
        st = qai_error(QAI_ERR_ARG,
                       "rerank: the context of %d tokens cannot hold the template (%d tokens), a query of %d tokens "
                       "and any passage; lower max_query_tokens or raise n_ctx",
                       limit, r->n_template, r->max_q);
        goto fail;
    }
    r->n_ctx = p.n_ctx > 0 ? p.n_ctx : fixed + r->max_p;
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = r->n_ctx;
    cp.n_seq = r->n_seq;
    cp.n_threads = p.n_threads;
    cp.n_batch = 512;
    if ((st = qai_context_new(m, &cp, &r->ctx))) {
        qai_error_wrap(st, "rerank: context of %d sequences x %d positions", r->n_seq, r->n_ctx);
        goto fail;
    }
    *out = r;
    return QAI_OK;
fail:
    r->owns_model = false; /* the caller's model stays open */
    qai_rerank_free(r);
    return st;
}

qai_status qai_rerank_new(const char *model_path, const qai_rerank_params *p, qai_reranker **out) {
    *out = NULL;
    if (!model_path || !*model_path) return qai_error(QAI_ERR_ARG, "rerank: no model file given");
    qai_model *m;
    qai_status st = qai_model_open(model_path, &m);
    if (st) return qai_error_wrap(st, "rerank: cannot open model '%s'", model_path);
    if ((st = qai_rerank_new_from_model(m, p, out))) {
        qai_model_close(m);
        return qai_error_wrap(st, "rerank: model '%s'", model_path);
    }
    (*out)->owns_model = true;
    return QAI_OK;
}

/* The query's ids as they follow the template: encode(post + " " + query)
 * minus encode(post) when the latter is a prefix of the former (it is for
 * every tokenizer that splits words at spaces); otherwise " " + query alone. */
static qai_status query_ids(const qai_reranker *r, const char *query, int32_t **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    size_t lp = strlen(r->post), lq = strlen(query);
    char *t = qai_malloc(lp + lq + 2);
    if (!t) return QAI_ERR_NOMEM;
    memcpy(t, r->post, lp);
    t[lp] = ' ';
    memcpy(t + lp + 1, query, lq + 1);
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    qai_status st = encode(r, t, lp + lq + 1, false, &a, &na);
    if (!st && lp) st = encode(r, t, lp, false, &b, &nb);
    if (!st && lp && nb < na && !memcmp(a, b, nb * sizeof *a)) {
        memmove(a, a + nb, (na - nb) * sizeof *a);
        na -= nb;
    } else if (!st && lp) { /* a merge across the boundary: the query alone */
        qai_free(a);
        a = NULL;
        st = encode(r, t + lp, lq + 1, false, &a, &na);
    }
    qai_free(b);
    qai_free(t);
    if (st) {
        qai_free(a);
        return st;
    }
    *out = a;
    *n_out = na;
    return QAI_OK;
}

/* The prompt ids of one passage: pre + passage (cut to the budget) + post,
 * with BOS. */
static qai_status prompt_ids(const qai_reranker *r, int idx, const char *passage, int32_t **out, size_t *n_out) {
    *out = NULL;
    size_t len = strlen(passage);
    int32_t *pid = NULL;
    size_t np = 0;
    qai_status st = encode(r, passage, len, false, &pid, &np);
    if (st) return st;
    char *cut = NULL;
    size_t cut_len = len;
    int budget = r->max_p;
    for (int attempt = 0;; attempt++) {
        qai_free(cut);
        cut = NULL;
        cut_len = len;
        if ((int)np > budget) {
            if (!r->truncate) {
                qai_free(pid);
                return qai_error(QAI_ERR_RANGE, "rerank: passage %d has %zu tokens, more than its budget of %d (truncation is off)",
                                 idx, np, r->max_p);
            }
            size_t dl;
            if ((st = qai_tokenizer_decode(r->tok, pid, (size_t)budget, 0, &cut, &dl))) break;
            /* keep the passage's own bytes when the decoded text is a prefix of it
             * (the decoder may add the dummy-prefix space) */
            const char *c = cut;
            if (dl && c[0] == ' ' && (dl > len || memcmp(c, passage, dl)) && dl - 1 <= len && !memcmp(c + 1, passage, dl - 1))
                c++, dl--;
            if (dl <= len && !memcmp(c, passage, dl)) {
                qai_free(cut);
                cut = NULL;
                cut_len = dl;
            } else {
                memmove(cut, c, dl + 1);
                cut_len = dl;
            }
        }
        const char *body = cut ? cut : passage;
        size_t lpre = strlen(r->pre), lpost = strlen(r->post), lt = lpre + cut_len + lpost;
        char *t = qai_malloc(lt + 1);
        if (!t) {
            st = QAI_ERR_NOMEM;
            break;
        }
        memcpy(t, r->pre, lpre);
        memcpy(t + lpre, body, cut_len);
        memcpy(t + lpre + cut_len, r->post, lpost);
        t[lt] = 0;
        qai_free(*out);
        *out = NULL;
        st = encode(r, t, lt, true, out, n_out);
        qai_free(t);
        if (st) break;
        drop_trailing_eos(r, *out, n_out);
        int room = r->n_ctx - r->max_q; /* the query's budget stays free */
        if ((int)*n_out <= room) break;
        /* re-tokenizing the cut text came out longer than planned: cut more */
        int over = (int)*n_out - room;
        if (!r->truncate || attempt >= 8 || budget - over < 1) {
            st = qai_error(QAI_ERR_RANGE, "rerank: passage %d needs %zu prompt tokens; the context holds %d with the query's %d",
                           idx, *n_out, r->n_ctx, r->max_q);
            break;
        }
        budget -= over;
        if ((int)np <= budget) budget = (int)np - over; /* the passage itself is what is long */
        if (budget < 1) budget = 1;
    }
    qai_free(cut);
    qai_free(pid);
    if (st) {
        qai_free(*out);
        *out = NULL;
    }
    return st;
}

/* Mean log-softmax probability of the query tokens; logits rows row0.. of the last decode. */
static qai_status score_rows(const qai_reranker *r, int row0, const int32_t *q, int nq, float *score) {
    double sum = 0;
    const int V = r->n_vocab;
    for (int t = 0; t < nq; t++) {
        const float *l = qai_context_logits(r->ctx, row0 + t);
        if (!l) return qai_error(QAI_ERR_INTERNAL, "rerank: logits of batch row %d are missing", row0 + t);
        float mx = -FLT_MAX;
        for (int v = 0; v < V; v++)
            if (l[v] > mx) mx = l[v];
        double z = 0;
        for (int v = 0; v < V; v++) z += exp((double)l[v] - mx);
        sum += (double)l[q[t]] - mx - log(z);
    }
    *score = (float)(sum / nq);
    return QAI_OK;
}

qai_status qai_rerank_score(qai_reranker *r, const char *query, const char *const *passages, int n, float *scores) {
    if (!r) return qai_error(QAI_ERR_ARG, "rerank: no reranker");
    if (n < 0) return qai_error(QAI_ERR_ARG, "rerank: %d passages", n);
    if (n > 0 && (!passages || !scores)) return qai_error(QAI_ERR_ARG, "rerank: no passages or no score array");
    if (!query || !query[strspn(query, " \t\r\n")]) return qai_error(QAI_ERR_ARG, "rerank: the query is empty");
    for (int i = 0; i < n; i++)
        if (!passages[i]) return qai_error(QAI_ERR_ARG, "rerank: passage %d is NULL", i);
    if (n == 0) return QAI_OK;
    int32_t *q = NULL;
    size_t nq = 0;
    qai_status st = query_ids(r, query, &q, &nq);
    if (st) return qai_error_wrap(st, "rerank: the query");
    if (nq == 0) {
        qai_free(q);
        return qai_error(QAI_ERR_ARG, "rerank: the query has no tokens");
    }
    if ((int)nq > r->max_q) {
        qai_free(q);
        return qai_error(QAI_ERR_RANGE, "rerank: the query has %zu tokens, more than the reranker's max_query_tokens %d", nq,
                         r->max_q);
    }
    /* passages per pass: n_seq, fewer when their logits would pass the memory cap */
    size_t row_bytes = (size_t)r->n_vocab * sizeof(float) * nq;
    int group = r->n_seq;
    if ((size_t)group * row_bytes > RERANK_LOGIT_BYTES) group = (int)(RERANK_LOGIT_BYTES / row_bytes);
    if (group < 1) group = 1;

    int32_t **ids = qai_calloc((size_t)group, sizeof *ids);
    size_t *nids = qai_calloc((size_t)group, sizeof *nids);
    size_t cap = (size_t)group * (size_t)r->n_ctx;
    int32_t *tok = qai_malloc(cap * sizeof *tok), *pos = qai_malloc(cap * sizeof *pos), *seq = qai_malloc(cap * sizeof *seq);
    int8_t *want = qai_malloc(cap);
    if (!ids || !nids || !tok || !pos || !seq || !want) st = QAI_ERR_NOMEM;
    for (int i0 = 0; i0 < n && !st; i0 += group) {
        int g = n - i0 < group ? n - i0 : group;
        for (int j = 0; j < g && !st; j++) {
            qai_free(ids[j]);
            ids[j] = NULL;
            st = prompt_ids(r, i0 + j, passages[i0 + j], &ids[j], &nids[j]);
        }
        if (st) break;
        /* one batch: each passage's prompt and all but the last query token on its own sequence */
        int nb = 0;
        for (int j = 0; j < g; j++) {
            qai_kv_truncate(r->ctx, j, 0);
            int np = (int)nids[j];
            for (int t = 0; t < np + (int)nq - 1; t++) {
                tok[nb] = t < np ? ids[j][t] : q[t - np];
                pos[nb] = t;
                seq[nb] = j;
                want[nb] = t >= np - 1;
                nb++;
            }
        }
        qai_batch b = {.n = nb, .token = tok, .pos = pos, .seq = seq, .want_logits = want};
        if ((st = qai_decode(r->ctx, &b))) {
            qai_error_wrap(st, "rerank: passages %d-%d", i0, i0 + g - 1);
            break;
        }
        /* qai_context_logits is indexed by batch row: passage j's rows start at its last prompt token */
        for (int j = 0, bi = 0; j < g && !st; j++) {
            int np = (int)nids[j];
            st = score_rows(r, bi + np - 1, q, (int)nq, &scores[i0 + j]);
            bi += np + (int)nq - 1;
        }
    }
    for (int j = 0; j < group && ids; j++) {
        qai_free(ids[j]);
        qai_kv_truncate(r->ctx, j, 0);
    }
    qai_free(ids);
    qai_free(nids);
    qai_free(tok);
    qai_free(pos);
    qai_free(seq);
    qai_free(want);
    qai_free(q);
    return st;
}

typedef struct {
    float score;
    int rank;
} rr_key;

static int cmp_key(const void *a, const void *b) {
    const rr_key *x = a, *y = b;
    float sx = isnan(x->score) ? -INFINITY : x->score, sy = isnan(y->score) ? -INFINITY : y->score;
    if (sx != sy) return sx > sy ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

qai_status qai_rerank_hits(qai_reranker *r, const char *query, qai_collection_hit *hits, int n, int n_rerank) {
    if (n < 0 || (n > 0 && !hits)) return qai_error(QAI_ERR_ARG, "rerank: no hits");
    int nr = n_rerank <= 0 || n_rerank > n ? n : n_rerank;
    if (nr == 0) return query && query[strspn(query, " \t\r\n")] ? QAI_OK : qai_error(QAI_ERR_ARG, "rerank: the query is empty");
    const char **texts = qai_malloc((size_t)nr * sizeof *texts);
    float *sc = qai_malloc((size_t)nr * sizeof *sc);
    rr_key *key = qai_malloc((size_t)nr * sizeof *key);
    qai_collection_hit *tmp = qai_malloc((size_t)nr * sizeof *tmp);
    qai_status st = QAI_OK;
    if (!texts || !sc || !key || !tmp) st = QAI_ERR_NOMEM;
    for (int i = 0; i < nr && !st; i++) texts[i] = hits[i].text ? hits[i].text : "";
    if (!st) st = qai_rerank_score(r, query, texts, nr, sc);
    if (!st) {
        for (int i = 0; i < nr; i++) key[i] = (rr_key){sc[i], i};
        qsort(key, (size_t)nr, sizeof *key, cmp_key);
        for (int i = 0; i < nr; i++) {
            tmp[i] = hits[key[i].rank];
            tmp[i].rerank_score = key[i].score;
            tmp[i].rank_retrieval = key[i].rank + 1;
        }
        memcpy(hits, tmp, (size_t)nr * sizeof *tmp);
        for (int i = nr; i < n; i++) hits[i].rank_retrieval = 0, hits[i].rerank_score = 0;
    }
    qai_free(texts);
    qai_free(sc);
    qai_free(key);
    qai_free(tmp);
    return st;
}

qai_status qai_collection_search_rerank(qai_collection *c, const char *query, const qai_search_params *p,
                                        qai_reranker *r, int n_rerank, qai_collection_hit **hits, int *n) {
    *hits = NULL;
    *n = 0;
    qai_search_params sp;
    if (p) sp = *p;
    else qai_search_params_default(&sp);
    if (!r) return qai_collection_search(c, query, &sp, hits, n);
    if (n_rerank < 1) return qai_error(QAI_ERR_ARG, "rerank: %d candidates to rerank; at least 1", n_rerank);
    int k = sp.k > 0 ? sp.k : 8;
    if (n_rerank > sp.k) sp.k = n_rerank;
    qai_collection_hit *h = NULL;
    int nh = 0;
    qai_status st = qai_collection_search(c, query, &sp, &h, &nh);
    if (st) return st;
    if ((st = qai_rerank_hits(r, query, h, nh, n_rerank))) {
        qai_collection_hits_free(h, nh);
        return st;
    }
    if (nh > k) { /* free the tail the caller did not ask for */
        qai_collection_hit *tail = qai_malloc((size_t)(nh - k) * sizeof *tail);
        if (!tail) {
            qai_collection_hits_free(h, nh);
            return QAI_ERR_NOMEM;
        }
        memcpy(tail, h + k, (size_t)(nh - k) * sizeof *tail);
        qai_collection_hits_free(tail, nh - k);
        nh = k;
    }
    *hits = h;
    *n = nh;
    return QAI_OK;
}
