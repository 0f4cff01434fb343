#!/usr/bin/env bash
# Benchmarks localkube as a client sees it (HTTPS, bearer token, kube-rs clients) and writes the
# results to target/bench-localkube/ (BENCHMARKS.md shows a run). Run from anywhere:
#
#   ./scripts/bench-localkube.sh                  # the full run (about 3 minutes plus the build)
#   ./scripts/bench-localkube.sh --quick          # 1 s phases, 1 and 8 clients, 10k objects
#   ./scripts/bench-localkube.sh --etcd-reference # also: etcd's memory with as many keys
#   ./scripts/bench-localkube.sh --pin            # server on CPU 0, load generator on CPU 1
#   ./scripts/bench-localkube.sh -- --watch-writers 2   # extra localkube-bench arguments
#
# Environment: DURATION (5s), CLIENTS (1,8,64), OBJECTS (10000,100000), OUT (target/bench-localkube).
#
# Each part gets a fresh `localkube --no-node` on a free port:
#   1. throughput: create, get, list, patch, watch delivery with CLIENTS concurrent clients;
#   2. memory: server RSS with OBJECTS small ConfigMaps stored;
#   3. kubectl: whole-process wall time of kubectl commands, with hyperfine (installed with
#      apt-get when missing and running as root; skipped otherwise, saying how to install it);
#   4. with --etcd-reference: etcd (Debian's etcd-server) RSS with as many keys of 300 bytes, a
#      lower bound for the memory of a kube-apiserver + etcd peer (kube-apiserver itself is not
#      packaged by Debian).
#
# localkube-bench accepts any kubeconfig, so the same load can target another API server:
#   target/release/localkube-bench --kubeconfig OTHER.kubeconfig [--server-pid PID]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-1,8,64}
OBJECTS=${OBJECTS:-10000,100000}
OUT=${OUT:-target/bench-localkube}
etcd_reference=false
hyperfine_wanted=true
server_cpu=()
client_cpu=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) DURATION=1s CLIENTS=1,8 OBJECTS=10000 ;;
    --etcd-reference) etcd_reference=true ;;
    --no-hyperfine) hyperfine_wanted=false ;;
    --pin) server_cpu=(taskset -c 0) client_cpu=(taskset -c 1) ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cargo build --release -p localkube --bin localkube-bench --bin localkube
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "cpus: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(grep MemTotal /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}')"
  echo "kernel: $(uname -sr)"
  echo "rustc: $(rustc --version)"
  echo "settings: DURATION=$DURATION CLIENTS=$CLIENTS OBJECTS=$OBJECTS ${server_cpu[*]:+pinned: server ${server_cpu[*]}, bench ${client_cpu[*]}} ${extra[*]:-}"
} | tee "$OUT/machine.txt"

# start_localkube NAME: starts a fresh server; sets LK_PID and LK_KUBECONFIG.
start_localkube() {
  LK_KUBECONFIG="$work/$1.kubeconfig"
  ${server_cpu[@]+"${server_cpu[@]}"} ./target/release/localkube --no-node --listen 127.0.0.1:0 --kubeconfig-out "$LK_KUBECONFIG" \
    >"$work/$1.out" 2>&1 &
  LK_PID=$!
  pids+=("$LK_PID")
  for _ in $(seq 1 100); do
    grep -q 'ready at' "$work/$1.out" 2>/dev/null && break
    sleep 0.1
  done
  grep 'ready at' "$work/$1.out" || { echo "localkube did not start:" >&2; cat "$work/$1.out" >&2; exit 1; }
}

stop_localkube() {
  kill "$LK_PID" 2>/dev/null || true
  wait "$LK_PID" 2>/dev/null || true
  if [ -s "$work/$1.out" ] && [ "$(wc -l <"$work/$1.out")" -gt 1 ]; then
    echo "localkube ($1) said:"; tail -n 20 "$work/$1.out"
  fi
}

