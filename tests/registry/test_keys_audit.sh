#!/usr/bin/env bash
# qai keys and qai audit end to end on a SQLite store: the secret printed once
# and only its SHA-256 stored, list/--json, revoke, --data-dir/QAI_HOME/--store,
# usage errors; an audit chain written by an independent implementation of the
# construction in docs/store.md (Python's hashlib) is accepted by `qai audit
# verify`, tampering is caught and named, --anchor, tail; --help equals the docs.
set -u
QAI=${QAI_BIN:?}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# /dev/shm when writable: the same code paths without fsync on a shared disk
base=${QAI_TMP:-/tmp}; [ -w /dev/shm ] && base=/dev/shm
TMP=$(mktemp -d "$base/test_keys_audit.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
unset QAI_STORE
export QAI_HOME="$TMP/home"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect WHAT WANT GOT
  if [ "$2" = "$3" ]; then ok; else bad "$1: got '$3', want '$2'"; fi
}
py() { "$PY" - "$@"; }

# ---- keys -------------------------------------------------------------------------------
secret=$("$QAI" keys create --scope inference --rate 60/min --tokens 100000/day --name ci 2> "$TMP/err")
expect "create exit" 0 $?
[[ "$secret" =~ ^qai-[A-Za-z0-9_-]{43}$ ]] && ok || bad "secret shape: '$secret'"
grep -q "shown only once" "$TMP/err" && ok || bad "create should warn the secret is shown once"
id=$(grep -o 'key_[0-9a-f]\{12\}' "$TMP/err" | head -1)
[ -n "$id" ] && ok || bad "create should name the key id on stderr"
DB="$QAI_HOME/qai.db"
[ -f "$DB" ] && ok || bad "the store should be created at \$QAI_HOME/qai.db"
expect "store file mode" 600 "$(stat -c %a "$DB")"
want_hash=$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1)
if [ -x "$PY" ]; then
  got_hash=$(py "$DB" "$id" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT key_hash FROM api_keys WHERE id = ?", (sys.argv[2],)).fetchone()[0])
EOF
)
  expect "stored hash is sha256(secret)" "$want_hash" "$got_hash"
fi
if grep -q -a -F "${secret:12}" "$DB" "$DB-wal" 2>/dev/null; then bad "the secret is in the database files"; else ok; fi

"$QAI" keys list > "$TMP/list" || bad "list"
grep -q "$id" "$TMP/list" && grep -q "${secret:0:12}" "$TMP/list" && ok || bad "list should show id and prefix"
grep -q -F "$secret" "$TMP/list" && bad "list must not show the secret" || ok
"$QAI" keys list --json > "$TMP/list.json" || bad "list --json"
if [ -x "$PY" ]; then
  expect "list --json" "inference 60 100000 ci None 1" "$(py "$TMP/list.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
k = d["api_keys"][0]
print(k["scope"], k["rate_per_min"], k["tokens_per_day"], k["name"], k["revoked"], len(d["api_keys"]))
EOF
)"
fi
json=$("$QAI" keys create --scope admin --rate 2/s --json)
expect "create --json exit" 0 $?
[[ "$json" == *'"scope": "admin"'* && "$json" == *'"rate_per_min": 120'* && "$json" == *'"secret": "qai-'* ]] && ok || bad "create --json: $json"

"$QAI" keys revoke "$id" 2>/dev/null
expect "revoke" 0 $?
"$QAI" keys revoke "$id" 2>/dev/null
expect "revoke again" 0 $?
"$QAI" keys list | grep "$id" | grep -q 'T[0-9:]*Z  *ci$' && ok || bad "list should show the revocation time"
"$QAI" keys revoke key_000000000000 2> "$TMP/err"
expect "revoke unknown" 1 $?
grep -q "key_000000000000" "$TMP/err" && ok || bad "revoke message should name the key"

