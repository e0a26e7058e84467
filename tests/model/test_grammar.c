/* Constrained decoding (qai/grammar.h).
 *
 * References independent of the grammar code: a hand-labelled corpus of valid
 * and invalid JSON; a strict recursive-descent RFC 8259 checker written here
 * (differential test on random fragment soups); cJSON to parse generated
 * output; a small JSON Schema validator written here for the supported subset
 * (oneOf exactly-one, additionalProperties false by default when properties
 * are given, as documented). Token masks are compared with brute force
 * (accepting every token's bytes one by one). Generation uses a random-weight
 * model (qai_model_init_random) and the 32k llama2 vocabulary with random
 * logits, several seeds, temperature 1. */
#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "qai/grammar.h"
#include "qai/model.h"
#include "test.h"

/* ---------------- a strict RFC 8259 checker (reference) ---------------- */

typedef struct {
    const unsigned char *p, *e;
    int depth;
    int indent; /* qai's whitespace rule: one space, or a newline and at most this many spaces/tabs */
} rj;

static void rj_ws(rj *r) {
    if (r->p < r->e && *r->p == ' ') {
        r->p++;
    } else if (r->p < r->e && *r->p == '\n') {
        r->p++;
        for (int k = 0; k < r->indent && r->p < r->e && (*r->p == ' ' || *r->p == '\t'); k++) r->p++;
    }
    /* any further whitespace byte is not a JSON token, so the parse fails there */
}
static int rj_hex4(rj *r, unsigned *v) {
    if (r->e - r->p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = r->p[i];
        int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0) return 0;
        *v = *v * 16 + (unsigned)h;
    }
    r->p += 4;
    return 1;
}
static int rj_string(rj *r) {
    r->p++; /* '"' */
    while (r->p < r->e) {
        unsigned char c = *r->p++;
        if (c == '"') return 1;
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (r->p >= r->e) return 0;
            c = *r->p++;
            if (c == 'u') {
                unsigned v, w;
                if (!rj_hex4(r, &v)) return 0;
                if (v >= 0xDC00 && v <= 0xDFFF) return 0;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    if (r->e - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') return 0;
                    r->p += 2;
                    if (!rj_hex4(r, &w) || w < 0xDC00 || w > 0xDFFF) return 0;
                }
            } else if (!strchr("\"\\/bfnrt", c) || !c) {
                return 0;
            }
        } else if (c >= 0x80) {
            int n;
            unsigned cp;
            if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
            else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
            else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
            else return 0;
            if (r->e - r->p < n) return 0;
            for (int i = 0; i < n; i++) {
                if ((r->p[i] & 0xC0) != 0x80) return 0;
                cp = cp << 6 | (r->p[i] & 0x3F);
            }
            r->p += n;
            if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        }
    }
    return 0;
}
static int rj_digits(rj *r) {
    const unsigned char *s = r->p;
    while (r->p < r->e && *r->p >= '0' && *r->p <= '9') r->p++;
    return r->p > s;
}
static int rj_number(rj *r) {
    if (*r->p == '-') r->p++;
    if (r->p >= r->e) return 0;
    if (*r->p == '0') r->p++;
    else if (!rj_digits(r)) return 0;
    if (r->p < r->e && *r->p == '.') {
        r->p++;
        if (!rj_digits(r)) return 0;
    }
    if (r->p < r->e && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->e && (*r->p == '+' || *r->p == '-')) r->p++;
        if (!rj_digits(r)) return 0;
    }
    return 1;
}
static int rj_value(rj *r);
static int rj_lit(rj *r, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(r->e - r->p) < n || memcmp(r->p, w, n)) return 0;
    r->p += n;
    return 1;
}
static int rj_value(rj *r) {
    if (r->p >= r->e) return 0;
    unsigned char c = *r->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        r->p++;
        rj_ws(r);
        if (r->p < r->e && *r->p == close) {
            r->p++;
            return 1;
        }
        for (;;) {
            if (c == '{') {
                if (r->p >= r->e || *r->p != '"' || !rj_string(r)) return 0;
                rj_ws(r);
                if (r->p >= r->e || *r->p++ != ':') return 0;
                rj_ws(r);
            }
            if (!rj_value(r)) return 0;
            rj_ws(r);
            if (r->p >= r->e) return 0;
            if (*r->p == ',') {
                r->p++;
                rj_ws(r);
                continue;
            }
            if (*r->p++ == close) return 1;
            return 0;
        }
    }
    if (c == '"') return rj_string(r);
    if (c == '-' || (c >= '0' && c <= '9')) return rj_number(r);
    return rj_lit(r, "true") || rj_lit(r, "false") || rj_lit(r, "null");
}
static int ref_valid_ws(const char *s, size_t n, int indent) {
    rj r = {(const unsigned char *)s, (const unsigned char *)s + n, 0, indent};
    rj_ws(&r);
    if (!rj_value(&r)) return 0;
    rj_ws(&r);
    return r.p == r.e;
}
static int ref_valid(const char *s, size_t n) { return ref_valid_ws(s, n, 20); }

/* ---------------- helpers ---------------- */

/* 1: accepted and complete; 0: rejected or incomplete. Also checks that every
 * prefix of an accepted text is accepted byte by byte. */
static int matches(const qai_grammar *g, const char *s, size_t n) {
    qai_grammar_state *st;
    if (qai_grammar_state_new(g, NULL, &st)) return -1;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) ok = qai_grammar_accept_bytes(st, s + i, 1) == QAI_OK;
    ok = ok && qai_grammar_is_complete(st);
    qai_grammar_state_free(st);
    return ok;
}

static qai_grammar *schema(const char *text, const qai_grammar_options *o) {
    qai_grammar *g = NULL;
    qai_status st = qai_grammar_compile_json_schema(text, strlen(text), o, &g);
    if (st) fprintf(stderr, "schema failed: %s\n  %s\n", qai_last_error(), text);
    return g;
}

#define M(g, s) matches(g, s, strlen(s))

/* ---------------- the schema validator (reference) ---------------- */

static const cJSON *resolve(const cJSON *root, const char *ref) {
    if (strcmp(ref, "#") == 0) return root;
    if (strncmp(ref, "#/", 2)) return NULL;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    const cJSON *cur = root;
    for (char *tok = strtok(buf, "/"); tok && cur; tok = strtok(NULL, "/"))
        cur = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, atoi(tok)) : cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cur;
}

static long cp_len(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int type_ok(const cJSON *v, const char *t) {
    if (!strcmp(t, "object")) return cJSON_IsObject(v);
    if (!strcmp(t, "array")) return cJSON_IsArray(v);
    if (!strcmp(t, "string")) return cJSON_IsString(v);
    if (!strcmp(t, "number")) return cJSON_IsNumber(v);
    if (!strcmp(t, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (!strcmp(t, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(t, "null")) return cJSON_IsNull(v);
    return 0;
}

static int range_ok(const cJSON *s, double v);
static int ck_format(const char *f, const char *s, size_t n);

static int validate(const cJSON *v, const cJSON *s, const cJSON *root) {
    if (cJSON_IsBool(s)) return cJSON_IsTrue(s);
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "$ref"))) {
        const cJSON *t = resolve(root, k->valuestring);
        return t && validate(v, t, root);
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "allOf")))
        for (const cJSON *a = k->child; a; a = a->next)
            if (!validate(v, a, root)) return 0;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "anyOf"))) {
        int any = 0;
        for (const cJSON *a = k->child; a; a = a->next) any |= validate(v, a, root);
        if (!any) return 0;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "oneOf"))) {
        int n = 0;
        for (const cJSON *a = k->child; a; a = a->next) n += validate(v, a, root);
        if (n != 1) return 0;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
        int any = 0;
        for (const cJSON *a = k->child; a; a = a->next) any |= cJSON_Compare(v, a, 1);
        if (!any) return 0;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "const")) && !cJSON_Compare(v, k, 1)) return 0;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "type"))) {
        int any = 0;
        if (cJSON_IsString(k)) any = type_ok(v, k->valuestring);
        else
            for (const cJSON *a = k->child; a; a = a->next) any |= type_ok(v, a->valuestring);
        if (!any) return 0;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        const cJSON *ap = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
            if (!cJSON_GetObjectItemCaseSensitive(v, r->valuestring)) return 0;
        int last = -1;
        for (const cJSON *m = v->child; m; m = m->next) {
            for (const cJSON *m2 = m->next; m2; m2 = m2->next)
                if (!strcmp(m->string, m2->string)) return 0; /* duplicate key */
            const cJSON *ps = props ? cJSON_GetObjectItemCaseSensitive(props, m->string) : NULL;
            if (ps) {
                int idx = 0;
                for (const cJSON *q = props->child; q != ps; q = q->next) idx++;
                if (idx < last) return 0; /* declared order (qai's documented output shape) */
                last = idx;
                if (!validate(m, ps, root)) return 0;
            } else if (ap ? !validate(m, ap, root) : props != NULL) {
                return 0;
            }
        }
    }
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "minItems")) && n < k->valueint) return 0;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxItems")) && n > k->valueint) return 0;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "items")))
            for (const cJSON *a = v->child; a; a = a->next)
                if (!validate(a, k, root)) return 0;
    }
    if (cJSON_IsString(v) && (k = cJSON_GetObjectItemCaseSensitive(s, "pattern"))) {
        /* PCRE2 as the reference: search semantics, '.' excludes CR and LF, '$' only at the end */
        int err;
        PCRE2_SIZE off;
        pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
        pcre2_set_newline(cc, PCRE2_NEWLINE_ANYCRLF);
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)k->valuestring, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &err, &off, cc);
        pcre2_compile_context_free(cc);
        if (!re) return 0;
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        int rc = pcre2_match(re, (PCRE2_SPTR)v->valuestring, strlen(v->valuestring), 0, 0, md, NULL);
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (rc < 0) return 0;
    }
    if (cJSON_IsNumber(v) && !range_ok(s, v->valuedouble)) return 0;
    if (cJSON_IsString(v) && (k = cJSON_GetObjectItemCaseSensitive(s, "format")) &&
        !ck_format(k->valuestring, v->valuestring, strlen(v->valuestring)))
        return 0;
    if (cJSON_IsString(v)) {
        long n = cp_len(v->valuestring);
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "minLength")) && n < k->valueint) return 0;
        if ((k = cJSON_GetObjectItemCaseSensitive(s, "maxLength")) && n > k->valueint) return 0;
    }
    return 1;
}

/* ---------------- 1. the JSON matcher ---------------- */

