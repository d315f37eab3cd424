// The tokens module (tokens/) against the real stack: MongoDB (own database) and Redis (own prefix).
import { randomBytes } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import t from 'tap'
import { keys } from '../shared/keys.ts'
import { collections, connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { createTokenAdmin } from '../tokens/admin.ts'
import type { TokenAdminDeps } from '../tokens/context.ts'
import { parseExpiry } from '../tokens/rules.ts'
import { hashToken, syncTokenMirror, type TokenEntry } from '../shared/token-registry.ts'
import { inspectorEnv, roleEnv } from '../stack/roles.ts'

const env = { ...process.env }
if (!env.MONGODB_URL || !env.REDIS_URL) throw new Error('MONGODB_URL and REDIS_URL must be set (run through `npm test`)')

const mongoUrl = new URL(env.MONGODB_URL)
mongoUrl.pathname = `/t_tokadm_${randomBytes(4).toString('hex')}`
const { client, db } = await connectMongo(mongoUrl.toString(), 1)
await ensureIndexes(db)
const prefix = `{t-${randomBytes(5).toString('hex')}}`
const k = keys(prefix)
// The code under test runs in the admin panel and the CLI: it gets their Redis user. The test's
// own checks (and the worker's mirror sync below) use the test-only inspector.
const adminRedis = new Redis(roleEnv(env, 'admin').REDIS_URL!)
const redis = new Redis(inspectorEnv(env).REDIS_URL!)
const sub = new Redis(inspectorEnv(env).REDIS_URL!)
const c = collections(db)
const ACTOR = 'test:token-admin'
const PUBLIC_URL = 'https://rdt.test.example/'

t.teardown(async () => {
  await redis.del(k.tokens, k.tokensSynced)
  await db.dropDatabase().catch(() => {})
  await client.close()
  redis.disconnect()
  adminRedis.disconnect()
  sub.disconnect()
})

function makeAdmin(extra: Partial<TokenAdminDeps> = {}) {
  return createTokenAdmin({ db, redis: adminRedis, prefix, publicUrl: PUBLIC_URL, ...extra })
}
const admin = makeAdmin()

async function mirrorEntry(hash: string): Promise<TokenEntry | null> {
  const raw = await redis.hget(k.tokens, hash)
  return raw === null ? null : (JSON.parse(raw) as TokenEntry)
}

/** Collects messages on the change channel; `waitFor` resolves once every wanted hash arrived, or rejects at the deadline. */
async function listen() {
  const seen = new Set<string>()
  const waiters = new Set<() => void>()
  const onMessage = (channel: string, message: string) => {
    if (channel !== k.tokensChannel) return
    seen.add(message)
    for (const w of waiters) w()
  }
  sub.on('message', onMessage)
  await sub.subscribe(k.tokensChannel)
  return {
    seen,
    waitFor(hashes: string[], ms = 2000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (hashes.every((h) => seen.has(h))) {
            cleanup()
            resolve()
          }
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`no publish within ${ms} ms for ${hashes.filter((h) => !seen.has(h)).length} hash(es)`))
        }, ms)
        const cleanup = () => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      })
    },
    async close() {
      sub.off('message', onMessage)
      await sub.unsubscribe(k.tokensChannel)
    },
  }
}

/** A refused admin action: a TokenAdminError with this code (and message). */
function rejectsCode(tt: Pick<typeof t, 'rejects'>, p: Promise<unknown>, code: string, message?: RegExp) {
  return tt.rejects(p, { name: 'TokenAdminError', code, ...(message ? { message } : {}) }, code)
}

