/*
 * extract.c — the front of document extraction: type detection, the binary
 * check, UTF-8 repair, reading (and gunzipping) files, the text builder shared
 * by the format extractors, plain text with underlined headings, and the
 * stop-word language guess.
 *
 * What it deliberately does not do: guess encodings other than UTF-8 (Latin-1
 * bytes become U+FFFD, and a file that is mostly not UTF-8 is refused), or
 * read archives (a .gz is one compressed file, not a tarball).
 */
#include "ingest_internal.h"

#include <archive.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- UTF-8 ------------------------------------------------------------------------ */

size_t qai_utf8_seq(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    uint32_t cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int qai_utf8_put(uint32_t cp, char *out) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || cp == 0) cp = 0xFFFD;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

char *qai_utf8_clean(const char *s, size_t n, size_t *out_len, size_t *bad) {
    /* worst case: every byte invalid -> 3 bytes each */
    if (n > (SIZE_MAX - 1) / 3) return NULL;
    char *o = qai_malloc(n * 3 + 1);
    if (!o) return NULL;
    size_t j = 0, nbad = 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    if (n >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) i = 3; /* BOM */
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            if (c == '\r') {
                o[j++] = '\n';
                i += (i + 1 < n && u[i + 1] == '\n') ? 2 : 1;
            } else {
                if (c != 0) o[j++] = (char)c;
                i++;
            }
            continue;
        }
        size_t l = qai_utf8_seq(u + i, n - i);
        if (l) {
            memcpy(o + j, s + i, l);
            j += l;
            i += l;
        } else {
            /* one U+FFFD per maximal subpart of an ill-formed sequence (Unicode 15, 3.9 U+FFFD
             * substitution of maximal subparts, as WHATWG decoders do) */
            size_t need = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 1;
            size_t k = 1;
            while (k < need && i + k < n) {
                unsigned b = u[i + k];
                unsigned lo = 0x80, hi = 0xBF;
                if (k == 1) {
                    if (c == 0xE0) lo = 0xA0;
                    else if (c == 0xED) hi = 0x9F;
                    else if (c == 0xF0) lo = 0x90;
                    else if (c == 0xF4) hi = 0x8F;
                }
                if (b < lo || b > hi) break;
                k++;
            }
            j += (size_t)qai_utf8_put(0xFFFD, o + j);
            nbad++;
            i += k;
        }
    }
    o[j] = 0;
    *out_len = j;
    if (bad) *bad = nbad;
    return o;
}

char *qai_strndup_trim(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    char *o = qai_malloc(n + 1);
    if (!o) return NULL;
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

/* ---- text builder ------------------------------------------------------------------ */

void tb_init(qai_tb *tb) { memset(tb, 0, sizeof *tb); }

void tb_release(qai_tb *tb) {
    qai_free(tb->buf);
    for (int i = 0; i < tb->nsec; i++) qai_free(tb->secs[i].title);
    qai_free(tb->secs);
    memset(tb, 0, sizeof *tb);
}

static bool tb_reserve(qai_tb *tb, size_t extra) {
    if (tb->oom) return false;
    if (tb->len + extra + 1 <= tb->cap) return true;
    size_t nc = tb->cap ? tb->cap : 4096;
    while (nc < tb->len + extra + 1) nc *= 2;
    char *nb = qai_realloc(tb->buf, nc);
    if (!nb) {
        tb->oom = true;
        return false;
    }
    tb->buf = nb;
    tb->cap = nc;
    return true;
}

static void tb_flush_space(qai_tb *tb) {
    if (!tb->pending_space) return;
    tb->pending_space = false;
    char c = tb_last(tb);
    if (tb->len == 0 || c == '\n' || c == ' ' || c == '\t') return;
    if (tb_reserve(tb, 1)) tb->buf[tb->len++] = ' ';
}

void tb_raw(qai_tb *tb, const char *s, size_t n) {
    tb_flush_space(tb);
    if (!n || !tb_reserve(tb, n)) return;
    memcpy(tb->buf + tb->len, s, n);
    tb->len += n;
}

void tb_text(qai_tb *tb, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            tb->pending_space = true;
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '\r' && s[j] != '\f' && s[j] != '\v')
            j++;
        tb_raw(tb, s + i, j - i);
        i = j;
    }
}

