/* libFuzzer harness for the bodies of POST /v1/indexes/{name}/search and
 * /upsert: the first input byte picks the endpoint (bit 0 clear: search, set:
 * upsert), the rest is the body. The data directory's collections/ is a
 * regular file, so a body that parses reaches the collection layer and fails
 * there (search: 404 no such collection; upsert: 500, no directory can be
 * made) without writing anything. Every input must answer 400/404/500 with an error that
 * has a type and a message (400s also a code); anything else, or a crash,
 * leak or overread under the sanitizers, aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/serve/serve_internal.h"

static serve_indexes *g_ix;
static char g_dir[64];

static void cleanup(void) {
    char p[96];
    snprintf(p, sizeof p, "%s/collections", g_dir);
    unlink(p);
    rmdir(g_dir);
}

static serve_indexes *indexes(void) {
    if (g_ix) return g_ix;
    snprintf(g_dir, sizeof g_dir, "/tmp/qai-fuzz-index-XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    atexit(cleanup);
    /* collections/ is a regular file: nothing can be created under it */
    char p[96];
    snprintf(p, sizeof p, "%s/collections", g_dir);
    FILE *f = fopen(p, "w");
    if (!f) abort();
    fclose(f);
    if (serve_indexes_new(g_dir, &g_ix) || serve_indexes_set_models(g_ix, NULL, NULL, 0, 1)) abort();
    return g_ix;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bool upsert = data[0] & 1;
    size_t n = size - 1; /* a copy without a terminating NUL, so reading past the end is caught */
    char *body = malloc(n ? n : 1);
    if (n) memcpy(body, data + 1, n);
    sbuf out = {0};
    qai_serve_error e;
    memset(&e, 0, sizeof e);
    int status = upsert ? serve_index_upsert_http(indexes(), "fuzz", body, n, &out, &e)
                        : serve_index_search_http(indexes(), "fuzz", body, n, &out, &e);
    if (status != 400 && status != 404 && status != 500) {
        fprintf(stderr, "fuzz_index_request: status %d (%s)\n", status, out.p ? out.p : "");
        abort();
    }
    if (e.status != status || !e.type[0] || !e.message[0] || (status == 400 && !e.code[0])) {
        fprintf(stderr, "fuzz_index_request: bad error (status %d/%d, type '%s', code '%s', message '%s')\n", status,
                e.status, e.type, e.code, e.message);
        abort();
    }
    sb_free(&out);
    free(body);
    return 0;
}