t.test('workspaces: create, ids, duplicates, bad slugs, rename, list', async (t) => {
  const ws = await admin.createWorkspace('alpha', { name: 'Alpha clinic', actor: ACTOR })
  t.match(ws.id, /^w[0-9a-f]{16}$/, 'id is w + 16 lowercase hex')
  t.equal(ws.slug, 'alpha')
  t.equal(ws.name, 'Alpha clinic')
  t.equal(ws.active, true)
  const stored = await c.workspaces.findOne({ _id: ws.id })
  t.equal(stored?.slug, 'alpha')
  t.ok(stored?.created_at instanceof Date, 'BSON date')

  const noName = await admin.createWorkspace('beta-2', { actor: ACTOR })
  t.equal(noName.name, 'beta-2', 'name defaults to the slug')

  await rejectsCode(t, admin.createWorkspace('alpha', { actor: ACTOR }), 'duplicate_slug', /already exists/)
  t.equal(await c.workspaces.countDocuments({ slug: 'alpha' }), 1, 'still one alpha')
  for (const bad of ['', 'Alpha', '-x', 'a_b', 'a'.repeat(64), 'a b', 'w0123456789abcdef']) {
    await rejectsCode(t, admin.createWorkspace(bad, { actor: ACTOR }), 'bad_slug')
  }
  t.ok(await admin.createWorkspace('a'.repeat(63), { actor: ACTOR }), '63 chars is fine')
  await rejectsCode(t, admin.createWorkspace('gamma', { actor: '' }), 'bad_actor')

  const renamed = await admin.renameWorkspace('beta-2', { slug: 'beta', name: 'Beta' }, ACTOR)
  t.equal(renamed.slug, 'beta')
  t.equal(renamed.id, noName.id, 'same id')
  await rejectsCode(t, admin.renameWorkspace('beta', { slug: 'alpha' }, ACTOR), 'duplicate_slug')
  await rejectsCode(t, admin.renameWorkspace('nope', { name: 'x' }, ACTOR), 'unknown_workspace')
  t.equal((await admin.getWorkspace(ws.id)).slug, 'alpha', 'lookup by id')

  const list = await admin.listWorkspaces()
  t.same(
    list.map((w) => w.slug),
    ['a'.repeat(63), 'alpha', 'beta'],
  )
  t.equal(list.find((w) => w.slug === 'alpha')?.tokens, 0)

  const audit = await c.audit.find({ 'target.workspace_id': ws.id }).toArray()
  t.same(
    audit.map((a) => [a.action, a.actor]),
    [['workspace.create', ACTOR]],
  )
  t.ok(audit[0]?.at instanceof Date)
  t.ok(await c.audit.findOne({ action: 'workspace.rename', 'target.old_slug': 'beta-2', 'target.slug': 'beta' }), 'rename audited')
})

t.test('createToken stores only the hash and mirrors the entry', async (t) => {
  const ws = await admin.createWorkspace('hashes', { actor: ACTOR })
  const events = await listen()
  t.teardown(() => events.close())

  const created = await admin.createToken({ workspace: 'hashes', label: 'phone 7', actor: ACTOR })
  t.match(created.id, /^t[0-9a-f]{16}$/)
  t.equal(created.workspace, 'hashes')
  t.equal(created.workspace_id, ws.id)
  t.same(created.permissions, ['test_session', 'logs', 'media'], 'all permissions by default')
  t.equal(created.label, 'phone 7')
  t.equal(created.expires_at, null)
  t.equal(created.dsn, `https://rdt.test.example/ingest/${created.token}`, 'trailing slash of PUBLIC_URL ignored')
  t.match(created.token, /^[A-Za-z0-9_-]+$/, 'token fits a DSN path segment')
  t.equal(created.mirrored, true)
  const hash = hashToken(created.token)
  t.notOk(JSON.stringify(created).includes(hash), 'the result never carries the hash')

  const secretPart = created.token.replace(/^rdt_/, '')
  const allTokens = JSON.stringify(await c.tokens.find().toArray())
  t.notOk(allTokens.includes(secretPart), 'the token (or its random part) appears nowhere in the tokens collection')
  const doc = await c.tokens.findOne({ _id: created.id })
  t.equal(doc?.token_hash, hash, 'stored as sha256')
  t.equal(doc?.revoked_at, null)

  t.match(await mirrorEntry(hash), {
    v: Number,
    id: created.id,
    workspace_id: ws.id,
    permissions: ['test_session', 'logs', 'media'],
    expires_at: null,
    revoked: false,
    workspace_active: true,
  })
  await events.waitFor([hash])

  const listed = await admin.listTokens({ workspace: 'hashes' })
  t.equal(listed.length, 1)
  t.equal(listed[0]?.status, 'active')
  t.notOk('token_hash' in (listed[0] ?? {}), 'listTokens has no hash field')
  t.notOk(JSON.stringify(listed).includes(hash), 'listTokens never carries the hash')
  const auditText = JSON.stringify(await c.audit.find().toArray())
  t.notOk(auditText.includes(hash) || auditText.includes(secretPart), 'the audit log holds neither token nor hash')
  t.ok(await c.audit.findOne({ action: 'token.create', actor: ACTOR, 'target.token_id': created.id }), 'creation audited')

  // Two tokens never share a value.
  const other = await admin.createToken({ workspace: ws.id, actor: ACTOR })
  t.not(other.token, created.token)
  t.equal(other.workspace, 'hashes', 'workspace given by id')
})

