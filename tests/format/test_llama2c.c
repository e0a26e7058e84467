/* llama2.c importer: converting stories260K.bin + tok512.bin must give the same
 * tensors (names, types, shapes, bytes), vocabulary and key metadata as the
 * GGUF llama.cpp's own converter wrote for the same model; malformed
 * checkpoints are rejected with clear messages and leave no output. Also runs
 * the qai command (QAI_BIN) for convert and inspect, checking exit codes and
 * the --json shape. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qai/convert.h"
#include "qai/gguf.h"
#include "test.h"

static char model[1024], tok[1024], ref[1024], out[1024], tmp_bin[1024], big_tok[1024];

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void check_same_tensor(const qai_gguf *a, const qai_gguf_tensor *ta, const qai_gguf_tensor *tb) {
    CHECK_MSG(tb != NULL, "tensor '%s' missing from the reference", ta->name);
    if (!tb) return;
    bool same = ta->type == tb->type && ta->n_dims == tb->n_dims && ta->size == tb->size;
    for (int d = 0; d < QAI_GGUF_MAX_DIMS; d++) same = same && ta->ne[d] == tb->ne[d];
    CHECK_MSG(same, "tensor '%s': type/shape differ (%lld x %lld vs %lld x %lld)", ta->name, (long long)ta->ne[0],
              (long long)ta->ne[1], (long long)tb->ne[0], (long long)tb->ne[1]);
    if (same) CHECK_MSG(!memcmp(ta->data, tb->data, ta->size), "tensor '%s': bytes differ", ta->name);
    (void)a;
}

static void test_against_llama_cpp(void) {
    CHECK_OK(qai_convert_llama2c(model, tok, out));
    qai_gguf *a = NULL, *b = NULL;
    CHECK_OK(qai_gguf_open(out, &a));
    CHECK_OK(qai_gguf_open(ref, &b));
    if (!a || !b) {
        qai_gguf_close(a);
        qai_gguf_close(b);
        return;
    }
    /* stories260K shares its classifier: we omit output.weight (llama.cpp then
     * uses token_embd), the reference stores a copy. Everything else is equal. */
    CHECK_EQ_INT(qai_gguf_n_tensors(a), 47);
    CHECK_EQ_INT(qai_gguf_n_tensors(b), 48);
    CHECK(qai_gguf_find_tensor(a, "output.weight") == NULL);
    for (int64_t i = 0; i < qai_gguf_n_tensors(a); i++) {
        const qai_gguf_tensor *ta = qai_gguf_tensor_at(a, i);
        CHECK_EQ_INT(ta->offset % qai_gguf_alignment(a), 0);
        check_same_tensor(a, ta, qai_gguf_find_tensor(b, ta->name));
    }
    const qai_gguf_tensor *emb = qai_gguf_find_tensor(a, "token_embd.weight");
    CHECK(emb != NULL);
    if (emb) {
        qai_gguf_tensor as_output = *emb;
        as_output.name = "output.weight";
        check_same_tensor(a, &as_output, qai_gguf_find_tensor(b, "output.weight"));
    }
    for (int64_t i = 0; i < qai_gguf_n_tensors(b); i++) {
        const char *n = qai_gguf_tensor_at(b, i)->name;
        CHECK_MSG(!strcmp(n, "output.weight") || qai_gguf_find_tensor(a, n), "reference tensor '%s' missing", n);
    }

    /* vocabulary */
    const char *arrs[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
    for (int k = 0; k < 3; k++) {
        int64_t ia = qai_gguf_find_kv(a, arrs[k]), ib = qai_gguf_find_kv(b, arrs[k]);
        CHECK_MSG(ia >= 0 && ib >= 0, "%s", arrs[k]);
        if (ia < 0 || ib < 0) continue;
        CHECK(qai_gguf_arr_type(a, ia) == qai_gguf_arr_type(b, ib));
        CHECK_EQ_INT(qai_gguf_arr_len(a, ia), 512);
        CHECK_EQ_INT(qai_gguf_arr_len(b, ib), 512);
        int diff = 0;
        for (uint64_t j = 0; j < 512; j++) {
            bool eq;
            if (k == 0)
                eq = qai_gguf_arr_str_len(a, ia, j) == qai_gguf_arr_str_len(b, ib, j) &&
                     !memcmp(qai_gguf_arr_str(a, ia, j), qai_gguf_arr_str(b, ib, j), qai_gguf_arr_str_len(a, ia, j));
            else if (k == 1) eq = qai_gguf_arr_float(a, ia, j) == qai_gguf_arr_float(b, ib, j);
            else eq = qai_gguf_arr_int(a, ia, j) == qai_gguf_arr_int(b, ib, j);
            if (!eq && diff++ < 3) fprintf(stderr, "%s[%llu] differs\n", arrs[k], (unsigned long long)j);
        }
        CHECK_MSG(diff == 0, "%s: %d entries differ", arrs[k], diff);
    }

    /* key metadata */
    const char *strs[] = {"general.architecture", "tokenizer.ggml.model"};
    for (int k = 0; k < 2; k++) {
        const char *sa = NULL, *sb = NULL;
        CHECK_OK(qai_gguf_get_str(a, strs[k], &sa));
        CHECK_OK(qai_gguf_get_str(b, strs[k], &sb));
        CHECK_MSG(sa && sb && !strcmp(sa, sb), "%s", strs[k]);
    }
    const char *ints[] = {"llama.embedding_length",        "llama.feed_forward_length",   "llama.attention.head_count",
                          "llama.attention.head_count_kv", "llama.block_count",           "llama.rope.dimension_count",
                          "tokenizer.ggml.bos_token_id",   "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        int64_t va = -1, vb = -2;
        CHECK_OK(qai_gguf_get_int(a, ints[k], &va));
        CHECK_OK(qai_gguf_get_int(b, ints[k], &vb));
        CHECK_MSG(va == vb, "%s: %lld vs %lld", ints[k], (long long)va, (long long)vb);
    }
    double ea = 0, eb = 1;
    CHECK_OK(qai_gguf_get_float(a, "llama.attention.layer_norm_rms_epsilon", &ea));
    CHECK_OK(qai_gguf_get_float(b, "llama.attention.layer_norm_rms_epsilon", &eb));
    CHECK(ea == eb);
    int64_t ctx_a = 0, ctx_b = 0;
    CHECK_OK(qai_gguf_get_int(a, "llama.context_length", &ctx_a));
    CHECK_OK(qai_gguf_get_int(b, "llama.context_length", &ctx_b));
    CHECK_EQ_INT(ctx_a, 512); /* from the .bin header; llama.cpp's converter wrote its default */
    CHECK_EQ_INT(ctx_b, 2048);
    bool add_bos = false;
    CHECK_OK(qai_gguf_get_bool(a, "tokenizer.ggml.add_bos_token", &add_bos));
    CHECK(add_bos);
    const char *name = NULL;
    CHECK_OK(qai_gguf_get_str(a, "general.name", &name));
    CHECK(name && !strcmp(name, "stories260K"));
    qai_gguf_close(a);
    qai_gguf_close(b);
}

