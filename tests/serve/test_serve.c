/* qai serve over real HTTP on 127.0.0.1 (ephemeral ports), on a small random
 * model written by qai_model_init_random:
 * - greedy completions (plain and streamed) equal qai_generate's tokens for the
 *   same prompt; chat answers equal qai_generate on the templated prompt;
 * - 4 concurrent greedy requests give the same text as each alone (batching
 *   does not change results); a repeated prompt hits the prefix cache and gives
 *   the same text again;
 * - stop strings cut the text (never leaked, also across chunks when
 *   streaming); n > 1; n = 3 at temperature 0 gives three choices equal to
 *   n = 1 and evaluates the prompt once (the other two choices copy its KV
 *   state: the prefix-cache token counter grows by two whole prompts); logprobs
 *   checked against a log-softmax of the engine's
 *   own logits; seeds reproduce;
 * - errors: malformed JSON, wrong types, unknown model, too large bodies,
 *   unknown routes and methods, unsupported features and schema keywords — status and OpenAI's
 *   error shape; a full queue gives 503; a deadline gives 504;
 * - a client that disconnects mid-stream frees its slot; /metrics parses and
 *   its counters move; /health and /ready;
 * - the auth/accounting/audit hook with an in-test implementation (401, 403,
 *   429 + Retry-After, audit records), traffic splitting by weight and by user,
 *   route reload, and graceful shutdown finishing a running stream. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "qai/model.h"
#include "qai/serve.h"
#include "serve/http_client.h"
#include "test.h"

#define T_MAX_N 16

static char g_model[512];

/* ---- OpenAI shapes ---- */

typedef struct {
    char text[T_MAX_N][8192];
    char finish[T_MAX_N][16];
    int n_choices;
    bool done;       /* streaming: saw data: [DONE] last */
    int n_chunks;
    int completion_tokens, prompt_tokens;
    bool bad_shape;
} result;

/* cJSON ends a string at \u0000; the server sends NUL bytes of the text that
 * way, so the test renames them to U+2400 first (wire_text does the same). */
static void unnul(char *s) {
    for (char *p = s; p && (p = strstr(p, "\\u0000"));) memcpy(p, "\\u2400", 6);
}

static http_resp http_unnul(int port, const char *method, const char *path, const char *body, const char *extra) {
    http_resp r = http(port, method, path, body, extra);
    unnul(r.body);
    return r;
}
#define http http_unnul

static void check_error_shape(const http_resp *r, int status, const char *code) {
    CHECK_MSG(r->status == status, "status %d, expected %d (body %s)", r->status, status, r->body ? r->body : "");
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    CHECK_MSG(cJSON_IsObject(e), "no error object in %s", r->body ? r->body : "");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "message")) && strlen(cJSON_GetObjectItem(e, "message")->valuestring) > 0);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(e, "type")));
    CHECK(cJSON_HasObjectItem(e, "param") && cJSON_HasObjectItem(e, "code"));
    if (code) {
        const cJSON *c = cJSON_GetObjectItem(e, "code");
        CHECK_MSG(cJSON_IsString(c) && !strcmp(c->valuestring, code), "code %s, expected %s",
                  cJSON_IsString(c) ? c->valuestring : "?", code);
    }
    cJSON_Delete(j);
}

static void parse_full(const http_resp *r, bool chat, result *out) {
    memset(out, 0, sizeof *out);
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    if (!j) {
        out->bad_shape = true;
        return;
    }
    const cJSON *obj = cJSON_GetObjectItem(j, "object"), *ch = cJSON_GetObjectItem(j, "choices");
    out->bad_shape = !cJSON_IsString(obj) || strcmp(obj->valuestring, chat ? "chat.completion" : "text_completion") ||
                     !cJSON_IsString(cJSON_GetObjectItem(j, "id")) || !cJSON_IsNumber(cJSON_GetObjectItem(j, "created")) ||
                     !cJSON_IsString(cJSON_GetObjectItem(j, "model")) || !cJSON_IsArray(ch);
    const cJSON *c;
    cJSON_ArrayForEach(c, ch) {
        int idx = cJSON_GetObjectItem(c, "index")->valueint;
        if (idx < 0 || idx >= T_MAX_N) continue;
        const cJSON *t = chat ? cJSON_GetObjectItem(cJSON_GetObjectItem(c, "message"), "content") : cJSON_GetObjectItem(c, "text");
        if (cJSON_IsString(t)) snprintf(out->text[idx], sizeof out->text[idx], "%s", t->valuestring);
        else
            out->bad_shape = true;
        const cJSON *f = cJSON_GetObjectItem(c, "finish_reason");
        if (cJSON_IsString(f)) snprintf(out->finish[idx], sizeof out->finish[idx], "%s", f->valuestring);
        if (!cJSON_HasObjectItem(c, "logprobs")) out->bad_shape = true;
        out->n_choices++;
    }
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    out->prompt_tokens = cJSON_GetObjectItem(u, "prompt_tokens") ? cJSON_GetObjectItem(u, "prompt_tokens")->valueint : -1;
    out->completion_tokens = cJSON_GetObjectItem(u, "completion_tokens") ? cJSON_GetObjectItem(u, "completion_tokens")->valueint : -1;
    const cJSON *tt = cJSON_GetObjectItem(u, "total_tokens");
    if (!cJSON_IsNumber(tt) || tt->valueint != out->prompt_tokens + out->completion_tokens) out->bad_shape = true;
    cJSON_Delete(j);
}

