#!/usr/bin/env bash
# qai keygen: writes keys/<keyid>.pub (0644, 2112 bytes) and keys/<keyid>.key
# (0600, 2216 bytes, passphrase not in it) under QAI_HOME or --data-dir; prints
# the key id and paths (text and --json); takes the passphrase from
# QAI_PASSPHRASE or --passphrase-file, never from a flag; without any source
# and no terminal it is bad usage (exit 2); --help matches docs/keygen.md.
set -u
QAI=${QAI_BIN:?}
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_keygen.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
DOCS=$(dirname "$0")/../../docs/keygen.md
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
mode() { stat -c %a "$1"; }
size() { stat -c %s "$1"; }

export QAI_HOME="$TMP/home"
secret='correct horse battery staple'
QAI_PASSPHRASE="$secret" "$QAI" keygen --name "ci@test" --kdf interactive > "$TMP/out" 2> "$TMP/err"
[ $? = 0 ] && ok || bad "keygen exited non-zero: $(cat "$TMP/err")"
kid=$(sed -n 's/^key id: *//p' "$TMP/out")
[[ "$kid" =~ ^[0-9a-f]{32}$ ]] && ok || bad "no key id printed: $(cat "$TMP/out")"
pub="$QAI_HOME/keys/$kid.pub" key="$QAI_HOME/keys/$kid.key"
grep -qF "public key:  $pub" "$TMP/out" && ok || bad "public key path not printed"
[ -f "$pub" ] && [ "$(size "$pub")" = 2112 ] && [ "$(mode "$pub")" = 644 ] && ok || bad "bad .pub file"
[ -f "$key" ] && [ "$(size "$key")" = 2216 ] && [ "$(mode "$key")" = 600 ] && ok || bad "bad .key file"
[ "$(head -c 4 "$pub")" = QAIP ] && [ "$(head -c 4 "$key")" = QAIK ] && ok || bad "bad magics"
grep -qaF "$secret" "$key" && bad "passphrase appears in the key file" || ok
grep -qaF "ci@test" "$pub" && ok || bad "name not in the public key file"
# no temporary files left behind
[ "$(ls "$QAI_HOME/keys" | wc -l)" = 2 ] && ok || bad "stray files: $(ls "$QAI_HOME/keys")"
# the public key is recorded in the store at once: listed, and revocable
listed() { "$QAI" keys list --json "$@" | /usr/bin/python3 -c 'import json,sys; print(" ".join(k["key_id"] + ":" + str(k.get("revoked")) for k in json.load(sys.stdin)["signing_keys"]))'; }
[ "$(listed)" = "$kid:None" ] && ok || bad "keygen did not record the key in the store: $(listed)"
"$QAI" keys revoke "$kid" --reason "test" >/dev/null 2>&1 && ok || bad "revoking the new signing key"
case "$(listed)" in "$kid:None"|"") bad "revocation not recorded: $(listed)" ;; "$kid:"*) ok ;; *) bad "listing: $(listed)" ;; esac
QAI_PASSPHRASE=x "$QAI" keygen --no-store --kdf interactive --data-dir "$TMP/nostore" >/dev/null 2>&1 && [ ! -e "$TMP/nostore/qai.db" ] && ok || bad "--no-store touched a store"

# --passphrase-file, --data-dir wins over QAI_HOME, --json
printf 'from a file\n' > "$TMP/pw"
env -u QAI_PASSPHRASE "$QAI" keygen --passphrase-file "$TMP/pw" --data-dir "$TMP/dd" --kdf interactive --json \
    > "$TMP/json" 2> "$TMP/err"
[ $? = 0 ] && ok || bad "keygen --json failed: $(cat "$TMP/err")"
kid2=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["algorithms"]==["ed25519","ml-dsa-65"]; assert d["public_key"].endswith(d["key_id"]+".pub"); assert d["private_key"].endswith(d["key_id"]+".key"); assert isinstance(d["created"], int); print(d["key_id"])' "$TMP/json" 2>&1)
[[ "$kid2" =~ ^[0-9a-f]{32}$ ]] && ok || bad "--json output: $kid2"
[ -f "$TMP/dd/keys/$kid2.key" ] && [ ! -e "$QAI_HOME/keys/$kid2.key" ] && ok || bad "--data-dir not used"
[ "$kid2" != "$kid" ] && ok || bad "two keygens gave the same key id"

