/*
 * qai/base.h — status codes and error messages, allocation hook, logging,
 * files (mmap, read, atomic write), thread pool, random numbers, time and
 * progress reporting. Everything else in libqai stands on this.
 *
 * What it deliberately does not do: print to stdout, exit, or know anything
 * about models.
 *
 * Usage:
 *     qai_mapped_file mf;
 *     if (qai_file_map("x.gguf", &mf) != QAI_OK) {
 *         fprintf(stderr, "qai: %s\n", qai_last_error());
 *         return 1;
 *     }
 *     ... mf.data, mf.size ...
 *     qai_file_unmap(&mf);
 */
#ifndef QAI_BASE_H
#define QAI_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------ */

typedef int qai_status;
enum {
    QAI_OK = 0,
    QAI_ERR_IO = -1,          /* open/read/write/mmap failed */
    QAI_ERR_FORMAT = -2,      /* malformed input (file, text, request) */
    QAI_ERR_NOMEM = -3,       /* allocation failed */
    QAI_ERR_ARG = -4,         /* caller passed something invalid */
    QAI_ERR_UNSUPPORTED = -5, /* valid but not supported by this build */
    QAI_ERR_NOT_FOUND = -6,   /* key, tensor, model ... does not exist */
    QAI_ERR_RANGE = -7,       /* a size or index out of bounds (e.g. context full) */
    QAI_ERR_INTERNAL = -8,    /* a bug in qai */
};

/* Sets the calling thread's error message (printf-style) and returns st, so a
 * failing function can `return qai_error(QAI_ERR_FORMAT, "...", ...)`.
 * Messages start lowercase, name the failing thing first, no trailing period. */
