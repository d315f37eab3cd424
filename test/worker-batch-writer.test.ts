// The batch writer against the real MongoDB-compatible server: coalescing, per-document
// outcomes, and one bad document never failing its neighbours.
import t from 'tap'
import { MongoClient } from 'mongodb'
import { createBatchWriter } from '../worker/batch-writer.ts'
import { isPermanentDocumentError } from '../worker/mongo-errors.ts'
import { testConfig } from './helpers/worker-harness.ts'

const config = testConfig()
const client = new MongoClient(config.mongodbUrl)
const db = client.db(new URL(config.mongodbUrl).pathname.slice(1))
t.teardown(async () => {
  await db.dropDatabase().catch(() => {})
  await client.close()
})

t.test('concurrent inserts coalesce into few insertMany calls', async (t) => {
  const col = db.collection('coalesce')
  await col.createIndex({ k: 1 }, { unique: true })
  const writer = createBatchWriter(col, { maxItems: 50, maxWaitMs: 5 })
  const results = await Promise.all(Array.from({ length: 500 }, (_, i) => writer.insert({ k: i })))
  t.ok(results.every((r) => r === 'inserted'))
  t.equal(await col.countDocuments(), 500)
  t.ok(writer.stats.batches <= 12, `500 docs in ${writer.stats.batches} batches`)
})

t.test('group commit: at most maxInFlight writes, and what arrives meanwhile leaves together', async (t) => {
  const col = db.collection('group-commit')
  // A spy on the real collection (not a fake): counts concurrent insertMany calls, and during the
  // first one inserts 30 more documents, which must wait for it and then leave as one batch.
  const real = col.insertMany.bind(col)
  let inFlight = 0
  let maxSeen = 0
  const sizes: number[] = []
  const late: Promise<unknown>[] = []
  const writer = createBatchWriter(col, { maxItems: 50, maxWaitMs: 1, maxInFlight: 1 })
  col.insertMany = (async (docs: Parameters<typeof real>[0], options?: Parameters<typeof real>[1]) => {
    inFlight++
    maxSeen = Math.max(maxSeen, inFlight)
    sizes.push(docs.length)
    if (late.length === 0) for (let i = 0; i < 30; i++) late.push(writer.insert({ late: i }))
    try {
      return await real(docs, options)
    } finally {
      inFlight--
    }
  }) as typeof col.insertMany
  t.equal(await writer.insert({ first: true }), 'inserted')
  await Promise.all(late)
  t.same(sizes, [1, 30], 'the 30 documents that arrived during the first write went in one batch')
  t.equal(maxSeen, 1, 'never more than maxInFlight writes at once')

  // Under a burst, batches still respect maxItems.
  sizes.length = 0
  await Promise.all(Array.from({ length: 230 }, (_, i) => writer.insert({ burst: i })))
  t.ok(
    sizes.every((n) => n <= 50),
    `batch sizes ${sizes.join(',')} within maxItems`,
  )
  t.equal(
    sizes.reduce((a, b) => a + b, 0),
    230,
  )
  t.equal(maxSeen, 1)
  t.equal(await col.countDocuments(), 261)
})

t.test('a batch that is not full lingers until its oldest document has waited maxWaitMs', async (t) => {
  const col = db.collection('linger')
  // The same kind of spy as above, on the real collection: it records batch sizes, and during the
  // first write inserts Y, then Z 100 ms later. When the first write returns, Y is not due yet
  // (it has waited less than maxWaitMs), so it must not leave alone: it waits for its own
  // maxWaitMs and takes Z along. Timers fire in order of expiry, so Z (Y + 100 ms) is queued
  // before Y is due (Y + 300 ms) however slow the machine is.
  const real = col.insertMany.bind(col)
  const sizes: number[] = []
  const writer = createBatchWriter(col, { maxItems: 50, maxWaitMs: 300, maxInFlight: 1 })
  let y: { queued: number; done: Promise<number> } | null = null
  let z: Promise<unknown> | null = null
  col.insertMany = (async (docs: Parameters<typeof real>[0], options?: Parameters<typeof real>[1]) => {
    sizes.push(docs.length)
    if (!y) {
      const queued = performance.now()
      y = { queued, done: writer.insert({ n: 'y' }).then(() => performance.now()) }
      z = new Promise((resolve) => setTimeout(resolve, 100)).then(() => writer.insert({ n: 'z' }))
    }
    return real(docs, options)
  }) as typeof col.insertMany
  const xQueued = performance.now()
  await writer.insert({ n: 'x' })
  t.ok(performance.now() - xQueued >= 300, 'a lone document waits maxWaitMs before it is sent')
  const yDone = await y!.done
  await z
  t.same(sizes, [1, 2], 'Y waited for its own maxWaitMs and left with Z')
  t.ok(yDone - y!.queued >= 300, `Y was acknowledged ${Math.round(yDone - y!.queued)} ms after it was queued`)
  t.equal(await col.countDocuments(), 3)
})

