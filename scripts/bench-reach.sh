#!/usr/bin/env bash
# Benchmarks reaching guests (issue 12): console keystroke round trips through `virtctl console`
# and straight at QEMU's serial socket, `virtctl port-forward` throughput to a host-side sink
# beside `kubectl port-forward` to the same sink and a direct loopback baseline, and, for
# reference, `virtctl port-forward` to sshd in the real TCG guest. Results: $OUT/summary.md
# (default target/bench-reach).
#
#   ./scripts/bench-reach.sh                          # COUNT=500 SIZE_MB=1024 REPEAT=3 GUEST_MB=64
#   COUNT=100 SIZE_MB=256 ./scripts/bench-reach.sh    # a quick look
#   PARTS=forward ./scripts/bench-reach.sh            # one part again (console, forward, guest)
#   NO_BUILD=1 ./scripts/bench-reach.sh               # the binaries already built, as they are
#
# Part 1 (console) and 3 (guest) run virt-playground --guests qemu with the real launcher; part 2
# (forward) runs a second playground whose launcher is scripts/bench/fake_launcher.py: no QEMU,
# its `forward` answers a sink (guest port 5000) and a source (5001) it runs on loopback, so the
# figure is the forwarding path's and not TCG's. The same sink/source also runs as a process pod
# for `kubectl port-forward` and is reached at its pod IP for the baseline. Sizes are MiB; rates
# are MB/s (10^6 bytes). Before each part the script waits until the 1-minute load average is
# below MAX_LOAD (1.5; at most MAX_WAIT, 900 s); every figure carries the load average it was
# taken at. Needs QEMU, kubectl, python3 and ssh (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
COUNT=${COUNT:-500}
SIZE_MB=${SIZE_MB:-1024}
REPEAT=${REPEAT:-3}
GUEST_MB=${GUEST_MB:-64}
PARTS=${PARTS:-console forward guest}
OUT=${OUT:-target/bench-reach}
MAX_LOAD=${MAX_LOAD:-1.5}
MAX_WAIT=${MAX_WAIT:-900}
# /usr/bin/kubectl may be Google Cloud SDK's dispatcher, which asks the server for its version first.
KUBECTL=${KUBECTL:-$(ls /usr/lib/google-cloud-sdk/bin/kubectl.1.* 2>/dev/null | sort -V | tail -n 1 || true)}
KUBECTL=${KUBECTL:-kubectl}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
for tool in "$KUBECTL" "$PYTHON" ssh ssh-keygen; do
  command -v "$tool" >/dev/null || { echo "bench-reach: $tool is needed" >&2; exit 1; }
done
case "$COUNT$SIZE_MB$REPEAT$GUEST_MB$MAX_WAIT" in *[!0-9]*) echo "bench-reach: COUNT, SIZE_MB, REPEAT, GUEST_MB and MAX_WAIT are whole numbers" >&2; exit 2 ;; esac
for part in $PARTS; do
  case "$part" in console | forward | guest) ;; *) echo "bench-reach: unknown part '$part' in PARTS (console, forward, guest)" >&2; exit 2 ;; esac
done
wants() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if [ -z "${NO_BUILD:-}" ]; then
  echo "building (profile playground)..."
  cargo build --profile playground -p virt-playground --bin virt-playground -p virtctl --bin virtctl \
    -p virt-launcher --bin virt-launcher --bin virt-tail
