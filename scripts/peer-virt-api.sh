#!/usr/bin/env bash
# The toolkit on a real kube-apiserver (the peer kube-apiserver 1.24 of docs/cluster.md,
# "Checked against kube-apiserver 1.24"; not in CI, which cannot build it): virt-api on loopback
# as the aggregated server (Service ExternalName localhost) with its webhooks by url,
# virt-controller and a localkube node drive the seed's VM.
# Checks, each printed as a transcript and asserted:
#   - start, pause, unpause, restart and stop through the aggregated API, for the admin and for
#     a ServiceAccount bound to kubevirt.io:edit only;
#   - that user may not patch virtualmachines/status;
#   - a ServiceAccount bound to kubevirt.io:view gets 403 on start, in the API server's words;
#   - the webhooks refuse a VM with both running and runStrategy.
# Exits 1 at the first check that does not hold.
#
# Usage: start a fresh peer (its start.sh with NO_KCM=1), then scripts/peer-virt-api.sh [BIN_DIR]
#   BIN_DIR holds virtctl, virt-api, virt-controller and localkube (default: target/release;
#   cargo build --release -p virtctl -p virt-api -p virt-controller -p localkube)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release}")
peer=${PEER_DIR:-$HOME/.cache/k8s-peer}
export KUBECONFIG=$peer/peer.kubeconfig
for b in virtctl virt-api virt-controller localkube; do
  [ -x "$bin/$b" ] || { echo "peer-virt-api: $bin/$b is missing (see Usage)" >&2; exit 1; }
