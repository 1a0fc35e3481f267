#!/usr/bin/env bash
# Builds the Prometheus server, which the end-to-end alert test runs
# (scraping keyhole serve with the shipped rules), from the Go module proxy
# only. The binary is cached per user, so only the first run builds.
#
#   KEYHOLE_PROMETHEUS     a prometheus binary to use instead (nothing is built)
#   PROMETHEUS_VERSION     the github.com/prometheus/prometheus module version
#
# As for promtool (build-promtool.sh), the module's replace directives make
# `go install` refuse it, so we build from a throwaway module. The web UI's
# assets are not embedded (no builtinassets tag): the test uses the HTTP
# API only.
set -euo pipefail

PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
out=$cache_root/keyhole/tools/prometheus-$PROMETHEUS_VERSION

if [ -n "${KEYHOLE_PROMETHEUS:-}" ]; then
  echo "prometheus: using KEYHOLE_PROMETHEUS=$KEYHOLE_PROMETHEUS"
  exit 0
fi
if [ -x "$out/prometheus" ]; then
  echo "prometheus: cached in $out"
  exit 0
fi
echo "prometheus: building $PROMETHEUS_VERSION into $out (first run only; several minutes on 2 cores)"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
cd "$work"
go mod init keyhole.local/build-prometheus >/dev/null 2>&1
printf 'package tools\n\nimport _ "github.com/prometheus/prometheus/cmd/prometheus"\n' >tools.go
go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" >/dev/null 2>&1 || go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION"
go mod tidy >/dev/null 2>&1 || go mod tidy
go build -trimpath -ldflags='-s -w' -o "$out/prometheus.tmp" github.com/prometheus/prometheus/cmd/prometheus
mv "$out/prometheus.tmp" "$out/prometheus"
echo "prometheus: ready in $out/prometheus"
