/* Hard negatives in pair corpora ({"query", "positive", "negative"}): the
 * parser takes a string or an array and refuses a negative on a chunk line,
 * an empty or non-string one and one equal to its positive, naming the line;
 * the sampler adds one of a drawn pair's own negatives per pair that has
 * some (compared with the tokenizer's encoding of the texts); and the
 * trainer's contrastive loss with negatives equals qai_infonce_neg over its
 * embeddings, its backward matches central finite differences, and the
 * negatives change the loss. */
#include "contrastive_check.h"
#include "test.h"
#include "train/contrastive.h"

enum { N_DOCS = 10 };

static qai_tokenizer *tok;

/* doc d: its query, positive and 0 (d % 3 == 0), 1 (d % 3 == 1) or 2 negatives */
static void texts(int d, char *q, char *p, char neg[2][64], int *n_neg) {
    snprintf(q, 64, "what does tool %c%c do", 'a' + d, 'a' + d);
    snprintf(p, 64, "Tool %c%c does its own thing", 'a' + d, 'a' + d);
    *n_neg = d % 3;
    for (int k = 0; k < *n_neg; k++) snprintf(neg[k], 64, "Tool %c%c is not tool %c%c, variant %d", 'a' + (d + 1) % 26,
                                              'a' + (d + 1) % 26, 'a' + d, 'a' + d, k);
}

static char *make_jsonl(void) {
    size_t cap = 1 << 14, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int d = 0; d < N_DOCS; d++) {
        char q[64], p[64], neg[2][64];
        int nn;
        texts(d, q, p, neg, &nn);
        len += (size_t)snprintf(s + len, cap - len, "{\"doc\":\"page%02d\",\"query\":\"%s\",\"positive\":\"%s\"", d, q, p);
        if (nn == 1) len += (size_t)snprintf(s + len, cap - len, ",\"negative\":\"%s\"", neg[0]);
        if (nn == 2) len += (size_t)snprintf(s + len, cap - len, ",\"negative\":[\"%s\",\"%s\"]", neg[0], neg[1]);
        len += (size_t)snprintf(s + len, cap - len, "}\n");
    }
    return s;
}

static bool same(const int32_t *a, int na, const char *text) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (qai_tokenizer_encode(tok, text, strlen(text), QAI_TOK_ADD_SPECIAL, &ids, &n)) return false;
    bool eq = (size_t)na == n && !memcmp(a, ids, n * sizeof *ids);
    qai_free(ids);
    return eq;
}

static void test_errors(void) {
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"{\"query\":\"q\",\"positive\":\"p\"}\n{\"doc\":\"a\",\"text\":\"t\",\"negative\":\"n\"}\n",
         "line 2 (offset 29): negative belongs to a pair"},
        {"{\"query\":\"q\",\"positive\":\"p\",\"negative\":\"  \"}\n", "line 1 (offset 0): negative must be"},
        {"{\"query\":\"q\",\"positive\":\"p\",\"negative\":[\"n\",3]}\n", "negative must be"},
        {"{\"query\":\"q\",\"positive\":\"p\",\"negative\":[]}\n", "negative must be"},
        {"{\"query\":\"q\",\"positive\":\"p\",\"negative\":7}\n", "negative must be"},
        {"\n{\"doc\":\"a\",\"query\":\"q\",\"positive\":\"p\",\"negative\":[\"n\",\"p\"]}\n",
         "line 2 (offset 1): a negative equals the positive"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qai_pairs *p = NULL;
        qai_status st = qai_pairs_parse(bad[i].text, strlen(bad[i].text), "n.jsonl", 0, &p);
        CHECK(st != QAI_OK && p == NULL);
        if (!strstr(qai_last_error(), bad[i].msg)) fprintf(stderr, "  case %zu: '%s'\n", i, qai_last_error());
        CHECK(strstr(qai_last_error(), bad[i].msg) != NULL && strstr(qai_last_error(), "n.jsonl") != NULL);
    }
}