static void test_json_corpus(void) {
    static const char *valid[] = {
        "{}", "[]", "0", "-0", "1", "-1", "12.5", "1e+10", "1E-10", "1e10", "-0.0e0", "123456789", "0.001",
        "true", "false", "null", "\"\"", "\"a\"", " {} ", "\n[\n\t]\n",
        "{\"a\":1}", "{\"a\" : 1 , \"b\" : [1, 2, {\"c\": null}]}", "[1,2,3]", "[[[]]]", "[{}, {}]",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0000\"", "\"\\u00e9\\u00E9\"", "\"\\ud83d\\ude00\"",
        "\"\\uD83D\\uDE00\"", "\"\\uffff\"", "\"\xc3\xa9\"", "\"\xe2\x82\xac\"", "\"\xf0\x9f\x98\x80\"",
        "\"\xf4\x8f\xbf\xbf\"", "\"\xed\x9f\xbf\"", "\"\x7f\"", "{\"\":\"\"}", "[\"a\",\"b\"]",
        "{\"k\":{\"k\":{\"k\":[true,false,null]}}}", "-123.456e-78", "[0,-0,0.0]",
        "99999999999999999999", "0.12345678901234567890", "1e9999"};
    static const char *invalid[] = {
        "", " ", "{", "}", "[", "]", "[1,]", "{\"a\":1,}", "{,}", "[,1]", "01", "-01", "00", "1.", ".5", "-",
        "+1", "1e", "1e+", "1.e5", "--1", "0x10", "1 2", "{} {}", "{\"a\"}", "{\"a\" 1}", "{a:1}", "{'a':1}",
        "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\ud83d\"", "\"\\ud83dx\"", "\"\\ude00\"",
        "\"\\ud83d\\u0041\"", "\"a\nb\"", "\"\t\"", "\"\x01\"", "\"\xc0\x80\"", "\"\xc1\xbf\"", "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\x80\"", "\"\xc3\"", "\"\xff\"",
        "tru", "True", "nul", "NaN", "Infinity", "-Infinity", "[1 2]", "{\"a\":1 \"b\":2}", "[}", "{]",
        "123456789012345678901", "0.123456789012345678901", "1e12345", "\"\\u00e9", "[\"a\",]"};
    qai_grammar *g;
    qai_grammar_options o = qai_grammar_default_options();
    CHECK_OK(qai_grammar_json_value(&o, &g));
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        CHECK_MSG(matches(g, valid[i], strlen(valid[i])) == 1, "valid JSON rejected: %s", valid[i]);
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        CHECK_MSG(matches(g, invalid[i], strlen(invalid[i])) == 0, "invalid JSON accepted: %s", invalid[i]);
    /* NUL bytes inside strings must be escaped */
    CHECK_EQ_INT(matches(g, "\"a\0b\"", 5), 0);

    /* whitespace: one space, or a newline and at most max_ws (20) spaces/tabs */
    CHECK_EQ_INT(M(g, "[ 1]"), 1);
    CHECK_EQ_INT(M(g, "[  1]"), 0);
    CHECK_EQ_INT(M(g, "[\t1]"), 0);
    CHECK_EQ_INT(M(g, "[\r\n1]"), 0);
    CHECK_EQ_INT(M(g, "[\n\n1]"), 0);
    CHECK_EQ_INT(M(g, "[ \n1]"), 0);
    CHECK_EQ_INT(M(g, "[\n                    1]"), 1);  /* 20 */
    CHECK_EQ_INT(M(g, "[\n                     1]"), 0); /* 21 */
    CHECK_EQ_INT(M(g, "[\n\t\t \t1]"), 1);
    CHECK_EQ_INT(M(g, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\" : {}\n}\n"), 1);
    CHECK_EQ_INT(M(g, "{\"a\":  1}"), 0);
    CHECK_EQ_INT(M(g, "{\"a\" :\n\n1}"), 0);
    CHECK_EQ_INT(M(g, "1 "), 1);
    CHECK_EQ_INT(M(g, "1  "), 0);
    CHECK_EQ_INT(M(g, " \n1"), 0);

    /* nesting up to max_depth (32 by default) */
    char deep[80];
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    CHECK_EQ_INT(matches(g, deep, 64), 1);
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    CHECK_EQ_INT(matches(g, deep, 66), 0);
    qai_grammar_free(g);

    /* json_object: only objects */
    CHECK_OK(qai_grammar_json_object(NULL, &g));
    CHECK_EQ_INT(M(g, "{\"a\":[1,{\"b\":null}]}"), 1);
    CHECK_EQ_INT(M(g, "[1]"), 0);
    CHECK_EQ_INT(M(g, "\"x\""), 0);
    CHECK_EQ_INT(M(g, "1"), 0);
    qai_grammar_free(g);

    /* a failing byte leaves the state as it was and names the offset */
    CHECK_OK(qai_grammar_json_value(NULL, &g));
    qai_grammar_state *st;
    CHECK_OK(qai_grammar_state_new(g, NULL, &st));
    CHECK_OK(qai_grammar_accept_bytes(st, "[1,", 3));
    CHECK(qai_grammar_accept_bytes(st, "2]]", 3) != QAI_OK);
    CHECK(strstr(qai_last_error(), "offset 2") != NULL);
    CHECK_OK(qai_grammar_accept_bytes(st, "2]", 2));
    CHECK(qai_grammar_is_complete(st));
    qai_grammar_state_reset(st);
    CHECK(!qai_grammar_is_complete(st));
    qai_grammar_state_free(st);
    qai_grammar_free(g);
}

/* differential: random fragment soups against the reference checker */
static void test_json_differential(void) {
    static const char *frag[] = {"{", "}", "[", "]", ",", ":", "\"a\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"", "\"",
                                 "\\", "1", "0", "-", ".", "e", "+", "true", "null", " ", "\n", "\"k\":", "\xc3\xa9",
                                 "\xed\xa0\x80", "\\u", "d83d", "x", "f", "\t", "  ", "\n "};
    const int nf = (int)(sizeof frag / sizeof *frag);
    qai_grammar_options o = qai_grammar_default_options();
    o.max_ws = 2;
    qai_grammar *g;
    CHECK_OK(qai_grammar_json_value(&o, &g));
    qai_rng rng;
    qai_rng_seed(&rng, 42);
    int agree = 1, n_valid = 0;
    char buf[512];
    for (int it = 0; it < 60000 && agree; it++) {
        size_t n = 0;
        int k = 1 + (int)(qai_rng_u64(&rng) % 10);
        for (int i = 0; i < k; i++) {
            const char *f = frag[qai_rng_u64(&rng) % (uint64_t)nf];
            size_t l = strlen(f);
            memcpy(buf + n, f, l);
            n += l;
        }
        int want = ref_valid_ws(buf, n, 2), got = matches(g, buf, n);
        n_valid += want;
        if (want != got) {
            agree = 0;
            fprintf(stderr, "differential: reference %d, grammar %d on '%.*s'\n", want, got, (int)n, buf);
        }
    }
    CHECK(agree);
    CHECK(n_valid > 1000); /* the soup does produce valid documents */
    qai_grammar_free(g);
}

/* ---------------- 2. schemas: semantics and errors ---------------- */

static void expect_error(const char *text, const char *needle);

static void test_schema_semantics(void) {
    qai_grammar *g = schema("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\","
                            "\"minLength\":2,\"maxLength\":3},\"c\":{\"type\":[\"boolean\",\"null\"]}},\"required\":[\"b\"]}",
                            NULL);
    CHECK(g != NULL);
    if (g) {
        const char *ok[] = {"{\"b\":\"xy\"}", "{\"a\":-5,\"b\":\"xyz\"}", "{\"a\":0,\"b\":\"\\u00e9\\n\",\"c\":null}",
                            "{ \"b\" : \"\xf0\x9f\x98\x80\xc3\xa9\" , \"c\" : true }", "{\"b\":\"\\ud83d\\ude00x\"}"};
        const char *bad[] = {"{}", "{\"a\":1}", "{\"b\":\"x\"}", "{\"b\":\"xyzw\"}", "{\"a\":1.5,\"b\":\"xy\"}",
                             "{\"a\":1e3,\"b\":\"xy\"}", "{\"b\":\"xy\",\"a\":1}", "{\"b\":\"xy\",\"d\":1}",
                             "{\"b\":\"xy\",\"c\":1}", "{\"b\":\"xy\",\"b\":\"xy\"}", "[]", "{\"\\u0062\":\"xy\"}"};
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
            CHECK_MSG(matches(g, ok[i], strlen(ok[i])) == 1, "rejected %s", ok[i]);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            CHECK_MSG(matches(g, bad[i], strlen(bad[i])) == 0, "accepted %s", bad[i]);
        qai_grammar_free(g);
    }
    /* enum / const written canonically; numbers in enums end by lookahead */
    g = schema("{\"enum\":[\"a\\\"b\",1,12,1.5,null,{\"x\":[1,true]},\"\\u00e9\\u0001\"]}", NULL);
    CHECK(g != NULL);
    if (g) {
        const char *ok[] = {"\"a\\\"b\"", "1", "12", "1.5", "null", "{\"x\":[1,true]}", "\"\xc3\xa9\\u0001\"", " 12 "};
        const char *bad[] = {"2", "\"a\"", "{\"x\": [1,true]}", "\"\\u00e9\\u0001\"", "1.50", "123", "true"};
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
            CHECK_MSG(matches(g, ok[i], strlen(ok[i])) == 1, "rejected %s", ok[i]);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            CHECK_MSG(matches(g, bad[i], strlen(bad[i])) == 0, "accepted %s", bad[i]);
        qai_grammar_free(g);
    }
    /* additional properties: declared names cannot be reused as extra keys, even escaped */
    g = schema("{\"properties\":{\"a\":{\"type\":\"integer\"},\"ab\":{\"type\":\"null\"}},"
               "\"additionalProperties\":{\"type\":\"string\"}}", NULL);
    CHECK(g != NULL);
    if (g) {
        const char *ok[] = {"{}", "{\"a\":1,\"x\":\"y\"}", "{\"ab\":null,\"a2\":\"\",\"abc\":\"\"}", "{\"b\":\"\"}",
                            "{\"\":\"\",\"\\n\":\"\"}", "{\"a\":1,\"ab\":null}"};
        const char *bad[] = {"{\"x\":\"y\",\"a\":1}", "{\"a\":1,\"a\":2}", "{\"x\":1}", "{\"b\":\"\",\"ab\":null}",
                             "{\"\\u0061\":\"\"}", "{\"a\\/\":\"\"}", "{\"\\u000a\":\"\"}", "{\"\\u00E9\":\"\"}"};
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
            CHECK_MSG(matches(g, ok[i], strlen(ok[i])) == 1, "rejected %s", ok[i]);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            CHECK_MSG(matches(g, bad[i], strlen(bad[i])) == 0, "accepted %s", bad[i]);
        qai_grammar_free(g);
    }
    /* arrays: min/max items; refs and recursion; boolean schemas */
    g = schema("{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/p\"},\"minItems\":1,\"maxItems\":2,"
               "\"$defs\":{\"p\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/p\"}}}}", NULL);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ_INT(M(g, "[[]]"), 1);
        CHECK_EQ_INT(M(g, "[[[[]]],[]]"), 1);
        CHECK_EQ_INT(M(g, "[]"), 0);
        CHECK_EQ_INT(M(g, "[[],[],[]]"), 0);
        CHECK_EQ_INT(M(g, "[1]"), 0);
        qai_grammar_free(g);
    }
    /* an anyOf that reaches itself through $ref (must not recurse forever) */
    g = schema("{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"null\"},{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":"
               "\"array\",\"items\":{\"$ref\":\"#\"}}]}]}", NULL);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ_INT(M(g, "[null,[[]]]"), 1);
        CHECK_EQ_INT(M(g, "[1]"), 0);
        qai_grammar_free(g);
    }
    expect_error("{\"anyOf\":[{\"$ref\":\"#\"}]}", "no finite JSON value");
    g = schema("{\"type\":\"object\",\"properties\":{\"t\":true,\"f\":false}}", NULL);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ_INT(M(g, "{\"t\":[{}]}"), 1);
        CHECK_EQ_INT(M(g, "{\"f\":1}"), 0);
        qai_grammar_free(g);
    }
    /* a recursive list whose "next" must be null at the depth limit */
    qai_grammar_options o = qai_grammar_default_options();
    o.max_depth = 3;
    g = schema("{\"type\":\"object\",\"properties\":{\"next\":{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"null\"}]}},"
               "\"required\":[\"next\"]}", &o);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ_INT(M(g, "{\"next\":{\"next\":{\"next\":null}}}"), 1);
        CHECK_EQ_INT(M(g, "{\"next\":{\"next\":{\"next\":{\"next\":null}}}}"), 0);
        qai_grammar_free(g);
    }
    /* response_format */
    qai_grammar *rf = NULL;
    CHECK_OK(qai_grammar_from_response_format("{\"type\":\"text\"}", 15, NULL, &rf));
    CHECK(rf == NULL);
    CHECK_OK(qai_grammar_from_response_format("{\"type\":\"json_object\"}", 22, NULL, &rf));
    CHECK(rf && M(rf, "{}") == 1 && M(rf, "[]") == 0);
    qai_grammar_free(rf);
    const char *js = "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"strict\":true,\"schema\":{\"type\":\"integer\"}}}";
    CHECK_OK(qai_grammar_from_response_format(js, strlen(js), NULL, &rf));
    CHECK(rf && M(rf, "42") == 1 && M(rf, "4.2") == 0);
    qai_grammar_free(rf);
}

