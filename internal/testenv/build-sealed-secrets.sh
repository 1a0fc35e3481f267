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

SEALED_SECRETS_VERSION=${SEALED_SECRETS_VERSION:-v0.27.1}
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
out=$cache_root/keyhole/tools/sealed-secrets-controller-$SEALED_SECRETS_VERSION

if [ -n "${KEYHOLE_SEALED_SECRETS_CONTROLLER:-}" ]; then
  echo "sealed-secrets: using KEYHOLE_SEALED_SECRETS_CONTROLLER=$KEYHOLE_SEALED_SECRETS_CONTROLLER"
  exit 0
fi
if [ -x "$out/controller" ]; then
  echo "sealed-secrets: controller cached in $out"
  exit 0
fi
echo "sealed-secrets: building the controller $SEALED_SECRETS_VERSION into $out (first run only; about a minute on 2 cores)"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
# GOBIN receives the binary as "controller"; build into a scratch directory
# and move it, so that an interrupted build never leaves a half-written
# binary in the cache.
GOBIN=$work go install -trimpath \
  -ldflags="-s -w -X main.VERSION=$SEALED_SECRETS_VERSION" \
  "github.com/bitnami-labs/sealed-secrets/cmd/controller@$SEALED_SECRETS_VERSION"
mv "$work/controller" "$out/controller.tmp"
mv "$out/controller.tmp" "$out/controller"
echo "sealed-secrets: ready in $out/controller"
