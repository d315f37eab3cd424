// What each admin may see and do (README "Roles"). Every route of the panel declares its access
// in its route config, and buildAdmin refuses to start if one does not, so a new page can never
// be reachable by everyone by omission:
//
//   app.get('/workspaces/:ws/things', { config: { access: 'owner' } }, handler)
//
//   'any'         any logged-in admin; the page filters itself (workspaceFilter)
//   'superadmin'  workspaces, admin users and memberships
//   'analyst'     read a workspace: sessions, photos, exports, dashboards, reports
//   'owner'       change a workspace: tokens (and whatever else is declared 'owner')
//
// For 'analyst' and 'owner' the route has a `:ws` parameter; the check loads that workspace and
// hands it to the handler (workspaceOf). A superadmin is an owner of every workspace.
//
// Refusals: a workspace the admin has no role in answers exactly like one that does not exist
// (404 "No such workspace."), so guessing ids reveals nothing. An admin who has a role there but
// not enough of one (an analyst on a token page) already knows the workspace exists and gets 403
// with the reason. A 'superadmin' page answers 403 to anyone else before any workspace is looked
// at, so it too gives the same answer for every workspace id.
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import { AppError } from '../../shared/errors.ts'
import { roleIncludes, type WorkspaceRole } from '../../tokens/roles.ts'
import { loadWorkspace, NotFound, who } from '../routes/common.ts'
import type { WorkspaceRef } from '../views/layout.ts'
import type { AdminIdentity } from './auth.ts'

export type Access = 'any' | 'superadmin' | WorkspaceRole

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may use the route (see admin/security/roles.ts); required on every non-public route. */
    access?: Access
  }
  interface FastifyRequest {
    /** The `:ws` workspace of an 'analyst' or 'owner' route, once the role check passed. */
    workspace: WorkspaceRef | null
  }
}

/** Logged in, and the workspace exists for this admin, but their role does not allow the action: 403. */
export class Forbidden extends AppError {
  readonly code = 'forbidden'
}

const NO_SUCH_WORKSPACE = 'No such workspace.'

/** The admin's role in a workspace, counting a superadmin as an owner everywhere. */
export function roleIn(admin: AdminIdentity, wsId: string): WorkspaceRole | null {
  if (admin.superadmin) return 'owner'
  return Object.hasOwn(admin.roles, wsId) ? admin.roles[wsId]! : null
}

/** For views: whether to show a link, a tab or a form. */
export const hasWorkspaceRole = (admin: AdminIdentity, wsId: string, need: WorkspaceRole): boolean =>
  roleIncludes(roleIn(admin, wsId), need)

/** The workspace ids a list may show: null means all of them (a superadmin). */
export const workspaceFilter = (admin: AdminIdentity): string[] | null => (admin.superadmin ? null : Object.keys(admin.roles))

/**
 * The workspace `wsId` if the logged-in admin has at least `need` in it; otherwise NotFound (no
 * role there, or no such workspace: the same answer) or Forbidden (a lesser role). For checks
 * where the workspace does not come from the `:ws` parameter, e.g. a record looked up by its id.
 */
export async function requireWorkspaceRole(
  app: FastifyInstance,
  request: FastifyRequest,
  wsId: unknown,
  need: WorkspaceRole,
): Promise<WorkspaceRef> {
  const admin = who(request)
  // Checked before the lookup, so an unknown id and another team's id take the same path.
  const have = typeof wsId === 'string' ? roleIn(admin, wsId) : null
  if (have === null) throw new NotFound(NO_SUCH_WORKSPACE)
  const ws = await loadWorkspace(app, wsId)
  if (!roleIncludes(have, need)) throw new Forbidden(`Only an owner of workspace "${ws.slug}" can do this.`)
  return ws
}

/** The `:ws` workspace that the access check loaded for this request. */
export function workspaceOf(request: FastifyRequest): WorkspaceRef {
  if (!request.workspace) throw new Error(`route ${request.routeOptions.url} has no 'analyst' or 'owner' access declared`)
  return request.workspace
}

/** Run for every request to a non-public route once the admin is known (admin/app.ts). */
export async function checkAccess(app: FastifyInstance, request: FastifyRequest): Promise<void> {
  const access = request.routeOptions.config?.access
  const admin = who(request)
  if (access === 'any') return
  if (access === 'superadmin') {
    if (!admin.superadmin) throw new Forbidden('Only a superadmin can do this.')
    return
  }
  if (access !== 'analyst' && access !== 'owner') throw new Error(`route ${request.routeOptions.url} declares no access`)
  request.workspace = await requireWorkspaceRole(app, request, (request.params as { ws?: unknown }).ws, access)
}

/** The onRoute check: every non-public route says who may use it, and workspace routes name their workspace. */
export function assertAccessDeclared(route: Pick<RouteOptions, 'url' | 'method' | 'config'>): void {
  const config = route.config as { public?: boolean; access?: Access } | undefined
  if (config?.public === true) return
  const access = config?.access
  const where = `${[route.method].flat().join(',')} ${route.url}`
  if (access !== 'any' && access !== 'superadmin' && access !== 'analyst' && access !== 'owner') {
    throw new Error(`admin route ${where} must declare config.access (admin/security/roles.ts)`)
  }
  const hasWs = /\/:ws(\/|$)/.test(route.url)
  if ((access === 'analyst' || access === 'owner') && !hasWs) {
    throw new Error(`admin route ${where}: '${access}' access needs a :ws parameter (use requireWorkspaceRole otherwise)`)
  }
  // 'any' on a workspace's page would let every admin into every workspace.
  if (access === 'any' && hasWs) throw new Error(`admin route ${where}: a workspace route needs 'analyst', 'owner' or 'superadmin'`)
}
