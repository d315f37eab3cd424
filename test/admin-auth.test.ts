// Admin log-in, sessions, CSRF, the log-in rate limit, security headers, and the rule that
// nothing (no page, no datum, no photo) is reachable without a log-in: every route is tried.
import t from 'tap'
import { Redis } from 'ioredis'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { hashPassword, verifyPassword, SCRYPT_PARAMS } from '../admin/security/passwords.ts'
import { addAdmin, browser, csrfOf, login, seedMedia, seedSession, sessionBody, startAdmin, TEST_PASSWORD } from './helpers/admin-support.ts'
import { isLocalHttp, loadAdminConfig } from '../admin/config.ts'
import { CSP } from '../admin/app.ts'
import { fakeJpeg } from './helpers/media.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const { app } = await startAdmin(config, { adminConfig: { loginMaxPerEmail: 3, loginMaxPerIp: 8 } })
const redis = new Redis(config.redisUrl)
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  const keys = await redis.keys(`${config.redisPrefix}:*`)
  if (keys.length) await redis.del(...keys)
  redis.disconnect()
  await app.close()
})
await addAdmin(app, 'ops@example.org')

t.test('passwords are scrypt hashes with their parameters', async (t) => {
  const h = await hashPassword('a long enough password')
  t.match(h, { alg: 'scrypt', N: 2 ** 15, r: 8, p: 1 })
  t.equal(SCRYPT_PARAMS.N, 32768)
  t.equal(Buffer.from(h.salt, 'base64').length, 16)
  t.ok(await verifyPassword('a long enough password', h))
  t.notOk(await verifyPassword('a long enough passwort', h))
  t.notOk(await verifyPassword('x', { ...h, hash: 'AAAA' }), 'a malformed hash fails, without throwing')
  const stored = await app.db.collection('admin_users').findOne({ email: 'ops@example.org' })
  t.notMatch(JSON.stringify(stored), TEST_PASSWORD, 'the password itself is not stored')
})

t.test('cookie Secure default: on unless the panel is plain http on localhost', async (t) => {
  t.ok(isLocalHttp('http://127.0.0.1:8081'))
  t.ok(isLocalHttp('http://localhost:8081'))
  t.notOk(isLocalHttp('https://admin.example.org'))
  t.notOk(isLocalHttp('http://10.0.0.5:8081'))
  t.equal(loadAdminConfig(config, {}).cookieSecure, false)
  t.equal(loadAdminConfig(config, { ADMIN_URL: 'https://admin.example.org' }).cookieSecure, true)
  t.equal(loadAdminConfig(config, { ADMIN_URL: 'https://admin.example.org', ADMIN_COOKIE_SECURE: 'false' }).cookieSecure, false)
  t.throws(() => loadAdminConfig(config, { ADMIN_COOKIE_SECURE: 'maybe' }), /ADMIN_COOKIE_SECURE/)
  t.throws(() => loadAdminConfig(config, { ADMIN_MISSING_MEDIA_DELAY_MS: '-1' }), /ADMIN_MISSING_MEDIA_DELAY_MS/)
})

t.test('log-in: wrong password refused, right one gives an HttpOnly SameSite=Strict session cookie', async (t) => {
  const b = browser(app)
  const page = await b.get('/login')
  t.equal(page.statusCode, 200)
  t.equal(page.headers['content-security-policy'], CSP)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  const bad = await b.post('/login', { _csrf: csrfOf(page.body), email: 'ops@example.org', password: 'wrong password!!' })
  t.equal(bad.statusCode, 401)
  t.match(bad.body, 'Wrong email or password')
  const unknown = await b.post('/login', { _csrf: csrfOf(bad.body), email: 'nobody@example.org', password: 'wrong password!!' })
  t.equal(unknown.statusCode, 401, 'an unknown email gets the same answer')
  const ok = await b.post('/login', { _csrf: csrfOf(unknown.body), email: ' OPS@example.org ', password: TEST_PASSWORD, next: '/audit' })
  t.equal(ok.statusCode, 303)
  t.equal(ok.headers.location, '/audit', 'back to the page asked for')
  const setCookie = [ok.headers['set-cookie']].flat().join('\n')
  t.match(setCookie, /rdt_admin=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Strict/)
  t.notMatch(setCookie, /Secure/, 'not Secure on http://127.0.0.1')
  const sessions = await app.db.collection('admin_sessions').find().toArray()
  const cookie = b.cookies.get('rdt_admin')!
  t.notOk(sessions.some((s) => JSON.stringify(s).includes(cookie)), 'only the hash of the session id is stored')
  const home = await b.get('/workspaces')
  t.equal(home.statusCode, 200)
  t.match(home.body, 'ops@example.org')
  t.equal(home.headers['cache-control'], 'no-store')

  const evil = await b.get('/login?next=//evil.example/x')
  t.equal(evil.headers.location, '/workspaces', 'no open redirect')

  const audit = await app.db.collection('audit_log').find({ action: { $in: ['admin.login', 'admin.login_failed'] } }).toArray()
  t.ok(audit.some((a) => a.action === 'admin.login' && a.actor === 'admin:ops@example.org'))
  t.ok(audit.some((a) => a.action === 'admin.login_failed'))
})

