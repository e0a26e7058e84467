/*
 * Ingesting files into a collection version (see qai/collection.h for the
 * layout and the guarantees).
 *
 * One ingest: lock the collection; find the previous version; walk the inputs
 * (sorted); then, in batches, hash and extract the files on a thread pool
 * (reading, extraction, section dropping, PII redaction, MinHash, chunking)
 * and, on the calling thread and in path order, drop exact and near
 * duplicates, write documents and chunks to chunks.db and add the chunks to
 * BM25; then embed the chunks that need it (copying the vectors of reused
 * ones), build the dense index, write the manifest, fsync everything, rename
 * the temporary folder to vN and replace CURRENT.
 *
 * What it deliberately does not do: touch the previous versions (they are
 * immutable), or register anything in the store.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collection_internal.h"
#include "qai/index.h"
#include "qai/ingest.h"

void qai_ingest_opts_default(qai_ingest_opts *o) {
    memset(o, 0, sizeof *o);
    o->chunk_tokens = 256;
    o->overlap_tokens = 32;
    o->dedup = 0.8;
    o->max_line_bytes = (size_t)1 << 20;
}

void qai_ingest_result_release(qai_ingest_result *r) {
    if (!r) return;
    qai_free(r->manifest_json);
    r->manifest_json = NULL;
}

/* ---- small helpers --------------------------------------------------------------- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP) rmdir(p);
    else unlink(p);
    return 0;
}
static void rm_rf(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static qai_status fsync_path(const char *path, bool dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return qai_error(QAI_ERR_IO, "cannot open '%s' to sync it: %s", path, strerror(errno));
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r) return qai_error(QAI_ERR_IO, "cannot sync '%s': %s", path, strerror(e));
    return QAI_OK;
}

static qai_status file_sha_hex(const char *path, char hex[65]) {
    uint8_t h[32];
    qai_status st = qai_sha256_file(path, h, NULL);
    if (!st) qai_hex(h, 32, hex);
    return st;
}

static void iso_time(int64_t ms, char out[32]) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = qai_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- input walk ------------------------------------------------------------------ */

typedef struct {
    char *given; /* path as the user wrote it (joined with the names below a folder) */
    char *abs;   /* absolute, symlinks of the file itself resolved */
    size_t order;
    bool link;   /* reached through a symlink */
} in_file;

typedef struct {
    in_file *v;
    size_t n, cap;
    const qai_ingest_opts *o;
} in_list;

static bool excluded(const qai_ingest_opts *o, const char *path) {
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    for (int i = 0; i < o->n_exclude; i++)
        if (!fnmatch(o->exclude[i], path, 0) || !fnmatch(o->exclude[i], base, 0)) return true;
    return false;
}

static qai_status in_push(in_list *l, const char *given, const char *abs, bool link) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        in_file *nv = qai_realloc(l->v, nc * sizeof *nv);
        if (!nv) return QAI_ERR_NOMEM;
        l->v = nv;
        l->cap = nc;
    }
    in_file *f = &l->v[l->n];
    f->given = qai_strdup(given);
    f->abs = qai_strdup(abs);
    f->order = l->n;
    f->link = link;
    if (!f->given || !f->abs) {
        qai_free(f->given);
        qai_free(f->abs);
        return QAI_ERR_NOMEM;
    }
    l->n++;
    return QAI_OK;
}

static int cmp_abs(const void *a, const void *b) {
    const in_file *x = a, *y = b;
    int c = strcmp(x->abs, y->abs);
    if (c) return c;
    if (x->link != y->link) return x->link ? 1 : -1;
    return (x->order > y->order) - (x->order < y->order);
}
static int cmp_order(const void *a, const void *b) {
    const in_file *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

/* A file named twice (or through symlinks) is read once, under its own name
 * when that was given, else under the first name it was reached by. */
static void in_unique(in_list *l) {
    if (l->n < 2) return;
    qsort(l->v, l->n, sizeof *l->v, cmp_abs);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (k && !strcmp(l->v[k - 1].abs, l->v[i].abs)) {
            qai_free(l->v[i].given);
            qai_free(l->v[i].abs);
            continue;
        }
        l->v[k++] = l->v[i];
    }
    l->n = k;
    qsort(l->v, l->n, sizeof *l->v, cmp_order);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Walks one folder: entries sorted by name, hidden ones (".x") skipped,
 * symlinked folders not followed (no cycles). abs is the folder's real path. */
static qai_status walk_dir(in_list *l, const char *given, const char *abs, int depth) {
    if (depth > 64) return QAI_OK;
    DIR *d = opendir(abs);
    if (!d) {
        qai_log(QAI_LOG_WARN, "skipping folder '%s': %s", given, strerror(errno));
        return QAI_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    qai_status st = QAI_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = qai_realloc(names, cap * sizeof *nn);
            if (!nn) {
                st = QAI_ERR_NOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = qai_strdup(e->d_name))) {
            st = QAI_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (!st) qsort(names, n, sizeof *names, cmp_str);
    size_t gl = strlen(given);
    bool slash = gl && given[gl - 1] == '/';
    for (size_t i = 0; i < n && !st; i++) {
        char *g = xasprintf("%s%s%s", given, slash ? "" : "/", names[i]);
        char *a = xasprintf("%s/%s", abs, names[i]);
        if (!g || !a) st = QAI_ERR_NOMEM;
        struct stat ls, fs;
        if (!st && !excluded(l->o, g) && lstat(a, &ls) == 0) {
            if (S_ISDIR(ls.st_mode)) st = walk_dir(l, g, a, depth + 1);
            else if (S_ISREG(ls.st_mode)) st = in_push(l, g, a, false);
            else if (S_ISLNK(ls.st_mode) && stat(a, &fs) == 0 && S_ISREG(fs.st_mode)) {
                char real[PATH_MAX];
                if (realpath(a, real)) st = in_push(l, g, real, true);
            }
        }
        qai_free(g);
        qai_free(a);
    }
    for (size_t i = 0; i < n; i++) qai_free(names[i]);
    qai_free(names);
    return st;
}

static qai_status walk_input(in_list *l, const char *path) {
    struct stat sb;
    if (stat(path, &sb)) return qai_error(QAI_ERR_IO, "input '%s': %s", path, strerror(errno));
    char real[PATH_MAX];
    if (!realpath(path, real)) return qai_error(QAI_ERR_IO, "input '%s': %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return walk_dir(l, path, real, 0);
    if (excluded(l->o, path)) return QAI_OK;
    struct stat ls;
    return in_push(l, path, real, lstat(path, &ls) == 0 && S_ISLNK(ls.st_mode));
}

/* ---- the previous version -------------------------------------------------------- */

typedef struct {
    char *abs;
    char sha[65];
    int64_t id;
    bool ok;       /* extracted (not skipped) */
    bool has_dups; /* some of its documents were dropped as duplicates: re-extract instead of reusing */
    bool seen;     /* named again now */
} prev_file;

typedef struct {
    int version;
    cJSON *manifest;
    sqlite3 *db;
    qai_index *dense;
    prev_file *files;
    size_t n_files;
    /* a hash table from abs path to files[] index */
    int64_t *slots;
    size_t n_slots;
    bool reuse_ok; /* same chunking options: chunks can be copied */
} prev_ver;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static prev_file *prev_find(prev_ver *p, const char *abs) {
    if (!p->n_slots) return NULL;
    for (size_t i = hash_str(abs) & (p->n_slots - 1);; i = (i + 1) & (p->n_slots - 1)) {
        int64_t k = p->slots[i];
        if (k < 0) return NULL;
        if (!strcmp(p->files[k].abs, abs)) return &p->files[k];
    }
}

static void prev_close(prev_ver *p) {
    cJSON_Delete(p->manifest);
    if (p->db) sqlite3_close(p->db);
    if (p->dense) qai_index_free(p->dense);
    for (size_t i = 0; i < p->n_files; i++) qai_free(p->files[i].abs);
    qai_free(p->files);
    qai_free(p->slots);
    memset(p, 0, sizeof *p);
}

static qai_status prev_open(const char *cdir, int version, prev_ver *p) {
    memset(p, 0, sizeof *p);
    p->version = version;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/v%d/" COLL_MANIFEST, cdir, version);
    char *text = NULL;
    size_t n = 0;
    qai_status st = qai_file_read(path, &text, &n);
    if (st) return st;
    void *mj = NULL;
    st = coll_manifest_parse(text, n, path, &mj);
    qai_free(text);
    if (st) return st;
    p->manifest = mj;
    snprintf(path, sizeof path, "%s/v%d/" COLL_CHUNKS, cdir, version);
    if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        st = qai_error(QAI_ERR_IO, "cannot open '%s': %s", path, p->db ? sqlite3_errmsg(p->db) : "out of memory");
        prev_close(p);
        return st;
    }
    snprintf(path, sizeof path, "%s/v%d/" COLL_DENSE, cdir, version);
    if (access(path, F_OK) == 0 && (st = qai_index_open(path, &p->dense))) {
        prev_close(p);
        return st;
    }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(p->db, "SELECT id, abs_path, sha256, status = 'ok' FROM files ORDER BY id", -1, &q,
                           NULL) != SQLITE_OK) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': %s", path, sqlite3_errmsg(p->db));
        prev_close(p);
        return st;
    }
    size_t cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (p->n_files == cap) {
            cap = cap ? cap * 2 : 256;
            prev_file *nf = qai_realloc(p->files, cap * sizeof *nf);
            if (!nf) {
                st = QAI_ERR_NOMEM;
                break;
            }
            p->files = nf;
        }
        prev_file *f = &p->files[p->n_files];
        memset(f, 0, sizeof *f);
        f->id = sqlite3_column_int64(q, 0);
        const char *a = (const char *)sqlite3_column_text(q, 1);
        const char *s = (const char *)sqlite3_column_text(q, 2);
        if (!(f->abs = qai_strdup(a ? a : ""))) {
            st = QAI_ERR_NOMEM;
            break;
        }
        snprintf(f->sha, sizeof f->sha, "%s", s ? s : "");
        f->ok = sqlite3_column_int(q, 3) != 0;
        p->n_files++;
    }
    sqlite3_finalize(q);
    /* files with documents dropped as duplicates (one pass: no index needed) */
    if (!st && sqlite3_prepare_v2(p->db, "SELECT DISTINCT file_id FROM docs WHERE dup_kind IS NOT NULL", -1, &q,
                                  NULL) == SQLITE_OK) {
        while (sqlite3_step(q) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(q, 0);
            size_t lo = 0, hi = p->n_files; /* files[] is sorted by id */
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (p->files[mid].id < id) lo = mid + 1;
                else hi = mid;
            }
            if (lo < p->n_files && p->files[lo].id == id) p->files[lo].has_dups = true;
        }
        sqlite3_finalize(q);
    }
    if (st) {
        prev_close(p);
        return st;
    }
    p->n_slots = 16;
    while (p->n_slots < p->n_files * 2) p->n_slots *= 2;
    if (!(p->slots = qai_malloc(p->n_slots * sizeof *p->slots))) {
        prev_close(p);
        return QAI_ERR_NOMEM;
    }
    memset(p->slots, 0xff, p->n_slots * sizeof *p->slots);
    for (size_t k = 0; k < p->n_files; k++) {
        size_t i = hash_str(p->files[k].abs) & (p->n_slots - 1);
        while (p->slots[i] >= 0) i = (i + 1) & (p->n_slots - 1);
        p->slots[i] = (int64_t)k;
    }
    return QAI_OK;
}

