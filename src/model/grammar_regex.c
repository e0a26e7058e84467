/* The "pattern" keyword: a simple subset of ECMA-262 regular expressions
 * compiled to a Glushkov automaton over code points (one state per character
 * position, no epsilon moves, at most 63 positions so a set of states is a
 * 64-bit mask that fits in a matcher thread).
 *
 * Supported: literals (UTF-8), '.', classes [a-z_] and [^...], escapes \d \w
 * \s \D \W \S \n \r \t \f \v \0 \xHH \uHHHH and escaped punctuation, groups
 * (...) and (?:...), alternation |, quantifiers * + ? {n} {n,} {n,m} (lazy
 * forms mean the same here), ^ at the start and $ at the end. As in JSON
 * Schema, a pattern without ^ / $ may match anywhere (".*" is added around).
 *
 * Not supported (an error naming the construct): backreferences, lookaround,
 * word boundaries, Unicode property classes, ^/$ inside the pattern, flags.
 * Code points U+D800..U+DFFF are removed from every class (a JSON string
 * cannot hold them); a class left empty is an error, so every position lies
 * on some matching string and a live state set can always be completed.
 */
#include <string.h>

#include "grammar_internal.h"

#define MAX_RANGES 512 /* all classes of one pattern together */
#define MAX_CLASS 64   /* ranges of one class while it is built */

typedef struct {
    bool nullable;
    uint64_t first, last;
} frag;

typedef struct {
    const char *s;
    size_t n, i;
    gpat *P;
    grange pool[MAX_RANGES];
    uint32_t n_pool;
    const char *err; /* static message, NULL: fine */
    const char *what, *path;
    int depth;
} rp;

static bool fail(rp *r, const char *msg) {
    if (!r->err) r->err = msg;
    return false;
}

/* ---- classes ---- */

typedef struct {
    grange r[MAX_CLASS];
    int n;
    bool overflow;
} cls;

static void cls_add(cls *c, uint32_t lo, uint32_t hi) {
    if (c->n == MAX_CLASS) {
        c->overflow = true;
        return;
    }
    c->r[c->n].lo = lo;
    c->r[c->n].hi = hi;
    c->n++;
}

static void cls_normalize(cls *c) { /* sort, merge, drop surrogates */
    for (int i = 1; i < c->n; i++)
        for (int j = i; j > 0 && c->r[j - 1].lo > c->r[j].lo; j--) {
            grange t = c->r[j];
            c->r[j] = c->r[j - 1];
            c->r[j - 1] = t;
        }
    int m = 0;
    for (int i = 0; i < c->n; i++) {
        if (m && c->r[i].lo <= c->r[m - 1].hi + 1) {
            if (c->r[i].hi > c->r[m - 1].hi) c->r[m - 1].hi = c->r[i].hi;
        } else {
            c->r[m++] = c->r[i];
        }
    }
    c->n = m;
    cls out = {.n = 0};
    for (int i = 0; i < c->n; i++) {
        uint32_t lo = c->r[i].lo, hi = c->r[i].hi;
        if (hi < 0xD800 || lo > 0xDFFF) cls_add(&out, lo, hi);
        else {
            if (lo < 0xD800) cls_add(&out, lo, 0xD7FF);
            if (hi > 0xDFFF) cls_add(&out, 0xE000, hi);
        }
    }
    out.overflow |= c->overflow;
    *c = out;
}

static void cls_negate(cls *c) {
    cls_normalize(c);
    cls out = {.n = 0};
    uint32_t next = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->r[i].lo > next) cls_add(&out, next, c->r[i].lo - 1);
        next = c->r[i].hi + 1;
    }
    if (next <= 0x10FFFF) cls_add(&out, next, 0x10FFFF);
    out.overflow |= c->overflow;
    *c = out;
}