bench() { # bench NAME ARGS...: runs localkube-bench against the current server
  local name=$1; shift
  ${client_cpu[@]+"${client_cpu[@]}"} ./target/release/localkube-bench --kubeconfig "$LK_KUBECONFIG" --server-pid "$LK_PID" --json "$@" \
    >"$OUT/$name.json" 2> >(tee "$OUT/$name.txt" >&2)
}

echo; echo "== 1. throughput (create, get, list, patch, watch) =="
start_localkube throughput
bench throughput --clients "$CLIENTS" --duration "$DURATION" ${extra[@]+"${extra[@]}"}
stop_localkube throughput

echo; echo "== 2. memory with $OBJECTS small ConfigMaps =="
start_localkube memory
bench memory --ops none --objects "$OBJECTS" ${extra[@]+"${extra[@]}"}
stop_localkube memory

echo; echo "== 3. kubectl wall time (hyperfine) =="
if $hyperfine_wanted && ! command -v hyperfine >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y hyperfine >/dev/null 2>&1 ||
      { apt-get update >/dev/null && apt-get install -y hyperfine >/dev/null; } || true
  fi
fi
if ! $hyperfine_wanted; then
  echo "skipped (--no-hyperfine)"
elif ! command -v kubectl >/dev/null; then
  echo "skipped: kubectl is not installed"
elif ! command -v hyperfine >/dev/null; then
  echo "skipped: hyperfine is not installed (Debian/Ubuntu: sudo apt-get install hyperfine; or cargo install hyperfine)"
else
  start_localkube kubectl
  ./target/release/localkube-bench --kubeconfig "$LK_KUBECONFIG" --namespace kubectl-bench \
    --ops none --objects 100 --keep >/dev/null 2>&1
  KUBECONFIG="$LK_KUBECONFIG" hyperfine --warmup 3 --runs 30 --export-markdown "$OUT/kubectl.md" \
    "kubectl --cache-dir $work/kube-cache get configmaps -n kubectl-bench" \
    "kubectl --cache-dir $work/kube-cache get configmap mem-0 -n kubectl-bench -o json" \
    "kubectl --cache-dir $work/kube-cache get --raw /version" | tee "$OUT/kubectl.txt"
  stop_localkube kubectl
fi

if $etcd_reference; then
  echo; echo "== 4. reference: etcd alone with as many 300-byte keys =="
  if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    echo "skipped: etcd is not installed (Debian: apt-get install etcd-server etcd-client)"
  else
    etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:23790 \
      --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
      --max-txn-ops 1000 >"$work/etcd.out" 2>&1 &
    etcd_pid=$!
    pids+=("$etcd_pid")
    export ETCDCTL_API=3
    for _ in $(seq 1 100); do
      etcdctl --endpoints 127.0.0.1:23790 endpoint health >/dev/null 2>&1 && break
      sleep 0.1
    done
    value=$(head -c 300 /dev/zero | tr '\0' 'x')
    rss() { grep -E "^$1:" "/proc/$etcd_pid/status" | awk '{print $2}'; }
    { echo "etcd $(etcd --version | head -1 | awk '{print $3}'): keys, VmRSS KiB, VmHWM KiB"
      echo "0 $(rss VmRSS) $(rss VmHWM)"; } | tee "$OUT/etcd.txt"
    have=0
    for n in ${OBJECTS//,/ }; do
      start=$(date +%s%N)
      for ((b = have; b < n; b += 1000)); do
        { echo
          for ((i = b; i < b + 1000 && i < n; i++)); do
            echo "put /registry/configmaps/localkube-bench/mem-$i $value"
          done
          echo; echo; } | etcdctl --endpoints 127.0.0.1:23790 txn >/dev/null
      done
      have=$n
      sleep 0.5
      echo "$n $(rss VmRSS) $(rss VmHWM) (loaded in $(( ($(date +%s%N) - start) / 1000000 )) ms)" | tee -a "$OUT/etcd.txt"
    done
  fi
fi

echo; echo "results in $OUT/"
