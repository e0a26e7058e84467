/*
 * qai/quantize.h — quantize a GGUF model into another GGUF file, choosing
 * tensor types the way llama.cpp's llama-quantize does, so the result loads in
 * qai, llama.cpp and ollama alike.
 *
 * Types (type_name, case-insensitive):
 *   f32, f16, bf16          every 2-D weight converted; general.file_type 0 / 1 / 32
 *   q8_0                    2-D weights Q8_0 (file_type 7)
 *   q4_0                    2-D weights Q4_0, output.weight Q6_K (file_type 2)
 *   q4_k                    2-D weights Q4_K, output.weight Q6_K (file_type 14, Q4_K_S;
 *                           llama.cpp's Q5_K bumps of Q4_K_S are not applied)
 *   q6_k                    2-D weights Q6_K (file_type 18)
 *   q4_k_m                  llama.cpp's Q4_K_M mix (file_type 15): Q4_K, with Q6_K for
 *                           output.weight (token_embd.weight when there is no output),
 *                           and for attn_v / ffn_down in the layers llama.cpp's
 *                           use_more_bits rule picks (the first and last eighth and
 *                           every third layer in between)
 * Tensors kept as they are: 1-D tensors (norms, biases), names not ending in
 * "weight", *_norm.weight, and tensors already of the target type. A tensor
 * whose rows are not a multiple of the block size falls back (logged, counted):
 * Q4_K/Q6_K -> Q8_0 (llama.cpp uses Q5_0 for Q4_K, which qai does not write),
 * then Q4_0/Q8_0 -> F16 if rows are not a multiple of 32.
 * All metadata is copied; general.file_type and general.quantization_version (2)
 * are set.
 *
 * Usage:
 *     qai_quantize_summary s;
 *     if (qai_quantize_model("m-f32.gguf", "m-q4km.gguf", "q4_k_m", NULL, &s))
 *         fprintf(stderr, "qai: %s\n", qai_last_error());
 */
#ifndef QAI_QUANTIZE_H
#define QAI_QUANTIZE_H

#include "qai/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_threads; /* <= 0: all CPUs */
    bool quiet;    /* no progress line */
} qai_quantize_options;

typedef struct {
    int64_t n_tensors;      /* tensors in the file */
    int64_t n_converted;    /* tensors whose type changed */
    int64_t n_fallback;     /* tensors that got a fallback type (rows not a multiple of the block) */
    uint64_t n_elements;    /* total elements of all tensors */
    uint64_t data_in;       /* tensor bytes before */
    uint64_t data_out;      /* tensor bytes after */
    uint64_t file_in;       /* file sizes */
    uint64_t file_out;
    uint32_t file_type;     /* general.file_type written (LLAMA_FTYPE) */
    double seconds;
} qai_quantize_summary;

/* Reads in_gguf, writes out_gguf (atomically). opts and summary may be NULL.
 * Memory: the output tensors are held in memory until written (about the
 * output file's size); unchanged tensors are read from the input's mapping.
 * Fails with QAI_ERR_ARG for an unknown type name, QAI_ERR_UNSUPPORTED for an
 * input tensor type qai cannot dequantize that would need converting. */
qai_status qai_quantize_model(const char *in_gguf, const char *out_gguf, const char *type_name,
                              const qai_quantize_options *opts, qai_quantize_summary *summary);

/* The general.file_type (LLAMA_FTYPE) a type name maps to, or -1 if unknown. */
int qai_quantize_file_type(const char *type_name);

#ifdef __cplusplus
}
#endif
#endif
