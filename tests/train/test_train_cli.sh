#!/usr/bin/env bash
# `qai train` end to end: a YAML config with flags over it, the outputs (GGUF
# that `qai run` loads, checkpoint, JSONL log with the documented fields, SVG
# curve), Ctrl-C saving a checkpoint and --resume reproducing the uninterrupted
# run's log to the bit, and clear errors that overwrite nothing.
set -u
QAI=${QAI_BIN:?}
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_train_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
PY=/usr/bin/python3

cat >"$TMP/train.yaml" <<'YAML'
# a tiny model on random tokens
dim: 64
layers: 2
heads: 4
kv-heads: 2
ffn: 192
vocab: 300
data: random
seq: 64
batch: 4
max_steps: 40
warmup: 4
eval-every: 10
eval-batches: 2
seed: 5
YAML

# uninterrupted run; --max-steps on the command line wins over the file
"$QAI" train --config "$TMP/train.yaml" --max-steps 60 --threads 2 -o "$TMP/a.gguf" --log-json "$TMP/a.jsonl" \
  2>"$TMP/a.err" && ok || bad "train: $(cat "$TMP/a.err")"
[ -s "$TMP/a.gguf" ] && [ -s "$TMP/a.gguf.ckpt/latest.qck" ] && [ -s "$TMP/a.gguf.ckpt/loss.svg" ] && ok ||
  bad "missing outputs: $(ls "$TMP" "$TMP/a.gguf.ckpt")"
[ "$(wc -l <"$TMP/a.jsonl")" = 60 ] && cmp -s "$TMP/a.jsonl" "$TMP/a.gguf.ckpt/log.jsonl" && ok || bad "log lines"
"$PY" - "$TMP/a.jsonl" "$TMP/a.gguf.ckpt/loss.svg" <<'PYEOF' && ok || bad "log fields or svg"
import json, sys, xml.etree.ElementTree as ET
rows = [json.loads(l) for l in open(sys.argv[1])]
for k in ("step", "loss", "tok_s", "lr", "grad_norm", "mfu", "tokens", "elapsed_s"):
    assert all(k in r for r in rows), k
assert [r["step"] for r in rows] == list(range(1, 61))
assert [r["step"] for r in rows if "val_loss" in r] == [10, 20, 30, 40, 50, 60]
assert rows[-1]["lr"] < rows[5]["lr"]          # cosine decay
ET.parse(sys.argv[2])                           # well-formed SVG
PYEOF
"$QAI" run -m "$TMP/a.gguf" -p "hello" -n 4 --temp 0 >/dev/null 2>"$TMP/run.err" && ok || bad "run: $(cat "$TMP/run.err")"

# the same run interrupted with Ctrl-C, then resumed: the same log to the bit
"$QAI" train --config "$TMP/train.yaml" --max-steps 60 --threads 1 -o "$TMP/b.gguf" 2>"$TMP/b.err" &
pid=$!
for _ in $(seq 200); do [ -s "$TMP/b.gguf.ckpt/log.jsonl" ] && [ "$(wc -l <"$TMP/b.gguf.ckpt/log.jsonl")" -ge 3 ] && break; sleep 0.05; done
kill -INT "$pid"
wait "$pid"
rc=$?
if grep -q "interrupted at step" "$TMP/b.err"; then
  [ $rc = 0 ] && [ -s "$TMP/b.gguf.ckpt/latest.qck" ] && [ ! -e "$TMP/b.gguf" ] && ok || bad "interrupt: rc $rc $(cat "$TMP/b.err")"
else
  echo "note: the run finished before the interrupt arrived" >&2
fi
"$QAI" train --resume "$TMP/b.gguf.ckpt/latest.qck" 2>"$TMP/r.err" && ok || bad "resume: $(cat "$TMP/r.err")"
strip() { sed 's/"tok_s":[^,]*,"mfu":[^,]*,\("tokens":[0-9]*\),"elapsed_s":[^,}]*/\1/' "$1"; }
if cmp -s <(strip "$TMP/a.gguf.ckpt/log.jsonl") <(strip "$TMP/b.gguf.ckpt/log.jsonl"); then ok; else
  bad "resumed run differs from the uninterrupted one (1 vs 2 threads too)"; diff <(strip "$TMP/a.gguf.ckpt/log.jsonl") <(strip "$TMP/b.gguf.ckpt/log.jsonl") | head -4 >&2
fi
cmp -s "$TMP/a.gguf" "$TMP/b.gguf" && ok || bad "final models differ"

# errors: clear, exit codes, nothing overwritten
cp "$TMP/a.gguf" "$TMP/keep.gguf"
"$QAI" train --config "$TMP/train.yaml" --heads 5 -o "$TMP/a.gguf" 2>"$TMP/e1" ; rc=$?
[ $rc = 1 ] && grep -q "heads (5) must divide dim (64)" "$TMP/e1" && cmp -s "$TMP/a.gguf" "$TMP/keep.gguf" && ok || bad "bad shape: rc $rc $(cat "$TMP/e1")"
"$QAI" train --dimm 3 2>"$TMP/e2"; rc=$?
[ $rc = 2 ] && grep -q "unknown training key 'dimm'" "$TMP/e2" && ok || bad "unknown flag: rc $rc $(cat "$TMP/e2")"
"$QAI" train --resume "$TMP/a.gguf.ckpt/latest.qck" --lr 0.1 2>"$TMP/e3"; rc=$?
[ $rc = 2 ] && grep -q "cannot change when resuming" "$TMP/e3" && ok || bad "resume override: rc $rc $(cat "$TMP/e3")"
printf 'dim: [1, 2]\n' >"$TMP/bad.yaml"
"$QAI" train --config "$TMP/bad.yaml" 2>"$TMP/e4"; rc=$?
[ $rc = 1 ] && grep -q "'dim' must be a single value" "$TMP/e4" && ok || bad "bad yaml: rc $rc $(cat "$TMP/e4")"
head -c 1000 "$TMP/a.gguf.ckpt/latest.qck" >"$TMP/trunc.qck"
"$QAI" train --resume "$TMP/trunc.qck" 2>"$TMP/e5"; rc=$?
[ $rc = 1 ] && grep -q "truncated or corrupted" "$TMP/e5" && ok || bad "truncated checkpoint: rc $rc $(cat "$TMP/e5")"
"$QAI" train --data /nonexistent/data 2>"$TMP/e6"; rc=$?
[ $rc = 1 ] && grep -q "/nonexistent/data" "$TMP/e6" && ok || bad "missing data: rc $rc $(cat "$TMP/e6")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
