# shellcheck shell=bash
# The skeleton the build-*.sh scripts share (here and in internal/deploytest):
# each builds a tool from the Go module proxy only, into a per-user cache, so
# only the first run builds. A script sources this file after `set -euo
# pipefail`, then calls, in this order:
#
#   build_init LABEL DIR           LABEL starts every message; DIR is the cache
#                                  directory the binaries go in ($out)
#   build_use_override VAR [SHOWN] exits 0 when $VAR names a binary to use
#                                  instead; says "LABEL: using SHOWN"
#                                  (default VAR=value)
#   build_skip_cached BIN...       exits 0 when DIR holds every BIN; otherwise
#                                  leaves the missing ones in build_missing
#   build_begin WHAT TOOK          says what it builds and how long that takes,
#                                  makes DIR and a scratch directory $work
#                                  (removed on exit), and exports the Go
#                                  environment of every build
#
# then builds with build_go_install, or in a throwaway module (build_module,
# build_tools_go, build_quiet, build_go_build), and publishes each binary with
# build_install. A binary is staged as DIR/BIN.tmp and renamed into place, so
# an interrupted build never leaves a half-written binary where the tests
# look. It is a library, not a script: running it does nothing.

# Where the caches live, as the tests' lookups (testenv, deploytest) compute it.
# shellcheck disable=SC2034 # the sourcing scripts use it
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}

build_init() {
  build_label=$1
  out=$2
}

build_use_override() {
  local value=${!1:-}
  if [ -n "$value" ]; then
    echo "$build_label: using ${2:-$1=$value}"
    exit 0
  fi
}

# The message names the binary when there is one and it is not named after
# the label ("sealed-secrets: controller cached in ...").
build_skip_cached() {
  local b
  build_missing=()
  for b; do [ -x "$out/$b" ] || build_missing+=("$b"); done
  if [ ${#build_missing[@]} -eq 0 ]; then
    if [ $# -eq 1 ] && [ "$1" != "$build_label" ]; then
      echo "$build_label: $1 cached in $out"
    else
      echo "$build_label: cached in $out"
    fi
    exit 0
  fi
}

build_begin() {
  echo "$build_label: building $1 into $out (first run only; $2 on 2 cores)"
  mkdir -p "$out"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
}

# build_quiet CMD...: runs CMD silently; if it fails, runs it again with its
# output shown, so that a failure explains itself.
build_quiet() {
  "$@" >/dev/null 2>&1 || "$@"
}

# build_module NAME IMPORT...: a throwaway module keyhole.local/build-NAME in
# the current directory whose tools.go blank-imports each IMPORT.
build_module() {
  local name=$1
  shift
  go mod init "keyhole.local/build-$name" >/dev/null 2>&1
  build_tools_go "$@"
}

# build_tools_go IMPORT...: tools.go in the current directory, which
# blank-imports each IMPORT so that `go mod tidy` keeps what it needs.
build_tools_go() {
  local p
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for p; do printf '\t_ "%s"\n' "$p"; done
    printf ')\n'
  } >tools.go
}

# build_mod_download FIELD MODULE@VERSION: downloads the module and prints
# one field of `go mod download -json` (GoMod, Dir).
build_mod_download() {
  go mod download -json "$2" | sed -n 's/^[[:space:]]*"'"$1"'": "\(.*\)",$/\1/p'
}

# build_go_build BIN PACKAGE [FLAG...]: go build of PACKAGE, staged as
# $out/BIN.tmp.
build_go_build() {
  local bin=$1 pkg=$2
  shift 2
  go build "$@" -o "$out/$bin.tmp" "$pkg"
}

# build_go_install BIN PACKAGE@VERSION [FLAG...]: go install of a module that
# builds as it is (no replace directives), staged as $out/BIN.tmp.
build_go_install() {
  local bin=$1 pkg=$2
  shift 2
  GOBIN=$work go install "$@" "$pkg"
  mv "$work/$bin" "$out/$bin.tmp"
}

# build_install BIN: puts the staged $out/BIN.tmp in place.
build_install() {
  mv "$out/$1.tmp" "$out/$1"
}
