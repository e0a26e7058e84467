/* Tokenizer training: the SPM-style trainer against a naive reference trainer
 * written here from the documented algorithm (recount every pair after every
 * merge); determinism and thread-count independence (byte-identical GGUF);
 * the training merges reproduced by the encoder on the training text;
 * encode/decode round trips of arbitrary UTF-8 (and bytes, for bytebpe);
 * special tokens; GGUF round trip; errors. */
#include <string.h>
#include <unistd.h>

#include "qai/gguf.h"
#include "qai/tokenizer.h"
#include "qai/tokenizer_train.h"
#include "test.h"

/* ---- corpora ---------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* ASCII text: words from syllables with skewed frequencies, digits, punctuation,
 * some double spaces. Deterministic. */
static buf ascii_corpus(uint64_t seed, size_t want) {
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "ta", "sh", "e", "o", "qu", "in", "th", "er", "an", "st"};
    static const char *punct[] = {",", ".", ";", ":", "(", ")", "!", "?", "-", "'s"};
    qai_rng r;
    qai_rng_seed(&r, seed);
    buf b = {0};
    while (b.n < want) {
        int nw = 3 + (int)(qai_rng_u64(&r) % 12);
        for (int w = 0; w < nw; w++) {
            if (w) puts_(&b, qai_rng_u64(&r) % 40 ? " " : "  ");
            uint64_t k = qai_rng_u64(&r) % 100;
            if (k < 8) {
                char num[16];
                snprintf(num, sizeof num, "%u", (unsigned)(qai_rng_u64(&r) % (k < 4 ? 100 : 100000)));
                puts_(&b, num);
            } else {
                int ns = 1 + (int)(qai_rng_u64(&r) % 4);
                for (int s = 0; s < ns; s++) {
                    uint64_t x = qai_rng_u64(&r) % 225; /* skewed: low indexes more often */
                    int idx = 0;
                    while ((uint64_t)(idx + 1) * (idx + 1) <= x) idx++;
                    puts_(&b, syl[14 - idx]);
                }
            }
            if (qai_rng_u64(&r) % 7 == 0) puts_(&b, punct[qai_rng_u64(&r) % 10]);
        }
        puts_(&b, "\n");
    }
    return b;
}

/* Random valid UTF-8 text from a mixed alphabet (no U+2581, which the SPM
 * encoder reads as a space). */
static void random_utf8(qai_rng *r, buf *b, int n_chars) {
    static const char *alpha[] = {"a", "b", "e", "t", " ", " ", "  ", "\n", "\t", "1", "9", ".", ",", "\xc3\xa9",
                                  "\xc3\x9f", "\xce\xbb", "\xd0\x96", "\xe6\x97\xa5", "\xe2\x82\xac",
                                  "\xf0\x9f\x8d\xb0", "\xe0\xa4\x95", "\xcc\x81", "<", "|", ">", "\r"};
    for (int i = 0; i < n_chars; i++) puts_(b, alpha[qai_rng_u64(r) % (sizeof alpha / sizeof alpha[0])]);
}

/* ---- the naive reference (SPM kind, ASCII text, coverage 1) ------------------- */

#define MAXSYM 1200
typedef struct {
    int *s;
    int n;
    long count;
} rword;

static char *rsym[MAXSYM];
static int rchars[MAXSYM];
static int n_rsym;

static int rsym_find(const char *s) {
    for (int i = 0; i < n_rsym; i++)
        if (!strcmp(rsym[i], s)) return i;
    return -1;
}

/* Words as documented: per line, "▁" before the line and before each space-run
 * element; cut where letters meet non-letters. Returns distinct words with counts. */
