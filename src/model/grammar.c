/* The grammar matcher: stepping threads byte by byte, states, and token masks
 * computed by walking the vocabulary trie with the matcher (grammar.h has the
 * contract, grammar_internal.h the data layout).
 *
 * Invariant that makes masks safe: every thread alive after a byte can still
 * reach a complete document. The compiler guarantees the pieces of it that
 * depend on the schema (no empty enums, minLength <= maxLength, mindepth of
 * every node, key sets that only offer properties whose values fit in the
 * remaining depth); the steppers below reject a byte as soon as it rules out
 * every completion (e.g. "\uDC" is refused at the C, not four bytes later).
 *
 * Strings with a pattern carry the pattern automaton's state set in the
 * thread (grammar_regex.c builds it) and are checked character by character.
 *
 * What it does not do: allocate while walking (frames grow once, amortized),
 * or keep more than G_MAX_THREADS alternatives (extra ones are dropped, which
 * only narrows the choice: everything still allowed stays valid).
 */
#include <math.h>
#include <string.h>

#include "grammar_internal.h"

enum { D_BEFORE = 0, D_AFTER, D_FREE };
enum { O_START = 0, O_KEYDONE, O_COLON, O_AFTERVAL, O_COMMA };
enum { A_START = 0, A_AFTER, A_COMMA };
enum { S_IN = 0, S_ESC, S_U, S_HI_BS, S_HI_U, S_LO };
enum { NM_MINUS = 0, NM_ZERO, NM_INT, NM_DOT, NM_FRAC, NM_E, NM_ESIGN, NM_EXP };

#define NONE UINT32_MAX

struct qai_grammar_state {
    const qai_grammar *g;
    const qai_grammar_vocab *v;
    gset cur;          /* committed threads */
    gframe *frames;    /* [0, n_committed) belong to cur; the rest is scratch */
    uint32_t n_frames, n_committed, cap_frames;
    gframe *frames2;   /* compaction target */
    uint32_t cap_frames2;
    uint32_t *remap;
    uint32_t cap_remap;
    gset *sets;        /* walk levels */
    uint32_t n_sets;
    uint8_t *allowed;  /* (n_vocab) scratch of the last mask */
    int count;         /* tokens marked in allowed */
    bool ended;        /* an end-of-generation token was accepted */
    bool oom;          /* frames could not grow during a step */
    int n_tokens;      /* tokens accepted (for sync) */
};

qai_grammar_options qai_grammar_default_options(void) {
    qai_grammar_options o = {.max_ws = 20, .max_depth = 32};
    return o;
}

/* ---- stepping ---- */

static inline bool is_ws(uint8_t b) { return b == ' ' || b == '\n' || b == '\r' || b == '\t'; }

/* Whitespace between tokens (and around the document) is either one space
 * or one newline followed by at most max_ws spaces/tabs of indentation, as
 * llama.cpp's JSON-schema grammars allow ("\n" plus a bounded indent), so a
 * model cannot spend its budget on blank lines or runs of spaces. */
static inline bool ws_step(const qai_grammar *g, uint8_t *ws, uint8_t b) {
    if (*ws == 0) {
        if (b == ' ') *ws = G_WS_SPACE;
        else if (b == '\n') *ws = 1;
        else return false;
        return true;
    }
    if (*ws == G_WS_SPACE || (b != ' ' && b != '\t') || *ws - 1 >= g->max_ws) return false;
    (*ws)++;
    return true;
}

static inline gthread mk(uint32_t node, uint8_t k, uint8_t st, uint32_t parent, uint16_t depth) {
    gthread t;
    memset(&t, 0, sizeof t);
    t.c.node = node;
    t.c.k = k;
    t.c.st = st;
    t.parent = parent;
    t.depth = depth;
    return t;
}

static inline void emit(gset *out, const gthread *t) {
    for (int i = 0; i < out->n; i++)
        if (!memcmp(&out->t[i], t, sizeof *t)) return;
    if (out->n < G_MAX_THREADS) out->t[out->n++] = *t;
}

/* Capacity is ensured by step_set before a byte is fed, so push never fails. */
static inline uint32_t push(qai_grammar_state *s, const gcur *c, uint32_t parent) {
    uint32_t i = s->n_frames++;
    s->frames[i].c = *c;
    s->frames[i].parent = parent;
    return i;
}

static bool ensure_frames(qai_grammar_state *s, uint32_t extra) {
    if (s->n_frames + extra <= s->cap_frames) return true;
    uint32_t nc = s->cap_frames ? s->cap_frames : 256;
    while (nc < s->n_frames + extra) nc *= 2;
    gframe *nf = qai_realloc(s->frames, (size_t)nc * sizeof(gframe));
    if (!nf) return false;
    s->frames = nf;
    s->cap_frames = nc;
    return true;
}

/* Narrows [lo, hi) of literal entries sharing their first pos bytes to those
 * whose byte pos is b. */
static bool lit_narrow(const gnode *n, uint32_t *lo, uint32_t *hi, uint32_t pos, uint8_t b) {
    uint32_t l = *lo, h = *hi;
    if (l < h && n->lit_len[l] == pos) l++; /* the entry that ends here sorts first */
    uint32_t a = l, z = h;
    while (a < z) { /* first entry with byte >= b */
        uint32_t m = a + (z - a) / 2;
        if (n->lit[m][pos] < b) a = m + 1;
        else z = m;
    }
    uint32_t e = a;
    z = h;
    while (e < z) { /* first entry with byte > b */
        uint32_t m = e + (z - e) / 2;
        if (n->lit[m][pos] <= b) e = m + 1;
        else z = m;
    }
    *lo = a;
    *hi = e;
    return a < e;
}

static inline int32_t lit_tag(const gnode *n, uint32_t i) { return n->lit_tag ? n->lit_tag[i] : (int32_t)i; }