static void parse_stream(const http_resp *r, bool chat, result *out) {
    memset(out, 0, sizeof *out);
    char *p = r->body;
    if (!p) {
        out->bad_shape = true;
        return;
    }
    while (*p) {
        char *end = strstr(p, "\n\n");
        if (!end) {
            out->bad_shape = true;
            break;
        }
        *end = 0;
        if (strncmp(p, "data: ", 6)) out->bad_shape = true;
        else if (!strcmp(p + 6, "[DONE]"))
            out->done = true;
        else {
            if (out->done) out->bad_shape = true; /* data after [DONE] */
            cJSON *j = cJSON_Parse(p + 6);
            const cJSON *obj = cJSON_GetObjectItem(j, "object");
            if (cJSON_GetObjectItem(j, "error")) out->bad_shape = true;
            if (!cJSON_IsString(obj) || strcmp(obj->valuestring, chat ? "chat.completion.chunk" : "text_completion"))
                out->bad_shape = true;
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "choices")) {
                int idx = cJSON_GetObjectItem(c, "index")->valueint;
                if (idx < 0 || idx >= T_MAX_N) continue;
                if (idx + 1 > out->n_choices) out->n_choices = idx + 1;
                const cJSON *t = chat ? cJSON_GetObjectItem(cJSON_GetObjectItem(c, "delta"), "content") : cJSON_GetObjectItem(c, "text");
                if (cJSON_IsString(t)) strncat(out->text[idx], t->valuestring, sizeof out->text[idx] - strlen(out->text[idx]) - 1);
                const cJSON *f = cJSON_GetObjectItem(c, "finish_reason");
                if (cJSON_IsString(f)) snprintf(out->finish[idx], sizeof out->finish[idx], "%s", f->valuestring);
            }
            const cJSON *u = cJSON_GetObjectItem(j, "usage");
            if (cJSON_IsObject(u)) {
                out->prompt_tokens = cJSON_GetObjectItem(u, "prompt_tokens")->valueint;
                out->completion_tokens = cJSON_GetObjectItem(u, "completion_tokens")->valueint;
            }
            out->n_chunks++;
            cJSON_Delete(j);
        }
        p = end + 2;
    }
}

/* ---- the reference: qai_generate on its own context ---- */

typedef struct {
    char text[8192];
    size_t n;
    int n_tok;
} gen_out;

static bool collect(void *user, int32_t token, const char *piece, size_t len) {
    (void)token;
    gen_out *g = user;
    if (g->n + len < sizeof g->text) {
        memcpy(g->text + g->n, piece, len);
        g->n += len;
        g->text[g->n] = 0;
    }
    g->n_tok++;
    return true;
}

static qai_model *g_ref_model;
static qai_context *g_ref_ctx;

static void reference(const char *text, bool chat, int n_predict, gen_out *out) {
    memset(out, 0, sizeof *out);
    const qai_tokenizer *tok = qai_model_tokenizer(g_ref_model);
    char *prompt = NULL;
    if (chat) {
        qai_chat_message m = {.role = "user", .content = text};
        CHECK_OK(qai_chat_apply(QAI_CHAT_CHATML, &m, 1, true, &prompt));
    } else
        prompt = qai_strdup(text);
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(tok, prompt, strlen(prompt), QAI_TOK_ADD_SPECIAL | (chat ? QAI_TOK_PARSE_SPECIAL : 0), &ids, &n));
    qai_generate_params gp = {.n_predict = n_predict};
    gp.sampling = qai_sampler_default_params();
    gp.sampling.temp = 0;
    CHECK_OK(qai_generate(g_ref_ctx, 0, ids, (int)n, &gp, collect, out, NULL));
    qai_free(ids);
    qai_free(prompt);
}

/* The JSON text of a string (for building request bodies). */
static char *jstr(const char *s) {
    cJSON *x = cJSON_CreateString(s);
    char *o = cJSON_PrintUnformatted(x);
    cJSON_Delete(x);
    return o;
}

static http_resp completion(int port, const char *prompt, int max_tokens, const char *extra_json) {
    char *p = jstr(prompt);
    size_t cap = strlen(p) + (extra_json ? strlen(extra_json) : 0) + 256;
    char *body = malloc(cap);
    snprintf(body, cap, "{\"model\":\"tiny\",\"prompt\":%s,\"max_tokens\":%d,\"temperature\":0%s%s}", p, max_tokens,
             extra_json ? "," : "", extra_json ? extra_json : "");
    free(p);
    http_resp r = http(port, "POST", "/v1/completions", body, NULL);
    free(body);
    return r;
}

static http_resp chat(int port, const char *content, int max_tokens, const char *extra_json) {
    char *c = jstr(content);
    char body[16384];
    snprintf(body, sizeof body,
             "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":%s}],\"max_tokens\":%d,\"temperature\":0%s%s}", c,
             max_tokens, extra_json ? "," : "", extra_json ? extra_json : "");
    free(c);
    return http(port, "POST", "/v1/chat/completions", body, NULL);
}

/* The JSON-decoded form of reference text (invalid UTF-8 becomes U+FFFD on the
 * wire), via the same route: encode as the server does, then parse. */
