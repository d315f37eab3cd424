// Admin roles (README "Roles"): a role per workspace, `owner` or `analyst`, and a global
// `superadmin` flag. This module changes and lists them; the admin panel enforces them
// (admin/security/roles.ts). The CLI itself checks no role: it runs with the database's
// credentials, so whoever can run it can already do everything.
//
// Storage: a map `workspace_roles: { <workspace id>: "owner" | "analyst" }` on the admin_users
// document, not a separate memberships collection, because
// - the panel checks roles on every request, and the session lookup already reads the user
//   document (is it disabled?): the roles come with that same read, no extra round trip;
// - granting or revoking is one `$set`/`$unset` of one key: atomic, and at most one role per
//   (user, workspace) by construction, without a transaction (FerretDB v1 has none) or an index;
// - a membership can never outlive its user.
// The price, "who are the members of workspace X", is a scan of admin_users: a handful of
// documents. Workspace ids (`w` + 16 hex digits) are safe as field names on MongoDB and FerretDB.
import type { Db } from 'mongodb'
import { collections } from '../shared/mongo.ts'
import { AdminUserError } from './errors.ts'
import { SLUG_PATTERN, WORKSPACE_ID_PATTERN } from './rules.ts'
import { adminCollections, auditAdminAction, requireEmail, requireUser } from './users.ts'

/** Ordered from least to most: an owner can do everything an analyst can. */
export const WORKSPACE_ROLES = ['analyst', 'owner'] as const
export type WorkspaceRole = (typeof WORKSPACE_ROLES)[number]

export const isWorkspaceRole = (x: unknown): x is WorkspaceRole => (WORKSPACE_ROLES as readonly unknown[]).includes(x)

/** Whether a role (or none) includes what `need` allows. */
export const roleIncludes = (have: WorkspaceRole | null | undefined, need: WorkspaceRole): boolean =>
  have != null && WORKSPACE_ROLES.indexOf(have) >= WORKSPACE_ROLES.indexOf(need)

export interface MembershipChange {
  user_id: string
  email: string
  workspace_id: string
  slug: string
  role: WorkspaceRole | null
  previous_role: WorkspaceRole | null
}

export interface AdminListItem {
  id: string
  email: string
  disabled: boolean
  superadmin: boolean
  created_at: Date
  roles: { workspace_id: string; slug: string; role: WorkspaceRole }[]
}

async function requireWorkspace(db: Db, slugOrId: string): Promise<{ id: string; slug: string }> {
  // Slugs can never look like ids (tokens/rules.ts validateSlug), so the shape says which field to query.
  const ws = WORKSPACE_ID_PATTERN.test(slugOrId)
    ? await collections(db).workspaces.findOne({ _id: slugOrId })
    : SLUG_PATTERN.test(slugOrId)
      ? await collections(db).workspaces.findOne({ slug: slugOrId })
      : null
  if (!ws) throw new AdminUserError('unknown_workspace', `unknown workspace "${slugOrId}"`)
  return { id: ws._id, slug: ws.slug }
}

const roleOf = (roles: Record<string, unknown> | undefined, wsId: string): WorkspaceRole | null => {
  const r = roles?.[wsId]
  return isWorkspaceRole(r) ? r : null
}

/** `admin grant <email> --workspace <slug> --role owner|analyst`: sets (or replaces) the account's role there. */
export async function grantRole(db: Db, emailInput: string, workspace: string, role: string, actor: string): Promise<MembershipChange> {
  if (!isWorkspaceRole(role)) throw new AdminUserError('bad_role', `invalid role "${role}": use ${WORKSPACE_ROLES.join(' or ')}`)
  const user = await requireUser(db, requireEmail(emailInput))
  const ws = await requireWorkspace(db, workspace)
  await adminCollections(db).users.updateOne({ _id: user._id }, { $set: { [`workspace_roles.${ws.id}`]: role } })
  const res = {
    user_id: user._id,
    email: user.email,
    workspace_id: ws.id,
    slug: ws.slug,
    role,
    previous_role: roleOf(user.workspace_roles, ws.id),
  }
  await auditAdminAction(db, actor, 'admin.grant', { ...res })
  return res
}

