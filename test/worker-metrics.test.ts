// Worker metrics: a real worker processes real jobs; its /metrics (on the separate listener)
// then shows job durations by outcome, failures by kind, batch sizes and queue depth.
import t from 'tap'
import { Worker } from 'bullmq'
import { startMetricsServer } from '../shared/metrics-server.ts'
import { freePort } from '../stack/ports.ts'
import { createWorkerMetrics } from '../worker/metrics.ts'
import { scrape, sumOf } from '../testing/prometheus.ts'
import { FIXTURES, jobIdFor, randomId, sessionJob, sha256, startTestWorker } from './helpers/worker-harness.ts'
import { waitFor } from '../testing/wait.ts'

const metrics = createWorkerMetrics()
const stack = await startTestWorker(t, {}, { metrics })
const depth = metrics.watchQueues(stack.redis, [stack.config.redisPrefix], ['sessions', 'logs', 'media'])
const port = await freePort()
const workers = [...stack.app.workers.values()].flat()
const server = await startMetricsServer({
  port,
  host: '127.0.0.1',
  registry: metrics.registry,
  healthy: () => workers.every((w: Worker) => w.isRunning()),
})
if (!server) throw new Error('metrics listener did not start')
t.teardown(async () => {
  await server.close()
  await depth.close()
})

t.test('job durations by outcome, batch sizes, failures by kind', async (t) => {
  const ws = randomId('w')
  const jobs = Array.from({ length: 5 }, (_, i) => sessionJob(ws, `m-${i}`, FIXTURES.sessionRdtoolkit))
  await Promise.all(jobs.map((j) => stack.add('sessions', j)))
  for (const j of jobs) t.equal((await stack.settled('sessions', jobIdFor(j))).state, 'completed')

  // A payload that can never be valid fails permanently at once.
  const bad = { kind: 'session', workspace_id: ws, session_id: 'm-bad' }
  await stack.queues.sessions.add('session', bad as never, { jobId: 'bad-1', attempts: 5 })
  t.equal((await stack.settled('sessions', 'bad-1')).state, 'failed')

  // A media job whose staged object does not exist fails transiently, then (last attempt) for good.
  const media = {
    kind: 'media' as const,
    workspace_id: ws,
    session_id: 'm-0',
    token_id: 'tok1',
    received_at: new Date().toISOString(),
    media_id: 'cropped',
    bucket: stack.config.s3.bucket,
    staging_key: `staging/${ws}/m-0/cropped/missing`,
    size: 10,
    sha256: sha256('0123456789'),
    filename: null,
    content_type: null,
  }
  await stack.add('media', media, { attempts: 2, backoff: { type: 'fixed', delay: 10 } })
  t.equal((await stack.settled('media', jobIdFor(media))).state, 'failed')

  const { text, samples } = await waitFor(
    async () => {
      const s = await scrape(server.port)
      // A poll: no event says the counter moved. The worker's own 'failed' listener counts the last
      // failure, and it runs after BullMQ has published the 'failed' event settled() heard.
      return sumOf(s.samples, 'rdt_worker_job_failures_total') >= 3 ? s : null
    },
    { what: 'failure counters' },
  )
  t.equal(sumOf(samples, 'rdt_worker_job_duration_seconds_count', { queue: 'sessions', outcome: 'stored' }), 5)
  t.equal(sumOf(samples, 'rdt_worker_job_duration_seconds_count', { queue: 'sessions', outcome: 'failed' }), 1)
  t.equal(sumOf(samples, 'rdt_worker_job_duration_seconds_count', { queue: 'media', outcome: 'failed' }), 2)
  t.equal(sumOf(samples, 'rdt_worker_job_failures_total', { queue: 'sessions', kind: 'permanent' }), 1)
  t.equal(sumOf(samples, 'rdt_worker_job_failures_total', { queue: 'media', kind: 'transient' }), 1)
  t.equal(sumOf(samples, 'rdt_worker_job_failures_total', { queue: 'media', kind: 'permanent' }), 1)
  // Five concurrent jobs' documents went in through insertMany, however they were batched.
  t.equal(sumOf(samples, 'rdt_worker_batch_documents_sum', { collection: 'test_sessions' }), 5)
  t.ok(sumOf(samples, 'rdt_worker_batch_documents_count', { collection: 'test_sessions' }) >= 1)
  t.ok(sumOf(samples, 'rdt_worker_batch_write_duration_seconds_count', { collection: 'test_sessions' }) >= 1)
  t.equal(sumOf(samples, 'rdt_queue_jobs', { queue: 'sessions', state: 'failed' }), 1)
  t.equal(sumOf(samples, 'rdt_queue_jobs', { queue: 'media', state: 'failed' }), 1)
  t.equal(sumOf(samples, 'rdt_queue_jobs', { queue: 'sessions', state: 'waiting' }), 0)
  t.notOk(/m-bad|m-0/.test(text), 'no job or session id leaks into labels')
})

t.test('queue depth counts waiting jobs while the worker is paused', async (t) => {
  const w = stack.app.workers.get('sessions')![0]!
  await w.pause()
  t.teardown(() => w.resume())
  const ws = randomId('w')
  for (let i = 0; i < 3; i++) await stack.add('sessions', sessionJob(ws, `p-${i}`, FIXTURES.sessionRdtoolkit))
  const { samples } = await scrape(server.port)
  t.equal(sumOf(samples, 'rdt_queue_jobs', { queue: 'sessions', state: 'waiting' }), 3)
})

t.test('/healthz is 200 while the queue loops run', async (t) => {
  t.equal((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status, 200)
})
