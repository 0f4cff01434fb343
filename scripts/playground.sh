#!/usr/bin/env bash
# The playground in one command: starts `virt-playground` (an embedded API server with a node
# that runs launcher Pods as processes, the KubeVirt CRDs, the subresource API, the controllers
# and virt-handler) and walks the seed's VM through Stopped -> Starting -> Running with the seed's
# own commands (kubectl and virtctl). The guest really boots under QEMU: the script shows its
# console, then restarts it, and the new guest shows the same firmware UUID.
# Without QEMU (and not root to install it) it says so and runs with simulated guests.
# Run from anywhere: ./scripts/playground.sh   (needs a Rust toolchain and kubectl)
# --keep[=DIR] keeps the playground's state in DIR (default: ~/.local/state/virt-toolkit/playground):
# the next run with --keep finds the VM again, and DIR/kubeconfig keeps working.
set -euo pipefail
keep=""
for arg in "$@"; do
  case "$arg" in
    --keep) keep="${XDG_STATE_HOME:-${HOME:?}/.local/state}/virt-toolkit/playground" ;;
    --keep=?*) keep="${arg#--keep=}" ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "playground.sh: unknown argument $arg (usage: playground.sh [--keep[=DIR]])" >&2; exit 2 ;;
  esac
done
[ -n "$keep" ] && mkdir -p "$keep" && keep=$(cd "$keep" && pwd)
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
kubeconfig="$work/kubeconfig"
state=()
if [ -n "$keep" ]; then
  kubeconfig="$keep/kubeconfig"
  state=(--data-dir "$keep/data")
fi
if [ "$guests" = qemu ]; then
  "$bin/virt-playground" --kubeconfig-out "$kubeconfig" "${state[@]}" --guests qemu --guest-image "$image" >"$work/out" 2>&1 &
else
  "$bin/virt-playground" --kubeconfig-out "$kubeconfig" "${state[@]}" --guests simulated --node-start-delay 1s >"$work/out" 2>&1 &
fi
pid=$!
for _ in $(seq 1 100); do grep -q 'ready at' "$work/out" 2>/dev/null && break; sleep 0.1; done
cat "$work/out"
grep -q 'ready at' "$work/out" || { echo "virt-playground did not start (see above)" >&2; exit 1; }
export KUBECONFIG="$kubeconfig"
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
if [ -n "$keep" ] && kubectl get vm vm-cirros >/dev/null 2>&1; then
  # A kept playground: the VM is the one of the last run. Its guest died with the last run's
  # node, so its VMI failed, and the VM's run strategy (the seed's running: true) starts it again.
  echo; echo "The state of the last run, kept in $keep:"
  run kubectl get vm,vmi
  follow vm-cirros Running
  run kubectl get vm,vmi
  uid=$(kubectl get vmi vm-cirros -o jsonpath='{.metadata.uid}')
  [ "$guests" = qemu ] && console "$uid" 'printed from cloud-init userdata'
  echo; echo "The playground stops when this script exits; its state stays in $keep."
  echo "Run ./scripts/playground.sh --keep again to find it; remove $keep to start over."
  exit 0
fi
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
if [ -n "$keep" ]; then
  echo; echo "The playground stops when this script exits; its state stays in $keep."
  echo "Run ./scripts/playground.sh --keep again to find the VM as you left it."
fi
echo; echo "The playground stops when this script exits. To keep one running (add --data-dir DIR to keep its state):"
if [ "$guests" = qemu ]; then
  echo "  $bin/virt-playground --kubeconfig-out ./virt-local.kubeconfig --guests qemu --guest-image $image"
else
  echo "  $bin/virt-playground --kubeconfig-out ./virt-local.kubeconfig --guests simulated"
fi
