// The admin panel end to end, in a real browser (Debian's Chromium, driven by playwright-core):
// log in, create a workspace and a token, upload as a phone would through the real gateway and
// worker, find the session, see its photos render, revoke the token (the gateway then answers
// 403), and export the CSV; then give a colleague the analyst role on the admins page, log in as
// them and check what they see (and what they do not). Screenshots go to test/artifacts/.
// Everything runs over HTTPS, as in production: the gateway and the panel serve it themselves
// (TLS_CERT_FILE/TLS_KEY_FILE) with a certificate from the local CA `STACK_TLS=1 npm start` makes,
// so the panel's cookies are the Secure `__Host-` ones.
import t from 'tap'
import { X509Certificate, createHash } from 'node:crypto'
import { getCACertificates, setDefaultCACertificates } from 'node:tls'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { pino } from 'pino'
import { buildGateway } from '../gateway/app.ts'
import { buildWorker } from '../worker/app.ts'
import { jobIds } from '../shared/keys.ts'
import { watchJobs } from '../testing/job-events.ts'
import { buildAdmin } from '../admin/app.ts'
import { loadAdminConfig } from '../admin/config.ts'
import { createAdminUser } from '../tokens/users.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { waitFor } from '../testing/wait.ts'
import { ensureLocalTls } from '../stack/local-tls.ts'

const artifacts = new URL('./artifacts/', import.meta.url)
await mkdir(artifacts, { recursive: true })
const shot = (page: Page, name: string) => page.screenshot({ path: new URL(`admin-${name}.png`, artifacts).pathname, fullPage: true })

const tlsDir = await mkdtemp(join(tmpdir(), 'rdt-admin-e2e-tls-'))
const certs = await ensureLocalTls(tlsDir, [])
// The phone's side (Node's fetch) trusts the local CA, as a device configured with it would.
setDefaultCACertificates([...getCACertificates('default'), readFileSync(certs.caFile, 'utf8')])
const base = testConfig({ LOG_LEVEL: 'warn', TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.keyFile })
const gateway = await buildGateway({ config: asRole(base, 'gateway'), logger: false })
await gateway.listen({ port: 0, host: '127.0.0.1' })
const gwPort = (gateway.server.address() as { port: number }).port
const config = { ...base, publicUrl: `https://127.0.0.1:${gwPort}` }
const worker = await buildWorker({ config: asRole(config, 'worker'), logger: pino({ level: 'warn' }) })
const admin = await buildAdmin({ config: asRole(config, 'admin'), adminConfig: loadAdminConfig(config, {}), logger: false })
await admin.listen({ port: 0, host: '127.0.0.1' })
const adminUrl = `https://127.0.0.1:${(admin.server.address() as { port: number }).port}`
await createAdminUser(admin.db, 'ops@example.org', 'e2e password for ops', 'test') // the first: a superadmin
await createAdminUser(admin.db, 'reader@example.org', 'e2e password for the reader', 'test') // no role yet
const hidden = await admin.tokenAdmin.createWorkspace('clinic-hidden', { name: 'Hidden clinic', actor: 'test' })

const profile = await mkdtemp(join(tmpdir(), 'rdt-admin-e2e-'))
// The browser trusts our certificate by its public key: Chromium on Linux takes extra CAs only
// from an NSS database (certutil, not installed here). Any other certificate still fails.
const spki = createHash('sha256')
  .update(new X509Certificate(readFileSync(certs.certFile)).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64')
const context: BrowserContext = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    `--ignore-certificate-errors-spki-list=${spki}`,
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
})
t.teardown(async () => {
  await context.close().catch(() => {})
  await rm(profile, { recursive: true, force: true })
  await rm(tlsDir, { recursive: true, force: true })
  await admin.db.dropDatabase().catch(() => {})
  await admin.close()
  await worker.close()
  await gateway.close()
})

const page = context.pages()[0] ?? (await context.newPage())
page.on('dialog', (d) => void d.accept())
const cspErrors: string[] = []
page.on('console', (m) => {
  if (m.type() === 'error') cspErrors.push(m.text())
})

