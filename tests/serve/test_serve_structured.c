/* qai serve's structured output, tool calls and embeddings, over real HTTP on
 * 127.0.0.1 (ephemeral port), on a random-weight model with the real 32,000
 * token Llama 2 vocabulary (a llama2.c checkpoint written here, converted with
 * the project's importer). The model's output head carries a bias towards
 * tokens that close strings, objects and arrays and towards EOS (as the
 * grammar tests do with their logits), so that free-running documents end;
 * otherwise its logits are random and it samples at temperature 1.
 *
 * References independent of the server: cJSON parses every output, a small
 * JSON Schema validator written here checks it against the schema (and is
 * itself checked to reject wrong documents), streamed answers are reassembled
 * and compared with the non-streamed answer of the same seed, and embeddings
 * are compared with qai_embed called directly on the same model.
 *
 * - response_format json_object / json_schema, chat and completions,
 *   streaming and not, several seeds, n > 1: outputs that finish with "stop"
 *   parse and validate, and nearly all finish that way;
 * - tools with tool_choice required / named / auto / none, parallel calls,
 *   legacy functions: well-formed calls whose arguments validate against the
 *   tool's parameters; streamed tool_call deltas reassemble to the
 *   non-streamed call; history with tool calls and tool results is accepted
 *   and reaches the prompt;
 * - /v1/embeddings for every input form equals qai_embed, base64 decodes to
 *   the same floats, a batch equals its inputs one by one, and generation
 *   running at the same time gives the same tokens as alone;
 * - errors in OpenAI's shape: unsupported schema keywords (named), unknown
 *   tools, bad tool messages, empty/mistyped/too long inputs, dimensions,
 *   unknown models; metrics count embedding requests and tokens. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qai/convert.h"
#include "qai/model.h"
#include "qai/serve.h"
#include "serve/http_client.h"
#include "test.h"

static char g_model[512];
static qai_model *g_m;
static qai_context *g_ctx; /* reference embeddings */
#define N_CTX 1024

/* No extra headers: these tests run without keys. */
static http_resp request(int port, const char *method, const char *path, const char *body) {
    return http(port, method, path, body, NULL);
}

static void check_error(const http_resp *r, int status, const char *code, const char *param, const char *needle) {
    CHECK_MSG(r->status == status, "status %d, expected %d (body %s)", r->status, status, r->body ? r->body : "");
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    const cJSON *m = cJSON_GetObjectItem(e, "message"), *c = cJSON_GetObjectItem(e, "code"), *p = cJSON_GetObjectItem(e, "param");
    CHECK_MSG(cJSON_IsString(m) && cJSON_IsString(cJSON_GetObjectItem(e, "type")) && cJSON_HasObjectItem(e, "param"),
              "not OpenAI's error shape: %s", r->body ? r->body : "");
    if (code) CHECK_MSG(cJSON_IsString(c) && !strcmp(c->valuestring, code), "code %s, expected %s", cJSON_IsString(c) ? c->valuestring : "?", code);
    if (param)
        CHECK_MSG(cJSON_IsString(p) && !strcmp(p->valuestring, param), "param %s, expected %s", cJSON_IsString(p) ? p->valuestring : "null", param);
    if (needle) CHECK_MSG(cJSON_IsString(m) && strstr(m->valuestring, needle), "message '%s' lacks '%s'", cJSON_IsString(m) ? m->valuestring : "", needle);
    cJSON_Delete(j);
}

/* ---- a JSON Schema validator for the subset the tests use (reference) ---- */

static size_t utf8_len(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool type_ok(const cJSON *v, const char *t) {
    if (!strcmp(t, "object")) return cJSON_IsObject(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    if (!strcmp(t, "string")) return cJSON_IsString(v);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    return false;
}

static bool valid(const cJSON *v, const cJSON *s) {
    const cJSON *t = cJSON_GetObjectItem(s, "type");
    if (cJSON_IsString(t) && !type_ok(v, t->valuestring)) return false;
    const cJSON *en = cJSON_GetObjectItem(s, "enum");
    if (en) {
        bool any = false;
        const cJSON *x;
        cJSON_ArrayForEach(x, en) any |= cJSON_Compare(x, v, true);
        if (!any) return false;
    }
    const cJSON *k;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if ((k = cJSON_GetObjectItem(s, "minimum")) && d < k->valuedouble) return false;
        if ((k = cJSON_GetObjectItem(s, "maximum")) && d > k->valuedouble) return false;
        if ((k = cJSON_GetObjectItem(s, "exclusiveMinimum")) && d <= k->valuedouble) return false;
        if ((k = cJSON_GetObjectItem(s, "exclusiveMaximum")) && d >= k->valuedouble) return false;
    }
    if (cJSON_IsString(v) && (k = cJSON_GetObjectItem(s, "format"))) {
        const char *x = v->valuestring;
        if (!strcmp(k->valuestring, "date")) { /* RFC 3339 full-date, leap years included */
            int y, m, d, n = 0;
            static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
            if (strlen(x) != 10 || sscanf(x, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || x[4] != '-' || x[7] != '-')
                return false;
            for (int i = 0; i < 10; i++)
                if (i != 4 && i != 7 && (x[i] < '0' || x[i] > '9')) return false;
            bool leap = (y % 4 == 0 && y % 100) || y % 400 == 0;
            if (m < 1 || m > 12 || d < 1 || d > md[m - 1] + (m == 2 && leap)) return false;
        } else if (!strcmp(k->valuestring, "uuid")) {
            if (strlen(x) != 36) return false;
            for (int i = 0; i < 36; i++)
                if ((i == 8 || i == 13 || i == 18 || i == 23) ? x[i] != '-' : !strchr("0123456789abcdefABCDEF", x[i])) return false;
        } else {
            return false; /* the tests use no other format */
        }
    }
    if (cJSON_IsString(v)) {
        if ((k = cJSON_GetObjectItem(s, "maxLength")) && utf8_len(v->valuestring) > (size_t)k->valueint) return false;
        if ((k = cJSON_GetObjectItem(s, "minLength")) && utf8_len(v->valuestring) < (size_t)k->valueint) return false;
    }
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if ((k = cJSON_GetObjectItem(s, "maxItems")) && n > k->valueint) return false;
        if ((k = cJSON_GetObjectItem(s, "minItems")) && n < k->valueint) return false;
        const cJSON *it = cJSON_GetObjectItem(s, "items"), *x;
        if (it) cJSON_ArrayForEach(x, v) if (!valid(x, it)) return false;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *props = cJSON_GetObjectItem(s, "properties"), *req = cJSON_GetObjectItem(s, "required"), *x;
        cJSON_ArrayForEach(x, req) if (!cJSON_GetObjectItemCaseSensitive(v, x->valuestring)) return false;
        const cJSON *addl = cJSON_GetObjectItem(s, "additionalProperties");
        cJSON_ArrayForEach(x, v) {
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, x->string);
            if (ps) {
                if (!valid(x, ps)) return false;
            } else if (cJSON_IsFalse(addl))
                return false;
            /* each name once */
            for (const cJSON *y = x->next; y; y = y->next)
                if (!strcmp(x->string, y->string)) return false;
        }
    }
    return true;
}

/* Parses text as exactly one JSON document and validates it (schema may be NULL). */
static bool doc_valid(const char *text, const char *schema) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithOpts(text, &end, false);
    bool ok = v != NULL;
    if (ok)
        for (; *end; end++)
            if (!strchr(" \t\r\n", *end)) ok = false;
    if (ok && schema) {
        cJSON *s = cJSON_Parse(schema);
        ok = s && valid(v, s);
        cJSON_Delete(s);
    } else if (ok)
        ok = cJSON_IsObject(v);
    cJSON_Delete(v);
    return ok;
}

