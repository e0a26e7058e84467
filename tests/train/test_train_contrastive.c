/* The contrastive objective: finite-difference checks of mean pooling and of
 * normalization + symmetric InfoNCE, a whole-model gradient check on a tiny
 * model (with the batch split over several forward passes), training
 * embeddings equal to what the exported GGUF gives through qai_embed,
 * thread-count independence, resume to the bit, the pairs parser's errors,
 * and a tiny model that learns: in-batch retrieval accuracy on held-out
 * documents rises from chance (1/8) to well above it in a few dozen steps. */
#include <math.h>
#include <string.h>

#include "qai/gguf.h"
#include "qai/model.h"
#include "qai/tokenizer_train.h"
#include "qai/train.h"
#include "contrastive_check.h"
#include "test.h"
#include "train/contrastive.h"

static qai_rng rng;
static char tmpdir[512], tok_path[600], bpe_path[600], pairs_path[600], pairs_small[600];
static int bpe_vocab;

static float frand(void) { return qai_rng_float(&rng) * 2 - 1; }

/* ---- ops against finite differences ---- */

static void test_infonce_fd(void) {
    enum { B = 5, D = 12 };
    float q[B * D], d[B * D], dq[B * D], dd[B * D];
    for (int i = 0; i < B * D; i++) q[i] = frand(), d[i] = frand();
    for (int i = 0; i < D; i++) d[2 * D + i] = q[2 * D + i] + 0.1f * frand(); /* one easy pair */
    const float tau = 0.1f, scale = 0.5f;
    float acc = -1;
    float loss = qai_infonce(q, d, B, D, tau, &acc, dq, dd, scale);
    CHECK(isfinite(loss) && loss > 0);
    CHECK(acc >= 0.2f - 1e-6f && acc <= 1);
    /* an independent value: B = 1 has loss 0 (the softmax of one entry) */
    CHECK(fabs(qai_infonce(q, d, 1, D, tau, NULL, NULL, NULL, 1)) <= 1e-6);
    const float h = 1e-3f;
    int bad = 0;
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < B * D; i++) {
            float *x = which ? d : q, keep = x[i];
            x[i] = keep + h;
            double lp = qai_infonce(q, d, B, D, tau, NULL, NULL, NULL, 1);
            x[i] = keep - h;
            double lm = qai_infonce(q, d, B, D, tau, NULL, NULL, NULL, 1);
            x[i] = keep;
            bad += !grad_ok(which ? "infonce dd" : "infonce dq", (which ? dd : dq)[i] / scale, (lp - lm) / (2 * h),
                            2e-4, 1e-2);
        }
    CHECK_EQ_INT(bad, 0);
    /* scale invariance of the normalization: q·3 gives the same loss */
    float q3[B * D];
    for (int i = 0; i < B * D; i++) q3[i] = q[i] * 3;
    CHECK(fabs(qai_infonce(q3, d, B, D, tau, NULL, NULL, NULL, 1) - loss) <= 1e-5);
}

