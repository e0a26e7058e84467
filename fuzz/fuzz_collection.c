/* libFuzzer harness for the collection manifest reader (coll_manifest_parse,
 * what qai_collection_open and every ingest run on a version's
 * manifest.json): parsing, the manifest_sha256 recomputation and the field
 * checks. On success the embedding-model fields it vouched for are read as
 * qai_collection_open reads them. Any crash, overread or sanitizer report is
 * a bug in the reader. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "../src/knowledge/collection_internal.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *j = NULL;
    if (coll_manifest_parse((const char *)data, size, "fuzz/manifest.json", &j) != QAI_OK) {
        sink += strlen(qai_last_error());
        return 0;
    }
    const cJSON *em = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "options"), "embed_model");
    if (cJSON_IsObject(em)) {
        sink += strlen(cJSON_GetObjectItemCaseSensitive(em, "name")->valuestring);
        sink += strlen(cJSON_GetObjectItemCaseSensitive(em, "path")->valuestring);
        sink += strlen(cJSON_GetObjectItemCaseSensitive(em, "sha256")->valuestring);
        sink += (uint64_t)cJSON_GetObjectItemCaseSensitive(em, "dim")->valueint;
    }
    cJSON_Delete(j);
    return 0;
}
