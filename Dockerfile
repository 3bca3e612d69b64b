# syntax=docker/dockerfile:1
# One image for every Pioneer function. The function is chosen at run time:
#   docker run -e PIONEER_FUNCTION=gateway -e PIONEER_REDIS_URL=redis://... IMAGE
#   docker run IMAGE route                   (the name as the first argument works too)
# It serves HTTP on $PORT (8080 unless set): the function's API (the subscriptions function's includes the
# customer portal at /portal), /healthz, /readyz, /metrics, and for a Kafka-triggered function `POST /` for the
# CloudEvents its KafkaSource (Knative) or the kafka-connector (OpenFaaS) posts. Knative and OpenFaaS deploy it
# as is (knative/, stack.yml; docs/operations.md).

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: compile platform/, functions/ and adapters/ to dist/ -------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# the lock file lists the consumer SDK workspace: npm ci needs its package.json, not its code
COPY consumer-sdk/package.json consumer-sdk/package.json
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.build.json ./
COPY platform platform
COPY functions functions
COPY adapters adapters
# the Lua scripts are read at run time beside the compiled Redis client (platform/redis/client.ts)
RUN npx tsc -p tsconfig.build.json \
 && mkdir -p dist/platform/redis/scripts \
 && cp platform/redis/scripts/*.lua dist/platform/redis/scripts/

# --- deps: production dependencies only ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY consumer-sdk/package.json consumer-sdk/package.json
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime: non-root, read-only code ----------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# package.json carries "type": "module", which makes dist/**/*.js ES modules
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# the customer portal's page, modules and stylesheet, which the subscriptions function serves at /portal: its compiled
# module (dist/functions/subscriptions/portal.js) reads them two levels up, as portal/ is from its source. Preact
# and htm come from node_modules above (htm is a production dependency).
COPY portal dist/portal
COPY deploy/docker-entrypoint.sh /usr/local/bin/pioneer-entrypoint
RUN chmod 0755 /usr/local/bin/pioneer-entrypoint
# V8 sizes its heap from the machine, not the container, and grows it lazily: a function that may use 4 GB of
# heap before it collects in earnest sits at 300 MB RSS where 120 MB would do. 128 MB of old space keeps every
# function under 200 MB RSS at 10,000 events/s (docs/benchmarks.md); a manifest may set NODE_OPTIONS otherwise.
ENV NODE_OPTIONS="--max-old-space-size=128"
# the node image's unprivileged user, by number so that Kubernetes' runAsNonRoot can verify it
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/local/bin/pioneer-entrypoint"]