static void wire_text(const char *raw, size_t n, char *out, size_t cap) {
    /* U+FFFD replacement of invalid bytes and \u escapes: compare after a JSON round trip of the server's
     * encoding. We replicate the server's rule here independently: valid UTF-8 passes, other bytes -> U+FFFD. */
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)raw;
    for (size_t i = 0; i < n && o + 4 < cap;) {
        unsigned c = s[i];
        int len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        bool ok = len > 0 && i + (size_t)len <= n;
        unsigned cp = len <= 1 ? c : (c & (0x3F >> (len - 1)));
        for (int k = 1; ok && k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) ok = false;
            else
                cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (ok && len > 1) {
            static const unsigned mins[] = {0, 0, 0x80, 0x800, 0x10000};
            if (cp < mins[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
        }
        if (ok && !(len == 1 && c == 0)) {
            memcpy(out + o, s + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
        } else if (ok) { /* NUL: sent as \u0000, which the test maps to U+2400 before cJSON (see unnul) */
            memcpy(out + o, "\xE2\x90\x80", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
}

/* ---- tests ---- */

static const char *PROMPTS[] = {"Once upon a time", "The quick brown fox", "In a hole in the ground", "It was a dark and stormy night"};

static void test_basic(int port) {
    http_resp r = http(port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    r = http(port, "GET", "/ready", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "ready"));
    resp_free(&r);
    r = http(port, "GET", "/v1/models", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *d = cJSON_GetObjectItem(j, "data");
    CHECK(cJSON_IsArray(d) && cJSON_GetArraySize(d) == 1 && !strcmp(cJSON_GetObjectItem(d->child, "id")->valuestring, "tiny"));
    cJSON_Delete(j);
    resp_free(&r);
    /* tokenize / detokenize round trip, against the tokenizer itself */
    r = http(port, "POST", "/v1/tokenize", "{\"content\":\"Hello world\"}", NULL);
    CHECK_EQ_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    const cJSON *toks = cJSON_GetObjectItem(j, "tokens");
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(g_ref_model), "Hello world", 11, QAI_TOK_PARSE_SPECIAL, &ids, &n));
    CHECK_EQ_INT(cJSON_GetArraySize(toks), (int)n);
    for (size_t i = 0; i < n && i < (size_t)cJSON_GetArraySize(toks); i++) CHECK_EQ_INT(cJSON_GetArrayItem(toks, (int)i)->valueint, ids[i]);
    char *tj = cJSON_PrintUnformatted(toks);
    char body[4096];
    snprintf(body, sizeof body, "{\"tokens\":%s}", tj);
    free(tj);
    qai_free(ids);
    cJSON_Delete(j);
    resp_free(&r);
    r = http(port, "POST", "/v1/detokenize", body, NULL);
    CHECK_EQ_INT(r.status, 200);
    j = cJSON_Parse(r.body);
    const cJSON *content = cJSON_GetObjectItem(j, "content");
    char *dec = NULL;
    CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(g_ref_model), "Hello world", 11, QAI_TOK_PARSE_SPECIAL, &ids, &n));
    CHECK_OK(qai_tokenizer_decode(qai_model_tokenizer(g_ref_model), ids, n, 0, &dec, NULL));
    CHECK_MSG(cJSON_IsString(content) && dec && !strcmp(content->valuestring, dec), "detokenize gave %s", r.body);
    qai_free(dec);
    qai_free(ids);
    cJSON_Delete(j);
    resp_free(&r);
}

static void test_greedy(int port) {
    for (int k = 0; k < 2; k++) {
        gen_out ref;
        reference(PROMPTS[k], false, 24, &ref);
        char want[16384];
        wire_text(ref.text, ref.n, want, sizeof want);
        http_resp r = completion(port, PROMPTS[k], 24, NULL);
        CHECK_EQ_INT(r.status, 200);
        result res;
        parse_full(&r, false, &res);
        CHECK(!res.bad_shape);
        CHECK_MSG(!strcmp(res.text[0], want), "completion '%s' != qai_generate '%s'", res.text[0], want);
        CHECK_EQ_INT(res.completion_tokens, ref.n_tok);
        CHECK(!strcmp(res.finish[0], ref.n_tok == 24 ? "length" : "stop"));
        resp_free(&r);
        /* streamed, with usage */
        r = completion(port, PROMPTS[k], 24, "\"stream\":true,\"stream_options\":{\"include_usage\":true}");
        CHECK_EQ_INT(r.status, 200);
        char ct[128];
        CHECK(header(&r, "Content-Type", ct, sizeof ct) && !strcmp(ct, "text/event-stream"));
        parse_stream(&r, false, &res);
        CHECK(!res.bad_shape && res.done);
        CHECK_MSG(!strcmp(res.text[0], want), "streamed '%s' != qai_generate '%s'", res.text[0], want);
        CHECK_EQ_INT(res.completion_tokens, ref.n_tok);
        CHECK(res.n_chunks >= 3);
        resp_free(&r);
        /* chat, plain and streamed */
        reference(PROMPTS[k], true, 16, &ref);
        wire_text(ref.text, ref.n, want, sizeof want);
        r = chat(port, PROMPTS[k], 16, NULL);
        CHECK_EQ_INT(r.status, 200);
        parse_full(&r, true, &res);
        CHECK(!res.bad_shape);
        CHECK_MSG(!strcmp(res.text[0], want), "chat '%s' != qai_generate '%s'", res.text[0], want);
        resp_free(&r);
        r = chat(port, PROMPTS[k], 16, "\"stream\":true");
        parse_stream(&r, true, &res);
        CHECK(!res.bad_shape && res.done);
        CHECK_MSG(!strcmp(res.text[0], want), "streamed chat '%s' != '%s'", res.text[0], want);
        resp_free(&r);
    }
}

typedef struct {
    int port, k;
    bool stream;
    result res;
} conc_arg;

static void *conc_thread(void *p) {
    conc_arg *a = p;
    http_resp r = completion(a->port, PROMPTS[a->k], 32, a->stream ? "\"stream\":true" : NULL);
    if (a->stream) parse_stream(&r, false, &a->res);
    else
        parse_full(&r, false, &a->res);
    if (r.status != 200) a->res.bad_shape = true;
    resp_free(&r);
    return NULL;
}

static void test_concurrent(int port) {
    char want[4][16384];
    for (int k = 0; k < 4; k++) {
        gen_out ref;
        reference(PROMPTS[k], false, 32, &ref);
        wire_text(ref.text, ref.n, want[k], sizeof want[k]);
    }
    for (int round = 0; round < 2; round++) {
        conc_arg a[4];
        pthread_t th[4];
        for (int k = 0; k < 4; k++) {
            a[k] = (conc_arg){.port = port, .k = k, .stream = (k + round) % 2 == 0};
            pthread_create(&th[k], NULL, conc_thread, &a[k]);
        }
        for (int k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
            CHECK(!a[k].res.bad_shape);
            CHECK_MSG(!strcmp(a[k].res.text[0], want[k]), "concurrent request %d: '%s' != alone '%s'", k, a[k].res.text[0], want[k]);
        }
    }
}

static void test_stop(int port) {
    gen_out ref;
    reference(PROMPTS[2], false, 40, &ref);
    char want[16384];
    wire_text(ref.text, ref.n, want, sizeof want);
    size_t L = strlen(want);
    if (L < 12) {
        CHECK_MSG(0, "reference text too short for the stop test (%zu bytes)", L);
        return;
    }
    /* a stop string from the middle of the text: 4 printable ASCII bytes, likely spanning tokens */
    char stop[8];
    size_t at = L / 3, sl = 4;
    while (at + sl <= L) {
        bool ascii = true;
        for (size_t k = 0; k < sl; k++) ascii &= want[at + k] >= 0x20 && want[at + k] < 0x7F && want[at + k] != '\\';
        if (ascii) break;
        at++;
    }
    if (at + sl > L) {
        CHECK_MSG(0, "no printable stretch for a stop string in '%s'", want);
        return;
    }
    memcpy(stop, want + at, sl);
    stop[sl] = 0;
    size_t first = (size_t)(strstr(want, stop) - want);
    char *sj = jstr(stop);
    char extra[256];
    for (int stream = 0; stream < 2; stream++) {
        snprintf(extra, sizeof extra, "\"stop\":[\"zzzzqqqq\",%s]%s", sj, stream ? ",\"stream\":true" : "");
        http_resp r = completion(port, PROMPTS[2], 40, extra);
        result res;
        if (stream) parse_stream(&r, false, &res);
        else
            parse_full(&r, false, &res);
        CHECK_EQ_INT(r.status, 200);
        CHECK_MSG(strlen(res.text[0]) == first && !strncmp(res.text[0], want, first),
                  "stop '%s' (stream %d): got '%s', want the first %zu bytes of '%s'", stop, stream, res.text[0], first, want);
        CHECK(!strstr(res.text[0], stop));
        CHECK(!strcmp(res.finish[0], "stop"));
        resp_free(&r);
    }
    free(sj);
    /* a single stop string as a plain string works too */
    http_resp r = completion(port, PROMPTS[2], 40, "\"stop\":\"\\u0001never\"");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
}

static void test_sampling(int port) {
    /* n > 1 with a seed: three choices, reproducible */
    const char *extra = "\"n\":3,\"temperature\":1.0,\"seed\":1234";
    http_resp a = completion(port, PROMPTS[0], 12, extra), b = completion(port, PROMPTS[0], 12, extra);
    result ra, rb;
    parse_full(&a, false, &ra);
    parse_full(&b, false, &rb);
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(ra.n_choices, 3);
    CHECK(!ra.bad_shape);
    for (int i = 0; i < 3; i++) CHECK_MSG(!strcmp(ra.text[i], rb.text[i]), "seeded choice %d differs: '%s' vs '%s'", i, ra.text[i], rb.text[i]);
    CHECK(ra.completion_tokens > 12 && ra.completion_tokens <= 36);
    resp_free(&a);
    resp_free(&b);
    /* streamed n = 2 gives two indexed choices that equal the plain ones */
    a = completion(port, PROMPTS[0], 12, "\"n\":3,\"temperature\":1.0,\"seed\":1234,\"stream\":true");
    parse_stream(&a, false, &rb);
    CHECK_EQ_INT(rb.n_choices, 3);
    for (int i = 0; i < 3; i++) CHECK_MSG(!strcmp(ra.text[i], rb.text[i]), "streamed seeded choice %d differs", i);
    resp_free(&a);
}

static void test_logprobs(int port) {
    http_resp r = chat(port, PROMPTS[1], 6, "\"logprobs\":true,\"top_logprobs\":3");
    CHECK_EQ_INT(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "logprobs"), "content");
    CHECK(cJSON_IsArray(content) && cJSON_GetArraySize(content) >= 1);
    /* the first token's log-probability from the engine's logits, computed here */
    const qai_tokenizer *tok = qai_model_tokenizer(g_ref_model);
    char *prompt;
    qai_chat_message m = {.role = "user", .content = PROMPTS[1]};
    CHECK_OK(qai_chat_apply(QAI_CHAT_CHATML, &m, 1, true, &prompt));
    int32_t *ids;
    size_t n;
    CHECK_OK(qai_tokenizer_encode(tok, prompt, strlen(prompt), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids, &n));
    qai_kv_truncate(g_ref_ctx, 0, 0);
    CHECK_OK(qai_decode_tokens(g_ref_ctx, 0, 0, ids, (int)n));
    const float *lg = qai_context_logits(g_ref_ctx, (int)n - 1);
    int V = qai_model_get_info(g_ref_model)->n_vocab, best = 0;
    double mx = -1e30, sum = 0;
    for (int v = 0; v < V; v++)
        if (lg[v] > mx) mx = lg[v], best = v;
    for (int v = 0; v < V; v++) sum += exp(lg[v] - mx);
    double lp_best = lg[best] - mx - log(sum);
    const cJSON *e0 = cJSON_GetArrayItem(content, 0);
    CHECK_CLOSE("first token logprob", &(float){(float)cJSON_GetObjectItem(e0, "logprob")->valuedouble}, &(float){(float)lp_best}, 1, 1e-4f, 1e-4f);
    const cJSON *e;
    cJSON_ArrayForEach(e, content) {
        const cJSON *top = cJSON_GetObjectItem(e, "top_logprobs");
        CHECK(cJSON_IsArray(top) && cJSON_GetArraySize(top) == 3);
        double lp = cJSON_GetObjectItem(e, "logprob")->valuedouble;
        CHECK(lp <= 0);
        /* greedy: the chosen token is the most likely one; top entries sorted */
        CHECK_MSG(fabs(cJSON_GetObjectItem(top->child, "logprob")->valuedouble - lp) < 1e-6, "greedy token is not the top-1");
        CHECK(cJSON_GetObjectItem(top->child, "logprob")->valuedouble >= cJSON_GetObjectItem(top->child->next, "logprob")->valuedouble);
        CHECK(cJSON_IsArray(cJSON_GetObjectItem(e, "bytes")));
    }
    qai_free(ids);
    qai_free(prompt);
    cJSON_Delete(j);
    resp_free(&r);
    /* legacy completions shape */
    r = completion(port, PROMPTS[1], 4, "\"logprobs\":2");
    j = cJSON_Parse(r.body);
    const cJSON *lp = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "logprobs");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(lp, "tokens")) == 4 && cJSON_GetArraySize(cJSON_GetObjectItem(lp, "token_logprobs")) == 4 &&
          cJSON_GetArraySize(cJSON_GetObjectItem(lp, "top_logprobs")) == 4 && cJSON_GetArraySize(cJSON_GetObjectItem(lp, "text_offset")) == 4);
    CHECK(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "top_logprobs"), 0)) == 2);
    cJSON_Delete(j);
    resp_free(&r);
}

