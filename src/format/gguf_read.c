/*
 * GGUF reading: parse and validate a whole file (v2 or v3, little-endian)
 * before exposing anything. Tensor data stays in the read-only mapping (or the
 * caller's buffer); metadata strings are copied so they can be NUL-terminated.
 *
 * Every count read from the file is checked against the bytes left before it
 * drives an allocation or a loop, and all offset arithmetic is overflow-safe:
 * a hostile file costs at most a few times its own size in memory and time.
 * Errors name the file, the field and the byte offset where it starts.
 *
 * What it deliberately does not do: big-endian GGUF, GGUF v1, or writing (see
 * gguf_write.c).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf_internal.h"

typedef struct {
    char *key;     /* NUL-terminated copy */
    size_t key_len;
    uint32_t type;
    uint64_t off;  /* offset of the kv (its key) in the file */
    const uint8_t *raw; /* value bytes in the buffer */
    size_t raw_len;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num;               /* scalars: integers and bools in i/u by signedness, floats in f */
    char *str;           /* string value (NUL-terminated copy) */
    size_t str_len;
    uint32_t arr_type;   /* arrays */
    uint64_t arr_n;
    const uint8_t *arr_data; /* fixed-size elements, in the buffer */
    char **arr_strs;         /* string elements (one allocation: pointers, lengths, bytes) */
    size_t *arr_lens;
} gguf_kv;

/* Open-addressing hash of names → index + 1 (0 = empty slot). */
typedef struct {
    uint32_t *slots;
    size_t cap; /* power of two */
} name_index;

struct qai_gguf {
    char *path;
    qai_mapped_file mf;
    bool mapped;
    const uint8_t *data;
    size_t size;
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    qai_gguf_tensor *tensors;
    size_t *tensor_name_len;
    name_index kv_index, tensor_index;
};

/* ---- small helpers ------------------------------------------------------- */

size_t qai_gguf_fixed_size_(uint32_t type) {
    switch (type) {
    case QAI_GGUF_UINT8:
    case QAI_GGUF_INT8:
    case QAI_GGUF_BOOL: return 1;
    case QAI_GGUF_UINT16:
    case QAI_GGUF_INT16: return 2;
    case QAI_GGUF_UINT32:
    case QAI_GGUF_INT32:
    case QAI_GGUF_FLOAT32: return 4;
    case QAI_GGUF_UINT64:
    case QAI_GGUF_INT64:
    case QAI_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *qai_gguf_type_name(int type) {
    static const char *names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                  "bool",  "string", "array",  "uint64", "int64",  "float64"};
    if (type < 0 || type > QAI_GGUF_FLOAT64) return "unknown";
    return names[type];
}

static bool is_int_type(uint32_t t) {
    return t == QAI_GGUF_UINT8 || t == QAI_GGUF_INT8 || t == QAI_GGUF_UINT16 || t == QAI_GGUF_INT16 ||
           t == QAI_GGUF_UINT32 || t == QAI_GGUF_INT32 || t == QAI_GGUF_UINT64 || t == QAI_GGUF_INT64 ||
           t == QAI_GGUF_BOOL;
}
static bool is_float_type(uint32_t t) { return t == QAI_GGUF_FLOAT32 || t == QAI_GGUF_FLOAT64; }

/* Decodes one fixed-size little-endian value into the int/float slots. */
static void decode_fixed(uint32_t type, const uint8_t *p, int64_t *iv, double *fv) {
    int64_t i = 0;
    double f = 0;
    switch (type) {
    case QAI_GGUF_UINT8: i = p[0]; f = (double)i; break;
    case QAI_GGUF_INT8: i = (int8_t)p[0]; f = (double)i; break;
    case QAI_GGUF_BOOL: i = p[0] != 0; f = (double)i; break;
    case QAI_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); i = v; f = v; break; }
    case QAI_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); i = v; f = v; break; }
    case QAI_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); i = v; f = v; break; }
    case QAI_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); i = v; f = v; break; }
    case QAI_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); i = (int64_t)v; f = (double)v; break; }
    case QAI_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); i = v; f = (double)v; break; }
    case QAI_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); f = v; i = 0; break; }
    case QAI_GGUF_FLOAT64: { double v; memcpy(&v, p, 8); f = v; i = 0; break; }
    default: break;
    }
    if (iv) *iv = i;
    if (fv) *fv = f;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static qai_status index_init(name_index *ix, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    ix->slots = qai_calloc(cap, sizeof *ix->slots);
    if (!ix->slots) return QAI_ERR_NOMEM;
    ix->cap = cap;
    return QAI_OK;
}

