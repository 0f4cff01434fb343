#!/usr/bin/env bash
# Starts localkube (with its simulated node) and walks through a short kubectl session
# against it. Run from the repository root: ./scripts/try-localkube.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is needed (https://kubernetes.io/docs/tasks/tools/)" >&2; exit 1; }
cargo build --release -p localkube --quiet
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
./target/release/localkube --kubeconfig-out "$work/kubeconfig" --node-start-delay 500ms >"$work/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q 'ready at' "$work/out" 2>/dev/null && break; sleep 0.1; done
cat "$work/out"
export KUBECONFIG="$work/kubeconfig"
run() { echo; echo "\$ $*"; "$@"; }
run kubectl get nodes
run kubectl create deployment demo --image=nginx:1.27 --dry-run=client -o yaml
run kubectl run web --image=nginx:1.27 --labels=app=web
run kubectl wait --for=condition=Ready pod/web --timeout=30s
run kubectl get pods -o wide
run kubectl expose pod web --port=80
run kubectl get svc web
run kubectl describe pod web
run kubectl delete pod web
run kubectl get pods
