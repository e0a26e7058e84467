/* Compilers to the grammar graph: any JSON value/object, a JSON Schema subset,
 * OpenAI response_format and tool calls; and the finishing pass shared by all
 * of them ($ref resolution, mindepth, object key sets). The subset and the
 * output shape are documented in include/qai/grammar.h.
 *
 * What it does not do: full regular expressions, multipleOf, formats other
 * than the listed ones, or any keyword not listed in grammar.h. Such keywords are errors that name the
 * keyword and its JSON pointer, never ignored: a schema that compiles is
 * enforced completely (up to oneOf exclusivity, which is documented).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_internal.h"

#define NONE UINT32_MAX
#define MAX_PROPS 256      /* per object: key sets are quadratic in it */
#define MAX_NODES (1u << 22)
#define MAX_NEST 256       /* schema nesting while compiling */
#define PATH_CAP 1024

/* ---- grammar memory ---- */

void *g_alloc(qai_grammar *g, size_t n) {
    if (g->n_blocks == g->cap_blocks) {
        size_t nc = g->cap_blocks ? g->cap_blocks * 2 : 64;
        void **nb = qai_realloc(g->blocks, nc * sizeof(void *));
        if (!nb) return NULL;
        g->blocks = nb;
        g->cap_blocks = nc;
    }
    void *p = qai_calloc(1, n ? n : 1);
    if (p) g->blocks[g->n_blocks++] = p;
    return p;
}

qai_status g_new_node(qai_grammar *g, uint8_t kind, uint32_t *out) {
    if (g->n_nodes == g->cap_nodes) {
        if (g->cap_nodes >= MAX_NODES) return qai_error(QAI_ERR_RANGE, "grammar: more than %u nodes", MAX_NODES);
        uint32_t nc = g->cap_nodes ? g->cap_nodes * 2 : 32;
        gnode *nn = qai_realloc(g->nodes, (size_t)nc * sizeof(gnode));
        if (!nn) return QAI_ERR_NOMEM;
        g->nodes = nn;
        g->cap_nodes = nc;
    }
    gnode *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->max = G_NO_LIMIT;
    n->additional = -1;
    n->select_src = n->select_dst = -1;
    n->all_names = NONE;
    n->items = NONE;
    n->ref = NONE;
    n->mindepth = G_INF;
    *out = g->n_nodes++;
    return QAI_OK;
}

qai_status g_new_grammar(const qai_grammar_options *opt, qai_grammar **out) {
    qai_grammar_options o = opt ? *opt : qai_grammar_default_options();
    if (o.max_ws < 0 || o.max_ws > G_MAX_INDENT)
        return qai_error(QAI_ERR_ARG, "grammar: max_ws must be 0..%d, not %d", G_MAX_INDENT, o.max_ws);
    if (o.max_depth < 1 || o.max_depth > 1000)
        return qai_error(QAI_ERR_ARG, "grammar: max_depth must be 1..1000, not %d", o.max_depth);
    qai_grammar *g = qai_calloc(1, sizeof *g);
    if (!g) return QAI_ERR_NOMEM;
    g->max_ws = o.max_ws;
    g->max_depth = o.max_depth;
    g->root = NONE;
    g->any_value = g->any_object = NONE;
    g->free_trigger = '{';
    *out = g;
    return QAI_OK;
}

void qai_grammar_free(qai_grammar *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_blocks; i++) qai_free(g->blocks[i]);
    qai_free(g->blocks);
    qai_free(g->nodes);
    qai_free(g);
}

/* ---- literals ---- */

typedef struct {
    const uint8_t *s;
    uint32_t len;
    int32_t tag;
} lit_e;

static int lit_cmp(const void *pa, const void *pb) {
    const lit_e *a = pa, *b = pb;
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->s, b->s, n) : 0;
    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->tag < b->tag ? -1 : a->tag > b->tag;
}

/* Makes a literal node of n entries (strings borrowed: they must live in g). */
static qai_status lit_node(qai_grammar *g, lit_e *e, uint32_t n, bool tags, uint32_t *out) {
    if (n > 1) qsort(e, n, sizeof *e, lit_cmp);
    uint32_t m = 0; /* equal strings: keep the first (smallest tag) */
    for (uint32_t i = 0; i < n; i++)
        if (!m || e[i].len != e[m - 1].len || (e[i].len && memcmp(e[i].s, e[m - 1].s, e[i].len))) e[m++] = e[i];
    const uint8_t **s = g_alloc(g, (size_t)m * sizeof *s);
    uint32_t *len = g_alloc(g, (size_t)m * sizeof *len);
    int32_t *tag = tags ? g_alloc(g, (size_t)m * sizeof *tag) : NULL;
    if (!s || !len || (tags && !tag)) return QAI_ERR_NOMEM;
    for (uint32_t i = 0; i < m; i++) {
        s[i] = e[i].s;
        len[i] = e[i].len;
        if (tag) tag[i] = e[i].tag;
    }
    uint32_t id;
    qai_status st = g_new_node(g, N_LIT, &id);
    if (st) return st;
    gnode *nd = &g->nodes[id];
    nd->lit = s;
    nd->lit_len = len;
    nd->lit_tag = tag;
    nd->n_lit = m;
    *out = id;
    return QAI_OK;
}

static const uint8_t *g_bytes(qai_grammar *g, const char *s, size_t n) {
    uint8_t *p = g_alloc(g, n + 1);
    if (p && n) memcpy(p, s, n);
    return p;
}

/* ---- JSON text of values (the canonical form literals are written in) ---- */

typedef qai_strbuf sbuf_t;

static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) len = 3, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
        else if (c == 0xED) len = 3, hi = 0x9F;
        else if (c == 0xF0) len = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else if (c == 0xF4) len = 4, hi = 0x8F;
        else return false;
        if (i + (size_t)len > n) return false;
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (int k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
        i += (size_t)len;
    }
    return true;
}

/* The escaped contents of a JSON string: short escapes for " \ \b \f \n \r
 * \t, \u00xx (lowercase) for other control characters, everything else raw. */
static void sb_escaped(sbuf_t *b, const char *s) {
    for (const char *p = s; *p; p++) {
        uint8_t c = (uint8_t)*p;
        char e[8];
        switch (c) {
        case '"': qai_strbuf_put(b, "\\\"", 2); break;
        case '\\': qai_strbuf_put(b, "\\\\", 2); break;
        case '\b': qai_strbuf_put(b, "\\b", 2); break;
        case '\f': qai_strbuf_put(b, "\\f", 2); break;
        case '\n': qai_strbuf_put(b, "\\n", 2); break;
        case '\r': qai_strbuf_put(b, "\\r", 2); break;
        case '\t': qai_strbuf_put(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(e, sizeof e, "\\u%04x", c);
                qai_strbuf_put(b, e, 6);
            } else {
                qai_strbuf_put(b, (const char *)p, 1);
            }
        }
    }
}

/* ---- the schema compiler ---- */

typedef struct {
    const cJSON *json;
    uint32_t node;
} memo_e;

typedef struct {
    qai_grammar *g;
    const cJSON *doc;
    const char *what; /* error prefix */
    memo_e *memo;
    size_t n_memo, cap_memo;
    char path[PATH_CAP];
    size_t plen;
    int nest;
} sc_t;

static size_t path_push(sc_t *c, const char *tok) {
    size_t old = c->plen;
    if (c->plen + 2 >= PATH_CAP) return old;
    c->path[c->plen++] = '/';
    for (const char *p = tok; *p && c->plen + 3 < PATH_CAP; p++) {
        if (*p == '~') c->path[c->plen++] = '~', c->path[c->plen++] = '0';
        else if (*p == '/') c->path[c->plen++] = '~', c->path[c->plen++] = '1';
        else c->path[c->plen++] = *p;
    }
    c->path[c->plen] = 0;
    return old;
}
static size_t path_push_i(sc_t *c, size_t i) {
    char t[24];
    snprintf(t, sizeof t, "%zu", i);
    return path_push(c, t);
}
static void path_pop(sc_t *c, size_t old) {
    c->plen = old;
    c->path[old] = 0;
}

