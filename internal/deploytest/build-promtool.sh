#!/usr/bin/env bash
# Builds promtool, which the alert-rule tests run (`promtool check rules`,
# `promtool test rules`), from the Go module proxy only. The binary is cached
# per user, so only the first run builds (about five minutes on 2 cores).
#
#   KEYHOLE_PROMTOOL       a promtool to use instead (nothing is built)
#   PROMETHEUS_VERSION     the github.com/prometheus/prometheus module version
#
# github.com/prometheus/prometheus carries replace directives, so
# `go install .../cmd/promtool@v0.316.0` refuses it. We build from a throwaway
# module that requires it.
set -euo pipefail

PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
out=$cache_root/keyhole/tools/promtool-$PROMETHEUS_VERSION

if [ -n "${KEYHOLE_PROMTOOL:-}" ]; then
  echo "promtool: using KEYHOLE_PROMTOOL=$KEYHOLE_PROMTOOL"
  exit 0
fi
if [ -x "$out/promtool" ]; then
  echo "promtool: cached in $out"
  exit 0
fi
echo "promtool: building $PROMETHEUS_VERSION into $out (first run only; several minutes on 2 cores)"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
cd "$work"
go mod init keyhole.local/build-promtool >/dev/null 2>&1
printf 'package tools\n\nimport _ "github.com/prometheus/prometheus/cmd/promtool"\n' >tools.go
go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" >/dev/null 2>&1 || go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION"
go mod tidy >/dev/null 2>&1 || go mod tidy
go build -trimpath -ldflags='-s -w' -o "$out/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool
mv "$out/promtool.tmp" "$out/promtool"
echo "promtool: ready in $out/promtool"