typedef struct {
    const qai_grammar *g;
    qai_grammar_state *s;
} mctx;

static void step(mctx *m, const gthread *t, uint8_t b, gset *out);

/* The value of thread (parent, depth) ended: resume the parent frame, tell it
 * what ended (info: key index, literal tag or -1), and feed it b if asked. */
static void finish(mctx *m, uint32_t parent, uint16_t depth, int32_t info, gset *out, bool feed, uint8_t b) {
    gthread p;
    memset(&p, 0, sizeof p);
    p.c = m->s->frames[parent].c;
    p.parent = m->s->frames[parent].parent;
    p.depth = depth;
    if (p.c.k == K_OBJ) {
        const gnode *o = &m->g->nodes[p.c.node];
        if (p.c.st == O_KEYDONE) {
            if (info >= 0) {
                p.c.a = (uint32_t)info + 1;
                p.c.b = (info == o->select_dst && o->select_nodes) ? o->select_nodes[p.c.c] : o->prop_node[info];
            } else {
                p.c.a = o->n_props;
                p.c.b = (uint32_t)o->additional;
            }
        } else if (p.c.st == O_AFTERVAL && o->select_src >= 0 && p.c.a == (uint32_t)o->select_src + 1) {
            p.c.c = (uint32_t)info;
        }
    }
    if (feed) step(m, &p, b, out);
    else emit(out, &p);
}

/* Literal cursor over [lo, hi) at pos, fed b. */
static void lit_step(mctx *m, uint32_t node, uint32_t lo, uint32_t hi, uint32_t pos, uint8_t b, uint32_t parent,
                     uint16_t depth, gset *out) {
    const gnode *n = &m->g->nodes[node];
    bool complete = lo < hi && n->lit_len[lo] == pos;
    uint32_t nlo = lo, nhi = hi;
    if (lit_narrow(n, &nlo, &nhi, pos, b)) {
        if (n->lit_len[nlo] == pos + 1 && nhi - nlo == 1) {
            finish(m, parent, depth, lit_tag(n, nlo), out, false, 0);
        } else {
            gthread t = mk(node, K_LIT, 0, parent, depth);
            t.c.a = nlo;
            t.c.b = nhi;
            t.c.c = pos + 1;
            emit(out, &t);
        }
    }
    if (complete) finish(m, parent, depth, lit_tag(n, lo), out, true, b);
}

/* ---- numbers with minimum/maximum: no exponent, at most n->idig integer
 * and n->fd fraction digits, so a value is an integer count of 10^-fd
 * (below 10^18). The thread keeps the digits so far as one integer M
 * (c.b | c.c << 32), the digits of the current part (c.a: integer part in
 * NM_ZERO/NM_INT, fraction in NM_FRAC) and c.d = negative | integer digits
 * << 8. A byte is taken only if some completion of the prefix lies in
 * [rlo, rhi], so every live thread can still end inside the range. */

static const int64_t p10[19] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
                                10000000000, 100000000000, 1000000000000, 10000000000000, 100000000000000,
                                1000000000000000, 10000000000000000, 100000000000000000, 1000000000000000000};

/* some magnitude in [lo, hi] (with the sign) is in range */
static inline bool rng_meets(const gnode *n, bool neg, int64_t lo, int64_t hi) {
    return neg ? -hi <= n->rhi && -lo >= n->rlo : lo <= n->rhi && hi >= n->rlo;
}

/* some completion of the prefix (neg, digits M, nI integer digits, nF
 * fraction digits or -1 before the dot) is in range */
static bool rng_feasible(const gnode *n, bool neg, int64_t M, int nI, int nF) {
    int FD = n->fd, ID = n->idig;
    if (nF >= 0) {
        int64_t lo = M * p10[FD - nF];
        return rng_meets(n, neg, lo, lo + p10[FD - nF] - 1);
    }
    if (nI == 0) return rng_meets(n, neg, 0, p10[ID + FD] - 1);
    if (M == 0) return rng_meets(n, neg, 0, p10[FD] - 1); /* "0": a fraction may follow, no more digits */
    for (int k = 0; nI + k <= ID; k++) {
        int64_t lo = M * p10[k + FD];
        if (rng_meets(n, neg, lo, lo + p10[k + FD] - 1)) return true;
        if (neg ? -lo < n->rlo : lo > n->rhi) break; /* longer integer parts only get further away */
    }
    return false;
}

static inline int64_t rng_M(const gcur *c) { return (int64_t)((uint64_t)c->b | (uint64_t)c->c << 32); }

/* the number so far is complete and in range */
static bool rng_value_ok(const gnode *n, const gcur *c) {
    if (c->st != NM_ZERO && c->st != NM_INT && c->st != NM_FRAC) return false;
    int nF = c->st == NM_FRAC ? (int)c->a : 0;
    int64_t v = rng_M(c) * p10[n->fd - nF];
    if (c->d & 1) v = -v;
    return v >= n->rlo && v <= n->rhi;
}

static inline void rng_set(gthread *t, int64_t M) {
    t->c.b = (uint32_t)(uint64_t)M;
    t->c.c = (uint32_t)((uint64_t)M >> 32);
}

static void rng_start(mctx *m, uint32_t node, uint8_t b, uint32_t parent, uint16_t depth, gset *out) {
    const gnode *n = &m->g->nodes[node];
    gthread t;
    if (b == '-') {
        if (n->rlo >= 0) return; /* no negative value: not even "-0" */
        t = mk(node, K_NUM, NM_MINUS, parent, depth);
        t.c.d = 1;
    } else if (b >= '0' && b <= '9') {
        if (!rng_feasible(n, false, b - '0', 1, -1)) return;
        t = mk(node, K_NUM, b == '0' ? NM_ZERO : NM_INT, parent, depth);
        t.c.a = 1;
        t.c.d = 1 << 8;
        rng_set(&t, b - '0');
    } else {
        return;
    }
    emit(out, &t);
}

