// Log-in and log-out. The log-in form is protected by a double-submit cookie (there is no
// session yet); failed attempts are counted per email and per IP and answered 429 past the limit.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { needsRehash } from '../../tokens/passwords.ts'
import { PasswordChecksBusy } from '../security/password-checks.ts'
import { cookieOptions, safeEqual } from '../security/auth.ts'
import { adminCollections, normaliseEmail } from '../../tokens/users.ts'
import { html } from '../views/html.ts'
import { page } from '../views/layout.ts'
import type { Query } from './common.ts'

/** Only a local path may be a post-log-in target (no open redirect). */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(next) ? next : '/workspaces'
}

function loginPage(token: string, next: string, opts: { email?: string; error?: string | null } = {}): string {
  return page({
    title: 'Log in',
    admin: null,
    error: opts.error,
    body: html`<div class="login card">
      <h1>Log in</h1>
      <form method="post" action="/login" class="stack">
        <input type="hidden" name="_csrf" value="${token}">
        <input type="hidden" name="next" value="${next}">
        <label>Email <input type="email" name="email" autocomplete="username" required value="${opts.email ?? ''}"></label>
        <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
        <button type="submit">Log in</button>
      </form>
      <p class="muted">No account yet? An operator creates the first one with <code>npm run cli -- admin create &lt;email&gt;</code>.</p>
    </div>`,
  })
}

export default async function authRoutes(app: FastifyInstance, opts: { cookieNames: { session: string; login: string } }) {
  const names = opts.cookieNames
  const secure = app.adminConfig.cookieSecure
  const users = adminCollections(app.db).users
  const audit = (actor: string, action: string, target: Record<string, unknown>) =>
    app.db.collection('audit_log').insertOne({ at: app.now(), actor, action, target })

  // Reused while the cookie lives: a second log-in page load (another tab, a favicon redirect)
  // must not invalidate the form already on screen.
  const loginToken = (request: FastifyRequest, reply: FastifyReply): string => {
    const existing = request.cookies[names.login]
    if (existing && /^[A-Za-z0-9_-]{32}$/.test(existing)) return existing
    const token = randomBytes(24).toString('base64url')
    reply.setCookie(names.login, token, cookieOptions(secure, 3600_000))
    return token
  }

  app.get<{ Querystring: Query }>('/login', { config: { public: true } }, async (request, reply) => {
    const next = safeNext(request.query.next)
    if (request.admin) return reply.redirect(next, 303)
    reply.header('cache-control', 'no-store')
    return reply.type('text/html; charset=utf-8').send(loginPage(loginToken(request, reply), next))
  })

  app.post<{ Body: Record<string, unknown> }>('/login', { config: { public: true } }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const body = request.body ?? {}
    const next = safeNext(body.next)
    const emailRaw = typeof body.email === 'string' ? body.email.slice(0, 320) : ''
    const password = typeof body.password === 'string' ? body.password : ''
    const html400 = (code: number, error: string) =>
      reply
        .code(code)
        .type('text/html; charset=utf-8')
        .send(loginPage(loginToken(request, reply), next, { email: emailRaw, error }))

    if (request.headers['sec-fetch-site'] === 'cross-site' || !safeEqual(body._csrf, request.cookies[names.login])) {
      return html400(403, 'The log-in form has expired. Please try again.')
    }
    const email = normaliseEmail(emailRaw) ?? emailRaw.trim().toLowerCase()
    let wait: number | null
    try {
      // Charged before the password is checked, atomically: parallel guesses cannot all pass.
      wait = await app.loginLimiter.take(email, request.ip)
    } catch (err) {
      // Fail closed: without the limiter, passwords could be guessed without limit.
      request.log.error({ err: (err as Error).message }, 'log-in limiter unavailable')
      return html400(503, 'Log-in is unavailable right now (the rate limiter cannot be reached). Try again in a minute.')
    }
    if (wait !== null) {
      reply.header('retry-after', String(Math.ceil(wait / 1000)))
      return html400(
        429,
        `Too many log-in attempts. Try again in ${wait < 60_000 ? `${Math.ceil(wait / 1000)} second(s)` : `${Math.ceil(wait / 60_000)} minute(s)`}.`,
      )
    }
    const user = await users.findOne({ email })
    let ok: boolean
    try {
      ok = user && !user.disabled ? await app.passwordChecks.verify(password, user.password) : await app.passwordChecks.burn(password)
    } catch (err) {
      if (!(err instanceof PasswordChecksBusy)) throw err
      reply.header('retry-after', '1')
      return html400(429, 'Too many log-ins are being checked right now. Try again in a second.')
    }
    if (!ok || !user) {
      await audit('anonymous', 'admin.login_failed', { email, ip: request.ip })
      return html400(401, 'Wrong email or password.')
    }
    await app.loginLimiter.succeed(email, request.ip).catch(() => {})
    if (needsRehash(user.password)) {
      // Stored with older (weaker) parameters: upgrade now that the password is known. Conditional
      // on the old hash, so a password reset meanwhile is never overwritten.
      const upgraded = await app.passwordChecks.hash(password).catch(() => null) // busy: upgrade at the next log-in
      const res =
        upgraded && (await users.updateOne({ _id: user._id, 'password.hash': user.password.hash }, { $set: { password: upgraded } }))
      if (upgraded && res && res.modifiedCount === 1)
        await audit(`admin:${user.email}`, 'admin.password_rehash', {
          user_id: user._id,
          from: { N: user.password.N, r: user.password.r, p: user.password.p },
          to: { N: upgraded.N, r: upgraded.r, p: upgraded.p },
        })
    }
    const { id, doc } = await app.sessions.create(user)
    reply.setCookie(names.session, id, cookieOptions(secure, doc.expires_at.getTime() - doc.created_at.getTime()))
    reply.clearCookie(names.login, cookieOptions(secure))
    await audit(`admin:${user.email}`, 'admin.login', { user_id: user._id, ip: request.ip })
    return reply.redirect(next, 303)
  })

  app.post('/logout', async (request, reply) => {
    const admin = request.admin!
    await app.sessions.destroy(admin.sessionHash)
    await audit(`admin:${admin.email}`, 'admin.logout', { user_id: admin.userId })
    reply.clearCookie(names.session, cookieOptions(secure))
    return reply.redirect('/login', 303)
  })
}
