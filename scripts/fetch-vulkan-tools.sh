#!/usr/bin/env bash
# Fetches the Vulkan build tools the pinned llama.cpp tree needs and Debian 12
# lacks, from Debian 13's archive into the cache: a glslc that compiles its
# shaders (they use GL_KHR_cooperative_matrix; Debian 12's glslang 11 does not
# know it) and Vulkan 1.4 and SPIR-V headers (ggml-vulkan.cpp uses
# VK_KHR_cooperative_matrix and VK_EXT_layer_settings). Prints the directory
# on stdout (the last line): DIR/glslc runs glslc, DIR/usr/include holds the
# headers. Nothing is installed: the packages (glslc, libshaderc1 and the
# C/C++ runtimes glslc needs, libvulkan-dev's and spirv-headers' headers) are
# unpacked under $COLONY_CACHE/vulkan-tools-trixie, and glslc runs with its
# own dynamic loader. The system's Vulkan loader (libvulkan1) is the one
# linked. Idempotent.
#
#   scripts/fetch-vulkan-tools.sh
#
# Verification: the suite's InRelease is checked with gpgv against Debian's
# keyring (debian-archive-keyring), Packages.xz against the SHA-256 it lists,
# and every .deb against the SHA-256 Packages lists.
set -euo pipefail
cache=${COLONY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/colony}
root="$cache/vulkan-tools-trixie"
wrapper="$root/glslc"
mirror=${COLONY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie arch=amd64
packages=(glslc libshaderc1 libstdc++6 libgcc-s1 libc6 libvulkan-dev spirv-headers)
log() { echo "fetch-vulkan-tools: $*" >&2; }
die() { echo "fetch-vulkan-tools: error: $*" >&2; exit 1; }

# Does this glslc compile a cooperative-matrix shader?
supports_coopmat() {
  local probe
  probe=$(mktemp -d)
  cat > "$probe/t.comp" <<'GLSL'
#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
layout(local_size_x = 32) in;
void main() { coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> m = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0f); }
GLSL
  "$1" -fshader-stage=compute --target-env=vulkan1.3 "$probe/t.comp" -o "$probe/t.spv" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}

if [ -x "$wrapper" ] && [ -f "$root/usr/include/vulkan/vulkan.hpp" ] && supports_coopmat "$wrapper"; then
  echo "$root"; exit 0
fi
[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are handled; install a glslc with GL_KHR_cooperative_matrix (shaderc 2024+)"
for tool in curl gpgv xz dpkg-deb sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring is missing (apt-get install debian-archive-keyring)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching $suite's package index from $mirror"
curl -fsS "$mirror/dists/$suite/InRelease" -o "$work/InRelease" || die "cannot download $suite's InRelease"
gpgv --keyring "$keyring" "$work/InRelease" 2>/dev/null || die "$suite's InRelease does not verify against $keyring"
index="main/binary-$arch/Packages.xz"
want=$(awk -v f="$index" '/^SHA256:/{s=1; next} /^[A-Za-z]/{s=0} s && $3 == f {print $1}' "$work/InRelease")
[ -n "$want" ] || die "InRelease lists no SHA-256 for $index"
curl -fsS "$mirror/dists/$suite/$index" -o "$work/Packages.xz" || die "cannot download $index"
[ "$(sha256sum < "$work/Packages.xz" | cut -d' ' -f1)" = "$want" ] || die "$index does not match its SHA-256"
xz -dc "$work/Packages.xz" > "$work/Packages"

rm -rf "$root.tmp"
mkdir -p "$root.tmp"
for p in "${packages[@]}"; do
  read -r file sum < <(awk -v p="$p" '
    /^Package: /{cur=$2} /^Filename: /{f=$2} /^SHA256: /{s=$2}
    /^$/{if (cur == p && f != "") {print f, s; exit} cur=""; f=""; s=""}' "$work/Packages")
  [ -n "${file:-}" ] || die "$suite has no package $p"
  log "$p: $file"
  curl -fsS "$mirror/$file" -o "$work/$p.deb" || die "cannot download $file"
  [ "$(sha256sum < "$work/$p.deb" | cut -d' ' -f1)" = "$sum" ] || die "$file does not match its SHA-256"
  dpkg-deb -x "$work/$p.deb" "$root.tmp"
done
cat > "$root.tmp/glslc" <<WRAP
#!/bin/sh
# glslc from Debian $suite with its own C/C++ runtime (scripts/fetch-glslc.sh)
r=\$(dirname "\$0")
exec "\$r/usr/lib64/ld-linux-x86-64.so.2" --library-path "\$r/usr/lib/x86_64-linux-gnu:\$r/lib/x86_64-linux-gnu" "\$r/usr/bin/glslc" "\$@"
WRAP
chmod +x "$root.tmp/glslc"
[ -e "$root.tmp/usr/lib64/ld-linux-x86-64.so.2" ] || die "the unpacked libc6 has no usr/lib64/ld-linux-x86-64.so.2"
supports_coopmat "$root.tmp/glslc" || die "the unpacked glslc does not compile a cooperative-matrix shader"
rm -rf "$root"; mv "$root.tmp" "$root"
log "glslc $("$wrapper" --version 2>/dev/null | head -n1) and the Vulkan headers ready in $root"
echo "$root"