/** Two real JPEGs, drawn and encoded by the browser itself (no image tool needed on the machine). */
async function makeJpegs(): Promise<{ cropped: Buffer; raw: Buffer }> {
  const p = await context.newPage()
  const out = await p.evaluate(() => {
    const draw = (w: number, h: number, bg: string) => {
      const c = document.createElement('canvas')
      c.width = w
      c.height = h
      const g = c.getContext('2d')!
      const grad = g.createLinearGradient(0, 0, w, h)
      grad.addColorStop(0, bg)
      grad.addColorStop(1, '#d9cfbf')
      g.fillStyle = grad
      g.fillRect(0, 0, w, h)
      g.fillStyle = '#ffffff'
      g.fillRect(w * 0.1, h * 0.25, w * 0.8, h * 0.5)
      g.fillStyle = '#b71c1c'
      g.fillRect(w * 0.5, h * 0.33, 5, h * 0.34)
      g.fillRect(w * 0.62, h * 0.33, 5, h * 0.34)
      return c.toDataURL('image/jpeg', 0.8).split(',')[1]!
    }
    return { cropped: draw(240, 150, '#f4efe6'), raw: draw(320, 200, '#5b6b7a') }
  })
  await p.close()
  return { cropped: Buffer.from(out.cropped, 'base64'), raw: Buffer.from(out.raw, 'base64') }
}