static rword *ref_words(const char *text, int *n_out) {
    /* collect (flag, string) words */
    char **ws = NULL;
    long *cnt = NULL;
    int n = 0, cap = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        if (e > p) {
            int pending = 1;
            const char *q = p;
            char cur[256];
            int cl = 0, cls = -1, flag = 0;
#define EMIT()                                                                                                         \
    do {                                                                                                               \
        if (cl || flag) {                                                                                              \
            char w[300];                                                                                               \
            snprintf(w, sizeof w, "%s%.*s", flag ? "\xe2\x96\x81" : "", cl, cur);                                      \
            int f = -1;                                                                                                \
            for (int k = 0; k < n; k++)                                                                                \
                if (!strcmp(ws[k], w)) f = k;                                                                          \
            if (f < 0) {                                                                                               \
                if (n == cap) cap = cap ? cap * 2 : 256, ws = realloc(ws, cap * sizeof *ws), cnt = realloc(cnt, cap * sizeof *cnt); \
                ws[n] = strdup(w), cnt[n] = 0, f = n++;                                                                \
            }                                                                                                          \
            cnt[f]++;                                                                                                  \
            cl = 0, flag = 0;                                                                                          \
        }                                                                                                              \
    } while (0)
            for (; q < e; q++) {
                if (*q == ' ') {
                    EMIT();
                    if (pending) {
                        flag = 1;
                        EMIT();
                    }
                    pending = 1;
                    continue;
                }
                int c = ((*q | 32) >= 'a' && (*q | 32) <= 'z') ? 1 : 0;
                if (cl && c != cls) EMIT();
                if (!cl) flag = pending, pending = 0, cls = c;
                cur[cl++] = *q;
            }
            EMIT();
            if (pending) {
                flag = 1;
                EMIT();
            }
#undef EMIT
        }
        p = *e ? e + 1 : e;
    }
    /* characters by falling count, then code point; "▁" is U+2581 */
    long cc[256] = {0}, space = 0;
    for (int k = 0; k < n; k++) {
        const char *w = ws[k];
        if (!strncmp(w, "\xe2\x96\x81", 3)) space += cnt[k], w += 3;
        for (; *w; w++) cc[(unsigned char)*w] += cnt[k];
    }
    n_rsym = 0;
    for (;;) { /* selection sort: fine for a few dozen characters */
        long best = 0;
        int bc = -1;
        for (int c = 0; c < 256; c++)
            if (cc[c] > best) best = cc[c], bc = c;
        if (space > best || (space == best && space > 0 && bc < 0)) {
            rsym[n_rsym] = strdup("\xe2\x96\x81"), rchars[n_rsym++] = 1, space = 0;
            continue;
        }
        if (bc < 0) break;
        char s[2] = {(char)bc, 0};
        rsym[n_rsym] = strdup(s), rchars[n_rsym++] = 1, cc[bc] = 0;
    }
    rword *out = calloc((size_t)n, sizeof *out);
    for (int k = 0; k < n; k++) {
        const char *w = ws[k];
        out[k].s = calloc(strlen(w) + 1, sizeof(int));
        out[k].count = cnt[k];
        if (!strncmp(w, "\xe2\x96\x81", 3)) out[k].s[out[k].n++] = rsym_find("\xe2\x96\x81"), w += 3;
        for (; *w; w++) {
            char s[2] = {*w, 0};
            out[k].s[out[k].n++] = rsym_find(s);
        }
        free(ws[k]);
    }
    free(ws);
    free(cnt);
    *n_out = n;
    return out;
}

/* Merges until `want` new strings: returns them in order (strings owned by rsym). */
static int ref_train(rword *w, int nw, int want, int max_chars, const char **out) {
    static long pc[MAXSYM][MAXSYM];
    int made = 0;
    while (made < want) {
        memset(pc, 0, sizeof pc);
        for (int k = 0; k < nw; k++)
            for (int i = 0; i + 1 < w[k].n; i++)
                if (rchars[w[k].s[i]] + rchars[w[k].s[i + 1]] <= max_chars) pc[w[k].s[i]][w[k].s[i + 1]] += w[k].count;
        long best = 0;
        int bl = -1, br = -1;
        for (int l = 0; l < n_rsym; l++)
            for (int r = 0; r < n_rsym; r++)
                if (pc[l][r] > best) best = pc[l][r], bl = l, br = r;
        if (bl < 0) break;
        char s[256];
        snprintf(s, sizeof s, "%s%s", rsym[bl], rsym[br]);
        int id = rsym_find(s);
        if (id < 0) {
            if (n_rsym == MAXSYM) break;
            id = n_rsym++;
            rsym[id] = strdup(s);
            rchars[id] = rchars[bl] + rchars[br];
            out[made++] = rsym[id];
        }
        for (int k = 0; k < nw; k++) {
            int m = 0;
            for (int i = 0; i < w[k].n;) {
                if (i + 1 < w[k].n && w[k].s[i] == bl && w[k].s[i + 1] == br) w[k].s[m++] = id, i += 2;
                else w[k].s[m++] = w[k].s[i++];
            }
            w[k].n = m;
        }
    }
    return made;
}

