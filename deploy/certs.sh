#!/usr/bin/env bash
# deploy/certs.sh: issues virt-api's serving certificate and gives its CA to kube-apiserver.
#
# Every run is a rotation: a new CA and a new serving certificate for virt-api.NS.svc (also
# virt-api.NS.svc.cluster.local and virt-api), then
#   1. caBundle := the new CA + the previous one (if the Secret had one that has not expired), in
#      the APIServices v1 and v1alpha3.subresources.kubevirt.io and in every webhook of
#      virt-api-mutator and virt-api-validator;
#   2. the Secret NS/kubevirt-virt-api-certs (kubernetes.io/tls: tls.crt, tls.key, and ca.crt,
#      the same bundle);
#   3. a rollout restart of deployment NS/virt-api, when it exists, so that its pods serve the
#      new certificate.
# Old pods keep serving the old certificate until they are replaced, and the previous CA stays
# trusted meanwhile, so a rotation never leaves kube-apiserver without a virt-api it trusts.
# Everything is generated and checked before anything is written; caBundle is written before the
# Secret, so a failure halfway leaves the old certificate served and trusted. Re-running is safe.
# Needs bash, openssl and kubectl ($KUBECTL, else kubectl from the PATH). docs/cluster.md.
set -euo pipefail

SECRET=kubevirt-virt-api-certs
SERVICE=virt-api
DEPLOYMENT=virt-api
APISERVICES=(v1.subresources.kubevirt.io v1alpha3.subresources.kubevirt.io)
WEBHOOK_CONFIGS=(mutatingwebhookconfiguration/virt-api-mutator validatingwebhookconfiguration/virt-api-validator)
FIELD_MANAGER=virt-api-certs

usage() {
  cat <<'EOF'
Usage: deploy/certs.sh [--namespace NS] [--days N] [--kubeconfig PATH] [--context NAME]

Issues a new CA and serving certificate for virt-api, writes the CA bundle into virt-api's
APIServices and webhook configurations, writes the Secret kubevirt-virt-api-certs, and restarts
the virt-api Deployment. Every run rotates; apply deploy/ first.

  --namespace NS       where virt-api runs (default: kubevirt)
  --days N             validity of the CA and the certificate, in days (default: 365)
  --kubeconfig PATH    passed to kubectl
  --context NAME       passed to kubectl
  -h, --help           this help
EOF
}

die() {
  echo "certs.sh: $*" >&2
  exit 1
}

usage_error() {
  echo "certs.sh: $*" >&2
  echo "Try 'deploy/certs.sh --help'." >&2
  exit 2
}

namespace=kubevirt
days=365
kubectl_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --namespace | --days | --kubeconfig | --context)
      { [ $# -ge 2 ] && [[ "$2" != -* ]]; } || usage_error "$1 needs a value"
      opt=$1 value=$2
      shift 2
      ;;
    --namespace=* | --days=* | --kubeconfig=* | --context=*)
      opt=${1%%=*} value=${1#*=}
      shift
      ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  [ -n "$value" ] || usage_error "$opt needs a value"
  case "$opt" in
    --namespace) namespace=$value ;;
    --days) days=$value ;;
    --kubeconfig) kubectl_args+=(--kubeconfig "$value") ;;
    --context) kubectl_args+=(--context "$value") ;;
  esac
done
[[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
  usage_error "--namespace: '$namespace' is not a namespace name (lowercase letters, digits and '-', at most 63)"
[[ "$days" =~ ^[1-9][0-9]{0,4}$ ]] || usage_error "--days: '$days' is not a number of days from 1 to 99999"

KUBECTL=${KUBECTL:-kubectl}
command -v openssl >/dev/null || die "openssl is not installed (Debian: apt-get install openssl)"
command -v "$KUBECTL" >/dev/null || die "kubectl is not installed (or set KUBECTL)"
# (The ${a[@]+...} form: bash before 4.4 calls an empty array unset.)
k() { "$KUBECTL" ${kubectl_args[@]+"${kubectl_args[@]}"} "$@"; }

# --- What is there: read only, so that a missing piece stops us before anything is written.
if ! out=$(k get namespace "$namespace" -o name 2>&1); then
  case "$out" in
    *NotFound*) die "namespace $namespace not found: apply deploy/ first" ;;
    *) die "cannot reach the cluster: ${out##*$'\n'}" ;;
  esac
fi
for a in "${APISERVICES[@]}"; do
  k get apiservice "$a" -o name >/dev/null 2>&1 || die "apiservice $a not found: apply deploy/ first"
