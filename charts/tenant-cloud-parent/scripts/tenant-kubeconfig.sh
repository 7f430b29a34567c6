#!/bin/sh
# Assemble the parent kubeconfig the tenant chart reads, from the ServiceAccount this chart made.
#
# Runs against the PARENT cluster (kubectl's current context, or KUBECONFIG) and prints a Secret manifest to
# apply to the TENANT cluster:
#
#   tenant-kubeconfig.sh --namespace tenant-acme --service-account tenant-cloud-acme \
#       --server https://parent.example:6443 | kubectl --kubeconfig tenant.kubeconfig apply -f -
#
# The token comes from the chart's long-lived token Secret (<service-account>-token), or, with --duration,
# from a TokenRequest that expires (the platform then re-runs this before it does).
set -eu

namespace=""
service_account=""
server=""
token_secret=""
duration=""
ca_file=""
secret_name="tenant-cloud-parent-kubeconfig"
secret_namespace="kube-system"
key="kubeconfig"
kubectl="${KUBECTL:-kubectl}"

usage() {
  cat >&2 <<'EOF'
usage: tenant-kubeconfig.sh --namespace NS --service-account NAME [options]
  --server URL            the parent apiserver as the tenant reaches it (default: current context's)
  --token-secret NAME     token Secret to read (default: <service-account>-token)
  --duration DURATION     use a TokenRequest of this lifetime instead of the token Secret (e.g. 8760h)
  --ca-file FILE          parent CA bundle (default: the token Secret's ca.crt, else the current context's)
  --secret-name NAME      Secret to print (default: tenant-cloud-parent-kubeconfig)
  --secret-namespace NS   its namespace in the tenant (default: kube-system)
  --key KEY               its data key (default: kubeconfig)
EOF
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace="$2"; shift 2 ;;
    --service-account) service_account="$2"; shift 2 ;;
    --server) server="$2"; shift 2 ;;
    --token-secret) token_secret="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --ca-file) ca_file="$2"; shift 2 ;;
    --secret-name) secret_name="$2"; shift 2 ;;
    --secret-namespace) secret_namespace="$2"; shift 2 ;;
    --key) key="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[ -n "$namespace" ] && [ -n "$service_account" ] || usage

b64() { base64 | tr -d '\n'; }

if [ -n "$duration" ]; then
  token=$($kubectl create token "$service_account" --namespace "$namespace" --duration "$duration")
else
  token_secret="${token_secret:-$service_account-token}"
  # The parent's token controller fills the Secret in shortly after it is created.
  tries=0
  token=""
  while [ -z "$token" ]; do
    token=$($kubectl get secret "$token_secret" --namespace "$namespace" -o 'jsonpath={.data.token}')
    if [ -z "$token" ]; then
      tries=$((tries + 1))
      [ "$tries" -lt 30 ] || { echo "Secret $namespace/$token_secret has no token after 30s" >&2; exit 1; }
      sleep 1
    fi
  done
  token=$(printf '%s' "$token" | base64 -d)
fi

if [ -n "$ca_file" ]; then
  ca=$(b64 < "$ca_file")
else
  ca=""
  if [ -z "$duration" ]; then
    ca=$($kubectl get secret "$token_secret" --namespace "$namespace" -o 'jsonpath={.data.ca\.crt}')
  fi
  if [ -z "$ca" ]; then
    ca=$($kubectl config view --raw --minify -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}')
  fi
  [ -n "$ca" ] || { echo "no CA found: pass --ca-file" >&2; exit 1; }
fi

if [ -z "$server" ]; then
  server=$($kubectl config view --minify -o 'jsonpath={.clusters[0].cluster.server}')
fi

kubeconfig=$(cat <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: parent
    cluster:
      server: $server
      certificate-authority-data: $ca
users:
  - name: $service_account
    user:
      token: $token
contexts:
  - name: parent
    context: {cluster: parent, user: $service_account, namespace: $namespace}
current-context: parent
EOF
)

cat <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $secret_name
  namespace: $secret_namespace
  labels:
    app.kubernetes.io/name: tenant-cloud
    app.kubernetes.io/component: parent-kubeconfig
type: Opaque
data:
  $key: $(printf '%s\n' "$kubeconfig" | b64)
EOF
