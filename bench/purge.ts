// How long `workspace purge` takes for a big workspace (README "Deletion"). Not part of `npm test`
// or `npm run bench`: a one-off measurement against a running local stack.
//
//   npx tsx stack/with-stack.ts -- npx tsx bench/purge.ts [--sessions 10000] [--photos 2] [--photo-kb 64]
//
// It seeds a workspace directly (documents shaped as the worker writes them, photos as uploads
// under media/ where the gateway writes them once, with the stack's root credentials), then runs the real CLI as a child
// process with the CLI's own credentials, times it, and checks that nothing of the workspace is left.
import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { collections, connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { objectKeys } from '../shared/keys.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { inspectorEnv, roleEnv } from '../stack/roles.ts'
import { fakeJpeg } from '../testing/media.ts'
import { deleteKeysWithPrefix } from '../testing/redis-keys.ts'
import { seedTokens } from './seed.ts'

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10000' },
    photos: { type: 'string', default: '2' },
    'photo-kb': { type: 'string', default: '64' },
    'log-entries': { type: 'string', default: '5' },
  },
})
const SESSIONS = Number(values.sessions)
const PHOTOS = Number(values.photos)
const PHOTO_BYTES = Number(values['photo-kb']) * 1024
const LOG_ENTRIES = Number(values['log-entries'])
const log = (msg: string) => process.stderr.write(`[purge-bench] ${msg}\n`)

const id = randomBytes(4).toString('hex')
const root = inspectorEnv(process.env)
const mongoUrl = new URL(root.MONGODB_URL!)
mongoUrl.pathname = `/bench_purge_${id}`
const prefix = `{bp${id}}`
const bucket = root.S3_BUCKET || 'rdt-media'
const s3Config = {
  endpoint: root.S3_ENDPOINT!,
  accessKey: root.S3_ACCESS_KEY!,
  secretKey: root.S3_SECRET_KEY!,
  bucket,
  region: 'us-east-1',
}
const s3 = createS3(s3Config)
await ensureBucket(s3, bucket, s3Config.region)
const { client, db } = await connectMongo(mongoUrl.toString(), 1)
await ensureIndexes(db)
const redis = new Redis(root.REDIS_URL!, { maxRetriesPerRequest: null })
const c = collections(db)

/** Runs `fn` over `items`, `concurrency` at a time. */
async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]!)
    }),
  )
}

try {
  const seedStarted = Date.now()
  const { workspaceId: ws } = await seedTokens(db, redis, prefix, 3)
  const slug = `bench-${ws}`
  const photo = fakeJpeg(PHOTO_BYTES)
  const received = new Date()
  for (let start = 0; start < SESSIONS; start += 500) {
    const ids = Array.from({ length: Math.min(500, SESSIONS - start) }, (_, i) => `s${String(start + i).padStart(6, '0')}`)
    const of = (session: string) => ({ workspace_id: ws, session_id: session, token_id: 'tbench', received_at: received })
    await c.sessions.insertMany(ids.map((s) => ({ ...of(s), raw_body: '{"state":"QUEUED"}', raw_sha256: 'x', state: 'QUEUED' })))
    await c.logBatches.insertMany(ids.map((s) => ({ ...of(s), sha256: 'l', raw_body: '{"entries":[]}', entry_count: LOG_ENTRIES })))
    if (LOG_ENTRIES > 0)
      await c.logs.insertMany(
        ids.flatMap((s) => Array.from({ length: LOG_ENTRIES }, (_, n) => ({ ...of(s), tag: 't', message: `m${n}`, batch_index: n }))),
      )
    const media = ids.flatMap((s) =>
      Array.from({ length: PHOTOS }, (_, n) => ({
        session: s,
        media: `photo_${n}`,
        key: objectKeys.upload(ws, s, `photo_${n}`, randomUUID()),
      })),
    )
    await pool(media, 16, async (m) => {
      await s3.putObject(bucket, m.key, photo, photo.length, { 'Content-Type': 'image/jpeg' })
    })
    await c.media.insertMany(
      media.map((m) => ({
        ...of(m.session),
        media_id: m.media,
        size: photo.length,
        sha256: 'p',
        bucket,
        key: m.key,
      })),
    )
    log(`seeded ${start + ids.length}/${SESSIONS} sessions`)
  }
  const seedSeconds = (Date.now() - seedStarted) / 1000

  // The CLI as an operator runs it, with the CLI's credentials (the admin panel's S3 key).
  const env = { ...roleEnv(process.env, 'cli'), MONGODB_URL: mongoUrl.toString(), REDIS_PREFIX: prefix, S3_BUCKET: bucket }
  const started = Date.now()
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'workspace', 'purge', slug, '--yes', '--json'], { env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
  const seconds = (Date.now() - started) / 1000
  if (out.code !== 0) throw new Error(`purge failed (${out.code}): ${out.stderr}`)
  const res = JSON.parse(out.stdout) as { removed: Record<string, number>; objects: number; bytes: number }
  let left = 0
  for (const coll of [c.sessions, c.logs, c.logBatches, c.media, c.conflicts]) left += await coll.countDocuments({ workspace_id: ws })
  let objectsLeft = 0
  for await (const _ of s3.listObjectsV2(bucket, `${ws}/`, true)) objectsLeft++
  const documents = Object.values(res.removed).reduce((a, b) => a + b, 0)
  console.log(
    JSON.stringify(
      {
        sessions: SESSIONS,
        photos_per_session: PHOTOS,
        photo_bytes: PHOTO_BYTES,
        seed_seconds: seedSeconds,
        purge_seconds: seconds,
        documents,
        removed: res.removed,
        objects: res.objects,
        bytes: res.bytes,
        documents_per_second: Math.round(documents / seconds),
        objects_per_second: Math.round(res.objects / seconds),
        left: { documents: left, objects: objectsLeft },
      },
      null,
      2,
    ),
  )
} finally {
  await db.dropDatabase().catch(() => {})
  await client.close()
  await deleteKeysWithPrefix(redis, prefix).catch(() => {})
  redis.disconnect()
}
