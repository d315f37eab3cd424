// Worker faults: a worker killed with SIGKILL in the middle of jobs, a worker sent SIGTERM with
// jobs in flight, and a job that runs twice because its lock stalled.
import t from 'tap'
import { startCluster } from './lib/cluster.ts'
import { startLoad } from './lib/load.ts'
import { report, rowOf } from './lib/report.ts'
import { assertIntact } from './lib/scenario.ts'
import { drain } from './lib/verify.ts'
import { waitFor } from '../testing/wait.ts'

t.test('a worker killed with SIGKILL in the middle of jobs', async (t) => {
  const c = await startCluster(t, 'worker-sigkill')
  await c.gateway()
  const w1 = await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 60, concurrency: 6, thinkMs: 50 })
  await load.reached(60)
  // Kill at a moment the worker holds jobs.
  await waitFor(async () => (await c.queueCounts()).active > 0, { intervalMs: 5, what: 'jobs in flight' })
  const t0 = Date.now()
  await w1.kill()
  const w2 = await c.worker()
  await load.done
  const f = await drain(c, load.uploads)
  const stalled = w2.count(/job stalled/)
  t.comment(`recovered after ${Date.now() - t0} ms`)
  report(t, rowOf('worker SIGKILL mid-jobs, new worker started', f, [`${stalled} stalled jobs re-run by the new worker`]))
  assertIntact(t, f)
})

t.test('a worker sent SIGTERM with jobs in flight', async (t) => {
  const c = await startCluster(t, 'worker-sigterm')
  await c.gateway()
  const w1 = await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 60, concurrency: 6, thinkMs: 50 })
  await load.reached(60)
  await waitFor(async () => (await c.queueCounts()).active > 0, { intervalMs: 5, what: 'jobs in flight' })
  // SIGTERM: stop taking jobs, finish (or hand back) the ones held, exit 0. The process's own
  // backstop exits 1 after 30 s, so exit code 0 is also the bound.
  const exit = await w1.terminate(60_000)
  t.equal(exit.code, 0, `the worker exits 0 on SIGTERM (took ${exit.ms} ms)\n${w1.output().slice(-1500)}`)
  t.equal(w1.count(/"level":50/), 0, 'no error logged while closing')
  const w2 = await c.worker()
  await load.done
  const f = await drain(c, load.uploads)
  report(
    t,
    rowOf('worker SIGTERM with jobs in flight', f, [`exit ${exit.code} after ${exit.ms} ms`, `${w2.count(/job stalled/)} jobs re-run`]),
  )
  assertIntact(t, f)
})

t.test('a job run twice: its worker stalls (SIGSTOP) past the lock, another takes it, then it resumes', async (t) => {
  // A short lock so the stall is seen within seconds; the mechanism is BullMQ's default one.
  const c = await startCluster(t, 'job-twice', { workerEnv: { WORKER_LOCK_MS: '3000', WORKER_STALLED_INTERVAL_MS: '1000' } })
  await c.gateway()
  const a = await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 50, concurrency: 6, thinkMs: 50 })
  await load.reached(40)
  // Stop it while it holds jobs: nobody else runs jobs yet, so "active" now are its own. (A job
  // can finish between the look and the signal; then let it go and try again.)
  for (let attempt = 1; ; attempt++) {
    await waitFor(async () => (await c.queueCounts()).active > 0, { intervalMs: 5, what: 'jobs in flight' })
    a.signal('SIGSTOP')
    if ((await c.queueCounts()).active > 0) break
    a.signal('SIGCONT')
    if (attempt >= 50) throw new Error('could not stop the worker while it held a job')
  }
  // The stopped worker's jobs: their locks expire, the other worker's stalled check moves them
  // back to wait and runs them.
  const b = await c.worker()
  await waitFor(() => b.count(/job stalled/) > 0, { timeoutMs: 60_000, what: 'the other worker to take over a stalled job' })
  // Let the other worker finish (some of) the taken-over jobs, then let the first one carry on
  // with the same jobs: each of them now runs twice.
  await waitFor(async () => (await c.queueCounts()).active === 0 || load.answered() > 120, { timeoutMs: 30_000, what: 'progress' })
  a.signal('SIGCONT')
  await load.done
  const f = await drain(c, load.uploads)
  const twice = b.count(/job stalled/)
  t.ok(twice > 0, 'some jobs ran on both workers')
  t.ok(a.alive() && b.alive(), 'both workers are still running')
  report(t, rowOf('job run twice (stalled lock: SIGSTOP, other worker, SIGCONT)', f, [`${twice} jobs ran on both workers`]))
  assertIntact(t, f)
})
