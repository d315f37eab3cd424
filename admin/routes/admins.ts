// The admins page (superadmins only): accounts, the superadmin flag and roles per workspace,
// changed through tokens/roles.ts like the CLI, so the panel and the CLI audit the same way.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AdminUserError } from '../../tokens/errors.ts'
import { grantRole, listAdmins, revokeRole, setSuperadmin } from '../../tokens/roles.ts'
import { adminsBody } from '../views/admins.ts'
import { page } from '../views/layout.ts'
import { actorOf, notice, sendHtml, who, type Query } from './common.ts'

type Body = Record<string, string | undefined>
type AdminsRequest = FastifyRequest<{ Body: Body }>

async function adminsPage(app: FastifyInstance, request: FastifyRequest, q: Query, error: string | null = null, form: Body = {}) {
  const admin = who(request)
  const [users, workspaces] = await Promise.all([listAdmins(app.db), app.tokenAdmin.listWorkspaces()])
  const body = adminsBody(admin, users, workspaces, form)
  return page({ title: 'Admins', admin, top: 'admins', body, notice: notice(q), error })
}

/** Runs one change; a refusal (unknown account, last superadmin …) is the page again with the reason, 400. */
async function change(app: FastifyInstance, request: AdminsRequest, reply: FastifyReply, done: string, run: (b: Body) => Promise<unknown>) {
  try {
    await run(request.body ?? {})
  } catch (err) {
    if (!(err instanceof AdminUserError)) throw err
    return sendHtml(reply, await adminsPage(app, request, {}, err.message, request.body ?? {}), 400)
  }
  return reply.redirect(`/admins?done=${done}`, 303)
}

export default async function adminRoutes(app: FastifyInstance) {
  const superadmin = { config: { access: 'superadmin' as const } }
  app.get('/admins', superadmin, async (request: FastifyRequest<{ Querystring: Query }>, reply) =>
    sendHtml(reply, await adminsPage(app, request, request.query)),
  )
  app.post('/admins/grant', superadmin, (request: AdminsRequest, reply) =>
    change(app, request, reply, 'granted', (b) => grantRole(app.db, b.email ?? '', b.workspace ?? '', b.role ?? '', actorOf(request))),
  )
  app.post('/admins/revoke', superadmin, (request: AdminsRequest, reply) =>
    change(app, request, reply, 'role_removed', (b) => revokeRole(app.db, b.email ?? '', b.workspace ?? '', actorOf(request))),
  )
  app.post('/admins/superadmin', superadmin, (request: AdminsRequest, reply) =>
    change(app, request, reply, 'superadmin_changed', (b) => {
      if (b.superadmin !== 'on' && b.superadmin !== 'off') throw new AdminUserError('bad_role', 'choose on or off')
      return setSuperadmin(app.db, b.email ?? '', b.superadmin === 'on', actorOf(request))
    }),
  )
}