t.test('the admin journey in a real browser', async (t) => {
  // 1. Log in (every page sends us to the log-in page first).
  await page.goto(`${adminUrl}/workspaces`)
  t.match(page.url(), /\/login\?next=%2Fworkspaces$/)
  await shot(page, '01-login')
  await page.fill('input[name=email]', 'ops@example.org')
  await page.fill('input[name=password]', 'e2e password for ops')
  await Promise.all([page.waitForURL(`${adminUrl}/workspaces`), page.click('button[type=submit]')])
  t.match(await page.textContent('header'), 'ops@example.org')
  // Over HTTPS the session cookie is Secure, host-only, Path=/: the __Host- prefix, which
  // browsers refuse to set otherwise. The log-in form's cookie is gone after the log-in.
  const cookies = await context.cookies(adminUrl)
  t.same(
    cookies.map((c) => c.name),
    ['__Host-rdt_admin'],
    'only the session cookie, with the __Host- prefix',
  )
  t.match(cookies[0], { secure: true, httpOnly: true, sameSite: 'Strict', path: '/', domain: '127.0.0.1' })
  t.equal((await fetch(`${adminUrl}/login`)).headers.get('strict-transport-security'), 'max-age=31536000', 'HSTS over https')

  // 2. Create a workspace.
  await page.fill('input[name=slug]', 'clinic-e2e')
  await page.fill('input[name=name]', 'Clinic E2E')
  await Promise.all([page.waitForURL(/\/tokens\?done=created$/), page.click('text=Create workspace')])
  const wsPath = new URL(page.url()).pathname.replace(/\/tokens$/, '')

  // 3. Create a token; the DSN is on the page, once.
  await page.fill('input[name=label]', 'tablet 7')
  await Promise.all([page.waitForLoadState('load'), page.click('text=Create token')])
  const dsn = (await page.textContent('#dsn'))!.trim()
  t.match(dsn, new RegExp(`^https://127\\.0\\.0\\.1:${gwPort}/ingest/rdt_[A-Za-z0-9_-]{43}$`))
  t.ok(await page.$eval('img.qr', (img) => (img as HTMLImageElement).naturalWidth > 0), 'QR code rendered')
  await shot(page, '02-token-created')

  // 4. Upload as the phone does: trailing slashes, 4-space JSON, raw JPEGs with Content-Disposition.
  const guid = '5f0c2a4e-8d1b-4c7e-9a3f-2b6d8e1f4a90'
  const json = { 'content-type': 'application/json; charset=utf-8' }
  const session = readFileSync(new URL('session-rdtoolkit.json', fixturesDir))
  const logs = readFileSync(new URL('logs-rdtoolkit.json', fixturesDir))
  t.equal((await fetch(`${dsn}/test_session/${guid}/`, { method: 'PUT', body: new Uint8Array(session), headers: json })).status, 201)
  t.equal((await fetch(`${dsn}/test_session/${guid}/logs/`, { method: 'PUT', body: new Uint8Array(logs), headers: json })).status, 201)
  const jpegs = await makeJpegs()
  t.same([...jpegs.cropped.subarray(0, 3)], [0xff, 0xd8, 0xff], 'a real JPEG')
  const put = (key: 'cropped' | 'raw') =>
    fetch(`${dsn}/test_session/${guid}/media/${key}/`, {
      method: 'PUT',
      body: new Uint8Array(jpegs[key]),
      headers: { 'content-type': 'image/jpeg', 'content-disposition': `attachment; filename=20210125_111802_${key}.jpg` },
    })
  const statuses = await Promise.all([put('cropped'), put('raw')])
  t.same(
    statuses.map((r) => r.status),
    [201, 201],
  )
  // The worker's jobs, heard on their events; 'completed' means stored.
  const ws = String((await admin.db.collection('workspaces').findOne({ slug: 'clinic-e2e' }))?._id)
  const watch = (queue: string) => watchJobs(t, { redisUrl: config.redisUrl, prefix: config.redisPrefix, queue })
  const sessionJob = jobIds.session(ws, guid)
  t.same(await (await watch('sessions')).settled([sessionJob], { timeoutMs: 30_000 }), [{ id: sessionJob, state: 'completed' }])
  const logsJob = jobIds.logs(ws, guid, createHash('sha256').update(logs).digest('hex'))
  t.same(await (await watch('logs')).settled([logsJob], { timeoutMs: 30_000 }), [{ id: logsJob, state: 'completed' }])
  const photoJobs = [jobIds.media(ws, guid, 'cropped'), jobIds.media(ws, guid, 'raw')]
  t.same(
    (await (await watch('media')).settled(photoJobs, { timeoutMs: 30_000 })).map((o) => o.state),
    ['completed', 'completed'],
  )
  t.equal(await admin.db.collection('test_session_media').countDocuments({ session_id: guid }), 2, 'worker stored both photos')
  t.equal(await admin.db.collection('test_session_logs').countDocuments({ session_id: guid }), 3, 'and the log entries')

  // 5. Find the session in the list.
  await page.click('.tabs >> text=Sessions')
  await page.waitForSelector(`#sessions a:has-text("${guid}")`)
  t.match(await page.textContent('#sessions'), 'sd_bioline_mal_pf_pv')
  await shot(page, '03-sessions')

  // 6. Open it: the photos render, through the admin service.
  await Promise.all([page.waitForURL(`**/sessions/${guid}`), page.click(`#sessions a:has-text("${guid}")`)])
  await page.waitForFunction(() => [...document.querySelectorAll('.gallery img')].every((i) => (i as HTMLImageElement).complete))
  const widths = await page.$$eval('.gallery img', (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth))
  t.same(widths.sort(), [240, 320], 'both JPEGs render (natural width > 0)')
  t.match(await page.textContent('.timeline'), 'Classifier returned error')
  t.match(await page.textContent('#raw-body'), '"test_profile_id": "sd_bioline_mal_pf_pv"')
  await shot(page, '04-session')
  await page.screenshot({ path: new URL('admin-readme.png', artifacts).pathname, fullPage: false }) // copied to admin/screenshot.png by hand
  // Without the cookie the same image URL gives no image.
  const imgUrl = await page.$eval('.gallery img', (i) => (i as HTMLImageElement).src)
  const anon = await fetch(imgUrl, { redirect: 'manual' })
  t.equal(anon.status, 303)
  t.notOk(String(anon.headers.get('content-type') ?? '').startsWith('image/'))

  await page.click('.tabs >> text=Dashboard')
  await page.waitForSelector('#fig-readings svg')
  await shot(page, '05-dashboard')

  // 7. Revoke the token: the gateway refuses it (403) at once.
  await page.click('.tabs >> text=Tokens')
  await Promise.all([page.waitForURL(/done=revoked/), page.click('button:has-text("Revoke")')])
  t.match(await page.textContent('.notice'), 'Token revoked')
  await shot(page, '06-revoked')
  // A poll: the pushed revocation reaches the gateway's token cache with no event a test can hear.
  const after = await waitFor(
    async () => {
      const r = await fetch(`${dsn}/test_session/another-guid/`, { method: 'PUT', body: new Uint8Array(session), headers: json })
      return r.status === 403 ? r : null
    },
    { timeoutMs: 10_000, what: 'the gateway to refuse the revoked token' },
  )
  t.equal(after.status, 403)

  // 8. Export the CSV: the session's row is there.
  await page.goto(`${adminUrl}${wsPath}/sessions`)
  const today = new Date().toISOString().slice(0, 10)
  await page.fill('input[name=from]:below(:text("Export"))', today)
  await page.fill('input[name=to]:below(:text("Export"))', today)
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Export")')])
  const csv = await readFile((await download.path())!, 'utf8')
  const rows = csv
    .replace(/^\ufeff/, '')
    .trim()
    .split('\r\n')
  t.match(rows[0], /^session_id,received_at,token_id,state,/)
  t.ok(
    rows.some((r) => r.startsWith(`${guid},`) && r.includes(',QUEUED,sd_bioline_mal_pf_pv,')),
    'the session row is in the CSV',
  )
  t.match(download.suggestedFilename(), /^clinic-e2e-sessions-.*\.csv$/)

  // 9. Give a colleague the analyst role on the admins page, then log in as them.
  await page.click('header >> text=Admins')
  await page.selectOption('select[name=email]', 'reader@example.org')
  await page.selectOption('select[name=workspace]', { label: 'clinic-e2e' })
  await page.selectOption('select[name=role]', 'analyst')
  await Promise.all([page.waitForURL(/\/admins\?done=granted$/), page.click('button:has-text("Give role")')])
  t.match(await page.textContent('#admins'), /reader@example\.org[\s\S]*clinic-e2e: analyst/)
  await shot(page, '07-admins')
  await Promise.all([page.waitForURL(/\/login$/), page.click('header >> text=Log out')])
  await page.goto(`${adminUrl}/workspaces`)
  await page.fill('input[name=email]', 'reader@example.org')
  await page.fill('input[name=password]', 'e2e password for the reader')
  await Promise.all([page.waitForURL(`${adminUrl}/workspaces`), page.click('button[type=submit]')])
  t.match(await page.textContent('header'), 'reader@example.org')
  t.notMatch(await page.textContent('header'), 'Admins', 'no admins page for an analyst')
  t.match(await page.textContent('main'), 'Clinic E2E')
  t.notMatch(await page.textContent('main'), 'Hidden clinic', 'only the workspaces they have a role in')
  t.equal(await page.$('form[action="/workspaces"]'), null, 'no new-workspace form')
  await shot(page, '08-analyst-workspaces')
  await Promise.all([page.waitForURL(/\/dashboard$/), page.click('text=Clinic E2E')])
  t.same(
    await page.$$eval('.tabs a', (as) => as.map((a) => a.textContent)),
    ['Dashboard', 'Sessions', 'Missing media', 'Conflicts'],
    'no Tokens or Settings tab',
  )
  await page.click('.tabs >> text=Sessions')
  await Promise.all([page.waitForURL(`**/sessions/${guid}`), page.click(`#sessions a:has-text("${guid}")`)])
  await page.waitForFunction(() => [...document.querySelectorAll('.gallery img')].every((i) => (i as HTMLImageElement).complete))
  t.same(
    (await page.$$eval('.gallery img', (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth))).sort(),
    [240, 320],
    'the analyst sees the photos',
  )
  await shot(page, '09-analyst-session')
  const tokensPage = await page.goto(`${adminUrl}${wsPath}/tokens`)
  t.equal(tokensPage?.status(), 403, 'the tokens page, typed in: 403')
  t.notMatch(await page.textContent('main'), 'tablet 7')
  const other = await page.goto(`${adminUrl}/workspaces/${hidden.id}/sessions`)
  t.equal(other?.status(), 404, "another workspace's page, typed in: 404")
  t.match(await page.textContent('main'), 'No such workspace.')
  t.equal((await page.goto(`${adminUrl}/admins`))?.status(), 403)

  t.same(
    cspErrors.filter((e) => /Content Security Policy/i.test(e)),
    [],
    'no CSP violation on any page',
  )
})
