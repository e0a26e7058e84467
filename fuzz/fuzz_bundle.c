/* libFuzzer harness for bundle reading (qai_bundle_verify_buffer): the input
 * is taken as a whole bundle file — zstd, tar headers, the manifest, member
 * names, types and sizes, signatures — and checked with a policy that trusts
 * nothing and consults no store, keeping the small members in memory. The
 * same bytes also go through the revocation-list parser. Any crash, overread
 * or sanitizer report is a bug in the reader; so is a verdict "ok" for a
 * bundle whose report lacks a model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qai/bundle.h"

static volatile uint64_t sink;

static void count(void *user, const char *key_id, int64_t at, const char *reason) {
    (void)user;
    sink += (uint64_t)at + strlen(key_id) + strlen(reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qai_bundle_policy pol = {.trust_dir = "/nonexistent/qai-fuzz-trust", .no_store = true, .require_signed = (size & 1)};
    qai_bundle_report r;
    if (qai_bundle_verify_buffer(data, size, "fuzz.qai", &pol, QAI_BUNDLE_KEEP_SMALL | QAI_BUNDLE_HASH_FILE, &r) ==
        QAI_OK) {
        if (r.ok && (!r.model_member[0] || strlen(r.model_sha256) != 64)) abort();
        sink += r.n_members + r.n_sigs + strlen(r.problem) + strlen(r.failed);
        for (size_t i = 0; i < r.n_members; i++)
            if (r.members[i].data) sink += strlen(r.members[i].data);
    }
    qai_bundle_report_release(&r);
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = 0;
        qai_revocations_parse(text, size, "fuzz-revoked.txt", count, NULL);
        free(text);
    }
    return 0;
}
