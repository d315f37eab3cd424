// A small HTTP listener for Prometheus, separate from the gateway's public port: the public API
// is write-only and its URLs carry DSN tokens, so operational endpoints never share it. Each
// process (gateway, worker) opens its own on METRICS_PORT; in compose the port is not published,
// so only the internal network (Prometheus, health checks) reaches it.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

export interface MetricsServerOptions {
  /** 0 disables the listener. */
  port: number
  host: string
  registry: Registry
  /** Liveness for GET /healthz (200 or 503); always 200 when not given. */
  healthy?: () => boolean | Promise<boolean>
  logger?: { info(obj: object, msg: string): void; error(obj: object, msg: string): void }
}

export interface MetricsServer {
  port: number
  close(): Promise<void>
}

/**
 * Starts the listener. A port that is taken does not stop the process: ingest matters more than
 * its metrics, so the error is logged (loudly) and null is returned, as for a disabled port.
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer | null> {
  if (opts.port === 0) return null
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: Error) => {
          opts.logger?.error({ err: err.message }, 'metrics collection failed')
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n')
        },
      )
      return
    }
    if (path === '/healthz') {
      Promise.resolve()
        .then(() => (opts.healthy ? opts.healthy() : true))
        .then(
          (ok) =>
            res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unhealthy' })),
          () => res.writeHead(503, { 'content-type': 'application/json' }).end('{"status":"unhealthy"}'),
        )
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
  })
  // Scrapes are small and quick; a stuck client must not hold a socket for long.
  server.requestTimeout = 10_000
  server.headersTimeout = 5_000
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      opts.logger?.error({ err: err.message, port: opts.port, host: opts.host }, 'metrics listener could not start; metrics are not served')
      resolve(false)
    })
    server.listen({ port: opts.port, host: opts.host }, () => resolve(true))
  })
  if (!ok) return null
  const port = (server.address() as AddressInfo).port
  opts.logger?.info({ port, host: opts.host }, 'metrics listening')
  return { port, close: () => closeServer(server) }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
