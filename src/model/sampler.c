/* Token sampling: penalties over recent history, then greedy or the chain
 * top-k → top-p → min-p → temperature → draw (llama.cpp's order, so the same
 * flags mean the same thing). Candidates are ordered by (logit desc, id asc) so
 * ties break the same way everywhere; the draw uses qai_rng, so a seed
 * reproduces a run on any machine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qai/model.h"

typedef struct {
    int32_t id;
    float logit;
} cand;

struct qai_sampler {
    qai_sampler_params p;
    int n_vocab;
    qai_rng rng;
    cand *c;
    cand *tmp;       /* radix-sort scratch, n_vocab */
    double *weights; /* tempered weights of the kept candidates, n_vocab */          /* (V) */
    float *logits;    /* (V) penalized copy */
    int32_t *hist;    /* ring of recent tokens */
    int hist_cap, hist_n, hist_head;
    int32_t *counts;  /* (V) occurrences within the window */
};

qai_sampler_params qai_sampler_default_params(void) {
    qai_sampler_params p = {.temp = 0.8f,
                            .top_k = 40,
                            .top_p = 0.95f,
                            .min_p = 0.05f,
                            .repeat_penalty = 1.0f,
                            .repeat_last_n = 64,
                            .freq_penalty = 0,
                            .presence_penalty = 0,
                            .seed = 0};
    return p;
}

qai_sampler *qai_sampler_new(const qai_sampler_params *p, int n_vocab) {
    if (n_vocab <= 0) {
        qai_error(QAI_ERR_ARG, "sampler: vocabulary size must be positive");
        return NULL;
    }
    qai_sampler *s = qai_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = p ? *p : qai_sampler_default_params();
    s->n_vocab = n_vocab;
    s->hist_cap = s->p.repeat_last_n < 0 ? 1 << 20 : (s->p.repeat_last_n > 0 ? s->p.repeat_last_n : 1);
    s->c = qai_malloc((size_t)n_vocab * sizeof(cand));
    s->tmp = qai_malloc((size_t)n_vocab * sizeof(cand));
    s->weights = qai_malloc((size_t)n_vocab * sizeof(double));
    s->logits = qai_malloc((size_t)n_vocab * sizeof(float));
    s->counts = qai_calloc((size_t)n_vocab, sizeof(int32_t));
    s->hist = qai_malloc((size_t)s->hist_cap * sizeof(int32_t));
    if (!s->c || !s->tmp || !s->weights || !s->logits || !s->counts || !s->hist) {
        qai_sampler_free(s);
        return NULL;
    }
    qai_rng_seed(&s->rng, s->p.seed);
    return s;
}

void qai_sampler_free(qai_sampler *s) {
    if (!s) return;
    qai_free(s->c);
    qai_free(s->tmp);
    qai_free(s->weights);
    qai_free(s->logits);
    qai_free(s->counts);
    qai_free(s->hist);
    qai_free(s);
}

void qai_sampler_reset(qai_sampler *s) {
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof(int32_t));
    s->hist_n = s->hist_head = 0;
    qai_rng_seed(&s->rng, s->p.seed);
}

void qai_sampler_accept(qai_sampler *s, int32_t tok) {
    if (tok < 0 || tok >= s->n_vocab) return;
    if (s->hist_n == s->hist_cap) {
        int32_t old = s->hist[s->hist_head];
        s->counts[old]--;
        s->hist_n--;
        s->hist_head = (s->hist_head + 1) % s->hist_cap;
    }
    s->hist[(s->hist_head + s->hist_n) % s->hist_cap] = tok;
    s->hist_n++;
    s->counts[tok]++;
}

