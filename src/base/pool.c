/* A persistent thread pool: workers spin for a short while after each job (so
 * the next op of a forward pass dispatches in about a microsecond) and then
 * sleep on a condition variable. The caller runs slice 0 itself. */
#include "qai/base.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define SPIN_NS 2000000ull /* spin up to 2 ms before sleeping */

struct qai_pool {
    int n;
    pthread_t *threads;
    qai_pool_fn fn;
    void *arg;
    atomic_uint gen;     /* bumped for every job */
    atomic_int pending;  /* workers still running the current job */
    atomic_int sleepers; /* workers waiting on cv */
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct {
    qai_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg *wa = p;
    qai_pool *pool = wa->pool;
    int ith = wa->ith;
    qai_free(wa);
    unsigned seen = 0;
    for (;;) {
        uint64_t t0 = 0;
        for (unsigned i = 0; atomic_load(&pool->gen) == seen; i++) {
            _mm_pause();
            if ((i & 255) == 0) {
                uint64_t now = qai_time_ns();
                if (!t0) t0 = now;
                else if (now - t0 > SPIN_NS) {
                    pthread_mutex_lock(&pool->mu);
                    atomic_fetch_add(&pool->sleepers, 1);
                    while (atomic_load(&pool->gen) == seen) pthread_cond_wait(&pool->cv, &pool->mu);
                    atomic_fetch_sub(&pool->sleepers, 1);
                    pthread_mutex_unlock(&pool->mu);
                    break;
                }
            }
        }
        seen = atomic_load(&pool->gen);
        if (atomic_load(&pool->stop)) return NULL;
        pool->fn(pool->arg, ith, pool->n);
        atomic_fetch_sub(&pool->pending, 1);
    }
}

int qai_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

qai_pool *qai_pool_new(int n_threads) {
    if (n_threads <= 0) n_threads = qai_cpu_count();
    if (n_threads > 512) n_threads = 512;
    qai_pool *pool = qai_calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->threads = qai_calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->threads) {
        qai_free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = qai_malloc(sizeof *wa);
        if (wa) {
            wa->pool = pool;
            wa->ith = i;
        }
        if (!wa || pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0) {
            qai_free(wa);
            pool->n = i; /* run with the threads we have */
            qai_log(QAI_LOG_WARN, "thread pool: could only start %d of %d threads", i, n_threads);
            break;
        }
    }
    return pool;
}

int qai_pool_size(const qai_pool *pool) { return pool ? pool->n : 1; }

static void wake(qai_pool *pool) {
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
}

void qai_pool_run(qai_pool *pool, qai_pool_fn fn, void *arg) {
    if (!pool || pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, pool->n - 1);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add(&pool->gen, 1);
    pthread_mutex_unlock(&pool->mu);
    wake(pool);
    fn(arg, 0, pool->n);
    while (atomic_load(&pool->pending) > 0) _mm_pause();
}

void qai_pool_free(qai_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, true);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add(&pool->gen, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    qai_free(pool->threads);
    qai_free(pool);
}
