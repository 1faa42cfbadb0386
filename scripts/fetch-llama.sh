#!/usr/bin/env bash
# Fetches the pinned llama.cpp tree into a cache outside the repository and
# prints its path on stdout (the last line). Idempotent: a tree already in the
# cache at the pinned commit is reused without touching the network.
#
#   scripts/fetch-llama.sh            # -> $COLONY_CACHE/llama.cpp-<commit12>
#
# Source: the npm package named in scripts/llama-pin.env; its tarball is
# checked against the pinned sha512 integrity, and the git bundle inside it
# against the pinned commit id. Errors exit non-zero with one line on stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=llama-pin.env
source "$here/llama-pin.env"
cache=${COLONY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/colony}
tree="$cache/llama.cpp-${COLONY_LLAMA_COMMIT:0:12}"
log() { echo "colony-fetch: $*" >&2; }
die() { echo "colony-fetch: error: $*" >&2; exit 1; }

if [ -f "$tree/.colony-verified" ] && \
   [ "$(git -C "$tree" rev-parse HEAD 2>/dev/null)" = "$COLONY_LLAMA_COMMIT" ]; then
  echo "$tree"; exit 0
fi

command -v npm >/dev/null || die "npm is needed to fetch $COLONY_LLAMA_NPM_PACKAGE (run scripts/setup.sh)"
command -v git >/dev/null || die "git is needed (run scripts/setup.sh)"
mkdir -p "$cache"
work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "downloading $COLONY_LLAMA_NPM_PACKAGE from the npm registry"
tgz=$(cd "$work" && npm pack --silent "$COLONY_LLAMA_NPM_PACKAGE" 2>/dev/null | tail -n1)
[ -f "$work/$tgz" ] || die "npm pack $COLONY_LLAMA_NPM_PACKAGE failed"
got="sha512-$(openssl dgst -sha512 -binary "$work/$tgz" | base64 | tr -d '\n')"
[ "$got" = "$COLONY_LLAMA_NPM_INTEGRITY" ] || \
  die "integrity mismatch for $tgz: expected $COLONY_LLAMA_NPM_INTEGRITY, got $got"
log "integrity ok ($COLONY_LLAMA_NPM_INTEGRITY)"

tar -xzf "$work/$tgz" -C "$work" package/llama/gitRelease.bundle
bundle="$work/package/llama/gitRelease.bundle"
git bundle verify -q "$bundle" >/dev/null 2>&1 || die "git bundle in $tgz does not verify"
rm -rf "$tree.tmp"
git -c advice.detachedHead=false clone -q "$bundle" "$tree.tmp"
head=$(git -C "$tree.tmp" rev-parse HEAD)
[ "$head" = "$COLONY_LLAMA_COMMIT" ] || die "bundle holds commit $head, expected $COLONY_LLAMA_COMMIT"
git -C "$tree.tmp" remote remove origin 2>/dev/null || true
echo "$COLONY_LLAMA_NPM_PACKAGE $COLONY_LLAMA_NPM_INTEGRITY $head" > "$tree.tmp/.colony-verified"
rm -rf "$tree"; mv "$tree.tmp" "$tree"
log "llama.cpp $head ready in $tree"
echo "$tree"
