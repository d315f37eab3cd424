// The CLI as a function: parse, connect, run one command, close everything, return the exit code.
// Exit codes: 0 done, 1 refused or failed (message on stderr), 2 usage (usage on stderr).
import { userInfo } from 'node:os'
import type { Redis } from 'ioredis'
import type { Db, MongoClient } from 'mongodb'
import { ConfigError } from '../shared/config-vars.ts'
import { loadCliConfig, type CliConfig } from './config.ts'
import { connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { assertNoEviction, createProducerRedis } from '../shared/redis.ts'
import { createTokenAdmin, type TokenAdmin } from '../shared/token-admin.ts'
import { readAdminPassword } from '../admin/cli-password.ts'
import { createAdminUser } from '../admin/users.ts'
import { parseCommand, USAGE, UsageError, type ParsedCommand } from './args.ts'
import {
  createdTokenBlock,
  failedJobsTable,
  retryBlock,
  revalidateBlock,
  revalidateProgress,
  shortDate,
  tokenTable,
  workspaceTable,
} from './format.ts'
import type { JobsAdmin } from './jobs.ts'
import type { QueueName } from '../shared/queue-settings.ts'

export interface CliIO {
  out: (text: string) => void
  err: (text: string) => void
  env: Record<string, string | undefined>
  /** Reads a new admin's password (tests pass their own); default: a no-echo prompt, or stdin with --password-stdin. */
  readPassword?: (fromStdin: boolean) => Promise<string>
}

const defaultIO: CliIO = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  env: process.env,
}

/** The audit actor: `cli:<os username>`. userInfo() throws for a uid without a passwd entry (containers). */
export function cliActor(env: Record<string, string | undefined> = process.env): string {
  let name: string | undefined
  try {
    name = userInfo().username
  } catch {
    name = env.USER || env.LOGNAME
  }
  return `cli:${name || `uid-${process.getuid?.() ?? 'unknown'}`}`
}

/** Never echo a password from a connection URL. */
function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '<invalid url>'
  }
}

