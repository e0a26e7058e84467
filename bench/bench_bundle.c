/* bench_bundle — bundle create+sign and verify times per model size.
 *
 * For each size (default 10 MB and 1024 MB) it writes a GGUF model of random
 * F32 weights (incompressible, like real weights) in a scratch folder, then
 * times, interleaved over rounds:
 *   sha256sum FILE (coreutils, run from here) and qai_sha256_file — the
 *   hashing reference;
 *   qai_bundle_create (hash pass + zstd archive pass), qai_bundle_sign (check
 *   every member, then copy the bytes before the last zstd frame and append
 *   the signature member and a new end) and qai_bundle_verify (decompress,
 *   hash every member, check the hybrid signature under a trust folder);
 * and, on its own, the hybrid (Ed25519 + ML-DSA-65) sign and verify of a
 * manifest-sized message in milliseconds. MB/s figures are model bytes per
 * second. Files stay in the page cache after the first pass, so these are
 * memory-speed, not cold-disk, numbers.
 *
 * Usage: bench_bundle [--sizes MB,MB,...] [--rounds N] [--level L] [--dir DIR] [--json]
 * Single-threaded (bundles use one core for zstd and hashing). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qai/base.h"
#include "qai/bundle.h"
#include "qai/sign.h"

static int json;
static const char *first = "";

static void report(const char *what, double mb, double value, const char *unit) {
    if (json) {
        printf("%s\n  {\"what\": \"%s\", \"size_mb\": %.0f, \"value\": %.2f, \"unit\": \"%s\"}", first, what, mb, value,
               unit);
        first = ",";
    } else
        printf("%6.0f MB  %-36s %10.2f %s\n", mb, what, value, unit);
}

/* A GGUF v3 with general.architecture = "llama" and one F32 tensor of n
 * floats of random bits (never NaN-checked: the bundle does not care). */
static int write_model(const char *path, uint64_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint32_t u32;
    uint64_t u64;
#define W(x) fwrite(&(x), sizeof(x), 1, f)
    u32 = 0x46554747u; W(u32);
    u32 = 3; W(u32);
    u64 = 1; W(u64); /* tensors */
    u64 = 1; W(u64); /* kv */
    const char *k = "general.architecture", *v = "llama", *tn = "weights";
    u64 = strlen(k); W(u64); fwrite(k, 1, strlen(k), f);
    u32 = 8; W(u32); /* string */
    u64 = strlen(v); W(u64); fwrite(v, 1, strlen(v), f);
    u64 = strlen(tn); W(u64); fwrite(tn, 1, strlen(tn), f);
    u32 = 1; W(u32); /* n_dims */
    u64 = n; W(u64);
    u32 = 0; W(u32); /* F32 */
    u64 = 0; W(u64); /* offset */
#undef W
    long pos = ftell(f);
    static const uint8_t zeros[32];
    fwrite(zeros, 1, (size_t)((32 - pos % 32) % 32), f);
    enum { CHUNK = 1 << 20 };
    uint64_t *buf = malloc(CHUNK);
    qai_rng r;
    qai_rng_seed(&r, 42);
    for (uint64_t left = n * 4; left;) {
        size_t c = left < CHUNK ? (size_t)left : CHUNK;
        for (size_t i = 0; i < CHUNK / 8; i++) buf[i] = qai_rng_u64(&r) & 0xbfffffffbfffffffull; /* finite floats */
        fwrite(buf, 1, c, f);
        left -= c;
    }
    free(buf);
    return fclose(f);
}

static double secs(uint64_t t0) { return (qai_time_ns() - t0) * 1e-9; }

