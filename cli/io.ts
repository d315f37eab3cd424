// What every CLI command gets: its parsed arguments, the output streams, the actor, the
// connections and the token admin; and the two ways a command answers (print, unconfirmed).
import type { RedisClient } from '../shared/redis.ts'
import type { Db } from 'mongodb'
import type { TokenAdmin } from '../tokens/admin.ts'
import type { TokenAdminDeps } from '../tokens/context.ts'
import type { CliConfig } from './config.ts'
import type { CommandName, ParsedCommand } from './args.ts'

export interface CliIO {
  out: (text: string) => void
  err: (text: string) => void
  env: Record<string, string | undefined>
  /** Reads a new admin's password (tests pass their own); default: a no-echo prompt, or stdin with --password-stdin. */
  readPassword?: (fromStdin: boolean) => Promise<string>
}

export interface CommandContext {
  cmd: ParsedCommand
  io: CliIO
  /** The audit actor (cliActor). */
  actor: string
  db: Db
  /** Connected (maybe not ready) for commands that write or read queues; null otherwise. */
  redis: RedisClient | null
  /** Redis key prefix (config.redisPrefix). */
  prefix: string
  /** Every shard's key prefix (shared/redis-shards.ts), shard 0 first. */
  shardPrefixes: string[]
  /** Redis URL with its password hidden, for messages. */
  redisLabel: string
  admin: TokenAdmin
  /** What the token admin was built from, for modules that build on it (deletions). */
  tokenAdminDeps: TokenAdminDeps
  /** Object storage, when configured (only deletions use it). */
  s3: CliConfig['s3']
  deletionBatchSize: number
}

/** Runs one command; returns the exit code when it is not 0. */
export type CommandHandler = (cx: CommandContext) => Promise<number | void>
export type CommandHandlers<N extends CommandName> = Record<N, CommandHandler>

/** A string option's value (absent, or a boolean option, is undefined). */
export function option(cmd: ParsedCommand, name: string): string | undefined {
  const v = cmd.values[name]
  return typeof v === 'string' ? v : undefined
}

/** `value` as JSON with --json, else the human text. */
export function print(cx: Pick<CommandContext, 'cmd' | 'io'>, value: unknown, human: string): void {
  cx.io.out(cx.cmd.values.json === true ? JSON.stringify(value, null, 2) + '\n' : human)
}

/**
 * A change that takes access away (revoke, deactivate) is saved in MongoDB, but until the gateways
 * are told a cached copy may still let the token in. When the push could not be confirmed within
 * its retry window the command says so and exits 1, so an operator or a script does not walk away
 * thinking the device is already cut off.
 */
export function unconfirmed(io: CliIO, what: string, again: string): number {
  io.err(
    `error: ${what} is saved in MongoDB, but the gateways could not be told (Redis did not answer).\n` +
      `They apply it at the next mirror sync by a worker (about every 30 s). Run \`${again}\` again to push it now.\n`,
  )
  return 1
}

/** Never echo a password from a connection URL. */
export function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '<invalid url>'
  }
}
