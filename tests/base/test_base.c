/* Base layer: errors, allocation failure injection, atomic files, thread pool,
 * rng reproducibility, fp16/bf16 conversion against exhaustive round-trips. */
#include "qai/base.h"
#include <cjson/cJSON.h>

#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_errors(void) {
    CHECK(qai_error(QAI_ERR_FORMAT, "field '%s' at offset %d", "x", 12) == QAI_ERR_FORMAT);
    CHECK(!strcmp(qai_last_error(), "field 'x' at offset 12"));
    qai_error_wrap(QAI_ERR_FORMAT, "cannot open '%s'", "m.gguf");
    CHECK(!strcmp(qai_last_error(), "cannot open 'm.gguf': field 'x' at offset 12"));
}

static void test_alloc_fail(void) {
    qai_alloc_fail_after(2);
    void *a = qai_malloc(10);
    void *b = qai_malloc(10);
    void *c = qai_malloc(10);
    CHECK(a != NULL);
    CHECK(b == NULL);
    CHECK(c != NULL);
    CHECK(strstr(qai_last_error(), "out of memory") != NULL);
    qai_free(a);
    qai_free(c);
}

static void test_atomic(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/test_base_atomic.txt", TEST_TMP());
    unlink(path);
    qai_atomic_file af;
    CHECK_OK(qai_atomic_open(path, &af));
    fputs("first", af.f);
    qai_atomic_abort(&af);
    struct stat st;
    CHECK(stat(path, &st) != 0); /* abort leaves nothing */
    CHECK_OK(qai_atomic_open(path, &af));
    fputs("hello", af.f);
    CHECK(stat(path, &st) != 0); /* not visible before commit */
    CHECK_OK(qai_atomic_commit(&af));
    char *data;
    size_t n;
    CHECK_OK(qai_file_read(path, &data, &n));
    CHECK(n == 5 && !memcmp(data, "hello", 5));
    qai_free(data);
    qai_mapped_file mf;
    CHECK_OK(qai_file_map(path, &mf));
    CHECK(mf.size == 5 && !memcmp(mf.data, "hello", 5));
    qai_file_unmap(&mf);
    CHECK(qai_file_map("/nonexistent/x", &mf) == QAI_ERR_IO);
    CHECK(strstr(qai_last_error(), "/nonexistent/x") != NULL);
    unlink(path);
}

typedef struct {
    atomic_long sum;
    int seen[64];
} pool_job;

static void pool_fn(void *arg, int ith, int nth) {
    pool_job *j = arg;
    j->seen[ith] = nth;
    atomic_fetch_add(&j->sum, ith + 1);
}

static void slow_fn(void *arg, int ith, int nth) {
    pool_job *j = arg;
    if (ith == nth - 1) usleep(2000); /* the caller outlasts its spin and sleeps */
    atomic_fetch_add(&j->sum, 1);
}

/* Slices are claimed: on a pool with more threads than cores, workers are
 * often off-core when a job starts and the caller runs their slices. Each
 * slice must still run exactly once per job, on whichever thread. */
typedef struct {
    atomic_int runs[16];
    pthread_t caller;
    atomic_int by_caller; /* slices other than 0 the caller ran */
} claim_job;

static void claim_fn(void *arg, int ith, int nth) {
    claim_job *j = arg;
    (void)nth;
    atomic_fetch_add(&j->runs[ith], 1);
    if (ith && pthread_equal(pthread_self(), j->caller)) atomic_fetch_add(&j->by_caller, 1);
}

static void test_pool_claims(void) {
    qai_pool *p = qai_pool_new(12);
    CHECK(p != NULL && qai_pool_size(p) == 12);
    if (!p) return;
    int bad = 0, by_caller = 0;
    for (int rep = 0; rep < 3000 && !bad; rep++) {
        claim_job j = {.caller = pthread_self()};
        qai_pool_run(p, claim_fn, &j);
        for (int i = 0; i < 12; i++) bad += atomic_load(&j.runs[i]) != 1;
        by_caller += atomic_load(&j.by_caller);
    }
    CHECK_EQ_INT(bad, 0);
    fprintf(stderr, "  pool of 12 on %d CPUs: the caller ran %d of 33,000 worker slices\n", qai_cpu_count(), by_caller);
    qai_pool_free(p);
}

static void test_pool(void) {
    for (int nt = 1; nt <= 4; nt++) {
        qai_pool *p = qai_pool_new(nt);
        CHECK(p != NULL);
        CHECK(qai_pool_size(p) == nt);
        for (int rep = 0; rep < (nt <= 2 ? 2000 : 50); rep++) {
            pool_job j = {0};
            qai_pool_run(p, pool_fn, &j);
            if (atomic_load(&j.sum) != nt * (nt + 1) / 2) {
                CHECK_MSG(0, "pool of %d: sum %ld at rep %d", nt, atomic_load(&j.sum), rep);
                break;
            }
            if (rep == 0)
                for (int i = 0; i < nt; i++) CHECK(j.seen[i] == nt);
            if (rep == 25) usleep(5000); /* let workers fall asleep, then wake them */
        }
        for (int rep = 0; rep < 20; rep++) {
            pool_job j = {0};
            qai_pool_run(p, slow_fn, &j);
            CHECK_EQ_INT(atomic_load(&j.sum), nt);
        }
        qai_pool_free(p);
    }
}

