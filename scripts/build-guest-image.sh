#!/usr/bin/env bash
# Builds the small guest that stands for kubevirt/cirros-container-disk-demo, from Debian
# packages only: a raw disk image (FAT + syslinux, booted by SeaBIOS) holding Debian's cloud
# kernel and a busybox initramfs whose /init is scripts/guest/init. See docs/guest-image.md.
#
# Usage: scripts/build-guest-image.sh [--out DIR]
# The image is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/virt-toolkit/guest/<key>/disk.img, the
# key hashing this script, scripts/guest/* and the package versions; a present one is reused.
# --out DIR also copies it to DIR/disk.img. The last line on stdout is the image's path; all
# progress goes to stderr. Needs no root: host tools come from scripts/install-deps.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out)
      [ $# -ge 2 ] || { echo "build-guest-image: --out needs a directory" >&2; exit 2; }
      out_dir=$2
      shift 2
      ;;
    --out=*)
      out_dir=${1#--out=}
      shift
      ;;
    -h | --help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-guest-image: unknown argument '$1' (usage: $0 [--out DIR])" >&2
      exit 2
      ;;
  esac
done

log() { echo "build-guest-image: $*" >&2; }
fail() { log "$*"; exit 1; }

for tool in apt-get apt-cache dpkg-deb dpkg-query cpio gzip mkfs.fat mcopy mmd syslinux sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/sbin:/usr/sbin" command -v "$tool" >/dev/null 2>&1 ||
    fail "'$tool' is missing: run scripts/install-deps.sh (as root)"
done
export PATH="$PATH:/sbin:/usr/sbin"

cache_root="${XDG_CACHE_HOME:-${HOME:?HOME or XDG_CACHE_HOME must be set}/.cache}/virt-toolkit/guest"
mkdir -p "$cache_root/debs"

# The package versions apt would fetch now; the cloud metapackage names the real kernel package.
candidate() {
  apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/ { print $2; exit }'
}
host_version() {
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown
}
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
  awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
kernel_version=""
busybox_version=$(candidate busybox-static)
[ -n "$kernel_pkg" ] && kernel_version=$(candidate "$kernel_pkg")
# sshd: Debian's dropbear (dynamically linked) with the shared libraries it needs, and OpenSSH's
# sftp-server for scp. Their libraries are resolved from the packages below at build time.
ssh_pkgs="dropbear-bin openssh-sftp-server libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g"
ssh_versions=""
for pkg in $ssh_pkgs; do
  version=$(candidate "$pkg")
  if [ -z "$version" ]; then
    ssh_versions=""
    break
  fi
  ssh_versions="$ssh_versions $pkg=$version"
done
if [ -z "$kernel_version" ] || [ -z "$busybox_version" ] || [ -z "$ssh_versions" ]; then
  # Without package lists (or offline) the last build still serves.
  if [ -f "$cache_root/latest/disk.img" ]; then
    log "apt knows no linux-image-cloud-amd64/busybox-static/dropbear-bin (run apt-get update); reusing the last build"
    image="$cache_root/$(readlink "$cache_root/latest")/disk.img"
  else
    fail "apt knows no linux-image-cloud-amd64, busybox-static or one of $ssh_pkgs: run 'apt-get update' (as root) first"
  fi
else
  key=$(
    {
      cat "$0" "$here"/guest/*
      echo "$kernel_pkg=$kernel_version busybox-static=$busybox_version$ssh_versions"
      echo "syslinux=$(host_version syslinux) mtools=$(host_version mtools)"
    } | sha256sum | cut -c1-16
  )
  image="$cache_root/$key/disk.img"
fi

if [ -f "$image" ]; then
  log "cached: $image"
else
  log "building $kernel_pkg $kernel_version + busybox-static $busybox_version into $cache_root/$key"
  work=$(mktemp -d "$cache_root/.build.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  # Fetch each .deb once; the file name carries the version, so the cache needs no expiry.
  fetch() {
    local pkg=$1 version=$2 deb
    deb=$(find "$cache_root/debs" -maxdepth 1 -name "${pkg}_*.deb" | while read -r f; do
      [ "$(dpkg-deb -f "$f" Version)" = "$version" ] && echo "$f"
    done | head -n 1)
    if [ -z "$deb" ]; then
      (cd "$work" && apt-get download "$pkg=$version" >"$work/apt.log" 2>&1) ||
        { cat "$work/apt.log" >&2; fail "apt-get download $pkg=$version failed"; }
      deb=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
      mv "$deb" "$cache_root/debs/"
      deb="$cache_root/debs/${deb##*/}"
    fi
    echo "$deb"
  }
  mkdir "$work/pkg"
  dpkg-deb -x "$(fetch "$kernel_pkg" "$kernel_version")" "$work/pkg"
  dpkg-deb -x "$(fetch busybox-static "$busybox_version")" "$work/pkg"
  busybox="$work/pkg/bin/busybox"
  kver=$(basename "$(find "$work/pkg/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)")
  vmlinuz="$work/pkg/boot/vmlinuz-$kver"
  [ -f "$vmlinuz" ] || fail "no kernel in $kernel_pkg (looked for boot/vmlinuz-$kver)"

  # --- initramfs root ---
  root="$work/root"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/acpi/PWRF,proc,sys,dev,run,tmp,mnt,root,home/cirros,var/log}
  ln -s ../run "$root/var/run"
  cp "$busybox" "$root/bin/busybox"
  "$busybox" --list-full | while read -r applet; do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done

  # sshd: dropbear, dropbearkey and sftp-server with exactly the libraries Debian's own loader
  # resolves for them (from the extracted packages, not the host's), and the loader itself.
  ssh_pkg="$work/ssh-pkg"
  mkdir "$ssh_pkg"
  for entry in $ssh_versions; do
    dpkg-deb -x "$(fetch "${entry%%=*}" "${entry#*=}")" "$ssh_pkg"
  done
  loader="$ssh_pkg/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
  [ -f "$loader" ] || fail "no ld-linux-x86-64.so.2 in libc6"
  libdir=lib/x86_64-linux-gnu
  mkdir -p "$root/$libdir" "$root/lib64" "$root/usr/lib/openssh" "$root/etc/dropbear"
  install -m 0755 "$ssh_pkg/usr/sbin/dropbear" "$root/usr/sbin/dropbear"
  install -m 0755 "$ssh_pkg/usr/bin/dropbearkey" "$root/usr/bin/dropbearkey"
  install -m 0755 "$ssh_pkg/usr/lib/openssh/sftp-server" "$root/usr/lib/openssh/sftp-server"
  # dropbear runs the sftp subsystem from /usr/lib/sftp-server.
  ln -s openssh/sftp-server "$root/usr/lib/sftp-server"
  install -m 0755 "$loader" "$root/$libdir/ld-linux-x86-64.so.2"
  ln -s "/$libdir/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"
  for bin in usr/sbin/dropbear usr/bin/dropbearkey usr/lib/openssh/sftp-server; do
    listing=$("$loader" --library-path "$ssh_pkg/lib/x86_64-linux-gnu:$ssh_pkg/usr/lib/x86_64-linux-gnu" \
      --list "$ssh_pkg/$bin") || fail "Debian's loader cannot list $bin's libraries: $listing"
    if echo "$listing" | grep -q 'not found'; then
      fail "$bin needs a library no package in '$ssh_pkgs' has: $(echo "$listing" | grep 'not found')"
    fi
    echo "$listing" | awk '$2 == "=>" && $3 ~ /^\// && $1 !~ /^\/|^ld-linux/ { print $1, $3 }' |
      while read -r soname path; do
        [ -e "$root/$libdir/$soname" ] || install -m 0755 "$path" "$root/$libdir/$soname"
      done
  done

  # Modules the guest loads (what the cloud kernel does not build in), in this order, and
  # everything they depend on. pvpanic first: a panic must reach QEMU as early as possible.
  modules="pvpanic-mmio pvpanic-pci virtio_pci virtio_blk virtio_net vfat nls_cp437 nls_ascii nls_utf8 isofs button evdev"
  "$busybox" depmod -b "$work/pkg" "$kver"
  moddir="lib/modules/$kver"
  needed=$(for m in $modules; do
    awk -v m="$m" -F': *' '{ n = $1; sub(/.*\//, "", n); sub(/\.ko$/, "", n) } n == m { print $1; if ($2 != "") print $2 }' \
      "$work/pkg/$moddir/modules.dep" | tr ' ' '\n'
  done | sort -u)
  for m in $modules; do
    echo "$needed" | grep -q "/$m\.ko\$" || fail "module $m is not in $kernel_pkg"
  done
  for path in $needed; do
    mkdir -p "$root/$moddir/$(dirname "$path")"
    cp "$work/pkg/$moddir/$path" "$root/$moddir/$path"
  done
  cp "$work/pkg/$moddir/modules.builtin" "$root/$moddir/" 2>/dev/null || true
  "$busybox" depmod -b "$root" "$kver"
  echo "$modules" | tr ' ' '\n' >"$root/etc/modules"

  install -m 0755 "$here/guest/init" "$root/init"
  install -m 0755 "$here/guest/udhcpc.script" "$root/etc/udhcpc.script"
  install -m 0755 "$here/guest/power-button" "$root/etc/acpi/PWRF/00000080"
  # The cirros demo's user: cirros / gocubsgo (a fixed salt keeps the build reproducible).
  hash=$("$busybox" mkpasswd -m sha512 gocubsgo virttoolkit)
  printf 'root:x:0:0:root:/root:/bin/sh\ncirros:x:1000:1000:cirros:/home/cirros:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:*:19000:0:99999:7:::\ncirros:%s:19000:0:99999:7:::\n' "$hash" >"$root/etc/shadow"
  chmod 0600 "$root/etc/shadow"
  printf 'root:x:0:\ncirros:x:1000:\n' >"$root/etc/group"
  printf '/bin/sh\n' >"$root/etc/shells"
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf 'virt-toolkit guest (cirros stand-in): login as cirros / gocubsgo\n\n' >"$root/etc/issue"
  printf 'export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='"'"'\\u@\\h:\\w\\$ '"'"'\n' >"$root/etc/profile"

  (cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -6 -n >"$work/initrd.img"

  # --- the disk: one FAT filesystem, no partition table; syslinux's boot sector is sector 0 ---
  # lockdown=confidentiality turns tracefs off: its thousands of inodes cost ~7 MiB at boot.
  # The rest trims TCG boot time (probes, self-tests, page zeroing). See docs/guest-image.md.
  cmdline="console=ttyS0 quiet nokaslr lockdown=confidentiality init_on_alloc=0 audit=0"
  cmdline="$cmdline cryptomgr.notests tsc=reliable no_timer_check mitigations=off"
  cmdline="$cmdline random.trust_cpu=on i8042.noaux 8250.nr_uarts=1 edd=off"
  cat >"$work/syslinux.cfg" <<EOF
DEFAULT guest
PROMPT 0
TIMEOUT 0
LABEL guest
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $cmdline
EOF
  kib=$(($(stat -c %s "$vmlinuz") / 1024 + $(stat -c %s "$work/initrd.img") / 1024 + 2048))
  mkfs.fat -C "$work/disk.img" "$kib" -n CIRROS >/dev/null
  export MTOOLS_SKIP_CHECK=1
  mcopy -i "$work/disk.img" "$vmlinuz" ::vmlinuz
  mcopy -i "$work/disk.img" "$work/initrd.img" ::initrd.img
  mcopy -i "$work/disk.img" "$work/syslinux.cfg" ::syslinux.cfg
  syslinux --install "$work/disk.img"

  final="$cache_root/$key"
  mkdir "$work/final"
  mv "$work/disk.img" "$work/final/disk.img"
  # Debian's cloud kernel does not start in less than about 72 MiB (docs/guest-image.md), so the
  # image declares its floor; virt-launcher gives the guest at least this much.
  printf '{"minMemory": "80Mi"}\n' >"$work/final/disk.img.meta.json"
  printf '%s=%s\nbusybox-static=%s\nkernel-release=%s\n' "$kernel_pkg" "$kernel_version" "$busybox_version" "$kver" \
    >"$work/final/versions.txt"
  echo "$ssh_versions" | tr ' ' '\n' | sed '/^$/d' >>"$work/final/versions.txt"
  # Atomic: a concurrent build of the same key may have won; then ours is dropped.
  if mv -T "$work/final" "$final" 2>/dev/null; then
    log "built $final/disk.img ($(du -k "$final/disk.img" | cut -f1) KiB)"
  else
    log "another build finished $final first; using it"
  fi
  ln -sfn "$key" "$cache_root/latest.tmp" && mv -T "$cache_root/latest.tmp" "$cache_root/latest"
fi

if [ -n "$out_dir" ]; then
  mkdir -p "$out_dir"
  cp "$image" "$out_dir/disk.img.tmp"
  cp "$image.meta.json" "$out_dir/disk.img.meta.json"
  mv "$out_dir/disk.img.tmp" "$out_dir/disk.img"
  image="$(cd "$out_dir" && pwd)/disk.img"
fi
echo "$image"
