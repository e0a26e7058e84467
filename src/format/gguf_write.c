/*
 * GGUF v3 writing: metadata is serialized into memory as it is set (keys keep
 * insertion order; setting a key again replaces its value in place); tensor
 * data is streamed from the caller's buffers when the file is written, through
 * a temporary file that is fsynced and renamed into place (qai_atomic_*).
 *
 * Layout written: header, kvs, tensor infos, zero padding to the alignment
 * (general.alignment if set, else 32), then each tensor's data padded to the
 * alignment — the same layout ggml writes, so llama.cpp reads it.
 *
 * What it deliberately does not do: rewrite a file in place, or write v2 or
 * big-endian files.
 */
#include <string.h>

#include "format/gguf_internal.h"

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val; /* serialized value (for arrays: elem type, count, elements) */
    size_t len;
} wkv;

typedef struct {
    char *name;
    qai_type type;
    int n_dims;
    int64_t ne[QAI_GGUF_MAX_DIMS];
    const void *data;
    size_t size;
} wtensor;

struct qai_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

qai_gguf_writer *qai_gguf_writer_new(void) { return qai_calloc(1, sizeof(qai_gguf_writer)); }

void qai_gguf_writer_free(qai_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        qai_free(w->kv[i].key);
        qai_free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) qai_free(w->t[i].name);
    qai_free(w->kv);
    qai_free(w->t);
    qai_free(w);
}

static wkv *find_kv(qai_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return &w->kv[i];
    return NULL;
}

/* Sets key to a serialized value; takes ownership of val (freed on failure). */
static qai_status set_owned(qai_gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t len) {
    if (!w || !key || !*key) {
        qai_free(val);
        return qai_error(QAI_ERR_ARG, "gguf writer: empty or missing key");
    }
    wkv *kv = find_kv(w, key);
    if (kv) {
        qai_free(kv->val);
        kv->type = type;
        kv->val = val;
        kv->len = len;
        return QAI_OK;
    }
    if (w->n_kv == w->cap_kv) {
        size_t ncap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *nk = qai_realloc(w->kv, ncap * sizeof *nk);
        if (!nk) {
            qai_free(val);
            return QAI_ERR_NOMEM;
        }
        w->kv = nk;
        w->cap_kv = ncap;
    }
    char *k = qai_strdup(key);
    if (!k) {
        qai_free(val);
        return QAI_ERR_NOMEM;
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, len};
    return QAI_OK;
}

static qai_status set_copy(qai_gguf_writer *w, const char *key, uint32_t type, const void *v, size_t len) {
    uint8_t *val = qai_malloc(len ? len : 1);
    if (!val) return QAI_ERR_NOMEM;
    if (len) memcpy(val, v, len);
    return set_owned(w, key, type, val, len);
}

qai_status qai_gguf_set_u32(qai_gguf_writer *w, const char *key, uint32_t v) {
    return set_copy(w, key, QAI_GGUF_UINT32, &v, 4);
}
qai_status qai_gguf_set_i32(qai_gguf_writer *w, const char *key, int32_t v) {
    return set_copy(w, key, QAI_GGUF_INT32, &v, 4);
}
qai_status qai_gguf_set_u64(qai_gguf_writer *w, const char *key, uint64_t v) {
    return set_copy(w, key, QAI_GGUF_UINT64, &v, 8);
}
qai_status qai_gguf_set_f32(qai_gguf_writer *w, const char *key, float v) {
    return set_copy(w, key, QAI_GGUF_FLOAT32, &v, 4);
}
qai_status qai_gguf_set_bool(qai_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_copy(w, key, QAI_GGUF_BOOL, &b, 1);
}

qai_status qai_gguf_set_str(qai_gguf_writer *w, const char *key, const char *v) {
    if (!v) return qai_error(QAI_ERR_ARG, "gguf writer: key '%s': string value is NULL", key ? key : "");
    uint64_t n = strlen(v);
    uint8_t *val = qai_malloc(8 + n);
    if (!val) return QAI_ERR_NOMEM;
    memcpy(val, &n, 8);
    memcpy(val + 8, v, n);
    return set_owned(w, key, QAI_GGUF_STRING, val, 8 + n);
}

