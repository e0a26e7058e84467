/* The query-likelihood reranker (src/knowledge/rerank.c) on the real
 * stories260K model (a 260K-parameter Llama trained on TinyStories):
 * - a score equals the mean log-softmax probability of the query tokens
 *   computed here from qai_decode logits of the same token sequence, decoded
 *   one token at a time on a context of its own (within 1e-4);
 * - scores do not depend on how many passages share a forward pass (n_seq 1,
 *   3, 8) or on the thread count (1, 2);
 * - a cut passage scores as its first max_passage_tokens tokens written out;
 * - the toy: among story passages, the one the query was taken from ranks
 *   first after reranking, from the last place;
 * - qai_rerank_hits orders by score, ties by the original rank, leaves the
 *   hits past n_rerank in place; qai_collection_search_rerank returns k hits
 *   with both scores;
 * - bad input: a missing model file, an encoder, a template without
 *   {passage}, an empty query, a query over its budget, a passage over its
 *   budget with truncation off, budgets the context cannot hold. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "qai/collection.h"
#include "qai/model.h"
#include "qai/tokenizer.h"
#include "test.h"

static char g_model[600];

static int32_t *enc(const qai_tokenizer *tok, const char *s, bool bos, size_t *n) {
    int32_t *ids = NULL;
    CHECK_OK(qai_tokenizer_encode(tok, s, strlen(s), bos ? QAI_TOK_ADD_SPECIAL : 0, &ids, n));
    return ids;
}

/* The reference: the documented token layout built here, each token decoded
 * alone (qai_decode_tokens, one at a time), log-softmax in double. */
static double reference_score(qai_model *m, const char *passage, const char *query) {
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    char buf[4096];
    snprintf(buf, sizeof buf, "Passage: %s\nQuestion:", passage);
    size_t np, na, nb;
    int32_t *p = enc(tok, buf, true, &np);
    snprintf(buf, sizeof buf, "\nQuestion: %s", query);
    int32_t *a = enc(tok, buf, false, &na);
    int32_t *b = enc(tok, "\nQuestion:", false, &nb);
    CHECK(nb < na && !memcmp(a, b, nb * sizeof *a));
    const int32_t *q = a + nb;
    int nq = (int)(na - nb);
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = (int)(np + (size_t)nq + 4);
    cp.n_threads = 1;
    qai_context *ctx;
    CHECK_OK(qai_context_new(m, &cp, &ctx));
    double sum = 0;
    int V = qai_model_get_info(m)->n_vocab;
    for (int t = 0; t < (int)np + nq - 1; t++) {
        int32_t id = t < (int)np ? p[t] : q[t - (int)np];
        CHECK_OK(qai_decode_tokens(ctx, 0, t, &id, 1));
        if (t < (int)np - 1) continue;
        const float *l = qai_context_logits(ctx, 0);
        double mx = l[0], z = 0;
        for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < V; v++) z += exp(l[v] - mx);
        sum += l[q[t - (int)np + 1]] - mx - log(z);
    }
    qai_context_free(ctx);
    qai_free(p);
    qai_free(a);
    qai_free(b);
    return sum / nq;
}

static const char *STORIES[] = {
    "Tom had a big red ball. He liked to kick the ball in the park with his dog Max. One day the ball went into the "
    "pond and Max jumped in to get it.",
    "Lily wanted to bake a cake for her mom. She got eggs, milk and sugar. Her mom smiled and said the cake was yummy.",
    "The sun was hot. Sam and Sue went to the beach. They built a sand castle and swam in the blue sea.",
    "Once upon a time there was a little bird who could not fly. The bird was sad. A kind girl helped the bird and it "
    "flew up to the sky.",
    "Ben saw a big truck. The truck was loud and yellow. Ben waved at the man in the truck and the man waved back.",
};

static void test_reference(qai_model *m) {
    qai_rerank_params rp;
    qai_rerank_params_default(&rp);
    rp.n_threads = 1;
    qai_reranker *r;
    CHECK_OK(qai_rerank_new_from_model(m, &rp, &r));
    const char *query = "Lily wanted to bake a cake for her mom.";
    float sc[5];
    CHECK_OK(qai_rerank_score(r, query, STORIES, 5, sc));
    double maxd = 0;
    for (int i = 0; i < 5; i++) {
        double ref = reference_score(m, STORIES[i], query);
        double d = fabs(ref - sc[i]);
        if (d > maxd) maxd = d;
        CHECK_MSG(d < 1e-4, "passage %d: score %.6f, reference %.6f", i, (double)sc[i], ref);
        CHECK(sc[i] < 0);
    }
    printf("# reference: largest difference %.3g\n", maxd);
    qai_rerank_free(r);
}

