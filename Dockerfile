# syntax=docker/dockerfile:1
# nbp server image: a cgo build (ONNX Runtime is loaded at run time), on a
# glibc runtime, as a non-root user, with the model and catalog included
# (the catalog is embedded in the binary). Works with a read-only root
# filesystem: the server writes only to /var/lib/nbp/audit-spill, a volume,
# where audit records wait while Redis cannot take them.

FROM golang:1.26-bookworm AS build
# npm fetches the ONNX Runtime library from the onnxruntime-node package, and
# the pages' ECharts and WeCom JS-SDK (embedded in the binary);
# .ci/fetch-onnxruntime and .ci/fetch-web-assets verify their sha256.
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN .ci/fetch-onnxruntime /out/lib
RUN .ci/fetch-web-assets
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/nbp ./cmd/nbp-batch ./cmd/nbp-import

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 nbp \
 && useradd --system --uid 10001 --gid nbp --home-dir /app --shell /usr/sbin/nologin nbp \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/nbp/audit-spill
WORKDIR /app
COPY --from=build /out/nbp /out/nbp-batch /out/nbp-import /app/
COPY --from=build /out/lib/libonnxruntime.so.1 /app/lib/libonnxruntime.so.1
COPY models/ /app/models/
ENV NBP_ADDR=:8080 \
    ONNXRUNTIME_LIB=/app/lib/libonnxruntime.so.1 \
    NBP_MODEL=/app/models \
    NBP_AUDIT_SPILL=/var/lib/nbp/audit-spill
VOLUME /var/lib/nbp/audit-spill
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/app/nbp", "-healthcheck"]
ENTRYPOINT ["/app/nbp"]
