// buildAdmin(deps) returns the admin panel's Fastify app; server.ts only starts it. A separate
// process from the gateway (which stays write-only): server-rendered pages behind a log-in,
// reading MongoDB and the private bucket, and changing tokens through the tokens module (tokens/admin.ts).
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import type { Client as S3Client } from 'minio'
import { loggerOptions } from '../shared/logger.ts'
import { createS3 } from '../shared/s3.ts'
import { createTokenAdmin, type TokenAdmin } from '../tokens/admin.ts'
import { TokenAdminError } from '../tokens/errors.ts'
import { loadAdminConfig, type AdminConfig, type AdminServerConfig } from './config.ts'
import mongoPlugin from './plugins/mongo.ts'
import redisPlugin from './plugins/redis.ts'
import adminRoutes from './routes/admins.ts'
import auditRoutes from './routes/audit.ts'
import authRoutes from './routes/auth.ts'
import reportRoutes from './routes/reports.ts'
import retentionRoutes from './routes/retention.ts'
import sessionRoutes from './routes/sessions.ts'
import staticRoutes from './routes/static.ts'
import tokenRoutes from './routes/tokens.ts'
import webhookRoutes from './routes/webhooks.ts'
import workspaceRoutes from './routes/workspaces.ts'
import { cookieNames, createSessionStore, refuseAnonymous, safeEqual, type SessionStore } from './security/auth.ts'
import { assertAccessDeclared, checkAccess, Forbidden, type Access } from './security/roles.ts'
import { createLoginLimiter, type LoginLimiter } from './security/rate-limit.ts'
import { createPasswordChecks, type PasswordChecks } from './security/password-checks.ts'
import type { verifyPassword } from '../tokens/passwords.ts'
import { NotFound, sendHtml } from './routes/common.ts'
import { errorPage } from './views/pages.ts'
import { httpsOption } from '../shared/https-option.ts'
import { createDeletionAdmin, type DeletionAdmin } from '../deletion/admin.ts'
import type { TokenAdminDeps } from '../tokens/context.ts'
import deletionRoutes from './routes/deletion.ts'

declare module 'fastify' {
  interface FastifyInstance {
    config: AdminServerConfig
    adminConfig: AdminConfig
    s3: S3Client
    tokenAdmin: TokenAdmin
    /** Session deletion and workspace purge (deletion/admin.ts), the CLI's code. */
    deletionAdmin: DeletionAdmin
    sessions: SessionStore
    loginLimiter: LoginLimiter
    passwordChecks: PasswordChecks
    /** Every route registered, for the "nothing without a log-in" and the roles tests. */
    adminRoutes: { method: string; url: string; public: boolean; access: Access | null }[]
    now: () => Date
  }
}

export interface AdminDeps {
  config: AdminServerConfig
  /** Defaults to loadAdminConfig(config) from the environment. */
  adminConfig?: AdminConfig
  logger?: FastifyBaseLogger | false
  now?: () => Date
  /** Test hook: replaces the scrypt check (to count the verifications a burst of log-ins causes). */
  verifyPassword?: typeof verifyPassword
}

/** Sent on every response. Pages have no inline script or style; images come from 'self' or data: (QR codes). */
export const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

export async function buildAdmin(deps: AdminDeps): Promise<FastifyInstance> {
  const { config } = deps
  const adminConfig = deps.adminConfig ?? loadAdminConfig(config)
  const app = Fastify({
    loggerInstance: deps.logger || undefined,
    logger: deps.logger === undefined ? loggerOptions(config.logLevel, 'admin') : undefined,
    // Behind a TLS-terminating proxy in production: the client IP (for the log-in limiter and the
    // audit log) is the address the last `trustProxyHops` proxies saw, as on the gateway: a
    // function of the hop, never `true`, which would take the leftmost (client-chosen) entry.
    trustProxy: adminConfig.trustProxyHops > 0 ? (_address: string, hop: number) => hop < adminConfig.trustProxyHops : false,
    routerOptions: { ignoreTrailingSlash: true },
    bodyLimit: 64 * 1024,
    // TLS_CERT_FILE/TLS_KEY_FILE: the panel serves HTTPS itself (its cookies are then Secure, admin/config.ts).
    ...httpsOption(config.tls),
  })
  const routes: FastifyInstance['adminRoutes'] = []
  app.addHook('onRoute', (r) => {
    assertAccessDeclared(r) // a route that does not say who may use it stops the start
    for (const m of [r.method].flat())
      if (m !== 'HEAD') routes.push({ method: m, url: r.url, public: r.config?.public === true, access: r.config?.access ?? null })
  })
  app.decorate('adminRoutes', routes)
  app.decorate('config', config)
  app.decorate('adminConfig', adminConfig)
  app.decorate('now', deps.now ?? (() => new Date()))
  await decorateServices(app, deps.verifyPassword)
  await app.register(cookie)
  await app.register(formbody)
  const names = cookieNames(adminConfig.cookieSecure)
  addSecurityHooks(app, names)
  setErrorHandlers(app)
  await registerRoutes(app, names)
  return app
}

