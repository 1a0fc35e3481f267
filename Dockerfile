# syntax=docker/dockerfile:1
# keyhole's image: a static binary on distroless, as a non-root user.
# Base images are pinned to tags; no registry is reachable where this file
# was written, so no digest is claimed here.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/keyhole-sec/keyhole/internal/cli.Version=${VERSION}" \
      -o /out/keyhole ./cmd/keyhole

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keyhole /usr/local/bin/keyhole
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/keyhole"]
