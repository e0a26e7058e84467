#!/usr/bin/env bash
# Training speed, qai against PyTorch (Debian's python3-torch), same shapes,
# random tokens, 2 threads, runs interleaved. Prints tokens/s, the ratio, qai's
# MFU against the measured fp32 FMA peak, and peak memory of both.
# MATMUL="fp32 bf16" measures both precisions in each round (qai --matmul bf16
# against torch.autocast("cpu", dtype=torch.bfloat16)) and prints bf16/fp32.
#   usage: bench/train_vs_torch.sh [BUILD_DIR]
#   env: ROUNDS (2), STEPS (10), THREADS (2), SHAPES ("S M"), MATMUL ("fp32"; "bf16" or "fp32 bf16")
set -euo pipefail
BUILD=${1:-build}
QAI=$BUILD/bin/qai
ROUNDS=${ROUNDS:-2} STEPS=${STEPS:-10} THREADS=${THREADS:-2} SHAPES=${SHAPES:-"S M"} MATMUL=${MATMUL:-fp32}
PY=/usr/bin/python3
unset OPENBLAS_CORETYPE # it halves OpenBLAS on this CPU; measure PyTorch at its best
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shape() { # dim layers heads ffn vocab seq batch
  case $1 in
    S) echo "288 6 6 768 4096 256 8" ;;
    M) echo "512 8 8 1376 8192 256 8" ;;
  esac
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SHAPES; do
  read -r D L H F V T B <<<"$(shape "$s")"
  for mm in $MATMUL; do : >"$tmp/qai.$s.$mm"; : >"$tmp/torch.$s.$mm"; done
  for r in $(seq "$ROUNDS"); do
    for mm in $MATMUL; do
      /usr/bin/env time -f "%M" -o "$tmp/rss.$s.$mm.$r" "$QAI" train --data random --dim "$D" --layers "$L" --heads "$H" \
        --ffn "$F" --vocab "$V" --seq "$T" --batch "$B" --max-steps $((STEPS + 2)) --eval-every 0 --threads "$THREADS" \
        --matmul "$mm" --log-json "$tmp/log.$s.$mm.$r" --quiet -o "$tmp/m.gguf" 2>/dev/null
      # the first two steps warm up, as on the PyTorch side
      tail -n +3 "$tmp/log.$s.$mm.$r" | sed 's/.*"tok_s":\([0-9.]*\).*"mfu":\([0-9.]*\).*/\1 \2/' >>"$tmp/qai.$s.$mm"
      "$PY" "$here/peer_train.py" "$D" "$L" "$H" "$F" "$V" "$T" "$B" "$STEPS" "$THREADS" "$mm" >>"$tmp/torch.$s.$mm"
    done
  done
  for mm in $MATMUL; do
    q=$(cut -d' ' -f1 "$tmp/qai.$s.$mm" | median)
    mfu=$(cut -d' ' -f2 "$tmp/qai.$s.$mm" | median)
    p=$(sed 's/.*"tok_s": \([0-9.]*\).*/\1/' "$tmp/torch.$s.$mm" | median)
    prss=$(sed 's/.*"maxrss_mb": \([0-9.]*\).*/\1/' "$tmp/torch.$s.$mm" | median)
    qrss=$(cat "$tmp"/rss."$s.$mm".* | median)
    printf '%s %s (dim %s, %s layers, ffn %s, vocab %s, seq %s, batch %s): qai %.0f tok/s (MFU %.1f%%, %.0f MB)  pytorch %.0f tok/s (%.0f MB)  ratio %.2fx\n' \
      "$s" "$mm" "$D" "$L" "$F" "$V" "$T" "$B" "$q" "$(echo "$mfu*100" | bc -l)" "$(echo "$qrss/1024" | bc -l)" "$p" "$prss" "$(echo "$q/$p" | bc -l)"
    echo "$q $p" >"$tmp/res.$s.$mm"
  done
  if [ -f "$tmp/res.$s.fp32" ] && [ -f "$tmp/res.$s.bf16" ]; then
    read -r q32 p32 <"$tmp/res.$s.fp32"
    read -r q16 p16 <"$tmp/res.$s.bf16"
    printf '%s bf16/fp32: qai %.2fx  pytorch %.2fx\n' "$s" "$(echo "$q16/$q32" | bc -l)" "$(echo "$p16/$p32" | bc -l)"
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