static void test_errors(int port) {
    http_resp r = http(port, "POST", "/v1/completions", "{\"prompt\": \"x\",", NULL);
    check_error_shape(&r, 400, "invalid_json");
    resp_free(&r);
    r = http(port, "POST", "/v1/chat/completions", "{\"messages\": \"hello\"}", NULL);
    check_error_shape(&r, 400, "invalid_type");
    CHECK(r.body && strstr(r.body, "\"param\":\"messages\""));
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", "{\"prompt\": \"x\", \"temperature\": \"hot\"}", NULL);
    check_error_shape(&r, 400, "invalid_type");
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2.5}", NULL);
    check_error_shape(&r, 400, "invalid_type");
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", "{\"prompt\": \"x\", \"n\": 0}", NULL);
    check_error_shape(&r, 400, "invalid_value");
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", "[1,2]", NULL);
    check_error_shape(&r, 400, "invalid_type");
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", "{\"model\": \"nope\", \"prompt\": \"x\"}", NULL);
    check_error_shape(&r, 404, "model_not_found");
    resp_free(&r);
    /* structured output and embeddings are tested in test_serve_structured.c; here only their input checks */
    r = http(port, "POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}", NULL);
    check_error_shape(&r, 400, "missing_field");
    resp_free(&r);
    r = http(port, "POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
             "{\"schema\":{\"type\":\"array\",\"items\":[{\"type\":\"integer\"}]}}}}", NULL);
    check_error_shape(&r, 400, "unsupported");
    CHECK(r.body && strstr(r.body, "'items'"));
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", "{\"prompt\":\"x\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}", NULL);
    check_error_shape(&r, 400, "unsupported");
    resp_free(&r);
    r = http(port, "POST", "/v1/embeddings", "{\"inputs\":\"x\"}", NULL);
    check_error_shape(&r, 400, "missing_field");
    resp_free(&r);
    r = http(port, "GET", "/v1/nothing", NULL, NULL);
    check_error_shape(&r, 404, "not_found");
    resp_free(&r);
    r = http(port, "DELETE", "/v1/completions", NULL, NULL);
    check_error_shape(&r, 405, "method_not_allowed");
    resp_free(&r);
    /* a prompt that does not fit the context */
    char *big = malloc(40000);
    memset(big, 'a', 39999);
    big[39999] = 0;
    r = completion(port, big, 4, NULL);
    check_error_shape(&r, 400, "context_length_exceeded");
    resp_free(&r);
    free(big);
    /* a body over the limit (64 KiB here): answered from the headers alone */
    int fd = connect_to(port);
    const char *head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n";
    send_all(fd, head, strlen(head));
    size_t n;
    char *raw = read_all(fd, &n);
    close(fd);
    parse_response(raw, n, &r);
    unnul(r.body);
    check_error_shape(&r, 413, "request_too_large");
    resp_free(&r);
    /* ... and one that lies about nothing but is sent in full */
    big = malloc(70000);
    memset(big, ' ', 69999);
    big[0] = '{', big[69998] = '}', big[69999] = 0;
    r = http(port, "POST", "/v1/completions", big, NULL);
    check_error_shape(&r, 413, "request_too_large");
    resp_free(&r);
    free(big);
}

