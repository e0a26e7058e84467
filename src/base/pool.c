/* A persistent thread pool: workers spin for a short while after each job (so
 * the next op of a forward pass dispatches in about a microsecond) and then
 * sleep on a futex. The caller runs slice 0 itself, then spins briefly for the
 * others and sleeps too, so a machine with more runnable threads than cores
 * (a shared box) degrades gracefully instead of burning the time slices the
 * late workers need.
 *
 * Slices are claimed, not assigned: a job's slices 1..n-1 are taken from one
 * atomic word (the job's generation and the next slice), by the workers and,
 * once slice 0 is done, by the caller too. A worker that has lost its core to
 * another process therefore never holds a job up: the caller runs its slice
 * and the worker, when it runs again, finds nothing left of that job. (Before,
 * every pass waited for every worker: on a loaded 2-core box, 2 threads
 * decoded 10x slower than 1.) A worker touches the job's fn and arg only
 * under a claim, and the caller returns only when every claimed slice is
 * done, so a late worker never sees a finished job's memory. */
#include "qai/base.h"

#include <immintrin.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPIN_NS 1000000ull     /* a worker spins up to 1 ms for the next job */
#define WAIT_SPIN_NS 200000ull /* the caller spins up to 0.2 ms for the workers */
#define CLAIM_GRACE_NS 5000ull /* a slice nobody took this long after slice 0 is done: the caller runs it */

static void futex_wait(atomic_uint *addr, unsigned expected) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr) { syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0); }

struct qai_pool {
    int n;
    pthread_t *threads;
    qai_pool_fn fn;
    void *arg;
    atomic_uint gen;             /* bumped for every job; workers futex-wait on it */
    _Atomic uint64_t claim;      /* the current job: gen << 32 | its next unclaimed slice */
    atomic_uint done;            /* slices 1..n-1 of the current job finished; the caller futex-waits on it */
    atomic_int sleepers;         /* workers asleep on gen */
    atomic_bool caller_waiting;
    atomic_bool stop;
};

/* The next slice of job g, or -1 when g is over or fully claimed. */
static int claim_slice(qai_pool *pool, unsigned g) {
    uint64_t c = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
        if ((unsigned)(c >> 32) != g || (uint32_t)c >= (uint32_t)pool->n) return -1;
        if (atomic_compare_exchange_weak_explicit(&pool->claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire))
            return (int)(uint32_t)c;
    }
}

/* Runs slices of job g while any are left. */
static void run_slices(qai_pool *pool, unsigned g) {
    for (int s; (s = claim_slice(pool, g)) > 0;) {
        pool->fn(pool->arg, s, pool->n);
        if (atomic_fetch_add(&pool->done, 1) + 1 == (unsigned)pool->n - 1 && atomic_load(&pool->caller_waiting))
            futex_wake(&pool->done);
    }
}

static void *worker_main(void *p) {
    qai_pool *pool = p;
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
        run_slices(pool, seen);
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
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
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
    atomic_store(&pool->done, 0);
    const unsigned g = atomic_load(&pool->gen) + 1;
    atomic_store_explicit(&pool->claim, (uint64_t)g << 32 | 1, memory_order_release);
    atomic_store(&pool->gen, g);
    /* a worker that registered as a sleeper either sees the new gen before
     * waiting or is woken here (both sides use sequentially consistent atomics) */
    if (atomic_load(&pool->sleepers) > 0) futex_wake(&pool->gen);
    fn(arg, 0, pool->n);
    /* a worker on its core takes its slice within a microsecond; one that has
     * not after the grace is asleep or without a core: run what is left */
    uint64_t tg = 0;
    for (unsigned i = 0; (uint32_t)atomic_load_explicit(&pool->claim, memory_order_relaxed) < (uint32_t)pool->n; i++) {
        _mm_pause();
        if ((i & 63) == 0) {
            uint64_t now = qai_time_ns();
            if (!tg) tg = now;
            else if (now - tg > CLAIM_GRACE_NS) break;
        }
    }
    run_slices(pool, g);
    const unsigned all = (unsigned)pool->n - 1;
    uint64_t t0 = 0;
    for (unsigned i = 0; atomic_load(&pool->done) < all; i++) {
        _mm_pause();
        if ((i & 255) == 0) {
            uint64_t now = qai_time_ns();
            if (!t0) t0 = now;
            else if (now - t0 > WAIT_SPIN_NS) {
                atomic_store(&pool->caller_waiting, true);
                unsigned v;
                while ((v = atomic_load(&pool->done)) < all) futex_wait(&pool->done, v);
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
