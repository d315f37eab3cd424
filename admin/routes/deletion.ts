// Deleting a session and purging a workspace from the panel (deletion/admin.ts, the CLI's code):
// owner routes (admin/security/roles.ts). Each GET is a confirmation page that names what will go;
// each POST (CSRF-checked like every panel form) does it, audited as the admin, and shows what went.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { html, seg } from '../views/html.ts'
import { page } from '../views/layout.ts'
import { deletedBody, sessionDeleteBody, workspacePurgeBody } from '../views/deletion.ts'
import { workspaceOf } from '../security/roles.ts'
import { actorOf, checkId, sendHtml, UNCONFIRMED_PUSH, who } from './common.ts'

type DeleteRequest = FastifyRequest<{ Params: { ws: string; sid: string }; Body: Record<string, string | undefined> }>

export default async function deletionRoutes(app: FastifyInstance) {
  const owner = { config: { access: 'owner' as const } }

  app.get('/workspaces/:ws/sessions/:sid/delete', owner, async (request: DeleteRequest, reply) => {
    const ws = workspaceOf(request)
    const sid = checkId(request.params.sid, 'session')
    const preview = await app.deletionAdmin.previewSession(ws.id, sid)
    const body = sessionDeleteBody(who(request), ws, sid, preview)
    return sendHtml(reply, page({ title: `${ws.slug} · delete ${sid}`, admin: who(request), workspace: ws, tab: 'sessions', body }))
  })

  app.post('/workspaces/:ws/sessions/:sid/delete', owner, async (request: DeleteRequest, reply) => {
    const ws = workspaceOf(request)
    const sid = checkId(request.params.sid, 'session')
    const res = await app.deletionAdmin.deleteSession(ws.id, sid, actorOf(request))
    const body = deletedBody(html`Session <span class="mono">${sid}</span> deleted`, res, `/workspaces/${seg(ws.id)}/sessions`)
    // Not pushed: a retry is answered 201 and dropped by the worker until the tombstone is re-mirrored (within 30 s).
    const error = res.tombstone_mirrored ? null : UNCONFIRMED_PUSH
    return sendHtml(reply, page({ title: `${ws.slug} · deleted`, admin: who(request), workspace: ws, tab: 'sessions', body, error }))
  })

  app.get('/workspaces/:ws/purge', owner, async (request: DeleteRequest, reply) => sendHtml(reply, await purgePage(app, request, null)))

  app.post('/workspaces/:ws/purge', owner, async (request: DeleteRequest, reply) => {
    const ws = workspaceOf(request)
    if ((request.body?.slug ?? '').trim() !== ws.slug) {
      return sendHtml(reply, await purgePage(app, request, `Type the slug, ${ws.slug}, exactly: nothing was deleted.`), 400)
    }
    const res = await app.deletionAdmin.purgeWorkspace(ws.id, actorOf(request))
    const body = deletedBody(
      html`Workspace <span class="mono">${ws.slug}</span> purged; ${res.tokens_revoked} token(s) revoked`,
      res,
      '/workspaces',
    )
    const error = res.revocation_pushed ? null : UNCONFIRMED_PUSH
    return sendHtml(reply, page({ title: `${ws.slug} · purged`, admin: who(request), workspace: { ...ws, active: false }, body, error }))
  })
}

async function purgePage(app: FastifyInstance, request: DeleteRequest, error: string | null): Promise<string> {
  const ws = workspaceOf(request)
  const preview = await app.deletionAdmin.previewWorkspace(ws.id)
  const body = workspacePurgeBody(who(request), ws, preview)
  return page({ title: `${ws.slug} · purge`, admin: who(request), workspace: ws, tab: 'settings', body, error })
}
