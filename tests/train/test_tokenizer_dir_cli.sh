#!/usr/bin/env bash
# qai tokenizer train on directories: a directory gives exactly the tokenizer
# of its wanted files listed by hand in name order (walked recursively; files
# `qai data prepare` would not read — other extensions, hidden ones — are
# skipped, so a binary file there does no harm); a JSONL file contributes its
# "text" fields, one per line, not its JSON syntax; a directory with no text
# files and a bad JSONL line are errors (exit 1) with a message.
set -u
QAI=${QAI_BIN:?}
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_tokenizer_dir.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

mkdir -p "$TMP/c/b-sub/deeper" "$TMP/c/.hidden" "$TMP/c/a-sub"
for i in 1 2 3 4 5 6 7 8 9; do
  echo "Line $i: the gripper closed on the cube and lifted it $((i * 7)) millimetres." >"$TMP/c/a-sub/t$i.txt"
done
printf '# Notes\n\nThe *conveyor* stops when the light curtain trips.\n' >"$TMP/c/b-sub/notes.md"
printf 'Deeper text about torque limits and joint encoders.\n' >"$TMP/c/b-sub/deeper/x.rst"
printf '{"text": "operator: home the axes"}\n\n{"text": "robot: axes homed, caf\\u00e9 at noon"}\n' >"$TMP/c/log.jsonl"
printf 'zzz unusual hidden words qqq\n' >"$TMP/c/.hidden/h.txt"
printf 'ignored\0binary' >"$TMP/c/blob.bin"

# 1. the directory equals its files by hand, in name order (a-sub/ < b-sub/ < log.jsonl)
"$QAI" tokenizer train --vocab 400 "$TMP/c" -o "$TMP/dir.gguf" >/dev/null 2>"$TMP/err" || bad "directory: exit $? $(cat "$TMP/err")"
"$QAI" tokenizer train --vocab 400 "$TMP"/c/a-sub/t*.txt "$TMP/c/b-sub/deeper/x.rst" "$TMP/c/b-sub/notes.md" \
  "$TMP/c/log.jsonl" -o "$TMP/files.gguf" >/dev/null 2>&1 || bad "files: exit $?"
if cmp -s "$TMP/dir.gguf" "$TMP/files.gguf"; then ok; else bad "a directory and its files listed by hand give different tokenizers"; fi

# 2. JSONL gives its text, not its JSON: the same tokenizer as the texts in a plain file
mkdir -p "$TMP/j" "$TMP/t"
printf '{"text": "alpha beta gamma delta"}\n{"text": "beta gamma alpha, epsilon"}\n' >"$TMP/j/a.jsonl"
printf 'alpha beta gamma delta\nbeta gamma alpha, epsilon\n' >"$TMP/t/a.txt"
"$QAI" tokenizer train --vocab 280 "$TMP/j" -o "$TMP/j.gguf" >/dev/null 2>&1 || bad "jsonl dir: exit $?"
"$QAI" tokenizer train --vocab 280 "$TMP/t" -o "$TMP/t.gguf" >/dev/null 2>&1 || bad "txt dir: exit $?"
if cmp -s "$TMP/j.gguf" "$TMP/t.gguf"; then ok; else bad "a JSONL file does not train like the text of its \"text\" fields"; fi

# 3. errors: no text files; a bad JSONL line names the file and line
mkdir -p "$TMP/empty"
printf 'x\0y' >"$TMP/empty/only.bin"
"$QAI" tokenizer train --vocab 400 "$TMP/empty" -o "$TMP/e.gguf" >/dev/null 2>"$TMP/err"
rc=$?
if [ $rc = 1 ] && grep -q "no text files" "$TMP/err" && [ ! -e "$TMP/e.gguf" ]; then ok; else bad "empty dir: exit $rc, $(cat "$TMP/err")"; fi
printf '{"text": "fine"}\nnot json\n' >"$TMP/j/b.jsonl"
"$QAI" tokenizer train --vocab 280 "$TMP/j" -o "$TMP/b.gguf" >/dev/null 2>"$TMP/err"
rc=$?
if [ $rc = 1 ] && grep -q "b.jsonl' line 2" "$TMP/err"; then ok; else bad "bad jsonl: exit $rc, $(cat "$TMP/err")"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