#define SC_ERR(c, st, fmt, ...) qai_error(st, "%s: " fmt, (c)->what, __VA_ARGS__)

static const char *const annotations[] = {"title",   "description", "default",  "examples",  "$schema",
                                          "$id",     "$comment",    "deprecated", "readOnly", "writeOnly", NULL};

enum { KW_TYPE, KW_PROPS, KW_REQ, KW_ADD, KW_ITEMS, KW_ENUM, KW_CONST, KW_ANYOF, KW_ONEOF, KW_ALLOF,
       KW_MINI, KW_MAXI, KW_MINL, KW_MAXL, KW_REF, KW_PATTERN, KW_MIN, KW_MAX, KW_XMIN, KW_XMAX, KW_FORMAT, KW_N };
static const char *const kw_names[KW_N] = {"type",      "properties", "required", "additionalProperties",
                                           "items",     "enum",       "const",    "anyOf",
                                           "oneOf",     "allOf",      "minItems", "maxItems",
                                           "minLength", "maxLength",  "$ref",     "pattern",
                                           "minimum",   "maximum",    "exclusiveMinimum", "exclusiveMaximum",
                                           "format"};

enum { T_OBJ = 1, T_ARR = 2, T_STR = 4, T_NUM = 8, T_INT = 16, T_BOOL = 32, T_NULL = 64 };

static qai_status compile(sc_t *c, const cJSON *s, uint32_t *out);

qai_status g_any_value(qai_grammar *g, uint32_t *out) {
    if (g->any_value != NONE) {
        *out = g->any_value;
        return QAI_OK;
    }
    uint32_t any = 0, obj = 0, arr = 0, str = 0, num = 0, lit = 0, names = 0;
    qai_status st;
    if ((st = g_new_node(g, N_ANYOF, &any)) || (st = g_new_node(g, N_OBJ, &obj)) ||
        (st = g_new_node(g, N_ARR, &arr)) || (st = g_new_node(g, N_STR, &str)) || (st = g_new_node(g, N_NUM, &num)))
        return st;
    lit_e e[3] = {{(const uint8_t *)"true", 4, 0}, {(const uint8_t *)"false", 5, 1}, {(const uint8_t *)"null", 4, 2}};
    if ((st = lit_node(g, e, 3, false, &lit)) || (st = lit_node(g, NULL, 0, true, &names))) return st;
    uint32_t *alts = g_alloc(g, 5 * sizeof(uint32_t));
    uint32_t *req_after = g_alloc(g, sizeof(uint32_t));
    if (!alts || !req_after) return QAI_ERR_NOMEM;
    alts[0] = obj, alts[1] = arr, alts[2] = str, alts[3] = num, alts[4] = lit;
    g->nodes[any].alts = alts;
    g->nodes[any].n_alts = 5;
    g->nodes[obj].additional = (int32_t)any;
    g->nodes[obj].req_after = req_after;
    g->nodes[obj].all_names = names;
    g->nodes[arr].items = any;
    g->any_value = any;
    g->any_object = obj;
    *out = any;
    return QAI_OK;
}

qai_status g_any_object(qai_grammar *g, uint32_t *out) {
    uint32_t any = 0;
    qai_status st = g_any_value(g, &any);
    if (st) return st;
    *out = g->any_object;
    return QAI_OK;
}

static qai_status get_count(sc_t *c, const cJSON *v, const char *kw, uint32_t *out) {
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!cJSON_IsNumber(v) || d < 0 || d != floor(d) || d >= 4294967295.0) {
        size_t old = path_push(c, kw);
        qai_status st = SC_ERR(c, QAI_ERR_FORMAT, "'%s' at '#%s' must be a non-negative integer", kw, c->path);
        path_pop(c, old);
        return st;
    }
    *out = (uint32_t)d;
    return QAI_OK;
}

static qai_status type_bits(sc_t *c, const cJSON *t, unsigned *bits) {
    static const char *const names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
    *bits = 0;
    size_t old = path_push(c, "type");
    qai_status st = QAI_OK;
    const cJSON *one = t;
    int n = cJSON_IsArray(t) ? cJSON_GetArraySize(t) : 1;
    if (cJSON_IsArray(t) && n == 0) st = SC_ERR(c, QAI_ERR_FORMAT, "'type' at '#%s' is an empty array", c->path);
    for (int i = 0; !st && i < n; i++) {
        if (cJSON_IsArray(t)) one = cJSON_GetArrayItem(t, i);
        if (!cJSON_IsString(one)) {
            st = SC_ERR(c, QAI_ERR_FORMAT, "'type' at '#%s' must be a string or an array of strings", c->path);
            break;
        }
        int k = 0;
        while (k < 7 && strcmp(one->valuestring, names[k])) k++;
        if (k == 7) {
            st = SC_ERR(c, QAI_ERR_FORMAT, "unknown type '%.64s' at '#%s'", one->valuestring, c->path);
            break;
        }
        *bits |= 1u << k;
    }
    path_pop(c, old);
    return st;
}

static bool value_has_type(const cJSON *v, unsigned bits) {
    if (cJSON_IsObject(v)) return bits & T_OBJ;
    if (cJSON_IsArray(v)) return bits & T_ARR;
    if (cJSON_IsString(v)) return bits & T_STR;
    if (cJSON_IsBool(v)) return bits & T_BOOL;
    if (cJSON_IsNull(v)) return bits & T_NULL;
    if (cJSON_IsNumber(v)) return (bits & T_NUM) || ((bits & T_INT) && v->valuedouble == floor(v->valuedouble));
    return false;
}

/* Writes v as compact canonical JSON; fails on invalid UTF-8 or non-finite numbers. */
static bool write_value(sbuf_t *b, const cJSON *v) {
    if (cJSON_IsString(v)) {
        if (!valid_utf8((const uint8_t *)v->valuestring, strlen(v->valuestring))) return false;
        qai_strbuf_put(b, "\"", 1);
        sb_escaped(b, v->valuestring);
        qai_strbuf_put(b, "\"", 1);
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d)) return false;
        char t[40];
        for (int p = 1; p <= 17; p++) {
            snprintf(t, sizeof t, "%.*g", p, d);
            if (strtod(t, NULL) == d) break;
        }
        qai_strbuf_puts(b, t);
    } else if (cJSON_IsTrue(v)) qai_strbuf_puts(b, "true");
    else if (cJSON_IsFalse(v)) qai_strbuf_puts(b, "false");
    else if (cJSON_IsNull(v)) qai_strbuf_puts(b, "null");
    else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        bool obj = cJSON_IsObject(v);
        qai_strbuf_put(b, obj ? "{" : "[", 1);
        int i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            if (i) qai_strbuf_put(b, ",", 1);
            if (obj) {
                if (!e->string || !valid_utf8((const uint8_t *)e->string, strlen(e->string))) return false;
                qai_strbuf_put(b, "\"", 1);
                sb_escaped(b, e->string);
                qai_strbuf_put(b, "\":", 2);
            }
            if (!write_value(b, e)) return false;
        }
        qai_strbuf_put(b, obj ? "}" : "]", 1);
    } else {
        return false;
    }
    return true;
}