/* Finds name in the index; names(idx) gives the stored name of entry idx. On a
 * miss returns -1 and, when slot_out is given, the empty slot to fill. */
typedef const char *(*name_of_fn)(const qai_gguf *g, uint32_t idx, size_t *len);
static int64_t index_find(const qai_gguf *g, const name_index *ix, name_of_fn name_of, const char *s, size_t n,
                          size_t *slot_out) {
    if (!ix->slots) return -1;
    size_t mask = ix->cap - 1, pos = (size_t)hash_bytes(s, n) & mask;
    for (;;) {
        uint32_t v = ix->slots[pos];
        if (!v) {
            if (slot_out) *slot_out = pos;
            return -1;
        }
        size_t len;
        const char *name = name_of(g, v - 1, &len);
        if (len == n && !memcmp(name, s, n)) return v - 1;
        pos = (pos + 1) & mask;
    }
}

static const char *kv_name_of(const qai_gguf *g, uint32_t idx, size_t *len) {
    *len = g->kv[idx].key_len;
    return g->kv[idx].key;
}
static const char *tensor_name_of(const qai_gguf *g, uint32_t idx, size_t *len) {
    *len = g->tensor_name_len[idx];
    return g->tensors[idx].name;
}

/* ---- the byte cursor --------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t size, off;
    const char *name; /* for messages */
} cursor;

static size_t left(const cursor *c) { return c->size - c->off; }

static qai_status trunc_err(const cursor *c, const char *what, size_t need) {
    return qai_error(QAI_ERR_FORMAT, "'%s': %s at offset %zu: file truncated (needs %zu bytes, %zu left)", c->name,
                     what, c->off, need, left(c));
}

static qai_status rd_u32(cursor *c, const char *what, uint32_t *v) {
    if (left(c) < 4) return trunc_err(c, what, 4);
    memcpy(v, c->p + c->off, 4);
    c->off += 4;
    return QAI_OK;
}
static qai_status rd_u64(cursor *c, const char *what, uint64_t *v) {
    if (left(c) < 8) return trunc_err(c, what, 8);
    memcpy(v, c->p + c->off, 8);
    c->off += 8;
    return QAI_OK;
}
/* A GGUF string: u64 length + bytes. Returns a pointer into the buffer. */
static qai_status rd_str(cursor *c, const char *what, const uint8_t **s, size_t *n) {
    size_t start = c->off;
    uint64_t len;
    if (left(c) < 8) return trunc_err(c, what, 8);
    memcpy(&len, c->p + c->off, 8);
    if (len > left(c) - 8)
        return qai_error(QAI_ERR_FORMAT, "'%s': %s at offset %zu: string length %llu exceeds the %zu bytes left in the file",
                         c->name, what, start, (unsigned long long)len, left(c) - 8);
    c->off += 8;
    *s = c->p + c->off;
    *n = (size_t)len;
    c->off += (size_t)len;
    return QAI_OK;
}

