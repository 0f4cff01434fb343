#!/usr/bin/env bash
# The playground in one command: starts `virt-playground` (an embedded API server with a node
# that runs launcher Pods as processes, the KubeVirt CRDs, the subresource API, the controllers
# and virt-handler) and walks the seed's VM through Stopped -> Starting -> Running with the seed's
# own commands (kubectl and virtctl). The guest really boots under QEMU: the script shows its
# console, then restarts it, and the new guest shows the same firmware UUID.
# Without QEMU (and not root to install it) it says so and runs with simulated guests.
# Run from anywhere: ./scripts/playground.sh   (needs a Rust toolchain and kubectl)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "kubectl is needed (https://kubernetes.io/docs/tasks/tools/)" >&2; exit 1; }
guests=qemu
if ! scripts/install-deps.sh; then
  echo "QEMU or the guest's build tools are missing (see above): running with simulated guests." >&2
  guests=simulated
fi
image=""
if [ "$guests" = qemu ]; then
  echo "building the guest image (Debian packages; cached after the first run)..."
  if image=$(scripts/build-guest-image.sh | tail -n 1) && [ -f "$image" ]; then
    echo "guest image: $image"
  else
    echo "the guest image did not build (see above): running with simulated guests." >&2
    guests=simulated
  fi
fi
# The `playground` profile is release without link-time optimisation: a fresh clone builds it in
# about 5 minutes on two idle cores (BENCHMARKS.md), later runs in seconds. Cargo shows its progress.
bin="${CARGO_TARGET_DIR:-target}/playground"
if [ -x "$bin/virt-playground" ] && [ -x "$bin/virtctl" ] && [ -x "$bin/virt-launcher" ]; then
  echo "building virt-playground, virt-launcher and virtctl (profile playground; up to date in seconds)..."
else
  echo "building virt-playground, virt-launcher and virtctl (profile playground; the first build takes about 5 minutes on 2 idle cores and prints its progress)..."
fi
cargo build --profile playground -p virt-playground --bin virt-playground -p virtctl --bin virtctl \
  -p virt-launcher --bin virt-launcher --bin virt-tail
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$guests" = qemu ]; then
  "$bin/virt-playground" --kubeconfig-out "$work/kubeconfig" --guests qemu --guest-image "$image" >"$work/out" 2>&1 &
else
  "$bin/virt-playground" --kubeconfig-out "$work/kubeconfig" --guests simulated --node-start-delay 1s >"$work/out" 2>&1 &
fi
pid=$!
for _ in $(seq 1 100); do grep -q 'ready at' "$work/out" 2>/dev/null && break; sleep 0.1; done
cat "$work/out"
export KUBECONFIG="$work/kubeconfig"
run() { echo; echo "\$ $*"; "$@"; }
virtctl() { "$bin/virtctl" "$@"; }
# Prints each new printableStatus of the VM until it is $2 (and, with $3, the VMI uid differs).
follow() {
  local last="" now uid
  for _ in $(seq 1 1200); do
    now=$(kubectl get vm "$1" -o jsonpath='{.status.printableStatus}' 2>/dev/null || true)
    uid=$(kubectl get vmi "$1" -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
    [ "$now" != "$last" ] && echo "  status: ${now:-<none>}" && last=$now
    if [ "$now" = "$2" ] && { [ -z "${3:-}" ] || { [ -n "$uid" ] && [ "$uid" != "$3" ]; }; }; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $2" >&2; return 1
}
# Prints the guest's serial console (the launcher Pod's guest-console-log container) until
# it shows $2, for the VMI with uid $1.
console() {
  local pod
  for _ in $(seq 1 1200); do
    pod=$(kubectl get pods -l "kubevirt.io/created-by=$1" -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
    if [ -n "$pod" ] && kubectl logs "$pod" -c guest-console-log 2>/dev/null | grep -q "$2"; then
      echo; echo "\$ kubectl logs $pod -c guest-console-log"
      kubectl logs "$pod" -c guest-console-log | grep -E 'Linux version|SMBIOS UUID|cloud-init|address' | sed 's/^/  /'
      return 0
    fi
    sleep 0.2
  done
  echo "timed out waiting for the guest to print $2" >&2; return 1
}
run kubectl create -f examples/vm-cirros.yaml
follow vm-cirros Stopped
run kubectl get vmis
run virtctl start vm vm-cirros
follow vm-cirros Running
run kubectl get vm,vmi
old=$(kubectl get vmi vm-cirros -o jsonpath='{.metadata.uid}')
[ "$guests" = qemu ] && console "$old" 'printed from cloud-init userdata'
run virtctl restart vm-cirros
follow vm-cirros Running "$old"
new=$(kubectl get vmi vm-cirros -o jsonpath='{.metadata.uid}')
[ "$guests" = qemu ] && console "$new" 'printed from cloud-init userdata'
echo; echo "VMI uid before the restart: $old"; echo "VMI uid after the restart:  $new"
if [ "$guests" = qemu ]; then
  echo "The same firmware UUID inside both guests: $(kubectl get vmi vm-cirros -o jsonpath='{.spec.domain.firmware.uuid}')"
fi
run kubectl describe vm vm-cirros
echo; echo "The playground stops when this script exits. To keep one running:"
if [ "$guests" = qemu ]; then
  echo "  $bin/virt-playground --kubeconfig-out ./virt-local.kubeconfig --guests qemu --guest-image $image"
else
  echo "  $bin/virt-playground --kubeconfig-out ./virt-local.kubeconfig --guests simulated"
fi
