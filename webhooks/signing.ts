// Request signing: `X-RDT-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the
// endpoint's secret. The timestamp is inside what is signed, so a receiver that refuses old
// timestamps (README "Forwarding": 5 minutes) cannot be fed a recorded request again later.
import { createHmac, timingSafeEqual } from 'node:crypto'

export function signature(secret: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')
}

/** A receiver's check (used by the tests; the README shows the same in a few lines). */
export function verifySignature(secret: string, timestamp: string, body: string, header: string | undefined): boolean {
  if (typeof header !== 'string') return false
  const expected = Buffer.from(signature(secret, timestamp, body))
  const got = Buffer.from(header)
  return expected.length === got.length && timingSafeEqual(expected, got)
}

/** The headers of one request; the timestamp is the send time in whole seconds since the epoch. */
export function deliveryHeaders(opts: {
  event: string
  deliveryId: string
  secret: string
  body: string
  now?: Date
}): Record<string, string> {
  const timestamp = String(Math.floor((opts.now ?? new Date()).getTime() / 1000))
  return {
    'content-type': 'application/json; charset=utf-8',
    'user-agent': 'rdt-ingest-webhooks/1',
    'x-rdt-event': opts.event,
    'x-rdt-delivery': opts.deliveryId,
    'x-rdt-timestamp': timestamp,
    'x-rdt-signature': signature(opts.secret, timestamp, opts.body),
  }
}
