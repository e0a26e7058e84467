#!/usr/bin/python3
"""peer_ann.py — hnswlib and FAISS (IndexHNSWFlat, IndexFlatL2) on the files
bench_hnsw wrote (base/query .fbin, gt .ibin), measured the way bench_hnsw
measures qai: build on THREADS threads, memory as the growth of the resident
set across the build, then all queries on one thread (one batch call, so Python's
per-call overhead is not counted against the peers) for each ef of the sweep (recall@10 against the same ground truth), and single-query brute
force with IndexFlatL2. Prints one JSON object per line.

  /usr/bin/python3 bench/peer_ann.py --dir DIR --n N --dim D [--M 16] [--efc 200]
      [--threads 2] [--ef 10,12,...] [--libs hnswlib,faiss] [--no-flat]
"""
import argparse, json, os, sys, time
import numpy as np


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576.0


def fbin(path):
    n, d = np.fromfile(path, dtype=np.int32, count=2)
    return np.fromfile(path, dtype=np.float32, offset=8).reshape(n, d)


def ibin(path):
    n, k = np.fromfile(path, dtype=np.int32, count=2)
    return np.fromfile(path, dtype=np.int32, offset=8).reshape(n, k)


def recall(found, gt):
    return float(np.mean([len(set(f) & set(g)) / len(g) for f, g in zip(found, gt)]))


def emit(**kw):
    print(json.dumps(kw), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/qai-ann")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ef", default="10,12,16,20,24,32,40,48,64,96,128,192,256")
    ap.add_argument("--libs", default="hnswlib,faiss")
    ap.add_argument("--no-flat", action="store_true")
    a = ap.parse_args()
    tag = "%d-%d" % (a.n, a.dim)
    base = fbin(os.path.join(a.dir, "base-%s.fbin" % tag))
    qs = fbin(os.path.join(a.dir, "query-%s.fbin" % tag))
    gt = ibin(os.path.join(a.dir, "gt-%s.ibin" % tag))
    k = gt.shape[1]
    efs = [int(x) for x in a.ef.split(",")]
    n, d = base.shape
    libs = a.libs.split(",")

    if "hnswlib" in libs:
        import hnswlib
        r0 = rss_mb()
        t0 = time.perf_counter()
        ix = hnswlib.Index(space="l2", dim=d)
        ix.init_index(max_elements=n, M=a.M, ef_construction=a.efc, random_seed=100)
        ix.set_num_threads(a.threads)
        ix.add_items(base, np.arange(n))
        build = time.perf_counter() - t0
        emit(lib="hnswlib", what="build", n=n, dim=d, M=a.M, efc=a.efc, threads=a.threads,
             seconds=round(build, 2), rss_mb=round(rss_mb() - r0, 1))
        for ef in efs:
            ix.set_ef(max(ef, k))
            # one thread, all queries in one call: hnswlib's C++ loop without
            # Python's per-call overhead (the fairest reading of its speed)
            t0, c0 = time.perf_counter(), time.thread_time()
            found, _ = ix.knn_query(qs, k=k, num_threads=1)
            s, cs = time.perf_counter() - t0, time.thread_time() - c0
            emit(lib="hnswlib", what="query", n=n, dim=d, ef=ef, recall=round(recall(found, gt), 4),
                 qps=round(len(qs) / s, 1), cpu_qps=round(len(qs) / cs, 1))
        del ix

    if "faiss" in libs or not a.no_flat:
        import faiss
    if "faiss" in libs:
        faiss.omp_set_num_threads(a.threads)
        r0 = rss_mb()
        t0 = time.perf_counter()
        ix = faiss.IndexHNSWFlat(d, a.M)
        ix.hnsw.efConstruction = a.efc
        ix.add(base)
        build = time.perf_counter() - t0
        emit(lib="faiss", what="build", n=n, dim=d, M=a.M, efc=a.efc, threads=a.threads,
             seconds=round(build, 2), rss_mb=round(rss_mb() - r0, 1))
        faiss.omp_set_num_threads(1)
        for ef in efs:
            ix.hnsw.efSearch = max(ef, k)
            t0, c0 = time.perf_counter(), time.thread_time()
            _, found = ix.search(qs, k)  # one OpenMP thread: queries one after another in C++
            s, cs = time.perf_counter() - t0, time.thread_time() - c0
            emit(lib="faiss", what="query", n=n, dim=d, ef=ef, recall=round(recall(found, gt), 4),
                 qps=round(len(qs) / s, 1), cpu_qps=round(len(qs) / cs, 1))
        del ix

    if not a.no_flat:
        ix = faiss.IndexFlatL2(d)
        ix.add(base)
        nbq = min(len(qs), 200)
        for th in sorted({1, a.threads}):
            faiss.omp_set_num_threads(th)
            t0, c0 = time.perf_counter(), time.thread_time()
            for q in qs[:nbq]:
                ix.search(q.reshape(1, -1), k)
            s, cs = time.perf_counter() - t0, time.thread_time() - c0
            emit(lib="faiss", what="flat", n=n, dim=d, threads=th, qps=round(nbq / s, 1),
                 cpu_qps=round(nbq / cs, 1) if th == 1 else 0.0)


if __name__ == "__main__":
    main()
