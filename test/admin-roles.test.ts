// Roles per workspace (README "Roles") on the real stack: an analyst of workspace A, guessing ids
// and URLs, reads nothing of workspace B and changes nothing in A; an owner manages A's tokens but
// not B's; a superadmin does everything. Every registered route is tried, so a page added later
// (webhooks, retention, deletion) is covered by the same checks without editing this file.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { LightMyRequestResponse } from 'fastify'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { assertAccessDeclared } from '../admin/security/roles.ts'
import { grantRole, listAdmins, migrateLegacyAdmins, revokeRole, setSuperadmin } from '../tokens/roles.ts'
import { adminCollections } from '../tokens/users.ts'
import { addAdmin, login, seedMedia, seedSession, sessionBody, startAdmin, type Browser } from './helpers/admin-support.ts'
import { fakeJpeg } from '../testing/media.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const { app } = await startAdmin(config)
const redis = new Redis(config.redisUrl)
const s3 = createS3(config.s3)
await ensureBucket(s3, config.s3.bucket, config.s3.region)
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  const ks = await redis.keys(`${config.redisPrefix}:*`)
  if (ks.length) await redis.del(...ks)
  redis.disconnect()
  await app.close()
})

await addAdmin(app, 'super@example.org') // the first account: a superadmin
for (const who of ['analyst', 'owner', 'nobody']) await addAdmin(app, `${who}@example.org`)
const A = await app.tokenAdmin.createWorkspace('team-a', { actor: 'test', name: 'Team A' })
const B = await app.tokenAdmin.createWorkspace('secret-b', { actor: 'test', name: 'Hidden clinic B' })
await grantRole(app.db, 'analyst@example.org', 'team-a', 'analyst', 'test')
await grantRole(app.db, 'owner@example.org', A.id, 'owner', 'test')
const tokA = await app.tokenAdmin.createToken({ workspace: A.id, actor: 'test', label: 'phone-a' })
const tokB = await app.tokenAdmin.createToken({ workspace: B.id, actor: 'test', label: 'hidden-label-b' })
const jpegA = fakeJpeg(4000)
const jpegB = fakeJpeg(4000)
const seed = async (ws: string, sid: string, tokenId: string, bytes: Buffer) => {
  await seedSession(app.db, { workspaceId: ws, sessionId: sid, tokenId, body: sessionBody({ profile: `${sid}_profile` }) })
  await seedMedia(app.db, s3, config.s3.bucket, { workspaceId: ws, sessionId: sid, mediaId: 'cropped', tokenId, bytes })
}
await seed(A.id, 'sess-a', tokA.id, jpegA)
await seed(B.id, 'hiddensess-b', tokB.id, jpegB)

const sup = await login(app, 'super@example.org')
const analyst = await login(app, 'analyst@example.org')
const owner = await login(app, 'owner@example.org')
const nobody = await login(app, 'nobody@example.org')

/** What nobody outside B may ever see in an answer. */
const B_SECRETS = [B.id, 'secret-b', 'Hidden clinic B', 'hiddensess-b', 'hidden-label-b', tokB.id]
const GHOST = 'w0123456789abcdef' // a well-formed workspace id that does not exist

const paramsOf = (ws: string, sid: string, tid: string): Record<string, string> => ({ ws, sid, mid: 'cropped', tid })
const urlOf = (route: string, p: Record<string, string>) =>
  route.replace(/:(\w+)/g, (_, name: string) => p[name] ?? 'x') +
  (route.endsWith('/export') ? '?format=csv&from=2000-01-01&to=2100-01-01' : '')

/** Every field any form of the panel takes, aimed at B where a workspace is named, with a valid CSRF token. */
function call(b: Browser, method: string, url: string): Promise<LightMyRequestResponse> {
  if (method === 'GET') return b.get(url)
  return b.post(url, {
    _csrf: b.csrf,
    slug: 'hacked',
    name: 'hacked',
    label: 'hacked',
    permissions: 'test_session',
    grace: '0',
    email: 'analyst@example.org',
    workspace: B.id,
    role: 'owner',
    superadmin: 'on',
  })
}

function noLeak(t: Test, res: LightMyRequestResponse, what: string): void {
  for (const s of B_SECRETS) if (res.body.includes(s)) t.fail(`${what} leaks "${s}"`)
  t.notOk(res.rawPayload.includes(jpegB.subarray(0, 256)), `${what}: no photo bytes of B`)
}

const workspaceRoutes = app.adminRoutes.filter((r) => /\/:ws(\/|$)/.test(r.url))
const otherRoutes = app.adminRoutes.filter((r) => !r.public && !/\/:ws(\/|$)/.test(r.url))

