// Test support for test/admin-*.test.ts (not used by the panel itself): an admin app on the
// test's own database and Redis prefix, an admin user, and a logged-in "browser" for app.inject.
import { createHash, randomUUID } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Client as S3Client } from 'minio'
import type { Db } from 'mongodb'
import { objectKeys } from '../../shared/keys.ts'
import { collections } from '../../shared/mongo.ts'
import { buildSessionDocument } from '../../worker/session-document.ts'
import type { TestConfig } from '../../testing/config.ts'
import { buildAdmin } from '../../admin/app.ts'
import { loadAdminConfig, type AdminConfig } from '../../admin/config.ts'
import { createAdminUser } from '../../tokens/users.ts'
import { asRole } from './env.ts'

export const TEST_PASSWORD = 'correct horse battery staple'

export interface Browser {
  cookies: Map<string, string>
  get(url: string, headers?: Record<string, string>): Promise<LightMyRequestResponse>
  post(url: string, form: Record<string, string | string[]>, headers?: Record<string, string>): Promise<LightMyRequestResponse>
  /** The CSRF token of the logged-in session (read from a page). */
  csrf: string
}

function cookieHeader(jar: Map<string, string>): string {
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
}

function keepCookies(jar: Map<string, string>, res: LightMyRequestResponse): void {
  for (const c of res.cookies as { name: string; value: string; maxAge?: number; expires?: Date }[]) {
    if (c.value === '' || c.maxAge === 0 || (c.expires && c.expires.getTime() <= Date.now())) jar.delete(c.name)
    else jar.set(c.name, c.value)
  }
}

export function formBody(form: Record<string, string | string[]>): string {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(form)) for (const x of [v].flat()) p.append(k, x)
  return p.toString()
}

export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html)
  if (!m) throw new Error('no CSRF token on the page')
  return m[1]!
}

export function browser(app: FastifyInstance): Browser {
  const jar = new Map<string, string>()
  const b: Browser = {
    cookies: jar,
    csrf: '',
    async get(url, headers = {}) {
      const res = await app.inject({ method: 'GET', url, headers: { accept: 'text/html', cookie: cookieHeader(jar), ...headers } })
      keepCookies(jar, res)
      return res
    },
    async post(url, form, headers = {}) {
      const res = await app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookieHeader(jar), ...headers },
        payload: formBody(form),
      })
      keepCookies(jar, res)
      return res
    },
  }
  return b
}

export async function login(app: FastifyInstance, email: string, password = TEST_PASSWORD): Promise<Browser> {
  const b = browser(app)
  const page = await b.get('/login')
  const res = await b.post('/login', { _csrf: csrfOf(page.body), email, password, next: '/workspaces' })
  if (res.statusCode !== 303) throw new Error(`log-in failed: ${res.statusCode} ${res.body.slice(0, 200)}`)
  b.csrf = csrfOf((await b.get('/workspaces')).body)
  return b
}

export async function startAdmin(config: TestConfig, opts: { adminConfig?: Partial<AdminConfig>; now?: () => Date } = {}) {
  const adminConfig = { ...loadAdminConfig(config, {}), ...opts.adminConfig }
  const app = await buildAdmin({ config: asRole(config, 'admin'), adminConfig, logger: false, now: opts.now })
  return { app, adminConfig }
}

export async function addAdmin(app: FastifyInstance, email: string, password = TEST_PASSWORD): Promise<void> {
  await createAdminUser(app.db, email, password, 'test')
}

// ---- seeding documents shaped exactly as the worker writes them ----

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex')

export async function seedSession(
  db: Db,
  o: { workspaceId: string; sessionId: string; tokenId: string; body: string; receivedAt?: Date },
): Promise<void> {
  const receivedAt = o.receivedAt ?? new Date()
  const job = {
    kind: 'session' as const,
    workspace_id: o.workspaceId,
    session_id: o.sessionId,
    token_id: o.tokenId,
    received_at: receivedAt.toISOString(),
    sha256: sha(o.body),
    body: o.body,
  }
  await collections(db).sessions.insertOne(buildSessionDocument(job, JSON.parse(o.body) as Record<string, unknown>, receivedAt))
}

export async function seedMedia(
  db: Db,
  s3: S3Client,
  bucket: string,
  o: {
    workspaceId: string
    sessionId: string
    mediaId: string
    tokenId: string
    bytes: Buffer
    filename?: string
    sniffed?: string
    receivedAt?: Date
    /** Where the photo is: its own upload key (default), or the final key of the earlier layout. */
    layout?: 'upload' | 'final'
    /** The document's `key`, if it must differ from where the photo was written. */
    documentKey?: string
  },
): Promise<void> {
  const key =
    o.layout === 'final'
      ? objectKeys.final(o.workspaceId, o.sessionId, o.mediaId)
      : objectKeys.upload(o.workspaceId, o.sessionId, o.mediaId, randomUUID())
  await s3.putObject(bucket, key, o.bytes, o.bytes.length, { 'Content-Type': o.sniffed ?? 'image/jpeg' })
  await collections(db).media.insertOne({
    workspace_id: o.workspaceId,
    session_id: o.sessionId,
    media_id: o.mediaId,
    token_id: o.tokenId,
    filename: o.filename ?? `${o.mediaId}.jpg`,
    content_type: 'image/jpeg',
    sniffed_type: o.sniffed ?? 'image/jpeg',
    size: o.bytes.length,
    sha256: sha(o.bytes),
    bucket,
    key: o.documentKey ?? key,
    received_at: o.receivedAt ?? new Date(),
    stored_at: new Date(),
  })
}

/** A session body like the real client's, with overrides merged into `result` and the top level. */
export function sessionBody(
  o: {
    results?: Record<string, string>
    classifier?: Record<string, string>
    images?: Record<string, string>
    timeRead?: string
    profile?: string
    state?: string
    extra?: Record<string, unknown>
  } = {},
): string {
  return JSON.stringify(
    {
      state: o.state ?? 'QUEUED',
      test_profile_id: o.profile ?? 'sd_bioline_mal_pf_pv',
      time_started: '2021-01-25T11:02:41.118+00:00',
      time_resolved: '2021-01-25T11:17:41.118+00:00',
      time_expired: '2021-01-25T11:32:41.118+00:00',
      configuration: {
        session_type: 'TWO_PHASE',
        provision_mode: 'TEST_PROFILE',
        provision_mode_data: 'x',
        classifier_mode: 'CHECK_YOUR_WORK',
        flags: { FLAG_NO_EARLY_READS: 'TRUE' },
      },
      result: {
        time_read: o.timeRead ?? '2021-01-25T11:18:02.563+00:00',
        images: o.images ?? { cropped: '/data/c.jpg' },
        results: o.results ?? { mal_pf: 'mal_pf_pos', mal_pv: 'mal_pv_neg' },
        results_classifier: o.classifier ?? { mal_pf: 'mal_pf_pos', mal_pv: 'mal_pv_neg' },
      },
      metrics: { data: { device_type: 'SM-A105F' } },
      ...o.extra,
    },
    null,
    4,
  )
}
