/*
 * qai/gguf.h — GGUF v3 (also v2) reading (mmap, zero-copy tensor data) and
 * writing (crash-safe).
 *
 * Layout (little-endian):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv × { string key | u32 type | value }
 *   n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to `general.alignment` (default 32)
 *   tensor data; each tensor at data_start + offset, offsets aligned
 * string = u64 length + bytes (not NUL-terminated); array = u32 elem type +
 * u64 count + elements. ne[0] is the innermost (row) dimension.
 *
 * The reader validates everything before exposing it (bad magic, truncation,
 * absurd counts, duplicate keys/tensors, tensors overlapping or past the end,
 * unknown types) and names the field and byte offset of what is wrong.
 *
 * Usage:
 *     qai_gguf *g;
 *     if (qai_gguf_open("m.gguf", &g)) { ... qai_last_error() ... }
 *     int64_t n_layer;
 *     qai_gguf_get_int(g, "llama.block_count", &n_layer);
 *     const qai_gguf_tensor *t = qai_gguf_find_tensor(g, "token_embd.weight");
 *     qai_gguf_close(g);
 */
#ifndef QAI_GGUF_H
#define QAI_GGUF_H

#include "qai/base.h"
#include "qai/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QAI_GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian u32 */
#define QAI_GGUF_DEFAULT_ALIGNMENT 32
#define QAI_GGUF_MAX_DIMS 4

typedef enum {
    QAI_GGUF_UINT8 = 0,
    QAI_GGUF_INT8 = 1,
    QAI_GGUF_UINT16 = 2,
    QAI_GGUF_INT16 = 3,
    QAI_GGUF_UINT32 = 4,
    QAI_GGUF_INT32 = 5,
    QAI_GGUF_FLOAT32 = 6,
    QAI_GGUF_BOOL = 7,
    QAI_GGUF_STRING = 8,
    QAI_GGUF_ARRAY = 9,
    QAI_GGUF_UINT64 = 10,
    QAI_GGUF_INT64 = 11,
    QAI_GGUF_FLOAT64 = 12,
} qai_gguf_type;

/* "uint32", "string", "array", ... */
const char *qai_gguf_type_name(int type);

typedef struct qai_gguf qai_gguf;

typedef struct {
    const char *name; /* NUL-terminated copy */
    qai_type type;
    int n_dims;
    int64_t ne[QAI_GGUF_MAX_DIMS]; /* unused dims are 1 */
    uint64_t offset;               /* relative to the start of the data section */
    size_t size;                   /* bytes */
    const void *data;              /* points into the mapping (NULL for a vocab-only reader of a header) */
} qai_gguf_tensor;

/* Opens and validates a file; tensor data stays in a read-only mmap. On
 * failure *out is NULL and the error names the path, field and offset. */
qai_status qai_gguf_open(const char *path, qai_gguf **out);
/* Same over a buffer the caller keeps alive until close (fuzzing, tests).
 * name is used in messages. */
qai_status qai_gguf_open_buffer(const void *data, size_t size, const char *name, qai_gguf **out);
void qai_gguf_close(qai_gguf *g);

uint32_t qai_gguf_version(const qai_gguf *g);
size_t qai_gguf_file_size(const qai_gguf *g);
size_t qai_gguf_alignment(const qai_gguf *g);
size_t qai_gguf_data_offset(const qai_gguf *g); /* start of the tensor data section */
const char *qai_gguf_path(const qai_gguf *g);

/* ---- metadata ---- */
int64_t qai_gguf_n_kv(const qai_gguf *g);
const char *qai_gguf_kv_key(const qai_gguf *g, int64_t i);
qai_gguf_type qai_gguf_kv_type(const qai_gguf *g, int64_t i);
/* Index of key, or -1. */
int64_t qai_gguf_find_kv(const qai_gguf *g, const char *key);

/* Scalar getters by key. Integers of any width (and bool) convert to int64;
 * floats and integers to double. QAI_ERR_NOT_FOUND if absent (no message
 * set, so callers can apply defaults), QAI_ERR_FORMAT if the type does not
 * fit (message names the key and its type). */
