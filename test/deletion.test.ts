// `session delete` and `workspace purge` (deletion/) through the real CLI process, with a real
// gateway and worker: everything of the session goes (documents, uploads recorded or not and
// their pending/ markers, the earlier layout's final, conflict and staged objects), a tombstone
// is left, the phone's retries are answered 409, and a purge also revokes the workspace's tokens.
// README "Deletion".
import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { buildGateway } from '../gateway/app.ts'
import { keys, objectKeys } from '../shared/keys.ts'
import { collections } from '../shared/mongo.ts'
import { fakeJpeg } from '../testing/media.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { runCliProcess } from './helpers/cli-process.ts'
import { asRole, roleProcessEnv } from './helpers/env.ts'
import { FIXTURES, startTestWorker } from './helpers/worker-harness.ts'

const stack = await startTestWorker(t)
const { config, db, s3 } = stack
const c = collections(db)
const bucket = config.s3.bucket
const gateway = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
await gateway.listen({ port: 0, host: '127.0.0.1' })
const port = (gateway.server.address() as AddressInfo).port
t.teardown(() => gateway.close())

const cliEnv = roleProcessEnv('cli', {
  REDIS_PREFIX: config.redisPrefix,
  MONGODB_URL: config.mongodbUrl,
  S3_BUCKET: bucket,
  PUBLIC_URL: 'https://x.test',
})
const cli = (args: string[]) => runCliProcess(args, cliEnv)

function put(path: string, body: Buffer | string, type = 'application/json'): Promise<{ status: number; body: string }> {
  const bytes = Buffer.from(body)
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'PUT', path, headers: { 'content-type': type, 'content-length': bytes.length } },
      (res) => {
        let text = ''
        res.on('data', (d) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      },
    )
    req.on('error', reject)
    req.end(bytes)
  })
}

async function listKeys(prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const o of s3.listObjectsV2(bucket, prefix, true) as AsyncIterable<{ name?: string }>) if (o.name) out.push(o.name)
  return out
}

/** Every key of a session, whatever its prefix (every layout puts `<ws>/<session>/` in it). */
async function keysOf(ws: string, session: string): Promise<string[]> {
  return (await listKeys('')).filter((k) => k.includes(`${ws}/${session}/`))
}

/** Uploads a whole session as a phone does, a conflicting body and photo too, and waits until all is stored. */
async function uploadSession(t: Test, token: string, ws: string, session: string) {
  const base = `/ingest/${token}/test_session/${session}`
  t.equal((await put(`${base}/`, FIXTURES.sessionRdtoolkit)).status, 201)
  t.equal((await put(`${base}/logs/`, FIXTURES.logsRdtoolkit)).status, 201)
  const photo = fakeJpeg(40_000)
  t.equal((await put(`${base}/media/cropped/`, photo, 'image/jpeg')).status, 201)
  // Same GUID, other body; same media id, other bytes: both kept as conflicts.
  t.equal((await put(`${base}/`, FIXTURES.sessionSpecExample)).status, 409)
  const ids = { workspace_id: ws, session_id: session }
  await waitFor(async () => (await c.media.countDocuments(ids)) === 1 && (await c.logBatches.countDocuments(ids)) === 1, {
    what: 'the session, its logs and its photo stored',
    timeoutMs: 60_000,
  })
  t.equal((await put(`${base}/media/cropped/`, fakeJpeg(30_000), 'image/jpeg')).status, 409)
  // The media conflict is found by the worker only: the gateway answers 409 on the key. Stage one
  // as the worker would keep it, under conflicts/, with its record.
  const conflictKey = objectKeys.conflict(ws, session, 'cropped', 'f'.repeat(64))
  await s3.putObject(bucket, conflictKey, Buffer.from('other bytes'))
  await c.conflicts.insertOne({
    ...ids,
    media_id: 'cropped',
    sha256: 'f'.repeat(64),
    bucket,
    key: conflictKey,
    size: 11,
    received_at: new Date(),
  })
  // A staged upload of the earlier layout whose job was lost (no document names it).
  await s3.putObject(bucket, objectKeys.staging(ws, session, 'raw', 'lost-upload'), Buffer.from('staged'))
  // An upload written but not recorded (its job lost or not run yet), with its pending/ marker,
  // as the gateway leaves it: no document names it either.
  const uploadId = randomUUID()
  await s3.putObject(bucket, objectKeys.pending(ws, session, 'raw', uploadId), Buffer.alloc(0))
  await s3.putObject(bucket, objectKeys.upload(ws, session, 'raw', uploadId), Buffer.from('uploaded'))
  await waitFor(async () => (await c.conflicts.countDocuments({ ...ids, media_id: null })) === 1, { what: 'the conflicting body kept' })
  return photo.length
}

