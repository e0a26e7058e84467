/* Random numbers, time, progress lines and fp16/bf16 conversion. */
#include "qai/base.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- rng ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void qai_rng_seed(qai_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t qai_rng_u64(qai_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float qai_rng_float(qai_rng *r) { return (float)(qai_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float qai_rng_normal(qai_rng *r) {
    float u1 = qai_rng_float(r), u2 = qai_rng_float(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

/* ---- time ---- */

uint64_t qai_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- progress ---- */

void qai_progress_start(qai_progress *p, const char *what, const char *unit, uint64_t total) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->unit = unit;
    p->total = total;
    p->t_start = p->t_last = qai_time_ns();
    p->tty = isatty(2);
    p->quiet = qai_log_get_level() > QAI_LOG_INFO && !p->tty;
}

static void progress_print(qai_progress *p, bool final) {
    double el = (double)(qai_time_ns() - p->t_start) * 1e-9;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "";
    if (p->total && rate > 0 && !final) snprintf(eta, sizeof eta, ", ETA %.0fs", (double)(p->total - p->done) / rate);
    char tot[32] = "";
    if (p->total) snprintf(tot, sizeof tot, "/%llu", (unsigned long long)p->total);
    if (p->tty)
        fprintf(stderr, "\r\033[Kqai: %s %llu%s %s (%.1f %s/s%s)%s", p->what, (unsigned long long)p->done, tot, p->unit,
                rate, p->unit, eta, final ? "\n" : "");
    else
        fprintf(stderr, "qai: %s %llu%s %s (%.1f %s/s%s)\n", p->what, (unsigned long long)p->done, tot, p->unit, rate,
                p->unit, eta);
}

void qai_progress_update(qai_progress *p, uint64_t done) {
    p->done = done;
    if (p->quiet) return;
    uint64_t now = qai_time_ns();
    uint64_t every = p->tty ? 100000000ull : 5000000000ull;
    if (now - p->t_last < every) return;
    p->t_last = now;
    progress_print(p, false);
}

void qai_progress_finish(qai_progress *p) {
    if (p->quiet) return;
    progress_print(p, true);
}

/* ---- fp16 / bf16 ---- */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float qai_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (man << 13));
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t qai_fp32_to_fp16(float f) {
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                  /* below 2^-14: subnormal or zero */
        /* add 0.5 in the magic way: value / 2^-24, round to nearest even */
        float v = u2f(ax) * 16777216.0f; /* * 2^24 */
        /* rint with current rounding mode (nearest even) */
        uint32_t m = (uint32_t)lrintf(v);
        return (uint16_t)(sign | m);
    }
    uint32_t e = ((ax >> 23) - 112) << 10;
    uint32_t m = (ax >> 13) & 0x3ff;
    uint32_t h = e | m;
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float qai_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t qai_fp32_to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

void qai_test_crash_point(const char *point) {
    const char *at = getenv("QAI_TEST_CRASH_AT");
    if (at && !strcmp(at, point)) {
        fflush(NULL); /* so a test's expectations about earlier output hold */
        raise(SIGKILL);
    }
    at = getenv("QAI_TEST_PAUSE_AT");
    const char *flag = getenv("QAI_TEST_PAUSE_FILE");
    if (at && flag && !strcmp(at, point)) {
        FILE *f = fopen(flag, "w");
        if (f) fclose(f);
        for (;;) pause();
    }
}

/* ---- qai_strbuf ---- */

bool qai_strbuf_reserve(qai_strbuf *b, size_t n) {
    if (b->oom) return false;
    if (n > SIZE_MAX / 2 - b->n) {
        b->oom = true;
        return false;
    }
    if (b->n + n + 1 <= b->cap) return true;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + n + 1) nc *= 2;
    char *np = qai_realloc(b->p, nc);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = nc;
    return true;
}

void qai_strbuf_put(qai_strbuf *b, const void *s, size_t n) {
    if (!qai_strbuf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void qai_strbuf_puts(qai_strbuf *b, const char *s) { qai_strbuf_put(b, s, strlen(s)); }

void qai_strbuf_putc(qai_strbuf *b, char c) { qai_strbuf_put(b, &c, 1); }

void qai_strbuf_printf(qai_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !qai_strbuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

char *qai_strbuf_take(qai_strbuf *b, size_t *len) {
    if (len) *len = 0;
    if (!b->oom && !b->p) qai_strbuf_reserve(b, 0);
    if (b->oom) {
        qai_strbuf_free(b);
        return NULL;
    }
    char *p = b->p;
    p[b->n] = 0;
    if (len) *len = b->n;
    memset(b, 0, sizeof *b);
    return p;
}

void qai_strbuf_free(qai_strbuf *b) {
    qai_free(b->p);
    memset(b, 0, sizeof *b);
}
