#!/usr/bin/env bash
# Installs the Debian packages qai needs to build and test, when missing.
# Usage: scripts/deps.sh [build|run|test|fuzz|bench]  (bench adds the peers we measure against;
# test also installs the npm packages of the OpenAI-client test: scripts/deps_npm.sh)
set -euo pipefail
need=(build-essential cmake pkg-config libpcre2-dev libutf8proc-dev libcjson-dev libsodium-dev libsqlite3-dev
      libyaml-dev libarchive-dev libzstd-dev libmicrohttpd-dev libpq-dev)
case "${1:-build}" in
  test) need+=(python3 postgresql manpages manpages-dev) ;;
  run) need+=(manpages manpages-dev) ;;
  fuzz) need+=(clang libclang-rt-dev) ;;
  bench) need+=(python3 python3-numpy python3-torch python3-hnswlib python3-faiss sentencepiece wordnet-base libopenblas0-pthread wrk time bc) ;;
esac
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
npm_deps() { if [ "$1" = test ]; then "$(dirname "$0")/deps_npm.sh"; fi; }
if [ ${#missing[@]} -eq 0 ]; then npm_deps "${1:-build}"; exit 0; fi
echo "qai: installing Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
npm_deps "${1:-build}"
