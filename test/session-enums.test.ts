// The session enums are the real client's (docs/architecture.md §1): every value the RDToolkit
// client can send is stored as valid, through the real gateway and worker on the real stack.
//
// The values come from testing/fixtures/session-enum-values.json, copied from the client's
// DomainModels.kt, and NOT from shared/session-schema.ts: if the product's lists drift from the
// client's, these tests fail.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildGateway } from '../gateway/app.ts'
import { jobIds } from '../shared/keys.ts'
import { CLASSIFIER_MODES, PROVISION_MODES, SESSION_STATES, SESSION_TYPES } from '../shared/session-schema.ts'
import { asRole } from './helpers/env.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { FIXTURES, randomId, startTestWorker } from './helpers/worker-harness.ts'

const ENUMS = JSON.parse(readFileSync(new URL('session-enum-values.json', fixturesDir), 'utf8')) as { values: Record<string, string[]> }
const DOCS_EXAMPLE = readFileSync(new URL('session-rdtoolkit-docs-example.json', fixturesDir), 'utf8')

const stack = await startTestWorker(t, { RATE_LIMIT_PER_MINUTE: '0' })
const seeded = await seedToken(stack.config)
const gateway = await buildGateway({ config: asRole(stack.config, 'gateway'), logger: false })
// Registered after startTestWorker's, so it runs first: the gateway closes before the worker.
t.teardown(() => gateway.close())
const sessions = stack.db.collection('test_sessions')

/** The real client's body (session-rdtoolkit.json) with its id replaced and one field set by JSON pointer. */
function clientBody(id: string, pointer: string, value: string): string {
  const body = JSON.parse(FIXTURES.sessionRdtoolkit) as Record<string, unknown>
  body.id = id
  const parts = pointer.split('/').slice(1)
  let at = body
  for (const p of parts.slice(0, -1)) at = at[p] as Record<string, unknown>
  at[parts.at(-1)!] = value
  // Pretty-printed with a 4-space indent, as the client sends it.
  return JSON.stringify(body, null, 4)
}

/** PUTs a session as the device does and returns its stored document once the worker has written it. */
async function upload(guid: string, body: string) {
  const res = await gateway.inject({
    method: 'PUT',
    url: `/ingest/${seeded.token}/test_session/${guid}/`,
    payload: body,
    headers: { 'content-type': 'application/json; charset=utf-8' },
  })
  if (res.statusCode !== 201) throw new Error(`PUT ${guid}: ${res.statusCode} ${res.body}`)
  const { state } = await stack.settled('sessions', jobIds.session(seeded.workspaceId, guid))
  if (state !== 'completed') throw new Error(`the job of session ${guid} ${state}`)
  // Completed means stored (the worker answers after MongoDB has acknowledged the write).
  const doc = await sessions.findOne({ workspace_id: seeded.workspaceId, session_id: guid })
  if (!doc) throw new Error(`session ${guid} completed but is not stored`)
  return doc
}

t.test("the product's lists are the client's, value for value", async (t) => {
  const product: Record<string, readonly string[]> = {
    '/state': SESSION_STATES,
    '/configuration/session_type': SESSION_TYPES,
    '/configuration/provision_mode': PROVISION_MODES,
    '/configuration/classifier_mode': CLASSIFIER_MODES,
  }
  t.same(Object.keys(product).sort(), Object.keys(ENUMS.values).sort(), 'the same four fields')
  for (const [pointer, values] of Object.entries(ENUMS.values)) t.same([...(product[pointer] ?? [])].sort(), [...values].sort(), pointer)
})

t.test('every client value of every enum is stored with validation.ok true', async (t) => {
  const cases = Object.entries(ENUMS.values).flatMap(([pointer, values]) =>
    values.map((value) => ({ pointer, value, guid: randomId('enum-') })),
  )
  t.equal(cases.length, 14, '4 states, 2 session types, 3 provision modes, 5 classifier modes')
  // Uploaded together, as a fleet of phones would; each one then checked on its own.
  const docs = await Promise.all(cases.map((c) => upload(c.guid, clientBody(c.guid, c.pointer, c.value))))
  cases.forEach((c, i) => {
    const doc = docs[i]!
    const stored = c.pointer === '/state' ? doc.state : doc.configuration?.[c.pointer.split('/')[2]!]
    t.equal(stored, c.value, `${c.pointer} = ${c.value} is stored as sent`)
    t.same(doc.validation, { ok: true, errors: [] }, `${c.pointer} = ${c.value} is valid`)
  })
})

t.test("the rd-toolkit docs' example session (docs/cloudworks.md) is valid", async (t) => {
  const guid = '693991be-fed2-4463-8422-ee7aaad12d4d'
  const doc = await upload(guid, DOCS_EXAMPLE)
  t.equal(doc.raw_body, DOCS_EXAMPLE, 'exact body kept')
  t.match(doc, {
    state: 'QUEUED',
    test_profile_id: 'carestart_mal_pf_pv',
    configuration: {
      session_type: 'TWO_PHASE',
      provision_mode: 'CRITERIA_SET_AND',
      provision_mode_data: 'mal_pf',
      classifier_mode: 'PRE_POPULATE',
      cloudworks_context: '',
    },
    result: { results_classifier: { mal_pf: 'universal_control_failure' } },
  })
  t.equal(
    doc.result.main_image_path,
    '/storage/emulated/0/Android/data/org.rdtoolkit/files/session_media/693991be-fed2-4463-8422-ee7aaad25d4d/20210125_111239_cropped.jpg',
    '\\/ unescaped',
  )
  t.same(doc.validation, { ok: true, errors: [] })
})

t.test('an unknown value is stored anyway, flagged at its path', async (t) => {
  const cases = [
    { pointer: '/state', value: 'BOGUS' },
    // The values the old lists had and the client never sends.
    { pointer: '/configuration/provision_mode', value: 'CRITERIA_RESPONSE' },
    { pointer: '/configuration/classifier_mode', value: 'QUALITY_ASSURANCE' },
  ]
  for (const c of cases) {
    const guid = randomId('unknown-')
    const doc = await upload(guid, clientBody(guid, c.pointer, c.value))
    const stored = c.pointer === '/state' ? doc.state : doc.configuration?.[c.pointer.split('/')[2]!]
    t.equal(stored, c.value, `${c.value} is stored as sent`)
    t.equal(doc.validation.ok, false, `${c.value} is flagged`)
    t.same(
      (doc.validation.errors as { path: string }[]).map((e) => e.path),
      [c.pointer],
      `only ${c.pointer} is named`,
    )
  }
})
