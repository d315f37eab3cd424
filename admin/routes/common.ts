// Helpers shared by the route files.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AppError } from '../../shared/errors.ts'
import { isValidId } from '../../shared/ids.ts'
import { collections } from '../../shared/mongo.ts'
import { WORKSPACE_ID_PATTERN } from '../../tokens/rules.ts'
import type { AdminIdentity } from '../security/auth.ts'
import type { WorkspaceRef } from '../views/layout.ts'

/** No such workspace, session, image … for this admin: answered 404 with the message. */
export class NotFound extends AppError {
  readonly code = 'not_found'
}

/** The logged-in admin; the onRequest hook guarantees one on every non-public route. */
export function who(request: FastifyRequest): AdminIdentity {
  if (!request.admin) throw new Error('no admin on a protected route')
  return request.admin
}

/** The audit-log actor for an admin action. */
export const actorOf = (request: FastifyRequest): string => `admin:${who(request).email}`

/** Workspaces are addressed by id in URLs (stable across renames). */
export async function loadWorkspace(app: FastifyInstance, id: unknown): Promise<WorkspaceRef> {
  if (typeof id !== 'string' || !WORKSPACE_ID_PATTERN.test(id)) throw new NotFound('No such workspace.')
  const ws = await collections(app.db).workspaces.findOne({ _id: id })
  if (!ws) throw new NotFound('No such workspace.')
  return { id: ws._id, slug: ws.slug, name: ws.name, active: ws.active }
}

export function checkId(value: unknown, what: string): string {
  if (!isValidId(value)) throw new NotFound(`No such ${what}.`)
  return value
}

export type Query = Record<string, string | undefined>

/** An HTML page as the answer. */
export function sendHtml(reply: FastifyReply, body: string, code = 200): FastifyReply {
  return reply.code(code).type('text/html; charset=utf-8').send(body)
}

/** The `before` paging cursor of a time-ordered list (ms since the epoch), or null. */
export function beforeCursor(q: Query): Date | null {
  return q.before && /^\d{1,15}$/.test(q.before) ? new Date(Number(q.before)) : null
}

/** Fixed notices after a redirect: the query names one, so no text is ever reflected. */
export const NOTICES: Record<string, string> = {
  created: 'Workspace created.',
  renamed: 'Workspace saved.',
  activated: 'Workspace reactivated: its tokens work again.',
  deactivated: 'Workspace deactivated: its tokens are refused from now on.',
  revoked: 'Token revoked: gateways refuse it from now on.',
  granted: 'Role given: it applies at their next click.',
  role_removed: 'Role removed: it applies at their next click.',
  superadmin_changed: 'Superadmin setting saved.',
  retention: 'Retention saved: the next retention run applies it.',
}

/**
 * Shown when a change that takes access away is saved but could not be pushed to the gateways
 * (Redis unreachable for the whole retry window): until a worker's next mirror sync, a gateway
 * may still accept the old token, so the operator must know, and can repeat the action to push it.
 */
export const UNCONFIRMED_PUSH =
  'Saved, but the gateways could not be told (Redis did not answer). They apply it at the next mirror sync by a worker, within about 30 seconds; repeat the action to push it now.'

export const notice = (q: Query): string | null => (q.done && Object.hasOwn(NOTICES, q.done) ? NOTICES[q.done]! : null)