qai_status qai_gguf_set_arr_str(qai_gguf_writer *w, const char *key, const char *const *v, const size_t *lens,
                                uint64_t n) {
    if (n && !v) return qai_error(QAI_ERR_ARG, "gguf writer: key '%s': string array is NULL", key ? key : "");
    size_t total = 12;
    for (uint64_t j = 0; j < n; j++) {
        if (!v[j]) return qai_error(QAI_ERR_ARG, "gguf writer: key '%s': element %llu is NULL", key ? key : "",
                                    (unsigned long long)j);
        total += 8 + (lens ? lens[j] : strlen(v[j]));
    }
    uint8_t *val = qai_malloc(total), *p = val;
    if (!val) return QAI_ERR_NOMEM;
    uint32_t et = QAI_GGUF_STRING;
    memcpy(p, &et, 4);
    memcpy(p + 4, &n, 8);
    p += 12;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len = lens ? lens[j] : strlen(v[j]);
        memcpy(p, &len, 8);
        if (len) memcpy(p + 8, v[j], (size_t)len);
        p += 8 + len;
    }
    return set_owned(w, key, QAI_GGUF_ARRAY, val, total);
}

qai_status qai_gguf_set_arr_data(qai_gguf_writer *w, const char *key, qai_gguf_type elem_type, const void *v,
                                 uint64_t n) {
    size_t es = qai_gguf_fixed_size_(elem_type);
    if (!es)
        return qai_error(QAI_ERR_ARG, "gguf writer: key '%s': element type %s is not a fixed-size number type",
                         key ? key : "", qai_gguf_type_name(elem_type));
    if (n && !v) return qai_error(QAI_ERR_ARG, "gguf writer: key '%s': array data is NULL", key ? key : "");
    if (n > (SIZE_MAX - 12) / es) return qai_error(QAI_ERR_ARG, "gguf writer: key '%s': array too long", key ? key : "");
    size_t total = 12 + (size_t)n * es;
    uint8_t *val = qai_malloc(total);
    if (!val) return QAI_ERR_NOMEM;
    uint32_t et = elem_type;
    memcpy(val, &et, 4);
    memcpy(val + 4, &n, 8);
    if (n) memcpy(val + 12, v, (size_t)n * es);
    return set_owned(w, key, QAI_GGUF_ARRAY, val, total);
}

qai_status qai_gguf_set_kv_from(qai_gguf_writer *w, const qai_gguf *g, int64_t i) {
    if (!g || i < 0 || i >= qai_gguf_n_kv(g)) return qai_error(QAI_ERR_ARG, "gguf writer: kv index %lld out of range",
                                                                (long long)i);
    const uint8_t *raw;
    size_t len;
    qai_gguf_kv_raw_(g, i, &raw, &len);
    return set_copy(w, qai_gguf_kv_key(g, i), qai_gguf_kv_type(g, i), raw, len);
}

void qai_gguf_remove_kv(qai_gguf_writer *w, const char *key) {
    if (!w || !key) return;
    wkv *kv = find_kv(w, key);
    if (!kv) return;
    size_t i = (size_t)(kv - w->kv);
    qai_free(kv->key);
    qai_free(kv->val);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *kv);
    w->n_kv--;
}

