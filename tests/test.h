/* A tiny test harness: CHECK* macros count failures and print where; each test
 * program ends with `return test_summary();`, which prints "N passed, N failed". */
#ifndef QAI_TEST_H
#define QAI_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_pass, t_fail;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (cond) t_pass++;                                                                                            \
        else {                                                                                                         \
            t_fail++;                                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                   \
        }                                                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (cond) t_pass++;                                                                                            \
        else {                                                                                                         \
            t_fail++;                                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

#define CHECK_OK(expr)                                                                                                 \
    do {                                                                                                               \
        int st_ = (expr);                                                                                              \
        if (st_ == 0) t_pass++;                                                                                        \
        else {                                                                                                         \
            t_fail++;                                                                                                  \
            fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__, #expr, st_, qai_last_error());          \
        }                                                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                             \
    do {                                                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                                                            \
        if (a_ == b_) t_pass++;                                                                                        \
        else {                                                                                                         \
            t_fail++;                                                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_, b_);             \
        }                                                                                                              \
    } while (0)

/* Compares two float arrays: passes if every |a-b| <= atol + rtol*|b|; on failure
 * prints the first mismatches and the largest difference. */
static inline int check_close_(const char *file, int line, const char *what, const float *a, const float *b, long n,
                               float atol, float rtol) {
    long bad = 0, worst = -1;
    double maxd = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) {
            if (bad < 5) fprintf(stderr, "%s:%d: %s[%ld]: %g != %g (diff %g)\n", file, line, what, i, a[i], b[i], d);
            bad++;
        }
        if (d > maxd || d != d) {
            maxd = d;
            worst = i;
        }
    }
    if (bad) {
        fprintf(stderr, "%s:%d: %s: %ld of %ld values differ; largest diff %g at %ld\n", file, line, what, bad, n, maxd,
                worst);
        t_fail++;
        return 0;
    }
    t_pass++;
    return 1;
}
#define CHECK_CLOSE(what, a, b, n, atol, rtol) check_close_(__FILE__, __LINE__, what, a, b, n, atol, rtol)

/* Environment helpers for data paths set by CTest. */
static inline const char *test_env(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}
#define TEST_DATA() test_env("QAI_DATA", "../shared/data")
#define TEST_TMP() test_env("QAI_TMP", "/tmp")

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}

#endif
