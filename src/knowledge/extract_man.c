/*
 * extract_man.c — man pages (roff) to readable text: the man(7) macros, the
 * common mdoc(7) macros, tbl tables flattened to "a | b | c" lines, roff
 * escapes and strings, conditionals, and the pod2man preamble.
 *
 * This is a reader for text extraction, not a typesetter: there is no line
 * filling, hyphenation, indentation or page layout; paragraphs become blank
 * lines, .TP/.It tags their own lines, font changes vanish. Conditionals
 * (.if/.ie/.el) are evaluated as nroff would for the common conditions (n true,
 * t false, \n(.g true for groff, string comparisons, plain numbers; anything
 * else false) with \{ ... \} blocks. User macros (.de) are skipped, not
 * expanded (pod2man's Sp/Vb/Ve are understood by name); strings (.ds) are
 * expanded. .so includes are not followed: a page that is only a .so link is
 * refused with QAI_ERR_UNSUPPORTED naming its target; elsewhere .so is ignored.
 *
 * Title: "name(section) - description" from the NAME section ("ls \- list
 * directory contents") and .TH / .Dt; sections: .SH/.Sh level 1, .SS/.Ss 2.
 */
#include "ingest_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- strings ---------------------------------------------------------------------- */

typedef qai_strbuf sbuf;

static void sb_cp(sbuf *b, uint32_t cp) {
    char u[4];
    qai_strbuf_put(b, u, (size_t)qai_utf8_put(cp, u));
}

/* ---- state --------------------------------------------------------------------- */

#define MAN_MAX_STRINGS 512
#define MAN_MAX_ARGS 64
#define MAN_MAX_LISTS 16

typedef struct {
    qai_tb tb;
    const char *path;
    bool nofill;
    char *th_name, *th_sec;
    bool in_name;          /* inside the NAME section */
    size_t name_start;
    char *name_text;       /* text of the NAME section */
    int cur_sec;           /* index of the section of the pending heading text */
    int pending_heading;   /* .SH with no arguments: level of the heading on the next line */
    bool tp_pending;       /* next output line is a .TP tag */
    bool no_break;         /* \c at the end of the last text line */
    char *str_name[MAN_MAX_STRINGS], *str_val[MAN_MAX_STRINGS];
    int n_str;
    bool ie_stack[32];
    int n_ie;
    /* tbl */
    bool in_tbl;
    int tbl_state; /* 0 options/format, 1 data */
    char tbl_tab;
    /* mdoc */
    char *mdoc_name;
    bool mdoc_nospace;
    int list_type[MAN_MAX_LISTS]; /* 0 tag, 1 bullet, 2 dash, 3 enum, 4 item, 5 column */
    int list_count[MAN_MAX_LISTS];
    int n_list;
    char *so_target;
    bool in_synopsis;      /* .Nm starts a line there */
    bool sm_off;           /* mdoc .Sm off: no spaces between words */
    bool it_open;          /* .It ... Xo: the tag goes on until .Xc */
    bool any_text;
    int depth;
} man_st;

/* ---- escapes ------------------------------------------------------------------- */

static const struct { const char *n; uint32_t cp; } glyphs[] = {
    {"em", 0x2014}, {"en", 0x2013}, {"hy", '-'}, {"aq", '\''}, {"dq", '"'}, {"lq", 0x201C}, {"rq", 0x201D},
    {"oq", 0x2018}, {"cq", 0x2019}, {"bu", 0x2022}, {"co", 0xA9}, {"rg", 0xAE}, {"tm", 0x2122}, {"de", 0xB0},
    {"mu", 0xD7}, {"di", 0xF7}, {"+-", 0xB1}, {">=", 0x2265}, {"<=", 0x2264}, {"!=", 0x2260}, {"->", 0x2192},
    {"<-", 0x2190}, {"ua", 0x2191}, {"da", 0x2193}, {"rs", '\\'}, {"sl", '/'}, {"ba", '|'}, {"bv", '|'},
    {"br", 0x2502}, {"ul", '_'}, {"ru", '_'}, {"ti", '~'}, {"ha", '^'}, {"ga", '`'}, {"aa", 0xB4},
    {"ss", 0xDF}, {":a", 0xE4}, {":o", 0xF6}, {":u", 0xFC}, {":A", 0xC4}, {":O", 0xD6}, {":U", 0xDC},
    {"'e", 0xE9}, {"`e", 0xE8}, {"^e", 0xEA}, {"'a", 0xE1}, {"`a", 0xE0}, {",c", 0xE7}, {"~n", 0xF1},
    {"Fo", 0xAB}, {"Fc", 0xBB}, {"fo", 0x2039}, {"fc", 0x203A}, {"ct", 0xA2}, {"Po", 0xA3}, {"Ye", 0xA5},
    {"Eu", 0x20AC}, {"eu", 0x20AC}, {"sc", 0xA7}, {"ps", 0xB6}, {"dg", 0x2020}, {"dd", 0x2021}, {"OK", 0x2713},
    {"**", 0x2217}, {"pl", '+'}, {"mi", '-'}, {"eq", '='}, {"no", 0xAC}, {"sq", 0x25A1}, {"ci", 0x25CB},
    {"lh", 0x261C}, {"rh", 0x261E}, {"at", '@'}, {"sh", '#'}, {"Do", '$'}, {"en", 0x2013}, {"fm", 0x2032},
    {"sd", 0x2033}, {"tno", 0xAC}, {"nbsp", ' '}, {"ap", '~'}, {"cr", 0x21B5}, {"lA", 0x21D0}, {"rA", 0x21D2},
    {"hA", 0x21D4}, {"<>", 0x2194}, {"es", 0x2205}, {"if", 0x221E}, {"pd", 0x2202}, {"gr", 0x2207},
    {"sr", 0x221A}, {"is", 0x222B}, {"ca", 0x2229}, {"cu", 0x222A}, {"mo", 0x2208}, {"sb", 0x2282},
    {"sp", 0x2283}, {"==", 0x2261}, {"~=", 0x2245}, {"~~", 0x2248}, {"*a", 0x3B1}, {"*b", 0x3B2},
    {"*g", 0x3B3}, {"*d", 0x3B4}, {"*e", 0x3B5}, {"*l", 0x3BB}, {"*m", 0x3BC}, {"*p", 0x3C0},
    {"*s", 0x3C3}, {"*t", 0x3C4}, {"*W", 0x3A9}, {"12", 0xBD}, {"14", 0xBC}, {"34", 0xBE}, {"S1", 0xB9},
    {"S2", 0xB2}, {"S3", 0xB3}, {"r!", 0xA1}, {"r?", 0xBF}, {"Bq", 0x201E}, {"bq", 0x201A}, {"Cs", 0xA4},
    {"Of", 0xAA}, {"Om", 0xBA}, {"'A", 0xC1}, {"'E", 0xC9}, {"'o", 0xF3}, {"'u", 0xFA}, {"'i", 0xED},
    {"`o", 0xF2}, {"^o", 0xF4}, {"^a", 0xE2}, {"~a", 0xE3}, {"~o", 0xF5}, {"/o", 0xF8}, {"oa", 0xE5},
    {"ae", 0xE6}, {"AE", 0xC6}, {"-D", 0xD0}, {"Sd", 0xF0}, {"TP", 0xDE}, {"Tp", 0xFE}, {"hy", 0x2010},
};

