/*
 * minhash.c — MinHash signatures over word shingles and an LSH banding index
 * for near-duplicate detection.
 *
 * Normalization: the text is NFKC-casefolded with utf8proc (invalid UTF-8 is
 * repaired to U+FFFD first); a word is a maximal run of code points of the
 * letter (L*), mark (M*) or number (N*) categories. Shingles are
 * shingle_words consecutive words; each shingle is hashed with 64-bit FNV-1a
 * over its words' UTF-8 bytes joined by one space. Slot i of the signature is
 * the minimum over shingles x of (splitmix64(x ^ seed_i) >> 32), where seed_i
 * are successive outputs of splitmix64 started at 0x9E3779B97F4A7C15. The
 * signature is deterministic across machines and runs.
 *
 * LSH: the 128 slots are cut into b bands of r rows; two signatures become
 * candidates when all r slots of some band agree, and a candidate is accepted
 * when the fraction of equal slots over all 128 is >= threshold. r is the
 * largest value for which a pair at exactly the threshold is a candidate with
 * probability >= 0.99 (1 - (1 - t^r)^b with b = floor(128 / r)); for t = 0.8
 * that is r = 6, b = 21.
 */
#include "ingest_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static inline uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t seeds[QAI_MINHASH_K];
static void init_seeds(void) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < QAI_MINHASH_K; i++) {
        s = splitmix64(s);
        seeds[i] = s;
    }
}

#define FNV_OFF 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* The hot loop: 128 independent integer mixes, vectorized by the compiler; the clones give the
 * same bits on every ISA (integer arithmetic), the loader picks one at start-up. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void sig_add(qai_minhash *out, uint64_t x) {
    for (int i = 0; i < QAI_MINHASH_K; i++) {
        uint32_t h = (uint32_t)(splitmix64(x ^ seeds[i]) >> 32);
        if (h < out->h[i]) out->h[i] = h;
    }
}

static bool word_cp(utf8proc_int32_t cp) {
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

void qai_minhash_text(const char *text, size_t n, int shingle_words, qai_minhash *out) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_seeds);
    for (int i = 0; i < QAI_MINHASH_K; i++) out->h[i] = UINT32_MAX;
    if (shingle_words <= 0) shingle_words = 5;
    if (shingle_words > 64) shingle_words = 64;
    if (!text || !n) return;
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t nl;
    unsigned char any = 0;
    for (size_t i = 0; i < n; i++) any |= (unsigned char)text[i];
    if (any < 0x80) { /* ASCII: NFKC casefolding is lowercasing */
        if (!(norm = malloc(n))) return;
        for (size_t i = 0; i < n; i++) norm[i] = (utf8proc_uint8_t)(text[i] >= 'A' && text[i] <= 'Z' ? text[i] + 32 : text[i]);
        nl = (utf8proc_ssize_t)n;
    } else
        nl = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)n, &norm,
                          UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
    char *clean = NULL;
    if (nl < 0) { /* invalid UTF-8: repair and retry */
        size_t cl, bad;
        clean = qai_utf8_clean(text, n, &cl, &bad);
        if (!clean) return;
        nl = utf8proc_map((const utf8proc_uint8_t *)clean, (utf8proc_ssize_t)cl, &norm,
                          UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
        qai_free(clean);
        if (nl < 0) return;
    }
    /* ring of the last shingle_words word spans */
    size_t ws[64], we[64];
    int nw = 0; /* words seen */
    const utf8proc_uint8_t *s = norm;
    utf8proc_ssize_t i = 0;
    while (i < nl) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = s[i] < 0x80 ? (cp = s[i], 1) : utf8proc_iterate(s + i, nl - i, &cp);
        if (l <= 0) {
            i++;
            continue;
        }
        if (!word_cp(cp)) {
            i += l;
            continue;
        }
        size_t a = (size_t)i;
        while (i < nl) {
            l = s[i] < 0x80 ? (cp = s[i], 1) : utf8proc_iterate(s + i, nl - i, &cp);
            if (l <= 0 || !word_cp(cp)) break;
            i += l;
        }
        ws[nw % shingle_words] = a;
        we[nw % shingle_words] = (size_t)i;
        nw++;
        if (nw >= shingle_words) {
            uint64_t h = FNV_OFF;
            for (int k = 0; k < shingle_words; k++) {
                int idx = (nw - shingle_words + k) % shingle_words;
                if (k) h = (h ^ ' ') * FNV_PRIME;
                for (size_t b = ws[idx]; b < we[idx]; b++) h = (h ^ s[b]) * FNV_PRIME;
            }
            sig_add(out, h);
        }
    }
    if (nw > 0 && nw < shingle_words) { /* one shingle of all words */
        uint64_t h = FNV_OFF;
        for (int k = 0; k < nw; k++) {
            if (k) h = (h ^ ' ') * FNV_PRIME;
            for (size_t b = ws[k]; b < we[k]; b++) h = (h ^ s[b]) * FNV_PRIME;
        }
        sig_add(out, h);
    }
    free(norm);
}

double qai_minhash_jaccard(const qai_minhash *a, const qai_minhash *b) {
    int eq = 0;
    for (int i = 0; i < QAI_MINHASH_K; i++) eq += a->h[i] == b->h[i];
    return (double)eq / QAI_MINHASH_K;
}

