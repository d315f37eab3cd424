// Per-token cap on uploads in flight. One token must not hold every connection and
// every buffered body of a gateway: past `max` requests of one token being received or processed
// at once, the next one is answered 429 with Retry-After, before its body is read.
//
// Counted in process, per gateway, on purpose:
// - it is exact and free: a request is counted from its authentication to the end of its answer
//   (or its connection), with no Redis round trip (the accepted JSON path has a budget of two);
// - a shared counter would have to be given back by every request, and a gateway that crashes
//   or loses Redis mid-request would leak slots and lock a token out until they expired.
// What it protects is per process anyway (memory, sockets, spool disk), so with N gateways
// behind a balancer a token may have up to N x max uploads in flight in all.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { HttpError } from './errors.ts'

/** Uploads usually finish within seconds; a device comes back after its own backoff anyway. */
const RETRY_AFTER_S = 5

export function createInFlightLimiter(max: number) {
  const counts = new Map<string, number>()
  let total = 0

  return {
    /**
     * Counts this request against its token until its answer is sent or its connection closes;
     * throws 429 `too_many_in_flight` if the token already has `max` in flight. 0 = no cap.
     */
    acquire(request: FastifyRequest, reply: FastifyReply, tokenId: string): void {
      if (max <= 0) return
      const n = counts.get(tokenId) ?? 0
      if (n >= max) {
        request.log.info({ reason: 'too_many_in_flight', token_id: tokenId, max }, 'too many uploads in flight')
        throw new HttpError(429, 'too_many_in_flight', 'too many uploads in flight for this DSN, retry later', RETRY_AFTER_S)
      }
      counts.set(tokenId, n + 1)
      total++
      let released = false
      const release = () => {
        if (released) return
        released = true
        total--
        const left = (counts.get(tokenId) ?? 1) - 1
        if (left <= 0) counts.delete(tokenId)
        else counts.set(tokenId, left)
      }
      // 'close' follows 'finish' and also fires when the connection dies first.
      reply.raw.once('finish', release)
      reply.raw.once('close', release)
    },
    /** Requests counted now, over all tokens (for metrics). */
    inFlight: () => total,
    /** Uploads in flight for one token (tests). */
    of: (tokenId: string) => counts.get(tokenId) ?? 0,
  }
}

export type InFlightLimiter = ReturnType<typeof createInFlightLimiter>
