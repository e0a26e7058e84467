/* Shared between the GGUF reader and writer (internal, never installed). */
#ifndef QAI_GGUF_INTERNAL_H
#define QAI_GGUF_INTERNAL_H

#include "qai/gguf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader and writer assume a little-endian host"
#endif

/* ggml's limit on tensor names (GGML_MAX_NAME, including the NUL): the writer
 * refuses names of this length or longer so llama.cpp can read its files; the
 * reader accepts up to QAI_GGUF_MAX_NAME_READ bytes as the spec says. */
#define QAI_GGUF_MAX_NAME 64
#define QAI_GGUF_MAX_NAME_READ 64
/* Nested arrays deeper than this are rejected (nothing real nests at all). */
#define QAI_GGUF_MAX_DEPTH 4

/* Bytes of one value of a fixed-size metadata type; 0 for string, array and
 * unknown types. */
size_t qai_gguf_fixed_size_(uint32_t type);

/* The serialized value bytes of kv i as they appear in the file (for arrays:
 * element type, count and elements), for copying into a writer. */
void qai_gguf_kv_raw_(const qai_gguf *g, int64_t i, const uint8_t **raw, size_t *len);

#endif