static char *copy_str(const uint8_t *s, size_t n) {
    char *d = qai_malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ---- values ------------------------------------------------------------------ */

/* Skips a value of the given type (used for nested arrays), validating it. */
static qai_status skip_value(cursor *c, uint32_t type, int depth, const char *what) {
    size_t fs = qai_gguf_fixed_size_(type);
    if (fs) {
        if (left(c) < fs) return trunc_err(c, what, fs);
        c->off += fs;
        return QAI_OK;
    }
    if (type == QAI_GGUF_STRING) {
        const uint8_t *s = NULL;
        size_t n = 0;
        return rd_str(c, what, &s, &n);
    }
    if (type != QAI_GGUF_ARRAY)
        return qai_error(QAI_ERR_FORMAT, "'%s': %s at offset %zu: unknown value type %u", c->name, what, c->off, type);
    size_t start = c->off;
    if (depth >= QAI_GGUF_MAX_DEPTH)
        return qai_error(QAI_ERR_FORMAT, "'%s': %s at offset %zu: arrays nested more than %d deep", c->name, what, start,
                         QAI_GGUF_MAX_DEPTH);
    uint32_t et = 0;
    uint64_t n = 0;
    qai_status st;
    if ((st = rd_u32(c, what, &et)) || (st = rd_u64(c, what, &n))) return st;
    size_t efs = qai_gguf_fixed_size_(et);
    size_t min = efs ? efs : et == QAI_GGUF_STRING ? 8 : et == QAI_GGUF_ARRAY ? 12 : 0;
    if (!min)
        return qai_error(QAI_ERR_FORMAT, "'%s': %s at offset %zu: unknown array element type %u", c->name, what, start,
                         et);
    if (n > left(c) / min)
        return qai_error(QAI_ERR_FORMAT,
                         "'%s': %s at offset %zu: array of %llu %s elements does not fit in the %zu bytes left", c->name,
                         what, start, (unsigned long long)n, qai_gguf_type_name((int)et), left(c));
    if (efs) {
        c->off += (size_t)n * efs;
        return QAI_OK;
    }
    for (uint64_t j = 0; j < n; j++)
        if ((st = skip_value(c, et, depth + 1, what))) return st;
    return QAI_OK;
}

static qai_status parse_kv_value(cursor *c, gguf_kv *kv, int64_t idx) {
    char what[160];
    snprintf(what, sizeof what, "key %lld ('%.80s') value", (long long)idx, kv->key);
    size_t start = c->off;
    qai_status st;
    size_t fs = qai_gguf_fixed_size_(kv->type);
    if (fs) {
        if (left(c) < fs) return trunc_err(c, what, fs);
        int64_t iv;
        double fv;
        decode_fixed(kv->type, c->p + c->off, &iv, &fv);
        if (is_float_type(kv->type)) kv->num.f = fv;
        else kv->num.i = iv;
        c->off += fs;
    } else if (kv->type == QAI_GGUF_STRING) {
        const uint8_t *s = NULL;
        size_t n = 0;
        if ((st = rd_str(c, what, &s, &n))) return st;
        if (!(kv->str = copy_str(s, n))) return QAI_ERR_NOMEM;
        kv->str_len = n;
    } else if (kv->type == QAI_GGUF_ARRAY) {
        uint32_t et = 0;
        uint64_t n = 0;
        if ((st = rd_u32(c, what, &et)) || (st = rd_u64(c, what, &n))) return st;
        size_t efs = qai_gguf_fixed_size_(et);
        size_t min = efs ? efs : et == QAI_GGUF_STRING ? 8 : et == QAI_GGUF_ARRAY ? 12 : 0;
        if (!min)
            return qai_error(QAI_ERR_FORMAT, "'%s': %s at offset %zu: unknown array element type %u", c->name, what,
                             start, et);
        if (n > left(c) / min)
            return qai_error(QAI_ERR_FORMAT,
                             "'%s': %s at offset %zu: array of %llu %s elements does not fit in the %zu bytes left",
                             c->name, what, start, (unsigned long long)n, qai_gguf_type_name((int)et), left(c));
        kv->arr_type = et;
        kv->arr_n = n;
        if (efs) {
            kv->arr_data = c->p + c->off;
            c->off += (size_t)n * efs;
        } else if (et == QAI_GGUF_STRING) {
            /* First pass validates the lengths and totals the bytes, so the one
             * allocation below is bounded by what the file really holds. */
            size_t first = c->off, total = 0;
            for (uint64_t j = 0; j < n; j++) {
                const uint8_t *s = NULL;
                size_t len = 0;
                if ((st = rd_str(c, what, &s, &len))) return st;
                total += len + 1;
            }
            size_t bytes = (size_t)n * (sizeof(char *) + sizeof(size_t)) + total;
            char *block = qai_malloc(bytes ? bytes : 1);
            if (!block) return QAI_ERR_NOMEM;
            kv->arr_strs = (char **)block;
            kv->arr_lens = (size_t *)(block + (size_t)n * sizeof(char *));
            char *dst = block + (size_t)n * (sizeof(char *) + sizeof(size_t));
            c->off = first;
            for (uint64_t j = 0; j < n; j++) {
                const uint8_t *s = NULL;
                size_t len = 0;
                rd_str(c, what, &s, &len); /* already validated */
                if (len) memcpy(dst, s, len);
                dst[len] = 0;
                kv->arr_strs[j] = dst;
                kv->arr_lens[j] = len;
                dst += len + 1;
            }
        } else {
            for (uint64_t j = 0; j < n; j++)
                if ((st = skip_value(c, et, 1, what))) return st;
        }
    } else {
        return qai_error(QAI_ERR_FORMAT, "'%s': key %lld ('%.80s') at offset %llu: unknown value type %u", c->name,
                         (long long)idx, kv->key, (unsigned long long)kv->off, kv->type);
    }
    kv->raw = c->p + start;
    kv->raw_len = c->off - start;
    return QAI_OK;
}

/* ---- open ------------------------------------------------------------------ */

void qai_gguf_close(qai_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        qai_free(g->kv[i].key);
        qai_free(g->kv[i].str);
        qai_free(g->kv[i].arr_strs);
    }
    qai_free(g->kv);
    for (int64_t i = 0; i < g->n_tensors; i++) qai_free((char *)g->tensors[i].name);
    qai_free(g->tensors);
    qai_free(g->tensor_name_len);
    qai_free(g->kv_index.slots);
    qai_free(g->tensor_index.slots);
    if (g->mapped) qai_file_unmap(&g->mf);
    qai_free(g->path);
    qai_free(g);
}