static qai_status compile_enum(sc_t *c, const cJSON *s, const cJSON *en, const cJSON *cn, const cJSON *type,
                               uint32_t id) {
    unsigned bits = 0x7f;
    qai_status st;
    if (type && (st = type_bits(c, type, &bits))) return st;
    const char *kw = en ? "enum" : "const";
    if (en && !cJSON_IsArray(en)) {
        size_t old = path_push(c, "enum");
        st = SC_ERR(c, QAI_ERR_FORMAT, "'enum' at '#%s' must be an array", c->path);
        path_pop(c, old);
        return st;
    }
    int n = en ? cJSON_GetArraySize(en) : 1;
    lit_e *e = qai_calloc((size_t)(n ? n : 1), sizeof *e);
    if (!e) return QAI_ERR_NOMEM;
    uint32_t m = 0;
    st = QAI_OK;
    sbuf_t b = {0};
    int i = 0;
    for (const cJSON *v = en ? en->child : cn; v && !st; v = en ? v->next : NULL, i++) {
        if (!value_has_type(v, bits)) continue;
        b.n = 0;
        if (!write_value(&b, v) || b.oom) {
            size_t old = path_push(c, kw);
            if (en) path_push_i(c, (size_t)i);
            st = b.oom ? QAI_ERR_NOMEM
                       : SC_ERR(c, QAI_ERR_FORMAT, "value at '#%s' is not valid JSON text (invalid UTF-8 or not finite)",
                                c->path);
            path_pop(c, old);
            break;
        }
        const uint8_t *t = g_bytes(c->g, b.p, b.n);
        if (!t) st = QAI_ERR_NOMEM;
        else {
            e[m] = (lit_e){t, (uint32_t)b.n, (int32_t)m};
            m++;
        }
    }
    qai_free(b.p);
    if (!st && m == 0) {
        size_t old = path_push(c, kw);
        st = SC_ERR(c, QAI_ERR_FORMAT, "'%s' at '#%s' has no value%s", kw, c->path, type ? " of the schema's type" : "");
        path_pop(c, old);
    }
    uint32_t lit = 0;
    if (!st) st = lit_node(c->g, e, m, false, &lit);
    qai_free(e);
    if (st) return st;
    c->g->nodes[id].kind = N_REF;
    c->g->nodes[id].ref = lit;
    (void)s;
    return QAI_OK;
}

static qai_status compile_object(sc_t *c, const cJSON *s, uint32_t *out) {
    qai_grammar *g = c->g;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    qai_status st = QAI_OK;
    size_t old;
    if (props && !cJSON_IsObject(props)) {
        old = path_push(c, "properties");
        st = SC_ERR(c, QAI_ERR_FORMAT, "'properties' at '#%s' must be an object", c->path);
        path_pop(c, old);
        return st;
    }
    if (req) {
        bool ok = cJSON_IsArray(req);
        for (const cJSON *r = ok ? req->child : NULL; r; r = r->next) ok &= cJSON_IsString(r);
        if (!ok) {
            old = path_push(c, "required");
            st = SC_ERR(c, QAI_ERR_FORMAT, "'required' at '#%s' must be an array of strings", c->path);
            path_pop(c, old);
            return st;
        }
    }
    int32_t additional = -1;
    bool ap_false = false;
    if (ap) {
        if (cJSON_IsFalse(ap)) ap_false = true;
        else {
            uint32_t an;
            old = path_push(c, "additionalProperties");
            st = compile(c, ap, &an);
            path_pop(c, old);
            if (st) return st;
            additional = (int32_t)an;
        }
    } else if (!props) {
        uint32_t an;
        if ((st = g_any_value(g, &an))) return st;
        additional = (int32_t)an;
    }
    uint32_t n = 0, cap = (uint32_t)(cJSON_GetArraySize(props) + cJSON_GetArraySize(req));
    if (cap > MAX_PROPS)
        return SC_ERR(c, QAI_ERR_UNSUPPORTED, "object at '#%s' has more than %d properties", c->path, MAX_PROPS);
    uint32_t *pn = g_alloc(g, (cap + 1) * sizeof(uint32_t));
    uint8_t *preq = g_alloc(g, cap + 1);
    uint32_t *req_after = g_alloc(g, (cap + 1) * sizeof(uint32_t));
    const char **names = qai_calloc(cap + 1, sizeof(char *));
    if (!pn || !preq || !req_after || !names) {
        qai_free(names);
        return QAI_ERR_NOMEM;
    }
    for (const cJSON *p = props ? props->child : NULL; p && !st; p = p->next) {
        old = path_push(c, "properties");
        size_t old2 = path_push(c, p->string);
        if (!valid_utf8((const uint8_t *)p->string, strlen(p->string)))
            st = SC_ERR(c, QAI_ERR_FORMAT, "property name at '#%s' is not valid UTF-8", c->path);
        for (uint32_t j = 0; !st && j < n; j++)
            if (!strcmp(names[j], p->string))
                st = SC_ERR(c, QAI_ERR_FORMAT, "property '%.64s' is defined twice at '#%s'", p->string, c->path);
        if (!st) st = compile(c, p, &pn[n]);
        path_pop(c, old2);
        path_pop(c, old);
        if (!st) names[n++] = p->string;
    }
    for (const cJSON *r = req ? req->child : NULL; r && !st; r = r->next) {
        uint32_t j = 0;
        while (j < n && strcmp(names[j], r->valuestring)) j++;
        if (j == n) { /* required but not declared */
            if (ap_false) {
                old = path_push(c, "required");
                st = SC_ERR(c, QAI_ERR_FORMAT,
                            "required property '%.64s' at '#%s' is not in 'properties' and additionalProperties is false",
                            r->valuestring, c->path);
                path_pop(c, old);
                break;
            }
            if (!valid_utf8((const uint8_t *)r->valuestring, strlen(r->valuestring))) {
                old = path_push(c, "required");
                st = SC_ERR(c, QAI_ERR_FORMAT, "required name at '#%s' is not valid UTF-8", c->path);
                path_pop(c, old);
                break;
            }
            if (additional >= 0) pn[n] = (uint32_t)additional;
            else if ((st = g_any_value(g, &pn[n]))) break;
            names[n++] = r->valuestring;
        }
        preq[j] = 1;
    }
    /* names as key literals: escaped, then the closing quote */
    lit_e *e = st ? NULL : qai_calloc(n + 1, sizeof *e);
    const uint8_t **lits = st ? NULL : g_alloc(g, (n + 1) * sizeof *lits);
    uint32_t *lens = st ? NULL : g_alloc(g, (n + 1) * sizeof *lens);
    if (!st && (!e || !lits || !lens)) st = QAI_ERR_NOMEM;
    sbuf_t b = {0};
    for (uint32_t j = 0; !st && j < n; j++) {
        b.n = 0;
        sb_escaped(&b, names[j]);
        qai_strbuf_put(&b, "\"", 1);
        if (b.oom || !(lits[j] = g_bytes(g, b.p, b.n))) st = QAI_ERR_NOMEM;
        lens[j] = (uint32_t)b.n;
        e[j] = (lit_e){lits[j], lens[j], (int32_t)j};
    }
    qai_free(b.p);
    qai_free(names);
    uint32_t all = 0;
    if (!st) st = lit_node(g, e, n, true, &all);
    qai_free(e);
    if (st) return st;
    req_after[n] = n;
    for (uint32_t j = n; j-- > 0;) req_after[j] = preq[j] ? j : req_after[j + 1];
    uint32_t id;
    if ((st = g_new_node(g, N_OBJ, &id))) return st;
    gnode *o = &g->nodes[id];
    o->n_props = n;
    o->prop_node = pn;
    o->prop_req = preq;
    o->req_after = req_after;
    o->additional = additional;
    o->all_names = all;
    /* the key literals of declared names, kept for the key sets */
    o->lit = lits;
    o->lit_len = lens;
    *out = id;
    return QAI_OK;
}

static qai_status compile_array(sc_t *c, const cJSON *s, uint32_t *out) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minItems");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
    uint32_t lo = 0, hi = G_NO_LIMIT, it;
    qai_status st;
    if (mn && (st = get_count(c, mn, "minItems", &lo))) return st;
    if (mx && (st = get_count(c, mx, "maxItems", &hi))) return st;
    if (lo > hi)
        return SC_ERR(c, QAI_ERR_FORMAT, "minItems %u > maxItems %u at '#%s': no array can match", lo, hi, c->path);
    if (items) {
        size_t old = path_push(c, "items");
        if (cJSON_IsArray(items))
            st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword 'items' as an array (tuple) at '#%s'", c->path);
        else st = compile(c, items, &it);
        path_pop(c, old);
        if (st) return st;
    } else if ((st = g_any_value(c->g, &it))) {
        return st;
    }
    uint32_t id;
    if ((st = g_new_node(c->g, N_ARR, &id))) return st;
    c->g->nodes[id].items = it;
    c->g->nodes[id].min = lo;
    c->g->nodes[id].max = hi;
    *out = id;
    return QAI_OK;
}