/* Every sample line is `name{labels} value`; returns the value of the first
 * line starting with `prefix` (NAN if none). */
static double metric(const char *text, const char *prefix, bool *well_formed) {
    double v = NAN;
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && p[0] != '#') {
            char line[1024];
            snprintf(line, sizeof line, "%.*s", (int)(len < 1023 ? len : 1023), p);
            char *sp = strrchr(line, ' ');
            char *end = NULL;
            double x = sp ? strtod(sp + 1, &end) : NAN;
            if (!sp || !end || *end || (strchr(line, '{') && (!strchr(line, '}') || strchr(line, '}') > sp)))
                *well_formed = false;
            if (isnan(v) && !strncmp(line, prefix, strlen(prefix))) v = x;
        }
        p = nl ? nl + 1 : NULL;
    }
    return v;
}

/* n = 3 at temperature 0: the choices share one prefill, and equal n = 1. */
static void test_n_shared(int port) {
    const char *prompt = "Three ways the same story begins, once";
    bool ok = true;
    http_resp r = http(port, "GET", "/metrics", NULL, NULL);
    double tok0 = metric(r.body, "qai_prefix_cache_tokens_total{model=\"tiny\"}", &ok);
    resp_free(&r);
    http_resp a = completion(port, prompt, 16, "\"n\":3,\"temperature\":0");
    r = http(port, "GET", "/metrics", NULL, NULL);
    double tok1 = metric(r.body, "qai_prefix_cache_tokens_total{model=\"tiny\"}", &ok);
    resp_free(&r);
    http_resp b = completion(port, prompt, 16, "\"temperature\":0");
    result ra, rb;
    parse_full(&a, false, &ra);
    parse_full(&b, false, &rb);
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(ra.n_choices, 3);
    CHECK(!ra.bad_shape && !rb.bad_shape && ok);
    for (int i = 0; i < 3; i++) CHECK_MSG(!strcmp(ra.text[i], rb.text[0]), "greedy choice %d: '%s' != n=1 '%s'", i, ra.text[i], rb.text[0]);
    /* two of the three choices reused the whole prompt (a separate prefill would
     * have found at most the BOS token cached) */
    CHECK_MSG(ra.prompt_tokens > 4 && tok1 - tok0 >= 2.0 * ra.prompt_tokens,
              "prefix-cache tokens grew by %g for n = 3 over a %d-token prompt: each choice prefilled separately?", tok1 - tok0,
              ra.prompt_tokens);
    resp_free(&a);
    resp_free(&b);
}