/* Every drawn pair with negatives brings exactly one of its own, in batch order. */
static void test_sampling(const char *jsonl) {
    qai_pairs *P = NULL;
    CHECK_OK(qai_pairs_parse(jsonl, strlen(jsonl), "n.jsonl", 0, &P));
    if (!P) return;
    qai_rng rng;
    qai_rng_seed(&rng, 5);
    int seen_variant[N_DOCS][2] = {{0}}, bad = 0;
    for (int rep = 0; rep < 40; rep++) {
        qai_pair_batch pb;
        CHECK_OK(qai_pairs_sample(P, tok, &rng, 0, 6, 48, 64, &pb));
        int j = 0;
        for (int b = 0; b < pb.B; b++) {
            int d = -1;
            for (int k = 0; k < N_DOCS && d < 0; k++) {
                char q[64], p[64], neg[2][64];
                int nn;
                texts(k, q, p, neg, &nn);
                if (same(pb.q + (size_t)b * pb.Tq, pb.qlen[b], q)) d = k;
            }
            if (d < 0) {
                bad++;
                continue;
            }
            char q[64], p[64], neg[2][64];
            int nn;
            texts(d, q, p, neg, &nn);
            bad += !same(pb.d + (size_t)b * pb.Td, pb.dlen[b], p);
            if (!nn) continue;
            if (j >= pb.Bn) {
                bad++;
                continue;
            }
            int v = -1;
            for (int k = 0; k < nn; k++)
                if (same(pb.n + (size_t)j * pb.Td, pb.nlen[j], neg[k])) v = k;
            if (v < 0) bad++;
            else
                seen_variant[d][v]++;
            j++;
        }
        CHECK_EQ_INT(j, pb.Bn);
        qai_pair_batch_release(&pb);
    }
    CHECK_EQ_INT(bad, 0);
    for (int d = 0; d < N_DOCS; d++) /* each negative of a pair is drawn in time */
        for (int k = 0; k < d % 3; k++) CHECK(seen_variant[d][k] > 0);
    qai_pairs_free(P);
}

static void test_trainer(const char *tok_path, const char *pairs_path) {
    qai_train_config c = qai_train_config_default();
    c.objective = QAI_OBJECTIVE_CONTRASTIVE;
    c.dim = 32, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.ffn = 64, c.vocab = 300;
    c.tokenizer = tok_path, c.pairs = pairs_path;
    c.seq = 48, c.query_seq = 24, c.batch = 6, c.micro_batch = 4; /* pieces of 4: negatives span two */
    c.temperature = 0.5f, c.val_share = 0, c.threads = 2, c.seed = 3;
    qai_trainer *t;
    CHECK_OK(qai_trainer_new(&c, &t));
    if (!t) return;
    qai_pair_batch pb;
    qai_rng r;
    qai_rng_seed(&r, 11);
    CHECK_OK(qai_trainer_sample_pairs(t, &r, 0, 6, &pb));
    CHECK(pb.Bn >= 2); /* with 6 of 10 documents drawn, at least 2 have negatives */
    float loss, acc;
    qai_trainer_zero_grad(t);
    CHECK_OK(qai_trainer_contrastive(t, &pb, true, 1.0f, &loss, &acc));

    /* the loss is qai_infonce_neg over the trainer's own embeddings */
    const int D = 32, B = pb.B, Bd = pb.B + pb.Bn;
    const float *E = qai_trainer_embeddings(t);
    float l2 = qai_infonce_neg(E, E + (size_t)B * D, B, Bd, D, c.temperature, NULL, NULL, NULL, 1);
    CHECK(fabsf(l2 - loss) <= 1e-6f * fmaxf(1, fabsf(loss)));
    /* and the negatives take part: without them the loss is the in-batch one */
    qai_pair_batch nb = pb;
    nb.Bn = 0;
    float l0;
    CHECK_OK(qai_trainer_contrastive(t, &nb, false, 0, &l0, NULL));
    CHECK(fabsf(l0 - loss) > 1e-4f);
    CHECK(fabsf(l0 - qai_infonce(E, E + (size_t)B * D, B, D, c.temperature, NULL, NULL, NULL, 1)) <= 1e-6f);

    /* backward against central differences, including the negatives' gradient path */
    qai_rng pick;
    qai_rng_seed(&pick, 7);
    int checked;
    int bad = contrastive_grad_check(t, &pb, pb.n, &pick, &checked); /* embedding rows the negatives use */
    CHECK(checked >= 20);
    CHECK_EQ_INT(bad, 0);

    /* a batch with more negatives than pairs is refused */
    nb.Bn = pb.B + 1;
    CHECK(qai_trainer_contrastive(t, &nb, false, 0, &l0, NULL) == QAI_ERR_ARG);
    qai_pair_batch_release(&pb);
    qai_trainer_free(t);
}

int main(void) {
    char tmp[512], path[600], pairs[600];
    const char *base = getenv("QAI_TMP");
    snprintf(tmp, sizeof tmp, "%s/test_pairs_negatives", base ? base : "/tmp");
    CHECK_OK(qai_mkdirs(tmp));
    snprintf(path, sizeof path, "%s/tok.gguf", tmp);
    qai_gguf *g;
    byte_tokenizer(path, 300, &g, &tok);
    if (!tok) return test_summary();
    test_errors();
    char *jsonl = make_jsonl();
    CHECK(jsonl != NULL);
    if (jsonl) {
        test_sampling(jsonl);
        snprintf(pairs, sizeof pairs, "%s/pairs.jsonl", tmp);
        FILE *f = fopen(pairs, "w");
        CHECK(f != NULL);
        if (f) {
            fputs(jsonl, f);
            fclose(f);
            test_trainer(path, pairs);
        }
    }
    free(jsonl);
    qai_tokenizer_free(tok);
    qai_gguf_close(g);
    return test_summary();
}