static void glyph(sbuf *o, const char *name, size_t n) {
    if (n >= 5 && name[0] == 'u') { /* \[u00E9] or \[u0065_0301] */
        uint32_t v = 0;
        size_t i = 1;
        for (; i < n && i < 7; i++) {
            char c = name[i];
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
            if (d < 0) break;
            v = v * 16 + (uint32_t)d;
        }
        if (i >= 5) {
            sb_cp(o, v);
            return;
        }
    }
    if (n > 4 && strncmp(name, "char", 4) == 0) {
        int v = atoi(name + 4);
        if (v > 31 && v < 127) {
            char c = (char)v;
            qai_strbuf_put(o, &c, 1);
        }
        return;
    }
    for (size_t i = 0; i < sizeof glyphs / sizeof glyphs[0]; i++)
        if (strlen(glyphs[i].n) == n && memcmp(glyphs[i].n, name, n) == 0) {
            sb_cp(o, glyphs[i].cp);
            return;
        }
    if (n == 1) qai_strbuf_put(o, name, 1); /* \[x] */
}

static const char *find_string(man_st *m, const char *name, size_t n) {
    for (int i = m->n_str - 1; i >= 0; i--)
        if (strlen(m->str_name[i]) == n && memcmp(m->str_name[i], name, n) == 0) return m->str_val[i];
    static const struct { const char *n, *v; } pre[] = {
        {"lq", "\xe2\x80\x9c"}, {"rq", "\xe2\x80\x9d"}, {"R", "\xc2\xae"}, {"Tm", "\xe2\x84\xa2"},
        {"aq", "'"}, {"Aq", "'"}, {"S", ""}, {"HF", ""}};
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (strlen(pre[i].n) == n && memcmp(pre[i].n, name, n) == 0) return pre[i].v;
    return "";
}

/* Reads an escape's name argument at s[i]: x, (xx or [name]. Returns the new index. */
static size_t esc_name(const char *s, size_t n, size_t i, const char **nm, size_t *nl) {
    if (i >= n) {
        *nm = s + n;
        *nl = 0;
        return n;
    }
    if (s[i] == '(') { /* two characters (whole UTF-8 sequences, so nothing is cut) */
        size_t j = i + 1;
        for (int k = 0; k < 2 && j < n; k++) {
            size_t l = qai_utf8_seq((const unsigned char *)s + j, n - j);
            j += l ? l : 1;
        }
        *nm = s + i + 1;
        *nl = j - i - 1;
        return j;
    }
    if (s[i] == '[') {
        size_t e = i + 1;
        while (e < n && s[e] != ']') e++;
        *nm = s + i + 1;
        *nl = e - i - 1;
        return e < n ? e + 1 : n;
    }
    size_t l = qai_utf8_seq((const unsigned char *)s + i, n - i);
    *nm = s + i;
    *nl = l ? l : 1;
    return i + *nl;
}

/* skips a delimited argument 'xxx' at s[i]; returns the index after it and the inside */
static size_t esc_delim(const char *s, size_t n, size_t i, size_t *in_s, size_t *in_n) {
    *in_s = i + 1;
    *in_n = 0;
    if (i >= n) return n;
    /* the delimiter is one character, possibly a multi-byte one */
    size_t dl = qai_utf8_seq((const unsigned char *)s + i, n - i);
    if (!dl) dl = 1;
    *in_s = i + dl;
    size_t e = i + dl;
    while (e + dl <= n && memcmp(s + e, s + i, dl) != 0) e++;
    if (e + dl > n) {
        *in_n = n - *in_s;
        return n;
    }
    *in_n = e - *in_s;
    return e + dl;
}

/* Converts roff text with escapes into plain UTF-8. Sets *cont when the text ends with \c. */
static void unescape(man_st *m, const char *s, size_t n, sbuf *o, bool *cont) {
    if (cont) *cont = false;
    if (m->depth > 8) return;
    size_t i = 0;
    while (i < n) {
        size_t r = i;
        while (r < n && s[r] != '\\') r++;
        qai_strbuf_put(o, s + i, r - i);
        i = r;
        if (i >= n) break;
        i++; /* past '\' */
        if (i >= n) {
            if (cont) *cont = true; /* trailing backslash: joined line */
            break;
        }
        char c = s[i++];
        const char *nm;
        size_t nl, a, an;
        switch (c) {
        case '"': return;            /* comment */
        case '#': return;
        case 'e': case '\\': qai_strbuf_put(o, "\\", 1); break;
        case '-': qai_strbuf_put(o, "-", 1); break;
        case ' ': case '~': case '0': qai_strbuf_put(o, " ", 1); break;
        case 't': qai_strbuf_put(o, "\t", 1); break;
        case '\'': qai_strbuf_put(o, "'", 1); break;
        case '`': qai_strbuf_put(o, "`", 1); break;
        case '.': qai_strbuf_put(o, ".", 1); break;
        case 'c':
            if (cont) *cont = true;
            break;
        case '&': case '|': case '^': case '%': case ':': case ')': case ',': case '/': case 'a': case 'd':
        case 'u': case 'r': case 'p': case 'E': case '{': case '}': case '!': case '?': case 'z':
            break;
        case '(': case '[':
            i = esc_name(s, n, i - 1, &nm, &nl);
            glyph(o, nm, nl);
            break;
        case 'C':
            i = esc_delim(s, n, i, &a, &an);
            glyph(o, s + a, an);
            break;
        case 'N':
            i = esc_delim(s, n, i, &a, &an);
            if (an) {
                int v = atoi(s + a);
                if (v >= 32 && v < 0x110000) sb_cp(o, (uint32_t)v);
            }
            break;
        case '*': {
            i = esc_name(s, n, i, &nm, &nl);
            const char *v = find_string(m, nm, nl);
            m->depth++;
            unescape(m, v, strlen(v), o, NULL);
            m->depth--;
            break;
        }
        case 'f': case 'F': case 'n': case 'g': case 'k': case 'm': case 'M': case 'V': case 'Y': case 'O':
        case '$':
            if (c == 'n' && i < n && (s[i] == '+' || s[i] == '-')) i++;
            i = esc_name(s, n, i, &nm, &nl);
            break;
        case 's':
            if (i < n && (s[i] == '+' || s[i] == '-')) i++;
            if (i < n && (s[i] == '(' || s[i] == '[')) i = esc_name(s, n, i, &nm, &nl);
            else if (i < n && s[i] == '\'') i = esc_delim(s, n, i, &a, &an);
            else {
                if (i < n && s[i] >= '0' && s[i] <= '9') i++;
                if (i < n && s[i - 1] >= '1' && s[i - 1] <= '3' && s[i] >= '0' && s[i] <= '9') i++;
            }
            break;
        case 'w': case 'h': case 'v': case 'l': case 'L': case 'D': case 'b': case 'X': case 'H': case 'S':
        case 'x': case 'R': case 'A': case 'B': case 'Z': case 'o':
            i = esc_delim(s, n, i, &a, &an);
            if ((c == 'Z' || c == 'o') && an) {
                size_t first = qai_utf8_seq((const unsigned char *)s + a, an);
                m->depth++;
                unescape(m, s + a, c == 'o' ? (first ? first : 1) : an, o, NULL);
                m->depth--;
            }
            break;
        default: {
            /* unknown escape: the character itself (whole UTF-8 sequence) */
            size_t l = qai_utf8_seq((const unsigned char *)s + i - 1, n - (i - 1));
            if (!l) l = 1;
            qai_strbuf_put(o, s + i - 1, l);
            i += l - 1;
        }
        }
    }
}