static void test_rng(void) {
    qai_rng a, b;
    qai_rng_seed(&a, 42);
    qai_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= qai_rng_u64(&a) == qai_rng_u64(&b);
    CHECK(same);
    /* known first output of xoshiro256** seeded via splitmix64(0) */
    qai_rng_seed(&a, 0);
    double mean = 0;
    for (int i = 0; i < 100000; i++) mean += qai_rng_float(&a);
    mean /= 100000;
    CHECK(fabs(mean - 0.5) < 0.01);
}

static void test_half(void) {
    /* every fp16 value round-trips through fp32 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qai_fp16_to_fp32((uint16_t)h);
        if (f != f) continue; /* NaN payloads aside */
        if (qai_fp32_to_fp16(f) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(qai_fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(qai_fp16_to_fp32(0xc000) == -2.0f);
    CHECK(qai_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(qai_fp32_to_fp16(1e6f) == 0x7c00);
    CHECK(qai_fp32_to_fp16(1.0f + 1.0f / 2048) == 0x3c00); /* tie to even */
    CHECK(qai_fp32_to_fp16(1.0f + 3.0f / 2048) == 0x3c02);
    CHECK(qai_fp32_to_fp16(5.9604644775390625e-8f) == 0x0001);
    CHECK(qai_bf16_to_fp32(0x3f80) == 1.0f);
    CHECK(qai_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(qai_fp32_to_bf16(1.00390625f) == 0x3f80); /* tie to even */
    CHECK(qai_fp32_to_bf16(1.01171875f) == 0x3f82);
}

static void test_sha256(void) {
    /* FIPS 180-2 example: SHA-256("abc") */
    uint8_t d[32];
    char hex[65];
    qai_sha256("abc", 3, d);
    qai_hex(d, 32, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    qai_sha256_ctx c;
    qai_sha256_init(&c);
    qai_sha256_update(&c, "a", 1);
    qai_sha256_update(&c, "bc", 2);
    uint8_t d2[32];
    qai_sha256_final(&c, d2);
    CHECK(!memcmp(d, d2, 32));

    const char *tmp = getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/sha_test.txt", tmp);
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    uint64_t size = 0;
    CHECK_OK(qai_sha256_file(path, d2, &size));
    CHECK(!memcmp(d, d2, 32));
    CHECK_EQ_INT(size, 3);
    CHECK(qai_sha256_file("/nonexistent/x", d2, NULL) == QAI_ERR_IO);

    /* the SHA-NI path against libsodium: every length up to 300, fed in pieces */
    bool hw = qai_sha256_set_hardware(true);
    if (!hw) fprintf(stderr, "note: no SHA extensions on this CPU; only the portable path is tested\n");
    uint8_t buf[1024];
    for (int i = 0; i < 1024; i++) buf[i] = (uint8_t)(i * 131 + 7);
    int bad = 0;
    for (size_t n = 0; n <= 300; n++) {
        uint8_t a[32], b[32];
        qai_sha256_set_hardware(true);
        qai_sha256_ctx x;
        qai_sha256_init(&x);
        for (size_t off = 0; off < n;) { /* uneven pieces: 1, 2, 3, ... bytes */
            size_t piece = off % 7 + 1 < n - off ? off % 7 + 1 : n - off;
            qai_sha256_update(&x, buf + off, piece);
            off += piece;
        }
        qai_sha256_final(&x, a);
        qai_sha256_set_hardware(false);
        qai_sha256(buf, n, b);
        bad += memcmp(a, b, 32) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    qai_sha256_set_hardware(true);
    qai_sha256("abc", 3, d);
    qai_hex(d, 32, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

static void test_dirs(void) {
    const char *tmp = getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/dirs_test/a/b/c", tmp);
    CHECK_OK(qai_mkdirs(path));
    CHECK_OK(qai_mkdirs(path)); /* exists: fine */
    CHECK_OK(qai_home_dir(path, out, sizeof out));
    CHECK(!strcmp(out, path));
    setenv("QAI_HOME", path, 1);
    CHECK_OK(qai_home_dir(NULL, out, sizeof out));
    CHECK(!strcmp(out, path));
    unsetenv("QAI_HOME");
    CHECK(qai_home_dir(path, out, 4) == QAI_ERR_RANGE);
    snprintf(path, sizeof path, "%s/sha_test.txt/sub", tmp); /* a file in the way */
    CHECK(qai_mkdirs(path) != QAI_OK);
}

static void test_yaml(void) {
    const char *doc = "# config\n"
                      "model:\n  dim: 288\n  layers: 6\n  name: \"6\"\n"
                      "lr: 3.0e-4\nwarmup: ~\nbf16: false\n"
                      "files: [a.txt, 'b c.md']\n"
                      "steps:\n  - eval\n  - {every: 100}\n";
    void *j = NULL;
    CHECK_OK(qai_yaml_parse(doc, strlen(doc), "t.yaml", &j));
    cJSON *root = j;
    cJSON *model = cJSON_GetObjectItem(root, "model");
    CHECK(cJSON_IsObject(model));
    CHECK(cJSON_GetObjectItem(model, "dim")->valuedouble == 288);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(model, "name"))); /* quoted stays a string */
    CHECK(fabs(cJSON_GetObjectItem(root, "lr")->valuedouble - 3e-4) < 1e-12);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(root, "warmup")));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(root, "bf16")));
    cJSON *files = cJSON_GetObjectItem(root, "files");
    CHECK(cJSON_GetArraySize(files) == 2 && !strcmp(cJSON_GetArrayItem(files, 1)->valuestring, "b c.md"));
    cJSON *steps = cJSON_GetObjectItem(root, "steps");
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 1), "every")->valuedouble == 100);
    cJSON_Delete(root);

    CHECK_OK(qai_yaml_parse("", 0, "empty.yaml", &j));
    CHECK(cJSON_IsObject((cJSON *)j));
    cJSON_Delete(j);

    const char *bad[] = {"a: 1\na: 2\n", "a: [1, 2\n", "a: &x 1\nb: *x\n", "a: 1\n---\nb: 2\n", "a:\n\t- x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = (void *)1;
        qai_status st = qai_yaml_parse(bad[i], strlen(bad[i]), "bad.yaml", &j);
        CHECK_MSG(st == QAI_ERR_FORMAT && j == NULL, "case %zu", i);
        CHECK_MSG(strstr(qai_last_error(), "bad.yaml:") != NULL, "%s", qai_last_error());
    }
    CHECK(strstr(qai_last_error(), "bad.yaml:2:") != NULL);
}