static void test_invariance(qai_model *m) {
    /* 11 passages: the 5 stories and cut/joined variants */
    const char *ps[11];
    char extra[6][600];
    for (int i = 0; i < 5; i++) ps[i] = STORIES[i];
    for (int i = 0; i < 6; i++) {
        snprintf(extra[i], sizeof extra[i], "%s %s", STORIES[i % 5], STORIES[(i + 2) % 5] + i * 3);
        ps[5 + i] = extra[i];
    }
    const char *query = "The bird was sad.";
    float base[11];
    int seqs[] = {1, 3, 8}, threads[] = {1, 2};
    bool have = false;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++) {
            qai_rerank_params rp;
            qai_rerank_params_default(&rp);
            rp.n_seq = seqs[a];
            rp.n_threads = threads[b];
            qai_reranker *r;
            CHECK_OK(qai_rerank_new_from_model(m, &rp, &r));
            float sc[11];
            CHECK_OK(qai_rerank_score(r, query, ps, 11, sc));
            /* a second call on the same reranker (cache reuse) gives the same */
            float sc2[11];
            CHECK_OK(qai_rerank_score(r, query, ps, 11, sc2));
            CHECK(!memcmp(sc, sc2, sizeof sc));
            if (!have) memcpy(base, sc, sizeof sc), have = true;
            else {
                int bad = 0;
                for (int i = 0; i < 11; i++) bad += sc[i] != base[i];
                CHECK_MSG(bad == 0, "n_seq %d, %d threads: %d scores differ from n_seq 1 (first: %.9g vs %.9g)", seqs[a],
                          threads[b], bad, (double)sc[0], (double)base[0]);
            }
            qai_rerank_free(r);
        }
}

static void test_truncation(qai_model *m) {
    qai_rerank_params rp;
    qai_rerank_params_default(&rp);
    rp.max_passage_tokens = 24;
    rp.n_threads = 1;
    qai_reranker *r;
    CHECK_OK(qai_rerank_new_from_model(m, &rp, &r));
    int mp, mq, nctx;
    qai_rerank_limits(r, &mp, &mq, &nctx);
    CHECK_EQ_INT(mp, 24);
    CHECK_EQ_INT(mq, 64);
    /* the first 24 tokens of the passage, written out */
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    size_t n;
    int32_t *ids = enc(tok, STORIES[0], false, &n);
    CHECK(n > 24);
    char *cut = NULL;
    size_t cl;
    CHECK_OK(qai_tokenizer_decode(tok, ids, 24, QAI_DETOK_STRIP_SPACE, &cut, &cl));
    CHECK(!strncmp(cut, STORIES[0], cl)); /* a prefix of the passage */
    const char *two[] = {STORIES[0], cut};
    float sc[2];
    CHECK_OK(qai_rerank_score(r, "Tom kicked the ball.", two, 2, sc));
    CHECK_MSG(sc[0] == sc[1], "cut passage %.7f, its first 24 tokens %.7f", (double)sc[0], (double)sc[1]);
    qai_free(cut);
    qai_free(ids);
    qai_rerank_free(r);

    /* truncation off: a clear error naming the passage */
    rp.truncate = false;
    CHECK_OK(qai_rerank_new_from_model(m, &rp, &r));
    const char *ok_then_long[] = {"Tom ran.", STORIES[0]};
    CHECK(qai_rerank_score(r, "Tom kicked the ball.", ok_then_long, 2, sc) == QAI_ERR_RANGE);
    CHECK_MSG(strstr(qai_last_error(), "passage 1 has") && strstr(qai_last_error(), "budget of 24"), "message: %s",
              qai_last_error());
    qai_rerank_free(r);
}

static void test_toy_ranking(qai_model *m) {
    /* hits in retrieval order with the right passage last; the query is a
     * sentence of that passage */
    struct {
        const char *query;
        int right;
    } cases[] = {
        {"Her mom smiled and said the cake was yummy.", 1},
        {"They built a sand castle and swam in the blue sea.", 2},
        {"Ben waved at the man in the truck.", 4},
        {"Max jumped in to get the ball.", 0},
    };
    qai_reranker *r;
    CHECK_OK(qai_rerank_new_from_model(m, NULL, &r));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qai_collection_hit h[5];
        memset(h, 0, sizeof h);
        int k = 0;
        for (int i = 0; i < 5; i++)
            if (i != cases[c].right) h[k].text = (char *)STORIES[i], h[k].chunk_id = (uint64_t)i, h[k].score = 10.0f - (float)k, k++;
        h[4].text = (char *)STORIES[cases[c].right];
        h[4].chunk_id = (uint64_t)cases[c].right;
        h[4].score = 1;
        CHECK_OK(qai_rerank_hits(r, cases[c].query, h, 5, 0));
        CHECK_MSG(h[0].chunk_id == (uint64_t)cases[c].right, "'%s': first is passage %llu (score %.3f), not %d",
                  cases[c].query, (unsigned long long)h[0].chunk_id, (double)h[0].rerank_score, cases[c].right);
        CHECK_EQ_INT(h[0].rank_retrieval, 5);
        CHECK(h[0].score == 1.0f); /* the retrieval score is kept */
        for (int i = 1; i < 5; i++) CHECK(h[i - 1].rerank_score >= h[i].rerank_score);
    }
    qai_rerank_free(r);
}

