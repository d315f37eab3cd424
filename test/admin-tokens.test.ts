// Workspaces and tokens through the panel: create, rename, deactivate/reactivate (the mirror
// follows), token create (DSN once, QR code), revoke, rotate with a grace period, last used,
// per-workspace counts, and the audit log.
import t from 'tap'
import { Redis } from 'ioredis'
import { keys } from '../shared/keys.ts'
import { hashToken, type TokenEntry } from '../shared/token-registry.ts'
import { periodStarts } from '../admin/data/activity.ts'
import { addAdmin, login, seedSession, sessionBody, startAdmin } from './helpers/admin-support.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig({ PUBLIC_URL: 'https://rdt.example.org' })
const { app } = await startAdmin(config)
const redis = new Redis(config.redisUrl)
const k = keys(config.redisPrefix)
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  const ks = await redis.keys(`${config.redisPrefix}:*`)
  if (ks.length) await redis.del(...ks)
  redis.disconnect()
  await app.close()
})
await addAdmin(app, 'ops@example.org')
const b = await login(app, 'ops@example.org')
const entryOf = async (token: string) => JSON.parse((await redis.hget(k.tokens, hashToken(token))) ?? 'null') as TokenEntry | null
const dsnOf = (body: string) => /<code class="dsn" id="dsn">([^<]+)<\/code>/.exec(body)?.[1]

let wsId = ''
t.test('create and rename a workspace', async (t) => {
  const bad = await b.post('/workspaces', { slug: 'Bad Slug', _csrf: b.csrf })
  t.equal(bad.statusCode, 400)
  t.match(bad.body, 'invalid slug')
  const res = await b.post('/workspaces', { slug: 'clinic-a', name: 'Clinic <A>', _csrf: b.csrf })
  t.equal(res.statusCode, 303)
  wsId = /\/workspaces\/(w[0-9a-f]{16})\/tokens/.exec(res.headers.location as string)![1]!
  const list = await b.get('/workspaces')
  t.match(list.body, 'Clinic &lt;A&gt;', 'names are escaped')
  t.notMatch(list.body, 'Clinic <A>')
  t.equal((await b.post('/workspaces', { slug: 'clinic-a', _csrf: b.csrf })).statusCode, 400, 'duplicate slug')
  const r = await b.post(`/workspaces/${wsId}/rename`, { name: 'Clinic A', slug: 'clinic-a2', _csrf: b.csrf })
  t.equal(r.statusCode, 303)
  const ws = await app.db.collection('workspaces').findOne({ _id: wsId as never })
  t.match(ws, { slug: 'clinic-a2', name: 'Clinic A' })
  t.match((await b.get(`/workspaces/${wsId}/settings?done=renamed`)).body, 'Workspace saved.')
  t.equal((await b.get('/workspaces/wffffffffffffffff/settings')).statusCode, 404)
})

