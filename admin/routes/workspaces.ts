// Workspaces: the list with activity counts, create, rename, deactivate and reactivate. Every
// change goes through the tokens module (tokens/), which writes the audit log and re-publishes the
// token mirror (a deactivated workspace's tokens are refused by every gateway within a second).
import type { FastifyInstance } from 'fastify'
import { TokenAdminError } from '../../tokens/errors.ts'
import { workspaceActivity } from '../data/activity.ts'
import { fmtAgo, fmtDate } from '../views/format.ts'
import { html, seg } from '../views/html.ts'
import { csrfField, page } from '../views/layout.ts'
import { actorOf, loadWorkspace, notice, UNCONFIRMED_PUSH, who, type Query } from './common.ts'

type Body = Record<string, string | undefined>

export default async function workspaceRoutes(app: FastifyInstance) {
  app.get('/', async (_request, reply) => reply.redirect('/workspaces', 303))

  const listPage = async (admin: ReturnType<typeof who>, q: Query, error: string | null = null, form: Body = {}) => {
    const list = await app.tokenAdmin.listWorkspaces()
    const activity = await workspaceActivity(
      app.db,
      list.map((w) => w.id),
      app.now(),
    )
    const body = html`<h1>Workspaces</h1>
      <table>
        <thead><tr><th>Workspace</th><th>Slug</th><th>Status</th><th class="num">Sessions today</th><th class="num">This week</th><th>Last upload</th><th class="num">Active tokens</th></tr></thead>
        <tbody>${list.map((w) => {
          const a = activity.get(w.id)
          return html`<tr>
            <td><a href="/workspaces/${seg(w.id)}/dashboard">${w.name}</a></td>
            <td class="mono">${w.slug}</td>
            <td>${w.active ? html`<span class="badge good">active</span>` : html`<span class="badge bad">inactive</span>`}</td>
            <td class="num">${a?.today ?? 0}</td>
            <td class="num">${a?.week ?? 0}</td>
            <td title="${fmtDate(a?.lastUpload)}">${a?.lastUpload ? fmtAgo(a.lastUpload, app.now()) : 'never'}</td>
            <td class="num">${w.active_tokens} / ${w.tokens}</td>
          </tr>`
        })}</tbody>
      </table>
      ${list.length === 0 ? html`<p class="muted">No workspace yet.</p>` : ''}
      <p class="muted">Counts are sessions received since 00:00 UTC today and since Monday 00:00 UTC; the last upload is the newest session, log batch or photo received.</p>
      <h2>New workspace</h2>
      <form method="post" action="/workspaces" class="row">
        ${csrfField(admin)}
        <label>Slug <input name="slug" required placeholder="clinic-a" value="${form.slug ?? ''}"></label>
        <label>Name <input name="name" placeholder="Clinic A" value="${form.name ?? ''}"></label>
        <button type="submit">Create workspace</button>
      </form>`
    return page({ title: 'Workspaces', admin, top: 'workspaces', body, notice: notice(q), error })
  }

  app.get<{ Querystring: Query }>('/workspaces', async (request, reply) =>
    reply.type('text/html; charset=utf-8').send(await listPage(who(request), request.query)),
  )

  app.post<{ Body: Body }>('/workspaces', async (request, reply) => {
    const b = request.body
    try {
      const ws = await app.tokenAdmin.createWorkspace(b.slug ?? '', { name: b.name || null, actor: actorOf(request) })
      return reply.redirect(`/workspaces/${seg(ws.id)}/tokens?done=created`, 303)
    } catch (err) {
      if (!(err instanceof TokenAdminError)) throw err
      return reply
        .code(400)
        .type('text/html; charset=utf-8')
        .send(await listPage(who(request), {}, err.message, b))
    }
  })

  app.get<{ Params: { ws: string } }>('/workspaces/:ws', async (request, reply) => {
    const ws = await loadWorkspace(app, request.params.ws)
    return reply.redirect(`/workspaces/${seg(ws.id)}/dashboard`, 303)
  })

  const settingsPage = async (request: import('fastify').FastifyRequest, wsId: string, q: Query, error: string | null = null) => {
    const admin = who(request)
    const ws = await loadWorkspace(app, wsId)
    const body = html`<div class="card">
        <h2>Name and slug</h2>
        <form method="post" action="/workspaces/${seg(ws.id)}/rename" class="row">
          ${csrfField(admin)}
          <label>Name <input name="name" required value="${ws.name}"></label>
          <label>Slug <input name="slug" required value="${ws.slug}"></label>
          <button type="submit">Save</button>
        </form>
        <p class="muted">The slug is what the CLI uses; DSNs do not contain it, so renaming never breaks a device.</p>
      </div>
      <div class="card">
        <h2>Status</h2>
        ${
          ws.active
            ? html`<p>Active: its tokens are accepted.</p>
            <form method="post" action="/workspaces/${seg(ws.id)}/deactivate" data-confirm="Deactivate ${ws.slug}? Every device using its tokens will be refused.">
              ${csrfField(admin)}<button class="danger" type="submit">Deactivate workspace</button>
            </form>
            <p class="muted">Deactivating refuses every token of this workspace (403) within a second; data already received stays.</p>`
            : html`<p>Inactive: its tokens are refused.</p>
            <form method="post" action="/workspaces/${seg(ws.id)}/activate">${csrfField(admin)}<button type="submit">Reactivate workspace</button></form>`
        }
      </div>
      <p><a href="/audit?workspace=${seg(ws.id)}">Audit log of this workspace</a></p>`
    return page({ title: `${ws.slug} · settings`, admin, workspace: ws, tab: 'settings', body, notice: notice(q), error })
  }

  app.get<{ Params: { ws: string }; Querystring: Query }>('/workspaces/:ws/settings', async (request, reply) =>
    reply.type('text/html; charset=utf-8').send(await settingsPage(request, request.params.ws, request.query)),
  )

  app.post<{ Params: { ws: string }; Body: Body }>('/workspaces/:ws/rename', async (request, reply) => {
    const ws = await loadWorkspace(app, request.params.ws)
    try {
      await app.tokenAdmin.renameWorkspace(ws.id, { name: request.body.name, slug: request.body.slug }, actorOf(request))
    } catch (err) {
      if (!(err instanceof TokenAdminError)) throw err
      return reply
        .code(400)
        .type('text/html; charset=utf-8')
        .send(await settingsPage(request, ws.id, {}, err.message))
    }
    return reply.redirect(`/workspaces/${seg(ws.id)}/settings?done=renamed`, 303)
  })

  for (const action of ['activate', 'deactivate'] as const) {
    app.post<{ Params: { ws: string } }>(`/workspaces/:ws/${action}`, async (request, reply) => {
      const ws = await loadWorkspace(app, request.params.ws)
      const res = await app.tokenAdmin.setWorkspaceActive(ws.id, action === 'activate', actorOf(request))
      if (res.tokens_republished === null)
        return reply
          .code(503)
          .type('text/html; charset=utf-8')
          .send(await settingsPage(request, ws.id, {}, UNCONFIRMED_PUSH))
      return reply.redirect(`/workspaces/${seg(ws.id)}/settings?done=${action}d`, 303)
    })
  }
}
