// The CLI as a function: parse, connect, run one command, close everything, return the exit code.
// Exit codes: 0 done, 1 refused or failed (message on stderr), 2 usage (usage on stderr).
import { userInfo } from 'node:os'
import type { RedisClient } from '../shared/redis.ts'
import type { Db, MongoClient } from 'mongodb'
import { ConfigError } from '../shared/config-vars.ts'
import { loadCliConfig, type CliConfig } from './config.ts'
import { connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { assertNoEviction, createProducerRedis, type RedisTarget } from '../shared/redis.ts'
import { shardPrefixes } from '../shared/redis-shards.ts'
import { createTokenAdmin } from '../tokens/admin.ts'
import type { TokenAdminDeps } from '../tokens/context.ts'
import { migrateLegacyAdmins } from '../tokens/roles.ts'
import { parseCommand, USAGE, UsageError, type ParsedCommand } from './args.ts'
import { COMMAND_HANDLERS } from './commands.ts'
import { CliError } from './errors.ts'
import { redact, type CliIO } from './io.ts'

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
  return connectAndRun(cmd, config, io)
}

async function connectAndRun(cmd: ParsedCommand, config: CliConfig, io: CliIO): Promise<number> {
  let mongo: MongoClient | undefined
  let redis: RedisClient | undefined
  try {
    let db: Db
    try {
      ;({ client: mongo, db } = await connectMongo(config.mongodbUrl, config.mongoWriteConcern))
      await ensureIndexes(db)
      await migrateLegacyAdmins(db, 'system:roles-upgrade') // before any command, like the panel's start (tokens/roles.ts)
    } catch (err) {
      throw new CliError('mongo_unavailable', `MongoDB at ${redact(config.mongodbUrl)}: ${(err as Error).message}`, { cause: err })
    }
    // Read-only commands never touch the mirror, so they work with Redis down.
    if (cmd.writes || cmd.queues) redis = await connectRedis(config)
    // Like every process: refuse an evicting Redis before changing anything (an evicted mirror
    // entry or job is lost data). An unreachable Redis is the warning below, not a refusal.
    if (redis?.status === 'ready') await assertNoEviction(redis)
    const tokenAdminDeps = cliTokenAdminDeps(db, redis ?? null, config, io)
    const admin = createTokenAdmin(tokenAdminDeps)
    const cx = {
      cmd,
      io,
      actor: cliActor(io.env),
      db,
      redis: redis ?? null,
      prefix: config.redisPrefix,
      shardPrefixes: shardPrefixes(config.redisPrefix, config.redisShards),
      redisLabel: redact(config.redisUrl),
      admin,
      tokenAdminDeps,
      s3: config.s3,
      deletionBatchSize: config.deletionBatchSize,
    }
    return (await COMMAND_HANDLERS[cmd.name](cx)) ?? 0
  } catch (err) {
    io.err(`error: ${(err as Error).message}\n`)
    return 1
  } finally {
    redis?.disconnect()
    await mongo?.close().catch(() => {})
  }
}

/** The token admin's dependencies, warning once on stderr when a change could not be pushed to the gateways' mirror. */
function cliTokenAdminDeps(db: Db, redis: RedisClient | null, config: CliConfig, io: CliIO): TokenAdminDeps {
  let warned = false
  return {
    db,
    redis,
    prefix: config.redisPrefix,
    shards: config.redisShards,
    publicUrl: config.publicUrl,
    onMirrorError: (err) => {
      if (warned) return
      warned = true
      io.err(
        `warning: the Redis token mirror at ${redact(config.redisUrl)} was not updated (${(err as Error).message}).\n` +
          'The change is saved in MongoDB; gateways will pick it up at the next mirror sync by a worker (about every 30 s).\n',
      )
    },
  }
}

/**
 * Connects without waiting for Redis: if it is down the MongoDB write still happens. The client
 * keeps reconnecting, so a mirror push retried within its window (tokens/mirror.ts pushToMirror)
 * reaches a Redis that was restarting; a push that never does is reported through onMirrorError.
 */
async function connectRedis(target: RedisTarget): Promise<RedisClient> {
  // Not fail-fast like the gateway: a slow reply under load must not turn into a skipped mirror push.
  const redis = createProducerRedis(target, {
    lazyConnect: true,
    retryStrategy: (times) => Math.min(times * 100, 500),
    connectTimeout: 2000,
    commandTimeout: 10_000,
  })
  redis.on('error', () => {}) // surfaced through the failing commands instead
  await redis.connect().catch(() => {})
  return redis
}
