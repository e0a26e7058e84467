/* Supervised pairs grouped by document ({"query", "positive", "doc"}, the
 * pairs retrieval_eval.sh makes from man-page descriptions): the pairs of one
 * document are one unit (one split, one draw per batch, never two in a batch),
 * every positive of a document is drawn in time, a positive shared by two
 * documents is dropped as boilerplate, a document with both pairs and chunks
 * is refused, and sampling is deterministic given the seed. Token sequences
 * are compared with the tokenizer's own encoding of the expected texts. */
#include <string.h>

#include "contrastive_check.h"
#include "test.h"

enum { N_DOCS = 12, N_POS = 3 };

static qai_tokenizer *tok;
static int32_t *qtok[N_DOCS], *ptok[N_DOCS][N_POS];
static size_t qn[N_DOCS], pn[N_DOCS][N_POS];

static void q_text(char *buf, size_t n, int d) { snprintf(buf, n, "what does tool %c%c do", 'a' + d, 'a' + d); }
static void p_text(char *buf, size_t n, int d, int k) {
    snprintf(buf, n, "SECTION %d: Tool %c%c part %d text", k, 'a' + d, 'a' + d, k);
}

/* The JSONL: documents in shuffled line order (grouping must not depend on
 * adjacency), plus one doc-less pair and one positive shared by docs 0 and 1. */
static char *make_jsonl(void) {
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int k = 0; k < N_POS; k++)
        for (int i = 0; i < N_DOCS; i++) {
            int d = (i * 5 + k) % N_DOCS;
            char q[64], p[96];
            q_text(q, sizeof q, d);
            p_text(p, sizeof p, d, k);
            len += (size_t)snprintf(s + len, cap - len, "{\"doc\":\"/man/page%02d.1.gz\",\"query\":\"%s\",\"positive\":\"%s\"}\n",
                                    d, q, p);
        }
    len += (size_t)snprintf(s + len, cap - len, "{\"doc\":\"/man/page00.1.gz\",\"query\":\"what does tool aa do\","
                                                "\"positive\":\"GLOBAL FLAGS shared\"}\n"
                                                "{\"doc\":\"/man/page01.1.gz\",\"query\":\"what does tool bb do\","
                                                "\"positive\":\"GLOBAL FLAGS shared\"}\n"
                                                "{\"query\":\"a lone pair\",\"positive\":\"its lone positive\"}\n");
    return s;
}

static bool same(const int32_t *a, int na, const int32_t *b, size_t nb) {
    return (size_t)na == nb && !memcmp(a, b, nb * sizeof *a);
}

static void test_errors(void) {
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"{\"doc\":\"a\",\"query\":\"q\",\"positive\":\"p\"}\n{\"doc\":\"a\",\"text\":\"t\"}\n", "both pairs and chunks"},
        {"{\"doc\":\"a\",\"query\":\"q\"}\n", "needs both query and positive"},
        {"{\"doc\":\"a\",\"query\":\"q\",\"positive\":\"p\",\"section\":\"S\"}\n", "not both"},
        {"{\"doc\":7,\"query\":\"q\",\"positive\":\"p\"}\n", "must be strings"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qai_pairs *p = NULL;
        qai_status st = qai_pairs_parse(bad[i].text, strlen(bad[i].text), "g.jsonl", 0, &p);
        CHECK(st != QAI_OK && p == NULL);
        if (!strstr(qai_last_error(), bad[i].msg)) fprintf(stderr, "  case %zu: '%s'\n", i, qai_last_error());
        CHECK(strstr(qai_last_error(), bad[i].msg) != NULL && strstr(qai_last_error(), "g.jsonl") != NULL);
    }
}

