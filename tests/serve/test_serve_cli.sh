#!/usr/bin/env bash
# qai serve end to end as a command, on the trained stories260K model: greedy
# completions over HTTP equal `qai run --temp 0`; serve.yaml with two model
# names and a weighted route; --kv-type / kv_type; SIGHUP reloads the weights; SIGTERM drains and
# exits 0; bad usage exits 2, a missing model 1; --help matches docs/serve.md.
set -u
QAI=${QAI_BIN:?}
DATA=${QAI_DATA:?}/models
DOCS=$(dirname "$0")/../../docs/serve.md
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_serve_cli.XXXXXX")
SRV=
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { if [ "$2" = "$3" ]; then ok; else bad "$1: got '$3', want '$2'"; fi; }
MODEL=$DATA/stories260K-gguf/stories260K.gguf
J() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start() { # start CONFIG-ARGS...: runs qai serve on a free port, sets SRV and PORT
  "$QAI" serve --port 0 --threads 1 "$@" 2>"$TMP/log" &
  SRV=$!
  PORT=
  for _ in $(seq 1 200); do
    PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$TMP/log")
    [ -n "$PORT" ] && break
    sleep 0.05
  done
  [ -n "$PORT" ] || { bad "server did not start: $(cat "$TMP/log")"; return 1; }
}

# greedy equals qai run
start -m "$MODEL" --parallel 2 --ctx 256 || exit 1
want=$("$QAI" run -m "$MODEL" -p "Once upon a time" -n 24 --temp 0 --no-echo -t 1)
got=$(curl -s "localhost:$PORT/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":24,"temperature":0}' | J 'd["choices"][0]["text"]')
expect "completion = qai run" "$want" "$got"
got=$(curl -sN "localhost:$PORT/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":24,"temperature":0,"stream":true}' |
  /usr/bin/python3 -c '
import json, sys
out = ""
for line in sys.stdin:
    line = line.strip()
    if line.startswith("data: ") and line != "data: [DONE]":
        out += json.loads(line[6:])["choices"][0]["text"]
print(out)')
expect "streamed completion = qai run" "$want" "$got"
expect "/ready" 200 "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/ready")"
expect "chat without template" 400 "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/v1/chat/completions" -d '{"messages":[{"role":"user","content":"hi"}]}')"
kill -TERM "$SRV"; wait "$SRV"; rc=$?; SRV=
expect "SIGTERM exit code" 0 "$rc"
grep -q "stopped" "$TMP/log" && ok || bad "no 'stopped' line after SIGTERM"
grep -q "KV cache f16)" "$TMP/log" && ok || bad "the default KV cache is not f16: $(head -3 "$TMP/log")"

# --kv-type f32 (and serve.yaml's kv_type, which the flag overrides) equals qai run --kv-type f32
printf 'models: {a: %s}\nkv_type: f32\n' "$MODEL" > "$TMP/kv.yaml"
start --config "$TMP/kv.yaml" --ctx 256 || exit 1
grep -q "KV cache f32)" "$TMP/log" && ok || bad "kv_type: f32 not used: $(head -3 "$TMP/log")"
want=$("$QAI" run -m "$MODEL" -p "Once upon a time" -n 24 --temp 0 --no-echo -t 1 --kv-type f32)
got=$(curl -s "localhost:$PORT/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":24,"temperature":0}' | J 'd["choices"][0]["text"]')
expect "f32 completion = qai run --kv-type f32" "$want" "$got"
kill -TERM "$SRV"; wait "$SRV"; SRV=
start --config "$TMP/kv.yaml" --ctx 256 --kv-type f16 || exit 1
grep -q "KV cache f16)" "$TMP/log" && ok || bad "--kv-type f16 does not override the config: $(head -3 "$TMP/log")"
kill -TERM "$SRV"; wait "$SRV"; SRV=
printf 'models: {a: %s}\nkv_type: f8\n' "$MODEL" > "$TMP/badkv.yaml"
"$QAI" serve --config "$TMP/badkv.yaml" --port 0 2>"$TMP/err"; expect "config kv_type: f8" 1 $?
grep -q "kv_type" "$TMP/err" && ok || bad "kv_type error does not name the key: $(cat "$TMP/err")"
"$QAI" serve -m "$MODEL" --kv-type f8 --port 0 2>/dev/null; expect "--kv-type f8" 2 $?