/* ---- arguments ------------------------------------------------------------------ */

/* Splits a request's argument text into raw (still escaped) arguments. Quotes group; "" inside quotes
 * is a literal quote (kept as the two-byte sequence \(dq). Returns the count; storage in buf. */
static int split_args(const char *s, size_t n, char *buf, const char **argv, int max) {
    int argc = 0;
    size_t i = 0, j = 0;
    while (i < n && argc < max) {
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i >= n) break;
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == '"') break; /* comment */
        argv[argc++] = buf + j;
        if (s[i] == '"') {
            i++;
            while (i < n) {
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        memcpy(buf + j, "\\(dq", 4);
                        j += 4;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (s[i] == '\\' && i + 1 < n) buf[j++] = s[i++];
                buf[j++] = s[i++];
            }
        } else {
            while (i < n && s[i] != ' ' && s[i] != '\t') {
                if (s[i] == '\\' && i + 1 < n) buf[j++] = s[i++];
                buf[j++] = s[i++];
            }
        }
        buf[j++] = 0;
    }
    return argc;
}

/* ---- output -------------------------------------------------------------------- */

static void after_output(man_st *m) {
    if (m->tp_pending) {
        m->tp_pending = false;
        tb_newline(&m->tb);
    }
}

/* writes escaped roff text as a text line */
static void out_text(man_st *m, const char *s, size_t n) {
    sbuf o = {0};
    bool cont;
    unescape(m, s, n, &o, &cont);
    if (o.oom) m->tb.oom = true;
    if (m->pending_heading) {
        int lv = m->pending_heading;
        m->pending_heading = 0;
        qai_strbuf_free(&o);
        /* re-enter as a heading */
        tb_blankline(&m->tb);
        int idx = tb_section_begin(&m->tb, lv);
        sbuf t = {0};
        unescape(m, s, n, &t, NULL);
        if (t.n) {
            tb_text(&m->tb, t.p, t.n);
            tb_section_title(&m->tb, idx, t.p, t.n);
        }
        qai_strbuf_free(&t);
        tb_newline(&m->tb);
        return;
    }
    if (o.n) {
        if (m->nofill) {
            tb_raw(&m->tb, o.p, o.n);
            if (!cont) tb_raw(&m->tb, "\n", 1);
        } else {
            if (!m->no_break && n && (s[0] == ' ' || s[0] == '\t')) tb_newline(&m->tb);
            tb_text(&m->tb, o.p, o.n);
            if (!cont) tb_space(&m->tb);
        }
        m->any_text = true;
    } else if (m->nofill && !cont)
        tb_raw(&m->tb, "\n", 1);
    m->no_break = cont;
    qai_strbuf_free(&o);
    if (!cont) after_output(m);
}

/* emits plain (already unescaped) words as flowing text */
static void out_plain(man_st *m, const char *s, size_t n) {
    if (!n) return;
    if (m->nofill) {
        tb_raw(&m->tb, s, n);
        tb_raw(&m->tb, "\n", 1);
    } else {
        tb_text(&m->tb, s, n);
        tb_space(&m->tb);
    }
    m->any_text = true;
    after_output(m);
}

static void end_name_section(man_st *m) {
    if (!m->in_name) return;
    m->in_name = false;
    if (!m->name_text && m->tb.len >= m->name_start)
        m->name_text = qai_strndup_trim(m->tb.buf ? m->tb.buf + m->name_start : "", m->tb.len - m->name_start);
}

static void heading(man_st *m, int level, const char *title, size_t tn) {
    end_name_section(m);
    m->nofill = false;
    m->tp_pending = false;
    m->n_list = 0;
    tb_blankline(&m->tb);
    int idx = tb_section_begin(&m->tb, level);
    tb_text(&m->tb, title, tn);
    tb_section_title(&m->tb, idx, title, tn);
    tb_newline(&m->tb);
    if (level == 1) m->in_synopsis = tn == 8 && memcmp(title, "SYNOPSIS", 8) == 0;
    if (level == 1 && tn == 4 && memcmp(title, "NAME", 4) == 0) {
        m->in_name = true;
        m->name_start = m->tb.len;
    }
}

/* ---- mdoc inline rendering --------------------------------------------------- */

static bool is_mdoc_callable(const char *a) {
    static const char *const names[] = {
        "Ac", "Ad", "An", "Ao", "Ap", "Aq", "Ar", "At", "Bc", "Bo", "Bq", "Brc", "Bro", "Brq", "Bsx", "Bx",
        "Cd", "Cm", "Dc", "Do", "Dq", "Dv", "Dx", "Ec", "Em", "Eo", "Er", "Es", "Ev", "Fa", "Fc", "Fl", "Fn",
        "Fo", "Fr", "Ft", "Fx", "Ic", "In", "Li", "Lk", "Ms", "Mt", "Nm", "No", "Ns", "Nx", "Oc", "Oo", "Op",
        "Ox", "Pa", "Pc", "Pf", "Po", "Pq", "Qc", "Ql", "Qo", "Qq", "Sc", "So", "Sq", "St", "Sx", "Sy", "Ta",
        "Tn", "Ux", "Va", "Vt", "Xc", "Xo", "Xr"};
    size_t l = strlen(a);
    if (l < 2 || l > 3 || a[0] < 'A' || a[0] > 'Z') return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(a, names[i]) == 0) return true;
    return false;
}

static bool is_close_punct(const char *a) {
    return a[0] && !a[1] && strchr(".,:;)]?!", a[0]);
}
static bool is_open_punct(const char *a) { return a[0] && !a[1] && strchr("([", a[0]); }

typedef struct {
    sbuf *o;
    bool nospace; /* no space before the next word */
    bool sm_off;
} mrender;

static void mword(man_st *m, mrender *r, const char *pre, const char *w) {
    if (m->sm_off) r->nospace = true;
    sbuf t = {0};
    unescape(m, w, strlen(w), &t, NULL);
    if (r->o->n && !r->nospace && !is_close_punct(w)) qai_strbuf_put(r->o, " ", 1);
    r->nospace = false;
    if (pre) qai_strbuf_puts(r->o, pre);
    if (t.n) qai_strbuf_put(r->o, t.p, t.n);
    if (is_open_punct(w)) r->nospace = true;
    qai_strbuf_free(&t);
}

static void mlit(mrender *r, const char *s, bool space_before) {
    if (r->sm_off) space_before = false;
    if (space_before && r->o->n && !r->nospace) qai_strbuf_put(r->o, " ", 1);
    r->nospace = false;
    qai_strbuf_puts(r->o, s);
}