static void cls_shorthand(cls *c, char k) {
    cls t = {.n = 0};
    switch (k | 0x20) {
    case 'd': cls_add(&t, '0', '9'); break;
    case 'w':
        cls_add(&t, '0', '9');
        cls_add(&t, 'A', 'Z');
        cls_add(&t, '_', '_');
        cls_add(&t, 'a', 'z');
        break;
    case 's':
        cls_add(&t, 9, 13);
        cls_add(&t, ' ', ' ');
        cls_add(&t, 0xA0, 0xA0);
        cls_add(&t, 0x2028, 0x2029);
        cls_add(&t, 0xFEFF, 0xFEFF);
        break;
    }
    if (k >= 'A' && k <= 'Z') cls_negate(&t);
    for (int i = 0; i < t.n; i++) cls_add(c, t.r[i].lo, t.r[i].hi);
}

static int hexd(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') return (ch | 0x20) - 'a' + 10;
    return -1;
}

/* One UTF-8 code point of the pattern text. */
static bool next_cp(rp *r, uint32_t *cp) {
    const uint8_t *s = (const uint8_t *)r->s + r->i;
    size_t left = r->n - r->i;
    if (!left) return fail(r, "unexpected end of the pattern");
    uint8_t c = s[0];
    int len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || (size_t)len > left) return fail(r, "invalid UTF-8 in the pattern");
    uint32_t v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return fail(r, "invalid UTF-8 in the pattern");
        v = v << 6 | (s[k] & 0x3F);
    }
    r->i += (size_t)len;
    *cp = v;
    return true;
}