static void rng_step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    const gnode *nd = &m->g->nodes[t->c.node];
    gthread n = *t;
    gcur *c = &n.c;
    bool neg = c->d & 1, digit = b >= '0' && b <= '9';
    int nI = (int)(c->d >> 8);
    int64_t M = rng_M(c);
    bool ok = false;
    switch (c->st) {
    case NM_MINUS:
        if (digit && rng_feasible(nd, true, b - '0', 1, -1)) {
            c->st = b == '0' ? NM_ZERO : NM_INT;
            c->a = 1;
            c->d = 1 | 1 << 8;
            rng_set(&n, b - '0');
            ok = true;
        }
        break;
    case NM_ZERO:
    case NM_INT:
        if (digit && c->st == NM_INT && nI < nd->idig && rng_feasible(nd, neg, M * 10 + (b - '0'), nI + 1, -1)) {
            c->a++;
            c->d += 1 << 8;
            rng_set(&n, M * 10 + (b - '0'));
            ok = true;
        } else if (b == '.' && nd->fd > 0 && rng_feasible(nd, neg, M, nI, 0)) {
            c->st = NM_DOT;
            c->a = 0;
            ok = true;
        }
        break;
    case NM_DOT:
    case NM_FRAC:
        if (digit && c->a < nd->fd && rng_feasible(nd, neg, M * 10 + (b - '0'), nI, (int)c->a + 1)) {
            c->st = NM_FRAC;
            c->a++;
            rng_set(&n, M * 10 + (b - '0'));
            ok = true;
        }
        break;
    }
    if (ok) emit(out, &n);
    if (rng_value_ok(nd, &t->c)) finish(m, t->parent, t->depth, -1, out, true, b);
}

/* Starts a value of node with its first byte b. */
static void dispatch(mctx *m, uint32_t node, uint8_t b, uint32_t parent, uint16_t depth, gset *out) {
    const gnode *n = &m->g->nodes[node];
    if (depth + n->mindepth > m->g->max_depth) return;
    gthread t;
    switch (n->kind) {
    case N_ANYOF:
        for (uint32_t i = 0; i < n->n_alts; i++) dispatch(m, n->alts[i], b, parent, depth, out);
        return;
    case N_OBJ:
        if (b != '{') return;
        t = mk(node, K_OBJ, O_START, parent, (uint16_t)(depth + 1));
        break;
    case N_ARR:
        if (b != '[') return;
        t = mk(node, K_ARR, A_START, parent, (uint16_t)(depth + 1));
        break;
    case N_STR:
        if (b != '"') return;
        t = mk(node, K_STR, S_IN, parent, depth);
        if (n->pat) t.c.b = 1; /* the automaton's start state */
        break;
    case N_NUM:
        if (n->ranged) {
            rng_start(m, node, b, parent, depth, out);
            return;
        }
        if (b == '-') t = mk(node, K_NUM, NM_MINUS, parent, depth);
        else if (b == '0') t = mk(node, K_NUM, NM_ZERO, parent, depth);
        else if (b >= '1' && b <= '9') {
            t = mk(node, K_NUM, NM_INT, parent, depth);
            t.c.a = 1;
        } else return;
        break;
    case N_LIT:
        lit_step(m, node, 0, n->n_lit, 0, b, parent, depth, out);
        return;
    default:
        return;
    }
    emit(out, &t);
}

static inline int hexval(uint8_t b, bool lower_only) {
    if (b >= '0' && b <= '9') return b - '0';
    if (b >= 'a' && b <= 'f') return b - 'a' + 10;
    if (!lower_only && b >= 'A' && b <= 'F') return b - 'A' + 10;
    return -1;
}

/* UTF-8: pending continuation code = remaining*8 + range of the next byte */
static const uint8_t u8_lo[5] = {0x80, 0xA0, 0x80, 0x90, 0x80};
static const uint8_t u8_hi[5] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};

static inline int utf8_lead(uint8_t b) { /* returns the pending code, or 0 if b cannot start a character */
    if (b >= 0xC2 && b <= 0xDF) return 1 << 3;
    if (b == 0xE0) return 2 << 3 | 1;
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return 2 << 3;
    if (b == 0xED) return 2 << 3 | 2;
    if (b == 0xF0) return 3 << 3 | 3;
    if (b >= 0xF1 && b <= 0xF3) return 3 << 3;
    if (b == 0xF4) return 3 << 3 | 4;
    return 0;
}

/* ---- strings with a pattern: the thread carries the automaton's state set
 * (b | c << 32) and, mid-character, the code point so far (d). Escapes are
 * canonical (as for extra keys) so every character has one spelling; each
 * byte is refused as soon as no completion of the character it starts can
 * move the automaton, so a live thread can always be completed. */

static inline uint64_t pat_succ(const gpat *P, uint64_t S) {
    uint64_t u = 0;
    for (; S; S &= S - 1) u |= P->succ[__builtin_ctzll(S)];
    return u;
}

static inline bool pat_accepting(const gpat *P, uint64_t S) { return (S & P->last) || ((S & 1) && P->nullable); }

/* R (states after the character being written, the count-th) is not empty
 * and some state of it can still reach acceptance within maxLength. */
static bool pat_room(const gpat *P, uint64_t R, uint32_t count, uint32_t max) {
    uint32_t d = 255;
    for (; R; R &= R - 1) {
        uint32_t x = P->dist[__builtin_ctzll(R)];
        if (x < d) d = x;
    }
    return d != 255 && count + d <= max;
}
static inline __attribute__((always_inline)) bool pat_fits(const gpat *P, uint64_t R, uint32_t count, uint32_t max) {
    return R && (max == G_NO_LIMIT || pat_room(P, R, count, max));
}

