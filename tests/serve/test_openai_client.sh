#!/usr/bin/env bash
# The official OpenAI client (the `openai` npm package, unmodified; installed
# by scripts/deps_npm.sh from tests/serve/openai/package-lock.json) against
# `qai serve` on 127.0.0.1: tests/serve/openai_client.mjs drives it. The model
# is stories260K converted here with `qai convert --from llama2c`; the server
# requires API keys (a key made with `qai keys create` in this test's own data
# directory) and uses the chatml template (stories260K has none). Greedy
# answers are compared with `qai run --temp 0`, prompt token counts with
# `qai tokenize`. This test downloads nothing.
set -u
QAI=${QAI_BIN:?}
SRC=${QAI_DATA:?}/models/stories260K
HERE=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

if ! command -v node >/dev/null 2>&1 || [ ! -f "$HERE/openai/node_modules/openai/package.json" ]; then
  echo "FAIL: the openai npm package is not installed (tests/serve/openai/node_modules): run scripts/deps_npm.sh" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_openai_client.XXXXXX")
export QAI_HOME=$TMP/home
unset QAI_STORE
SRV=
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$TMP"' EXIT

MODEL=$TMP/stories260K.gguf
"$QAI" convert --from llama2c --tokenizer "$SRC/tok512.bin" "$SRC/stories260K.bin" -o "$MODEL" 2>"$TMP/err" ||
  { bad "convert: $(cat "$TMP/err")"; echo "$pass passed, $fail failed"; exit 1; }
secret=$("$QAI" keys create --scope inference --name openai-test 2>/dev/null | grep -o 'qai-[A-Za-z0-9_-]*' | head -1)
[ -n "$secret" ] && ok || bad "qai keys create gave no secret"

PROMPT="Once upon a time"
N=32
USER_MSG="Tell me a story."
CHATML=$'<|im_start|>user\n'"$USER_MSG"$'<|im_end|>\n<|im_start|>assistant\n' # chatml, as qai serve --template chatml
RUN_TEXT=$("$QAI" run -m "$MODEL" -p "$PROMPT" -n "$N" --temp 0 --no-echo -t 1)
CHAT_RUN_TEXT=$("$QAI" run -m "$MODEL" -p "$CHATML" -n "$N" --temp 0 --no-echo -t 1)
PROMPT_TOKENS=$("$QAI" tokenize -m "$MODEL" --ids "$PROMPT" | wc -w)
N_EMBD=$("$QAI" inspect "$MODEL" | sed -n 's/^ *llama\.embedding_length *uint32 *\([0-9]*\).*/\1/p')
[ -n "$RUN_TEXT" ] && [ -n "$N_EMBD" ] && [ "$PROMPT_TOKENS" -gt 1 ] && ok ||
  bad "references: run='$RUN_TEXT' n_embd='$N_EMBD' prompt_tokens='$PROMPT_TOKENS'"

# --ctx 1024 (the model was trained on 512): the tools preamble alone is ~480
# of stories260K's tokens, and structured answers get up to 400.
# --port 0: the server picks a free port and prints it (a port chosen
# beforehand could be taken by another test's server meanwhile)
"$QAI" serve -m "$MODEL" --port 0 --threads 1 --parallel 2 --ctx 1024 --template chatml --auth keys 2>"$TMP/log" &
SRV=$!
PORT=
for _ in $(seq 1 200); do
  PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$TMP/log")
  [ -n "$PORT" ] && break
  sleep 0.05
done
if [ -z "$PORT" ]; then
  bad "server did not start: $(cat "$TMP/log")"
  echo "$pass passed, $fail failed"
  exit 1
fi

QAI_BASE_URL="http://127.0.0.1:$PORT/v1" QAI_API_KEY="$secret" QAI_MODEL=stories260K \
  QAI_PROMPT="$PROMPT" QAI_MAX_TOKENS="$N" QAI_RUN_TEXT="$RUN_TEXT" QAI_PROMPT_TOKENS="$PROMPT_TOKENS" \
  QAI_CHAT_USER="$USER_MSG" QAI_CHAT_RUN_TEXT="$CHAT_RUN_TEXT" QAI_N_EMBD="$N_EMBD" \
  timeout 300 node "$HERE/openai_client.mjs" >"$TMP/out" 2>&1
rc=$?
cat "$TMP/out"
[ "$rc" = 0 ] && ok || bad "openai_client.mjs exited $rc"

kill -TERM "$SRV"; wait "$SRV"; rc=$?; SRV=
[ "$rc" = 0 ] && ok || bad "SIGTERM exit code $rc"
# every /v1/ request the client made is in the audit chain, which verifies
"$QAI" audit verify >"$TMP/verify" 2>&1 && ok || bad "audit verify: $(cat "$TMP/verify")"
if grep -Eq 'serve: /[^ ]* 5[0-9][0-9] ' "$TMP/log"; then bad "the server answered 5xx: $(grep -E 'serve: /[^ ]* 5[0-9][0-9] ' "$TMP/log" | head -3)"; else ok; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
