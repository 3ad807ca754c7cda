# highwater images. Classic builder compatible (no BuildKit-only syntax).
#
#   docker build --target bundle      -t highwater-bundle .       # /opt/highwater: init + shim + Python (COPY --from this)
#   docker build --target bundle-full -t highwater-bundle-full .  # + Node, the CLI and its deps (single-container watcher)
#   docker build --target sidecar     -t highwater .              # `highwater watch` sidecar image
#
# Base images are build arguments so that machines without a registry can pass
# locally made ones (.ci/make-bases.sh):
#   --build-arg BUILD_BASE=highwater-build:bookworm --build-arg RUNTIME_BASE=highwater-base:bookworm
# Node comes from the build context (node_modules/node/bin/node, the `node`
# npm package, linux-x64), never from a registry at build or run time.
ARG BUILD_BASE=debian:bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

# ---------------------------------------------------------------- build ----
FROM ${BUILD_BASE} AS build
# The toolchain stays in this stage. Local build bases already have it.
RUN if ! command -v gcc >/dev/null || ! command -v make >/dev/null || ! command -v strip >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends gcc make libc6-dev binutils \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src

# C: the preload shim (native/Makefile `all`) and the static init.
COPY native/ native/
RUN test -f native/Makefile || { echo "native/Makefile is missing: the shim cannot be built" >&2; exit 1; } \
 && make -C native all \
 && make -C native -f Makefile.init init \
 && test -f native/build/libhighwater.so && test -x native/build/highwater-init

# TypeScript: the CLI, compiled with the bundled Node (no npm in the image).
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY node_modules/ node_modules/
COPY sidecar/ sidecar/
COPY bin/ bin/
RUN cp node_modules/node/bin/node /usr/local/bin/node \
 && node node_modules/typescript/bin/tsc -p tsconfig.build.json

# Production node_modules: drop every package the lock file marks dev-only
# (the registry is not needed for that), then strip Node's debug info.
RUN node -e ' \
      const fs = require("fs"); \
      const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8")); \
      for (const [p, v] of Object.entries(lock.packages)) \
        if (p && v.dev) fs.rmSync(p, { recursive: true, force: true }); \
    ' \
 && rm -rf node_modules/.bin node_modules/.package-lock.json \
 && find node_modules -name "*.d.ts" -delete -o -name "*.map" -delete -o -name "*.md" -delete

# /opt/highwater (init-only) and /opt/highwater-full (with the watcher).
# native/python keeps the .pycs the host's build made for every CPython it
# found (native/python/compile-bytecode.sh; .dockerignore lets them in): a
# tracked start loads them instead of compiling highwater's modules.
RUN set -e; b=/opt/highwater; \
    mkdir -p $b/bin $b/lib $b/python; \
    install -m 0755 native/build/highwater-init $b/bin/highwater-init; \
    install -m 0755 native/build/libhighwater.so $b/lib/libhighwater.so; \
    cp -r native/python/bootstrap native/python/highwater $b/python/; \
    f=/opt/highwater-full; cp -a $b $f; \
    install -m 0755 native/init/highwater.sh $f/bin/highwater; \
    mkdir -p $f/node/bin; \
    strip -o $f/node/bin/node /usr/local/bin/node; \
    cp -r dist $f/dist; \
    cp -r node_modules $f/node_modules; \
    cp package.json $f/package.json; \
    $f/node/bin/node -e 'process.exit(0)'

# --------------------------------------------------------------- bundle ----
# Init-only bundle: what a user image needs when the watcher runs elsewhere.
FROM scratch AS bundle
COPY --from=build /opt/highwater /opt/highwater

# ---------------------------------------------------------- bundle-full ----
# With Node and the CLI: HIGHWATER_WATCH=1 runs the watcher in the same container.
FROM scratch AS bundle-full
COPY --from=build /opt/highwater-full /opt/highwater

# -------------------------------------------------------------- sidecar ----
FROM ${RUNTIME_BASE} AS sidecar
COPY --from=build /opt/highwater-full /opt/highwater
# Fixed uid/gid (10001) so that app containers can grant it access
# (HIGHWATER_CONTROL_UID=10001). The mount points are owned by it, so fresh
# named volumes mounted there are writable by the sidecar.
RUN groupadd --system --gid 10001 highwater \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin highwater \
 && mkdir -p /run/highwater /reports \
 && chown 10001:10001 /run/highwater /reports
USER 10001:10001
ENV HIGHWATER_RUN_DIR=/run/highwater HIGHWATER_OUTPUT_DIR=/reports
# A 1 MiB young generation (lower RSS idle and watching, a lower peak while
# rendering); the old generation sized from the container's memory limit.
# docs/kubernetes.md, "Measured". The chart sets the same (sidecarNodeOptions).
ENV NODE_OPTIONS="--max-semi-space-size=1 --max-old-space-size-percentage=50"
VOLUME ["/run/highwater", "/reports"]
ENTRYPOINT ["/opt/highwater/node/bin/node", "/opt/highwater/dist/cli/main.js", "watch"]
CMD ["--run-dir", "/run/highwater", "--output", "/reports"]