/* ---- string formats, as patterns (grammar_regex.c) ---- */

#define F_DATE_NOLEAP "[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
#define F_LEAP "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29"
#define F_TIME "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,3})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#define F_ATOM "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
#define F_LABEL "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
#define F_PCHAR "[A-Za-z0-9._~!$&'()*+,;=:@-]"
#define F_OCTET "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#define F_QCHAR "[A-Za-z0-9._~!$&'()*+,;=:@/?-]"
static const struct {
    const char *name, *pattern;
    uint32_t max; /* code points (email: so RFC 5321's 64 per local part and 63 per label hold) */
} formats[] = {
    {"date", "^(?:" F_DATE_NOLEAP "|" F_LEAP ")$", G_NO_LIMIT},
    {"time", "^" F_TIME "$", G_NO_LIMIT},
    {"date-time", "^" F_DATE_NOLEAP "T" F_TIME "$", G_NO_LIMIT},
    {"ipv4", "^" F_OCTET "(?:\\." F_OCTET "){3}$", G_NO_LIMIT},
    {"uuid", "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", G_NO_LIMIT},
    {"email", "^" F_ATOM "+(?:\\." F_ATOM "+)*@" F_LABEL "(?:\\." F_LABEL ")+$", 64},
    {"uri", "^[A-Za-z][A-Za-z0-9+.-]*:(?://[A-Za-z0-9._~!$&'()*+,;=-]*(?::[0-9]*)?(?:/" F_PCHAR "*)*|/(?:" F_PCHAR
            "+(?:/" F_PCHAR "*)*)?|" F_PCHAR "+(?:/" F_PCHAR "*)*)?(?:\\?" F_QCHAR "*)?(?:#" F_QCHAR "*)?$", G_NO_LIMIT},
};

static qai_status compile_string(sc_t *c, const cJSON *s, uint32_t *out) {
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minLength");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    const cJSON *fm = cJSON_GetObjectItemCaseSensitive(s, "format");
    uint32_t lo = 0, hi = G_NO_LIMIT;
    qai_status st;
    gpat *pat = NULL;
    if (fm) {
        size_t old = path_push(c, "format");
        size_t k = 0, nf = sizeof formats / sizeof *formats;
        if (!cJSON_IsString(fm)) st = SC_ERR(c, QAI_ERR_FORMAT, "'format' at '#%s' must be a string", c->path);
        else {
            while (k < nf && strcmp(fm->valuestring, formats[k].name)) k++;
            if (k == nf)
                st = SC_ERR(c, QAI_ERR_UNSUPPORTED,
                            "unsupported keyword 'format' at '#%s': '%.64s' is not one of date, time, date-time, uuid, "
                            "email, uri, ipv4", c->path, fm->valuestring);
            else if (pt || mn)
                st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword 'format' together with %s at '#%s'",
                            pt ? "pattern" : "minLength", c->path);
            else if ((st = g_compile_pattern(c->g, formats[k].pattern, c->what, c->path, &pat)) == QAI_OK)
                hi = formats[k].max;
        }
        path_pop(c, old);
        if (st) return st;
    }
    if (pt && !fm) {
        size_t old = path_push(c, "pattern");
        if (!cJSON_IsString(pt)) st = SC_ERR(c, QAI_ERR_FORMAT, "'pattern' at '#%s' must be a string", c->path);
        else if (mn)
            st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword 'pattern' together with minLength at '#%s'", c->path);
        else st = g_compile_pattern(c->g, pt->valuestring, c->what, c->path, &pat);
        path_pop(c, old);
        if (st) return st;
    }
    if (mn && (st = get_count(c, mn, "minLength", &lo))) return st;
    if (mx) {
        uint32_t h;
        if ((st = get_count(c, mx, "maxLength", &h))) return st;
        if (h < hi) hi = h;
    }
    if (pat && hi != G_NO_LIMIT && pat->dist[0] > hi)
        return SC_ERR(c, QAI_ERR_FORMAT, "%s at '#%s' needs at least %u characters, more than maxLength %u",
                      fm ? "format" : "pattern", c->path, pat->dist[0], hi);
    if (lo > hi)
        return SC_ERR(c, QAI_ERR_FORMAT, "minLength %u > maxLength %u at '#%s': no string can match", lo, hi, c->path);
    uint32_t id;
    if ((st = g_new_node(c->g, N_STR, &id))) return st;
    c->g->nodes[id].min = lo;
    c->g->nodes[id].max = hi;
    c->g->nodes[id].pat = pat;
    *out = id;
    return QAI_OK;
}

/* ---- numeric ranges ---- */

#define RNG_SAT 1000000000000000000LL /* 10^18: beyond every representable value */

/* d as the shortest decimal that reads back as d: digits m (no leading
 * zeros, at most 17) and exponent e, d = sign * m * 10^e. */
static void shortest_decimal(double d, bool *neg, char *m, int *e) {
    char buf[40];
    *neg = signbit(d) && d != 0;
    double a = fabs(d);
    for (int p = 0; p <= 16; p++) {
        snprintf(buf, sizeof buf, "%.*e", p, a);
        if (strtod(buf, NULL) == a) break;
    }
    /* buf = D[.DDD]e±X */
    size_t n = 0;
    const char *q = buf;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') m[n++] = *q;
    m[n] = 0;
    int x = atoi(q + 1);
    while (n > 1 && m[n - 1] == '0') m[--n] = 0;
    *e = x - (int)(n - 1);
    if (!strcmp(m, "0")) *e = 0;
}

/* floor and ceiling of d * 10^fd, saturated to +-RNG_SAT */
static void scaled_bounds(double d, int fd, int64_t *fl, int64_t *ce) {
    if (!isfinite(d)) {
        *fl = *ce = d > 0 ? RNG_SAT : -RNG_SAT;
        return;
    }
    bool neg;
    char m[24];
    int e;
    shortest_decimal(d, &neg, m, &e);
    int sh = e + fd, len = (int)strlen(m);
    int64_t q = 0;
    bool rem = false, sat = false;
    if (sh >= 0) {
        if (len + sh > 18) sat = true;
        else {
            for (int i = 0; i < len; i++) q = q * 10 + (m[i] - '0');
            for (int i = 0; i < sh; i++) q *= 10;
        }
    } else {
        int keep = len + sh; /* digits before the scaled point */
        if (keep > 18) sat = true;
        for (int i = 0; !sat && i < len; i++) {
            if (i < keep) q = q * 10 + (m[i] - '0');
            else if (m[i] != '0') rem = true;
        }
    }
    if (sat) q = RNG_SAT;
    int64_t f = neg ? -(q + rem) : q, c = neg ? -q : q + rem;
    *fl = f < -RNG_SAT ? -RNG_SAT : f;
    *ce = c > RNG_SAT ? RNG_SAT : c;
}

static int int_digits(double d) { /* digits of |d|'s integer part (0 below 1) */
    double a = fabs(d);
    int n = 0;
    while (a >= 1 && n < 400) a /= 10, n++;
    return n;
}

/* A number node; with minimum/maximum/exclusive* a ranged one (grammar.h
 * says what is exact). */