fi
bin=$(cd "${CARGO_TARGET_DIR:-target}/playground" && pwd)
echo "building the guest image (cached)..."
image=$(scripts/build-guest-image.sh | tail -n 1)
[ -f "$image" ] || { echo "no guest image" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
for part in $PARTS; do rm -f "$OUT/$part"-*.txt "$OUT/$part.md"; done
rm -f "$OUT/load.txt"
work=$(mktemp -d)
pids=()
pg=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$pg" ] && { kill "$pg" 2>/dev/null || true; wait "$pg" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
wait_quiet() {
  local start=$EPOCHREALTIME load _
  read -r load _ </proc/loadavg
  while awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
    if awk -v s="$start" -v n="$EPOCHREALTIME" -v m="$MAX_WAIT" 'BEGIN { exit !(n - s > m) }'; then
      echo "  $1: load average still $load after $MAX_WAIT s: measuring anyway" | tee -a "$OUT/load.txt"; return
    fi
    sleep 5; read -r load _ </proc/loadavg
  done
  printf '  %s: waited %.0f s for the 1-minute load average to fall below %s (now %s)\n' "$1" \
    "$(awk -v s="$start" -v n="$EPOCHREALTIME" 'BEGIN { print n - s }')" "$MAX_LOAD" "$(loadavg)" | tee -a "$OUT/load.txt"
}
# `p50 p90 p99 max n` of the numbers in FILE (nearest rank).
percentiles() {
  sort -g "$1" | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a n/a 0"; exit }
    split("50 90 99", ps, " ")
    for (i = 1; i <= 3; i++) { r = int((ps[i] * NR + 99) / 100); printf "%.2f ", v[r < 1 ? 1 : r] }
    printf "%.2f %d\n", v[NR], NR }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# utime + stime of PID in seconds.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts a playground (log $OUT/playground-NAME.txt) with extra ARGS; sets pg and KUBECONFIG.
start_playground() {
  local name=$1; shift
  "$bin/virt-playground" --listen 127.0.0.1:0 --kubeconfig-out "$work/$name.kubeconfig" --guests qemu \
    --guest-image "$image" --node-root "$work/$name-node" "$@" >"$OUT/playground-$name.txt" 2>&1 &
  pg=$!
  for _ in $(seq 1 300); do grep -q 'ready at' "$OUT/playground-$name.txt" 2>/dev/null && break; sleep 0.1; done
  grep -q 'ready at' "$OUT/playground-$name.txt" || { cat "$OUT/playground-$name.txt"; exit 1; }
  export KUBECONFIG="$work/$name.kubeconfig"
  root="$work/$name-node"
}
stop_playground() { kill "$pg"; wait "$pg" 2>/dev/null || true; pg=; }
virtctl() { "$bin/virtctl" "$@"; }
kc() { "$KUBECTL" "$@"; }
# The launcher Pod of VM $1: its uid once it exists (at most 60 s).
launcher_pod_uid() {
  local uid
  for _ in $(seq 1 300); do
    uid=$(kc get pods -l "vm.kubevirt.io/name=$1" -o jsonpath='{.items[0].metadata.uid}' 2>/dev/null || true)
    [ -n "$uid" ] && { echo "$uid"; return 0; }
    sleep 0.2
  done
  echo "no launcher Pod for $1" >&2; return 1
}
private_dir() { echo "$root/var/lib/kubelet/pods/$1/volumes/kubernetes.io~empty-dir/private"; }
# Waits (at most $3 s) until the serial log of pod $1 shows $2.
wait_console() {
  local log
  log="$(private_dir "$1")/virt-serial0-log"
  for _ in $(seq 1 $(($3 * 5))); do grep -q "$2" "$log" 2>/dev/null && return 0; sleep 0.2; done
  echo "the console never showed '$2' ($log):" >&2; tail -c 2000 "$log" >&2 || true; return 1
}
# Starts `CMD... ` whose stdout announces N `Forwarding from 127.0.0.1:PORT -> REMOTE` lines into
# $work/$name.out; sets fwd_pid and prints nothing; ports via forwarded_port NAME REMOTE.
start_forward() {
  local name=$1 n=$2; shift 2
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  fwd_pid=$!
  pids+=("$fwd_pid")
  for _ in $(seq 1 300); do [ "$(grep -c '^Forwarding from 127.0.0.1' "$work/$name.out")" -ge "$n" ] && return 0; sleep 0.1; done
  echo "$name did not start forwarding:" >&2; cat "$work/$name.out" "$work/$name.err" >&2; return 1
}
forwarded_port() { sed -n "s/^Forwarding from 127.0.0.1:\([0-9]*\) -> $2\$/\1/p" "$work/$1.out" | head -n 1; }

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates src || echo ' (crates or src modified)')"
  echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "qemu: $(qemu-system-x86_64 --version | head -n 1), TCG"
  echo "kubectl: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | head -n 1))"
  echo "python: $("$PYTHON" --version 2>&1)"
  echo "load average at the start: $(loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