static void expect_error(const char *text, const char *needle) {
    qai_grammar *g = NULL;
    qai_status st = qai_grammar_compile_json_schema(text, strlen(text), NULL, &g);
    CHECK_MSG(st != QAI_OK && g == NULL, "schema should fail: %s", text);
    CHECK_MSG(strstr(qai_last_error(), needle) != NULL, "error for %s is '%s', expected '%s'", text, qai_last_error(),
              needle);
    qai_grammar_free(g);
}

static void test_schema_errors(void) {
    expect_error("{\"type\":\"string\",\"ecmaPattern\":\"^a\"}", "unsupported keyword 'ecmaPattern' at '#/ecmaPattern'");
    expect_error("{\"properties\":{\"id\":{\"type\":\"string\",\"format\":\"idn-email\"}}}",
                 "unsupported keyword 'format' at '#/properties/id/format'");
    expect_error("{\"properties\":{\"a/b\":{\"uniqueItems\":true}}}", "unsupported keyword 'uniqueItems' at '#/properties/a~1b/uniqueItems'");
    expect_error("{\"$defs\":{\"x\":{\"multipleOf\":2}},\"$ref\":\"#/$defs/x\"}",
                 "unsupported keyword 'multipleOf' at '#/$defs/x/multipleOf'");
    expect_error("{\"items\":[{\"type\":\"string\"}]}", "'items' as an array");
    expect_error("{\"type\":\"strin\"}", "unknown type 'strin' at '#/type'");
    expect_error("{\"type\":[]}", "empty array");
    expect_error("{\"minLength\":-1}", "'minLength' at '#/minLength' must be a non-negative integer");
    expect_error("{\"maxItems\":1.5}", "'maxItems' at '#/maxItems' must be a non-negative integer");
    expect_error("{\"minLength\":5,\"maxLength\":3}", "minLength 5 > maxLength 3");
    expect_error("{\"enum\":[]}", "'enum' at '#/enum' has no value");
    expect_error("{\"type\":\"string\",\"enum\":[1,2]}", "has no value of the schema's type");
    expect_error("{\"$ref\":\"#/$defs/nope\"}", "does not resolve");
    expect_error("{\"$ref\":\"http://x/y.json\"}", "not a local reference");
    expect_error("{\"$ref\":\"#\"}", "cycle");
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}},\"required\":[\"a\"]}", "no finite JSON value");
    expect_error("{\"anyOf\":[]}", "non-empty array");
    expect_error("{\"allOf\":[{},{}]}", "unsupported keyword 'allOf'");
    expect_error("{\"type\":\"object\",\"anyOf\":[{}]}", "unsupported keyword 'type' next to 'anyOf'");
    expect_error("{\"enum\":[1],\"minLength\":1}", "unsupported keyword 'minLength' next to 'enum'");
    expect_error("{\"properties\":{},\"additionalProperties\":false,\"required\":[\"x\"]}", "required property 'x'");
    expect_error("{\"required\":\"x\"}", "'required' at '#/required' must be an array of strings");
    expect_error("[1]", "must be an object or a boolean");
    expect_error("{\"type\":", "invalid JSON");
    expect_error("{} x", "unexpected text");
    expect_error("{\"not\":{}}", "unsupported keyword 'not' at '#/not'");
    expect_error("{\"type\":\"array\",\"minItems\":1,\"items\":false}", "no finite JSON value");
    /* annotations are fine */
    qai_grammar *g = schema("{\"title\":\"t\",\"description\":\"d\",\"$schema\":\"x\",\"examples\":[1],\"default\":2,"
                            "\"type\":\"integer\"}", NULL);
    CHECK(g != NULL);
    qai_grammar_free(g);
    /* options are validated */
    qai_grammar_options o = {.max_ws = -1, .max_depth = 32};
    CHECK(qai_grammar_json_value(&o, &g) == QAI_ERR_ARG);
    o.max_ws = 201;
    CHECK(qai_grammar_json_value(&o, &g) == QAI_ERR_ARG);
    o.max_ws = 4, o.max_depth = 0;
    CHECK(qai_grammar_json_value(&o, &g) == QAI_ERR_ARG);
    /* response_format and tools errors name the field */
    const char *rfp = "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"format\":\"x\"}}}";
    CHECK(qai_grammar_from_response_format(rfp, strlen(rfp), NULL, &g) != QAI_OK);
    CHECK(strstr(qai_last_error(), "response_format.json_schema.schema: unsupported keyword 'format'") != NULL);
    CHECK(qai_grammar_from_response_format("{\"type\":\"yaml\"}", 15, NULL, &g) != QAI_OK);
}

/* ---------------- 3. generation ---------------- */

typedef struct {
    const qai_tokenizer *tok;
    const qai_grammar_vocab *gv;
    int32_t V;
    float *bias; /* (V) makes runs end: a model that likes to close things */
    char *text;
    size_t n_text;
    int n_tok, n_mask_checks, bad_eos, empty_masks, accept_fail;
} gen_t;

static void make_bias(gen_t *G) {
    G->bias = calloc((size_t)G->V, sizeof(float));
    char piece[256];
    for (int32_t t = 0; t < G->V; t++) {
        size_t n = qai_tokenizer_piece(G->tok, t, 0, piece, sizeof piece);
        if (n > sizeof piece) n = sizeof piece;
        for (size_t i = 0; i < n; i++)
            if (piece[i] == '"' || piece[i] == '}' || piece[i] == ']') G->bias[t] = 4.0f;
        if (qai_tokenizer_is_eog(G->tok, t)) G->bias[t] = 6.0f;
    }
}

/* Brute force: token t is allowed iff its bytes can be accepted after text. */
static int brute_allowed(const qai_grammar *g, const gen_t *G, int32_t t, int complete) {
    if (qai_tokenizer_is_eog(G->tok, t)) return complete;
    int32_t type = qai_tokenizer_token_type(G->tok, t);
    if (type == QAI_TOKEN_CONTROL || type == QAI_TOKEN_UNKNOWN || type == QAI_TOKEN_UNUSED) return 0;
    char piece[512];
    size_t n = qai_tokenizer_piece(G->tok, t, 0, piece, sizeof piece);
    if (!n || n > sizeof piece) return 0;
    qai_grammar_state *s;
    if (qai_grammar_state_new(g, NULL, &s)) return -1;
    int ok = qai_grammar_accept_bytes(s, G->text, G->n_text) == QAI_OK && qai_grammar_accept_bytes(s, piece, n) == QAI_OK;
    qai_grammar_state_free(s);
    return ok;
}

/* Samples one output under g from logits given by next_logits (V floats). */
typedef const float *(*logits_fn)(void *user, int32_t last, int pos);

static int generate(const qai_grammar *g, gen_t *G, logits_fn fn, void *user, uint64_t seed, int max_tokens,
                    int brute_every) {
    qai_grammar_state *st;
    if (qai_grammar_state_new(g, G->gv, &st)) return 0;
    qai_rng rng; /* temperature-1 sampling (softmax over the masked logits) */
    qai_rng_seed(&rng, seed);
    double *cdf = malloc((size_t)G->V * sizeof(double));
    float *lg = malloc((size_t)G->V * sizeof(float));
    G->n_text = 0;
    int32_t last = qai_tokenizer_bos(G->tok);
    int ended = 0;
    for (int i = 0; i < max_tokens && !ended; i++) {
        const float *src = fn(user, last, i);
        for (int32_t t = 0; t < G->V; t++) lg[t] = src[t] + G->bias[t];
        int n = qai_grammar_mask(st, lg);
        int complete = qai_grammar_is_complete(st);
        if (n <= 0) {
            G->empty_masks++;
            break;
        }
        int eos_ok = 0;
        for (int32_t t = 0; t < G->V; t++)
            if (qai_tokenizer_is_eog(G->tok, t) && isfinite(lg[t])) eos_ok = 1;
        if (eos_ok != complete) G->bad_eos++;
        if (brute_every && i % brute_every == 0) {
            int same = 1;
            for (int32_t t = 0; t < G->V && same; t++) {
                int want = brute_allowed(g, G, t, complete);
                if (want != (isfinite(lg[t]) != 0)) {
                    same = 0;
                    fprintf(stderr, "mask differs from brute force at token %d (want %d) after '%.*s'\n", t, want,
                            (int)G->n_text, G->text);
                }
            }
            CHECK(same);
            G->n_mask_checks++;
        }
        float mx = -INFINITY;
        for (int32_t v = 0; v < G->V; v++) mx = lg[v] > mx ? lg[v] : mx;
        double acc = 0;
        for (int32_t v = 0; v < G->V; v++) cdf[v] = acc += isfinite(lg[v]) ? exp((double)(lg[v] - mx)) : 0.0;
        double u = qai_rng_float(&rng) * acc;
        int32_t t = 0;
        while (t < G->V - 1 && (cdf[t] <= u || !isfinite(lg[t]))) t++;
        if (qai_grammar_accept(st, t) != QAI_OK) {
            G->accept_fail++;
            fprintf(stderr, "accept failed: %s\n", qai_last_error());
            break;
        }
        G->n_tok++;
        if (qai_tokenizer_is_eog(G->tok, t)) {
            ended = 1;
            break;
        }
        char piece[512];
        size_t pn = qai_tokenizer_piece(G->tok, t, 0, piece, sizeof piece);
        G->text = realloc(G->text, G->n_text + pn + 1);
        memcpy(G->text + G->n_text, piece, pn);
        G->n_text += pn;
        G->text[G->n_text] = 0;
        last = t;
    }
    /* after the end nothing is allowed */
    if (ended) CHECK_EQ_INT(qai_grammar_mask(st, lg), 0);
    free(lg);
    free(cdf);
    qai_grammar_state_free(st);
    return ended;
}

typedef struct {
    qai_context *ctx;
    int V;
} model_user;

static const float *model_logits(void *user, int32_t last, int pos) {
    model_user *mu = user;
    if (qai_decode_tokens(mu->ctx, 0, pos, &last, 1)) return NULL;
    return qai_context_logits(mu->ctx, 0);
}

typedef struct {
    qai_rng rng;
    float *buf;
    int V;
} rand_user;

static const float *rand_logits(void *user, int32_t last, int pos) {
    rand_user *ru = user;
    (void)last, (void)pos;
    for (int i = 0; i < ru->V; i++) ru->buf[i] = 6.0f * qai_rng_float(&ru->rng);
    return ru->buf;
}

