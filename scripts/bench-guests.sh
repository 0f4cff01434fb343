#!/usr/bin/env bash
# Benchmarks real guests in the playground (issue 11): start -> cloud-init line (with its
# phases), stop -> VMI gone for a guest that honours ACPI, the launcher Pod's memory, and 10
# guests started at once. Results: $OUT/summary.md (default target/bench-guests).
#
#   ./scripts/bench-guests.sh                 # RUNS=10 GUESTS=10 by default
#   RUNS=3 GUESTS=4 ./scripts/bench-guests.sh # a quick look
#
# Timestamps are this machine's wall clock ($EPOCHREALTIME): the console is followed by a small
# Python poller reading the serial log files under the node root every 10 ms, and the API
# objects by one long-running `kubectl get -w` per kind whose lines are stamped as they arrive,
# so nothing polls the API server during a measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
GUESTS=${GUESTS:-10}
OUT=${OUT:-target/bench-guests}
MAX_LOAD=${MAX_LOAD:-1.5}
# /usr/bin/kubectl may be Google Cloud SDK's dispatcher, which asks the server for its version first.
KUBECTL=${KUBECTL:-$(ls /usr/lib/google-cloud-sdk/bin/kubectl.1.* 2>/dev/null | sort -V | tail -n 1 || true)}
KUBECTL=${KUBECTL:-kubectl}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

echo "building (profile playground)..."
cargo build --profile playground -p virt-playground --bin virt-playground -p virtctl --bin virtctl \
  -p virt-launcher --bin virt-launcher --bin virt-tail
bin="${CARGO_TARGET_DIR:-target}/playground"
echo "building the guest image (cached)..."
image=$(scripts/build-guest-image.sh | tail -n 1)
[ -f "$image" ] || { echo "no guest image" >&2; exit 1; }

mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.track "$OUT"/*.events "$OUT"/summary.md
work=$(mktemp -d)
root="$work/node"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${pg:-}" ] && { kill "$pg" 2>/dev/null || true; wait "$pg" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# The console poller: follows the serial logs of pod directories under the node root and prints
# `<pod uid> <event> <epoch seconds>` the first time each marker shows; every complete line goes
# to <pod uid>.lines in --lines-dir, stamped. It prints READY once it has looked at the pods there.
cat >"$work/track.py" <<'EOF'
import os, sys, time, argparse
p = argparse.ArgumentParser()
p.add_argument("--root"); p.add_argument("--until"); p.add_argument("--count", type=int, default=1)
p.add_argument("--timeout", type=float, default=300); p.add_argument("--pod", action="append", default=[])
p.add_argument("--lines-dir")
a = p.parse_args()
pods_dir = os.path.join(a.root, "var/lib/kubelet/pods")
LOG = "volumes/kubernetes.io~empty-dir/private/virt-serial0-log"
MARKERS = {"seabios": "SeaBIOS", "syslinux": "SYSLINUX", "linux": "Linux version",
           "init_seed": "guest: seed", "userdata": "guest: running user-data",
           "cloudinit": "printed from cloud-init userdata", "login": "login:",
           "clean_shutdown": "guest: clean shutdown", "power_down": "reboot: Power down"}
def listing():
    try: return set(os.listdir(pods_dir))
    except FileNotFoundError: return set()
explicit = bool(a.pod)
ignore = set() if explicit else listing()
follow = {}  # uid -> [offset, text, seen markers, pending partial line]
for uid in a.pod:  # already running: only what it prints from now on
    try: size = os.stat(os.path.join(pods_dir, uid, LOG)).st_size
    except FileNotFoundError: size = 0
    follow[uid] = [size, "", {"first_byte": 0}, ""]
print("READY", flush=True)
deadline = time.time() + a.timeout
done = set()
while time.time() < deadline and len(done) < a.count:
    now = time.time()
    if not explicit:
        for uid in listing() - ignore - set(follow):
            follow[uid] = [0, "", {}, ""]
            print(uid, "pod_dir", f"{now:.6f}", flush=True)
    for uid, st in follow.items():
        path = os.path.join(pods_dir, uid, LOG)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            continue
        if size <= st[0]:
            continue
        with open(path, "rb") as f:
            f.seek(st[0]); new = f.read().decode("utf-8", "replace")
        now = time.time()
        if st[0] == 0 and "first_byte" not in st[2]:
            st[2]["first_byte"] = now; print(uid, "first_byte", f"{now:.6f}", flush=True)
        st[0] = size
        st[1] = (st[1] + new)[-4096:]
        pending = st[3] + new
        *lines, st[3] = pending.replace("\r", "").split("\n")
        if a.lines_dir and lines:
            with open(os.path.join(a.lines_dir, uid + ".lines"), "a") as out:
                for l in lines: out.write(f"{now:.6f} {l}\n")
        for key, text in MARKERS.items():
            if key not in st[2] and text in st[1]:
                st[2][key] = now; print(uid, key, f"{now:.6f}", flush=True)
        if a.until in st[1]:
            done.add(uid)
    time.sleep(0.01)
if len(done) < a.count:
    print("TIMEOUT", len(done), flush=True); sys.exit(1)
EOF

wait_quiet() {
  local start=$EPOCHREALTIME load _
  read -r load _ </proc/loadavg
  while awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
    if awk -v s="$start" -v n="$EPOCHREALTIME" 'BEGIN { exit !(n - s > 900) }'; then
      echo "  load average still $load after 15 min: measuring anyway" | tee -a "$OUT/load.txt"; return
    fi
    sleep 5; read -r load _ </proc/loadavg
  done
  printf '  %s: waited %.0f s for the 1-minute load average to fall below %s (now %s)\n' "$1" \
    "$(awk -v s="$start" -v n="$EPOCHREALTIME" 'BEGIN { print n - s }')" "$MAX_LOAD" "$load" | tee -a "$OUT/load.txt"
}
# Stamps each line of stdin with the wall clock.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }
# The first stamp in FILE after T of a line matching the awk regex RE.
first_after() { awk -v t="$2" -v re="$3" '$1 > t && $0 ~ re { print $1; exit }' "$1"; }
# Waits until first_after finds a line (at most $4 s), and prints its stamp.
wait_event() {
  local t
  for _ in $(seq 1 $(($4 * 5))); do
    t=$(first_after "$1" "$2" "$3"); [ -n "$t" ] && { echo "$t"; return 0; }; sleep 0.2
  done
  echo "timed out waiting for /$3/ in $1" >&2; return 1
}
# Starts the console poller with ARGS into FILE and waits for its READY.
track() {
  local file=$1; shift
  "$PYTHON" "$work/track.py" --root "$root" --lines-dir "$OUT/lines" "$@" >"$file" &
  tracker=$!
  for _ in $(seq 1 100); do grep -q READY "$file" 2>/dev/null && return 0; sleep 0.05; done
  echo "the console poller did not start" >&2; return 1
}
ev() { awk -v k="$2" '$2 == k { print $3; exit }' "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Medians of KiB figures print as integers.
mediani() { median | awk '{ printf "%.0f\n", $1 }'; }
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f–%.3f\n", lo, hi }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
mkdir -p "$OUT/lines"

echo "starting virt-playground (node root $root)..."
"$bin/virt-playground" --listen 127.0.0.1:0 --kubeconfig-out "$work/kubeconfig" --guests qemu \
  --guest-image "$image" --node-root "$root" >"$OUT/playground.txt" 2>&1 &
pg=$!
for _ in $(seq 1 200); do grep -q 'ready at' "$OUT/playground.txt" 2>/dev/null && break; sleep 0.1; done
grep -q 'ready at' "$OUT/playground.txt" || { cat "$OUT/playground.txt"; exit 1; }
export KUBECONFIG="$work/kubeconfig"
virtctl() { "$bin/virtctl" "$@"; }
kc() { "$KUBECTL" "$@"; }
kc get pods -w --output-watch-events 2>&1 | stamp >"$OUT/pods.events" &
pids+=($!)
kc get vmis -w --output-watch-events 2>&1 | stamp >"$OUT/vmis.events" &
pids+=($!)
sleep 1

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' (crates modified)')"
  echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "qemu: $(qemu-system-x86_64 --version | head -n 1), TCG"
  echo "kubectl: $KUBECTL"
  echo "image: $image"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

# 1. start -> cloud-init line, RUNS times, with the seed's VM (grace 0: a stop kills at once).
echo "== 1. virtctl start -> 'printed from cloud-init userdata' ($RUNS runs)"
kc create -f examples/vm-cirros.yaml >/dev/null
wait_quiet "start runs"
printf 'run\tapi\tscheduling\tqemu_start\tbios\tloader_kernel\tinit\tuser_data\ttotal\tpod_created\tpod_running\n' >"$OUT/start.txt"
for i in $(seq 1 "$RUNS"); do
  track "$OUT/start-$i.track" --until 'printed from cloud-init userdata' --timeout 180
  t0=$EPOCHREALTIME
  virtctl start vm-cirros >/dev/null
  t_api=$EPOCHREALTIME
  wait "$tracker"
  f="$OUT/start-$i.track"
  t_created=$(wait_event "$OUT/pods.events" "$t0" 'ADDED +virt-launcher-vm-cirros-' 30)
  t_running=$(wait_event "$OUT/pods.events" "$t0" 'virt-launcher-vm-cirros-[^ ]* .* Running ' 30)
  t_first=$(ev "$f" first_byte); t_loader=$(ev "$f" syslinux); t_linux=$(ev "$f" linux)
  t_ud=$(ev "$f" userdata); t_ci=$(ev "$f" cloudinit)
  # The kernel is quiet (`quiet`, and /init lowers the log level), so the console cannot split
  # SYSLINUX loading vmlinuz and the initrd from the kernel's own boot: bios = first byte to the
  # SYSLINUX banner; loader_kernel = to /init's first line (`Linux version`, from /proc/version);
  # init = /init's modules, seed and DHCP until user-data starts.
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$(sub "$t_api" "$t0")" \
    "$(sub "$t_running" "$t_api")" "$(sub "$t_first" "$t_running")" "$(sub "$t_loader" "$t_first")" \
    "$(sub "$t_linux" "$t_loader")" "$(sub "$t_ud" "$t_linux")" "$(sub "$t_ci" "$t_ud")" \
    "$(sub "$t_ci" "$t0")" "$(sub "$t_created" "$t0")" "$(sub "$t_running" "$t0")" | tee -a "$OUT/start.txt"
  ts=$EPOCHREALTIME
  virtctl stop vm-cirros >/dev/null
  wait_event "$OUT/vmis.events" "$ts" 'DELETED +vm-cirros ' 120 >/dev/null
  wait_event "$OUT/pods.events" "$ts" 'DELETED +virt-launcher-vm-cirros-' 120 >/dev/null
done

# 2 and 3. stop -> VMI gone for a guest with a 30 s grace period (ACPI), and its memory.
echo "== 2. virtctl stop -> VMI gone, grace 30 s, after the login prompt ($RUNS runs); 3. RSS"
sed -e 's/^  name: vm-cirros/  name: vm-acpi/' -e 's/terminationGracePeriodSeconds: 0/terminationGracePeriodSeconds: 30/' \
  examples/vm-cirros.yaml >"$work/vm-acpi.yaml"
grep -q 'terminationGracePeriodSeconds: 30' "$work/vm-acpi.yaml"
kc create -f "$work/vm-acpi.yaml" >/dev/null
wait_quiet "stop runs"
printf 'run\tstop_api\tclean_shutdown\tpower_down\tvmi_gone\tpod_gone\n' >"$OUT/stop.txt"
printf 'run\tprocess\tVmRSS_KiB\tVmHWM_KiB\tRssAnon_KiB\tRssFile_KiB\n' >"$OUT/rss.txt"
printf 'run\tguest_ram_mapping_KiB\tguest_ram_rss_KiB\ttcg_buffer_KiB\ttcg_buffer_rss_KiB\n' >"$OUT/guest-ram.txt"
for i in $(seq 1 "$RUNS"); do
  track "$OUT/acpi-start-$i.track" --until 'login:' --timeout 180
  virtctl start vm-acpi >/dev/null
  wait "$tracker"
  uid=$(awk '$2 == "pod_dir" { print $1; exit }' "$OUT/acpi-start-$i.track")
  sleep 2 # the guest idles at its prompt
  poddir="$root/var/lib/kubelet/pods/$uid"
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null || true)
    case "$cwd" in "$poddir"/*) ;; *) continue ;; esac
    exe=$(basename "$(readlink "$p/exe" 2>/dev/null || echo unknown)")
    awk -v r="$i" -v e="$exe" '/^VmRSS/ { rss = $2 } /^VmHWM/ { hwm = $2 } /^RssAnon/ { an = $2 }
      /^RssFile/ { fi = $2 } END { printf "%s\t%s\t%s\t%s\t%s\t%s\n", r, e, rss, hwm, an, fi }' "$p/status" >>"$OUT/rss.txt"
    # QEMU's guest RAM is the anonymous mapping of the guest's size (80 MiB, plus alignment):
    # its Rss is what the guest has touched. The largest anonymous mapping is TCG's translation
    # buffer (1 GiB by default).
    if [ "$exe" = qemu-system-x86_64 ]; then
      awk -v r="$i" '/^[0-9a-f]+-[0-9a-f]+ / { anon = (NF < 6) } /^Size:/ { size = $2 }
        /^Rss:/ { if (anon && size >= 81920 && size <= 86016) { ram = size; ramrss = $2 }
                  if (anon && size > big) { big = size; bigrss = $2 } }
        END { printf "%s\t%s\t%s\t%s\t%s\n", r, ram, ramrss, big, bigrss }' "$p/smaps" >>"$OUT/guest-ram.txt"
    fi
  done
  track "$OUT/acpi-stop-$i.track" --pod "$uid" --until 'reboot: Power down' --timeout 60
  t0=$EPOCHREALTIME
  virtctl stop vm-acpi >/dev/null
  t_api=$EPOCHREALTIME
  t_gone=$(wait_event "$OUT/vmis.events" "$t0" 'DELETED +vm-acpi ' 120)
  t_pod=$(wait_event "$OUT/pods.events" "$t0" 'DELETED +virt-launcher-vm-acpi-' 120)
  wait "$tracker" || true
  f="$OUT/acpi-stop-$i.track"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$(sub "$t_api" "$t0")" "$(sub "$(ev "$f" clean_shutdown)" "$t0")" \
    "$(sub "$(ev "$f" power_down)" "$t0")" "$(sub "$t_gone" "$t0")" "$(sub "$t_pod" "$t0")" | tee -a "$OUT/stop.txt"
done
cat "$OUT/rss.txt" "$OUT/guest-ram.txt"

# 4. GUESTS guests of 64M started at once.
echo "== 4. $GUESTS guests started at once"
for n in $(seq 1 "$GUESTS"); do
  sed -e "s/^  name: vm-cirros/  name: vm-many-$n/" examples/vm-cirros.yaml | kc create -f - >/dev/null
done
wait_quiet "$GUESTS guests"
track "$OUT/many.track" --until 'printed from cloud-init userdata' --count "$GUESTS" --timeout 600
read -r cpu_user cpu_nice cpu_sys cpu_idle cpu_iow cpu_irq cpu_sirq cpu_steal _ < <(grep '^cpu ' /proc/stat | cut -d' ' -f2-)
busy0=$((cpu_user + cpu_nice + cpu_sys + cpu_irq + cpu_sirq + cpu_steal)); all0=$((busy0 + cpu_idle + cpu_iow))
(while :; do read -r l </proc/loadavg; echo "$EPOCHREALTIME $l"; sleep 1; done) >"$OUT/many-load.txt" &
sampler=$!; pids+=($sampler)
t0=$EPOCHREALTIME
starts=()
for n in $(seq 1 "$GUESTS"); do virtctl start "vm-many-$n" >/dev/null & starts+=($!); done
for p in "${starts[@]}"; do wait "$p"; done
t_api=$EPOCHREALTIME
wait "$tracker"
t_all=$(awk '$2 == "cloudinit" { t = $3 } END { print t }' "$OUT/many.track")
read -r cpu_user cpu_nice cpu_sys cpu_idle cpu_iow cpu_irq cpu_sirq cpu_steal _ < <(grep '^cpu ' /proc/stat | cut -d' ' -f2-)
busy1=$((cpu_user + cpu_nice + cpu_sys + cpu_irq + cpu_sirq + cpu_steal)); all1=$((busy1 + cpu_idle + cpu_iow))
kill "$sampler" 2>/dev/null || true
many_each=$(awk -v t="$t0" '$2 == "cloudinit" { printf "%.3f\n", $3 - t }' "$OUT/many.track")
many_busy=$(awk -v b="$((busy1 - busy0))" -v a="$((all1 - all0))" 'BEGIN { printf "%.0f%%", 100 * b / a }')
many_load=$(awk '{ print $2 }' "$OUT/many-load.txt" | sort -g | tail -n 1)
load_at_end=$(tail -n 1 "$OUT/many-load.txt" | awk '{ print $2 }')
rss_many=0
for p in /proc/[0-9]*; do
  case "$(readlink "$p/cwd" 2>/dev/null || true)" in "$root"/*) ;; *) continue ;; esac
  rss_many=$((rss_many + $(awk '/^VmRSS/ { print $2 }' "$p/status" 2>/dev/null || echo 0)))
done

col() { awk -F'\t' -v c="$2" 'NR > 1 && $c != "" { print $c }' "$1"; }
rss_of() { awk -F'\t' -v e="$2" -v c="$3" 'NR > 1 && $2 == e { print $c }' "$1" | mediani; }
l_rss=$(rss_of "$OUT/rss.txt" virt-launcher 3); t_rss=$(rss_of "$OUT/rss.txt" virt-tail 3)
q_rss=$(rss_of "$OUT/rss.txt" qemu-system-x86_64 3); g_rss=$(col "$OUT/guest-ram.txt" 3 | mediani)
l_hwm=$(rss_of "$OUT/rss.txt" virt-launcher 4); q_hwm=$(rss_of "$OUT/rss.txt" qemu-system-x86_64 4)
g_map=$(col "$OUT/guest-ram.txt" 2 | mediani); tb_map=$(col "$OUT/guest-ram.txt" 4 | mediani)
tb_rss=$(col "$OUT/guest-ram.txt" 5 | mediani)
{
  echo "# Real guests: results"
  echo
  sed 's/^/- /' "$OUT/machine.txt"
  sed 's/^  /- /' "$OUT/load.txt"
  echo
  echo "## 1. virtctl start -> 'printed from cloud-init userdata' ($RUNS runs, seconds)"
  echo
  echo "| phase | median | min–max |"
  echo "|---|---:|---:|"
  for c in 2:api 3:scheduling 4:qemu_start 5:bios 6:loader_kernel 7:init 8:user_data 9:total 10:pod_created 11:pod_running; do
    echo "| ${c#*:} | $(col "$OUT/start.txt" "${c%%:*}" | median) | $(col "$OUT/start.txt" "${c%%:*}" | minmax) |"
  done
  echo
  echo "## 2. virtctl stop -> VMI gone, grace 30 s, ACPI ($RUNS runs, seconds from virtctl stop)"
  echo
  echo "| event | median | min–max |"
  echo "|---|---:|---:|"
  for c in 2:stop_api 3:clean_shutdown 4:power_down 5:vmi_gone 6:pod_gone; do
    echo "| ${c#*:} | $(col "$OUT/stop.txt" "${c%%:*}" | median) | $(col "$OUT/stop.txt" "${c%%:*}" | minmax) |"
  done
  echo
  echo "## 3. memory at the login prompt (median of $RUNS, KiB)"
  echo
  echo "- virt-launcher VmRSS $l_rss (VmHWM $l_hwm), virt-tail VmRSS $t_rss, QEMU VmRSS $q_rss (VmHWM $q_hwm)"
  echo "- QEMU guest RAM mapping $g_map KiB, of which resident (touched by the guest) $g_rss KiB"
  echo "- QEMU's largest anonymous mapping (TCG translation buffer) $tb_map KiB, of which resident $tb_rss KiB"
  awk -v l="$l_rss" -v t="$t_rss" -v q="$q_rss" -v g="$g_rss" 'BEGIN {
    s = l + t + q; printf "- launcher + virt-tail + QEMU = %d KiB (%.1f MiB)\n", s, s / 1024
    printf "- minus the guest memory (80 MiB): %.1f MiB\n", (s - 81920) / 1024
    printf "- minus the guest RAM actually resident: %.1f MiB (QEMU alone: %.1f MiB)\n", (s - g) / 1024, (q - g) / 1024 }'
  echo
  echo "## 4. $GUESTS guests of 64M started at once"
  echo
  echo "- all $GUESTS printed the cloud-init line after $(sub "$t_all" "$t0") s (the $GUESTS virtctl starts returned after $(sub "$t_api" "$t0") s)"
  echo "- each guest: median $(echo "$many_each" | median) s, $(echo "$many_each" | minmax) s"
  echo "- machine: CPU busy $many_busy of 2 cores during the run, 1-minute load average up to $many_load ($load_at_end at the end)"
  echo "- launcher Pods' processes together: $((rss_many / 1024)) MiB VmRSS with all $GUESTS guests up"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
