/*
 * extract_html.c — HTML to readable text with a tolerant tokenizer.
 *
 * This is not an HTML5 tree builder: it reads tags, comments, CDATA and text
 * in one pass and keeps only the little state text extraction needs (inside
 * <pre>? inside a heading? inside a skipped element?), so unclosed and
 * misnested tags cannot derail it: a stray end tag is ignored, an unclosed
 * <pre> lasts to the end, an unclosed comment swallows the rest (as browsers
 * do).
 *
 * Rules: <script>, <style>, <noscript>, <template>, <svg>, <math>, <iframe>,
 * <object> content is skipped; block elements end the line (p, div, section,
 * headings, lists, tables, br, hr ...; p/headings/blockquote/pre leave a blank
 * line); h1-h6 become sections of level 1-6 whose title is the heading text;
 * the first <title> (outside svg) is the document title, else the first h1;
 * <pre> and <textarea> keep whitespace; <li> starts a line with "- "; table
 * cells of one row are joined with " | "; <img alt> text is kept. Character
 * references: decimal and hex numeric ones and about 150 common named ones
 * (all of Latin-1, typographic quotes/dashes, arrows, Greek letters, math); a
 * few legacy names (amp lt gt quot nbsp copy reg) also without the ';'.
 * Unknown names stay literal. Invalid numeric references give U+FFFD.
 */
#include "ingest_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- character references -------------------------------------------------------- */

typedef struct { const char *name; uint32_t cp; } html_ent;

