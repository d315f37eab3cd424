// `sessions revalidate` end to end: the real CLI as a child process against the stack, on
// documents stored the way the code before the enum fix stored them (client enum values flagged as
// not allowed), fallback documents, and documents that are already right.
import { runCliProcess, type CliRun } from './helpers/cli-process.ts'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import type { Document } from 'mongodb'
import { collections, connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { buildSessionDocument, INVALID_UTF8_ISSUE, sessionFallbackDocument } from '../worker/session-document.ts'
import { roleEnv } from '../stack/roles.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { FIXTURES, sessionJob } from './helpers/worker-harness.ts'

const base = { ...process.env }
if (!base.MONGODB_URL || !base.REDIS_URL) throw new Error('MONGODB_URL and REDIS_URL must be set (run through `npm test`)')

const mongoUrl = new URL(base.MONGODB_URL)
mongoUrl.pathname = `/t_reval_${randomBytes(4).toString('hex')}`
const cliEnv: Record<string, string> = roleEnv(
  {
    ...base,
    MONGODB_URL: mongoUrl.toString(),
    REDIS_PREFIX: `{t-${randomBytes(5).toString('hex')}}`,
    PUBLIC_URL: 'https://ingest.test.example',
  },
  'cli',
)

const { client, db } = await connectMongo(mongoUrl.toString(), 1)
await ensureIndexes(db)
const c = collections(db)
t.teardown(async () => {
  await db.dropDatabase().catch(() => {})
  await client.close()
})

const cli = (args: string[]): Promise<CliRun> => runCliProcess(args, cliEnv, { timeoutMs: 120_000 })

// Workspaces as the CLI creates them, so that --workspace resolves a slug.
const WS = { a: 'w' + randomBytes(8).toString('hex'), b: 'w' + randomBytes(8).toString('hex'), bulk: 'w' + randomBytes(8).toString('hex') }
const now = new Date()
await c.workspaces.insertMany([
  { _id: WS.a, slug: 'clinic-a', name: 'Clinic A', active: true, created_at: now, updated_at: now },
  { _id: WS.b, slug: 'clinic-b', name: 'Clinic B', active: true, created_at: now, updated_at: now },
  { _id: WS.bulk, slug: 'bulk', name: 'Bulk', active: true, created_at: now, updated_at: now },
])

/** The real client's body with its id and some fields replaced (`configuration.x` for nested ones). */
function clientBody(id: string, changes: Record<string, unknown> = {}): string {
  const body = JSON.parse(FIXTURES.sessionRdtoolkit) as Record<string, Record<string, unknown>>
  body.id = id as never
  for (const [k, v] of Object.entries(changes)) {
    const [a, b] = k.split('.')
    if (b === undefined) body[a!] = v as never
    else body[a!]![b] = v
  }
  return JSON.stringify(body, null, 4)
}

/** What the worker stores today for this body. */
function current(ws: string, session: string, body: string, opts: { invalidUtf8?: boolean } = {}): Document {
  const job = {
    ...sessionJob(ws, session, body),
    kind: 'session' as const,
    ...(opts.invalidUtf8 ? { body_invalid_utf8: true as const } : {}),
  }
  return buildSessionDocument(job, JSON.parse(body) as Record<string, unknown>, new Date('2024-03-01T10:00:00Z'))
}

// The message the old lists produced for a client value they did not have.
const NOT_ALLOWED = 'must be equal to one of the allowed values'
/** As the code before the enum fix stored it: the same fields, but the client's value flagged. */
function old(ws: string, session: string, body: string, paths: string[], opts: { invalidUtf8?: boolean } = {}): Document {
  const doc = current(ws, session, body, opts)
  const errors = [...paths.map((path) => ({ path, message: NOT_ALLOWED })), ...(opts.invalidUtf8 ? [INVALID_UTF8_ISSUE] : [])]
  return { ...doc, validation: { ok: false, errors } }
}

const docsExample = readFileSync(new URL('session-rdtoolkit-docs-example.json', fixturesDir), 'utf8')
const fallback = (ws: string, session: string, body: string) =>
  sessionFallbackDocument(sessionJob(ws, session, body) as never, new Date('2024-03-01T10:00:00Z'), 'BadValue 2: invalid value')
// Every storage rewrite, and numbers whose BSON type is not JavaScript's (int32, double, -0).
const rewrites = JSON.stringify({
  ...JSON.parse(clientBody('a11')),
  box: [[1, 2], [3]],
  'a.b': { $x: 1 },
  big: 12345678901234,
  half: 1.5,
}).replace(/\}$/, ',"neg0":-0,"inf":1e999}')

