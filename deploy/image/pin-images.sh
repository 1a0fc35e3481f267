#!/usr/bin/env bash
# Pins every base image of the Dockerfile to the digest its tag points to
# now: FROM image:tag becomes FROM image:tag@sha256:... . Run it (make
# pin-images) on a machine that can reach the registries, review the diff,
# and commit it. A line that already has a digest is left alone; to move
# to a newer tag, edit the tag, delete the digest and run it again.
#
# It needs crane (github.com/google/go-containerregistry/cmd/crane) or
# docker with buildx.
set -euo pipefail
dockerfile=${1:-Dockerfile}

digest() {
  if command -v crane >/dev/null 2>&1; then
    crane digest "$1"
  elif docker buildx version >/dev/null 2>&1; then
    docker buildx imagetools inspect "$1" --format '{{json .Manifest.Digest}}' | tr -d '"'
  else
    echo "pin-images: needs crane or docker buildx to resolve $1" >&2
    return 1
  fi
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line; do
  if [[ $line =~ ^FROM[[:space:]]+([^[:space:]@]+:[^[:space:]@]+)([[:space:]].*)?$ ]]; then
    image=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]:-}
    d=$(digest "$image")
    [[ $d =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "pin-images: $image: unexpected digest '$d'" >&2; exit 1; }
    echo "pin-images: $image -> $d" >&2
    line="FROM $image@$d$rest"
  fi
  printf '%s\n' "$line"
done <"$dockerfile" >"$tmp"
cp "$tmp" "$dockerfile"
