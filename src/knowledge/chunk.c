/*
 * chunk.c — structure-aware chunking of an extracted document.
 *
 * The text is cut into regions at every section start (the text between two
 * consecutive headings, owned by the innermost section; the text before the
 * first heading is a region of its own with path ""). A chunk never spans two
 * regions, except that adjacent regions with the same parent section and the
 * same depth (siblings, e.g. a man page's NAME and SYNOPSIS) merge while the
 * merged span counts at most half the budget; such a merged chunk carries the
 * parent's path. A region that holds only its heading line (a section that
 * opens straight into a subsection) joins the subsection's first region, so
 * no chunk is a bare heading.
 *
 * A region over the budget is split into pieces: paragraphs (blank-line
 * separated), a paragraph over the budget into sentences/lines (after . ! ?
 * and optional closing quotes/brackets followed by whitespace, or at a line
 * end), a sentence over the budget into words (at whitespace), and a single
 * word over the budget into runs of whole UTF-8 characters. Pieces are packed
 * greedily; each chunk after the first of a region starts with an overlap of
 * whole words from the end of the previous chunk counting at most
 * overlap_tokens (dropped when it would not leave room for new text). Every
 * chunk is checked with the real token count, so no chunk exceeds max_tokens,
 * except a single UTF-8 character that alone counts more than max_tokens
 * (only possible with an odd tokenizer and a tiny budget), which becomes a
 * chunk of its own.
 *
 * Chunk spans are trimmed of surrounding whitespace; whitespace-only text
 * gives no chunk. Spans start and end on UTF-8 character boundaries because
 * every cut is at ASCII whitespace/punctuation or between whole characters.
 */
#include "ingest_internal.h"

#include <string.h>

typedef struct {
    const char *t;
    const qai_chunk_opts *o;
} cctx;

static int ntok(const cctx *c, size_t a, size_t b) {
    if (b <= a) return 0;
    if (c->o->count) return c->o->count(c->o->count_ctx, c->t + a, b - a);
    return (int)((b - a + 3) / 4);
}

static bool ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }

typedef struct {
    size_t s, e;
    int tok;
} piece;

typedef struct {
    piece *p;
    int n, cap;
    bool oom;
} pieces;

static void pc_push(pieces *ps, size_t s, size_t e, int tok) {
    if (ps->oom || e <= s) return;
    if (ps->n == ps->cap) {
        int nc = ps->cap ? ps->cap * 2 : 64;
        piece *np = qai_realloc(ps->p, (size_t)nc * sizeof *np);
        if (!np) {
            ps->oom = true;
            return;
        }
        ps->p = np;
        ps->cap = nc;
    }
    ps->p[ps->n++] = (piece){s, e, tok};
}

/* end of the unit that starts at a (level 0 paragraph, 1 sentence/line, 2 word); the unit includes
 * the whitespace after it */
static size_t unit_end(const char *t, size_t a, size_t b, int level) {
    size_t i = a;
    if (level == 0) {
        while (i < b) {
            if (t[i] == '\n') {
                size_t j = i + 1;
                while (j < b && (t[j] == ' ' || t[j] == '\t')) j++;
                if (j < b && t[j] == '\n') { /* blank line */
                    while (j < b && ws(t[j])) j++;
                    return j;
                }
            }
            i++;
        }
        return b;
    }
    if (level == 1) {
        while (i < b) {
            char ch = t[i];
            if (ch == '\n') {
                i++;
                while (i < b && ws(t[i])) i++;
                return i;
            }
            if (ch == '.' || ch == '!' || ch == '?') {
                size_t j = i + 1;
                while (j < b && (t[j] == '"' || t[j] == '\'' || t[j] == ')' || t[j] == ']')) j++;
                if (j < b && ws(t[j])) {
                    while (j < b && ws(t[j])) j++;
                    return j;
                }
            }
            i++;
        }
        return b;
    }
    while (i < b && !ws(t[i])) i++;
    while (i < b && ws(t[i])) i++;
    return i;
}

