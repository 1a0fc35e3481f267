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
# shellcheck source-path=SCRIPTDIR source=../testenv/lib-build.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testenv/lib-build.sh"

HELM_VERSION=${HELM_VERSION:-v3.22.0}
K8S_MAJOR=${K8S_MAJOR:-1}
K8S_MINOR=${K8S_MINOR:-37}
build_init helm "$cache_root/keyhole/tools/helm-$HELM_VERSION"
build_use_override KEYHOLE_HELM
build_skip_cached helm
build_begin "$HELM_VERSION" "a few minutes"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
done
build_go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" -trimpath -ldflags="$ldflags"
build_install helm
echo "helm: ready in $out/helm"
"$out/helm" version --short