int main(int argc, char **argv) {
    const char *sizes = "10,1024", *dir = NULL;
    int rounds = 3, level = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) sizes = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--level") && i + 1 < argc) level = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_bundle [--sizes MB,MB] [--rounds N] [--level L] [--dir DIR] [--json]\n");
            return 2;
        }
    }
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/bench_bundle.XXXXXX", dir ? dir : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "bench_bundle: cannot create a folder in %s: %s\n", dir ? dir : "/tmp", strerror(errno));
        return 1;
    }
    char trust[1100], pubp[1200];
    snprintf(trust, sizeof trust, "%s/trust", tmp);
    mkdir(trust, 0755);
    uint8_t s1[32], s2[32];
    memset(s1, 1, 32);
    memset(s2, 2, 32);
    qai_identity *id;
    if (qai_identity_from_seeds("bench", 1700000000, s1, s2, &id)) return 1;
    snprintf(pubp, sizeof pubp, "%s/%s.pub", trust, qai_identity_key_id(id));
    qai_identity_export_public(id, pubp);
    qai_bundle_policy pol = {.trust_dir = trust, .no_store = true, .require_signed = true};
    if (json) printf("[");

    /* hybrid signature alone, on a 2 KB message (a manifest's size) */
    {
        uint8_t msg[2048], sig[QAI_HYBRID_SIG_BYTES];
        memset(msg, 'm', sizeof msg);
        int n = 50;
        uint64_t t0 = qai_time_ns();
        for (int i = 0; i < n; i++) qai_hybrid_sign(id, msg, sizeof msg, sig);
        report("hybrid sign (Ed25519+ML-DSA-65)", 0, secs(t0) * 1e3 / n, "ms");
        t0 = qai_time_ns();
        for (int i = 0; i < n; i++)
            if (qai_hybrid_verify(id, msg, sizeof msg, sig, sizeof sig)) return 1;
        report("hybrid verify", 0, secs(t0) * 1e3 / n, "ms");
    }

    for (const char *p = sizes; *p;) {
        double mb = strtod(p, NULL);
        const char *comma = strchr(p, ',');
        p = comma ? comma + 1 : p + strlen(p);
        if (mb <= 0) continue;
        char model[1200], bundle[1200], cmd[2600];
        snprintf(model, sizeof model, "%s/m%.0f.gguf", tmp, mb);
        snprintf(bundle, sizeof bundle, "%s/m%.0f.qai", tmp, mb);
        uint64_t n = (uint64_t)(mb * 1048576.0 / 4);
        if (write_model(model, n)) {
            fprintf(stderr, "bench_bundle: cannot write %s\n", model);
            return 1;
        }
        struct stat sb;
        stat(model, &sb);
        double mbytes = sb.st_size / 1048576.0;
        snprintf(cmd, sizeof cmd, "sha256sum '%s' > /dev/null", model);
        double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < rounds; r++) {
            uint64_t t0 = qai_time_ns();
            if (system(cmd) != 0) fprintf(stderr, "bench_bundle: sha256sum failed\n");
            double t = secs(t0);
            if (t < best[0]) best[0] = t;
            uint8_t h[32];
            t0 = qai_time_ns();
            qai_sha256_file(model, h, NULL);
            if ((t = secs(t0)) < best[1]) best[1] = t;
            qai_bundle_create_params cp = {.model_path = model, .name = "bench", .version = "1",
                                           .compression_level = level, .created = 1790000000};
            t0 = qai_time_ns();
            if (qai_bundle_create(&cp, bundle)) {
                fprintf(stderr, "bench_bundle: %s\n", qai_last_error());
                return 1;
            }
            if ((t = secs(t0)) < best[2]) best[2] = t;
            t0 = qai_time_ns();
            if (qai_bundle_sign(bundle, id)) {
                fprintf(stderr, "bench_bundle: %s\n", qai_last_error());
                return 1;
            }
            if ((t = secs(t0)) < best[3]) best[3] = t;
            qai_bundle_report rep;
            t0 = qai_time_ns();
            if (qai_bundle_verify(bundle, &pol, 0, &rep) || !rep.ok) {
                fprintf(stderr, "bench_bundle: verify: %s %s\n", qai_last_error(), rep.problem);
                return 1;
            }
            if ((t = secs(t0)) < best[4]) best[4] = t;
            qai_bundle_report_release(&rep);
        }
        stat(bundle, &sb);
        report("sha256sum (coreutils)", mbytes, mbytes / best[0], "MB/s");
        report("qai_sha256_file (libsodium)", mbytes, mbytes / best[1], "MB/s");
        report("bundle create", mbytes, best[2], "s");
        report("bundle create", mbytes, mbytes / best[2], "MB/s");
        report("bundle sign (check, copy, append)", mbytes, best[3], "s");
        report("bundle create+sign", mbytes, mbytes / (best[2] + best[3]), "MB/s");
        report("bundle verify (require-signed)", mbytes, best[4], "s");
        report("bundle verify", mbytes, mbytes / best[4], "MB/s");
        report("bundle size / model size", mbytes, sb.st_size / 1048576.0 / mbytes, "x");
        unlink(model);
        unlink(bundle);
    }
    if (json) printf("\n]\n");
    qai_identity_free(id);
    unlink(pubp);
    rmdir(trust);
    rmdir(tmp);
    return 0;
}