static const char *SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},\"age\":{\"type\":\"integer\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":6},\"maxItems\":3},\"active\":{\"type\":"
    "\"boolean\"}},\"required\":[\"name\",\"age\"],\"additionalProperties\":false}",
    ("{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"blue\",1,null]},\"ok\":{\"type\":\"boolean\"}},"
     "\"required\":[\"color\",\"ok\"],\"additionalProperties\":false}"),
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":3},\"minItems\":2,\"maxItems\":4}",
    ("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":250},\"p\":{\"type\":\"number\","
     "\"exclusiveMinimum\":0,\"exclusiveMaximum\":1},\"day\":{\"type\":\"string\",\"format\":\"date\"},\"id\":{\"type\":\"string\","
     "\"format\":\"uuid\"}},\"required\":[\"n\",\"p\",\"day\",\"id\"],\"additionalProperties\":false}"),
};

static void test_validator(void) {
    CHECK(doc_valid("{\"name\":\"ab\",\"age\":3,\"tags\":[\"x\"]}", SCHEMAS[0]));
    CHECK(!doc_valid("{\"name\":\"ab\",\"age\":3.5}", SCHEMAS[0]));
    CHECK(!doc_valid("{\"name\":\"ab\"}", SCHEMAS[0]));
    CHECK(!doc_valid("{\"name\":\"ab\",\"age\":3,\"x\":1}", SCHEMAS[0]));
    CHECK(!doc_valid("{\"name\":\"abcdefghijklm\",\"age\":3}", SCHEMAS[0]));
    CHECK(!doc_valid("{\"name\":\"a\",\"age\":1,\"tags\":[\"1\",\"2\",\"3\",\"4\"]}", SCHEMAS[0]));
    CHECK(!doc_valid("{\"color\":\"pink\",\"ok\":true}", SCHEMAS[1]));
    CHECK(doc_valid("{\"color\":null,\"ok\":true}", SCHEMAS[1]));
    CHECK(!doc_valid("[\"a\"]", SCHEMAS[2]));
    CHECK(!doc_valid("[\"a\",\"\"]", SCHEMAS[2]));
    const char *d3 = "{\"n\":%s,\"p\":%s,\"day\":\"%s\",\"id\":\"%s\"}";
    char doc[256];
    const char *id = "123e4567-e89b-12d3-a456-426614174000";
    snprintf(doc, sizeof doc, d3, "250", "0.5", "2024-02-29", id);
    CHECK(doc_valid(doc, SCHEMAS[3]));
    snprintf(doc, sizeof doc, d3, "251", "0.5", "2024-02-29", id);
    CHECK(!doc_valid(doc, SCHEMAS[3]));
    snprintf(doc, sizeof doc, d3, "-5", "1", "2024-02-29", id);
    CHECK(!doc_valid(doc, SCHEMAS[3]));
    snprintf(doc, sizeof doc, d3, "-5", "0.1", "2023-02-29", id);
    CHECK(!doc_valid(doc, SCHEMAS[3]));
    snprintf(doc, sizeof doc, d3, "-5", "0.1", "2023-02-28", "123e4567-e89b-12d3-a456-42661417400g");
    CHECK(!doc_valid(doc, SCHEMAS[3]));
    CHECK(!doc_valid("{\"a\":1} x", NULL));
    CHECK(!doc_valid("[1]", NULL));
}

/* ---- chat answers, plain and streamed ---- */

#define MAXC 8
typedef struct {
    char content[16384];
    bool content_null, has_content;
    int n_calls;
    char id[MAXC][64], name[MAXC][64], args[MAXC][4096];
    char finish[32];
    bool legacy; /* function_call */
    bool bad;    /* shape or order broken */
    int prompt_tokens;
} answer;

static void put_str(char *dst, size_t cap, const cJSON *s) {
    if (cJSON_IsString(s)) strncat(dst, s->valuestring, cap - strlen(dst) - 1);
}

static void parse_answer(const http_resp *r, answer *a) {
    memset(a, 0, sizeof *a);
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(c0, "message");
    if (r->status != 200 || !msg) {
        a->bad = true;
        cJSON_Delete(j);
        return;
    }
    const cJSON *content = cJSON_GetObjectItem(msg, "content");
    a->content_null = cJSON_IsNull(content);
    a->has_content = cJSON_IsString(content);
    put_str(a->content, sizeof a->content, content);
    const cJSON *tc = cJSON_GetObjectItem(msg, "tool_calls"), *fc = cJSON_GetObjectItem(msg, "function_call"), *x;
    cJSON_ArrayForEach(x, tc) {
        if (a->n_calls == MAXC) break;
        const cJSON *fn = cJSON_GetObjectItem(x, "function"), *ty = cJSON_GetObjectItem(x, "type");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsString(cJSON_GetObjectItem(fn, "arguments")))
            a->bad = true;
        put_str(a->id[a->n_calls], 64, cJSON_GetObjectItem(x, "id"));
        put_str(a->name[a->n_calls], 64, cJSON_GetObjectItem(fn, "name"));
        put_str(a->args[a->n_calls], 4096, cJSON_GetObjectItem(fn, "arguments"));
        a->n_calls++;
    }
    if (fc) {
        a->legacy = true;
        put_str(a->name[0], 64, cJSON_GetObjectItem(fc, "name"));
        put_str(a->args[0], 4096, cJSON_GetObjectItem(fc, "arguments"));
        a->n_calls = 1;
    }
    put_str(a->finish, sizeof a->finish, cJSON_GetObjectItem(c0, "finish_reason"));
    a->prompt_tokens = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")
                           ? cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint
                           : -1;
    cJSON_Delete(j);
}

/* Reassembles a stream the way OpenAI's clients do (choice 0). */
static void parse_stream(const http_resp *r, answer *a) {
    memset(a, 0, sizeof *a);
    a->content_null = true;
    char *p = r->body;
    bool done = false;
    if (r->status != 200 || !p) {
        a->bad = true;
        return;
    }
    while (*p) {
        char *end = strstr(p, "\n\n");
        if (!end || strncmp(p, "data: ", 6)) {
            a->bad = true;
            break;
        }
        *end = 0;
        if (!strcmp(p + 6, "[DONE]")) done = true;
        else {
            cJSON *j = cJSON_Parse(p + 6);
            if (!j || cJSON_GetObjectItem(j, "error")) a->bad = true;
            const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
            const cJSON *d = cJSON_GetObjectItem(c, "delta"), *x;
            const cJSON *content = cJSON_GetObjectItem(d, "content");
            if (cJSON_IsString(content)) {
                a->content_null = false;
                a->has_content = true;
                put_str(a->content, sizeof a->content, content);
            }
            cJSON_ArrayForEach(x, cJSON_GetObjectItem(d, "tool_calls")) {
                const cJSON *ix = cJSON_GetObjectItem(x, "index"), *fn = cJSON_GetObjectItem(x, "function");
                if (!cJSON_IsNumber(ix) || ix->valueint < 0 || ix->valueint >= MAXC) {
                    a->bad = true;
                    continue;
                }
                int k = ix->valueint;
                if (cJSON_GetObjectItem(x, "id")) { /* a new call: id, type and name first, in order */
                    if (k != a->n_calls || !cJSON_IsString(cJSON_GetObjectItem(fn, "name"))) a->bad = true;
                    put_str(a->id[k], 64, cJSON_GetObjectItem(x, "id"));
                    put_str(a->name[k], 64, cJSON_GetObjectItem(fn, "name"));
                    if (k >= a->n_calls) a->n_calls = k + 1;
                } else if (k >= a->n_calls)
                    a->bad = true; /* arguments before the name */
                put_str(a->args[k], 4096, cJSON_GetObjectItem(fn, "arguments"));
            }
            const cJSON *fc = cJSON_GetObjectItem(d, "function_call");
            if (fc) {
                a->legacy = true;
                if (cJSON_GetObjectItem(fc, "name")) a->n_calls = 1, put_str(a->name[0], 64, cJSON_GetObjectItem(fc, "name"));
                put_str(a->args[0], 4096, cJSON_GetObjectItem(fc, "arguments"));
            }
            const cJSON *f = cJSON_GetObjectItem(c, "finish_reason");
            if (cJSON_IsString(f)) snprintf(a->finish, sizeof a->finish, "%s", f->valuestring);
            cJSON_Delete(j);
        }
        p = end + 2;
    }
    if (!done) a->bad = true;
}