/* qai_strbuf against a plain reference string built with snprintf. */
static void test_strbuf(void) {
    qai_strbuf b = {0};
    size_t len = 99;
    char *e = qai_strbuf_take(&b, &len);
    CHECK(e && e[0] == 0 && len == 0);
    qai_free(e);
    static char ref[2000000]; /* 2000 pieces of at most 620 bytes */
    size_t rn = 0;
    qai_rng r;
    qai_rng_seed(&r, 5);
    for (int i = 0; i < 2000; i++) {
        uint64_t k = qai_rng_u64(&r) % 4;
        char piece[700];
        size_t pn;
        if (k == 0) {
            pn = (size_t)snprintf(piece, sizeof piece, "%d:%s;", i, i % 7 ? "x" : "a longer piece of text");
            qai_strbuf_printf(&b, "%d:%s;", i, i % 7 ? "x" : "a longer piece of text");
        } else if (k == 1) { /* longer than any first guess of a formatter */
            memset(piece, 'a' + i % 26, 600);
            pn = (size_t)snprintf(piece + 600, 20, "%05d", i) + 600;
            qai_strbuf_printf(&b, "%.600s%05d", piece, i);
        } else if (k == 2) {
            piece[0] = (char)('A' + i % 26);
            pn = 1;
            qai_strbuf_putc(&b, piece[0]);
        } else {
            pn = (size_t)(qai_rng_u64(&r) % 40);
            for (size_t j = 0; j < pn; j++) piece[j] = (char)(j % 3 ? 'q' : 0); /* embedded NULs */
            qai_strbuf_put(&b, piece, pn);
        }
        memcpy(ref + rn, piece, pn);
        rn += pn;
    }
    CHECK(!b.oom && b.n == rn && b.p[rn] == 0);
    char *got = qai_strbuf_take(&b, &len);
    CHECK(got && len == rn && !memcmp(got, ref, rn));
    CHECK(b.p == NULL && b.n == 0);
    qai_free(got);
    /* a failed allocation sticks, and take gives NULL and frees */
    qai_strbuf_puts(&b, "abc");
    qai_alloc_fail_after(1);
    qai_strbuf_put(&b, ref, 5000);
    qai_alloc_fail_after(0);
    CHECK(b.oom);
    qai_strbuf_puts(&b, "more");
    CHECK(b.n == 3);
    CHECK(qai_strbuf_take(&b, &len) == NULL && len == 0 && b.p == NULL && !b.oom);
}

int main(void) {
    test_strbuf();
    test_errors();
    test_alloc_fail();
    test_atomic();
    test_pool();
    test_pool_claims();
    test_rng();
    test_half();
    test_sha256();
    test_dirs();
    test_yaml();
    return test_summary();
}
