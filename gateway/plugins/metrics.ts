// Request metrics for Prometheus. They are served by a separate listener (shared/metrics-server.ts),
// never on the public port. Labels are the route *pattern* (`/ingest/:dsn/...`), never the URL:
// the URL carries the DSN token, and a per-URL label would also grow without bound.
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RedisClient } from '../../shared/redis.ts'
import type { Socket } from 'node:net'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { keys } from '../../shared/keys.ts'
import { registerQueueDepth } from '../../shared/queue-metrics.ts'
import type { BacklogSnapshot } from '../backlog.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The gateway's Prometheus registry; server.ts serves it on METRICS_PORT. */
    metrics: Registry
    /** Counts an answer sent outside the request lifecycle, where no onResponse hook runs (Fastify's frameworkErrors). */
    observeAnswer(request: FastifyRequest, reply: FastifyReply): void
    /**
     * Counts a refusal made by Node's HTTP server itself, below Fastify (a request or headers
     * timeout, a malformed or oversized head): the server's clientError handler in app.ts. The
     * socket's request, if Fastify had routed it, gets no other count.
     */
    observeClientError(socket: Socket, status: number, reason: string): void
    /** Counts how a drain after an early answer ended (gateway/drain.ts). */
    observeDrain(outcome: string): void
    /** Counts a DSN lookup that the token cache had to send to Redis (gateway/token-cache.ts). */
    observeTokenRead(): void
  }
}

export interface MetricsPluginOptions {
  redisPrefix: string
  /**
   * The backpressure poller's latest figures (gateway/backlog.ts `snapshot()`), read at scrape
   * time. Without it, staged bytes are read from Redis at scrape time instead.
   */
  backlog?: () => BacklogSnapshot | null | undefined
  /** Figures of the connection guards, read at scrape time: uploads in flight (in-flight.ts) and connections being drained (drain.ts). */
  guards?: () => { inFlight: number; draining: number } | null | undefined
}

// Seconds. JSON requests take about a millisecond; media uploads from phones take seconds.
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** The route pattern a request matched, or a fixed word: never anything taken from the URL. */
function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unmatched'
}

/** The reason for an error answer: the HttpError code recorded by errors.ts, else a fixed word. */
function reasonOf(reply: FastifyReply, status: number): string {
  if (reply.errorCode) return reply.errorCode
  if (status === 404) return 'not_found'
  return `http_${status}`
}

export default fp<MetricsPluginOptions>(
  async (app, opts) => {
    const registry = new Registry()
    const m = requestMetrics(registry)
    const sockets: SocketRoutes = { route: new WeakMap(), countedBelow: new WeakSet() }
    app.addHook('onRequest', (request, _reply, done) => {
      if (request.raw.socket) sockets.route.set(request.raw.socket, { method: methodOf(request), route: routeOf(request) })
      done()
    })
    const observe = (request: FastifyRequest, reply: FastifyReply) => observeAnswer(m, sockets, request, reply)
    app.addHook('onResponse', (request, reply, done) => {
      observe(request, reply)
      done()
    })
    app.decorate('observeAnswer', observe)
    app.decorate('observeClientError', (socket: Socket, status: number, reason: string) =>
      observeClientError(m, sockets, socket, status, reason),
    )
    app.decorate('observeDrain', (outcome: string) => m.drains.inc({ outcome }))
    app.decorate('observeTokenRead', () => m.tokenReads.inc())
    registerGuardGauges(registry, opts)
    // Read at scrape time, so it does not matter whether the queues plugin is registered yet.
    registerQueueDepth(registry, () => (app.hasDecorator('shards') ? app.shards.flatMap((s) => Object.values(s.queues)) : []))
    registerBacklogGauges(registry, opts, () => app.redis)
    app.decorate('metrics', registry)
  },
  { name: 'metrics' },
)

const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'])
/** Methods outside the usual few are folded, so a client cannot mint label values. */
const methodOf = (request: FastifyRequest) => (METHODS.has(request.method) ? request.method : 'OTHER')

const counter = <L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]) =>
  new Counter<L>({ name, help, labelNames, registers: [registry] })

/** A gauge whose value is read when Prometheus scrapes. */
const gauge = <L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  collect: (this: Gauge<L>) => void | Promise<void>,
) => new Gauge<L>({ name, help, labelNames, registers: [registry], collect })

type RequestMetrics = ReturnType<typeof requestMetrics>
type Children = { requests: Counter.Internal; duration: Histogram.Internal<'method' | 'route' | 'status'> }