static http_resp chat_req(int port, const char *extra, uint64_t seed, bool stream, int max_tokens) {
    char *body = malloc(strlen(extra) + 512);
    sprintf(body,
            "{\"model\":\"rnd\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me something.\"}],\"temperature\":1,"
            "\"seed\":%llu,\"max_tokens\":%d,\"stream\":%s%s%s}",
            (unsigned long long)seed, max_tokens, stream ? "true" : "false", *extra ? "," : "", extra);
    http_resp r = request(port, "POST", "/v1/chat/completions", body);
    free(body);
    return r;
}

static answer ask(int port, const char *extra, uint64_t seed, bool stream, int max_tokens) {
    http_resp r = chat_req(port, extra, seed, stream, max_tokens);
    answer a;
    if (stream) parse_stream(&r, &a);
    else
        parse_answer(&r, &a);
    CHECK_MSG(!a.bad, "bad answer to %s: %.300s", extra, r.body ? r.body : "");
    resp_free(&r);
    return a;
}

/* ---- response_format ---- */

static void test_json(int port) {
    int stops = 0, runs = 0;
    for (int seed = 1; seed <= 6; seed++) {
        answer a = ask(port, "\"response_format\":{\"type\":\"json_object\"}", (uint64_t)seed, seed % 2 == 0, 256);
        runs++;
        if (!strcmp(a.finish, "stop")) {
            stops++;
            CHECK_MSG(doc_valid(a.content, NULL), "json_object seed %d: not a JSON object: '%s'", seed, a.content);
        } else
            CHECK_MSG(!strcmp(a.finish, "length"), "finish_reason '%s'", a.finish);
    }
    for (size_t si = 0; si < sizeof SCHEMAS / sizeof *SCHEMAS; si++) {
        char extra[2048];
        snprintf(extra, sizeof extra, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"s%zu\",\"strict\":true,\"schema\":%s}}",
                 si, SCHEMAS[si]);
        for (int seed = 1; seed <= 4; seed++) {
            answer a = ask(port, extra, (uint64_t)seed * 31 + si, false, 256);
            runs++;
            if (!strcmp(a.finish, "stop")) {
                stops++;
                CHECK_MSG(doc_valid(a.content, SCHEMAS[si]), "schema %zu seed %d: output does not validate: '%s'", si, seed, a.content);
            } else
                CHECK_MSG(!strcmp(a.finish, "length"), "finish_reason '%s'", a.finish);
            if (seed <= 2) { /* the same seed streamed gives the same document */
                answer b = ask(port, extra, (uint64_t)seed * 31 + si, true, 256);
                CHECK_MSG(!strcmp(a.content, b.content) && !strcmp(a.finish, b.finish), "schema %zu seed %d: streamed '%s' != '%s'",
                          si, seed, b.content, a.content);
            }
        }
    }
    CHECK_MSG(stops >= runs - 2, "only %d of %d structured outputs finished", stops, runs);
    printf("structured outputs: %d runs, %d finished with stop and validated\n", runs, stops);
    /* n > 1: every choice is constrained on its own */
    http_resp r = chat_req(port, "\"n\":3,\"response_format\":{\"type\":\"json_object\"}", 99, false, 256);
    cJSON *j = cJSON_Parse(r.body ? r.body : "");
    const cJSON *c;
    int nc = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "choices")) {
        const cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "message"), "content");
        const cJSON *f = cJSON_GetObjectItem(c, "finish_reason");
        if (cJSON_IsString(f) && !strcmp(f->valuestring, "stop"))
            CHECK_MSG(cJSON_IsString(content) && doc_valid(content->valuestring, NULL), "choice %d: '%s'", nc,
                      cJSON_IsString(content) ? content->valuestring : "");
        nc++;
    }
    CHECK_EQ_INT(nc, 3);
    cJSON_Delete(j);
    resp_free(&r);
    /* /v1/completions takes response_format too */
    char body[1024];
    snprintf(body, sizeof body, "{\"prompt\":\"Data:\",\"temperature\":1,\"seed\":5,\"max_tokens\":256,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":%s}}}",
             SCHEMAS[1]);
    r = request(port, "POST", "/v1/completions", body);
    j = cJSON_Parse(r.body ? r.body : "");
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *text = cJSON_GetObjectItem(c0, "text"), *f = cJSON_GetObjectItem(c0, "finish_reason");
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(cJSON_IsString(text) && cJSON_IsString(f) && !strcmp(f->valuestring, "stop") && doc_valid(text->valuestring, SCHEMAS[1]),
              "completion with a schema: %s", r.body ? r.body : "");
    cJSON_Delete(j);
    resp_free(&r);
    /* max_tokens cuts a document: finish_reason length */
    answer a = ask(port, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"l\",\"schema\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":40}}}", 3, false, 8);
    const char *c0s = a.content + strspn(a.content, " \t\r\n");
    CHECK_MSG(!strcmp(a.finish, "length") && c0s[0] == '[', "cut document: finish '%s' content '%s'", a.finish, a.content);
    /* errors: unsupported keywords are named, schemas are required */
    r = chat_req(port, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"hostname\"}}}}}", 1, false, 8);
    check_error(&r, 400, "unsupported", "response_format", "'format' at '#/properties/d/format'");
    resp_free(&r);
    r = chat_req(port, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"integer\",\"multipleOf\":3}}}", 1, false, 8);
    check_error(&r, 400, "unsupported", "response_format", "'multipleOf' at '#/multipleOf'");
    resp_free(&r);
    r = chat_req(port, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"integer\",\"minimum\":3,\"maximum\":2}}}", 1, false, 8);
    check_error(&r, 400, NULL, "response_format", "leave no integer");
    resp_free(&r);
    r = chat_req(port, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}", 1, false, 8);
    check_error(&r, 400, "missing_field", "response_format", "schema");
    resp_free(&r);
    r = chat_req(port, "\"response_format\":{\"type\":\"yaml\"}", 1, false, 8);
    check_error(&r, 400, "invalid_value", "response_format", NULL);
    resp_free(&r);
}

/* ---- tools ---- */

static const char *WEATHER = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":12},\"unit\":{\"enum\":[\"c\",\"f\"]}},"
                             "\"required\":[\"city\"],\"additionalProperties\":false}";
static const char *ADD = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},\"required\":[\"a\",\"b\"],"
                         "\"additionalProperties\":false}";
static char g_tools[2048];

static bool call_valid(const answer *a, int k) {
    const char *schema = !strcmp(a->name[k], "get_weather") ? WEATHER : !strcmp(a->name[k], "add") ? ADD : NULL;
    return schema && doc_valid(a->args[k], schema);
}

