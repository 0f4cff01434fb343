#!/usr/bin/env bash
# Benchmarks localkube with --data-dir (issue 14) and writes the results to target/bench-durable/
# (BENCHMARKS.md, "Durable storage", shows a run). Run from anywhere:
#
#   ./scripts/bench-durable.sh              # localkube with --data-dir, and in memory for reads
#   ./scripts/bench-durable.sh --peer       # also the real kube-apiserver + etcd of the peer
#                                           # (started first with NO_KCM=1 .../peer/start.sh)
#
# Environment: DURATION (5s), CLIENTS (1 8 64), OBJECTS (100000), OUT (target/bench-durable),
# PEER_KUBECONFIG (~/.cache/k8s-peer/peer.kubeconfig).
#
# Parts, each on a fresh server:
#   1. writes: create, patch and delete at each concurrency, one server per concurrency; then
#      the same under `strace -f --seccomp-bpf -c -e trace=fsync,fdatasync`: fsyncs per write;
#   2. reads: get, list and watch (8 writers), in memory and with --data-dir;
#   3. memory with OBJECTS small ConfigMaps (--data-dir), then the time from exec to the ready
#      line of a restart with them, five times;
#   4. with --peer: the peer's writes and memory (kube-apiserver and etcd summed).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CLIENTS=${CLIENTS:-1 8 64}
OBJECTS=${OBJECTS:-100000}
OUT=${OUT:-target/bench-durable}
PEER_KUBECONFIG=${PEER_KUBECONFIG:-$HOME/.cache/k8s-peer/peer.kubeconfig}
peer=false
while [ $# -gt 0 ]; do
  case "$1" in
    --peer) peer=true ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
command -v strace >/dev/null || { echo "strace is needed: apt-get install strace" >&2; exit 1; }

cargo build --release -p localkube --bin localkube-bench --bin localkube
bin=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD), $(nproc) cpus" | tee "$OUT/machine.txt"
: >"$OUT/fsyncs.txt"
: >"$OUT/restart.txt"

# start NAME [--data-dir DIR] [--strace FILE]: a fresh server; sets PID (localkube's) and KC.
start() {
  local name=$1 trace="" ; shift
  local args=(--no-node --listen 127.0.0.1:0 --kubeconfig-out "$work/$name.kubeconfig")
  while [ $# -gt 0 ]; do
    case "$1" in
      --data-dir) args+=(--data-dir "$2"); shift ;;
      --strace) trace=$2; shift ;;
    esac
    shift
  done
  KC="$work/$name.kubeconfig"
  local started
  started=$(date +%s%N)
  if [ -n "$trace" ]; then
    strace -f --seccomp-bpf -qq -c -e trace=fsync,fdatasync -o "$trace" \
      "$bin"/localkube "${args[@]}" >"$work/$name.out" 2>&1 &
  else
    "$bin"/localkube "${args[@]}" >"$work/$name.out" 2>&1 &
  fi
  LAUNCHED=$!
  pids+=("$LAUNCHED")
  for _ in $(seq 1 3000); do grep -q 'ready at' "$work/$name.out" 2>/dev/null && break; sleep 0.001; done
  READY_MS=$(( ($(date +%s%N) - started) / 1000000 ))
  grep -q 'ready at' "$work/$name.out" || { echo "localkube did not start:" >&2; cat "$work/$name.out" >&2; exit 1; }
  PID=$LAUNCHED
  [ -n "$trace" ] && PID=$(pgrep -P "$LAUNCHED" -x localkube)
  return 0
}
stop() { kill "$PID" 2>/dev/null || true; wait "$LAUNCHED" 2>/dev/null || true; }
bench() { # bench NAME ARGS...
  local name=$1; shift
  "$bin"/localkube-bench --kubeconfig "$KC" --server-pid "$PID" --json "$@" \
    >"$OUT/$name.json" 2> >(tee "$OUT/$name.txt" >&2)
}
# fsyncs NAME: fsync+fdatasync calls in the strace summary, per acknowledged write of NAME.json
# (the phases' writes, and the 1,000 creates of the pool the patches use).
fsyncs() {
  python3 - "$OUT/$1.json" "$OUT/$1.strace" <<'EOF'
import json, sys
phases = json.load(open(sys.argv[1]))["phases"]
writes = sum(p["ok"] for p in phases) + 1000
calls = 0
for line in open(sys.argv[2]):
    f = line.split()
    if f and f[-1] in ("fsync", "fdatasync"):
        calls += int(f[3])
print(f"{sys.argv[1]}: {calls} fsync/fdatasync calls for {writes} acknowledged writes: {calls / max(writes, 1):.3f} per write")
EOF
}

echo; echo "== 1. writes with --data-dir: create, patch, delete =="
for c in $CLIENTS; do
  start "writes-c$c" --data-dir "$work/data-writes-c$c"
  bench "writes-c$c" --ops create,patch,delete --clients "$c" --duration "$DURATION" --pool 1000
  stop
done
# The same load under strace, for the fsync counts only: a traced fsync stops the server, so
# these runs' rates are not reported.
for c in $CLIENTS; do
  start "traced-c$c" --data-dir "$work/data-traced-c$c" --strace "$OUT/traced-c$c.strace"
  bench "traced-c$c" --ops create,patch,delete --clients "$c" --duration "$DURATION" --pool 1000
  stop
  fsyncs "traced-c$c" | tee -a "$OUT/fsyncs.txt"
done

echo; echo "== 2. reads: in memory, then with --data-dir =="
start reads-memory
bench reads-memory --ops get,list,watch --watch-writers 8 --clients "${CLIENTS// /,}" --duration "$DURATION"
stop
start reads-durable --data-dir "$work/data-reads"
bench reads-durable --ops get,list,watch --watch-writers 8 --clients "${CLIENTS// /,}" --duration "$DURATION"
stop

echo; echo "== 3. memory with $OBJECTS objects, and restarts with them =="
start memory --data-dir "$work/data-memory"
bench memory --ops none --objects "$OBJECTS" --keep
stop
for i in 1 2 3 4 5; do
  start "restart-$i" --data-dir "$work/data-memory"
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  echo "restart $i with $OBJECTS objects: ready in ${READY_MS} ms, RSS $((rss / 1024)) MiB" | tee -a "$OUT/restart.txt"
  stop
done
du -sh "$work/data-memory" | tee -a "$OUT/restart.txt"

if $peer; then
  echo; echo "== 4. the peer: writes, and memory with $OBJECTS objects =="
  peer_pids="$(pgrep -x kube-apiserver),$(pgrep -x etcd)"
  for c in $CLIENTS; do
    # A namespace per run: without kube-controller-manager a deleted one stays Terminating.
    "$bin"/localkube-bench --kubeconfig "$PEER_KUBECONFIG" --server-pid "$peer_pids" --json \
      --namespace "bench-$(date +%s)-c$c" --ops create,patch,delete --clients "$c" --duration "$DURATION" --pool 1000 \
      >"$OUT/peer-writes-c$c.json" 2> >(tee "$OUT/peer-writes-c$c.txt" >&2)
  done
  "$bin"/localkube-bench --kubeconfig "$PEER_KUBECONFIG" --server-pid "$peer_pids" --json \
    --namespace "bench-$(date +%s)-memory" --ops none --objects "$OBJECTS" >"$OUT/peer-memory.json" 2> >(tee "$OUT/peer-memory.txt" >&2)
fi
echo; echo "results in $OUT"
