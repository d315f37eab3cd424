// Admin log-in, sessions, CSRF, the log-in rate limit, security headers, and the rule that
// nothing (no page, no datum, no photo) is reachable without a log-in: every route is tried.
import t from 'tap'
import { Redis } from 'ioredis'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { createPasswordChecks } from '../admin/security/password-checks.ts'
import { hashPassword, needsRehash, verifyPassword, SCRYPT_PARAMS } from '../tokens/passwords.ts'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  addAdmin,
  browser,
  csrfOf,
  login,
  seedMedia,
  seedSession,
  sessionBody,
  startAdmin,
  TEST_PASSWORD,
} from './helpers/admin-support.ts'
import { isLocalHttp, loadAdminConfig } from '../admin/config.ts'
import { CSP } from '../admin/app.ts'
import { fakeJpeg } from '../testing/media.ts'
import { testConfig } from './helpers/env.ts'
import { untilEvent } from '../testing/wait.ts'

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
  t.match(h, { alg: 'scrypt', N: 2 ** 17, r: 8, p: 1 })
  t.equal(SCRYPT_PARAMS.N, 131072, 'at least N=2^17 (maxmem is passed: 128 MiB)')
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
  t.notOk(
    sessions.some((s) => JSON.stringify(s).includes(cookie)),
    'only the hash of the session id is stored',
  )
  const home = await b.get('/workspaces')
  t.equal(home.statusCode, 200)
  t.match(home.body, 'ops@example.org')
  t.equal(home.headers['cache-control'], 'no-store')

  const evil = await b.get('/login?next=//evil.example/x')
  t.equal(evil.headers.location, '/workspaces', 'no open redirect')

  const audit = await app.db
    .collection('audit_log')
    .find({ action: { $in: ['admin.login', 'admin.login_failed'] } })
    .toArray()
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
  t.equal(
    (await b.post('/workspaces', { slug: 'csrf-a', _csrf: b.csrf }, { 'sec-fetch-site': 'cross-site' })).statusCode,
    403,
    'cross-site',
  )
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
    const r = await b.post(
      '/login',
      { _csrf: csrfOf(body), email: 'limited@example.org', password: 'not the password' },
      { 'x-test': String(i) },
    )
    t.equal(r.statusCode, 401)
    body = r.body
  }
  const blocked = await b.post('/login', { _csrf: csrfOf(body), email: 'limited@example.org', password: TEST_PASSWORD })
  t.equal(blocked.statusCode, 429, 'even the right password waits')
  t.ok(Number(blocked.headers['retry-after']) > 0)
  t.match(blocked.body, 'Too many log-in attempts')
  const keys = await redis.keys(`${config.redisPrefix}:admin:login-fail:*`)
  t.ok(keys.length >= 2, 'counters live in Redis under the prefix')
  t.notOk(
    keys.some((k) => k.includes('limited@')),
    'emails are hashed in key names',
  )
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

t.test(
  '100 parallel wrong passwords for one email: at most the limit are verified, the rest get 429; another admin on the same address still logs in at once',
  async (t) => {
    await addAdmin(app, 'burst@example.org')
    await addAdmin(app, 'colleague@example.org')
    const page = await browser(app).get('/login')
    const csrf = csrfOf(page.body)
    const cookie = `rdt_admin_login=${csrf}`
    const before = app.passwordChecks.stats.verified
    const res = await Promise.all(
      Array.from({ length: 100 }, () =>
        app.inject({
          method: 'POST',
          url: '/login',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
          payload: `_csrf=${csrf}&email=burst%40example.org&password=wrong+password+${randomBytes(4).toString('hex')}`,
        }),
      ),
    )
    const codes = res.map((r) => r.statusCode)
    const verified = app.passwordChecks.stats.verified - before
    t.ok(verified <= 3, `${verified} scrypt verifications for 100 attempts (limit 3)`)
    t.equal(codes.filter((c) => c === 401).length, verified, 'each verified attempt is a 401')
    t.equal(codes.filter((c) => c === 429).length, 100 - verified, 'every other one is a 429')
    t.ok(
      res.filter((r) => r.statusCode === 429).every((r) => Number(r.headers['retry-after']) > 0),
      'with Retry-After',
    )
    t.equal(
      await app.db.collection('audit_log').countDocuments({ action: 'admin.login_failed', 'target.email': 'burst@example.org' }),
      verified,
      'the audit log agrees',
    )
    // Same address (app.inject: 127.0.0.1), another account, the right password: in at once.
    const t0 = Date.now()
    const colleague = await login(app, 'colleague@example.org')
    t.ok(colleague.csrf, `the colleague logged in (${Date.now() - t0} ms)`)
    t.equal(
      (await login(app, 'burst@example.org').catch((e: Error) => e.message)).toString().includes('429'),
      true,
      'the attacked account itself waits for its budget to refill',
    )
  },
)

