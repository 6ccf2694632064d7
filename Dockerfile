# syntax=docker/dockerfile:1
# mcp-gateway's container image (docs/deploy.md).
#
#   docker build -t mcp-gateway .                                 # Debian slim (default target)
#   docker build -t mcp-gateway:node --target runtime-node .      # + Node.js: npx-started servers
#   cargo build --release --bin mcp-gateway \
#     && docker build --build-arg BINARY=prebuilt -t mcp-gateway .  # no compile in the build
#
# Base images are build arguments, so a mirror or a locally made base works too
# (scripts/image-test.sh builds with bases made from Debian's packages).
# Both runtimes: non-root user 10001, config /app/mcp-gateway.yml, port 4000, tini as PID 1
# (forwards SIGTERM to the gateway, which drains in-flight calls and stops its servers,
# and reaps orphaned grandchildren of stdio servers).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG NODE_IMAGE=node:22-bookworm-slim
# `build`: compile in the image's build stage; `prebuilt`: copy target/release/mcp-gateway
# from the build context (built on a glibc no newer than the runtime's: Debian 12 or older).
ARG BINARY=build

# ---- build: the Rust toolchain compiles the release binary ----------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit, Buildah); the binary is
# copied out of the cache. Its line tables (profile.release: debug = "line-tables-only",
# for panic backtraces) are kept but compressed: ~100 MB -> ~33 MB.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mcp-gateway \
 && mkdir -p /out \
 && objcopy --compress-debug-sections=zlib target/release/mcp-gateway /out/mcp-gateway

FROM scratch AS binary-build
COPY --from=build /out/mcp-gateway /mcp-gateway

FROM scratch AS binary-prebuilt
COPY target/release/mcp-gateway /mcp-gateway

# Only the stage picked by BINARY is built (BuildKit and Buildah skip unused stages).
FROM binary-${BINARY} AS binary

# ---- runtime-node: the gateway plus Node.js, npm and npx -------------------------------
# For servers started with `npx -y <package>`; they are fetched from the npm registry at
# start into the user's home (/home/mcp/.npm): keep it writable.
FROM ${NODE_IMAGE} AS runtime-node
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/mcp \
      --shell /usr/sbin/nologin mcp \
 && mkdir -p /app
COPY --from=binary /mcp-gateway /usr/local/bin/mcp-gateway
COPY deploy/image/mcp-gateway.node.yml /app/mcp-gateway.yml
# Node.js trusts the system's CA store too (/etc/ssl/certs, as the gateway does): an image
# built FROM this one that adds a CA with update-ca-certificates covers both.
ENV MCP_GATEWAY_CONFIG=/app/mcp-gateway.yml \
    HOME=/home/mcp \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false
WORKDIR /app
USER 10001:10001
EXPOSE 4000
STOPSIGNAL SIGTERM
# No curl in the image: bash's /dev/tcp asks /healthz. The port is the config's (4000) or
# MCP_GATEWAY_PORT, which overrides it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${MCP_GATEWAY_PORT:-4000} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/mcp-gateway"]
CMD ["start"]

# ---- runtime (default): Debian slim, the gateway alone ---------------------------------
# For network upstreams (streamable-http, sse, websocket) and stdio servers you add to
# an image built FROM this one.
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/mcp \
      --shell /usr/sbin/nologin mcp \
 && mkdir -p /app
COPY --from=binary /mcp-gateway /usr/local/bin/mcp-gateway
COPY deploy/image/mcp-gateway.yml /app/mcp-gateway.yml
ENV MCP_GATEWAY_CONFIG=/app/mcp-gateway.yml \
    HOME=/home/mcp
WORKDIR /app
USER 10001:10001
EXPOSE 4000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${MCP_GATEWAY_PORT:-4000} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/mcp-gateway"]
CMD ["start"]
