// HTTPS settings that need no services: TLS_CERT_FILE/TLS_KEY_FILE (both or neither, read and
// paired at start), the admin panel's URL and cookies when it serves HTTPS itself, and the local
// CA that `STACK_TLS=1 npm start` makes with openssl (reused while valid and for the same names).
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTestConfig, OFFLINE_ENV } from '../testing/config.ts'
import { loadAdminConfig } from '../admin/config.ts'
import { cookieNames } from '../admin/security/auth.ts'
import { ensureLocalTls, stackTlsSettings } from '../stack/local-tls.ts'

const env = OFFLINE_ENV
const dir = await mkdtemp(join(tmpdir(), 'rdt-tls-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const tlsDir = join(dir, 'tls')
const first = await ensureLocalTls(tlsDir, ['rdt.lan'])

t.test('the local CA and server certificate: names, modes, reuse, renewal', async (t) => {
  t.equal(first.made, 'ca+server')
  const ca = new X509Certificate(readFileSync(first.caFile))
  const server = new X509Certificate(readFileSync(first.certFile))
  t.ok(ca.ca, 'ca.crt is a CA')
  t.ok(server.checkIssued(ca) && server.verify(ca.publicKey), 'server.crt is signed by ca.crt')
  t.equal(server.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, DNS:rdt.lan', 'localhost, 127.0.0.1 and the host of PUBLIC_URL')
  t.notOk(server.ca, 'the server certificate cannot sign others')
  t.match(server.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'for TLS servers only')
  t.equal(statSync(tlsDir).mode & 0o777, 0o700, 'the dir is private')
  t.equal(statSync(first.caKeyFile).mode & 0o777, 0o600, 'ca.key is private')
  t.equal(statSync(first.keyFile).mode & 0o777, 0o600, 'server.key is private')

  const again = await ensureLocalTls(tlsDir, ['rdt.lan'])
  t.equal(again.made, 'nothing', 'the next start reuses both')
  t.equal(readFileSync(first.certFile, 'utf8'), server.toString(), 'same server certificate')

  const moved = await ensureLocalTls(tlsDir, ['10.0.0.5'])
  t.equal(moved.made, 'server', 'another PUBLIC_URL host: a new server certificate from the same CA')
  t.equal(new X509Certificate(readFileSync(moved.caFile)).fingerprint256, ca.fingerprint256, 'devices that trust the CA keep trusting it')
  t.equal(new X509Certificate(readFileSync(moved.certFile)).subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:10.0.0.5')

  const later = new Date(Date.now() + 380 * 24 * 3600_000) // within 30 days of the server certificate's end
  t.equal((await ensureLocalTls(tlsDir, ['10.0.0.5'], later)).made, 'server', 'a certificate near its end is renewed')

  await writeFile(first.caKeyFile, 'not a key', { mode: 0o600 })
  t.equal((await ensureLocalTls(tlsDir, ['10.0.0.5'])).made, 'ca+server', 'a broken CA pair is made again, with its server certificate')
})

t.test('STACK_TLS: off by default, https PUBLIC_URL, refuses http and unknown values', async (t) => {
  t.equal(await stackTlsSettings({}, dir), null)
  t.equal(await stackTlsSettings({ STACK_TLS: '0' }, dir), null)
  await t.rejects(stackTlsSettings({ STACK_TLS: 'yes' }, dir), /STACK_TLS must be 1 or 0/)
  await t.rejects(stackTlsSettings({ STACK_TLS: '1', PUBLIC_URL: 'http://127.0.0.1:8080' }, dir), /PUBLIC_URL must be an https:\/\/ URL/)
  const s = (await stackTlsSettings({ STACK_TLS: '1', PORT: '9443' }, dir))!
  t.same(s.env, { PUBLIC_URL: 'https://127.0.0.1:9443' })
  t.same(s.envFile, { PUBLIC_URL: 'https://127.0.0.1:9443', GATEWAY_CA_FILE: first.caFile })
  t.same(s.serverEnv, { TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.keyFile })
})

t.test('TLS_CERT_FILE and TLS_KEY_FILE: both or neither, readable, a matching pair', async (t) => {
  t.equal(loadTestConfig(env).tls, null, 'plain HTTP by default')
  const c = loadTestConfig({ ...env, TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.keyFile })
  t.same(c.tls?.cert, readFileSync(first.certFile), 'read at start')
  t.throws(() => loadTestConfig({ ...env, TLS_CERT_FILE: first.certFile }), {
    message: /TLS_KEY_FILE is required when TLS_CERT_FILE is set/,
  })
  t.throws(() => loadTestConfig({ ...env, TLS_KEY_FILE: first.keyFile }), { message: /TLS_CERT_FILE is required when TLS_KEY_FILE is set/ })
  t.throws(() => loadTestConfig({ ...env, TLS_CERT_FILE: join(dir, 'missing.crt'), TLS_KEY_FILE: first.keyFile }), {
    message: /TLS_CERT_FILE cannot be read: ENOENT/,
  })
  t.throws(() => loadTestConfig({ ...env, TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.caKeyFile }), {
    message: /TLS_KEY_FILE is not the key of the certificate in TLS_CERT_FILE/,
  })
})

t.test('an admin panel serving HTTPS itself: https URL, Secure __Host- cookies, nothing else allowed', async (t) => {
  const config = loadTestConfig({ ...env, TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: first.keyFile })
  const a = loadAdminConfig(config, {})
  t.equal(a.adminUrl, 'https://127.0.0.1:8081')
  t.equal(a.cookieSecure, true)
  t.same(cookieNames(a.cookieSecure), { session: '__Host-rdt_admin', login: '__Host-rdt_admin_login' })
  t.equal(loadAdminConfig(config, { ADMIN_URL: 'https://admin.lan:8081' }).cookieSecure, true)
  t.throws(
    () => loadAdminConfig(config, { ADMIN_URL: 'http://127.0.0.1:8081' }),
    /ADMIN_URL must use https: when the panel serves HTTPS itself/,
  )
  t.throws(
    () => loadAdminConfig(config, { ADMIN_COOKIE_SECURE: 'false' }),
    /ADMIN_COOKIE_SECURE must not be false when the panel serves HTTPS itself/,
  )
  // Unchanged for plain HTTP on this machine.
  t.equal(loadAdminConfig(loadTestConfig(env), {}).cookieSecure, false)
})
