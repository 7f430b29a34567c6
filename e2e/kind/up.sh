#!/usr/bin/env bash
# tenant-cloud on two kind clusters: a parent with Cilium, KubeVirt and CDI, and a tenant whose Nodes have
# a KubeVirt VM of the same name in the parent. Needs Docker (and /dev/kvm or software emulation). UNTESTED
# in this project's CI, which has no Docker engine: see e2e/kind/README.md for what this path covers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
cache="${TENANT_CLOUD_CACHE:-$HOME/.cache/tenant-cloud}"
work="${WORK_DIR:-$repo/.kind}"
mkdir -p "$work"

say() { printf '[kind] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { say "missing $1: $2"; exit 1; }; }

need docker "install Docker (this path builds our images and runs kind)"
need go "install Go (kind is built from sigs.k8s.io/kind $KIND_VERSION)"
make -C "$repo" bootstrap >/dev/null
kubectl="$repo/.venv/bin/kubectl"
helm="$("$repo/.venv/bin/python" -c 'from e2e.binaries import helm_binary; print(helm_binary())')"
kind="${KIND:-$cache/kind-$KIND_VERSION/bin/kind}"
if [ ! -x "$kind" ]; then
  say "building kind $KIND_VERSION"
  GOBIN="$(dirname "$kind")" GOFLAGS= go install "sigs.k8s.io/kind@$KIND_VERSION"
fi
pk="$work/parent.kubeconfig"
tk="$work/tenant.kubeconfig"
P() { "$kubectl" --kubeconfig "$pk" "$@"; }
T() { "$kubectl" --kubeconfig "$tk" "$@"; }

say "parent cluster $PARENT_KIND"
"$kind" get clusters | grep -qx "$PARENT_KIND" ||
  "$kind" create cluster --name "$PARENT_KIND" --image "$KIND_NODE_IMAGE" --config "$here/parent-kind.yaml"
"$kind" get kubeconfig --name "$PARENT_KIND" >"$pk"

say "Cilium $CILIUM_VERSION with LB-IPAM and L2 announcements"
"$helm" --kubeconfig "$pk" upgrade --install cilium cilium --repo https://helm.cilium.io \
  --version "$CILIUM_VERSION" --namespace kube-system --wait \
  --set l2announcements.enabled=true --set externalIPs.enabled=true --set ipam.mode=kubernetes
# The LB pool: the top /28 of kind's Docker network, reachable from the host.
subnet="$(docker network inspect kind -f '{{range .IPAM.Config}}{{println .Subnet}}{{end}}' | grep -m1 '\.')"
pool="$(python3 -c "import ipaddress,sys; n=ipaddress.ip_network(sys.argv[1]); print(list(n.subnets(new_prefix=28))[-1])" "$subnet")"
P apply -f - <<EOF
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {name: tenants}
spec:
  blocks: [{cidr: "$pool"}]
---
apiVersion: cilium.io/v2alpha1
kind: CiliumL2AnnouncementPolicy
metadata: {name: tenants}
spec:
  loadBalancerIPs: true
EOF

say "KubeVirt $KUBEVIRT_VERSION (software emulation unless /dev/kvm is usable) and CDI $CDI_VERSION"
P apply -f "https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION/kubevirt-operator.yaml"
P apply -f - <<'EOF'
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {name: kubevirt, namespace: kubevirt}
spec:
  configuration:
    developerConfiguration:
      useEmulation: true
      featureGates: [HotplugVolumes]
EOF
P apply -f "https://github.com/kubevirt/containerized-data-importer/releases/download/$CDI_VERSION/cdi-operator.yaml"
P apply -f "https://github.com/kubevirt/containerized-data-importer/releases/download/$CDI_VERSION/cdi-cr.yaml"
P -n kubevirt wait kv/kubevirt --for condition=Available --timeout=15m
P wait cdi/cdi --for condition=Available --timeout=15m

say "parent chart into namespace $PARENT_NAMESPACE (kind's local-path class stands in for LINSTOR)"
P create namespace "$PARENT_NAMESPACE" --dry-run=client -o yaml | P apply -f -
"$helm" --kubeconfig "$pk" upgrade --install "$CLUSTER_NAME-cloud" "$repo/charts/tenant-cloud-parent" \
  --namespace "$PARENT_NAMESPACE" --set clusterName="$CLUSTER_NAME" \
  --set-json 'policies.storage.allowedStorageClasses=["standard"]' \
  --set-json "policies.loadBalancer.allowedIPRanges=[\"$pool\"]"

say "tenant cluster $TENANT_KIND"
"$kind" get clusters | grep -qx "$TENANT_KIND" ||
  "$kind" create cluster --name "$TENANT_KIND" --image "$KIND_NODE_IMAGE" --config "$here/tenant-kind.yaml"
"$kind" get kubeconfig --name "$TENANT_KIND" >"$tk"

say "one parent VM per tenant Node, named after it (what the ccm reads: VMI addresses, zone, instance type)"
for node in $("$kind" get nodes --name "$TENANT_KIND"); do
  P -n "$PARENT_NAMESPACE" apply -f - <<EOF
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: $node
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER_NAME, cluster.x-k8s.io/role: worker}
spec:
  runStrategy: Always
  template:
    metadata:
      labels: {cluster.x-k8s.io/cluster-name: $CLUSTER_NAME, cluster.x-k8s.io/role: worker, kubevirt.io/vm: $node}
    spec:
      domain:
        devices: {disks: [{name: root, disk: {bus: virtio}}]}
        resources: {requests: {memory: 128Mi}}
      volumes:
        - name: root
          containerDisk: {image: quay.io/kubevirt/cirros-container-disk-demo}