int main(void) {
    char tmp[512], path[600];
    const char *base = getenv("QAI_TMP");
    snprintf(tmp, sizeof tmp, "%s/test_pairs_grouped", base ? base : "/tmp");
    CHECK_OK(qai_mkdirs(tmp));
    snprintf(path, sizeof path, "%s/tok.gguf", tmp);
    qai_gguf *g;
    byte_tokenizer(path, 300, &g, &tok);
    if (!tok) return test_summary();
    for (int d = 0; d < N_DOCS; d++) {
        char q[64], p[96];
        q_text(q, sizeof q, d);
        CHECK_OK(qai_tokenizer_encode(tok, q, strlen(q), QAI_TOK_ADD_SPECIAL, &qtok[d], &qn[d]));
        for (int k = 0; k < N_POS; k++) {
            p_text(p, sizeof p, d, k);
            CHECK_OK(qai_tokenizer_encode(tok, p, strlen(p), QAI_TOK_ADD_SPECIAL, &ptok[d][k], &pn[d][k]));
        }
    }
    char *jsonl = make_jsonl();
    CHECK(jsonl != NULL);
    test_errors();

    /* units: 12 documents + the lone pair; the shared positive is gone */
    qai_pairs *P = NULL;
    CHECK_OK(qai_pairs_parse(jsonl, strlen(jsonl), "g.jsonl", 0, &P));
    if (!P) return test_summary();
    CHECK_EQ_INT(qai_pairs_n_units(P, 0), N_DOCS + 1);
    CHECK_EQ_INT(qai_pairs_n_units(P, 1), 0);
    /* the split is by document: with a validation share, the units still sum to 13 */
    qai_pairs *P2 = NULL;
    CHECK_OK(qai_pairs_parse(jsonl, strlen(jsonl), "g.jsonl", 0.5, &P2));
    if (P2) {
        CHECK_EQ_INT(qai_pairs_n_units(P2, 0) + qai_pairs_n_units(P2, 1), N_DOCS + 1);
        CHECK(qai_pairs_n_units(P2, 1) >= 1 && qai_pairs_n_units(P2, 0) >= 1);
        qai_pairs_free(P2);
    }

    /* batches of all 13 units: every document exactly once, its query with one of its own positives */
    int drawn[N_DOCS][N_POS] = {{0}};
    int lone = 0, bad_rows = 0, dup_docs = 0;
    qai_rng rng;
    qai_rng_seed(&rng, 42);
    const int B = N_DOCS + 1, Tq = 48, Td = 64; /* longer than every text: whole sequences compare */
    for (int it = 0; it < 30; it++) {
        qai_pair_batch pb;
        CHECK_OK(qai_pairs_sample(P, tok, &rng, 0, B, Tq, Td, &pb));
        if (!pb.q) break;
        int seen[N_DOCS] = {0};
        for (int b = 0; b < B; b++) {
            const int32_t *q = pb.q + (size_t)b * Tq, *d = pb.d + (size_t)b * Td;
            int doc = -1;
            for (int x = 0; x < N_DOCS && doc < 0; x++)
                if (same(q, pb.qlen[b], qtok[x], qn[x])) doc = x;
            if (doc < 0) {
                lone++;
                continue;
            }
            seen[doc]++;
            int k = -1;
            for (int y = 0; y < N_POS && k < 0; y++)
                if (same(d, pb.dlen[b], ptok[doc][y], pn[doc][y])) k = y;
            if (k < 0) bad_rows++;
            else drawn[doc][k]++;
        }
        for (int x = 0; x < N_DOCS; x++) dup_docs += seen[x] != 1;
        qai_pair_batch_release(&pb);
    }
    CHECK_EQ_INT(lone, 30);     /* the doc-less pair: once per batch */
    CHECK_EQ_INT(bad_rows, 0);  /* never a positive of another document (nor the shared one) */
    CHECK_EQ_INT(dup_docs, 0);  /* each document once per batch */
    int never = 0;
    for (int x = 0; x < N_DOCS; x++)
        for (int y = 0; y < N_POS; y++) never += drawn[x][y] == 0;
    CHECK_EQ_INT(never, 0); /* 30 draws of 3 positives: each is drawn (P(miss) = (2/3)^30 per positive) */

    /* deterministic: the same seed gives the same batch */
    qai_pair_batch a, b2;
    qai_rng r1, r2;
    qai_rng_seed(&r1, 7), qai_rng_seed(&r2, 7);
    CHECK_OK(qai_pairs_sample(P, tok, &r1, 0, 5, Tq, Td, &a));
    CHECK_OK(qai_pairs_sample(P, tok, &r2, 0, 5, Tq, Td, &b2));
    if (a.q && b2.q) {
        CHECK(!memcmp(a.q, b2.q, sizeof(int32_t) * 5 * Tq) && !memcmp(a.d, b2.d, sizeof(int32_t) * 5 * Td));
        CHECK(!memcmp(a.dlen, b2.dlen, sizeof(int) * 5));
    }
    qai_pair_batch_release(&a);
    qai_pair_batch_release(&b2);
    /* a batch larger than the units is refused with the reason */
    CHECK(qai_pairs_sample(P, tok, &rng, 0, B + 1, Tq, Td, &a) != QAI_OK);
    CHECK(strstr(qai_last_error(), "fewer than a batch") != NULL);

    qai_pairs_free(P);
    free(jsonl);
    for (int d = 0; d < N_DOCS; d++) {
        qai_free(qtok[d]);
        for (int k = 0; k < N_POS; k++) qai_free(ptok[d][k]);
    }
    qai_tokenizer_free(tok);
    qai_gguf_close(g);
    return test_summary();
}