void tb_textz(qai_tb *tb, const char *s) { tb_text(tb, s, strlen(s)); }

void tb_space(qai_tb *tb) { tb->pending_space = true; }

static void tb_trim_spaces(qai_tb *tb) {
    while (tb->len && (tb->buf[tb->len - 1] == ' ' || tb->buf[tb->len - 1] == '\t')) tb->len--;
}

void tb_newline(qai_tb *tb) {
    tb->pending_space = false;
    tb_trim_spaces(tb);
    if (tb->len == 0 || tb->buf[tb->len - 1] == '\n') return;
    if (tb_reserve(tb, 1)) tb->buf[tb->len++] = '\n';
}

void tb_blankline(qai_tb *tb) {
    tb_newline(tb);
    if (tb->len == 0) return;
    if (tb->len >= 2 && tb->buf[tb->len - 2] == '\n') return;
    if (tb_reserve(tb, 1)) tb->buf[tb->len++] = '\n';
}

void tb_codepoint(qai_tb *tb, uint32_t cp) {
    char u[4];
    int l = qai_utf8_put(cp, u);
    tb_raw(tb, u, (size_t)l);
}

int tb_section_begin(qai_tb *tb, int level) {
    if (tb->oom) return -1;
    if (tb->nsec == tb->capsec) {
        int nc = tb->capsec ? tb->capsec * 2 : 16;
        qai_doc_section *ns = qai_realloc(tb->secs, (size_t)nc * sizeof *ns);
        if (!ns) {
            tb->oom = true;
            return -1;
        }
        tb->secs = ns;
        tb->capsec = nc;
    }
    qai_doc_section *s = &tb->secs[tb->nsec];
    s->start = tb->len;
    s->end = tb->len;
    s->level = level < 1 ? 1 : level > 6 ? 6 : level;
    s->title = NULL;
    return tb->nsec++;
}

void tb_section_title(qai_tb *tb, int idx, const char *s, size_t n) {
    if (idx < 0 || idx >= tb->nsec) return;
    qai_free(tb->secs[idx].title);
    /* titles are one line: collapse whitespace */
    char *t = qai_malloc(n + 1);
    if (!t) {
        tb->oom = true;
        tb->secs[idx].title = NULL;
        return;
    }
    size_t j = 0;
    bool sp = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            sp = j > 0;
            continue;
        }
        if (sp) t[j++] = ' ';
        sp = false;
        t[j++] = c;
    }
    t[j] = 0;
    tb->secs[idx].title = t;
}

qai_status tb_finish(qai_tb *tb, qai_doc *d) {
    tb->pending_space = false;
    while (tb->len && (tb->buf[tb->len - 1] == ' ' || tb->buf[tb->len - 1] == '\t' || tb->buf[tb->len - 1] == '\n'))
        tb->len--;
    if (tb->len && tb_reserve(tb, 1)) tb->buf[tb->len++] = '\n';
    if (!tb_reserve(tb, 0)) {
        tb_release(tb);
        return qai_error(QAI_ERR_NOMEM, "out of memory extracting text");
    }
    tb->buf[tb->len] = 0;
    /* drop untitled sections; clamp starts past the trimmed end */
    int k = 0;
    for (int i = 0; i < tb->nsec; i++) {
        qai_doc_section s = tb->secs[i];
        if (!s.title || !s.title[0] || s.start >= tb->len) {
            qai_free(s.title);
            continue;
        }
        tb->secs[k++] = s;
    }
    tb->nsec = k;
    for (int i = 0; i < k; i++) {
        size_t end = tb->len;
        for (int j = i + 1; j < k; j++)
            if (tb->secs[j].level <= tb->secs[i].level) {
                end = tb->secs[j].start;
                break;
            }
        tb->secs[i].end = end;
    }
    d->text = tb->buf;
    d->len = tb->len;
    d->sections = k ? tb->secs : NULL;
    if (!k) qai_free(tb->secs);
    d->n_sections = k;
    memset(tb, 0, sizeof *tb);
    return QAI_OK;
}