/* Writes a modified copy of the checkpoint: header fields replaced where
 * hdr[i] != INT32_MIN, size adjusted by delta bytes (negative truncates). */
static void write_variant(const int32_t hdr[7], long delta) {
    char *d = NULL;
    size_t n = 0;
    CHECK_OK(qai_file_read(model, &d, &n));
    if (!d) return;
    for (int i = 0; i < 7; i++)
        if (hdr[i] != INT32_MIN) memcpy(d + 4 * i, &hdr[i], 4);
    FILE *f = fopen(tmp_bin, "wb");
    size_t keep = delta < 0 ? n - (size_t)(-delta) : n;
    fwrite(d, 1, keep, f);
    for (long i = 0; i < delta; i++) fputc(0, f);
    fclose(f);
    qai_free(d);
}

static void expect_reject(int line, const char *m, const char *t, const char *s1, const char *s2) {
    unlink(out);
    qai_status st = qai_convert_llama2c(m, t, out);
    const char *msg = qai_last_error();
    if (st == QAI_OK) {
        t_fail++;
        fprintf(stderr, "%s:%d: bad checkpoint accepted\n", __FILE__, line);
        return;
    }
    t_pass++;
    if (s1 && !strstr(msg, s1)) t_fail++, fprintf(stderr, "%s:%d: message lacks '%s': %s\n", __FILE__, line, s1, msg);
    else t_pass++;
    if (s2 && !strstr(msg, s2)) t_fail++, fprintf(stderr, "%s:%d: message lacks '%s': %s\n", __FILE__, line, s2, msg);
    else t_pass++;
    if (exists(out)) t_fail++, fprintf(stderr, "%s:%d: output written despite the failure\n", __FILE__, line);
    else t_pass++;
}
#define REJECT(m, t, s1, s2) expect_reject(__LINE__, m, t, s1, s2)