static qai_status compile_number(sc_t *c, const cJSON *s, bool integer, uint32_t *out) {
    static const char *const names[4] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    const cJSON *v[4];
    bool any = false;
    qai_status st;
    for (int i = 0; i < 4; i++) {
        v[i] = cJSON_GetObjectItemCaseSensitive(s, names[i]);
        if (!v[i]) continue;
        bool ok = cJSON_IsNumber(v[i]) && isfinite(v[i]->valuedouble);
        if (i >= 2 && cJSON_IsBool(v[i])) { /* draft 4: a flag on minimum/maximum */
            ok = cJSON_GetObjectItemCaseSensitive(s, names[i - 2]) != NULL;
            if (!ok) {
                size_t old = path_push(c, names[i]);
                st = SC_ERR(c, QAI_ERR_FORMAT, "'%s' at '#%s' is a boolean without '%s'", names[i], c->path, names[i - 2]);
                path_pop(c, old);
                return st;
            }
        }
        if (!ok) {
            size_t old = path_push(c, names[i]);
            st = SC_ERR(c, QAI_ERR_FORMAT, "'%s' at '#%s' must be a finite number", names[i], c->path);
            path_pop(c, old);
            return st;
        }
        if (cJSON_IsNumber(v[i])) any = true;
    }
    uint32_t id;
    if ((st = g_new_node(c->g, N_NUM, &id))) return st;
    gnode *n = &c->g->nodes[id];
    n->integer = integer;
    *out = id;
    if (!any) return QAI_OK;
    /* digits: integers up to 18; other numbers 15 in all (so distinct values
     * stay distinct doubles), fraction digits as the bounds need, at least 6 */
    int fd = 0, id_need = 1;
    if (!integer) {
        int fd_need = 0;
        for (int i = 0; i < 4; i++) {
            if (!cJSON_IsNumber(v[i])) continue;
            bool neg;
            char m[24];
            int e;
            shortest_decimal(v[i]->valuedouble, &neg, m, &e);
            if (-e > fd_need) fd_need = -e;
            int idg = int_digits(v[i]->valuedouble);
            if (idg > id_need) id_need = idg;
        }
        fd = fd_need > 6 ? fd_need : 6;
        if (id_need > 15) id_need = 15;
        if (fd > 15 - id_need) fd = 15 - id_need;
        n->idig = (uint8_t)(15 - fd);
    } else {
        n->idig = 18;
    }
    n->fd = (uint8_t)fd;
    int64_t lim = 1; /* largest magnitude: 10^(digits) - 1 */
    for (int i = 0; i < fd + n->idig; i++) lim *= 10;
    lim -= 1;
    int64_t lo = -lim, hi = lim, fl, ce;
    for (int i = 0; i < 4; i++) {
        if (!cJSON_IsNumber(v[i])) continue;
        scaled_bounds(v[i]->valuedouble, fd, &fl, &ce);
        bool excl = i >= 2 || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, names[i + 2]));
        if (i == 0 || i == 2) {
            int64_t l = excl ? fl + 1 : ce;
            if (l > lo) lo = l;
        } else {
            int64_t h = excl ? ce - 1 : fl;
            if (h < hi) hi = h;
        }
    }
    if (lo > hi)
        return SC_ERR(c, QAI_ERR_FORMAT,
                      "minimum/maximum at '#%s' leave no %s (with at most %d digits%s)", c->path,
                      integer ? "integer" : "number", n->idig + fd, integer ? "" : " in all");
    n->ranged = 1;
    n->rlo = lo;
    n->rhi = hi;
    return QAI_OK;
}

/* Resolves a local $ref ("#", "#/a/b/0"); sets c->path to the target's pointer. */
static qai_status resolve_ref(sc_t *c, const char *ref, const cJSON **out) {
    if (ref[0] != '#' || (ref[1] && ref[1] != '/'))
        return SC_ERR(c, QAI_ERR_UNSUPPORTED, "'$ref' '%.128s' at '#%s' is not a local reference ('#/...')", ref,
                      c->path);
    const cJSON *cur = c->doc;
    const char *p = ref + 1;
    char tok[256];
    while (*p == '/') {
        p++;
        size_t n = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~' && (*p == '0' || *p == '1')) ch = *p++ == '0' ? '~' : '/';
            if (n + 1 < sizeof tok) tok[n++] = ch;
        }
        tok[n] = 0;
        const cJSON *next = NULL;
        if (cJSON_IsObject(cur)) next = cJSON_GetObjectItemCaseSensitive(cur, tok);
        else if (cJSON_IsArray(cur) && n && n < 9 && strspn(tok, "0123456789") == n && (tok[0] != '0' || n == 1))
            next = cJSON_GetArrayItem(cur, atoi(tok));
        if (!next)
            return SC_ERR(c, QAI_ERR_FORMAT, "'$ref' '%.128s' at '#%s' does not resolve (no '%.64s')", ref, c->path, tok);
        cur = next;
    }
    *out = cur;
    size_t n = strlen(ref + 1);
    if (n >= PATH_CAP) n = PATH_CAP - 1;
    memcpy(c->path, ref + 1, n);
    c->path[n] = 0;
    c->plen = n;
    return QAI_OK;
}