done
kubectl get --raw /readyz >/dev/null 2>&1 || {
  echo "peer-virt-api: no API server at $KUBECONFIG; start the peer first (docs/cluster.md)" >&2
  exit 1
}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# show CMD...: prints the command and its output, indented; fails when the command fails.
show() {
  printf '$ %s\n' "$*"
  local out status=0
  out=$("$@" 2>&1) || status=$?
  [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/  /'
  if [ "$status" -ne 0 ]; then
    echo "peer-virt-api: FAILED (exit $status): $*" >&2
    exit 1
  fi
}

# refused TEXT CMD...: the command must fail and print TEXT.
refused() {
  local want=$1
  shift
  printf '$ %s\n' "$*"
  local out status=0
  out=$("$@" 2>&1) || status=$?
  printf '%s\n' "$out" | sed 's/^/  /'
  printf '  (exit %s)\n' "$status"
  if [ "$status" -eq 0 ] || ! grep -qF -- "$want" <<<"$out"; then
    echo "peer-virt-api: FAILED: expected a refusal saying: $want" >&2
    exit 1
  fi
}

# printable VM STATUS [KUBECONFIG]: waits up to 60 s for the VM's printableStatus.
printable() {
  local status=""
  for _ in $(seq 600); do
    status=$(kubectl --kubeconfig "${3:-$KUBECONFIG}" get vm "$1" -o jsonpath='{.status.printableStatus}' 2>/dev/null || true)
    [ "$status" = "$2" ] && { printf '  vm/%s: %s\n' "$1" "$status"; return; }
    sleep 0.1
  done
  echo "peer-virt-api: FAILED: vm/$1 is '$status', not '$2', after 60 s" >&2
  exit 1
}

echo "# The peer, the CRDs and the user roles"
show kubectl version
show kubectl apply --server-side -f deploy/crds
show kubectl apply --server-side -f deploy/13-user-roles.yaml

echo
echo "# virt-api (aggregated, webhooks by url), virt-controller and a node, all against the peer"
# The admin runs the controller, so the VMI webhooks trust it as they would trust
# KubeVirt's service accounts in the cluster.
"$bin/virt-api" --register-loopback --bind-address 127.0.0.1 --port 0 --trusted-user admin \
  >"$work/virt-api.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do grep -q 'serving on' "$work/virt-api.log" && break; sleep 0.1; done
grep -q 'serving on' "$work/virt-api.log" || { cat "$work/virt-api.log" >&2; exit 1; }
"$bin/virt-controller" run --kubeconfig "$KUBECONFIG" --metrics-addr 127.0.0.1:0 >"$work/controller.log" 2>&1 &
pids+=($!)
"$bin/localkube" node --kubeconfig "$KUBECONFIG" >"$work/node.log" 2>&1 &
pids+=($!)
show grep "serving on" "$work/virt-api.log"
show kubectl get apiservices v1.subresources.kubevirt.io v1alpha3.subresources.kubevirt.io
show kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations
for _ in $(seq 300); do kubectl get nodes 2>/dev/null | grep -q ' Ready' && break; sleep 0.1; done
show kubectl get nodes

echo
echo "# Users: editor (kubevirt.io:edit) and viewer (kubevirt.io:view), ServiceAccount tokens"
for user in editor viewer; do
  role=edit
  [ "$user" = viewer ] && role=view
  show kubectl create serviceaccount "$user"
  show kubectl create rolebinding "$user" --clusterrole="kubevirt.io:$role" --serviceaccount="default:$user"
  cp "$KUBECONFIG" "$work/$user.kubeconfig"
  kubectl --kubeconfig "$work/$user.kubeconfig" config set-credentials "$user" \
    --token="$(kubectl create token "$user")" >/dev/null
  kubectl --kubeconfig "$work/$user.kubeconfig" config set-context --current --user="$user" >/dev/null
done

lifecycle() {
  local kc=$1
  show "$bin/virtctl" --kubeconfig "$kc" start vm-cirros
  printable vm-cirros Running "$kc"
  show "$bin/virtctl" --kubeconfig "$kc" pause vm vm-cirros
  printable vm-cirros Paused "$kc"
  show "$bin/virtctl" --kubeconfig "$kc" unpause vm vm-cirros
  printable vm-cirros Running "$kc"
  show "$bin/virtctl" --kubeconfig "$kc" restart vm-cirros
  printable vm-cirros Running "$kc"
  show "$bin/virtctl" --kubeconfig "$kc" stop vm-cirros
  printable vm-cirros Stopped "$kc"
}

echo
echo "# The admin: the seed's VM through the aggregated API"
show kubectl apply -f examples/vm-cirros.yaml
printable vm-cirros Stopped
show kubectl get vm vm-cirros -o jsonpath='{.metadata.annotations}{"\n"}{.spec.template.spec.domain.firmware}{"\n"}'
lifecycle "$KUBECONFIG"

echo
echo "# editor: the same verbs, and no status writes"
lifecycle "$work/editor.kubeconfig"
refused 'User "system:serviceaccount:default:editor" cannot get resource "virtualmachines/status"' \
  kubectl --kubeconfig "$work/editor.kubeconfig" patch vm vm-cirros --subresource=status \
  --type=merge -p '{"status":{"ready":true}}'
# kubectl reads the status before it patches; the PATCH alone, as virtctl's client side sends it:
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
echo "Authorization: Bearer $(kubectl create token editor)" >"$work/editor.header"
refused 'cannot patch resource \"virtualmachines/status\"' \
  curl -sSk --fail-with-body -X PATCH -H @"$work/editor.header" \
  -H 'Content-Type: application/merge-patch+json' -d '{"status":{"ready":true}}' \
  "$server/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm-cirros/status"

echo
echo "# viewer: may look, may not start"
show kubectl --kubeconfig "$work/viewer.kubeconfig" get vm vm-cirros
refused 'cannot update resource "virtualmachines/start" in API group "subresources.kubevirt.io"' \
  "$bin/virtctl" --kubeconfig "$work/viewer.kubeconfig" start vm-cirros

echo
echo "# The webhooks"
refused 'Running and RunStrategy are mutually exclusive' kubectl apply -f - <<'EOF'
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: both
spec:
  running: true
  runStrategy: Always
  template:
    spec:
      domain:
        devices: {}
        resources:
          requests:
            memory: 64M
EOF
refused 'RunStrategy must be specified' kubectl apply -f - <<'EOF'
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: neither
spec:
  template:
    spec:
      domain:
        devices: {}
        resources:
          requests:
            memory: 64M
EOF

echo
echo "peer-virt-api: every check held"
