#!/usr/bin/env bash
# Boots the guest image from scripts/build-guest-image.sh under QEMU (TCG) with NoCloud seeds and
# checks what a user sees: the console lines, the SMBIOS UUID, user-data output, the DHCP
# address, a login on the serial console while a user-data job keeps printing, a panic ending
# QEMU with failure, a clean poweroff from user-data and from the ACPI power button (QMP), and
# ssh with a key from a #cloud-config seed, in the image's minMemory.
# Usage: scripts/test-guest-image.sh [IMAGE]   (env GUEST_MEM_MIB, default 128)
# Needs qemu-system-x86_64, mtools, dosfstools, python3 and ssh/ssh-keygen (openssh-client).
# Without them it prints SKIPPED and exits 0, except under CI=true, where that fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH="$PATH:/sbin:/usr/sbin"
mem=${GUEST_MEM_MIB:-128}
uuid=0d2a2043-41c0-59c3-9b17-025022203668

for tool in qemu-system-x86_64 mkfs.fat mcopy python3 ssh ssh-keygen; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
      echo "FAIL: $tool is missing (scripts/install-deps.sh installs it)" >&2
      exit 1
    fi
    echo "SKIPPED: $tool is missing (scripts/install-deps.sh installs it)"
    exit 0
  fi
done

image=${1:-$("$here/build-guest-image.sh" | tail -n 1)}
[ -f "$image" ] || { echo "FAIL: no image at $image" >&2; exit 1; }
work=$(mktemp -d)
qemu_pid=""
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
pass() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# make_seed DIR USER_DATA: a vfat NoCloud seed labelled cidata, as the launcher makes it.
make_seed() {
  local dir=$1
  mkdir -p "$dir"
  printf '%s\n' "$2" >"$dir/user-data"
  printf 'instance-id: %s\nlocal-hostname: testvm\n' "${dir##*/}" >"$dir/meta-data"
  mkfs.fat -C "$dir/seed.img" 1024 -n CIDATA >/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -i "$dir/seed.img" "$dir/user-data" "$dir/meta-data" ::
}

# boot DIR [NETDEV_OPTIONS [MEM_MIB]]: starts QEMU in the background as the data plane does (console on a unix socket with a
# log file, QMP on a unix socket); its exit code lands in DIR/exit.
boot() {
  local dir=$1
  (
    set +e
    qemu-system-x86_64 -accel tcg -machine q35 -m "${3:-$mem}" -nodefaults -nographic -boot strict=on \
      -chardev socket,id=serial0,path="$dir/console.sock",server=on,wait=off,logfile="$dir/console.log" \
      -serial chardev:serial0 -qmp unix:"$dir/qmp.sock",server=on,wait=off \
      -drive file="$image",if=virtio,format=raw,snapshot=on \
      -drive file="$dir/seed.img",if=virtio,format=raw \
      -netdev user,id=n0${2:-} -device virtio-net-pci,netdev=n0,romfile= \
      -device pvpanic -action panic=exit-failure \
      -smbios type=1,uuid=$uuid -display none >"$dir/qemu.out" 2>&1 </dev/null
    echo $? >"$dir/exit"
  ) &
  qemu_pid=$!
}

# wait_for DIR REGEX [SECONDS]: until the console log matches (a generous deadline against hangs).
wait_for() {
  local deadline=$((SECONDS + ${3:-120}))
  while [ $SECONDS -lt $deadline ]; do
    grep -qaE "$2" "$1/console.log" 2>/dev/null && return 0
    [ -f "$1/exit" ] && grep -qaE "$2" "$1/console.log" 2>/dev/null && return 0
    [ -f "$1/exit" ] && return 1
    sleep 0.2
  done
  return 1
}

# wait_exit DIR [SECONDS]: QEMU's exit code, or "timeout".
wait_exit() {
  local deadline=$((SECONDS + ${2:-120}))
  while [ $SECONDS -lt $deadline ]; do
    [ -f "$1/exit" ] && { wait "$qemu_pid" 2>/dev/null; qemu_pid=""; cat "$1/exit"; return; }
    sleep 0.1
  done
  echo timeout
}