static qai_status compile_into(sc_t *c, const cJSON *s, uint32_t id) {
    qai_grammar *g = c->g;
    qai_status st;
    if (cJSON_IsBool(s)) {
        if (cJSON_IsTrue(s)) {
            uint32_t any;
            if ((st = g_any_value(g, &any))) return st;
            g->nodes[id].kind = N_REF;
            g->nodes[id].ref = any;
        } else {
            g->nodes[id].kind = N_ANYOF; /* no alternative: nothing matches */
        }
        return QAI_OK;
    }
    if (!cJSON_IsObject(s))
        return SC_ERR(c, QAI_ERR_FORMAT, "schema at '#%s' must be an object or a boolean", c->path);
    const cJSON *kw[KW_N] = {0};
    int n_kw = 0;
    for (const cJSON *e = s->child; e; e = e->next) {
        const char *k = e->string;
        bool known = false;
        for (int i = 0; annotations[i] && !known; i++) known = !strcmp(k, annotations[i]);
        if (!strcmp(k, "$defs") || !strcmp(k, "definitions")) {
            if (!cJSON_IsObject(e)) {
                size_t old = path_push(c, k);
                st = SC_ERR(c, QAI_ERR_FORMAT, "'%s' at '#%s' must be an object", k, c->path);
                path_pop(c, old);
                return st;
            }
            known = true;
        }
        if (known) continue;
        int i = 0;
        while (i < KW_N && strcmp(k, kw_names[i])) i++;
        if (i == KW_N) {
            size_t old = path_push(c, k);
            st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword '%.64s' at '#%s'", k, c->path);
            path_pop(c, old);
            return st;
        }
        if (!kw[i]) n_kw++;
        kw[i] = e;
    }
    /* combinators stand alone (besides annotations and $defs) */
    static const int alone[] = {KW_REF, KW_ALLOF, KW_ANYOF, KW_ONEOF};
    for (int a = 0; a < 4; a++) {
        int k = alone[a];
        if (!kw[k] || n_kw == 1) continue;
        for (int i = 0; i < KW_N; i++)
            if (kw[i] && i != k) {
                size_t old = path_push(c, kw_names[i]);
                st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword '%s' next to '%s' at '#%s'", kw_names[i],
                            kw_names[k], c->path);
                path_pop(c, old);
                return st;
            }
    }
    if (kw[KW_REF]) {
        if (!cJSON_IsString(kw[KW_REF])) {
            size_t old = path_push(c, "$ref");
            st = SC_ERR(c, QAI_ERR_FORMAT, "'$ref' at '#%s' must be a string", c->path);
            path_pop(c, old);
            return st;
        }
        char saved[PATH_CAP];
        size_t saved_len = c->plen;
        memcpy(saved, c->path, saved_len + 1);
        const cJSON *target = NULL;
        if ((st = resolve_ref(c, kw[KW_REF]->valuestring, &target))) return st;
        uint32_t t;
        st = compile(c, target, &t);
        memcpy(c->path, saved, saved_len + 1);
        c->plen = saved_len;
        if (st) return st;
        g->nodes[id].kind = N_REF;
        g->nodes[id].ref = t;
        return QAI_OK;
    }
    if (kw[KW_ALLOF] || kw[KW_ANYOF] || kw[KW_ONEOF]) {
        int k = kw[KW_ALLOF] ? KW_ALLOF : kw[KW_ANYOF] ? KW_ANYOF : KW_ONEOF;
        const cJSON *arr = kw[k];
        size_t old = path_push(c, kw_names[k]);
        int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
        st = QAI_OK;
        if (n == 0) st = SC_ERR(c, QAI_ERR_FORMAT, "'%s' at '#%s' must be a non-empty array", kw_names[k], c->path);
        else if (k == KW_ALLOF && n != 1)
            st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword 'allOf' with %d schemas at '#%s' (only one)", n,
                        c->path);
        uint32_t *alts = st ? NULL : g_alloc(g, (size_t)n * sizeof(uint32_t));
        if (!st && !alts) st = QAI_ERR_NOMEM;
        for (int i = 0; !st && i < n; i++) {
            size_t old2 = path_push_i(c, (size_t)i);
            st = compile(c, cJSON_GetArrayItem(arr, i), &alts[i]);
            path_pop(c, old2);
        }
        path_pop(c, old);
        if (st) return st;
        g->nodes[id].kind = N_ANYOF;
        g->nodes[id].alts = alts;
        g->nodes[id].n_alts = (uint32_t)n;
        return QAI_OK;
    }
    if (kw[KW_ENUM] || kw[KW_CONST]) {
        for (int i = 0; i < KW_N; i++)
            if (kw[i] && i != KW_TYPE && i != KW_ENUM && i != KW_CONST) {
                size_t old = path_push(c, kw_names[i]);
                st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword '%s' next to '%s' at '#%s'", kw_names[i],
                            kw[KW_ENUM] ? "enum" : "const", c->path);
                path_pop(c, old);
                return st;
            }
        if (kw[KW_ENUM] && kw[KW_CONST]) {
            size_t old = path_push(c, "const");
            st = SC_ERR(c, QAI_ERR_UNSUPPORTED, "unsupported keyword 'const' next to 'enum' at '#%s'", c->path);
            path_pop(c, old);
            return st;
        }
        return compile_enum(c, s, kw[KW_ENUM], kw[KW_CONST], kw[KW_TYPE], id);
    }
    unsigned bits = 0;
    if (kw[KW_TYPE]) {
        if ((st = type_bits(c, kw[KW_TYPE], &bits))) return st;
    } else {
        if (kw[KW_PROPS] || kw[KW_REQ] || kw[KW_ADD]) bits |= T_OBJ;
        if (kw[KW_ITEMS] || kw[KW_MINI] || kw[KW_MAXI]) bits |= T_ARR;
        if (kw[KW_MINL] || kw[KW_MAXL] || kw[KW_PATTERN] || kw[KW_FORMAT]) bits |= T_STR;
        if (kw[KW_MIN] || kw[KW_MAX] || kw[KW_XMIN] || kw[KW_XMAX]) bits |= T_NUM;
    }
    if (!bits) {
        uint32_t any;
        if ((st = g_any_value(g, &any))) return st;
        g->nodes[id].kind = N_REF;
        g->nodes[id].ref = any;
        return QAI_OK;
    }
    if ((bits & T_NUM) && (bits & T_INT)) bits &= ~(unsigned)T_INT;
    uint32_t alts[7];
    uint32_t n = 0;
    if (bits & T_OBJ) {
        if ((st = compile_object(c, s, &alts[n++]))) return st;
    }
    if (bits & T_ARR) {
        if ((st = compile_array(c, s, &alts[n++]))) return st;
    }
    if (bits & T_STR) {
        if ((st = compile_string(c, s, &alts[n++]))) return st;
    }
    if (bits & (T_NUM | T_INT)) {
        if ((st = compile_number(c, s, !(bits & T_NUM), &alts[n++]))) return st;
    }
    if (bits & (T_BOOL | T_NULL)) {
        lit_e e[3];
        int m = 0;
        if (bits & T_BOOL) {
            e[m++] = (lit_e){(const uint8_t *)"true", 4, 0};
            e[m++] = (lit_e){(const uint8_t *)"false", 5, 1};
        }
        if (bits & T_NULL) e[m++] = (lit_e){(const uint8_t *)"null", 4, 2};
        if ((st = lit_node(g, e, (uint32_t)m, false, &alts[n++]))) return st;
    }
    if (n == 1) {
        g->nodes[id].kind = N_REF;
        g->nodes[id].ref = alts[0];
        return QAI_OK;
    }
    uint32_t *a = g_alloc(g, n * sizeof(uint32_t));
    if (!a) return QAI_ERR_NOMEM;
    memcpy(a, alts, n * sizeof(uint32_t));
    g->nodes[id].kind = N_ANYOF;
    g->nodes[id].alts = a;
    g->nodes[id].n_alts = n;
    return QAI_OK;
}

/* Compiles schema s (memoized by its JSON node, so $ref cycles close). */
static qai_status compile(sc_t *c, const cJSON *s, uint32_t *out) {
    for (size_t i = 0; i < c->n_memo; i++)
        if (c->memo[i].json == s) {
            *out = c->memo[i].node;
            return QAI_OK;
        }
    if (c->nest >= MAX_NEST) return SC_ERR(c, QAI_ERR_UNSUPPORTED, "schema nested deeper than %d at '#%s'", MAX_NEST, c->path);
    uint32_t id;
    qai_status st = g_new_node(c->g, 0, &id);
    if (st) return st;
    if (c->n_memo == c->cap_memo) {
        size_t nc = c->cap_memo ? c->cap_memo * 2 : 32;
        memo_e *nm = qai_realloc(c->memo, nc * sizeof *nm);
        if (!nm) return QAI_ERR_NOMEM;
        c->memo = nm;
        c->cap_memo = nc;
    }
    c->memo[c->n_memo++] = (memo_e){s, id};
    c->nest++;
    st = compile_into(c, s, id);
    c->nest--;
    *out = id;
    return st;
}

/* ---- finishing ---- */

static uint32_t resolve(const qai_grammar *g, uint32_t id) {
    for (uint32_t steps = 0; id != NONE && g->nodes[id].kind == N_REF; steps++) {
        if (steps > g->n_nodes) return NONE;
        id = g->nodes[id].ref;
    }
    return id;
}

static int32_t md_of(const qai_grammar *g, uint32_t id) { return id == NONE ? G_INF : g->nodes[id].mindepth; }

static int32_t prop_md(const qai_grammar *g, const gnode *o, uint32_t j) {
    if ((int32_t)j != o->select_dst || !o->select_nodes) return md_of(g, o->prop_node[j]);
    int32_t m = 0;
    for (uint32_t k = 0; k < o->n_select; k++) {
        int32_t x = md_of(g, o->select_nodes[k]);
        if (x > m) m = x;
    }
    return m;
}