t.test('duplicates are reported per document, inside and across batches', async (t) => {
  const col = db.collection('dups')
  await col.createIndex({ k: 1 }, { unique: true })
  const writer = createBatchWriter(col)
  t.equal(await writer.insert({ k: 'a' }), 'inserted')
  const [x, y, z] = await Promise.all([writer.insert({ k: 'a' }), writer.insert({ k: 'b' }), writer.insert({ k: 'b' })])
  t.equal(x, 'duplicate')
  t.same([y, z].sort(), ['duplicate', 'inserted'], 'two copies in one batch: one in, one duplicate')
  t.equal(await col.countDocuments(), 2)
})

t.test('a document the server refuses fails alone', async (t) => {
  const col = db.collection('refused')
  const writer = createBatchWriter(col)
  // Raw keys, not passed through toStorable: FerretDB refuses '.', leading '$' and [[...]]
  // (code 2); MongoDB refuses some of them too. Either way only that document may fail.
  const outcomes = await Promise.allSettled([
    writer.insert({ n: 1 }),
    writer.insert({ n: 2, v: { 'a.b': 1 } }),
    writer.insert({ n: 3, v: [[1, 2]] }),
    writer.insert({ n: 4 }),
  ])
  t.same(outcomes[0], { status: 'fulfilled', value: 'inserted' })
  t.same(outcomes[3], { status: 'fulfilled', value: 'inserted' })
  for (const o of [outcomes[1], outcomes[2]]) {
    if (o?.status === 'rejected')
      t.ok(isPermanentDocumentError(o.reason), `refused permanently: ${(o.reason as Error).message.slice(0, 60)}`)
    else t.pass('accepted by this server (MongoDB 5+ allows it)')
  }
  t.ok((await col.countDocuments({ n: { $in: [1, 4] } })) === 2)
})

t.test('a document the driver cannot serialise is isolated from its batch', async (t) => {
  const col = db.collection('client-side')
  const writer = createBatchWriter(col)
  const bad = JSON.parse('{"_bsontype": "Code", "code": "x"}') as Record<string, unknown>
  const outcomes = await Promise.allSettled([
    writer.insert({ n: 1 }),
    writer.insert({ n: 2, v: { ['nul\u0000key']: 1 } }),
    writer.insert({ n: 3, v: bad }),
    writer.insert({ n: 4 }),
  ])
  t.equal(outcomes[0]?.status, 'fulfilled')
  t.equal(outcomes[3]?.status, 'fulfilled')
  t.equal(outcomes[1]?.status, 'rejected')
  t.equal(outcomes[2]?.status, 'rejected')
  for (const o of outcomes.slice(1, 3)) if (o.status === 'rejected') t.ok(isPermanentDocumentError(o.reason))
  t.equal(await col.countDocuments(), 2)
})

t.test('an oversized document is refused before it can fail a batch', async (t) => {
  const col = db.collection('big')
  const writer = createBatchWriter(col, { maxDocumentBytes: 1024 * 1024 })
  const outcomes = await Promise.allSettled([writer.insert({ n: 1 }), writer.insert({ n: 2, s: 'x'.repeat(2 * 1024 * 1024) })])
  t.equal(outcomes[0]?.status, 'fulfilled')
  t.equal(outcomes[1]?.status, 'rejected')
  if (outcomes[1]?.status === 'rejected') t.ok(isPermanentDocumentError(outcomes[1].reason))
})

t.test('flush waits for everything in flight', async (t) => {
  const col = db.collection('flush')
  const writer = createBatchWriter(col, { maxWaitMs: 1000 })
  const p = writer.insert({ n: 1 })
  await writer.flush()
  t.equal(await p, 'inserted')
  t.equal(await col.countDocuments(), 1)
})
