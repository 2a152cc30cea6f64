# junction in a container: docker build -t junction . && docker run -p 1080:1080 \
#   -v "$PWD/deploy/config.yaml:/etc/junction/config.yaml:ro" junction
# The configuration comes from the volume; SIGHUP (docker kill -s HUP) reloads it.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY deploy/config.yaml /etc/junction/config.yaml
# The image's own user, not root.
USER node
EXPOSE 1080 9090
VOLUME ["/etc/junction"]
# /healthz on the admin endpoint (deploy/config.yaml listens on 9090).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/main.js"]
CMD ["-c", "/etc/junction/config.yaml"]