/* ---- per-file work (on the pool) ------------------------------------------------- */

typedef struct {
    char *text; /* the document's text after dropping sections and redaction (owned) */
    size_t len;
    qai_doc_section *secs; /* adjusted sections (owned, titles borrowed from the doc list) */
    int nsec;
    qai_chunk *ch;
    int nch;
    char sha[65];
    qai_minhash mh;
    char skip[200]; /* non-empty: the document is not indexed, and why */
} doc_work;

enum { W_EXTRACT = 0, W_REUSE = 1, W_SKIP = 2 };

typedef struct {
    const in_file *in;
    int kind;
    char reason[512];
    uint64_t size;
    int64_t mtime_ms;
    char sha[65];
    prev_file *prev; /* the same path in the previous version, if any */
    qai_doc_list dl;
    int n_bad;
    doc_work *dw;
    qai_pii_counts pii;
} file_work;

typedef struct {
    const qai_ingest_opts *o;
    prev_ver *prev;
    coll_embedder *emb; /* NULL: count tokens as bytes/4 */
    file_work *fw;
    size_t n;
} batch_job;

/* Where offset p of the original text lands once the ranges [rs, re) are cut out. */
static size_t map_pos(size_t p, const size_t *rs, const size_t *re, int nr) {
    size_t cut = 0;
    for (int r = 0; r < nr; r++) {
        if (p >= re[r]) cut += re[r] - rs[r];
        else if (p > rs[r]) cut += p - rs[r];
    }
    return p - cut;
}

static bool title_dropped(const qai_ingest_opts *o, const char *title) {
    for (int i = 0; i < o->n_drop_sections; i++)
        if (title && !fnmatch(o->drop_sections[i], title, FNM_CASEFOLD)) return true;
    return false;
}

/* Cuts dropped sections out of d's text and redacts PII, keeping the section
 * spans right: redaction runs piecewise between section boundaries so every
 * boundary maps to a known new offset. */
static qai_status transform_doc(const qai_ingest_opts *o, const qai_doc *d, doc_work *w, qai_pii_counts *pii) {
    size_t n = d->len;
    /* 1. ranges to drop (merged, sorted: sections come in order of start) */
    size_t *rs = NULL, *re = NULL;
    int nr = 0;
    if (o->n_drop_sections && d->n_sections) {
        rs = qai_malloc((size_t)d->n_sections * sizeof *rs);
        re = qai_malloc((size_t)d->n_sections * sizeof *re);
        if (!rs || !re) {
            qai_free(rs);
            qai_free(re);
            return QAI_ERR_NOMEM;
        }
        for (int i = 0; i < d->n_sections; i++) {
            const qai_doc_section *s = &d->sections[i];
            if (!title_dropped(o, s->title) || s->end <= s->start || s->end > n) continue;
            if (nr && s->start <= re[nr - 1]) {
                if (s->end > re[nr - 1]) re[nr - 1] = s->end;
            } else {
                rs[nr] = s->start;
                re[nr] = s->end;
                nr++;
            }
        }
    }
    /* 2. kept text and the offset map for section boundaries */
    char *kept = qai_malloc(n + 1);
    if (!kept) {
        qai_free(rs);
        qai_free(re);
        return QAI_ERR_NOMEM;
    }
    size_t kl = 0, pos = 0;
    for (int r = 0; r < nr; r++) {
        memcpy(kept + kl, d->text + pos, rs[r] - pos);
        kl += rs[r] - pos;
        pos = re[r];
    }
    memcpy(kept + kl, d->text + pos, n - pos);
    kl += n - pos;
    kept[kl] = 0;

    w->secs = d->n_sections ? qai_calloc((size_t)d->n_sections, sizeof *w->secs) : NULL;
    if (d->n_sections && !w->secs) {
        qai_free(kept);
        qai_free(rs);
        qai_free(re);
        return QAI_ERR_NOMEM;
    }
    w->nsec = 0;
    for (int i = 0; i < d->n_sections; i++) {
        const qai_doc_section *s = &d->sections[i];
        if (s->end > n || s->start > s->end) continue;
        bool inside = false;
        for (int r = 0; r < nr; r++)
            if (s->start >= rs[r] && s->end <= re[r]) inside = true;
        if (inside) continue;
        qai_doc_section t = *s;
        t.start = map_pos(s->start, rs, re, nr);
        t.end = map_pos(s->end, rs, re, nr);
        if (t.end > t.start) w->secs[w->nsec++] = t;
    }
    qai_free(rs);
    qai_free(re);
    if (!o->redact_pii) {
        w->text = kept;
        w->len = kl;
        return QAI_OK;
    }
    /* 3. redaction, piecewise between boundaries */
    size_t nb = 2 + 2 * (size_t)w->nsec;
    size_t *b = qai_malloc(nb * sizeof *b), *nbnd = qai_malloc(nb * sizeof *nbnd);
    qai_strbuf out = {0};
    qai_status st = (!b || !nbnd) ? QAI_ERR_NOMEM : QAI_OK;
    size_t m = 0;
    if (!st) {
        b[m++] = 0;
        b[m++] = kl;
        for (int i = 0; i < w->nsec; i++) {
            b[m++] = w->secs[i].start;
            b[m++] = w->secs[i].end;
        }
        /* sort + unique */
        for (size_t i = 1; i < m; i++)
            for (size_t j = i; j > 0 && b[j - 1] > b[j]; j--) {
                size_t t = b[j];
                b[j] = b[j - 1];
                b[j - 1] = t;
            }
        size_t u = 0;
        for (size_t i = 0; i < m; i++)
            if (!u || b[u - 1] != b[i]) b[u++] = b[i];
        m = u;
        nbnd[0] = 0;
        for (size_t i = 0; i + 1 < m && !st; i++) {
            char *piece = NULL;
            size_t pl = 0;
            qai_pii_counts c = {0};
            st = qai_pii_redact(kept + b[i], b[i + 1] - b[i], &piece, &pl, &c);
            if (st) break;
            pii->emails += c.emails, pii->phones += c.phones, pii->ipv4 += c.ipv4, pii->ipv6 += c.ipv6;
            pii->cards += c.cards, pii->ibans += c.ibans, pii->secrets += c.secrets;
            qai_strbuf_put(&out, piece, pl);
            qai_free(piece);
            nbnd[i + 1] = out.n;
        }
    }
    if (!st) {
        for (int i = 0; i < w->nsec; i++) {
            size_t lo = 0, hi = m - 1;
            for (size_t k = 0; k < m; k++) {
                if (b[k] == w->secs[i].start) lo = k;
                if (b[k] == w->secs[i].end) hi = k;
            }
            w->secs[i].start = nbnd[lo];
            w->secs[i].end = nbnd[hi];
        }
    }
    qai_free(b);
    qai_free(nbnd);
    qai_free(kept);
    if (st) {
        qai_strbuf_free(&out);
        return st;
    }
    if (!(w->text = qai_strbuf_take(&out, &w->len))) return QAI_ERR_NOMEM;
    return QAI_OK;
}

static bool all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v'))
            return false;
    return true;
}

