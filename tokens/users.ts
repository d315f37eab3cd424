// Admin users (`admin_users`) and their log-in sessions (`admin_sessions`). Only hashes are
// stored: the scrypt hash of a password, the sha256 of a session id.
import { createHash, randomBytes } from 'node:crypto'
import type { Db } from 'mongodb'
import { COLLECTIONS, isDuplicateKey } from '../shared/mongo.ts'
import { AdminUserError } from './errors.ts'
import { checkPasswordPolicy, hashPassword, type PasswordHash } from './passwords.ts'
import type { WorkspaceRole } from './roles.ts'

export interface AdminUserDoc {
  _id: string
  email: string
  password: PasswordHash
  created_at: Date
  disabled: boolean
  /**
   * Global rights: workspaces, admin users and memberships, and owner of every workspace
   * (README "Roles"). Absent only on an account made before roles existed; the start-up
   * migration (tokens/roles.ts migrateLegacyAdmins) sets it.
   */
  superadmin?: boolean
  /** The account's role per workspace id (tokens/roles.ts explains why a map on the user). */
  workspace_roles?: Record<string, WorkspaceRole>
}

export interface AdminSessionDoc {
  /** sha256 of the session id in the cookie. */
  _id: string
  user_id: string
  email: string
  /** Synchronizer token that every form of this session must carry. */
  csrf: string
  created_at: Date
  expires_at: Date
}

export const ADMIN_COLLECTIONS = { users: 'admin_users', sessions: 'admin_sessions' } as const

export function adminCollections(db: Db) {
  return {
    users: db.collection<AdminUserDoc>(ADMIN_COLLECTIONS.users),
    sessions: db.collection<AdminSessionDoc>(ADMIN_COLLECTIONS.sessions),
  }
}

const EMAIL = /^[^\s@<>"'\\]{1,64}@[^\s@<>"'\\]{1,255}$/

export function normaliseEmail(email: unknown): string | null {
  if (typeof email !== 'string') return null
  const e = email.trim().toLowerCase()
  return EMAIL.test(e) ? e : null
}

/** The normalised email, or a refusal. */
export function requireEmail(input: string): string {
  const email = normaliseEmail(input)
  if (!email) throw new AdminUserError('bad_email', `invalid email "${input}"`)
  return email
}

function requirePasswordPolicy(password: string): void {
  const problem = checkPasswordPolicy(password)
  if (problem) throw new AdminUserError('bad_password', problem)
}

export async function requireUser(db: Db, email: string): Promise<AdminUserDoc> {
  const user = await adminCollections(db).users.findOne({ email })
  if (!user) throw new AdminUserError('unknown_admin', `no admin "${email}"`)
  return user
}

export async function auditAdminAction(db: Db, actor: string, action: string, target: Record<string, unknown>): Promise<void> {
  await db.collection(COLLECTIONS.audit).insertOne({ at: new Date(), actor, action, target })
}

/**
 * `admin create <email>`. The first account of a deployment is a superadmin (someone must be able
 * to grant roles from the panel); every later one starts with no role at all. Two concurrent
 * "first" creations could both see an empty collection and both become superadmins: harmless,
 * since whoever can run the CLI can already make any account a superadmin (`admin superadmin`).
 */
export async function createAdminUser(
  db: Db,
  emailInput: string,
  password: string,
  actor: string,
): Promise<{ id: string; email: string; superadmin: boolean }> {
  const email = requireEmail(emailInput)
  requirePasswordPolicy(password)
  await ensureAdminUserIndexes(db) // the unique email index is what refuses a second "admin create"
  const superadmin = (await adminCollections(db).users.countDocuments({}, { limit: 1 })) === 0
  const doc: AdminUserDoc = {
    _id: 'u' + randomBytes(8).toString('hex'),
    email,
    password: await hashPassword(password),
    created_at: new Date(),
    disabled: false,
    superadmin,
    workspace_roles: {},
  }
  try {
    await adminCollections(db).users.insertOne(doc)
  } catch (err) {
    if (isDuplicateKey(err)) throw new AdminUserError('duplicate_admin', `admin "${email}" already exists`)
    throw err
  }
  await auditAdminAction(db, actor, 'admin.create', { user_id: doc._id, email, superadmin })
  return { id: doc._id, email, superadmin }
}

export const hashSessionId = (id: string): string => createHash('sha256').update(id).digest('hex')

export async function ensureAdminUserIndexes(db: Db): Promise<void> {
  const c = adminCollections(db)
  await Promise.all([c.users.createIndex({ email: 1 }, { unique: true }), c.sessions.createIndex({ expires_at: 1 })])
}

/**
 * `admin disable <email>`: the account can no longer log in, and every session it has ends at
 * once (deleted; a session lookup also refuses a disabled user, so one created concurrently is
 * refused too). Audited as `admin.disable` with the number of sessions ended.
 */
export async function disableAdminUser(
  db: Db,
  emailInput: string,
  actor: string,
): Promise<{ id: string; email: string; already_disabled: boolean; sessions_ended: number }> {
  const email = requireEmail(emailInput)
  const user = await requireUser(db, email)
  const c = adminCollections(db)
  await c.users.updateOne({ _id: user._id }, { $set: { disabled: true } })
  const ended = await c.sessions.deleteMany({ user_id: user._id })
  const res = { id: user._id, email, already_disabled: user.disabled === true, sessions_ended: ended.deletedCount }
  await auditAdminAction(db, actor, 'admin.disable', {
    user_id: user._id,
    email,
    already_disabled: res.already_disabled,
    sessions_ended: res.sessions_ended,
  })
  return res
}

/**
 * `admin reset-password <email>`: a new password (same policy as `admin create`, hashed with
 * today's parameters); the account's sessions end, so whoever knew the old password is logged
 * out. A disabled account stays disabled. Audited as `admin.reset_password` (never the password).
 */
export async function resetAdminPassword(
  db: Db,
  emailInput: string,
  password: string,
  actor: string,
): Promise<{ id: string; email: string; disabled: boolean; sessions_ended: number }> {
  const email = requireEmail(emailInput)
  requirePasswordPolicy(password)
  const user = await requireUser(db, email)
  const c = adminCollections(db)
  await c.users.updateOne({ _id: user._id }, { $set: { password: await hashPassword(password) } })
  const ended = await c.sessions.deleteMany({ user_id: user._id })
  const res = { id: user._id, email, disabled: user.disabled === true, sessions_ended: ended.deletedCount }
  await auditAdminAction(db, actor, 'admin.reset_password', { user_id: user._id, email, sessions_ended: res.sessions_ended })
  return res
}
