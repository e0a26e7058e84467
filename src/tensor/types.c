/*
 * Element type traits: names, block sizes and bytes per block for every ggml
 * type id, so any GGUF file can be sized and inspected. Sizes are ggml's
 * (ggml-common.h block structs); the supported ones are also checked with
 * _Static_assert against our own block structs in quant.h.
 *
 * What it deliberately does not do: quantize or compute (quant.c, dot_*.c).
 */
#include <ctype.h>
#include <string.h>

#include "qai/tensor.h"
#include "tensor/quant.h"

#define QK_K QAI_QK_K

/* name, block_size, type_size, quantized, supported, vec_dot_type.
 * Names are ggml's own spelling ("q4_K"); qai_type_from_name ignores case. */
static const qai_type_traits traits[QAI_TYPE_COUNT] = {
    [QAI_TYPE_F32] = {"f32", 1, 4, false, true, QAI_TYPE_F32},
    [QAI_TYPE_F16] = {"f16", 1, 2, false, true, QAI_TYPE_F32},
    [QAI_TYPE_Q4_0] = {"q4_0", 32, 18, true, true, QAI_TYPE_Q8_0},
    [QAI_TYPE_Q4_1] = {"q4_1", 32, 20, true, false, QAI_TYPE_Q8_1},
    [QAI_TYPE_Q5_0] = {"q5_0", 32, 22, true, false, QAI_TYPE_Q8_0},
    [QAI_TYPE_Q5_1] = {"q5_1", 32, 24, true, false, QAI_TYPE_Q8_1},
    [QAI_TYPE_Q8_0] = {"q8_0", 32, 34, true, true, QAI_TYPE_Q8_0},
    [QAI_TYPE_Q8_1] = {"q8_1", 32, 36, true, false, QAI_TYPE_Q8_1},
    [QAI_TYPE_Q2_K] = {"q2_K", QK_K, 84, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_Q3_K] = {"q3_K", QK_K, 110, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_Q4_K] = {"q4_K", QK_K, 144, true, true, QAI_TYPE_Q8_K},
    [QAI_TYPE_Q5_K] = {"q5_K", QK_K, 176, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_Q6_K] = {"q6_K", QK_K, 210, true, true, QAI_TYPE_Q8_K},
    /* Q8_K is the activation type of the k-quants: usable as a vec_dot_type
     * but never stored in model files. */
    [QAI_TYPE_Q8_K] = {"q8_K", QK_K, 292, true, true, QAI_TYPE_Q8_K},
    [QAI_TYPE_IQ2_XXS] = {"iq2_xxs", QK_K, 66, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_IQ2_XS] = {"iq2_xs", QK_K, 74, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_IQ3_XXS] = {"iq3_xxs", QK_K, 98, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_IQ1_S] = {"iq1_s", QK_K, 50, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_IQ4_NL] = {"iq4_nl", 32, 18, true, false, QAI_TYPE_Q8_0},
    [QAI_TYPE_IQ3_S] = {"iq3_s", QK_K, 110, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_IQ2_S] = {"iq2_s", QK_K, 82, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_IQ4_XS] = {"iq4_xs", QK_K, 136, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_I8] = {"i8", 1, 1, false, false, QAI_TYPE_I8},
    [QAI_TYPE_I16] = {"i16", 1, 2, false, false, QAI_TYPE_I16},
    [QAI_TYPE_I32] = {"i32", 1, 4, false, false, QAI_TYPE_I32},
    [QAI_TYPE_I64] = {"i64", 1, 8, false, false, QAI_TYPE_I64},
    [QAI_TYPE_F64] = {"f64", 1, 8, false, false, QAI_TYPE_F64},
    [QAI_TYPE_IQ1_M] = {"iq1_m", QK_K, 56, true, false, QAI_TYPE_Q8_K},
    /* BF16 weights dot BF16 activations (vdpbf16ps on AVX512_BF16; the other
     * levels widen both to f32, which gives the same products). */
    [QAI_TYPE_BF16] = {"bf16", 1, 2, false, true, QAI_TYPE_BF16},
    [QAI_TYPE_TQ1_0] = {"tq1_0", QK_K, 54, true, false, QAI_TYPE_Q8_K},
    [QAI_TYPE_TQ2_0] = {"tq2_0", QK_K, 66, true, false, QAI_TYPE_Q8_K},
};

_Static_assert(sizeof(qai_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(qai_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(qai_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(qai_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(qai_block_q8_K) == 292, "q8_K block");

const qai_type_traits *qai_type_info(int type) {
    if (type < 0 || type >= QAI_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

size_t qai_row_size(qai_type type, int64_t n) {
    if (type == QAI_TYPE_Q8_0_R16) type = QAI_TYPE_Q8_0; /* same bytes, regrouped */
    if (type == QAI_TYPE_Q4_0_R16) type = QAI_TYPE_Q4_0;
    const qai_type_traits *t = qai_type_info(type);
    if (!t || n < 0) return 0;
    return (size_t)(n / t->block_size) * t->type_size;
}

size_t qai_matrix_size(qai_type type, int64_t rows, int64_t cols) {
    if (rows < 0) return 0;
    if (qai_type_is_r16(type)) rows = (rows + QAI_R16 - 1) / QAI_R16 * QAI_R16;
    return qai_row_size(type, cols) * (size_t)rows;
}

int qai_type_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < QAI_TYPE_COUNT; i++) {
        if (!traits[i].name) continue;
        const char *a = traits[i].name, *b = name;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return i;
    }
    return -1;
}
