// Deleting a session and purging a workspace from the admin panel (admin/routes/deletion.ts), on
// the real stack: the confirmation names what will go, the POST needs the CSRF token (and, for a
// purge, the slug typed out), and what went is audited as the admin. Who may (owners only) is
// covered for every route by test/admin-roles.test.ts.
import t from 'tap'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { collections } from '../shared/mongo.ts'
import { grantRole } from '../tokens/roles.ts'
import { fakeJpeg } from '../testing/media.ts'
import { addAdmin, login, seedMedia, seedSession, sessionBody, startAdmin } from './helpers/admin-support.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const { app } = await startAdmin(config)
const s3 = createS3(config.s3)
await ensureBucket(s3, config.s3.bucket, config.s3.region)
const c = collections(app.db)
t.teardown(async () => {
  await app.db.dropDatabase().catch(() => {})
  await app.close()
})

await addAdmin(app, 'super@example.org')
await addAdmin(app, 'owner@example.org')
const A = await app.tokenAdmin.createWorkspace('del-panel', { actor: 'test' })
await grantRole(app.db, 'owner@example.org', A.id, 'owner', 'test')
const tok = await app.tokenAdmin.createToken({ workspace: A.id, actor: 'test' })
for (const sid of ['s-1', 's-2', 's-3']) {
  await seedSession(app.db, { workspaceId: A.id, sessionId: sid, tokenId: tok.id, body: sessionBody() })
  await seedMedia(app.db, s3, config.s3.bucket, {
    workspaceId: A.id,
    sessionId: sid,
    mediaId: 'cropped',
    tokenId: tok.id,
    bytes: fakeJpeg(3000),
  })
}
const owner = await login(app, 'owner@example.org')
const base = `/workspaces/${A.id}`

t.test('an owner deletes a session after a confirmation that names what goes', async (t) => {
  // Where the photo is: the key its document names (an upload's own key).
  const photoKey = String((await c.media.findOne({ workspace_id: A.id, session_id: 's-1' }))?.key)
  t.ok((await s3.statObject(config.s3.bucket, photoKey)).size > 0, 'the photo object is there before')
  const detail = await owner.get(`${base}/sessions/s-1`)
  t.match(detail.body, `${base}/sessions/s-1/delete`, 'the session page links to the deletion')
  const confirm = await owner.get(`${base}/sessions/s-1/delete`)
  t.equal(confirm.statusCode, 200)
  t.match(confirm.body, /1 session documents/)
  t.match(confirm.body, /1 photo records/)
  t.match(confirm.body, /1 stored photo object\(s\), 2\.9 KB|1 stored photo object\(s\)/)
  t.equal(await c.sessions.countDocuments({ session_id: 's-1' }), 1, 'the confirmation deletes nothing')

  const noCsrf = await owner.post(`${base}/sessions/s-1/delete`, {})
  t.equal(noCsrf.statusCode, 403, 'refused without the CSRF token')
  t.equal(await c.sessions.countDocuments({ session_id: 's-1' }), 1)

  const done = await owner.post(`${base}/sessions/s-1/delete`, { _csrf: owner.csrf })
  t.equal(done.statusCode, 200, done.body)
  t.match(done.body, /Session <span class="mono">s-1<\/span> deleted/)
  t.equal(await c.sessions.countDocuments({ workspace_id: A.id, session_id: 's-1' }), 0)
  t.equal(await c.media.countDocuments({ workspace_id: A.id, session_id: 's-1' }), 0)
  await t.rejects(s3.statObject(config.s3.bucket, photoKey), { code: 'NotFound' }, 'the photo object is gone')
  t.ok(await c.deletedSessions.findOne({ _id: `${A.id}/s-1` }), 'tombstone written')
  t.match(await c.audit.findOne({ action: 'session.delete' }), {
    actor: 'admin:owner@example.org',
    target: { session_id: 's-1', objects: 1 },
  })
  t.equal(await c.sessions.countDocuments({ workspace_id: A.id }), 2, 'the other sessions stay')
})

t.test('a purge needs the slug typed out', async (t) => {
  const settings = await owner.get(`${base}/settings`)
  t.match(settings.body, `${base}/purge`, 'the settings page links to the purge')
  const confirm = await owner.get(`${base}/purge`)
  t.equal(confirm.statusCode, 200)
  t.match(confirm.body, /2 session documents/)
  t.match(confirm.body, /1 active token\(s\) are revoked/)

  const wrong = await owner.post(`${base}/purge`, { _csrf: owner.csrf, slug: 'del-pane' })
  t.equal(wrong.statusCode, 400)
  t.match(wrong.body, /nothing was deleted/)
  t.equal(await c.sessions.countDocuments({ workspace_id: A.id }), 2)

  const done = await owner.post(`${base}/purge`, { _csrf: owner.csrf, slug: 'del-panel' })
  t.equal(done.statusCode, 200, done.body)
  t.match(done.body, /purged; 1 token\(s\) revoked/)
  for (const coll of [c.sessions, c.media]) t.equal(await coll.countDocuments({ workspace_id: A.id }), 0)
  t.match(await c.workspaces.findOne({ _id: A.id }), { active: false })
  t.match(await c.tokens.findOne({ _id: tok.id }), { revoked_at: Date })
  t.match(await c.audit.findOne({ action: 'workspace.purge' }), { actor: 'admin:owner@example.org', target: { objects: 2 } })
})