static int cmp_by_offset(const void *a, const void *b) {
    const qai_gguf_tensor *x = *(const qai_gguf_tensor *const *)a, *y = *(const qai_gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

static qai_status parse(qai_gguf *g) {
    cursor c = {g->data, g->size, 0, g->path};
    qai_status st;
    uint32_t magic = 0, version = 0;
    uint64_t n_tensors = 0, n_kv = 0;

    if (g->size < 4) return trunc_err(&c, "magic", 4);
    memcpy(&magic, g->data, 4);
    if (magic != QAI_GGUF_MAGIC) {
        char shown[5] = {0};
        for (int i = 0; i < 4; i++) shown[i] = (g->data[i] >= 32 && g->data[i] < 127) ? (char)g->data[i] : '?';
        return qai_error(QAI_ERR_FORMAT, "'%s': magic at offset 0: '%s' (0x%08x) is not 'GGUF'; not a GGUF file",
                         g->path, shown, magic);
    }
    c.off = 4;
    if ((st = rd_u32(&c, "version", &version))) return st;
    if (version == 0x02000000u || version == 0x03000000u)
        return qai_error(QAI_ERR_UNSUPPORTED, "'%s': version at offset 4: big-endian GGUF files are not supported",
                         g->path);
    if (version == 1)
        return qai_error(QAI_ERR_UNSUPPORTED,
                         "'%s': version at offset 4: GGUF version 1 is not supported (only 2 and 3); convert the file "
                         "with a newer tool",
                         g->path);
    if (version != 2 && version != 3)
        return qai_error(QAI_ERR_FORMAT, "'%s': version at offset 4: unknown GGUF version %u (expected 2 or 3)",
                         g->path, version);
    g->version = version;
    if ((st = rd_u64(&c, "n_tensors", &n_tensors))) return st;
    if ((st = rd_u64(&c, "n_kv", &n_kv))) return st;
    /* The smallest kv is 13 bytes (empty key, type, one-byte value); the smallest
     * tensor info 32 (empty name, one dim). */
    if (n_kv > left(&c) / 13)
        return qai_error(QAI_ERR_FORMAT,
                         "'%s': n_kv at offset 16: %llu key-value pairs cannot fit in the %zu bytes left in the file",
                         g->path, (unsigned long long)n_kv, left(&c));
    if (n_tensors > left(&c) / 32)
        return qai_error(QAI_ERR_FORMAT,
                         "'%s': n_tensors at offset 8: %llu tensors cannot fit in the %zu bytes left in the file",
                         g->path, (unsigned long long)n_tensors, left(&c));
    if (n_kv > UINT32_MAX - 1 || n_tensors > UINT32_MAX - 1)
        return qai_error(QAI_ERR_FORMAT, "'%s': n_kv/n_tensors at offset 8: too many entries", g->path);

    /* Arrays grow with what is actually parsed, so a lying count costs nothing. */
    if ((st = index_init(&g->kv_index, (size_t)n_kv))) return st;
    size_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        if ((size_t)g->n_kv == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            if (ncap > n_kv) ncap = (size_t)n_kv;
            gguf_kv *nk = qai_realloc(g->kv, ncap * sizeof *nk);
            if (!nk) return QAI_ERR_NOMEM;
            g->kv = nk;
            cap = ncap;
        }
        gguf_kv *kv = &g->kv[g->n_kv];
        memset(kv, 0, sizeof *kv);
        kv->off = c.off;
        char what[64];
        snprintf(what, sizeof what, "key %llu name", (unsigned long long)i);
        const uint8_t *ks = NULL;
        size_t kn = 0;
        if ((st = rd_str(&c, what, &ks, &kn))) return st;
        if (!(kv->key = copy_str(ks, kn))) return QAI_ERR_NOMEM;
        kv->key_len = kn;
        g->n_kv++; /* owned from here on, freed by close */
        size_t slot = 0;
        if (index_find(g, &g->kv_index, kv_name_of, kv->key, kn, &slot) >= 0)
            return qai_error(QAI_ERR_FORMAT, "'%s': key %llu at offset %llu: duplicate key '%.200s'", g->path,
                             (unsigned long long)i, (unsigned long long)kv->off, kv->key);
        g->kv_index.slots[slot] = (uint32_t)i + 1;
        snprintf(what, sizeof what, "key %llu type", (unsigned long long)i);
        if ((st = rd_u32(&c, what, &kv->type))) return st;
        if ((st = parse_kv_value(&c, kv, (int64_t)i))) return st;
    }

    g->alignment = QAI_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = qai_gguf_find_kv(g, "general.alignment");
    if (ai >= 0) {
        const gguf_kv *kv = &g->kv[ai];
        if (kv->type != QAI_GGUF_UINT32)
            return qai_error(QAI_ERR_FORMAT, "'%s': key 'general.alignment' at offset %llu: type is %s, expected uint32",
                             g->path, (unsigned long long)kv->off, qai_gguf_type_name((int)kv->type));
        uint64_t a = kv->num.u;
        if (a == 0 || (a & (a - 1)))
            return qai_error(QAI_ERR_FORMAT, "'%s': key 'general.alignment' at offset %llu: %llu is not a power of two",
                             g->path, (unsigned long long)kv->off, (unsigned long long)a);
        g->alignment = (size_t)a;
    }

    /* Tensor infos. */
    if (n_tensors > left(&c) / 32)
        return qai_error(QAI_ERR_FORMAT,
                         "'%s': n_tensors at offset 8: %llu tensor infos cannot fit in the %zu bytes left after the "
                         "metadata (offset %zu)",
                         g->path, (unsigned long long)n_tensors, left(&c), c.off);
    if (n_tensors) {
        g->tensors = qai_calloc((size_t)n_tensors, sizeof *g->tensors);
        g->tensor_name_len = qai_calloc((size_t)n_tensors, sizeof *g->tensor_name_len);
        if (!g->tensors || !g->tensor_name_len) return QAI_ERR_NOMEM;
    }
    if ((st = index_init(&g->tensor_index, (size_t)n_tensors))) return st;
    uint64_t *info_off = qai_malloc((size_t)(n_tensors ? n_tensors : 1) * sizeof *info_off);
    if (!info_off) return QAI_ERR_NOMEM;
    for (uint64_t i = 0; i < n_tensors; i++) {
        qai_gguf_tensor *t = &g->tensors[i];
        size_t toff = c.off;
        info_off[i] = toff;
        char what[192];
        snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
        const uint8_t *ns = NULL;
        size_t nn = 0;
        if ((st = rd_str(&c, what, &ns, &nn))) goto fail;
        if (!(t->name = copy_str(ns, nn))) {
            st = QAI_ERR_NOMEM;
            goto fail;
        }
        g->tensor_name_len[i] = nn;
        g->n_tensors++;
        if (nn > QAI_GGUF_MAX_NAME_READ) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': tensor %llu name at offset %zu: name of %zu bytes is longer than %d",
                           g->path, (unsigned long long)i, toff, nn, QAI_GGUF_MAX_NAME_READ);
            goto fail;
        }
        size_t slot = 0;
        if (index_find(g, &g->tensor_index, tensor_name_of, t->name, nn, &slot) >= 0) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': tensor %llu at offset %zu: duplicate tensor name '%s'", g->path,
                           (unsigned long long)i, toff, t->name);
            goto fail;
        }
        g->tensor_index.slots[slot] = (uint32_t)i + 1;
        char td[128]; /* "tensor 3 ('blk.0.attn_q.weight')" */
        snprintf(td, sizeof td, "tensor %llu ('%.64s')", (unsigned long long)i, t->name);
        snprintf(what, sizeof what, "%s n_dims", td);
        uint32_t nd = 0;
        size_t fo = c.off;
        if ((st = rd_u32(&c, what, &nd))) goto fail;
        if (nd < 1 || nd > QAI_GGUF_MAX_DIMS) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': %s n_dims at offset %zu: %u dimensions (expected 1 to %d)",
                           g->path, td, fo, nd, QAI_GGUF_MAX_DIMS);
            goto fail;
        }
        t->n_dims = (int)nd;
        int64_t nelem = 1;
        for (int d = 0; d < QAI_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v = 0;
            fo = c.off;
            snprintf(what, sizeof what, "%s ne[%u]", td, d);
            if ((st = rd_u64(&c, what, &v))) goto fail;
            if (v > (uint64_t)INT64_MAX || (v && (uint64_t)nelem > (uint64_t)INT64_MAX / v)) {
                st = qai_error(QAI_ERR_FORMAT, "'%s': %s ne[%u] at offset %zu: dimension %llu is absurd (element "
                               "count overflows int64)",
                               g->path, td, d, fo, (unsigned long long)v);
                goto fail;
            }
            t->ne[d] = (int64_t)v;
            nelem *= (int64_t)v;
        }
        uint32_t type = 0;
        fo = c.off;
        snprintf(what, sizeof what, "%s type", td);
        if ((st = rd_u32(&c, what, &type))) goto fail;
        const qai_type_traits *tr = qai_type_info((int)type);
        if (!tr || tr->type_size == 0 || tr->block_size <= 0) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': %s type at offset %zu: unknown tensor type id %u", g->path,
                           td, fo, type);
            goto fail;
        }
        t->type = (qai_type)type;
        if (t->ne[0] % tr->block_size) {
            st = qai_error(QAI_ERR_FORMAT,
                           "'%s': %s ne[0] at offset %zu: row length %lld is not a multiple of the %s block "
                           "size %d",
                           g->path, td, toff, (long long)t->ne[0], tr->name, tr->block_size);
            goto fail;
        }
        /* size = (ne0 / block) * type_size * ne1 * ne2 * ne3, overflow-checked. */
        uint64_t sz = (uint64_t)(t->ne[0] / tr->block_size);
        bool ovf = sz && tr->type_size > UINT64_MAX / sz;
        sz *= tr->type_size;
        for (int d = 1; d < QAI_GGUF_MAX_DIMS && !ovf; d++) {
            uint64_t m = (uint64_t)t->ne[d];
            if (m && sz > UINT64_MAX / m) ovf = true;
            else sz *= m;
        }
        if (ovf || sz > SIZE_MAX) {
            st = qai_error(QAI_ERR_FORMAT, "'%s': %s at offset %zu: byte size overflows", g->path, td, toff);
            goto fail;
        }
        t->size = (size_t)sz;
        fo = c.off;
        snprintf(what, sizeof what, "%s offset", td);
        if ((st = rd_u64(&c, what, &t->offset))) goto fail;
        if (t->offset % g->alignment) {
            st = qai_error(QAI_ERR_FORMAT,
                           "'%s': %s offset at offset %zu: data offset %llu is not a multiple of the alignment "
                           "%zu",
                           g->path, td, fo, (unsigned long long)t->offset, g->alignment);
            goto fail;
        }
    }

    /* The data section starts at the header end padded to the alignment. */
    size_t hdr_end = c.off;
    size_t pad = (g->alignment - hdr_end % g->alignment) % g->alignment;
    if (hdr_end > SIZE_MAX - pad) {
        st = qai_error(QAI_ERR_FORMAT, "'%s': data section offset overflows", g->path);
        goto fail;
    }
    g->data_offset = hdr_end + pad;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        qai_gguf_tensor *t = &g->tensors[i];
        uint64_t avail = g->size > g->data_offset ? g->size - g->data_offset : 0;
        if (t->offset > avail || t->size > avail - t->offset) {
            st = qai_error(QAI_ERR_FORMAT,
                           "'%s': tensor '%s' (info at offset %llu) ends past the end of the file (offset %llu + %zu > "
                           "size %zu)",
                           g->path, t->name, (unsigned long long)info_off[i],
                           (unsigned long long)(g->data_offset + t->offset), t->size, g->size);
            goto fail;
        }
        /* an empty tensor may sit at the very end: keep its pointer inside the buffer */
        uint64_t at = (uint64_t)g->data_offset + t->offset;
        t->data = g->data + (at < g->size ? at : g->size);
    }
    /* Overlaps: sort by offset and compare neighbours. */
    if (g->n_tensors > 1) {
        qai_gguf_tensor **order = qai_malloc((size_t)g->n_tensors * sizeof *order);
        if (!order) {
            st = QAI_ERR_NOMEM;
            goto fail;
        }
        for (int64_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
        qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_by_offset);
        /* a: the non-empty tensor seen so far that reaches furthest. */
        const qai_gguf_tensor *a = NULL;
        for (int64_t i = 0; i < g->n_tensors; i++) {
            const qai_gguf_tensor *b = order[i];
            if (!b->size) continue;
            if (a && a->offset + a->size > b->offset) {
                st = qai_error(QAI_ERR_FORMAT,
                               "'%s': tensor '%s' (data offset %llu, info at offset %llu) overlaps tensor '%s' (data "
                               "offset %llu, %zu bytes)",
                               g->path, b->name, (unsigned long long)b->offset,
                               (unsigned long long)info_off[b - g->tensors], a->name, (unsigned long long)a->offset,
                               a->size);
                qai_free(order);
                goto fail;
            }
            if (!a || b->offset + b->size > a->offset + a->size) a = b;
        }
        qai_free(order);
    }
    qai_free(info_off);
    return QAI_OK;
