/*
 * extract_md.c — Markdown: the text is kept exactly as written (Markdown is
 * meant to be read as is, and keeping it means a chunk's span quotes the
 * source file verbatim); only the structure is parsed: ATX headings
 * (# .. ######, up to 3 spaces of indent, optional closing #s) and setext
 * headings (a paragraph line underlined by === or ---) become sections.
 * Lines inside fenced code blocks (``` or ~~~, closed by a fence of the same
 * character at least as long) and indented code (4+ spaces after a blank
 * line) are never headings. A leading YAML front matter block (--- ... ---)
 * is kept as text but its closing --- is not a setext underline.
 *
 * Deliberately not done: stripping link URLs, emphasis markers or HTML blocks
 * (a retrieval index sees "[text](url)" as the words text and url, which is
 * acceptable and keeps spans exact); heading titles have their inline markers
 * (*, _, `) removed.
 */
#include "ingest_internal.h"

#include <string.h>

static size_t indent_of(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && s[i] == ' ') i++;
    return i;
}

/* returns fence length (>= 3) and char if the line opens/closes a fence */
static size_t fence_len(const char *s, size_t n, char *fc) {
    size_t i = indent_of(s, n);
    if (i > 3 || i >= n || (s[i] != '`' && s[i] != '~')) return 0;
    char c = s[i];
    size_t j = i;
    while (j < n && s[j] == c) j++;
    if (j - i < 3) return 0;
    if (c == '`')
        for (size_t k = j; k < n; k++)
            if (s[k] == '`') return 0; /* backtick fences' info strings hold no backticks */
    *fc = c;
    return j - i;
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return false;
    return true;
}

/* title without inline markers */
static void set_title(qai_tb *tb, int idx, const char *s, size_t n) {
    char *t = qai_malloc(n + 1);
    if (!t) {
        tb->oom = true;
        return;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '*' && s[i] != '`' && !(s[i] == '_' && (i == 0 || i + 1 == n || s[i - 1] == ' ' || s[i + 1] == ' ')))
            t[j++] = s[i];
    tb_section_title(tb, idx, t, j);
    qai_free(t);
}

qai_status qai_extract_markdown(const char *path, const char *s, size_t n, qai_doc *d) {
    qai_tb tb;
    tb_init(&tb);
    tb_raw(&tb, s, n);
    size_t i = 0;
    char fence_c = 0;
    size_t fence_n = 0;
    bool in_fence = false;
    bool prev_para = false; /* previous line is a paragraph line that may take a setext underline */
    size_t prev_start = 0, prev_len = 0;
    bool prev_blank = true;
    int first_h1 = -1, first_any = -1;
    /* front matter */
    if (n >= 4 && memcmp(s, "---\n", 4) == 0) {
        size_t k = 4;
        while (k < n) {
            size_t e = k;
            while (e < n && s[e] != '\n') e++;
            if ((e - k == 3 && memcmp(s + k, "---", 3) == 0) || (e - k == 3 && memcmp(s + k, "...", 3) == 0)) {
                i = e < n ? e + 1 : e;
                break;
            }
            k = e + 1;
        }
    }
    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        const char *l = s + i;
        size_t len = e - i;
        char fc;
        size_t fl = fence_len(l, len, &fc);
        if (in_fence) {
            if (fl && fc == fence_c && fl >= fence_n && is_blank(l + indent_of(l, len) + fl, len - indent_of(l, len) - fl))
                in_fence = false;
            prev_para = false;
            prev_blank = false;
            i = e + 1;
            continue;
        }
        if (fl) {
            in_fence = true;
            fence_c = fc;
            fence_n = fl;
            prev_para = false;
            prev_blank = false;
            i = e + 1;
            continue;
        }
        bool blank = is_blank(l, len);
        size_t ind = indent_of(l, len);
        if (blank) {
            prev_para = false;
            prev_blank = true;
            i = e + 1;
            continue;
        }
        if (ind >= 4 && (prev_blank || !prev_para)) { /* indented code */
            prev_para = false;
            prev_blank = false;
            i = e + 1;
            continue;
        }
        /* ATX */
        if (ind <= 3 && l[ind] == '#') {
            size_t h = ind;
            while (h < len && l[h] == '#') h++;
            int level = (int)(h - ind);
            if (level <= 6 && (h == len || l[h] == ' ' || l[h] == '\t')) {
                size_t ts = h, te = len;
                while (ts < te && (l[ts] == ' ' || l[ts] == '\t')) ts++;
                while (te > ts && (l[te - 1] == ' ' || l[te - 1] == '\t')) te--;
                size_t c = te;
                while (c > ts && l[c - 1] == '#') c--;
                if (c == ts || l[c - 1] == ' ' || l[c - 1] == '\t') te = c; /* closing sequence */
                while (te > ts && (l[te - 1] == ' ' || l[te - 1] == '\t')) te--;
                int idx = tb_section_begin(&tb, level);
                if (idx >= 0) {
                    tb.secs[idx].start = i;
                    set_title(&tb, idx, l + ts, te - ts);
                    if (level == 1 && first_h1 < 0) first_h1 = idx;
                    if (first_any < 0) first_any = idx;
                }
                prev_para = false;
                prev_blank = false;
                i = e + 1;
                continue;
            }
        }
        /* setext underline */
        if (prev_para && ind <= 3) {
            size_t k = ind, te = len;
            while (te > k && (l[te - 1] == ' ' || l[te - 1] == '\t')) te--;
            char c = l[k];
            bool ok = (c == '=' || c == '-') && te > k;
            for (size_t m = k; ok && m < te; m++)
                if (l[m] != c) ok = false;
            if (ok) {
                int idx = tb_section_begin(&tb, c == '=' ? 1 : 2);
                if (idx >= 0) {
                    tb.secs[idx].start = prev_start;
                    set_title(&tb, idx, s + prev_start, prev_len);
                    if (c == '=' && first_h1 < 0) first_h1 = idx;
                    if (first_any < 0) first_any = idx;
                }
                prev_para = false;
                prev_blank = false;
                i = e + 1;
                continue;
            }
        }
        /* a paragraph line; a multi-line paragraph's underline makes only its last line the title
         * (simplification: CommonMark would take the whole paragraph) */
        bool list_or_quote = l[ind] == '>' || ((l[ind] == '-' || l[ind] == '*' || l[ind] == '+') && ind + 1 < len &&
                                               l[ind + 1] == ' ');
        prev_para = !list_or_quote;
        prev_start = i;
        prev_len = len;
        prev_blank = false;
        i = e + 1;
    }
    /* sections were appended in source order except setext ones, which start at the previous line:
     * still in order, since the underline follows its title directly */
    int ti = first_h1 >= 0 ? first_h1 : first_any;
    char *title = NULL;
    if (ti >= 0 && tb.secs[ti].title && tb.secs[ti].title[0]) {
        title = qai_strdup(tb.secs[ti].title);
        if (!title) tb.oom = true;
    }
    qai_status st = tb_finish(&tb, d);
    if (st) {
        qai_free(title);
        return st;
    }
    d->title = title;
    return QAI_OK;
}
