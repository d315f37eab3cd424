// Log-in sessions and CSRF. The cookie carries a random 256-bit id; MongoDB keeps only its
// sha256 (admin_sessions), with an absolute expiry and the session's CSRF synchronizer token.
// Every POST must carry that token in the `_csrf` field; the log-in form, which has no session
// yet, uses a double-submit cookie instead. Cookies are HttpOnly, SameSite=Strict, Path=/, and
// Secure (with the __Host- prefix) whenever the panel is served over https.
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Db } from 'mongodb'
import { isWorkspaceRole, type WorkspaceRole } from '../../tokens/roles.ts'
import { adminCollections, hashSessionId, type AdminSessionDoc } from '../../tokens/users.ts'

export interface AdminIdentity {
  userId: string
  email: string
  csrf: string
  sessionHash: string
  /** Read from the user document on every request, so a grant or revoke applies at the next click. */
  superadmin: boolean
  /** Role per workspace id; admin/security/roles.ts decides what each allows. */
  roles: Record<string, WorkspaceRole>
}

declare module 'fastify' {
  interface FastifyRequest {
    admin: AdminIdentity | null
  }
  interface FastifyContextConfig {
    /** Reachable without a log-in (the log-in page, static files, health). */
    public?: boolean
  }
}

export function cookieNames(secure: boolean) {
  // __Host- cookies must be Secure, Path=/ and host-only, so browsers refuse them over plain http.
  return secure ? { session: '__Host-rdt_admin', login: '__Host-rdt_admin_login' } : { session: 'rdt_admin', login: 'rdt_admin_login' }
}

export function safeEqual(a: unknown, b: unknown): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export function createSessionStore(db: Db, opts: { ttlMs: number; now?: () => Date }) {
  const c = adminCollections(db)
  const now = opts.now ?? (() => new Date())
  return {
    async create(user: { _id: string; email: string }): Promise<{ id: string; doc: AdminSessionDoc }> {
      const id = randomBytes(32).toString('base64url')
      const at = now()
      const doc: AdminSessionDoc = {
        _id: hashSessionId(id),
        user_id: user._id,
        email: user.email,
        csrf: randomBytes(32).toString('base64url'),
        created_at: at,
        expires_at: new Date(at.getTime() + opts.ttlMs),
      }
      // Housekeeping at log-in time keeps the collection small without a TTL index (FerretDB v1 has none).
      await c.sessions.deleteMany({ expires_at: { $lt: at } })
      await c.sessions.insertOne(doc)
      return { id, doc }
    },
    /** The session's admin with their rights as they are now, or null (no session, expired, account disabled). */
    async lookup(id: string | undefined): Promise<AdminIdentity | null> {
      if (!id || id.length > 100) return null
      const doc = await c.sessions.findOne({ _id: hashSessionId(id) })
      if (!doc || doc.expires_at.getTime() <= now().getTime()) return null
      const user = await c.users.findOne({ _id: doc.user_id }, { projection: { disabled: 1, superadmin: 1, workspace_roles: 1 } })
      if (!user || user.disabled) return null
      return {
        userId: doc.user_id,
        email: doc.email,
        csrf: doc.csrf,
        sessionHash: doc._id,
        superadmin: user.superadmin === true,
        roles: validRoles(user.workspace_roles),
      }
    },
    async destroy(sessionHash: string): Promise<void> {
      await c.sessions.deleteOne({ _id: sessionHash })
    },
  }
}

/** Only well-formed roles count: a hand-edited document with an unknown value grants nothing. */
function validRoles(roles: Record<string, unknown> | undefined): Record<string, WorkspaceRole> {
  const out: Record<string, WorkspaceRole> = {}
  for (const [ws, role] of Object.entries(roles ?? {})) if (isWorkspaceRole(role)) out[ws] = role
  return out
}

export type SessionStore = ReturnType<typeof createSessionStore>

export function cookieOptions(secure: boolean, maxAgeMs?: number) {
  return {
    httpOnly: true,
    sameSite: 'strict' as const,
    path: '/',
    secure,
    ...(maxAgeMs !== undefined ? { maxAge: Math.floor(maxAgeMs / 1000) } : {}),
  }
}

/** Sends a browser that is not logged in to the log-in page, and anything else a bare 401. */
export function refuseAnonymous(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (request.method === 'GET' || request.method === 'HEAD') {
    const accept = String(request.headers.accept ?? '')
    if (accept === '' || accept.includes('text/html') || accept.includes('*/*')) {
      const next = request.url.startsWith('/') && !request.url.startsWith('//') ? request.url : '/'
      return reply
        .code(303)
        .header('location', `/login?next=${encodeURIComponent(next)}`)
        .header('cache-control', 'no-store')
        .send()
    }
  }
  return reply.code(401).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send('log in first')
}
