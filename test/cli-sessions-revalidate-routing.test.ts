// `sessions revalidate` addresses every update by the planned shard key (workspace_id, session_id)
// as well as {_id, raw_sha256}, so that on a sharded cluster each update goes to one shard instead
// of all of them (bench/README.md, MongoDB sharding plan). Checked on the commands the driver
// sends (command monitoring), against the real database: no cluster runs here, and an unsharded
// server gives the same answers with or without the extra fields.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { MongoClient, type CommandStartedEvent, type Document } from 'mongodb'
import { collections, ensureIndexes } from '../shared/mongo.ts'
import { revalidateSessions } from '../cli/sessions-revalidate.ts'
import { buildSessionDocument } from '../worker/session-document.ts'
import { FIXTURES, sessionJob } from './helpers/worker-harness.ts'

if (!process.env.MONGODB_URL) throw new Error('MONGODB_URL must be set (run through `npm test`)')
const url = new URL(process.env.MONGODB_URL)
url.pathname = `/t_reval_route_${randomBytes(4).toString('hex')}`

const client = new MongoClient(url.toString(), { monitorCommands: true, writeConcern: { w: 1 } })
await client.connect()
const db = client.db(url.pathname.slice(1))
await ensureIndexes(db)
const c = collections(db)
t.teardown(async () => {
  await db.dropDatabase().catch(() => {})
  await client.close()
})

const WS = 'w' + randomBytes(8).toString('hex')
const OTHER = 'w' + randomBytes(8).toString('hex')

/** A document as the code before the enum fix stored it: a client value flagged as not allowed. */
function oldDocument(ws: string, session: string): Document {
  const body = JSON.parse(FIXTURES.sessionRdtoolkit) as Record<string, unknown>
  body.id = session
  body.state = 'BUILDING'
  const text = JSON.stringify(body, null, 4)
  const job = { ...sessionJob(ws, session, text), kind: 'session' as const }
  const doc = buildSessionDocument(job, JSON.parse(text) as Record<string, unknown>, new Date('2024-03-01T10:00:00Z'))
  return { ...doc, validation: { ok: false, errors: [{ path: '/state', message: 'must be equal to one of the allowed values' }] } }
}

const SESSIONS = Array.from({ length: 12 }, (_, i) => `s-${i}`)
await c.sessions.insertMany([...SESSIONS.map((s) => oldDocument(WS, s)), oldDocument(OTHER, 's-0')])

t.test('every update names the document by workspace_id and session_id', async (t) => {
  const updates: Document[] = []
  const seen = (e: CommandStartedEvent) => {
    if (e.commandName === 'update' && e.command.update === 'test_sessions') updates.push(...(e.command.updates as Document[]))
  }
  client.on('commandStarted', seen)
  t.teardown(() => void client.off('commandStarted', seen))

  const r = await revalidateSessions({ db, actor: 'cli:test', workspace: { id: WS, slug: 'routing' } })
  t.equal(r.changed, SESSIONS.length, 'every old document was updated')
  t.equal(updates.length, SESSIONS.length, 'one update statement per changed document')

  const stored = new Map((await c.sessions.find({ workspace_id: WS }).toArray()).map((d) => [String(d._id), d]))
  for (const u of updates) {
    const q = u.q as Document
    const doc = stored.get(String(q._id))
    t.ok(doc, 'the filter names a stored document by _id')
    t.same(
      { workspace_id: q.workspace_id, session_id: q.session_id, raw_sha256: q.raw_sha256 },
      { workspace_id: WS, session_id: doc?.session_id, raw_sha256: doc?.raw_sha256 },
      `${String(doc?.session_id)}: the filter carries its shard key and its hash`,
    )
    t.not(u.multi, true, 'a single-document update')
  }
  t.same(
    (await c.sessions.findOne({ workspace_id: OTHER }))?.validation.ok,
    false,
    'the document of another workspace with the same session id is not touched',
  )
})