static void test_metrics(int port) {
    http_resp r = http(port, "GET", "/metrics", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    bool ok = true;
    const char *key = "qai_requests_total{endpoint=\"/v1/completions\",model=\"tiny\",variant=\"tiny\",status=\"200\"}";
    double before = metric(r.body, key, &ok);
    double tok_before = metric(r.body, "qai_tokens_total{model=\"tiny\",variant=\"tiny\",kind=\"completion\"}", &ok);
    double hits_before = metric(r.body, "qai_prefix_cache_hits_total{model=\"tiny\"}", &ok);
    CHECK(ok);
    CHECK(before >= 1);
    CHECK(!isnan(metric(r.body, "qai_infer_latency_ms_count{model=\"tiny\"", &ok)));
    CHECK(!isnan(metric(r.body, "qai_ttft_ms_bucket{model=\"tiny\",variant=\"tiny\",le=\"+Inf\"}", &ok)));
    CHECK(!isnan(metric(r.body, "qai_kv_cache_used_ratio{model=\"tiny\"}", &ok)));
    CHECK(!isnan(metric(r.body, "qai_queue_depth{model=\"tiny\"}", &ok)));
    CHECK(!isnan(metric(r.body, "qai_batch_size{model=\"tiny\"}", &ok)));
    CHECK(strstr(r.body, "# TYPE qai_infer_latency_ms histogram") != NULL);
    resp_free(&r);
    /* the same prompt twice: the second reuses the cached prefix and answers the same */
    http_resp a = completion(port, PROMPTS[3], 8, NULL), b = completion(port, PROMPTS[3], 8, NULL);
    result ra, rb;
    parse_full(&a, false, &ra);
    parse_full(&b, false, &rb);
    CHECK(!strcmp(ra.text[0], rb.text[0]));
    resp_free(&a);
    resp_free(&b);
    r = http(port, "GET", "/metrics", NULL, NULL);
    double after = metric(r.body, key, &ok);
    CHECK_MSG(after == before + 2, "requests counter %g -> %g", before, after);
    CHECK(metric(r.body, "qai_tokens_total{model=\"tiny\",variant=\"tiny\",kind=\"completion\"}", &ok) >= tok_before + 16);
    CHECK_MSG(metric(r.body, "qai_prefix_cache_hits_total{model=\"tiny\"}", &ok) >= hits_before + 1, "no prefix-cache hit");
    CHECK(ok);
    resp_free(&r);
}

/* ---- the auth hook, with an in-test key table ---- */

typedef struct {
    pthread_mutex_t mu;
    int n_audit, n_begin, n_end;
    qai_serve_audit last;
    char last_key[64], last_outcome[64], last_variant[64], last_endpoint[64];
    int64_t end_tokens;
} auth_state;

static int t_authenticate(void *user, const char *secret, const char *endpoint, qai_serve_key *key, char *msg, size_t cap) {
    (void)user;
    if (!secret) return 401;
    if (!strcmp(secret, "sk-forbidden")) {
        snprintf(msg, cap, "key 'k3' has scope 'admin-read' only");
        return 403;
    }
    if (strcmp(secret, "sk-good") && strcmp(secret, "sk-limited")) return 401;
    snprintf(key->key_id, sizeof key->key_id, "%s", !strcmp(secret, "sk-good") ? "k1" : "k2");
    snprintf(key->scope, sizeof key->scope, "inference");
    (void)endpoint;
    return 0;
}

static int t_account(void *user, const qai_serve_key *key, qai_account_phase phase, int64_t tokens, int *retry, char *msg, size_t cap) {
    auth_state *a = user;
    pthread_mutex_lock(&a->mu);
    if (phase == QAI_ACCOUNT_BEGIN) a->n_begin++;
    else
        a->n_end++, a->end_tokens = tokens;
    pthread_mutex_unlock(&a->mu);
    if (phase == QAI_ACCOUNT_BEGIN && !strcmp(key->key_id, "k2")) {
        *retry = 7;
        snprintf(msg, cap, "key 'k2' used its 10 requests per minute");
        return 429;
    }
    return 0;
}

static void t_audit(void *user, const qai_serve_audit *rec) {
    auth_state *a = user;
    pthread_mutex_lock(&a->mu);
    a->n_audit++;
    a->last = *rec;
    snprintf(a->last_key, sizeof a->last_key, "%s", rec->key_id);
    snprintf(a->last_outcome, sizeof a->last_outcome, "%s", rec->outcome);
    snprintf(a->last_variant, sizeof a->last_variant, "%s", rec->variant);
    snprintf(a->last_endpoint, sizeof a->last_endpoint, "%s", rec->endpoint);
    pthread_mutex_unlock(&a->mu);
}

static void test_auth_and_routes(void) {
    auth_state as = {.mu = PTHREAD_MUTEX_INITIALIZER};
    qai_serve_params p = qai_serve_default_params();
    qai_serve_model_spec ms[2] = {{.name = "tiny", .path = g_model, .template_name = "chatml"},
                                  {.name = "tiny2", .path = g_model, .template_name = "chatml"}};
    p.models = ms, p.n_models = 2, p.port = 0, p.parallel = 2, p.n_ctx = 256, p.n_threads = 1, p.quiet = true;
    p.auth = (qai_serve_auth){.user = &as, .authenticate = t_authenticate, .account = t_account, .audit = t_audit};
    cJSON *routes = cJSON_Parse("{\"canary\":{\"variants\":{\"stable\":{\"model\":\"tiny\",\"weight\":1},\"next\":{\"model\":\"tiny2\",\"weight\":0}}}}");
    p.routes = routes;
    qai_server *srv;
    CHECK_OK(qai_server_open(&p, &srv));
    cJSON_Delete(routes);
    if (!srv) return;
    int port = qai_server_port(srv);
    const char *body = "{\"model\":\"canary\",\"prompt\":\"abc\",\"max_tokens\":3,\"temperature\":0}";
    http_resp r = http(port, "POST", "/v1/completions", body, NULL);
    check_error_shape(&r, 401, "invalid_api_key");
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", body, "Authorization: Bearer sk-wrong\r\n");
    check_error_shape(&r, 401, "invalid_api_key");
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", body, "Authorization: Bearer sk-forbidden\r\n");
    check_error_shape(&r, 403, NULL);
    CHECK(r.body && strstr(r.body, "admin-read"));
    resp_free(&r);
    r = http(port, "POST", "/v1/completions", body, "Authorization: Bearer sk-limited\r\n");
    check_error_shape(&r, 429, "rate_limit_exceeded");
    char v[64];
    CHECK(header(&r, "Retry-After", v, sizeof v) && !strcmp(v, "7"));
    resp_free(&r);
    /* /health needs no key */
    r = http(port, "GET", "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    for (int i = 0; i < 3; i++) {
        r = http(port, "POST", "/v1/completions", body, "Authorization: Bearer sk-good\r\n");
        CHECK_EQ_INT(r.status, 200);
        CHECK(header(&r, "X-Qai-Variant", v, sizeof v) && !strcmp(v, "stable"));
        resp_free(&r);
    }
    pthread_mutex_lock(&as.mu);
    CHECK_EQ_INT(as.n_audit, 7); /* audit happens after the response; all are done: connections closed */
    CHECK(!strcmp(as.last_key, "k1") && !strcmp(as.last_outcome, "length") && !strcmp(as.last_variant, "stable"));
    CHECK_EQ_INT(as.last.status, 200);
    CHECK_EQ_INT(as.last.completion_tokens, 3);
    CHECK(as.last.latency_ms > 0);
    CHECK_EQ_INT(as.n_begin, 4);
    CHECK_EQ_INT(as.n_end, 3);
    CHECK_EQ_INT(as.end_tokens, as.last.prompt_tokens + 3);
    pthread_mutex_unlock(&as.mu);
    /* embeddings go through the same key check, accounting and audit */
    r = http(port, "POST", "/v1/embeddings", "{\"model\":\"canary\",\"input\":\"abc\"}", NULL);
    check_error_shape(&r, 401, "invalid_api_key");
    resp_free(&r);
    r = http(port, "POST", "/v1/embeddings", "{\"model\":\"canary\",\"input\":\"abc\"}", "Authorization: Bearer sk-good\r\n");
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    int32_t *eids;
    size_t en;
    CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(g_ref_model), "abc", 3, QAI_TOK_ADD_SPECIAL, &eids, &en));
    qai_free(eids);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&as.mu);
        int n = as.n_audit;
        pthread_mutex_unlock(&as.mu);
        if (n >= 9) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&as.mu);
    CHECK_EQ_INT(as.n_audit, 9);
    CHECK(!strcmp(as.last_endpoint, "/v1/embeddings"));
    CHECK(!strcmp(as.last_key, "k1") && !strcmp(as.last_outcome, "ok") && !strcmp(as.last_variant, "stable"));
    CHECK_EQ_INT(as.last.status, 200);
    CHECK_EQ_INT(as.last.prompt_tokens, (int)en);
    CHECK_EQ_INT(as.last.completion_tokens, 0);
    CHECK_EQ_INT(as.n_begin, 5);
    CHECK_EQ_INT(as.n_end, 4);
    CHECK_EQ_INT(as.end_tokens, (int64_t)en);
    pthread_mutex_unlock(&as.mu);
    /* an unknown /v1/ path (404) and the /tokenize alias are audited too; /health is not */
    const char *const paths[][3] = {{"GET", "/v1/nope", "/v1/other"}, {"POST", "/tokenize", "/tokenize"}};
    for (int k = 0; k < 2; k++) {
        r = http(port, paths[k][0], paths[k][1], k ? "{\"model\":\"tiny\",\"content\":\"hi\"}" : NULL, "Authorization: Bearer sk-good\r\n");
        CHECK_EQ_INT(r.status, k ? 200 : 404);
        resp_free(&r);
        for (int i = 0; i < 500; i++) {
            pthread_mutex_lock(&as.mu);
            int n = as.n_audit;
            pthread_mutex_unlock(&as.mu);
            if (n >= 10 + k) break;
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&as.mu);
        CHECK_EQ_INT(as.n_audit, 10 + k);
        CHECK_MSG(!strcmp(as.last_endpoint, paths[k][2]), "audited endpoint '%s', want '%s'", as.last_endpoint,
                  paths[k][2]);
        pthread_mutex_unlock(&as.mu);
    }
    r = http(port, "GET", "/health", NULL, NULL);
    resp_free(&r);
    /* reload: all traffic to the other variant; then sticky 50/50 by user */
    routes = cJSON_Parse("{\"canary\":{\"variants\":{\"stable\":{\"model\":\"tiny\",\"weight\":0},\"next\":{\"model\":\"tiny2\",\"weight\":5}}}}");
    CHECK_OK(qai_server_set_routes(srv, routes));
    cJSON_Delete(routes);
    r = http(port, "POST", "/v1/completions", body, "Authorization: Bearer sk-good\r\n");
    CHECK(header(&r, "X-Qai-Variant", v, sizeof v) && !strcmp(v, "next"));
    resp_free(&r);
    routes = cJSON_Parse("{\"canary\":{\"variants\":{\"stable\":{\"model\":\"nope\"}}}}");
    CHECK(qai_server_set_routes(srv, routes) == QAI_ERR_NOT_FOUND); /* unknown model: old routes stay */
    cJSON_Delete(routes);
    routes = cJSON_Parse("{\"canary\":{\"variants\":{\"stable\":{\"model\":\"tiny\",\"weight\":1},\"next\":{\"model\":\"tiny2\",\"weight\":1}}}}");
    CHECK_OK(qai_server_set_routes(srv, routes));
    cJSON_Delete(routes);
    const char *ubody = "{\"model\":\"canary\",\"prompt\":\"abc\",\"max_tokens\":1,\"user\":\"alice\"}";
    char first[64] = "";
    bool same = true;
    for (int i = 0; i < 6; i++) {
        r = http(port, "POST", "/v1/completions", ubody, "Authorization: Bearer sk-good\r\n");
        header(&r, "X-Qai-Variant", v, sizeof v);
        if (!i) snprintf(first, sizeof first, "%s", v);
        same &= !strcmp(v, first);
        resp_free(&r);
    }
    CHECK_MSG(same && first[0], "sticky routing moved user 'alice' between variants");
    /* metrics carry the variant label */
    r = http(port, "GET", "/metrics", NULL, NULL);
    CHECK(r.body && strstr(r.body, "model=\"canary\",variant=\"stable\""));
    resp_free(&r);
    qai_server_close(srv);
}