/* ---- doc lists --------------------------------------------------------------------- */

void doc_release(qai_doc *d) {
    qai_free(d->text);
    for (int i = 0; i < d->n_sections; i++) qai_free(d->sections[i].title);
    qai_free(d->sections);
    qai_free(d->title);
    qai_free(d->record_id);
    qai_free(d->meta_json);
    memset(d, 0, sizeof *d);
}

qai_status docs_push(qai_doc_list *l, int *cap, qai_doc *d) {
    if (l->n_docs == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        qai_doc *nd = qai_realloc(l->docs, (size_t)nc * sizeof *nd);
        if (!nd) {
            doc_release(d);
            return QAI_ERR_NOMEM;
        }
        l->docs = nd;
        *cap = nc;
    }
    l->docs[l->n_docs++] = *d;
    memset(d, 0, sizeof *d);
    return QAI_OK;
}

void qai_doc_list_free(qai_doc_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n_docs; i++) doc_release(&l->docs[i]);
    qai_free(l->docs);
    memset(l, 0, sizeof *l);
}

/* ---- types and detection ------------------------------------------------------------ */

const char *qai_doc_type_name(qai_doc_type t) {
    switch (t) {
    case QAI_DOC_TEXT: return "text/plain";
    case QAI_DOC_MARKDOWN: return "text/markdown";
    case QAI_DOC_HTML: return "text/html";
    case QAI_DOC_MAN: return "text/troff";
    case QAI_DOC_JSONL: return "application/jsonl";
    case QAI_DOC_CSV: return "text/csv";
    case QAI_DOC_PDF: return "application/pdf";
    default: return "application/octet-stream";
    }
}

static bool ends_with_ci(const char *s, size_t n, const char *suf) {
    size_t m = strlen(suf);
    return n >= m && strncasecmp(s + n - m, suf, m) == 0;
}

static qai_doc_type type_from_name(const char *path) {
    if (!path) return QAI_DOC_UNKNOWN;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (ends_with_ci(base, n, ".gz")) n -= 3;
    static const struct { const char *ext; qai_doc_type t; } map[] = {
        {".md", QAI_DOC_MARKDOWN},  {".markdown", QAI_DOC_MARKDOWN}, {".mdown", QAI_DOC_MARKDOWN},
        {".html", QAI_DOC_HTML},    {".htm", QAI_DOC_HTML},          {".xhtml", QAI_DOC_HTML},
        {".txt", QAI_DOC_TEXT},     {".text", QAI_DOC_TEXT},         {".jsonl", QAI_DOC_JSONL},
        {".ndjson", QAI_DOC_JSONL}, {".csv", QAI_DOC_CSV},           {".pdf", QAI_DOC_PDF},
        {".man", QAI_DOC_MAN},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (ends_with_ci(base, n, map[i].ext)) return map[i].t;
    /* man pages: NAME.[1-9][a-z0-9]{0,6} (ls.1, printf.3p, Foo::Bar.3pm, openssl.1ssl) or .n/.l */
    const char *dot = NULL;
    for (size_t i = n; i > 0; i--)
        if (base[i - 1] == '.') {
            dot = base + i - 1;
            break;
        }
    if (dot && dot > base) {
        size_t el = (size_t)(base + n - dot) - 1;
        const char *e = dot + 1;
        if (el >= 1 && el <= 7 && ((e[0] >= '1' && e[0] <= '9') || (el == 1 && (e[0] == 'n' || e[0] == 'l')))) {
            bool ok = true;
            for (size_t i = 1; i < el; i++)
                if (!((e[i] >= 'a' && e[i] <= 'z') || (e[i] >= '0' && e[i] <= '9'))) ok = false;
            if (ok) return QAI_DOC_MAN;
        }
    }
    return QAI_DOC_UNKNOWN;
}

/* Refuses binary content. n may end inside a UTF-8 sequence (a head): the last 3 bytes are lenient. */
static qai_status check_text(const char *path, const unsigned char *u, size_t n, bool head) {
    size_t bad = 0, ctrl = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == 0)
            return qai_error(QAI_ERR_FORMAT, "'%s': binary content (NUL byte at offset %zu)", path ? path : "<input>", i);
        if (c < 0x80) {
            if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v' && c != 0x1B &&
                 c != 0x08) ||
                c == 0x7F)
                ctrl++;
            i++;
            continue;
        }
        size_t l = qai_utf8_seq(u + i, n - i);
        if (l) {
            i += l;
            continue;
        }
        if (head && n - i < 4) break;
        bad++;
        i++;
    }
    if (n >= 16 && (bad + ctrl) * 10 > n)
        return qai_error(QAI_ERR_FORMAT,
                         "'%s': not text (%zu of %zu bytes are invalid UTF-8 or control characters); "
                         "only UTF-8 text is extracted",
                         path ? path : "<input>", bad + ctrl, n);
    return QAI_OK;
}