EOF
done

say "our images, built and loaded into the tenant"
docker build -t "ghcr.io/tenant-cloud/tenant-cloud:$IMAGE_TAG" "$repo"
docker build --target node -t "ghcr.io/tenant-cloud/tenant-cloud-node:$IMAGE_TAG" "$repo"
"$kind" load docker-image --name "$TENANT_KIND" \
  "ghcr.io/tenant-cloud/tenant-cloud:$IMAGE_TAG" "ghcr.io/tenant-cloud/tenant-cloud-node:$IMAGE_TAG"

say "the tenant's parent kubeconfig (the parent chart's ServiceAccount) and the tenant chart"
KUBECTL="$kubectl --kubeconfig $pk" "$repo/charts/tenant-cloud-parent/scripts/tenant-kubeconfig.sh" \
  --namespace "$PARENT_NAMESPACE" --service-account "tenant-cloud-$CLUSTER_NAME" \
  --server "https://$PARENT_KIND-control-plane:6443" | T apply -f -
"$helm" --kubeconfig "$tk" upgrade --install tenant-cloud "$repo/charts/tenant-cloud" --namespace kube-system \
  --set clusterName="$CLUSTER_NAME" --set parentNamespace="$PARENT_NAMESPACE" --set image.tag="$IMAGE_TAG" \
  --set-json "ccm.loadBalancer.allowedIPRanges=[\"$pool\"]" \
  --set-json 'storageClasses=[{"name":"standard","parentStorageClass":"standard","default":true}]'

T wait nodes --all --for=jsonpath='{.spec.providerID}' --timeout=5m
say "done. Nodes initialised by the ccm:"
T get nodes -L topology.kubernetes.io/zone -L node.kubernetes.io/instance-type -o wide
cat <<EOF

Try:
  $kubectl --kubeconfig $tk create deployment web --image=nginx --port=80
  $kubectl --kubeconfig $tk expose deployment web --type=LoadBalancer --port=80
  $kubectl --kubeconfig $tk get svc web -w          # an IP from $pool
  $kubectl --kubeconfig $pk -n $PARENT_NAMESPACE get svc,vm,vmi,dv
Remove it all with: $here/down.sh
EOF
