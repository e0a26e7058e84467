/* The one allocation hook of libqai, with failure injection for tests. */
#include "qai/base.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long g_fail_after; /* 0: never fail */

void qai_alloc_fail_after(long n) { atomic_store(&g_fail_after, n); }

static bool should_fail(void) {
    long n = atomic_load(&g_fail_after);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&g_fail_after, &n, n - 1)) return n == 1;
    }
    return false;
}

static void *oom(size_t size) {
    qai_error(QAI_ERR_NOMEM, "out of memory (%zu bytes)", size);
    return NULL;
}

void *qai_malloc(size_t size) {
    if (should_fail()) return oom(size);
    void *p = malloc(size ? size : 1);
    return p ? p : oom(size);
}

void *qai_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return oom(SIZE_MAX);
    if (should_fail()) return oom(n * size);
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(n * size);
}

void *qai_realloc(void *p, size_t size) {
    if (should_fail()) return oom(size);
    void *q = realloc(p, size ? size : 1);
    return q ? q : oom(size);
}

void qai_free(void *p) { free(p); }

char *qai_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = qai_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *qai_aligned_alloc(size_t size) {
    if (should_fail()) return oom(size);
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 64) != 0) return oom(size);
    return p;
}

void qai_aligned_free(void *p) { free(p); }