/* the first character boundary at or after x (at most e) */
static size_t snap(const char *t, size_t x, size_t e) {
    if (x >= e) return e;
    while (x < e && ((unsigned char)t[x] & 0xC0) == 0x80) x++;
    return x;
}

/* splits [a,b) into pieces that each fit the budget */
static void split(const cctx *c, size_t a, size_t b, int level, int budget, pieces *ps) {
    while (a < b && !ps->oom) {
        size_t e = level <= 2 ? unit_end(c->t, a, b, level) : b;
        if (e <= a) e = b;
        int tk = level < 3 ? ntok(c, a, e) : 0;
        if (tk <= budget || level >= 3) {
            if (level < 3) {
                pc_push(ps, a, e, tk);
                a = e;
                continue;
            }
            /* characters: a long prefix of whole characters that fits, at least one character; found by
             * galloping then bisecting over character boundaries, so a megabyte-long "word" (a base64
             * blob) costs O(log n) token counts per piece, not O(n) */
            size_t lo = snap(c->t, a + 1, e), bad = e + 1, step = 16;
            while (lo < e) {
                size_t cand = snap(c->t, lo + step, e);
                if (cand >= bad) break;
                if (ntok(c, a, cand) <= budget) {
                    lo = cand;
                    step *= 2;
                } else {
                    bad = cand;
                    break;
                }
            }
            while (bad <= e) {
                size_t mid = snap(c->t, lo + (bad - lo) / 2, e);
                if (mid <= lo || mid >= bad) break;
                if (ntok(c, a, mid) <= budget) lo = mid;
                else bad = mid;
            }
            pc_push(ps, a, lo, ntok(c, a, lo));
            a = lo;
            continue;
        }
        split(c, a, e, level + 1, budget, ps);
        a = e;
    }
}

typedef struct {
    qai_chunk *c;
    int n, cap;
    bool oom;
} chunks;

static void ch_push(chunks *cs, const char *t, size_t s, size_t e, const char *path) {
    while (s < e && ws(t[s])) s++;
    while (e > s && ws(t[e - 1])) e--;
    if (e <= s || cs->oom) return;
    if (cs->n == cs->cap) {
        int nc = cs->cap ? cs->cap * 2 : 32;
        qai_chunk *nn = qai_realloc(cs->c, (size_t)nc * sizeof *nn);
        if (!nn) {
            cs->oom = true;
            return;
        }
        cs->c = nn;
        cs->cap = nc;
    }
    char *p = qai_strdup(path);
    if (!p) {
        cs->oom = true;
        return;
    }
    cs->c[cs->n++] = (qai_chunk){s, e, p};
}

/* trimmed token count */
static int ntok_trim(const cctx *c, size_t a, size_t b) {
    while (a < b && ws(c->t[a])) a++;
    while (b > a && ws(c->t[b - 1])) b--;
    return ntok(c, a, b);
}

/* the earliest word start w in (lo, x] with tokens(w, x) <= ov */
static size_t overlap_start(const cctx *c, size_t lo, size_t x, int ov) {
    if (ov <= 0) return x;
    size_t best = x, i = x;
    while (i > lo) {
        /* previous word start */
        size_t j = i;
        while (j > lo && ws(c->t[j - 1])) j--;
        while (j > lo && !ws(c->t[j - 1])) j--;
        if (j <= lo) break; /* never the whole previous chunk */
        if (ntok_trim(c, j, x) > ov) break;
        best = j;
        i = j;
    }
    return best;
}

