#!/usr/bin/env bash
# Sends the table of malformed requests of crates/localkube/tests/bad_input.rs (fn `table`) to a
# real kube-apiserver, the peer of docs/cluster.md ("Checked against kube-apiserver 1.24"; not in
# CI, which cannot build it), and prints one line per row: localkube's answer beside the peer's.
# Fails for a row whose HTTP code or reason differs without a `departure` note in the table.
#
# Usage: scripts/peer-bad-input.sh
#   Starts the peer (its start.sh with NO_KCM=1) when none answers, and stops it again at the
#   end (KEEP_PEER=1 leaves it running); a peer that was already running is reused and left as
#   it is. The rows' objects live in the namespace bad-input, which is left behind.
#   PEER_DIR (default ~/.cache/k8s-peer) says where the peer keeps its kubeconfig, and
#   PEER_START names its start.sh (docs/cluster.md says where it is); without PEER_START a peer
#   must already answer.
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${PEER_DIR:-$HOME/.cache/k8s-peer}
start=${PEER_START:-}
kubeconfig=$peer/peer.kubeconfig

ready() {
  [ -f "$kubeconfig" ] && kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1
}

if ! ready; then
  [ -n "$start" ] && [ -x "$start" ] || {
    echo "peer-bad-input: no peer answers at $kubeconfig: start one, or set PEER_START to the peer's start.sh (see docs/cluster.md)" >&2
    exit 1
  }
  echo "peer-bad-input: starting the peer ($start)"
  NO_KCM=1 PEER_DIR=$peer "$start"
  if [ -z "${KEEP_PEER:-}" ]; then
    # Only the processes this run started (start.sh wrote their ids), the last started first:
    # a kube-apiserver whose etcd is gone takes a minute to stop.
    started=$(tac "$peer/pids")
    stop_peer() {
      local p
      for p in $started; do
        kill "$p" 2>/dev/null || continue
        for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      done
    }
    trap stop_peer EXIT
  fi
fi

PEER_KUBECONFIG=$kubeconfig nice -n 19 cargo test -p localkube --test bad_input -- \
  --ignored --nocapture --exact a_real_kube_apiserver_answers_the_table_alike