/* states reached by some code point of [lo, hi] that \u00XX may spell (no short escape) */
static uint64_t pat_u_reach(const gpat *P, uint64_t S, uint32_t lo, uint32_t hi) {
    static const grange spelled[] = {{0, 7}, {11, 11}, {14, 31}};
    uint64_t R = 0;
    for (int i = 0; i < 3; i++) {
        uint32_t a = lo > spelled[i].lo ? lo : spelled[i].lo, z = hi < spelled[i].hi ? hi : spelled[i].hi;
        if (a <= z) R |= g_pat_reach(P, S, a, z);
    }
    return R;
}

/* c->a counts the characters written (for maxLength). */
static void pat_step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    gthread n = *t;
    gcur *c = &n.c;
    const gnode *nd = &m->g->nodes[c->node];
    const gpat *P = nd->pat;
    const uint32_t max = nd->max, cnt = c->a + 1; /* cnt: the character this byte belongs to */
    uint64_t S = (uint64_t)c->b | (uint64_t)c->c << 32;
    switch (c->st) {
    case S_IN:
        if (c->ws) {
            int kind = c->ws & 7, rem = c->ws >> 3;
            if (b < u8_lo[kind] || b > u8_hi[kind]) return;
            c->d = c->d << 6 | (b & 0x3Fu);
            if (--rem == 0) {
                S = c->d < 128 ? pat_succ(P, S) & P->ascii[c->d] : g_pat_reach(P, S, c->d, c->d);
                if (!pat_fits(P, S, cnt, max)) return;
                c->ws = 0;
                c->a = cnt;
            } else {
                uint32_t lo = c->d << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
                if (!pat_fits(P, g_pat_reach(P, S, lo, hi), cnt, max)) return;
                c->ws = (uint8_t)(rem << 3);
            }
            break;
        }
        if (b == '"') {
            if (pat_accepting(P, S)) finish(m, t->parent, t->depth, -1, out, false, 0);
            return;
        }
        if (b == '\\') {
            uint64_t u = pat_succ(P, S);
            u &= P->ascii['"'] | P->ascii['\\'] | P->ascii['\b'] | P->ascii['\f'] | P->ascii['\n'] | P->ascii['\r'] |
                 P->ascii['\t'];
            if (!pat_fits(P, u, cnt, max) && !pat_fits(P, pat_u_reach(P, S, 0, 0x1F), cnt, max)) return;
            c->st = S_ESC;
            break;
        }
        if (b < 0x20) return;
        if (b < 0x80) {
            S = pat_succ(P, S) & P->ascii[b];
            if (!pat_fits(P, S, cnt, max)) return;
            c->a = cnt;
            break;
        } else {
            int code = utf8_lead(b);
            if (!code || !pat_fits(P, pat_succ(P, S) & P->lead[b], cnt, max)) return;
            int rem = code >> 3;
            c->d = b & (rem == 1 ? 0x1Fu : rem == 2 ? 0x0Fu : 0x07u);
            c->ws = (uint8_t)code;
        }
        break;
    case S_ESC: {
        uint32_t cp;
        switch (b) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!pat_fits(P, pat_u_reach(P, S, 0, 0x1F), cnt, max)) return;
            c->st = S_U;
            c->aux = 0;
            c->d = 0;
            goto store;
        default: return;
        }
        S = pat_succ(P, S) & P->ascii[cp];
        if (!pat_fits(P, S, cnt, max)) return;
        c->st = S_IN;
        c->a = cnt;
        break;
    }
    case S_U: {
        int h = hexval(b, true);
        if (h < 0) return;
        if (c->aux < 2 && h != 0) return;
        if (c->aux == 2 && (h > 1 || !pat_fits(P, pat_u_reach(P, S, (uint32_t)h * 16, (uint32_t)h * 16 + 15), cnt, max)))
            return;
        c->d = c->d * 16 + (uint32_t)h;
        if (++c->aux == 4) {
            if (c->d == 8 || c->d == 9 || c->d == 0xa || c->d == 0xc || c->d == 0xd) return;
            S = pat_succ(P, S) & P->ascii[c->d];
            if (!pat_fits(P, S, cnt, max)) return;
            c->st = S_IN;
            c->a = cnt;
        }
        break;
    }
    default:
        return;
    }
    c->b = (uint32_t)S;
    c->c = (uint32_t)(S >> 32);
store:
    emit(out, &n);
}

/* Strings (K_STR) and additional-property keys (K_KEY: canonical escapes
 * only, no length limits, and never equal to a declared name: a, b = range of
 * the object's names still equal so far, c = bytes read). */