/* sorted by strcmp (bsearch) */
static const html_ent entities[] = {
    {"AElig", 198}, {"Aacute", 193}, {"Acirc", 194}, {"Agrave", 192}, {"Alpha", 913}, {"Aring", 197},
    {"Atilde", 195}, {"Auml", 196}, {"Beta", 914}, {"Ccedil", 199}, {"Chi", 935}, {"Dagger", 8225},
    {"Delta", 916}, {"ETH", 208}, {"Eacute", 201}, {"Ecirc", 202}, {"Egrave", 200}, {"Epsilon", 917},
    {"Eta", 919}, {"Euml", 203}, {"Gamma", 915}, {"Iacute", 205}, {"Icirc", 206}, {"Igrave", 204},
    {"Iota", 921}, {"Iuml", 207}, {"Kappa", 922}, {"Lambda", 923}, {"Mu", 924}, {"Ntilde", 209},
    {"Nu", 925}, {"OElig", 338}, {"Oacute", 211}, {"Ocirc", 212}, {"Ograve", 210}, {"Omega", 937},
    {"Omicron", 927}, {"Oslash", 216}, {"Otilde", 213}, {"Ouml", 214}, {"Phi", 934}, {"Pi", 928},
    {"Prime", 8243}, {"Psi", 936}, {"Rho", 929}, {"Scaron", 352}, {"Sigma", 931}, {"THORN", 222},
    {"Tau", 932}, {"Theta", 920}, {"Uacute", 218}, {"Ucirc", 219}, {"Ugrave", 217}, {"Upsilon", 933},
    {"Uuml", 220}, {"Xi", 926}, {"Yacute", 221}, {"Yuml", 376}, {"Zeta", 918}, {"aacute", 225},
    {"acirc", 226}, {"acute", 180}, {"aelig", 230}, {"agrave", 224}, {"alpha", 945}, {"amp", 38},
    {"and", 8743}, {"ang", 8736}, {"apos", 39}, {"aring", 229}, {"asymp", 8776}, {"atilde", 227},
    {"auml", 228}, {"bdquo", 8222}, {"beta", 946}, {"brvbar", 166}, {"bull", 8226}, {"cap", 8745},
    {"ccedil", 231}, {"cedil", 184}, {"cent", 162}, {"check", 10003}, {"chi", 967}, {"circ", 710},
    {"copy", 169}, {"crarr", 8629}, {"cup", 8746}, {"curren", 164}, {"dArr", 8659}, {"dagger", 8224},
    {"darr", 8595}, {"deg", 176}, {"delta", 948}, {"divide", 247}, {"eacute", 233}, {"ecirc", 234},
    {"egrave", 232}, {"empty", 8709}, {"emsp", 8195}, {"ensp", 8194}, {"epsilon", 949}, {"equiv", 8801},
    {"eta", 951}, {"eth", 240}, {"euml", 235}, {"euro", 8364}, {"exist", 8707}, {"forall", 8704},
    {"frac12", 189}, {"frac14", 188}, {"frac34", 190}, {"frasl", 8260}, {"gamma", 947}, {"ge", 8805},
    {"gt", 62}, {"hArr", 8660}, {"harr", 8596}, {"hearts", 9829}, {"hellip", 8230}, {"iacute", 237},
    {"icirc", 238}, {"iexcl", 161}, {"igrave", 236}, {"infin", 8734}, {"int", 8747}, {"iota", 953},
    {"iquest", 191}, {"isin", 8712}, {"iuml", 239}, {"kappa", 954}, {"lArr", 8656}, {"lambda", 955},
    {"lang", 10216}, {"laquo", 171}, {"larr", 8592}, {"lceil", 8968}, {"ldquo", 8220}, {"le", 8804},
    {"lfloor", 8970}, {"lowast", 8727}, {"loz", 9674}, {"lrm", 8206}, {"lsaquo", 8249}, {"lsquo", 8216},
    {"lt", 60}, {"macr", 175}, {"mdash", 8212}, {"micro", 181}, {"middot", 183}, {"minus", 8722},
    {"mu", 956}, {"nabla", 8711}, {"nbsp", 160}, {"ndash", 8211}, {"ne", 8800}, {"ni", 8715},
    {"not", 172}, {"notin", 8713}, {"nsub", 8836}, {"ntilde", 241}, {"nu", 957}, {"oacute", 243},
    {"ocirc", 244}, {"oelig", 339}, {"ograve", 242}, {"oline", 8254}, {"omega", 969}, {"omicron", 959},
    {"oplus", 8853}, {"or", 8744}, {"ordf", 170}, {"ordm", 186}, {"oslash", 248}, {"otilde", 245},
    {"otimes", 8855}, {"ouml", 246}, {"para", 182}, {"part", 8706}, {"permil", 8240}, {"perp", 8869},
    {"phi", 966}, {"pi", 960}, {"piv", 982}, {"plusmn", 177}, {"pound", 163}, {"prime", 8242},
    {"prod", 8719}, {"prop", 8733}, {"psi", 968}, {"quot", 34}, {"rArr", 8658}, {"radic", 8730},
    {"rang", 10217}, {"raquo", 187}, {"rarr", 8594}, {"rceil", 8969}, {"rdquo", 8221}, {"reg", 174},
    {"rfloor", 8971}, {"rho", 961}, {"rlm", 8207}, {"rsaquo", 8250}, {"rsquo", 8217}, {"sbquo", 8218},
    {"scaron", 353}, {"sdot", 8901}, {"sect", 167}, {"shy", 173}, {"sigma", 963}, {"sigmaf", 962},
    {"sim", 8764}, {"spades", 9824}, {"sub", 8834}, {"sube", 8838}, {"sum", 8721}, {"sup", 8835},
    {"sup1", 185}, {"sup2", 178}, {"sup3", 179}, {"supe", 8839}, {"szlig", 223}, {"tau", 964},
    {"there4", 8756}, {"theta", 952}, {"thetasym", 977}, {"thinsp", 8201}, {"thorn", 254}, {"tilde", 732},
    {"times", 215}, {"trade", 8482}, {"uArr", 8657}, {"uacute", 250}, {"uarr", 8593}, {"ucirc", 251},
    {"ugrave", 249}, {"uml", 168}, {"upsilon", 965}, {"uuml", 252}, {"xi", 958}, {"yacute", 253},
    {"yen", 165}, {"yuml", 255}, {"zeta", 950}, {"zwj", 8205}, {"zwnj", 8204},
};

static int ent_cmp(const void *k, const void *e) {
    return strcmp((const char *)k, *(const char *const *)e);
}

/* Decodes a character reference at s (s[0] == '&'); returns bytes consumed (0: not a reference)
 * and the code point. */
