/* libFuzzer harness for the dataset manifest reader (qai_dataset_manifest_parse):
 * parses and validates the input as manifest.json, including the manifest hash
 * recomputation, and on success walks the tree it returns. Any crash,
 * overread or sanitizer report is a bug in the reader. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "qai/data.h"

static volatile uint64_t sink;

static void walk(const cJSON *j) {
    for (; j; j = j->next) {
        sink += (uint64_t)j->type;
        if (j->string) sink += strlen(j->string);
        if (cJSON_IsString(j) && j->valuestring) sink += strlen(j->valuestring);
        walk(j->child);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *json = NULL;
    if (qai_dataset_manifest_parse((const char *)data, size, "fuzz/manifest.json", &json) != QAI_OK) {
        sink += strlen(qai_last_error());
        return 0;
    }
    walk(json);
    cJSON_Delete(json);
    return 0;
}