static void str_step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    gthread n = *t;
    gcur *c = &n.c;
    bool key = c->k == K_KEY;
    const gnode *nd = &m->g->nodes[c->node];
    if (!key && nd->pat) {
        pat_step(m, t, b, out);
        return;
    }
    uint32_t max = key ? G_NO_LIMIT : nd->max;
    switch (c->st) {
    case S_IN:
        if (c->ws) {
            int kind = c->ws & 7, rem = c->ws >> 3;
            if (b < u8_lo[kind] || b > u8_hi[kind]) return;
            c->ws = (uint8_t)((rem - 1) << 3);
            break;
        }
        if (b == '"') {
            if (key) {
                uint32_t lo = c->a, hi = c->b;
                if (lo < hi && lit_narrow(nd, &lo, &hi, c->c, b) && nd->lit_len[lo] == c->c + 1) return;
            } else if (c->a < nd->min) {
                return;
            }
            finish(m, t->parent, t->depth, -1, out, false, 0);
            return;
        }
        if (b == '\\') {
            if (!key) {
                if (c->a >= max) return;
                c->a++;
            }
            c->st = S_ESC;
            break;
        }
        if (b < 0x20) return;
        if (b >= 0x80) {
            int code = utf8_lead(b);
            if (!code) return;
            c->ws = (uint8_t)code;
        }
        if (!key) {
            if (c->a >= max) return;
            c->a++;
        }
        break;
    case S_ESC:
        switch (b) {
        case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
            c->st = S_IN;
            break;
        case '/':
            if (key) return;
            c->st = S_IN;
            break;
        case 'u':
            c->st = S_U;
            c->aux = 0;
            c->d = 0;
            break;
        default:
            return;
        }
        break;
    case S_U: {
        int h = hexval(b, key);
        if (h < 0) return;
        if (key) { /* canonical: \u00XX only for control characters without a short escape */
            if (c->aux < 2 && h != 0) return;
            if (c->aux == 2 && h > 1) return;
            if (c->aux == 3) {
                uint32_t v = c->d * 16 + (uint32_t)h;
                if (v == 8 || v == 9 || v == 0xa || v == 0xc || v == 0xd) return;
            }
        }
        c->d = c->d * 16 + (uint32_t)h;
        c->aux++;
        if (c->aux == 2 && (c->d & 0xFC) == 0xDC) return; /* a lone low surrogate */
        if (c->aux == 4) c->st = (c->d & 0xFC00) == 0xD800 ? S_HI_BS : S_IN;
        break;
    }
    case S_HI_BS:
        if (b != '\\') return;
        c->st = S_HI_U;
        break;
    case S_HI_U:
        if (b != 'u') return;
        c->st = S_LO;
        c->aux = 0;
        break;
    case S_LO: {
        int h = hexval(b, false);
        if (h < 0) return;
        if (c->aux == 0 && h != 0xD) return;
        if (c->aux == 1 && h < 0xC) return;
        if (++c->aux == 4) c->st = S_IN;
        break;
    }
    default:
        return;
    }
    if (key) {
        if (c->a < c->b) {
            uint32_t lo = c->a, hi = c->b;
            if (lit_narrow(nd, &lo, &hi, c->c, b)) {
                c->a = lo;
                c->b = hi;
            } else {
                c->a = c->b = 0;
            }
        }
        c->c++;
    }
    emit(out, &n);
}

static void num_step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    if (m->g->nodes[t->c.node].ranged) {
        rng_step(m, t, b, out);
        return;
    }
    gthread n = *t;
    gcur *c = &n.c;
    bool integer = m->g->nodes[c->node].integer;
    bool digit = b >= '0' && b <= '9';
    bool complete = false, ok = false;
    switch (c->st) {
    case NM_MINUS:
        if (b == '0') c->st = NM_ZERO, ok = true;
        else if (digit) c->st = NM_INT, c->a = 1, ok = true;
        break;
    case NM_ZERO:
    case NM_INT:
        complete = true;
        if (digit && c->st == NM_INT && c->a < G_MAX_DIGITS) c->a++, ok = true;
        else if (!integer && b == '.') c->st = NM_DOT, ok = true;
        else if (!integer && (b == 'e' || b == 'E')) c->st = NM_E, ok = true;
        break;
    case NM_DOT:
        if (digit) c->st = NM_FRAC, c->a = 1, ok = true;
        break;
    case NM_FRAC:
        complete = true;
        if (digit && c->a < G_MAX_DIGITS) c->a++, ok = true;
        else if (b == 'e' || b == 'E') c->st = NM_E, ok = true;
        break;
    case NM_E:
        if (b == '+' || b == '-') c->st = NM_ESIGN, ok = true;
        else if (digit) c->st = NM_EXP, c->a = 1, ok = true;
        break;
    case NM_ESIGN:
        if (digit) c->st = NM_EXP, c->a = 1, ok = true;
        break;
    case NM_EXP:
        complete = true;
        if (digit && c->a < G_MAX_EXP_DIGITS) c->a++, ok = true;
        break;
    }
    if (ok) emit(out, &n);
    if (complete) finish(m, t->parent, t->depth, -1, out, true, b);
}

static inline uint32_t obj_level(const qai_grammar *g, const gnode *o, uint16_t depth) {
    int32_t room = g->max_depth - depth;
    uint32_t l = 0;
    while (l < o->n_levels && o->levels[l] <= room) l++;
    return l;
}

static inline bool additional_ok(const qai_grammar *g, const gnode *o, uint32_t i, uint16_t depth) {
    return o->additional >= 0 && o->req_after[i] == o->n_props &&
           depth + g->nodes[o->additional].mindepth <= g->max_depth;
}

static inline uint32_t keyset(const qai_grammar *g, const gnode *o, uint32_t i, uint16_t depth) {
    return o->keysets[i * (o->n_levels + 1) + obj_level(g, o, depth)];
}

static void start_key(mctx *m, const gthread *t, uint32_t i, gset *out) {
    const gnode *o = &m->g->nodes[t->c.node];
    gcur fc = t->c;
    fc.st = O_KEYDONE;
    fc.ws = 0;
    fc.a = i;
    uint32_t ks = keyset(m->g, o, i, t->depth);
    bool add = additional_ok(m->g, o, i, t->depth);
    if (ks == NONE && !add) return;
    uint32_t f = push(m->s, &fc, t->parent);
    if (ks != NONE) {
        gthread k = mk(ks, K_LIT, 0, f, t->depth);
        k.c.a = 0;
        k.c.b = m->g->nodes[ks].n_lit;
        emit(out, &k);
    }
    if (add) {
        gthread k = mk(o->all_names, K_KEY, S_IN, f, t->depth);
        k.c.b = m->g->nodes[o->all_names].n_lit;
        emit(out, &k);
    }
}