static void test_malformed(void) {
    const int32_t K = INT32_MIN;
    write_variant((int32_t[]){K, K, K, K, K, K, K}, -100);
    REJECT(tmp_bin, tok, "1056440 bytes", "implies 1056540 bytes");
    write_variant((int32_t[]){K, K, K, K, K, K, K}, 4);
    REJECT(tmp_bin, tok, "1056544 bytes", "implies 1056540 bytes");
    write_variant((int32_t[]){0, K, K, K, K, K, K}, 0);
    REJECT(tmp_bin, tok, "dim at offset 0", "is 0");
    write_variant((int32_t[]){K, K, -5, K, K, K, K}, 0);
    REJECT(tmp_bin, tok, "n_layers at offset 8", "is -5");
    write_variant((int32_t[]){K, K, K, K, 3, K, K}, 0);
    REJECT(tmp_bin, tok, "n_kv_heads 3", "does not divide n_heads 8");
    write_variant((int32_t[]){K, K, K, 7, K, K, K}, 0);
    REJECT(tmp_bin, tok, "dim 64", "not a multiple of n_heads 7");
    write_variant((int32_t[]){K, K, K, K, K, -(1 << 30), K}, 0);
    REJECT(tmp_bin, tok, "vocab_size at offset 20", NULL);
    write_variant((int32_t[]){K, K, K, K, K, K, 1 << 30}, 0);
    REJECT(tmp_bin, tok, "seq_len at offset 24", NULL);
    /* a negative vocab_size promises a separate classifier the file does not hold */
    write_variant((int32_t[]){K, K, K, K, K, -512, K}, 0);
    REJECT(tmp_bin, tok, "implies 1187612 bytes", "vocab_size -512");
    write_variant((int32_t[]){0x616b3432, K, K, K, K, K, K}, 0);
    REJECT(tmp_bin, tok, "ak42", "legacy");
    FILE *f = fopen(tmp_bin, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    REJECT(tmp_bin, tok, "too short", NULL);
    REJECT("/nonexistent/model.bin", tok, "/nonexistent/model.bin", NULL);
    REJECT(model, "/nonexistent/tok.bin", "/nonexistent/tok.bin", NULL);
    /* a tokenizer of another size */
    REJECT(model, big_tok, "32000 tokens", "vocab_size 512");
    REJECT(model, model, NULL, NULL); /* a checkpoint is not a tokenizer */
    /* the output may not replace an input */
    write_variant((int32_t[]){K, K, K, K, K, K, K}, 0);
    CHECK(qai_convert_llama2c(tmp_bin, tok, tmp_bin) == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "overwrite") != NULL);
    CHECK(exists(tmp_bin));
}

/* A synthetic checkpoint with a separate classifier (vocab_size < 0), GQA and
 * dims that are not all the same: checks the layout field by field. */
