#!/usr/bin/env bash
# Serving benchmark: aggregate generation tokens/s of `qai serve` with 1, 4 and
# 8 concurrent streaming clients and p50/p95 time to first token, on a
# 110M-parameter Llama-shaped random model in Q8_0 — interleaved with llama.cpp's
# llama-server on the same file with the same number of parallel slots, the
# same context per slot and the same threads, when one is found
# (LLAMA_SERVER=path, default /tmp/llama.cpp/build/bin/llama-server).
#
# usage: bench/serve_bench.sh [BUILD]      (BUILD defaults to build)
# env: PARALLEL (8) slots, CTX (512) positions per slot, THREADS (2),
#      MAX_TOKENS (128) per request, REQUESTS (2) per client, ROUNDS (3),
#      PROMPT_WORDS (4) words per prompt (the random vocabulary makes about one token a byte),
#      STREAMS ("1 4 8"), QAI_BENCH_DIR (BUILD/bench-models), QAI_BIN (BUILD/bin/qai: the
#      qai binary to measure), QAI_ARGS (extra `qai serve` flags, e.g. "--kv-type f32")
set -eu
BUILD=${1:-build}
QAI=${QAI_BIN:-$BUILD/bin/qai}
QAI_ARGS=${QAI_ARGS:-}
CLIENT=$BUILD/bench/bench_serve_client
DIR=${QAI_BENCH_DIR:-$BUILD/bench-models}
LLAMA_SERVER=${LLAMA_SERVER:-/tmp/llama.cpp/build/bin/llama-server}
PARALLEL=${PARALLEL:-8}
CTX=${CTX:-512}
THREADS=${THREADS:-2}
MAX_TOKENS=${MAX_TOKENS:-128}
REQUESTS=${REQUESTS:-2}
PROMPT_WORDS=${PROMPT_WORDS:-4}
ROUNDS=${ROUNDS:-3}
STREAMS=${STREAMS:-"1 4 8"}
QPORT=${QPORT:-18431}
LPORT=${LPORT:-18432}
PY=/usr/bin/python3
unset OPENBLAS_CORETYPE
mkdir -p "$DIR"

f=$DIR/m110-q8_0-serve.gguf
if [ ! -f "$f" ]; then
  "$QAI" init --arch llama --dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32000 --type f16 --seed 1 "$DIR/m110-f16-serve.gguf"
  "$QAI" quantize "$DIR/m110-f16-serve.gguf" "$f" q8_0 --quiet
  rm -f "$DIR/m110-f16-serve.gguf"
fi

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_health() { # port
  for _ in $(seq 1 600); do
    if $PY - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).read()
PY
    sleep 0.2
  done
  echo "serve_bench: the server on port $1 did not come up" >&2; return 1
}

echo "== machine"; uptime; nproc
echo "== model $f ($(du -h "$f" | cut -f1)), $PARALLEL slots x $CTX positions, $THREADS threads, $MAX_TOKENS tokens per request"
echo "== qai: $QAI $QAI_ARGS"
"$QAI" serve -m "$f" --port "$QPORT" --parallel "$PARALLEL" --ctx "$CTX" --threads "$THREADS" --max-queue 256 --quiet $QAI_ARGS 2>"$DIR/qai-serve.log" &
pids="$pids $!"
servers="qai"
if [ -x "$LLAMA_SERVER" ]; then
  "$LLAMA_SERVER" -m "$f" --host 127.0.0.1 --port "$LPORT" -np "$PARALLEL" -c $((PARALLEL * CTX)) -t "$THREADS" -tb "$THREADS" \
    >"$DIR/llama-server.log" 2>&1 &
  pids="$pids $!"
  servers="qai llama"
else
  echo "(no llama-server at $LLAMA_SERVER: measuring qai only)"
fi
wait_health "$QPORT"
[ "$servers" = "qai llama" ] && wait_health "$LPORT"

out=$DIR/serve_bench.jsonl
: > "$out"
port_of() { [ "$1" = qai ] && echo "$QPORT" || echo "$LPORT"; }
for s in $servers; do "$CLIENT" --port "$(port_of $s)" --clients 1 --requests 1 --max-tokens 16 --label warmup >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
  for n in $STREAMS; do
    for s in $servers; do
      "$CLIENT" --port "$(port_of $s)" --clients "$n" --requests "$REQUESTS" --max-tokens "$MAX_TOKENS" --prompt-words "$PROMPT_WORDS" --label "$s" | tee -a "$out"
    done
  done
done

$PY - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault((r["label"], r["clients"]), []).append(r)
servers = sorted({k[0] for k in by}, key=lambda s: s != "qai")
streams = sorted({k[1] for k in by})
print("\n== aggregate generation tokens/s (median of rounds), p50/p95 time to first token (ms)")
print("| streams | " + " | ".join(f"{s} tok/s | {s} TTFT p50/p95" for s in servers) + (" | qai / llama |" if "llama" in servers else " |"))
print("|---:|" + "---:|---:|" * len(servers) + ("---:|" if "llama" in servers else ""))
med = {}
for n in streams:
    cells = []
    for s in servers:
        rs = by.get((s, n), [])
        t = statistics.median(r["agg_tok_s"] for r in rs)
        med[(s, n)] = t
        cells.append(f"{t:.1f} | {statistics.median(r['ttft_p50_ms'] for r in rs):.0f} / {statistics.median(r['ttft_p95_ms'] for r in rs):.0f}")
    ratio = f" | {med[('qai', n)] / med[('llama', n)]:.2f} |" if "llama" in servers else " |"
    print(f"| {n} | " + " | ".join(cells) + ratio)
if (("qai", 1) in med) and (("qai", max(streams)) in med):
    print(f"\nqai: {max(streams)} streams / 1 stream = {med[('qai', max(streams))] / med[('qai', 1)]:.2f}x")
if any(r["failures"] for r in rows):
    print("some requests failed:", [r for r in rows if r["failures"]])
PY