fail:
    qai_free(info_off);
    return st;
}

static qai_status open_common(qai_gguf *g, qai_gguf **out) {
    qai_status st = parse(g);
    if (st) {
        if (st == QAI_ERR_NOMEM) qai_error_wrap(st, "'%s'", g->path);
        qai_gguf_close(g);
        return st;
    }
    *out = g;
    return QAI_OK;
}

qai_status qai_gguf_open(const char *path, qai_gguf **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_gguf_open: out is NULL");
    *out = NULL;
    if (!path) return qai_error(QAI_ERR_ARG, "qai_gguf_open: path is NULL");
    qai_gguf *g = qai_calloc(1, sizeof *g);
    if (!g) return QAI_ERR_NOMEM;
    if (!(g->path = qai_strdup(path))) {
        qai_free(g);
        return QAI_ERR_NOMEM;
    }
    qai_status st = qai_file_map(path, &g->mf);
    if (st) {
        qai_free(g->path);
        qai_free(g);
        return st;
    }
    g->mapped = true;
    g->data = g->mf.data;
    g->size = g->mf.size;
    return open_common(g, out);
}

qai_status qai_gguf_open_buffer(const void *data, size_t size, const char *name, qai_gguf **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_gguf_open_buffer: out is NULL");
    *out = NULL;
    if (!data && size) return qai_error(QAI_ERR_ARG, "qai_gguf_open_buffer: data is NULL");
    qai_gguf *g = qai_calloc(1, sizeof *g);
    if (!g) return QAI_ERR_NOMEM;
    if (!(g->path = qai_strdup(name ? name : "<buffer>"))) {
        qai_free(g);
        return QAI_ERR_NOMEM;
    }
    static const uint8_t empty[1];
    g->data = data ? data : empty;
    g->size = size;
    return open_common(g, out);
}

