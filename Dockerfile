# One image for every process: the gateway (default), the worker and the CLI differ only by command.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY shared shared
COPY gateway gateway
COPY worker worker
COPY cli cli
COPY admin admin
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
USER node
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
# Node flags: shared/node-flags.ts.
CMD ["node", "--max-semi-space-size=64", "dist/gateway/server.js"]