t.test('permissions and labels are validated', async (t) => {
  await admin.createWorkspace('perms', { actor: ACTOR })
  const some = await admin.createToken({ workspace: 'perms', permissions: ['media', 'logs', 'logs'], actor: ACTOR })
  t.same(some.permissions, ['logs', 'media'], 'deduplicated, canonical order')
  t.same((await mirrorEntry(hashToken(some.token)))?.permissions, ['logs', 'media'])
  await rejectsCode(t, admin.createToken({ workspace: 'perms', permissions: ['logs', 'admin'], actor: ACTOR }), 'bad_permission', /admin/)
  await rejectsCode(t, admin.createToken({ workspace: 'perms', permissions: [], actor: ACTOR }), 'bad_permission')
  await rejectsCode(t, admin.createToken({ workspace: 'perms', label: 'x'.repeat(201), actor: ACTOR }), 'bad_label')
  await rejectsCode(t, admin.createToken({ workspace: 'perms', label: 'a\u001b[31m', actor: ACTOR }), 'bad_label')
  await rejectsCode(t, admin.createToken({ workspace: 'nope', actor: ACTOR }), 'unknown_workspace', /unknown workspace "nope"/)
  await rejectsCode(t, admin.createToken({ workspace: 'w0000000000000000', actor: ACTOR }), 'unknown_workspace')
  await rejectsCode(t, admin.listTokens({ workspace: 'nope' }), 'unknown_workspace')
  t.equal((await admin.listTokens({ workspace: 'perms' })).length, 1, 'refused tokens were not stored')
})

