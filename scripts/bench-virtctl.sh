#!/usr/bin/env bash
# virtctl against kubectl, side by side in one run: whole-process wall time (hyperfine) and peak
# RSS (GNU time's %M) of `virtctl start|stop|restart` and of the equivalent kubectl command, on
# loopback, plus the size of the stripped release binary. Results go to target/bench-virtctl/.
#
#   ./scripts/bench-virtctl.sh            # both transports, RUNS=30 timed runs per command
#   RUNS=10 ./scripts/bench-virtctl.sh    # quicker
#
# Transports:
#   subresource: `virt-playground` (the subresource API, one PUT per command);
#   client-side: `localkube` + `virt-controller run`, no subresource group (virtctl falls back to
#                the client-side plan: GET VM, GET VMI, then the patch).
# The kubectl equivalents: start/stop = `kubectl patch vm --type merge` of spec.running;
# restart = `kubectl delete vmi --wait=false` (the VM, running: true, starts a new one).
# Before every timed run, a prepare step (not timed) puts the VM in the state the command needs.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-30}
OUT=${OUT:-target/bench-virtctl}
KUBECTL=${KUBECTL:-kubectl}
VM=vm-cirros
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The Debian tools it needs are installed when missing and this runs as root with apt-get.
missing=()
for pkg in hyperfine jq time; do
  bin=$pkg
  [ "$pkg" = time ] && bin=/usr/bin/time
  command -v "$bin" >/dev/null || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench-virtctl: installing ${missing[*]} with apt-get" >&2
  apt-get install -y -qq "${missing[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

for tool in hyperfine jq "$KUBECTL" /usr/bin/time; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench-virtctl: $tool is missing (Debian: apt-get install hyperfine jq time; kubectl)" >&2
    exit 1
  fi
done

# Google Cloud SDK's kubectl is a dispatcher: it asks the server for its version, then runs
# a kubectl of that version, which makes every kubectl run slower. Name the real one instead.
if $KUBECTL version --client 2>/dev/null | grep -q dispatcher; then
  echo "bench-virtctl: warning: $KUBECTL is a version dispatcher; for a fair comparison set" \
    "KUBECTL to the kubectl it runs, e.g. KUBECTL=$(dirname "$(readlink -f "$(command -v "$KUBECTL")")")/kubectl.1.33" >&2
fi

cargo build --release -p virtctl -p localkube -p virt-controller -p virt-playground --bins
BIN=$(pwd)/target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Starts a command that prints a ready line on stdout; waits for it.
start_server() {
  local log=$1
  shift
  "$@" >"$log" 2>"$log.err" &
  pids+=($!)
  for _ in $(seq 1 200); do
    grep -q "ready at" "$log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench-virtctl: $* did not become ready" >&2
  cat "$log.err" >&2
  exit 1
}

# The prepare steps (not timed), as scripts: hyperfine -N runs commands without a shell,
# which it cannot calibrate precisely enough for commands of a few milliseconds.
cat >"$OUT/running.sh" <<EOF
$KUBECTL patch vm $VM --type merge -p '{"spec":{"running":true}}' >/dev/null
$KUBECTL wait --for=jsonpath='{.status.printableStatus}'=Running vm/$VM --timeout=60s >/dev/null
EOF
cat >"$OUT/stopped.sh" <<EOF
$KUBECTL patch vm $VM --type merge -p '{"spec":{"running":false}}' >/dev/null
$KUBECTL wait --for=jsonpath='{.status.printableStatus}'=Stopped vm/$VM --timeout=60s >/dev/null
EOF
running() { echo "bash -e $OUT/running.sh"; }
stopped() { echo "bash -e $OUT/stopped.sh"; }