# 1. Console keystroke round trips, then 3. ssh through port-forward to the TCG guest.
if wants console || wants guest; then
  echo "starting virt-playground with real guests..."
  start_playground real
fi
if wants console; then
  echo "== 1. console: $COUNT keystrokes via virtctl console, then $COUNT at the serial socket"
  kc create -f examples/vm-cirros.yaml >/dev/null
  virtctl start vm-cirros >/dev/null
  uid=$(launcher_pod_uid vm-cirros)
  wait_console "$uid" 'login:' 180
  sleep 2 # the guest settles at its prompt
  wait_quiet "console"
  l0=$(loadavg)
  "$PYTHON" scripts/bench/console_rtt.py --count "$COUNT" -- "$bin/virtctl" console vm-cirros >"$OUT/console-virtctl.txt"
  l1=$(loadavg)
  # virtctl has gone, and with it the handler's connection to the serial socket.
  "$PYTHON" scripts/bench/console_rtt.py --count "$COUNT" --socket "$(private_dir "$uid")/virt-serial0" >"$OUT/console-direct.txt"
  l2=$(loadavg)
  read -r v50 v90 v99 vmax vn < <(percentiles "$OUT/console-virtctl.txt")
  read -r d50 d90 d99 dmax dn < <(percentiles "$OUT/console-direct.txt")
  {
    echo "## 1. Console keystroke round trip (ms; one byte in, its echo out)"
    echo
    echo "| path | p50 | p90 | p99 | max | n | load average before → after |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    echo "| virtctl console → localkube → virt-api → virt-handler → serial socket → guest | $v50 | $v90 | $v99 | $vmax | $vn | $l0 → $l1 |"
    echo "| serial socket → guest (QEMU's chardev and the guest's TCG echo) | $d50 | $d90 | $d99 | $dmax | $dn | $l1 → $l2 |"
    echo
    awk -v v="$v50" -v d="$d50" -v vp="$v99" -v dp="$d99" 'BEGIN {
      printf "- the stack adds %.2f ms at p50 and %.2f ms at p99 to the guest'"'"'s own echo\n", v - d, vp - dp }'
    echo
  } >"$OUT/console.md"
  cat "$OUT/console.md"
  virtctl stop vm-cirros >/dev/null
fi
if wants guest; then
  echo "== 3. guest-bound: $GUEST_MB MiB each way over ssh through virtctl port-forward to the TCG guest"
  ssh-keygen -q -t ed25519 -N '' -f "$work/id" -C bench-reach
  cat >"$work/vm-ssh.yaml" <<EOF
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm-ssh
spec:
  running: false
  template:
    metadata:
      labels:
        kubevirt.io/vm: vm-ssh
    spec:
      domain:
        devices:
          disks:
          - disk: {bus: virtio}
            name: containerdisk
          - disk: {bus: virtio}
            name: cloudinitdisk
        resources:
          requests:
            memory: 64M
      terminationGracePeriodSeconds: 0
      volumes:
      - name: containerdisk
        containerDisk:
          image: kubevirt/cirros-container-disk-demo:latest
      - name: cloudinitdisk
        cloudInitNoCloud:
          userData: |
            #cloud-config
            ssh_authorized_keys:
            - $(cat "$work/id.pub")