t.test('expiry: ISO 8601, in the future, listed as expired afterwards', async (t) => {
  const now = new Date('2030-06-15T12:00:00Z')
  t.equal(parseExpiry('2030-06-16', now).toISOString(), '2030-06-16T00:00:00.000Z', 'a date is UTC midnight')
  t.equal(parseExpiry('2030-06-15T13:00', now).toISOString(), '2030-06-15T13:00:00.000Z', 'no offset means UTC')
  t.equal(parseExpiry('2030-06-15T14:30:00+02:00', now).toISOString(), '2030-06-15T12:30:00.000Z', 'offset honoured')
  t.equal(parseExpiry('2030-06-15T12:00:00.250Z', now).toISOString(), '2030-06-15T12:00:00.250Z', 'fractions')
  t.equal(parseExpiry('2030-06-15T08:00:00-0500', now).toISOString(), '2030-06-15T13:00:00.000Z', 'basic-format offset')
  for (const bad of ['tomorrow', '2030-02-30', '2030-13-01', '2030-06-15T25:00Z', '15/06/2031', '2031-06-15T12:00+25:00', '']) {
    t.throws(() => parseExpiry(bad, now), { code: 'bad_expiry' }, `refuses ${JSON.stringify(bad)}`)
  }
  t.throws(() => parseExpiry('2030-06-15T12:00:00Z', now), { code: 'bad_expiry', message: /future/ }, 'now is not the future')
  t.throws(() => parseExpiry('2030-06-01', now), { code: 'bad_expiry', message: /future/ })
  t.throws(() => parseExpiry(new Date('nope'), now), { code: 'bad_expiry' })

  await admin.createWorkspace('expiry', { actor: ACTOR })
  await rejectsCode(t, admin.createToken({ workspace: 'expiry', expiresAt: '2001-01-01', actor: ACTOR }), 'bad_expiry', /future/)
  await rejectsCode(t, admin.createToken({ workspace: 'expiry', expiresAt: new Date(Date.now() - 1000), actor: ACTOR }), 'bad_expiry')

  const inAnHour = new Date(Date.now() + 3600_000)
  const created = await admin.createToken({ workspace: 'expiry', expiresAt: inAnHour.toISOString(), actor: ACTOR })
  t.equal(created.expires_at, inAnHour.toISOString())
  t.equal((await c.tokens.findOne({ _id: created.id }))?.expires_at?.getTime(), inAnHour.getTime(), 'stored as a BSON date')
  t.equal((await mirrorEntry(hashToken(created.token)))?.expires_at, inAnHour.toISOString(), 'mirrored')

  t.equal((await admin.listTokens({ workspace: 'expiry' }))[0]?.status, 'active')
  const later = makeAdmin({ now: () => new Date(Date.now() + 2 * 3600_000) })
  t.equal((await later.listTokens({ workspace: 'expiry' }))[0]?.status, 'expired', 'expired once past expires_at')
  const listed = (await later.listWorkspaces()).find((w) => w.slug === 'expiry')
  t.equal(listed?.active_tokens, 0)
  t.equal(listed?.tokens, 1)
})

t.test('revocation updates the mirror and publishes; it is idempotent', async (t) => {
  await admin.createWorkspace('revoke', { actor: ACTOR })
  const tok = await admin.createToken({ workspace: 'revoke', actor: ACTOR })
  const keep = await admin.createToken({ workspace: 'revoke', actor: ACTOR })
  const hash = hashToken(tok.token)
  const events = await listen()
  t.teardown(() => events.close())

  const started = Date.now()
  const res = await admin.revokeToken(tok.id, ACTOR)
  // The announcement is part of the revoke call itself; its latency is a benchmark figure, not a test.
  await events.waitFor([hash], 10_000)
  t.pass(`announced ${Date.now() - started} ms after the call started`)
  t.equal(res.already_revoked, false)
  t.equal(res.mirrored, true)
  t.equal((await mirrorEntry(hash))?.revoked, true, 'mirror says revoked')
  t.equal((await mirrorEntry(hashToken(keep.token)))?.revoked, false, 'other token untouched')
  t.notOk(events.seen.has(hashToken(keep.token)), 'other token not announced')
  const doc = await c.tokens.findOne({ _id: tok.id })
  t.ok(doc?.revoked_at instanceof Date, 'revoked_at set')

  events.seen.clear()
  const again = await admin.revokeToken(tok.id, ACTOR)
  t.equal(again.already_revoked, true)
  t.equal(again.revoked_at.getTime(), doc?.revoked_at?.getTime(), 'first revoked_at kept')
  await events.waitFor([hash], 1000)
  t.equal((await mirrorEntry(hash))?.revoked, true)

  const statuses = await admin.listTokens({ workspace: 'revoke' })
  t.same(
    statuses.map((s) => [s.id, s.status]),
    [
      [tok.id, 'revoked'],
      [keep.id, 'active'],
    ],
  )
  const audit = await c.audit.find({ action: 'token.revoke', 'target.token_id': tok.id }).toArray()
  t.same(
    audit.map((a) => a.target.already_revoked),
    [false, true],
    'both calls audited',
  )
  await rejectsCode(t, admin.revokeToken('t0000000000000000', ACTOR), 'unknown_token')
  await rejectsCode(t, admin.revokeToken('../etc', ACTOR), 'bad_token_id')
})

