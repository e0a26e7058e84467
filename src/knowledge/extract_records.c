/*
 * extract_records.c — multi-record files: JSONL (one JSON object per line)
 * and CSV (RFC 4180 with a header row), one qai_doc per record.
 *
 * JSONL: the text is the string field "text" (or "content" when there is no
 * "text"); "id" (string or number) becomes record_id; every other field goes
 * into meta_json (an object, unformatted). Empty and whitespace-only lines are
 * skipped. A line that is not an object, or has no string text field, is an
 * error "path:LINE: ...".
 *
 * CSV: comma-separated (a header with no comma but ';' or tabs switches to
 * that separator), fields optionally quoted with '"', doubled quotes inside,
 * quoted fields may hold newlines; LF or CRLF line ends (the input is already
 * LF-normalized). The first record is the header. Each data record: when a
 * column is named "text" or "content" (any case) that cell is the text and the
 * other columns are metadata; otherwise the text is "column: value" lines for
 * the non-empty cells. meta_json is an object of all other columns (strings);
 * record_id is the 1-based data row number. A record with a different number of
 * fields than the header, an unterminated quote, or a character right after a
 * closing quote is an error "path:LINE: ..." (LINE of the record's first line).
 * Fully empty rows are skipped.
 */
#include "ingest_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* cleans a decoded string (JSON escapes can produce lone surrogates, CRs) */
static char *clean_copy(const char *s, size_t n, size_t *out_len) {
    size_t bad;
    return qai_utf8_clean(s, n, out_len, &bad);
}

qai_status qai_extract_jsonl(const char *path, const char *s, size_t n, qai_doc_list *out, bool skip_bad, int *n_bad) {
    int cap = 0;
    size_t i = 0;
    int line = 0;
    char first_err[512] = "";
    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        line++;
        size_t a = i, b = e;
        i = e + 1;
        while (a < b && (s[a] == ' ' || s[a] == '\t')) a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--;
        if (a == b) continue;
        const char *endp = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s + a, b - a, &endp, false);
        qai_status st = QAI_OK;
        if (!j) {
            size_t off = endp && endp >= s + a ? (size_t)(endp - (s + a)) : 0;
            st = qai_error(QAI_ERR_FORMAT, "%s:%d: invalid JSON near column %zu", path, line, off + 1);
        } else if (endp && (size_t)(endp - s) < b) {
            st = qai_error(QAI_ERR_FORMAT, "%s:%d: text after the JSON value at column %zu", path, line,
                           (size_t)(endp - (s + a)) + 1);
        } else if (!cJSON_IsObject(j)) {
            st = qai_error(QAI_ERR_FORMAT, "%s:%d: not a JSON object", path, line);
        }
        cJSON *t = NULL;
        if (!st) {
            t = cJSON_GetObjectItemCaseSensitive(j, "text");
            if (!t) t = cJSON_GetObjectItemCaseSensitive(j, "content");
            if (!t || !cJSON_IsString(t) || !t->valuestring)
                st = qai_error(QAI_ERR_FORMAT, "%s:%d: no string field \"text\" (or \"content\")", path, line);
        }
        if (st) {
            cJSON_Delete(j);
            if (st == QAI_ERR_FORMAT && skip_bad) {
                if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", qai_last_error());
                (*n_bad)++;
                continue;
            }
            return st;
        }
        qai_doc d;
        memset(&d, 0, sizeof d);
        d.text = clean_copy(t->valuestring, strlen(t->valuestring), &d.len);
        cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (id && cJSON_IsString(id)) d.record_id = qai_strdup(id->valuestring);
        else if (id && cJSON_IsNumber(id)) {
            char num[64];
            if (id->valuedouble == (double)(long long)id->valuedouble)
                snprintf(num, sizeof num, "%lld", (long long)id->valuedouble);
            else
                snprintf(num, sizeof num, "%.17g", id->valuedouble);
            d.record_id = qai_strdup(num);
        } else if (id) {
            char *x = cJSON_PrintUnformatted(id);
            if (x) {
                d.record_id = qai_strdup(x);
                cJSON_free(x);
            }
        }
        cJSON_DetachItemViaPointer(j, t);
        cJSON_Delete(t);
        if (id) {
            cJSON_DetachItemViaPointer(j, id);
            cJSON_Delete(id);
        }
        if (j->child) {
            char *x = cJSON_PrintUnformatted(j);
            if (x) {
                size_t ml;
                d.meta_json = clean_copy(x, strlen(x), &ml);
                cJSON_free(x);
            }
        }
        /* a record's own title: "title" field when present */
        cJSON *ti = cJSON_GetObjectItemCaseSensitive(j, "title");
        if (ti && cJSON_IsString(ti) && ti->valuestring[0]) {
            size_t tl;
            d.title = clean_copy(ti->valuestring, strlen(ti->valuestring), &tl);
        }
        cJSON_Delete(j);
        if (!d.text) {
            doc_release(&d);
            return QAI_ERR_NOMEM;
        }
        qai_status ps = docs_push(out, &cap, &d);
        if (ps) return ps;
    }
    if (first_err[0]) qai_error(QAI_ERR_FORMAT, "%s", first_err);
    return QAI_OK;
}