static int32_t node_md(const qai_grammar *g, const gnode *n) {
    int32_t m;
    switch (n->kind) {
    case N_STR:
    case N_NUM: return 0;
    case N_LIT: return n->n_lit ? 0 : G_INF;
    case N_ANYOF:
        m = G_INF;
        for (uint32_t i = 0; i < n->n_alts; i++) {
            int32_t x = md_of(g, n->alts[i]);
            if (x < m) m = x;
        }
        return m;
    case N_ARR:
        if (n->min == 0) return 1;
        m = md_of(g, n->items);
        return m >= G_INF ? G_INF : m + 1;
    case N_OBJ:
        m = 0;
        for (uint32_t j = 0; j < n->n_props; j++)
            if (n->prop_req[j]) {
                int32_t x = prop_md(g, n, j);
                if (x > m) m = x;
            }
        return m >= G_INF ? G_INF : m + 1;
    default: return G_INF;
    }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static qai_status build_keysets(qai_grammar *g, uint32_t id) {
    gnode *o = &g->nodes[id];
    uint32_t n = o->n_props;
    int32_t *lv = g_alloc(g, (n + 1) * sizeof(int32_t));
    lit_e *e = qai_calloc(n + 1, sizeof *e);
    if (!lv || !e) {
        qai_free(e);
        return QAI_ERR_NOMEM;
    }
    uint32_t nl = 0;
    for (uint32_t j = 0; j < n; j++) {
        int32_t x = prop_md(g, o, j);
        if (x < G_INF) lv[nl++] = x;
    }
    qsort(lv, nl, sizeof *lv, cmp_i32);
    uint32_t u = 0;
    for (uint32_t i = 0; i < nl; i++)
        if (!u || lv[u - 1] != lv[i]) lv[u++] = lv[i];
    nl = u;
    uint32_t *ks = g_alloc(g, (size_t)(n + 1) * (nl + 1) * sizeof(uint32_t));
    if (!ks) {
        qai_free(e);
        return QAI_ERR_NOMEM;
    }
    qai_status st = QAI_OK;
    for (uint32_t i = 0; i <= n && !st; i++) {
        for (uint32_t L = 0; L <= nl && !st; L++) {
            o = &g->nodes[id];
            uint32_t m = 0, last = o->req_after[i] < n ? o->req_after[i] : (n ? n - 1 : 0);
            for (uint32_t j = i; j < n && j <= last; j++) {
                int32_t x = prop_md(g, o, j);
                if (L > 0 && x <= lv[L - 1]) e[m++] = (lit_e){o->lit[j], o->lit_len[j], (int32_t)j};
            }
            uint32_t ln = NONE;
            if (m) st = lit_node(g, e, m, true, &ln);
            ks[i * (nl + 1) + L] = ln;
        }
    }
    qai_free(e);
    if (st) return st;
    o = &g->nodes[id];
    o->levels = lv;
    o->n_levels = nl;
    o->keysets = ks;
    return QAI_OK;
}

static qai_status flatten_anyof(qai_grammar *g) {
    uint32_t n = g->n_nodes;
    uint32_t *seen = qai_calloc(n, sizeof(uint32_t)), *taken = qai_calloc(n, sizeof(uint32_t));
    uint32_t *stack = qai_malloc((size_t)n * sizeof(uint32_t)), *leaves = qai_malloc((size_t)n * sizeof(uint32_t));
    qai_status st = QAI_OK;
    if (!seen || !taken || !stack || !leaves) st = QAI_ERR_NOMEM;
    for (uint32_t i = 0; i < n && !st; i++) {
        if (g->nodes[i].kind != N_ANYOF) continue;
        uint32_t sp = 0, nl = 0;
        stack[sp++] = i;
        seen[i] = i + 1;
        while (sp) {
            const gnode *a = &g->nodes[stack[--sp]];
            for (uint32_t k = 0; k < a->n_alts; k++) {
                uint32_t x = a->alts[k];
                if (g->nodes[x].kind == N_ANYOF) {
                    if (seen[x] != i + 1) seen[x] = i + 1, stack[sp++] = x;
                } else if (taken[x] != i + 1) {
                    taken[x] = i + 1;
                    leaves[nl++] = x;
                }
            }
        }
        uint32_t *alts = g_alloc(g, (size_t)(nl ? nl : 1) * sizeof(uint32_t));
        if (!alts) {
            st = QAI_ERR_NOMEM;
            break;
        }
        memcpy(alts, leaves, (size_t)nl * sizeof(uint32_t));
        g->nodes[i].alts = alts; /* the old array stays in g's blocks */
        g->nodes[i].n_alts = nl;
    }
    qai_free(seen);
    qai_free(taken);
    qai_free(stack);
    qai_free(leaves);
    return st;
}

qai_status g_finish(qai_grammar *g) {
    /* 1. follow $ref indirections everywhere */
    for (uint32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].kind == N_REF && resolve(g, i) == NONE)
            return qai_error(QAI_ERR_FORMAT, "schema: '$ref' cycle that never reaches a schema");
    g->root = resolve(g, g->root);
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        gnode *n = &g->nodes[i];
        for (uint32_t k = 0; k < n->n_alts; k++) n->alts[k] = resolve(g, n->alts[k]);
        if (n->kind == N_ARR) n->items = resolve(g, n->items);
        if (n->kind == N_OBJ) {
            for (uint32_t j = 0; j < n->n_props; j++) n->prop_node[j] = resolve(g, n->prop_node[j]);
            if (n->additional >= 0) n->additional = (int32_t)resolve(g, (uint32_t)n->additional);
            for (uint32_t k = 0; k < n->n_select; k++) n->select_nodes[k] = resolve(g, n->select_nodes[k]);
        }
    }
    /* 2. anyOf lists only non-anyOf nodes, so dispatch never recurses (an
     * anyOf that reaches itself through $ref would otherwise loop) */
    qai_status fst = flatten_anyof(g);
    if (fst) return fst;
    /* 3. mindepth: least fixpoint from "unsatisfiable" down */
    for (uint32_t i = 0; i < g->n_nodes; i++) g->nodes[i].mindepth = G_INF;
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t i = g->n_nodes; i-- > 0;) {
            int32_t m = node_md(g, &g->nodes[i]);
            if (m > G_INF) m = G_INF;
            if (m < g->nodes[i].mindepth) {
                g->nodes[i].mindepth = m;
                changed = true;
            }
        }
    }
    int32_t rm = md_of(g, g->root);
    if (rm >= G_INF) return qai_error(QAI_ERR_FORMAT, "schema: no finite JSON value can match it");
    if (rm > g->max_depth)
        return qai_error(QAI_ERR_FORMAT, "schema: every matching value nests %d arrays/objects, more than max_depth %d",
                         rm, g->max_depth);
    /* 4. key sets of objects (new literal nodes are appended: loop to the old end) */
    uint32_t n0 = g->n_nodes;
    for (uint32_t i = 0; i < n0; i++)
        if (g->nodes[i].kind == N_OBJ) {
            qai_status st = build_keysets(g, i);
            if (st) return st;
        }
    for (uint32_t i = n0; i < g->n_nodes; i++) g->nodes[i].mindepth = 0; /* key literals */
    return QAI_OK;
}

/* ---- public compilers ---- */

static qai_status finish_or_free(qai_grammar *g, qai_status st, qai_grammar **out) {
    if (!st) st = g_finish(g);
    if (st) {
        qai_grammar_free(g);
        return st;
    }
    *out = g;
    return QAI_OK;
}

qai_status qai_grammar_json_value(const qai_grammar_options *opt, qai_grammar **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_grammar_json_value: out is NULL");
    *out = NULL;
    qai_grammar *g;
    qai_status st = g_new_grammar(opt, &g);
    if (st) return st;
    return finish_or_free(g, g_any_value(g, &g->root), out);
}

qai_status qai_grammar_json_object(const qai_grammar_options *opt, qai_grammar **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_grammar_json_object: out is NULL");
    *out = NULL;
    qai_grammar *g;
    qai_status st = g_new_grammar(opt, &g);
    if (st) return st;
    return finish_or_free(g, g_any_object(g, &g->root), out);
}

static qai_status parse_json(const char *text, size_t len, const char *what, cJSON **out) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!j) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        return qai_error(QAI_ERR_FORMAT, "%s: invalid JSON near byte %zu", what, off);
    }
    const char *p = end;
    while (p < text + len && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    if (p < text + len && *p) {
        cJSON_Delete(j);
        return qai_error(QAI_ERR_FORMAT, "%s: unexpected text after the JSON value at byte %zu", what,
                         (size_t)(p - text));
    }
    *out = j;
    return QAI_OK;
}

static qai_status compile_doc(qai_grammar *g, const cJSON *doc, const char *what, uint32_t *out) {
    sc_t *c = qai_calloc(1, sizeof *c);
    if (!c) return QAI_ERR_NOMEM;
    c->g = g;
    c->doc = doc;
    c->what = what;
    qai_status st = compile(c, doc, out);
    qai_free(c->memo);
    qai_free(c);
    return st;
}

qai_status qai_grammar_compile_json_schema(const char *schema, size_t len, const qai_grammar_options *opt,
                                           qai_grammar **out) {
    if (!out || (!schema && len)) return qai_error(QAI_ERR_ARG, "qai_grammar_compile_json_schema: NULL argument");
    *out = NULL;
    cJSON *doc;
    qai_status st = parse_json(schema ? schema : "", len, "schema", &doc);
    if (st) return st;
    qai_grammar *g;
    if ((st = g_new_grammar(opt, &g))) {
        cJSON_Delete(doc);
        return st;
    }
    st = compile_doc(g, doc, "schema", &g->root);
    cJSON_Delete(doc);
    return finish_or_free(g, st, out);
}

