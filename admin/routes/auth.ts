// Log-in and log-out. The log-in form is protected by a double-submit cookie (there is no
// session yet); failed attempts are counted per email and per IP and answered 429 past the limit.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { COLLECTIONS } from '../../shared/mongo.ts'
import { needsRehash } from '../../tokens/passwords.ts'
import { adminCollections, normaliseEmail, type AdminUserDoc } from '../../tokens/users.ts'
import { PasswordChecksBusy } from '../security/password-checks.ts'
import { cookieOptions, safeEqual } from '../security/auth.ts'
import { loginPage } from '../views/login.ts'
import { sendHtml, type Query } from './common.ts'

type CookieNames = { session: string; login: string }
type LoginRequest = FastifyRequest<{ Body: Record<string, unknown> }>

/** Only a local path may be a post-log-in target (no open redirect). */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(next) ? next : '/workspaces'
}

function audit(app: FastifyInstance, actor: string, action: string, target: Record<string, unknown>) {
  return app.db.collection(COLLECTIONS.audit).insertOne({ at: app.now(), actor, action, target })
}

// Reused while the cookie lives: a second log-in page load (another tab, a favicon redirect)
// must not invalidate the form already on screen.
function loginToken(app: FastifyInstance, names: CookieNames, request: FastifyRequest, reply: FastifyReply): string {
  const existing = request.cookies[names.login]
  if (existing && /^[A-Za-z0-9_-]{32}$/.test(existing)) return existing
  const token = randomBytes(24).toString('base64url')
  reply.setCookie(names.login, token, cookieOptions(app.adminConfig.cookieSecure, 3600_000))
  return token
}

export default async function authRoutes(app: FastifyInstance, opts: { cookieNames: CookieNames }) {
  const names = opts.cookieNames
  app.get('/login', { config: { public: true } }, async (request: FastifyRequest<{ Querystring: Query }>, reply) => {
    const next = safeNext(request.query.next)
    if (request.admin) return reply.redirect(next, 303)
    reply.header('cache-control', 'no-store')
    return sendHtml(reply, loginPage(loginToken(app, names, request, reply), next))
  })
  app.post('/login', { config: { public: true } }, (request: LoginRequest, reply) => logIn(app, names, request, reply))
  app.post('/logout', { config: { access: 'any' } }, async (request, reply) => {
    const admin = request.admin!
    await app.sessions.destroy(admin.sessionHash)
    await audit(app, `admin:${admin.email}`, 'admin.logout', { user_id: admin.userId })
    reply.clearCookie(names.session, cookieOptions(app.adminConfig.cookieSecure))
    return reply.redirect('/login', 303)
  })
}

async function logIn(app: FastifyInstance, names: CookieNames, request: LoginRequest, reply: FastifyReply) {
  reply.header('cache-control', 'no-store')
  const body = request.body ?? {}
  const next = safeNext(body.next)
  const emailRaw = typeof body.email === 'string' ? body.email.slice(0, 320) : ''
  const password = typeof body.password === 'string' ? body.password : ''
  const refuse = (code: number, error: string) =>
    sendHtml(reply, loginPage(loginToken(app, names, request, reply), next, { email: emailRaw, error }), code)

  if (request.headers['sec-fetch-site'] === 'cross-site' || !safeEqual(body._csrf, request.cookies[names.login])) {
    return refuse(403, 'The log-in form has expired. Please try again.')
  }
  const email = normaliseEmail(emailRaw) ?? emailRaw.trim().toLowerCase()
  let wait: number | null
  try {
    // Charged before the password is checked, atomically: parallel guesses cannot all pass.
    wait = await app.loginLimiter.take(email, request.ip)
  } catch (err) {
    // Fail closed: without the limiter, passwords could be guessed without limit.
    request.log.error({ err: (err as Error).message }, 'log-in limiter unavailable')
    return refuse(503, 'Log-in is unavailable right now (the rate limiter cannot be reached). Try again in a minute.')
  }
  if (wait !== null) {
    reply.header('retry-after', String(Math.ceil(wait / 1000)))
    const after = wait < 60_000 ? `${Math.ceil(wait / 1000)} second(s)` : `${Math.ceil(wait / 60_000)} minute(s)`
    return refuse(429, `Too many log-in attempts. Try again in ${after}.`)
  }
  const user = await adminCollections(app.db).users.findOne({ email })
  let ok: boolean
  try {
    ok = user && !user.disabled ? await app.passwordChecks.verify(password, user.password) : await app.passwordChecks.burn(password)
  } catch (err) {
    if (!(err instanceof PasswordChecksBusy)) throw err
    reply.header('retry-after', '1')
    return refuse(429, 'Too many log-ins are being checked right now. Try again in a second.')
  }
  if (!ok || !user) {
    await audit(app, 'anonymous', 'admin.login_failed', { email, ip: request.ip })
    return refuse(401, 'Wrong email or password.')
  }
  await app.loginLimiter.succeed(email, request.ip).catch(() => {})
  if (needsRehash(user.password)) await upgradeHash(app, user, password)
  const { id, doc } = await app.sessions.create(user)
  reply.setCookie(names.session, id, cookieOptions(app.adminConfig.cookieSecure, doc.expires_at.getTime() - doc.created_at.getTime()))
  reply.clearCookie(names.login, cookieOptions(app.adminConfig.cookieSecure))
  await audit(app, `admin:${user.email}`, 'admin.login', { user_id: user._id, ip: request.ip })
  return reply.redirect(next, 303)
}

/**
 * The password was stored with older (weaker) parameters: upgrade it now that it is known.
 * Conditional on the old hash, so a password reset meanwhile is never overwritten.
 */
async function upgradeHash(app: FastifyInstance, user: AdminUserDoc, password: string): Promise<void> {
  const upgraded = await app.passwordChecks.hash(password).catch(() => null) // busy: upgrade at the next log-in
  if (!upgraded) return
  const res = await adminCollections(app.db).users.updateOne(
    { _id: user._id, 'password.hash': user.password.hash },
    { $set: { password: upgraded } },
  )
  if (res.modifiedCount !== 1) return
  await audit(app, `admin:${user.email}`, 'admin.password_rehash', {
    user_id: user._id,
    from: { N: user.password.N, r: user.password.r, p: user.password.p },
    to: { N: upgraded.N, r: upgraded.r, p: upgraded.p },
  })
}