/* renders args[i..n) */
static void mrender_args(man_st *m, mrender *r, const char **args, int i, int n, int depth) {
    if (depth > 16) return;
    while (i < n) {
        const char *a = args[i];
        if (!is_mdoc_callable(a)) {
            mword(m, r, NULL, a);
            i++;
            continue;
        }
        i++;
        if (!strcmp(a, "Fl")) {
            bool any = false;
            while (i < n && !is_mdoc_callable(args[i]) && !is_close_punct(args[i])) {
                mword(m, r, "-", args[i++]);
                any = true;
            }
            if (!any) mlit(r, "-", true);
        } else if (!strcmp(a, "Ar")) {
            if (i >= n || is_mdoc_callable(args[i]) || is_close_punct(args[i])) mlit(r, "file ...", true);
        } else if (!strcmp(a, "Nm")) {
            if ((i >= n || is_mdoc_callable(args[i]) || is_close_punct(args[i])) && m->mdoc_name)
                mlit(r, m->mdoc_name, true);
        } else if (!strcmp(a, "Op") || !strcmp(a, "Dq") || !strcmp(a, "Sq") || !strcmp(a, "Pq") ||
                   !strcmp(a, "Bq") || !strcmp(a, "Aq") || !strcmp(a, "Brq") || !strcmp(a, "Ql") ||
                   !strcmp(a, "Qq")) {
            const char *o = "[", *c = "]";
            if (!strcmp(a, "Dq")) o = "\xe2\x80\x9c", c = "\xe2\x80\x9d";
            else if (!strcmp(a, "Sq") || !strcmp(a, "Ql")) o = "\xe2\x80\x98", c = "\xe2\x80\x99";
            else if (!strcmp(a, "Pq")) o = "(", c = ")";
            else if (!strcmp(a, "Aq")) o = "<", c = ">";
            else if (!strcmp(a, "Brq")) o = "{", c = "}";
            else if (!strcmp(a, "Qq")) o = "\"", c = "\"";
            /* trailing closing punctuation stays outside the enclosure */
            int e = n;
            while (e > i && is_close_punct(args[e - 1])) e--;
            mlit(r, o, true);
            r->nospace = true;
            mrender_args(m, r, args, i, e, depth + 1);
            r->nospace = true;
            mlit(r, c, false);
            i = e;
        } else if (!strcmp(a, "Xr")) {
            if (i < n) {
                mword(m, r, NULL, args[i++]);
                if (i < n && !is_mdoc_callable(args[i]) && !is_close_punct(args[i])) {
                    qai_strbuf_put(r->o, "(", 1);
                    sbuf t = {0};
                    unescape(m, args[i], strlen(args[i]), &t, NULL);
                    if (t.n) qai_strbuf_put(r->o, t.p, t.n);
                    qai_strbuf_free(&t);
                    qai_strbuf_put(r->o, ")", 1);
                    i++;
                }
            }
        } else if (!strcmp(a, "Ns") || !strcmp(a, "Ap")) {
            r->nospace = true;
            if (!strcmp(a, "Ap")) {
                qai_strbuf_put(r->o, "'", 1);
                r->nospace = true;
            }
        } else if (!strcmp(a, "Pf")) {
            if (i < n) {
                mword(m, r, NULL, args[i++]);
                r->nospace = true;
            }
        } else if (!strcmp(a, "Fn")) {
            if (i < n) {
                mword(m, r, NULL, args[i++]);
                qai_strbuf_put(r->o, "(", 1);
                bool first = true;
                while (i < n && !is_mdoc_callable(args[i]) && !is_close_punct(args[i])) {
                    if (!first) qai_strbuf_put(r->o, ", ", 2);
                    r->nospace = true;
                    mword(m, r, NULL, args[i++]);
                    first = false;
                }
                qai_strbuf_put(r->o, ")", 1);
            }
        } else if (!strcmp(a, "Fo")) {
            if (i < n) mword(m, r, NULL, args[i++]);
            qai_strbuf_put(r->o, "(", 1);
            r->nospace = true;
        } else if (!strcmp(a, "Fc")) {
            qai_strbuf_put(r->o, ")", 1);
        } else if (!strcmp(a, "Oo") || !strcmp(a, "Bo") || !strcmp(a, "Po") || !strcmp(a, "Do") ||
                   !strcmp(a, "So") || !strcmp(a, "Ao") || !strcmp(a, "Qo") || !strcmp(a, "Bro")) {
            const char *o = !strcmp(a, "Po") ? "(" : !strcmp(a, "Do") ? "\xe2\x80\x9c" : !strcmp(a, "So") ? "\xe2\x80\x98"
                            : !strcmp(a, "Ao") ? "<" : !strcmp(a, "Qo") ? "\"" : !strcmp(a, "Bro") ? "{" : "[";
            mlit(r, o, true);
            r->nospace = true;
        } else if (!strcmp(a, "Oc") || !strcmp(a, "Bc") || !strcmp(a, "Pc") || !strcmp(a, "Dc") ||
                   !strcmp(a, "Sc") || !strcmp(a, "Ac") || !strcmp(a, "Qc") || !strcmp(a, "Brc")) {
            const char *c = !strcmp(a, "Pc") ? ")" : !strcmp(a, "Dc") ? "\xe2\x80\x9d" : !strcmp(a, "Sc") ? "\xe2\x80\x99"
                            : !strcmp(a, "Ac") ? ">" : !strcmp(a, "Qc") ? "\"" : !strcmp(a, "Brc") ? "}" : "]";
            r->nospace = true;
            mlit(r, c, false);
        } else if (!strcmp(a, "At") || !strcmp(a, "Bx") || !strcmp(a, "Nx") || !strcmp(a, "Fx") ||
                   !strcmp(a, "Ox") || !strcmp(a, "Bsx") || !strcmp(a, "Ux") || !strcmp(a, "Dx")) {
            const char *w = !strcmp(a, "At") ? "AT&T UNIX" : !strcmp(a, "Bx") ? "BSD" : !strcmp(a, "Nx") ? "NetBSD"
                            : !strcmp(a, "Fx") ? "FreeBSD" : !strcmp(a, "Ox") ? "OpenBSD" : !strcmp(a, "Bsx") ? "BSD/OS"
                            : !strcmp(a, "Dx") ? "DragonFly" : "UNIX";
            mlit(r, w, true);
        } else if (!strcmp(a, "St")) {
            if (i < n) {
                const char *s = args[i++];
                const char *w = !strncmp(s, "-p1003.1", 8) ? "IEEE Std 1003.1 (\xe2\x80\x9cPOSIX.1\xe2\x80\x9d)"
                                : !strncmp(s, "-ansiC", 6) ? "ANSI X3.159-1989 (\xe2\x80\x9c" "ANSI C89\xe2\x80\x9d)"
                                : !strncmp(s, "-isoC", 5) ? "ISO/IEC 9899 (\xe2\x80\x9cISO C\xe2\x80\x9d)"
                                : !strncmp(s, "-xpg", 4) ? "X/Open Portability Guide" : s;
                mlit(r, w, true);
            }
        } else if (!strcmp(a, "Lk")) {
            if (i < n) {
                const char *url = args[i++];
                if (i < n && !is_mdoc_callable(args[i]) && !is_close_punct(args[i])) mword(m, r, NULL, args[i++]);
                else mword(m, r, NULL, url);
            }
        } else if (!strcmp(a, "Ta")) {
            mlit(r, "|", true);
        } else if (!strcmp(a, "In")) {
            if (i < n) {
                mlit(r, "#include <", true);
                r->nospace = true;
                mword(m, r, NULL, args[i++]);
                qai_strbuf_put(r->o, ">", 1);
            }
        }
        /* every other callable macro (Em Sy Li Cm Ic Pa Ev Va Dv Er Ad Fa Ft Tn Sx Mt Vt Cd ...) only
         * changes the font: its words follow as ordinary words */
    }
}