# Median of GNU time's peak RSS (KiB) over RUNS runs of "$2", each after the prepare "$1".
median_rss_kib() {
  local prepare=$1 cmd=$2 values=()
  for _ in $(seq 1 "$RUNS"); do
    $prepare
    # -o: the command's own stderr is discarded, GNU time's report is kept.
    /usr/bin/time -o "$OUT/rss.tmp" -f '%M' bash -c "exec $cmd" >/dev/null 2>&1
    values+=("$(tail -1 "$OUT/rss.tmp")")
  done
  printf '%s\n' "${values[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

bench_transport() {
  local name=$1
  local json="$OUT/$name.json" table="$OUT/$name.md"
  export KUBECONFIG="$OUT/$name.kubeconfig"
  $KUBECTL delete vm $VM --ignore-not-found --wait=true >/dev/null
  $KUBECTL create -f examples/vm-cirros.yaml >/dev/null
  $KUBECTL wait --for=jsonpath='{.status.printableStatus}'=Stopped vm/$VM --timeout=60s >/dev/null

  hyperfine -N --runs "$RUNS" --export-json "$json" --export-markdown "$table" --style basic \
    --command-name "virtctl start" --prepare "$(stopped)" "$BIN/virtctl start $VM" \
    --command-name "kubectl patch (start)" --prepare "$(stopped)" \
    "$KUBECTL patch vm $VM --type merge -p '{\"spec\":{\"running\":true}}'" \
    --command-name "virtctl stop" --prepare "$(running)" "$BIN/virtctl stop $VM" \
    --command-name "kubectl patch (stop)" --prepare "$(running)" \
    "$KUBECTL patch vm $VM --type merge -p '{\"spec\":{\"running\":false}}'" \
    --command-name "virtctl restart" --prepare "$(running)" "$BIN/virtctl restart $VM" \
    --command-name "kubectl delete vmi (restart)" --prepare "$(running)" \
    "$KUBECTL delete vmi $VM --wait=false"

  # Medians side by side (hyperfine's table shows means); results alternate virtctl, kubectl.
  jq -r --arg t "$name" '
    def ms: . * 10000 | round / 10;
    .results as $r
    | "| command (\($t)) | median [ms] | mean ± σ [ms] | kubectl equivalent | median [ms] | mean ± σ [ms] | virtctl/kubectl (medians) |",
      "|---|---:|---:|---|---:|---:|---:|",
      (range(0; $r | length; 2) as $i | $r[$i] as $v | $r[$i + 1] as $k
       | "| \($v.command) | \($v.median | ms) | \($v.mean | ms) ± \($v.stddev | ms) | \($k.command) | \($k.median | ms) | \($k.mean | ms) ± \($k.stddev | ms) | 1/\($k.median / $v.median | round) |")
  ' "$json" >"$OUT/$name-median.md"

  {
    echo "| command ($name) | peak RSS (median of $RUNS) |"
    echo "|---|---|"
    echo "| virtctl start | $(median_rss_kib "$(stopped)" "$BIN/virtctl start $VM") KiB |"
    echo "| kubectl patch (start) | $(median_rss_kib "$(stopped)" "$KUBECTL patch vm $VM --type merge -p '{\"spec\":{\"running\":true}}'") KiB |"
    echo "| virtctl stop | $(median_rss_kib "$(running)" "$BIN/virtctl stop $VM") KiB |"
    echo "| kubectl patch (stop) | $(median_rss_kib "$(running)" "$KUBECTL patch vm $VM --type merge -p '{\"spec\":{\"running\":false}}'") KiB |"
    echo "| virtctl restart | $(median_rss_kib "$(running)" "$BIN/virtctl restart $VM") KiB |"
    echo "| kubectl delete vmi (restart) | $(median_rss_kib "$(running)" "$KUBECTL delete vmi $VM --wait=false") KiB |"
  } >"$OUT/$name-rss.md"
}

# 1. The subresource API.
start_server "$OUT/local.log" "$BIN/virt-playground" --guests simulated --listen 127.0.0.1:0 \
  --node-start-delay 0 --node-shutdown-time 0 --kubeconfig-out "$OUT/subresource.kubeconfig"
bench_transport subresource

# 2. The client-side plan: plain localkube, the CRDs, and the controller as its own process.
start_server "$OUT/localkube.log" "$BIN/localkube" --listen 127.0.0.1:0 \
  --node-start-delay 0 --node-shutdown-time 0 --kubeconfig-out "$OUT/client-side.kubeconfig"
KUBECONFIG="$OUT/client-side.kubeconfig" $KUBECTL apply -f deploy/crds >/dev/null
"$BIN/virt-controller" run --leader-elect false --metrics-addr 127.0.0.1:0 \
  --kubeconfig "$OUT/client-side.kubeconfig" 2>"$OUT/controller.err" &
pids+=($!)
bench_transport client-side

size=$(stat -c %s "$BIN/virtctl")
{
  echo "virtctl stripped release binary: $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.1f MB, %.1f MiB", s / 1e6, s / 1048576}'))"
  echo "kubectl: $($KUBECTL version --client 2>/dev/null | head -1)"
  for name in subresource client-side; do
    echo
    cat "$OUT/$name-median.md"
    echo
    cat "$OUT/$name.md"
    echo
    cat "$OUT/$name-rss.md"
  done
} | tee "$OUT/summary.md"