t.test('session delete: every record and object goes, a tombstone stays, retries get 409', async (t) => {
  const seeded = await seedToken(config, { slug: 'del-a' })
  const ws = seeded.workspaceId
  const photoBytes = await uploadSession(t, seeded.token, ws, 'gone-1')
  await uploadSession(t, seeded.token, ws, 'kept-1')
  const logEntries = await c.logs.countDocuments({ workspace_id: ws, session_id: 'gone-1' })
  t.ok(logEntries > 0, 'log entries stored')

  const res = await cli(['session', 'delete', '--workspace', 'del-a', 'gone-1', '--json'])
  t.equal(res.code, 0, res.stderr)
  const out = JSON.parse(res.stdout)
  t.match(out, {
    workspace: 'del-a',
    workspace_id: ws,
    session_id: 'gone-1',
    removed: {
      test_sessions: 1,
      test_session_logs: logEntries,
      test_session_log_batches: 1,
      test_session_media: 1,
      test_session_conflicts: 2,
    },
    // The photo, the conflicting photo, the lost staged upload, the unrecorded upload and its marker.
    objects: 5,
    bytes: photoBytes + 11 + 'staged'.length + 'uploaded'.length,
    tombstone_mirrored: true,
  })

  const gone = { workspace_id: ws, session_id: 'gone-1' }
  for (const coll of [c.sessions, c.logs, c.logBatches, c.media, c.conflicts])
    t.equal(await coll.countDocuments(gone), 0, `${coll.collectionName} empty`)
  // The whole bucket, not objectKeys.sessionPrefixes: an object under a prefix the deletion does not know of is found too.
  t.same(await keysOf(ws, 'gone-1'), [], 'no object of the session anywhere in the bucket')
  const kept = { workspace_id: ws, session_id: 'kept-1' }
  t.equal(await c.sessions.countDocuments(kept), 1, 'the other session is untouched')
  t.equal(await c.media.countDocuments(kept), 1)
  t.equal((await listKeys(`media/${ws}/kept-1/`)).length, 2, "the other session's photo and unrecorded upload are untouched")
  t.equal((await listKeys(`pending/${ws}/kept-1/`)).length, 1, 'and the marker of that upload')

  t.match(await c.deletedSessions.findOne({ _id: `${ws}/gone-1` }), { workspace_id: ws, session_id: 'gone-1', deleted_at: Date })
  t.match(await c.audit.findOne({ action: 'session.delete' }), {
    actor: /^cli:/,
    target: { workspace_id: ws, session_id: 'gone-1', objects: 5, removed: { test_sessions: 1 } },
  })

  // The phone retries everything: each is answered 409, and nothing comes back.
  const base = `/ingest/${seeded.token}/test_session/gone-1`
  for (const [path, body, type] of [
    [`${base}/`, FIXTURES.sessionRdtoolkit, 'application/json'],
    [`${base}/logs/`, FIXTURES.logsRdtoolkit, 'application/json'],
    [`${base}/logs/`, '{"entries":[]}', 'application/json'],
    [`${base}/media/cropped/`, fakeJpeg(1000), 'image/jpeg'],
    [`${base}/media/raw`, fakeJpeg(1000), 'image/jpeg'],
  ] as const) {
    const r = await put(path, body, type)
    t.equal(r.status, 409, `${path} is 409`)
    t.match(JSON.parse(r.body), { error: 'deleted' })
  }
  t.same(await keysOf(ws, 'gone-1'), [], 'no photo was uploaded for it')
  t.equal(await c.sessions.countDocuments(gone), 0)

  // Deleting again is harmless and says that nothing was left.
  const again = await cli(['session', 'delete', '--workspace', 'del-a', 'gone-1'])
  t.equal(again.code, 0, again.stderr)
  t.match(again.stdout, /Session gone-1 of "del-a" deleted: no documents; 0 object\(s\), 0 bytes/)
})