static bool starts_ci(const char *s, size_t n, const char *p) {
    size_t m = strlen(p);
    return n >= m && strncasecmp(s, p, m) == 0;
}

qai_status qai_doc_detect(const char *path, const void *head, size_t n, qai_doc_type *out) {
    *out = QAI_DOC_UNKNOWN;
    const char *h = head ? head : "";
    if (!head) n = 0;
    qai_doc_type t = type_from_name(path);
    if (t == QAI_DOC_PDF || (n >= 5 && memcmp(h, "%PDF-", 5) == 0)) {
        *out = QAI_DOC_PDF;
        return QAI_OK;
    }
    qai_status st = check_text(path, (const unsigned char *)h, n, true);
    if (st) return st;
    if (t == QAI_DOC_UNKNOWN) {
        size_t i = 0;
        if (n >= 3 && (unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB && (unsigned char)h[2] == 0xBF) i = 3;
        while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r')) i++;
        const char *s = h + i;
        size_t m = n - i;
        if (starts_ci(s, m, "<!doctype html") || starts_ci(s, m, "<html") || starts_ci(s, m, "<head") ||
            starts_ci(s, m, "<?xml") || starts_ci(s, m, "<body"))
            t = QAI_DOC_HTML;
        else if (starts_ci(s, m, ".TH ") || starts_ci(s, m, ".Dd") || starts_ci(s, m, ".\\\"") ||
                 starts_ci(s, m, "'\\\"") || starts_ci(s, m, ".so "))
            t = QAI_DOC_MAN;
        else
            t = QAI_DOC_TEXT;
    }
    *out = t;
    return QAI_OK;
}

/* ---- language guess ------------------------------------------------------------------ */

static const char *const lang_codes[7] = {"en", "de", "fr", "es", "it", "nl", "pt"};
static const char *const lang_words[7] = {
    " the and of to in is that it was for with as on are be this by not or have from at which but you ",
    " der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch es werden wird oder ich ",
    " le la les et est des une un du que dans pour pas sur au qui avec ce sont par ne il elle aux ",
    " el la los las y es de que en del por con una para se no su al lo como más pero ",
    " il la che di e è un una per non del della sono con gli le nel si da alla ",
    " de het een en van is dat niet in op te zijn voor met die er aan ook als wordt ",
    " o a os as e de que do da em um uma para não com por se dos das é ao ",
};

/* all stop words with a bit per language, sorted for bsearch (built once) */
typedef struct {
    char w[12];
    unsigned mask;
} lang_word;
static lang_word lang_tab[256];
static int lang_n;

static int lw_cmp(const void *a, const void *b) { return strcmp(((const lang_word *)a)->w, ((const lang_word *)b)->w); }

static void lang_init(void) {
    for (int l = 0; l < 7; l++) {
        const char *p = lang_words[l];
        while (*p) {
            while (*p == ' ') p++;
            const char *e = p;
            while (*e && *e != ' ') e++;
            if (e > p && e - p < 12) {
                lang_word k;
                memset(&k, 0, sizeof k);
                memcpy(k.w, p, (size_t)(e - p));
                int f = -1;
                for (int i = 0; i < lang_n; i++)
                    if (!strcmp(lang_tab[i].w, k.w)) f = i;
                if (f >= 0) lang_tab[f].mask |= 1u << l;
                else if (lang_n < 256) {
                    k.mask = 1u << l;
                    lang_tab[lang_n++] = k;
                }
            }
            p = e;
        }
    }
    qsort(lang_tab, (size_t)lang_n, sizeof lang_tab[0], lw_cmp);
}

void qai_doc_guess_lang(const char *text, size_t n, char out[8]) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lang_init);
    int score[7] = {0};
    if (n > 65536) n = 65536;
    size_t i = 0;
    int words = 0;
    while (i < n && words < 4000) {
        while (i < n && !((unsigned char)text[i] >= 0x80 || (text[i] >= 'a' && text[i] <= 'z') ||
                          (text[i] >= 'A' && text[i] <= 'Z')))
            i++;
        size_t j = i;
        while (j < n && ((unsigned char)text[j] >= 0x80 || (text[j] >= 'a' && text[j] <= 'z') ||
                         (text[j] >= 'A' && text[j] <= 'Z')))
            j++;
        if (j > i && j - i < 12) {
            lang_word k;
            memset(&k, 0, sizeof k);
            for (size_t m = i; m < j; m++) k.w[m - i] = (char)((text[m] >= 'A' && text[m] <= 'Z') ? text[m] + 32 : text[m]);
            const lang_word *hit = bsearch(&k, lang_tab, (size_t)lang_n, sizeof lang_tab[0], lw_cmp);
            if (hit)
                for (int l = 0; l < 7; l++)
                    if (hit->mask & (1u << l)) score[l]++;
        }
        if (j > i) words++;
        i = j;
    }
    int best = -1, second = 0;
    for (int l = 0; l < 7; l++) {
        if (best < 0 || score[l] > score[best]) {
            if (best >= 0) second = score[best];
            best = l;
        } else if (score[l] > second)
            second = score[l];
    }
    if (best < 0 || score[best] < 3 || score[best] * 4 < second * 5) {
        strcpy(out, "und");
        return;
    }
    strcpy(out, lang_codes[best]);
}

