/* Requests-per-minute limiting: one token bucket per API key id, in memory.
 *
 * Deliberately not in the store: a bucket changes on every request, and
 * writing it to disk would cost a transaction per request for a limit that
 * only needs to be roughly right. The consequences, stated in store.h: each
 * server process limits on its own (N replicas allow N times the rate), and a
 * restart refills every bucket. The daily token limit, which must survive
 * restarts, is persisted (apikey.c). */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "qai/store.h"

typedef struct {
    char *key; /* NULL = empty slot */
    double tokens;
    uint64_t last_ns;
} bucket;

struct qai_ratelimit {
    pthread_mutex_t mu;
    bucket *slots;
    size_t cap, used; /* cap is a power of two */
};

qai_ratelimit *qai_ratelimit_new(void) {
    qai_ratelimit *rl = qai_calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->cap = 64;
    rl->slots = qai_calloc(rl->cap, sizeof *rl->slots);
    if (!rl->slots) {
        qai_free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void qai_ratelimit_free(qai_ratelimit *rl) {
    if (!rl) return;
    for (size_t i = 0; i < rl->cap; i++) qai_free(rl->slots[i].key);
    qai_free(rl->slots);
    pthread_mutex_destroy(&rl->mu);
    qai_free(rl);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot for key (existing or empty). */
static bucket *find(bucket *slots, size_t cap, const char *key) {
    size_t i = hash_str(key) & (cap - 1);
    while (slots[i].key && strcmp(slots[i].key, key)) i = (i + 1) & (cap - 1);
    return &slots[i];
}

static bool grow(qai_ratelimit *rl) {
    size_t cap = rl->cap * 2;
    bucket *slots = qai_calloc(cap, sizeof *slots);
    if (!slots) return false;
    for (size_t i = 0; i < rl->cap; i++)
        if (rl->slots[i].key) *find(slots, cap, rl->slots[i].key) = rl->slots[i];
    qai_free(rl->slots);
    rl->slots = slots;
    rl->cap = cap;
    return true;
}

bool qai_ratelimit_take(qai_ratelimit *rl, const char *key_id, int64_t rate_per_min, uint64_t now_ns,
                        int64_t *retry_after_s) {
    if (retry_after_s) *retry_after_s = 0;
    if (rate_per_min <= 0 || !key_id) return true;
    double cap = (double)rate_per_min;
    double per_ns = cap / 60e9;
    pthread_mutex_lock(&rl->mu);
    bucket *b = find(rl->slots, rl->cap, key_id);
    if (!b->key) {
        /* keep the table at most half full; if memory runs out, allow (fail open
         * on the limiter rather than refuse every request) */
        if (2 * (rl->used + 1) > rl->cap && (!grow(rl) || !(b = find(rl->slots, rl->cap, key_id)))) {
            pthread_mutex_unlock(&rl->mu);
            return true;
        }
        b->key = qai_strdup(key_id);
        if (!b->key) {
            pthread_mutex_unlock(&rl->mu);
            return true;
        }
        b->tokens = cap;
        b->last_ns = now_ns;
        rl->used++;
    }
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * per_ns;
        b->last_ns = now_ns;
    }
    if (b->tokens > cap) b->tokens = cap;
    bool ok = b->tokens >= 1.0;
    if (ok) b->tokens -= 1.0;
    else if (retry_after_s) {
        double secs = (1.0 - b->tokens) / per_ns / 1e9;
        int64_t r = (int64_t)ceil(secs - 1e-9);
        *retry_after_s = r < 1 ? 1 : r;
    }
    pthread_mutex_unlock(&rl->mu);
    return ok;
}