static void obj_step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    const gnode *o = &m->g->nodes[t->c.node];
    gthread n = *t;
    if (is_ws(b)) {
        if (!ws_step(m->g, &n.c.ws, b)) return;
        emit(out, &n);
        return;
    }
    n.c.ws = 0;
    switch (t->c.st) {
    case O_START:
    case O_AFTERVAL:
        if (b == '}') {
            uint32_t i = t->c.st == O_START ? 0 : t->c.a;
            if (o->req_after[i] == o->n_props) finish(m, t->parent, (uint16_t)(t->depth - 1), -1, out, false, 0);
        } else if (b == '"' && t->c.st == O_START) {
            start_key(m, t, 0, out);
        } else if (b == ',' && t->c.st == O_AFTERVAL) {
            if (keyset(m->g, o, t->c.a, t->depth) != NONE || additional_ok(m->g, o, t->c.a, t->depth)) {
                n.c.st = O_COMMA;
                emit(out, &n);
            }
        }
        return;
    case O_KEYDONE:
        if (b == ':') {
            n.c.st = O_COLON;
            emit(out, &n);
        }
        return;
    case O_COLON: {
        gcur fc = n.c;
        fc.st = O_AFTERVAL;
        uint32_t f = push(m->s, &fc, t->parent);
        dispatch(m, t->c.b, b, f, t->depth, out);
        return;
    }
    case O_COMMA:
        if (b == '"') start_key(m, t, t->c.a, out);
        return;
    }
}

static void arr_step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    const gnode *r = &m->g->nodes[t->c.node];
    gthread n = *t;
    if (is_ws(b)) {
        if (!ws_step(m->g, &n.c.ws, b)) return;
        emit(out, &n);
        return;
    }
    n.c.ws = 0;
    if (t->c.st == A_AFTER) {
        if (b == ',' && t->c.a < r->max) {
            n.c.st = A_COMMA;
            emit(out, &n);
        } else if (b == ']' && t->c.a >= r->min) {
            finish(m, t->parent, (uint16_t)(t->depth - 1), -1, out, false, 0);
        }
        return;
    }
    if (t->c.st == A_START && b == ']') {
        if (r->min == 0) finish(m, t->parent, (uint16_t)(t->depth - 1), -1, out, false, 0);
        return;
    }
    uint32_t count = t->c.st == A_START ? 0 : t->c.a;
    if (count >= r->max) return;
    n.c.st = A_AFTER;
    n.c.a = count + 1;
    uint32_t f = push(m->s, &n.c, t->parent);
    dispatch(m, r->items, b, f, t->depth, out);
}

static void doc_step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    gthread n = *t;
    if (t->c.st == D_FREE) {
        emit(out, &n);
        return;
    }
    if (is_ws(b)) {
        if (!ws_step(m->g, &n.c.ws, b)) return;
        emit(out, &n);
        return;
    }
    if (t->c.st != D_BEFORE) return;
    if (m->g->free_text && b != m->g->free_trigger) {
        n.c.st = D_FREE;
        n.c.ws = 0;
        emit(out, &n);
        return;
    }
    n.c.st = D_AFTER;
    n.c.ws = 0;
    uint32_t f = push(m->s, &n.c, NONE);
    dispatch(m, m->g->root, b, f, 0, out);
}

static void step(mctx *m, const gthread *t, uint8_t b, gset *out) {
    switch (t->c.k) {
    case K_DOC: doc_step(m, t, b, out); break;
    case K_OBJ: obj_step(m, t, b, out); break;
    case K_ARR: arr_step(m, t, b, out); break;
    case K_STR:
    case K_KEY: str_step(m, t, b, out); break;
    case K_NUM: num_step(m, t, b, out); break;
    case K_LIT: lit_step(m, t->c.node, t->c.a, t->c.b, t->c.c, b, t->parent, t->depth, out); break;
    }
}

static void step_set(mctx *m, const gset *in, uint8_t b, gset *out) {
    out->n = 0;
    /* a thread pushes at most one frame per byte (a container resuming
     * after a number may push none, a new key or value exactly one) */
    if (!ensure_frames(m->s, (uint32_t)in->n + 1)) {
        m->s->oom = true;
        return;
    }
    for (int i = 0; i < in->n; i++) step(m, &in->t[i], b, out);
}

static bool thread_complete(const qai_grammar_state *s, const gthread *t) {
    const gcur *c = &t->c;
    if (c->k == K_DOC) return c->st == D_AFTER || c->st == D_FREE || (c->st == D_BEFORE && s->g->free_text);
    bool can_end = false;
    if (c->k == K_NUM && s->g->nodes[c->node].ranged) can_end = rng_value_ok(&s->g->nodes[c->node], c);
    else if (c->k == K_NUM) can_end = c->st == NM_ZERO || c->st == NM_INT || c->st == NM_FRAC || c->st == NM_EXP;
    else if (c->k == K_LIT) can_end = c->a < c->b && s->g->nodes[c->node].lit_len[c->a] == c->c;
    if (!can_end || t->parent == NONE) return false;
    const gcur *p = &s->frames[t->parent].c;
    return p->k == K_DOC && p->st == D_AFTER;
}

static bool set_complete(const qai_grammar_state *s, const gset *set) {
    for (int i = 0; i < set->n; i++)
        if (thread_complete(s, &set->t[i])) return true;
    return false;
}

/* ---- states ---- */

qai_status qai_grammar_state_new(const qai_grammar *g, const qai_grammar_vocab *v, qai_grammar_state **out) {
    if (!g || !out) return qai_error(QAI_ERR_ARG, "qai_grammar_state_new: grammar and out must not be NULL");
    *out = NULL;
    qai_grammar_state *s = qai_calloc(1, sizeof *s);
    if (!s) return QAI_ERR_NOMEM;
    s->g = g;
    s->v = v;
    s->n_sets = (v ? v->max_len : 0) + 2;
    s->sets = qai_malloc((size_t)s->n_sets * sizeof(gset));
    if (v) s->allowed = qai_calloc((size_t)v->n_vocab + 1, 1);
    if (!s->sets || (v && !s->allowed) || !ensure_frames(s, 64 + s->n_sets * 4)) {
        qai_grammar_state_free(s);
        return QAI_ERR_NOMEM;
    }
    qai_grammar_state_reset(s);
    *out = s;
    return QAI_OK;
}

