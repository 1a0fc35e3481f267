#!/usr/bin/env bash
# Builds helm, which the chart tests run (`helm lint`, `helm template`
# against deploy/helm/keyhole), from the Go module proxy only. The binary is
# cached per user, so only the first run builds (a few minutes on 2 cores).
#
#   KEYHOLE_HELM    a helm to use instead (nothing is built)
#   HELM_VERSION    the helm.sh/helm/v3 module version
#
# helm.sh/helm/v3 has no replace directives, so `go install ...@version`
# builds it as is. The ldflags are those of helm's own Makefile: the version
# `helm version` prints, and the Kubernetes version helm assumes when no
# cluster is asked (`helm template`, `helm lint`): one above the major and
# the minor of the client-go it is built with, 1.37 for v3.22.0.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
K8S_MAJOR=${K8S_MAJOR:-1}
K8S_MINOR=${K8S_MINOR:-37}
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
out=$cache_root/keyhole/tools/helm-$HELM_VERSION

if [ -n "${KEYHOLE_HELM:-}" ]; then
  echo "helm: using KEYHOLE_HELM=$KEYHOLE_HELM"
  exit 0
fi
if [ -x "$out/helm" ]; then
  echo "helm: cached in $out"
  exit 0
fi
echo "helm: building $HELM_VERSION into $out (first run only; a few minutes on 2 cores)"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
done
# A GOBIN of our own, then a rename: an interrupted build never leaves a
# half-written binary where the tests look.
GOWORK=off GOFLAGS= CGO_ENABLED=0 GOBIN="$work" \
  go install -trimpath -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$work/helm" "$out/helm"
echo "helm: ready in $out/helm"
"$out/helm" version --short