static void test_patterns(void) {
    struct {
        const char *pattern;
        const char *ok[6], *bad[8];
    } cases[] = {
        {"^a.c$", {"\"abc\"", "\"a\xc3\xa9" "c\"", "\"a\\\"c\"", "\"a\\u0001c\""}, {"\"ac\"", "\"abbc\"", "\"a\\nc\"", "\"xabc\"", "\"abcx\"", "\"a\\u00e9c\""}},
        {"^[a-z]{2,3}-\\d+$", {"\"ab-1\"", "\"xyz-0123\""}, {"\"a-1\"", "\"abcd-1\"", "\"ab-\"", "\"ab-x\"", "\"AB-1\""}},
        {"ab", {"\"ab\"", "\"xxab\"", "\"abyy\"", "\"\\nab\\t\""}, {"\"\"", "\"a\"", "\"ba\"", "\"a\\u0062\""}},
        {"^(foo|ba[rz])+$", {"\"foo\"", "\"barbazfoo\""}, {"\"\"", "\"fo\"", "\"foob\"", "\"bar \""}},
        {"^[\\u0000-\\u001f\"\\\\]{1,2}$", {"\"\\n\"", "\"\\\"\\\\\"", "\"\\u0001\\t\"", "\"\\u001f\""},
         {"\"\"", "\"\\u000a\"", "\"\\u001F\"", "\"a\"", "\"\\n\\n\\n\"", "\"\\/\""}},
        {"^\xe2\x82\xac?[^a-z]$", {"\"\xe2\x82\xac" "1\"", "\"Z\"", "\"\xf0\x9f\x98\x80\""}, {"\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\"", "\"a\"", "\"\xe2\x82\xac" "b\""}},
        {"^$", {"\"\""}, {"\"a\""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *sch = cJSON_CreateObject();
        cJSON_AddStringToObject(sch, "type", "string");
        cJSON_AddStringToObject(sch, "pattern", cases[i].pattern);
        char *text = cJSON_PrintUnformatted(sch);
        qai_grammar *g = schema(text, NULL);
        CHECK_MSG(g != NULL, "pattern %s", cases[i].pattern);
        for (int k = 0; g && k < 6 && cases[i].ok[k]; k++)
            CHECK_MSG(M(g, cases[i].ok[k]) == 1, "pattern %s rejected %s", cases[i].pattern, cases[i].ok[k]);
        for (int k = 0; g && k < 8 && cases[i].bad[k]; k++)
            CHECK_MSG(M(g, cases[i].bad[k]) == 0, "pattern %s accepted %s", cases[i].pattern, cases[i].bad[k]);
        qai_grammar_free(g);
        free(text);
        cJSON_Delete(sch);
    }
    const char *bad[][2] = {{"(?=a)", "lookaround"}, {"(a)\\1", "backreference"}, {"a^b", "^ and $"},
                            {"[z-a]", "invalid range"}, {"a{3,2}", "n > m"}, {"*a", "nothing to repeat"},
                            {"(a", "unbalanced"}, {"a)", "unbalanced"}, {"\\p{L}", "not supported"},
                            {"a{100}", "too long"}, {"\\bx", "word boundaries"}, {"[\\ud800-\\udfff]", "matches nothing"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *sch = cJSON_CreateObject();
        cJSON_AddStringToObject(sch, "pattern", bad[i][0]);
        char *text = cJSON_PrintUnformatted(sch);
        expect_error(text, bad[i][1]);
        free(text);
        cJSON_Delete(sch);
    }
    expect_error("{\"pattern\":\"^a$\",\"minLength\":1}", "unsupported keyword 'pattern' together with minLength at '#/pattern'");
    expect_error("{\"pattern\":\"^abcd\",\"maxLength\":3}", "pattern at '#' needs at least 4 characters, more than maxLength 3");
    /* maxLength with a pattern: exact, and a prefix is refused as soon as it cannot end in time */
    qai_grammar *g = schema("{\"type\":\"string\",\"pattern\":\"^a*b?$\",\"maxLength\":3}", NULL);
    CHECK(g && M(g, "\"aaa\"") == 1 && M(g, "\"aab\"") == 1 && M(g, "\"aaab\"") == 0 && M(g, "\"aaaa\"") == 0);
    qai_grammar_free(g);
    g = schema("{\"type\":\"string\",\"pattern\":\"x$\",\"maxLength\":3}", NULL);
    CHECK(g && M(g, "\"abx\"") == 1 && M(g, "\"x\"") == 1 && M(g, "\"\\u0001x\"") == 1 && M(g, "\"abcx\"") == 0);
    if (g) {
        qai_grammar_state *st;
        CHECK_OK(qai_grammar_state_new(g, NULL, &st));
        CHECK_OK(qai_grammar_accept_bytes(st, "\"ab", 3));
        CHECK(qai_grammar_accept_bytes(st, "c", 1) != QAI_OK);       /* a third character must be the x */
        CHECK(qai_grammar_accept_bytes(st, "\xc3", 1) != QAI_OK);   /* also when it starts as UTF-8 */
        CHECK(qai_grammar_accept_bytes(st, "\\", 1) != QAI_OK);     /* or as an escape */
        CHECK_OK(qai_grammar_accept_bytes(st, "x\"", 2));
        qai_grammar_state_free(st);
    }
    qai_grammar_free(g);
    expect_error("{\"properties\":{\"p\":{\"pattern\":\"(?<n>a)\"}}}", "pattern at '#/properties/p/pattern'");
}

static const char *gen_schemas[] = {
    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"pattern\":\"^[a-z]{2,5}-\\\\d{3}$\"},"
    "\"word\":{\"pattern\":\"^(foo|ba[rz])+$\"},\"ctl\":{\"type\":\"string\",\"pattern\":\"^[\\\\u0000-\\\\u001f\\\"\\\\\\\\]{1,3}$\"},"
    "\"has\":{\"type\":\"string\",\"pattern\":\"^(ab|c)[0-9]?$\"}},\"required\":[\"code\",\"word\",\"ctl\",\"has\"]}",
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},\"age\":{\"type\":\"integer\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":6},\"maxItems\":3},\"active\":{\"type\":"
    "\"boolean\"}},\"required\":[\"name\",\"age\"]}",
    "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"blue\",1,12,null,{\"a\":[1,2]}]},"
    "\"k\":{\"const\":\"fixed\\n\\\"q\\\"\"}},\"required\":[\"color\",\"k\"]}",
    "{\"type\":\"object\",\"properties\":{\"v\":{\"type\":[\"number\",\"null\"]},\"w\":{\"anyOf\":[{\"type\":\"string\","
    "\"minLength\":2,\"maxLength\":4},{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":2}]}},"
    "\"required\":[\"v\",\"w\"]}",
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\","
    "\"items\":{\"$ref\":\"#/$defs/node\"},\"maxItems\":2}},\"required\":[\"id\"]}},\"$ref\":\"#/$defs/node\"}",
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":3},\"minItems\":2,\"maxItems\":4}",
    "{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"a\"},\"x\":{\"type\":\"number\"}},\"required\":"
    "[\"kind\",\"x\"]},{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"b\"},\"y\":{\"type\":\"string\","
    "\"maxLength\":5}},\"required\":[\"kind\",\"y\"]}]}",
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":{\"type\":\"string\","
    "\"maxLength\":3}}",
    "{\"type\":\"object\",\"properties\":{\"next\":{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"null\"}]},\"s\":{\"type\":"
    "\"string\",\"minLength\":3,\"maxLength\":5}},\"required\":[\"next\",\"s\"]}",
    "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":-40,\"maximum\":125},\"x\":{\"type\":"
    "\"number\",\"exclusiveMinimum\":0,\"maximum\":1.5},\"d\":{\"type\":\"string\",\"format\":\"date\"},\"id\":{\"type\":"
    "\"string\",\"format\":\"uuid\"},\"slug\":{\"type\":\"string\",\"pattern\":\"^[a-z]+(-[a-z0-9]+)*$\",\"maxLength\":8},"
    "\"t\":{\"type\":\"string\",\"format\":\"date-time\"},\"m\":{\"type\":\"string\",\"format\":\"email\"}},"
    "\"required\":[\"n\",\"x\",\"d\",\"id\",\"slug\",\"t\",\"m\"]}",
};

/* The reference validator itself must reject what it should (a validator
 * that accepts everything would make the generation tests pass vacuously). */
static void test_validator(void) {
    const char *docs[][3] = {
        /* schema index, instance, expected */
        {"0", "{\"code\":\"ab-123\",\"word\":\"foo\",\"ctl\":\"\\n\",\"has\":\"ab1\"}", "1"},
        {"0", "{\"code\":\"ab-12\",\"word\":\"foo\",\"ctl\":\"\\n\",\"has\":\"ab1\"}", "0"},
        {"0", "{\"code\":\"ab-123\",\"word\":\"foo\",\"ctl\":\"x\",\"has\":\"ab1\"}", "0"},
        {"1", "{\"name\":\"a\",\"age\":3,\"tags\":[\"x\"]}", "1"},
        {"1", "{\"name\":\"a\",\"age\":3.5}", "0"},
        {"1", "{\"age\":3,\"name\":\"a\"}", "0"},
        {"1", "{\"name\":\"a\",\"age\":3,\"x\":1}", "0"},
        {"1", "{\"name\":\"abcdefghijklm\",\"age\":3}", "0"},
        {"1", "{\"name\":\"a\",\"age\":3,\"tags\":[\"1\",\"2\",\"3\",\"4\"]}", "0"},
        {"2", "{\"color\":{\"a\":[1,2]},\"k\":\"fixed\\n\\\"q\\\"\"}", "1"},
        {"2", "{\"color\":\"pink\",\"k\":\"fixed\\n\\\"q\\\"\"}", "0"},
        {"4", "{\"id\":1,\"kids\":[{\"id\":2}]}", "1"},
        {"4", "{\"id\":1,\"kids\":[{\"kids\":[]}]}", "0"},
        {"6", "{\"kind\":\"a\",\"x\":1}", "1"},
        {"6", "{\"kind\":\"a\",\"y\":\"s\"}", "0"},
        {"9", "{\"n\":125,\"x\":1.5,\"d\":\"2024-02-29\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"slug\":\"a-b\",\"t\":\"2023-01-01T00:00:00Z\",\"m\":\"a@b.c\"}", "1"},
        {"9", "{\"n\":126,\"x\":1.5,\"d\":\"2024-02-29\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"slug\":\"a-b\",\"t\":\"2023-01-01T00:00:00Z\",\"m\":\"a@b.c\"}", "0"},
        {"9", "{\"n\":-41,\"x\":1,\"d\":\"2024-02-29\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"slug\":\"a-b\",\"t\":\"2023-01-01T00:00:00Z\",\"m\":\"a@b.c\"}", "0"},
        {"9", "{\"n\":0,\"x\":0,\"d\":\"2024-02-29\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"slug\":\"a-b\",\"t\":\"2023-01-01T00:00:00Z\",\"m\":\"a@b.c\"}", "0"},
        {"9", "{\"n\":0,\"x\":1.6,\"d\":\"2024-02-29\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"slug\":\"a-b\",\"t\":\"2023-01-01T00:00:00Z\",\"m\":\"a@b.c\"}", "0"},
        {"9", "{\"n\":0,\"x\":1,\"d\":\"2023-02-29\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"slug\":\"a-b\",\"t\":\"2023-01-01T00:00:00Z\",\"m\":\"a@b.c\"}", "0"},
        {"9", "{\"n\":0,\"x\":1,\"d\":\"2023-02-28\",\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"slug\":\"a-b\",\"t\":\"2023-01-01T00:00:00Z\",\"m\":\"a..b@c\"}", "0"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        cJSON *sj = cJSON_Parse(gen_schemas[atoi(docs[i][0])]), *v = cJSON_Parse(docs[i][1]);
        CHECK_MSG(sj && v && validate(v, sj, sj) == atoi(docs[i][2]), "validator on %s", docs[i][1]);
        cJSON_Delete(sj);
        cJSON_Delete(v);
    }
}

/* Runs every schema with several seeds; each output must parse and validate. */
static void run_schemas(gen_t *G, logits_fn fn, void *user, int seeds, int max_tokens, int brute_every,
                        const char *label) {
    qai_grammar_options o = qai_grammar_default_options();
    o.max_depth = 4; /* makes the recursive schemas meet the limit */
    int runs = 0, done = 0, valid = 0;
    for (size_t si = 0; si < sizeof gen_schemas / sizeof *gen_schemas; si++) {
        qai_grammar *g = schema(gen_schemas[si], &o);
        CHECK(g != NULL);
        if (!g) continue;
        cJSON *sj = cJSON_Parse(gen_schemas[si]);
        for (int seed = 1; seed <= seeds; seed++) {
            runs++;
            if (!generate(g, G, fn, user, (uint64_t)seed * 7919 + si, max_tokens, brute_every)) continue;
            done++;
            cJSON *out = cJSON_ParseWithLength(G->text, G->n_text);
            int ok = out && ref_valid(G->text, G->n_text) && validate(out, sj, sj);
            CHECK_MSG(ok, "%s schema %zu seed %d: output does not validate: '%.*s'", label, si, seed, (int)G->n_text,
                      G->text);
            valid += ok;
            if (getenv("QAI_TEST_VERBOSE")) printf("  %s schema %zu seed %d: %.*s\n", label, si, seed, (int)G->n_text, G->text);
            cJSON_Delete(out);
        }
        cJSON_Delete(sj);
        qai_grammar_free(g);
    }
    /* bounded schemas always finish within max_tokens; require nearly all */
    CHECK_MSG(done >= runs - 1, "%s: only %d of %d runs ended", label, done, runs);
    printf("%s: %d runs, %d ended, %d valid, %d tokens, %d brute-force mask checks\n", label, runs, done, valid,
           G->n_tok, G->n_mask_checks);
}

static void test_generation_model(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/grammar_random.gguf", TEST_TMP());
    qai_init_params ip = {.arch = "llama", .dim = 32, .layers = 1, .heads = 2, .kv_heads = 2, .ffn = 64,
                          .vocab = 320, .ctx = 512, .seed = 5, .type = QAI_TYPE_F32, .std = 0.5f};
    CHECK_OK(qai_model_init_random(&ip, path));
    qai_model *m;
    if (qai_model_open(path, &m)) {
        CHECK_OK(qai_model_open(path, &m));
        return;
    }
    qai_context_params cp = qai_context_default_params();
    cp.n_ctx = 512;
    cp.n_threads = 1;
    qai_context *ctx;
    CHECK_OK(qai_context_new(m, &cp, &ctx));
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    gen_t G = {.tok = tok, .V = qai_tokenizer_n_vocab(tok)};
    CHECK_OK(qai_grammar_vocab_new(tok, (qai_grammar_vocab **)&G.gv));
    make_bias(&G);
    model_user mu = {ctx, G.V};
    run_schemas(&G, model_logits, &mu, 4, 400, 7, "random model");
    CHECK_EQ_INT(G.bad_eos, 0);
    CHECK_EQ_INT(G.empty_masks, 0);
    CHECK_EQ_INT(G.accept_fail, 0);

    /* masks against brute force inside strings with patterns (search
     * semantics included: these need not end, only the masks are compared) */
    const char *pats[] = {"{\"type\":\"string\",\"pattern\":\"ab\"}", "{\"pattern\":\"^a.*b$\"}",
                          "{\"pattern\":\"^[\\\\u0000-\\\\u001f\\\"]*x|\\\\u00e9\"}"};
    int before = G.n_mask_checks;
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
        qai_grammar *gp = schema(pats[i], NULL);
        CHECK(gp != NULL);
        for (int seed = 1; gp && seed <= 2; seed++) generate(gp, &G, model_logits, &mu, (uint64_t)seed, 30, 1);
        qai_grammar_free(gp);
    }
    CHECK(G.n_mask_checks - before >= 100);

    /* json_object with the same model */
    qai_grammar *g;
    CHECK_OK(qai_grammar_json_object(NULL, &g));
    int ended = 0;
    for (int seed = 1; seed <= 4; seed++) {
        if (!generate(g, &G, model_logits, &mu, (uint64_t)seed, 400, 0)) continue;
        ended++;
        cJSON *out = cJSON_ParseWithLength(G.text, G.n_text);
        CHECK_MSG(out && cJSON_IsObject(out) && ref_valid(G.text, G.n_text), "json_object output '%.*s'",
                  (int)G.n_text, G.text);
        cJSON_Delete(out);
    }
    CHECK(ended >= 2);
    qai_grammar_free(g);

    /* the scheduler hook replays generated tokens and masks the same way */
    CHECK_OK(qai_grammar_json_value(NULL, &g));
    qai_grammar_state *a, *b;
    CHECK_OK(qai_grammar_state_new(g, G.gv, &a));
    CHECK_OK(qai_grammar_state_new(g, G.gv, &b));
    const char *doc = "{\"k\": [1, \"x\"]}";
    /* byte tokens spell it exactly (this vocabulary has no piece for a bare space) */
    size_t nid = strlen(doc);
    int32_t *ids = qai_malloc(nid * sizeof(int32_t));
    for (size_t i = 0; i < nid; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", (unsigned char)doc[i]);
        ids[i] = qai_tokenizer_find(tok, name);
    }
    uint8_t *al = malloc((size_t)G.V);
    float *lg = malloc((size_t)G.V * sizeof(float));
    int same = 1;
    for (size_t i = 0; i <= nid; i++) {
        memset(al, 1, (size_t)G.V);
        qai_grammar_mask_hook(b, ids, (int)i, al, G.V);
        for (int32_t t = 0; t < G.V; t++) lg[t] = 0;
        qai_grammar_mask(a, lg);
        for (int32_t t = 0; t < G.V; t++) same &= (al[t] != 0) == (isfinite(lg[t]) != 0);
        if (i < nid) CHECK_OK(qai_grammar_accept(a, ids[i]));
    }
    CHECK(same);
    CHECK(qai_grammar_is_complete(a));
    /* an EOG before the end and a forbidden token fail and change nothing */
    qai_grammar_state_reset(a);
    CHECK(qai_grammar_accept(a, qai_tokenizer_eos(tok)) != QAI_OK);
    CHECK(qai_grammar_accept(a, qai_tokenizer_bos(tok)) != QAI_OK);
    CHECK(qai_grammar_accept(a, ids[0]) == QAI_OK);
    int32_t close = qai_tokenizer_find(tok, "<0x5D>"); /* ']' cannot follow '{' */
    CHECK(close >= 0 && qai_grammar_accept(a, close) != QAI_OK);
    CHECK(qai_grammar_accept(a, ids[1]) == QAI_OK);
    /* a hook called with a history it cannot replay leaves only EOG */
    int32_t badh[2] = {close, close};
    memset(al, 1, (size_t)G.V);
    qai_grammar_mask_hook(b, badh, 2, al, G.V);
    int n_al = 0;
    for (int32_t t = 0; t < G.V; t++) n_al += al[t];
    CHECK(n_al >= 1 && al[qai_tokenizer_eos(tok)]);
    free(al);
    free(lg);
    qai_free(ids);
    qai_grammar_state_free(a);
    qai_grammar_state_free(b);
    qai_grammar_free(g);

    qai_grammar_vocab_free((qai_grammar_vocab *)G.gv);
    free(G.bias);
    free(G.text);
    qai_context_free(ctx);
    qai_model_close(m);
    remove(path);
}