static void test_unshared_classifier(void) {
    const int D = 16, H = 24, L = 2, NH = 4, NKV = 2, V = 512, S = 8;
    int hs = D / NH, KV = NKV * hs;
    size_t nf = (size_t)V * D + L * D + (size_t)L * D * D + 2 * (size_t)L * KV * D + (size_t)L * D * D + L * D +
                3 * (size_t)L * H * D + D + (size_t)S * hs + (size_t)V * D;
    float *w = malloc(nf * 4);
    for (size_t i = 0; i < nf; i++) w[i] = (float)i; /* each float says where it was */
    int32_t hdr[7] = {D, H, L, NH, NKV, -V, S};
    FILE *f = fopen(tmp_bin, "wb");
    fwrite(hdr, 4, 7, f);
    fwrite(w, 4, nf, f);
    fclose(f);
    CHECK_OK(qai_convert_llama2c(tmp_bin, tok, out));
    qai_gguf *g = NULL;
    CHECK_OK(qai_gguf_open(out, &g));
    if (!g) {
        free(w);
        return;
    }
    CHECK_EQ_INT(qai_gguf_n_tensors(g), 3 + 9 * L);
    /* expected first float index of each tensor */
    size_t emb = 0, rms_att = emb + (size_t)V * D, wq = rms_att + L * D, wk = wq + (size_t)L * D * D,
           wv = wk + (size_t)L * KV * D, wo = wv + (size_t)L * KV * D, rms_ffn = wo + (size_t)L * D * D,
           w1 = rms_ffn + L * D, w2 = w1 + (size_t)L * H * D, w3 = w2 + (size_t)L * D * H, fin = w3 + (size_t)L * H * D,
           cls = fin + D + (size_t)S * hs;
    struct {
        const char *name;
        int64_t ne0, ne1;
        size_t first;
    } ex[] = {
        {"token_embd.weight", D, V, emb},
        {"output_norm.weight", D, 1, fin},
        {"output.weight", D, V, cls},
        {"blk.1.attn_norm.weight", D, 1, rms_att + D},
        {"blk.1.attn_q.weight", D, D, wq + (size_t)D * D},
        {"blk.1.attn_k.weight", D, KV, wk + (size_t)KV * D},
        {"blk.1.attn_v.weight", D, KV, wv + (size_t)KV * D},
        {"blk.1.attn_output.weight", D, D, wo + (size_t)D * D},
        {"blk.1.ffn_norm.weight", D, 1, rms_ffn + D},
        {"blk.1.ffn_gate.weight", D, H, w1 + (size_t)H * D},
        {"blk.1.ffn_down.weight", H, D, w2 + (size_t)D * H},
        {"blk.1.ffn_up.weight", D, H, w3 + (size_t)H * D},
        {"blk.0.ffn_up.weight", D, H, w3},
    };
    for (size_t k = 0; k < sizeof ex / sizeof ex[0]; k++) {
        const qai_gguf_tensor *t = qai_gguf_find_tensor(g, ex[k].name);
        CHECK_MSG(t != NULL, "%s", ex[k].name);
        if (!t) continue;
        CHECK_MSG(t->ne[0] == ex[k].ne0 && t->ne[1] == ex[k].ne1 && t->n_dims == (ex[k].ne1 == 1 ? 1 : 2), "%s shape",
                  ex[k].name);
        CHECK_MSG(!memcmp(t->data, w + ex[k].first, t->size), "%s data", ex[k].name);
    }
    int64_t v;
    CHECK_OK(qai_gguf_get_int(g, "llama.context_length", &v));
    CHECK_EQ_INT(v, S);
    CHECK_OK(qai_gguf_get_int(g, "llama.attention.head_count_kv", &v));
    CHECK_EQ_INT(v, NKV);
    CHECK_OK(qai_gguf_get_int(g, "llama.rope.dimension_count", &v));
    CHECK_EQ_INT(v, hs);
    qai_gguf_close(g);
    free(w);
}