/** `admin revoke <email> --workspace <slug>`: the account has no role there any more (effective on its next request). */
export async function revokeRole(db: Db, emailInput: string, workspace: string, actor: string): Promise<MembershipChange> {
  const user = await requireUser(db, requireEmail(emailInput))
  const ws = await requireWorkspace(db, workspace)
  await adminCollections(db).users.updateOne({ _id: user._id }, { $unset: { [`workspace_roles.${ws.id}`]: '' } })
  const res = {
    user_id: user._id,
    email: user.email,
    workspace_id: ws.id,
    slug: ws.slug,
    role: null,
    previous_role: roleOf(user.workspace_roles, ws.id),
  }
  await auditAdminAction(db, actor, 'admin.revoke', { ...res })
  return res
}

/**
 * `admin superadmin <email> on|off`. Turning off the last enabled superadmin is refused, so the
 * panel always keeps someone who can grant roles. Without transactions the check is
 * "change, count, undo if none is left": two concurrent "off"s can both be undone, but never
 * both kept, so at least one superadmin always remains.
 */
export async function setSuperadmin(
  db: Db,
  emailInput: string,
  on: boolean,
  actor: string,
): Promise<{ id: string; email: string; superadmin: boolean; changed: boolean }> {
  const user = await requireUser(db, requireEmail(emailInput))
  const users = adminCollections(db).users
  await users.updateOne({ _id: user._id }, { $set: { superadmin: on } })
  if (!on && (await users.countDocuments({ superadmin: true, disabled: { $ne: true } }, { limit: 1 })) === 0) {
    await users.updateOne({ _id: user._id }, { $set: { superadmin: user.superadmin === true } })
    throw new AdminUserError('last_superadmin', `"${user.email}" is the last enabled superadmin; make another account superadmin first`)
  }
  const res = { id: user._id, email: user.email, superadmin: on, changed: user.superadmin !== on }
  await auditAdminAction(db, actor, 'admin.superadmin', { user_id: user._id, email: user.email, superadmin: on, changed: res.changed })
  return res
}

/** Every admin account with its rights (never a password hash), by email. */
export async function listAdmins(db: Db): Promise<AdminListItem[]> {
  const users = await adminCollections(db)
    .users.find({}, { projection: { password: 0 } })
    .sort({ email: 1 })
    .toArray()
  const wsIds = [...new Set(users.flatMap((u) => Object.keys(u.workspace_roles ?? {})))]
  const slugs = new Map(
    (
      await collections(db)
        .workspaces.find({ _id: { $in: wsIds } }, { projection: { slug: 1 } })
        .toArray()
    ).map((w) => [w._id, w.slug]),
  )
  return users.map((u) => ({
    id: u._id,
    email: u.email,
    disabled: u.disabled === true,
    superadmin: u.superadmin === true,
    created_at: u.created_at,
    roles: Object.entries(u.workspace_roles ?? {})
      .filter((e): e is [string, WorkspaceRole] => isWorkspaceRole(e[1]) && slugs.has(e[0]))
      .map(([id, role]) => ({ workspace_id: id, slug: slugs.get(id)!, role }))
      .sort((a, b) => a.slug.localeCompare(b.slug)),
  }))
}

/**
 * Accounts made before roles existed have no `superadmin` field. Until then every admin could do
 * everything, so they become superadmins: an upgrade must not lock the operators out of a running
 * panel, and nobody gains a right they did not have. The operator narrows them afterwards
 * (README "Roles"). Runs at the start of the admin panel and of every CLI command; idempotent,
 * and audited per account as `admin.superadmin` with `migrated: true`.
 */
export async function migrateLegacyAdmins(db: Db, actor: string): Promise<string[]> {
  const users = adminCollections(db).users
  const legacy = await users.find({ superadmin: { $exists: false } }, { projection: { email: 1 } }).toArray()
  const migrated: string[] = []
  for (const u of legacy) {
    const res = await users.updateOne({ _id: u._id, superadmin: { $exists: false } }, { $set: { superadmin: true } })
    if (res.modifiedCount !== 1) continue // another process migrated it meanwhile
    migrated.push(u.email)
    await auditAdminAction(db, actor, 'admin.superadmin', {
      user_id: u._id,
      email: u.email,
      superadmin: true,
      changed: true,
      migrated: true,
    })
  }
  return migrated
}
