/* libFuzzer harness for the GGUF reader: opens the input as a buffer and walks
 * everything the reader exposes (every kv through every accessor that fits its
 * type, every array element, every tensor byte), then copies all kvs into a
 * writer. Any crash, overread or sanitizer report is a bug in the reader. */
#include <stdint.h>
#include <string.h>

#include "qai/gguf.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qai_gguf *g = NULL;
    if (qai_gguf_open_buffer(data, size, "fuzz.gguf", &g) != QAI_OK) {
        sink += strlen(qai_last_error());
        return 0;
    }
    uint64_t acc = qai_gguf_version(g) + qai_gguf_alignment(g) + qai_gguf_data_offset(g) + qai_gguf_file_size(g);
    qai_gguf_writer *w = qai_gguf_writer_new();
    for (int64_t i = 0; i < qai_gguf_n_kv(g); i++) {
        const char *key = qai_gguf_kv_key(g, i);
        acc += strlen(key) + (uint64_t)qai_gguf_find_kv(g, key);
        int64_t iv;
        double dv;
        bool bv;
        const char *sv;
        if (qai_gguf_get_int(g, key, &iv) == QAI_OK) acc += (uint64_t)iv;
        if (qai_gguf_get_float(g, key, &dv) == QAI_OK) acc += (uint64_t)(dv == dv);
        if (qai_gguf_get_bool(g, key, &bv) == QAI_OK) acc += bv;
        if (qai_gguf_get_str(g, key, &sv) == QAI_OK) acc += strlen(sv);
        qai_gguf_type t = qai_gguf_kv_type(g, i);
        if (t == QAI_GGUF_STRING) acc += strlen(qai_gguf_kv_str(g, i));
        else if (t == QAI_GGUF_ARRAY) {
            qai_gguf_type et = qai_gguf_arr_type(g, i);
            uint64_t n = qai_gguf_arr_len(g, i);
            for (uint64_t j = 0; j < n; j++) {
                if (et == QAI_GGUF_STRING) {
                    size_t len = qai_gguf_arr_str_len(g, i, j);
                    const char *s = qai_gguf_arr_str(g, i, j);
                    if (len) acc += (uint8_t)s[len - 1] + (uint8_t)s[len]; /* last byte and the NUL */
                } else if (et == QAI_GGUF_ARRAY) {
                    break; /* nested arrays are not readable element-wise */
                } else {
                    acc += (uint64_t)qai_gguf_arr_int(g, i, j);
                    acc += (uint64_t)(qai_gguf_arr_float(g, i, j) == 0);
                }
            }
        } else {
            acc += (uint64_t)qai_gguf_kv_int(g, i) + (uint64_t)(qai_gguf_kv_float(g, i) == 0);
        }
        if (w) qai_gguf_set_kv_from(w, g, i);
    }
    for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
        const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
        acc += (uint64_t)(qai_gguf_find_tensor(g, t->name) == t);
        const uint8_t *p = t->data;
        for (size_t k = 0; k < t->size; k += 61) acc += p[k];
        if (t->size) acc += p[t->size - 1];
        if (w) qai_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size);
    }
    qai_gguf_writer_free(w);
    qai_gguf_close(g);
    sink += acc;
    return 0;
}
