// Bulk hostile input: one logs request whose entries array is huge, through a real gateway and
// worker, with the default LOGS_MAX_ENTRIES (10,000). hostile-bodies.test.ts covers 100,000-element
// arrays inside one document; here the entries array is 20,000 by default (HOSTILE_BULK_ENTRIES
// sets another size; the elapsed time is printed either way). Only the first LOGS_MAX_ENTRIES
// become documents (amplification), and the batch keeps the whole body.
import t from 'tap'
import { jobIds } from '../shared/keys.ts'
import {
  drain,
  knownGoodRoundTrip,
  paths,
  randomId,
  seedVictim,
  send,
  sha256,
  snapshotWorkspace,
  startHostileStack,
} from './helpers/hostile.ts'

const ENTRIES = Number(process.env.HOSTILE_BULK_ENTRIES ?? 20_000)
// Many inserts on a machine shared with the rest of the suite: a deadline, not a target.
t.setTimeout(300_000)
const stack = await startHostileStack(t)
await seedVictim(stack)
const victimBefore = await snapshotWorkspace(stack, stack.victim.workspaceId)
const ws = stack.attacker.workspaceId
const MAX_JSON = stack.config.maxJsonBytes
const CAP = stack.config.logsMaxEntries
const STORED = Math.min(ENTRIES, CAP)
const p = (session: string) => paths(stack.attacker.token, session)
const col = (name: string) => stack.db.collection(name)

t.test(`a ${ENTRIES}-element entries array: the first ${STORED} become log documents, the batch keeps all ${ENTRIES}`, async (t) => {
  t.equal(CAP, 10_000, 'the default LOGS_MAX_ENTRIES')
  const id = randomId('bulk-')
  const entries = '{"entries":[' + Array.from({ length: ENTRIES }, (_, i) => `{"message":"${i}"}`).join(',') + ']}'
  t.ok(entries.length < MAX_JSON, `${entries.length} bytes`)
  const started = Date.now()
  t.equal((await send(stack.port, { path: p(id).logs, body: entries })).status, 201)
  // The job completes once the batch and every stored entry are written.
  const { state } = await stack.settled('logs', jobIds.logs(ws, id, sha256(entries)), { timeoutMs: 240_000 })
  t.equal(state, 'completed')
  const batch = (await col('test_session_log_batches').findOne({ workspace_id: ws, session_id: id }))!
  t.equal(batch.entry_count, ENTRIES)
  t.equal(batch.stored_entry_count, STORED)
  t.equal(batch.truncated, ENTRIES > CAP)
  t.equal(batch.raw_body, entries, 'the whole body is kept')
  t.equal(await col('test_session_logs').countDocuments({ workspace_id: ws, session_id: id }), STORED, `${STORED} log entries`)
  t.comment(`${STORED} log entries stored in ${Date.now() - started} ms`)
  t.equal(
    await col('test_session_logs').countDocuments({ workspace_id: ws, session_id: id, batch_index: { $gte: CAP } }),
    0,
    'none past the cap',
  )
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