/* ---- accessors ------------------------------------------------------------- */

uint32_t qai_gguf_version(const qai_gguf *g) { return g->version; }
size_t qai_gguf_file_size(const qai_gguf *g) { return g->size; }
size_t qai_gguf_alignment(const qai_gguf *g) { return g->alignment; }
size_t qai_gguf_data_offset(const qai_gguf *g) { return g->data_offset; }
const char *qai_gguf_path(const qai_gguf *g) { return g->path; }

int64_t qai_gguf_n_kv(const qai_gguf *g) { return g->n_kv; }
const char *qai_gguf_kv_key(const qai_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    return g->kv[i].key;
}
qai_gguf_type qai_gguf_kv_type(const qai_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    return (qai_gguf_type)g->kv[i].type;
}
int64_t qai_gguf_find_kv(const qai_gguf *g, const char *key) {
    if (!g || !key) return -1;
    return index_find(g, &g->kv_index, kv_name_of, key, strlen(key), NULL);
}

void qai_gguf_kv_raw_(const qai_gguf *g, int64_t i, const uint8_t **raw, size_t *len) {
    assert(i >= 0 && i < g->n_kv);
    *raw = g->kv[i].raw;
    *len = g->kv[i].raw_len;
}

static qai_status find_typed(const qai_gguf *g, const char *key, const gguf_kv **kv) {
    int64_t i = qai_gguf_find_kv(g, key);
    if (i < 0) return QAI_ERR_NOT_FOUND;
    *kv = &g->kv[i];
    return QAI_OK;
}