static void test_pool_fd(void) {
    enum { B = 3, T = 6, D = 5 };
    const int len[B] = {6, 2, 4};
    float x[B * T * D], R[B * D], emb[B * D], dx[B * T * D];
    for (int i = 0; i < B * T * D; i++) x[i] = frand();
    for (int i = 0; i < B * D; i++) R[i] = frand();
    qai_mean_pool_forward(emb, x, len, B, T, D);
    /* an independent value: row 1 is the mean of its two real rows */
    CHECK(fabs(emb[1 * D + 3] - (x[(1 * T + 0) * D + 3] + x[(1 * T + 1) * D + 3]) / 2) <= 1e-6);
    qai_mean_pool_backward(dx, R, len, B, T, D);
    int bad = 0;
    const float h = 1e-2f;
    for (int i = 0; i < B * T * D; i++) {
        float keep = x[i];
        double l[2];
        for (int s = 0; s < 2; s++) {
            x[i] = keep + (s ? -h : h);
            qai_mean_pool_forward(emb, x, len, B, T, D);
            l[s] = 0;
            for (int j = 0; j < B * D; j++) l[s] += (double)emb[j] * R[j];
        }
        x[i] = keep;
        bad += !grad_ok("pool dx", dx[i], (l[0] - l[1]) / (2 * h), 1e-4, 1e-3);
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- fixtures ---- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* A byte-level tokenizer (vocab 300) and a synthetic collection: 64
 * documents of 3 chunks, one JSONL line per chunk. Every document has 3
 * keywords of its own out of 24 shared ones; a third of its words are those,
 * the rest 8 filler words all documents use (so an untrained mean of token
 * vectors is dominated by the filler). A span and another chunk of the same
 * document share keywords, so what generalizes to held-out documents is
 * recognizing the shared keywords. A BPE tokenizer trained on the 32 words
 * (each a token or two) is used for the learning test. */
static void make_fixtures(void) {
    snprintf(tok_path, sizeof tok_path, "%s/tok.gguf", tmpdir);
    qai_gguf_writer *w = qai_gguf_writer_new();
    CHECK(w && qai_gguf_set_str(w, "general.architecture", "llama") == QAI_OK);
    CHECK_OK(qai_model_write_byte_vocab(w, 300));
    CHECK_OK(qai_gguf_writer_write(w, tok_path));
    qai_gguf_writer_free(w);

    snprintf(pairs_path, sizeof pairs_path, "%s/docs.jsonl", tmpdir);
    FILE *f = fopen(pairs_path, "w");
    CHECK(f != NULL);
    qai_rng r;
    qai_rng_seed(&r, 77);
    char words[32][8], all[32 * 8 + 2] = "";
    for (int k = 0; k < 32; k++) {
        int n = 4 + (int)(qai_rng_u64(&r) % 3);
        for (int c = 0; c < n; c++) words[k][c] = (char)('a' + qai_rng_u64(&r) % 26);
        words[k][n] = 0;
        strcat(all, words[k]);
        strcat(all, k % 8 == 7 ? ".\n" : " ");
    }
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.vocab_size = 512;
    o.n_threads = 1;
    const char *texts[] = {all};
    size_t lens[] = {strlen(all)};
    qai_vocab_desc vd;
    CHECK_OK(qai_tokenizer_train(texts, lens, 1, &o, &vd, NULL));
    snprintf(bpe_path, sizeof bpe_path, "%s/bpe.gguf", tmpdir);
    CHECK_OK(qai_vocab_write_gguf(&vd, bpe_path));
    qai_vocab_release(&vd);
    qai_gguf *tg;
    qai_tokenizer *tk;
    CHECK_OK(qai_gguf_open(bpe_path, &tg));
    CHECK_OK(qai_tokenizer_from_gguf(tg, &tk));
    bpe_vocab = qai_tokenizer_n_vocab(tk);
    qai_tokenizer_free(tk);
    qai_gguf_close(tg);
    for (int doc = 0; doc < 64; doc++) {
        int kw[3];
        for (int k = 0; k < 3; k++) {
            bool again;
            do {
                kw[k] = 8 + (int)(qai_rng_u64(&r) % 24);
                again = false;
                for (int j = 0; j < k; j++) again |= kw[j] == kw[k];
            } while (again);
        }
        for (int ch = 0; ch < 3; ch++) {
            fprintf(f, "{\"doc\":\"doc%02d\",\"section\":\"PART %d\",\"text\":\"", doc, ch);
            for (int wd = 0; wd < 24; wd++) {
                int wi = qai_rng_u64(&r) % 3 == 0 ? kw[qai_rng_u64(&r) % 3] : (int)(qai_rng_u64(&r) % 8);
                fprintf(f, "%s%s", wd ? (wd % 8 == 0 ? ". " : " ") : "", words[wi]);
            }
            fprintf(f, ".\"}\n");
        }
    }
    fclose(f);
    snprintf(pairs_small, sizeof pairs_small, "%s/pairs.jsonl", tmpdir);
    write_file(pairs_small, "{\"query\":\"alpha beta\",\"positive\":\"the alpha and the beta\"}\n"
                            "{\"query\":\"gamma\",\"positive\":\"a gamma ray\"}\n\n"
                            "{\"query\":\"delta wing\",\"positive\":\"delta wings fly\"}\n"
                            "{\"doc\":\"x\",\"text\":\"one chunk only. with two sentences here\"}\n");
}

static qai_train_config tiny(int threads, const char *pairs) {
    qai_train_config c = qai_train_config_default();
    c.objective = QAI_OBJECTIVE_CONTRASTIVE;
    c.dim = 32, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.ffn = 64, c.vocab = 300;
    c.tokenizer = tok_path, c.pairs = pairs;
    c.seq = 48, c.query_seq = 24, c.batch = 8, c.micro_batch = 3, c.val_share = 0.25f;
    c.max_steps = 40, c.warmup = 5, c.lr = 3e-3f, c.min_lr = 3e-4f, c.eval_batches = 4;
    c.threads = threads, c.seed = 9;
    return c;
}

/* ---- the whole model ---- */

static void test_model_grad(void) {
    qai_train_config c = tiny(2, pairs_path);
    c.batch = 4, c.micro_batch = 3; /* two passes per side: GradCache across pieces */
    c.temperature = 0.5f;           /* a smooth loss for central differences (qai_infonce is checked at 0.1) */
    qai_trainer *t;
    CHECK_OK(qai_trainer_new(&c, &t));
    if (!t) return;
    qai_pair_batch pb;
    qai_rng r;
    qai_rng_seed(&r, 3);
    CHECK_OK(qai_trainer_sample_pairs(t, &r, 0, 4, &pb));
    for (int b = 0; b < pb.B; b++) CHECK(pb.qlen[b] >= 1 && pb.qlen[b] <= 24 && pb.dlen[b] >= 1 && pb.dlen[b] <= 48);
    float loss, acc;
    qai_trainer_zero_grad(t);
    CHECK_OK(qai_trainer_contrastive(t, &pb, true, 1.0f, &loss, &acc));
    int checked;
    int bad = contrastive_grad_check(t, &pb, pb.q, &rng, &checked);
    CHECK(checked >= 20);
    CHECK_EQ_INT(bad, 0);

    /* the pooled training embedding is what the exported model gives at inference */
    char out[700];
    snprintf(out, sizeof out, "%s/emb.gguf", tmpdir);
    CHECK_OK(qai_trainer_contrastive(t, &pb, false, 0, &loss, NULL));
    const float *E = qai_trainer_embeddings(t);
    CHECK_OK(qai_trainer_export_gguf(t, out));
    qai_model *m;
    CHECK_OK(qai_model_open(out, &m));
    qai_gguf *g;
    CHECK_OK(qai_gguf_open(out, &g));
    int64_t pool = 0;
    CHECK_OK(qai_gguf_get_int(g, "llama.pooling_type", &pool));
    CHECK_EQ_INT((int)pool, 1);
    qai_gguf_close(g);
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    qai_context *ctx;
    CHECK_OK(qai_context_new(m, &cp, &ctx));
    double worst = 0;
    for (int side = 0; side < 2; side++)
        for (int b = 0; b < pb.B; b++) {
            const int32_t *tok = side ? pb.d + (size_t)b * pb.Td : pb.q + (size_t)b * pb.Tq;
            int n = side ? pb.dlen[b] : pb.qlen[b];
            float v[32];
            CHECK_OK(qai_embed(ctx, 0, tok, n, v));
            const float *e = E + ((size_t)side * pb.B + b) * 32;
            double nn = 0;
            for (int d = 0; d < 32; d++) nn += (double)e[d] * e[d];
            for (int d = 0; d < 32; d++) worst = fmax(worst, fabs(v[d] - e[d] / sqrt(nn)));
        }
    if (worst > 2e-4) fprintf(stderr, "  train vs qai_embed: largest difference %g\n", worst);
    CHECK(worst <= 2e-4);
    qai_context_free(ctx);
    qai_model_close(m);
    qai_pair_batch_release(&pb);
    qai_trainer_free(t);
}

static void params_equal(qai_trainer *a, qai_trainer *b, const char *what) {
    long diff = 0;
    for (int i = 0; i < qai_trainer_n_tensors(a); i++) {
        int64_t ne[2];
        float *pa, *pb;
        qai_trainer_tensor(a, i, ne, &pa, NULL);
        qai_trainer_tensor(b, i, NULL, &pb, NULL);
        diff += memcmp(pa, pb, (size_t)(ne[0] * ne[1]) * sizeof(float)) != 0;
    }
    if (diff) fprintf(stderr, "  %s: %ld tensors differ\n", what, diff);
    CHECK_EQ_INT((int)diff, 0);
}

static void test_threads_resume(void) {
    qai_train_config c1 = tiny(1, pairs_path), c2 = tiny(2, pairs_path);
    c1.batch = c2.batch = 4;
    qai_trainer *a, *b;
    CHECK_OK(qai_trainer_new(&c1, &a));
    CHECK_OK(qai_trainer_new(&c2, &b));
    if (!a || !b) return;
    float la[6], lb[6];
    char ck[700];
    snprintf(ck, sizeof ck, "%s/c.qck", tmpdir);
    for (int s = 0; s < 6; s++) {
        CHECK_EQ_INT(qai_trainer_step(a), s + 1);
        CHECK_EQ_INT(qai_trainer_step(b), s + 1);
        qai_train_stats st;
        qai_trainer_stats(a, &st);
        la[s] = st.loss;
        CHECK(st.acc >= 0 && st.acc <= 1 && st.tokens > 0);
        qai_trainer_stats(b, &st);
        lb[s] = st.loss;
        if (s == 2) CHECK_OK(qai_trainer_save(b, ck));
    }
    CHECK(memcmp(la, lb, sizeof la) == 0);
    params_equal(a, b, "1 vs 2 threads");
    qai_trainer *r;
    CHECK_OK(qai_trainer_resume(ck, NULL, &r));
    if (r) {
        for (int s = 3; s < 6; s++) {
            CHECK_EQ_INT(qai_trainer_step(r), s + 1);
            qai_train_stats st;
            qai_trainer_stats(r, &st);
            CHECK(st.loss == lb[s]);
        }
        params_equal(r, b, "resumed vs uninterrupted");
        qai_trainer_free(r);
    }
    qai_trainer_free(a);
    qai_trainer_free(b);
}

/* learning: on held-out documents the loss falls by more than half and the
 * in-batch accuracy rises further above chance (1/8); an untrained mean of
 * token vectors already beats chance (a random bag-of-words projection) */
static void test_learning(void) {
    qai_train_config c = tiny(1, pairs_path);
    c.micro_batch = 16, c.tokenizer = bpe_path, c.vocab = bpe_vocab, c.max_steps = 60, c.eval_batches = 8;
    qai_trainer *b;
    CHECK_OK(qai_trainer_new(&c, &b));
    if (!b) return;
    float acc0 = 0, l0 = 0;
    CHECK_OK(qai_trainer_eval_metrics(b, &l0, &acc0));
    while (qai_trainer_step(b) < c.max_steps) {}
    float l1 = 0, acc1 = 0;
    CHECK_OK(qai_trainer_eval_metrics(b, &l1, &acc1));
    fprintf(stderr, "  held-out in-batch accuracy %.3f -> %.3f (chance 0.125), loss %.3f -> %.3f\n", acc0, acc1, l0, l1);
    /* seeded and deterministic: these are today's 0.406 -> 0.531 and 3.46 -> 1.43 with margins */
    CHECK(acc0 < 0.45f);
    CHECK(acc1 >= 0.45f && acc1 >= acc0 + 0.1f);
    CHECK(l1 < l0 - 1.0f);
    qai_trainer_free(b);
}

/* ---- pairs ---- */

static void test_pairs_parse(void) {
    qai_pairs *p;
    CHECK_OK(qai_pairs_load(pairs_small, 0, &p));
    if (p) {
        CHECK_EQ_INT(qai_pairs_n_units(p, 0), 4);
        CHECK_EQ_INT(qai_pairs_n_units(p, 1), 0);
        CHECK_EQ_INT((int)strlen(qai_pairs_sha256(p)), 64);
        qai_pairs_free(p);
    }
    CHECK_OK(qai_pairs_load(pairs_path, 0.25, &p));
    if (p) {
        int tr = qai_pairs_n_units(p, 0), va = qai_pairs_n_units(p, 1);
        CHECK_EQ_INT(tr + va, 64);
        CHECK(va >= 8 && va <= 28);
        qai_pairs_free(p);
    }
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"{\"query\":\"a\"}\n", "line 1"},
        {"\n{\"query\":\"a\",\"positive\":3}\n", "line 2"},
        {"{\"doc\":\"a\",\"text\":\"\"}\n", "empty"},
        {"[1,2]\n", "not a JSON object"},
        {"{\"query\":\"a\",\"positive\":\"b\",\"doc\":\"c\",\"text\":\"d\"}", "not both"},
        {"{\"other\":1}\n", "expected"},
        {"\n\n", "no pairs"},
        {"{\"query\":\"a\",\"positive\":\"b\"}\n{broken\n", "line 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = NULL;
        qai_status st = qai_pairs_parse(bad[i].text, strlen(bad[i].text), "x.jsonl", 0.1, &p);
        CHECK(st != QAI_OK && p == NULL);
        if (!strstr(qai_last_error(), bad[i].msg) || !strstr(qai_last_error(), "x.jsonl"))
            fprintf(stderr, "  case %zu: message '%s' lacks '%s'\n", i, qai_last_error(), bad[i].msg);
        CHECK(strstr(qai_last_error(), bad[i].msg) != NULL);
    }
    /* a config that cannot work is refused with a clear message */
    qai_train_config c = tiny(1, pairs_small);
    qai_trainer *t;
    CHECK(qai_trainer_new(&c, &t) != QAI_OK);
    CHECK(strstr(qai_last_error(), "fewer than a batch") != NULL);
    c = tiny(1, NULL);
    CHECK(qai_trainer_new(&c, &t) != QAI_OK);
    CHECK(strstr(qai_last_error(), "needs pairs") != NULL);
}

int main(void) {
    qai_rng_seed(&rng, 12345);
    const char *base = getenv("QAI_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_train_contrastive", base ? base : "/tmp");
    CHECK_OK(qai_mkdirs(tmpdir));
    make_fixtures();
    test_infonce_fd();
    test_pool_fd();
    test_pairs_parse();
    test_model_grad();
    test_threads_resume();
    test_learning();
    return test_summary();
}
