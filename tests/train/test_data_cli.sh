#!/usr/bin/env bash
# qai tokenizer train + qai data prepare/info end to end: a tokenizer trained
# from files loads in qai tokenize and round-trips text; training is
# byte-identical across thread counts; prepare is byte-identical across runs
# and thread counts; info reads back the counts prepare printed; --help
# matches docs/; bad input gives exit 1 with a message and leaves nothing
# behind; bad usage gives exit 2.
set -u
QAI=${QAI_BIN:?}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_data_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then ok; else bad "$1: got '$3', want '$2'"; fi
}
json_get() { # json_get FILE python-expression-on-d
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

# a small corpus: text, Markdown, JSONL
mkdir -p "$TMP/corpus/notes"
for i in $(seq 1 60); do
  echo "Note $i: the robot arm moved the red block onto the blue block, then waited $((i * 3)) seconds." > "$TMP/corpus/notes/n$i.txt"
done
printf '# Manual\n\nPress the *green* button to start the arm.\n\nPress the red button to stop.\n' > "$TMP/corpus/manual.md"
printf '{"text": "operator: start the arm"}\n{"text": "arm: started, caf\\u00e9 break at 10"}\n' > "$TMP/corpus/chat.jsonl"
cat "$TMP"/corpus/notes/*.txt "$TMP/corpus/manual.md" > "$TMP/train.txt"

# --- tokenizer train ---
"$QAI" tokenizer train --vocab 420 -t 1 "$TMP/train.txt" -o "$TMP/tok.gguf" > "$TMP/out" 2>/dev/null
expect "train exit" 0 $?
grep -q "420 tokens" "$TMP/out" && ok || bad "train summary: $(cat "$TMP/out")"
"$QAI" tokenizer train --vocab 420 -t 2 "$TMP/train.txt" -o "$TMP/tok2.gguf" >/dev/null 2>&1
cmp -s "$TMP/tok.gguf" "$TMP/tok2.gguf" && ok || bad "tokenizer differs between 1 and 2 threads"
"$QAI" tokenizer train --vocab 420 --type bytebpe --special "<|user|>,<|bot|>" --control "<|im_start|>" --json \
  "$TMP/train.txt" -o "$TMP/btok.gguf" > "$TMP/b.json" 2>/dev/null
expect "bytebpe exit" 0 $?
expect "bytebpe json vocab" 420 "$(json_get "$TMP/b.json" 'd["vocab"]')"
expect "special token" "1" "$("$QAI" tokenize -m "$TMP/btok.gguf" --ids --raw "<|user|>")"
expect "control token" "3" "$("$QAI" tokenize -m "$TMP/btok.gguf" --ids "<|im_start|>")"
# round trip through qai tokenize with both tokenizers
printf 'The robot moved 42 blocks; caf\xc3\xa9 \xf0\x9f\xa4\x96 \ttab  two spaces\n' > "$TMP/rt.txt"
for t in tok btok; do
  "$QAI" tokenize -m "$TMP/$t.gguf" --stdin --ids < "$TMP/rt.txt" > "$TMP/ids" || bad "tokenize with $t"
  "$QAI" tokenize -m "$TMP/$t.gguf" --detokenize --stdin < "$TMP/ids" > "$TMP/back.txt" || bad "detokenize with $t"
  cmp -s "$TMP/rt.txt" "$TMP/back.txt" && ok || bad "round trip with $t"
done
# the merges of the training text: "block" is one token
expect "trained piece" 1 "$("$QAI" tokenize -m "$TMP/tok.gguf" --ids --raw "block" | wc -w)"

# --- data prepare ---
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" --val 0.1 --seed 7 --json "$TMP/corpus" -o "$TMP/d1" > "$TMP/p1.json" 2>/dev/null
expect "prepare exit" 0 $?
expect "files" 62 "$(json_get "$TMP/p1.json" 'd["files"]')"
expect "docs" 63 "$(json_get "$TMP/p1.json" 'd["train"]["docs"] + d["val"]["docs"]')"
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" --val 0.1 --seed 7 -t 1 "$TMP/corpus" -o "$TMP/d2" >/dev/null 2>&1
expect "prepare again" 0 $?
diff -r "$TMP/d1" "$TMP/d2" >/dev/null && ok || bad "two prepare runs differ"
"$QAI" data info --json --verify "$TMP/d1" > "$TMP/i.json" 2>/dev/null
expect "info exit" 0 $?
expect "info tokens" "$(json_get "$TMP/p1.json" 'd["train"]["tokens"]')" "$(json_get "$TMP/i.json" 'd["train"]["tokens"]')"
expect "info hash" "$(json_get "$TMP/p1.json" 'd["manifest_hash"]')" "$(json_get "$TMP/i.json" 'd["manifest_hash"]')"
expect "info vocab" 420 "$(json_get "$TMP/i.json" 'd["n_vocab"]')"
expect "manifest tokenizer sha" "$(sha256sum "$TMP/tok.gguf" | cut -d' ' -f1)" "$(json_get "$TMP/d1/manifest.json" 'd["tokenizer"]["sha256"]')"
expect "manifest shard sha" "$(sha256sum "$TMP/d1/train-00000.tok" | cut -d' ' -f1)" \
  "$(json_get "$TMP/d1/manifest.json" 'd["splits"]["train"]["shards"][0]["sha256"]')"
"$QAI" data info "$TMP/d1" | grep -q "^train" && ok || bad "info text output"

# --- failures: exit 1, a message naming the problem, nothing left behind ---
printf 'abc\0def' > "$TMP/corpus/bin.txt"
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" "$TMP/corpus" -o "$TMP/d3" 2> "$TMP/err"
expect "binary input exit" 1 $?
grep -q "bin.txt.*NUL byte" "$TMP/err" && ok || bad "binary message: $(cat "$TMP/err")"
[ ! -e "$TMP/d3" ] && ! ls "$TMP" | grep -q "^d3\." && ok || bad "a failed prepare left files"
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" --skip-bad "$TMP/corpus" -o "$TMP/d3" >/dev/null 2>&1
expect "skip-bad exit" 0 $?
rm "$TMP/corpus/bin.txt"
mkdir -p "$TMP/empty" && printf '\n \n' > "$TMP/empty/e.txt"
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" "$TMP/empty" -o "$TMP/d4" 2> "$TMP/err"
expect "empty corpus exit" 1 $?
grep -q "empty corpus" "$TMP/err" && ok || bad "empty message: $(cat "$TMP/err")"
"$QAI" data prepare --tokenizer "$TMP/train.txt" "$TMP/corpus" -o "$TMP/d4" 2> "$TMP/err"
expect "not a tokenizer exit" 1 $?
grep -q "not a GGUF file" "$TMP/err" && ok || bad "tokenizer message: $(cat "$TMP/err")"
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" "$TMP/corpus" -o "$TMP/d1" 2> "$TMP/err"
expect "occupied output exit" 1 $?
diff -r "$TMP/d1" "$TMP/d2" >/dev/null && ok || bad "a refused prepare changed the old dataset"
"$QAI" data info "$TMP/corpus" 2> "$TMP/err"
expect "info on a non-dataset" 1 $?
printf 'x' >> "$TMP/d2/train-00000.tok"
"$QAI" data info "$TMP/d2" 2> "$TMP/err"
expect "info on a damaged dataset" 1 $?
"$QAI" tokenizer train --vocab 10 "$TMP/train.txt" -o "$TMP/t.gguf" 2> "$TMP/err"
expect "vocab too small exit" 1 $?
"$QAI" tokenizer train --vocab 500 "$TMP/nope.txt" -o "$TMP/t.gguf" 2> /dev/null
expect "missing input exit" 1 $?

# --- usage errors: exit 2 ---
"$QAI" data >/dev/null 2>&1; expect "data no subcommand" 2 $?
"$QAI" data frobnicate >/dev/null 2>&1; expect "data unknown subcommand" 2 $?
"$QAI" data prepare "$TMP/corpus" -o "$TMP/x" >/dev/null 2>&1; expect "no --tokenizer" 2 $?
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" "$TMP/corpus" >/dev/null 2>&1; expect "no -o" 2 $?
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" --val 0.9 "$TMP/corpus" -o "$TMP/x" >/dev/null 2>&1; expect "--val range" 2 $?
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" --docs words "$TMP/corpus" -o "$TMP/x" >/dev/null 2>&1; expect "--docs value" 2 $?
"$QAI" tokenizer >/dev/null 2>&1; expect "tokenizer no subcommand" 2 $?
"$QAI" tokenizer train "$TMP/train.txt" -o "$TMP/x.gguf" >/dev/null 2>&1; expect "no --vocab" 2 $?
"$QAI" tokenizer train --vocab 500 --type unigram "$TMP/train.txt" -o "$TMP/x.gguf" >/dev/null 2>&1; expect "bad --type" 2 $?
"$QAI" tokenizer train --vocab 500 "$TMP/train.txt" >/dev/null 2>&1; expect "no -o" 2 $?

# --- --help is what docs/ says ---
for c in data tokenizer; do
  want=$(awk '/^```$/ && n == 0 {n = 1; next} /^```$/ && n == 1 {exit} n == 1' "$ROOT/docs/$c.md")
  got=$("$QAI" "$c" --help)
  [ "$want" = "$got" ] && ok || bad "qai $c --help differs from docs/$c.md"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