# config: two names for the model, a route, SIGHUP reload
cat > "$TMP/serve.yaml" <<YAML
parallel: 2
ctx: 128
template: chatml
models:
  a: $MODEL
  b: {path: $MODEL}
routes:
  ab:
    variants:
      va: {model: a, weight: 1}
      vb: {model: b, weight: 0}
YAML
start --config "$TMP/serve.yaml" || exit 1
variant() { curl -s -D - -o /dev/null "localhost:$PORT/v1/completions" -d '{"model":"ab","prompt":"Hi","max_tokens":2}' | tr -d '\r' | sed -n 's/^X-Qai-Variant: //Ip'; }
expect "route before reload" va "$(variant)"
expect "models listed" "a b ab" "$(curl -s "localhost:$PORT/v1/models" | J '" ".join(m["id"] for m in d["data"])')"
sed -i 's/weight: 1}/weight: 0}/; s/vb: {model: b, weight: 0}/vb: {model: b, weight: 3}/' "$TMP/serve.yaml"
kill -HUP "$SRV"
for _ in $(seq 1 100); do grep -q "reloaded the routes" "$TMP/log" && break; sleep 0.05; done
expect "route after SIGHUP" vb "$(variant)"
expect "chat with the config's template" 200 "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/v1/chat/completions" -d '{"model":"a","messages":[{"role":"user","content":"hi"}],"max_tokens":4}')"
kill -INT "$SRV"; wait "$SRV"; rc=$?; SRV=
expect "SIGINT exit code" 0 "$rc"

# config: the command's settings (keys, store, data directory, signatures, logging); flags win
rm -rf "$TMP/dd"
cat > "$TMP/keys.yaml" <<YAML
models: {a: $MODEL}
auth: keys
data_dir: $TMP/dd
quiet: true
YAML
start --config "$TMP/keys.yaml" || exit 1
expect "config auth: keys, no key" 401 "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/v1/completions" -d '{"prompt":"Hi","max_tokens":2}')"
[ -f "$TMP/dd/qai.db" ] && ok || bad "config data_dir: no store in $TMP/dd"
kill -TERM "$SRV"; wait "$SRV"; SRV=
grep -q "serve: /v1/completions" "$TMP/log" && bad "config quiet: access lines were logged" || ok
start --config "$TMP/keys.yaml" --auth none || exit 1
expect "--auth none overrides the config" 200 "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/v1/completions" -d '{"prompt":"Hi","max_tokens":2}')"
kill -TERM "$SRV"; wait "$SRV"; SRV=
printf 'models: {a: %s}\nrequire_signed: true\n' "$MODEL" > "$TMP/signed.yaml"
"$QAI" serve --config "$TMP/signed.yaml" --port 0 2>"$TMP/err"; expect "config require_signed refuses a plain GGUF" 2 $?
printf 'models: {a: %s}\nauth: maybe\n' "$MODEL" > "$TMP/badauth.yaml"
"$QAI" serve --config "$TMP/badauth.yaml" --port 0 2>"$TMP/err"; expect "config auth: maybe" 1 $?
grep -q "'auth'" "$TMP/err" && ok || bad "the error does not name 'auth': $(cat "$TMP/err")"

# usage errors and failures
"$QAI" serve --port 99999 -m "$MODEL" 2>/dev/null; expect "bad port" 2 $?
"$QAI" serve 2>/dev/null; expect "no model" 2 $?
"$QAI" serve -m "$TMP/missing.gguf" --port 0 2>"$TMP/err"; expect "missing model" 1 $?
grep -q "missing.gguf" "$TMP/err" && ok || bad "the error does not name the file: $(cat "$TMP/err")"
printf 'port: 1\nbogus: 2\n' > "$TMP/bad.yaml"
"$QAI" serve --config "$TMP/bad.yaml" 2>"$TMP/err"; expect "unknown config key" 1 $?
grep -q "bogus" "$TMP/err" && ok || bad "the error does not name the key"

# every flag of --help is documented
for f in $("$QAI" serve --help | grep -o -- '--[a-z-]*' | sort -u); do
  grep -q -- "$f" "$DOCS" && ok || bad "flag $f is not in docs/serve.md"
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