EOF
  kc create -f "$work/vm-ssh.yaml" >/dev/null
  virtctl start vm-ssh >/dev/null
  uid=$(launcher_pod_uid vm-ssh)
  wait_console "$uid" 'sshd listening on 22' 180
  sleep 2
  start_forward guest-pf 1 "$bin/virtctl" port-forward vm/vm-ssh :22
  port=$(forwarded_port guest-pf 22)
  ssh_opts=(-i "$work/id" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes)
  ssh_to() { ssh "${ssh_opts[@]}" -o LogLevel=ERROR cirros@127.0.0.1 "$@"; }
  ssh_to true # the guest's host key, and a first connection
  wait_quiet "guest"
  bytes=$((GUEST_MB * 1024 * 1024))
  l0=$(loadavg)
  t0=$EPOCHREALTIME; ssh_to true; t1=$EPOCHREALTIME
  head -c "$bytes" /dev/zero | ssh_to 'cat > /dev/null'; t2=$EPOCHREALTIME
  got=$(ssh_to "head -c $bytes /dev/zero" | wc -c); t3=$EPOCHREALTIME
  [ "$got" = "$bytes" ] || { echo "guest download: got $got of $bytes bytes" >&2; exit 1; }
  l1=$(loadavg)
  cipher=$(ssh "${ssh_opts[@]}" -v cirros@127.0.0.1 true 2>&1 | sed -n 's/.*kex: server->client cipher: \([^ ]*\).*/\1/p' | head -n 1)
  {
    echo "## 3. Guest-bound: ssh through virtctl port-forward to the TCG guest's dropbear ($GUEST_MB MiB)"
    echo
    awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v c="$cipher" 'BEGIN {
      printf "- ssh true (connect, key exchange, auth): %.2f s\n", t1 - t0
      printf "- upload (`cat > /dev/null` in the guest): %.1f MB/s (%.1f s, ssh setup included)\n", b / (t2 - t1) / 1e6, t2 - t1
      printf "- download (`head -c` from the guest): %.1f MB/s (%.1f s, ssh setup included)\n", b / (t3 - t2) / 1e6, t3 - t2
      printf "- cipher %s; load average %s → %s\n", c, "'"$l0"'", "'"$l1"'" }'
    echo
  } >"$OUT/guest.md"
  cat "$OUT/guest.md"
  kill "$fwd_pid" 2>/dev/null || true
  virtctl stop vm-ssh >/dev/null
fi
if [ -n "$pg" ]; then stop_playground; fi

