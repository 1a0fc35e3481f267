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
# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-build.sh"

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
STAGING_VERSION="v0${KUBE_VERSION#v1}" # v1.34.4 -> v0.34.4
build_init "control plane" "${KEYHOLE_CONTROL_PLANE_DIR:-$cache_root/keyhole/control-plane/kube-$KUBE_VERSION-etcd-$ETCD_VERSION}"
build_skip_cached etcd kube-apiserver kube-controller-manager kubectl
build_begin "${build_missing[*]}" "several minutes"

needs() { [[ " ${build_missing[*]} " == *" $1 "* ]]; }

if needs etcd; then
  mkdir -p "$work/etcd"
  (
    cd "$work/etcd"
    build_module etcd go.etcd.io/etcd/server/v3
    build_quiet go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    build_go_build etcd go.etcd.io/etcd/server/v3 -trimpath -ldflags='-s -w'
    build_install etcd
  )
  echo "control plane: etcd $ETCD_VERSION built"
fi

kube=()
for b in kube-apiserver kube-controller-manager kubectl; do needs "$b" && kube+=("$b"); done
if [ ${#kube[@]} -gt 0 ]; then
  mkdir -p "$work/kube"
  cd "$work/kube"
  gomod=$(build_mod_download GoMod "k8s.io/kubernetes@$KUBE_VERSION")
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
  build_tools_go "${kube[@]/#/k8s.io/kubernetes/cmd/}"
  build_quiet go mod tidy
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for b in "${kube[@]}"; do
    build_go_build "$b" "k8s.io/kubernetes/cmd/$b" -trimpath -ldflags="$ldflags"
    build_install "$b"
    echo "control plane: $b $KUBE_VERSION built"
  done
fi
echo "control plane: ready in $out"