# python3 drives the two sockets: QMP (a command) and the serial console (a login).
qmp() {
  python3 - "$1" "$2" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
    while "return" not in (reply := json.loads(f.readline())) and "error" not in reply:
        pass
    if "error" in reply:
        sys.exit(f"QMP {cmd}: {reply['error']}")
EOF
}
console_login() {
  python3 - "$1" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(1)
seen = b""
def expect(token, limit=60):
    global seen
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if token in seen:
            seen = seen[seen.index(token) + len(token):]
            return
        try:
            seen += s.recv(4096)
        except socket.timeout:
            pass
    sys.exit(f"console: no {token!r} in {seen[-300:]!r}")
s.sendall(b"\n"); expect(b"login:")
s.sendall(b"cirros\n"); expect(b"Password:")
s.sendall(b"gocubsgo\n"); expect(b"$ ")
s.sendall(b"echo logged-in-as-$(whoami)\n"); expect(b"logged-in-as-cirros")
EOF
}

userdata_echo='#!/bin/sh
echo '"'"'printed from cloud-init userdata'"'"''

echo "== boot: console lines, SMBIOS UUID, user-data, DHCP, login prompt"
d=$work/boot
make_seed "$d" "$userdata_echo"
start=$SECONDS
boot "$d"
if wait_for "$d" 'login:'; then
  pass "reached the login prompt in about $((SECONDS - start)) s"
else
  fail "no login prompt; console: $(tail -c 2000 "$d/console.log" 2>/dev/null)"
fi
grep -qa '^Linux version 6\.' "$d/console.log" && pass "kernel line" || fail "no 'Linux version' line"
grep -qa "^SMBIOS UUID: $uuid" "$d/console.log" && pass "SMBIOS UUID $uuid" || fail "SMBIOS UUID line wrong: $(grep -a 'SMBIOS UUID' "$d/console.log")"
grep -qa '^printed from cloud-init userdata' "$d/console.log" && pass "user-data output" || fail "no user-data output"
grep -qaE '^guest: eth0 address 10\.0\.2\.[0-9]+/24' "$d/console.log" && pass "DHCP address" || fail "no DHCP address line"
grep -qa '^guest: hostname testvm' "$d/console.log" && pass "hostname from meta-data" || fail "hostname not set from meta-data"
grep -qa 'testvm login:' "$d/console.log" && pass "getty prompt names the host" || fail "no 'testvm login:'"

echo "== ACPI power button (QMP system_powerdown)"
sent=$(date +%s%N)
qmp "$d/qmp.sock" system_powerdown || fail "QMP system_powerdown failed"
code=$(wait_exit "$d" 60)
took_ms=$((($(date +%s%N) - sent) / 1000000))
[ "$code" = 0 ] && pass "QEMU exited 0 after system_powerdown (${took_ms} ms)" || fail "QEMU exit '$code' after system_powerdown"
grep -qa 'guest: clean shutdown' "$d/console.log" && pass "clean shutdown line" || fail "no 'guest: clean shutdown'"
grep -qa 'reboot: Power down' "$d/console.log" && pass "kernel 'reboot: Power down'" || fail "no 'reboot: Power down'"

echo "== user-data poweroff"
d=$work/poweroff
make_seed "$d" '#!/bin/sh
echo powering off from user-data
poweroff'
boot "$d"
code=$(wait_exit "$d" 120)
[ "$code" = 0 ] && pass "QEMU exited 0" || fail "QEMU exit '$code'; console: $(tail -c 1500 "$d/console.log")"
grep -qa 'guest: clean shutdown' "$d/console.log" && pass "clean shutdown line" || fail "no 'guest: clean shutdown'"

echo "== user-data panic (sysrq c) with pvpanic"
d=$work/panic
make_seed "$d" '#!/bin/sh
echo c > /proc/sysrq-trigger'
boot "$d"
code=$(wait_exit "$d" 120)
if [ "$code" != 0 ] && [ "$code" != timeout ]; then
  pass "QEMU exited $code (failure) on the guest's panic"
else
  fail "QEMU exit '$code' on panic; console: $(tail -c 1500 "$d/console.log")"