/* ---------------- 4. tool calls ---------------- */

static const char *tools_json =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"d\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":8},\"unit\":{\"enum\":[\"c\",\"f\"]}},"
    "\"required\":[\"city\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"tz\":{\"type\":\"integer\"}},\"required\":[\"tz\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}]";

static int check_call(const cJSON *call, const cJSON *tools, const char *only) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(call, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(call, "arguments");
    if (!cJSON_IsObject(call) || cJSON_GetArraySize(call) != 2 || !cJSON_IsString(name) || !args) return 0;
    if (only && strcmp(only, name->valuestring)) return 0;
    for (const cJSON *t = tools->child; t; t = t->next) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        if (strcmp(cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring, name->valuestring)) continue;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (!p) return cJSON_IsObject(args) && cJSON_GetArraySize(args) == 0;
        return validate(args, p, p);
    }
    return 0;
}

static void test_tool_calls(void) {
    qai_grammar *g = NULL;
    /* exact matching */
    CHECK_OK(qai_grammar_tool_calls(tools_json, strlen(tools_json), "\"required\"", 10, 0, NULL, &g));
    if (g) {
        const char *ok[] = {"{\"name\":\"get_time\",\"arguments\":{\"tz\":-3}}",
                            "{ \"name\" : \"get_weather\" , \"arguments\" : {\"city\":\"Oslo\",\"unit\":\"c\"} }",
                            "{\"name\":\"noop\",\"arguments\":{}}"};
        const char *bad[] = {"{\"name\":\"get_time\",\"arguments\":{\"city\":\"x\"}}",
                             "{\"arguments\":{},\"name\":\"noop\"}", "{\"name\":\"nope\",\"arguments\":{}}",
                             "{\"name\":\"noop\",\"arguments\":{\"x\":1}}", "{\"name\":\"noop\"}", "hello",
                             "[{\"name\":\"noop\",\"arguments\":{}}]"};
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
            CHECK_MSG(matches(g, ok[i], strlen(ok[i])) == 1, "rejected %s", ok[i]);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            CHECK_MSG(matches(g, bad[i], strlen(bad[i])) == 0, "accepted %s", bad[i]);
        qai_grammar_free(g);
    }
    /* auto: free text unless it starts with '{' */
    CHECK_OK(qai_grammar_tool_calls(tools_json, strlen(tools_json), "\"auto\"", 6, 0, NULL, &g));
    if (g) {
        CHECK_EQ_INT(M(g, "Hello, {world}"), 1);
        CHECK_EQ_INT(M(g, ""), 1);
        CHECK_EQ_INT(M(g, " {\"name\":\"noop\",\"arguments\":{}}"), 1);
        CHECK_EQ_INT(M(g, "{\"name\":\"noop\""), 0);
        CHECK_EQ_INT(M(g, "{hello}"), 0);
        qai_grammar_state *s;
        CHECK_OK(qai_grammar_state_new(g, NULL, &s));
        CHECK(!qai_grammar_state_is_tool_call(s));
        CHECK_OK(qai_grammar_accept_bytes(s, " {", 2));
        CHECK(qai_grammar_state_is_tool_call(s));
        CHECK(!qai_grammar_is_complete(s));
        qai_grammar_state_free(s);
        qai_grammar_free(g);
    }
    /* parallel calls: a non-empty array */
    CHECK_OK(qai_grammar_tool_calls(tools_json, strlen(tools_json), NULL, 0, QAI_GRAMMAR_PARALLEL_TOOLS, NULL, &g));
    if (g) {
        const char *two = "[{\"name\":\"noop\",\"arguments\":{}},{\"name\":\"get_time\",\"arguments\":{\"tz\":1}}]";
        CHECK_EQ_INT(matches(g, two, strlen(two)), 1);
        CHECK_EQ_INT(M(g, "[]"), 0);
        CHECK_EQ_INT(M(g, "plain"), 1);
        qai_grammar_free(g);
    }
    /* none: no grammar; errors name the field */
    g = (qai_grammar *)1;
    CHECK_OK(qai_grammar_tool_calls(tools_json, strlen(tools_json), "\"none\"", 6, 0, NULL, &g));
    CHECK(g == NULL);
    const char *pick = "{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}";
    CHECK(qai_grammar_tool_calls(tools_json, strlen(tools_json), pick, strlen(pick), 0, NULL, &g) == QAI_ERR_NOT_FOUND);
    CHECK(strstr(qai_last_error(), "no tool is named 'nope'") != NULL);
    const char *badt = "[{\"type\":\"function\",\"function\":{\"name\":\"a\",\"parameters\":{\"properties\":{\"q\":"
                       "{\"format\":\"x\"}}}}}]";
    CHECK(qai_grammar_tool_calls(badt, strlen(badt), NULL, 0, 0, NULL, &g) != QAI_OK);
    CHECK(strstr(qai_last_error(), "tools[0].function.parameters: unsupported keyword 'format' at '#/properties/q/format'") != NULL);
    const char *dup = "[{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"function\",\"function\":{\"name\":\"a\"}}]";
    CHECK(qai_grammar_tool_calls(dup, strlen(dup), NULL, 0, 0, NULL, &g) != QAI_OK);
    CHECK(qai_grammar_tool_calls("{}", 2, NULL, 0, 0, NULL, &g) != QAI_OK);
    CHECK(qai_grammar_tool_calls("[]", 2, "\"required\"", 10, 0, NULL, &g) != QAI_OK);
    CHECK(qai_grammar_tool_calls(tools_json, strlen(tools_json), "\"sometimes\"", 11, 0, NULL, &g) != QAI_OK);
}

/* ---------------- 5. the llama2 32k vocabulary ---------------- */

