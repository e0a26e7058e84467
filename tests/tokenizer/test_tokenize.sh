#!/usr/bin/env bash
# qai tokenize end to end: the llama2.c reference ids through a vocab-only GGUF
# and through tokenizer.bin directly, --ids/--raw/--json/--stdin, the
# tokenize -> detokenize round trip on awkward bytes, exit codes.
set -u
QAI=${QAI_BIN:?}
DATA=${QAI_DATA:?}/models
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_tokenize.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then ok; else bad "$1: got '$3', want '$2'"; fi
}

"$QAI" convert --vocab-only --tokenizer "$DATA/stories260K/tok512.bin" -o "$TMP/tok512.gguf" 2>/dev/null || bad "convert --vocab-only"
for m in "$TMP/tok512.gguf" "$DATA/stories260K/tok512.bin" "$DATA/stories260K-gguf/stories260K.gguf"; do
  expect "ids ($m)" "1 403 407 261 378" "$("$QAI" tokenize -m "$m" --ids "Once upon a time")"
done
expect "32k ids" "1 9038 2501 263 931" "$("$QAI" tokenize -m "$DATA/llama2-tokenizer/tokenizer.bin" --ids Once upon a time)"
expect "default listing" "$(printf '1\t<s>\n403\t Once')" "$("$QAI" tokenize -m "$TMP/tok512.gguf" "Once")"
expect "--raw" "410 504 419 505 440 411 306 414" "$("$QAI" tokenize -m "$TMP/tok512.gguf" --raw --ids "<s>Hello")"
expect "special parsing" "1 1 346 306 414" "$("$QAI" tokenize -m "$TMP/tok512.gguf" --ids "<s>Hello")"
expect "--json" '{"ids": [1, 261, 13], "pieces": ["<s>", " a", "\n"]}' "$(printf 'a\n' | "$QAI" tokenize -m "$TMP/tok512.gguf" --json --stdin)"
expect "escaped pieces" "$(printf '13\t\\n')" "$(printf '\n' | "$QAI" tokenize -m "$TMP/tok512.gguf" --stdin --raw | tail -1)"

# round trip through --ids and --detokenize, byte for byte
printf 'tabs\tand\r\nCRLF, emoji \xf0\x9f\x8d\xb0, bad \xff\xfe bytes, NUL \0 inside,  spaces  \n\n' > "$TMP/in.bin"
"$QAI" tokenize -m "$TMP/tok512.gguf" --stdin --ids < "$TMP/in.bin" > "$TMP/ids" || bad "tokenize --stdin"
"$QAI" tokenize -m "$TMP/tok512.gguf" --detokenize --stdin < "$TMP/ids" > "$TMP/out.bin" || bad "detokenize --stdin"
cmp -s "$TMP/in.bin" "$TMP/out.bin" && ok || bad "tokenize/detokenize round trip differs"
expect "detokenize args" "Once upon a time" "$("$QAI" tokenize -m "$TMP/tok512.gguf" --detokenize 1 403 407 261 378)"
expect "detokenize --special" "<s>Once</s>" "$("$QAI" tokenize -m "$TMP/tok512.gguf" --detokenize --special 1 403 2)"

# usage errors exit 2, failures exit 1 naming what failed
"$QAI" tokenize "x" >/dev/null 2>&1; expect "no -m" 2 $?
"$QAI" tokenize -m "$TMP/tok512.gguf" >/dev/null 2>&1; expect "no text" 2 $?
"$QAI" tokenize -m "$TMP/tok512.gguf" --bogus x >/dev/null 2>&1; expect "unknown option" 2 $?
"$QAI" tokenize -m "$TMP/tok512.gguf" --detokenize 1 abc >/dev/null 2>&1; expect "bad id argument" 2 $?
"$QAI" tokenize -m "$TMP/tok512.gguf" --detokenize 1 99999 >/dev/null 2> "$TMP/e"; expect "id out of range" 1 $?
grep -q "99999" "$TMP/e" && ok || bad "out-of-range message should name the id"
"$QAI" tokenize -m "$TMP/nope.gguf" x >/dev/null 2> "$TMP/e"; expect "missing model" 1 $?
grep -q "nope.gguf" "$TMP/e" && ok || bad "missing-model message should name the file"
printf 'GGUF\3\0\0\0garbage' > "$TMP/bad.gguf"
"$QAI" tokenize -m "$TMP/bad.gguf" x >/dev/null 2>&1; expect "malformed gguf" 1 $?
"$QAI" tokenize --help | grep -q "usage: qai tokenize" && ok || bad "--help"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