let token = ''
let tokenId = ''
t.test('create a token: DSN shown once with a QR code; then revoke it', async (t) => {
  const res = await b.post(`/workspaces/${wsId}/tokens`, {
    label: 'tablet 7',
    permissions: ['test_session', 'media'],
    expires: '',
    _csrf: b.csrf,
  })
  t.equal(res.statusCode, 200)
  const dsn = dsnOf(res.body)!
  t.match(dsn, /^https:\/\/rdt\.example\.org\/ingest\/rdt_[A-Za-z0-9_-]{43}$/)
  t.match(res.body, /<img class="qr" alt="QR code of the DSN" src="data:image\/png;base64,/)
  t.match(res.body, 'data-copy="dsn"')
  t.equal(res.headers['cache-control'], 'no-store')
  token = dsn.split('/').pop()!
  const doc = (await app.db.collection('tokens').findOne({ workspace_id: wsId }))!
  tokenId = String(doc._id)
  t.same(doc.permissions, ['test_session', 'media'])
  t.equal(doc.label, 'tablet 7')
  const page = await b.get(`/workspaces/${wsId}/tokens`)
  t.notMatch(page.body, token, 'the token is never shown again')
  t.match(page.body, tokenId)
  t.match(await entryOf(token), { id: tokenId, revoked: false, workspace_active: true })

  const bad = await b.post(`/workspaces/${wsId}/tokens`, { label: 'x', permissions: 'logs', expires: '2001-01-01', _csrf: b.csrf })
  t.equal(bad.statusCode, 400)
  t.match(bad.body, 'must be in the future')

  const withExpiry = await b.post(`/workspaces/${wsId}/tokens`, {
    label: 'short',
    permissions: 'logs',
    expires: '2099-12-31',
    _csrf: b.csrf,
  })
  t.equal(withExpiry.statusCode, 200)
  const short = await app.db.collection('tokens').findOne({ label: 'short' })
  t.equal(short?.expires_at?.toISOString(), '2099-12-31T00:00:00.000Z')

  const rv = await b.post(`/workspaces/${wsId}/tokens/${short!._id}/revoke`, { _csrf: b.csrf })
  t.equal(rv.statusCode, 303)
  t.ok((await app.db.collection('tokens').findOne({ label: 'short' }))?.revoked_at instanceof Date)
  t.match((await b.get(rv.headers.location as string)).body, 'Token revoked')
})

t.test('deactivate and reactivate: the mirror follows at once', async (t) => {
  t.equal((await b.post(`/workspaces/${wsId}/deactivate`, { _csrf: b.csrf })).statusCode, 303)
  t.match(await entryOf(token), { workspace_active: false })
  t.match((await b.get(`/workspaces/${wsId}/settings`)).body, 'Reactivate workspace')
  t.equal((await b.post(`/workspaces/${wsId}/activate`, { _csrf: b.csrf })).statusCode, 303)
  t.match(await entryOf(token), { workspace_active: true })
})

t.test('rotate: a new token, the old one works for the grace period', async (t) => {
  const before = Date.now()
  t.equal(
    (await b.post(`/workspaces/${wsId}/tokens/${tokenId}/rotate`, { grace: '12345', _csrf: b.csrf })).statusCode,
    400,
    'only listed grace periods',
  )
  const res = await b.post(`/workspaces/${wsId}/tokens/${tokenId}/rotate`, { grace: String(3600_000), _csrf: b.csrf })
  t.equal(res.statusCode, 200)
  const dsn = dsnOf(res.body)!
  const newToken = dsn.split('/').pop()!
  t.not(newToken, token)
  const old = (await app.db.collection('tokens').findOne({ _id: tokenId as never }))!
  const exp = old.expires_at as Date
  t.ok(exp.getTime() >= before + 3600_000 - 1000 && exp.getTime() <= Date.now() + 3600_000, 'old token expires in an hour')
  t.equal(old.revoked_at, null)
  const oldEntry = (await entryOf(token))!
  t.equal(oldEntry.expires_at, exp.toISOString(), 'the mirror has the new expiry')
  const fresh = (await app.db.collection('tokens').findOne({ token_hash: hashToken(newToken) }))!
  t.same(fresh.permissions, ['test_session', 'media'], 'same permissions')
  t.equal(fresh.label, 'tablet 7', 'same label')
  t.match(await entryOf(newToken), { revoked: false, expires_at: null })
  const audit = await app.db.collection('audit_log').findOne({ action: 'token.rotate' })
  t.match(audit, { actor: 'admin:ops@example.org', target: { token_id: tokenId, new_token_id: String(fresh._id), grace_ms: 3600_000 } })
  // Rotating an expired or revoked token is refused.
  const gone = await b.post(`/workspaces/${wsId}/tokens/${tokenId}/rotate`, { grace: '0', _csrf: b.csrf })
  t.equal(gone.statusCode, 200, 'still active during the grace period, so it may be rotated again')
  const dead = (await app.db.collection('tokens').findOne({ label: 'short' }))!
  t.equal((await b.post(`/workspaces/${wsId}/tokens/${dead._id}/rotate`, { grace: '0', _csrf: b.csrf })).statusCode, 404)
})

t.test('a token can only be changed through its own workspace', async (t) => {
  const other = await app.tokenAdmin.createWorkspace('other-ws', { actor: 'test' })
  const res = await b.post(`/workspaces/${other.id}/tokens/${tokenId}/revoke`, { _csrf: b.csrf })
  t.equal(res.statusCode, 404)
})

t.test('last used per token and per-workspace counts, from stored uploads', async (t) => {
  const fresh = (await app.db.collection('tokens').find({ workspace_id: wsId, revoked_at: null }).sort({ created_at: -1 }).toArray())[0]!
  const at = new Date(Date.now() - 5 * 60_000)
  await seedSession(app.db, { workspaceId: wsId, sessionId: 's-used-1', tokenId: String(fresh._id), body: sessionBody(), receivedAt: at })
  await app.db.collection('test_session_media').insertOne({
    workspace_id: wsId,
    session_id: 's-used-1',
    media_id: 'raw',
    token_id: String(fresh._id),
    received_at: new Date(at.getTime() + 60_000),
  })
  await seedSession(app.db, {
    workspaceId: wsId,
    sessionId: 's-old',
    tokenId: String(fresh._id),
    body: sessionBody(),
    receivedAt: new Date(periodStarts(new Date()).week.getTime() - 1000),
  })
  const page = await b.get(`/workspaces/${wsId}/tokens`)
  const row = new RegExp(`<tr data-token="${fresh._id}">[\\s\\S]*?</tr>`).exec(page.body)![0]
  t.match(row, /title="[^"]+">4 min ago</, 'last used = newest upload (the photo, 4 minutes ago)')
  const list = await b.get('/workspaces')
  const wsRow = /<tr>\s*<td><a href="\/workspaces\/[^"]+\/dashboard">Clinic A<\/a>[\s\S]*?<\/tr>/.exec(list.body)![0]
  const nums = [...wsRow.matchAll(/<td class="num">(\d+)<\/td>/g)].map((m) => Number(m[1]))
  const { today } = periodStarts(new Date())
  t.equal(nums[0], at >= today ? 1 : 0, 'sessions today')
  t.equal(nums[1], 1, 'sessions this week')
  t.match(wsRow, '4 min ago')
})

t.test('every action is in the audit log, visible in the panel', async (t) => {
  const page = await b.get('/audit')
  for (const a of [
    'workspace.create',
    'workspace.rename',
    'workspace.deactivate',
    'workspace.activate',
    'token.create',
    'token.revoke',
    'token.rotate',
    'admin.login',
  ]) {
    t.match(page.body, a)
  }
  t.match(page.body, 'admin:ops@example.org')
  const scoped = await b.get(`/audit?workspace=${wsId}`)
  t.notMatch(scoped.body, 'other-ws')
})
