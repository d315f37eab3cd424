// T6: CPU microseconds per accepted session over the whole path: a gateway and a worker process
// running together (as deployed), an open-loop load at a rate the worker sustains, and the time
// until the backlog is empty; CPU (utime + stime from /proc/<pid>/stat) of the gateway, Redis and
// the worker read before and after, divided by the sessions accepted. The database (FerretDB, with
// its SQLite inside the same process) is reported separately: a production MongoDB costs
// differently. The load generator is not counted. Idle costs that run anyway (BullMQ's blocking
// waits, metrics, the backlog poller) are included, as they are on a real node.
import { Queue } from 'bullmq'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Bench } from './context.ts'
import { PREFIX } from './context.ts'
import { runLoad } from './load.ts'
import type { OpenLoopResult } from './open-loop.ts'
import { cpuOf, startGateway, startWorker } from './procs.ts'
import { median } from './stats.ts'

export interface CpuPerSession {
  gateway: number
  redis: number
  worker: number
  /** gateway + redis + worker: the figure the capacity model uses. */
  total: number
  /** FerretDB, reported apart. */
  database: number
}

export interface CpuRound {
  rate: number
  accepted: number
  seconds: number
  cpu_us_per_session: CpuPerSession
  /**
   * What each process spends with no load (CPU ms per second, over IDLE_S before the load): BullMQ's
   * blocking waits and timers, metrics, the backlog poller. It is in the figure above, spread over
   * the sessions, so the figure falls as the rate grows; `marginal` takes it out.
   */
  idle_cpu_ms_per_s: Omit<CpuPerSession, 'total'>
  marginal_cpu_us_per_session: CpuPerSession
  statuses: Record<string, number>
}

export interface CpuFigures {
  cpu_us_per_session: CpuPerSession
  marginal_cpu_us_per_session: CpuPerSession
  rounds: CpuRound[]
}

const WAITING = ['waiting', 'active', 'delayed', 'prioritized'] as const
const IDLE_S = 5

export async function measureCpu(b: Bench, rate: number): Promise<CpuFigures> {
  const { opts } = b
  b.log(`T6: gateway + 1 worker at ${rate} req/s for ${opts.cpuSeconds} s, until drained; CPU per accepted session`)
  const rounds: CpuRound[] = []
  for (let r = 0; r < opts.rounds; r++) {
    await b.resetRedis()
    await b.resetIngestCollections()
    const g = await startGateway(`gateway-cpu-${r}`, b.appEnv, b.dir)
    const w = await startWorker(`worker-cpu-${r}`, b.appEnv, b.dir)
    const queue = new Queue('sessions', { connection: b.redis, prefix: PREFIX })
    try {
      const redisPid = b.stack.redis.pid!
      const dbPid = b.stack.mongo.pid!
      const read = () => ({ gateway: g.cpu(), redis: cpuOf(redisPid), worker: w.cpu(), database: cpuOf(dbPid) })
      await sleep(2000) // past the start-up work
      const idleFrom = read()
      await sleep(IDLE_S * 1000)
      const before = read()
      const idle = {
        gateway: ((before.gateway - idleFrom.gateway) / IDLE_S) * 1000,
        redis: ((before.redis - idleFrom.redis) / IDLE_S) * 1000,
        worker: ((before.worker - idleFrom.worker) / IDLE_S) * 1000,
        database: ((before.database - idleFrom.database) / IDLE_S) * 1000,
      }
      const started = performance.now()
      const load = await runLoad<OpenLoopResult>(b.dir, {
        mode: 'open',
        target: { host: '127.0.0.1', port: g.port },
        rate,
        durationS: opts.cpuSeconds,
        connections: opts.connections,
        tokensFile: b.tokensFile,
      })
      const deadline = Date.now() + 300_000
      for (;;) {
        const c = await queue.getJobCounts(...WAITING)
        if (WAITING.every((s) => !c[s])) break
        if (Date.now() > deadline) throw new Error('T6: backlog not drained after 5 min')
        await sleep(100)
      }
      const after = read()
      const accepted = load.statuses['201'] ?? 0
      const us = (k: keyof typeof before) => ((after[k] - before[k]) / Math.max(1, accepted)) * 1e6
      const cpu = { gateway: us('gateway'), redis: us('redis'), worker: us('worker'), database: us('database'), total: 0 }
      cpu.total = cpu.gateway + cpu.redis + cpu.worker
      const seconds = (performance.now() - started) / 1000
      // idle ms/s x seconds = the idle share in ms; per session in us: x 1000 / accepted.
      const less = (k: keyof typeof idle) => cpu[k] - (idle[k] * seconds * 1000) / Math.max(1, accepted)
      const marginal = { gateway: less('gateway'), redis: less('redis'), worker: less('worker'), database: less('database'), total: 0 }
      marginal.total = marginal.gateway + marginal.redis + marginal.worker
      rounds.push({
        rate,
        accepted,
        seconds,
        cpu_us_per_session: cpu,
        idle_cpu_ms_per_s: idle,
        marginal_cpu_us_per_session: marginal,
        statuses: load.statuses,
      })
      b.log(
        `  T6 round ${r + 1}: ${accepted} accepted in ${rounds.at(-1)!.seconds.toFixed(1)} s (statuses ${JSON.stringify(load.statuses)}); CPU us/session: ` +
          `gateway ${cpu.gateway.toFixed(0)} + redis ${cpu.redis.toFixed(0)} + worker ${cpu.worker.toFixed(0)} = ${cpu.total.toFixed(0)}; database ${cpu.database.toFixed(0)}; ` +
          `idle CPU ms/s: gateway ${idle.gateway.toFixed(1)}, redis ${idle.redis.toFixed(1)}, worker ${idle.worker.toFixed(1)}, database ${idle.database.toFixed(1)}; ` +
          `less idle: ${marginal.gateway.toFixed(0)} + ${marginal.redis.toFixed(0)} + ${marginal.worker.toFixed(0)} = ${marginal.total.toFixed(0)}, database ${marginal.database.toFixed(0)}`,
      )
    } finally {
      await queue.close()
      await Promise.all([g.stop(), w.stop()])
    }
  }
  const m = (f: (r: CpuRound) => CpuPerSession) => {
    const of = (k: keyof CpuPerSession) => median(rounds.map((x) => f(x)[k]))
    return { gateway: of('gateway'), redis: of('redis'), worker: of('worker'), total: of('total'), database: of('database') }
  }
  return {
    cpu_us_per_session: m((r) => r.cpu_us_per_session),
    marginal_cpu_us_per_session: m((r) => r.marginal_cpu_us_per_session),
    rounds,
  }
}
