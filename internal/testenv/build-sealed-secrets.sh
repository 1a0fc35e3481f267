#!/usr/bin/env bash
# Builds the real Sealed Secrets controller, which the sealing tests run
# against the test control plane (testenv.StartSealedSecretsController), from
# the Go module proxy only. The binary is cached per user, so only the first
# run builds (about a minute on 2 cores).
#
#   KEYHOLE_SEALED_SECRETS_CONTROLLER   a controller binary to use instead
#                                       (nothing is built)
#   SEALED_SECRETS_VERSION              the github.com/bitnami-labs/sealed-secrets
#                                       module version; keep it equal to
#                                       testenv.SealedSecretsVersion and to
#                                       keyhole's go.mod
#
# Unlike Kubernetes and Prometheus, the module has no replace directives, so
# plain `go install` works.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-build.sh"

SEALED_SECRETS_VERSION=${SEALED_SECRETS_VERSION:-v0.27.1}
build_init sealed-secrets "$cache_root/keyhole/tools/sealed-secrets-controller-$SEALED_SECRETS_VERSION"
build_use_override KEYHOLE_SEALED_SECRETS_CONTROLLER
build_skip_cached controller
build_begin "the controller $SEALED_SECRETS_VERSION" "about a minute"
build_go_install controller "github.com/bitnami-labs/sealed-secrets/cmd/controller@$SEALED_SECRETS_VERSION" \
  -trimpath -ldflags="-s -w -X main.VERSION=$SEALED_SECRETS_VERSION"
build_install controller
echo "sealed-secrets: ready in $out/controller"