static void mdoc_line(man_st *m, const char **args, int n) {
    sbuf o = {0};
    mrender r = {&o, false, m->sm_off};
    mrender_args(m, &r, args, 0, n, 0);
    if (o.oom) m->tb.oom = true;
    if (o.n) out_plain(m, o.p, o.n);
    qai_strbuf_free(&o);
}

/* ---- tbl ---------------------------------------------------------------------- */

static void tbl_row(man_st *m, const char *s, size_t n) {
    size_t t = 0;
    while (t < n && (s[t] == ' ' || s[t] == '\t')) t++;
    if (n - t == 1 && (s[t] == '_' || s[t] == '=')) return;
    if (n - t == 2 && s[t] == '\\' && (s[t + 1] == '_' || s[t + 1] == '=')) return;
    tb_newline(&m->tb);
    size_t i = 0;
    bool first = true;
    while (i <= n) {
        size_t e = i;
        while (e < n && s[e] != m->tbl_tab) e++;
        sbuf o = {0};
        unescape(m, s + i, e - i, &o, NULL);
        if (!first) tb_raw(&m->tb, " | ", 3);
        size_t a = 0, b = o.n;
        while (a < b && (o.p[a] == ' ' || o.p[a] == '\t')) a++;
        while (b > a && (o.p[b - 1] == ' ' || o.p[b - 1] == '\t')) b--;
        if (b > a && !(b - a == 2 && memcmp(o.p + a, "T{", 2) == 0) && !(b - a == 2 && memcmp(o.p + a, "T}", 2) == 0))
            tb_text(&m->tb, o.p + a, b - a);
        qai_strbuf_free(&o);
        first = false;
        i = e + 1;
        if (e >= n) break;
    }
    tb_newline(&m->tb);
    m->any_text = true;
}

/* ---- requests ------------------------------------------------------------------ */

static void add_string(man_st *m, const char *name, const char *val, bool append) {
    for (int i = 0; i < m->n_str; i++)
        if (!strcmp(m->str_name[i], name)) {
            size_t ol = append ? strlen(m->str_val[i]) : 0, vl = strlen(val);
            if (ol + vl > 4096) return;
            char *nv = qai_malloc(ol + vl + 1);
            if (!nv) {
                m->tb.oom = true;
                return;
            }
            memcpy(nv, m->str_val[i], ol);
            memcpy(nv + ol, val, vl + 1);
            qai_free(m->str_val[i]);
            m->str_val[i] = nv;
            return;
        }
    if (m->n_str >= MAN_MAX_STRINGS) return;
    char *a = qai_strdup(name), *b = qai_strdup(val);
    if (!a || !b) {
        qai_free(a);
        qai_free(b);
        m->tb.oom = true;
        return;
    }
    m->str_name[m->n_str] = a;
    m->str_val[m->n_str++] = b;
}

/* evaluates a conditional; *used gets the characters of the condition */
static bool eval_cond(man_st *m, const char *s, size_t n, size_t *used) {
    size_t i = 0;
    bool neg = false;
    while (i < n && s[i] == '!') neg = !neg, i++;
    bool v = false;
    if (i < n && (s[i] == 'n' || s[i] == 't' || s[i] == 'o' || s[i] == 'e') &&
        (i + 1 >= n || s[i + 1] == ' ' || s[i + 1] == '\t' || s[i + 1] == '\\')) {
        v = s[i] == 'n' || s[i] == 'o';
        i++;
    } else if (i < n && (s[i] == '\'' || s[i] == '"' || s[i] == '|' || s[i] == '/')) {
        char d = s[i];
        size_t a = i + 1, e1 = a;
        while (e1 < n && s[e1] != d) e1++;
        size_t b = e1 + 1, e2 = b;
        while (e2 < n && s[e2] != d) e2++;
        if (e2 < n) {
            sbuf x = {0}, y = {0};
            unescape(m, s + a, e1 - a, &x, NULL);
            unescape(m, s + b, e2 - b, &y, NULL);
            v = x.n == y.n && (x.n == 0 || memcmp(x.p, y.p, x.n) == 0);
            qai_strbuf_free(&x);
            qai_strbuf_free(&y);
            i = e2 + 1;
        } else
            i = n;
    } else {
        size_t st = i;
        while (i < n && s[i] != ' ' && s[i] != '\t') {
            if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '}')) break;
            i++;
        }
        size_t l = i - st;
        if ((l == 5 && !memcmp(s + st, "\\n(.g", 5)) || (l == 6 && !memcmp(s + st, "\\n[.g]", 6))) v = true;
        else if (l && s[st] >= '1' && s[st] <= '9') v = true;
        else v = false;
    }
    *used = i;
    return neg ? !v : v;
}

static size_t count_sub(const char *s, size_t n, const char *pat) {
    size_t c = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == pat[0] && s[i + 1] == pat[1]) {
            if (i > 0 && s[i - 1] == '\\') continue; /* an escaped backslash before */
            c++;
        }
    return c;
}

typedef struct {
    const char *s;
    size_t n, pos;
    int line;
} man_src;

static bool next_line(man_src *src, const char **l, size_t *len) {
    if (src->pos >= src->n) return false;
    size_t e = src->pos;
    while (e < src->n && src->s[e] != '\n') e++;
    *l = src->s + src->pos;
    *len = e - src->pos;
    src->pos = e < src->n ? e + 1 : e;
    src->line++;
    return true;
}

static void skip_block(man_src *src, long depth) {
    const char *l;
    size_t len;
    while (depth > 0 && next_line(src, &l, &len)) {
        depth += (long)count_sub(l, len, "\\{");
        depth -= (long)count_sub(l, len, "\\}");
    }
}

static void process_line(man_st *m, man_src *src, const char *s, size_t n);

static void do_body(man_st *m, man_src *src, bool cond, const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    bool block = n >= 2 && s[0] == '\\' && s[1] == '{';
    if (block) {
        s += 2, n -= 2;
        while (n && (*s == ' ' || *s == '\t')) s++, n--;
    }
    if (!cond) {
        if (block) {
            long depth = 1 + (long)count_sub(s, n, "\\{") - (long)count_sub(s, n, "\\}");
            skip_block(src, depth);
        }
        return;
    }
    if (n && m->depth < 16) {
        m->depth++;
        process_line(m, src, s, n);
        m->depth--;
    }
}

/* K("ab"): the key of a request name literal (folded to a constant by the compiler) */
#define K(lit)                                                                                                         \
    ((uint32_t)(unsigned char)(lit)[0] | (sizeof(lit) > 2 ? (uint32_t)(unsigned char)(lit)[1] << 8 : 0u) |            \
     (sizeof(lit) > 3 ? (uint32_t)(unsigned char)(lit)[2] << 16 : 0u))

