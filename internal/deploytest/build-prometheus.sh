#!/usr/bin/env bash
# Builds a tool of the Prometheus module from the Go module proxy only:
#
#   build-prometheus.sh promtool     the alert-rule tests (promtool check rules, promtool test rules)
#   build-prometheus.sh prometheus   the server, for the end-to-end alert test
#
# The binary is cached per user, so only the first run builds (several
# minutes on 2 cores; the second tool reuses most of the first's build
# cache).
#
#   KEYHOLE_PROMTOOL, KEYHOLE_PROMETHEUS   a binary to use instead (nothing is built)
#   PROMETHEUS_VERSION                     the github.com/prometheus/prometheus module version
#
# github.com/prometheus/prometheus carries replace directives, so
# `go install .../cmd/promtool@v0.316.0` refuses it. We build from a
# throwaway module that requires it. The server's web UI assets are not
# embedded (no builtinassets tag): the test uses the HTTP API only.
set -euo pipefail

tool=${1:?usage: build-prometheus.sh promtool|prometheus}
case $tool in
  promtool) override=${KEYHOLE_PROMTOOL:-} ;;
  prometheus) override=${KEYHOLE_PROMETHEUS:-} ;;
  *) echo "build-prometheus.sh: unknown tool $tool (promtool or prometheus)" >&2; exit 2 ;;
esac
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}
out=$cache_root/keyhole/tools/$tool-$PROMETHEUS_VERSION

if [ -n "$override" ]; then
  echo "$tool: using $override"
  exit 0
fi
if [ -x "$out/$tool" ]; then
  echo "$tool: cached in $out"
  exit 0
fi
echo "$tool: building $PROMETHEUS_VERSION into $out (first run only; several minutes on 2 cores)"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
cd "$work"
go mod init "keyhole.local/build-$tool" >/dev/null 2>&1
printf 'package tools\n\nimport _ "github.com/prometheus/prometheus/cmd/%s"\n' "$tool" >tools.go
go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" >/dev/null 2>&1 || go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION"
go mod tidy >/dev/null 2>&1 || go mod tidy
go build -trimpath -ldflags='-s -w' -o "$out/$tool.tmp" "github.com/prometheus/prometheus/cmd/$tool"
mv "$out/$tool.tmp" "$out/$tool"
echo "$tool: ready in $out/$tool"