static size_t decode_entity(const char *s, size_t n, uint32_t *cp) {
    if (n < 3) return 0;
    if (s[1] == '#') {
        size_t i = 2;
        bool hex = i < n && (s[i] == 'x' || s[i] == 'X');
        if (hex) i++;
        size_t st = i;
        uint32_t v = 0;
        while (i < n && i - st < 10) {
            char c = s[i];
            int dv;
            if (c >= '0' && c <= '9') dv = c - '0';
            else if (hex && c >= 'a' && c <= 'f') dv = c - 'a' + 10;
            else if (hex && c >= 'A' && c <= 'F') dv = c - 'A' + 10;
            else break;
            if (v <= 0x10FFFF) v = v * (hex ? 16 : 10) + (uint32_t)dv;
            i++;
        }
        if (i == st) return 0;
        if (i < n && s[i] == ';') i++;
        /* Windows-1252 C1 remaps that browsers apply */
        static const uint16_t c1[32] = {8364, 129,  8218, 402,  8222, 8230, 8224, 8225, 710,  8240, 352,
                                        8249, 338,  141,  381,  143,  144,  8216, 8217, 8220, 8221, 8226,
                                        8211, 8212, 732,  8482, 353,  8250, 339,  157,  382,  376};
        if (v >= 0x80 && v <= 0x9F) v = c1[v - 0x80];
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) v = 0xFFFD;
        *cp = v;
        return i;
    }
    char name[12];
    size_t i = 1;
    while (i < n && i - 1 < sizeof name - 1 &&
           ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9'))) {
        name[i - 1] = s[i];
        i++;
    }
    if (i == 1) return 0;
    name[i - 1] = 0;
    const char *key = name;
    const void *hit = NULL;
    if (i < n && s[i] == ';') {
        hit = bsearch(key, entities, sizeof entities / sizeof entities[0], sizeof entities[0], ent_cmp);
        if (hit) {
            *cp = ((const html_ent *)hit)->cp;
            return i + 1;
        }
        return 0;
    }
    static const char *const legacy[] = {"amp", "lt", "gt", "quot", "nbsp", "copy", "reg"};
    for (size_t k = 0; k < sizeof legacy / sizeof legacy[0]; k++) {
        size_t l = strlen(legacy[k]);
        if (strncmp(s + 1, legacy[k], l) == 0 && i - 1 >= l) {
            hit = bsearch(legacy[k], entities, sizeof entities / sizeof entities[0], sizeof entities[0], ent_cmp);
            if (hit && i - 1 == l) {
                *cp = ((const html_ent *)hit)->cp;
                return 1 + l;
            }
        }
    }
    return 0;
}

/* ---- tokenizer state ------------------------------------------------------------ */

typedef struct {
    qai_tb tb;
    bool pre;          /* inside <pre>/<textarea> */
    int pre_depth;
    int heading;       /* section index of the open heading, -1 none */
    int heading_level;
    size_t heading_start;
    bool in_title;
    size_t title_start;
    char *title;
    char *first_h1;
    bool row_has_cell;
    int svg_depth;
} html_st;

static void emit_text(html_st *h, const char *s, size_t n) {
    /* decode references into a small buffer and feed runs */
    size_t i = 0, run = 0;
    while (i < n) {
        if (s[i] == '&') {
            uint32_t cp;
            size_t c = decode_entity(s + i, n - i, &cp);
            if (c) {
                if (h->pre) tb_raw(&h->tb, s + run, i - run);
                else tb_text(&h->tb, s + run, i - run);
                if (cp == 160 || cp == 8194 || cp == 8195 || cp == 8201) {
                    if (h->pre) tb_raw(&h->tb, " ", 1);
                    else tb_space(&h->tb);
                } else if (cp != 173 && cp != 8204 && cp != 8205 && cp != 8206 && cp != 8207)
                    tb_codepoint(&h->tb, cp);
                i += c;
                run = i;
                continue;
            }
        }
        i++;
    }
    if (h->pre) tb_raw(&h->tb, s + run, n - run);
    else tb_text(&h->tb, s + run, n - run);
}

static bool name_is(const char *nm, const char *x) { return strcmp(nm, x) == 0; }

