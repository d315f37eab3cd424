// The retention form on a workspace's settings page: shows the periods, saves them (audited),
// refuses what is not a period, needs the CSRF token like every other form, and is an owner's
// (README "Roles"): an owner who is not a superadmin may use it, an analyst may not.
import t from 'tap'
import { grantRole } from '../tokens/roles.ts'
import { addAdmin, login, startAdmin } from './helpers/admin-support.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const { app } = await startAdmin(config)
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  await app.close()
})
await addAdmin(app, 'ops@example.org')
const b = await login(app, 'ops@example.org')

t.test('set, show and refuse retention periods', async (t) => {
  const created = await b.post('/workspaces', { slug: 'ret-panel', _csrf: b.csrf })
  const wsId = /\/workspaces\/(w[0-9a-f]{16})\//.exec(created.headers.location as string)![1]!
  const before = await b.get(`/workspaces/${wsId}/settings`)
  t.match(before.body, /<input name="photos"[^>]*placeholder="keep" value="">/, 'empty = keep, the default')

  const saved = await b.post(`/workspaces/${wsId}/retention`, { photos: '90', logs: '', sessions: '730', _csrf: b.csrf })
  t.equal(saved.statusCode, 303)
  t.match(saved.headers.location, `/workspaces/${wsId}/settings?done=retention`)
  const ws = await app.db.collection('workspaces').findOne({ _id: wsId as never })
  t.same(ws?.retention, { photos: 90, logs: null, sessions: 730 })
  const after = await b.get(`/workspaces/${wsId}/settings?done=retention`)
  t.match(after.body, 'Retention saved')
  t.match(after.body, /<input name="photos"[^>]*value="90">/)
  t.match(after.body, /<input name="sessions"[^>]*value="730">/)
  t.match(after.body, /data-confirm="[^"]*deleted for good/, 'the form warns before it saves')
  t.match(await app.db.collection('audit_log').findOne({ action: 'workspace.set_retention' }), {
    actor: 'ops@example.org',
    target: { retention: { photos: 90, logs: null, sessions: 730 } },
  })

  for (const bad of ['0', 'abc', '36501', '-3']) {
    const r = await b.post(`/workspaces/${wsId}/retention`, { photos: bad, _csrf: b.csrf })
    t.equal(r.statusCode, 400, `photos "${bad}" is refused`)
    t.match(r.body, /invalid photos retention/)
  }
  const noCsrf = await b.post(`/workspaces/${wsId}/retention`, { photos: '1' })
  t.equal(noCsrf.statusCode, 403, 'no CSRF token, no change')
  t.same(
    (await app.db.collection('workspaces').findOne({ _id: wsId as never }))?.retention,
    { photos: 90, logs: null, sessions: 730 },
    'unchanged',
  )
})

t.test('an owner sets it; an analyst neither sees the form nor can post it', async (t) => {
  const created = await b.post('/workspaces', { slug: 'ret-roles', _csrf: b.csrf })
  const wsId = /\/workspaces\/(w[0-9a-f]{16})\//.exec(created.headers.location as string)![1]!
  for (const who of ['owner', 'analyst'] as const) {
    await addAdmin(app, `${who}@example.org`)
    await grantRole(app.db, `${who}@example.org`, wsId, who, 'test')
  }
  const owner = await login(app, 'owner@example.org')
  t.match((await owner.get(`/workspaces/${wsId}/settings`)).body, 'Save retention', 'the owner sees the form')
  t.equal((await owner.post(`/workspaces/${wsId}/retention`, { logs: '30', _csrf: owner.csrf })).statusCode, 303)
  t.same((await app.db.collection('workspaces').findOne({ _id: wsId as never }))?.retention, { photos: null, logs: 30, sessions: null })

  const analyst = await login(app, 'analyst@example.org')
  t.equal((await analyst.get(`/workspaces/${wsId}/settings`)).statusCode, 403, 'no settings page for an analyst')
  const refused = await analyst.post(`/workspaces/${wsId}/retention`, { logs: '1', _csrf: analyst.csrf })
  t.equal(refused.statusCode, 403, 'an analyst cannot change retention')
  t.same(
    (await app.db.collection('workspaces').findOne({ _id: wsId as never }))?.retention,
    { photos: null, logs: 30, sessions: null },
    'unchanged',
  )
})