/* ---- plain text --------------------------------------------------------------------- */

/* A line of only '=' (level 1) or '-' (level 2), at least 3 long, under a non-blank line. */
static int underline_level(const char *s, size_t n) {
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n < 3) return 0;
    char c = s[0];
    if (c != '=' && c != '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != c) return 0;
    return c == '=' ? 1 : 2;
}

qai_status qai_extract_text(const char *path, const char *s, size_t n, qai_doc *d) {
    qai_tb tb;
    tb_init(&tb);
    tb_raw(&tb, s, n);
    /* underlined headings: "Title\n=====" with the title line preceded by a blank line or the start,
     * at most 80 bytes, and the underline at least half the title's length */
    size_t prev_start = 0, prev_len = 0, i = 0;
    bool prev_blank_before = true, prev_valid = false;
    bool blank_before_cur = true;
    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        size_t len = e - i;
        int lv = underline_level(s + i, len);
        if (lv && prev_valid && prev_blank_before && prev_len <= 80 && len * 2 >= prev_len) {
            int idx = tb_section_begin(&tb, lv);
            if (idx >= 0) {
                tb.secs[idx].start = prev_start;
                tb_section_title(&tb, idx, s + prev_start, prev_len);
            }
            prev_valid = false;
            blank_before_cur = false;
        } else {
            bool blank = true;
            for (size_t k = i; k < e; k++)
                if (s[k] != ' ' && s[k] != '\t') blank = false;
            prev_valid = !blank && !lv;
            prev_start = i;
            prev_len = len;
            prev_blank_before = blank_before_cur;
            blank_before_cur = blank;
        }
        i = e + 1;
    }
    return tb_finish(&tb, d);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static qai_status extract_any(const char *path, const void *data, size_t size, qai_doc_type type, qai_doc_list *out,
                              bool skip_bad, int *n_bad) {
    memset(out, 0, sizeof *out);
    if (n_bad) *n_bad = 0;
    const char *name = path ? path : "<input>";
    if (!data && size) return qai_error(QAI_ERR_ARG, "'%s': no data", name);
    if (type == QAI_DOC_UNKNOWN) {
        qai_status st = qai_doc_detect(path, data, size < 4096 ? size : 4096, &type);
        if (st) return st;
    }
    out->type = type;
    qai_doc d;
    memset(&d, 0, sizeof d);
    int cap = 0;
    qai_status st;
    if (type == QAI_DOC_PDF) {
        st = qai_extract_pdf(name, data, size, &d);
        if (st == QAI_OK) st = docs_push(out, &cap, &d);
    } else {
        st = check_text(name, data, size, false);
        if (st) return st;
        size_t n, bad;
        char *clean = qai_utf8_clean(data ? data : "", size, &n, &bad);
        if (!clean) return qai_error(QAI_ERR_NOMEM, "'%s': out of memory", name);
        int nb = 0;
        switch (type) {
        case QAI_DOC_TEXT: st = qai_extract_text(name, clean, n, &d); break;
        case QAI_DOC_MARKDOWN: st = qai_extract_markdown(name, clean, n, &d); break;
        case QAI_DOC_HTML: st = qai_extract_html(name, clean, n, &d); break;
        case QAI_DOC_MAN: st = qai_extract_man(name, clean, n, &d); break;
        case QAI_DOC_JSONL: st = qai_extract_jsonl(name, clean, n, out, skip_bad, &nb); break;
        case QAI_DOC_CSV: st = qai_extract_csv(name, clean, n, out, skip_bad, &nb); break;
        default: st = qai_error(QAI_ERR_ARG, "'%s': unknown document type %d", name, (int)type);
        }
        qai_free(clean);
        if (n_bad) *n_bad = nb;
        if (st == QAI_OK && type != QAI_DOC_JSONL && type != QAI_DOC_CSV) st = docs_push(out, &cap, &d);
    }
    if (st) {
        doc_release(&d);
        qai_doc_type t = out->type;
        qai_doc_list_free(out);
        out->type = t;
        if (st == QAI_ERR_NOMEM) qai_error(st, "'%s': out of memory while extracting", name);
        return st;
    }
    for (int i = 0; i < out->n_docs; i++) {
        qai_doc *x = &out->docs[i];
        if (!x->text) {
            x->text = qai_strdup("");
            if (!x->text) {
                qai_doc_list_free(out);
                return qai_error(QAI_ERR_NOMEM, "'%s': out of memory", name);
            }
            x->len = 0;
        }
        if (!x->lang[0]) qai_doc_guess_lang(x->text, x->len, x->lang);
    }
    return QAI_OK;
}