/* An escape after '\'; fills c (a class) and returns true. in_class: \b is a backspace. */
static bool escape(rp *r, cls *c, bool in_class) {
    if (r->i >= r->n) return fail(r, "the pattern ends with a lone backslash");
    char k = r->s[r->i++];
    switch (k) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S': cls_shorthand(c, k); return true;
    case 'n': cls_add(c, '\n', '\n'); return true;
    case 'r': cls_add(c, '\r', '\r'); return true;
    case 't': cls_add(c, '\t', '\t'); return true;
    case 'f': cls_add(c, '\f', '\f'); return true;
    case 'v': cls_add(c, '\v', '\v'); return true;
    case '0': cls_add(c, 0, 0); return true;
    case 'b':
        if (in_class) {
            cls_add(c, 8, 8);
            return true;
        }
        return fail(r, "word boundaries (\\b) are not supported");
    case 'x':
    case 'u': {
        int nd = k == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (int j = 0; j < nd; j++) {
            int h = r->i < r->n ? hexd(r->s[r->i]) : -1;
            if (h < 0) return fail(r, "\\x needs 2 and \\u 4 hex digits");
            v = v * 16 + (uint32_t)h;
            r->i++;
        }
        cls_add(c, v, v);
        return true;
    }
    default:
        if ((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z') || (k >= '1' && k <= '9'))
            return fail(r, "this escape (backreference, \\p, \\B, ...) is not supported");
        r->i--;
        uint32_t cp;
        if (!next_cp(r, &cp)) return false;
        cls_add(c, cp, cp);
        return true;
    }
}

static bool parse_class(rp *r, cls *c) { /* after '[' */
    bool neg = r->i < r->n && r->s[r->i] == '^';
    if (neg) r->i++;
    while (r->i < r->n && r->s[r->i] != ']') {
        cls one = {.n = 0};
        if (r->s[r->i] == '\\') {
            r->i++;
            if (!escape(r, &one, true)) return false;
        } else {
            uint32_t cp;
            if (!next_cp(r, &cp)) return false;
            cls_add(&one, cp, cp);
        }
        /* a range a-b (single characters only) */
        if (one.n == 1 && one.r[0].lo == one.r[0].hi && r->i + 1 < r->n && r->s[r->i] == '-' && r->s[r->i + 1] != ']') {
            r->i++;
            cls two = {.n = 0};
            if (r->s[r->i] == '\\') {
                r->i++;
                if (!escape(r, &two, true)) return false;
            } else {
                uint32_t cp;
                if (!next_cp(r, &cp)) return false;
                cls_add(&two, cp, cp);
            }
            if (two.n != 1 || two.r[0].lo != two.r[0].hi || two.r[0].lo < one.r[0].lo)
                return fail(r, "invalid range in a character class");
            cls_add(c, one.r[0].lo, two.r[0].lo);
            continue;
        }
        for (int k = 0; k < one.n; k++) cls_add(c, one.r[k].lo, one.r[k].hi);
    }
    if (r->i >= r->n) return fail(r, "unterminated character class");
    r->i++; /* ']' */
    if (neg) cls_negate(c);
    return true;
}

/* ---- Glushkov construction ---- */

static bool new_pos(rp *r, cls *c, frag *out) {
    cls_normalize(c);
    if (c->overflow) return fail(r, "a character class has too many ranges");
    if (c->n == 0) return fail(r, "a character class matches nothing a JSON string can hold");
    gpat *P = r->P;
    if (P->n_pos >= G_PAT_MAX_POS) return fail(r, "the pattern is too long (more than 63 character positions after expanding repeats)");
    if (r->n_pool + (uint32_t)c->n > MAX_RANGES) return fail(r, "the pattern's classes have too many ranges");
    uint32_t p = ++P->n_pos;
    P->range_off[p] = r->n_pool;
    for (int k = 0; k < c->n; k++) r->pool[r->n_pool++] = c->r[k];
    P->range_off[p + 1] = r->n_pool;
    out->nullable = false;
    out->first = out->last = 1ull << p;
    return true;
}

static void link(gpat *P, uint64_t from, uint64_t to) {
    for (uint32_t p = 1; p <= P->n_pos; p++)
        if (from >> p & 1) P->succ[p] |= to;
}

static frag cat(gpat *P, frag a, frag b) {
    link(P, a.last, b.first);
    frag o;
    o.nullable = a.nullable && b.nullable;
    o.first = a.first | (a.nullable ? b.first : 0);
    o.last = b.last | (b.nullable ? a.last : 0);
    return o;
}

static bool parse_alt(rp *r, frag *out);

static bool parse_atom(rp *r, frag *out) {
    char ch = r->s[r->i];
    cls c = {.n = 0};
    switch (ch) {
    case '(':
        r->i++;
        if (r->i < r->n && r->s[r->i] == '?') {
            if (r->i + 1 < r->n && r->s[r->i + 1] == ':') r->i += 2;
            else return fail(r, "lookaround and named groups are not supported");
        }
        if (++r->depth > 32) return fail(r, "groups nested too deeply");
        if (!parse_alt(r, out)) return false;
        r->depth--;
        if (r->i >= r->n || r->s[r->i] != ')') return fail(r, "unbalanced parenthesis");
        r->i++;
        return true;
    case '[':
        r->i++;
        return parse_class(r, &c) && new_pos(r, &c, out);
    case '.':
        r->i++;
        cls_add(&c, '\n', '\n');
        cls_add(&c, '\r', '\r');
        cls_negate(&c);
        return new_pos(r, &c, out);
    case '\\':
        r->i++;
        return escape(r, &c, false) && new_pos(r, &c, out);
    case '*': case '+': case '?': case '{':
        return fail(r, "a quantifier has nothing to repeat");
    case '^': case '$':
        return fail(r, "^ and $ are supported only at the start and end of the pattern");
    case ')':
        return fail(r, "unbalanced parenthesis");
    default: {
        uint32_t cp;
        if (!next_cp(r, &cp)) return false;
        cls_add(&c, cp, cp);
        return new_pos(r, &c, out);
    }
    }
}

static bool parse_count(rp *r, uint32_t *v) {
    size_t s = r->i;
    *v = 0;
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') {
        *v = *v * 10 + (uint32_t)(r->s[r->i++] - '0');
        if (*v > 1000) return fail(r, "a repeat count is too large");
    }
    return r->i > s;
}