static void work_file(batch_job *j, file_work *w) {
    const qai_ingest_opts *o = j->o;
    struct stat sb;
    if (stat(w->in->abs, &sb) || !S_ISREG(sb.st_mode)) {
        w->kind = W_SKIP;
        snprintf(w->reason, sizeof w->reason, "cannot read: %s", strerror(errno ? errno : EINVAL));
        return;
    }
    w->size = (uint64_t)sb.st_size;
    w->mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    if (file_sha_hex(w->in->abs, w->sha)) {
        w->kind = W_SKIP;
        snprintf(w->reason, sizeof w->reason, "%s", qai_last_error());
        return;
    }
    w->prev = j->prev ? prev_find(j->prev, w->in->abs) : NULL;
    if (w->prev && j->prev->reuse_ok && w->prev->ok && !w->prev->has_dups && !strcmp(w->prev->sha, w->sha)) {
        w->kind = W_REUSE;
        return;
    }
    char *data = NULL;
    size_t size = 0;
    qai_status st = qai_doc_load_bytes(w->in->abs, &data, &size);
    qai_doc_type type = QAI_DOC_UNKNOWN;
    if (!st) st = qai_doc_detect(w->in->given, data, size < 4096 ? size : 4096, &type);
    if (!st) st = qai_doc_extract_records(w->in->given, data, size, type, &w->dl, &w->n_bad);
    qai_free(data);
    if (st) {
        w->kind = W_SKIP;
        snprintf(w->reason, sizeof w->reason, "%s", qai_last_error());
        return;
    }
    w->dl.type = type;
    if (w->dl.n_docs == 0) {
        w->kind = W_SKIP;
        snprintf(w->reason, sizeof w->reason, "%s", w->n_bad ? "every record is malformed" : "no text");
        return;
    }
    w->dw = qai_calloc((size_t)w->dl.n_docs, sizeof *w->dw);
    if (!w->dw) {
        w->kind = W_SKIP;
        snprintf(w->reason, sizeof w->reason, "out of memory");
        return;
    }
    int usable = 0;
    for (int i = 0; i < w->dl.n_docs; i++) {
        const qai_doc *d = &w->dl.docs[i];
        doc_work *dw = &w->dw[i];
        if ((st = transform_doc(o, d, dw, &w->pii))) {
            snprintf(dw->skip, sizeof dw->skip, "%s", qai_last_error());
            continue;
        }
        if (all_space(dw->text, dw->len)) {
            snprintf(dw->skip, sizeof dw->skip, "empty");
            continue;
        }
        size_t line = 0, line_start = 0;
        for (size_t k = 0; k <= dw->len; k++) {
            if (k == dw->len || dw->text[k] == '\n') {
                if (k - line_start > o->max_line_bytes) {
                    snprintf(dw->skip, sizeof dw->skip, "line %zu is %zu bytes long (limit %zu)", line + 1,
                             k - line_start, o->max_line_bytes);
                    break;
                }
                line++;
                line_start = k + 1;
            }
        }
        if (dw->skip[0]) continue;
        uint8_t h[32];
        qai_sha256(dw->text, dw->len, h);
        qai_hex(h, 32, dw->sha);
        if (o->dedup > 0) qai_minhash_text(dw->text, dw->len, 5, &dw->mh);
        qai_doc td = *d;
        td.text = dw->text;
        td.len = dw->len;
        td.sections = dw->secs;
        td.n_sections = dw->nsec;
        qai_chunk_opts co = qai_chunk_default_opts();
        co.max_tokens = o->chunk_tokens;
        co.overlap_tokens = o->overlap_tokens;
        if (j->emb) {
            co.count = coll_count_tokens;
            co.count_ctx = j->emb;
        }
        if ((st = qai_chunk_doc(&td, &co, &dw->ch, &dw->nch))) {
            snprintf(dw->skip, sizeof dw->skip, "chunking failed: %s", qai_last_error());
            continue;
        }
        if (dw->nch == 0) {
            snprintf(dw->skip, sizeof dw->skip, "empty");
            continue;
        }
        usable++;
    }
    if (!usable) {
        w->kind = W_SKIP;
        snprintf(w->reason, sizeof w->reason, "%s", w->dw[0].skip[0] ? w->dw[0].skip : "no text");
    }
}

static void file_work_release(file_work *w) {
    if (w->dw) {
        for (int i = 0; i < w->dl.n_docs; i++) {
            qai_free(w->dw[i].text);
            qai_free(w->dw[i].secs);
            if (w->dw[i].ch) qai_chunks_free(w->dw[i].ch, w->dw[i].nch);
        }
        qai_free(w->dw);
    }
    if (w->dl.docs) qai_doc_list_free(&w->dl);
    memset(w, 0, sizeof *w);
}

static void batch_fn(void *arg, int ith, int nth) {
    batch_job *j = arg;
    for (size_t i = (size_t)ith; i < j->n; i += (size_t)nth) work_file(j, &j->fw[i]);
}

/* ---- chunks.db ---------------------------------------------------------------------- */

static const char *schema =
    "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
    "CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, abs_path TEXT NOT NULL, size INTEGER,"
    " mtime_ms INTEGER, sha256 TEXT, content_type TEXT, lang TEXT, n_docs INTEGER, n_chunks INTEGER,"
    " status TEXT NOT NULL, reason TEXT, bad_records INTEGER);"
    "CREATE TABLE docs (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, record_id TEXT, title TEXT, lang TEXT,"
    " meta TEXT, sha256 TEXT, text_bytes INTEGER, minhash BLOB, n_chunks INTEGER,"
    " dup_kind TEXT, dup_of_source TEXT, dup_of_record TEXT, jaccard REAL);"
    "CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, source TEXT NOT NULL, record_id TEXT,"
    " start INTEGER NOT NULL, end INTEGER NOT NULL, section TEXT NOT NULL, title TEXT, content_type TEXT, lang TEXT,"
    " meta TEXT, hash TEXT NOT NULL, text TEXT NOT NULL);"
    "BEGIN;";

/* made once every row is in (cheaper than keeping them up to date row by row):
 * reuse looks chunks up by document and by text hash, twins by path */
static const char *indexes = "CREATE INDEX chunks_doc ON chunks (doc_id); CREATE INDEX chunks_hash ON chunks (hash);"
                             "CREATE INDEX docs_file ON docs (file_id); CREATE INDEX docs_dup ON docs (dup_of_source);"
                             "CREATE INDEX files_path ON files (path); CREATE INDEX files_abs ON files (abs_path);";

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *ins_file, *ins_doc, *ins_chunk;
} out_db;

static qai_status db_err(sqlite3 *db, const char *what) {
    return qai_error(QAI_ERR_IO, "chunks.db: %s: %s", what, sqlite3_errmsg(db));
}

