// stack/roles.ts: each process of `npm start` (and of the tests) gets only its own role's
// credentials out of `.stack/env`, never another role's and never the test-only root ones.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { ACL_TEMPLATE, renderAcl } from '../stack/redis-acl.ts'
import { inspectorEnv, roleEnv } from '../stack/roles.ts'

const stackEnv = {
  PATH: '/usr/bin',
  REDIS_URL: 'redis://127.0.0.1:6400',
  MONGODB_URL: 'mongodb://127.0.0.1:27100/rdt',
  S3_ENDPOINT: 'http://127.0.0.1:9100',
  REDIS_GATEWAY_PASSWORD: 'gw-pass',
  REDIS_WORKER_PASSWORD: 'wk-pass',
  REDIS_ADMIN_PASSWORD: 'ad-pass',
  S3_GATEWAY_ACCESS_KEY: 'rdt-gateway',
  S3_GATEWAY_SECRET_KEY: 'gw-secret',
  S3_WORKER_ACCESS_KEY: 'rdt-worker',
  S3_WORKER_SECRET_KEY: 'wk-secret',
  S3_ADMIN_ACCESS_KEY: 'rdt-admin',
  S3_ADMIN_SECRET_KEY: 'ad-secret',
  TEST_INSPECTOR_REDIS_URL: 'redis://inspector:root-pass@127.0.0.1:6400',
  TEST_INSPECTOR_S3_ACCESS_KEY: 'ROOT',
  TEST_INSPECTOR_S3_SECRET_KEY: 'root-secret',
}
const secrets = ['gw-pass', 'wk-pass', 'ad-pass', 'gw-secret', 'wk-secret', 'ad-secret', 'root-pass', 'root-secret']
const leaked = (env: Record<string, string>, own: string[]) =>
  secrets.filter((s) => !own.includes(s) && Object.values(env).some((v) => v.includes(s)))

t.test("each role gets its own credentials and nobody else's", async (t) => {
  const gw = roleEnv(stackEnv, 'gateway')
  t.equal(gw.REDIS_URL, 'redis://gateway:gw-pass@127.0.0.1:6400')
  t.equal(gw.S3_ACCESS_KEY, 'rdt-gateway')
  t.equal(gw.S3_SECRET_KEY, 'gw-secret')
  t.same(leaked(gw, ['gw-pass', 'gw-secret']), [])
  t.equal(gw.MONGODB_URL, undefined, 'the gateway gets no MongoDB URL: it never talks to MongoDB')
  t.equal(gw.S3_ENDPOINT, stackEnv.S3_ENDPOINT, 'the rest is passed on')

  const wk = roleEnv(stackEnv, 'worker')
  t.equal(wk.REDIS_URL, 'redis://worker:wk-pass@127.0.0.1:6400')
  t.equal(wk.S3_ACCESS_KEY, 'rdt-worker')
  t.same(leaked(wk, ['wk-pass', 'wk-secret']), [])

  const ad = roleEnv(stackEnv, 'admin')
  t.equal(ad.REDIS_URL, 'redis://admin:ad-pass@127.0.0.1:6400')
  t.equal(ad.S3_ACCESS_KEY, 'rdt-admin')
  t.same(leaked(ad, ['ad-pass', 'ad-secret']), [])

  const cli = roleEnv({ ...stackEnv, S3_ACCESS_KEY: 'stale', S3_SECRET_KEY: 'stale' }, 'cli')
  t.equal(cli.REDIS_URL, 'redis://admin:ad-pass@127.0.0.1:6400', "the CLI is the admin panel's Redis user")
  t.equal(cli.S3_ACCESS_KEY, 'rdt-admin', 'and its object-storage key (deletions), never a stale one')
  t.equal(cli.MONGODB_URL, stackEnv.MONGODB_URL)
  t.same(leaked(cli, ['ad-pass', 'ad-secret']), [])
})

t.test('services named from outside (no role secrets) are passed on unchanged', async (t) => {
  const outside = { REDIS_URL: 'redis://me:pw@redis:6379', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's' }
  t.same(roleEnv(outside, 'gateway'), outside)
  t.same(inspectorEnv(outside), outside)
})

t.test('the inspector (test-only root) is explicit, never a silent fallback', async (t) => {
  const i = inspectorEnv(stackEnv)
  t.equal(i.REDIS_URL, stackEnv.TEST_INSPECTOR_REDIS_URL)
  t.equal(i.S3_ACCESS_KEY, 'ROOT')
  const { TEST_INSPECTOR_REDIS_URL: _, ...without } = stackEnv
  t.throws(() => inspectorEnv(without), /TEST_INSPECTOR_/)
})

t.test("the local ACL is production's template, with a prefix pattern and the inspector", async (t) => {
  const template = await readFile(ACL_TEMPLATE, 'utf8')
  const acl = renderAcl(template, '{*}', { gateway: 'g', worker: 'w', admin: 'a', inspector: 'i' })
  const lines = acl.trimEnd().split('\n')
  t.same(
    lines.map((l) => l.split(' ')[1]),
    ['default', 'gateway', 'worker', 'admin', 'inspector'],
  )
  t.notMatch(acl, /\{\{/, 'no placeholder left')
  t.notOk(
    lines.some((l) => l.startsWith('#')),
    'no comment line',
  )
  t.notMatch(acl, / #[gwai] /, 'only password hashes')
  t.match(lines[1], /^user gateway on #[0-9a-f]{64} .* %R~\{\*\}:tokens /)
  t.equal(lines[4], `user inspector on #${'de7d1b721a1e0632b7cf04edf5032c8ecffa9f9a08492152b926f1a5a7e765d7'} ~* &* +@all`)
  t.throws(() => renderAcl(template, '{rdt} ~*', { gateway: 'g', worker: 'w', admin: 'a', inspector: 'i' }), /pattern/)
})