t.test('Secure cookies with the __Host- prefix when the panel is on https', async (t) => {
  const { app: secureApp } = await startAdmin(config, { adminConfig: { cookieSecure: true } })
  t.teardown(() => secureApp.close())
  const b = browser(secureApp)
  const page = await b.get('/login')
  t.match([page.headers['set-cookie']].flat().join('\n'), /__Host-rdt_admin_login=.*; Secure/)
  const ok = await b.post('/login', { _csrf: csrfOf(page.body), email: 'ops@example.org', password: TEST_PASSWORD })
  t.equal(ok.statusCode, 303)
  t.match([ok.headers['set-cookie']].flat().join('\n'), /__Host-rdt_admin=[^;]+; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Strict/)
  t.match(ok.headers['strict-transport-security'] ?? '', 'max-age=')
})

t.test('CSRF: forms without the session token are refused', async (t) => {
  const b = await login(app, 'ops@example.org')
  const before = await app.db.collection('workspaces').countDocuments()
  t.equal((await b.post('/workspaces', { slug: 'csrf-a' })).statusCode, 403, 'no token')
  t.equal((await b.post('/workspaces', { slug: 'csrf-a', _csrf: 'x'.repeat(43) })).statusCode, 403, 'wrong token')
  t.equal((await b.post('/workspaces', { slug: 'csrf-a', _csrf: b.csrf }, { 'sec-fetch-site': 'cross-site' })).statusCode, 403, 'cross-site')
  const other = await login(app, 'ops@example.org')
  t.equal((await b.post('/workspaces', { slug: 'csrf-a', _csrf: other.csrf })).statusCode, 403, "another session's token")
  t.equal(await app.db.collection('workspaces').countDocuments(), before, 'nothing was created')
  t.equal((await b.post('/workspaces', { slug: 'csrf-a', _csrf: b.csrf })).statusCode, 303, 'the right token works')
  // The log-in form: double-submit cookie.
  const anon = browser(app)
  t.equal((await anon.post('/login', { _csrf: 'abc', email: 'ops@example.org', password: TEST_PASSWORD })).statusCode, 403)
})

t.test('failed log-ins are rate-limited per email and per IP (429, in Redis)', async (t) => {
  await addAdmin(app, 'limited@example.org')
  const b = browser(app)
  let body = (await b.get('/login')).body
  for (let i = 0; i < 3; i++) {
    const r = await b.post('/login', { _csrf: csrfOf(body), email: 'limited@example.org', password: 'not the password' }, { 'x-test': String(i) })
    t.equal(r.statusCode, 401)
    body = r.body
  }
  const blocked = await b.post('/login', { _csrf: csrfOf(body), email: 'limited@example.org', password: TEST_PASSWORD })
  t.equal(blocked.statusCode, 429, 'even the right password waits')
  t.ok(Number(blocked.headers['retry-after']) > 0)
  t.match(blocked.body, 'Too many failed log-ins')
  const keys = await redis.keys(`${config.redisPrefix}:admin:login-fail:*`)
  t.ok(keys.length >= 2, 'counters live in Redis under the prefix')
  t.notOk(keys.some((k) => k.includes('limited@')), 'emails are hashed in key names')
  // Per IP: other emails from the same address, until the IP limit (8 failures in all so far: 2 + 3 + these).
  let ipBlocked = false
  for (let i = 0; i < 6 && !ipBlocked; i++) {
    const r = await b.post('/login', { _csrf: csrfOf(body), email: `guess${i}@example.org`, password: 'not the password' })
    body = r.body
    ipBlocked = r.statusCode === 429
  }
  t.ok(ipBlocked, 'the IP is blocked after too many failures across emails')
  await redis.del(...keys, ...(await redis.keys(`${config.redisPrefix}:admin:login-fail:*`)))
})

