# syntax=docker/dockerfile:1
#
# callscope's images, one Dockerfile, four targets (docker-compose.yml builds them):
#
#   docker build --target runtime -t callscope .           # ingest, store, run, kpis... (non-root)
#   docker build --target capture -t callscope-capture .   # + libpcap and ovs-mirror: live capture agent
#   docker build --target grafana -t callscope-grafana .   # Grafana 12.1 + ClickHouse plugin + ladder panel
#                                                          #   + the provisioned datasource and dashboards
#
# `docker build .` without --target builds `runtime` (the last stage). Every image runs offline: the
# Grafana plugins are installed here, at build time, never at container start.

ARG NODE_VERSION=20

# ---------------------------------------------------------------------------------------------------
# build: npm ci, tsc (+ the ladder panel), then the dev dependencies pruned.
FROM node:${NODE_VERSION}-bookworm AS build
# The optional `pcap` package compiles with node-gyp against libpcap; python3, make and g++ are in
# the bookworm image already.
RUN apt-get update \
  && apt-get install -y --no-install-recommends libpcap-dev \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first (their layer survives source edits). --ignore-scripts: the project's own
# `prepare` would build before the sources are here; the two packages with install steps that matter
# are rebuilt explicitly (pcap: the native binding; esbuild: its binary check). chdb ships prebuilt.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
  npm ci --no-audit --no-fund --ignore-scripts \
  && npm rebuild pcap esbuild
COPY . .
# `npm run build` writes dist/ (the CLI) and dist/ladder-panel/ (the Grafana panel; built here by its
# own script should the build script not do it). dashboards/grafana/ (provisioning) is committed.
RUN npm run build \
  && { [ -f dist/ladder-panel/module.js ] || node dashboards/ladder-panel/build.mjs; } \
  && npm prune --omit=dev --no-audit --no-fund \
  && rm -rf dist/test

# ---------------------------------------------------------------------------------------------------
# grafana: Grafana with everything it needs baked in.
FROM grafana/grafana:12.1.1 AS grafana
# Pinned: 4.20.0 declares grafanaDependency >=11.6.0. Installed now: an offline NOC cannot fetch it
# at start (GF_INSTALL_PLUGINS would).
ARG CLICKHOUSE_PLUGIN_VERSION=4.20.0
RUN grafana cli --pluginsDir /var/lib/grafana/plugins \
    plugins install grafana-clickhouse-datasource "${CLICKHOUSE_PLUGIN_VERSION}" \
  && mkdir -p /var/lib/grafana/state
# Our unsigned panel (dashboards/ladder-panel, built into dist/ladder-panel by `npm run build`).
COPY --from=build --chown=472:0 /app/dist/ladder-panel/ /var/lib/grafana/plugins/callscope-ladder-panel/
# The provisioning tree (datasource from $CLICKHOUSE_* at start, dashboard provider, alert rules)
# and the dashboards the provider reads (one folder per dashboard folder).
COPY --from=build --chown=472:0 /app/dashboards/grafana/provisioning/ /etc/grafana/provisioning/
COPY --from=build --chown=472:0 /app/dashboards/grafana/dashboards/ /var/lib/grafana/dashboards/
# Grafana's own state (users, sessions, preferences) goes to /var/lib/grafana/state, so that a volume
# mounted there keeps it across upgrades without hiding this image's plugins and dashboards, which
# live beside it in /var/lib/grafana and are replaced with the image.
ENV GF_PATHS_DATA=/var/lib/grafana/state \
  GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=callscope-ladder-panel \
  GF_ANALYTICS_REPORTING_ENABLED=false \
  GF_ANALYTICS_CHECK_FOR_UPDATES=false \
  GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES=false \
  GF_NEWS_NEWS_FEED_ENABLED=false
# The image's own user (grafana, uid 472), as in the base image.
USER 472

# ---------------------------------------------------------------------------------------------------
# base: Node.js slim, the built CLI, production node_modules and the bundled sample.
FROM node:${NODE_VERSION}-bookworm-slim AS base
ENV NODE_ENV=production \
  CALLSCOPE_DATA_DIR=/var/lib/callscope/data \
  CALLSCOPE_SPOOL_DIR=/var/spool/callscope
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules/ ./node_modules/
COPY --from=build /app/dist/ ./dist/
COPY --from=build /app/capture/sample/ ./capture/sample/
# Mount points for the embedded store and the Kafka spool, owned by the user that
# writes them (node, uid 1000, in `runtime`), so that a fresh named volume takes that ownership.
RUN mkdir -p /var/lib/callscope/data /var/spool/callscope \
  && chown -R node:node /var/lib/callscope /var/spool/callscope \
  && ln -s /app/dist/bin/callscope.js /usr/local/bin/callscope \
  && ln -s /app/dist/bin/ovs-mirror.js /usr/local/bin/ovs-mirror
ENTRYPOINT ["node", "--max-semi-space-size=64", "/app/dist/bin/callscope.js"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------
# capture: the live capture agent. libpcap at run time (the pcap binding was compiled in `build`),
# and ovs-mirror to choose what the hypervisor's OVS mirrors:
#   docker compose run --rm --entrypoint ovs-mirror capture-live add --vm 101 --to tap900i0
# Runs as root inside the container: the OVSDB and ovs-vswitchd sockets it is given are root-only
# (mode 0750). docker-compose.yml drops every capability but NET_RAW and NET_ADMIN.
FROM base AS capture
RUN apt-get update \
  && apt-get install -y --no-install-recommends libpcap0.8 \
  && rm -rf /var/lib/apt/lists/* \
  && node -e "require('/app/node_modules/pcap/build/Release/pcap_binding.node')"

# ---------------------------------------------------------------------------------------------------
# runtime (default): ingest, store, run --pcap, the query commands. No libpcap: live capture says
# what to install. Non-root.
FROM base AS runtime
USER node
