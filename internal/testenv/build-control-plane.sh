#!/usr/bin/env bash
# Builds the real control plane that keyhole's integration tests run against:
# etcd, kube-apiserver, kube-controller-manager and kubectl, from the Go module
# proxy only. The binaries are cached per user, so only the first run builds.
#
#   KEYHOLE_CONTROL_PLANE_DIR   where the binaries go (default: see below)
#
# k8s.io/kubernetes and etcd's server module carry replace directives, so
# `go install` refuses them. We build from a throwaway module that requires
# them and maps every staging module to its published version.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
STAGING_VERSION="v0${KUBE_VERSION#v1}" # v1.34.4 -> v0.34.4
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
out=${KEYHOLE_CONTROL_PLANE_DIR:-$cache_root/keyhole/control-plane/kube-$KUBE_VERSION-etcd-$ETCD_VERSION}

want=(etcd kube-apiserver kube-controller-manager kubectl)
missing=()
for b in "${want[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "control plane: cached in $out"
  exit 0
fi
echo "control plane: building ${missing[*]} into $out (first run only; several minutes on 2 cores)"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

needs() { [[ " ${missing[*]} " == *" $1 "* ]]; }

if needs etcd; then
  mkdir -p "$work/etcd"
  (
    cd "$work/etcd"
    go mod init keyhole.local/build-etcd >/dev/null 2>&1
    printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
    go build -trimpath -ldflags='-s -w' -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$out/etcd.tmp" "$out/etcd"
  )
  echo "control plane: etcd $ETCD_VERSION built"
fi

kube=()
for b in kube-apiserver kube-controller-manager kubectl; do needs "$b" && kube+=("$b"); done
if [ ${#kube[@]} -gt 0 ]; then
  mkdir -p "$work/kube"
  cd "$work/kube"
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || { echo "control plane: cannot download k8s.io/kubernetes@$KUBE_VERSION go.mod" >&2; exit 1; }
  {
    echo "module keyhole.local/build-kube"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\t\1 => \1 '"$STAGING_VERSION"'#p' "$gomod"
    echo ")"
  } >go.mod
  {
    echo "package tools"
    echo
    echo "import ("
    for b in "${kube[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
    echo ")"
  } >tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for b in "${kube[@]}"; do
    go build -trimpath -ldflags="$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$out/$b.tmp" "$out/$b"
    echo "control plane: $b $KUBE_VERSION built"
  done
fi
echo "control plane: ready in $out"