export async function runCli(argv: readonly string[], io: CliIO = defaultIO): Promise<number> {
  let cmd: ParsedCommand | null
  try {
    cmd = parseCommand(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    io.err(`error: ${err.message}\n\n${USAGE}`)
    return 2
  }
  if (cmd === null) {
    io.err(USAGE)
    return 2
  }

  let config: CliConfig
  try {
    config = loadCliConfig(io.env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    io.err(`error: ${err.message}\n`)
    return 1
  }

  let mongo: MongoClient | undefined
  let redis: Redis | undefined
  try {
    let db: Db
    try {
      ;({ client: mongo, db } = await connectMongo(config.mongodbUrl, config.mongoWriteConcern))
      await ensureIndexes(db)
    } catch (err) {
      throw new Error(`MongoDB at ${redact(config.mongodbUrl)}: ${(err as Error).message}`, { cause: err })
    }
    // Read-only commands never touch the mirror, so they work with Redis down.
    if (cmd.writes || cmd.queues) redis = await connectRedis(config.redisUrl)
    // Like every process: refuse an evicting Redis before changing anything (an evicted mirror
    // entry or job is lost data). An unreachable Redis is the warning below, not a refusal.
    if (redis?.status === 'ready') await assertNoEviction(redis)
    if (cmd.queues) {
      // The jobs live only in Redis: without it there is nothing to show, so say so plainly.
      if (redis!.status !== 'ready') throw new Error(`Redis at ${redact(config.redisUrl)} is unreachable`)
      // Loaded only for these commands: BullMQ (jobs) and TypeBox (revalidate) take seconds to load on a busy machine.
      const { createJobsAdmin } = await import('./jobs.ts')
      await executeJobs(cmd, createJobsAdmin({ redis: redis!, prefix: config.redisPrefix, db }), io, cliActor(io.env))
      return 0
    }
    let warned = false
    const admin = createTokenAdmin({
      db,
      redis: redis ?? null,
      prefix: config.redisPrefix,
      publicUrl: config.publicUrl,
      onMirrorError: (err) => {
        if (warned) return
        warned = true
        io.err(
          `warning: the Redis token mirror at ${redact(config.redisUrl)} was not updated (${(err as Error).message}).\n` +
            'The change is saved in MongoDB; gateways will pick it up at the next mirror sync by a worker (about every 30 s).\n',
        )
      },
    })
    return (await execute(cmd, admin, io, cliActor(io.env), db, { redis: redis ?? null, prefix: config.redisPrefix })) ?? 0
  } catch (err) {
    io.err(`error: ${(err as Error).message}\n`)
    return 1
  } finally {
    redis?.disconnect()
    await mongo?.close().catch(() => {})
  }
}

/**
 * Connects without waiting for Redis: if it is down the MongoDB write still happens. The client
 * keeps reconnecting, so a mirror push retried within its window (token-admin.ts pushToMirror)
 * reaches a Redis that was restarting; a push that never does is reported through onMirrorError.
 */
async function connectRedis(url: string): Promise<Redis> {
  // Not fail-fast like the gateway: a slow reply under load must not turn into a skipped mirror push.
  const redis = createProducerRedis(url, {
    lazyConnect: true,
    retryStrategy: (times) => Math.min(times * 100, 500),
    connectTimeout: 2000,
    commandTimeout: 10_000,
  })
  redis.on('error', () => {}) // surfaced through the failing commands instead
  await redis.connect().catch(() => {})
  return redis
}

async function executeJobs(cmd: ParsedCommand, jobs: JobsAdmin, io: CliIO, actor: string): Promise<void> {
  const asJson = cmd.values.json === true
  const queue = cmd.values.queue as QueueName | undefined // checked against QUEUE_NAMES by the parser
  try {
    if (cmd.name === 'jobs failed') {
      const res = await jobs.listFailed({ queue, limit: Number(cmd.values.limit ?? 100) })
      print(io, asJson, res, failedJobsTable(res))
    } else if (cmd.args.id !== undefined) {
      const job = await jobs.retry(cmd.args.id, { queue, actor })
      print(io, asJson, { retried: [job], skipped: [] }, retryBlock({ retried: [job], skipped: [] }))
    } else {
      const res = await jobs.retryAll({ queue, actor })
      print(io, asJson, res, retryBlock(res))
    }
  } finally {
    await jobs.close()
  }
}

function print(io: CliIO, asJson: boolean, value: unknown, human: string): void {
  io.out(asJson ? JSON.stringify(value, null, 2) + '\n' : human)
}

/**
 * A change that takes access away (revoke, deactivate) is saved in MongoDB, but until the gateways
 * are told a cached copy may still let the token in. When the push could not be confirmed within
 * its retry window the command says so and exits 1, so an operator or a script does not walk away
 * thinking the device is already cut off.
 */
function unconfirmed(io: CliIO, what: string, again: string): number {
  io.err(
    `error: ${what} is saved in MongoDB, but the gateways could not be told (Redis did not answer).\n` +
      `They apply it at the next mirror sync by a worker (about every 30 s). Run \`${again}\` again to push it now.\n`,
  )
  return 1
}

/** Runs one command; returns the exit code when it is not 0. */
async function execute(
  cmd: ParsedCommand,
  admin: TokenAdmin,
  io: CliIO,
  actor: string,
  db: Db,
  mirror: { redis: Redis | null; prefix: string },
): Promise<number | void> {
  const asJson = cmd.values.json === true
  const str = (k: string): string | undefined => {
    const v = cmd.values[k]
    return typeof v === 'string' ? v : undefined
  }
  switch (cmd.name) {
    case 'workspace create': {
      const ws = await admin.createWorkspace(cmd.args.slug!, { name: str('name'), actor })
      print(io, asJson, ws, `Workspace "${ws.slug}" created (id ${ws.id}).\n`)
      return
    }
    case 'workspace list': {
      const list = await admin.listWorkspaces()
      print(io, asJson, list, workspaceTable(list))
      return
    }
    case 'workspace activate':
    case 'workspace deactivate': {
      const active = cmd.name === 'workspace activate'
      const res = await admin.setWorkspaceActive(cmd.args.slug!, active, actor)
      const state = active ? 'active' : 'inactive'
      const human = res.changed
        ? `Workspace "${res.slug}" is now ${state}` +
          (res.tokens_republished === null ? '.\n' : `; ${res.tokens_republished} token(s) updated in the gateway mirror.\n`)
        : `Workspace "${res.slug}" was already ${state}.\n`
      print(io, asJson, res, human)
      if (!active && res.tokens_republished === null)
        return unconfirmed(io, `the deactivation of "${res.slug}"`, `npm run cli -- workspace deactivate ${res.slug}`)
      return
    }
    case 'workspace rename': {
      const ws = await admin.renameWorkspace(cmd.args.slug!, { name: str('name'), slug: str('slug') }, actor)
      print(io, asJson, ws, `Workspace ${ws.id}: slug "${ws.slug}", name "${ws.name}".\n`)
      return
    }
    case 'workspace set-rate-limit': {
      const raw = cmd.args.limit!
      // Parsed here, not in token-admin: "default" and the digits-only rule are CLI spelling.
      if (raw !== 'default' && !/^\d{1,9}$/.test(raw))
        throw new Error(`invalid rate limit "${raw}": use a whole number of requests per minute (0 = no limit) or "default"`)
      const res = await admin.setWorkspaceRateLimit(cmd.args.slug!, raw === 'default' ? null : Number(raw), actor)
      const show = (n: number | null) =>
        n === null ? 'the gateway default (RATE_LIMIT_PER_MINUTE)' : n === 0 ? 'no limit' : `${n} requests per minute per token`
      const human =
        `Workspace "${res.slug}": ${show(res.rate_limit_per_minute)}` +
        (res.previous_rate_limit_per_minute === res.rate_limit_per_minute
          ? ' (unchanged)'
          : ` (was ${show(res.previous_rate_limit_per_minute)})`) +
        (res.tokens_republished === null ? '.\n' : `; ${res.tokens_republished} token(s) updated in the gateway mirror.\n`)
      print(io, asJson, res, human)
      return
    }
    case 'token create': {
      const permissions = str('permissions')
      const created = await admin.createToken({
        workspace: str('workspace')!,
        permissions: permissions === undefined ? undefined : permissions.split(','),
        label: str('label'),
        expiresAt: str('expires'),
        actor,
      })
      const { mirrored: _mirrored, ...out } = created
      print(io, asJson, out, createdTokenBlock(created))
      return
    }
    case 'token list': {
      const list = await admin.listTokens({ workspace: str('workspace') })
      print(io, asJson, list, tokenTable(list))
      return
    }
    case 'token revoke': {
      const res = await admin.revokeToken(cmd.args.id!, actor)
      const human = res.already_revoked
        ? `Token ${res.id} was already revoked (at ${shortDate(res.revoked_at)}).\n`
        : `Token ${res.id} revoked.\n`
      print(io, asJson, res, human)
      if (!res.mirrored) return unconfirmed(io, `the revocation of ${res.id}`, `npm run cli -- token revoke ${res.id}`)
      return
    }
    case 'token rotate': {
      const { parseGrace, tokenRotate } = await import('./admin-commands.ts')
      const graceMs = parseGrace(str('grace')!)
      if (graceMs === null) throw new Error(`invalid --grace "${str('grace')}": use 0 or 90s, 30m, 1h, 7d … (at most 90 days)`)
      const { res, json, human } = await tokenRotate(
        { db, redis: mirror.redis, prefix: mirror.prefix, admin },
        cmd.args.id!,
        graceMs,
        actor,
      )
      print(io, asJson, json, human)
      // With no grace the old token stops now: like a revocation, an unconfirmed push is a failure.
      // (Rotating again is refused, the old token being expired: `token revoke` pushes it.)
      if (graceMs === 0 && !res.old_mirrored)
        return unconfirmed(io, `the end of ${res.old_id}`, `npm run cli -- token revoke ${res.old_id}`)
      return
    }
    case 'admin disable': {
      const { adminDisable } = await import('./admin-commands.ts')
      const { res, human } = await adminDisable(db, cmd.args.email!, actor)
      print(io, asJson, res, human)
      return
    }
    case 'admin reset-password': {
      const { adminResetPassword } = await import('./admin-commands.ts')
      const password = await (io.readPassword ?? readAdminPassword)(cmd.values['password-stdin'] === true)
      const { res, human } = await adminResetPassword(db, cmd.args.email!, password, actor)
      print(io, asJson, res, human)
      return
    }
    case 'admin create': {
      const password = await (io.readPassword ?? readAdminPassword)(cmd.values['password-stdin'] === true)
      const user = await createAdminUser(db, cmd.args.email!, password, actor)
      print(io, asJson, user, `Admin "${user.email}" created; they can log in to the admin panel now.\n`)
      return
    }
    case 'sessions revalidate': {
      const slug = str('workspace')
      const ws = slug === undefined ? null : await admin.getWorkspace(slug)
      // Progress goes to stderr, at most every 5 s, so that --json output stays one document.
      let lastProgress = Date.now()
      const { revalidateSessions } = await import('./sessions-revalidate.ts')
      const res = await revalidateSessions({
        db,
        actor,
        workspace: ws && { id: ws.id, slug: ws.slug },
        onProgress: (counts) => {
          if (Date.now() - lastProgress < 5000) return
          lastProgress = Date.now()
          io.err(revalidateProgress(counts))
        },
      })
      print(io, asJson, res, revalidateBlock(res))
      return
    }
  }
}