static void check_calls(const answer *a, const char *want_name, const char *what) {
    if (!strcmp(a->finish, "length")) return; /* cut: nothing to validate */
    CHECK_MSG(!strcmp(a->finish, "tool_calls"), "%s: finish_reason '%s' (content '%s')", what, a->finish, a->content);
    CHECK_MSG(a->n_calls >= 1 && a->content_null, "%s: %d calls, content '%s'", what, a->n_calls, a->content);
    for (int k = 0; k < a->n_calls; k++) {
        CHECK_MSG(!strncmp(a->id[k], "call_", 5) && strlen(a->id[k]) > 10, "%s: call id '%s'", what, a->id[k]);
        CHECK_MSG(call_valid(a, k), "%s: call %d %s(%s) does not validate", what, k, a->name[k], a->args[k]);
        if (want_name) CHECK_MSG(!strcmp(a->name[k], want_name), "%s: called '%s', not '%s'", what, a->name[k], want_name);
    }
}

static void same_calls(const answer *a, const answer *b, const char *what) {
    CHECK_MSG(a->n_calls == b->n_calls && !strcmp(a->finish, b->finish), "%s: %d calls (%s) streamed, %d (%s) not", what,
              b->n_calls, b->finish, a->n_calls, a->finish);
    for (int k = 0; k < a->n_calls && k < b->n_calls; k++)
        CHECK_MSG(!strcmp(a->name[k], b->name[k]) && !strcmp(a->args[k], b->args[k]), "%s: streamed %s(%s) != %s(%s)", what, b->name[k],
                  b->args[k], a->name[k], a->args[k]);
}

static void test_tools(int port) {
    snprintf(g_tools, sizeof g_tools,
             "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Current weather in a city\","
             "\"parameters\":%s}},{\"type\":\"function\",\"function\":{\"name\":\"add\",\"description\":\"Adds two integers\",\"strict\":true,"
             "\"parameters\":%s}}]",
             WEATHER, ADD);
    char extra[4096];
    int calls = 0, cut = 0;
    /* required: a call to either tool; streamed deltas reassemble to the same call */
    snprintf(extra, sizeof extra, "%s,\"tool_choice\":\"required\"", g_tools);
    for (int seed = 1; seed <= 4; seed++) {
        answer a = ask(port, extra, (uint64_t)seed, false, 200);
        check_calls(&a, NULL, "required");
        calls += !strcmp(a.finish, "tool_calls"), cut += !strcmp(a.finish, "length");
        answer b = ask(port, extra, (uint64_t)seed, true, 200);
        check_calls(&b, NULL, "required, streamed");
        same_calls(&a, &b, "required");
    }
    /* a named tool is the one called */
    snprintf(extra, sizeof extra, "%s,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"add\"}}", g_tools);
    for (int seed = 1; seed <= 3; seed++) {
        answer a = ask(port, extra, (uint64_t)seed + 100, false, 200);
        check_calls(&a, "add", "named");
        calls += !strcmp(a.finish, "tool_calls"), cut += !strcmp(a.finish, "length");
        answer b = ask(port, extra, (uint64_t)seed + 100, true, 200);
        check_calls(&b, "add", "named, streamed");
        same_calls(&a, &b, "named");
    }
    CHECK_MSG(calls >= 6, "only %d of 7 forced calls finished (%d cut)", calls, cut);
    /* auto: text or a valid call */
    int n_text = 0, n_call = 0;
    snprintf(extra, sizeof extra, "%s,\"tool_choice\":\"auto\"", g_tools);
    for (int seed = 1; seed <= 8; seed++) {
        answer a = ask(port, extra, (uint64_t)seed + 200, seed % 2 == 1, 48);
        if (a.n_calls > 0) {
            n_call++;
            check_calls(&a, NULL, "auto");
        } else {
            n_text++;
            CHECK_MSG(a.has_content && (!strcmp(a.finish, "stop") || !strcmp(a.finish, "length")), "auto text: finish '%s'", a.finish);
            const char *p = a.content;
            while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
            CHECK_MSG(*p != '{', "auto: text that starts with '{' was not a call: '%s'", a.content);
        }
    }
    printf("tool_choice auto: %d text answers, %d calls\n", n_text, n_call);
    CHECK_MSG(n_text > 0 && n_call > 0, "tool_choice auto gave %d text answers and %d calls (the model is built to give both)", n_text, n_call);
    /* none: no calls, and tools stay out of the prompt */
    snprintf(extra, sizeof extra, "%s,\"tool_choice\":\"none\"", g_tools);
    answer none = ask(port, extra, 7, false, 16);
    CHECK(none.n_calls == 0 && none.has_content);
    answer plain = ask(port, "\"tool_choice\":\"none\"", 7, false, 16);
    CHECK_EQ_INT(none.prompt_tokens, plain.prompt_tokens);
    /* the tools reach the prompt: every tool's parameters are in it */
    snprintf(extra, sizeof extra, "%s,\"tool_choice\":\"required\"", g_tools);
    answer req = ask(port, extra, 7, false, 200);
    int32_t *ids;
    size_t n_w, n_a;
    CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(g_m), WEATHER, strlen(WEATHER), 0, &ids, &n_w));
    qai_free(ids);
    CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(g_m), ADD, strlen(ADD), 0, &ids, &n_a));
    qai_free(ids);
    CHECK_MSG(req.prompt_tokens > plain.prompt_tokens + (int)(n_w + n_a), "the prompt with tools has %d tokens, without %d",
              req.prompt_tokens, plain.prompt_tokens);
    /* parallel calls: an array of one or more */
    snprintf(extra, sizeof extra, "%s,\"tool_choice\":\"required\",\"parallel_tool_calls\":true", g_tools);
    for (int seed = 1; seed <= 2; seed++) {
        answer a = ask(port, extra, (uint64_t)seed + 300, false, 300);
        check_calls(&a, NULL, "parallel");
        answer b = ask(port, extra, (uint64_t)seed + 300, true, 300);
        same_calls(&a, &b, "parallel");
    }
    /* legacy functions / function_call */
    snprintf(extra, sizeof extra,
             "\"functions\":[{\"name\":\"add\",\"description\":\"Adds\",\"parameters\":%s}],\"function_call\":{\"name\":\"add\"}", ADD);
    for (int stream = 0; stream < 2; stream++) {
        answer a = ask(port, extra, 42, stream, 200);
        CHECK_MSG(a.legacy && a.n_calls == 1 && !strcmp(a.name[0], "add") && doc_valid(a.args[0], ADD) &&
                      !strcmp(a.finish, "function_call"),
                  "legacy function_call (stream %d): %s(%s) finish %s", stream, a.name[0], a.args[0], a.finish);
    }
    /* history: an assistant turn with tool calls and the tool results */
    char body[8192];
    snprintf(body, sizeof body,
             "{\"model\":\"rnd\",%s,\"max_tokens\":8,\"temperature\":0,\"messages\":["
             "{\"role\":\"system\",\"content\":\"You help.\"},{\"role\":\"user\",\"content\":\"Weather in Paris and 2+3?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
             "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_2\",\"type\":\"function\",\"function\":"
             "{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":2,\\\"b\\\":3}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny, 21 C\"},"
             "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"5\"}]}]}",
             g_tools);
    http_resp r = request(port, "POST", "/v1/chat/completions", body);
    answer h;
    parse_answer(&r, &h);
    CHECK_MSG(r.status == 200 && !h.bad, "history with tool calls: %s", r.body ? r.body : "");
    resp_free(&r);
    /* the history reached the prompt: removing the tool results shortens it by at least their text */
    char *cut_at = strstr(body, ",{\"role\":\"tool\"");
    strcpy(cut_at, "]}");
    r = request(port, "POST", "/v1/chat/completions", body);
    answer h2;
    parse_answer(&r, &h2);
    CHECK_MSG(r.status == 200 && h2.prompt_tokens > 0 && h.prompt_tokens >= h2.prompt_tokens + 8, "with results %d tokens, without %d",
              h.prompt_tokens, h2.prompt_tokens);
    resp_free(&r);
    /* errors */
    struct {
        const char *extra, *code, *param, *needle;
    } bad[] = {
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"q\":{\"type\":"
         "\"string\",\"format\":\"hostname\"}}}}}]",
         "unsupported", "tools", "'format' at '#/properties/q/format'"},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}",
         NULL, "tool_choice", "'g'"},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"sometimes\"", "invalid_value", "tool_choice", NULL},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"response_format\":{\"type\":\"json_object\"}", "unsupported",
         "response_format", NULL},
        {"\"tools\":{\"f\":1}", "invalid_type", "tools", NULL},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":3}}]", "invalid_type", "tools[0].function", NULL},
        {"\"tool_choice\":\"required\"", "invalid_value", "tool_choice", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = chat_req(port, bad[i].extra, 1, false, 8);
        check_error(&r, 400, bad[i].code, bad[i].param, bad[i].needle);
        resp_free(&r);
    }
    const char *bad_msgs[][2] = {
        {"[{\"role\":\"tool\",\"content\":\"x\"}]", "messages[0].tool_call_id"},
        {"[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]", "messages[0].tool_calls"},
        {"[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"arguments\":\"{}\"}}]}]",
         "messages[0].tool_calls[0].function"},
        {"[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":{}}}]}]",
         "messages[0].tool_calls[0].function"},
        {"[{\"role\":\"function\",\"content\":\"x\"}]", "messages[0].name"},
    };
    for (size_t i = 0; i < sizeof bad_msgs / sizeof *bad_msgs; i++) {
        snprintf(body, sizeof body, "{\"messages\":%s}", bad_msgs[i][0]);
        r = request(port, "POST", "/v1/chat/completions", body);
        check_error(&r, 400, NULL, bad_msgs[i][1], NULL);
        resp_free(&r);
    }
    /* tools are for chat */
    r = request(port, "POST", "/v1/completions", "{\"prompt\":\"x\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}");
    check_error(&r, 400, "unsupported", "tools", NULL);
    resp_free(&r);
}

