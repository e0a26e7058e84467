/* Small helpers of the server: JSON string escaping and base64 into a byte
 * buffer, UTF-8 boundaries, and the API error filler. */
#include <stdarg.h>
#include <string.h>

#include "serve_internal.h"

/* Length of the valid UTF-8 sequence at s, 0 if invalid (overlongs,
 * surrogates, > U+10FFFF), or -1 if it is a valid but truncated start. */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else
        return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -1;
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t utf8_complete_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int l = utf8_seq(u + i, n - i);
        if (l < 0) return i; /* may still be completed by the next token */
        i += l ? (size_t)l : 1;
    }
    return n;
}

void sb_json_str(sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    sb_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            char esc[8];
            switch (c) {
            case '"': sb_put(b, "\\\"", 2); break;
            case '\\': sb_put(b, "\\\\", 2); break;
            case '\n': sb_put(b, "\\n", 2); break;
            case '\r': sb_put(b, "\\r", 2); break;
            case '\t': sb_put(b, "\\t", 2); break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    snprintf(esc, sizeof esc, "\\u%04x", c);
                    sb_put(b, esc, 6);
                } else
                    sb_put(b, (const char *)u + i, 1);
            }
            i++;
            continue;
        }
        int l = utf8_seq(u + i, n - i);
        if (l > 0) {
            sb_put(b, (const char *)u + i, (size_t)l);
            i += (size_t)l;
        } else {
            sb_put(b, "\xEF\xBF\xBD", 3); /* U+FFFD */
            i++;
        }
    }
    sb_put(b, "\"", 1);
}

qai_status serve_err(qai_serve_error *e, int status, const char *type, const char *code, const char *param,
                     const char *fmt, ...) {
    if (!e) return QAI_ERR_FORMAT;
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status == 400 && !strcmp(e->code, "unsupported") ? QAI_ERR_UNSUPPORTED : QAI_ERR_FORMAT;
}

void sb_base64(sbuf *b, const void *data, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        q[0] = A[v >> 18 & 63];
        q[1] = A[v >> 12 & 63];
        q[2] = i + 1 < n ? A[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? A[v & 63] : '=';
        sb_put(b, q, 4);
    }
}

/* ---- tool-call text ----
 * The grammar guarantees the shape ({"name": N, "arguments": A}, name first,
 * whitespace runs between tokens), so the scanner only needs to find where
 * things are, and to stop where the text ends. Each scan_* returns 1 when the
 * item is complete (pos just past it), 0 when the text ends inside it, -1 when
 * the byte at pos cannot start it. */

static bool tc_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t tc_skip_ws(const char *t, size_t n, size_t p) {
    while (p < n && tc_ws(t[p])) p++;
    return p;
}

static int tc_string(const char *t, size_t n, size_t *pos) {
    size_t p = *pos;
    if (p >= n) return 0;
    if (t[p] != '"') return -1;
    for (p++; p < n; p++) {
        if (t[p] == '\\') {
            p++;
            continue;
        }
        if (t[p] == '"') {
            *pos = p + 1;
            return 1;
        }
    }
    *pos = n;
    return 0;
}

static int tc_value(const char *t, size_t n, size_t *pos) {
    size_t p = *pos;
    if (p >= n) return 0;
    if (t[p] == '"') return tc_string(t, n, pos);
    if (t[p] == '{' || t[p] == '[') {
        int depth = 0;
        while (p < n) {
            char c = t[p];
            if (c == '"') {
                int r = tc_string(t, n, &p);
                if (r <= 0) {
                    *pos = n;
                    return r < 0 ? -1 : 0;
                }
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) {
                    *pos = p + 1;
                    return 1;
                }
            }
            p++;
        }
        *pos = n;
        return 0;
    }
    /* a number or a literal: ends at the first byte that cannot continue it */
    while (p < n && !tc_ws(t[p]) && t[p] != ',' && t[p] != '}' && t[p] != ']') p++;
    *pos = p;
    return p < n ? 1 : 0;
}

/* One call at *pos. */
static int tc_call(const char *t, size_t n, size_t *pos, serve_tool_span *sp, bool *started) {
    size_t p = tc_skip_ws(t, n, *pos);
    *started = false;
    if (p >= n) return 0;
    if (t[p] != '{') return -1;
    p = tc_skip_ws(t, n, p + 1);
    int r = tc_string(t, n, &p); /* "name" */
    if (r <= 0) return r;
    p = tc_skip_ws(t, n, p);
    if (p >= n) return 0;
    if (t[p] != ':') return -1;
    p = tc_skip_ws(t, n, p + 1);
    if (p >= n) return 0;
    memset(sp, 0, sizeof *sp);
    sp->name_off = p;
    *started = true;
    r = tc_string(t, n, &p);
    if (r <= 0) return r;
    sp->name_len = p - sp->name_off;
    sp->name_done = true;
    p = tc_skip_ws(t, n, p);
    if (p >= n) return 0;
    if (t[p] != ',') return -1;
    p = tc_skip_ws(t, n, p + 1);
    r = tc_string(t, n, &p); /* "arguments" */
    if (r <= 0) return r;
    p = tc_skip_ws(t, n, p);
    if (p >= n) return 0;
    if (t[p] != ':') return -1;
    p = tc_skip_ws(t, n, p + 1);
    if (p >= n) return 0;
    sp->args_off = sp->args_end = p;
    r = tc_value(t, n, &p);
    sp->args_end = p;
    if (r <= 0) return r;
    sp->args_done = true;
    p = tc_skip_ws(t, n, p);
    if (p >= n) return 0;
    if (t[p] != '}') return -1;
    *pos = p + 1;
    return 1;
}

int serve_tool_scan(const char *t, size_t n, bool parallel, serve_tool_span *calls, int max, int *mode) {
    size_t p = tc_skip_ws(t, n, 0);
    if (p >= n) {
        *mode = -1;
        return 0;
    }
    if (t[p] != (parallel ? '[' : '{')) {
        *mode = 0;
        return 0;
    }
    *mode = 1;
    if (parallel) p++;
    int k = 0;
    for (;;) {
        serve_tool_span sp;
        bool started;
        int r = tc_call(t, n, &p, &sp, &started);
        if (started) {
            if (k < max) calls[k] = sp;
            k++;
        }
        if (r <= 0 || !parallel) break;
        p = tc_skip_ws(t, n, p);
        if (p >= n || t[p] != ',') break;
        p++;
    }
    return k;
}