t.test('the tombstone survives a Redis that lost it: the worker drops the retry and re-mirrors it', async (t) => {
  const seeded = await seedToken(config, { slug: 'del-b' })
  const ws = seeded.workspaceId
  await uploadSession(t, seeded.token, ws, 'gone-2')
  t.equal((await cli(['session', 'delete', '--workspace', 'del-b', 'gone-2'])).code, 0)
  const hash = keys(config.redisPrefix).deletedSessions(ws)
  t.equal(await stack.redis.hexists(hash, 'gone-2'), 1, 'mirrored for the gateways')
  // What a flushed Redis loses: the tombstone's mirror, the idempotency key and the finished job.
  await stack.redis.del(hash, stack.idemKey('s', ws, 'gone-2'))
  await stack.queues.sessions.remove(`s.${ws}.gone-2`)

  // Redis lost it: the gateway accepts, the worker's MongoDB check drops the job.
  const r = await put(`/ingest/${seeded.token}/test_session/gone-2/`, FIXTURES.sessionRdtoolkit)
  t.equal(r.status, 201, 'accepted without the mirror')
  const { state, job } = await stack.settled('sessions', `s.${ws}.gone-2`)
  t.equal(state, 'completed')
  t.same(job.returnvalue, { outcome: 'deleted' }, 'dropped by the worker')
  t.equal(await c.sessions.countDocuments({ workspace_id: ws, session_id: 'gone-2' }), 0, 'not recreated')

  // The worker's sync writes the mirror back (on its token-sync timer; called here directly).
  const { syncTombstoneMirror } = await import('../deletion/tombstones.ts')
  const synced = await syncTombstoneMirror(db, stack.redis, config.redisPrefix)
  t.ok(synced.repaired >= 1)
  t.equal(await stack.redis.hexists(hash, 'gone-2'), 1, 're-mirrored')
  t.equal((await put(`/ingest/${seeded.token}/test_session/gone-2/logs`, FIXTURES.logsRdtoolkit)).status, 409)
})

t.test('workspace purge: everything of the workspace goes, its tokens stop working', async (t) => {
  const seeded = await seedToken(config, { slug: 'del-c' })
  const ws = seeded.workspaceId
  const other = await seedToken(config, { slug: 'del-d' })
  await uploadSession(t, seeded.token, ws, 'p-1')
  await uploadSession(t, seeded.token, ws, 'p-2')
  await uploadSession(t, other.token, other.workspaceId, 'p-1')

  const refused = await cli(['workspace', 'purge', 'del-c'])
  t.equal(refused.code, 2, 'refused without --yes')
  t.equal(await c.sessions.countDocuments({ workspace_id: ws }), 2, 'nothing deleted')

  const res = await cli(['workspace', 'purge', 'del-c', '--yes', '--json'])
  t.equal(res.code, 0, res.stderr)
  const out = JSON.parse(res.stdout)
  t.match(out, {
    workspace: 'del-c',
    removed: { test_sessions: 2, test_session_media: 2, test_session_log_batches: 2, test_session_conflicts: 4 },
    objects: 10,
    tokens_revoked: 1,
    revocation_pushed: true,
  })
  for (const coll of [c.sessions, c.logs, c.logBatches, c.media, c.conflicts]) t.equal(await coll.countDocuments({ workspace_id: ws }), 0)
  t.same(
    (await listKeys('')).filter((k) => k.includes(`${ws}/`)),
    [],
    'no object of the workspace anywhere in the bucket',
  )
  t.match(await c.workspaces.findOne({ _id: ws }), { active: false })
  t.match(await c.tokens.findOne({ _id: seeded.tokenId }), { revoked_at: Date })
  t.match(await c.audit.findOne({ action: 'workspace.purge' }), { target: { workspace_id: ws, objects: 10, tokens_revoked: 1 } })
  t.ok(await c.audit.findOne({ action: 'token.revoke', 'target.token_id': seeded.tokenId }), 'revoked through the revocation path')

  const r = await put(`/ingest/${seeded.token}/test_session/p-3/`, FIXTURES.sessionRdtoolkit)
  t.equal(r.status, 403, "the workspace's DSN is refused")
  t.equal(await c.sessions.countDocuments({ workspace_id: other.workspaceId }), 1, 'another workspace is untouched')
  t.equal((await listKeys(`media/${other.workspaceId}/`)).length, 2, "the other workspace's photo and unrecorded upload")
})