static void test_llama2_vocab(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/llama2-tokenizer/tokenizer.bin", TEST_DATA());
    qai_vocab_desc d;
    if (qai_vocab_read_llama2c(path, &d)) {
        printf("skipping the llama2 vocabulary test: %s\n", qai_last_error());
        return;
    }
    qai_tokenizer *tok;
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    qai_vocab_release(&d);
    gen_t G = {.tok = tok, .V = qai_tokenizer_n_vocab(tok)};
    CHECK_OK(qai_grammar_vocab_new(tok, (qai_grammar_vocab **)&G.gv));
    make_bias(&G);
    rand_user ru = {.V = G.V, .buf = malloc((size_t)G.V * sizeof(float))};
    qai_rng_seed(&ru.rng, 11);
    run_schemas(&G, rand_logits, &ru, 2, 300, 0, "llama2 vocab");
    /* brute-force comparison of masks on the 32k vocabulary, a few states */
    qai_grammar *g = schema(gen_schemas[1], NULL);
    if (g) {
        generate(g, &G, rand_logits, &ru, 99, 12, 4);
        qai_grammar_free(g);
    }
    g = schema("{\"type\":\"string\",\"pattern\":\"o\"}", NULL);
    if (g) {
        generate(g, &G, rand_logits, &ru, 7, 6, 2);
        qai_grammar_free(g);
    }
    /* tool calls with the real vocabulary */
    CHECK_OK(qai_grammar_tool_calls(tools_json, strlen(tools_json), "\"required\"", 10, 0, NULL, &g));
    cJSON *tj = cJSON_Parse(tools_json);
    int ok_calls = 0, ended = 0;
    for (int seed = 1; seed <= 6 && g; seed++) {
        if (!generate(g, &G, rand_logits, &ru, (uint64_t)seed, 300, 0)) continue;
        ended++;
        cJSON *out = cJSON_ParseWithLength(G.text, G.n_text);
        int ok = out && check_call(out, tj, NULL);
        CHECK_MSG(ok, "tool call does not validate: '%.*s'", (int)G.n_text, G.text);
        ok_calls += ok;
        if (getenv("QAI_TEST_VERBOSE")) printf("  tool call seed %d: %.*s\n", seed, (int)G.n_text, G.text);
        cJSON_Delete(out);
    }
    CHECK(ended >= 5);
    qai_grammar_free(g);
    const char *pick = "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}";
    CHECK_OK(qai_grammar_tool_calls(tools_json, strlen(tools_json), pick, strlen(pick), 0, NULL, &g));
    for (int seed = 1; seed <= 3 && g; seed++) {
        if (!generate(g, &G, rand_logits, &ru, (uint64_t)seed, 300, 0)) continue;
        cJSON *out = cJSON_ParseWithLength(G.text, G.n_text);
        CHECK_MSG(out && check_call(out, tj, "get_time"), "forced tool call: '%.*s'", (int)G.n_text, G.text);
        cJSON_Delete(out);
    }
    qai_grammar_free(g);
    /* auto: either free text that does not start with '{' or a valid call */
    CHECK_OK(qai_grammar_tool_calls(tools_json, strlen(tools_json), "\"auto\"", 6, 0, NULL, &g));
    for (int seed = 1; seed <= 4 && g; seed++) {
        if (!generate(g, &G, rand_logits, &ru, (uint64_t)seed, 60, 0)) continue;
        size_t i = 0;
        while (i < G.n_text && strchr(" \t\r\n", G.text[i])) i++;
        if (i < G.n_text && G.text[i] == '{') {
            cJSON *out = cJSON_ParseWithLength(G.text, G.n_text);
            CHECK_MSG(out && check_call(out, tj, NULL), "auto tool call: '%.*s'", (int)G.n_text, G.text);
            cJSON_Delete(out);
        }
    }
    qai_grammar_free(g);
    cJSON_Delete(tj);
    printf("llama2 vocab tool calls: %d valid\n", ok_calls);
    CHECK_EQ_INT(G.bad_eos, 0);
    CHECK_EQ_INT(G.empty_masks, 0);
    CHECK_EQ_INT(G.accept_fail, 0);
    free(ru.buf);
    free(G.bias);
    free(G.text);
    qai_grammar_vocab_free((qai_grammar_vocab *)G.gv);
    qai_tokenizer_free(tok);
}

/* shared grammar and trie, one state per thread: each thread's masks equal
 * the ones computed alone */
typedef struct {
    const qai_grammar *g;
    const qai_grammar_vocab *gv;
    const qai_tokenizer *tok;
    uint64_t sum; /* a digest of every mask of a fixed walk */
} mt_arg;

static void *mt_run(void *p) {
    mt_arg *a = p;
    qai_grammar_state *st;
    if (qai_grammar_state_new(a->g, a->gv, &st)) return NULL;
    int32_t V = qai_tokenizer_n_vocab(a->tok);
    uint8_t *al = malloc((size_t)V);
    const char *doc = "{\"name\":\"Ada\",\"age\":36,\"tags\":[\"x\",\"y\"],\"active\":true}";
    a->sum = 0;
    for (int rep = 0; rep < 3; rep++) {
        qai_grammar_state_reset(st);
        for (size_t i = 0; doc[i]; i++) {
            memset(al, 1, (size_t)V);
            int n = qai_grammar_allowed(st, al);
            uint64_t h = (uint64_t)n;
            for (int32_t t = 0; t < V; t++) h = h * 1099511628211ull + al[t];
            a->sum += h;
            if (qai_grammar_accept_bytes(st, doc + i, 1)) break;
        }
    }
    free(al);
    qai_grammar_state_free(st);
    return NULL;
}