/* ---- stop strings under a grammar ---- */

/* Policy (docs/structured-output.md): stop strings never cut grammar-constrained
 * output; under tool_choice auto they apply to plain-text answers. The stop
 * strings here occur in every JSON object or call the grammar can produce. */
static void test_stop_policy(int port) {
    const char *stops = "\"stop\":[\"{\",\"\\\"\",\":\",\"}\"]";
    char extra[4096];
    int finished = 0;
    for (int seed = 1; seed <= 4; seed++) {
        snprintf(extra, sizeof extra, "\"response_format\":{\"type\":\"json_object\"},%s", stops);
        answer a = ask(port, extra, (uint64_t)seed + 500, seed % 2 == 0, 256);
        if (!strcmp(a.finish, "stop")) {
            finished++;
            CHECK_MSG(doc_valid(a.content, NULL), "json_object with stop strings, seed %d: '%s'", seed, a.content);
        }
        snprintf(extra, sizeof extra, "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"s\",\"schema\":%s}},%s",
                 SCHEMAS[1], stops);
        answer b = ask(port, extra, (uint64_t)seed + 600, seed % 2 == 1, 256);
        if (!strcmp(b.finish, "stop")) {
            finished++;
            CHECK_MSG(doc_valid(b.content, SCHEMAS[1]), "json_schema with stop strings, seed %d: '%s'", seed, b.content);
        }
        /* a forced call is never cut either */
        snprintf(extra, sizeof extra, "%s,\"tool_choice\":\"required\",\"stop\":[\"a\",\"\\\"\"]", g_tools);
        answer c = ask(port, extra, (uint64_t)seed + 700, seed % 2 == 0, 200);
        check_calls(&c, NULL, "required with stop strings");
        finished += !strcmp(c.finish, "tool_calls");
    }
    CHECK_MSG(finished >= 10, "only %d of 12 constrained outputs with stop strings finished", finished);
    /* auto: calls are whole, plain text is cut at the stop strings (which never appear in it) */
    int n_text = 0, n_call = 0, n_cut = 0;
    snprintf(extra, sizeof extra, "%s,\"tool_choice\":\"auto\",\"stop\":[\"a\",\"e\",\"\\\"\"]", g_tools);
    for (int seed = 1; seed <= 10; seed++) {
        answer a = ask(port, extra, (uint64_t)seed + 200, seed % 2 == 0, 48);
        if (a.n_calls > 0) {
            n_call++;
            check_calls(&a, NULL, "auto with stop strings");
        } else {
            n_text++;
            CHECK_MSG(!strpbrk(a.content, "ae\""), "auto text contains a stop string: '%s'", a.content);
            n_cut += !strcmp(a.finish, "stop");
        }
    }
    printf("stop strings under tool_choice auto: %d text answers (%d cut by a stop string), %d whole calls\n", n_text, n_cut, n_call);
    CHECK_MSG(n_call > 0 && n_text > 0, "auto with stop strings gave %d calls and %d texts", n_call, n_text);
}

/* ---- logprobs of tool calls: streamed chunks carry the same as the whole answer ---- */

static cJSON *lp_content(const cJSON *choice) {
    return cJSON_GetObjectItem(cJSON_GetObjectItem(choice, "logprobs"), "content");
}

static void test_tool_logprobs(int port) {
    char extra[4096];
    int compared = 0;
    for (int v = 0; v < 3; v++) {
        const char *choice = v == 0 ? "\"required\"" : v == 1 ? "{\"type\":\"function\",\"function\":{\"name\":\"add\"}}" : "\"auto\"";
        snprintf(extra, sizeof extra, "%s,\"tool_choice\":%s,\"logprobs\":true,\"top_logprobs\":2", g_tools, choice);
        for (int seed = 1; seed <= 3; seed++) {
            http_resp r1 = chat_req(port, extra, (uint64_t)seed + 900 + v * 10, false, 200);
            http_resp r2 = chat_req(port, extra, (uint64_t)seed + 900 + v * 10, true, 200);
            cJSON *j = cJSON_Parse(r1.body ? r1.body : "");
            const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
            const cJSON *want = lp_content(c0);
            bool is_call = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "tool_calls") != NULL;
            /* the stream: every chunk's logprobs.content, in order */
            cJSON *got = cJSON_CreateArray();
            int chunks_with_lp = 0;
            for (char *p = r2.body; p && (p = strstr(p, "data: {")); p += 6) {
                char *end = strstr(p, "\n\n");
                if (!end) break;
                cJSON *cj = cJSON_ParseWithLength(p + 6, (size_t)(end - p - 6));
                const cJSON *x, *lc = lp_content(cJSON_GetArrayItem(cJSON_GetObjectItem(cj, "choices"), 0));
                chunks_with_lp += cJSON_GetArraySize(lc) > 0;
                cJSON_ArrayForEach(x, lc) cJSON_AddItemToArray(got, cJSON_Duplicate(x, true));
                cJSON_Delete(cj);
            }
            CHECK_MSG(r1.status == 200 && r2.status == 200 && cJSON_IsArray(want) && cJSON_GetArraySize(want) > 0,
                      "tool call logprobs: %.300s", r1.body ? r1.body : "");
            CHECK_MSG(cJSON_Compare(want, got, true), "choice %s seed %d: streamed logprobs (%d tokens in %d chunks) differ from the answer's (%d)",
                      choice, seed, cJSON_GetArraySize(got), chunks_with_lp, cJSON_GetArraySize(want));
            if (is_call) {
                /* the tokens spell the call: its name and arguments appear in their text */
                char text[8192] = "";
                const cJSON *x;
                cJSON_ArrayForEach(x, want) put_str(text, sizeof text, cJSON_GetObjectItem(x, "token"));
                const cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "tool_calls"), 0), "function");
                const cJSON *args = cJSON_GetObjectItem(fn, "arguments"), *name = cJSON_GetObjectItem(fn, "name");
                CHECK_MSG(cJSON_IsString(args) && cJSON_IsString(name) && strstr(text, args->valuestring) && strstr(text, name->valuestring),
                          "logprob tokens '%s' do not spell the call", text);
                compared++;
            }
            cJSON_Delete(got);
            cJSON_Delete(j);
            resp_free(&r1);
            resp_free(&r2);
        }
    }
    CHECK_MSG(compared >= 5, "only %d tool calls had their logprobs compared", compared);
}