void qai_grammar_state_free(qai_grammar_state *s) {
    if (!s) return;
    qai_free(s->frames);
    qai_free(s->frames2);
    qai_free(s->remap);
    qai_free(s->sets);
    qai_free(s->allowed);
    qai_free(s);
}

void qai_grammar_state_reset(qai_grammar_state *s) {
    if (!s) return;
    s->n_frames = s->n_committed = 0;
    s->cur.n = 1;
    s->cur.t[0] = mk(s->g->root, K_DOC, D_BEFORE, NONE, 0);
    s->ended = false;
    s->oom = false;
    s->n_tokens = 0;
}

static uint32_t copy_chain(qai_grammar_state *s, uint32_t idx, uint32_t *n2) {
    if (idx == NONE) return NONE;
    if (s->remap[idx] != NONE) return s->remap[idx];
    uint32_t p = copy_chain(s, s->frames[idx].parent, n2);
    uint32_t j = (*n2)++;
    s->frames2[j].c = s->frames[idx].c;
    s->frames2[j].parent = p;
    s->remap[idx] = j;
    return j;
}

/* Makes set the committed state, keeping only the frames it reaches. */
static qai_status commit(qai_grammar_state *s, const gset *set) {
    uint32_t nf = s->n_frames;
    if (nf > s->cap_remap) {
        uint32_t *r = qai_realloc(s->remap, (size_t)nf * sizeof(uint32_t));
        if (!r) return QAI_ERR_NOMEM;
        s->remap = r;
        s->cap_remap = nf;
    }
    if (nf > s->cap_frames2) {
        gframe *f = qai_realloc(s->frames2, (size_t)nf * sizeof(gframe));
        if (!f) return QAI_ERR_NOMEM;
        s->frames2 = f;
        s->cap_frames2 = nf;
    }
    for (uint32_t i = 0; i < nf; i++) s->remap[i] = NONE;
    uint32_t n2 = 0;
    gset c = *set;
    for (int i = 0; i < c.n; i++) c.t[i].parent = copy_chain(s, c.t[i].parent, &n2);
    gframe *tf = s->frames;
    uint32_t tc = s->cap_frames;
    s->frames = s->frames2;
    s->cap_frames = s->cap_frames2;
    s->frames2 = tf;
    s->cap_frames2 = tc;
    s->n_frames = s->n_committed = n2;
    s->cur = c;
    return QAI_OK;
}

/* Runs n bytes from the committed state; on success *res holds the threads
 * (frames above n_committed are theirs). On failure *bad is the offset. */
static bool run_bytes(qai_grammar_state *s, const uint8_t *p, size_t n, gset *res, size_t *bad) {
    mctx m = {s->g, s};
    gset *a = &s->sets[0], *b = &s->sets[1];
    *a = s->cur;
    for (size_t i = 0; i < n; i++) {
        step_set(&m, a, p[i], b);
        if (!b->n) {
            *bad = i;
            return false;
        }
        gset *t = a;
        a = b;
        b = t;
    }
    *res = *a;
    return true;
}

static void describe_byte(uint8_t b, char *buf, size_t cap) {
    if (b >= 0x20 && b < 0x7f) snprintf(buf, cap, "'%c'", b);
    else snprintf(buf, cap, "0x%02x", b);
}

qai_status qai_grammar_accept_bytes(qai_grammar_state *s, const char *bytes, size_t n) {
    if (!s || (!bytes && n)) return qai_error(QAI_ERR_ARG, "qai_grammar_accept_bytes: state and bytes must not be NULL");
    if (s->ended) return qai_error(QAI_ERR_ARG, "grammar: the generation already ended");
    gset res;
    size_t bad = 0;
    s->oom = false;
    if (!run_bytes(s, (const uint8_t *)bytes, n, &res, &bad)) {
        s->n_frames = s->n_committed;
        if (s->oom) return qai_error(QAI_ERR_NOMEM, "grammar: out of memory");
        char d[16];
        describe_byte((uint8_t)bytes[bad], d, sizeof d);
        return qai_error(QAI_ERR_ARG, "grammar: byte %s at offset %zu cannot follow what came before", d, bad);
    }
    qai_status st = commit(s, &res);
    if (st) {
        s->n_frames = s->n_committed;
        return qai_error(QAI_ERR_NOMEM, "grammar: out of memory");
    }
    return QAI_OK;
}

qai_status qai_grammar_accept(qai_grammar_state *s, int32_t token) {
    if (!s || !s->v) return qai_error(QAI_ERR_ARG, "qai_grammar_accept: the state has no vocabulary");
    const qai_grammar_vocab *v = s->v;
    if (token < 0 || token >= v->n_vocab)
        return qai_error(QAI_ERR_ARG, "grammar: token %d is outside the vocabulary (0..%d)", token, v->n_vocab - 1);
    if (s->ended) return qai_error(QAI_ERR_ARG, "grammar: token %d after the end of generation", token);
    if (v->is_eog[token]) {
        if (!qai_grammar_is_complete(s))
            return qai_error(QAI_ERR_ARG, "grammar: end-of-generation token %d before the document is complete", token);
        s->ended = true;
        s->n_tokens++;
        return QAI_OK;
    }
    if (!v->in_trie[token])
        return qai_error(QAI_ERR_ARG, "grammar: token %d is never allowed (control, unused or empty piece)", token);
    const uint8_t *p = v->piece + v->piece_off[token];
    size_t n = v->piece_off[token + 1] - v->piece_off[token];
    qai_status st = qai_grammar_accept_bytes(s, (const char *)p, n);
    if (st) return qai_error_wrap(st, "grammar: token %d is not allowed here", token);
    s->n_tokens++;
    return QAI_OK;
}

