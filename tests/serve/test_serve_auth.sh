#!/usr/bin/env bash
# qai serve on the store: --auth keys refuses requests without a valid key
# (401) and serves one with it; a revoked key is refused at once; every request lands
# in the audit chain, which verifies; --auth auto turns keys on once one exists.
set -u
QAI=${QAI_BIN:?}
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_serve_auth.XXXXXX")
export QAI_HOME=$TMP/home
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
PY=/usr/bin/python3

"$QAI" init --dim 32 --layers 1 --heads 2 --ffn 48 --vocab 300 "$TMP/m.gguf" 2>/dev/null || bad init
# --port 0 and the port the server prints: a port picked beforehand could be
# taken by another test's server in between (ctest runs tests in parallel)
port=
start() { # $1: auth mode
  "$QAI" serve -m "$TMP/m.gguf" --port 0 --auth "$1" --threads 1 --parallel 2 -q 2>"$TMP/serve.err" &
  pid=$!
  for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$TMP/serve.err")
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
    sleep 0.1
  done
  bad "server did not start: $(cat "$TMP/serve.err")"
}
stop() { kill -TERM "$pid"; wait "$pid"; pid=; }
req() { # $1: key ("" for none) -> prints the HTTP status
  curl -s -o "$TMP/body" -w '%{http_code}' ${1:+-H "Authorization: Bearer $1"} \
    "http://127.0.0.1:$port/v1/completions" -d '{"prompt": "hi", "max_tokens": 2}'
}

# no keys in the store: auto serves without them
start auto
[ "$(req "")" = 200 ] && ok || bad "auto without keys: $(cat "$TMP/body")"
stop
secret=$("$QAI" keys create --scope inference --name t 2>/dev/null | grep -o 'qai-[A-Za-z0-9_-]*' | head -1)
[ -n "$secret" ] && ok || bad "keys create"
start auto
[ "$(req "")" = 401 ] && grep -q "missing API key" "$TMP/body" && ok || bad "no key: $(cat "$TMP/body")"
[ "$(req "qai-wrong")" = 401 ] && ok || bad "wrong key"
[ "$(req "$secret")" = 200 ] && grep -q '"usage"' "$TMP/body" && ok || bad "good key: $(cat "$TMP/body")"
id=$("$QAI" keys list --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["api_keys"][0]["id"])')
"$QAI" keys revoke "$id" >/dev/null 2>&1 || bad revoke
# revocation takes effect at once: the running server looks the key up per
# request (and its store and audit writer keep their SQLite locks, so the
# revoking process cannot reset the WAL under them: test_apikeys)
[ "$(req "$secret")" = 401 ] && grep -q "revoked" "$TMP/body" && ok || bad "revoked key on the running server: $(cat "$TMP/body")"
stop
start keys
[ "$(req "")" = 401 ] && ok || bad "--auth keys without a key: $(cat "$TMP/body")"
[ "$(req "$secret")" = 401 ] && grep -q "revoked" "$TMP/body" && ok || bad "revoked key on a new server: $(cat "$TMP/body")"
stop
"$QAI" audit verify >/dev/null 2>&1 && ok || bad "audit chain"
n=$("$QAI" audit tail -n 100 --json | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" -ge 5 ] && ok || bad "audit rows: $n"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