/* ---- helpers ---------------------------------------------------------------- */

static char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/test_toktrain_%d_%s", TEST_TMP(), (int)getpid(), name);
    return p[k];
}

static bool files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (qai_file_read(a, &x, &nx) || qai_file_read(b, &y, &ny)) return false;
    bool eq = nx == ny && !memcmp(x, y, nx);
    qai_free(x);
    qai_free(y);
    return eq;
}

static qai_tokenizer *load(const char *path) {
    qai_gguf *g;
    qai_tokenizer *tok = NULL;
    if (qai_gguf_open(path, &g)) {
        fprintf(stderr, "open %s: %s\n", path, qai_last_error());
        return NULL;
    }
    if (qai_tokenizer_from_gguf(g, &tok)) fprintf(stderr, "tokenizer %s: %s\n", path, qai_last_error());
    qai_gguf_close(g);
    return tok;
}

static qai_status train_to(const buf *text, const qai_toktrain_opts *o, const char *path, qai_vocab_desc *keep) {
    const char *t = text->s;
    size_t n = text->n;
    qai_vocab_desc d;
    qai_status st = qai_tokenizer_train(&t, &n, 1, o, &d, NULL);
    if (st) return st;
    st = qai_vocab_write_gguf(&d, path);
    if (keep) *keep = d;
    else qai_vocab_release(&d);
    return st;
}