static qai_status type_err(const qai_gguf *g, const gguf_kv *kv, const char *want) {
    return qai_error(QAI_ERR_FORMAT, "'%s': key '%s' at offset %llu has type %s, expected %s", g->path, kv->key,
                     (unsigned long long)kv->off, qai_gguf_type_name((int)kv->type), want);
}

qai_status qai_gguf_get_int(const qai_gguf *g, const char *key, int64_t *out) {
    const gguf_kv *kv;
    if (find_typed(g, key, &kv)) return QAI_ERR_NOT_FOUND;
    if (!is_int_type(kv->type)) return type_err(g, kv, "an integer");
    if (kv->type == QAI_GGUF_UINT64 && kv->num.u > (uint64_t)INT64_MAX)
        return qai_error(QAI_ERR_FORMAT, "'%s': key '%s' at offset %llu: value %llu does not fit in int64", g->path,
                         kv->key, (unsigned long long)kv->off, (unsigned long long)kv->num.u);
    *out = kv->num.i;
    return QAI_OK;
}

qai_status qai_gguf_get_float(const qai_gguf *g, const char *key, double *out) {
    const gguf_kv *kv;
    if (find_typed(g, key, &kv)) return QAI_ERR_NOT_FOUND;
    if (is_float_type(kv->type)) *out = kv->num.f;
    else if (is_int_type(kv->type) && kv->type != QAI_GGUF_BOOL)
        *out = kv->type == QAI_GGUF_UINT64 ? (double)kv->num.u : (double)kv->num.i;
    else return type_err(g, kv, "a number");
    return QAI_OK;
}