/* ---- embeddings ---- */

static void ref_embed(const char *text, const int32_t *tok, int n_tok, float *out, int *n_used) {
    int32_t *ids = NULL;
    size_t n = (size_t)n_tok;
    if (text) CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(g_m), text, strlen(text), QAI_TOK_ADD_SPECIAL, &ids, &n));
    CHECK_OK(qai_embed(g_ctx, 0, text ? ids : tok, (int)n, out));
    *n_used = (int)n;
    qai_free(ids);
}

/* The embeddings of a response (float or base64) into out (n × D). */
static int get_embeddings(const http_resp *r, int D, float *out, int max, int *usage) {
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    const cJSON *data = cJSON_GetObjectItem(j, "data"), *x;
    const cJSON *obj = cJSON_GetObjectItem(j, "object"), *model = cJSON_GetObjectItem(j, "model");
    CHECK(cJSON_IsString(obj) && !strcmp(obj->valuestring, "list") && cJSON_IsString(model) && !strcmp(model->valuestring, "rnd"));
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    *usage = cJSON_GetObjectItem(u, "prompt_tokens") ? cJSON_GetObjectItem(u, "prompt_tokens")->valueint : -1;
    CHECK(cJSON_GetObjectItem(u, "total_tokens") && cJSON_GetObjectItem(u, "total_tokens")->valueint == *usage);
    int n = 0;
    cJSON_ArrayForEach(x, data) {
        const cJSON *e = cJSON_GetObjectItem(x, "embedding"), *ix = cJSON_GetObjectItem(x, "index");
        CHECK(cJSON_IsNumber(ix) && ix->valueint == n && !strcmp(cJSON_GetObjectItem(x, "object")->valuestring, "embedding"));
        if (n == max) break;
        float *v = out + (size_t)n * D;
        if (cJSON_IsArray(e)) {
            CHECK_EQ_INT(cJSON_GetArraySize(e), D);
            int d = 0;
            const cJSON *y;
            cJSON_ArrayForEach(y, e) if (d < D) v[d++] = (float)y->valuedouble;
        } else if (cJSON_IsString(e)) { /* base64 of little-endian float32 */
            static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            const char *s = e->valuestring;
            size_t L = strlen(s), o = 0;
            uint8_t *bytes = malloc(L);
            for (size_t i = 0; i + 3 < L + 3 && i < L; i += 4) {
                uint32_t q = 0;
                int pad = 0;
                for (int k = 0; k < 4; k++) {
                    const char *p = s[i + k] == '=' ? NULL : strchr(A, s[i + k]);
                    if (!p) pad++;
                    q = q << 6 | (uint32_t)(p ? p - A : 0);
                }
                bytes[o++] = (uint8_t)(q >> 16);
                if (pad < 2) bytes[o++] = (uint8_t)(q >> 8);
                if (pad < 1) bytes[o++] = (uint8_t)q;
            }
            CHECK_EQ_INT((int)o, 4 * D);
            for (int d = 0; d < D && (size_t)(4 * d + 3) < o; d++) {
                uint32_t w = (uint32_t)bytes[4 * d] | (uint32_t)bytes[4 * d + 1] << 8 | (uint32_t)bytes[4 * d + 2] << 16 |
                             (uint32_t)bytes[4 * d + 3] << 24;
                memcpy(&v[d], &w, 4);
            }
            free(bytes);
        } else
            CHECK_MSG(0, "embedding %d is neither an array nor a string", n);
        n++;
    }
    cJSON_Delete(j);
    return n;
}

static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

typedef struct {
    int port;
    char text[8192];
} gen_arg;

static void *gen_thread(void *p) {
    gen_arg *g = p;
    http_resp r = request(g->port, "POST", "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":48,\"temperature\":0,\"stream\":true}");
    for (char *q = r.body; q && *q;) { /* the streamed text, chunk by chunk */
        char *end = strstr(q, "\n\n");
        if (!end) break;
        *end = 0;
        cJSON *j = strncmp(q, "data: {", 7) ? NULL : cJSON_Parse(q + 6);
        put_str(g->text, sizeof g->text, cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "text"));
        cJSON_Delete(j);
        q = end + 2;
    }
    resp_free(&r);
    return NULL;
}