t.test('every route declares its access, and the check refuses routes that do not', async (t) => {
  t.same(
    app.adminRoutes.filter((r) => !r.public && r.access === null),
    [],
  )
  t.ok(workspaceRoutes.length >= 14, `${workspaceRoutes.length} workspace routes`)
  t.throws(() => assertAccessDeclared({ method: 'GET', url: '/workspaces/:ws/new-page', config: {} }), /must declare config.access/)
  t.throws(() => assertAccessDeclared({ method: 'GET', url: '/workspaces/:ws/new-page', config: { access: 'any' } }), /workspace route/)
  t.throws(() => assertAccessDeclared({ method: 'GET', url: '/reports', config: { access: 'analyst' } }), /needs a :ws parameter/)
  t.doesNotThrow(() => assertAccessDeclared({ method: 'GET', url: '/workspaces/:ws/new-page', config: { access: 'owner' } }))
  t.doesNotThrow(() => assertAccessDeclared({ method: 'GET', url: '/login', config: { public: true } }))
})

t.test("an analyst of A, guessing B's URLs and ids, gets the answer of a workspace that does not exist", async (t) => {
  for (const r of workspaceRoutes) {
    for (const [label, p] of [
      ['B', paramsOf(B.id, 'hiddensess-b', tokB.id)],
      // A's own workspace in the URL, B's ids in the rest of it.
      ['A with B ids', paramsOf(A.id, 'hiddensess-b', tokB.id)],
    ] as const) {
      const res = await call(analyst, r.method, urlOf(r.url, p))
      noLeak(t, res, `${r.method} ${r.url} (${label})`)
      if (label === 'B') {
        // A superadmin's page is refused before any workspace is looked at: 403 whatever the id.
        const expected = r.access === 'superadmin' ? 403 : 404
        t.equal(res.statusCode, expected, `${r.method} ${r.url} on B -> ${expected}`)
        const ghost = await call(analyst, r.method, urlOf(r.url, paramsOf(GHOST, 'hiddensess-b', tokB.id)))
        t.equal(ghost.statusCode, expected)
        t.equal(res.body, ghost.body, `${r.method} ${r.url}: B's answer is the same page as for a workspace that does not exist`)
      } else if (r.access === 'analyst' && /:sid/.test(r.url)) {
        t.equal(res.statusCode, 404, `${r.method} ${r.url} with B's session id through A -> 404`)
      }
    }
  }
  for (const url of ['/workspaces', '/audit', `/audit?workspace=${B.id}`, '/docs']) noLeak(t, await analyst.get(url), url)
  // HEAD routes (Fastify adds one per GET) go through the same check.
  const cookie = [...analyst.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  const head = await app.inject({ method: 'HEAD', url: `/workspaces/${B.id}/sessions/hiddensess-b/media/cropped`, headers: { cookie } })
  t.equal(head.statusCode, 404, 'HEAD of a photo of B')
  t.equal((await analyst.get(`/audit?workspace=${B.id}`)).statusCode, 404, "B's audit log: 404")
})

t.test('an analyst of A reads A (sessions, photos, exports, dashboards, audit) and changes nothing', async (t) => {
  const base = `/workspaces/${A.id}`
  const list = await analyst.get('/workspaces')
  t.match(list.body, 'Team A')
  t.notMatch(list.body, 'action="/workspaces"', 'no new-workspace form')
  for (const path of ['/dashboard', '/sessions', '/sessions/sess-a', '/missing-media', '/conflicts']) {
    t.equal((await analyst.get(base + path)).statusCode, 200, `GET ${path}`)
  }
  const detail = await analyst.get(`${base}/sessions/sess-a`)
  t.match(detail.body, 'sess-a_profile')
  t.notMatch(detail.body, `${base}/tokens`, 'no tokens tab')
  t.notMatch(detail.body, `${base}/settings`, 'no settings tab')
  t.notMatch(detail.body, 'href="/admins"', 'no admins link')
  const photo = await analyst.get(`${base}/sessions/sess-a/media/cropped`)
  t.equal(photo.statusCode, 200)
  t.ok(photo.rawPayload.equals(jpegA), "A's photo")
  const csv = await analyst.get(`${base}/export?format=csv&from=2000-01-01&to=2100-01-01`)
  t.equal(csv.statusCode, 200)
  t.match(csv.body, 'sess-a')
  const audit = await analyst.get('/audit')
  t.match(audit.body, 'sessions.export', 'their own export is in the audit log they see')
  t.match(audit.body, 'token.create')

  const tokensBefore = await app.db.collection('tokens').countDocuments({})
  // Every route that needs more than an analyst, on A: refused with 403 (they know A exists).
  for (const r of workspaceRoutes.filter((r) => r.access !== 'analyst')) {
    const res = await call(analyst, r.method, urlOf(r.url, paramsOf(A.id, 'sess-a', tokA.id)))
    t.equal(res.statusCode, 403, `${r.method} ${r.url} on A -> 403`)
    t.notMatch(res.body, 'phone-a', 'no token shown')
  }
  for (const r of otherRoutes.filter((r) => r.access === 'superadmin')) {
    t.equal((await call(analyst, r.method, r.url)).statusCode, 403, `${r.method} ${r.url} -> 403`)
  }
  t.equal(await app.db.collection('tokens').countDocuments({}), tokensBefore, 'no token created')
  t.equal((await app.db.collection('tokens').findOne({ _id: tokA.id as never }))?.revoked_at, null, "A's token not revoked")
  t.equal((await app.db.collection('tokens').findOne({ _id: tokB.id as never }))?.revoked_at, null, "B's token not revoked")
  t.equal(await app.db.collection('workspaces').countDocuments({ slug: 'hacked' }), 0, 'no workspace created or renamed')
  t.match(await app.db.collection('workspaces').findOne({ _id: A.id as never }), { slug: 'team-a', active: true })
  t.match(await app.db.collection('workspaces').findOne({ _id: B.id as never }), { slug: 'secret-b', active: true })
  // Deleting (a session, or the whole workspace) is an owner's: the routes above refused it.
  t.equal(await app.db.collection('test_sessions').countDocuments({ workspace_id: A.id }), 1, 'no session of A deleted')
  t.equal(await app.db.collection('test_session_media').countDocuments({ workspace_id: A.id }), 1, 'no photo of A deleted')
  t.equal(await app.db.collection('deleted_sessions').countDocuments({}), 0, 'no tombstone written')
  const photoKey = String((await app.db.collection('test_session_media').findOne({ workspace_id: A.id }))?.key)
  t.ok((await s3.statObject(config.s3.bucket, photoKey)).size > 0, "A's photo object is still there")
  t.notMatch(detail.body, '/delete', 'no way to delete on the session page')
  const me = (await listAdmins(app.db)).find((u) => u.email === 'analyst@example.org')!
  t.same(me.roles, [{ workspace_id: A.id, slug: 'team-a', role: 'analyst' }], 'no role gained')
  t.equal(me.superadmin, false)
})

t.test("an owner of A manages A's tokens, and not B's", async (t) => {
  const page = await owner.get(`/workspaces/${A.id}/tokens`)
  t.equal(page.statusCode, 200)
  t.match(page.body, 'phone-a')
  const created = await owner.post(`/workspaces/${A.id}/tokens`, { _csrf: owner.csrf, label: 'owner-made', permissions: 'test_session' })
  t.equal(created.statusCode, 200)
  t.match(created.body, /id="dsn">https?:\/\/[^<]+\/ingest\//, 'the new DSN is shown')
  const made = await app.db.collection('tokens').findOne({ label: 'owner-made' })
  t.equal(made?.workspace_id, A.id)
  const revoked = await owner.post(`/workspaces/${A.id}/tokens/${String(made!._id)}/revoke`, { _csrf: owner.csrf })
  t.equal(revoked.statusCode, 303)
  t.not((await app.db.collection('tokens').findOne({ _id: made!._id }))?.revoked_at, null, 'revoked')

  const bTokens = await app.db.collection('tokens').countDocuments({ workspace_id: B.id })
  t.equal((await owner.get(`/workspaces/${B.id}/tokens`)).statusCode, 404)
  t.equal((await owner.post(`/workspaces/${B.id}/tokens`, { _csrf: owner.csrf, label: 'intruder' })).statusCode, 404)
  t.equal((await owner.post(`/workspaces/${B.id}/tokens/${tokB.id}/revoke`, { _csrf: owner.csrf })).statusCode, 404)
  t.equal((await owner.post(`/workspaces/${A.id}/tokens/${tokB.id}/revoke`, { _csrf: owner.csrf })).statusCode, 404, "B's token via A")
  t.equal(await app.db.collection('tokens').countDocuments({ workspace_id: B.id }), bTokens, 'no token created in B')
  t.equal((await app.db.collection('tokens').findOne({ _id: tokB.id as never }))?.revoked_at, null, "B's token not revoked")
  // Workspace lifecycle and memberships stay with superadmins.
  t.equal((await owner.post(`/workspaces/${A.id}/deactivate`, { _csrf: owner.csrf })).statusCode, 403)
  t.equal((await owner.get('/admins')).statusCode, 403)
  const settings = await owner.get(`/workspaces/${A.id}/settings`)
  t.equal(settings.statusCode, 200)
  t.notMatch(settings.body, '/deactivate', 'no deactivate form for an owner')
})

t.test('an admin with no role sees no workspace', async (t) => {
  const list = await nobody.get('/workspaces')
  t.equal(list.statusCode, 200)
  t.notMatch(list.body, 'Team A')
  noLeak(t, list, '/workspaces')
  const audit = await nobody.get('/audit')
  t.notMatch(audit.body, A.id)
  noLeak(t, audit, '/audit')
  t.equal((await nobody.get(`/workspaces/${A.id}/sessions`)).statusCode, 404)
})

t.test('a superadmin does everything; a role given in the panel applies at the next click', async (t) => {
  for (const r of workspaceRoutes.filter((r) => r.method === 'GET')) {
    const res = await sup.get(urlOf(r.url, paramsOf(B.id, 'hiddensess-b', tokB.id)))
    t.ok([200, 303].includes(res.statusCode), `GET ${r.url} on B -> ${res.statusCode}`)
  }
  t.match((await sup.get(`/workspaces/${B.id}/tokens`)).body, 'hidden-label-b')
  const admins = await sup.get('/admins')
  t.equal(admins.statusCode, 200)
  for (const e of ['super', 'analyst', 'owner', 'nobody']) t.match(admins.body, `${e}@example.org`)

  t.equal((await analyst.get(`/workspaces/${B.id}/sessions`)).statusCode, 404)
  const grant = await sup.post('/admins/grant', { _csrf: sup.csrf, email: 'analyst@example.org', workspace: B.id, role: 'analyst' })
  t.equal(grant.statusCode, 303)
  const now = await analyst.get(`/workspaces/${B.id}/sessions`)
  t.equal(now.statusCode, 200)
  t.match(now.body, 'hiddensess-b', 'the analyst reads B at once, without logging in again')
  t.equal((await analyst.get(`/workspaces/${B.id}/tokens`)).statusCode, 403, 'as an analyst')
  const revoke = await sup.post('/admins/revoke', { _csrf: sup.csrf, email: 'analyst@example.org', workspace: B.id })
  t.equal(revoke.statusCode, 303)
  t.equal((await analyst.get(`/workspaces/${B.id}/sessions`)).statusCode, 404, 'and loses it at once')
  const bad = await sup.post('/admins/grant', { _csrf: sup.csrf, email: 'analyst@example.org', workspace: B.id, role: 'god' })
  t.equal(bad.statusCode, 400)
  t.match(await app.db.collection('audit_log').findOne({ action: 'admin.grant', 'target.workspace_id': B.id }), {
    actor: 'admin:super@example.org',
    target: { email: 'analyst@example.org', role: 'analyst', previous_role: null },
  })
  const create = await sup.post('/workspaces', { _csrf: sup.csrf, slug: 'made-by-super' })
  t.equal(create.statusCode, 303)
})

t.test('the last superadmin cannot be turned off', async (t) => {
  await t.rejects(setSuperadmin(app.db, 'super@example.org', false, 'test'), { code: 'last_superadmin' })
  const res = await sup.post('/admins/superadmin', { _csrf: sup.csrf, email: 'super@example.org', superadmin: 'off' })
  t.equal(res.statusCode, 400)
  t.match(res.body, 'last enabled superadmin')
  t.equal((await adminCollections(app.db).users.findOne({ email: 'super@example.org' }))?.superadmin, true)
  await setSuperadmin(app.db, 'nobody@example.org', true, 'test')
  t.match(await setSuperadmin(app.db, 'super@example.org', false, 'test'), { superadmin: false, changed: true })
  t.equal((await sup.get('/admins')).statusCode, 403, 'applies to the open session at once')
  t.equal((await nobody.get('/admins')).statusCode, 200)
  await setSuperadmin(app.db, 'super@example.org', true, 'test')
  await revokeRole(app.db, 'nobody@example.org', 'team-a', 'test') // no role there: a no-op, still answered
  t.match(await revokeRole(app.db, 'owner@example.org', 'team-a', 'test'), { previous_role: 'owner', role: null })
  t.equal((await owner.get(`/workspaces/${A.id}/tokens`)).statusCode, 404)
})

t.test('accounts from before roles become superadmins once, audited', async (t) => {
  const users = adminCollections(app.db).users
  const template = (await users.findOne({ email: 'nobody@example.org' }))!
  await users.insertOne({
    _id: 'ulegacy0000000001',
    email: 'legacy@example.org',
    password: template.password,
    created_at: new Date(),
    disabled: false,
  })
  t.same(await migrateLegacyAdmins(app.db, 'test'), ['legacy@example.org'])
  t.equal((await users.findOne({ email: 'legacy@example.org' }))?.superadmin, true)
  t.same(await migrateLegacyAdmins(app.db, 'test'), [], 'nothing the second time')
  t.match(await app.db.collection('audit_log').findOne({ action: 'admin.superadmin', 'target.migrated': true }), {
    target: { email: 'legacy@example.org', superadmin: true },
  })
  t.equal((await users.findOne({ email: 'owner@example.org' }))?.superadmin, false, 'accounts made with roles are untouched')
})
