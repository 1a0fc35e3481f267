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
# shellcheck source-path=SCRIPTDIR source=../testenv/lib-build.sh
. "$(dirname "${BASH_SOURCE[0]}")/../testenv/lib-build.sh"

tool=${1:?usage: build-prometheus.sh promtool|prometheus}
case $tool in
  promtool) override=KEYHOLE_PROMTOOL ;;
  prometheus) override=KEYHOLE_PROMETHEUS ;;
  *) echo "build-prometheus.sh: unknown tool $tool (promtool or prometheus)" >&2; exit 2 ;;
esac
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
build_init "$tool" "$cache_root/keyhole/tools/$tool-$PROMETHEUS_VERSION"
build_use_override "$override" "${!override:-}"
build_skip_cached "$tool"
build_begin "$PROMETHEUS_VERSION" "several minutes"
cd "$work"
build_module "$tool" "github.com/prometheus/prometheus/cmd/$tool"
build_quiet go get "github.com/prometheus/prometheus@$PROMETHEUS_VERSION"
build_quiet go mod tidy
build_go_build "$tool" "github.com/prometheus/prometheus/cmd/$tool" -trimpath -ldflags='-s -w'
build_install "$tool"
echo "$tool: ready in $out/$tool"
