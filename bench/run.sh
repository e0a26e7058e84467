#!/usr/bin/env bash
# make bench: kernel and tokenizer micro-benchmarks, memory bandwidth, then
# `qai bench` on random-weight Llama models of ~110M and 1.1B parameters in Q8_0
# and Q4_0 with 2 threads — interleaved with llama.cpp's llama-bench on the same
# files when one is found (LLAMA_BENCH=path, or llama-bench on PATH). Prints
# tokens/s of both and the ratio, plus generation as a share of the
# memory-bandwidth bound. Models are cached in $QAI_BENCH_DIR (default
# BUILD/bench-models). ROUNDS (default 3) interleaved rounds of REPS (default 3);
# MICRO=0 skips the micro-benchmarks. Then the peer comparisons named in
# SUITES (default "train tokenizer"; also "ann", "serve"): training against
# PyTorch, tokenizer training/encoding against SentencePiece, HNSW against
# hnswlib/FAISS (minutes), serving against llama-server.
set -eu
BUILD=${1:-build}
QAI=$BUILD/bin/qai
DIR=${QAI_BENCH_DIR:-$BUILD/bench-models}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
MODELS=${MODELS:-"m110-q8_0 m110-q4_0 tl1b-q8_0 tl1b-q4_0"}
PY=/usr/bin/python3
mkdir -p "$DIR"
LLAMA_BENCH=${LLAMA_BENCH:-$(command -v llama-bench || true)}
[ -z "$LLAMA_BENCH" ] && [ -x /tmp/llama.cpp/build/bin/llama-bench ] && LLAMA_BENCH=/tmp/llama.cpp/build/bin/llama-bench
unset OPENBLAS_CORETYPE

echo "== machine"; uptime; nproc
if [ "${MICRO:-1}" = 1 ]; then
  # the long ones run from their own scripts (SUITES below)
  for b in "$BUILD"/bench/bench_*; do
    case $(basename "$b") in bench_hnsw | bench_bundle | bench_serve_client | bench_tokenize_file) continue ;; esac
    [ -x "$b" ] && { echo "== $(basename "$b")"; "$b"; }
  done
fi

bw2=$("$BUILD/bench/bench_membw" | awk '/2 threads/ {print $(NF-1)}')
for m in $MODELS; do
  f=$DIR/$m.gguf
  if [ ! -f "$f" ]; then
    case $m in
      m110-*) shape="--dim 768 --layers 12 --heads 12 --ffn 2048 --vocab 32000" ;;
      tl1b-*) shape="--dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000" ;;
    esac
    "$QAI" init $shape --type "${m#*-}" --seed 1 "$f"
  fi
  echo "== $m ($(du -h "$f" | cut -f1))"
  : > "$DIR/$m.qai.json"; : > "$DIR/$m.llama.json"
  for r in $(seq "$ROUNDS"); do
    "$QAI" bench -m "$f" -t "$THREADS" -p 512 -n 128 -r "$REPS" --json >> "$DIR/$m.qai.json"
    [ -n "$LLAMA_BENCH" ] && "$LLAMA_BENCH" -m "$f" -t "$THREADS" -p 512 -n 128 -r "$REPS" -o json 2>/dev/null >> "$DIR/$m.llama.json"
  done
  $PY - "$DIR/$m.qai.json" "$DIR/$m.llama.json" "$bw2" "$m" <<'PY'
import json, sys, statistics as st
def load(p):
    txt = open(p).read().strip()
    if not txt: return []
    out, dec, i = [], json.JSONDecoder(), 0
    while i < len(txt):
        while i < len(txt) and txt[i] in " \n\r\t": i += 1
        if i >= len(txt): break
        obj, i = dec.raw_decode(txt, i); out += obj
    return out
q, l = load(sys.argv[1]), load(sys.argv[2])
bw = float(sys.argv[3]) if sys.argv[3] else 0
for kind in ("pp", "tg"):
    sel = lambda a: [o["avg_ts"] for o in a if (o["n_prompt"] > 0) == (kind == "pp")]
    qs, ls = sel(q), sel(l)
    line = f"{sys.argv[4]} {kind}: qai {st.mean(qs):.2f} tok/s (rounds {', '.join(f'{x:.1f}' for x in qs)})"
    if ls:
        line += f" | llama.cpp {st.mean(ls):.2f} tok/s (rounds {', '.join(f'{x:.1f}' for x in ls)}) | ratio {st.mean(qs)/st.mean(ls):.2f}"
    if kind == "tg" and bw and q and "model_weight_bytes" in q[0]:
        bound = bw * 1e9 / q[0]["model_weight_bytes"]
        line += f" | bandwidth bound {bound:.1f} tok/s, qai at {100*st.mean(qs)/bound:.0f}%"
    print(line)
PY
done

here=$(cd "$(dirname "$0")" && pwd)
for suite in ${SUITES:-train tokenizer}; do
  case $suite in
    train) echo "== training vs PyTorch"; "$here/train_vs_torch.sh" "$BUILD" ;;
    tokenizer) echo "== tokenizer vs SentencePiece"; "$here/tokenizer_vs_spm.sh" "$BUILD" ;;
    ann) echo "== HNSW vs hnswlib and FAISS"; "$here/ann.sh" "$BUILD" ;;
    serve) echo "== serving vs llama-server"; [ -x "$here/serve_bench.sh" ] && "$here/serve_bench.sh" "$BUILD" ;;
  esac
done