static qai_status out_db_open(const char *path, out_db *d) {
    memset(d, 0, sizeof *d);
    if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        return qai_error(QAI_ERR_IO, "cannot create '%s'", path);
    char *err = NULL;
    if (sqlite3_exec(d->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        qai_status st = qai_error(QAI_ERR_IO, "'%s': %s", path, err ? err : "?");
        sqlite3_free(err);
        return st;
    }
    if (sqlite3_prepare_v2(d->db,
                           "INSERT INTO files (id, path, abs_path, size, mtime_ms, sha256, content_type, lang, n_docs,"
                           " n_chunks, status, reason, bad_records) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &d->ins_file, NULL) ||
        sqlite3_prepare_v2(d->db,
                           "INSERT INTO docs (id, file_id, record_id, title, lang, meta, sha256, text_bytes, minhash,"
                           " n_chunks, dup_kind, dup_of_source, dup_of_record, jaccard)"
                           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &d->ins_doc, NULL) ||
        sqlite3_prepare_v2(d->db,
                           "INSERT INTO chunks (id, doc_id, source, record_id, start, end, section, title, "
                           "content_type, lang, meta, hash, text) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &d->ins_chunk, NULL))
        return db_err(d->db, "prepare");
    return QAI_OK;
}

static void out_db_close(out_db *d) {
    sqlite3_finalize(d->ins_file);
    sqlite3_finalize(d->ins_doc);
    sqlite3_finalize(d->ins_chunk);
    if (d->db) sqlite3_close(d->db);
    memset(d, 0, sizeof *d);
}

static void bind_text(sqlite3_stmt *s, int i, const char *t) {
    if (t) sqlite3_bind_text(s, i, t, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, i);
}

static qai_status step_reset(sqlite3 *db, sqlite3_stmt *s, const char *what) {
    int r = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return r == SQLITE_DONE ? QAI_OK : db_err(db, what);
}

/* ---- dedup ---------------------------------------------------------------------------- */

typedef struct {
    char *source, *record;
} kept_doc;

typedef struct {
    kept_doc *docs; /* kept documents, index = LSH id */
    size_t n, cap;
    /* exact: content sha (hex) -> kept index */
    int64_t *slots;
    char (*keys)[65];
    size_t n_slots, n_used;
    qai_lsh *lsh;
} dedup_state;

static qai_status dedup_grow(dedup_state *d) {
    size_t ns = d->n_slots ? d->n_slots * 2 : 1024;
    int64_t *slots = qai_malloc(ns * sizeof *slots);
    char(*keys)[65] = qai_malloc(ns * sizeof *keys);
    if (!slots || !keys) {
        qai_free(slots);
        qai_free(keys);
        return QAI_ERR_NOMEM;
    }
    memset(slots, 0xff, ns * sizeof *slots);
    for (size_t i = 0; i < d->n_slots; i++) {
        if (d->slots[i] < 0) continue;
        size_t k = hash_str(d->keys[i]) & (ns - 1);
        while (slots[k] >= 0) k = (k + 1) & (ns - 1);
        slots[k] = d->slots[i];
        memcpy(keys[k], d->keys[i], 65);
    }
    qai_free(d->slots);
    qai_free(d->keys);
    d->slots = slots;
    d->keys = keys;
    d->n_slots = ns;
    return QAI_OK;
}

/* Returns the kept twin's index (and kind 1 exact, 2 near, with *jac) or -1
 * when the document is new (then it is registered as kept). */
static int64_t dedup_check(dedup_state *d, const char *sha, const qai_minhash *mh, const char *source,
                           const char *record, int *kind, double *jac, qai_status *st) {
    *st = QAI_OK;
    if ((d->n_used + 1) * 2 > d->n_slots && (*st = dedup_grow(d))) return -1;
    size_t k = hash_str(sha) & (d->n_slots - 1);
    for (; d->slots[k] >= 0; k = (k + 1) & (d->n_slots - 1))
        if (!strcmp(d->keys[k], sha)) {
            *kind = 1;
            *jac = 1.0;
            return d->slots[k];
        }
    uint64_t id = d->n;
    if (d->lsh) {
        uint64_t twin = qai_lsh_check_insert(d->lsh, id, mh);
        if (twin != UINT64_MAX && twin < d->n) {
            *kind = 2;
            *jac = 0; /* filled by the caller, which has both signatures */
            return (int64_t)twin;
        }
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 1024;
        kept_doc *nd = qai_realloc(d->docs, nc * sizeof *nd);
        if (!nd) {
            *st = QAI_ERR_NOMEM;
            return -1;
        }
        d->docs = nd;
        d->cap = nc;
    }
    d->docs[d->n].source = qai_strdup(source);
    d->docs[d->n].record = record ? qai_strdup(record) : NULL;
    d->n++;
    d->slots[k] = (int64_t)id;
    memcpy(d->keys[k], sha, 65);
    d->n_used++;
    *kind = 0;
    return -1;
}

static void dedup_free(dedup_state *d) {
    for (size_t i = 0; i < d->n; i++) {
        qai_free(d->docs[i].source);
        qai_free(d->docs[i].record);
    }
    qai_free(d->docs);
    qai_free(d->slots);
    qai_free(d->keys);
    if (d->lsh) qai_lsh_free(d->lsh);
    memset(d, 0, sizeof *d);
}

/* ---- the ingest -------------------------------------------------------------------------- */

typedef struct {
    int64_t id;      /* new chunk id */
    int64_t prev_id; /* reused: the chunk's id in the previous version (vector copied); 0: embed */
} embed_item;

typedef struct {
    const char *name;
    const qai_ingest_opts *o;
    char cdir[PATH_MAX];
    char tmp[PATH_MAX + 64];
    prev_ver prev;
    bool have_prev;
    coll_embedder emb;
    bool have_emb;
    out_db db;
    qai_bm25 *bm;
    dedup_state dd;
    cJSON *man, *inputs, *dups;
    qai_pii_counts pii;
    int64_t next_chunk, next_doc, next_file;
    embed_item *emb_items;
    size_t n_emb, cap_emb;
    /* most chunks in the previous-version: a per-doc copy buffer */
    qai_ingest_result *res;
    size_t truncated;
    double dedup_jac_sum;
} ingest_ctx;

static qai_status push_embed(ingest_ctx *c, int64_t id, int64_t prev_id) {
    if (!c->have_emb) return QAI_OK;
    if (c->n_emb == c->cap_emb) {
        size_t nc = c->cap_emb ? c->cap_emb * 2 : 1024;
        embed_item *n = qai_realloc(c->emb_items, nc * sizeof *n);
        if (!n) return QAI_ERR_NOMEM;
        c->emb_items = n;
        c->cap_emb = nc;
    }
    c->emb_items[c->n_emb++] = (embed_item){id, prev_id};
    return QAI_OK;
}

static qai_status insert_doc_row(ingest_ctx *c, int64_t doc_id, int64_t file_id, const char *record, const char *title,
                                 const char *lang, const char *meta, const char *sha, size_t text_bytes,
                                 const qai_minhash *mh, int n_chunks, int dup_kind, const kept_doc *twin, double jac) {
    sqlite3_stmt *s = c->db.ins_doc;
    sqlite3_bind_int64(s, 1, doc_id);
    sqlite3_bind_int64(s, 2, file_id);
    bind_text(s, 3, record);
    bind_text(s, 4, title);
    bind_text(s, 5, lang);
    bind_text(s, 6, meta);
    bind_text(s, 7, sha);
    sqlite3_bind_int64(s, 8, (sqlite3_int64)text_bytes);
    if (mh && c->o->dedup > 0) sqlite3_bind_blob(s, 9, mh->h, sizeof mh->h, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, 9);
    sqlite3_bind_int(s, 10, n_chunks);
    bind_text(s, 11, dup_kind == 1 ? "exact" : dup_kind == 2 ? "near" : NULL);
    bind_text(s, 12, twin ? twin->source : NULL);
    bind_text(s, 13, twin ? twin->record : NULL);
    if (dup_kind) sqlite3_bind_double(s, 14, jac);
    else sqlite3_bind_null(s, 14);
    return step_reset(c->db.db, s, "insert document");
}

static qai_status record_dup(ingest_ctx *c, const char *source, const char *record, int kind, const kept_doc *twin,
                             double jac) {
    cJSON *d = cJSON_CreateObject();
    if (!d) return QAI_ERR_NOMEM;
    cJSON_AddStringToObject(d, "source", source);
    if (record) cJSON_AddStringToObject(d, "record_id", record);
    cJSON_AddStringToObject(d, "kind", kind == 1 ? "exact" : "near");
    cJSON_AddNumberToObject(d, "jaccard", round(jac * 1000) / 1000);
    cJSON *k = cJSON_AddObjectToObject(d, "kept");
    cJSON_AddStringToObject(k, "source", twin->source);
    if (twin->record) cJSON_AddStringToObject(k, "record_id", twin->record);
    cJSON_AddItemToArray(c->dups, d);
    if (kind == 1) c->res->dup_exact++;
    else c->res->dup_near++;
    qai_log(QAI_LOG_INFO, "'%s'%s%s is a%s duplicate of '%s'", source, record ? " record " : "", record ? record : "",
            kind == 1 ? "n exact" : " near", twin->source);
    return QAI_OK;
}

/* The minhash of the kept twin, for the Jaccard estimate of a near duplicate. */
typedef struct {
    qai_minhash *v;
    size_t n, cap;
} mh_list;

static qai_status mh_push(mh_list *l, const qai_minhash *m) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        qai_minhash *nv = qai_realloc(l->v, nc * sizeof *nv);
        if (!nv) return QAI_ERR_NOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *m;
    return QAI_OK;
}

static qai_status file_row(ingest_ctx *c, const file_work *w, int64_t file_id, const char *ctype, const char *lang,
                           int n_docs, int n_chunks, const char *status, const char *change, bool reused) {
    sqlite3_stmt *s = c->db.ins_file;
    sqlite3_bind_int64(s, 1, file_id);
    bind_text(s, 2, w->in->given);
    bind_text(s, 3, w->in->abs);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)w->size);
    sqlite3_bind_int64(s, 5, w->mtime_ms);
    bind_text(s, 6, w->sha[0] ? w->sha : NULL);
    bind_text(s, 7, ctype);
    bind_text(s, 8, lang);
    sqlite3_bind_int(s, 9, n_docs);
    sqlite3_bind_int(s, 10, n_chunks);
    bind_text(s, 11, status);
    bind_text(s, 12, w->kind == W_SKIP ? w->reason : NULL);
    sqlite3_bind_int(s, 13, w->n_bad);
    qai_status st = step_reset(c->db.db, s, "insert file");
    if (st) return st;
    cJSON *f = cJSON_CreateObject();
    if (!f) return QAI_ERR_NOMEM;
    char iso[32];
    iso_time(w->mtime_ms, iso);
    cJSON_AddStringToObject(f, "path", w->in->given);
    cJSON_AddNumberToObject(f, "size", (double)w->size);
    cJSON_AddStringToObject(f, "mtime", iso);
    if (w->sha[0]) cJSON_AddStringToObject(f, "sha256", w->sha);
    else cJSON_AddNullToObject(f, "sha256");
    if (ctype) cJSON_AddStringToObject(f, "content_type", ctype);
    if (lang) cJSON_AddStringToObject(f, "language", lang);
    cJSON_AddNumberToObject(f, "n_docs", n_docs);
    cJSON_AddNumberToObject(f, "n_chunks", n_chunks);
    cJSON_AddStringToObject(f, "change", change);
    if (reused) cJSON_AddBoolToObject(f, "reused", true);
    if (w->n_bad) cJSON_AddNumberToObject(f, "bad_records", w->n_bad);
    if (w->kind == W_SKIP) cJSON_AddStringToObject(f, "skipped", w->reason);
    cJSON_AddItemToArray(c->inputs, f);
    return QAI_OK;
}

static qai_status add_chunk(ingest_ctx *c, int64_t doc_id, const char *source, const char *record, size_t start,
                            size_t end, const char *section, const char *title, const char *ctype, const char *lang,
                            const char *meta, const char *text, size_t len, int64_t prev_id) {
    int64_t id = ++c->next_chunk;
    char hex[65];
    uint8_t h[32];
    qai_sha256(text, len, h);
    qai_hex(h, 32, hex);
    sqlite3_stmt *s = c->db.ins_chunk;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, doc_id);
    bind_text(s, 3, source);
    bind_text(s, 4, record);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)start);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)end);
    bind_text(s, 7, section ? section : "");
    bind_text(s, 8, title);
    bind_text(s, 9, ctype);
    bind_text(s, 10, lang);
    bind_text(s, 11, meta);
    bind_text(s, 12, hex);
    sqlite3_bind_text(s, 13, text, (int)len, SQLITE_TRANSIENT);
    qai_status st = step_reset(c->db.db, s, "insert chunk");
    if (!st) st = qai_bm25_add(c->bm, (uint64_t)id, text, len);
    if (!st) st = push_embed(c, id, prev_id);
    return st;
}

static const char *change_of(const file_work *w) {
    if (!w->prev) return "added";
    return strcmp(w->prev->sha, w->sha) ? "changed" : "unchanged";
}

static void count_change(ingest_ctx *c, const char *ch) {
    if (!strcmp(ch, "added")) c->res->added++;
    else if (!strcmp(ch, "changed")) c->res->changed++;
    else c->res->unchanged++;
}