qai_status qai_gguf_get_int(const qai_gguf *g, const char *key, int64_t *out);
qai_status qai_gguf_get_float(const qai_gguf *g, const char *key, double *out);
qai_status qai_gguf_get_bool(const qai_gguf *g, const char *key, bool *out);
/* NUL-terminated string owned by g. */
qai_status qai_gguf_get_str(const qai_gguf *g, const char *key, const char **out);

/* By index i of a kv (any type) — for generic printing. */
int64_t qai_gguf_kv_int(const qai_gguf *g, int64_t i);    /* integer/bool kinds */
double qai_gguf_kv_float(const qai_gguf *g, int64_t i);   /* numeric kinds */
const char *qai_gguf_kv_str(const qai_gguf *g, int64_t i); /* string kind */

/* Arrays: element type and length of the array at kv index i. */
qai_gguf_type qai_gguf_arr_type(const qai_gguf *g, int64_t i);
uint64_t qai_gguf_arr_len(const qai_gguf *g, int64_t i);
/* Element j of array i (bounds and kinds are the caller's contract; checked
 * with assert). Strings are NUL-terminated copies owned by g. Nested arrays are
 * accepted by the reader but not readable element-wise. */
int64_t qai_gguf_arr_int(const qai_gguf *g, int64_t i, uint64_t j);
double qai_gguf_arr_float(const qai_gguf *g, int64_t i, uint64_t j);
const char *qai_gguf_arr_str(const qai_gguf *g, int64_t i, uint64_t j);
/* Length in bytes of a string element (strings may contain NUL bytes). */
size_t qai_gguf_arr_str_len(const qai_gguf *g, int64_t i, uint64_t j);

/* ---- tensors ---- */
int64_t qai_gguf_n_tensors(const qai_gguf *g);
const qai_gguf_tensor *qai_gguf_tensor_at(const qai_gguf *g, int64_t i);
/* NULL if absent. */
const qai_gguf_tensor *qai_gguf_find_tensor(const qai_gguf *g, const char *name);

/* ---- writing ---- */

/* Builds a GGUF v3 file in memory (metadata) and streams tensor data from the
 * caller's buffers on write. Keys keep insertion order; setting a key again
 * replaces its value in place. */
typedef struct qai_gguf_writer qai_gguf_writer;
qai_gguf_writer *qai_gguf_writer_new(void);
void qai_gguf_writer_free(qai_gguf_writer *w);
qai_status qai_gguf_set_u32(qai_gguf_writer *w, const char *key, uint32_t v);
qai_status qai_gguf_set_i32(qai_gguf_writer *w, const char *key, int32_t v);
qai_status qai_gguf_set_u64(qai_gguf_writer *w, const char *key, uint64_t v);
qai_status qai_gguf_set_f32(qai_gguf_writer *w, const char *key, float v);
qai_status qai_gguf_set_bool(qai_gguf_writer *w, const char *key, bool v);
qai_status qai_gguf_set_str(qai_gguf_writer *w, const char *key, const char *v);
/* Array of n strings (each NUL-terminated; lens may be NULL). */
qai_status qai_gguf_set_arr_str(qai_gguf_writer *w, const char *key, const char *const *v, const size_t *lens,
                                uint64_t n);
/* Array of n numbers of a fixed-size element type (e.g. QAI_GGUF_FLOAT32), copied. */
qai_status qai_gguf_set_arr_data(qai_gguf_writer *w, const char *key, qai_gguf_type elem_type, const void *v,
                                 uint64_t n);
/* Copies kv i of reader g (any type, including arrays) under the same key. */
qai_status qai_gguf_set_kv_from(qai_gguf_writer *w, const qai_gguf *g, int64_t i);
/* Removes a key if present. */
void qai_gguf_remove_kv(qai_gguf_writer *w, const char *key);
/* Adds a tensor; data (size bytes = expected size for type and ne) is not copied
 * and must stay valid until qai_gguf_writer_write returns. */
qai_status qai_gguf_add_tensor(qai_gguf_writer *w, const char *name, qai_type type, int n_dims, const int64_t *ne,
                               const void *data, size_t size);
/* Writes the file atomically (temp file, fsync, rename). */
qai_status qai_gguf_writer_write(qai_gguf_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
