#!/usr/bin/env bash
# qai embed from the command line: --help is docs/embed.md's usage block; texts
# from arguments, --stdin and --file give the same vectors, one line (or JSON
# array) of n_embd unit-length floats per text; --no-normalize changes the
# length but not the direction; bad usage exits 2 and failures exit 1 naming
# the text. Uses the stories260K GGUF of the reference data (a llama model);
# the bert path is tested value by value in tests/model/test_bert.c.
set -u
QAI=${QAI_BIN:?}
M=${QAI_DATA:?}/models/stories260K-gguf/stories260K.gguf
DOCS=$(dirname "$0")/../../docs/embed.md
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_embed_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
PY=/usr/bin/python3

"$QAI" embed --help > "$TMP/help" && ok || bad "--help"
$PY - "$DOCS" "$TMP/help" <<'PYEOF' && ok || bad "--help differs from docs/embed.md"
import sys
doc = open(sys.argv[1], encoding="utf-8").read()
block = doc.split("```\n", 2)[1]
sys.exit(0 if block == open(sys.argv[2], encoding="utf-8").read() else 1)
PYEOF

"$QAI" embed -m "$M" "Once upon a time" "The cat sat" > "$TMP/args" && ok || bad "embed two texts"
printf 'Once upon a time\nThe cat sat\n' | "$QAI" embed -m "$M" --stdin > "$TMP/stdin" && ok || bad "embed --stdin"
printf 'Once upon a time\r\nThe cat sat' > "$TMP/texts.txt"
"$QAI" embed -m "$M" --file "$TMP/texts.txt" -t 1 > "$TMP/file" && ok || bad "embed --file"
cmp -s "$TMP/args" "$TMP/stdin" && ok || bad "--stdin differs from arguments"
cmp -s "$TMP/args" "$TMP/file" && ok || bad "--file (CRLF, no final newline, 1 thread) differs from arguments"
"$QAI" embed -m "$M" --json "Once upon a time" "The cat sat" > "$TMP/json" && ok || bad "embed --json"
"$QAI" embed -m "$M" --no-normalize "Once upon a time" "The cat sat" > "$TMP/raw" && ok || bad "embed --no-normalize"
$PY - "$TMP/args" "$TMP/json" "$TMP/raw" <<'PYEOF' && ok || bad "vectors: shape, unit length, JSON = text, raw parallel to normalized"
import json, math, sys
rows = [[float(x) for x in l.split(" ")] for l in open(sys.argv[1])]
js = json.load(open(sys.argv[2]))
raw = [[float(x) for x in l.split(" ")] for l in open(sys.argv[3])]
assert len(rows) == 2 and all(len(r) == 64 for r in rows), [len(r) for r in rows]
assert all(abs(math.sqrt(sum(x * x for x in r)) - 1) < 1e-5 for r in rows)
assert len(js) == 2 and all(abs(a - b) < 1e-6 for r, q in zip(rows, js) for a, b in zip(r, q))
for r, w in zip(rows, raw):
    n = math.sqrt(sum(x * x for x in w))
    assert abs(n - 1) > 1e-3 and all(abs(a - b / n) < 1e-5 for a, b in zip(r, w))
assert any(abs(a - b) > 1e-3 for a, b in zip(rows[0], rows[1]))
PYEOF

"$QAI" embed "x" >/dev/null 2>&1; [ $? = 2 ] && ok || bad "no model: exit 2"
"$QAI" embed -m "$M" >/dev/null 2>&1; [ $? = 2 ] && ok || bad "no text: exit 2"
"$QAI" embed -m "$M" --pooling max x >/dev/null 2>&1; [ $? = 2 ] && ok || bad "bad --pooling: exit 2"
"$QAI" embed -m "$M" --stdin x </dev/null >/dev/null 2>&1; [ $? = 2 ] && ok || bad "--stdin with arguments: exit 2"
"$QAI" embed -m "$TMP/nope.gguf" x >/dev/null 2> "$TMP/e"; [ $? = 1 ] && grep -q "nope.gguf" "$TMP/e" && ok || bad "missing model: exit 1 naming the file"
"$QAI" embed -m "$M" --pooling cls x >/dev/null 2> "$TMP/e"; [ $? = 1 ] && grep -q "mean pooling only" "$TMP/e" && ok || bad "cls pooling of a decoder: exit 1"
long=$($PY -c "print('a b ' * 3000)")
"$QAI" embed -m "$M" short "$long" >/dev/null 2> "$TMP/e"; [ $? = 1 ] && grep -q "text 2" "$TMP/e" && ok || bad "too long a text: exit 1 naming text 2 ($(cat "$TMP/e"))"

# qai init --arch bert: an encoder qai embed reads, mean or CLS pooling
"$QAI" init --arch bert --dim 64 --layers 2 --heads 4 --ffn 128 --vocab 500 --seed 3 "$TMP/b.gguf" 2>/dev/null && ok || bad "init --arch bert"
[ "$("$QAI" embed -m "$TMP/b.gguf" "hello world" | wc -w)" = 64 ] && ok || bad "embed of an init'd bert: not 64 numbers"
"$QAI" init --arch bert --dim 64 --layers 2 --heads 4 --ffn 128 --vocab 500 --seed 3 --pooling cls "$TMP/bc.gguf" 2>/dev/null
a=$("$QAI" embed -m "$TMP/b.gguf" "hello world") c=$("$QAI" embed -m "$TMP/bc.gguf" "hello world")
[ -n "$c" ] && [ "$a" != "$c" ] && [ "$("$QAI" embed -m "$TMP/b.gguf" --pooling cls "hello world")" = "$c" ] && ok || bad "--pooling cls file differs from mean, equals embed --pooling cls"
"$QAI" inspect "$TMP/b.gguf" 2>/dev/null | grep -q 'bert.context_length *uint32 *512' && ok || bad "bert init: default context 512"
"$QAI" init --arch bert --dim 64 --layers 2 --heads 4 --ffn 128 --vocab 100 "$TMP/small.gguf" 2> "$TMP/e"; [ $? = 1 ] && grep -q "too small" "$TMP/e" && ok || bad "a too-small bert vocabulary: exit 1"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