qai_status qai_error(qai_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "<prefix>: " (to add context on the way up). */
qai_status qai_error_wrap(qai_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's last error message ("" if none). Valid until the next
 * qai_error on this thread. */
const char *qai_last_error(void);
/* A short name for a status code ("io", "format", ...). */
const char *qai_status_name(qai_status st);

/* ---- allocation ---------------------------------------------------------- */

/* All library allocation goes through these. They return NULL on failure
 * (and set the error message to "out of memory (N bytes)"). */
void *qai_malloc(size_t size);
void *qai_calloc(size_t n, size_t size);
void *qai_realloc(void *p, size_t size);
void qai_free(void *p);
char *qai_strdup(const char *s);
/* 64-byte aligned memory for tensors; free with qai_aligned_free. */
void *qai_aligned_alloc(size_t size);
void qai_aligned_free(void *p);

/* Big buffers on transparent huge pages (2 MB), for data streamed again and
 * again (repacked weights): one 2 MB page takes one TLB entry where 512
 * 4 KB pages take 512, and the hardware prefetchers do not stop every 4 KB.
 *
 * qai_alloc_huge maps size bytes of fresh zeroed anonymous memory; when size
 * is at least QAI_HUGE_PAGE the mapping starts on a 2 MB boundary, is rounded
 * up to a whole number of 2 MB pages and is marked MADV_HUGEPAGE, so the
 * kernel backs it with huge pages whenever transparent huge pages are not
 * "never" (smaller sizes get ordinary pages). Without THP, or when the kernel
 * has no huge page to give, the memory silently stays on 4 KB pages: the
 * buffer works the same. QAI_HUGE_POPULATE faults every page in now (one
 * MADV_POPULATE_WRITE, or a write per 4 KB page on kernels before 5.14)
 * instead of at first touch. Returns NULL on failure (error set; the failure
 * hook of qai_alloc_fail_after applies). Free with qai_free_huge and the same
 * size. Thread-safe. */
#define QAI_HUGE_PAGE ((size_t)2 << 20)
enum { QAI_HUGE_POPULATE = 1 };
void *qai_alloc_huge(size_t size, unsigned flags);
/* p may be NULL (no-op). */
void qai_free_huge(void *p, size_t size);
/* Faults the pages of [p, p + size) of a writable anonymous mapping in now
 * (whole pages inside the range; the contents are unchanged). Several threads
 * may populate disjoint ranges at once. QAI_ERR_NOMEM when the kernel cannot
 * provide the memory. */
qai_status qai_populate(void *p, size_t size);
/* Bytes of the mappings overlapping [p, p + size) that sit on transparent
 * huge pages (AnonHugePages in /proc/self/smaps; a mapping merged with a
 * neighbour counts whole). 0 when none or when smaps cannot be read. Slow
 * (reads smaps): for tests and debug logs. */
size_t qai_huge_page_bytes(const void *p, size_t size);

/* Test hook: the n-th allocation from now on (1 = the next) fails; 0 disables.
 * Thread-global; for tests that inject allocation failures. */
void qai_alloc_fail_after(long n);

/* ---- logging ------------------------------------------------------------- */

typedef enum { QAI_LOG_DEBUG = 0, QAI_LOG_INFO = 1, QAI_LOG_WARN = 2, QAI_LOG_ERROR = 3, QAI_LOG_OFF = 4 } qai_log_level;
/* Log lines go to stderr as "qai: <message>"; the threshold comes from
 * QAI_LOG=debug|info|warn|error|off (default warn) unless set here. */
void qai_log_set_level(qai_log_level level);
qai_log_level qai_log_get_level(void);
void qai_log(qai_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- files --------------------------------------------------------------- */

typedef struct {
    const uint8_t *data; /* read-only mapping (NULL for an empty file) */
    size_t size;
    int fd;
} qai_mapped_file;

/* Maps a whole file read-only. On failure sets the error naming the path. */
qai_status qai_file_map(const char *path, qai_mapped_file *out);
void qai_file_unmap(qai_mapped_file *mf);
/* Reads a whole file into a NUL-terminated heap buffer (caller frees with qai_free). */
qai_status qai_file_read(const char *path, char **data, size_t *size);
/* Reads all of a stream (e.g. stdin) byte for byte; same ownership as above. */
qai_status qai_stream_read(FILE *f, const char *name, char **data, size_t *size);

/* Crash-safe writing: data goes to "<path>.tmp.XXXXXX" in the same folder; commit
 * flushes, fsyncs, renames over path and fsyncs the folder; abort removes the
 * temporary. Either the old file or the complete new one exists at any moment. */
typedef struct {
    FILE *f;         /* write here */
    char *path;      /* final path */
    char *tmp_path;  /* temporary path */
} qai_atomic_file;
qai_status qai_atomic_open(const char *path, qai_atomic_file *af);
qai_status qai_atomic_commit(qai_atomic_file *af);
void qai_atomic_abort(qai_atomic_file *af);

/* ---- threads ------------------------------------------------------------- */

/* A persistent pool of worker threads. qai_pool_run calls fn(arg, ith, nth)
 * once for each slice ith of [0, nth) and returns when all are done: the
 * caller runs slice 0, the workers take the others, and the caller runs any
 * slice no worker has taken by the time slice 0 is done (a worker that lost
 * its core does not hold the job up). So slices may run at the same time or
 * one after another on one thread: fn must never wait for another slice.
 * Workers spin briefly between jobs then sleep, so back-to-back ops dispatch
 * in about a microsecond. Not reentrant: one qai_pool_run at a time per
 * pool. */
typedef struct qai_pool qai_pool;
typedef void (*qai_pool_fn)(void *arg, int ith, int nth);
/* n_threads <= 0 means the number of online CPUs. */
qai_pool *qai_pool_new(int n_threads);
void qai_pool_free(qai_pool *pool);
int qai_pool_size(const qai_pool *pool);
/* pool may be NULL: then fn runs once on the caller with (0, 1). */
void qai_pool_run(qai_pool *pool, qai_pool_fn fn, void *arg);
/* Number of online CPUs. */
int qai_cpu_count(void);

/* ---- random numbers -------------------------------------------------------- */

/* xoshiro256** seeded through splitmix64: the same seed gives the same stream
 * on every machine. */
typedef struct { uint64_t s[4]; } qai_rng;
void qai_rng_seed(qai_rng *r, uint64_t seed);
uint64_t qai_rng_u64(qai_rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float qai_rng_float(qai_rng *r);
/* Standard normal (Box–Muller). */
float qai_rng_normal(qai_rng *r);

/* ---- time and progress ---------------------------------------------------- */

/* Monotonic time in nanoseconds. */
uint64_t qai_time_ns(void);

/* Progress of long work on stderr: on a terminal one line redrawn with done/total,
 * rate and ETA; otherwise a plain log line at most every few seconds. */
typedef struct {
    const char *what; /* e.g. "quantizing" */
    const char *unit; /* e.g. "tensors" */
    uint64_t total;   /* 0 if unknown */
    uint64_t done;
    uint64_t t_start, t_last;
    bool tty;
    bool quiet;
} qai_progress;
void qai_progress_start(qai_progress *p, const char *what, const char *unit, uint64_t total);
void qai_progress_update(qai_progress *p, uint64_t done);
void qai_progress_finish(qai_progress *p);

/* ---- fp16 / bf16 conversion (scalar, exact IEEE rounding) ------------------ */

float qai_fp16_to_fp32(uint16_t h);
uint16_t qai_fp32_to_fp16(float f);
float qai_bf16_to_fp32(uint16_t h);
uint16_t qai_fp32_to_bf16(float f); /* round to nearest even; NaN stays NaN */

/* ---- hashing (libsodium's SHA-256) ---------------------------------------- */

typedef struct {
    _Alignas(16) uint8_t state[128]; /* opaque: SHA-NI or libsodium state */
} qai_sha256_ctx;
void qai_sha256_init(qai_sha256_ctx *c);
void qai_sha256_update(qai_sha256_ctx *c, const void *data, size_t n);
void qai_sha256_final(qai_sha256_ctx *c, uint8_t out[32]);
void qai_sha256(const void *data, size_t n, uint8_t out[32]);
/* Hashes a whole file, streaming; *size (if not NULL) gets its length. */
qai_status qai_sha256_file(const char *path, uint8_t out[32], uint64_t *size);
/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void qai_hex(const uint8_t *bytes, size_t n, char *out);
/* SHA-256 uses the CPU's SHA extensions when it has them (default) or
 * libsodium's portable code; returns whether hardware is now used. For tests
 * and benchmarks; not while hashing. */
bool qai_sha256_set_hardware(bool on);

/* ---- directories ----------------------------------------------------------- */

/* Creates path and its missing parents (mode 0755); ok if it exists. */
qai_status qai_mkdirs(const char *path);
/* The data directory: override if given, else $QAI_HOME, else
 * ~/.local/share/qai. Written into out (cap bytes); the folder is created. */
qai_status qai_home_dir(const char *override, char *out, size_t cap);

/* A growable byte string, always NUL-terminated once anything was put. A
 * failed allocation sets oom and makes every later put a no-op, so builders
 * check once at the end. Zero-initialize it ({0}); free with
 * qai_strbuf_free, or keep the bytes with qai_strbuf_take. */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} qai_strbuf;
void qai_strbuf_put(qai_strbuf *b, const void *s, size_t n);
void qai_strbuf_puts(qai_strbuf *b, const char *s);
void qai_strbuf_putc(qai_strbuf *b, char c);
void qai_strbuf_printf(qai_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room for n more bytes (and the NUL) without another allocation. */
bool qai_strbuf_reserve(qai_strbuf *b, size_t n);
/* The bytes (NUL-terminated; "" when empty), owned by the caller (qai_free),
 * and *len their length when len is not NULL; NULL after a failed allocation.
 * The buffer is empty afterwards either way. */
char *qai_strbuf_take(qai_strbuf *b, size_t *len);
void qai_strbuf_free(qai_strbuf *b);

/* Test hook for crash-safety tests, a no-op unless the environment asks:
 * when $QAI_TEST_CRASH_AT equals point, the process kills itself with SIGKILL
 * (no cleanup runs, as in a power cut); when $QAI_TEST_PAUSE_AT equals point,
 * it creates the file $QAI_TEST_PAUSE_FILE and waits there for a kill from
 * outside. */
void qai_test_crash_point(const char *point);

/* ---- YAML ------------------------------------------------------------------ */

/* Parses a YAML document (block or flow style; one document) into a cJSON tree
 * (struct cJSON *, returned as void * so this header needs no cJSON include):
 * mappings become objects, sequences arrays; plain scalars that read as
 * integers, floats, true/false or null become those JSON types, quoted scalars
 * stay strings. name is used in error messages ("train.yaml:12:3: ...").
 * Anchors/aliases and duplicate keys are rejected. Caller frees with cJSON_Delete. */
qai_status qai_yaml_parse(const char *text, size_t n, const char *name, void **json_out);
qai_status qai_yaml_load(const char *path, void **json_out);

#ifdef __cplusplus
}
#endif
#endif