qai_status qai_gguf_get_bool(const qai_gguf *g, const char *key, bool *out) {
    const gguf_kv *kv;
    if (find_typed(g, key, &kv)) return QAI_ERR_NOT_FOUND;
    if (kv->type != QAI_GGUF_BOOL) return type_err(g, kv, "bool");
    *out = kv->num.i != 0;
    return QAI_OK;
}

qai_status qai_gguf_get_str(const qai_gguf *g, const char *key, const char **out) {
    const gguf_kv *kv;
    if (find_typed(g, key, &kv)) return QAI_ERR_NOT_FOUND;
    if (kv->type != QAI_GGUF_STRING) return type_err(g, kv, "string");
    *out = kv->str;
    return QAI_OK;
}

int64_t qai_gguf_kv_int(const qai_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    return is_int_type(g->kv[i].type) ? g->kv[i].num.i : 0;
}
double qai_gguf_kv_float(const qai_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    const gguf_kv *kv = &g->kv[i];
    if (is_float_type(kv->type)) return kv->num.f;
    if (kv->type == QAI_GGUF_UINT64) return (double)kv->num.u;
    if (is_int_type(kv->type)) return (double)kv->num.i;
    return 0;
}
const char *qai_gguf_kv_str(const qai_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    return g->kv[i].type == QAI_GGUF_STRING ? g->kv[i].str : NULL;
}

qai_gguf_type qai_gguf_arr_type(const qai_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    return (qai_gguf_type)g->kv[i].arr_type;
}
uint64_t qai_gguf_arr_len(const qai_gguf *g, int64_t i) {
    assert(i >= 0 && i < g->n_kv);
    return g->kv[i].type == QAI_GGUF_ARRAY ? g->kv[i].arr_n : 0;
}

int64_t qai_gguf_arr_int(const qai_gguf *g, int64_t i, uint64_t j) {
    assert(i >= 0 && i < g->n_kv);
    const gguf_kv *kv = &g->kv[i];
    assert(kv->type == QAI_GGUF_ARRAY && j < kv->arr_n && kv->arr_data);
    if (!kv->arr_data || j >= kv->arr_n) return 0;
    int64_t v;
    double f;
    decode_fixed(kv->arr_type, kv->arr_data + j * qai_gguf_fixed_size_(kv->arr_type), &v, &f);
    if (!is_float_type(kv->arr_type)) return v;
    /* floats convert with saturation (a plain cast of an out-of-range float is UB) */
    if (!(f == f)) return 0;
    if (f >= 9223372036854775807.0) return INT64_MAX;
    if (f <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)f;
}
double qai_gguf_arr_float(const qai_gguf *g, int64_t i, uint64_t j) {
    assert(i >= 0 && i < g->n_kv);
    const gguf_kv *kv = &g->kv[i];
    assert(kv->type == QAI_GGUF_ARRAY && j < kv->arr_n && kv->arr_data);
    if (!kv->arr_data || j >= kv->arr_n) return 0;
    int64_t v;
    double f;
    decode_fixed(kv->arr_type, kv->arr_data + j * qai_gguf_fixed_size_(kv->arr_type), &v, &f);
    return f;
}
const char *qai_gguf_arr_str(const qai_gguf *g, int64_t i, uint64_t j) {
    assert(i >= 0 && i < g->n_kv);
    const gguf_kv *kv = &g->kv[i];
    assert(kv->type == QAI_GGUF_ARRAY && kv->arr_type == QAI_GGUF_STRING && j < kv->arr_n);
    if (!kv->arr_strs || j >= kv->arr_n) return NULL;
    return kv->arr_strs[j];
}
size_t qai_gguf_arr_str_len(const qai_gguf *g, int64_t i, uint64_t j) {
    assert(i >= 0 && i < g->n_kv);
    const gguf_kv *kv = &g->kv[i];
    assert(kv->type == QAI_GGUF_ARRAY && kv->arr_type == QAI_GGUF_STRING && j < kv->arr_n);
    if (!kv->arr_lens || j >= kv->arr_n) return 0;
    return kv->arr_lens[j];
}

int64_t qai_gguf_n_tensors(const qai_gguf *g) { return g->n_tensors; }
const qai_gguf_tensor *qai_gguf_tensor_at(const qai_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_tensors) return NULL;
    return &g->tensors[i];
}
const qai_gguf_tensor *qai_gguf_find_tensor(const qai_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    int64_t i = index_find(g, &g->tensor_index, tensor_name_of, name, strlen(name), NULL);
    return i < 0 ? NULL : &g->tensors[i];
}
