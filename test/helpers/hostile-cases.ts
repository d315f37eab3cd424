// What the explicit hostile-input files (hostile-bodies, hostile-http) share: one real gateway and
// worker per file (test/helpers/hostile.ts), a victim workspace that must come through untouched,
// lookups that wait for what was stored, and the closing check that nothing crashed, stuck or
// touched another workspace. Two files, not one: each runs within tap's per-file budget on a
// loaded 2-core machine, and the two run side by side.
import type { Test } from 'tap'
import type { Document } from 'mongodb'
import { jobIds, keys } from '../../shared/keys.ts'
import type { QueueName } from '../../shared/queue-settings.ts'
import {
  drain,
  errorLines,
  knownGoodRoundTrip,
  leftoverSpools,
  paths,
  seedVictim,
  send,
  sha256,
  snapshotWorkspace,
  startHostileStack,
} from './hostile.ts'
import { waitFor } from '../../testing/wait.ts'

export async function startHostileCases(t: Test) {
  const stack = await startHostileStack(t)
  await seedVictim(stack)
  const victimBefore = await snapshotWorkspace(stack, stack.victim.workspaceId)
  const ws = stack.attacker.workspaceId
  const token = stack.attacker.token
  const col = (name: string) => stack.db.collection(name)
  /** Waits on the job's events, then reads what it stored: 'completed' means the write is readable. */
  async function settledThenRead(queue: QueueName, jobId: string, read: () => Promise<Document | null>, what: string): Promise<Document> {
    const { state, job } = await stack.settled(queue, jobId, { timeoutMs: 60_000 })
    if (state !== 'completed') throw new Error(`${what}: its job ${state}: ${job.failedReason}`)
    const doc = await read()
    if (!doc) throw new Error(`${what}: its job completed but nothing is stored`)
    return doc
  }
  const storedSession = (session: string) =>
    settledThenRead(
      'sessions',
      jobIds.session(ws, session),
      () => col('test_sessions').findOne({ workspace_id: ws, session_id: session }),
      `session ${session}`,
    )
  const storedMedia = (session: string, media: string) =>
    settledThenRead(
      'media',
      jobIds.media(ws, session, media),
      () => col('test_session_media').findOne({ workspace_id: ws, session_id: session, media_id: media }),
      `media ${session}/${media}`,
    )
  /** The logs job of `body` (sent as is: no gzip, no BOM), whose id holds the body's hash. */
  const storedLogs = (session: string, body: string) =>
    settledThenRead(
      'logs',
      jobIds.logs(ws, session, sha256(body)),
      () => col('test_session_log_batches').findOne({ workspace_id: ws, session_id: session, sha256: sha256(body) }),
      `logs of ${session}`,
    )
  // A poll: the logs job's id holds the hash of the body as the gateway received it (inflated,
  // invalid bytes and all), which these callers do not restate. storedLogs waits on the event.
  const storedBatch = (session: string) =>
    waitFor(() => col('test_session_log_batches').findOne({ workspace_id: ws, session_id: session }), {
      timeoutMs: 60_000,
      what: `logs of ${session} to be stored`,
    })

  /** Nothing queued for this session in any queue, and no upload (nor marker) under it. */
  async function nothingFor(session: string): Promise<string[]> {
    const found: string[] = []
    for (const q of ['sessions', 'logs', 'media'] as const) {
      for (const j of await stack.queues[q].getJobs(['waiting', 'active', 'delayed', 'completed', 'failed']))
        if (j?.data?.session_id === session) found.push(`${q} job ${j.id}`)
    }
    for (const prefix of ['media', 'pending', 'staging']) {
      for await (const o of stack.s3.listObjectsV2(stack.config.s3.bucket, `${prefix}/${ws}/${session}/`, true) as AsyncIterable<{
        name?: string
      }>)
        found.push(`uploaded ${o.name}`)
    }
    return found
  }

  /** The last test of a file: after every case, nothing crashed, stuck, failed, or touched another workspace. */
  function checkAfterEveryCase() {
    t.test('after every case: nothing crashed, stuck, failed, or touched another workspace', async (t) => {
      t.equal((await send(stack.port, { method: 'GET', path: '/healthz' })).status, 200)
      const probe = await knownGoodRoundTrip(stack)
      t.same(probe.statuses, [201, 201, 201])
      t.ok(probe.stored, 'a known-good upload is still stored')
      const report = await drain(stack, 120_000)
      t.same(report.pending, { sessions: 0, logs: 0, media: 0 }, 'queues drained')
      t.same(report.failed, [], 'no failed job')
      t.same(await snapshotWorkspace(stack, stack.victim.workspaceId), victimBefore, 'the other workspace is byte for byte the same')
      t.same(await leftoverSpools(stack), [])
      t.same(
        errorLines(stack.gatewayLines).map((l) => l.msg),
        [],
        'the gateway logged no error',
      )
      t.same(
        errorLines(stack.lines).map((l) => `${l.msg} ${String(l.reason ?? '')}`),
        [],
        'the worker logged no error',
      )
    })
  }

  return {
    stack,
    ws,
    token,
    maxJson: stack.config.maxJsonBytes,
    maxMedia: stack.config.maxMediaBytes,
    k: keys(stack.config.redisPrefix),
    p: (session: string) => paths(token, session),
    col,
    storedSession,
    storedBatch,
    storedLogs,
    storedMedia,
    nothingFor,
    checkAfterEveryCase,
  }
}