fi
grep -qa 'guest: clean shutdown' "$d/console.log" && fail "a panic printed the clean shutdown line" || pass "no clean shutdown line on panic"

echo "== user-data background counter while the login prompt is up; login as cirros"
d=$work/counter
make_seed "$d" '#!/bin/sh
i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done &'
boot "$d"
if wait_for "$d" 'login:'; then
  pass "login prompt with the counter running"
  before=$(grep -ac '^tick ' "$d/console.log" || true)
  if console_login "$d/console.sock"; then pass "login cirros/gocubsgo gives a shell"; else fail "login on the serial console"; fi
  wait_for "$d" "^tick $((before + 2))"$'\r'"?\$" 60 && pass "counter still ticking after the prompt (tick $((before + 2)))" || fail "counter stopped at tick $before"
else
  fail "no login prompt; console: $(tail -c 1500 "$d/console.log")"
fi
qmp "$d/qmp.sock" system_powerdown || true
code=$(wait_exit "$d" 60)
[ "$code" = 0 ] && pass "powered off with the counter running" || fail "QEMU exit '$code' powering off with the counter"

echo "== ssh with a key from #cloud-config, in the image's minMemory"
d=$work/ssh
min_mib=$(sed -n 's/.*"minMemory": *"\([0-9]*\)Mi".*/\1/p' "$image.meta.json" 2>/dev/null)
min_mib=${min_mib:-$mem}
mkdir -p "$d"
ssh-keygen -q -t ed25519 -N '' -C test@host -f "$d/key"
make_seed "$d" "#cloud-config
ssh_authorized_keys:
  - $(cat "$d/key.pub")"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
boot "$d" ",hostfwd=tcp:127.0.0.1:$port-:22" "$min_mib"
if wait_for "$d" '^guest: sshd listening on 22'; then
  pass "sshd listening ($min_mib MiB guest)"
else
  fail "no 'guest: sshd listening on 22'; console: $(tail -c 1500 "$d/console.log")"
fi
grep -qa '^guest: 1 ssh authorized keys from cloud-config' "$d/console.log" &&
  pass "one key read from cloud-config" || fail "key count line: $(grep -a 'authorized keys' "$d/console.log")"
grep -qa '^guest: user-data is not a script, ignored' "$d/console.log" &&
  pass "cloud-config is not run as a script" || fail "no 'user-data is not a script' line"
banner=$(python3 - "$port" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.settimeout(30)
print(s.makefile("rb").readline().decode(errors="replace").strip())
EOF
) || true
case "$banner" in
  SSH-2.0-dropbear*) pass "SSH banner on a plain TCP connect: $banner" ;;
  *) fail "SSH banner: '$banner'" ;;
esac
ssh_opts=(-i "$d/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -o BatchMode=yes -o ConnectTimeout=60 -p "$port")
set +e
out=$(timeout 120 ssh "${ssh_opts[@]}" cirros@127.0.0.1 'uname -a; id -un; exit 3' 2>"$d/ssh.err")
code=$?
set -e
[ "$code" = 3 ] && pass "ssh returned the remote exit code 3" || fail "ssh exit $code: $(cat "$d/ssh.err")"
kernel=$(grep -a '^Linux version' "$d/console.log" | awk '{ print $3 }')
case "$out" in
  "Linux testvm $kernel "*) pass "uname -a over ssh shows the guest kernel $kernel" ;;
  *) fail "uname -a over ssh: '$out'" ;;
esac
[ "$(echo "$out" | tail -n 1)" = cirros ] && pass "logged in as cirros" || fail "ssh user: '$out'"
set +e
timeout 120 ssh "${ssh_opts[@]}" root@127.0.0.1 true 2>"$d/ssh-root.err"
code=$?
set -e
[ "$code" = 0 ] && pass "the key also logs in as root" || fail "ssh root exit $code: $(cat "$d/ssh-root.err")"
qmp "$d/qmp.sock" system_powerdown || true
code=$(wait_exit "$d" 60)
[ "$code" = 0 ] && pass "powered off with sshd running" || fail "QEMU exit '$code' powering off with sshd"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
