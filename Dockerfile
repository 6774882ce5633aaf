# syntax=docker/dockerfile:1
#
# The kubesnap image: the CLI, the operator (`kubesnap operator run`) and the snapshot Jobs the
# operator starts all use this one binary.
#
#   docker build -t kubesnap .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/kubesnap/kubesnap:0.1.0 --push .

FROM rust:1-bookworm AS builder
# aws-lc-sys (through rustls' aws-lc-rs provider) builds C with cmake and may run bindgen (clang);
# zstd-sys and rusqlite's bundled SQLite only need the C compiler the image already has.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context (see .dockerignore): the workspace needs more than src/ to load (the
# [[bench]] targets in benches/, the testserver member's manifest and sources).
COPY . .
ARG TARGETARCH
# The registry and the target folder are BuildKit cache mounts (target per platform, so a
# multi-platform build does not mix objects); the binary is copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=kubesnap-target-${TARGETARCH},sharing=locked \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked --bin kubesnap \
 && mkdir -p /out \
 && cp target/release/kubesnap /out/kubesnap

# glibc + libgcc, no shell, no package manager; runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kubesnap" \
      org.opencontainers.image.description="Keeps the history of a Kubernetes cluster's resources in an encrypted, deduplicating repository" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/kubesnap /usr/local/bin/kubesnap
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kubesnap"]