qai_status qai_grammar_from_response_format(const char *json, size_t len, const qai_grammar_options *opt,
                                            qai_grammar **out) {
    if (!out || (!json && len)) return qai_error(QAI_ERR_ARG, "qai_grammar_from_response_format: NULL argument");
    *out = NULL;
    cJSON *rf;
    qai_status st = parse_json(json ? json : "", len, "response_format", &rf);
    if (st) return st;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type)) {
        st = qai_error(QAI_ERR_FORMAT, "response_format: must be an object with a string 'type'");
    } else if (!strcmp(type->valuestring, "text")) {
        st = QAI_OK;
    } else if (!strcmp(type->valuestring, "json_object")) {
        st = qai_grammar_json_object(opt, out);
    } else if (!strcmp(type->valuestring, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!cJSON_IsObject(js)) st = qai_error(QAI_ERR_FORMAT, "response_format.json_schema: must be an object");
        else if (!schema) st = qai_error(QAI_ERR_FORMAT, "response_format.json_schema.schema: is required");
        else {
            qai_grammar *g;
            if (!(st = g_new_grammar(opt, &g))) {
                st = compile_doc(g, schema, "response_format.json_schema.schema", &g->root);
                st = finish_or_free(g, st, out);
            }
        }
    } else {
        st = qai_error(QAI_ERR_UNSUPPORTED, "response_format.type: '%.64s' is not one of text, json_object, json_schema",
                       type->valuestring);
    }
    cJSON_Delete(rf);
    return st;
}

qai_status qai_grammar_tool_calls(const char *tools, size_t tools_len, const char *tool_choice, size_t choice_len,
                                  int flags, const qai_grammar_options *opt, qai_grammar **out) {
    if (!out || (!tools && tools_len)) return qai_error(QAI_ERR_ARG, "qai_grammar_tool_calls: NULL argument");
    *out = NULL;
    cJSON *tj = NULL, *cj = NULL;
    qai_grammar *g = NULL;
    lit_e *names = NULL;
    uint32_t *params = NULL;
    qai_status st = parse_json(tools ? tools : "", tools_len, "tools", &tj);
    if (st) return st;
    /* tool choice */
    bool free_text = true;
    const char *only = NULL;
    if (tool_choice && choice_len) {
        if ((st = parse_json(tool_choice, choice_len, "tool_choice", &cj))) goto done;
        if (cJSON_IsString(cj)) {
            const char *v = cj->valuestring;
            if (!strcmp(v, "none")) goto done; /* no grammar */
            if (!strcmp(v, "required")) free_text = false;
            else if (strcmp(v, "auto")) {
                st = qai_error(QAI_ERR_FORMAT, "tool_choice: '%.64s' is not one of none, auto, required", v);
                goto done;
            }
        } else {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cj, "function");
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(cj, "type");
            if (!cJSON_IsObject(cj) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsString(nm)) {
                st = qai_error(QAI_ERR_FORMAT,
                               "tool_choice: must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}");
                goto done;
            }
            only = nm->valuestring;
            free_text = false;
        }
    }
    if (!cJSON_IsArray(tj)) {
        st = qai_error(QAI_ERR_FORMAT, "tools: must be an array");
        goto done;
    }
    int n = cJSON_GetArraySize(tj);
    if ((st = g_new_grammar(opt, &g))) goto done;
    names = qai_calloc((size_t)n + 1, sizeof *names);
    params = qai_calloc((size_t)n + 1, sizeof *params);
    if (!names || !params) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    uint32_t m = 0;
    sbuf_t b = {0};
    for (int i = 0; i < n && !st; i++) {
        const cJSON *t = cJSON_GetArrayItem(tj, i);
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (!cJSON_IsObject(t) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "function")) {
            st = qai_error(QAI_ERR_FORMAT, "tools[%d].type: must be \"function\"", i);
            break;
        }
        if (!cJSON_IsObject(fn) || !cJSON_IsString(nm) || !nm->valuestring[0] ||
            !valid_utf8((const uint8_t *)nm->valuestring, strlen(nm->valuestring))) {
            st = qai_error(QAI_ERR_FORMAT, "tools[%d].function.name: must be a non-empty UTF-8 string", i);
            break;
        }
        for (int k = 0; k < i && !st; k++) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tj, k), "function"), "name");
            if (!strcmp(o->valuestring, nm->valuestring))
                st = qai_error(QAI_ERR_FORMAT, "tools[%d].function.name: '%.64s' is also tools[%d]", i, nm->valuestring, k);
        }
        if (st) break;
        if (only && strcmp(only, nm->valuestring)) continue;
        char what[64];
        snprintf(what, sizeof what, "tools[%d].function.parameters", i);
        if (pa) {
            st = compile_doc(g, pa, what, &params[m]);
        } else { /* no parameters: the arguments are {} */
            cJSON *empty = cJSON_Parse("{\"type\":\"object\",\"properties\":{}}");
            st = empty ? compile_doc(g, empty, what, &params[m]) : QAI_ERR_NOMEM;
            cJSON_Delete(empty);
        }
        if (st) break;
        b.n = 0;
        qai_strbuf_put(&b, "\"", 1);
        sb_escaped(&b, nm->valuestring);
        qai_strbuf_put(&b, "\"", 1);
        const uint8_t *lit = b.oom ? NULL : g_bytes(g, b.p, b.n);
        if (!lit) st = QAI_ERR_NOMEM;
        else {
            names[m] = (lit_e){lit, (uint32_t)b.n, (int32_t)m};
            m++;
        }
    }
    qai_free(b.p);
    if (st) goto done;
    if (only && m == 0) {
        st = qai_error(QAI_ERR_NOT_FOUND, "tool_choice: no tool is named '%.64s'", only);
        goto done;
    }
    if (m == 0) {
        if (free_text) goto done; /* auto without tools: nothing to constrain */
        st = qai_error(QAI_ERR_ARG, "tool_choice: \"required\" but 'tools' is empty");
        goto done;
    }
    uint32_t names_lit, call, keys;
    if ((st = lit_node(g, names, m, true, &names_lit))) goto done;
    lit_e ke[2] = {{(const uint8_t *)"name\"", 5, 0}, {(const uint8_t *)"arguments\"", 10, 1}};
    if ((st = lit_node(g, ke, 2, true, &keys)) || (st = g_new_node(g, N_OBJ, &call))) goto done;
    {
        uint32_t *pn = g_alloc(g, 2 * sizeof(uint32_t));
        uint8_t *pr = g_alloc(g, 2);
        uint32_t *ra = g_alloc(g, 3 * sizeof(uint32_t));
        uint32_t *sel = g_alloc(g, m * sizeof(uint32_t));
        const uint8_t **kl = g_alloc(g, 2 * sizeof *kl);
        uint32_t *kn = g_alloc(g, 2 * sizeof(uint32_t));
        if (!pn || !pr || !ra || !sel || !kl || !kn) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        memcpy(sel, params, m * sizeof(uint32_t));
        pn[0] = names_lit, pn[1] = sel[0];
        pr[0] = pr[1] = 1;
        ra[0] = 0, ra[1] = 1, ra[2] = 2;
        kl[0] = (const uint8_t *)"name\"", kl[1] = (const uint8_t *)"arguments\""; /* ke was sorted */
        kn[0] = 5, kn[1] = 10;
        gnode *o = &g->nodes[call];
        o->n_props = 2;
        o->prop_node = pn;
        o->prop_req = pr;
        o->req_after = ra;
        o->all_names = keys;
        o->lit = kl;
        o->lit_len = kn;
        o->select_src = 0;
        o->select_dst = 1;
        o->select_nodes = sel;
        o->n_select = m;
    }
    if (flags & QAI_GRAMMAR_PARALLEL_TOOLS) {
        uint32_t arr;
        if ((st = g_new_node(g, N_ARR, &arr))) goto done;
        g->nodes[arr].items = call;
        g->nodes[arr].min = 1;
        g->root = arr;
        g->free_trigger = '[';
    } else {
        g->root = call;
    }
    g->free_text = free_text;
    st = g_finish(g);
    if (!st) {
        *out = g;
        g = NULL;
    }
done:
    qai_grammar_free(g);
    qai_free(names);
    qai_free(params);
    cJSON_Delete(tj);
    cJSON_Delete(cj);
    return st;
}
