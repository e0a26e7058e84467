/* Tests for the huge-page allocation helpers (src/base/alloc.c):
 *  - qai_alloc_huge gives zeroed, writable memory of the asked size, on a 2 MB
 *    boundary when the size is at least 2 MB, for sizes that are and are not
 *    multiples of the page sizes (and for tiny ones and 0);
 *  - QAI_HUGE_POPULATE makes every page resident up front (mincore), without
 *    it nothing is resident until touched; qai_populate keeps contents;
 *  - when the kernel's transparent huge pages are not "never" and its defrag
 *    setting compacts at fault time for madvised regions, a populated 8 MB
 *    buffer sits on huge pages (AnonHugePages in /proc/self/smaps, read
 *    independently here rather than through qai_huge_page_bytes);
 *  - an injected allocation failure returns NULL with a message;
 *  - qai_free_huge(NULL, n) is a no-op and freed memory is unmapped. */
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qai/base.h"
#include "test.h"

/* The bracketed word of a /sys/kernel/mm/transparent_hugepage file, or "" */
static void thp_mode(const char *file, char *out, size_t n) {
    char path[128], buf[256];
    snprintf(path, sizeof path, "/sys/kernel/mm/transparent_hugepage/%s", file);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(buf, sizeof buf, f)) {
        char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
        if (a && b && (size_t)(b - a) < n) {
            memcpy(out, a + 1, (size_t)(b - a - 1));
            out[b - a - 1] = 0;
        }
    }
    fclose(f);
}