static void pack_region(const cctx *c, size_t a, size_t b, const char *path, chunks *cs, pieces *ps) {
    int budget = c->o->max_tokens;
    ps->n = 0;
    split(c, a, b, 0, budget, ps);
    if (ps->oom) return;
    int i = 0;
    size_t prev_s = 0;
    bool have_prev = false;
    while (i < ps->n) {
        size_t start = ps->p[i].s;
        if (have_prev) start = overlap_start(c, prev_s, ps->p[i].s, c->o->overlap_tokens);
        for (int attempt = 0; attempt < 2; attempt++) {
            int sum = start < ps->p[i].s ? ntok(c, start, ps->p[i].s) : 0;
            int j = i;
            while (j < ps->n && sum + ps->p[j].tok <= budget) sum += ps->p[j].tok, j++;
            if (j == i && start < ps->p[i].s) { /* the overlap leaves no room */
                start = ps->p[i].s;
                continue;
            }
            if (j == i) j = i + 1; /* one piece over budget: only a single huge character */
            /* the real count of the joined span can differ from the sum of its pieces */
            while (j > i + 1 && ntok_trim(c, start, ps->p[j - 1].e) > budget) j--;
            if (ntok_trim(c, start, ps->p[j - 1].e) > budget && start < ps->p[i].s && attempt == 0) {
                start = ps->p[i].s;
                continue;
            }
            ch_push(cs, c->t, start, ps->p[j - 1].e, path);
            prev_s = start;
            have_prev = true;
            i = j;
            break;
        }
    }
}

qai_chunk_opts qai_chunk_default_opts(void) {
    qai_chunk_opts o = {.max_tokens = 256, .overlap_tokens = 32, .count = NULL, .count_ctx = NULL};
    return o;
}

typedef struct {
    size_t s, e;
    int sec;    /* innermost section or -1 */
    int parent; /* its parent section, -1 top, -2 for the preamble */
    int depth;
} region;

static char *make_path(const qai_doc *d, const int *stack, int n) {
    size_t l = 1;
    for (int i = 0; i < n; i++) l += strlen(d->sections[stack[i]].title ? d->sections[stack[i]].title : "") + 3;
    char *p = qai_malloc(l);
    if (!p) return NULL;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (i) memcpy(p + k, " > ", 3), k += 3;
        const char *t = d->sections[stack[i]].title ? d->sections[stack[i]].title : "";
        size_t tl = strlen(t);
        memcpy(p + k, t, tl);
        k += tl;
    }
    p[k] = 0;
    return p;
}