const A: Record<string, Document> = {
  a1: old(WS.a, 'a1', clientBody('a1', { state: 'BUILDING' }), ['/state']),
  a2: old(WS.a, 'a2', clientBody('a2', { 'configuration.classifier_mode': 'BLIND' }), ['/configuration/classifier_mode']),
  a3: old(WS.a, '693991be-fed2-4463-8422-ee7aaad12d4d', docsExample, ['/configuration/provision_mode']),
  a4: old(
    WS.a,
    'a4',
    clientBody('a4', { 'configuration.classifier_mode': 'AUTHORITY', 'configuration.provision_mode': 'CRITERIA_SET_OR' }),
    ['/configuration/provision_mode', '/configuration/classifier_mode'],
  ),
  a5: current(WS.a, 'a5', clientBody('a5')),
  a6: current(WS.a, 'a6', clientBody('a6', { state: 'BOGUS' })),
  a7: fallback(WS.a, 'a7', clientBody('a7', { 'configuration.classifier_mode': 'BLIND' })),
  a8: fallback(WS.a, 'a8', 'not json at all'),
  a9: fallback(WS.a, 'a9', '[1, 2, 3]'),
  a10: old(WS.a, 'a10', clientBody('a10', { state: 'BUILDING', test_profile_id: 'sd_bioline\ufffd' }), ['/state'], { invalidUtf8: true }),
  a11: current(WS.a, 'a11', rewrites),
  a12: { ...current(WS.a, 'a12', clientBody('a12')), storage_notes: [{ path: '/x', rule: 'nested_array_as_json' }] },
}
const B1 = old(WS.b, 'b1', clientBody('b1', { state: 'BUILDING' }), ['/state'])
await c.sessions.insertMany([...Object.values(A), B1])

// More than one read batch (500), every 40th one stored by the old code: the changes span both
// batches and more than one update call. Most are already right, because each update costs
// FerretDB a collection scan (see cli/sessions-revalidate.ts).
const BULK = 520
const BULK_OLD = Math.ceil(BULK / 40)
for (let i = 0; i < BULK; i += 260) {
  await c.sessions.insertMany(
    Array.from({ length: 260 }, (_, j) => {
      const n = i + j
      const body = clientBody(`bulk-${n}`, { 'configuration.classifier_mode': 'BLIND' })
      return n % 40 === 0 ? old(WS.bulk, `bulk-${n}`, body, ['/configuration/classifier_mode']) : current(WS.bulk, `bulk-${n}`, body)
    }),
  )
}

const RECORD = ['_id', 'workspace_id', 'session_id', 'token_id', 'received_at', 'raw_body', 'raw_sha256'] as const
const before = new Map((await c.sessions.find({ workspace_id: WS.a }).toArray()).map((d) => [d.session_id as string, d]))
const get = (session: string) => c.sessions.findOne({ workspace_id: WS.a, session_id: session })

t.test('the test data is what the old code stored', async (t) => {
  t.same(
    A.a11!.storage_notes?.map((n: { rule: string }) => n.rule).sort(),
    ['nested_array_as_json', 'nested_array_as_json', 'non_finite_number_as_string'],
    'a11 has storage rewrites',
  )
  t.equal(await c.sessions.countDocuments({ workspace_id: WS.bulk, 'validation.ok': false }), BULK_OLD)
})