/* ---- CSV ---------------------------------------------------------------------- */

typedef struct {
    char **f;      /* fields (owned) */
    int n, cap;
} csv_rec;

static void rec_clear(csv_rec *r) {
    for (int i = 0; i < r->n; i++) qai_free(r->f[i]);
    r->n = 0;
}

static bool rec_push(csv_rec *r, const char *s, size_t n) {
    if (r->n == r->cap) {
        int nc = r->cap ? r->cap * 2 : 16;
        char **nf = qai_realloc(r->f, (size_t)nc * sizeof *nf);
        if (!nf) return false;
        r->f = nf;
        r->cap = nc;
    }
    char *x = qai_malloc(n + 1);
    if (!x) return false;
    memcpy(x, s, n);
    x[n] = 0;
    r->f[r->n++] = x;
    return true;
}

/* Reads one record starting at *pos. Returns 1 ok, 0 at end, negative status on error. *line counts. */
static int csv_read(const char *path, const char *s, size_t n, size_t *pos, int *line, char sep, csv_rec *r,
                    char **tmp, size_t *tcap) {
    rec_clear(r);
    size_t i = *pos;
    if (i >= n) return 0;
    int start_line = *line;
    for (;;) {
        size_t tl = 0;
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= n)
                    return qai_error(QAI_ERR_FORMAT, "%s:%d: unterminated quoted field", path, start_line);
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        i++;
                    } else {
                        i++;
                        break;
                    }
                }
                if (s[i] == '\n') (*line)++;
                if (tl + 1 >= *tcap) {
                    size_t nc = *tcap ? *tcap * 2 : 256;
                    char *nt = qai_realloc(*tmp, nc);
                    if (!nt) return QAI_ERR_NOMEM;
                    *tmp = nt;
                    *tcap = nc;
                }
                (*tmp)[tl++] = s[i++];
            }
            if (i < n && s[i] != sep && s[i] != '\n')
                return qai_error(QAI_ERR_FORMAT, "%s:%d: unexpected character after a closing quote", path, *line);
            if (!rec_push(r, *tmp ? *tmp : "", tl)) return QAI_ERR_NOMEM;
        } else {
            size_t a = i;
            while (i < n && s[i] != sep && s[i] != '\n') i++;
            if (!rec_push(r, s + a, i - a)) return QAI_ERR_NOMEM;
        }
        if (i < n && s[i] == sep) {
            i++;
            continue;
        }
        if (i < n && s[i] == '\n') {
            i++;
            (*line)++;
        }
        break;
    }
    *pos = i;
    return 1;
}