static qai_status process_extracted(ingest_ctx *c, file_work *w, mh_list *mhl) {
    qai_status st = QAI_OK;
    int64_t file_id = ++c->next_file;
    const char *ctype = qai_doc_type_name(w->dl.type);
    int kept_docs = 0, n_chunks = 0;
    for (int i = 0; i < w->dl.n_docs && !st; i++) {
        const qai_doc *d = &w->dl.docs[i];
        doc_work *dw = &w->dw[i];
        if (dw->skip[0]) {
            qai_log(QAI_LOG_INFO, "'%s'%s%s: skipped: %s", w->in->given, d->record_id ? " record " : "",
                    d->record_id ? d->record_id : "", dw->skip);
            continue;
        }
        int64_t doc_id = ++c->next_doc;
        int kind = 0;
        double jac = 0;
        int64_t twin = -1;
        if (c->o->dedup > 0) {
            twin = dedup_check(&c->dd, dw->sha, &dw->mh, w->in->given, d->record_id, &kind, &jac, &st);
            if (st) break;
            if (twin >= 0 && kind == 2) jac = qai_minhash_jaccard(&dw->mh, &mhl->v[twin]);
            if (twin < 0 && (st = mh_push(mhl, &dw->mh))) break;
        }
        if (twin >= 0) {
            const kept_doc *t = &c->dd.docs[twin];
            if ((st = insert_doc_row(c, doc_id, file_id, d->record_id, d->title, d->lang, d->meta_json, dw->sha,
                                     dw->len, &dw->mh, 0, kind, t, jac)))
                break;
            st = record_dup(c, w->in->given, d->record_id, kind, t, jac);
            continue;
        }
        if ((st = insert_doc_row(c, doc_id, file_id, d->record_id, d->title, d->lang, d->meta_json, dw->sha, dw->len,
                                 &dw->mh, dw->nch, 0, NULL, 0)))
            break;
        kept_docs++;
        c->res->text_bytes += dw->len;
        for (int k = 0; k < dw->nch && !st; k++) {
            const qai_chunk *ch = &dw->ch[k];
            if (ch->end > dw->len || ch->start >= ch->end) continue;
            st = add_chunk(c, doc_id, w->in->given, d->record_id, ch->start, ch->end, ch->section_path, d->title,
                           ctype, d->lang, d->meta_json, dw->text + ch->start, ch->end - ch->start, 0);
            n_chunks++;
        }
    }
    if (st) return st;
    c->res->docs += (size_t)kept_docs;
    c->res->chunks += (size_t)n_chunks;
    c->res->bad_records += (size_t)w->n_bad;
    c->pii.emails += w->pii.emails, c->pii.phones += w->pii.phones, c->pii.ipv4 += w->pii.ipv4;
    c->pii.ipv6 += w->pii.ipv6, c->pii.cards += w->pii.cards, c->pii.ibans += w->pii.ibans;
    c->pii.secrets += w->pii.secrets;
    const char *ch = change_of(w);
    count_change(c, ch);
    return file_row(c, w, file_id, ctype, w->dl.n_docs ? w->dl.docs[0].lang : NULL, kept_docs, n_chunks, "ok", ch,
                    false);
}

/* Copies a file's documents and chunks from the previous version. */
static qai_status process_reused(ingest_ctx *c, file_work *w, mh_list *mhl) {
    sqlite3 *pdb = c->prev.db;
    sqlite3_stmt *qd = NULL, *qc = NULL, *qf = NULL;
    qai_status st = QAI_OK;
    if (sqlite3_prepare_v2(pdb,
                           "SELECT id, record_id, title, lang, meta, sha256, text_bytes, minhash FROM docs "
                           "WHERE file_id = ? ORDER BY id",
                           -1, &qd, NULL) ||
        sqlite3_prepare_v2(pdb,
                           "SELECT id, start, end, section, content_type, text FROM chunks WHERE doc_id = ? "
                           "ORDER BY id",
                           -1, &qc, NULL) ||
        sqlite3_prepare_v2(pdb, "SELECT content_type, lang FROM files WHERE id = ?", -1, &qf, NULL)) {
        st = qai_error(QAI_ERR_FORMAT, "previous version's chunks.db: %s", sqlite3_errmsg(pdb));
        goto done;
    }
    int64_t file_id = ++c->next_file;
    char ctype[64] = "", flang[16] = "";
    sqlite3_bind_int64(qf, 1, w->prev->id);
    if (sqlite3_step(qf) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(qf, 0), *l = (const char *)sqlite3_column_text(qf, 1);
        snprintf(ctype, sizeof ctype, "%s", t ? t : "");
        snprintf(flang, sizeof flang, "%s", l ? l : "");
    }
    sqlite3_bind_int64(qd, 1, w->prev->id);
    int kept_docs = 0, n_chunks = 0, n_docs = 0;
    while (!st && sqlite3_step(qd) == SQLITE_ROW) {
        n_docs++;
        int64_t pdoc = sqlite3_column_int64(qd, 0);
        const char *record = (const char *)sqlite3_column_text(qd, 1);
        const char *title = (const char *)sqlite3_column_text(qd, 2);
        const char *lang = (const char *)sqlite3_column_text(qd, 3);
        const char *meta = (const char *)sqlite3_column_text(qd, 4);
        const char *sha = (const char *)sqlite3_column_text(qd, 5);
        size_t tb = (size_t)sqlite3_column_int64(qd, 6);
        qai_minhash mh;
        memset(&mh, 0xff, sizeof mh);
        if (sqlite3_column_bytes(qd, 7) == (int)sizeof mh.h) memcpy(mh.h, sqlite3_column_blob(qd, 7), sizeof mh.h);
        else if (c->o->dedup > 0) {
            st = qai_error(QAI_ERR_FORMAT, "previous version: document %lld of '%s' has no MinHash signature",
                           (long long)pdoc, w->in->given);
            break;
        }
        int64_t doc_id = ++c->next_doc;
        int kind = 0;
        double jac = 0;
        int64_t twin = -1;
        if (c->o->dedup > 0) {
            twin = dedup_check(&c->dd, sha ? sha : "", &mh, w->in->given, record, &kind, &jac, &st);
            if (st) break;
            if (twin >= 0 && kind == 2) jac = qai_minhash_jaccard(&mh, &mhl->v[twin]);
            if (twin < 0 && (st = mh_push(mhl, &mh))) break;
        }
        if (twin >= 0) {
            const kept_doc *t = &c->dd.docs[twin];
            if ((st = insert_doc_row(c, doc_id, file_id, record, title, lang, meta, sha, tb, &mh, 0, kind, t, jac)))
                break;
            st = record_dup(c, w->in->given, record, kind, t, jac);
            continue;
        }
        sqlite3_bind_int64(qc, 1, pdoc);
        int nch = 0;
        while (!st && sqlite3_step(qc) == SQLITE_ROW) {
            const char *text = (const char *)sqlite3_column_text(qc, 5);
            size_t len = (size_t)sqlite3_column_bytes(qc, 5);
            const char *ct = (const char *)sqlite3_column_text(qc, 4);
            st = add_chunk(c, doc_id, w->in->given, record, (size_t)sqlite3_column_int64(qc, 1),
                           (size_t)sqlite3_column_int64(qc, 2), (const char *)sqlite3_column_text(qc, 3), title, ct,
                           lang, meta, text ? text : "", len, sqlite3_column_int64(qc, 0));
            nch++;
        }
        sqlite3_reset(qc);
        if (st) break;
        if ((st = insert_doc_row(c, doc_id, file_id, record, title, lang, meta, sha, tb, &mh, nch, 0, NULL, 0))) break;
        c->res->chunks_reused += (size_t)nch;
        c->res->text_bytes += tb;
        kept_docs++;
        n_chunks += nch;
    }
    if (st) goto done;
    c->res->docs += (size_t)kept_docs;
    c->res->chunks += (size_t)n_chunks;
    c->res->unchanged++;
    st = file_row(c, w, file_id, ctype[0] ? ctype : NULL, flang[0] ? flang : NULL, kept_docs, n_chunks, "ok",
                  "unchanged", true);
    (void)n_docs;
done:
    sqlite3_finalize(qd);
    sqlite3_finalize(qc);
    sqlite3_finalize(qf);
    return st;
}

static qai_status process_skipped(ingest_ctx *c, file_work *w) {
    qai_log(QAI_LOG_INFO, "skipping '%s': %s", w->in->given, w->reason);
    c->res->skipped++;
    return file_row(c, w, ++c->next_file, NULL, NULL, 0, 0, "skipped", w->prev ? change_of(w) : "added", false);
}

/* The embedding model: the one given, else the previous version's. Refuses a different model. */
static qai_status pick_model(ingest_ctx *c) {
    const cJSON *pm = c->have_prev ? cJSON_GetObjectItemCaseSensitive(
                                         cJSON_GetObjectItemCaseSensitive(c->prev.manifest, "options"), "embed_model")
                                   : NULL;
    const cJSON *psha = cJSON_GetObjectItemCaseSensitive(pm, "sha256");
    const cJSON *ppath = cJSON_GetObjectItemCaseSensitive(pm, "path");
    const cJSON *pname = cJSON_GetObjectItemCaseSensitive(pm, "name");
    bool prev_has = cJSON_IsString(psha);
    const char *path = c->o->embed_model;
    if (!path && !prev_has) return QAI_OK;
    if (!path) path = cJSON_IsString(ppath) ? ppath->valuestring : "";
    qai_status st = coll_embedder_open(path, c->o->n_threads, &c->emb);
    if (st) {
        if (!c->o->embed_model)
            return qai_error_wrap(st,
                                  "collection '%s' has vectors from the model '%s' (sha256 %.16s...), which cannot be "
                                  "loaded again; pass it with -m",
                                  c->name, path, psha->valuestring);
        return st;
    }
    c->have_emb = true;
    if (prev_has && strcmp(psha->valuestring, c->emb.sha256))
        return qai_error(QAI_ERR_ARG,
                         "collection '%s' was embedded with '%s' (sha256 %.16s...); '%s' is a different model "
                         "(sha256 %.16s...): vectors of different models cannot be mixed; use the same model or "
                         "ingest into a new collection",
                         c->name, cJSON_IsString(pname) ? pname->valuestring : "?", psha->valuestring, path,
                         c->emb.sha256);
    if (c->o->chunk_tokens > c->emb.n_ctx)
        qai_log(QAI_LOG_WARN, "chunks of %d tokens are longer than the embedding model's context (%d): vectors see "
                              "only the first %d tokens of each chunk",
                c->o->chunk_tokens, c->emb.n_ctx, c->emb.n_ctx);
    return QAI_OK;
}

