#!/usr/bin/env bash
# Installs the Debian packages the data plane needs: QEMU to run guests, and the host tools
# scripts/build-guest-image.sh and scripts/test-guest-image.sh use (mtools, dosfstools,
# syslinux, cpio, socat; openssh-client for the ssh test; openssl for deploy/certs.sh and its
# test). Idempotent: prints one line when
# everything is present.
# Not root: prints the exact command to run and exits 1.
# Usage: scripts/install-deps.sh
set -euo pipefail

packages=(qemu-system-x86 qemu-utils mtools dosfstools syslinux syslinux-common cpio socat xz-utils openssh-client openssl)

installed_version() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null | awk '$1 == "ii" { print $2 }'
}

missing=()
for p in "${packages[@]}"; do
  [ -n "$(installed_version "$p")" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all present (${packages[*]})"
  exit 0
fi

# An old or empty package list finds nothing (and no candidate versions below): as root, refresh
# it once before deciding what to ask for.
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
fi

# A qemu-utils newer than the QEMU on offer (a backport) makes apt refuse qemu-system-x86,
# which wants its own version's qemu-utils: ask for the release's qemu-utils explicitly.
cmd=(apt-get install -y --no-install-recommends)
utils_now=$(installed_version qemu-utils)
qemu_candidate=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/ { print $2 }')
release=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ -n "$utils_now" ] && [ -n "$qemu_candidate" ] && [ "$qemu_candidate" != "(none)" ] &&
  dpkg --compare-versions "$utils_now" gt "$qemu_candidate"; then
  cmd+=(--allow-downgrades)
  missing=("${missing[@]/#qemu-utils/}")
  missing+=("qemu-utils/${release:-bookworm}")
  # qemu-system-x86 must come along so the downgraded qemu-utils matches it.
  [[ " ${missing[*]} " == *" qemu-system-x86 "* ]] || missing+=(qemu-system-x86)
fi
# Drop the empty slots left by the substitution above.
wanted=()
for p in "${missing[@]}"; do [ -n "$p" ] && wanted+=("$p"); done
cmd+=("${wanted[@]}")

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${wanted[*]}; run as root:" >&2
  echo "  apt-get update && ${cmd[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${wanted[*]}"
export DEBIAN_FRONTEND=noninteractive
"${cmd[@]}" >/dev/null
echo "install-deps: done"