qai_status qai_chunk_doc(const qai_doc *d, const qai_chunk_opts *o, qai_chunk **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    qai_chunk_opts def = qai_chunk_default_opts();
    if (!o) o = &def;
    if (o->max_tokens < 1) return qai_error(QAI_ERR_ARG, "chunking: max_tokens must be >= 1 (got %d)", o->max_tokens);
    if (o->overlap_tokens < 0 || o->overlap_tokens >= o->max_tokens)
        return qai_error(QAI_ERR_ARG, "chunking: overlap_tokens must be in [0, max_tokens) (got %d, max %d)",
                         o->overlap_tokens, o->max_tokens);
    if (!d || (!d->text && d->len)) return qai_error(QAI_ERR_ARG, "chunking: no document text");
    cctx c = {d->text ? d->text : "", o};
    size_t len = d->text ? d->len : 0;
    int ns = d->n_sections;
    for (int i = 0; i < ns; i++) {
        const qai_doc_section *s = &d->sections[i];
        if (s->start > len || s->end > len || s->end < s->start || (i && s->start < d->sections[i - 1].start))
            return qai_error(QAI_ERR_ARG, "chunking: section %d span [%zu,%zu) is not inside the text (%zu bytes) "
                             "or out of order", i, s->start, s->end, len);
    }
    region *rg = qai_malloc(((size_t)ns + 1) * sizeof *rg);
    int *stack = qai_malloc(((size_t)ns + 1) * sizeof *stack);
    char **paths = qai_calloc((size_t)ns + 1, sizeof *paths);
    chunks cs = {0};
    pieces ps = {0};
    qai_status st = QAI_OK;
    if (!rg || !stack || !paths) {
        st = qai_error(QAI_ERR_NOMEM, "chunking: out of memory");
        goto done;
    }
    /* regions with their section paths */
    int nr = 0, sp = 0;
    size_t first = ns ? d->sections[0].start : len;
    rg[nr] = (region){0, first, -1, -2, 0};
    paths[nr] = qai_strdup("");
    if (!paths[nr]) {
        st = QAI_ERR_NOMEM;
        goto done;
    }
    nr++;
    for (int i = 0; i < ns; i++) {
        while (sp > 0 && d->sections[stack[sp - 1]].level >= d->sections[i].level) sp--;
        /* a section whose span ended before this one (malformed nesting) is popped too */
        while (sp > 0 && d->sections[stack[sp - 1]].end <= d->sections[i].start) sp--;
        int parent = sp > 0 ? stack[sp - 1] : -1;
        stack[sp++] = i;
        size_t e = i + 1 < ns ? d->sections[i + 1].start : len;
        rg[nr] = (region){d->sections[i].start, e, i, parent, sp};
        paths[nr] = make_path(d, stack, sp);
        if (!paths[nr]) {
            st = QAI_ERR_NOMEM;
            goto done;
        }
        nr++;
    }
    /* a region that is only its heading line, followed by its first subsection, joins it */
    for (int i = 0; i + 1 < nr; i++) {
        if (rg[i].sec < 0 || rg[i + 1].parent != rg[i].sec) continue;
        size_t k = rg[i].s;
        while (k < rg[i].e && c.t[k] != '\n') k++;
        while (k < rg[i].e && ws(c.t[k])) k++;
        if (k >= rg[i].e) {
            rg[i + 1].s = rg[i].s;
            rg[i].e = rg[i].s;
        }
    }
    /* merge small siblings, pack */
    int half = o->max_tokens / 2;
    for (int i = 0; i < nr;) {
        int j = i + 1;
        size_t e = rg[i].e;
        while (j < nr && rg[j].parent == rg[i].parent && rg[j].depth == rg[i].depth && rg[i].parent != -2 &&
               ntok_trim(&c, rg[i].s, rg[j].e) <= half) {
            e = rg[j].e;
            j++;
        }
        if (j > i + 1) {
            /* the parent's path: the path of region i without its last element */
            const char *p = paths[i];
            const char *cut = NULL;
            for (const char *q = p; (q = strstr(q, " > ")); q += 3) cut = q;
            size_t pl = cut ? (size_t)(cut - p) : 0;
            char *pp = qai_malloc(pl + 1);
            if (!pp) {
                st = QAI_ERR_NOMEM;
                goto done;
            }
            memcpy(pp, p, pl);
            pp[pl] = 0;
            ch_push(&cs, c.t, rg[i].s, e, pp);
            qai_free(pp);
        } else if (ntok_trim(&c, rg[i].s, rg[i].e) <= o->max_tokens)
            ch_push(&cs, c.t, rg[i].s, rg[i].e, paths[i]);
        else
            pack_region(&c, rg[i].s, rg[i].e, paths[i], &cs, &ps);
        if (cs.oom || ps.oom) {
            st = qai_error(QAI_ERR_NOMEM, "chunking: out of memory");
            goto done;
        }
        i = j;
    }
done:
    if (paths)
        for (int i = 0; i <= ns; i++) qai_free(paths[i]);
    qai_free(paths);
    qai_free(rg);
    qai_free(stack);
    qai_free(ps.p);
    if (st) {
        qai_chunks_free(cs.c, cs.n);
        if (st == QAI_ERR_NOMEM) qai_error(st, "chunking: out of memory");
        return st;
    }
    *out = cs.c;
    *n_out = cs.n;
    return QAI_OK;
}

void qai_chunks_free(qai_chunk *c, int n) {
    if (!c) return;
    for (int i = 0; i < n; i++) qai_free(c[i].section_path);
    qai_free(c);
}