static void test_vocab_only(void) {
    CHECK_OK(qai_convert_llama2c_vocab(tok, out));
    qai_gguf *g = NULL, *r = NULL;
    CHECK_OK(qai_gguf_open(out, &g));
    CHECK_OK(qai_gguf_open(ref, &r));
    if (g && r) {
        CHECK_EQ_INT(qai_gguf_n_tensors(g), 0);
        int64_t i = qai_gguf_find_kv(g, "tokenizer.ggml.tokens"), j = qai_gguf_find_kv(r, "tokenizer.ggml.tokens");
        CHECK(i >= 0 && qai_gguf_arr_len(g, i) == 512);
        int diff = 0;
        for (uint64_t k = 0; i >= 0 && k < 512; k++) diff += strcmp(qai_gguf_arr_str(g, i, k), qai_gguf_arr_str(r, j, k)) != 0;
        CHECK_EQ_INT(diff, 0);
        const char *s;
        CHECK_OK(qai_gguf_get_str(g, "tokenizer.ggml.model", &s));
    }
    qai_gguf_close(g);
    qai_gguf_close(r);
    unlink(out);
    CHECK(qai_convert_llama2c_vocab("/nonexistent/tok.bin", out) != QAI_OK);
    CHECK(!exists(out));
}

/* ---- the command --------------------------------------------------------------- */