static void request(man_st *m, man_src *src, const char *nm, const char *rest, size_t rn) {
    /* request names of up to 3 bytes as one integer: a chain of integer compares, no strcmp */
    uint32_t nmk = strlen(nm) <= 3 ? (uint32_t)(unsigned char)nm[0] | (uint32_t)(unsigned char)(nm[0] ? nm[1] : 0) << 8 |
                                         (uint32_t)(unsigned char)(nm[0] && nm[1] ? nm[2] : 0) << 16
                                   : 0xFFFFFFFFu;
    char buf[4096];
    const char *argv[MAN_MAX_ARGS];
    int argc = 0;
    /* args are parsed lazily for requests that take raw text */
    bool raw = nmk == K("if") || nmk == K("ie") || nmk == K("el") || nmk == K("ds") ||
               nmk == K("as") || nmk == K("ds1") || nmk == K("as1");
    if (!raw) {
        size_t cap = rn * 3 + 8;
        if (cap > sizeof buf) { /* very long request lines: truncate the args */
            rn = (sizeof buf - 8) / 3;
        }
        argc = split_args(rest, rn, buf, argv, MAN_MAX_ARGS);
    }
    /* ---- conditionals and definitions ---- */
    if (nmk == K("if") || nmk == K("ie")) {
        size_t used;
        size_t i = 0;
        while (i < rn && (rest[i] == ' ' || rest[i] == '\t')) i++;
        bool c = eval_cond(m, rest + i, rn - i, &used);
        if (nmk == K("ie") && m->n_ie < 32) m->ie_stack[m->n_ie++] = c;
        do_body(m, src, c, rest + i + used, rn - i - used);
        return;
    }
    if (nmk == K("el")) {
        bool c = m->n_ie > 0 ? !m->ie_stack[--m->n_ie] : false;
        do_body(m, src, c, rest, rn);
        return;
    }
    if (nmk == K("ds") || nmk == K("as") || nmk == K("ds1") || nmk == K("as1")) {
        size_t i = 0;
        while (i < rn && (rest[i] == ' ' || rest[i] == '\t')) i++;
        size_t ns = i;
        while (i < rn && rest[i] != ' ' && rest[i] != '\t') i++;
        char name[64];
        size_t nl = i - ns < sizeof name - 1 ? i - ns : sizeof name - 1;
        memcpy(name, rest + ns, nl);
        name[nl] = 0;
        while (i < rn && (rest[i] == ' ' || rest[i] == '\t')) i++;
        if (i < rn && rest[i] == '"') i++;
        char *val = qai_malloc(rn - i + 1);
        if (!val) {
            m->tb.oom = true;
            return;
        }
        memcpy(val, rest + i, rn - i);
        val[rn - i] = 0;
        if (nl) add_string(m, name, val, nm[0] == 'a');
        qai_free(val);
        return;
    }
    if (nmk == K("de") || nmk == K("am") || nmk == K("ig") || nmk == K("de1") || nmk == K("am1")) {
        /* skip to ".." (or ".END" for .ig END / .de NAME END) */
        const char *end = nmk == K("ig") ? (argc >= 1 ? argv[0] : ".") : (argc >= 2 ? argv[1] : ".");
        const char *l;
        size_t len;
        while (next_line(src, &l, &len)) {
            size_t k = 0;
            if (len && (l[0] == '.' || l[0] == '\'')) {
                k = 1;
                while (k < len && (l[k] == ' ' || l[k] == '\t')) k++;
                size_t el = strlen(end);
                if (len - k >= el && memcmp(l + k, end, el) == 0 &&
                    (len - k == el || l[k + el] == ' ' || l[k + el] == '\t' || l[k + el] == '\\'))
                    break;
            }
        }
        return;
    }
    if (nmk == K("so")) {
        if (!m->so_target && argc >= 1) {
            m->so_target = qai_strdup(argv[0]);
            if (!m->so_target) m->tb.oom = true;
        }
        return;
    }
    /* ---- man(7) ---- */
    if (nmk == K("TH")) {
        if (argc >= 1 && !m->th_name) m->th_name = qai_strdup(argv[0]);
        if (argc >= 2 && !m->th_sec) m->th_sec = qai_strdup(argv[1]);
        return;
    }
    if (nmk == K("SH") || nmk == K("SS") || nmk == K("Sh") || nmk == K("Ss")) {
        int lv = (nm[1] == 'H' || nm[1] == 'h') ? 1 : 2;
        if (argc == 0) {
            end_name_section(m);
            m->pending_heading = lv;
            return;
        }
        sbuf t = {0};
        if (nm[0] == 'S' && nm[1] >= 'a') { /* mdoc: callable macros allowed */
            mrender r = {&t, false, m->sm_off};
            mrender_args(m, &r, argv, 0, argc, 0);
        } else
            for (int i = 0; i < argc; i++) {
                if (i) qai_strbuf_put(&t, " ", 1);
                unescape(m, argv[i], strlen(argv[i]), &t, NULL);
            }
        heading(m, lv, t.p ? t.p : "", t.n);
        qai_strbuf_free(&t);
        return;
    }
    if (nmk == K("PP") || nmk == K("LP") || nmk == K("P") || nmk == K("HP") || nmk == K("Pp") ||
        nmk == K("Lp") || nmk == K("Sp") || nmk == K("sp") || nmk == K("YS") || nmk == K("bp")) {
        tb_blankline(&m->tb);
        m->tp_pending = false;
        return;
    }
    if (nmk == K("TP") || nmk == K("TQ")) {
        if (nmk == K("TP")) tb_blankline(&m->tb);
        else tb_newline(&m->tb);
        m->tp_pending = true;
        return;
    }
    if (nmk == K("IP")) {
        tb_blankline(&m->tb);
        if (argc >= 1) {
            sbuf t = {0};
            unescape(m, argv[0], strlen(argv[0]), &t, NULL);
            if (t.n) {
                tb_text(&m->tb, t.p, t.n);
                if (t.n > 4) tb_newline(&m->tb);
                else tb_space(&m->tb);
            }
            qai_strbuf_free(&t);
        }
        return;
    }
    if (nmk == K("br") || nmk == K("RS") || nmk == K("RE") || nmk == K("in") || nmk == K("ti") ||
        nmk == K("ce") || nmk == K("PD") || nmk == K("El") || nmk == K("Ed")) {
        tb_newline(&m->tb);
        if (nmk == K("Ed")) m->nofill = false;
        if (nmk == K("El") && m->n_list > 0) m->n_list--;
        return;
    }
    if (nmk == K("nf") || nmk == K("EX") || nmk == K("Vb")) {
        tb_newline(&m->tb);
        m->nofill = true;
        return;
    }
    if (nmk == K("fi") || nmk == K("EE") || nmk == K("Ve")) {
        tb_newline(&m->tb);
        m->nofill = false;
        return;
    }
    if (nmk == K("B") || nmk == K("I") || nmk == K("SM") || nmk == K("SB") || nmk == K("BR") ||
        nmk == K("IR") || nmk == K("RB") || nmk == K("BI") || nmk == K("IB") || nmk == K("RI") ||
        nmk == K("UE") || nmk == K("ME")) {
        if (argc == 0) return; /* font for the next line only: it is text anyway */
        bool alt = strlen(nm) == 2 && nm[0] != 'S' && nm[0] != 'U' && nm[0] != 'M';
        sbuf t = {0};
        for (int i = 0; i < argc; i++) {
            if (i && !alt) qai_strbuf_put(&t, " ", 1);
            bool c;
            unescape(m, argv[i], strlen(argv[i]), &t, &c);
        }
        if (t.oom) m->tb.oom = true;
        if (m->pending_heading) {
            int lv = m->pending_heading;
            m->pending_heading = 0;
            heading(m, lv, t.p ? t.p : "", t.n);
        } else
            out_plain(m, t.p ? t.p : "", t.n);
        qai_strbuf_free(&t);
        return;
    }
    if (nmk == K("SY")) {
        tb_blankline(&m->tb);
        if (argc) {
            sbuf t = {0};
            unescape(m, argv[0], strlen(argv[0]), &t, NULL);
            out_plain(m, t.p ? t.p : "", t.n);
            qai_strbuf_free(&t);
        }
        return;
    }
    if (nmk == K("OP")) {
        sbuf t = {0};
        qai_strbuf_put(&t, "[", 1);
        for (int i = 0; i < argc && i < 2; i++) {
            if (i) qai_strbuf_put(&t, " ", 1);
            unescape(m, argv[i], strlen(argv[i]), &t, NULL);
        }
        qai_strbuf_put(&t, "]", 1);
        out_plain(m, t.p, t.n);
        qai_strbuf_free(&t);
        return;
    }
    if (nmk == K("TS")) {
        tb_blankline(&m->tb);
        m->in_tbl = true;
        m->tbl_state = 0;
        m->tbl_tab = '\t';
        return;
    }
    if (nmk == K("TE")) {
        m->in_tbl = false;
        tb_blankline(&m->tb);
        return;
    }
    if (nmk == K("T&")) {
        if (m->in_tbl) m->tbl_state = 0;
        return;
    }
    if (nmk == K("EQ")) { /* skip eqn */
        const char *l;
        size_t len;
        while (next_line(src, &l, &len))
            if (len >= 3 && l[0] == '.' && l[1] == 'E' && l[2] == 'N') break;
        return;
    }
    /* ---- mdoc(7) ---- */
    if (nmk == K("Dt")) {
        if (argc >= 1 && !m->th_name) m->th_name = qai_strdup(argv[0]);
        if (argc >= 2 && !m->th_sec) m->th_sec = qai_strdup(argv[1]);
        return;
    }
    if (nmk == K("Sm")) {
        if (argc >= 1) m->sm_off = !strcmp(argv[0], "off");
        else m->sm_off = !m->sm_off;
        return;
    }
    if (nmk == K("Xc")) {
        if (m->it_open) {
            m->it_open = false;
            tb_newline(&m->tb);
        }
        return;
    }
    if (nmk == K("Dd") || nmk == K("Os") || nmk == K("Bk") || nmk == K("Ek") ||
        nmk == K("Db") || nmk == K("Bf") || nmk == K("Ef") || nmk == K("Rs") || nmk == K("Re"))
        return;
    if (nmk == K("Nm")) {
        if (argc >= 1 && !m->mdoc_name) {
            sbuf t = {0};
            unescape(m, argv[0], strlen(argv[0]), &t, NULL);
            m->mdoc_name = t.p ? t.p : qai_strdup("");
        }
        if (m->in_synopsis) tb_newline(&m->tb); /* SYNOPSIS: each .Nm starts a line */
        const char *a2[MAN_MAX_ARGS + 1];
        a2[0] = "Nm";
        for (int i = 0; i < argc; i++) a2[i + 1] = argv[i];
        mdoc_line(m, a2, argc + 1);
        return;
    }
    if (nmk == K("Nd")) {
        sbuf t = {0};
        mrender r = {&t, false, m->sm_off};
        mrender_args(m, &r, argv, 0, argc, 0);
        tb_space(&m->tb);
        tb_textz(&m->tb, "- ");
        out_plain(m, t.p ? t.p : "", t.n);
        qai_strbuf_free(&t);
        return;
    }
    if (nmk == K("Bl")) {
        tb_newline(&m->tb);
        int ty = 0;
        for (int i = 0; i < argc; i++) {
            if (!strcmp(argv[i], "-bullet")) ty = 1;
            else if (!strcmp(argv[i], "-dash") || !strcmp(argv[i], "-hyphen")) ty = 2;
            else if (!strcmp(argv[i], "-enum")) ty = 3;
            else if (!strcmp(argv[i], "-item")) ty = 4;
            else if (!strcmp(argv[i], "-column")) ty = 5;
        }
        if (m->n_list < MAN_MAX_LISTS) {
            m->list_type[m->n_list] = ty;
            m->list_count[m->n_list++] = 0;
        }
        return;
    }
    if (nmk == K("It")) {
        int ty = m->n_list ? m->list_type[m->n_list - 1] : 0;
        tb_newline(&m->tb);
        if (ty == 1) tb_raw(&m->tb, "\xe2\x80\xa2 ", 4);
        else if (ty == 2) tb_raw(&m->tb, "- ", 2);
        else if (ty == 3) {
            char num[16];
            snprintf(num, sizeof num, "%d. ", ++m->list_count[m->n_list - 1]);
            tb_raw(&m->tb, num, strlen(num));
        }
        if (ty == 5) {
            /* columns: tabs separate cells too */
            sbuf t = {0};
            mrender r = {&t, false, m->sm_off};
            mrender_args(m, &r, argv, 0, argc, 0);
            for (size_t i = 0; i < t.n; i++)
                if (t.p[i] == '\t') t.p[i] = ' ';
            if (t.n) out_plain(m, t.p, t.n);
            qai_strbuf_free(&t);
            tb_newline(&m->tb);
            return;
        }
        if (argc) {
            bool xo = !strcmp(argv[argc - 1], "Xo");
            mdoc_line(m, argv, xo ? argc - 1 : argc);
            if (xo) m->it_open = ty == 0;
            else if (ty == 0) tb_newline(&m->tb);
        }
        return;
    }
    if (nmk == K("Bd")) {
        tb_blankline(&m->tb);
        for (int i = 0; i < argc; i++)
            if (!strcmp(argv[i], "-literal") || !strcmp(argv[i], "-unfilled")) m->nofill = true;
        return;
    }
    if (nmk == K("D1") || nmk == K("Dl")) {
        tb_newline(&m->tb);
        mdoc_line(m, argv, argc);
        tb_newline(&m->tb);
        return;
    }
    if (nmk == K("Ex")) {
        const char *u = m->mdoc_name ? m->mdoc_name : "utility";
        for (int i = 0; i < argc; i++)
            if (argv[i][0] != '-') u = argv[i];
        char t[512];
        snprintf(t, sizeof t, "The %s utility exits 0 on success, and >0 if an error occurs.", u);
        out_plain(m, t, strlen(t));
        return;
    }
    if (nmk == K("Rv")) {
        const char *u = m->mdoc_name ? m->mdoc_name : "function";
        for (int i = 0; i < argc; i++)
            if (argv[i][0] != '-') u = argv[i];
        char t[512];
        snprintf(t, sizeof t,
                 "The %s() function returns the value 0 if successful; otherwise the value -1 is returned and "
                 "the global variable errno is set to indicate the error.",
                 u);
        out_plain(m, t, strlen(t));
        return;
    }
    if (nmk == K("An") || nmk == K("Fd") || nmk == K("Ft") || nmk == K("Fo") || nmk == K("Vt") ||
        nmk == K("Cd")) {
        if (nmk == K("Ft") || nmk == K("Fd") || nmk == K("Cd")) tb_newline(&m->tb);
        if (argc && !(argc == 1 && (!strcmp(argv[0], "-split") || !strcmp(argv[0], "-nosplit")))) {
            const char *a2[MAN_MAX_ARGS + 1];
            a2[0] = nm;
            for (int i = 0; i < argc; i++) a2[i + 1] = argv[i];
            mdoc_line(m, a2, argc + 1);
        }
        return;
    }
    if (nm[0] == '%') { /* reference parts */
        mdoc_line(m, argv, argc);
        return;
    }
    if (is_mdoc_callable(nm)) {
        const char *a2[MAN_MAX_ARGS + 1];
        a2[0] = nm;
        for (int i = 0; i < argc; i++) a2[i + 1] = argv[i];
        mdoc_line(m, a2, argc + 1);
        return;
    }
    /* everything else (nr, ft, ne, ad, na, hy, nh, ll, ps, vs, ta, tr, UR, MT, IX, tm, ...) has no text */
}