t.test('scrypt checks in flight are capped per process; past the queue the attempt is refused, not queued', async (t) => {
  let running = 0
  let peak = 0
  const release: (() => void)[] = []
  // 'change' each time a check starts or ends, so the test waits on it instead of polling.
  const changes = new EventEmitter()
  const checks = createPasswordChecks({
    maxInFlight: 2,
    maxWaiting: 3,
    verify: async () => {
      running++
      peak = Math.max(peak, running)
      const released = new Promise<void>((r) => release.push(r))
      changes.emit('change')
      await released
      running--
      changes.emit('change')
      return false
    },
  })
  const stored = await hashPassword('irrelevant password', { N: 2 ** 10, r: 8, p: 1 })
  const all = Array.from({ length: 10 }, () =>
    checks.verify('x', stored).then(
      () => 'checked',
      (e: Error) => e.name,
    ),
  )
  await untilEvent(changes, 'change', () => release.length === 2, { what: 'two checks running' })
  while (release.length) {
    release.shift()!()
    await untilEvent(changes, 'change', () => release.length > 0 || running === 0, { what: 'the next check' })
  }
  const outcomes = await Promise.all(all)
  t.equal(peak, 2, 'never more than 2 at once')
  t.equal(outcomes.filter((o) => o === 'checked').length, 5, '2 running + 3 waiting were checked')
  t.equal(outcomes.filter((o) => o === 'PasswordChecksBusy').length, 5, 'the rest refused at once')
  t.same(checks.stats, { verified: 5, refused: 5 })
})

t.test('an address that sprays many emails is slowed to its refill rate, not locked out for the window', async (t) => {
  const { app: sprayApp } = await startAdmin(config, {
    adminConfig: { loginMaxPerEmail: 3, loginMaxPerIp: 4, loginWindowMs: 15 * 60_000, trustProxyHops: 1 },
  })
  t.teardown(() => sprayApp.close())
  const b = browser(sprayApp)
  let body = (await b.get('/login')).body
  const xff = { 'x-forwarded-for': '198.51.100.7' }
  let last = null as null | Awaited<ReturnType<typeof b.post>>
  for (let i = 0; i < 5; i++) {
    last = await b.post('/login', { _csrf: csrfOf(body), email: `spray${i}@example.org`, password: 'not the password' }, xff)
    body = last.body
  }
  t.equal(last!.statusCode, 429, 'the 5th attempt from the address (budget 4) waits')
  const retry = Number(last!.headers['retry-after'])
  t.ok(
    retry > 0 && retry <= (15 * 60) / 4,
    `Retry-After ${retry} s: one attempt comes back every window / budget (225 s), not the whole 15 minutes`,
  )
  const other = await b.post(
    '/login',
    { _csrf: csrfOf(body), email: 'ops@example.org', password: TEST_PASSWORD },
    { 'x-forwarded-for': '198.51.100.8' },
  )
  t.equal(other.statusCode, 303, 'another address is not affected')
})

t.test('proxy trust is a hop count: a spoofed leftmost X-Forwarded-For changes nothing', async (t) => {
  t.equal(loadAdminConfig(config, {}).trustProxyHops, 0)
  t.equal(loadAdminConfig(config, { ADMIN_TRUST_PROXY: 'true' }).trustProxyHops, 1, 'ADMIN_TRUST_PROXY=true (compose.yaml) means one hop')
  t.equal(loadAdminConfig(config, { ADMIN_TRUST_PROXY: 'false' }).trustProxyHops, 0)
  t.equal(loadAdminConfig(config, { ADMIN_TRUST_PROXY_HOPS: '2' }).trustProxyHops, 2)
  t.equal(loadAdminConfig(config, { ADMIN_TRUST_PROXY: 'true', ADMIN_TRUST_PROXY_HOPS: '0' }).trustProxyHops, 0, 'the hop count wins')
  t.throws(() => loadAdminConfig(config, { ADMIN_TRUST_PROXY_HOPS: 'all' }), /ADMIN_TRUST_PROXY_HOPS/)
  t.throws(() => loadAdminConfig(config, { ADMIN_TRUST_PROXY: 'yes' }), /ADMIN_TRUST_PROXY/)

  const { app: proxied } = await startAdmin(config, { adminConfig: loadAdminConfig(config, { ADMIN_TRUST_PROXY: 'true' }) })
  t.teardown(() => proxied.close())
  const b = browser(proxied)
  let body = (await b.get('/login')).body
  // What a client behind one proxy (Caddy appends the address it saw) sends, with made-up entries on the left.
  for (const spoof of ['1.2.3.4', '5.6.7.8, 9.9.9.9', 'garbage']) {
    const r = await b.post(
      '/login',
      { _csrf: csrfOf(body), email: 'proxied@example.org', password: 'not the password' },
      { 'x-forwarded-for': `${spoof}, 203.0.113.9` },
    )
    body = r.body
  }
  const ips = (
    await proxied.db.collection('audit_log').find({ action: 'admin.login_failed', 'target.email': 'proxied@example.org' }).toArray()
  ).map((a) => a.target.ip)
  t.same(ips, ['203.0.113.9', '203.0.113.9', '203.0.113.9'], 'the address the trusted proxy saw, whatever the client wrote')
  const direct = await startAdmin(config, { adminConfig: loadAdminConfig(config, {}) })
  t.teardown(() => direct.app.close())
  const d = browser(direct.app)
  const dr = await d.post(
    '/login',
    { _csrf: csrfOf((await d.get('/login')).body), email: 'direct@example.org', password: 'not the password' },
    { 'x-forwarded-for': '1.2.3.4' },
  )
  t.equal(dr.statusCode, 401)
  t.equal(
    (await direct.app.db.collection('audit_log').findOne({ 'target.email': 'direct@example.org' }))?.target.ip,
    '127.0.0.1',
    'without trust, X-Forwarded-For is ignored',
  )
})

