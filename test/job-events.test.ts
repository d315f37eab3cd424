// The event waits in testing/job-events.ts: other tests trust them to return only once a job is
// done, so they are checked here against a real BullMQ worker, including their deadlines.
import t from 'tap'
import { Queue, UnrecoverableError, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { watchJobs } from '../testing/job-events.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const prefix = config.redisPrefix
const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null })
const queue = new Queue('jobs', { connection, prefix })
const workerConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null })
// Jobs named 'hold' wait for the test to let them go; 'fail' fails for good; others complete.
const held = new Map<string, () => void>()
const worker = new Worker(
  'jobs',
  async (job) => {
    if (job.name === 'fail') throw new UnrecoverableError('fails on purpose')
    if (job.name === 'hold') await new Promise<void>((resolve) => held.set(job.id!, resolve))
    return { ran: job.id }
  },
  { connection: workerConnection, prefix },
)
t.teardown(async () => {
  for (const release of held.values()) release()
  await worker.close()
  await queue.obliterate({ force: true })
  await queue.close()
  connection.disconnect()
  workerConnection.disconnect()
})
const watch = await watchJobs(t, { redisUrl: config.redisUrl, prefix, queue: 'jobs' })

t.test('settled: a job finished before the wait, one finished during it, and a failed one', async (t) => {
  await queue.add('ok', {}, { jobId: 'early' })
  t.same(await watch.settled(['early']), [{ id: 'early', state: 'completed' }], 'finished before: seen from its state')
  const outcomes = watch.settled(['later', 'bad'])
  await queue.add('ok', {}, { jobId: 'later' })
  await queue.add('fail', {}, { jobId: 'bad' })
  t.same(await outcomes, [
    { id: 'later', state: 'completed' },
    { id: 'bad', state: 'failed' },
  ])
})

t.test('a job that does not finish: the wait fails at its deadline, naming the job and its state', async (t) => {
  await queue.add('hold', {}, { jobId: 'held' })
  await watch.started('held')
  t.equal(await queue.getJobState('held'), 'active', 'started() returned once a worker took it')
  await t.rejects(watch.settled(['held', 'never-added'], { timeoutMs: 300, what: 'the held job' }), {
    message: /timed out after 300 ms waiting for the held job: held \(active\), never-added \(unknown\)/,
  })
  const done = watch.settled(['held'])
  held.get('held')!()
  t.same(await done, [{ id: 'held', state: 'completed' }], 'heard once let go')
})

t.test('next: ignores the state the job is in now, and waits for its next event', async (t) => {
  await queue.add('fail', {}, { jobId: 'again' })
  await watch.settled(['again'])
  await t.rejects(watch.next('again', 'failed', { timeoutMs: 300 }), /timed out after 300 ms/, 'its earlier failure does not count')
  const failedAgain = watch.next('again', 'failed')
  const job = await queue.getJob('again')
  await job!.retry('failed')
  await failedAgain
  t.pass('heard the failure of the retried run')
})