static void process_line(man_st *m, man_src *src, const char *s, size_t n) {
    if (m->in_tbl && m->tbl_state == 0 && !(n && s[0] == '.')) {
        /* options (end with ';') and format lines (the last one ends with '.') */
        size_t e = n;
        while (e && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
        if (e && s[e - 1] == ';') {
            const char *t = NULL;
            for (size_t i = 0; i + 4 < e; i++)
                if (!memcmp(s + i, "tab(", 4)) t = s + i + 4;
            if (t && t < s + e && *t != ')' && (unsigned char)*t < 0x80) m->tbl_tab = *t;
            return;
        }
        if (e && s[e - 1] == '.') m->tbl_state = 1;
        return;
    }
    if (n && (s[0] == '.' || s[0] == '\'')) {
        size_t i = 1;
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i + 1 < n && s[i] == '\\' && s[i + 1] == '"') return; /* .\" comment */
        size_t ns = i;
        while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\\') i++;
        char nm[16];
        size_t nl = i - ns;
        if (nl == 0) {
            /* "." alone, or ".\}" */
            return;
        }
        if (nl >= sizeof nm) return; /* not a request we know */
        memcpy(nm, s + ns, nl);
        nm[nl] = 0;
        request(m, src, nm, s + i, n - i);
        return;
    }
    if (m->in_tbl && m->tbl_state == 1) {
        /* T{ text blocks: gather until a line starting with T} */
        const char *tbl_open = NULL;
        for (size_t i = 0; i + 1 < n; i++)
            if (s[i] == 'T' && s[i + 1] == '{' && (i + 2 == n) && (i == 0 || s[i - 1] == m->tbl_tab)) tbl_open = s + i;
        if (tbl_open) {
            sbuf row = {0};
            qai_strbuf_put(&row, s, (size_t)(tbl_open - s));
            const char *l;
            size_t len;
            while (next_line(src, &l, &len)) {
                if (len >= 2 && l[0] == 'T' && l[1] == '}') {
                    qai_strbuf_put(&row, l + 2, len - 2);
                    break;
                }
                if (len && l[0] == '.') continue;
                qai_strbuf_put(&row, " ", 1);
                qai_strbuf_put(&row, l, len);
            }
            if (row.oom) m->tb.oom = true;
            tbl_row(m, row.p ? row.p : "", row.n);
            qai_strbuf_free(&row);
            return;
        }
        tbl_row(m, s, n);
        return;
    }
    if (n == 0 && !m->nofill) { /* a blank line is a paragraph break */
        tb_blankline(&m->tb);
        return;
    }
    out_text(m, s, n);
}