/* ---- queue overflow, deadlines, disconnects, shutdown: one slot ---- */

typedef struct {
    int port;
    const char *body;
    http_resp r;
} req_arg;

static void *req_thread(void *p) {
    req_arg *a = p;
    a->r = http(a->port, "POST", "/v1/completions", a->body, NULL);
    return NULL;
}

static double scrape(int port, const char *prefix) {
    http_resp r = http(port, "GET", "/metrics", NULL, NULL);
    bool ok = true;
    double v = r.body ? metric(r.body, prefix, &ok) : NAN;
    resp_free(&r);
    return v;
}

static bool wait_metric(int port, const char *prefix, double want) {
    for (int i = 0; i < 1000; i++) { /* up to 10 s; normally immediate */
        if (scrape(port, prefix) == want) return true;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_one_slot(void) {
    auth_state as = {.mu = PTHREAD_MUTEX_INITIALIZER};
    qai_serve_params p = qai_serve_default_params();
    qai_serve_model_spec ms = {.name = "tiny", .path = g_model, .template_name = "chatml"};
    p.models = &ms, p.n_models = 1, p.port = 0, p.parallel = 1, p.max_queue = 1, p.n_ctx = 1024, p.n_threads = 1, p.quiet = true;
    p.timeout_s = 60;
    p.auth.user = &as, p.auth.audit = t_audit;
    qai_server *srv;
    CHECK_OK(qai_server_open(&p, &srv));
    if (!srv) return;
    int port = qai_server_port(srv);
    /* paused: one request takes the free slot's place, one waits, the third is refused */
    qai_server_pause(srv, true);
    req_arg a[2] = {{.port = port, .body = "{\"prompt\":\"one\",\"max_tokens\":4,\"temperature\":0}"},
                    {.port = port, .body = "{\"prompt\":\"two\",\"max_tokens\":4,\"temperature\":0}"}};
    pthread_t th[2];
    pthread_create(&th[0], NULL, req_thread, &a[0]);
    CHECK(wait_metric(port, "qai_queue_depth{model=\"tiny\"}", 1));
    pthread_create(&th[1], NULL, req_thread, &a[1]);
    CHECK(wait_metric(port, "qai_queue_depth{model=\"tiny\"}", 2));
    http_resp r = http(port, "POST", "/v1/completions", "{\"prompt\":\"three\",\"max_tokens\":4}", NULL);
    check_error_shape(&r, 503, "queue_full");
    resp_free(&r);
    qai_server_pause(srv, false);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(a[i].r.status, 200);
        resp_free(&a[i].r);
    }
    /* a client that disconnects mid-stream frees the slot */
    int fd = connect_to(port);
    send_request(fd, "POST", "/v1/completions", "{\"prompt\":\"long\",\"max_tokens\":1000,\"temperature\":0,\"stream\":true}", NULL);
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "\"text\"")) break; /* the first token arrived */
    }
    close(fd);
    r = completion(port, "after", 4, NULL); /* waits for the slot, which must come free */
    CHECK_EQ_INT(r.status, 200);
    resp_free(&r);
    for (int i = 0; i < 500; i++) { /* the audit of the cancelled stream comes when its thread ends */
        pthread_mutex_lock(&as.mu);
        int n = as.n_audit;
        pthread_mutex_unlock(&as.mu);
        if (n >= 4) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK(wait_metric(port, "qai_requests_total{endpoint=\"/v1/completions\",model=\"tiny\",variant=\"tiny\",status=\"200\"}", 4));
    CHECK(wait_metric(port, "qai_slots_busy{model=\"tiny\"}", 0));
    /* the stream's tokens were counted and are far fewer than it asked for */
    double gen = scrape(port, "qai_tokens_total{model=\"tiny\",variant=\"tiny\",kind=\"completion\"}");
    CHECK_MSG(gen < 4 * 3 + 500, "the disconnected stream went on generating (%g completion tokens in all)", gen);
    /* graceful shutdown lets a running stream finish */
    req_arg s = {.port = port, .body = "{\"prompt\":\"bye\",\"max_tokens\":40,\"temperature\":0,\"stream\":true}"};
    pthread_t st;
    qai_server_pause(srv, true);
    pthread_create(&st, NULL, req_thread, &s);
    CHECK(wait_metric(port, "qai_queue_depth{model=\"tiny\"}", 1));
    qai_server_pause(srv, false);
    qai_server_shutdown(srv, 10000);
    pthread_join(st, NULL);
    CHECK_EQ_INT(s.r.status, 200);
    result res;
    parse_stream(&s.r, false, &res);
    CHECK_MSG(res.done && !res.bad_shape, "the stream did not finish cleanly across shutdown");
    resp_free(&s.r);
    CHECK(connect_to(port) < 0 || true); /* refused or closed: nothing to assert portably */
    qai_server_close(srv);
}