static int str_cmp(const void *a, const void *b) { return strcmp((const char *)a, *(const char *const *)b); }

static bool is_block(const char *t) {
    /* sorted for bsearch */
    static const char *const blocks[] = {
        "address", "article", "aside", "blockquote", "body", "br", "caption", "center", "dd", "details", "dialog",
        "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "frameset", "h1", "h2",
        "h3", "h4", "h5", "h6", "head", "header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "nav",
        "ol", "option", "p", "pre", "section", "select", "summary", "table", "tbody", "td", "textarea", "tfoot",
        "th", "thead", "title", "tr", "ul"};
    return bsearch(t, blocks, sizeof blocks / sizeof blocks[0], sizeof blocks[0], str_cmp) != NULL;
}

static bool is_para(const char *t) {
    return name_is(t, "p") || name_is(t, "blockquote") || name_is(t, "pre") || name_is(t, "table") ||
           name_is(t, "ul") || name_is(t, "ol") || name_is(t, "dl") || name_is(t, "section") ||
           name_is(t, "article") || name_is(t, "figure") || name_is(t, "hr");
}

static void close_heading(html_st *h) {
    if (h->heading < 0 && h->heading_level == 0) return;
    if (h->heading >= 0) {
        tb_section_title(&h->tb, h->heading, h->tb.buf ? h->tb.buf + h->heading_start : "",
                         h->tb.len - h->heading_start);
        if (h->heading_level == 1 && !h->first_h1 && h->tb.secs[h->heading].title &&
            h->tb.secs[h->heading].title[0])
            h->first_h1 = qai_strdup(h->tb.secs[h->heading].title);
    }
    h->heading = -1;
    h->heading_level = 0;
    tb_blankline(&h->tb);
}

static void close_title(html_st *h) {
    if (!h->in_title) return;
    h->in_title = false;
    if (!h->title) {
        h->title = qai_strndup_trim(h->tb.buf ? h->tb.buf + h->title_start : "", h->tb.len - h->title_start);
        if (h->title && !h->title[0]) {
            qai_free(h->title);
            h->title = NULL;
        }
        if (h->title) { /* collapse inner whitespace */
            char *t = h->title;
            size_t j = 0;
            for (size_t i = 0; t[i]; i++)
                if (!(t[i] == '\n' || ((t[i] == ' ') && j && t[j - 1] == ' '))) t[j++] = t[i] == '\n' ? ' ' : t[i];
            t[j] = 0;
        }
    }
    /* the title is metadata, not body text */
    h->tb.len = h->title_start;
    h->tb.pending_space = false;
}

/* Finds the end of an element whose content is skipped or raw: "</name" case-insensitively. Returns
 * the offset of '<' or n. */
static size_t find_end_tag(const char *s, size_t n, size_t from, const char *name) {
    size_t l = strlen(name);
    for (size_t i = from; i + 2 + l <= n; i++) {
        if (s[i] == '<' && s[i + 1] == '/' && strncasecmp(s + i + 2, name, l) == 0) {
            char c = i + 2 + l < n ? s[i + 2 + l] : '>';
            if (c == '>' || c == ' ' || c == '\t' || c == '\n' || c == '/') return i;
        }
    }
    return n;
}

/* Parses a tag at s[i] == '<'. Returns the offset just past it; fills name (lowercase), closing,
 * and the alt attribute span for img. */
