#!/usr/bin/env bash
# `make kind-up`: a kind cluster with everything ostack runs on, and ostack itself from this
# checkout. Needs Docker, kind, kubectl, helm and Go; downloads the pinned releases below.
#
#   KubeVirt (software emulation), CDI, the CSI hostpath driver with snapshots, Multus,
#   Cluster API with its KubeVirt provider, versitygw as the S3 store, and the chart with
#   an operator image built here and loaded into the nodes.
set -euo pipefail

KUBEVIRT_VERSION=v1.5.2
CDI_VERSION=v1.61.2
SNAPSHOTTER_VERSION=v8.2.1
HOSTPATH_VERSION=v1.16.1
MULTUS_VERSION=v4.1.4
CLUSTER_API_VERSION=v1.10.4
CAPK_VERSION=v0.1.10
VERSITYGW_IMAGE=versity/versitygw:v1.8.0
IMAGE=ostack/operator:dev
NAME=${KIND_CLUSTER_NAME:-ostack}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
helm=${HELM:-$root/.tools/bin/helm}
command -v docker >/dev/null && docker info >/dev/null 2>&1 || {
  echo "kind-up: needs a running Docker engine" >&2; exit 1; }

if ! kind get clusters | grep -qx "$NAME"; then
  kind create cluster --name "$NAME" --config "$root/kind-config.yaml"
fi
kubectl config use-context "kind-$NAME"

echo "kind-up: KubeVirt $KUBEVIRT_VERSION (emulation)"
kubectl apply -f "https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION/kubevirt-operator.yaml"
kubectl apply -f "https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION/kubevirt-cr.yaml"
kubectl -n kubevirt patch kubevirt kubevirt --type=merge \
  -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true,"featureGates":["HotplugVolumes","Snapshot"]}}}}'

echo "kind-up: CDI $CDI_VERSION"
kubectl apply -f "https://github.com/kubevirt/containerized-data-importer/releases/download/$CDI_VERSION/cdi-operator.yaml"
kubectl apply -f "https://github.com/kubevirt/containerized-data-importer/releases/download/$CDI_VERSION/cdi-cr.yaml"

echo "kind-up: snapshots $SNAPSHOTTER_VERSION and the CSI hostpath driver $HOSTPATH_VERSION"
snap=https://raw.githubusercontent.com/kubernetes-csi/external-snapshotter/$SNAPSHOTTER_VERSION
for crd in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
  kubectl apply -f "$snap/client/config/crd/snapshot.storage.k8s.io_$crd.yaml"
done
kubectl apply -f "$snap/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml"
kubectl apply -f "$snap/deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml"
tmp=$(mktemp -d)
git -c advice.detachedHead=false clone --depth 1 --branch "$HOSTPATH_VERSION" \
  https://github.com/kubernetes-csi/csi-driver-host-path "$tmp/hostpath"
"$tmp/hostpath/deploy/kubernetes-latest/deploy.sh"
kubectl apply -f "$tmp/hostpath/examples/csi-storageclass.yaml"
kubectl annotate storageclass csi-hostpath-sc storageclass.kubernetes.io/is-default-class=true --overwrite
kubectl annotate storageclass standard storageclass.kubernetes.io/is-default-class- || true

echo "kind-up: Multus $MULTUS_VERSION"
kubectl apply -f "https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/$MULTUS_VERSION/deployments/multus-daemonset-thick.yml"

echo "kind-up: Cluster API $CLUSTER_API_VERSION with CAPK $CAPK_VERSION"
CLUSTER_TOPOLOGY=false go run "sigs.k8s.io/cluster-api/cmd/clusterctl@$CLUSTER_API_VERSION" \
  init --infrastructure "kubevirt:$CAPK_VERSION" || echo "kind-up: Cluster API already installed"

echo "kind-up: waiting for KubeVirt and CDI"
kubectl -n kubevirt wait kubevirt kubevirt --for=condition=Available --timeout=15m
kubectl -n cdi wait cdi cdi --for=condition=Available --timeout=10m

echo "kind-up: the S3 store ($VERSITYGW_IMAGE) and ostack"
kubectl create namespace ostack-system --dry-run=client -o yaml | kubectl apply -f -
secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
kubectl -n ostack-system create secret generic ostack-object-store-admin \
  --from-literal=accessKey=ostack-admin --from-literal=secretKey="$secret" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n ostack-system apply -f "$here/kind/versitygw.yaml"
kubectl -n ostack-system set image deployment/versitygw versitygw="$VERSITYGW_IMAGE"

docker build -t "$IMAGE" "$root"
kind load docker-image "$IMAGE" --name "$NAME"
"$helm" upgrade --install ostack "$root/charts/ostack" -n ostack-system \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE#*:}" --set image.pullPolicy=Never \
  --set-file objectStore.config="$here/kind/object-store.yaml" \
  --set-file volumeTypes="$here/kind/volume-types.yaml" \
  --set 'clusterCIDRs={10.244.0.0/16,10.96.0.0/16}' --wait --timeout 10m
echo "kind-up: ready; run \`make e2e\`"