/* An atom with its quantifier; repeats parse the atom again for fresh positions. */
static bool parse_repeat(rp *r, frag *out) {
    size_t start = r->i;
    frag a;
    if (!parse_atom(r, &a)) return false;
    size_t end = r->i;
    uint32_t lo = 1, hi = 1;
    const uint32_t INF = UINT32_MAX;
    if (r->i < r->n) {
        char q = r->s[r->i];
        if (q == '*') lo = 0, hi = INF, r->i++;
        else if (q == '+') lo = 1, hi = INF, r->i++;
        else if (q == '?') lo = 0, hi = 1, r->i++;
        else if (q == '{') {
            r->i++;
            if (!parse_count(r, &lo)) return fail(r, "'{' must start a repeat {n}, {n,} or {n,m}");
            hi = lo;
            if (r->i < r->n && r->s[r->i] == ',') {
                r->i++;
                hi = INF;
                if (r->i < r->n && r->s[r->i] != '}' && !parse_count(r, &hi)) return false;
            }
            if (r->i >= r->n || r->s[r->i] != '}') return fail(r, "unterminated repeat {n,m}");
            r->i++;
            if (hi < lo) return fail(r, "a repeat {n,m} has n > m");
        }
        if (lo != 1 || hi != 1) {
            if (r->i < r->n && r->s[r->i] == '?') r->i++; /* lazy: same language */
        }
    }
    if (lo == 1 && hi == 1) {
        *out = a;
        return true;
    }
    size_t after = r->i;
    gpat *P = r->P;
    frag res = {true, 0, 0};
    uint32_t copies = hi == INF ? (lo ? lo : 1) : hi;
    for (uint32_t k = 0; k < copies; k++) {
        frag x = a;
        if (k > 0) {
            r->i = start;
            if (!parse_atom(r, &x)) return false;
            if (r->i != end) return fail(r, "internal: a repeated atom parsed differently");
        }
        if (hi == INF && k == copies - 1) { /* the last copy loops: x+ (x* when lo == 0) */
            link(P, x.last, x.first);
            if (lo == 0) x.nullable = true;
        } else if (k >= lo) {
            x.nullable = true; /* optional copies */
        }
        res = cat(P, res, x);
    }
    r->i = after;
    *out = res;
    return true;
}

static bool parse_cat(rp *r, frag *out) {
    frag res = {true, 0, 0};
    while (r->i < r->n && r->s[r->i] != '|' && r->s[r->i] != ')') {
        if (r->s[r->i] == '$' && r->i + 1 == r->n) break; /* the end anchor */
        frag x;
        if (!parse_repeat(r, &x)) return false;
        res = cat(r->P, res, x);
    }
    *out = res;
    return true;
}

static bool parse_alt(rp *r, frag *out) {
    frag res;
    if (!parse_cat(r, &res)) return false;
    while (r->i < r->n && r->s[r->i] == '|') {
        r->i++;
        frag x;
        if (!parse_cat(r, &x)) return false;
        res.nullable |= x.nullable;
        res.first |= x.first;
        res.last |= x.last;
    }
    *out = res;
    return true;
}

static bool meets(const gpat *P, uint32_t p, uint32_t lo, uint32_t hi) {
    for (uint32_t k = P->range_off[p]; k < P->range_off[p + 1]; k++)
        if (P->ranges[k].lo <= hi && P->ranges[k].hi >= lo) return true;
    return false;
}

uint64_t g_pat_reach(const gpat *P, uint64_t S, uint32_t lo, uint32_t hi) {
    uint64_t succ = 0;
    for (uint64_t s = S; s; s &= s - 1) succ |= P->succ[__builtin_ctzll(s)];
    uint64_t out = 0;
    for (uint64_t s = succ; s; s &= s - 1) {
        uint32_t q = (uint32_t)__builtin_ctzll(s);
        if (meets(P, q, lo, hi)) out |= 1ull << q;
    }
    return out;
}

