#!/usr/bin/env bash
# `qai train --objective contrastive` end to end: explicit pairs from JSONL on
# a tiny base model, the outputs (a GGUF with llama.pooling_type = 1 that
# `qai embed` loads, a log with acc and val_acc), the base's context length
# kept in the export (also after --resume), --resume continuing the log to the
# bit, and clear errors (a bad pairs line names file and line; --pairs with
# --pairs-from is bad usage; a missing collection fails).
set -u
QAI=${QAI_BIN:?}
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_train_contrastive_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
PY=/usr/bin/python3

for i in $(seq 1 30); do echo "item number $i is a thing of the list, and item $i comes after $((i - 1))."; done > "$TMP/text.txt"
"$QAI" tokenizer train --vocab 320 "$TMP/text.txt" -o "$TMP/tok.gguf" 2>"$TMP/tok.err" && ok || bad "tokenizer: $(cat "$TMP/tok.err")"
"$QAI" train --data random --vocab 320 --tokenizer "$TMP/tok.gguf" --dim 32 --layers 2 --heads 4 --ffn 64 --seq 32 \
  --batch 2 --max-steps 2 --eval-every 0 --threads 1 -q -o "$TMP/base.gguf" 2>"$TMP/base.err" && ok || bad "base: $(cat "$TMP/base.err")"
for i in $(seq 1 40); do echo "{\"query\": \"what is item $i\", \"positive\": \"item $i is the number $i of the list\"}"; done > "$TMP/pairs.jsonl"

args=(--objective contrastive --init "$TMP/base.gguf" --pairs "$TMP/pairs.jsonl" --batch 6 --seq 24 --query-seq 12
  --micro-batch 4 --max-steps 8 --warmup 2 --lr 3e-3 --eval-every 4 --eval-batches 2 --val-share 0.3 --threads 2)
"$QAI" train "${args[@]}" -o "$TMP/e.gguf" 2>"$TMP/e.err" && ok || bad "contrastive: $(cat "$TMP/e.err")"
"$QAI" inspect "$TMP/e.gguf" 2>&1 | grep -E 'llama.pooling_type +uint32 +1' >/dev/null && ok || bad "no pooling_type 1"
"$QAI" embed -m "$TMP/e.gguf" "what is item 3" >"$TMP/v.txt" 2>"$TMP/v.err" && [ "$(wc -w <"$TMP/v.txt")" -ge 32 ] && ok ||
  bad "embed: $(cat "$TMP/v.err")"
"$PY" - "$TMP/e.gguf.ckpt/log.jsonl" <<'PYEOF' && ok || bad "log fields"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 8, len(rows)
assert all("acc" in r and 0 <= r["acc"] <= 1 for r in rows)
ev = [r for r in rows if "val_loss" in r]
assert [r["step"] for r in ev] == [4, 8] and all("val_acc" in r and "val_ppl" not in r for r in ev), ev
PYEOF
# the same run interrupted with Ctrl-C, then resumed (on 1 thread): the same losses and accuracies to the bit
"$QAI" train "${args[@]}" -o "$TMP/r.gguf" 2>"$TMP/r1.err" &
pid=$!
for _ in $(seq 400); do [ -s "$TMP/r.gguf.ckpt/log.jsonl" ] && [ "$(wc -l <"$TMP/r.gguf.ckpt/log.jsonl")" -ge 2 ] && break; sleep 0.02; done
kill -INT "$pid"
wait "$pid"
grep -q "interrupted at step" "$TMP/r1.err" || echo "note: the run finished before the interrupt arrived" >&2
"$QAI" train --resume "$TMP/r.gguf.ckpt/latest.qck" --threads 1 2>"$TMP/r.err" && ok || bad "resume: $(cat "$TMP/r.err")"
# the export keeps the base model's context (32), not the training --seq (24), also after a resume
for m in e r; do
  "$QAI" inspect "$TMP/$m.gguf" 2>&1 | grep -E 'llama.context_length +uint32 +32$' >/dev/null && ok ||
    bad "$m.gguf: context_length is not the base's 32"
done
strip() { sed -E 's/,"(tok_s|mfu|elapsed_s)":[^,}]*//g' "$1"; }
[ "$(strip "$TMP/e.gguf.ckpt/log.jsonl")" = "$(strip "$TMP/r.gguf.ckpt/log.jsonl")" ] && ok ||
  bad "resumed log differs: $(diff <(strip "$TMP/e.gguf.ckpt/log.jsonl") <(strip "$TMP/r.gguf.ckpt/log.jsonl") | head -4)"

# errors
printf '{"query":"a","positive":"b"}\n{"query":"c"}\n' >"$TMP/bad.jsonl"
"$QAI" train "${args[@]}" --pairs "$TMP/bad.jsonl" -o "$TMP/x.gguf" 2>"$TMP/x.err"
[ $? = 1 ] && grep -q "bad.jsonl' line 2" "$TMP/x.err" && ok || bad "bad pairs: $(cat "$TMP/x.err")"
"$QAI" train "${args[@]}" --pairs-from nothing -o "$TMP/y.gguf" 2>"$TMP/y.err"
[ $? = 2 ] && ok || bad "--pairs with --pairs-from: $(cat "$TMP/y.err")"
"$QAI" train --objective contrastive --init "$TMP/base.gguf" --pairs-from nothing --data-dir "$TMP/home" \
  -o "$TMP/z.gguf" 2>"$TMP/z.err"
[ $? = 1 ] && grep -q "nothing" "$TMP/z.err" && ok || bad "missing collection: $(cat "$TMP/z.err")"
[ ! -e "$TMP/x.gguf" ] && [ ! -e "$TMP/z.gguf" ] && ok || bad "a failed run wrote a model"

echo "test_train_contrastive_cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
