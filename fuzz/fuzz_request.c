/* libFuzzer harness for the request parser of qai serve: the first input byte
 * picks the endpoint (bit 1 set: /v1/embeddings; otherwise bit 0 clear:
 * /v1/completions, set: /v1/chat/completions), the rest is the body. The parser
 * also compiles response_format schemas and tool definitions into grammars and
 * renders tool messages, so those are fuzzed too. Every input must either
 * parse into a request that passes the invariants below or fail with a 4xx
 * error object that has a type, a code and a message; anything else (or a
 * crash, leak or overread under the sanitizers) aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qai/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int kind = (data[0] & 2) ? QAI_SERVE_EMBEDDINGS : (data[0] & 1) ? QAI_SERVE_CHAT : QAI_SERVE_COMPLETIONS;
    /* a copy without a terminating NUL, so reading past the end is caught */
    size_t n = size - 1;
    char *body = malloc(n ? n : 1);
    if (n) memcpy(body, data + 1, n);
    qai_serve_request *r = NULL;
    qai_serve_error e;
    qai_status st = qai_serve_request_parse(body, n, kind, &r, &e);
    if (st == QAI_OK) {
        if (!r) {
            fprintf(stderr, "fuzz_request: ok without a request\n");
            abort();
        }
        qai_serve_request_free(r);
    } else {
        if (r || e.status < 400 || e.status > 599 || !e.type[0] || !e.message[0] ||
            (e.status == 400 && !e.code[0])) {
            fprintf(stderr, "fuzz_request: bad error (status %d, type '%s', code '%s', message '%s')\n", e.status, e.type,
                    e.code, e.message);
            abort();
        }
    }
    free(body);
    return 0;
}
