#!/usr/bin/env bash
# The playground in one command: starts `virt-playground` (an embedded API server with a
# simulated node, the KubeVirt CRDs, the subresource API and the controllers) and walks the
# seed's VM through Stopped -> Starting -> Running with the seed's own commands (kubectl and
# virtctl), then a restart to a new VMI.
# Run from anywhere: ./scripts/playground.sh   (needs a Rust toolchain and kubectl)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is needed (https://kubernetes.io/docs/tasks/tools/)" >&2; exit 1; }
# The `playground` profile is release without link-time optimisation: a fresh clone builds it in
# about 5 minutes on two idle cores (BENCHMARKS.md), later runs in seconds. Cargo shows its progress.
bin="${CARGO_TARGET_DIR:-target}/playground"
if [ -x "$bin/virt-playground" ] && [ -x "$bin/virtctl" ]; then
  echo "building virt-playground and virtctl (profile playground; up to date in seconds)..."
else
  echo "building virt-playground and virtctl (profile playground; the first build takes about 5 minutes on 2 idle cores and prints its progress)..."
fi
cargo build --profile playground -p virt-playground --bin virt-playground -p virtctl --bin virtctl
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/virt-playground" --kubeconfig-out "$work/kubeconfig" --node-start-delay 1s >"$work/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q 'ready at' "$work/out" 2>/dev/null && break; sleep 0.1; done
cat "$work/out"
export KUBECONFIG="$work/kubeconfig"
run() { echo; echo "\$ $*"; "$@"; }
virtctl() { "$bin/virtctl" "$@"; }
# Prints each new printableStatus of the VM until it is $2 (and, with $3, the VMI uid differs).
follow() {
  local last="" now uid
  for _ in $(seq 1 300); do
    now=$(kubectl get vm "$1" -o jsonpath='{.status.printableStatus}' 2>/dev/null || true)
    uid=$(kubectl get vmi "$1" -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
    [ "$now" != "$last" ] && echo "  status: ${now:-<none>}" && last=$now
    if [ "$now" = "$2" ] && { [ -z "${3:-}" ] || { [ -n "$uid" ] && [ "$uid" != "$3" ]; }; }; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $2" >&2; return 1
}
run kubectl create -f examples/vm-cirros.yaml
follow vm-cirros Stopped
run kubectl get vmis
run virtctl start vm vm-cirros
follow vm-cirros Running
run kubectl get vm,vmi
old=$(kubectl get vmi vm-cirros -o jsonpath='{.metadata.uid}')
run virtctl restart vm-cirros
follow vm-cirros Running "$old"
new=$(kubectl get vmi vm-cirros -o jsonpath='{.metadata.uid}')
echo; echo "VMI uid before the restart: $old"; echo "VMI uid after the restart:  $new"
run kubectl describe vm vm-cirros
echo; echo "The playground stops when this script exits. To keep one running:"
echo "  $bin/virt-playground --kubeconfig-out ./virt-local.kubeconfig"