static void test_timeout(void) {
    qai_serve_params p = qai_serve_default_params();
    qai_serve_model_spec ms = {.name = "tiny", .path = g_model};
    p.models = &ms, p.n_models = 1, p.port = 0, p.parallel = 1, p.n_ctx = 256, p.n_threads = 1, p.quiet = true;
    p.timeout_s = 0.2;
    qai_server *srv;
    CHECK_OK(qai_server_open(&p, &srv));
    if (!srv) return;
    qai_server_pause(srv, true);
    http_resp r = http(qai_server_port(srv), "POST", "/v1/completions", "{\"prompt\":\"late\",\"max_tokens\":4}", NULL);
    check_error_shape(&r, 504, "timeout");
    resp_free(&r);
    /* chat on a model without a recognized template: a clear 400 */
    qai_server_pause(srv, false);
    r = http(qai_server_port(srv), "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL);
    check_error_shape(&r, 400, "no_chat_template");
    resp_free(&r);
    qai_server_close(srv);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("QAI_TMP");
    snprintf(g_model, sizeof g_model, "%s/serve_tiny.gguf", tmp ? tmp : "/tmp");
    qai_init_params ip = {.arch = "llama", .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 128, .vocab = 512,
                          .ctx = 1024, .seed = 42, .type = QAI_TYPE_F32, .std = 0.5f};
    CHECK_OK(qai_model_init_random(&ip, g_model));
    CHECK_OK(qai_model_open(g_model, &g_ref_model));
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 512, cp.n_threads = 1;
    CHECK_OK(qai_context_new(g_ref_model, &cp, &g_ref_ctx));
    if (!g_ref_ctx) return test_summary();

    qai_serve_params p = qai_serve_default_params();
    qai_serve_model_spec ms = {.name = "tiny", .path = g_model, .template_name = "chatml"};
    p.models = &ms, p.n_models = 1, p.port = 0, p.parallel = 4, p.n_ctx = 512, p.n_threads = 2, p.batch = 64;
    p.max_body = 64 * 1024, p.quiet = true;
    qai_server *srv;
    CHECK_OK(qai_server_open(&p, &srv));
    if (srv) {
        int port = qai_server_port(srv);
        CHECK(port > 0);
        test_basic(port);
        test_greedy(port);
        test_concurrent(port);
        test_stop(port);
        test_sampling(port);
        test_n_shared(port);
        test_logprobs(port);
        test_errors(port);
        test_metrics(port);
        qai_server_close(srv);
    }
    test_auth_and_routes();
    test_one_slot();
    test_timeout();
    /* bad parameters fail cleanly */
    qai_serve_model_spec bad = {.name = "x", .path = "/nonexistent.gguf"};
    p.models = &bad;
    qai_server *none = NULL;
    CHECK(qai_server_open(&p, &none) != QAI_OK && none == NULL);
    CHECK(strstr(qai_last_error(), "'x'") != NULL);
    qai_context_free(g_ref_ctx);
    qai_model_close(g_ref_model);
    return test_summary();
}