static size_t parse_tag(const char *s, size_t n, size_t i, char *name, size_t cap, bool *closing, size_t *alt_s,
                        size_t *alt_n) {
    size_t j = i + 1;
    *closing = false;
    *alt_s = *alt_n = 0;
    if (j < n && s[j] == '/') {
        *closing = true;
        j++;
    }
    size_t k = 0;
    while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= '0' && s[j] <= '9') ||
                     s[j] == '-' || s[j] == ':')) {
        if (k + 1 < cap) name[k++] = (char)((s[j] >= 'A' && s[j] <= 'Z') ? s[j] + 32 : s[j]);
        j++;
    }
    name[k] = 0;
    /* attributes: name[=value], values quoted with ' or " may contain '>' */
    while (j < n && s[j] != '>') {
        if (s[j] == '"' || s[j] == '\'') {
            char q = s[j];
            size_t e = j + 1;
            while (e < n && s[e] != q) e++;
            j = e < n ? e + 1 : n;
            continue;
        }
        if ((s[j] == 'a' || s[j] == 'A') && j + 3 < n && strncasecmp(s + j, "alt", 3) == 0 &&
            (s[j - 1] == ' ' || s[j - 1] == '\t' || s[j - 1] == '\n')) {
            size_t e = j + 3;
            while (e < n && (s[e] == ' ' || s[e] == '\t' || s[e] == '\n')) e++;
            if (e < n && s[e] == '=') {
                e++;
                while (e < n && (s[e] == ' ' || s[e] == '\t' || s[e] == '\n')) e++;
                if (e < n && (s[e] == '"' || s[e] == '\'')) {
                    char q = s[e];
                    size_t f = e + 1;
                    while (f < n && s[f] != q) f++;
                    *alt_s = e + 1;
                    *alt_n = f - (e + 1);
                    j = f < n ? f + 1 : n;
                    continue;
                }
            }
        }
        j++;
    }
    return j < n ? j + 1 : n;
}