qai_status qai_extract_man(const char *path, const char *s, size_t n, qai_doc *d) {
    man_st *m = qai_calloc(1, sizeof *m);
    if (!m) return qai_error(QAI_ERR_NOMEM, "'%s': out of memory", path);
    tb_init(&m->tb);
    m->path = path;
    m->tbl_tab = '\t';
    man_src src = {s, n, 0, 0};
    const char *l;
    size_t len;
    sbuf joined = {0};
    while (next_line(&src, &l, &len)) {
        /* an unescaped backslash at the end continues the line */
        size_t bs = 0;
        while (bs < len && l[len - 1 - bs] == '\\') bs++;
        if (bs % 2 == 1) {
            joined.n = 0;
            qai_strbuf_put(&joined, l, len - 1);
            const char *l2;
            size_t len2;
            int guard = 0;
            while (guard++ < 10000 && next_line(&src, &l2, &len2)) {
                size_t b2 = 0;
                while (b2 < len2 && l2[len2 - 1 - b2] == '\\') b2++;
                if (b2 % 2 == 1) {
                    qai_strbuf_put(&joined, l2, len2 - 1);
                    continue;
                }
                qai_strbuf_put(&joined, l2, len2);
                break;
            }
            if (joined.oom) m->tb.oom = true;
            /* process a copy: the line handler may read further lines, but never the joined buffer */
            char *jl = qai_malloc(joined.n + 1);
            if (!jl) {
                m->tb.oom = true;
                break;
            }
            memcpy(jl, joined.p ? joined.p : "", joined.n);
            jl[joined.n] = 0;
            process_line(m, &src, jl, joined.n);
            qai_free(jl);
        } else
            process_line(m, &src, l, len);
        if (m->tb.oom) break;
    }
    qai_strbuf_free(&joined);
    end_name_section(m);
    qai_status st = QAI_OK;
    if (!m->any_text && m->so_target) {
        st = qai_error(QAI_ERR_UNSUPPORTED, "'%s': man page is only a link (.so %s); extract its target instead",
                       path, m->so_target);
        tb_release(&m->tb);
    } else {
        /* title: name(section) - description */
        char *title = NULL;
        const char *nt = m->name_text ? m->name_text : "";
        const char *dash = strstr(nt, " - ");
        size_t dl = 3;
        if (!dash) {
            dash = strstr(nt, " \xe2\x80\x94 "); /* em dash */
            dl = 5;
        }
        char name[256] = "";
        if (dash) {
            size_t k = 0;
            while (nt[k] && nt[k] != ',' && nt[k] != ' ' && nt + k < dash && k < sizeof name - 1) {
                name[k] = nt[k];
                k++;
            }
            name[k] = 0;
        }
        if (!name[0] && m->th_name) snprintf(name, sizeof name, "%s", m->th_name);
        if (!name[0] && m->mdoc_name) snprintf(name, sizeof name, "%s", m->mdoc_name);
        if (name[0]) {
            const char *desc = dash ? dash + dl : NULL;
            size_t tl = strlen(name) + (m->th_sec ? strlen(m->th_sec) : 0) + (desc ? strlen(desc) : 0) + 8;
            title = qai_malloc(tl);
            if (title) {
                if (m->th_sec) snprintf(title, tl, "%s(%s)%s%s", name, m->th_sec, desc ? " - " : "", desc ? desc : "");
                else snprintf(title, tl, "%s%s%s", name, desc ? " - " : "", desc ? desc : "");
                /* one line */
                for (char *p = title; *p; p++)
                    if (*p == '\n' || *p == '\t') *p = ' ';
            } else
                m->tb.oom = true;
        }
        st = tb_finish(&m->tb, d);
        if (st == QAI_OK) d->title = title;
        else qai_free(title);
    }
    for (int i = 0; i < m->n_str; i++) {
        qai_free(m->str_name[i]);
        qai_free(m->str_val[i]);
    }
    qai_free(m->th_name);
    qai_free(m->th_sec);
    qai_free(m->name_text);
    qai_free(m->mdoc_name);
    qai_free(m->so_target);
    qai_free(m);
    return st;
}