qai_status qai_gguf_add_tensor(qai_gguf_writer *w, const char *name, qai_type type, int n_dims, const int64_t *ne,
                               const void *data, size_t size) {
    if (!w || !name || !*name) return qai_error(QAI_ERR_ARG, "gguf writer: tensor name is empty");
    size_t nlen = strlen(name);
    if (nlen >= QAI_GGUF_MAX_NAME)
        return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': name of %zu bytes is too long (llama.cpp allows %d)",
                         name, nlen, QAI_GGUF_MAX_NAME - 1);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s' added twice", name);
    const qai_type_traits *tr = qai_type_info((int)type);
    if (!tr) return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': unknown type id %d", name, (int)type);
    if (n_dims < 1 || n_dims > QAI_GGUF_MAX_DIMS || !ne)
        return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': %d dimensions (expected 1 to %d)", name, n_dims,
                         QAI_GGUF_MAX_DIMS);
    wtensor t = {0};
    t.type = type;
    t.n_dims = n_dims;
    uint64_t nrows = 1;
    for (int d = 0; d < QAI_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0) return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': ne[%d] = %lld is negative", name, d,
                                          (long long)t.ne[d]);
        if (d > 0) {
            if (t.ne[d] && nrows > UINT64_MAX / (uint64_t)t.ne[d])
                return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': size overflows", name);
            nrows *= (uint64_t)t.ne[d];
        }
    }
    if (t.ne[0] % tr->block_size)
        return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': row length %lld is not a multiple of the %s block size %d",
                         name, (long long)t.ne[0], tr->name, tr->block_size);
    uint64_t row = (uint64_t)(t.ne[0] / tr->block_size) * tr->type_size;
    if (nrows && row > SIZE_MAX / nrows) return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': size overflows", name);
    if (row * nrows != size)
        return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': %zu bytes given, its type and shape need %llu", name,
                         size, (unsigned long long)(row * nrows));
    if (size && !data) return qai_error(QAI_ERR_ARG, "gguf writer: tensor '%s': data is NULL", name);
    if (w->n_t == w->cap_t) {
        size_t ncap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = qai_realloc(w->t, ncap * sizeof *nt);
        if (!nt) return QAI_ERR_NOMEM;
        w->t = nt;
        w->cap_t = ncap;
    }
    if (!(t.name = qai_strdup(name))) return QAI_ERR_NOMEM;
    t.data = data;
    t.size = size;
    w->t[w->n_t++] = t;
    return QAI_OK;
}

static bool put(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }

static bool put_zeros(FILE *f, size_t n) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (fwrite(zeros, 1, k, f) != k) return false;
        n -= k;
    }
    return true;
}

static size_t pad_to(uint64_t x, size_t a) { return (size_t)((a - x % a) % a); }

qai_status qai_gguf_writer_write(qai_gguf_writer *w, const char *path) {
    if (!w || !path) return qai_error(QAI_ERR_ARG, "gguf writer: no writer or path");
    size_t align = QAI_GGUF_DEFAULT_ALIGNMENT;
    wkv *akv = find_kv(w, "general.alignment");
    if (akv) {
        uint32_t a = 0;
        if (akv->type == QAI_GGUF_UINT32) memcpy(&a, akv->val, 4);
        if (akv->type != QAI_GGUF_UINT32 || a == 0 || (a & (a - 1)))
            return qai_error(QAI_ERR_ARG, "'%s': general.alignment must be a uint32 power of two", path);
        align = a;
    }
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) return st;
    FILE *f = af.f;
    uint32_t magic = QAI_GGUF_MAGIC, version = 3;
    uint64_t n_t = w->n_t, n_kv = w->n_kv, pos = 0;
    bool ok = put(f, &magic, 4) && put(f, &version, 4) && put(f, &n_t, 8) && put(f, &n_kv, 8);
    pos += 24;
    for (size_t i = 0; ok && i < w->n_kv; i++) {
        uint64_t kl = strlen(w->kv[i].key);
        ok = put(f, &kl, 8) && put(f, w->kv[i].key, (size_t)kl) && put(f, &w->kv[i].type, 4) &&
             put(f, w->kv[i].val, w->kv[i].len);
        pos += 8 + kl + 4 + w->kv[i].len;
    }
    uint64_t off = 0;
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, type = (uint32_t)t->type;
        ok = put(f, &nl, 8) && put(f, t->name, (size_t)nl) && put(f, &nd, 4);
        for (int d = 0; ok && d < t->n_dims; d++) ok = put(f, &t->ne[d], 8);
        ok = ok && put(f, &type, 4) && put(f, &off, 8);
        pos += 8 + nl + 4 + 8 * (uint64_t)nd + 4 + 8;
        off += t->size + pad_to(t->size, align);
    }
    ok = ok && put_zeros(f, pad_to(pos, align));
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        ok = put(f, t->data, t->size) && put_zeros(f, pad_to(t->size, align));
    }
    if (!ok) {
        qai_atomic_abort(&af);
        return qai_error(QAI_ERR_IO, "cannot write '%s' (disk full?)", path);
    }
    return qai_atomic_commit(&af);
}
