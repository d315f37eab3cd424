// A client that writes its whole request (or several, on one connection) before it reads a
// byte of the answer, like the real client and most HTTP libraries: over node:net, so nothing
// reads the answer early. If the server answers early and then closes while bytes are still
// coming, the kernel resets the connection and this client sees EPIPE/ECONNRESET instead of the
// answer. The body goes out in pieces, each written once the last was flushed.
import { connect } from 'node:net'
import { parseResponses } from './hostile.ts'

export interface WriteThenReadResult {
  /** Every complete answer received, in order. */
  responses: { status: number; headers: Record<string, string>; body: string }[]
  /** The error the socket failed with (EPIPE, ECONNRESET), if any. */
  error: string | null
  /** Whether every byte was written before the socket failed or closed. */
  wroteAll: boolean
  /** Whether the server closed the connection (rather than this client, after `expect` answers). */
  closedByServer: boolean
  /** Milliseconds from the first write to the close (or to the last answer expected). */
  ms: number
}

export interface WriteThenReadOptions {
  /** Stop once this many answers have arrived (the connection is kept alive otherwise). */
  expect?: number
  pieceBytes?: number
  /** Upper bound on the whole exchange; the test fails on what was received by then. */
  timeoutMs?: number
}

export function writeThenRead(port: number, requests: Buffer[], opts: WriteThenReadOptions = {}): Promise<WriteThenReadResult> {
  const piece = opts.pieceBytes ?? 64 * 1024
  const data = Buffer.concat(requests)
  return new Promise((resolve) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1')
    socket.pause() // read nothing until everything is written
    const got: Buffer[] = []
    let error: string | null = null
    let wroteAll = false
    let closedByServer = false
    let settled = false
    const settle = () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ responses: parseResponses(Buffer.concat(got)), error, wroteAll, closedByServer, ms: Date.now() - started })
    }
    const timer = setTimeout(settle, opts.timeoutMs ?? 30_000)
    socket.on('data', (c: Buffer) => {
      got.push(c)
      if (opts.expect && parseResponses(Buffer.concat(got)).length >= opts.expect) settle()
    })
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message
      settle()
    })
    socket.on('end', () => {
      closedByServer = true
    })
    socket.on('close', () => {
      closedByServer = true
      settle()
    })
    let at = 0
    const next = () => {
      if (settled) return
      if (at >= data.length) {
        wroteAll = true
        socket.resume()
        return
      }
      const end = Math.min(at + piece, data.length)
      const part = data.subarray(at, end)
      at = end
      socket.write(part, (err) => {
        if (err)
          socket.resume() // let the error or what was answered surface
        else setImmediate(next)
      })
    }
    next()
  })
}

/** An HTTP/1.1 request head (keep-alive unless `close`). */
export function head(method: string, path: string, headers: Record<string, string | number> = {}, close = false): Buffer {
  const lines = [
    `${method} ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    ...(close ? ['Connection: close'] : []),
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ]
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')
}

/** A whole request with a Content-Length body. */
export function withLength(
  method: string,
  path: string,
  body: Buffer,
  headers: Record<string, string | number> = {},
  close = false,
): Buffer {
  return Buffer.concat([head(method, path, { ...headers, 'Content-Length': body.length }, close), body])
}
