#!/usr/bin/env bash
# bench/ann.sh [BUILD] — qai's HNSW and flat index next to hnswlib and FAISS
# (Debian's python3-hnswlib, python3-faiss) on the SAME vectors: bench_hnsw
# generates each set (Gaussian mixture, seeded), writes it and the exact
# ground truth (.fbin/.ibin in $ANN_DIR), and measures qai; peer_ann.py reads
# those files and measures the peers the same way. Runs are interleaved round
# by round (the order alternates), then a summary prints, per set: build
# time, memory (RSS growth), queries/s at recall@10 >= 0.95 and >= 0.99 (the
# best ef of the sweep reaching it; one thread, queries one after another),
# and single-query brute force; with ratios qai / peer.
#
# Variables: QUICK=1 (20k x 128 and 10k x 384, one round), ROUNDS (2),
# THREADS (build threads, 2), SETS ("200000:128 100000:384"), M (16),
# EFC (200), INT8=1 (also measure qai's int8 mode), FAISS_ROUNDS (rounds that
# include FAISS, whose HNSW build is slow: 1), ANN_DIR (/tmp/qai-ann).
set -eu
BUILD=${1:-build}
BENCH=$BUILD/bench/bench_hnsw
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${ANN_DIR:-/tmp/qai-ann}
THREADS=${THREADS:-2}
M=${M:-16}
EFC=${EFC:-200}
if [ "${QUICK:-0}" = 1 ]; then
  SETS=${SETS:-"20000:128 10000:384"}
  ROUNDS=${ROUNDS:-1}
else
  SETS=${SETS:-"200000:128 100000:384"}
  ROUNDS=${ROUNDS:-2}
fi
unset OPENBLAS_CORETYPE
mkdir -p "$DIR"
[ -x "$BENCH" ] || { echo "ann.sh: $BENCH not built" >&2; exit 1; }
$PY -c "import hnswlib, faiss, numpy" 2>/dev/null || { echo "ann.sh: needs python3-hnswlib python3-faiss python3-numpy" >&2; exit 1; }

for set in $SETS; do
  n=${set%:*}
  d=${set#*:}
  out=$DIR/results-$n-$d.jsonl
  : > "$out"
  echo "== $n x $d (M $M, efConstruction $EFC, $THREADS build threads) -> $out"
  for r in $(seq "$ROUNDS"); do
    flat=--no-flat
    [ "$r" = 1 ] && flat=
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "   round $r (load $load)"
    run_qai() { "$BENCH" --n "$n" --dim "$d" --M "$M" --efc "$EFC" --threads "$THREADS" --dir "$DIR" $flat >> "$out"; }
    libs=hnswlib
    [ "$r" -le "${FAISS_ROUNDS:-1}" ] && libs=hnswlib,faiss
    run_peer() { $PY "$HERE/peer_ann.py" --dir "$DIR" --n "$n" --dim "$d" --M "$M" --efc "$EFC" --threads "$THREADS" --libs $libs $flat >> "$out"; }
    if [ $((r % 2)) = 1 ]; then run_qai; run_peer; else run_peer; run_qai; fi
    if [ "${INT8:-0}" = 1 ]; then
      "$BENCH" --n "$n" --dim "$d" --M "$M" --efc "$EFC" --threads "$THREADS" --dir "$DIR" --no-flat --int8 >> "$out"
    fi
    echo "{\"what\":\"load\",\"round\":$r,\"load\":$load}" >> "$out"
  done
  $PY - "$out" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
libs = []
for r in rows:
    if r.get("lib") and r["lib"] not in libs: libs.append(r["lib"])
def med(v): return st.median(v) if v else float("nan")
def at_recall(lib, target, key):
    # per run (a run = consecutive query rows after a build row): best qps with recall >= target
    best, runs = None, []
    for r in rows:
        if r.get("lib") != lib: continue
        if r["what"] == "build":
            if best is not None: runs.append(best)
            best = 0.0
        elif r["what"] == "query" and r["recall"] >= target:
            best = max(best or 0.0, r[key])
    if best is not None: runs.append(best)
    runs = [x for x in runs if x > 0]
    return med(runs)
res = {}
print("   %-10s %9s %8s %12s %12s %12s %12s" % ("lib", "build s", "RSS MB", "qps@0.95", "qps@0.99", "cpu-qps@0.95", "cpu-qps@0.99"))
for lib in libs:
    b = [r for r in rows if r.get("lib") == lib and r["what"] == "build"]
    if not b: continue
    res[lib] = dict(build=med([x["seconds"] for x in b]), rss=med([x["rss_mb"] for x in b]),
                    q95=at_recall(lib, 0.95, "qps"), q99=at_recall(lib, 0.99, "qps"),
                    c95=at_recall(lib, 0.95, "cpu_qps"), c99=at_recall(lib, 0.99, "cpu_qps"))
    x = res[lib]
    print("   %-10s %9.1f %8.1f %12.0f %12.0f %12.0f %12.0f" % (lib, x["build"], x["rss"], x["q95"], x["q99"], x["c95"], x["c99"]))
for peer in ("hnswlib", "faiss"):
    for mine in [l for l in res if l.startswith("qai")]:
        if peer in res:
            a, p = res[mine], res[peer]
            print("   %s / %s: qps@0.95 %.2fx, qps@0.99 %.2fx (cpu time: %.2fx, %.2fx), build time %.2fx, memory %.2fx"
                  % (mine, peer, a["q95"] / p["q95"], a["q99"] / p["q99"], a["c95"] / p["c95"], a["c99"] / p["c99"],
                     a["build"] / p["build"], a["rss"] / p["rss"]))
fl = {}
for r in rows:
    if r.get("what") == "flat": fl.setdefault((r["lib"], r["threads"]), []).append(r["qps"])
for (lib, th), v in sorted(fl.items()):
    print("   brute force %-8s %d thread(s): %8.0f queries/s" % (lib, th, med(v)))
for th in sorted({t for (_, t) in fl}):
    for mine in ("qai", "qai-int8"):
        if (mine, th) in fl and ("faiss", th) in fl:
            print("   brute force %s / faiss, %d thread(s): %.2fx" % (mine, th, med(fl[(mine, th)]) / med(fl[("faiss", th)])))
bad = sum(r.get("mismatches", 0) for r in rows if r.get("what") == "flat")
print("   brute force answers differing from the ground truth: %d" % bad)
PY
done
