# syntax=docker/dockerfile:1
# One image for every process: the gateway (default), the worker, the admin panel and the CLI
# differ only by command (compose.yaml). It runs the compiled dist/ with plain node: the runtime
# image has production dependencies only, so no tsx, esbuild or TypeScript.
#
# The Node.js version is set here and nowhere else: NODE_VERSION names the official image
# node:<NODE_VERSION>-bookworm-slim for both stages. Node.js 24 LTS, the same release that the
# `node` dev dependency runs every npm script with in development and CI (package.json "engines"
# must agree). Node.js 20 reached end of life on 2026-04-30.
ARG NODE_VERSION=24.21.0

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY shared shared
COPY gateway gateway
COPY worker worker
COPY cli cli
COPY admin admin
COPY tokens tokens
COPY deletion deletion
COPY webhooks webhooks
RUN npm run build && npm prune --omit=dev --no-audit --no-fund
# The runtime must not depend on a TypeScript runner: fail the build if one is still here.
RUN for tool in tsx esbuild typescript; do \
      if [ -e "node_modules/$tool" ]; then echo "$tool is a production dependency (package.json \"dependencies\")" >&2; exit 1; fi; \
    done

FROM node:${NODE_VERSION}-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
USER node
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
# The gateway's readiness (Redis reachable, its scripts loaded). compose.yaml sets each other
# process's own check: the worker's /healthz on its metrics port, the admin panel's /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node flags: shared/node-flags.ts.
CMD ["node", "--max-semi-space-size=64", "dist/gateway/server.js"]