static cJSON *str_array(const char *const *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

static cJSON *options_json(const ingest_ctx *c) {
    const qai_ingest_opts *o = c->o;
    cJSON *op = cJSON_CreateObject();
    if (!op) return NULL;
    cJSON_AddNumberToObject(op, "chunk_tokens", o->chunk_tokens);
    cJSON_AddNumberToObject(op, "overlap_tokens", o->overlap_tokens);
    cJSON_AddStringToObject(op, "token_counter", c->have_emb ? "model" : "bytes/4");
    if (o->dedup > 0) cJSON_AddNumberToObject(op, "dedup", o->dedup);
    else cJSON_AddStringToObject(op, "dedup", "off");
    cJSON_AddBoolToObject(op, "redact_pii", o->redact_pii);
    cJSON_AddItemToObject(op, "drop_sections", str_array(o->drop_sections, o->n_drop_sections));
    cJSON_AddItemToObject(op, "exclude", str_array(o->exclude, o->n_exclude));
    cJSON_AddNumberToObject(op, "max_line_bytes", (double)o->max_line_bytes);
    if (c->have_emb) {
        cJSON *m = cJSON_AddObjectToObject(op, "embed_model");
        cJSON_AddStringToObject(m, "name", c->emb.name);
        cJSON_AddStringToObject(m, "path", c->emb.path);
        cJSON_AddStringToObject(m, "sha256", c->emb.sha256);
        cJSON_AddNumberToObject(m, "dim", c->emb.dim);
        cJSON_AddStringToObject(m, "pooling", "mean, L2-normalized");
    } else cJSON_AddNullToObject(op, "embed_model");
    return op;
}

/* Chunks of the previous version can be copied when they were cut the same way. */
static bool same_chunking(const cJSON *prev_opts, const cJSON *now) {
    static const char *keys[] = {"chunk_tokens", "overlap_tokens", "token_counter", "redact_pii", "drop_sections",
                                 "max_line_bytes"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(prev_opts, keys[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(now, keys[i]);
        if (!a || !b || !cJSON_Compare(a, b, 1)) return false;
    }
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(prev_opts, "embed_model");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(now, "embed_model");
    /* chunks counted with a model's tokenizer: the same model (its sha) */
    if (cJSON_IsObject(nm) &&
        (!cJSON_IsObject(pm) || !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(pm, "sha256"),
                                               cJSON_GetObjectItemCaseSensitive(nm, "sha256"), 1)))
        return false;
    return true;
}

typedef struct {
    ingest_ctx *c;
    float *vecs;
    int64_t *ids;
} embed_job;

static qai_status embed_all(ingest_ctx *c, float **vecs_out, uint64_t **ids_out) {
    size_t n = c->n_emb;
    int D = c->emb.dim;
    float *vecs = qai_malloc((n ? n : 1) * (size_t)D * sizeof(float));
    uint64_t *ids = qai_malloc((n ? n : 1) * sizeof(uint64_t));
    sqlite3_stmt *q = NULL, *qh = NULL;
    qai_status st = (!vecs || !ids) ? QAI_ERR_NOMEM : QAI_OK;
    if (!st && sqlite3_prepare_v2(c->db.db, "SELECT text, hash FROM chunks WHERE id = ?", -1, &q, NULL))
        st = db_err(c->db.db, "read chunk");
    /* a chunk whose text the previous version embedded already (same hash, same model) gets that vector */
    bool prev_vecs = c->prev.dense && c->prev.db && qai_index_get_params(c->prev.dense)->dim == D;
    if (!st && prev_vecs &&
        sqlite3_prepare_v2(c->prev.db, "SELECT id FROM chunks WHERE hash = ? LIMIT 1", -1, &qh, NULL) != SQLITE_OK)
        qh = NULL; /* an older chunks.db without the hash index: embed instead */
    size_t to_embed = 0;
    for (size_t i = 0; i < n; i++) to_embed += c->emb_items[i].prev_id == 0 || !c->prev.dense;
    qai_progress pr;
    qai_progress_start(&pr, "embedding", "chunks", to_embed);
    pr.quiet = !c->o->progress || to_embed == 0;
    size_t done = 0;
    for (size_t i = 0; i < n && !st; i++) {
        embed_item *it = &c->emb_items[i];
        ids[i] = (uint64_t)it->id;
        float *out = vecs + i * (size_t)D;
        if (it->prev_id && c->prev.dense && qai_index_contains(c->prev.dense, (uint64_t)it->prev_id) &&
            qai_index_get_params(c->prev.dense)->dim == D) {
            st = qai_index_get_vector(c->prev.dense, (uint64_t)it->prev_id, out);
            continue;
        }
        sqlite3_bind_int64(q, 1, it->id);
        int64_t same = 0;
        if (sqlite3_step(q) != SQLITE_ROW) st = db_err(c->db.db, "read chunk");
        else if (qh) {
            sqlite3_bind_text(qh, 1, (const char *)sqlite3_column_text(q, 1), -1, SQLITE_TRANSIENT);
            if (sqlite3_step(qh) == SQLITE_ROW) same = sqlite3_column_int64(qh, 0);
            sqlite3_reset(qh);
        }
        if (!st && same && qai_index_contains(c->prev.dense, (uint64_t)same)) {
            st = qai_index_get_vector(c->prev.dense, (uint64_t)same, out);
            c->res->chunks_vector_reused++;
        } else if (!st) {
            bool trunc = false;
            st = coll_embed_text(&c->emb, (const char *)sqlite3_column_text(q, 0), (size_t)sqlite3_column_bytes(q, 0),
                                 out, &trunc);
            if (st) st = qai_error_wrap(st, "embedding chunk %lld", (long long)it->id);
            c->truncated += trunc;
            c->res->chunks_embedded++;
        }
        sqlite3_reset(q);
        qai_progress_update(&pr, ++done);
    }
    qai_progress_finish(&pr);
    sqlite3_finalize(q);
    sqlite3_finalize(qh);
    if (st) {
        qai_free(vecs);
        qai_free(ids);
        return st;
    }
    *vecs_out = vecs;
    *ids_out = ids;
    return QAI_OK;
}

static qai_status write_dense(ingest_ctx *c) {
    float *vecs = NULL;
    uint64_t *ids = NULL;
    qai_status st = embed_all(c, &vecs, &ids);
    if (st) return st;
    size_t n = c->n_emb;
    qai_index_params p;
    /* exact search while a scan is cheap; HNSW past that */
    qai_index_params_default(&p, n < 20000 ? QAI_INDEX_FLAT : QAI_INDEX_HNSW, QAI_METRIC_COSINE, c->emb.dim);
    qai_index *ix = qai_index_new(&p);
    if (!ix) st = QAI_ERR_NOMEM;
    qai_pool *pool = NULL;
    if (!st && n > 1000) pool = qai_pool_new(c->o->n_threads);
    if (!st && n) st = qai_index_add_batch(ix, ids, vecs, n, pool);
    if (pool) qai_pool_free(pool);
    char path[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/" COLL_DENSE, c->tmp);
    if (!st) st = qai_index_save(ix, path);
    if (ix) qai_index_free(ix);
    qai_free(vecs);
    qai_free(ids);
    return st;
}

static qai_status lock_collection(const char *cdir, int *fd_out) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/.lock", cdir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", p, strerror(errno));
    if (flock(fd, LOCK_EX)) {
        int e = errno;
        close(fd);
        return qai_error(QAI_ERR_IO, "cannot lock '%s': %s", p, strerror(e));
    }
    *fd_out = fd;
    return QAI_OK;
}

static void remove_stale_tmp(const char *cdir) {
    DIR *d = opendir(cdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp-v", 6)) continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", cdir, e->d_name);
        qai_log(QAI_LOG_INFO, "removing '%s' left by an interrupted ingest", p);
        rm_rf(p);
    }
    closedir(d);
}

static qai_status write_current(const char *cdir, int version) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/CURRENT", cdir);
    qai_atomic_file af;
    qai_status st = qai_atomic_open(p, &af);
    if (st) return st;
    fprintf(af.f, "v%d\n", version);
    return qai_atomic_commit(&af);
}

