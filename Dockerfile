# syntax=docker/dockerfile:1
# keyhole's image: a static binary, with the git CLI, as a non-root user.
#
# The final stage is Alpine rather than distroless because keyhole runs
# git: `keyhole serve --git-repo` and `keyhole audit --git` read history
# with the git CLI (internal/source/git), and distroless/static has none.
# Alpine adds git and CA certificates in a few MB and nothing else.
#
# Base images are pinned to exact version tags. No registry is reachable
# where this file was written, so it claims no digest it could not
# verify: `make pin-images` adds them on a machine that can reach the
# registries (docs/ci.md). internal/deploytest/image_test.go checks this
# file's structure.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/keyhole-sec/keyhole/internal/cli.Version=${VERSION}" \
      -o /out/keyhole ./cmd/keyhole

FROM alpine:3.22.2
RUN apk add --no-cache git ca-certificates
COPY --from=build /out/keyhole /usr/local/bin/keyhole
# The uid the manifests run as (runAsUser: 65532); no home directory is
# needed: keyhole isolates git from any user configuration.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/keyhole"]
