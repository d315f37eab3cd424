// An open-loop load generator: request i is due at t0 + i/rate whatever happened to earlier ones,
// and its latency is measured from that *intended* time, so time spent queued behind a slow
// answer counts (the coordinated-omission correction, as in wrk2). Like phones, each connection
// carries one request at a time (no pipelining); a request due while every connection is busy
// waits in a queue, and that wait is part of its latency.
//
// Why not `autocannon -R`: autocannon 9 limits the rate per connection per one-second window
// (each connection sends its quota back to back, then waits for the next second), so at 70% of
// the maximum it runs flat out for ~70% of every second; and its correction records
// recordValueWithExpectedInterval(latency, Math.ceil(1 / rate)), i.e. an interval of 1 ms whatever
// the rate. bench/README.md has the details; its figure is still printed, next to this one.
//
// Why raw sockets and not node:http: on 2 shared cores the generator's CPU is taken from the
// server under test, and node's HTTP client costs several times what this does. It only has to
// read our servers' answers: HTTP/1.1, keep-alive, a Content-Length on every response.
import { connect, type Socket } from 'node:net'

export interface OpenLoopSpec {
  host: string
  port: number
  rate: number
  durationS: number
  /** Sockets, like autocannon's connections. */
  connections: number
  /**
   * How long past durationS requests still waiting for a connection may be sent. When the server
   * cannot keep up, the backlog would otherwise stretch the run far past its length (a 2-minute
   * T2a took 8 minutes); what is left then is abandoned and counted in `unsent`. Default: the
   * larger of 10 s and a quarter of durationS.
   */
  overrunS?: number
}

export interface OpenLoopResult {
  sent: number
  /**
   * Requests still waiting for a connection at the deadline (durationS + overrunS): the offered load was not sustained. Their wait
   * so far is in the latencies, as a lower bound.
   */
  unsent: number
  completed: number
  errors: number
  statuses: Record<string, number>
  /** Latency from the intended send time, in ms. */
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
  /** How late requests left the generator, p99 in ms: waiting for a free connection (the server is behind) or the generator's own lag. */
  sendLagP99: number
  /**
   * The generator's own lateness (its timer firing late: this machine was busy), p99 in ms. If large, the figure says more about the
   * machine than about the server.
   */
  scheduleLagP99: number
  achievedRate: number
  seconds: number
  /** The generator's own CPU per request, microseconds. */
  generatorCpuUs: number
}

export interface WireRequest {
  method: string
  path: string
  body: Buffer
  headers: Record<string, string>
}

/** For the logs: says when the offered load was not sustained (empty otherwise). */
export const unsentNote = (r: OpenLoopResult) => (r.unsent ? `, ${r.unsent} never sent (not sustained)` : '')

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

const HEADER_END = Buffer.from('\r\n\r\n')

/** Length of the first complete response in `buf` and its status, or null if it is not all there yet. */
export function completeResponse(buf: Buffer): { length: number; status: number } | null {
  const end = buf.indexOf(HEADER_END)
  if (end < 0) return null
  const head = buf.toString('latin1', 0, end)
  const status = Number(head.slice(9, 12))
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  if (!m) {
    if (/\r\ntransfer-encoding:/i.test(head)) throw new Error('open loop: chunked responses are not supported')
    return { length: end + 4, status }
  }
  const length = end + 4 + Number(m[1])
  return buf.length >= length ? { length, status } : null
}

interface Conn {
  socket: Socket
  buf: Buffer
  /** The request on the wire: its index and intended time. */
  current: { index: number; intended: number } | null
}

