// Photo jobs of a deleted session (README "Deletion", worker/deleted-sessions.ts), on both
// layouts: an upload the gateway wrote once under media/ (with its pending/ marker), and a photo
// staged by the earlier layout under staging/. A job of a session deleted before it ran stores
// nothing and removes its upload; a session deleted while its job recorded the photo is erased
// again, so nothing of it stays. Against the real stack (Redis, FerretDB, S3 server).
import { randomBytes } from 'node:crypto'
import { Collection, type Document } from 'mongodb'
import t, { type Test } from 'tap'
import { writeSessionTombstone } from '../deletion/tombstones.ts'
import { keys } from '../shared/keys.ts'
import { defineStagingCommands } from '../shared/staged-media.ts'
import type { MediaJob } from '../shared/queues.ts'
import { jobIdFor, randomId, stageMedia, startTestWorker, uploadMedia } from './helpers/worker-harness.ts'

const stack = await startTestWorker(t)
const bucket = stack.config.s3.bucket
const k = keys(stack.config.redisPrefix)
const media = stack.db.collection('test_session_media')
const conflicts = stack.db.collection('test_session_conflicts')

const jpeg = (n = 50_000) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0'), randomBytes(n)])

async function keysOf(ws: string): Promise<string[]> {
  const out: string[] = []
  for await (const o of stack.s3.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>)
    if (o.name?.includes(`${ws}/`)) out.push(o.name)
  return out
}

/** Queues the job as the gateway does, its bytes counted as unsettled (gateway backpressure). */
async function run(data: MediaJob) {
  await defineStagingCommands(stack.redis).rdtStageMedia(k.stagedMedia, k.stagedMediaBytes, data.staging_key, data.size)
  await stack.add('media', data)
  return stack.settled('media', jobIdFor(data))
}

async function unsettled(key: string): Promise<boolean> {
  return (await stack.redis.hexists(k.stagedMedia, key)) === 1
}

/**
 * The one fake here, and why: a deletion landing exactly between a job's two tombstone checks is
 * a race a real deletion hits only by chance (test/deletion-inflight.test.ts runs it under load).
 * Right after the worker's insert into `collection` for this workspace really happened, the
 * session's tombstone is written for real, as `session delete` writes it before it erases (its
 * erase having missed the record). Only the timing is forced; the worker's checks, its erase and
 * the documents are real.
 */
function deleteRightAfterInsert(t: Test, collection: string, ws: string, session: string): void {
  const real = Collection.prototype.insertMany
  let done = false
  Collection.prototype.insertMany = async function (this: Collection<Document>, docs: Document[], ...rest: unknown[]) {
    const result = await (real as (...a: unknown[]) => Promise<unknown>).call(this, docs, ...rest)
    if (!done && this.collectionName === collection && docs.some((d) => d.workspace_id === ws)) {
      done = true
      await writeSessionTombstone(stack.db, ws, session, new Date())
    }
    return result
  } as typeof real
  t.teardown(() => {
    Collection.prototype.insertMany = real
  })
}

t.test('an upload of a session deleted before its job ran: nothing stored, the upload and its marker removed', async (t) => {
  const ws = randomId('w')
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg() })
  await writeSessionTombstone(stack.db, ws, 's1', new Date())
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.same(job.returnvalue, { outcome: 'deleted' })
  t.same(await keysOf(ws), [], 'neither the upload nor its marker is left')
  t.equal(await media.countDocuments({ workspace_id: ws }), 0, 'nothing recorded')
  t.notOk(await unsettled(data.staging_key), 'its unsettled bytes are released')
  t.not(await stack.redis.get(stack.idemKey('m', ws, 's1', 'raw')), `${data.sha256}|a`, 'the idempotency key is not marked accepted')
})

t.test('a session deleted while its upload was recorded: erased again, nothing stays', async (t) => {
  const ws = randomId('w')
  const data = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg() })
  deleteRightAfterInsert(t, 'test_session_media', ws, 's1')
  const { state, job } = await run(data)
  t.equal(state, 'completed')
  t.same(job.returnvalue, { outcome: 'deleted' })
  t.equal(await media.countDocuments({ workspace_id: ws }), 0, 'the document it inserted is erased')
  t.same(await keysOf(ws), [], 'neither the upload nor its marker is left')
  t.notOk(await unsettled(data.staging_key), 'its unsettled bytes are released')
})

t.test('a session deleted while a conflicting upload was recorded: erased again, nothing stays', async (t) => {
  const ws = randomId('w')
  const first = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg() })
  t.equal((await run(first)).job.returnvalue.outcome, 'stored')
  await (await stack.queues.media.getJob(jobIdFor(first)))?.remove()
  const other = await uploadMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg() })
  deleteRightAfterInsert(t, 'test_session_conflicts', ws, 's1')
  const { job } = await run(other)
  t.same(job.returnvalue, { outcome: 'deleted' })
  t.equal(await media.countDocuments({ workspace_id: ws }), 0, 'the photo is erased')
  t.equal(await conflicts.countDocuments({ workspace_id: ws }), 0, 'and the conflict')
  t.same(await keysOf(ws), [], 'no upload or marker is left')
  t.notOk(await unsettled(other.staging_key), 'its unsettled bytes are released')
})

t.test('earlier layout: a staged photo of a session deleted before its job ran is removed, not stored', async (t) => {
  const ws = randomId('w')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg() })
  await writeSessionTombstone(stack.db, ws, 's1', new Date())
  const { job } = await run(data)
  t.same(job.returnvalue, { outcome: 'deleted' })
  t.same(await keysOf(ws), [], 'the staged object is removed, nothing was copied')
  t.equal(await media.countDocuments({ workspace_id: ws }), 0)
  t.notOk(await unsettled(data.staging_key), 'its staged bytes are released')
})

t.test('earlier layout: a session deleted while its staged photo was stored is erased again', async (t) => {
  const ws = randomId('w')
  const data = await stageMedia(stack, { ws, session: 's1', media: 'raw', bytes: jpeg() })
  deleteRightAfterInsert(t, 'test_session_media', ws, 's1')
  const { job } = await run(data)
  t.same(job.returnvalue, { outcome: 'deleted' })
  t.equal(await media.countDocuments({ workspace_id: ws }), 0, 'the document it inserted is erased')
  t.same(await keysOf(ws), [], 'neither the final copy nor the staged object is left')
  t.notOk(await unsettled(data.staging_key), 'its staged bytes are released')
})