qai_status g_compile_pattern(qai_grammar *g, const char *pattern, const char *what, const char *path, gpat **out) {
    rp *r = qai_calloc(1, sizeof *r);
    gpat *P = g_alloc(g, sizeof *P);
    if (!r || !P) {
        qai_free(r);
        return QAI_ERR_NOMEM;
    }
    r->s = pattern;
    r->n = strlen(pattern);
    r->P = P;
    bool anchored_start = r->n && pattern[0] == '^';
    bool anchored_end = r->n && pattern[r->n - 1] == '$' && !(r->n >= 2 && pattern[r->n - 2] == '\\');
    if (anchored_start) r->i = 1;
    frag pre = {true, 0, 0}, body, post = {true, 0, 0};
    cls any = {.n = 0};
    bool ok = true;
    if (!anchored_start) { /* search semantics: any text before */
        cls_add(&any, 0, 0x10FFFF);
        ok = new_pos(r, &any, &pre);
        if (ok) link(P, pre.last, pre.first), pre.nullable = true;
    }
    ok = ok && parse_alt(r, &body);
    if (ok && r->i < r->n && !(anchored_end && r->i == r->n - 1)) ok = fail(r, "unbalanced parenthesis");
    if (ok && !anchored_end) {
        any.n = 0;
        cls_add(&any, 0, 0x10FFFF);
        ok = new_pos(r, &any, &post);
        if (ok) link(P, post.last, post.first), post.nullable = true;
    }
    qai_status st = QAI_OK;
    if (!ok) {
        st = qai_error(QAI_ERR_UNSUPPORTED, "%s: pattern at '#%s' (\"%.64s\"): %s", what, path, pattern, r->err);
    } else {
        frag all = cat(P, cat(P, pre, body), post);
        P->succ[0] = all.first;
        P->last = all.last;
        P->nullable = all.nullable;
        P->ranges = g_alloc(g, (r->n_pool ? r->n_pool : 1) * sizeof(grange));
        if (!P->ranges) st = QAI_ERR_NOMEM;
        else {
            memcpy(P->ranges, r->pool, r->n_pool * sizeof(grange));
            for (uint32_t p = 1; p <= P->n_pos; p++) {
                uint32_t k = P->range_off[p];
                if ((P->succ[p] >> p & 1) && P->range_off[p + 1] - k == 2 && P->ranges[k].lo == 0 &&
                    P->ranges[k].hi == 0xD7FF && P->ranges[k + 1].lo == 0xE000 && P->ranges[k + 1].hi == 0x10FFFF)
                    P->universal |= 1ull << p;
                for (uint32_t cp = 0; cp < 128; cp++)
                    if (meets(P, p, cp, cp)) P->ascii[cp] |= 1ull << p;
                for (uint32_t b = 0xC2; b <= 0xF4; b++) {
                    uint32_t lo, hi;
                    if (b <= 0xDF) lo = (b & 0x1F) << 6, hi = lo | 0x3F;
                    else if (b == 0xE0) lo = 0x800, hi = 0xFFF;
                    else if (b == 0xED) lo = 0xD000, hi = 0xD7FF;
                    else if (b <= 0xEF) lo = (b & 0x0F) << 12, hi = lo | 0xFFF;
                    else if (b == 0xF0) lo = 0x10000, hi = 0x3FFFF;
                    else if (b == 0xF4) lo = 0x100000, hi = 0x10FFFF;
                    else lo = (b & 0x07) << 18, hi = lo | 0x3FFFF;
                    if (meets(P, p, lo, hi)) P->lead[b] |= 1ull << p;
                }
            }
            /* distances to acceptance (Bellman-Ford over the follow sets) */
            for (uint32_t p = 0; p <= P->n_pos; p++)
                P->dist[p] = (p == 0 ? P->nullable : (P->last >> p & 1)) ? 0 : 255;
            for (bool changed = true; changed;) {
                changed = false;
                for (uint32_t p = 0; p <= P->n_pos; p++)
                    for (uint64_t q = P->succ[p]; q; q &= q - 1) {
                        uint32_t d = P->dist[__builtin_ctzll(q)];
                        if (d < 254 && d + 1 < P->dist[p]) P->dist[p] = (uint8_t)(d + 1), changed = true;
                    }
            }
            *out = P;
        }
    }
    qai_free(r);
    return st;
}