/* ---- LSH ------------------------------------------------------------------------ */

typedef struct {
    uint64_t key;  /* band hash mixed with the band number */
    uint32_t sig;  /* index into sigs */
    int32_t next;  /* next entry in the bucket chain, -1 end */
} lsh_entry;

struct qai_lsh {
    double t;
    int bands, rows;
    qai_minhash *sigs;
    uint64_t *ids;
    size_t n, cap;
    int32_t *heads;       /* bucket heads, size nb (power of 2) */
    size_t nb;
    lsh_entry *ent;
    size_t ne, ecap;
};

qai_status qai_lsh_new(double threshold, qai_lsh **out) {
    *out = NULL;
    if (!(threshold > 0.0 && threshold <= 1.0))
        return qai_error(QAI_ERR_ARG, "lsh: threshold must be in (0, 1] (got %g)", threshold);
    qai_lsh *l = qai_calloc(1, sizeof *l);
    if (!l) return QAI_ERR_NOMEM;
    l->t = threshold;
    l->rows = 1;
    l->bands = QAI_MINHASH_K;
    for (int r = QAI_MINHASH_K; r >= 1; r--) {
        int b = QAI_MINHASH_K / r;
        double p = 1.0 - pow(1.0 - pow(threshold, r), b);
        if (p >= 0.99) {
            l->rows = r;
            l->bands = b;
            break;
        }
    }
    *out = l;
    return QAI_OK;
}

void qai_lsh_params(const qai_lsh *l, int *bands, int *rows) {
    if (bands) *bands = l->bands;
    if (rows) *rows = l->rows;
}

size_t qai_lsh_count(const qai_lsh *l) { return l ? l->n : 0; }

static uint64_t band_key(const qai_lsh *l, const qai_minhash *m, int band) {
    uint64_t h = FNV_OFF ^ (uint64_t)band * 0x9E3779B97F4A7C15ull;
    for (int r = 0; r < l->rows; r++) h = splitmix64(h ^ m->h[band * l->rows + r]);
    return h;
}

static bool lsh_grow(qai_lsh *l) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        qai_minhash *ns = qai_realloc(l->sigs, nc * sizeof *ns);
        if (!ns) return false;
        l->sigs = ns;
        uint64_t *ni = qai_realloc(l->ids, nc * sizeof *ni);
        if (!ni) return false;
        l->ids = ni;
        l->cap = nc;
    }
    size_t need = l->ne + (size_t)l->bands;
    if (need > l->ecap) {
        size_t nc = l->ecap ? l->ecap * 2 : 1024;
        while (nc < need) nc *= 2;
        lsh_entry *ne = qai_realloc(l->ent, nc * sizeof *ne);
        if (!ne) return false;
        l->ent = ne;
        l->ecap = nc;
    }
    if (need * 2 > l->nb || l->nb > INT32_MAX) { /* rehash the heads, load <= 1/2 */
        size_t nb = l->nb ? l->nb : 1024;
        while (need * 2 > nb) nb *= 2;
        if (l->ne > INT32_MAX - (size_t)l->bands) return false;
        int32_t *nh = qai_malloc(nb * sizeof *nh);
        if (!nh) return false;
        for (size_t i = 0; i < nb; i++) nh[i] = -1;
        for (size_t e = 0; e < l->ne; e++) {
            size_t b = l->ent[e].key & (nb - 1);
            l->ent[e].next = nh[b];
            nh[b] = (int32_t)e;
        }
        qai_free(l->heads);
        l->heads = nh;
        l->nb = nb;
    }
    return true;
}

uint64_t qai_lsh_check_insert(qai_lsh *l, uint64_t id, const qai_minhash *m) {
    uint64_t keys[QAI_MINHASH_K];
    for (int b = 0; b < l->bands; b++) keys[b] = band_key(l, m, b);
    /* the best confirmed candidate */
    double best = -1;
    uint64_t best_id = UINT64_MAX;
    if (l->nb)
        for (int b = 0; b < l->bands; b++) {
            for (int32_t e = l->heads[keys[b] & (l->nb - 1)]; e >= 0; e = l->ent[e].next) {
                if (l->ent[e].key != keys[b]) continue;
                double j = qai_minhash_jaccard(m, &l->sigs[l->ent[e].sig]);
                if (j >= l->t && j > best) {
                    best = j;
                    best_id = l->ids[l->ent[e].sig];
                }
            }
        }
    if (best_id != UINT64_MAX) return best_id;
    if (!lsh_grow(l)) return UINT64_MAX;
    uint32_t si = (uint32_t)l->n;
    l->sigs[si] = *m;
    l->ids[si] = id;
    l->n++;
    for (int b = 0; b < l->bands; b++) {
        size_t bk = keys[b] & (l->nb - 1);
        l->ent[l->ne] = (lsh_entry){keys[b], si, l->heads[bk]};
        l->heads[bk] = (int32_t)l->ne;
        l->ne++;
    }
    return UINT64_MAX;
}

void qai_lsh_free(qai_lsh *l) {
    if (!l) return;
    qai_free(l->sigs);
    qai_free(l->ids);
    qai_free(l->heads);
    qai_free(l->ent);
    qai_free(l);
}
