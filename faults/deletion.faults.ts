// Deletion faults: `workspace purge` SIGKILLed half-way. Running the same command again finishes
// it, and nothing is left of the workspace (README "Deletion": bounded, resumable batches).
import { spawn } from 'node:child_process'
import t from 'tap'
import { collections } from '../shared/mongo.ts'
import { roleEnv } from '../stack/roles.ts'
import { waitFor } from '../testing/wait.ts'
import { startCluster } from './lib/cluster.ts'
import { startLoad } from './lib/load.ts'
import { report, rowOf } from './lib/report.ts'
import { assertIntact } from './lib/scenario.ts'
import { drain } from './lib/verify.ts'

t.test('workspace purge SIGKILLed half-way, then run again', async (t) => {
  const c = await startCluster(t, 'purge-sigkill')
  await c.gateway()
  await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 40, concurrency: 6, thinkMs: 20 })
  await load.done
  const f = await drain(c, load.uploads)
  assertIntact(t, f)

  const ws = c.seeded.workspaceId
  const slug = (await collections(c.db).workspaces.findOne({ _id: ws }))!.slug
  const col = collections(c.db)
  const photos = await col.media.countDocuments({ workspace_id: ws })
  const sessions = await col.sessions.countDocuments({ workspace_id: ws })
  t.ok(photos > 10 && sessions > 10, `${sessions} sessions and ${photos} photos stored`)

  // The CLI as an operator runs it, with small batches so that it is still deleting when killed.
  const env = roleEnv({ ...c.env, DELETION_BATCH_SIZE: '2' }, 'cli')
  const purge = (): ReturnType<typeof spawn> =>
    spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'workspace', 'purge', slug, '--yes', '--json'], { env, stdio: 'pipe' })
  const first = purge()
  const firstExit = new Promise<void>((resolve) => first.once('exit', () => resolve()))
  await waitFor(async () => (await col.media.countDocuments({ workspace_id: ws })) < photos, {
    intervalMs: 5,
    timeoutMs: 60_000,
    what: 'the purge to start deleting photos',
  })
  first.kill('SIGKILL')
  await firstExit
  const photosLeft = await col.media.countDocuments({ workspace_id: ws })
  t.ok(photosLeft > 0, `killed half-way: ${photosLeft} of ${photos} photos left`)
  t.equal(await col.sessions.countDocuments({ workspace_id: ws }), sessions, 'the session documents go last: all still there')
  t.ok(await col.deletedSessions.findOne({ _id: `${ws}/*` }), 'the tombstone was written first')

  const second = purge()
  let out = ''
  second.stdout!.on('data', (d) => (out += d))
  const code = await new Promise<number | null>((resolve) => second.once('exit', (code) => resolve(code)))
  t.equal(code, 0, 'the second run succeeds')
  const res = JSON.parse(out) as { removed: Record<string, number>; objects: number }
  t.equal(res.removed.test_sessions, sessions, 'it deleted the sessions the first run left')
  // At most what was counted after the kill, and not necessarily all of it: a delete the killed
  // run had already sent still completes in the database after its client is gone (a fresh-clone
  // run counted 78 photos left and the second run found 76). What matters is below: nothing left.
  const mediaRemoved = res.removed.test_session_media ?? 0
  t.ok(
    mediaRemoved > 0 && mediaRemoved <= photosLeft,
    `and the photos still there (${mediaRemoved} of the ${photosLeft} counted after the kill)`,
  )

  for (const coll of [col.sessions, col.logs, col.logBatches, col.media, col.conflicts])
    t.equal(await coll.countDocuments({ workspace_id: ws }), 0, `${coll.collectionName}: nothing left`)
  // The whole bucket, not objectKeys.workspacePrefixes: an object under a prefix the purge does
  // not know of (an upload, a pending/ marker) is found too.
  const left: string[] = []
  for await (const o of c.s3.listObjectsV2(c.config.s3.bucket, '', true) as AsyncIterable<{ name?: string }>)
    if (o.name?.includes(`${ws}/`)) left.push(o.name)
  t.same(left, [], 'no object left')
  t.match(await col.workspaces.findOne({ _id: ws }), { active: false })
  t.match(await col.tokens.findOne({ _id: c.seeded.tokenId }), { revoked_at: Date })
  report(
    t,
    rowOf('workspace purge SIGKILLed half-way, run again', f, [
      `${sessions} sessions, ${photos} photos; killed with ${photosLeft} photos left; the second run deleted the rest`,
    ]),
  )
})