t.test('deactivating a workspace flips workspace_active for its tokens only', async (t) => {
  const a = await admin.createWorkspace('deact-a', { actor: ACTOR })
  await admin.createWorkspace('deact-b', { actor: ACTOR })
  const a1 = hashToken((await admin.createToken({ workspace: 'deact-a', actor: ACTOR })).token)
  const a2 = hashToken((await admin.createToken({ workspace: 'deact-a', permissions: ['logs'], actor: ACTOR })).token)
  const b1 = hashToken((await admin.createToken({ workspace: 'deact-b', actor: ACTOR })).token)
  const events = await listen()
  t.teardown(() => events.close())

  const off = await admin.setWorkspaceActive('deact-a', false, ACTOR)
  t.equal(off.changed, true)
  t.equal(off.active, false)
  t.equal(off.tokens_republished, 2)
  await events.waitFor([a1, a2])
  t.equal((await mirrorEntry(a1))?.workspace_active, false)
  t.equal((await mirrorEntry(a2))?.workspace_active, false)
  t.same((await mirrorEntry(a2))?.permissions, ['logs'], 'rest of the entry intact')
  t.equal((await mirrorEntry(b1))?.workspace_active, true, 'other workspace untouched')
  t.equal((await c.workspaces.findOne({ _id: a.id }))?.active, false)
  const listed = await admin.listTokens({ workspace: 'deact-a' })
  t.ok(listed.every((x) => x.workspace_active === false && x.status === 'active'))

  const again = await admin.setWorkspaceActive(a.id, false, ACTOR)
  t.equal(again.changed, false, 'already inactive')

  events.seen.clear()
  const on = await admin.setWorkspaceActive('deact-a', true, ACTOR)
  t.equal(on.changed, true)
  await events.waitFor([a1, a2])
  t.equal((await mirrorEntry(a1))?.workspace_active, true)

  t.same(
    (await c.audit.find({ 'target.workspace_id': a.id }).toArray()).map((x) => x.action),
    ['workspace.create', 'token.create', 'token.create', 'workspace.deactivate', 'workspace.deactivate', 'workspace.activate'],
  )
  await rejectsCode(t, admin.setWorkspaceActive('nope', false, ACTOR), 'unknown_workspace')
})

t.test('with Redis down the MongoDB write stands and the worker sync repairs the mirror', async (t) => {
  await admin.createWorkspace('offline', { actor: ACTOR })
  const failures: string[] = []
  // A Redis that refuses connections: a port that was just free.
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as AddressInfo).port
  await new Promise((resolve) => srv.close(resolve))
  const dead = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 500,
  })
  dead.on('error', () => {})
  t.teardown(() => dead.disconnect())
  const offline = makeAdmin({ redis: dead, onMirrorError: (_err, action) => failures.push(action) })

  const created = await offline.createToken({ workspace: 'offline', actor: ACTOR })
  t.equal(created.mirrored, false)
  t.ok(await c.tokens.findOne({ _id: created.id }), 'stored in MongoDB')
  t.equal(await mirrorEntry(hashToken(created.token)), null, 'not mirrored yet')

  const revoked = await offline.revokeToken(created.id, ACTOR)
  t.equal(revoked.mirrored, false)
  const noRedis = makeAdmin({ redis: null, onMirrorError: (_err, action) => failures.push(action) })
  await noRedis.setWorkspaceActive('offline', false, ACTOR)
  t.same(failures, ['token.create', 'token.revoke', 'workspace.deactivate'])
  t.ok(await c.audit.findOne({ action: 'token.revoke', 'target.token_id': created.id }), 'still audited')

  await syncTokenMirror(db, redis, prefix)
  t.match(await mirrorEntry(hashToken(created.token)), {
    v: Number,
    id: created.id,
    workspace_id: created.workspace_id,
    permissions: created.permissions,
    expires_at: null,
    revoked: true,
    workspace_active: false,
  })
})