qai_status qai_doc_extract(const char *path, const void *data, size_t size, qai_doc_type type, qai_doc_list *out) {
    return extract_any(path, data, size, type, out, false, NULL);
}

qai_status qai_doc_extract_records(const char *path, const void *data, size_t size, qai_doc_type type,
                                   qai_doc_list *out, int *n_bad) {
    int nb = 0;
    qai_status st = extract_any(path, data, size, type, out, true, &nb);
    if (n_bad) *n_bad = nb;
    return st;
}

/* ---- reading files -------------------------------------------------------------------- */

static qai_status gunzip_file(const char *path, char **data, size_t *size) {
    struct archive *a = archive_read_new();
    if (!a) return qai_error(QAI_ERR_NOMEM, "'%s': out of memory", path);
    archive_read_support_filter_gzip(a);
    archive_read_support_format_raw(a);
    archive_read_support_format_empty(a); /* a gzip of an empty file */
    qai_status st = QAI_OK;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    struct archive_entry *e;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        st = qai_error(access(path, R_OK) == 0 ? QAI_ERR_FORMAT : QAI_ERR_IO, "cannot read '%s' as gzip: %s", path,
                       archive_error_string(a));
        goto done;
    }
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) goto done; /* empty */
    if (r != ARCHIVE_OK) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': not a gzip file (%s)", path, archive_error_string(a));
        goto done;
    }
    if (archive_filter_count(a) < 2) { /* only the raw "none" filter: not compressed */
        st = qai_error(QAI_ERR_FORMAT, "'%s': not gzip-compressed", path);
        goto done;
    }
    for (;;) {
        if (cap - n < 65536) {
            size_t nc = cap ? cap * 2 : 1 << 17;
            if (nc > QAI_DOC_MAX_BYTES + 65537) nc = QAI_DOC_MAX_BYTES + 65537;
            if (nc <= cap) {
                st = qai_error(QAI_ERR_RANGE, "'%s': decompresses to more than %zu MiB; refused", path,
                               QAI_DOC_MAX_BYTES >> 20);
                goto done;
            }
            char *nb = qai_realloc(buf, nc);
            if (!nb) {
                st = qai_error(QAI_ERR_NOMEM, "'%s': out of memory", path);
                goto done;
            }
            buf = nb;
            cap = nc;
        }
        la_ssize_t got = archive_read_data(a, buf + n, cap - n - 1);
        if (got < 0) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': corrupt gzip data after %zu bytes: %s", path, n,
                           archive_error_string(a));
            goto done;
        }
        if (got == 0) break;
        n += (size_t)got;
        if (n > QAI_DOC_MAX_BYTES) {
            st = qai_error(QAI_ERR_RANGE, "'%s': decompresses to more than %zu MiB; refused", path,
                           QAI_DOC_MAX_BYTES >> 20);
            goto done;
        }
    }