# where the store is: --data-dir beats QAI_HOME; --store beats both
"$QAI" keys create --scope inference --data-dir "$TMP/other" > /dev/null 2>&1 || bad "create --data-dir"
[ -f "$TMP/other/qai.db" ] && ok || bad "--data-dir should hold the store"
expect "keys in QAI_HOME" 2 "$("$QAI" keys list --json | grep -c '"id": "key_')"
expect "keys in --data-dir" 1 "$("$QAI" keys list --json --data-dir "$TMP/other" | grep -c '"id": "key_')"
"$QAI" keys create --scope inference --store "sqlite:$TMP/third.db" > /dev/null 2>&1 || bad "create --store"
expect "keys in --store" 1 "$("$QAI" keys list --json --store "$TMP/third.db" | grep -c '"id": "key_')"

# usage errors exit 2, failures exit 1
"$QAI" keys > /dev/null 2>&1; expect "no subcommand" 2 $?
"$QAI" keys frobnicate > /dev/null 2>&1; expect "unknown subcommand" 2 $?
"$QAI" keys create > /dev/null 2>&1; expect "create without scope" 2 $?
"$QAI" keys create --scope root > /dev/null 2>&1; expect "bad scope" 2 $?
"$QAI" keys create --scope inference --rate fast > /dev/null 2>&1; expect "bad rate" 2 $?
"$QAI" keys create --scope inference --tokens 5/week > /dev/null 2>&1; expect "bad tokens unit" 2 $?
"$QAI" keys list --scope admin > /dev/null 2>&1; expect "create flag on list" 2 $?
"$QAI" keys revoke > /dev/null 2>&1; expect "revoke without id" 2 $?
"$QAI" keys list --store "mysql://x" > /dev/null 2> "$TMP/err"; expect "bad store URL" 1 $?
grep -q "mysql://x" "$TMP/err" && ok || bad "bad URL message should name it"

# ---- audit -------------------------------------------------------------------------------
out=$("$QAI" audit verify)
expect "verify empty" 0 $?
[[ "$out" == "audit chain ok: 0 rows;"* ]] && ok || bad "verify empty: $out"
"$QAI" audit tail 2> "$TMP/err"
expect "tail empty" 0 $?

if [ -x "$PY" ]; then
  # five rows written by the documented construction, not by qai
  py "$DB" <<'EOF'
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
def f(v):
    if v is None: return b"-1:,"
    b = str(v).encode()
    return str(len(b)).encode() + b":" + b + b","
prev = "0" * 64
rows = [
    (1, 1700000000000, "key_0123456789ab", "bot", "stable", "/v1/chat/completions", 12, 30, 140, 200, "ok"),
    (2, 1700000000500, None, "bot", "canary", "/v1/completions", 5, 0, 3, 429, "rate_limited"),
    (3, 1700000001000, "key_0123456789ab", None, None, "/v1/models", 0, 0, 1, 200, None),
    (4, 1700000002000, "key_0123456789ab", "bot", "stable", "/v1/chat/completions", 7, 9, 88, 200, "ok"),
    (5, 1700000003000, "key_ffffffffffff", "vision", "", "/v1/embeddings", 100, 0, 12, 401, "error: invalid api key \u00e9"),
]
for r in rows:
    h = hashlib.sha256(bytes.fromhex(prev) + b"qai-audit-v1" + b"".join(f(v) for v in r)).hexdigest()
    db.execute("INSERT INTO audit_log (seq, time_ms, key_id, model, variant, endpoint, prompt_tokens, completion_tokens,"
               " latency_ms, status, outcome, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", r + (prev, h))
    prev = h
