/* The one allocation hook of libqai, with failure injection for tests, and
 * the huge-page mappings for big streamed buffers (repacked weights). */
#include "qai/base.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* ---- huge pages ---- */

/* Bytes actually mapped for a huge allocation of size bytes. */
static size_t huge_len(size_t size, bool *huge) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), unit = size >= QAI_HUGE_PAGE ? QAI_HUGE_PAGE : pg;
    *huge = unit == QAI_HUGE_PAGE;
    if (!size) size = 1;
    return size > SIZE_MAX - unit ? 0 : (size + unit - 1) / unit * unit;
}

qai_status qai_populate(void *p, size_t size) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1), b = ((uintptr_t)p + size) & ~(uintptr_t)(pg - 1);
    if (b <= a) return QAI_OK;
#ifdef MADV_POPULATE_WRITE
    if (madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0) return QAI_OK;
    if (errno != EINVAL)
        return qai_error(errno == ENOMEM ? QAI_ERR_NOMEM : QAI_ERR_IO, "cannot populate %zu bytes of memory: %s",
                         (size_t)(b - a), strerror(errno));
#endif
    /* kernels before 5.14: touch each page (reading then writing back its
     * byte keeps the contents; a write fault allocates the page) */
    for (uintptr_t q = a; q < b; q += pg) {
        volatile uint8_t *v = (volatile uint8_t *)q;
        *v = *v;
    }
    return QAI_OK;
}

void *qai_alloc_huge(size_t size, unsigned flags) {
    bool huge;
    size_t len = huge_len(size, &huge);
    if (!len || len > SIZE_MAX - QAI_HUGE_PAGE) return oom(size);
    if (should_fail()) return oom(size);
    /* map one huge page more than needed, then trim to a 2 MB boundary */
    size_t extra = huge ? QAI_HUGE_PAGE : 0;
    uint8_t *raw = mmap(NULL, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return oom(size);
    uint8_t *p = raw;
    if (huge) {
        p = (uint8_t *)(((uintptr_t)raw + QAI_HUGE_PAGE - 1) & ~(uintptr_t)(QAI_HUGE_PAGE - 1));
        if (p > raw) munmap(raw, (size_t)(p - raw));
        if (raw + len + extra > p + len) munmap(p + len, (size_t)(raw + len + extra - (p + len)));
#ifdef MADV_HUGEPAGE
        madvise(p, len, MADV_HUGEPAGE); /* a hint: EINVAL without THP, and the memory works the same */
#endif
    }
    if ((flags & QAI_HUGE_POPULATE) && qai_populate(p, len) != QAI_OK) {
        munmap(p, len);
        return oom(size);
    }
    return p;
}

void qai_free_huge(void *p, size_t size) {
    if (!p) return;
    bool huge;
    munmap(p, huge_len(size, &huge));
}

size_t qai_huge_page_bytes(const void *p, size_t size) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    uintptr_t a = (uintptr_t)p, b = a + size;
    size_t total = 0;
    bool in = false;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, kb;
        char c;
        /* a mapping's header line starts "lo-hi " in hex; field lines "Name: value kB" */
        if (sscanf(line, "%lx-%lx%c", &lo, &hi, &c) == 3 && c == ' ') in = lo < b && hi > a;
        else if (in && sscanf(line, "AnonHugePages: %lu kB", &kb) == 1)
            total += (size_t)kb << 10;
    }
    fclose(f);
    return total;
}