/** The clients (MongoDB, Redis, S3) and what is built on them: token admin, sessions, log-in limits. */
async function decorateServices(app: FastifyInstance, verify: AdminDeps['verifyPassword']): Promise<void> {
  const { config, adminConfig, now } = app
  await app.register(mongoPlugin, { url: config.mongodbUrl, writeConcern: config.mongoWriteConcern })
  await app.register(redisPlugin, { target: config })
  app.decorate('s3', createS3(config.s3))
  const adminDeps: TokenAdminDeps = {
    db: app.db,
    redis: app.redis,
    prefix: config.redisPrefix,
    shards: config.redisShards,
    publicUrl: config.publicUrl,
    now,
    onMirrorError: (err, action) =>
      app.log.warn({ action, err: (err as Error).message }, 'mirror not updated; the next worker sync will repair it'),
  }
  app.decorate('tokenAdmin', createTokenAdmin(adminDeps))
  app.decorate('deletionAdmin', createDeletionAdmin({ ...adminDeps, s3: app.s3, bucket: config.s3.bucket }))
  app.decorate('sessions', createSessionStore(app.db, { ttlMs: adminConfig.sessionTtlMs, now }))
  app.decorate(
    'loginLimiter',
    createLoginLimiter(app.redis, {
      prefix: config.redisPrefix,
      maxPerEmail: adminConfig.loginMaxPerEmail,
      maxPerIp: adminConfig.loginMaxPerIp,
      windowMs: adminConfig.loginWindowMs,
    }),
  )
  app.decorate('passwordChecks', createPasswordChecks({ maxInFlight: adminConfig.loginMaxInFlight, verify }))
}

/** Security headers and the log-in check on every request; the CSRF check on every POST. */
function addSecurityHooks(app: FastifyInstance, names: ReturnType<typeof cookieNames>): void {
  app.decorateRequest('admin', null)
  app.decorateRequest('workspace', null)
  app.addHook('onRequest', async (request, reply) => {
    reply.header('content-security-policy', CSP)
    reply.header('x-content-type-options', 'nosniff')
    reply.header('x-frame-options', 'DENY')
    reply.header('referrer-policy', 'no-referrer')
    reply.header('cross-origin-opener-policy', 'same-origin')
    reply.header('cross-origin-resource-policy', 'same-origin')
    if (app.adminConfig.cookieSecure) reply.header('strict-transport-security', 'max-age=31536000')
    request.admin = await app.sessions.lookup(request.cookies[names.session])
    if (request.routeOptions.config?.public === true) return
    reply.header('cache-control', 'no-store')
    if (!request.admin) return refuseAnonymous(request, reply)
    await checkAccess(app, request) // the route's role (admin/security/roles.ts); refusals are 404 or 403 pages
  })
  // Every state change is a POST carrying the session's synchronizer token. Fetch metadata
  // refuses cross-site POSTs outright in browsers that send it.
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST' || request.routeOptions.config?.public === true) return
    const body = (request.body ?? {}) as Record<string, unknown>
    if (request.headers['sec-fetch-site'] === 'cross-site' || !request.admin || !safeEqual(body._csrf, request.admin.csrf)) {
      const message = 'The form has expired or did not come from this panel. Go back, reload the page and try again.'
      return sendHtml(reply, errorPage(request.admin, 'Forbidden', message), 403)
    }
  })
}

/**
 * Refusals as pages: 404 for what does not exist (or belongs to a workspace the admin has no role
 * in), 403 for a role too small, 400 for a refused change, 500 (logged) for the rest.
 */
function setErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof NotFound) return sendHtml(reply, errorPage(request.admin, 'Not found', err.message), 404)
    if (err instanceof Forbidden) return sendHtml(reply, errorPage(request.admin, 'Forbidden', err.message), 403)
    if (err instanceof TokenAdminError) {
      const status = err.code === 'unknown_workspace' || err.code === 'unknown_token' ? 404 : 400
      return sendHtml(reply, errorPage(request.admin, status === 404 ? 'Not found' : 'Refused', err.message), status)
    }
    if (err.statusCode && err.statusCode < 500) return sendHtml(reply, errorPage(request.admin, 'Bad request', err.message), err.statusCode)
    request.log.error({ err }, 'request failed')
    return sendHtml(reply, errorPage(request.admin, 'Error', 'Something went wrong; the details are in the admin service log.'), 500)
  })
  app.setNotFoundHandler((request, reply) => {
    if (!request.admin) return refuseAnonymous(request, reply)
    return sendHtml(reply, errorPage(request.admin, 'Not found', 'No such page.'), 404)
  })
}

async function registerRoutes(app: FastifyInstance, names: ReturnType<typeof cookieNames>): Promise<void> {
  await app.register(staticRoutes)
  await app.register(authRoutes, { cookieNames: names })
  await app.register(workspaceRoutes)
  await app.register(retentionRoutes)
  await app.register(deletionRoutes)
  await app.register(tokenRoutes)
  await app.register(webhookRoutes)
  await app.register(sessionRoutes)
  await app.register(reportRoutes)
  await app.register(auditRoutes)
  await app.register(adminRoutes)
  await app.register(import('./routes/docs.ts')) // the gateway's OpenAPI document and its page, /docs
}
