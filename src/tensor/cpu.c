/*
 * CPU feature detection (cpuid + xgetbv) and the kernel dispatch table: for
 * each ISA level a table of kernels per weight type, built once; the active
 * level can be lowered for tests and benchmarks.
 *
 * What it deliberately does not do: detect anything but x86-64 (other CPUs get
 * the scalar kernels).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tensor/quant.h"

static struct {
    bool avx2, fma, f16c, avx512, vnni, bf16, vbmi;
} cpu;

static qai_isa best_isa = QAI_ISA_SCALAR;
static qai_isa cur_isa = QAI_ISA_SCALAR;
static qai_kernel tables[3][QAI_TYPE_COUNT];
static qai_kernel r16_tables[3][2]; /* QAI_TYPE_Q8_0_R16, QAI_TYPE_Q4_0_R16 */
static pthread_once_t once = PTHREAD_ONCE_INIT;

bool qai_cpu_has_avx512_bf16(void);

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = c & (1u << 27);
    cpu.fma = c & (1u << 12);
    cpu.f16c = c & (1u << 29);
    bool avx = c & (1u << 28);
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool os_avx = (xcr0 & 6) == 6;
    bool os_avx512 = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    cpu.avx2 = avx && os_avx && (b & (1u << 5)) && cpu.fma && cpu.f16c;
    bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    cpu.vnni = c & (1u << 11);
    cpu.vbmi = c & (1u << 1);
    cpu.avx512 = cpu.avx2 && os_avx512 && f && dq && bw && vl && cpu.vnni;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    cpu.bf16 = cpu.avx512 && (a1 & (1u << 5));
}
#else
static void detect(void) {}
#endif

static void init(void) {
    detect();
    best_isa = cpu.avx512 ? QAI_ISA_AVX512 : cpu.avx2 ? QAI_ISA_AVX2 : QAI_ISA_SCALAR;
    qai_kernels_fill_scalar(tables[QAI_ISA_SCALAR]);
    memcpy(tables[QAI_ISA_AVX2], tables[QAI_ISA_SCALAR], sizeof tables[0]);
    if (cpu.avx2) qai_kernels_fill_avx2(tables[QAI_ISA_AVX2]);
    memcpy(tables[QAI_ISA_AVX512], tables[QAI_ISA_AVX2], sizeof tables[0]);
    if (cpu.avx512) qai_kernels_fill_avx512(tables[QAI_ISA_AVX512], cpu.bf16);
    qai_kernels_fill_r16_scalar(r16_tables[QAI_ISA_SCALAR]);
    memcpy(r16_tables[QAI_ISA_AVX2], r16_tables[QAI_ISA_SCALAR], sizeof r16_tables[0]);
    if (cpu.avx2) qai_kernels_fill_r16_avx2(r16_tables[QAI_ISA_AVX2]);
    memcpy(r16_tables[QAI_ISA_AVX512], r16_tables[QAI_ISA_AVX2], sizeof r16_tables[0]);
    if (cpu.avx512) qai_kernels_fill_r16_avx512(r16_tables[QAI_ISA_AVX512]);
    cur_isa = best_isa;
}

static inline void ensure_init(void) { pthread_once(&once, init); }

bool qai_cpu_has_avx512_bf16(void) {
    ensure_init();
    return cpu.bf16;
}

bool qai_kernels_bf16(void) {
    ensure_init();
    return cpu.bf16 && cur_isa == QAI_ISA_AVX512;
}

qai_isa qai_cpu_isa(void) {
    ensure_init();
    return best_isa;
}

qai_isa qai_kernels_set_isa(qai_isa isa) {
    ensure_init();
    if ((int)isa < 0) isa = QAI_ISA_SCALAR;
    cur_isa = isa > best_isa ? best_isa : isa;
    return cur_isa;
}

qai_isa qai_kernels_isa(void) {
    ensure_init();
    return cur_isa;
}

const char *qai_kernels_describe(void) {
    ensure_init();
    switch (cur_isa) {
    case QAI_ISA_AVX512: return cpu.bf16 ? "avx512 (vnni, bf16)" : "avx512 (vnni)";
    case QAI_ISA_AVX2: return "avx2 (fma, f16c)";
    default: return "scalar";
    }
}

const qai_kernel *qai_kernel_for(qai_type wtype) {
    ensure_init();
    if (qai_type_is_r16(wtype)) return &r16_tables[cur_isa][wtype == QAI_TYPE_Q4_0_R16];
    if ((unsigned)wtype >= QAI_TYPE_COUNT) return NULL;
    const qai_kernel *k = &tables[cur_isa][wtype];
    return k->vec_dot ? k : NULL;
}

void qai_quantize_row_for_dot(qai_type wtype, const float *x, void *dst, int64_t n) {
    const qai_kernel *k = qai_kernel_for(wtype);
    if (k && k->vec_dot) k->from_float(x, dst, n); /* not the R16 types: their activations are laid out per matrix */
}

float qai_vec_dot(qai_type wtype, int64_t n, const void *w, const void *x) {
    const qai_kernel *k = qai_kernel_for(wtype);
    return k && k->vec_dot ? k->vec_dot(n, w, x) : 0.f;
}
