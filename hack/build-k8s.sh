#!/usr/bin/env bash
# Builds kube-apiserver and kubectl from the nested module in hack/envtest into $1, and links
# Debian's etcd beside them, so that KUBEBUILDER_ASSETS=$1 serves envtest. Safe to re-run: it
# does nothing when every binary is already there.
set -euo pipefail
out=${1:?usage: build-k8s.sh OUTDIR VERSION}
version=${2:?usage: build-k8s.sh OUTDIR VERSION}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

minor=$(echo "$version" | cut -d. -f2)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
done

build() {
  local name=$1 pkg=$2
  [ -x "$out/$name" ] && return 0
  echo "building $name $version (first time only; kube-apiserver takes ~15 minutes on 2 cores)"
  (cd "$here/envtest" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl

if [ ! -x "$out/etcd" ]; then
  if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
    echo "installing Debian's etcd-server"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server >/dev/null
  fi
  ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$out/etcd"
fi
