// Bulk hostile input: one logs request whose entries array is huge becomes one document per
// entry, through a real gateway and worker. hostile-cases.test.ts covers 100,000-element arrays
// inside one document; here the array is 20,000 entries by default, because 100,000 documents take
// 40 s alone on FerretDB and over 100 s next to other tests, which would slow the whole suite.
// HOSTILE_BULK_ENTRIES=100000 runs the full size (the elapsed time is printed either way).
import t from 'tap'
import { drain, knownGoodRoundTrip, paths, randomId, seedVictim, send, snapshotWorkspace, startHostileStack, waitFor } from './helpers/hostile.ts'

const ENTRIES = Number(process.env.HOSTILE_BULK_ENTRIES ?? 20_000)
// Many inserts on a machine shared with the rest of the suite: a deadline, not a target.
t.setTimeout(300_000)
const stack = await startHostileStack(t)
await seedVictim(stack)
const victimBefore = await snapshotWorkspace(stack, stack.victim.workspaceId)
const ws = stack.attacker.workspaceId
const MAX_JSON = stack.config.maxJsonBytes
const p = (session: string) => paths(stack.attacker.token, session)
const col = (name: string) => stack.db.collection(name)
const storedBatch = (session: string) => waitFor(() => col('test_session_log_batches').findOne({ workspace_id: ws, session_id: session }), { timeoutMs: 60_000, what: `logs of ${session} to be stored` })

t.test(`a ${ENTRIES}-element entries array: ${ENTRIES} log documents`, async (t) => {
  const id = randomId('bulk-')
  const entries = '{"entries":[' + Array.from({ length: ENTRIES }, (_, i) => `{"message":"${i}"}`).join(',') + ']}'
  t.ok(entries.length < MAX_JSON, `${entries.length} bytes`)
  const started = Date.now()
  t.equal((await send(stack.port, { path: p(id).logs, body: entries })).status, 201)
  const batch = await storedBatch(id)
  t.equal(batch.entry_count, ENTRIES)
  await waitFor(async () => (await col('test_session_logs').countDocuments({ workspace_id: ws, session_id: id })) === ENTRIES, {
    timeoutMs: 240_000,
    intervalMs: 1000,
    what: `${ENTRIES} log entries`,
  })
  t.comment(`${ENTRIES} log entries stored in ${Date.now() - started} ms`)
  t.pass('every entry is its own document')
})

t.test('afterwards: the worker still works, nothing is stuck, the other workspace is untouched', async (t) => {
  const probe = await knownGoodRoundTrip(stack)
  t.same(probe.statuses, [201, 201, 201])
  t.ok(probe.stored)
  const report = await drain(stack)
  t.same(report.pending, { sessions: 0, logs: 0, media: 0 })
  t.same(report.failed, [])
  t.same(await snapshotWorkspace(stack, stack.victim.workspaceId), victimBefore)
})
