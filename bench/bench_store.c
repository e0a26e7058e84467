/* bench_store — how fast the store does what a server does on every request:
 * audit appends (one transaction per row, batches in one transaction, and the
 * background writer), API key lookups by secret, and the in-memory rate
 * limiter. On SQLite (a file in a temp folder, synchronous=FULL as in real
 * use) and on PostgreSQL: the server named by $QAI_BENCH_PG, else one started
 * here from Debian's packages with fsync on (skipped if it cannot start, or
 * with QAI_BENCH_PG=off).
 *
 * usage: bench_store [--quick]      (--quick: fewer rounds, for a smoke run) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/registry/pg_test_server.h"
#include "qai/store.h"

static int quick;

static double secs(uint64_t t0) { return (double)(qai_time_ns() - t0) / 1e9; }

static qai_audit_record sample(int i) {
    return (qai_audit_record){.key_id = "key_0123456789ab", .model = "bot", .variant = i % 10 ? "stable" : "canary",
                              .endpoint = "/v1/chat/completions", .prompt_tokens = 50 + i % 100,
                              .completion_tokens = 120, .latency_ms = 200 + i % 50, .status = 200, .outcome = "ok"};
}

static void bench(const char *label, const char *url) {
    qai_store *s;
    if (qai_store_open(url, NULL, &s) != QAI_OK) {
        printf("%s: cannot open: %s\n", label, qai_last_error());
        return;
    }
    /* audit, one transaction per row */
    int n1 = quick ? 50 : 400;
    uint64_t t0 = qai_time_ns();
    for (int i = 0; i < n1; i++) {
        qai_audit_record r = sample(i);
        if (qai_audit_append(s, &r, 1) != QAI_OK) {
            printf("%s: append: %s\n", label, qai_last_error());
            return;
        }
    }
    double d = secs(t0);
    printf("%-9s audit append, 1 row per transaction   %9.0f rows/s  (%d rows, %.2f ms each)\n", label, n1 / d, n1,
           d * 1e3 / n1);
    /* audit, batches of 64 */
    enum { B = 64 };
    int nb = quick ? 20 : 300;
    qai_audit_record batch[B];
    t0 = qai_time_ns();
    for (int k = 0; k < nb; k++) {
        for (int i = 0; i < B; i++) batch[i] = sample(i);
        if (qai_audit_append(s, batch, B) != QAI_OK) {
            printf("%s: append batch: %s\n", label, qai_last_error());
            return;
        }
    }
    d = secs(t0);
    printf("%-9s audit append, batches of %d           %9.0f rows/s  (%d rows)\n", label, B, nb * B / d, nb * B);
    /* the background writer, as a server uses it */
    qai_audit_writer *w;
    int nw = quick ? 2000 : 20000;
    if (qai_audit_writer_open(url, NULL, 20, 512, &w) == QAI_OK) {
        t0 = qai_time_ns();
        uint64_t push_ns = 0;
        for (int i = 0; i < nw; i++) {
            qai_audit_record r = sample(i);
            uint64_t p0 = qai_time_ns();
            if (qai_audit_writer_push(w, &r) != QAI_OK) break;
            push_ns += qai_time_ns() - p0;
        }
        qai_status st = qai_audit_writer_close(w);
        d = secs(t0);
        printf("%-9s audit writer (push + final flush)     %9.0f rows/s  (%d rows; push %.2f us each)%s\n", label, nw / d,
               nw, push_ns / 1e3 / nw, st == QAI_OK ? "" : " FAILED");
    }
    qai_audit_verify_result vr;
    t0 = qai_time_ns();
    if (qai_audit_verify(s, &vr) == QAI_OK)
        printf("%-9s audit verify                          %9.0f rows/s  (%lld rows, %s)\n", label, vr.rows / secs(t0),
               (long long)vr.rows, vr.ok ? "ok" : vr.problem);

    /* key lookups */
    enum { NK = 100 };
    static char secrets[NK][QAI_APIKEY_SECRET_SIZE];
    for (int i = 0; i < NK; i++)
        if (qai_apikey_create(s, "inference", 60, 100000, NULL, secrets[i], NULL) != QAI_OK) {
            printf("%s: key create: %s\n", label, qai_last_error());
            return;
        }
    int nl = quick ? 2000 : 20000;
    t0 = qai_time_ns();
    for (int i = 0; i < nl; i++) {
        qai_apikey *k;
        if (qai_apikey_lookup(s, secrets[(i * 7) % NK], &k) != QAI_OK) {
            printf("%s: lookup: %s\n", label, qai_last_error());
            return;
        }
        qai_free(k);
    }
    d = secs(t0);
    printf("%-9s api key lookup (valid secret)         %9.0f lookups/s (%.1f us each)\n", label, nl / d, d * 1e6 / nl);
    char wrong[QAI_APIKEY_SECRET_SIZE];
    memcpy(wrong, secrets[0], sizeof wrong);
    wrong[30] = wrong[30] == 'x' ? 'y' : 'x';
    t0 = qai_time_ns();
    for (int i = 0; i < nl; i++) {
        qai_apikey *k;
        if (qai_apikey_lookup(s, wrong, &k) == QAI_OK) qai_free(k);
    }
    d = secs(t0);
    printf("%-9s api key lookup (wrong secret)         %9.0f lookups/s\n", label, nl / d);
    int nc = quick ? 50 : 300;
    t0 = qai_time_ns();
    for (int i = 0; i < nc; i++) {
        qai_apikey *k;
        if (qai_apikey_lookup(s, secrets[0], &k) != QAI_OK) break;
        qai_apikey_charge(s, k->id, 100, 0);
        qai_free(k);
    }
    d = secs(t0);
    printf("%-9s lookup + charge tokens (1 tx)         %9.0f requests/s\n", label, nc / d);
    qai_store_close(s);
}

int main(int argc, char **argv) {
    quick = argc > 1 && !strcmp(argv[1], "--quick");
    char dir[] = "/tmp/bench_store.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/qai.db", dir);
    bench("sqlite", url);

    qai_ratelimit *rl = qai_ratelimit_new();
    int nr = quick ? 100000 : 2000000;
    char key[32];
    uint64_t t0 = qai_time_ns(), now = 0;
    int64_t retry;
    for (int i = 0; i < nr; i++) {
        snprintf(key, sizeof key, "key_%012d", i % 1000);
        qai_ratelimit_take(rl, key, 600, now += 1000, &retry);
    }
    printf("%-9s rate limiter take (1000 keys)         %9.0f takes/s\n", "memory", nr / secs(t0));
    qai_ratelimit_free(rl);

    const char *pg_url = getenv("QAI_BENCH_PG");
    pg_test_server pg = {0};
    if (pg_url && !strcmp(pg_url, "off")) printf("postgres: skipped (QAI_BENCH_PG=off)\n");
    else if (pg_url && *pg_url) bench("postgres", pg_url);
    else if (pg_test_start(&pg, true)) bench("postgres", pg.url);
    else printf("postgres: skipped: %s\n", pg.why);
    pg_test_stop(&pg);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
