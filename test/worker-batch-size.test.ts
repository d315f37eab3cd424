// WORKER_BATCH_MAX_DOCUMENTS reaches the batch writers: a real worker, given a cap of 3 and a long
// linger (so that, uncapped, its 10 concurrent jobs would share one or two insertMany calls),
// stores every session in batches of at most 3, as its batch-size histogram shows.
import t from 'tap'
import { createWorkerMetrics } from '../worker/metrics.ts'
import { collections } from '../shared/mongo.ts'
import { parseMetrics, sumOf } from '../testing/prometheus.ts'
import { FIXTURES, jobIdFor, randomId, sessionJob, startTestWorker } from './helpers/worker-harness.ts'

const metrics = createWorkerMetrics()
const stack = await startTestWorker(t, { WORKER_BATCH_MAX_DOCUMENTS: '3', WORKER_BATCH_WAIT_MS: '200' }, { metrics })

t.test('10 concurrent session jobs go to MongoDB in batches of at most 3', async (t) => {
  const ws = randomId('w')
  const jobs = Array.from({ length: 10 }, (_, i) => sessionJob(ws, `b-${i}`, FIXTURES.sessionRdtoolkit))
  await Promise.all(jobs.map((j) => stack.add('sessions', j)))
  for (const j of jobs) t.equal((await stack.settled('sessions', jobIdFor(j))).state, 'completed')
  t.equal(await collections(stack.db).sessions.countDocuments({ workspace_id: ws }), 10, 'every session stored')

  const samples = parseMetrics(await metrics.registry.metrics())
  const of = (name: string, labels: Record<string, string> = {}) => sumOf(samples, name, { collection: 'test_sessions', ...labels })
  t.equal(of('rdt_worker_batch_documents_sum'), 10)
  t.ok(of('rdt_worker_batch_documents_count') >= 4, `at least 4 batches (${of('rdt_worker_batch_documents_count')})`)
  // Buckets are cumulative: every batch is in le=5 (uncapped, the first would hold up to 10).
  t.equal(of('rdt_worker_batch_documents_bucket', { le: '5' }), of('rdt_worker_batch_documents_count'))
})
