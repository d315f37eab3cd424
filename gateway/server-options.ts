// The Fastify and Node HTTP server options of the gateway: routing as the real client needs it,
// timeouts for slow clients, TLS, and the answers to requests refused below Fastify's routing
// (a malformed URL, a timeout, a malformed head), which never quote the DSN token.
import type { FastifyBaseLogger, FastifyHttpOptions, FastifyInstance, FastifyReply } from 'fastify'
import { LogController } from 'fastify'
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { GatewayConfig } from './config.ts'
import { httpsOption } from '../shared/https-option.ts'
import { loggerOptions } from '../shared/logger.ts'
import type { BodyDrain } from './drain.ts'

/** Node's answers to a request it refuses below Fastify: status, metrics reason, message. */
function clientErrorAnswer(code: string | undefined): [number, string, string] {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'request_timeout', 'the request was not received in time']
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'header_too_large', 'the request headers are too large']
  return [400, 'bad_request', 'the request is not valid HTTP']
}

/** What the options' handlers need of the app, which exists only once the options are used. */
export interface LateParts {
  app?: FastifyInstance
  drain?: BodyDrain
}

export function gatewayServerOptions(
  config: GatewayConfig,
  logger: FastifyBaseLogger | false | undefined,
  late: LateParts,
): FastifyHttpOptions<Server> {
  const serverOptions = {
    headersTimeout: config.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(
      30_000,
      Math.max(250, Math.floor(Math.min(config.headersTimeoutMs, config.requestTimeoutMs) / 4)),
    ),
  }
  return {
    loggerInstance: logger || undefined,
    logger: logger === undefined ? loggerOptions(config.logLevel, 'gateway') : undefined,
    // The real client appends '/' to every path; accept both forms.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    // One line per request from our onResponse hook (with the DSN redacted) instead of two.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's JSON parser would refuse keys like __proto__ with 400; we parse ourselves.
    bodyLimit: config.maxJsonBytes,
    // Fastify's own answers to a malformed URL (400 bad percent-encoding, 414 a path parameter
    // over maxParamLength) quote the whole path, DSN token included, in the body; ours do not.
    frameworkErrors: (err, request, reply: FastifyReply) => {
      const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      reply.errorCode = 'bad_url' // the refusal reason in metrics (plugins/metrics.ts)
      void reply
        .code(tooLong ? 414 : 400)
        .send({ error: 'bad_url', message: tooLong ? 'a path segment is too long' : 'the URL is not valid' })
      // No onResponse hook runs for these answers, so they are counted here.
      request.server.observeAnswer(request, reply)
    },
    // request.ip is what the per-address unknown-token limit counts: behind a proxy, trust exactly
    // its hops, never all of X-Forwarded-For (a client could then pick its own address).
    // (What a hop count means in proxy-addr, spelled as a function: Fastify's types take no number.)
    trustProxy: config.trustProxyHops > 0 ? (_address: string, hop: number) => hop < config.trustProxyHops : false,
    // Slow or stalled clients: the whole request, headers and body, must arrive
    // within REQUEST_TIMEOUT_MS and its headers within HEADERS_TIMEOUT_MS, else Node answers 408
    // and closes the connection. Node checks them every connectionsCheckingInterval, so a
    // connection is cut within that much after its deadline.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: serverOptions,
    // TLS_CERT_FILE/TLS_KEY_FILE: HTTPS on the same port, with the same limits. A client that has
    // not finished its TLS handshake within HEADERS_TIMEOUT_MS has not sent its headers either.
    ...httpsOption(config.tls, { ...serverOptions, handshakeTimeout: config.headersTimeoutMs }),
    // Refusals Node makes itself (timeouts, malformed heads): counted in metrics like every other
    // refusal, and never written on a connection whose request was already answered (a drain).
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => {
      const { app, drain } = late
      if (!app) return socket.destroy(err)
      if (drain?.cut(socket, err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : 'closed')) return
      if (err.code === 'ECONNRESET' || socket.destroyed) return
      const [status, reason, message] = clientErrorAnswer(err.code)
      if (app.hasDecorator('observeClientError')) app.observeClientError(socket, status, reason)
      app.log.info({ status, reason }, 'request refused by the HTTP server')
      const answering = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
      if (socket.writable && !answering?.headersSent) {
        const body = JSON.stringify({ error: reason, message })
        socket.write(
          `HTTP/1.1 ${status} ${reason.replace(/_/g, ' ')}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        )
      }
      socket.destroy(err)
    },
  }
}