done
served=$(k api-resources --api-group=admissionregistration.k8s.io -o name 2>/dev/null || true)
webhook_patches=()
for ref in "${WEBHOOK_CONFIGS[@]}"; do
  kind=${ref%%/*}
  if ! grep -qx "${kind}s.admissionregistration.k8s.io" <<<"$served"; then
    # Only a test server lacks these kinds (kube-apiserver has served them since 1.16).
    echo "certs.sh: warning: the server has no ${kind}s; not written" >&2
    continue
  fi
  names=$(k get "$ref" -o jsonpath='{range .webhooks[*]}{.name}{"\n"}{end}' 2>/dev/null) ||
    die "$ref not found: apply deploy/ first"
  [ -n "$names" ] || die "$ref has no webhooks"
  webhook_patches+=("$ref")
done
secret_type=$(k -n "$namespace" get secret "$SECRET" -o jsonpath='{.type}' 2>/dev/null || true)
if [ -n "$secret_type" ] && [ "$secret_type" != kubernetes.io/tls ]; then
  die "secret $namespace/$SECRET has type $secret_type, not kubernetes.io/tls (a type cannot change): delete it and run again"
fi
have_deployment=$(k -n "$namespace" get deployment "$DEPLOYMENT" -o name 2>/dev/null || true)

# --- Generate and check everything.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
host="$SERVICE.$namespace.svc"
sans="DNS:$host,DNS:$host.cluster.local,DNS:$SERVICE"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key" 2>"$work/err" ||
  die "openssl: cannot make the CA key: $(cat "$work/err")"
openssl req -x509 -new -sha256 -key "$work/ca.key" -days "$days" \
  -subj "/CN=virt-api-ca@$(date -u +%Y%m%dT%H%M%SZ)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" -out "$work/ca.crt" 2>"$work/err" ||
  die "openssl: cannot make the CA: $(cat "$work/err")"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/tls.key" 2>"$work/err" ||
  die "openssl: cannot make the key: $(cat "$work/err")"
openssl req -new -sha256 -key "$work/tls.key" -subj "/CN=$host" -out "$work/tls.csr" 2>"$work/err" ||
  die "openssl: cannot make the request: $(cat "$work/err")"
cat >"$work/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$sans
EOF
openssl x509 -req -sha256 -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$work/ext.cnf" \
  -out "$work/tls.crt" 2>"$work/err" || die "openssl: cannot sign the certificate: $(cat "$work/err")"
openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null 2>"$work/err" ||
  die "openssl: the new certificate does not verify: $(cat "$work/err")"

# The bundle: the new CA, then the previous one while it is valid (old pods still serve a
# certificate it signed until the restart has replaced them).
cp "$work/ca.crt" "$work/bundle.crt"
previous=$(k -n "$namespace" get secret "$SECRET" -o jsonpath='{.data.ca\.crt}' 2>/dev/null || true)
if [ -n "$previous" ]; then
  if printf '%s' "$previous" | openssl base64 -d -A >"$work/previous-bundle.crt" 2>/dev/null &&
    openssl x509 -in "$work/previous-bundle.crt" -out "$work/previous.crt" 2>/dev/null &&
    openssl x509 -in "$work/previous.crt" -noout -checkend 0 >/dev/null 2>&1; then
    cat "$work/previous.crt" >>"$work/bundle.crt"
  else
    echo "certs.sh: warning: the previous CA in $namespace/$SECRET is unreadable or expired; not kept" >&2
  fi
fi
b64() { openssl base64 -A -in "$1"; }
bundle=$(b64 "$work/bundle.crt")

# --- Write: trust first, then the certificate, then restart.
for a in "${APISERVICES[@]}"; do
  k patch apiservice "$a" --type=merge -p "{\"spec\":{\"caBundle\":\"$bundle\"}}" >/dev/null ||
    die "cannot write caBundle into apiservice $a"
done
for ref in ${webhook_patches[@]+"${webhook_patches[@]}"}; do
  # One JSON patch for all of a configuration's webhooks; the tests fail it if they changed since.
  patch="["
  i=0
  while IFS= read -r name; do
    [ $i -eq 0 ] || patch+=","
    patch+="{\"op\":\"test\",\"path\":\"/webhooks/$i/name\",\"value\":\"$name\"},"
    patch+="{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$bundle\"}"
    i=$((i + 1))
  done < <(k get "$ref" -o jsonpath='{range .webhooks[*]}{.name}{"\n"}{end}')
  patch+="]"
  k patch "$ref" --type=json -p "$patch" >/dev/null || die "cannot write caBundle into $ref"
done
k apply --server-side --force-conflicts --field-manager="$FIELD_MANAGER" -f - >/dev/null <<EOF ||
apiVersion: v1
kind: Secret
metadata:
  name: $SECRET
  namespace: $namespace
  labels:
    app.kubernetes.io/name: virt-api
    app.kubernetes.io/part-of: virt-toolkit
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$work/tls.crt")
  tls.key: $(b64 "$work/tls.key")
  ca.crt: $bundle
EOF
  die "cannot write secret $namespace/$SECRET (caBundle already trusts the new CA and the previous one; run again)"
not_after=$(openssl x509 -in "$work/tls.crt" -noout -enddate)
echo "certs.sh: secret $namespace/$SECRET: a certificate for $sans, ${not_after#notAfter=}"
if [ "$(grep -c 'BEGIN CERTIFICATE' "$work/bundle.crt")" -gt 1 ]; then
  trusted="the new CA and the previous one"
else
  trusted="the new CA"
fi
echo "certs.sh: caBundle = $trusted, in ${APISERVICES[*]/#/apiservice/} ${webhook_patches[*]-}"
if [ -n "$have_deployment" ]; then
  k -n "$namespace" rollout restart deployment "$DEPLOYMENT" >/dev/null ||
    die "cannot restart deployment $namespace/$DEPLOYMENT: run 'kubectl -n $namespace rollout restart deployment $DEPLOYMENT'"
  echo "certs.sh: restarted deployment $namespace/$DEPLOYMENT (kubectl -n $namespace rollout status deployment $DEPLOYMENT)"
else
  echo "certs.sh: warning: deployment $namespace/$DEPLOYMENT not found; nothing restarted" >&2
fi
