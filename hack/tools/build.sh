#!/usr/bin/env bash
# Builds the pinned upstream programs (etcd, kube-apiserver, kube-controller-manager,
# helm, and the versitygw S3 server) from the Go module proxy.
#
# Pins live in the go.mod files (hack/tools, hack/objectstore) and nowhere else. The
# binaries go to a cache keyed by the hash of their go.mod + go.sum
# (~/.cache/ostack/<dir>-<hash>/bin, or under $OSTACK_TOOLS_CACHE), so a fresh clone with
# the same pins reuses them, and are linked into the checkout's ignored .tools/bin. A
# second run with the same pins does nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/.tools/bin
mkdir -p "$out"

# build <module dir> <name> <package> [ldflags]: one binary of a pinned module, cached by
# the hash of that module's go.mod + go.sum.
build() {
  local dir=$1 name=$2 package=$3 ldflags=${4:-}
  local key cache
  key=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)
  cache=${OSTACK_TOOLS_CACHE:-$HOME/.cache/ostack}/$(basename "$dir")-$key
  mkdir -p "$cache/bin"
  if [ ! -x "$cache/bin/$name" ]; then
    echo "tools: building $name ($package) into $cache/bin"
    local start
    start=$(date +%s)
    # Build to a temporary name first so an interrupted build never looks finished.
    (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="-s $ldflags" -o "$cache/bin/.$name.partial" "$package")
    mv "$cache/bin/.$name.partial" "$cache/bin/$name"
    echo "tools: built $name in $(( $(date +%s) - start ))s"
  fi
  ln -sfn "$cache/bin/$name" "$out/$name"
}

# Stamp the Kubernetes binaries with their release, as upstream's build does, so clients
# that check the server version (kubectl, helm) see v1.x rather than v0.0.0-master.
k8s_version=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$k8s_version" | cut -d. -f2)
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

build "$here" etcd go.etcd.io/etcd/server/v3
build "$here" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build "$here" kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build "$here" helm helm.sh/helm/v3/cmd/helm
# The S3 object store the tests and `make dev` run (versitygw: see docs/objectstorage.md),
# pinned in a module of its own so its dependencies never move the Kubernetes builds'.
build "$root/hack/objectstore" versitygw github.com/versity/versitygw/cmd/versitygw
echo "tools: up to date in $out"
