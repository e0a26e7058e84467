#!/usr/bin/env bash
# Training speed, qai against PyTorch (Debian's python3-torch), same shapes,
# fp32, random tokens, 2 threads, runs interleaved. Prints tokens/s, the ratio,
# qai's MFU against the measured FMA peak, and peak memory of both.
#   usage: bench/train_vs_torch.sh [BUILD_DIR]   env: ROUNDS (2), STEPS (10), THREADS (2), SHAPES ("S M")
set -euo pipefail
BUILD=${1:-build}
QAI=$BUILD/bin/qai
ROUNDS=${ROUNDS:-2} STEPS=${STEPS:-10} THREADS=${THREADS:-2} SHAPES=${SHAPES:-"S M"}
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
  : >"$tmp/qai.$s" ; : >"$tmp/torch.$s"
  for r in $(seq "$ROUNDS"); do
    /usr/bin/env time -f "%M" -o "$tmp/rss.$s.$r" "$QAI" train --data random --dim "$D" --layers "$L" --heads "$H" \
      --ffn "$F" --vocab "$V" --seq "$T" --batch "$B" --max-steps $((STEPS + 2)) --eval-every 0 --threads "$THREADS" \
      --log-json "$tmp/log.$s.$r" --quiet -o "$tmp/m.gguf" 2>/dev/null
    # the first two steps warm up, as on the PyTorch side
    tail -n +3 "$tmp/log.$s.$r" | sed 's/.*"tok_s":\([0-9.]*\).*"mfu":\([0-9.]*\).*/\1 \2/' >>"$tmp/qai.$s"
    "$PY" "$here/peer_train.py" "$D" "$L" "$H" "$F" "$V" "$T" "$B" "$STEPS" "$THREADS" >>"$tmp/torch.$s"
  done
  q=$(cut -d' ' -f1 "$tmp/qai.$s" | median)
  mfu=$(cut -d' ' -f2 "$tmp/qai.$s" | median)
  p=$(sed 's/.*"tok_s": \([0-9.]*\).*/\1/' "$tmp/torch.$s" | median)
  prss=$(sed 's/.*"maxrss_mb": \([0-9.]*\).*/\1/' "$tmp/torch.$s" | median)
  qrss=$(cat "$tmp"/rss."$s".* | median)
  printf '%s (dim %s, %s layers, ffn %s, vocab %s, seq %s, batch %s): qai %.0f tok/s (MFU %.1f%%, %.0f MB)  pytorch %.0f tok/s (%.0f MB)  ratio %.2fx\n' \
    "$s" "$D" "$L" "$F" "$V" "$T" "$B" "$q" "$(echo "$mfu*100" | bc -l)" "$(echo "$qrss/1024" | bc -l)" "$p" "$prss" "$(echo "$q/$p" | bc -l)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
