// One HTTP POST of a delivery, with the limits a request to someone else's server needs: the
// address guard (address-guard.ts) unless private addresses are allowed, no redirects followed
// (a 3xx is a failed attempt: following it would let a public endpoint bounce us to a private
// one), one deadline for the whole exchange, and at most MAX_RESPONSE_BYTES of the answer read.
import http from 'node:http'
import https from 'node:https'
import { isIP } from 'node:net'
import { AppError } from '../shared/errors.ts'
import { blockedReason, BlockedAddressError, guardedLookup } from './address-guard.ts'

/** Enough of the answer for an error message; the rest is not read. */
export const MAX_RESPONSE_BYTES = 64 * 1024

export interface SendOptions {
  url: string
  headers: Record<string, string>
  body: string
  timeoutMs: number
  allowPrivate: boolean
}

export interface SendResult {
  status: number
  ms: number
  /** The start of the answer's body, for the failure reason (at most 200 characters). */
  snippet: string
}

/** The receiver did not answer 2xx, or no answer came: the attempt failed, and is retried. */
export class DeliveryFailedError extends AppError {
  constructor(
    readonly code: 'http_status' | 'redirect' | 'timeout' | 'network',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

// Kept-alive sockets per destination; each was checked by the guard when it connected.
const agents = {
  guarded: {
    http: new http.Agent({ keepAlive: true, maxSockets: 64, lookup: guardedLookup() }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64, lookup: guardedLookup() }),
  },
  open: { http: new http.Agent({ keepAlive: true, maxSockets: 64 }), https: new https.Agent({ keepAlive: true, maxSockets: 64 }) },
}

export async function sendDelivery(opts: SendOptions): Promise<SendResult> {
  const u = new URL(opts.url)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  // A literal address is never looked up, so the agent's guard never sees it: check it here.
  if (!opts.allowPrivate && isIP(host)) {
    const reason = blockedReason(host)
    if (reason) throw new BlockedAddressError(`refused: ${reason} (set WEBHOOK_ALLOW_PRIVATE=1 to allow)`)
  }
  const started = performance.now()
  for (;;) {
    try {
      return await postOnce(u, opts, started)
    } catch (err) {
      // A kept-alive socket the receiver closed just as we reused it (its idle timeout and our
      // reuse crossed): the reset came before any answer, so the request is sent again, as Node's
      // documentation of `request.reusedSocket` advises. Had the receiver read it after all, it
      // deduplicates on X-RDT-Delivery as for any retry. Each such socket is gone after its
      // error, so this ends once a socket is new, or at the deadline. Seen as "ECONNRESET: socket
      // hang up" on `webhook test` (one attempt only) on a loaded machine.
      if (!(err instanceof StaleSocketError)) throw err
      if (performance.now() - started >= opts.timeoutMs) throw err.cause
    }
  }
}

/** The reset of a reused keep-alive socket before any answer (sendDelivery sends again); `cause` is the network failure. */
class StaleSocketError extends Error {}

/** One request on one socket; the deadline counts from `started`, so a resend does not extend it. */
function postOnce(u: URL, opts: SendOptions, started: number): Promise<SendResult> {
  const secure = u.protocol === 'https:'
  const agent = (opts.allowPrivate ? agents.open : agents.guarded)[secure ? 'https' : 'http']
  return new Promise<SendResult>((resolve, reject) => {
    const req = (secure ? https : http).request(u, {
      method: 'POST',
      agent,
      headers: { ...opts.headers, 'content-length': String(Buffer.byteLength(opts.body)) },
    })
    const timer = setTimeout(
      () => {
        req.destroy(new DeliveryFailedError('timeout', `no complete answer within ${opts.timeoutMs} ms`))
      },
      Math.max(0, opts.timeoutMs - (performance.now() - started)),
    )
    let answered = false
    const fail = (err: unknown) => {
      clearTimeout(timer)
      if (err instanceof AppError) return reject(err)
      const cause = err as NodeJS.ErrnoException
      if (cause?.cause instanceof BlockedAddressError) return reject(cause.cause)
      const failed = new DeliveryFailedError('network', `${cause?.code ?? 'error'}: ${cause?.message ?? String(err)}`.slice(0, 300), {
        cause: err,
      })
      if (req.reusedSocket && !answered && cause?.code === 'ECONNRESET')
        return reject(new StaleSocketError('stale socket', { cause: failed }))
      reject(failed)
    }
    req.once('error', fail)
    req.once('response', (res) => {
      answered = true
      const chunks: Buffer[] = []
      let read = 0
      const done = () => {
        clearTimeout(timer)
        const snippet = Buffer.concat(chunks).toString('utf8').replace(/\s+/g, ' ').slice(0, 200)
        const status = res.statusCode ?? 0
        const ms = Math.round(performance.now() - started)
        if (status >= 200 && status < 300) return resolve({ status, ms, snippet })
        if (status >= 300 && status < 400)
          return reject(new DeliveryFailedError('redirect', `answered ${status} (redirects are not followed)`))
        reject(new DeliveryFailedError('http_status', `answered ${status}${snippet ? `: ${snippet}` : ''}`))
      }
      res.on('data', (chunk: Buffer) => {
        read += chunk.length
        if (read <= MAX_RESPONSE_BYTES) chunks.push(chunk)
        else {
          // Enough: the status is known, the rest of a huge answer is not worth the wait.
          res.removeAllListeners('data')
          res.removeAllListeners('end')
          res.destroy()
          done()
        }
      })
      res.once('end', done)
      res.once('error', fail)
    })
    req.end(opts.body)
  })
}