t.test('log-out ends the session; an expired session is refused', async (t) => {
  const b = await login(app, 'ops@example.org')
  const cookie = b.cookies.get('rdt_admin')!
  t.equal((await b.post('/logout', { _csrf: b.csrf })).statusCode, 303)
  const res = await app.inject({ url: '/workspaces', headers: { cookie: `rdt_admin=${cookie}`, accept: 'text/html' } })
  t.equal(res.statusCode, 303, 'the old cookie no longer works')
  t.match(res.headers.location, /^\/login/)

  let now = Date.now()
  const { app: clocked } = await startAdmin(config, { now: () => new Date(now), adminConfig: { sessionTtlMs: 60_000 } })
  t.teardown(() => clocked.close())
  const c = await login(clocked, 'ops@example.org')
  t.equal((await c.get('/workspaces')).statusCode, 200)
  now += 61_000
  t.equal((await c.get('/workspaces')).statusCode, 303, 'expired after the TTL')
})

t.test('without a log-in, no route gives any data or image', async (t) => {
  const s3 = createS3(config.s3)
  await ensureBucket(s3, config.s3.bucket, config.s3.region)
  const b = await login(app, 'ops@example.org')
  await b.post('/workspaces', { slug: 'secret-ws', name: 'Secret clinic', _csrf: b.csrf })
  const ws = (await app.db.collection('workspaces').findOne({ slug: 'secret-ws' }))!
  const created = await app.tokenAdmin.createToken({ workspace: ws._id as unknown as string, actor: 'test', label: 'secret-label' })
  const sid = 'secret-session-1'
  await seedSession(app.db, { workspaceId: String(ws._id), sessionId: sid, tokenId: created.id, body: sessionBody({ profile: 'secret_profile' }) })
  const jpeg = fakeJpeg(2000)
  await seedMedia(app.db, s3, config.s3.bucket, { workspaceId: String(ws._id), sessionId: sid, mediaId: 'cropped', tokenId: created.id, bytes: jpeg })
  await app.db.collection('test_session_conflicts').insertOne({ workspace_id: ws._id, session_id: sid, sha256: 'f'.repeat(64), raw_body: '{"secret_conflict":1}', received_at: new Date(), original_sha256: null })

  const params: Record<string, string> = { ws: String(ws._id), sid, mid: 'cropped', tid: created.id }
  const secrets = ['Secret clinic', 'secret-ws', sid, 'secret_profile', 'secret-label', 'secret_conflict', created.id]
  const routes = app.adminRoutes.filter((r) => !r.public)
  t.ok(routes.length >= 20, `${routes.length} protected routes`)
  t.same(app.adminRoutes.filter((r) => r.public).map((r) => r.url).sort(), ['/favicon.ico', '/healthz', '/login', '/login', '/static/admin.css', '/static/admin.js'])
  const withLogin = await b.get(`/workspaces/${params.ws}/sessions/${sid}`)
  t.match(withLogin.body, 'secret_profile', 'the data is there for a logged-in admin')

  for (const r of routes) {
    const url = r.url.replace(/:(\w+)/g, (_, name: string) => params[name] ?? 'x') + '?format=csv&from=2000-01-01&to=2100-01-01&workspace=' + params.ws
    for (const accept of ['text/html', 'image/avif,image/webp,*/*', 'application/json']) {
      const res = await app.inject({ method: r.method as 'GET', url, headers: { accept, 'content-type': 'application/x-www-form-urlencoded' }, payload: r.method === 'POST' ? '_csrf=x&slug=hacked&label=x' : undefined })
      t.ok([303, 401, 403].includes(res.statusCode), `${r.method} ${r.url} (${accept}) -> ${res.statusCode}`)
      if (res.statusCode === 303) t.match(res.headers.location, /^\/login\?next=/)
      for (const s of secrets) if (res.body.includes(s)) t.fail(`${r.method} ${r.url} leaks ${s}`)
      t.notOk(res.rawPayload.includes(jpeg.subarray(0, 64)), 'no image bytes')
      t.notOk(String(res.headers['content-type'] ?? '').startsWith('image/'))
    }
  }
  t.equal(await app.db.collection('workspaces').countDocuments({ slug: 'hacked' }), 0, 'no anonymous change')
  t.equal((await app.db.collection('tokens').findOne({ _id: created.id as never }))?.revoked_at, null, 'the token was not revoked')
  // A forged or stale cookie is no log-in either.
  const forged = await app.inject({ url: `/workspaces/${params.ws}/sessions/${sid}/media/cropped`, headers: { cookie: 'rdt_admin=' + 'A'.repeat(43) } })
  t.equal(forged.statusCode, 303)
  const unknownPath = await app.inject({ url: '/no/such/page', headers: { accept: 'text/html' } })
  t.equal(unknownPath.statusCode, 303, 'even a 404 asks for a log-in first')
})
