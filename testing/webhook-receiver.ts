// A real HTTP receiver for outbound webhook tests and the delivery measurement: a node http
// server on 127.0.0.1 that records every request (headers, body, whether its signature verifies)
// and answers as told: fail the next N requests, answer slowly, or answer normally.
import { EventEmitter } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { verifySignature } from '../webhooks/signing.ts'
import { untilEvent } from './wait.ts'

export interface Received {
  event: string
  deliveryId: string
  timestamp: string
  signatureOk: boolean
  body: string
  json: Record<string, unknown>
  /** What the receiver answered. */
  status: number
  at: number
}

export interface ReceiverBehaviour {
  /** Answer 500 to this many more requests. */
  failNext: number
  /** Wait delayMs before answering this many more requests. */
  slowNext: number
  delayMs: number
}

export interface Receiver {
  url: string
  port: number
  requests: Received[]
  behaviour: ReceiverBehaviour
  events: EventEmitter
  /** The 2xx-answered requests, by X-RDT-Delivery. */
  delivered(): Map<string, Received[]>
  /** Resolves once `check()` holds, checked after each request. */
  until(check: () => boolean, opts?: { timeoutMs?: number; what?: string }): Promise<void>
  close(): Promise<void>
  /** Listens again on the same port after close() (a receiver back from an outage). */
  reopen(): Promise<void>
}

export async function startReceiver(secret: string, port = 0): Promise<Receiver> {
  const events = new EventEmitter()
  const requests: Received[] = []
  const behaviour: ReceiverBehaviour = { failNext: 0, slowNext: 0, delayMs: 0 }
  const sockets = new Set<import('node:net').Socket>()
  const handler: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const h = (name: string) => String(req.headers[name] ?? '')
      const status = behaviour.failNext > 0 ? (behaviour.failNext--, 500) : 200
      const answer = () => {
        if (res.destroyed) return
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'try again later')
        let json: Record<string, unknown> = {}
        try {
          json = JSON.parse(body) as Record<string, unknown>
        } catch {
          // recorded as is; the test's assertions catch it
        }
        requests.push({
          event: h('x-rdt-event'),
          deliveryId: h('x-rdt-delivery'),
          timestamp: h('x-rdt-timestamp'),
          signatureOk: verifySignature(secret, h('x-rdt-timestamp'), body, h('x-rdt-signature')),
          body,
          json,
          status,
          at: Date.now(),
        })
        events.emit('request')
      }
      const slow = behaviour.slowNext > 0 && (behaviour.slowNext--, true)
      if (slow) setTimeout(answer, behaviour.delayMs)
      else answer()
    })
  }
  let server = http.createServer(handler)
  const listen = (p: number) =>
    new Promise<number>((resolve, reject) => {
      server.on('connection', (s) => {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
      })
      server.once('error', reject)
      server.listen(p, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
    })
  const bound = await listen(port)
  const receiver: Receiver = {
    url: `http://127.0.0.1:${bound}/hook`,
    port: bound,
    requests,
    behaviour,
    events,
    delivered() {
      const m = new Map<string, Received[]>()
      for (const r of requests) if (r.status === 200) m.set(r.deliveryId, [...(m.get(r.deliveryId) ?? []), r])
      return m
    },
    until: (check, opts = {}) => untilEvent(events, 'request', check, { timeoutMs: opts.timeoutMs ?? 30_000, what: opts.what }),
    async close() {
      // Kept-alive sockets too: "down" means connections are refused, not left hanging.
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    async reopen() {
      server = http.createServer(handler)
      await listen(bound)
    },
  }
  return receiver
}
