#!/usr/bin/env bash
# Measures `kubectl port-forward` throughput through localkube: a process pod (socat on its
# loopback pod IP) sinks or sources SIZE_MIB MiB, and the bytes go through kubectl's local port,
# localkube's API server (TLS) and the node's kubelet endpoint. Prints MB/s per direction for
# both protocols kubectl speaks (SPDY tunnelled in a websocket, kubectl's default since 1.31;
# plain SPDY/3.1 with KUBECTL_PORT_FORWARD_WEBSOCKETS=false), and the same transfer straight to
# the pod IP as a baseline.
#
#   ./scripts/bench-port-forward.sh              # 1 GiB each way (after a release build)
#   SIZE_MIB=256 ./scripts/bench-port-forward.sh
#
# Environment: SIZE_MIB (1024), PROFILE (release; `playground` builds faster), KUBECTL
# (kubectl), LOCALKUBE (a localkube binary to use instead of building one).
# Needs kubectl and socat (scripts/install-deps.sh installs socat).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
PROFILE=${PROFILE:-release}
KUBECTL=${KUBECTL:-kubectl}
bytes=$((SIZE_MIB * 1024 * 1024))
for tool in "$KUBECTL" socat; do
  command -v "$tool" >/dev/null || { echo "bench-port-forward: $tool is needed" >&2; exit 1; }
done
if [ -z "${LOCALKUBE:-}" ]; then
  cargo build --profile "$PROFILE" -p localkube --bin localkube
  dir=$PROFILE
  [ "$PROFILE" = dev ] && dir=debug
  LOCALKUBE=${CARGO_TARGET_DIR:-target}/$dir/localkube
fi

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

# The pod: port 5000 counts what it receives (one file per connection), port 5001 sends
# $BYTES zero bytes to each connection.
cat >"$work/pod-entry" <<'EOF'
#!/bin/sh
socat TCP-LISTEN:5000,bind=$POD_IP,reuseaddr,fork SYSTEM:"wc -c > $OUT/received.\$\$" &
exec socat TCP-LISTEN:5001,bind=$POD_IP,reuseaddr,fork SYSTEM:"head -c $BYTES /dev/zero"
EOF
chmod +x "$work/pod-entry"
mkdir -p "$work/out"

"$LOCALKUBE" --listen 127.0.0.1:0 --kubeconfig-out "$work/kubeconfig" --node-start-delay 0 \
  --image "bench.local/sink=$work/pod-entry" >"$work/localkube.out" 2>"$work/localkube.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "ready at" "$work/localkube.out" 2>/dev/null && break; sleep 0.1; done
export KUBECONFIG=$work/kubeconfig HOME=$work
"$KUBECTL" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: sink}
spec:
  containers:
  - name: sink
    image: bench.local/sink:v1
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: BYTES, value: "$bytes"}
    - {name: OUT, value: "$work/out"}
EOF
"$KUBECTL" wait --for=condition=Ready pod/sink --timeout=60s >/dev/null
pod_ip=$("$KUBECTL" get pod sink -o jsonpath='{.status.podIP}')
for _ in $(seq 100); do socat -u /dev/null "TCP:$pod_ip:5001" 2>/dev/null && break; sleep 0.1; done
rm -f "$work"/out/*

now() { date +%s.%N; }
rate() { awk -v b="$bytes" -v s="$1" -v e="$2" 'BEGIN { printf "%.0f MB/s (%.2f s)", b / (e - s) / 1e6, e - s }'; }

# Sends $bytes to HOST:PORT and waits until the pod has counted them all.
upload() {
  rm -f "$work"/out/*
  local start end
  start=$(now)
  head -c "$bytes" /dev/zero | socat -u - "TCP:$1:$2"
  for _ in $(seq 6000); do
    if [ -n "$(cat "$work"/out/* 2>/dev/null)" ]; then break; fi
    sleep 0.01
  done
  end=$(now)
  got=$(cat "$work"/out/*)
  [ "$got" = "$bytes" ] || { echo "upload: the pod got $got of $bytes bytes" >&2; exit 1; }
  rate "$start" "$end"
}

# Reads $bytes from HOST:PORT.
download() {
  local start end got
  start=$(now)
  got=$(socat -u "TCP:$1:$2" - | wc -c)
  end=$(now)
  [ "$got" = "$bytes" ] || { echo "download: got $got of $bytes bytes" >&2; exit 1; }
  rate "$start" "$end"
}

# Starts kubectl port-forward (env given as arguments); sets up_port and down_port.
forward() {
  env "$@" "$KUBECTL" port-forward pod/sink :5000 :5001 >"$work/pf.out" 2>"$work/pf.err" &
  pf_pid=$!
  pids+=("$pf_pid")
  for _ in $(seq 300); do [ "$(grep -c '^Forwarding from 127.0.0.1' "$work/pf.out")" = 2 ] && break; sleep 0.1; done
  up_port=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) -> 5000$/\1/p' "$work/pf.out")
  down_port=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) -> 5001$/\1/p' "$work/pf.out")
  [ -n "$up_port" ] && [ -n "$down_port" ] || { cat "$work/pf.err" >&2; exit 1; }
}

echo "kubectl port-forward through localkube, $SIZE_MIB MiB each way ($("$KUBECTL" version --client | head -1), $(nproc) CPUs)"
echo "direct to the pod IP ($pod_ip):   upload $(upload "$pod_ip" 5000), download $(download "$pod_ip" 5001)"
forward KUBECTL_PORT_FORWARD_WEBSOCKETS=true
echo "websocket (SPDY tunnelled):     upload $(upload 127.0.0.1 "$up_port"), download $(download 127.0.0.1 "$down_port")"
kill "$pf_pid"; wait "$pf_pid" 2>/dev/null || true
forward KUBECTL_PORT_FORWARD_WEBSOCKETS=false
echo "SPDY/3.1 upgrade:               upload $(upload 127.0.0.1 "$up_port"), download $(download 127.0.0.1 "$down_port")"