static qai_status finish_manifest(ingest_ctx *c, int version, int64_t t_ms) {
    qai_ingest_result *r = c->res;
    cJSON *m = c->man;
    char iso[32];
    iso_time(t_ms, iso);
    cJSON_AddNumberToObject(m, "format", COLL_FORMAT);
    cJSON_AddStringToObject(m, "collection", c->name);
    cJSON_AddNumberToObject(m, "version", version);
    if (c->have_prev) cJSON_AddNumberToObject(m, "previous_version", c->prev.version);
    else cJSON_AddNullToObject(m, "previous_version");
    cJSON_AddStringToObject(m, "created", iso);
    cJSON_AddNumberToObject(m, "created_ms", (double)t_ms);
    cJSON_AddItemToObject(m, "options", options_json(c));
    cJSON_AddItemToObject(m, "inputs", c->inputs);
    c->inputs = NULL;
    cJSON *removed = cJSON_AddArrayToObject(m, "removed");
    for (size_t i = 0; c->have_prev && i < c->prev.n_files; i++) {
        if (c->prev.files[i].seen) continue;
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(c->prev.db, "SELECT path FROM files WHERE id = ?", -1, &q, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, c->prev.files[i].id);
            if (sqlite3_step(q) == SQLITE_ROW)
                cJSON_AddItemToArray(removed, cJSON_CreateString((const char *)sqlite3_column_text(q, 0)));
        }
        sqlite3_finalize(q);
        r->removed++;
    }
    cJSON_AddItemToObject(m, "duplicates", c->dups);
    c->dups = NULL;
    cJSON *red = cJSON_AddObjectToObject(m, "redaction");
    cJSON_AddBoolToObject(red, "enabled", c->o->redact_pii);
    cJSON_AddNumberToObject(red, "emails", c->pii.emails);
    cJSON_AddNumberToObject(red, "phones", c->pii.phones);
    cJSON_AddNumberToObject(red, "ip", c->pii.ipv4 + c->pii.ipv6);
    cJSON_AddNumberToObject(red, "cards", c->pii.cards);
    cJSON_AddNumberToObject(red, "ibans", c->pii.ibans);
    cJSON_AddNumberToObject(red, "secrets", c->pii.secrets);
    cJSON *chg = cJSON_AddObjectToObject(m, "changes");
    cJSON_AddNumberToObject(chg, "added", (double)r->added);
    cJSON_AddNumberToObject(chg, "changed", (double)r->changed);
    cJSON_AddNumberToObject(chg, "unchanged", (double)r->unchanged);
    cJSON_AddNumberToObject(chg, "removed", (double)r->removed);
    cJSON_AddNumberToObject(chg, "skipped", (double)r->skipped);
    cJSON *tot = cJSON_AddObjectToObject(m, "totals");
    cJSON_AddNumberToObject(tot, "files", (double)r->files);
    cJSON_AddNumberToObject(tot, "skipped", (double)r->skipped);
    cJSON_AddNumberToObject(tot, "docs", (double)r->docs);
    cJSON_AddNumberToObject(tot, "chunks", (double)r->chunks);
    cJSON_AddNumberToObject(tot, "dup_exact", (double)r->dup_exact);
    cJSON_AddNumberToObject(tot, "dup_near", (double)r->dup_near);
    cJSON_AddNumberToObject(tot, "bad_records", (double)r->bad_records);
    cJSON_AddNumberToObject(tot, "input_bytes", (double)r->input_bytes);
    cJSON_AddNumberToObject(tot, "text_bytes", (double)r->text_bytes);
    cJSON_AddNumberToObject(tot, "chunks_reused", (double)r->chunks_reused);
    cJSON_AddNumberToObject(tot, "chunks_embedded", (double)r->chunks_embedded);
    cJSON_AddNumberToObject(tot, "vectors_reused_by_text", (double)r->chunks_vector_reused);
    cJSON_AddNumberToObject(tot, "truncated_for_embedding", (double)c->truncated);
    cJSON_AddNumberToObject(tot, "dim", r->dim);
    cJSON *files = cJSON_AddObjectToObject(m, "files");
    const char *names[] = {COLL_CHUNKS, COLL_BM25, COLL_DENSE};
    for (int i = 0; i < 3; i++) {
        char p[PATH_MAX + 80], hex[65];
        snprintf(p, sizeof p, "%s/%s", c->tmp, names[i]);
        if (access(p, F_OK)) continue;
        qai_status st = file_sha_hex(p, hex);
        if (st) return st;
        cJSON_AddStringToObject(files, names[i], hex);
    }
    qai_status st = coll_manifest_hash(m, r->manifest_sha256);
    if (st) return st;
    cJSON_AddStringToObject(m, "manifest_sha256", r->manifest_sha256);
    char *text = cJSON_Print(m);
    if (!text) return QAI_ERR_NOMEM;
    char p[PATH_MAX + 80];
    snprintf(p, sizeof p, "%s/" COLL_MANIFEST, c->tmp);
    qai_atomic_file af;
    if (!(st = qai_atomic_open(p, &af))) {
        fputs(text, af.f);
        fputc('\n', af.f);
        st = qai_atomic_commit(&af);
    }
    if (!st) r->manifest_json = qai_strdup(text);
    cJSON_free(text);
    if (!st && !r->manifest_json) st = QAI_ERR_NOMEM;
    return st;
}

qai_status qai_collection_ingest(const char *name, const char *const *paths, int n_paths, const qai_ingest_opts *opts,
                                 qai_ingest_result *res) {
    memset(res, 0, sizeof *res);
    qai_ingest_opts o;
    if (opts) o = *opts;
    else qai_ingest_opts_default(&o);
    if (o.chunk_tokens <= 0) o.chunk_tokens = 256;
    if (o.overlap_tokens < 0) o.overlap_tokens = 0;
    if (o.overlap_tokens >= o.chunk_tokens)
        return qai_error(QAI_ERR_ARG, "overlap (%d tokens) must be smaller than the chunk budget (%d tokens)",
                         o.overlap_tokens, o.chunk_tokens);
    if (o.dedup > 1 || isnan(o.dedup)) return qai_error(QAI_ERR_ARG, "dedup threshold %g is not in (0, 1]", o.dedup);
    if (!o.max_line_bytes) o.max_line_bytes = (size_t)1 << 20;
    if (n_paths <= 0) return qai_error(QAI_ERR_ARG, "nothing to ingest: no paths given");
    uint64_t t0 = qai_time_ns();
    ingest_ctx c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.o = &o;
    c.res = res;
    qai_status st = coll_dir(o.data_dir, name, c.cdir, sizeof c.cdir);
    if (st) return st;
    /* inputs first: a typo in a path changes nothing */
    in_list in = {.o = &o};
    for (int i = 0; i < n_paths && !st; i++) st = walk_input(&in, paths[i]);
    if (!st) in_unique(&in);
    if (!st && in.n == 0) st = qai_error(QAI_ERR_ARG, "no files to ingest under the given paths");
    int lock_fd = -1;
    if (!st) st = qai_mkdirs(c.cdir);
    if (!st) st = lock_collection(c.cdir, &lock_fd);
    if (!st) {
        remove_stale_tmp(c.cdir);
        int cur = coll_read_current(c.cdir);
        if (cur) {
            st = prev_open(c.cdir, cur, &c.prev);
            if (st) st = qai_error_wrap(st, "collection '%s' version %d", name, cur);
            else c.have_prev = true;
        }
    }
    if (!st) st = pick_model(&c);
    int version = 0;
    mh_list mhl = {0};
    if (!st) {
        version = coll_max_version(c.cdir) + 1;
        res->version = version;
        res->previous_version = c.have_prev ? c.prev.version : 0;
        res->dim = c.have_emb ? c.emb.dim : 0;
        if (c.have_prev) {
            cJSON *now = options_json(&c);
            c.prev.reuse_ok =
                now && same_chunking(cJSON_GetObjectItemCaseSensitive(c.prev.manifest, "options"), now);
            cJSON_Delete(now);
        }
        snprintf(c.tmp, sizeof c.tmp, "%s/.tmp-v%d-%ld", c.cdir, version, (long)getpid());
        if (mkdir(c.tmp, 0755)) st = qai_error(QAI_ERR_IO, "cannot create '%s': %s", c.tmp, strerror(errno));
    }
    char dbpath[PATH_MAX + 80];
    snprintf(dbpath, sizeof dbpath, "%s/" COLL_CHUNKS, c.tmp);
    if (!st) st = out_db_open(dbpath, &c.db);
    if (!st && !(c.bm = qai_bm25_new(NULL))) st = QAI_ERR_NOMEM;
    if (!st && o.dedup > 0) st = qai_lsh_new(o.dedup, &c.dd.lsh);
    if (!st) {
        c.man = cJSON_CreateObject();
        c.inputs = cJSON_CreateArray();
        c.dups = cJSON_CreateArray();
        if (!c.man || !c.inputs || !c.dups) st = QAI_ERR_NOMEM;
    }
    /* extraction in batches on the pool, recording in path order */
    qai_pool *pool = NULL;
    if (!st) pool = qai_pool_new(o.n_threads);
    qai_progress pr;
    qai_progress_start(&pr, "ingesting", "files", in.n);
    pr.quiet = !o.progress || st;
    const size_t B = 128;
    file_work *fw = st ? NULL : qai_calloc(B, sizeof *fw);
    if (!st && !fw) st = QAI_ERR_NOMEM;
    for (size_t b0 = 0; b0 < in.n && !st; b0 += B) {
        size_t nb = in.n - b0 < B ? in.n - b0 : B;
        for (size_t i = 0; i < nb; i++) {
            memset(&fw[i], 0, sizeof fw[i]);
            fw[i].in = &in.v[b0 + i];
        }
        batch_job job = {.o = &o, .prev = c.have_prev ? &c.prev : NULL, .emb = c.have_emb ? &c.emb : NULL,
                         .fw = fw, .n = nb};
        qai_pool_run(pool, batch_fn, &job);
        for (size_t i = 0; i < nb; i++) {
            file_work *w = &fw[i];
            if (!st) {
                if (w->prev) w->prev->seen = true;
                res->files++;
                res->input_bytes += w->size;
                if (w->kind == W_SKIP) st = process_skipped(&c, w);
                else if (w->kind == W_REUSE) st = process_reused(&c, w, &mhl);
                else st = process_extracted(&c, w, &mhl);
            }
            file_work_release(w);
        }
        qai_progress_update(&pr, b0 + nb);
        if (b0 == 0) qai_test_crash_point("ingest-first-batch");
    }
    qai_progress_finish(&pr);
    qai_free(fw);
    if (pool) qai_pool_free(pool);
    if (!st && res->chunks == 0) st = qai_error(QAI_ERR_ARG, "no text to index: every input was skipped or a duplicate");
    char p[PATH_MAX + 80];
    if (!st) {
        snprintf(p, sizeof p, "%s/" COLL_BM25, c.tmp);
        st = qai_bm25_save(c.bm, p);
    }
    res->seconds_extract = (double)(qai_time_ns() - t0) / 1e9;
    qai_test_crash_point("ingest-extracted");
    uint64_t t1 = qai_time_ns();
    if (!st && c.have_emb) st = write_dense(&c);
    res->seconds_embed = c.have_emb ? (double)(qai_time_ns() - t1) / 1e9 : 0;
    if (!st && sqlite3_exec(c.db.db, indexes, NULL, NULL, NULL) != SQLITE_OK) st = db_err(c.db.db, "index");
    if (!st && sqlite3_exec(c.db.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) st = db_err(c.db.db, "commit");
    out_db_close(&c.db);
    if (!st) st = fsync_path(dbpath, false);
    int64_t t_ms = now_ms();
    if (!st) st = finish_manifest(&c, version, t_ms);
    if (!st) st = fsync_path(c.tmp, true);
    qai_test_crash_point("ingest-before-rename");
    char final[PATH_MAX + 32];
    snprintf(final, sizeof final, "%s/v%d", c.cdir, version);
    if (!st && rename(c.tmp, final)) st = qai_error(QAI_ERR_IO, "cannot rename '%s' to '%s': %s", c.tmp, final, strerror(errno));
    if (!st) st = fsync_path(c.cdir, true);
    qai_test_crash_point("ingest-before-current");
    if (!st) st = write_current(c.cdir, version);
    if (!st && strlen(final) < sizeof res->path) memcpy(res->path, final, strlen(final) + 1);
    else if (c.tmp[0]) rm_rf(c.tmp);
    if (st) {
        qai_free(res->manifest_json);
        res->manifest_json = NULL;
    }
    res->seconds = (double)(qai_time_ns() - t0) / 1e9;
    /* cleanup */
    if (lock_fd >= 0) close(lock_fd);
    for (size_t i = 0; i < in.n; i++) {
        qai_free(in.v[i].given);
        qai_free(in.v[i].abs);
    }
    qai_free(in.v);
    qai_free(mhl.v);
    qai_free(c.emb_items);
    if (c.bm) qai_bm25_free(c.bm);
    dedup_free(&c.dd);
    cJSON_Delete(c.man);
    cJSON_Delete(c.inputs);
    cJSON_Delete(c.dups);
    if (c.have_emb || c.emb.m) coll_embedder_close(&c.emb);
    if (c.have_prev) prev_close(&c.prev);
    return st;
}

/* ---- in-memory documents (upsert) ------------------------------------------------ */

/* Upserts are serialized within the process: each one lists the upload files
 * and the previous version's inputs before ingesting (which takes the
 * collection's lock), so two at once could each miss the other's file. */
#define COLL_UPLOADS "uploads" /* the JSONL files of upserted documents */

static pthread_mutex_t upsert_mu = PTHREAD_MUTEX_INITIALIZER;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* One JSONL line per document: {"id", "text", ...metadata fields}. */
static qai_status upsert_jsonl(const qai_upsert_doc *docs, int n, char **out) {
    qai_strbuf buf = {0};
    qai_status st = QAI_OK;
    for (int i = 0; i < n && !st; i++) {
        const qai_upsert_doc *d = &docs[i];
        if (!d->text || !*d->text) {
            st = qai_error(QAI_ERR_ARG, "document %d%s%s%s: empty text", i, d->id ? " ('" : "", d->id ? d->id : "",
                           d->id ? "')" : "");
            break;
        }
        cJSON *o = NULL;
        if (d->meta_json && *d->meta_json) {
            o = cJSON_Parse(d->meta_json);
            if (!o || !cJSON_IsObject(o)) {
                cJSON_Delete(o);
                st = qai_error(QAI_ERR_ARG, "document %d: metadata is not a JSON object", i);
                break;
            }
            for (const char *k = "id\0text\0content\0"; *k; k += strlen(k) + 1)
                if (cJSON_GetObjectItemCaseSensitive(o, k)) {
                    cJSON_Delete(o);
                    o = NULL;
                    st = qai_error(QAI_ERR_ARG, "document %d: metadata may not have a field named '%s'", i, k);
                    break;
                }
            if (st) break;
        } else o = cJSON_CreateObject();
        if (!o || (d->id && !cJSON_AddStringToObject(o, "id", d->id)) || !cJSON_AddStringToObject(o, "text", d->text)) {
            cJSON_Delete(o);
            st = QAI_ERR_NOMEM;
            break;
        }
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!line) {
            st = QAI_ERR_NOMEM;
            break;
        }
        qai_strbuf_puts(&buf, line);
        qai_strbuf_putc(&buf, '\n');
        cJSON_free(line);
    }
    if (st) {
        qai_strbuf_free(&buf);
        return st;
    }
    return (*out = qai_strbuf_take(&buf, NULL)) ? QAI_OK : QAI_ERR_NOMEM;
}