export async function openLoop(spec: OpenLoopSpec, next: () => WireRequest): Promise<OpenLoopResult> {
  const total = Math.floor(spec.rate * spec.durationS)
  const latencies = new Float64Array(total)
  const lags = new Float64Array(total)
  const scheduleLags = new Float64Array(total)
  const statuses: Record<string, number> = {}
  const hostHeader = `${spec.host}:${spec.port}`
  let completed = 0
  let errors = 0
  let scheduled = 0
  let sent = 0
  let finished = 0
  let unsent = 0
  const queue: { index: number; intended: number }[] = []
  const idle: Conn[] = []
  const interval = 1000 / spec.rate
  const cpuBefore = process.cpuUsage()
  let t0 = 0
  let resolveDone!: () => void
  const done = new Promise<void>((r) => (resolveDone = r))

  const wire = (r: WireRequest) => {
    const headers = Object.entries(r.headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')
    const head = `${r.method} ${r.path} HTTP/1.1\r\nHost: ${hostHeader}\r\n${headers}Content-Length: ${r.body.length}\r\n\r\n`
    return Buffer.concat([Buffer.from(head, 'latin1'), r.body])
  }
  const settle = (index: number, intended: number, status: number | null) => {
    latencies[index] = performance.now() - intended
    if (status === null) errors++
    else {
      statuses[status] = (statuses[status] ?? 0) + 1
      completed++
    }
    if (++finished === total) resolveDone()
  }
  const dispatch = (c: Conn) => {
    const job = queue.shift()
    if (!job) {
      idle.push(c)
      return
    }
    c.current = job
    lags[sent++] = performance.now() - job.intended
    c.socket.write(wire(next()))
  }
  const all = new Set<Conn>()
  const open = (): Conn => {
    const c: Conn = { socket: connect({ host: spec.host, port: spec.port, noDelay: true }), buf: Buffer.alloc(0), current: null }
    all.add(c)
    c.socket.on('data', (chunk: Buffer) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : chunk
      for (;;) {
        const res = c.current ? completeResponse(c.buf) : null
        if (!res) break
        c.buf = c.buf.subarray(res.length)
        const { index, intended } = c.current!
        c.current = null
        settle(index, intended, res.status)
        dispatch(c)
      }
    })
    const lost = () => {
      all.delete(c)
      const i = idle.indexOf(c)
      if (i >= 0) idle.splice(i, 1)
      if (c.current) settle(c.current.index, c.current.intended, null)
      c.current = null
      // Replace the connection while there is work left (the server closed it, or it failed).
      if (finished < total) dispatch(open())
    }
    c.socket.once('error', () => c.socket.destroy())
    c.socket.once('close', lost)
    return c
  }

  const conns = Array.from({ length: spec.connections }, open)
  await Promise.all(
    conns.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          c.socket.once('connect', () => resolve())
          c.socket.once('error', reject)
        }),
    ),
  )
  idle.push(...conns)
  t0 = performance.now() + 5
  const tick = () => {
    const now = performance.now()
    while (scheduled < total && t0 + scheduled * interval <= now) {
      scheduleLags[scheduled] = now - (t0 + scheduled * interval)
      queue.push({ index: scheduled, intended: t0 + scheduled * interval })
      scheduled++
      const c = idle.pop()
      if (c) dispatch(c)
    }
    if (scheduled < total) setTimeout(tick, Math.max(0, Math.min(1, t0 + scheduled * interval - performance.now())))
  }
  if (total === 0) resolveDone()
  else setTimeout(tick, 5)
  const overrunMs = (spec.overrunS ?? Math.max(10, spec.durationS / 4)) * 1000
  const deadline = setTimeout(
    () => {
      const now = performance.now()
      // Due but never scheduled (only if this process itself stalled) count like queued ones.
      for (; scheduled < total; scheduled++) queue.push({ index: scheduled, intended: t0 + scheduled * interval })
      for (const job of queue.splice(0)) {
        latencies[job.index] = now - job.intended
        unsent++
        if (++finished === total) resolveDone()
      }
    },
    5 + spec.durationS * 1000 + overrunMs,
  )
  await done
  clearTimeout(deadline)
  const seconds = (performance.now() - t0) / 1000
  for (const c of [...all]) c.socket.destroy()
  const cpu = process.cpuUsage(cpuBefore)
  latencies.sort()
  const sentLags = lags.subarray(0, sent).sort()
  scheduleLags.sort()
  return {
    sent,
    unsent,
    completed,
    errors,
    statuses,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    max: latencies[latencies.length - 1] ?? NaN,
    sendLagP99: percentile(sentLags, 99),
    scheduleLagP99: percentile(scheduleLags, 99),
    achievedRate: completed / seconds,
    seconds,
    generatorCpuUs: (cpu.user + cpu.system) / Math.max(1, total),
  }
}