t.test('a hash with older scrypt parameters is upgraded at the next successful log-in', async (t) => {
  const old = await hashPassword(TEST_PASSWORD, { N: 2 ** 14, r: 8, p: 1 })
  t.ok(needsRehash(old))
  t.notOk(needsRehash(await hashPassword('another long password')))
  await app.db
    .collection('admin_users')
    .insertOne({ _id: 'uold' as never, email: 'old@example.org', password: old, created_at: new Date(), disabled: false })
  const wrong = browser(app)
  const w = await wrong.post('/login', {
    _csrf: csrfOf((await wrong.get('/login')).body),
    email: 'old@example.org',
    password: 'not the password',
  })
  t.equal(w.statusCode, 401)
  t.match(
    (await app.db.collection('admin_users').findOne({ email: 'old@example.org' }))!.password,
    { N: 2 ** 14 },
    'a wrong password upgrades nothing',
  )
  await login(app, 'old@example.org')
  const stored = (await app.db.collection('admin_users').findOne({ email: 'old@example.org' }))!.password
  t.match(stored, { alg: 'scrypt', N: SCRYPT_PARAMS.N, r: 8, p: 1 })
  t.not(stored.salt, old.salt, 'a new salt')
  t.ok(await verifyPassword(TEST_PASSWORD, stored))
  t.ok(
    await app.db
      .collection('audit_log')
      .findOne({ action: 'admin.password_rehash', 'target.user_id': 'uold', 'target.from.N': 2 ** 14, 'target.to.N': SCRYPT_PARAMS.N }),
    'audited',
  )
  await login(app, 'old@example.org') // and it still works
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
  await seedSession(app.db, {
    workspaceId: String(ws._id),
    sessionId: sid,
    tokenId: created.id,
    body: sessionBody({ profile: 'secret_profile' }),
  })
  const jpeg = fakeJpeg(2000)
  await seedMedia(app.db, s3, config.s3.bucket, {
    workspaceId: String(ws._id),
    sessionId: sid,
    mediaId: 'cropped',
    tokenId: created.id,
    bytes: jpeg,
  })
  await app.db.collection('test_session_conflicts').insertOne({
    workspace_id: ws._id,
    session_id: sid,
    sha256: 'f'.repeat(64),
    raw_body: '{"secret_conflict":1}',
    received_at: new Date(),
    original_sha256: null,
  })

  const params: Record<string, string> = { ws: String(ws._id), sid, mid: 'cropped', tid: created.id }
  const secrets = ['Secret clinic', 'secret-ws', sid, 'secret_profile', 'secret-label', 'secret_conflict', created.id]
  const routes = app.adminRoutes.filter((r) => !r.public)
  t.ok(routes.length >= 20, `${routes.length} protected routes`)
  t.same(
    app.adminRoutes
      .filter((r) => r.public)
      .map((r) => r.url)
      .sort(),
    ['/favicon.ico', '/healthz', '/login', '/login', '/static/admin.css', '/static/admin.js'],
  )
  const withLogin = await b.get(`/workspaces/${params.ws}/sessions/${sid}`)
  t.match(withLogin.body, 'secret_profile', 'the data is there for a logged-in admin')

  for (const r of routes) {
    const url =
      r.url.replace(/:(\w+)/g, (_, name: string) => params[name] ?? 'x') +
      '?format=csv&from=2000-01-01&to=2100-01-01&workspace=' +
      params.ws
    for (const accept of ['text/html', 'image/avif,image/webp,*/*', 'application/json']) {
      const res = await app.inject({
        method: r.method as 'GET',
        url,
        headers: { accept, 'content-type': 'application/x-www-form-urlencoded' },
        payload: r.method === 'POST' ? '_csrf=x&slug=hacked&label=x' : undefined,
      })
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
  const forged = await app.inject({
    url: `/workspaces/${params.ws}/sessions/${sid}/media/cropped`,
    headers: { cookie: 'rdt_admin=' + 'A'.repeat(43) },
  })
  t.equal(forged.statusCode, 303)
  const unknownPath = await app.inject({ url: '/no/such/page', headers: { accept: 'text/html' } })
  t.equal(unknownPath.statusCode, 303, 'even a 404 asks for a log-in first')
})