/* AnonHugePages (bytes) of the smaps entry that contains p; -1 if not found */
static long smaps_huge(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        /* a mapping's header line "lo-hi perms offset dev inode path" has no ':' before its first space */
        char *sp = strchr(line, ' '), *colon = strchr(line, ':');
        if (sp && (!colon || colon > sp) && sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && !strncmp(line, "AnonHugePages:", 14)) {
            kb = strtol(line + 14, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* Number of resident pages of [p, p + size) (p page-aligned). */
static size_t resident_pages(void *p, size_t size) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = (size + pg - 1) / pg, r = 0;
    unsigned char *v = malloc(n);
    if (!v) return 0;
    if (mincore(p, size, v) == 0)
        for (size_t i = 0; i < n; i++) r += v[i] & 1;
    free(v);
    return r;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

static void test_sizes(void) {
    const size_t sizes[] = {0, 1, 4095, 4096, 100000, QAI_HUGE_PAGE - 1, QAI_HUGE_PAGE, QAI_HUGE_PAGE + 1,
                            5 * QAI_HUGE_PAGE + 12345};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (unsigned flags = 0; flags <= QAI_HUGE_POPULATE; flags++) {
            uint8_t *p = qai_alloc_huge(n, flags);
            CHECK_MSG(p != NULL, "qai_alloc_huge(%zu, %u): %s", n, flags, qai_last_error());
            if (!p) continue;
            CHECK_MSG((uintptr_t)p % (size_t)sysconf(_SC_PAGESIZE) == 0, "size %zu: %p not page aligned", n, (void *)p);
            if (n >= QAI_HUGE_PAGE)
                CHECK_MSG((uintptr_t)p % QAI_HUGE_PAGE == 0, "size %zu: %p not on a 2 MB boundary", n, (void *)p);
            CHECK_MSG(all_zero(p, n), "size %zu flags %u: memory not zeroed", n, flags);
            /* writable to the last byte; a pattern reads back */
            for (size_t k = 0; k < n; k++) p[k] = (uint8_t)(k * 131 + 7);
            size_t bad = 0;
            for (size_t k = 0; k < n; k++) bad += p[k] != (uint8_t)(k * 131 + 7);
            CHECK_MSG(!bad, "size %zu: %zu bytes read back wrong", n, bad);
            qai_free_huge(p, n);
        }
    }
    qai_free_huge(NULL, 12345);
}

static void test_populate(void) {
    const size_t n = 3 * QAI_HUGE_PAGE + 4096 * 3, pg = (size_t)sysconf(_SC_PAGESIZE);
    const size_t pages = (n + QAI_HUGE_PAGE - 1) / QAI_HUGE_PAGE * QAI_HUGE_PAGE / pg; /* mapped: rounded to 2 MB */
    uint8_t *lazy = qai_alloc_huge(n, 0), *eager = qai_alloc_huge(n, QAI_HUGE_POPULATE);
    CHECK(lazy && eager);
    if (!lazy || !eager) return;
    size_t r_lazy = resident_pages(lazy, pages * pg), r_eager = resident_pages(eager, pages * pg);
    printf("resident pages of %zu: lazy %zu, populated %zu\n", pages, r_lazy, r_eager);
    CHECK_MSG(r_lazy == 0, "%zu pages resident before any touch", r_lazy);
    CHECK_MSG(r_eager == pages, "populated: %zu of %zu pages resident", r_eager, pages);
    CHECK(all_zero(eager, n));
    /* qai_populate keeps what is there and faults the rest in */
    memset(lazy, 0x5a, pg);
    CHECK_OK(qai_populate(lazy, n));
    /* at least the range; a huge page faulted in for its tail may add the rest of its 2 MB */
    size_t r = resident_pages(lazy, pages * pg);
    CHECK_MSG(r >= (n + pg - 1) / pg && r <= pages, "after qai_populate: %zu pages resident", r);
    CHECK(lazy[0] == 0x5a && lazy[pg - 1] == 0x5a && lazy[pg] == 0 && all_zero(lazy + pg, n - pg));
    CHECK_OK(qai_populate(lazy + 1, 10)); /* no whole page inside: nothing to do */
    qai_free_huge(lazy, n);
    qai_free_huge(eager, n);
}

static void test_huge_pages(void) {
    char enabled[32], defrag[32];
    thp_mode("enabled", enabled, sizeof enabled);
    thp_mode("defrag", defrag, sizeof defrag);
    const size_t n = 4 * QAI_HUGE_PAGE;
    uint8_t *p = qai_alloc_huge(n, QAI_HUGE_POPULATE);
    CHECK(p != NULL);
    if (!p) return;
    long h = smaps_huge(p);
    size_t hq = qai_huge_page_bytes(p, n);
    printf("thp enabled [%s] defrag [%s]: %ld of %zu bytes on huge pages (qai_huge_page_bytes %zu)\n", enabled, defrag,
           h, n, hq);
    CHECK_MSG(h >= 0, "no smaps entry for the buffer");
    CHECK_EQ_INT((long)hq, h < 0 ? 0 : h);
    bool expect = (!strcmp(enabled, "always") || !strcmp(enabled, "madvise")) &&
                  (!strcmp(defrag, "always") || !strcmp(defrag, "madvise") || !strcmp(defrag, "defer+madvise"));
    if (expect) CHECK_MSG(h == (long)n, "only %ld of %zu bytes on huge pages", h, n);
    else
        printf("(transparent huge pages off or not compacted at fault time here: not checked)\n");
    qai_free_huge(p, n);
    CHECK_EQ_INT((long)qai_huge_page_bytes(p, n), 0); /* unmapped */
}

static void test_failure(void) {
    qai_alloc_fail_after(1);
    void *p = qai_alloc_huge(QAI_HUGE_PAGE, 0);
    CHECK(p == NULL);
    CHECK_MSG(strstr(qai_last_error(), "out of memory") != NULL, "message: %s", qai_last_error());
    p = qai_alloc_huge(QAI_HUGE_PAGE, 0); /* only the first one fails */
    CHECK(p != NULL);
    qai_free_huge(p, QAI_HUGE_PAGE);
    CHECK(qai_alloc_huge(SIZE_MAX - 100, 0) == NULL); /* absurd sizes fail cleanly */
    CHECK(qai_alloc_huge((size_t)1 << 62, 0) == NULL);
}

int main(void) {
    test_sizes();
    test_populate();
    test_huge_pages();
    test_failure();
    return test_summary();
}