static void test_hits_ties(qai_model *m) {
    qai_reranker *r;
    CHECK_OK(qai_rerank_new_from_model(m, NULL, &r));
    /* identical texts tie: their original order stays; past n_rerank untouched */
    qai_collection_hit h[6];
    memset(h, 0, sizeof h);
    const char *txt[6] = {STORIES[3], STORIES[2], STORIES[2], STORIES[2], STORIES[3], STORIES[1]};
    for (int i = 0; i < 6; i++) h[i].text = (char *)txt[i], h[i].chunk_id = (uint64_t)(100 + i);
    CHECK_OK(qai_rerank_hits(r, "Sam and Sue went to the beach.", h, 6, 5));
    /* the three copies of story 2 first, in their order, then the two of story 3 */
    uint64_t want[6] = {101, 102, 103, 100, 104, 105};
    for (int i = 0; i < 6; i++)
        CHECK_MSG(h[i].chunk_id == want[i], "position %d: chunk %llu, expected %llu", i, (unsigned long long)h[i].chunk_id,
                  (unsigned long long)want[i]);
    CHECK(h[0].rerank_score == h[1].rerank_score && h[1].rerank_score == h[2].rerank_score);
    CHECK(h[0].rerank_score > h[3].rerank_score);
    CHECK_EQ_INT(h[0].rank_retrieval, 2);
    CHECK_EQ_INT(h[3].rank_retrieval, 1);
    CHECK_EQ_INT(h[5].rank_retrieval, 0); /* not reranked */
    qai_rerank_free(r);
}

static void test_errors(qai_model *m) {
    qai_reranker *r = (qai_reranker *)1;
    char path[800];
    snprintf(path, sizeof path, "%s/no-such-model.gguf", TEST_TMP());
    CHECK(qai_rerank_new(path, NULL, &r) != QAI_OK);
    CHECK(r == NULL);
    CHECK_MSG(strstr(qai_last_error(), "no-such-model.gguf") != NULL, "message: %s", qai_last_error());
    CHECK(qai_rerank_new("", NULL, &r) == QAI_ERR_ARG);

    qai_rerank_params rp;
    qai_rerank_params_default(&rp);
    rp.prompt = "Passage: {text}\nQuestion:";
    CHECK(qai_rerank_new_from_model(m, &rp, &r) == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "{passage}") != NULL);
    qai_rerank_params_default(&rp);
    rp.n_ctx = 40;
    rp.max_query_tokens = 64; /* the query's budget alone is over the context */
    CHECK(qai_rerank_new_from_model(m, &rp, &r) == QAI_ERR_ARG);
    CHECK_MSG(strstr(qai_last_error(), "cannot hold") != NULL, "message: %s", qai_last_error());
    rp.n_ctx = 1 << 20;
    CHECK(qai_rerank_new_from_model(m, &rp, &r) == QAI_ERR_ARG);

    qai_rerank_params_default(&rp);
    rp.max_query_tokens = 8;
    CHECK_OK(qai_rerank_new_from_model(m, &rp, &r));
    float sc[2] = {0, 0};
    const char *ps[] = {STORIES[0], STORIES[1]};
    CHECK(qai_rerank_score(r, "", ps, 2, sc) == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "query is empty") != NULL);
    CHECK(qai_rerank_score(r, " \n\t", ps, 2, sc) == QAI_ERR_ARG);
    CHECK(qai_rerank_score(r, NULL, ps, 2, sc) == QAI_ERR_ARG);
    CHECK(qai_rerank_score(r, "Tom had a big red ball and a small blue ball and a dog", ps, 2, sc) == QAI_ERR_RANGE);
    CHECK_MSG(strstr(qai_last_error(), "max_query_tokens 8") != NULL, "message: %s", qai_last_error());
    const char *withnull[] = {STORIES[0], NULL};
    CHECK(qai_rerank_score(r, "Tom", withnull, 2, sc) == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "passage 1") != NULL);
    CHECK_OK(qai_rerank_score(r, "Tom", ps, 0, sc)); /* nothing to do */
    const char *empty[] = {""};
    CHECK_OK(qai_rerank_score(r, "Tom", empty, 1, sc)); /* an empty passage is scored */
    CHECK(sc[0] < 0 && isfinite(sc[0]));
    qai_rerank_free(r);

    /* an encoder is refused with a message that says why */
    char bert[800];
    snprintf(bert, sizeof bert, "%s/rerank-bert.gguf", TEST_TMP());
    qai_init_params ip = {.dim = 32, .layers = 1, .heads = 2, .kv_heads = 2, .ffn = 64, .vocab = 500, .ctx = 64,
                          .seed = 7, .type = QAI_TYPE_F32};
    CHECK_OK(qai_bert_init_random(&ip, NULL, 0, 1, bert));
    CHECK(qai_rerank_new(bert, NULL, &r) == QAI_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(qai_last_error(), "encoder") && strstr(qai_last_error(), "rerank-bert.gguf"), "message: %s",
              qai_last_error());
    remove(bert);
}