# never a plain flag; no passphrase source and no terminal is bad usage
"$QAI" keygen --passphrase hunter2 > /dev/null 2> "$TMP/err"
[ $? = 2 ] && grep -q "never taken as a flag" "$TMP/err" && ok || bad "--passphrase should be refused with exit 2"
env -u QAI_PASSPHRASE setsid "$QAI" keygen --kdf interactive < /dev/null > /dev/null 2> "$TMP/err"
[ $? = 2 ] && grep -q "no passphrase" "$TMP/err" && ok || bad "no passphrase source: want exit 2, got: $(cat "$TMP/err")"
: > "$TMP/empty"
env -u QAI_PASSPHRASE "$QAI" keygen --passphrase-file "$TMP/empty" > /dev/null 2> "$TMP/err"
[ $? = 1 ] && grep -q "empty" "$TMP/err" && ok || bad "empty passphrase file should fail"
QAI_PASSPHRASE=x "$QAI" keygen --name "$(printf 'a\tb')" --kdf interactive > /dev/null 2> "$TMP/err"
[ $? = 1 ] && grep -q "control character" "$TMP/err" && ok || bad "control character in name should fail"
QAI_PASSPHRASE=x "$QAI" keygen --kdf extreme > /dev/null 2>&1
[ $? = 2 ] && ok || bad "--kdf extreme should be bad usage"
"$QAI" keygen --bogus > /dev/null 2>&1
[ $? = 2 ] && ok || bad "unknown option should be bad usage"

# the terminal prompt, driven through a pseudo-terminal (Python's pty module,
# which answers each prompt only after it appears): asked twice, not echoed;
# two different answers fail and write nothing
tty_keygen() { # $1 $2: the two answers, $3: data dir; prints the session
    env -u QAI_PASSPHRASE /usr/bin/python3 - "$QAI" "$1" "$2" "$3" <<'PY'
import os, pty, select, signal, sys
qai, a1, a2, d = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(qai, [qai, "keygen", "--kdf", "interactive", "--data-dir", d])
out = b""
def read_until(marker):
    global out
    while marker not in out:
        if not select.select([fd], [], [], 60)[0]:  # a hang is a failure, not a stuck test
            os.kill(pid, signal.SIGKILL)
            print("timed out waiting for", marker)
            return
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            return
        if not chunk:
            return
        out += chunk
read_until(b"passphrase for the new key: "); os.write(fd, a1.encode() + b"\n")
read_until(b"repeat the passphrase: "); os.write(fd, a2.encode() + b"\n")
read_until(b"\0")  # to the end of the output
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
}
tty_keygen "tty secret" "tty secret" "$TMP/tty" > "$TMP/ttyout" 2>&1
[ $? = 0 ] && grep -q "key id:" "$TMP/ttyout" && ! grep -q "tty secret" "$TMP/ttyout" && ok ||
    bad "terminal prompt: $(cat -A "$TMP/ttyout")"
[ "$(ls "$TMP/tty/keys" 2>/dev/null | wc -l)" = 2 ] && ok || bad "terminal prompt wrote no keys"
tty_keygen "one" "two" "$TMP/tty2" > "$TMP/ttyout" 2>&1
[ $? = 1 ] && grep -q "differ" "$TMP/ttyout" && [ ! -e "$TMP/tty2/keys" ] && ok ||
    bad "mismatched passphrases: $(cat -A "$TMP/ttyout")"

# --help and docs/keygen.md agree on the synopsis; the doc's example runs
"$QAI" keygen --help > "$TMP/help"
[ $? = 0 ] && ok || bad "--help failed"
head -n 2 "$TMP/help" | sed 's/^usage: //; s/^ *//' > "$TMP/h2"
sed -n '/^```$/,/^```$/p' "$DOCS" | sed -n '2,3p' | sed 's/^ *//' > "$TMP/d2"
cmp -s "$TMP/h2" "$TMP/d2" && ok || bad "synopsis differs between --help and docs/keygen.md: $(diff "$TMP/h2" "$TMP/d2")"
example=$(sed -n '/^## Example/,$p' "$DOCS" | sed -n '/^```sh$/,/^```$/p' | grep -v '^```' | head -n 1)
[ -n "$example" ] && (cd "$TMP" && QAI_HOME="$TMP/ex" bash -c "${example/qai /\"$QAI\" }" > "$TMP/exout" 2>&1) \
    && grep -q "key id:" "$TMP/exout" && ok || bad "docs example failed: $example: $(cat "$TMP/exout" 2>/dev/null)"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