static bool cand_before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *x, const void *y) {
    const cand *a = x, *b = y;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* Restores the heap order of c[0..k) below r: the root is the worst kept. */
static void sift_down(cand *c, int k, int r) {
    for (;;) {
        int l = 2 * r + 1, w = r;
        if (l < k && cand_before(&c[w], &c[l])) w = l;
        if (l + 1 < k && cand_before(&c[w], &c[l + 1])) w = l + 1;
        if (w == r) return;
        cand t = c[r];
        c[r] = c[w];
        c[w] = t;
        r = w;
    }
}

/* A key that orders like cand_before: larger logits first (-0 counts as +0). */
static uint32_t desc_key(float logit) {
    uint32_t u;
    if (logit == 0) logit = 0; /* -0 -> +0 */
    memcpy(&u, &logit, sizeof u);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending order of the float */
    return ~u;                                     /* descending */
}

/* Sorts c[0..n) by cand_before: a stable LSD radix sort on the logit's key.
 * c must come in ascending id order (the sampler fills it so), so equal
 * logits stay in id order — the order qsort with cand_cmp gives, in a
 * fraction of its time on a 32k or 150k vocabulary. */
static void sort_cands(cand *c, cand *tmp, int n) {
    if (n < 512) {
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
        return;
    }
    cand *src = c, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        uint32_t count[257] = {0};
        for (int i = 0; i < n; i++) count[((desc_key(src[i].logit) >> shift) & 255) + 1]++;
        if (count[1 + ((desc_key(src[0].logit) >> shift) & 255)] == (uint32_t)n) continue; /* one bucket */
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        for (int i = 0; i < n; i++) dst[count[(desc_key(src[i].logit) >> shift) & 255]++] = src[i];
        cand *t = src;
        src = dst;
        dst = t;
    }
    if (src != c) memcpy(c, src, (size_t)n * sizeof *c);
}

/* Keeps the k best of c[0..n) in c[0..k), sorted, using a min-heap of size k. */
static int top_k(cand *c, cand *tmp, int n, int k) {
    if (k <= 0 || k >= n) {
        sort_cands(c, tmp, n);
        return n;
    }
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(c, k, i);
    for (int i = k; i < n; i++) {
        if (!cand_before(&c[i], &c[0])) continue;
        c[0] = c[i];
        sift_down(c, k, 0);
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
    return k;
}

int32_t qai_sampler_sample(qai_sampler *s, const float *logits_in) {
    const int V = s->n_vocab;
    const qai_sampler_params *p = &s->p;
    const float *logits = logits_in;
    bool penalize = s->hist_n > 0 && (p->repeat_penalty != 1.0f || p->freq_penalty != 0 || p->presence_penalty != 0);
    if (penalize) {
        memcpy(s->logits, logits_in, (size_t)V * sizeof(float));
        for (int i = 0; i < s->hist_n; i++) {
            int32_t t = s->hist[(s->hist_head + i) % s->hist_cap];
            if (s->counts[t] <= 0) continue;
            float *l = &s->logits[t];
            if (p->repeat_penalty != 1.0f) *l = *l > 0 ? *l / p->repeat_penalty : *l * p->repeat_penalty;
            *l -= (float)s->counts[t] * p->freq_penalty + p->presence_penalty;
            s->counts[t] = -s->counts[t]; /* mark done; restored below */
        }
        for (int i = 0; i < s->hist_n; i++) {
            int32_t t = s->hist[(s->hist_head + i) % s->hist_cap];
            if (s->counts[t] < 0) s->counts[t] = -s->counts[t];
        }
        logits = s->logits;
    }
    if (p->temp <= 0) {
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    /* masked tokens (-inf, e.g. by a grammar) have probability 0 whatever
     * the filters: leave them out (all masked: every token stays) */
    int n = 0;
    for (int i = 0; i < V; i++)
        if (logits[i] != -INFINITY) s->c[n++] = (cand){i, logits[i]};
    if (n == 0)
        for (int i = 0; i < V; i++) s->c[n++] = (cand){i, logits[i]};
    n = top_k(s->c, s->tmp, n, p->top_k);
    /* probabilities before temperature, for top-p and min-p */
    float mx = s->c[0].logit;
    if (p->top_p < 1.0f) {
        double sum = 0, cum = 0;
        for (int i = 0; i < n; i++) sum += exp((double)(s->c[i].logit - mx));
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += exp((double)(s->c[i].logit - mx)) / sum;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0) {
        /* relative to the best token: p_i >= min_p * p_max  <=>  logit_i >= mx + log(min_p) */
        float thr = mx + logf(p->min_p);
        int keep = 1;
        while (keep < n && s->c[keep].logit >= thr) keep++;
        n = keep;
    }
    /* the tempered weights, computed once for the total and the walk */
    double total = 0, *w = s->weights;
    for (int i = 0; i < n; i++) total += w[i] = exp((double)(s->c[i].logit - mx) / p->temp);
    double r = (double)qai_rng_float(&s->rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += w[i];
        if (r < acc) return s->c[i].id;
    }
    return s->c[n - 1].id;
}
