/* A persistent thread pool: workers spin for a short while after each job (so
 * the next op of a forward pass dispatches in about a microsecond) and then
 * sleep on a futex. The caller runs slice 0 itself, then spins briefly for the
 * others and sleeps too, so a machine with more runnable threads than cores
 * (a shared box) degrades gracefully instead of burning the time slices the
 * late workers need. */
#include "qai/base.h"

#include <immintrin.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPIN_NS 1000000ull     /* a worker spins up to 1 ms for the next job */
#define WAIT_SPIN_NS 200000ull /* the caller spins up to 0.2 ms for the workers */

static void futex_wait(atomic_uint *addr, unsigned expected) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr) { syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0); }

struct qai_pool {
    int n;
    pthread_t *threads;
    qai_pool_fn fn;
    void *arg;
    atomic_uint gen;       /* bumped for every job; workers futex-wait on it */
    atomic_uint pending;   /* workers still running the current job; the caller futex-waits on it */
    atomic_int sleepers;   /* workers asleep on gen */
    atomic_bool caller_waiting;
    atomic_bool stop;
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
                    atomic_fetch_add(&pool->sleepers, 1);
                    while (atomic_load(&pool->gen) == seen) futex_wait(&pool->gen, seen);
                    atomic_fetch_sub(&pool->sleepers, 1);
                    break;
                }
            }
        }
        seen = atomic_load(&pool->gen);
        if (atomic_load(&pool->stop)) return NULL;
        pool->fn(pool->arg, ith, pool->n);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->caller_waiting)) futex_wake(&pool->pending);
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


void qai_pool_run(qai_pool *pool, qai_pool_fn fn, void *arg) {
    if (!pool || pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, (unsigned)pool->n - 1);
    atomic_fetch_add(&pool->gen, 1);
    /* a worker that registered as a sleeper either sees the new gen before
     * waiting or is woken here (both sides use sequentially consistent atomics) */
    if (atomic_load(&pool->sleepers) > 0) futex_wake(&pool->gen);
    fn(arg, 0, pool->n);
    uint64_t t0 = 0;
    for (unsigned i = 0; atomic_load(&pool->pending) > 0; i++) {
        _mm_pause();
        if ((i & 255) == 0) {
            uint64_t now = qai_time_ns();
            if (!t0) t0 = now;
            else if (now - t0 > WAIT_SPIN_NS) {
                atomic_store(&pool->caller_waiting, true);
                unsigned v;
                while ((v = atomic_load(&pool->pending)) > 0) futex_wait(&pool->pending, v);
                atomic_store(&pool->caller_waiting, false);
                break;
            }
        }
    }
}

void qai_pool_free(qai_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->gen, 1);
    futex_wake(&pool->gen);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    qai_free(pool->threads);
    qai_free(pool);
}