/* qai_collection_search_rerank on a collection built here */
static void test_collection(void) {
    char root[700], corpus[800], home[800];
    snprintf(root, sizeof root, "%s/test_rerank.%d", TEST_TMP(), (int)getpid());
    snprintf(corpus, sizeof corpus, "%s/corpus", root);
    snprintf(home, sizeof home, "%s/home", root);
    CHECK_OK(qai_mkdirs(corpus));
    for (int i = 0; i < 5; i++) {
        char p[900];
        snprintf(p, sizeof p, "%s/story%d.txt", corpus, i);
        FILE *f = fopen(p, "wb");
        CHECK(f != NULL);
        if (!f) return;
        fputs(STORIES[i], f);
        fclose(f);
    }
    qai_ingest_opts o;
    qai_ingest_opts_default(&o);
    o.data_dir = home;
    o.n_threads = 1;
    const char *paths[] = {corpus};
    qai_ingest_result res;
    CHECK_OK(qai_collection_ingest("stories", paths, 1, &o, &res));
    qai_ingest_result_release(&res);
    qai_collection *c;
    CHECK_OK(qai_collection_open(home, "stories", 0, &c));
    qai_reranker *r;
    CHECK_OK(qai_rerank_new(g_model, NULL, &r));
    qai_search_params sp;
    qai_search_params_default(&sp);
    sp.k = 2;
    const char *query = "the ball went into the pond";
    qai_collection_hit *plain, *h;
    int np, nh;
    sp.k = 5;
    CHECK_OK(qai_collection_search(c, query, &sp, &plain, &np));
    sp.k = 2;
    CHECK_OK(qai_collection_search_rerank(c, query, &sp, r, 5, &h, &nh));
    CHECK_EQ_INT(nh, 2);
    /* the reranked hits are the plain hits re-scored: same chunk, same
     * retrieval score at its old rank, rerank score = qai_rerank_score */
    for (int i = 0; i < nh; i++) {
        CHECK(h[i].rank_retrieval >= 1 && h[i].rank_retrieval <= np);
        if (h[i].rank_retrieval < 1 || h[i].rank_retrieval > np) continue;
        const qai_collection_hit *p = &plain[h[i].rank_retrieval - 1];
        CHECK(p->chunk_id == h[i].chunk_id && p->score == h[i].score);
        const char *t[] = {p->text};
        float s;
        CHECK_OK(qai_rerank_score(r, query, t, 1, &s));
        CHECK(s == h[i].rerank_score);
    }
    CHECK(nh < 2 || h[0].rerank_score >= h[1].rerank_score);
    qai_collection_hits_free(h, nh);
    /* no reranker: the plain search */
    CHECK_OK(qai_collection_search_rerank(c, query, &sp, NULL, 5, &h, &nh));
    CHECK_EQ_INT(nh, 2);
    CHECK(nh < 1 || (h[0].chunk_id == plain[0].chunk_id && h[0].rank_retrieval == 0));
    qai_collection_hits_free(h, nh);
    CHECK(qai_collection_search_rerank(c, query, &sp, r, 0, &h, &nh) == QAI_ERR_ARG);
    CHECK(qai_collection_search_rerank(c, "", &sp, r, 5, &h, &nh) != QAI_OK);
    qai_collection_hits_free(plain, np);
    qai_rerank_free(r);
    qai_collection_close(c);
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

int main(void) {
    qai_log_set_level(QAI_LOG_ERROR);
    snprintf(g_model, sizeof g_model, "%s/models/stories260K-gguf/stories260K.gguf", TEST_DATA());
    qai_model *m;
    CHECK_OK(qai_model_open(g_model, &m));
    if (!m) return test_summary();
    test_reference(m);
    test_invariance(m);
    test_truncation(m);
    test_toy_ranking(m);
    test_hits_ties(m);
    test_errors(m);
    qai_model_close(m);
    test_collection();
    return test_summary();
}