/* The inputs of the CURRENT version that are not upload files and still
 * exist (absolute paths, from chunks.db). */
static qai_status upsert_prev_inputs(const char *cdir, const char *updir, char ***paths, int *n, int *cap) {
    int cur = coll_read_current(cdir);
    if (!cur) return QAI_OK;
    char db[PATH_MAX + 64];
    snprintf(db, sizeof db, "%s/v%d/" COLL_CHUNKS, cdir, cur);
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;
    qai_status st = QAI_OK;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, "SELECT abs_path FROM files ORDER BY id", -1, &q, NULL) != SQLITE_OK)
        st = qai_error(QAI_ERR_IO, "cannot read '%s': %s", db, h ? sqlite3_errmsg(h) : "out of memory");
    size_t ul = strlen(updir);
    while (!st && sqlite3_step(q) == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(q, 0);
        if (!p || (!strncmp(p, updir, ul) && p[ul] == '/')) continue;
        if (access(p, R_OK)) {
            qai_log(QAI_LOG_WARN, "upsert: '%s' of %s@%d is gone; the new version does not have it", p, cdir, cur);
            continue;
        }
        if (*n == *cap) {
            int nc = *cap ? *cap * 2 : 16;
            char **nv = qai_realloc(*paths, (size_t)nc * sizeof *nv);
            if (!nv) {
                st = QAI_ERR_NOMEM;
                break;
            }
            *paths = nv;
            *cap = nc;
        }
        if (!((*paths)[*n] = qai_strdup(p))) st = QAI_ERR_NOMEM;
        else (*n)++;
    }
    if (q) sqlite3_finalize(q);
    if (h) sqlite3_close(h);
    return st;
}

qai_status qai_collection_upsert(const char *name, const qai_upsert_doc *docs, int n_docs, const qai_ingest_opts *o,
                                 qai_ingest_result *res) {
    memset(res, 0, sizeof *res);
    if (!name || !qai_collection_name_ok(name)) return qai_error(QAI_ERR_ARG, "invalid collection name '%s'", name ? name : "");
    if (!docs || n_docs <= 0) return qai_error(QAI_ERR_ARG, "nothing to upsert: no documents given");
    char cdir[PATH_MAX], updir[PATH_MAX + 16], file[PATH_MAX + 96];
    qai_status st = coll_dir(o ? o->data_dir : NULL, name, cdir, sizeof cdir);
    if (st) return st;
    snprintf(updir, sizeof updir, "%s/" COLL_UPLOADS, cdir);
    char *jsonl = NULL;
    if ((st = upsert_jsonl(docs, n_docs, &jsonl))) return st;
    uint8_t dig[32];
    char hex[65];
    qai_sha256(jsonl, strlen(jsonl), dig);
    qai_hex(dig, 32, hex);
    pthread_mutex_lock(&upsert_mu);
    char **paths = NULL;
    int np = 0, cap = 0;
    bool wrote = false;
    st = qai_mkdirs(updir);
    if (!st) { /* named by time and content: sorted in upload order, unique */
        snprintf(file, sizeof file, "%s/%013lld-%.16s.jsonl", updir, (long long)now_ms(), hex);
        qai_atomic_file af;
        st = qai_atomic_open(file, &af);
        if (!st && fwrite(jsonl, 1, strlen(jsonl), af.f) != strlen(jsonl)) {
            qai_atomic_abort(&af);
            st = qai_error(QAI_ERR_IO, "cannot write '%s': %s", file, strerror(errno));
        } else if (!st) st = qai_atomic_commit(&af);
        wrote = !st;
    }
    if (!st) st = upsert_prev_inputs(cdir, updir, &paths, &np, &cap);
    DIR *dir = st ? NULL : opendir(updir);
    if (!st && !dir) st = qai_error(QAI_ERR_IO, "cannot list '%s': %s", updir, strerror(errno));
    for (struct dirent *e; !st && (e = readdir(dir));) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".jsonl")) continue; /* not a temporary */
        if (np == cap) {
            int nc = cap ? cap * 2 : 16;
            char **nv = qai_realloc(paths, (size_t)nc * sizeof *nv);
            if (!nv) {
                st = QAI_ERR_NOMEM;
                break;
            }
            paths = nv;
            cap = nc;
        }
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", updir, e->d_name);
        if (!(paths[np] = qai_strdup(p))) st = QAI_ERR_NOMEM;
        else np++;
    }
    if (dir) closedir(dir);
    if (!st) st = qai_collection_ingest(name, (const char *const *)paths, np, o, res);
    if (st && wrote) unlink(file); /* not part of any version: a later upsert must not pick it up */
    pthread_mutex_unlock(&upsert_mu);
    for (int i = 0; i < np; i++) qai_free(paths[i]);
    qai_free(paths);
    qai_free(jsonl);
    return st;
}
