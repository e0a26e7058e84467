#!/usr/bin/env bash
# `make run`'s main job (scripts/run.sh) on a fresh data directory: it makes
# the default model with qai's own tokenizer trainer, data prepare and trainer
# from Debian's manual pages (STEPS=5 here), indexes the man pages, starts
# qai serve, and the curl example it prints works as printed (with the port
# the server picked); a second run reuses the model and the index.
set -u
QAI=${QAI_BIN:?}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_make_run.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
if ! dpkg -L manpages >/dev/null 2>&1; then echo "FAIL: Debian's manpages package is needed (scripts/deps.sh run installs it)"; exit 1; fi

start() { # $1: log file
  QAI_HOME="$TMP/home" STEPS=5 PORT=0 bash "$ROOT/scripts/run.sh" "$QAI" "" > "$1" 2>&1 &
  pid=$!
  for _ in $(seq 1800); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$1")
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  bad "the server did not start: $(tail -5 "$1")"
  return 1
}

if start "$TMP/run1.log"; then
  [ -s "$TMP/home/models/qai-man.gguf" ] && ok || bad "no default model"
  grep -q "1/3 tokenizer" "$TMP/run1.log" && grep -q "3/3 training" "$TMP/run1.log" && ok || bad "no progress lines"
  [ -f "$TMP/home/collections/man/CURRENT" ] && ok || bad "no man-page collection"
  # the printed curl example, with the port the server picked
  example=$(sed -n '/try:  curl/,/max_tokens/p' "$TMP/run1.log" | sed 's/^ *try: *//; s/\\$//' | tr -d '\n' | sed "s/localhost:0/localhost:$port/")
  out=$(eval "$example")
  echo "$out" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["choices"][0]["text"] and d["usage"]["completion_tokens"] == 48' \
    && ok || bad "the printed example: $example -> $out"
  hits=$(QAI_HOME="$TMP/home" "$QAI" search man "duplicate a file descriptor" -k 3 --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  [ "$hits" = 3 ] && ok || bad "search of the man-page collection: $hits hits"
  kill -TERM "$pid"; wait "$pid"; pid=
fi
# the second run reuses both
if start "$TMP/run2.log"; then
  grep -q "first run" "$TMP/run2.log" && bad "the second run made the model or the index again" || ok
  kill -TERM "$pid"; wait "$pid"; pid=
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