static void check_round_trip(const qai_tokenizer *tok, const char *s, size_t n, const char *what) {
    int32_t *ids;
    size_t k;
    if (qai_tokenizer_encode(tok, s, n, 0, &ids, &k)) {
        CHECK_MSG(false, "%s: encode: %s", what, qai_last_error());
        return;
    }
    char *back;
    size_t bl;
    CHECK_OK(qai_tokenizer_decode(tok, ids, k, QAI_DETOK_STRIP_SPACE, &back, &bl));
    bool same = bl == n && !memcmp(back, s, n);
    CHECK_MSG(same, "%s: round trip of %zu bytes gives %zu bytes", what, n, bl);
    qai_free(back);
    qai_free(ids);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_spm_against_reference(void) {
    buf text = ascii_corpus(7, 60000);
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.vocab_size = 3 + 256 + 40 + 300; /* chars are fewer than 40: some merges are left over */
    o.coverage = 1.0;
    o.max_piece_chars = 6;
    o.n_threads = 2;
    qai_vocab_desc d;
    const char *t = text.s;
    size_t n = text.n;
    CHECK_OK(qai_tokenizer_train(&t, &n, 1, &o, &d, NULL));
    int nw;
    rword *w = ref_words(text.s, &nw);
    int n_chars = n_rsym;
    int want = o.vocab_size - 259 - n_chars;
    const char **ref = calloc((size_t)want, sizeof *ref);
    int made = ref_train(w, nw, want, o.max_piece_chars, ref);
    CHECK_EQ_INT(made, want);
    CHECK_EQ_INT(d.n_tokens, o.vocab_size);
    /* merged pieces in order, then the characters by falling frequency */
    int bad = 0;
    for (int i = 0; i < made && i + 259 < d.n_tokens; i++) {
        if (strcmp(d.tokens[259 + i], ref[i])) {
            if (bad++ < 5) fprintf(stderr, "  merge %d: trainer '%s', reference '%s'\n", i, d.tokens[259 + i], ref[i]);
        }
        CHECK(d.scores[259 + i] == -(float)i);
    }
    CHECK_MSG(bad == 0, "%d of %d merged pieces differ from the reference", bad, made);
    for (int c = 0; c < n_chars; c++) {
        int id = 259 + made + c;
        if (id < d.n_tokens) CHECK_MSG(!strcmp(d.tokens[id], rsym[c]), "char %d: '%s' vs '%s'", c, d.tokens[id], rsym[c]);
    }
    CHECK(!strcmp(d.tokens[0], "<unk>") && !strcmp(d.tokens[1], "<s>") && !strcmp(d.tokens[2], "</s>"));
    CHECK(!strcmp(d.tokens[3], "<0x00>") && !strcmp(d.tokens[258], "<0xFF>"));
    CHECK_EQ_INT(d.types[0], QAI_TOKEN_UNKNOWN);
    CHECK_EQ_INT(d.types[1], QAI_TOKEN_CONTROL);
    CHECK_EQ_INT(d.types[100], QAI_TOKEN_BYTE);
    CHECK_EQ_INT(d.types[300], QAI_TOKEN_NORMAL);

    /* the encoder replays the training merges: every distinct word of the
     * training text encodes into the reference trainer's final segmentation */
    /* (a tokenizer without the dummy prefix, so a word is encoded as it stands:
     * its leading "▁" written as a space) */
    qai_tokenizer *tok;
    qai_vocab_desc d2 = d;
    d2.add_space_prefix = false;
    CHECK_OK(qai_tokenizer_new(&d2, &tok));
    int mismatch = 0;
    for (int k = 0; k < nw && tok; k++) {
        buf raw = {0};
        for (int i = 0; i < w[k].n; i++) {
            const char *piece = rsym[w[k].s[i]];
            if (!strncmp(piece, "\xe2\x96\x81", 3)) puts_(&raw, " "), piece += 3;
            puts_(&raw, piece);
        }
        int32_t *ids;
        size_t nid;
        CHECK_OK(qai_tokenizer_encode(tok, raw.s, raw.n, 0, &ids, &nid));
        bool same = (int)nid == w[k].n;
        for (int i = 0; same && i < w[k].n; i++) same = !strcmp(qai_tokenizer_token(tok, ids[i]), rsym[w[k].s[i]]);
        if (!same && mismatch++ < 5) fprintf(stderr, "  word '%s' encodes differently\n", raw.s);
        qai_free(ids);
        free(raw.s);
    }
    CHECK_MSG(mismatch == 0, "%d of %d training words do not reproduce the training merges", mismatch, nw);
    qai_tokenizer_free(tok);
    for (int k = 0; k < nw; k++) free(w[k].s);
    free(w);
    for (int i = 0; i < n_rsym; i++) free(rsym[i]);
    free(ref);
    qai_vocab_release(&d);
    free(text.s);
}

static void test_determinism(qai_toktrain_type type) {
    buf text = ascii_corpus(11, 150000);
    qai_rng r;
    qai_rng_seed(&r, 5);
    for (int i = 0; i < 400; i++) { /* some Unicode lines */
        random_utf8(&r, &text, 30);
        puts_(&text, "\n");
    }
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.type = type;
    o.vocab_size = 800;
    const char *paths[3] = {tmp_path("a.gguf"), tmp_path("b.gguf"), tmp_path("c.gguf")};
    int threads[3] = {1, 3, 2};
    for (int i = 0; i < 3; i++) {
        o.n_threads = threads[i];
        CHECK_OK(train_to(&text, &o, paths[i], NULL));
    }
    CHECK_MSG(files_equal(paths[0], paths[1]), "1 and 3 threads give different files (type %d)", type);
    CHECK_MSG(files_equal(paths[0], paths[2]), "1 and 2 threads give different files (type %d)", type);
    CHECK_OK(train_to(&text, &o, paths[1], NULL)); /* the same run again */
    CHECK(files_equal(paths[2], paths[1]));

    /* the file loads; arbitrary text round-trips */
    qai_tokenizer *tok = load(paths[0]);
    CHECK(tok != NULL);
    if (tok) {
        CHECK_EQ_INT(qai_tokenizer_n_vocab(tok), 800);
        CHECK_EQ_INT(qai_tokenizer_kind(tok), type == QAI_TOKTRAIN_SPM ? QAI_VOCAB_SPM : QAI_VOCAB_BPE);
        for (int i = 0; i < 200; i++) {
            buf s = {0};
            random_utf8(&r, &s, 1 + (int)(qai_rng_u64(&r) % 60));
            check_round_trip(tok, s.s, s.n, "random UTF-8");
            free(s.s);
        }
        check_round_trip(tok, text.s, text.n, "the training text");
        /* arbitrary bytes: byte fallback (SPM) or byte-level (BPE) covers every byte */
        for (int i = 0; i < 50; i++) {
            char bytes[64];
            size_t n = 1 + qai_rng_u64(&r) % 64;
            for (size_t k = 0; k < n; k++) {
                bytes[k] = (char)qai_rng_u64(&r);
                if (type == QAI_TOKTRAIN_SPM && (bytes[k] == ' ' || (uint8_t)bytes[k] == 0xE2)) bytes[k] = 'x';
            }
            check_round_trip(tok, bytes, n, "random bytes");
        }
        /* one long call (the encoder's per-call segment cache is on above 2 KB)
         * equals line-by-line calls (each short: no cache): for the SPM kind
         * no token holds "\n", so nothing merges across a line end */
        if (type == QAI_TOKTRAIN_SPM) {
            int32_t *all;
            size_t n_all, k = 0;
            CHECK_OK(qai_tokenizer_encode(tok, text.s, text.n, 0, &all, &n_all));
            int32_t nl = qai_tokenizer_find(tok, "<0x0A>");
            bool same = true;
            for (size_t i = 0; i < text.n && same;) {
                const char *e = memchr(text.s + i, '\n', text.n - i);
                size_t len = e ? (size_t)(e - text.s) - i : text.n - i;
                /* line 0 as it is; a later line after a "\n" (so the dummy prefix
                 * goes before the "\n", as in the whole text), dropping what
                 * precedes the line: the prefix and the "\n" byte token */
                int32_t *ids;
                size_t n_ids, skip = 0;
                if (qai_tokenizer_encode(tok, text.s + i - (i > 0), len + (i > 0), 0, &ids, &n_ids)) break;
                if (i > 0) {
                    while (skip < n_ids && ids[skip] != nl) skip++;
                    skip++;
                }
                for (size_t j = skip; j < n_ids && same; j++) same = k < n_all && all[k++] == ids[j];
                qai_free(ids);
                i += len;
                if (e) {
                    same = same && k < n_all && all[k++] == nl;
                    i++;
                }
            }
            CHECK_MSG(same && k == n_all, "a long text encodes differently from its lines (at token %zu of %zu)", k, n_all);
            qai_free(all);
        }
        /* compression: the trained vocabulary does better than bytes on its own text */
        int32_t *ids;
        size_t n_ids;
        CHECK_OK(qai_tokenizer_encode(tok, text.s, text.n, 0, &ids, &n_ids));
        CHECK_MSG(n_ids * 2 < text.n, "%zu tokens for %zu bytes", n_ids, text.n);
        qai_free(ids);
        qai_tokenizer_free(tok);
    }
    for (int i = 0; i < 3; i++) remove(paths[i]);
    free(text.s);
}

/* Byte-level BPE: the merges list is consistent and the encoder reproduces the
 * training merges on the training words (encoding = applying the merges in
 * rank order, checked with a naive replay here). */
static void test_bytebpe_merges(void) {
    buf text = ascii_corpus(3, 40000);
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.type = QAI_TOKTRAIN_BYTEBPE;
    o.vocab_size = 1 + 256 + 200;
    qai_vocab_desc d;
    const char *t = text.s;
    size_t n = text.n;
    CHECK_OK(qai_tokenizer_train(&t, &n, 1, &o, &d, NULL));
    CHECK_EQ_INT(d.n_tokens, o.vocab_size);
    CHECK(!strcmp(d.tokens[0], "<|endoftext|>"));
    CHECK_EQ_INT(d.types[0], QAI_TOKEN_CONTROL);
    CHECK_EQ_INT(d.bos, 0);
    CHECK_EQ_INT(d.eos, 0);
    CHECK(!strcmp(d.tokens[1 + 'a'], "a"));
    CHECK(!strcmp(d.tokens[1 + ' '], "\xc4\xa0")); /* "Ġ" */
    CHECK(d.n_merges >= 200);
    /* every merge's parts and result are tokens made before it */
    qai_tokenizer *tok;
    CHECK_OK(qai_tokenizer_new(&d, &tok));
    int bad = 0;
    for (int32_t i = 0; i < d.n_merges && tok; i++) {
        char l[128], r[128];
        const char *sp = strchr(d.merges[i], ' ');
        if (!sp) {
            bad++;
            continue;
        }
        snprintf(l, sizeof l, "%.*s", (int)(sp - d.merges[i]), d.merges[i]);
        snprintf(r, sizeof r, "%s", sp + 1);
        char both[256];
        snprintf(both, sizeof both, "%s%s", l, r);
        if (qai_tokenizer_find(tok, l) < 0 || qai_tokenizer_find(tok, r) < 0 || qai_tokenizer_find(tok, both) < 0)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* naive replay over a few words: apply merges in rank order to the byte-level
     * characters; the encoder must give the same tokens */
    static const char *words[] = {" kalomi", " shinthe", " quanst", "er", " 12345", " (kaka)", " stststst"};
    for (size_t k = 0; k < sizeof words / sizeof words[0] && tok; k++) {
        char sym[64][64];
        int ns = 0;
        for (const char *p = words[k]; *p; p++) {
            if (*p == ' ') strcpy(sym[ns++], "\xc4\xa0");
            else sym[ns][0] = *p, sym[ns][1] = 0, ns++;
        }
        for (int32_t i = 0; i < d.n_merges; i++) {
            const char *sp = strchr(d.merges[i], ' ');
            for (int j = 0; j + 1 < ns; j++) {
                if (strlen(sym[j]) == (size_t)(sp - d.merges[i]) && !strncmp(sym[j], d.merges[i], (size_t)(sp - d.merges[i])) &&
                    !strcmp(sym[j + 1], sp + 1)) {
                    strcat(sym[j], sym[j + 1]);
                    memmove(sym[j + 1], sym[j + 2], (size_t)(ns - j - 2) * sizeof sym[0]);
                    ns--;
                }
            }
        }
        int32_t *ids;
        size_t nid;
        CHECK_OK(qai_tokenizer_encode(tok, words[k], strlen(words[k]), 0, &ids, &nid));
        bool same = (int)nid == ns;
        for (int j = 0; same && j < ns; j++) same = !strcmp(qai_tokenizer_token(tok, ids[j]), sym[j]);
        CHECK_MSG(same, "'%s': encoder gives %zu tokens, the merge replay %d", words[k], nid, ns);
        qai_free(ids);
    }
    qai_tokenizer_free(tok);
    qai_vocab_release(&d);
    free(text.s);
}

static void test_special_tokens(qai_toktrain_type type) {
    buf text = {0};
    for (int i = 0; i < 300; i++) puts_(&text, "<|user|> hello there <|user|>friend\n<|im_start|>system says hi\n");
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.type = type;
    o.vocab_size = 400;
    const char *user[] = {"<|user|>"}, *ctrl[] = {"<|im_start|>"};
    o.user_tokens = user;
    o.n_user_tokens = 1;
    o.control_tokens = ctrl;
    o.n_control_tokens = 1;
    const char *path = tmp_path("special.gguf");
    CHECK_OK(train_to(&text, &o, path, NULL));
    qai_tokenizer *tok = load(path);
    CHECK(tok != NULL);
    if (tok) {
        int32_t u = qai_tokenizer_find(tok, "<|user|>"), c = qai_tokenizer_find(tok, "<|im_start|>");
        int32_t base = type == QAI_TOKTRAIN_SPM ? 3 : 1;
        CHECK_EQ_INT(u, base);
        CHECK_EQ_INT(c, base + 1);
        CHECK_EQ_INT(qai_tokenizer_token_type(tok, u), QAI_TOKEN_USER_DEFINED);
        CHECK_EQ_INT(qai_tokenizer_token_type(tok, c), QAI_TOKEN_CONTROL);
        /* the training text around them never made pieces of them */
        for (int32_t i = 0; i < qai_tokenizer_n_vocab(tok); i++) {
            const char *s = qai_tokenizer_token(tok, i);
            if (i != u && i != c) CHECK_MSG(!strstr(s, "user|") && !strstr(s, "im_start"), "token %d '%s'", i, s);
        }
        int32_t *ids;
        size_t n;
        const char *msg = "hi <|user|> there";
        CHECK_OK(qai_tokenizer_encode(tok, msg, strlen(msg), 0, &ids, &n));
        int found = 0;
        for (size_t i = 0; i < n; i++) found += ids[i] == u;
        CHECK_EQ_INT(found, 1); /* user-defined: matched even without PARSE_SPECIAL */
        qai_free(ids);
        msg = "<|im_start|>x";
        CHECK_OK(qai_tokenizer_encode(tok, msg, strlen(msg), QAI_TOK_PARSE_SPECIAL, &ids, &n));
        CHECK(n >= 1 && ids[0] == c);
        qai_free(ids);
        CHECK_OK(qai_tokenizer_encode(tok, msg, strlen(msg), 0, &ids, &n));
        CHECK(n > 1 && ids[0] != c);
        qai_free(ids);
        qai_tokenizer_free(tok);
    }
    remove(path);
    free(text.s);
}

static void test_gguf_keys(void) {
    buf text = ascii_corpus(2, 20000);
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.vocab_size = 330;
    const char *path = tmp_path("keys.gguf");
    qai_vocab_desc d;
    CHECK_OK(train_to(&text, &o, path, &d));
    qai_gguf *g;
    CHECK_OK(qai_gguf_open(path, &g));
    if (g) {
        const char *s;
        CHECK(qai_gguf_get_str(g, "tokenizer.ggml.model", &s) == QAI_OK && !strcmp(s, "llama"));
        CHECK(qai_gguf_get_str(g, "general.architecture", &s) == QAI_OK && !strcmp(s, "llama"));
        int64_t v;
        CHECK(qai_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v) == QAI_OK && v == 1);
        CHECK(qai_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &v) == QAI_OK && v == 2);
        CHECK(qai_gguf_get_int(g, "tokenizer.ggml.unknown_token_id", &v) == QAI_OK && v == 0);
        bool b;
        CHECK(qai_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == QAI_OK && b);
        int64_t ti = qai_gguf_find_kv(g, "tokenizer.ggml.scores");
        CHECK(ti >= 0 && qai_gguf_arr_len(g, ti) == (uint64_t)d.n_tokens);
        for (int32_t i = 0; ti >= 0 && i < d.n_tokens; i++)
            if (qai_gguf_arr_float(g, ti, (uint64_t)i) != d.scores[i]) {
                CHECK_MSG(false, "score %d", i);
                break;
            }
        CHECK_EQ_INT(qai_gguf_n_tensors(g), 0);
        qai_gguf_close(g);
    }
    qai_vocab_release(&d);
    remove(path);
    free(text.s);
}