static void test_embeddings(int port) {
    const int D = qai_model_get_info(g_m)->n_embd;
    float *got = malloc(sizeof(float) * (size_t)D * 8), *want = malloc(sizeof(float) * (size_t)D * 8);
    int usage, n_tok[4], total = 0;
    const char *texts[] = {"The cat sat on the mat.", "Embeddings map text to vectors", "a", "Ünïcödé ✓ text"};
    for (int i = 0; i < 4; i++) {
        ref_embed(texts[i], NULL, 0, want + (size_t)i * D, &n_tok[i]);
        total += n_tok[i];
    }
    double worst = 0;
    /* one string, float and base64 */
    for (int b64 = 0; b64 < 2; b64++) {
        char body[512];
        snprintf(body, sizeof body, "{\"model\":\"rnd\",\"input\":\"%s\"%s}", texts[0], b64 ? ",\"encoding_format\":\"base64\"" : "");
        http_resp r = request(port, "POST", "/v1/embeddings", body);
        CHECK_MSG(r.status == 200, "embeddings: %s", r.body ? r.body : "");
        CHECK_EQ_INT(get_embeddings(&r, D, got, 8, &usage), 1);
        CHECK_EQ_INT(usage, n_tok[0]);
        double d = max_diff(got, want, D);
        worst = fmax(worst, d);
        CHECK_MSG(d <= 1e-6, "embedding (base64 %d) differs from qai_embed by %g", b64, d);
        resp_free(&r);
    }
    /* a batch equals the inputs one by one (and the direct calls) */
    http_resp r = request(port, "POST", "/v1/embeddings",
                       "{\"model\":\"rnd\",\"input\":[\"The cat sat on the mat.\",\"Embeddings map text to vectors\",\"a\",\"Ünïcödé ✓ text\"],\"dimensions\":32}");
    CHECK_MSG(r.status == 200, "batch: %s", r.body ? r.body : "");
    CHECK_EQ_INT(get_embeddings(&r, D, got, 8, &usage), 4);
    CHECK_EQ_INT(usage, total);
    double d = max_diff(got, want, 4 * D);
    worst = fmax(worst, d);
    CHECK_MSG(d <= 1e-6, "batch differs from qai_embed by %g", d);
    resp_free(&r);
    float *one = malloc(sizeof(float) * (size_t)D);
    for (int i = 0; i < 4; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"input\":[\"%s\"]}", texts[i]);
        r = request(port, "POST", "/v1/embeddings", body);
        CHECK_EQ_INT(get_embeddings(&r, D, one, 1, &usage), 1);
        CHECK_MSG(memcmp(one, got + (size_t)i * D, sizeof(float) * (size_t)D) == 0, "input %d alone differs from the batch", i);
        resp_free(&r);
    }
    free(one);
    /* token ids, and arrays of token ids */
    int32_t toks[] = {1, 450, 6635, 3290, 373, 278, 1775, 29889};
    ref_embed(NULL, toks, 8, want, &usage);
    ref_embed(NULL, toks + 2, 3, want + D, &usage);
    r = request(port, "POST", "/v1/embeddings", "{\"input\":[1,450,6635,3290,373,278,1775,29889]}");
    CHECK_EQ_INT(get_embeddings(&r, D, got, 8, &usage), 1);
    CHECK_EQ_INT(usage, 8);
    CHECK_MSG(max_diff(got, want, D) <= 1e-6, "token input differs by %g", max_diff(got, want, D));
    resp_free(&r);
    r = request(port, "POST", "/v1/embeddings", "{\"input\":[[1,450,6635,3290,373,278,1775,29889],[6635,3290,373]],\"encoding_format\":\"base64\"}");
    CHECK_EQ_INT(get_embeddings(&r, D, got, 8, &usage), 2);
    CHECK_EQ_INT(usage, 11);
    d = max_diff(got, want, 2 * D);
    worst = fmax(worst, d);
    CHECK_MSG(d <= 1e-6, "token arrays differ by %g", d);
    resp_free(&r);
    printf("embeddings: largest difference from qai_embed %g\n", worst);
    /* generation running meanwhile gives the tokens it gives alone */
    gen_arg alone = {.port = port}, during = {.port = port};
    gen_thread(&alone);
    pthread_t th;
    pthread_create(&th, NULL, gen_thread, &during);
    for (int i = 0; i < 6; i++) {
        r = request(port, "POST", "/v1/embeddings", "{\"input\":[\"The cat sat on the mat.\",\"Embeddings map text to vectors\"]}");
        CHECK_EQ_INT(r.status, 200);
        resp_free(&r);
    }
    pthread_join(th, NULL);
    CHECK_MSG(alone.text[0] && !strcmp(alone.text, during.text), "generation during embeddings '%s' != alone '%s'", during.text, alone.text);
    /* errors */
    char *big = malloc(20000);
    strcpy(big, "{\"input\":\"");
    for (int i = 0; i < 1500; i++) strcat(big, "a b ");
    strcat(big, "\"}");
    struct {
        const char *body;
        int status;
        const char *code, *param;
    } bad[] = {
        {"{\"input\":\"\"}", 400, "invalid_value", "input"},
        {"{\"input\":[]}", 400, "invalid_value", "input"},
        {"{\"input\":[\"a\",\"\"]}", 400, "invalid_value", "input"},
        {"{\"input\":3}", 400, "invalid_type", "input"},
        {"{\"input\":[\"a\",3]}", 400, "invalid_type", "input"},
        {"{\"input\":[[1,2],\"a\"]}", 400, "invalid_type", "input"},
        {"{\"input\":[[1,2],[]]}", 400, "invalid_value", "input"},
        {"{\"input\":[1,-2]}", 400, "invalid_type", "input"},
        {"{\"input\":[1,99999]}", 400, "invalid_value", "input"},
        {"{}", 400, "missing_field", "input"},
        {"{\"input\":\"a\",\"dimensions\":16}", 400, "invalid_value", "dimensions"},
        {"{\"input\":\"a\",\"dimensions\":\"x\"}", 400, "invalid_type", "dimensions"},
        {"{\"input\":\"a\",\"encoding_format\":\"hex\"}", 400, "invalid_value", "encoding_format"},
        {"{\"input\":\"a\",\"model\":\"nope\"}", 404, "model_not_found", "model"},
        {"[\"a\"]", 400, "invalid_type", NULL},
        {"{\"input\":", 400, "invalid_json", NULL},
        {big, 400, "context_length_exceeded", "input"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = request(port, "POST", "/v1/embeddings", bad[i].body);
        check_error(&r, bad[i].status, bad[i].code, bad[i].param, NULL);
        resp_free(&r);
    }
    free(big);
    /* metrics: embedding requests and tokens are counted */
    r = request(port, "GET", "/metrics", NULL);
    const char *m = r.body ? strstr(r.body, "qai_tokens_total{model=\"rnd\",variant=\"rnd\",kind=\"embedding\"} ") : NULL;
    double tokens = m ? atof(strchr(m, '}') + 2) : -1;
    int want_tokens = 2 * n_tok[0] + 2 * total + 8 + 11 + 6 * (n_tok[0] + n_tok[1]);
    CHECK_MSG(tokens == want_tokens, "qai_tokens_total embedding %g, expected %d", tokens, want_tokens);
    m = r.body ? strstr(r.body, "qai_embedding_inputs_total{model=\"rnd\",variant=\"rnd\"} ") : NULL;
    CHECK_MSG(m && atof(strchr(m, '}') + 2) == 2 + 4 + 4 + 1 + 2 + 12, "qai_embedding_inputs_total: %s", m ? m : "missing");
    CHECK(r.body && strstr(r.body, "qai_requests_total{endpoint=\"/v1/embeddings\",model=\"rnd\",variant=\"rnd\",status=\"200\"} 15"));
    resp_free(&r);
    free(got);
    free(want);
}

/* ---- an encoder model: embeddings only ---- */

/* A random BERT encoder (qai_bert_init_random) served next to the decoder. */
static void test_encoder(void) {
    char enc[512];
    snprintf(enc, sizeof enc, "%s/serve_structured_bert.gguf", TEST_TMP());
    qai_init_params ip = {.dim = 32, .layers = 1, .heads = 2, .ffn = 64, .vocab = 500, .ctx = 64, .seed = 9,
                          .type = QAI_TYPE_F32, .std = 0.1f};
    CHECK_OK(qai_bert_init_random(&ip, NULL, 0, 1, enc));
    qai_model *m = NULL;
    CHECK_OK(qai_model_open(enc, &m));
    if (!m) return;
    CHECK(qai_model_get_info(m)->is_encoder);
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 64, cp.n_threads = 1;
    qai_context *ctx = NULL;
    CHECK_OK(qai_context_new(m, &cp, &ctx));
    qai_serve_params p = qai_serve_default_params();
    qai_serve_model_spec ms[2] = {{.name = "rnd", .path = g_model, .template_name = "chatml"}, {.name = "enc", .path = enc}};
    p.models = ms, p.n_models = 2, p.port = 0, p.parallel = 2, p.n_ctx = 256, p.n_threads = 1, p.quiet = true;
    qai_server *srv = NULL;
    CHECK_OK(qai_server_open(&p, &srv));
    if (srv && ctx) {
        int port = qai_server_port(srv);
        const char *text = "hello world";
        int32_t *ids;
        size_t n;
        CHECK_OK(qai_tokenizer_encode(qai_model_tokenizer(m), text, strlen(text), QAI_TOK_ADD_SPECIAL, &ids, &n));
        const int D = qai_model_get_info(m)->n_embd;
        float *want = malloc(sizeof(float) * (size_t)D), *got = malloc(sizeof(float) * (size_t)D * 2);
        CHECK_OK(qai_embed(ctx, 0, ids, (int)n, want));
        qai_free(ids);
        http_resp r = request(port, "POST", "/v1/embeddings", "{\"model\":\"enc\",\"input\":[\"hello world\"]}");
        int usage = 0;
        cJSON *j = cJSON_Parse(r.body ? r.body : "");
        const cJSON *e = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0), "embedding"), *x;
        int d = 0;
        cJSON_ArrayForEach(x, e) if (d < D) got[d++] = (float)x->valuedouble;
        usage = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens") ? cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint : -1;
        CHECK_MSG(r.status == 200 && d == D && max_diff(got, want, D) <= 1e-6, "encoder embedding: status %d, %d dims, diff %g", r.status, d,
                  d == D ? max_diff(got, want, D) : -1.0);
        CHECK_EQ_INT(usage, (int)n);
        cJSON_Delete(j);
        resp_free(&r);
        /* generation on it is refused; the decoder next to it still generates */
        r = request(port, "POST", "/v1/chat/completions", "{\"model\":\"enc\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
        check_error(&r, 400, "embedding_model", "model", "'enc' is an embedding model");
        resp_free(&r);
        r = request(port, "POST", "/v1/completions", "{\"model\":\"enc\",\"prompt\":\"x\",\"max_tokens\":2}");
        check_error(&r, 400, "embedding_model", "model", NULL);
        resp_free(&r);
        r = request(port, "POST", "/v1/completions", "{\"model\":\"rnd\",\"prompt\":\"x\",\"max_tokens\":2}");
        CHECK_EQ_INT(r.status, 200);
        resp_free(&r);
        /* no engine, no slots: the engine gauges name only the decoder */
        r = request(port, "GET", "/metrics", NULL);
        CHECK(r.body && strstr(r.body, "qai_slots{model=\"rnd\"} 2") && !strstr(r.body, "qai_slots{model=\"enc\"}"));
        resp_free(&r);
        char big[2048] = "{\"model\":\"enc\",\"input\":\"";
        for (int i = 0; i < 100; i++) strcat(big, "ab cd ");
        strcat(big, "\"}");
        r = request(port, "POST", "/v1/embeddings", big);
        check_error(&r, 400, "context_length_exceeded", "input", NULL);
        resp_free(&r);
        free(want);
        free(got);
    }
    qai_server_close(srv);
    qai_context_free(ctx);
    qai_model_close(m);
}