function requestMetrics(registry: Registry) {
  const requests = counter(registry, 'rdt_gateway_requests_total', 'Answered requests by method, route pattern and status', [
    'method',
    'route',
    'status',
  ])
  const duration = new Histogram({
    name: 'rdt_gateway_request_duration_seconds',
    help: 'Time from request start to the answer being sent, by method, route pattern and status',
    labelNames: ['method', 'route', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  })
  // Label lookups hash the label set on every call; the set of (method, route, status) is
  // small, so the children are kept and each request does two plain increments.
  const children = new Map<string, Children>()
  const childrenFor = (method: string, route: string, status: string): Children => {
    const key = `${method} ${route} ${status}`
    let c = children.get(key)
    if (!c) {
      c = { requests: requests.labels(method, route, status), duration: duration.labels(method, route, status) }
      children.set(key, c)
    }
    return c
  }
  return {
    childrenFor,
    // The real client retries every status but 200/201/409 for ever: each of these leaves data
    // on a phone, so operators must see them, by reason (docs/architecture.md §1).
    refusals: counter(
      registry,
      'rdt_gateway_refusals_total',
      'Answers the device will retry (every status but 2xx and 409), by route pattern, status and reason',
      ['route', 'status', 'reason'],
    ),
    acceptedBytes: counter(
      registry,
      'rdt_gateway_accepted_request_bytes_total',
      'Declared Content-Length of accepted (201) requests, by route pattern',
      ['route'],
    ),
    drains: counter(
      registry,
      'rdt_gateway_body_drains_total',
      'Bodies read and discarded after an answer sent before they were read, by how the drain ended (completed, not_drained, too_large, timeout, request_timeout, closed)',
      ['outcome'],
    ),
    tokenReads: counter(
      registry,
      'rdt_gateway_token_reads_total',
      'DSN lookups the token cache sent to Redis (a miss, or an expired entry); concurrent lookups of one token count once',
      [],
    ),
  }
}

/**
 * The route a socket's current request matched, for refusals Node makes below Fastify (a
 * request timeout mid-body); and the sockets such a refusal has already counted, so that the
 * dying request's own answer (if Fastify still sends one) is not counted twice.
 */
interface SocketRoutes {
  route: WeakMap<Socket, { method: string; route: string }>
  countedBelow: WeakSet<Socket>
}

function observeAnswer(m: RequestMetrics, sockets: SocketRoutes, request: FastifyRequest, reply: FastifyReply): void {
  const socket = request.raw.socket
  if (socket) {
    sockets.route.delete(socket)
    if (sockets.countedBelow.has(socket)) return
  }
  const route = routeOf(request)
  const code = reply.statusCode
  const status = String(code)
  const c = m.childrenFor(methodOf(request), route, status)
  c.requests.inc()
  c.duration.observe(reply.elapsedTime / 1000)
  if (code >= 400 && code !== 409) m.refusals.inc({ route, status, reason: reasonOf(reply, code) })
  else if (code === 201) {
    const length = Number(request.headers['content-length'])
    if (length > 0) m.acceptedBytes.inc({ route }, length)
  }
}

function observeClientError(m: RequestMetrics, sockets: SocketRoutes, socket: Socket, status: number, reason: string): void {
  const { method, route } = sockets.route.get(socket) ?? { method: 'OTHER', route: 'unmatched' }
  sockets.countedBelow.add(socket)
  m.childrenFor(method, route, String(status)).requests.inc()
  m.refusals.inc({ route, status: String(status), reason })
}

function registerGuardGauges(registry: Registry, opts: MetricsPluginOptions): void {
  gauge(
    registry,
    'rdt_gateway_uploads_in_flight',
    'Ingest requests being received or processed now (counted per token against MAX_IN_FLIGHT_PER_TOKEN)',
    [],
    function () {
      this.set(opts.guards?.()?.inFlight ?? 0)
    },
  )
  gauge(
    registry,
    'rdt_gateway_draining_connections',
    'Connections whose request was answered early and whose body is being read and discarded',
    [],
    function () {
      this.set(opts.guards?.()?.draining ?? 0)
    },
  )
}

/** The backpressure poller's figures; `redis` is read only when there is no poller. */
function registerBacklogGauges(registry: Registry, opts: MetricsPluginOptions, redis: () => RedisClient): void {
  const stagedKey = keys(opts.redisPrefix).stagedMediaBytes
  gauge(
    registry,
    'rdt_staged_media_bytes',
    'Bytes of photos staged in object storage whose job has not finished (backpressure figure)',
    [],
    async function () {
      const snap = opts.backlog?.()
      if (snap?.at) return this.set(snap.stagedMediaBytes)
      try {
        this.set(Number((await redis().get(stagedKey)) ?? 0) || 0)
      } catch {
        this.reset() // Redis away: no figure rather than a stale one
      }
    },
  )
  gauge(
    registry,
    'rdt_redis_memory_bytes',
    'Redis used_memory and maxmemory as last polled by the backpressure poller (kind: used, max; max 0 = no limit)',
    ['kind'],
    function () {
      this.reset()
      const snap = opts.backlog?.()
      if (!snap?.at) return
      this.set({ kind: 'used' }, snap.redis.usedMemory)
      this.set({ kind: 'max' }, snap.redis.maxMemory)
    },
  )
  gauge(
    registry,
    'rdt_gateway_backpressure',
    '1 while new work for a queue is refused with 503 by backpressure, by queue and reason (backlog, staged_media, redis_memory)',
    ['queue', 'reason'],
    function () {
      this.reset()
      const snap = opts.backlog?.()
      if (!snap) return
      for (const [queue, overload] of Object.entries(snap.overloaded)) {
        for (const reason of ['backlog', 'staged_media', 'redis_memory']) this.set({ queue, reason }, overload?.reason === reason ? 1 : 0)
      }
    },
  )
}
