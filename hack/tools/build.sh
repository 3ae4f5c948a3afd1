#!/usr/bin/env bash
# Builds the pinned upstream control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, helm) from the Go module proxy.
#
# Pins live in go.mod beside this script and nowhere else. The binaries go to a cache
# keyed by the hash of go.mod + go.sum (~/.cache/ostack/tools-<hash>/bin, or
# $OSTACK_TOOLS_CACHE), so a fresh clone with the same pins reuses them, and are linked
# into the checkout's ignored .tools/bin. A second run with the same pins does nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)
cache=${OSTACK_TOOLS_CACHE:-$HOME/.cache/ostack}/tools-$key
out=$root/.tools/bin

declare -A packages=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [helm]=helm.sh/helm/v3/cmd/helm
)

# Stamp the Kubernetes binaries with their release, as upstream's build does, so clients
# that check the server version (kubectl, helm) see v1.x rather than v0.0.0-master.
k8s_version=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$k8s_version" | cut -d. -f2)
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

mkdir -p "$cache/bin" "$out"
for name in etcd kube-apiserver kube-controller-manager helm; do
  if [ ! -x "$cache/bin/$name" ]; then
    echo "tools: building $name (${packages[$name]}) into $cache/bin"
    start=$(date +%s)
    # Build to a temporary name first so an interrupted build never looks finished.
    (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags="-s $k8s_ldflags" -o "$cache/bin/.$name.partial" "${packages[$name]}")
    mv "$cache/bin/.$name.partial" "$cache/bin/$name"
    echo "tools: built $name in $(( $(date +%s) - start ))s"
  fi
  ln -sfn "$cache/bin/$name" "$out/$name"
done
echo "tools: up to date in $out (cache $cache)"