static void test_errors(void) {
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    qai_vocab_desc d;
    const char *t = "abc abc\n";
    size_t n = strlen(t);
    o.vocab_size = 100; /* below 3 + 256 */
    CHECK_EQ_INT(qai_tokenizer_train(&t, &n, 1, &o, &d, NULL), QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "vocabulary size") != NULL);
    o.vocab_size = 1000;
    const char *empty = "\n\n";
    size_t ne = 2;
    CHECK_EQ_INT(qai_tokenizer_train(&empty, &ne, 1, &o, &d, NULL), QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "empty") != NULL);
    /* a tiny text runs out of pairs: a smaller vocabulary, not an error */
    CHECK_OK(qai_tokenizer_train(&t, &n, 1, &o, &d, NULL));
    CHECK(d.n_tokens < 1000 && d.n_tokens > 259);
    qai_vocab_release(&d);
    const char *dup[] = {"<a>", "<a>"};
    o.user_tokens = dup;
    o.n_user_tokens = 2;
    CHECK_EQ_INT(qai_tokenizer_train(&t, &n, 1, &o, &d, NULL), QAI_ERR_ARG);
    o.user_tokens = NULL;
    o.n_user_tokens = 0;
    /* files: missing, binary */
    const char *missing = tmp_path("missing.txt");
    CHECK_EQ_INT(qai_tokenizer_train_files(&missing, 1, &o, &d, NULL), QAI_ERR_IO);
    const char *bin = tmp_path("bin.txt");
    FILE *f = fopen(bin, "wb");
    fwrite("abc\0def", 1, 7, f);
    fclose(f);
    CHECK_EQ_INT(qai_tokenizer_train_files(&bin, 1, &o, &d, NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "binary") != NULL);
    remove(bin);
    /* max_bytes reads whole lines only */
    const char *two = "aaaa bbbb\ncccc dddd\n";
    size_t n2 = strlen(two);
    qai_toktrain_stats s;
    o.max_bytes = 12;
    CHECK_OK(qai_tokenizer_train(&two, &n2, 1, &o, &d, &s));
    CHECK_EQ_INT(s.n_bytes, 10);
    qai_vocab_release(&d);
}

int main(void) {
    test_spm_against_reference();
    test_determinism(QAI_TOKTRAIN_SPM);
    test_determinism(QAI_TOKTRAIN_BYTEBPE);
    test_bytebpe_merges();
    test_special_tokens(QAI_TOKTRAIN_SPM);
    test_special_tokens(QAI_TOKTRAIN_BYTEBPE);
    test_gguf_keys();
    test_errors();
    return test_summary();
}
