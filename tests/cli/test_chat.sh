#!/usr/bin/env bash
# qai chat through a pipe: two turns answered and the second reuses the cache;
# a model without a chat template is refused with a message that names
# --template; an unknown --template is bad usage (exit 2).
set -u
QAI=${QAI_BIN:?}
DATA=${QAI_DATA:?}/models/stories260K
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_chat.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

"$QAI" convert --from llama2c --tokenizer "$DATA/tok512.bin" "$DATA/stories260K.bin" -o "$TMP/s.gguf" 2>/dev/null || bad convert

printf 'Once upon a time\nThe dog\n' | "$QAI" chat -m "$TMP/s.gguf" --template zephyr -n 12 --temp 0 > "$TMP/out" 2> "$TMP/err"
[ $? = 0 ] && ok || bad "chat exited non-zero: $(cat "$TMP/err")"
[ "$(wc -l < "$TMP/out")" -ge 2 ] && ok || bad "chat did not answer both turns: $(cat "$TMP/out")"
# greedy answers are deterministic
printf 'Once upon a time\nThe dog\n' | "$QAI" chat -m "$TMP/s.gguf" --template zephyr -n 12 --temp 0 > "$TMP/out2" 2>/dev/null
cmp -s "$TMP/out" "$TMP/out2" && ok || bad "greedy chat is not deterministic"
# the first turn alone gives the same first answer (the cache reuse of turn 2 does not change turn 1)
printf 'Once upon a time\n' | "$QAI" chat -m "$TMP/s.gguf" --template zephyr -n 12 --temp 0 > "$TMP/one" 2>/dev/null
[ "$(head -n 1 "$TMP/one")" = "$(head -n 1 "$TMP/out")" ] && ok || bad "first turn differs when alone"

echo hi | "$QAI" chat -m "$TMP/s.gguf" > /dev/null 2> "$TMP/err"
[ $? = 1 ] && grep -q -- "--template" "$TMP/err" && ok || bad "no-template model: want exit 1 naming --template, got: $(cat "$TMP/err")"
echo hi | "$QAI" chat -m "$TMP/s.gguf" --template nosuch > /dev/null 2>&1
[ $? = 2 ] && ok || bad "unknown --template should exit 2"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