qai_status qai_extract_csv(const char *path, const char *s, size_t n, qai_doc_list *out, bool skip_bad, int *n_bad) {
    csv_rec hdr = {0}, r = {0};
    char *tmp = NULL;
    size_t tcap = 0, pos = 0;
    int line = 1, cap = 0;
    qai_status st = QAI_OK;
    char first_err[512] = "";
    /* separator from the header line */
    char sep = ',';
    {
        size_t e = 0;
        while (e < n && s[e] != '\n') e++;
        if (!memchr(s, ',', e)) {
            if (memchr(s, ';', e)) sep = ';';
            else if (memchr(s, '\t', e)) sep = '\t';
        }
    }
    int rc = csv_read(path, s, n, &pos, &line, sep, &hdr, &tmp, &tcap);
    if (rc < 0) {
        st = rc;
        goto done;
    }
    if (rc == 0) goto done; /* empty file: no records */
    int text_col = -1;
    for (int c = 0; c < hdr.n; c++)
        if (!strcasecmp(hdr.f[c], "text")) text_col = c;
    if (text_col < 0)
        for (int c = 0; c < hdr.n; c++)
            if (!strcasecmp(hdr.f[c], "content")) text_col = c;
    int row = 0;
    for (;;) {
        int rec_line = line;
        rc = csv_read(path, s, n, &pos, &line, sep, &r, &tmp, &tcap);
        if (rc == 0) break;
        if (rc < 0) {
            if (rc == QAI_ERR_FORMAT && skip_bad) {
                if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", qai_last_error());
                (*n_bad)++;
                /* resynchronize at the next line */
                size_t k = pos;
                while (k < n && s[k] != '\n') k++;
                pos = k < n ? k + 1 : n;
                line = rec_line + 1;
                continue;
            }
            st = rc;
            goto done;
        }
        bool empty = true;
        for (int c = 0; c < r.n; c++)
            if (r.f[c][0]) empty = false;
        if (empty) continue;
        row++;
        if (r.n != hdr.n) {
            qai_error(QAI_ERR_FORMAT, "%s:%d: %d fields, the header has %d", path, rec_line, r.n, hdr.n);
            if (skip_bad) {
                if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", qai_last_error());
                (*n_bad)++;
                continue;
            }
            st = QAI_ERR_FORMAT;
            goto done;
        }
        cJSON *meta = cJSON_CreateObject();
        qai_doc d;
        memset(&d, 0, sizeof d);
        /* text */
        size_t tl = 0;
        for (int c = 0; c < r.n; c++)
            tl += strlen(hdr.f[c]) + strlen(r.f[c]) + 4;
        char *text = qai_malloc(tl + 1);
        if (!meta || !text) {
            cJSON_Delete(meta);
            qai_free(text);
            st = QAI_ERR_NOMEM;
            goto done;
        }
        size_t k = 0;
        if (text_col >= 0) {
            size_t l = strlen(r.f[text_col]);
            memcpy(text, r.f[text_col], l);
            k = l;
        } else
            for (int c = 0; c < r.n; c++) {
                if (!r.f[c][0]) continue;
                k += (size_t)sprintf(text + k, "%s: %s\n", hdr.f[c], r.f[c]);
            }
        text[k] = 0;
        for (int c = 0; c < r.n; c++)
            if (c != text_col) cJSON_AddItemToObject(meta, hdr.f[c], cJSON_CreateString(r.f[c]));
        d.text = text;
        d.len = k;
        char num[32];
        snprintf(num, sizeof num, "%d", row);
        d.record_id = qai_strdup(num);
        if (meta->child) d.meta_json = cJSON_PrintUnformatted(meta);
        if (d.meta_json) { /* cJSON's malloc -> ours */
            char *x = qai_strdup(d.meta_json);
            cJSON_free(d.meta_json);
            d.meta_json = x;
        }
        cJSON_Delete(meta);
        /* trim trailing newline of "k: v" text */
        while (d.len && d.text[d.len - 1] == '\n') d.text[--d.len] = 0;
        st = docs_push(out, &cap, &d);
        if (st) goto done;
    }
done:
    rec_clear(&hdr);
    rec_clear(&r);
    qai_free(hdr.f);
    qai_free(r.f);
    qai_free(tmp);
    if (!st && first_err[0]) qai_error(QAI_ERR_FORMAT, "%s", first_err);
    return st;
}
