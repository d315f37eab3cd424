// The admin panel's /docs: the gateway's OpenAPI document and its server-rendered page, behind
// the log-in, under the panel's CSP, with nothing loaded from elsewhere.
import t from 'tap'
import { buildOpenApi, openApiJson } from '../gateway/openapi.ts'
import { CSP } from '../admin/app.ts'
import { addAdmin, login, startAdmin } from './helpers/admin-support.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const { app } = await startAdmin(config)
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  await app.close()
})
await addAdmin(app, 'docs@example.org')
const b = await login(app, 'docs@example.org')
const doc = buildOpenApi() as { paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>> }

t.test('anonymous visitors get neither the page nor the document', async (t) => {
  for (const url of ['/docs', '/docs/', '/docs/openapi.json']) {
    const res = await app.inject({ method: 'GET', url, headers: { accept: 'text/html' } })
    t.equal(res.statusCode, 303, url)
    t.match(res.headers.location, /^\/login\?next=/)
  }
})

t.test('/docs/openapi.json is the generated document', async (t) => {
  for (const url of ['/docs/openapi.json', '/docs/openapi.json/']) {
    const res = await b.get(url, { accept: 'application/json' })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.body, openApiJson())
    t.equal(res.headers['content-security-policy'], CSP)
  }
})

t.test('/docs renders every path, method and status, under the CSP and with nothing from elsewhere', async (t) => {
  for (const url of ['/docs', '/docs/']) {
    const res = await b.get(url)
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^text\/html/)
    t.equal(res.headers['content-security-policy'], CSP)
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        t.match(res.body, `<code>${path}</code>`, `${path} is on the page`)
        t.match(res.body, `id="${op.operationId}"`, `${method} ${path} has its section`)
        for (const status of Object.keys(op.responses))
          t.match(res.body, `<td class="num"><b>${status}</b></td>`, `${method} ${path} ${status}`)
      }
    }
    // The CSP allows scripts, styles and images from 'self' only, and no inline script or style.
    const scripts = [...res.body.matchAll(/<script\b[^>]*>/g)].map((m) => m[0])
    t.same(scripts, ['<script src="/static/admin.js" defer>'], "only the panel's own script")
    t.notMatch(res.body, /\sstyle=|<style|\son[a-z]+=/i, 'no inline style or event handler')
    for (const m of res.body.matchAll(/\s(?:src|href)="([^"]*)"/g)) {
      const target = m[1]!
      if (target.startsWith('https://github.com/dimagi/rd-toolkit')) continue // a link to follow, nothing loaded
      t.ok(target.startsWith('/') || target.startsWith('#'), `${target} is on this panel`)
    }
  }
})