db.execute("UPDATE audit_head SET seq = 5, hash = ?", (prev,))
db.commit()
print(prev, file=open(sys.argv[1] + ".head", "w"))
EOF
  head=$(cat "$DB.head")
  out=$("$QAI" audit verify)
  expect "verify python-written chain" 0 $?
  expect "verify output" "audit chain ok: 5 rows; head 5:$head" "$out"
  "$QAI" audit verify --anchor "5:$head" > /dev/null; expect "anchor ok" 0 $?
  "$QAI" audit verify --anchor "4:$head" > /dev/null 2> "$TMP/err"; expect "wrong anchor" 1 $?
  grep -q "anchor row 4" "$TMP/err" && ok || bad "anchor message: $(cat "$TMP/err")"
  "$QAI" audit verify --anchor "5:xyz" > /dev/null 2>&1; expect "malformed anchor" 2 $?
  "$QAI" audit tail -n 2 --json > "$TMP/tail.json"; expect "tail --json" 0 $?
  expect "tail rows" "[4, 5] 401 error: invalid api key é ['stable', '']" "$(py "$TMP/tail.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
print([r["seq"] for r in t], t[1]["status"], t[1]["outcome"], [r["variant"] for r in t])
EOF
)"
  "$QAI" audit tail -n 3 | head -1 | grep -q '^ *3  2023-11-14T22:13:21.000Z  key_0123456789ab' && ok || bad "tail human: $("$QAI" audit tail -n 3 | head -1)"

  cp "$DB" "$TMP/good.db"; [ -f "$DB-wal" ] && cp "$DB-wal" "$TMP/good.db-wal"
  tamper() { py "$DB" "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.executescript(sys.argv[2]); db.commit()
EOF
  }
  untamper() { cp "$TMP/good.db" "$DB"; rm -f "$DB-wal" "$DB-shm"; [ -f "$TMP/good.db-wal" ] && cp "$TMP/good.db-wal" "$DB-wal"; true; }

  tamper "UPDATE audit_log SET completion_tokens = 31 WHERE seq = 3"
  "$QAI" audit verify > /dev/null 2> "$TMP/err"; expect "edited row" 1 $?
  grep -q "row 3: its contents do not match its hash" "$TMP/err" && ok || bad "edited row message: $(cat "$TMP/err")"
  "$QAI" audit verify --json > "$TMP/v.json" 2>/dev/null; expect "edited row --json exit" 1 $?
  grep -q '"ok": false, "rows": 2, .*"bad_row": 3' "$TMP/v.json" && ok || bad "verify --json: $(cat "$TMP/v.json")"
  untamper
  "$QAI" audit verify > /dev/null; expect "restored" 0 $?
  tamper "DELETE FROM audit_log WHERE seq = 2"
  "$QAI" audit verify > /dev/null 2> "$TMP/err"; expect "deleted middle row" 1 $?
  grep -q "row 3: its predecessor, row 2, is missing" "$TMP/err" && ok || bad "deleted row message: $(cat "$TMP/err")"
  untamper
  tamper "DELETE FROM audit_log WHERE seq = 5"
  "$QAI" audit verify > /dev/null 2> "$TMP/err"; expect "deleted last row" 1 $?
  grep -q "rows 5 to 5 were deleted" "$TMP/err" && ok || bad "truncation message: $(cat "$TMP/err")"
  untamper
else
  echo "SKIP: audit chain part: $PY not found"
fi
"$QAI" audit > /dev/null 2>&1; expect "audit no subcommand" 2 $?
"$QAI" audit tail -n 0 > /dev/null 2>&1; expect "tail -n 0" 2 $?
"$QAI" audit verify -n 3 > /dev/null 2>&1; expect "-n on verify" 2 $?

# ---- --help is what the docs say ---------------------------------------------------------
for cmd in keys audit; do
  "$QAI" $cmd --help > "$TMP/help" || bad "$cmd --help"
  awk -v want="usage: qai $cmd" 'index($0, want) == 1 && !found { on = 1; found = 1 } on && /^```/ { exit } on { print }' \
    "$ROOT/docs/$cmd.md" > "$TMP/doc"
  if cmp -s "$TMP/help" "$TMP/doc"; then ok; else bad "$cmd --help differs from docs/$cmd.md:"; diff "$TMP/help" "$TMP/doc" >&2; fi
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