done:
    archive_read_free(a);
    if (st) {
        qai_free(buf);
        return st;
    }
    if (!buf) {
        buf = qai_malloc(1);
        if (!buf) return qai_error(QAI_ERR_NOMEM, "'%s': out of memory", path);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return QAI_OK;
}

qai_status qai_doc_load_bytes(const char *path, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    size_t pl = strlen(path);
    if (ends_with_ci(path, pl, ".gz")) return gunzip_file(path, data, size);
    struct stat stt;
    if (stat(path, &stt) != 0) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (!S_ISREG(stt.st_mode)) return qai_error(QAI_ERR_IO, "'%s' is not a regular file", path);
    if ((uint64_t)stt.st_size > QAI_DOC_MAX_BYTES)
        return qai_error(QAI_ERR_RANGE, "'%s' is larger than %zu MiB (%lld bytes); refused", path,
                         QAI_DOC_MAX_BYTES >> 20, (long long)stt.st_size);
    return qai_file_read(path, data, size);
}

qai_status qai_doc_read_file(const char *path, qai_doc_list *out) {
    memset(out, 0, sizeof *out);
    char *data;
    size_t size;
    qai_status st = qai_doc_load_bytes(path, &data, &size);
    if (st) return st;
    st = qai_doc_extract(path, data, size, QAI_DOC_UNKNOWN, out);
    qai_free(data);
    return st;
}
