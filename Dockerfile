# The shoal image: one static binary at /shoal on distroless/static, running as nonroot (the
# chart runs it as mysqld's user instead, so it can signal mysqld and read its files).
#
#   docker build --build-arg VERSION=$(git describe --always) -t ghcr.io/shoal-db/shoal:0.1.0 .
#
# Not built by `make` or the tests: the development machine has no Docker and no registry. The
# test cluster (test/kube) builds its shoal.local/shoal:dev image from the same binary without
# Docker. docs/kubernetes.md says more.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/shoal ./cmd/shoal

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/shoal /shoal
USER nonroot:nonroot
ENTRYPOINT ["/shoal"]
CMD ["agent", "--help"]