qai_status qai_grammar_state_sync(qai_grammar_state *s, const int32_t *tokens, int n) {
    if (!s || (!tokens && n > 0)) return qai_error(QAI_ERR_ARG, "qai_grammar_state_sync: state and tokens must not be NULL");
    if (n < s->n_tokens) qai_grammar_state_reset(s);
    for (int i = s->n_tokens; i < n; i++) {
        qai_status st = qai_grammar_accept(s, tokens[i]);
        if (st) return st;
    }
    return QAI_OK;
}

bool qai_grammar_is_complete(const qai_grammar_state *s) {
    if (!s) return false;
    return s->ended || set_complete(s, &s->cur);
}

bool qai_grammar_state_is_tool_call(const qai_grammar_state *s) {
    if (!s || !s->cur.n) return false;
    const gcur *c = &s->cur.t[0].c;
    return !(c->k == K_DOC && (c->st == D_BEFORE || c->st == D_FREE));
}

int qai_grammar_free_text(const qai_grammar_state *s, const char *text, size_t n) {
    if (!s || !s->g->free_text) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_ws((uint8_t)text[i])) return (uint8_t)text[i] != s->g->free_trigger;
    return -1;
}

/* ---- token masks ---- */

static inline void mark(qai_grammar_state *s, uint32_t lo, uint32_t hi) {
    const int32_t *ord = s->v->tok_order;
    for (uint32_t i = lo; i < hi; i++) s->allowed[ord[i]] = 1;
    s->count += (int)(hi - lo);
}

/* Whole subtree below ch allowed without looking: free text, or a string
 * at a character boundary whose length limit cannot be reached. */
static inline bool bulk_ok(const qai_grammar *g, const gset *set, const tnode *ch) {
    for (int i = 0; i < set->n; i++) {
        const gcur *c = &set->t[i].c;
        if (c->k == K_DOC && c->st == D_FREE) return true;
        if (c->k == K_STR && c->st == S_IN && !c->ws && ch->plain) {
            const gnode *n = &g->nodes[c->node];
            /* a pattern in a state that matches any text from here on ("x.*") */
            if (n->pat) {
                uint64_t U = ((uint64_t)c->b | (uint64_t)c->c << 32) & n->pat->universal;
                if (U && (n->max == G_NO_LIMIT ||
                          (uint64_t)c->a + ch->max_chars + n->pat->dist[__builtin_ctzll(U)] <= n->max))
                    return true;
                continue;
            }
            if (n->max == G_NO_LIMIT || (uint64_t)c->a + ch->max_chars <= n->max) return true;
        }
        /* an extra key that already differs from every declared name */
        if (c->k == K_KEY && c->st == S_IN && !c->ws && ch->plain && c->a == c->b) return true;
    }
    return false;
}

static void walk(mctx *m, uint32_t ni, uint32_t level) {
    qai_grammar_state *s = m->s;
    const tnode *nodes = s->v->nodes;
    const gset *cur = &s->sets[level];
    gset *nx = &s->sets[level + 1];
    const tnode *n = &nodes[ni];
    for (uint32_t k = 0; k < n->n_child; k++) {
        uint32_t ci = n->child + k;
        const tnode *ch = &nodes[ci];
        uint32_t mk_frames = s->n_frames;
        step_set(m, cur, ch->byte, nx);
        if (nx->n) {
            if (ch->tok_lo < ch->tok_mid) mark(s, ch->tok_lo, ch->tok_mid);
            if (ch->tok_mid < ch->tok_hi) {
                if (bulk_ok(m->g, nx, ch)) mark(s, ch->tok_mid, ch->tok_hi);
                else walk(m, ci, level + 1);
            }
        }
        s->n_frames = mk_frames;
    }
}

static int compute_allowed(qai_grammar_state *s) {
    const qai_grammar_vocab *v = s->v;
    memset(s->allowed, 0, (size_t)v->n_vocab);
    s->count = 0;
    if (s->ended) return 0;
    mctx m = {s->g, s};
    s->sets[0] = s->cur;
    s->oom = false;
    if (v->n_nodes) walk(&m, 0, 0);
    s->n_frames = s->n_committed;
    if (set_complete(s, &s->cur))
        for (uint32_t i = 0; i < v->n_eog; i++)
            if (!s->allowed[v->eog[i]]) {
                s->allowed[v->eog[i]] = 1;
                s->count++;
            }
    return s->count;
}

int qai_grammar_mask(qai_grammar_state *s, float *logits) {
    if (!s || !s->v || !logits) return 0;
    int n = compute_allowed(s);
    const int32_t V = s->v->n_vocab;
    for (int32_t t = 0; t < V; t++)
        if (!s->allowed[t]) logits[t] = -INFINITY;
    return n;
}

int qai_grammar_allowed(qai_grammar_state *s, uint8_t *allowed) {
    if (!s || !s->v || !allowed) return 0;
    int n = compute_allowed(s);
    const int32_t V = s->v->n_vocab;
    for (int32_t t = 0; t < V; t++) allowed[t] &= s->allowed[t];
    return n;
}

void qai_grammar_mask_hook(void *user, const int32_t *generated, int n_generated, uint8_t *allowed, int n_vocab) {
    qai_grammar_state *s = user;
    if (!s || !s->v || !allowed) return;
    int V = n_vocab < s->v->n_vocab ? n_vocab : s->v->n_vocab;
    if (qai_grammar_state_sync(s, generated, n_generated) == QAI_OK && compute_allowed(s) > 0) {
        for (int t = 0; t < V; t++) allowed[t] &= s->allowed[t];
        for (int t = V; t < n_vocab; t++) allowed[t] = 0;
        return;
    }
    /* cannot continue: let the sequence end rather than sample from nothing */
    for (int t = 0; t < n_vocab; t++) allowed[t] = t < V && s->v->is_eog[t];
}