static int run(const char *cmd, char **output) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>/dev/null", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 4096) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    if (output) *output = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    const char *bin = getenv("QAI_BIN");
    if (!bin || !exists(bin)) {
        fprintf(stderr, "QAI_BIN not set or missing: skipping command tests\n");
        return;
    }
    char cmd[4096];
    char *o = NULL;
    unlink(out);
    snprintf(cmd, sizeof cmd, "'%s' convert --from llama2c --tokenizer '%s' '%s' -o '%s'", bin, tok, model, out);
    CHECK_EQ_INT(run(cmd, NULL), 0);
    CHECK(exists(out));
    snprintf(cmd, sizeof cmd, "'%s' convert --from safetensors --tokenizer '%s' '%s' -o '%s'", bin, tok, model, out);
    CHECK_EQ_INT(run(cmd, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' convert --tokenizer '%s' '%s'", bin, tok, model);
    CHECK_EQ_INT(run(cmd, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' convert --bogus", bin);
    CHECK_EQ_INT(run(cmd, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' convert --tokenizer '%s' /nonexistent.bin -o '%s'", bin, tok, out);
    CHECK_EQ_INT(run(cmd, NULL), 1);
    snprintf(cmd, sizeof cmd, "'%s' convert --help", bin);
    CHECK_EQ_INT(run(cmd, &o), 0);
    CHECK(o && strstr(o, "usage: qai convert"));
    free(o);

    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --json", bin, out);
    CHECK_EQ_INT(run(cmd, &o), 0);
    cJSON *j = o ? cJSON_Parse(o) : NULL;
    CHECK_MSG(j != NULL, "inspect --json output is not JSON");
    if (j) {
        CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "path")));
        CHECK_EQ_INT(cJSON_GetObjectItem(j, "version")->valuedouble, 3);
        CHECK_EQ_INT(cJSON_GetObjectItem(j, "alignment")->valuedouble, 32);
        CHECK_EQ_INT(cJSON_GetObjectItem(j, "n_tensors")->valuedouble, 47);
        CHECK_EQ_INT(cJSON_GetObjectItem(j, "n_params")->valuedouble, 260032);
        struct stat st;
        stat(out, &st);
        CHECK_EQ_INT(cJSON_GetObjectItem(j, "file_size")->valuedouble, st.st_size);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItem(j, "data_offset")));
        cJSON *md = cJSON_GetObjectItem(j, "metadata");
        cJSON *ctx = cJSON_GetObjectItem(md, "llama.context_length");
        CHECK(ctx && !strcmp(cJSON_GetObjectItem(ctx, "type")->valuestring, "uint32") &&
              cJSON_GetObjectItem(ctx, "value")->valuedouble == 512);
        cJSON *toks = cJSON_GetObjectItem(md, "tokenizer.ggml.tokens");
        CHECK(toks && !strcmp(cJSON_GetObjectItem(toks, "elem_type")->valuestring, "string") &&
              cJSON_GetObjectItem(toks, "length")->valuedouble == 512 &&
              cJSON_GetArraySize(cJSON_GetObjectItem(toks, "value")) == 8 &&
              cJSON_IsTrue(cJSON_GetObjectItem(toks, "truncated")) &&
              !strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(toks, "value"), 1)->valuestring, "<s>"));
        cJSON *eps = cJSON_GetObjectItem(md, "llama.attention.layer_norm_rms_epsilon");
        CHECK(eps && (float)cJSON_GetObjectItem(eps, "value")->valuedouble == 1e-5f);
        cJSON *ts = cJSON_GetObjectItem(j, "tensors");
        CHECK_EQ_INT(cJSON_GetArraySize(ts), 47);
        cJSON *t0 = cJSON_GetArrayItem(ts, 0);
        CHECK(t0 && !strcmp(cJSON_GetObjectItem(t0, "name")->valuestring, "token_embd.weight") &&
              !strcmp(cJSON_GetObjectItem(t0, "type")->valuestring, "f32") &&
              cJSON_GetArraySize(cJSON_GetObjectItem(t0, "shape")) == 2 &&
              cJSON_GetArrayItem(cJSON_GetObjectItem(t0, "shape"), 1)->valuedouble == 512 &&
              cJSON_GetObjectItem(t0, "offset")->valuedouble == 0 &&
              cJSON_GetObjectItem(t0, "size")->valuedouble == 131072);
        cJSON_Delete(j);
    }
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --json --full --no-tensors", bin, out);
    CHECK_EQ_INT(run(cmd, &o), 0);
    j = o ? cJSON_Parse(o) : NULL;
    CHECK(j != NULL);
    if (j) {
        CHECK(cJSON_GetObjectItem(j, "tensors") == NULL);
        cJSON *toks = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "tokenizer.ggml.tokens");
        CHECK(toks && cJSON_GetArraySize(cJSON_GetObjectItem(toks, "value")) == 512 &&
              cJSON_IsFalse(cJSON_GetObjectItem(toks, "truncated")));
        cJSON_Delete(j);
    }
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s'", bin, ref);
    CHECK_EQ_INT(run(cmd, &o), 0);
    CHECK(o && strstr(o, "blk.4.ffn_down.weight") && strstr(o, "llama.context_length") && strstr(o, "2048"));
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s'", bin, model); /* not a GGUF */
    CHECK_EQ_INT(run(cmd, NULL), 1);
    snprintf(cmd, sizeof cmd, "'%s' inspect", bin);
    CHECK_EQ_INT(run(cmd, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' --bogus", bin, out);
    CHECK_EQ_INT(run(cmd, NULL), 2);
    snprintf(cmd, sizeof cmd, "'%s' inspect --help", bin);
    CHECK_EQ_INT(run(cmd, &o), 0);
    CHECK(o && strstr(o, "usage: qai inspect"));
    free(o);
}

int main(void) {
    const char *data = TEST_DATA();
    snprintf(model, sizeof model, "%s/models/stories260K/stories260K.bin", data);
    snprintf(tok, sizeof tok, "%s/models/stories260K/tok512.bin", data);
    snprintf(big_tok, sizeof big_tok, "%s/models/llama2-tokenizer/tokenizer.bin", data);
    snprintf(ref, sizeof ref, "%s/models/stories260K-gguf/stories260K.gguf", data);
    snprintf(out, sizeof out, "%s/test_llama2c_%d.gguf", TEST_TMP(), (int)getpid());
    snprintf(tmp_bin, sizeof tmp_bin, "%s/test_llama2c_%d.bin", TEST_TMP(), (int)getpid());
    test_against_llama_cpp();
    test_malformed();
    test_unshared_classifier();
    test_vocab_only();
    test_cli();
    unlink(out);
    unlink(tmp_bin);
    return test_summary();
}