/* ---- the model ---- */

/* A llama2.c checkpoint with random weights over the 32k Llama 2 vocabulary
 * and a separate classifier. Dimension 0 of every token embedding is a large
 * constant that the small layers barely change, so after the final norm it is
 * a constant input; the classifier's column 0 turns it into a per-token bias
 * (closers and EOS up), the other columns give random logits. Dimension 1 is
 * non-zero only for the newline token, and column 1 favours tokens that open
 * an object: after a newline (the chat template's "assistant\n") the model
 * often writes '{', so tool_choice auto sometimes calls a tool. */
static bool write_model(const char *tok_path, const char *bin, const char *gguf) {
    const int dim = 32, hidden = 64, L = 1, H = 2, KV = 2, V = 32000, T = N_CTX, hs = dim / H;
    qai_vocab_desc d;
    if (qai_vocab_read_llama2c(tok_path, &d)) return false;
    qai_tokenizer *tok;
    if (qai_tokenizer_new(&d, &tok)) {
        qai_vocab_release(&d);
        return false;
    }
    qai_vocab_release(&d);
    FILE *f = fopen(bin, "wb");
    if (!f) return false;
    int32_t hdr[7] = {dim, hidden, L, H, KV, -V, T};
    fwrite(hdr, sizeof hdr, 1, f);
    qai_rng rng;
    qai_rng_seed(&rng, 2024);
#define RND(std) ((qai_rng_float(&rng) * 2 - 1) * (std) * 1.7320508f)
    float *emb = malloc(sizeof(float) * (size_t)V * dim);
    for (int t = 0; t < V; t++) {
        char piece[8];
        size_t n = qai_tokenizer_piece(tok, t, 0, piece, sizeof piece);
        bool newline = n == 1 && piece[0] == '\n';
        for (int k = 0; k < dim; k++) emb[(size_t)t * dim + k] = k == 0 ? 3.0f : k == 1 ? (newline ? 6.0f : 0.0f) : RND(0.5f);
    }
    fwrite(emb, sizeof(float), (size_t)V * dim, f);
    size_t counts[] = {(size_t)L * dim,          (size_t)L * dim * dim,    (size_t)L * KV * hs * dim, (size_t)L * KV * hs * dim,
                       (size_t)L * dim * dim,    (size_t)L * dim,          (size_t)L * hidden * dim,  (size_t)L * dim * hidden,
                       (size_t)L * hidden * dim, (size_t)dim,              (size_t)T * hs / 2,        (size_t)T * hs / 2};
    for (size_t a = 0; a < sizeof counts / sizeof *counts; a++) {
        bool norm = a == 0 || a == 5 || a == 9;
        for (size_t i = 0; i < counts[a]; i++) {
            float x = norm ? 1.0f : a >= 10 ? 0.0f : RND(0.05f);
            fwrite(&x, sizeof x, 1, f);
        }
    }
    for (int t = 0; t < V; t++) { /* the classifier */
        char piece[256];
        size_t n = qai_tokenizer_piece(tok, t, 0, piece, sizeof piece);
        float bias = 0;
        for (size_t i = 0; i < n && i < sizeof piece; i++)
            if (piece[i] == '"' || piece[i] == '}' || piece[i] == ']') bias = 4.0f;
        size_t lead = 0;
        while (lead < n && lead < sizeof piece && piece[lead] == ' ') lead++;
        bool opener = lead < n && lead < sizeof piece && piece[lead] == '{';
        if (qai_tokenizer_is_eog(tok, t)) bias = 6.0f;
        for (int k = 0; k < dim; k++) {
            float x = k == 0 ? bias / 4.0f : k == 1 ? (opener ? 1.5f : 0.0f) : RND(0.3f);
            fwrite(&x, sizeof x, 1, f);
        }
    }
#undef RND
    free(emb);
    qai_tokenizer_free(tok);
    fclose(f);
    return qai_convert_llama2c(bin, tok_path, gguf) == QAI_OK;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_validator();
    char tok_path[512], bin[512];
    snprintf(tok_path, sizeof tok_path, "%s/models/llama2-tokenizer/tokenizer.bin", TEST_DATA());
    snprintf(bin, sizeof bin, "%s/serve_structured.bin", TEST_TMP());
    snprintf(g_model, sizeof g_model, "%s/serve_structured.gguf", TEST_TMP());
    if (access(tok_path, R_OK)) {
        printf("skipping: no llama2 vocabulary at %s\n", tok_path);
        return test_summary();
    }
    CHECK_MSG(write_model(tok_path, bin, g_model), "cannot write the test model: %s", qai_last_error());
    CHECK_OK(qai_model_open(g_model, &g_m));
    if (!g_m) return test_summary();
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = N_CTX, cp.n_threads = 1;
    CHECK_OK(qai_context_new(g_m, &cp, &g_ctx));
    CHECK(!qai_model_get_info(g_m)->is_encoder);

    qai_serve_params p = qai_serve_default_params();
    qai_serve_model_spec ms = {.name = "rnd", .path = g_model, .template_name = "chatml"};
    p.models = &ms, p.n_models = 1, p.port = 0, p.parallel = 4, p.n_ctx = N_CTX, p.n_threads = 1, p.batch = 256, p.quiet = true;
    qai_server *srv = NULL;
    CHECK_OK(qai_server_open(&p, &srv));
    if (srv) {
        int port = qai_server_port(srv);
        uint64_t t0 = qai_time_ns();
        test_json(port);
        uint64_t t1 = qai_time_ns();
        test_tools(port);
        test_stop_policy(port);
        test_tool_logprobs(port);
        uint64_t t2 = qai_time_ns();
        test_embeddings(port);
        printf("time: response_format %.1f s, tools, stop strings and logprobs %.1f s, embeddings %.1f s\n", (t1 - t0) / 1e9, (t2 - t1) / 1e9,
               (qai_time_ns() - t2) / 1e9);
        qai_server_close(srv);
    }
    test_encoder();
    qai_context_free(g_ctx);
    qai_model_close(g_m);
    unlink(bin);
    return test_summary();
}
