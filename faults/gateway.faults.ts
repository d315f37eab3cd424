// Gateway faults: a gateway killed with SIGKILL inside the window between claiming a session's
// idempotency key and enqueueing its job (the retried PUT must get 201, never 409), and the
// same GUID uploaded 20 times at once, with identical and with different bodies.
import t from 'tap'
import { startCluster } from './lib/cluster.ts'
import { newUpload, put, sessionBody, sessionUrl, startLoad } from './lib/load.ts'
import { report, rowOf } from './lib/report.ts'
import { assertIntact } from './lib/scenario.ts'
import { drain } from './lib/verify.ts'
import { waitFor } from '../testing/wait.ts'
import { collections } from '../shared/mongo.ts'
import { idempotencyValue } from '../shared/idempotency.ts'

t.test('a gateway killed with SIGKILL between the idempotency claim and the enqueue', async (t) => {
  const c = await startCluster(t, 'gateway-kill-window')
  // The test hook holds every session for 3 s after its claim, so the kill lands in the window
  // for every session in flight at that moment: a real SIGKILL, at a known point.
  const a = await c.gateway({ RDT_FAULT_PAUSE_AFTER_CLAIM_MS: '3000' })
  await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 30, concurrency: 6 })
  const prefix = `${c.config.redisPrefix}:idem:s:${c.seeded.workspaceId}:`
  // Sessions whose key is claimed ("pending") but whose job does not exist: inside the window.
  const inWindow = async () => {
    const found: string[] = []
    for (const k of await c.redis.keys(`${prefix}*`)) {
      const v = await c.redis.get(k)
      const guid = k.slice(prefix.length)
      if (
        idempotencyValue.parse(v)?.state === 'pending' &&
        !(await c.redis.exists(`${c.config.redisPrefix}:sessions:s.${c.seeded.workspaceId}.${guid}`))
      )
        found.push(guid)
    }
    return found
  }
  await load.reached(10)
  const caught = await waitFor(
    async () => {
      const g = await inWindow()
      return g.length >= 3 ? g : null
    },
    { intervalMs: 20, what: 'sessions claimed but not yet enqueued' },
  )
  await a.kill()
  // The keys the dead gateway claimed are still "pending" in Redis.
  const stillPending = await inWindow()
  t.ok(
    caught.every((g) => stillPending.includes(g)),
    'the claims outlive the killed gateway',
  )
  const b = await c.gateway()
  await load.done
  const f = await drain(c, load.uploads)
  for (const guid of caught) {
    const u = load.uploads.find((x) => x.kind === 'session' && x.guid === guid)!
    t.equal(u.final, 201, `session ${guid}, claimed by the killed gateway, is accepted on retry`)
    t.notOk(u.answers['409'], 'and was never answered 409')
  }
  report(
    t,
    rowOf('gateway SIGKILL between idempotency claim and enqueue', f, [
      `${caught.length} sessions were inside the window; every retry got 201, none 409`,
      `new gateway pid ${b.pid}`,
    ]),
  )
  assertIntact(t, f)
})

t.test('the same GUID uploaded 20 times at once', async (t) => {
  const c = await startCluster(t, 'concurrent-guid')
  await c.gateway()
  await c.worker()
  const ws = c.seeded.workspaceId
  const sessions = collections(c.db).sessions
  const conflicts = collections(c.db).conflicts

  t.test('20 identical bodies', async (t) => {
    const guid = 'c0000000-0000-4000-8000-000000000020'
    const uploads = Array.from({ length: 20 }, () => newUpload('session', guid, sessionBody(guid)))
    await Promise.all(uploads.map((u) => put(sessionUrl(c.dsn, guid), u, { 'content-type': 'application/json; charset=utf-8' })))
    t.equal(uploads.filter((u) => u.final === 201).length, 1, 'exactly one 201')
    t.equal(uploads.filter((u) => u.final === 409).length, 19, 'the others 409')
    const f = await drain(c, uploads)
    t.equal(await sessions.countDocuments({ workspace_id: ws, session_id: guid }), 1, 'one stored session')
    t.equal(await conflicts.countDocuments({ workspace_id: ws, session_id: guid }), 0, 'identical bodies are not conflicts')
    report(t, rowOf('20 concurrent identical PUTs of one GUID', f, ['1 session stored, 0 conflicts']))
    assertIntact(t, f)
  })

  t.test('20 different bodies', async (t) => {
    const guid = 'c0000000-0000-4000-8000-000000000021'
    const uploads = Array.from({ length: 20 }, (_, i) => newUpload('session', guid, sessionBody(guid, i + 1)))
    await Promise.all(uploads.map((u) => put(sessionUrl(c.dsn, guid), u, { 'content-type': 'application/json; charset=utf-8' })))
    const winner = uploads.filter((u) => u.final === 201)
    t.equal(winner.length, 1, 'exactly one 201')
    t.equal(uploads.filter((u) => u.final === 409).length, 19, 'the others 409')
    const f = await drain(c, uploads)
    const stored = await sessions.find({ workspace_id: ws, session_id: guid }).toArray()
    t.equal(stored.length, 1, 'one stored session')
    t.equal(stored[0]?.raw_sha256, winner[0]?.sha256, 'it is the body that got 201')
    const kept = await conflicts.find({ workspace_id: ws, session_id: guid }).toArray()
    t.same(
      new Set(kept.map((d) => d.sha256)),
      new Set(uploads.filter((u) => u.final === 409).map((u) => u.sha256)),
      "the 19 others' bodies are in test_session_conflicts",
    )
    t.equal(f.conflictsKept, 19)
    report(
      t,
      rowOf('20 concurrent PUTs of one GUID, 20 different bodies', f, [
        `1 session stored, ${kept.length} bodies kept in test_session_conflicts`,
      ]),
    )
    assertIntact(t, f)
  })
})