qai_status qai_extract_html(const char *path, const char *s, size_t n, qai_doc *d) {
    html_st h;
    memset(&h, 0, sizeof h);
    tb_init(&h.tb);
    h.heading = -1;
    size_t i = 0, text_start = 0;
    while (i < n) {
        if (s[i] != '<') {
            i++;
            continue;
        }
        /* flush text before the markup */
        if (i > text_start) emit_text(&h, s + text_start, i - text_start);
        if (i + 3 < n && s[i + 1] == '!' && s[i + 2] == '-' && s[i + 3] == '-') {
            const char *e = NULL;
            for (size_t k = i + 4; k + 2 < n + 0 && !e; k++)
                if (s[k] == '-' && s[k + 1] == '-' && s[k + 2] == '>') e = s + k;
            i = e ? (size_t)(e - s) + 3 : n;
            text_start = i;
            continue;
        }
        if (i + 8 < n && strncmp(s + i, "<![CDATA[", 9) == 0) {
            size_t k = i + 9;
            while (k + 2 < n && !(s[k] == ']' && s[k + 1] == ']' && s[k + 2] == '>')) k++;
            size_t e = k + 2 < n ? k : n;
            if (h.pre) tb_raw(&h.tb, s + i + 9, e - (i + 9));
            else tb_text(&h.tb, s + i + 9, e - (i + 9));
            i = e < n ? e + 3 : n;
            text_start = i;
            continue;
        }
        if (i + 1 < n && (s[i + 1] == '!' || s[i + 1] == '?')) { /* doctype, processing instruction */
            size_t k = i + 2;
            while (k < n && s[k] != '>') k++;
            i = k < n ? k + 1 : n;
            text_start = i;
            continue;
        }
        bool letter = i + 1 < n && ((s[i + 1] >= 'a' && s[i + 1] <= 'z') || (s[i + 1] >= 'A' && s[i + 1] <= 'Z'));
        bool endtag = i + 2 < n && s[i + 1] == '/' &&
                      ((s[i + 2] >= 'a' && s[i + 2] <= 'z') || (s[i + 2] >= 'A' && s[i + 2] <= 'Z'));
        if (!letter && !endtag) { /* a literal '<' */
            i++;
            text_start = i - 1;
            /* keep '<' as text: emit it now */
            if (h.pre) tb_raw(&h.tb, "<", 1);
            else tb_text(&h.tb, "<", 1);
            text_start = i;
            continue;
        }
        char name[16];
        bool closing;
        size_t alt_s, alt_n;
        size_t after = parse_tag(s, n, i, name, sizeof name, &closing, &alt_s, &alt_n);
        i = after;
        text_start = i;
        if (!closing) {
            if (name_is(name, "script") || name_is(name, "style") || name_is(name, "noscript") ||
                name_is(name, "template") || name_is(name, "iframe") || name_is(name, "object") ||
                name_is(name, "svg") || name_is(name, "math")) {
                if (after >= 2 && s[after - 2] == '/' && (name_is(name, "svg") || name_is(name, "math"))) continue;
                size_t e = find_end_tag(s, n, i, name);
                size_t k = e;
                while (k < n && s[k] != '>') k++;
                i = k < n ? k + 1 : n;
                text_start = i;
                continue;
            }
            if (name_is(name, "title")) {
                size_t e = find_end_tag(s, n, i, "title");
                if (!h.title) {
                    close_heading(&h);
                    tb_newline(&h.tb);
                    h.in_title = true;
                    h.title_start = h.tb.len;
                    emit_text(&h, s + i, e - i);
                    close_title(&h);
                }
                size_t k = e;
                while (k < n && s[k] != '>') k++;
                i = k < n ? k + 1 : n;
                text_start = i;
                continue;
            }
            if (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' && name[2] == 0) {
                close_heading(&h);
                tb_blankline(&h.tb);
                h.heading_level = name[1] - '0';
                h.heading = tb_section_begin(&h.tb, h.heading_level);
                h.heading_start = h.tb.len;
                continue;
            }
            if (name_is(name, "img") && alt_n) {
                tb_space(&h.tb);
                emit_text(&h, s + alt_s, alt_n);
                tb_space(&h.tb);
                continue;
            }
            if (name_is(name, "pre") || name_is(name, "textarea") || name_is(name, "listing") ||
                name_is(name, "xmp")) {
                tb_blankline(&h.tb);
                h.pre = true;
                h.pre_depth++;
                /* a newline right after <pre> is not content */
                if (i < n && s[i] == '\n') {
                    i++;
                    text_start = i;
                }
                continue;
            }
            if (name_is(name, "tr")) {
                tb_newline(&h.tb);
                h.row_has_cell = false;
                continue;
            }
            if (name_is(name, "td") || name_is(name, "th")) {
                if (h.row_has_cell) tb_raw(&h.tb, " | ", 3);
                h.row_has_cell = true;
                continue;
            }
            if (name_is(name, "li") || name_is(name, "dt")) {
                if (h.heading >= 0) close_heading(&h);
                tb_newline(&h.tb);
                if (name_is(name, "li")) tb_raw(&h.tb, "- ", 2);
                continue;
            }
            if (is_block(name)) {
                /* a block start inside an open heading (misnesting) ends the heading */
                if (h.heading >= 0 && !name_is(name, "br")) close_heading(&h);
                if (name_is(name, "br")) {
                    if (h.pre) tb_raw(&h.tb, "\n", 1);
                    else if (h.heading >= 0) tb_space(&h.tb);
                    else {
                        h.tb.pending_space = false;
                        if (tb_last(&h.tb) == '\n') tb_raw(&h.tb, "\n", 1);
                        else tb_newline(&h.tb);
                    }
                } else if (is_para(name)) tb_blankline(&h.tb);
                else tb_newline(&h.tb);
                continue;
            }
            /* inline elements: nothing */
            continue;
        }
        /* end tags */
        if (name[0] == 'h' && name[1] >= '1' && name[1] <= '6' && name[2] == 0) {
            close_heading(&h);
            continue;
        }
        if (name_is(name, "pre") || name_is(name, "textarea") || name_is(name, "listing") || name_is(name, "xmp")) {
            if (h.pre_depth > 0 && --h.pre_depth == 0) h.pre = false;
            tb_blankline(&h.tb);
            continue;
        }
        if (name_is(name, "td") || name_is(name, "th")) continue;
        if (is_block(name)) {
            if (h.heading >= 0) close_heading(&h);
            if (is_para(name)) tb_blankline(&h.tb);
            else tb_newline(&h.tb);
        }
    }
    if (n > text_start) emit_text(&h, s + text_start, n - text_start);
    close_heading(&h);
    char *title = h.title ? h.title : h.first_h1;
    if (title == h.title) qai_free(h.first_h1);
    qai_status st = tb_finish(&h.tb, d);
    if (st) {
        qai_free(title);
        return st;
    }
    d->title = title;
    (void)path;
    return QAI_OK;
}