# 2. Port-forward throughput to a host-side sink: virtctl, kubectl, and direct.
if wants forward; then
  echo "== 2. port-forward: $SIZE_MB MiB each way, $REPEAT times, to a host-side sink and source"
  mkdir -p "$work/fake"
  # The node runs `virt-launcher` and `virt-tail` from the directory of the launcher it is given.
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$PYTHON" "$repo/scripts/bench/fake_launcher.py" >"$work/fake/virt-launcher"
  printf '#!/bin/sh\nexec "%s" "%s" --serve-only "$POD_IP"\n' "$PYTHON" "$repo/scripts/bench/fake_launcher.py" >"$work/fake/sink"
  chmod +x "$work/fake/virt-launcher" "$work/fake/sink"
  ln -s "$bin/virt-tail" "$work/fake/virt-tail"
  start_playground fake --launcher "$work/fake/virt-launcher" --image "bench.local/sink=$work/fake/sink"
  kc create -f examples/vm-cirros.yaml >/dev/null
  virtctl start vm-cirros >/dev/null
  for _ in $(seq 1 300); do
    [ "$(kc get vmi vm-cirros -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ] && break; sleep 0.2
  done
  [ "$(kc get vmi vm-cirros -o jsonpath='{.status.phase}')" = Running ] || { echo "the fake VMI is not Running" >&2; exit 1; }
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: sink}
spec:
  containers:
  - name: sink
    image: bench.local/sink:v1
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
EOF
  kc wait --for=condition=Ready pod/sink --timeout=60s >/dev/null
  pod_ip=$(kc get pod sink -o jsonpath='{.status.podIP}')
  for _ in $(seq 1 100); do "$PYTHON" scripts/bench/throughput.py download "$pod_ip" 5001 1 >/dev/null 2>&1 && break; sleep 0.1; done
  start_forward virtctl-pf 2 "$bin/virtctl" port-forward vm/vm-cirros :5000 :5001
  virtctl_pid=$fwd_pid
  start_forward kubectl-pf 2 "$KUBECTL" port-forward pod/sink :5000 :5001
  kubectl_pid=$fwd_pid
  bytes=$((SIZE_MB * 1024 * 1024))
  declare -A up down
  up[direct]="$pod_ip 5000"; down[direct]="$pod_ip 5001"
  up[virtctl]="127.0.0.1 $(forwarded_port virtctl-pf 5000)"; down[virtctl]="127.0.0.1 $(forwarded_port virtctl-pf 5001)"
  up[kubectl]="127.0.0.1 $(forwarded_port kubectl-pf 5000)"; down[kubectl]="127.0.0.1 $(forwarded_port kubectl-pf 5001)"
  declare -A client_pid=([direct]="" [virtctl]=$virtctl_pid [kubectl]=$kubectl_pid)
  # A small transfer through each first: connections and caches warm.
  for path in direct virtctl kubectl; do
    "$PYTHON" scripts/bench/throughput.py upload ${up[$path]} 1048576 >/dev/null
    "$PYTHON" scripts/bench/throughput.py download ${down[$path]} 1048576 >/dev/null
  done
  wait_quiet "forward"
  printf 'run\tpath\tdirection\tMB_s\tseconds\tplayground_cpu_s\tclient_cpu_s\tload\n' >"$OUT/forward-runs.txt"
  for r in $(seq 1 "$REPEAT"); do
    for path in direct virtctl kubectl; do
      for direction in upload download; do
        if [ "$direction" = upload ]; then target=${up[$path]}; else target=${down[$path]}; fi
        p0=$(cpu_of "$pg"); c0=0; [ -n "${client_pid[$path]}" ] && c0=$(cpu_of "${client_pid[$path]}")
        # shellcheck disable=SC2086 # target is "HOST PORT"
        result=$("$PYTHON" scripts/bench/throughput.py "$direction" $target "$bytes")
        read -r rate secs <<<"$result"
        p1=$(cpu_of "$pg"); c1=0; [ -n "${client_pid[$path]}" ] && c1=$(cpu_of "${client_pid[$path]}")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$path" "$direction" "$rate" "$secs" \
          "$(awk -v a="$p0" -v b="$p1" 'BEGIN { printf "%.2f", b - a }')" \
          "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')" "$(loadavg)" | tee -a "$OUT/forward-runs.txt"
      done
    done
  done
  col() { awk -F'\t' -v p="$1" -v d="$2" -v c="$3" '$2 == p && $3 == d { print $c }' "$OUT/forward-runs.txt"; }
  all() { col "$1" "$2" 4 | paste -sd, - | sed 's/,/, /g'; }
  {
    echo "## 2. Port-forward throughput to a host-side sink ($SIZE_MB MiB each way, median of $REPEAT, MB/s)"
    echo
    echo "| path | upload | download | all uploads | all downloads | CPU s per GiB up/down (playground + client) |"
    echo "|---|---:|---:|---|---|---|"
    for path in virtctl kubectl direct; do
      case $path in
        virtctl) label='`virtctl port-forward vm/…` → localkube → virt-api → virt-handler → sink' ;;
        kubectl) label='`kubectl port-forward pod/…` → localkube → kubelet endpoint → sink' ;;
        direct) label='direct to the sink on loopback (baseline)' ;;
      esac
      cpu=$(awk -F'\t' -v p="$path" -v gib="$(awk -v m="$SIZE_MB" 'BEGIN { print m / 1024 }')" '
        $2 == p { s[$3] += $6 + $7; n[$3]++ }
        END { printf "%.2f / %.2f", s["upload"] / n["upload"] / gib, s["download"] / n["download"] / gib }' "$OUT/forward-runs.txt")
      echo "| $label | $(col "$path" upload 4 | median) | $(col "$path" download 4 | median) | $(all "$path" upload) | $(all "$path" download) | $cpu |"
    done
    echo
    echo "- load average during the runs: $(awk -F'\t' 'NR > 1 { split($8, l, " "); print l[1] }' "$OUT/forward-runs.txt" | sort -g | sed -n '1p;$p' | paste -sd- -)"
    echo "- kubectl speaks its default protocol (websocket-tunnelled SPDY since 1.31)"
    echo
  } >"$OUT/forward.md"
  cat "$OUT/forward.md"
  stop_playground
fi

{
  echo "# Reaching guests: results"
  echo
  sed 's/^/- /' "$OUT/machine.txt"
  [ -f "$OUT/load.txt" ] && sed 's/^  /- /' "$OUT/load.txt"
  echo
  for part in console forward guest; do [ -f "$OUT/$part.md" ] && cat "$OUT/$part.md"; done
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