t.test('--workspace: old documents become valid, the rest are left as they are', async (t) => {
  const r = await cli(['sessions', 'revalidate', '--workspace', 'clinic-a', '--json'])
  t.equal(r.code, 0, r.stderr)
  t.same(JSON.parse(r.stdout), {
    workspace: { id: WS.a, slug: 'clinic-a' },
    scanned: 12,
    changed: 7,
    unchanged: 3,
    skipped: 2,
    skipped_by_reason: { not_json: 1, not_an_object: 1 },
  })

  for (const s of ['a1', 'a2', 'a4', 'a7']) t.same((await get(s))?.validation, { ok: true, errors: [] }, `${s} is valid now`)
  const a3 = await get('693991be-fed2-4463-8422-ee7aaad12d4d')
  t.same(a3?.validation, { ok: true, errors: [] }, "the docs' example (CRITERIA_SET_AND) is valid now")

  const a7 = await get('a7')
  t.match(
    a7,
    { state: 'QUEUED', test_profile_id: 'sd_bioline_mal_pf_pv', configuration: { classifier_mode: 'BLIND' } },
    'the fallback document got its normalised fields',
  )
  t.ok(a7?.time_started instanceof Date)

  t.same((await get('a10'))?.validation, { ok: false, errors: [INVALID_UTF8_ISSUE] }, 'invalid UTF-8 is still flagged, the enum no longer')
  t.same((await get('a6'))?.validation.errors, [{ path: '/state', message: NOT_ALLOWED }], 'an unknown value stays flagged')
  t.equal((await get('a12'))?.storage_notes, undefined, 'a storage note that no longer applies is removed')
  t.equal((await get('a11'))?.storage_notes?.length, 3, 'real storage notes are kept')
  for (const s of ['a8', 'a9']) t.same(await get(s), before.get(s), `${s} (body not a JSON object) is left exactly as it was`)

  for (const [s, was] of before) {
    const now = await get(s)
    for (const f of RECORD) t.same(now?.[f], was[f], `${s}: ${f} untouched`)
  }
  t.same((await c.sessions.findOne({ workspace_id: WS.b }))?.validation, B1.validation, 'another workspace is not touched')
  t.equal(await c.sessions.countDocuments({ workspace_id: WS.bulk, 'validation.ok': false }), BULK_OLD, 'nor is the third')

  const audit = await c.audit.find({ action: 'sessions.revalidate' }).toArray()
  t.equal(audit.length, 1)
  t.match(audit[0], {
    actor: /^cli:.+/,
    target: { workspace_id: WS.a, slug: 'clinic-a', scanned: 12, changed: 7, unchanged: 3, skipped: 2, completed: true },
  })
})

t.test('a second run changes nothing', async (t) => {
  const snapshot = await c.sessions.find({ workspace_id: WS.a }).sort({ _id: 1 }).toArray()
  const r = await cli(['sessions', 'revalidate', '--workspace', WS.a, '--json'])
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout), { scanned: 12, changed: 0, unchanged: 10, skipped: 2 })
  t.same(await c.sessions.find({ workspace_id: WS.a }).sort({ _id: 1 }).toArray(), snapshot, 'every document as it was')
})

t.test('without --workspace, every workspace, across batches', async (t) => {
  const r = await cli(['sessions', 'revalidate', '--json'])
  t.equal(r.code, 0, r.stderr)
  t.same(JSON.parse(r.stdout), {
    workspace: null,
    scanned: 12 + 1 + BULK,
    changed: 1 + BULK_OLD,
    unchanged: 10 + BULK - BULK_OLD,
    skipped: 2,
    skipped_by_reason: { not_json: 1, not_an_object: 1 },
  })
  t.equal(await c.sessions.countDocuments({ workspace_id: WS.bulk, 'validation.ok': true }), BULK, 'every bulk document is valid now')
  t.same((await c.sessions.findOne({ workspace_id: WS.b }))?.validation, { ok: true, errors: [] })

  const human = await cli(['sessions', 'revalidate'])
  t.equal(human.code, 0, human.stderr)
  t.equal(
    human.stdout,
    `Sessions revalidated (all workspaces): ${12 + 1 + BULK} scanned, 0 changed, ${10 + 1 + BULK} unchanged, 2 skipped (1 not json, 1 not an object).\n`,
  )
  t.match(await c.audit.findOne({ action: 'sessions.revalidate', 'target.changed': 1 + BULK_OLD }), {
    target: { workspace_id: null, slug: null, completed: true },
  })
  t.equal(await c.audit.countDocuments({ action: 'sessions.revalidate' }), 4, 'one audit entry per run')
})

t.test('usage and refusals', async (t) => {
  const extra = await cli(['sessions', 'revalidate', 'clinic-a'])
  t.equal(extra.code, 2)
  t.match(extra.stderr, /unexpected argument "clinic-a"/)
  const noValue = await cli(['sessions', 'revalidate', '--workspace'])
  t.equal(noValue.code, 2)
  const unknown = await cli(['sessions', 'revalidate', '--workspace', 'no-such-clinic'])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /unknown workspace "no-such-clinic"/)
  t.equal(await c.audit.countDocuments({ action: 'sessions.revalidate' }), 4, 'a refused run is not audited as a run')
})
