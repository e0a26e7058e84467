#!/usr/bin/env bash
# Cross-check against llama.cpp (run only when QAI_LLAMACPP_DIR names a built
# llama.cpp checkout, e.g. QAI_LLAMACPP_DIR=/tmp/llama.cpp; skipped otherwise):
# on peaky random llama and qwen2 models, in F32 and quantized by qai and by
# llama-quantize, qai perplexity and llama-perplexity agree: within 0.1% in
# F32; within 1% when quantized (the two round activations to int8 slightly
# differently, and these deliberately chaotic models amplify a flipped rounding).
set -u
QAI=${QAI_BIN:?}
LC=${QAI_LLAMACPP_DIR:-}
if [ -z "$LC" ] || [ ! -x "$LC/build/bin/llama-perplexity" ]; then
  echo "QAI_LLAMACPP_DIR is not set to a built llama.cpp: skipped"
  echo "0 passed, 0 failed"
  exit 0
fi
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_llamacpp_ppl.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
yes "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big red ball." | head -n 120 > "$TMP/text.txt"
ppl_qai() { "$QAI" perplexity -m "$1" -f "$TMP/text.txt" --ctx 128 --json 2>/dev/null | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['ppl'])"; }
ppl_lc() { "$LC/build/bin/llama-perplexity" -m "$1" -f "$TMP/text.txt" -c 128 -b 128 2>&1 | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'; }
compare() { # FILE LABEL TOLERANCE
  a=$(ppl_qai "$1"); b=$(ppl_lc "$1")
  if /usr/bin/python3 -c "import sys; a,b=float('$a'),float('$b'); sys.exit(0 if abs(a-b)/b < $3 else 1)" 2>/dev/null; then
    pass=$((pass + 1)); echo "$2: qai $a, llama.cpp $b"
  else
    fail=$((fail + 1)); echo "FAIL: $2: qai '$a', llama.cpp '$b'" >&2
  fi
}
for arch in llama qwen2; do
  "$QAI" init --arch "$arch" --dim 256 --layers 2 --heads 4 --kv-heads 2 --ffn 512 --vocab 512 --seed 9 --std 0.15 "$TMP/$arch.gguf" 2>/dev/null
  compare "$TMP/$arch.gguf" "$arch f32" 1e-3
  for t in q8_0 q4_0 q4_k q6_k; do
    "$QAI" quantize "$TMP/$arch.gguf" "$TMP/$arch-$t.gguf" "$t" >/dev/null 2>&1
    compare "$TMP/$arch-$t.gguf" "$arch $t (qai quantize)" 1e-2
  done
  for t in Q8_0 Q4_K_M; do
    "$LC/build/bin/llama-quantize" "$TMP/$arch.gguf" "$TMP/$arch-l$t.gguf" "$t" >/dev/null 2>&1
    compare "$TMP/$arch-l$t.gguf" "$arch $t (llama-quantize)" 1e-2
  done
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
