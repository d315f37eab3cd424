// An answer sent before the request body was read must reach the client. The real client (and
// most HTTP clients) writes its whole body before it reads the answer; if the gateway answers
// early (413, 403, 429, 503, or 409 for a duplicate photo) and then closes the socket while bytes
// are still arriving, the kernel resets the connection and the client sees EPIPE/ECONNRESET
// instead of the answer (measured: 1 PUT in 5 of a 12 MB session against `npm start`; every
// one with a client that reads only after writing). A device that never sees its 409 uploads the
// same photo for ever.
//
// So after such an answer the gateway keeps reading the body and throws it away, as mature
// servers do (nginx's lingering close), then either keeps the connection (keep-alive) or closes
// it (the answer said `Connection: close`: the socket is half-closed at once and closed when the
// body has ended). Bounded:
// - a refusal's body: at most `maxBytes` (DRAIN_MAX_BYTES) and `timeoutMs` (DRAIN_TIMEOUT_MS);
// - a 2xx/409's body (the device must see it, and a phone on a slow link may need minutes):
//   at most `acceptedMaxBytes` (MAX_MEDIA_BYTES, a body the route would have taken), within the
//   request timeout that bounds every request (REQUEST_TIMEOUT_MS, enforced by Node).
// A body declared (Content-Length) larger than its bound is not read at all: the answer says
// `Connection: close` and the connection is closed after it, as before. Past a bound, the
// connection is cut. Nothing of the body is ever kept.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Socket } from 'node:net'

/** How a drain ended (metrics label). */
export type DrainOutcome =
  /** The body ended; the connection is kept (keep-alive) or closed (the answer said close). */
  | 'completed'
  /** Content-Length over the bound: not read, the connection closed after the answer. */
  | 'not_drained'
  /** More than the bound arrived: the connection was cut. */
  | 'too_large'
  /** The body did not end within DRAIN_TIMEOUT_MS: the connection was cut. */
  | 'timeout'
  /** Node's request timeout (REQUEST_TIMEOUT_MS) fired first: the connection was cut. */
  | 'request_timeout'
  /** The client closed the connection itself. */
  | 'closed'

export interface DrainOptions {
  /** Bytes of a refusal's body read and discarded after the answer; 0 = never drain. */
  maxBytes: number
  timeoutMs: number
  /** Bytes of a 2xx/409's body (time bound: the request timeout). */
  acceptedMaxBytes: number
  onOutcome?: (outcome: DrainOutcome) => void
}

type Finish = (outcome: DrainOutcome) => void

export interface BodyDrain {
  /**
   * For the server's clientError handler: if `socket` is being drained, ends the drain with
   * `outcome` (cutting the connection) and returns true. Its request was already answered, so
   * no second answer may be written on it.
   */
  cut(socket: Socket, outcome: DrainOutcome): boolean
  /** Connections being drained now (for metrics). */
  active(): number
}

function declaredLength(request: FastifyRequest): number | null {
  const raw = request.headers['content-length']
  if (raw === undefined) return null
  const n = Number(raw)
  return Number.isFinite(n) ? n : null
}

export function installBodyDrain(app: FastifyInstance, opts: DrainOptions): BodyDrain {
  const draining = new Map<Socket, Finish>()

  app.addHook('onSend', (request, reply, payload, done) => {
    startDrain(draining, opts, request, reply)
    done(null, payload)
  })

  return {
    cut(socket, outcome) {
      const finish = draining.get(socket)
      if (!finish) return false
      finish(outcome)
      return true
    },
    active: () => draining.size,
  }
}

/** Decides whether an answered request's body is to be drained, and within which bound. */
function startDrain(draining: Map<Socket, Finish>, opts: DrainOptions, request: FastifyRequest, reply: FastifyReply): void {
  const req = request.raw
  // Everything was received (the usual case), or the connection is gone: nothing to read.
  if (req.complete || req.destroyed) return
  const found: unknown = req.socket
  // (app.inject's requests have a stand-in socket: nothing to drain.)
  if (!(found instanceof Socket) || found.destroyed || draining.has(found)) return
  const status = reply.statusCode
  const wanted = status < 400 || status === 409
  const maxBytes = wanted ? opts.acceptedMaxBytes : opts.maxBytes
  const declared = declaredLength(request)
  if (maxBytes === 0 || (declared !== null && declared > maxBytes)) {
    reply.header('connection', 'close')
    opts.onOutcome?.('not_drained')
    return
  }
  drain({ draining, onOutcome: opts.onOutcome, req, socket: found, reply, maxBytes, timeoutMs: wanted ? null : opts.timeoutMs })
}

interface DrainJob {
  draining: Map<Socket, Finish>
  onOutcome: DrainOptions['onOutcome']
  req: FastifyRequest['raw']
  socket: Socket
  reply: FastifyReply
  maxBytes: number
  /** null: bounded by the request timeout only. */
  timeoutMs: number | null
}

/** Reads and discards the rest of the body, until it ends or a bound is passed. */
function drain({ draining, onOutcome, req, socket, reply, maxBytes, timeoutMs }: DrainJob): void {
  let bytes = 0
  let done = false
  // Node closes a connection whose answer said `Connection: close` with destroySoon() once
  // the answer is written. While draining, that becomes a half-close: the answer and a FIN go
  // out, and the socket keeps reading until the body has ended.
  let lingering = false
  const own = socket as unknown as { destroySoon?: () => void }
  own.destroySoon = () => {
    lingering = true
    if (socket.writable) socket.end()
  }
  const onData = (chunk: Buffer) => {
    bytes += chunk.length
    if (bytes > maxBytes) finish('too_large')
  }
  const onEnd = () => finish('completed')
  const onClose = () => finish('closed')
  const timer = timeoutMs === null ? null : setTimeout(() => finish('timeout'), timeoutMs).unref()
  function finish(outcome: DrainOutcome): void {
    if (done) return
    done = true
    if (timer) clearTimeout(timer)
    req.off('data', onData)
    req.off('end', onEnd)
    socket.off('close', onClose)
    draining.delete(socket)
    delete own.destroySoon // back to net.Socket's own
    onOutcome?.(outcome)
    if (outcome === 'closed') return
    if (outcome !== 'completed') socket.destroy()
    else if (lingering) socket.destroySoon()
  }
  draining.set(socket, finish)
  req.on('data', onData)
  req.once('end', onEnd)
  socket.once('close', onClose)
  // Node drops a finished request's 'data' listeners if it was never read (IncomingMessage
  // _dump); count again in that case.
  reply.raw.once('finish', () => {
    if (!done && req.listenerCount('data') === 0) req.on('data', onData)
  })
  // A route that stopped reading (a failed upload, Fastify's body limit) left it piped, paused
  // or flowing: from now on its bytes go nowhere.
  req.unpipe()
  req.resume()
}