static void test_threads(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/llama2-tokenizer/tokenizer.bin", TEST_DATA());
    qai_vocab_desc d;
    if (qai_vocab_read_llama2c(path, &d)) return;
    qai_tokenizer *tok;
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    qai_vocab_release(&d);
    qai_grammar_vocab *gv;
    CHECK_OK(qai_grammar_vocab_new(tok, &gv));
    qai_grammar *g = schema(gen_schemas[1], NULL);
    mt_arg alone = {g, gv, tok, 0}, a[3];
    mt_run(&alone);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        a[i] = alone;
        pthread_create(&th[i], NULL, mt_run, &a[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK(a[i].sum == alone.sum && alone.sum != 0);
    }
    qai_grammar_free(g);
    qai_grammar_vocab_free(gv);
    qai_tokenizer_free(tok);
}

/* allocation failures are reported, never crash */
static void test_alloc_failures(void) {
    const char *s = gen_schemas[1];
    int failed = 0;
    for (long k = 1; k < 200; k++) {
        qai_grammar *g = NULL;
        qai_alloc_fail_after(k);
        qai_status st = qai_grammar_compile_json_schema(s, strlen(s), NULL, &g);
        qai_alloc_fail_after(0);
        if (st) {
            failed++;
            CHECK(g == NULL);
        } else {
            CHECK_EQ_INT(M(g, "{\"name\":\"a\",\"age\":1}"), 1);
            qai_grammar_free(g);
            break;
        }
    }
    CHECK(failed > 5);
}

/* ---------------- 6. numeric ranges and string formats ---------------- */

/* Independent format checkers (RFC 3339, RFC 4122, RFC 5321/5322, RFC 3986,
 * dotted-quad IPv4), written from the RFCs' grammars, not from qai's patterns. */
static int n_digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}
static int num_at(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}
static int ck_date(const char *s, size_t n) {
    if (n != 10 || !n_digits(s, 4) || s[4] != '-' || !n_digits(s + 5, 2) || s[7] != '-' || !n_digits(s + 8, 2)) return 0;
    int y = num_at(s, 4), m = num_at(s + 5, 2), d = num_at(s + 8, 2);
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}
static int ck_time(const char *s, size_t n) {
    if (n < 9 || !n_digits(s, 2) || s[2] != ':' || !n_digits(s + 3, 2) || s[5] != ':' || !n_digits(s + 6, 2)) return 0;
    if (num_at(s, 2) > 23 || num_at(s + 3, 2) > 59 || num_at(s + 6, 2) > 60) return 0;
    size_t i = 8;
    if (s[i] == '.') {
        size_t j = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == j) return 0;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == n;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        return n - i == 6 && n_digits(s + i + 1, 2) && s[i + 3] == ':' && n_digits(s + i + 4, 2) &&
               num_at(s + i + 1, 2) <= 23 && num_at(s + i + 4, 2) <= 59;
    return 0;
}
static int ck_datetime(const char *s, size_t n) {
    return n > 11 && (s[10] == 'T' || s[10] == 't') && ck_date(s, 10) && ck_time(s + 11, n - 11);
}
static int ck_uuid(const char *s, size_t n) {
    if (n != 36) return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i]) {
            return 0;
        }
    }
    return 1;
}
static int ck_email(const char *s, size_t n) {
    const char *at = memchr(s, '@', n);
    if (!at) return 0;
    size_t ln = (size_t)(at - s);
    if (ln == 0 || ln > 64 || s[0] == '.' || s[ln - 1] == '.') return 0;
    for (size_t i = 0; i < ln; i++) { /* RFC 5322 dot-atom */
        char c = s[i];
        if (c == '.' && s[i + 1] == '.') return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+/=?^_`{|}~-.", c)))
            return 0;
    }
    const char *d = at + 1, *e = s + n; /* RFC 5321 Domain: sub-domains of letters, digits, inner hyphens */
    if (d == e) return 0;
    while (d < e) {
        const char *dot = memchr(d, '.', (size_t)(e - d));
        const char *le = dot ? dot : e;
        size_t ll = (size_t)(le - d);
        if (ll == 0 || ll > 63 || d[0] == '-' || le[-1] == '-') return 0;
        for (const char *q = d; q < le; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-')) return 0;
        if (!dot) break;
        d = dot + 1;
        if (d == e) return 0;
    }
    return 1;
}
static int uri_unres(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("-._~", c));
}
static int uri_sub(char c) { return c && strchr("!$&'()*+,;=", c); }
static int uri_pchar(const char *s, size_t *i, size_t n) { /* pchar at s[*i], advancing */
    char c = s[*i];
    if (uri_unres(c) || uri_sub(c) || c == ':' || c == '@') {
        (*i)++;
        return 1;
    }
    if (c == '%' && *i + 2 < n + 1 && isxdigit((unsigned char)s[*i + 1]) && isxdigit((unsigned char)s[*i + 2])) {
        *i += 3;
        return 1;
    }
    return 0;
}
static int ck_uri(const char *s, size_t n) { /* RFC 3986 "URI" */
    size_t i = 0;
    if (!n || !isalpha((unsigned char)s[0])) return 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) i++;
    if (i == n || s[i] != ':') return 0;
    i++;
    if (i + 1 < n && s[i] == '/' && s[i + 1] == '/') { /* authority path-abempty */
        i += 2;
        size_t a = i;
        while (i < n && s[i] != '/' && s[i] != '?' && s[i] != '#') i++;
        size_t ae = i, h = a;
        const char *at = memchr(s + a, '@', ae - a);
        if (at) { /* userinfo */
            for (size_t k = a; k < (size_t)(at - s);)
                if (!(uri_unres(s[k]) || uri_sub(s[k]) || s[k] == ':' ? (k++, 1) : 0)) return 0;
            h = (size_t)(at - s) + 1;
        }
        size_t k = h;
        while (k < ae && (uri_unres(s[k]) || uri_sub(s[k]))) k++; /* reg-name (no pct-encoding needed here) */
        if (k < ae) {
            if (s[k] != ':') return 0;
            for (k++; k < ae; k++)
                if (!isdigit((unsigned char)s[k])) return 0;
        }
        while (i < n && s[i] == '/') {
            i++;
            while (i < n && uri_pchar(s, &i, n)) {}
        }
    } else if (i < n && s[i] == '/') { /* path-absolute: not "//" */
        i++;
        size_t k = i;
        while (i < n && uri_pchar(s, &i, n)) {}
        if (i > k)
            while (i < n && s[i] == '/') {
                i++;
                while (i < n && uri_pchar(s, &i, n)) {}
            }
    } else { /* path-rootless or path-empty */
        size_t k = i;
        while (i < n && uri_pchar(s, &i, n)) {}
        if (i > k)
            while (i < n && s[i] == '/') {
                i++;
                while (i < n && uri_pchar(s, &i, n)) {}
            }
    }
    if (i < n && s[i] == '?')
        for (i++; i < n && (s[i] == '/' || s[i] == '?' || uri_pchar(s, &i, n));)
            if (s[i] == '/' || s[i] == '?') i++;
    if (i < n && s[i] == '#')
        for (i++; i < n && (s[i] == '/' || s[i] == '?' || uri_pchar(s, &i, n));)
            if (s[i] == '/' || s[i] == '?') i++;
    return i == n;
}
static int ck_ipv4(const char *s, size_t n) {
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (i >= n || s[i] != '.') return 0;
            i++;
        }
        size_t j = i;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - j < 4) i++;
        if (i == j || i - j > 3 || (i - j > 1 && s[j] == '0') || num_at(s + j, (int)(i - j)) > 255) return 0;
    }
    return i == n;
}
static int ck_format(const char *f, const char *s, size_t n) {
    if (!strcmp(f, "date")) return ck_date(s, n);
    if (!strcmp(f, "time")) return ck_time(s, n);
    if (!strcmp(f, "date-time")) return ck_datetime(s, n);
    if (!strcmp(f, "uuid")) return ck_uuid(s, n);
    if (!strcmp(f, "email")) return ck_email(s, n);
    if (!strcmp(f, "uri")) return ck_uri(s, n);
    if (!strcmp(f, "ipv4")) return ck_ipv4(s, n);
    return 0;
}

/* minimum/maximum/exclusive* of a number (doubles, as validators compare) */
static int range_ok(const cJSON *s, double v) {
    const cJSON *k;
    const cJSON *xmin = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum");
    const cJSON *xmax = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "minimum")) && (cJSON_IsTrue(xmin) ? v <= k->valuedouble : v < k->valuedouble))
        return 0;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "maximum")) && (cJSON_IsTrue(xmax) ? v >= k->valuedouble : v > k->valuedouble))
        return 0;
    if (cJSON_IsNumber(xmin) && v <= xmin->valuedouble) return 0;
    if (cJSON_IsNumber(xmax) && v >= xmax->valuedouble) return 0;
    return 1;
}

/* A random walk through the grammar byte by byte over printable ASCII: every
 * prefix the grammar accepts can be completed, so the walk never gets stuck;
 * it stops at complete points with probability 1/4. Returns the length, or
 * -1 if it got stuck or ran out of room (a grammar bug). */
static long random_walk(const qai_grammar *g, qai_rng *rng, char *out, size_t cap) {
    qai_grammar_state *st;
    if (qai_grammar_state_new(g, NULL, &st)) return -1;
    size_t n = 0;
    long res = -1;
    for (;;) {
        int complete = qai_grammar_is_complete(st);
        if (complete && (qai_rng_u64(rng) % 4 == 0 || n + 1 >= cap)) {
            res = (long)n;
            break;
        }
        if (n + 1 >= cap) break;
        char order[96];
        int m = 0;
        for (int b = 0x20; b < 0x7f; b++) order[m++] = (char)b;
        for (int i = m - 1; i > 0; i--) {
            int j = (int)(qai_rng_u64(rng) % (uint64_t)(i + 1));
            char t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        uint64_t r = qai_rng_u64(rng) % 6; /* sometimes try closing or separators first, so strings end */
        char pref = r < 2 ? '"' : r == 2 ? ".@:/"[qai_rng_u64(rng) % 4] : 0;
        for (int i = 0; pref && i < m; i++)
            if (order[i] == pref) order[i] = order[0], order[0] = pref;
        int moved = 0;
        for (int i = 0; i < m && !moved; i++)
            if (qai_grammar_accept_bytes(st, &order[i], 1) == QAI_OK) {
                out[n++] = order[i];
                moved = 1;
            }
        if (!moved) {
            if (complete) res = (long)n;
            break;
        }
    }
    out[n] = 0;
    qai_grammar_state_free(st);
    return res;
}

static void test_ranges(void) {
    /* integers: every value in a window around the bounds is accepted
     * exactly when it is in range (the range check uses the schema's doubles) */
    static const char *ints[] = {
        "{\"type\":\"integer\",\"minimum\":-37,\"maximum\":1234}",
        "{\"type\":\"integer\",\"exclusiveMinimum\":-5,\"exclusiveMaximum\":5}",
        "{\"type\":\"integer\",\"minimum\":100}",
        "{\"type\":\"integer\",\"maximum\":-100}",
        "{\"type\":\"integer\",\"minimum\":-1000,\"maximum\":-990}",
        "{\"type\":\"integer\",\"minimum\":0.5,\"maximum\":9.5}",
        "{\"type\":\"integer\",\"exclusiveMinimum\":0.5,\"exclusiveMaximum\":9.5}",
        "{\"type\":\"integer\",\"minimum\":7,\"maximum\":7}",
        "{\"type\":\"integer\",\"minimum\":0,\"maximum\":0}",
        "{\"type\":\"integer\",\"minimum\":123456789012,\"maximum\":123456790000}",
        "{\"type\":\"integer\",\"minimum\":-20,\"exclusiveMinimum\":true,\"maximum\":30,\"exclusiveMaximum\":true}",
        "{\"minimum\":0,\"maximum\":100,\"type\":\"integer\"}",
        "{\"type\":\"integer\",\"minimum\":-99999,\"maximum\":99999}",
    };
    qai_rng rng;
    qai_rng_seed(&rng, 2024);
    char buf[256];
    for (size_t si = 0; si < sizeof ints / sizeof *ints; si++) {
        qai_grammar *g = schema(ints[si], NULL);
        cJSON *sj = cJSON_Parse(ints[si]);
        CHECK_MSG(g && sj, "schema %s", ints[si]);
        if (!g || !sj) continue;
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(sj, "minimum"), *mx = cJSON_GetObjectItemCaseSensitive(sj, "maximum");
        const cJSON *xn = cJSON_GetObjectItemCaseSensitive(sj, "exclusiveMinimum"), *xx = cJSON_GetObjectItemCaseSensitive(sj, "exclusiveMaximum");
        long long lo = mn ? (long long)floor(mn->valuedouble) : cJSON_IsNumber(xn) ? (long long)floor(xn->valuedouble) : -3000;
        long long hi = mx ? (long long)ceil(mx->valuedouble) : cJSON_IsNumber(xx) ? (long long)ceil(xx->valuedouble) : 3000;
        int bad = 0, n_in = 0;
        for (long long v = lo - 1500; v <= hi + 1500 && bad < 5; v++) {
            if (v > lo + 1500 && v < hi - 1500) v = hi - 1500;
            int n = snprintf(buf, sizeof buf, "%lld", v);
            int want = range_ok(sj, (double)v), got = matches(g, buf, (size_t)n);
            n_in += want;
            if (want != got) {
                bad++;
                fprintf(stderr, "range %s: %s expected %d got %d\n", ints[si], buf, want, got);
            }
        }
        CHECK_MSG(bad == 0 && n_in > 0, "integer range %s", ints[si]);
        /* random walks: integers, in range, and not all the same */
        int ok = 1, distinct = 0;
        long long first = 0;
        for (int it = 0; it < 300 && ok; it++) {
            long len = random_walk(g, &rng, buf, sizeof buf);
            char *end = NULL;
            long long v = len > 0 ? strtoll(buf, &end, 10) : 0;
            while (end && (*end == ' ' || *end == '\n' || *end == '\t')) end++;
            ok = len > 0 && end == buf + len && range_ok(sj, (double)v) && ref_valid(buf, (size_t)len);
            if (!ok) fprintf(stderr, "range walk %s: '%s'\n", ints[si], buf);
            if (it == 0) first = v;
            distinct |= v != first;
        }
        CHECK_MSG(ok, "random walk under %s", ints[si]);
        CHECK_MSG(distinct || strstr(ints[si], "7,") || strstr(ints[si], "0,\"maximum\":0"), "walks vary under %s", ints[si]);
        cJSON_Delete(sj);
        qai_grammar_free(g);
    }
    /* boundary values of numbers: min-1ulp-of-the-grid, min, max, max+ */
    /* with the fraction digits qai writes (documented: at least 6, more if a bound has more) */
    static const char *nums[][2] = {
        {"{\"type\":\"number\",\"minimum\":0.5,\"maximum\":2.25}", "6"},
        {"{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}", "6"},
        {"{\"type\":\"number\",\"minimum\":-1.5}", "6"},
        {"{\"type\":\"number\",\"exclusiveMaximum\":0.1}", "6"},
        {"{\"type\":\"number\",\"minimum\":1e-9,\"maximum\":2e-8}", "9"},
        {"{\"type\":\"number\",\"minimum\":-273.15,\"maximum\":1e6}", "6"},
        {"{\"type\":[\"number\",\"null\"],\"minimum\":3,\"maximum\":4}", "6"},
    };
    static const char *probes[] = {"0.5", "0.499999", "0.49", "2.25", "2.250001", "2.26", "0", "0.000001", "1",
                                   "0.999999", "-1.5", "-1.500001", "-1.49", "100000", "0.1", "0.099999", "-5",
                                   "0.000000001", "0.000000002", "0.00000002", "0.000000021", "0.000000000", "-273.15",
                                   "-273.16", "-273.149", "1000000", "1000000.000001", "999999.999", "3", "4", "4.0",
                                   "2.999999", "4.000001", "3.5", "-0", "1e-5", "null"};
    for (size_t si = 0; si < sizeof nums / sizeof *nums; si++) {
        qai_grammar *g = schema(nums[si][0], NULL);
        cJSON *sj = cJSON_Parse(nums[si][0]);
        CHECK_MSG(g && sj, "schema %s", nums[si][0]);
        if (!g || !sj) continue;
        for (size_t p = 0; p < sizeof probes / sizeof *probes; p++) {
            const char *t = probes[p];
            if (!strcmp(t, "null")) {
                CHECK_EQ_INT(M(g, t), strstr(nums[si][0], "null") != NULL);
                continue;
            }
            int want = range_ok(sj, strtod(t, NULL));
            const char *dot = strchr(t, '.');
            if (strchr(t, 'e') || !strcmp(t, "-0") || (dot && (int)strlen(dot + 1) > atoi(nums[si][1])))
                want = 0; /* no exponents, no more fraction digits than the grid, "-0" only where negatives are allowed */
            if (!strcmp(t, "-0") && range_ok(sj, -1e-12)) want = 1;
            int got = M(g, t);
            CHECK_MSG(want == got, "number %s: '%s' expected %d got %d", nums[si][0], t, want, got);
        }
        int ok = 1;
        for (int it = 0; it < 300 && ok; it++) {
            long len = random_walk(g, &rng, buf, sizeof buf);
            cJSON *v = len > 0 ? cJSON_ParseWithLength(buf, (size_t)len) : NULL;
            ok = v && (cJSON_IsNull(v) || (cJSON_IsNumber(v) && range_ok(sj, strtod(buf, NULL)))) && ref_valid(buf, (size_t)len);
            if (!ok) fprintf(stderr, "number walk %s: '%s'\n", nums[si][0], buf);
            cJSON_Delete(v);
        }
        CHECK_MSG(ok, "random walk under %s", nums[si][0]);
        cJSON_Delete(sj);
        qai_grammar_free(g);
    }
    /* inside objects, with whitespace, and the number ending the document */
    qai_grammar *g = schema("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":10,\"maximum\":20}},"
                            "\"required\":[\"n\"]}", NULL);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ_INT(M(g, "{\"n\":10}"), 1);
        CHECK_EQ_INT(M(g, "{\"n\": 20 }"), 1);
        CHECK_EQ_INT(M(g, "{\"n\":9}"), 0);
        CHECK_EQ_INT(M(g, "{\"n\":21}"), 0);
        CHECK_EQ_INT(M(g, "{\"n\":1}"), 0);
        CHECK_EQ_INT(M(g, "{\"n\":15.0}"), 0);
        /* the prefix "2" is refused at once: no completion of it is in range */
        qai_grammar_state *st;
        CHECK_OK(qai_grammar_state_new(g, NULL, &st));
        CHECK_OK(qai_grammar_accept_bytes(st, "{\"n\":", 5));
        CHECK(qai_grammar_accept_bytes(st, "2", 1) == QAI_OK);
        CHECK(qai_grammar_accept_bytes(st, "1", 1) != QAI_OK);
        CHECK(qai_grammar_accept_bytes(st, "0", 1) == QAI_OK);
        CHECK(qai_grammar_accept_bytes(st, "0", 1) != QAI_OK);
        qai_grammar_state_reset(st);
        CHECK_OK(qai_grammar_accept_bytes(st, "{\"n\":", 5));
        CHECK(qai_grammar_accept_bytes(st, "3", 1) != QAI_OK);
        CHECK(qai_grammar_accept_bytes(st, "-", 1) != QAI_OK);
        qai_grammar_state_free(st);
        qai_grammar_free(g);
    }
    /* errors */
    expect_error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "minimum/maximum at '#' leave no integer");
    expect_error("{\"type\":\"integer\",\"exclusiveMinimum\":1,\"exclusiveMaximum\":2}", "leave no integer");
    expect_error("{\"type\":\"integer\",\"minimum\":1e19}", "leave no integer");
    expect_error("{\"properties\":{\"x\":{\"minimum\":\"1\"}}}", "'minimum' at '#/properties/x/minimum' must be a finite number");
    expect_error("{\"exclusiveMinimum\":true}", "'exclusiveMinimum' at '#/exclusiveMinimum' is a boolean without 'minimum'");
    expect_error("{\"type\":\"number\",\"minimum\":1,\"multipleOf\":2}", "unsupported keyword 'multipleOf' at '#/multipleOf'");
    expect_error("{\"enum\":[1,2],\"minimum\":1}", "unsupported keyword 'minimum' next to 'enum'");
    /* a huge open end is no end */
    g = schema("{\"type\":\"integer\",\"maximum\":1e300}", NULL);
    CHECK(g && M(g, "123456789012345678") == 1 && M(g, "-5") == 1);
    qai_grammar_free(g);
}

static void test_formats(void) {
    static const char *fmts[] = {"date", "time", "date-time", "uuid", "email", "uri", "ipv4"};
    static const char *probes[][3] = {
        /* format, text, expected by qai (where it differs from the RFC, the comment says why) */
        {"date", "2024-02-29", "1"}, {"date", "2023-02-29", "0"}, {"date", "1900-02-29", "0"}, {"date", "2000-02-29", "1"},
        {"date", "2023-04-30", "1"}, {"date", "2023-04-31", "0"}, {"date", "2023-12-31", "1"}, {"date", "2023-13-01", "0"},
        {"date", "2023-00-10", "0"}, {"date", "2023-01-00", "0"}, {"date", "0000-01-01", "1"}, {"date", "2023-1-01", "0"},
        {"time", "23:59:59Z", "1"}, {"time", "24:00:00Z", "0"}, {"time", "12:00:00", "0"}, {"time", "12:00:00.123+05:30", "1"},
        {"time", "12:60:00Z", "0"}, {"time", "00:00:00-23:59", "1"}, {"time", "00:00:00+24:00", "0"},
        {"date-time", "2023-01-01T00:00:00Z", "1"}, {"date-time", "2023-01-01 00:00:00Z", "0"},
        {"date-time", "2023-02-30T00:00:00Z", "0"}, {"date-time", "2023-06-15T08:30:00.5-07:00", "1"},
        {"date-time", "2024-02-29T00:00:00Z", "0"}, /* documented: date-time never writes Feb 29 */
        {"uuid", "123e4567-e89b-12d3-a456-426614174000", "1"}, {"uuid", "123e4567-e89b-12d3-a456-42661417400", "0"},
        {"uuid", "123E4567-E89B-12D3-A456-426614174000", "0"}, /* documented: lower-case only */
        {"uuid", "123e4567e89b-12d3-a456-426614174000-", "0"},
        {"email", "a.b@c.de", "1"}, {"email", "x+y@mail.example.org", "1"}, {"email", "a..b@c.de", "0"},
        {"email", ".a@c.de", "0"}, {"email", "a@b", "0"}, /* documented: a dot in the domain */
        {"email", "a@-b.c", "0"}, {"email", "a@b-.c", "0"}, {"email", "@b.c", "0"}, {"email", "a b@c.d", "0"},
        {"uri", "https://example.com/a?b=c#d", "1"}, {"uri", "mailto:a@b.c", "1"}, {"uri", "http://a:80", "1"},
        {"uri", "http://a:b", "0"}, {"uri", "1http:x", "0"}, {"uri", "urn:isbn:0451450523", "1"}, {"uri", "x:", "1"},
        {"uri", "file:///etc/hosts", "1"}, {"uri", "a b:c", "0"}, {"uri", "http://a/b c", "0"}, {"uri", "/relative", "0"},
        {"ipv4", "192.168.0.1", "1"}, {"ipv4", "255.255.255.255", "1"}, {"ipv4", "256.1.1.1", "0"}, {"ipv4", "01.1.1.1", "0"},
        {"ipv4", "1.1.1", "0"},
    };
    char sch[128], doc[160], buf[256];
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        snprintf(sch, sizeof sch, "{\"type\":\"string\",\"format\":\"%s\"}", probes[i][0]);
        qai_grammar *g = schema(sch, NULL);
        CHECK_MSG(g != NULL, "format %s compiles", probes[i][0]);
        if (!g) continue;
        int n = snprintf(doc, sizeof doc, "\"%s\"", probes[i][1]);
        int want = atoi(probes[i][2]), got = matches(g, doc, (size_t)n);
        CHECK_MSG(want == got, "format %s: %s expected %d got %d", probes[i][0], probes[i][1], want, got);
        /* the reference agrees with every accepted probe */
        if (want) CHECK_MSG(ck_format(probes[i][0], probes[i][1], strlen(probes[i][1])), "checker on %s", probes[i][1]);
        qai_grammar_free(g);
    }
    /* the reference checkers reject what they should */
    CHECK(!ck_date("2023-02-29", 10) && ck_date("2024-02-29", 10) && !ck_uri("http://a:b", 10) && !ck_email("a..b@c", 6));
    qai_rng rng;
    qai_rng_seed(&rng, 77);
    for (size_t f = 0; f < sizeof fmts / sizeof *fmts; f++) {
        snprintf(sch, sizeof sch, "{\"type\":\"string\",\"format\":\"%s\"}", fmts[f]);
        qai_grammar *g = schema(sch, NULL);
        CHECK(g != NULL);
        if (!g) continue;
        int ok = 1, distinct = 0;
        char first[256] = "";
        for (int it = 0; it < 300 && ok; it++) {
            long len = random_walk(g, &rng, buf, sizeof buf);
            cJSON *v = len > 0 ? cJSON_ParseWithLength(buf, (size_t)len) : NULL;
            ok = v && cJSON_IsString(v) && ck_format(fmts[f], v->valuestring, strlen(v->valuestring));
            if (!ok) fprintf(stderr, "format %s walk: '%s'\n", fmts[f], buf);
            if (it == 0) snprintf(first, sizeof first, "%s", buf);
            distinct |= strcmp(first, buf) != 0;
            cJSON_Delete(v);
        }
        CHECK_MSG(ok && distinct, "random walks under format %s", fmts[f]);
        qai_grammar_free(g);
    }
    expect_error("{\"properties\":{\"h\":{\"type\":\"string\",\"format\":\"hostname\"}}}",
                 "unsupported keyword 'format' at '#/properties/h/format': 'hostname' is not one of");
    expect_error("{\"type\":\"string\",\"format\":\"date\",\"pattern\":\"^2\"}", "'format' together with pattern");
    expect_error("{\"type\":\"string\",\"format\":\"date\",\"maxLength\":3}", "format at '#' needs at least 10 characters, more than maxLength 3");
    expect_error("{\"type\":\"string\",\"format\":\"date\",\"minLength\":3}", "'format' together with minLength");
    expect_error("{\"type\":\"string\",\"format\":1}", "'format' at '#/format' must be a string");
    /* format applies to strings only: an integer with a format is just an integer */
    qai_grammar *g = schema("{\"type\":[\"integer\",\"string\"],\"format\":\"date\",\"minimum\":1,\"maximum\":3}", NULL);
    CHECK(g && M(g, "2") == 1 && M(g, "4") == 0 && M(g, "\"2020-01-01\"") == 1 && M(g, "\"x\"") == 0);
    qai_grammar_free(g);
}

/* The whitespace cap in token masks: a synthetic vocabulary with space,
 * newline and indentation tokens. */
static void test_ws_mask(void) {
    static const char *pieces[] = {"{", "}", "\"a\"", ":", "\xe2\x96\x81", "\xe2\x96\x81\xe2\x96\x81", "\n", "\n\xe2\x96\x81\xe2\x96\x81",
                                   "1", ",", "\t", "\n\n"};
    enum { T_SP = 7, T_SP2 = 8, T_NL = 9, T_NLIND = 10, T_ONE = 11, T_TAB = 13, T_NLNL = 14 };
    const char *toks[32] = {"<unk>", "<s>", "</s>"};
    int32_t types[32] = {QAI_TOKEN_UNKNOWN, QAI_TOKEN_CONTROL, QAI_TOKEN_CONTROL};
    size_t np = sizeof pieces / sizeof *pieces;
    for (size_t i = 0; i < np; i++) toks[i + 3] = pieces[i], types[i + 3] = QAI_TOKEN_NORMAL;
    qai_vocab_desc d;
    memset(&d, 0, sizeof d);
    d.kind = QAI_VOCAB_SPM;
    d.n_tokens = (int32_t)np + 3;
    d.tokens = toks;
    d.types = types;
    d.unk = 0, d.bos = 1, d.eos = 2;
    d.eot = d.eom = d.pad = d.sep = -1;
    qai_tokenizer *tok;
    qai_grammar_vocab *gv;
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    CHECK_OK(qai_grammar_vocab_new(tok, &gv));
    qai_grammar *g;
    qai_grammar_options o = qai_grammar_default_options();
    o.max_ws = 3;
    CHECK_OK(qai_grammar_json_object(&o, &g));
    qai_grammar_state *st;
    CHECK_OK(qai_grammar_state_new(g, gv, &st));
    uint8_t al[32];
    /* after {"a": every whitespace token starts a run within the cap */
    CHECK_OK(qai_grammar_accept_bytes(st, "{\"a\":", 5));
    memset(al, 1, sizeof al);
    qai_grammar_allowed(st, al);
    CHECK(al[T_SP] && al[T_NL] && al[T_NLIND] && al[T_ONE] && !al[T_SP2] && !al[T_TAB] && !al[T_NLNL]);
    /* after one space nothing more */
    CHECK_OK(qai_grammar_accept(st, T_SP));
    memset(al, 1, sizeof al);
    qai_grammar_allowed(st, al);
    CHECK(!al[T_SP] && !al[T_NL] && !al[T_NLIND] && !al[T_SP2] && !al[T_TAB] && al[T_ONE]);
    CHECK(qai_grammar_accept(st, T_SP) != QAI_OK);
    /* after a newline and 3 indent bytes (the cap here) no more whitespace */
    qai_grammar_state_reset(st);
    CHECK_OK(qai_grammar_accept_bytes(st, "{\"a\":", 5));
    CHECK_OK(qai_grammar_accept(st, T_NLIND));
    memset(al, 1, sizeof al);
    qai_grammar_allowed(st, al);
    CHECK(al[T_SP] && al[T_TAB] && !al[T_SP2] && !al[T_NL] && al[T_ONE]);
    CHECK_OK(qai_grammar_accept(st, T_TAB));
    memset(al, 1, sizeof al);
    qai_grammar_allowed(st, al);
    CHECK(!al[T_SP] && !al[T_TAB] && !al[T_NL] && al[T_ONE]);
    CHECK_OK(qai_grammar_accept(st, T_ONE));
    CHECK_OK(qai_grammar_accept(st, 4)); /* "}" */
    CHECK(qai_grammar_is_complete(st));
    qai_grammar_state_free(st);
    qai_grammar_free(g);
    qai_grammar_vocab_free(gv);
    qai_tokenizer_free(tok);
}

#define TIMED(f)                                                                                                       \
    do {                                                                                                               \
        uint64_t t0_ = qai_time_ns();                                                                                  \
        f();                                                                                                           \
        printf("%-24s %7.1f ms\n", #f, (qai_time_ns() - t0_) / 1e6);                                                  \
    } while (0)

int main(void) {
    TIMED(test_json_corpus);
    TIMED(test_json_differential);
    TIMED(test_schema_semantics);
    TIMED(test_schema_errors);
    TIMED(test_patterns);
    TIMED(test_ranges);
    TIMED(test_formats);
    TIMED(test_ws_mask);
    TIMED(test_validator);
    TIMED(test_tool_calls);
    TIMED(test_generation_model);
    TIMED(test_llama2_vocab);
    TIMED(test_threads);
    TIMED(test_alloc_failures);
    return test_summary();
}
