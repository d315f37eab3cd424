// Command-line parsing: `<group> <command> [positionals] [--options]`. Parsing happens before any
// connection is made, so a typo is answered at once (exit 2) even when no service is running.
import { parseArgs, type ParseArgsConfig } from 'node:util'

export class UsageError extends Error {
  override name = 'UsageError'
}

type Options = NonNullable<ParseArgsConfig['options']>

const json = { json: { type: 'boolean' } } as const satisfies Options

interface CommandSpec {
  positionals: readonly string[]
  options: Options
  /** Options that must be given. */
  required?: readonly string[]
  /** At least one of these options must be given. */
  oneOf?: readonly string[]
  /** Whether the command changes state (and so needs the Redis mirror). */
  writes: boolean
}

export const COMMANDS = {
  'workspace create': { positionals: ['slug'], options: { name: { type: 'string' }, ...json }, writes: true },
  'workspace list': { positionals: [], options: json, writes: false },
  'workspace activate': { positionals: ['slug'], options: json, writes: true },
  'workspace deactivate': { positionals: ['slug'], options: json, writes: true },
  'workspace rename': {
    positionals: ['slug'],
    options: { name: { type: 'string' }, slug: { type: 'string' }, ...json },
    oneOf: ['name', 'slug'],
    writes: true,
  },
  'token create': {
    positionals: [],
    options: { workspace: { type: 'string' }, permissions: { type: 'string' }, label: { type: 'string' }, expires: { type: 'string' }, ...json },
    required: ['workspace'],
    writes: true,
  },
  'token list': { positionals: [], options: { workspace: { type: 'string' }, ...json }, writes: false },
  'token revoke': { positionals: ['id'], options: json, writes: true },
  'admin create': { positionals: ['email'], options: { 'password-stdin': { type: 'boolean' }, ...json }, writes: false },
} as const satisfies Record<string, CommandSpec>

export type CommandName = keyof typeof COMMANDS

export interface ParsedCommand {
  name: CommandName
  args: Record<string, string>
  values: Record<string, string | boolean | undefined>
  writes: boolean
}

export const USAGE = `usage: npm run cli -- <command> [options]

workspaces:
  workspace create <slug> [--name N] [--json]
  workspace list [--json]
  workspace deactivate <slug> [--json]
  workspace activate <slug> [--json]
  workspace rename <slug> [--name N] [--slug NEW_SLUG] [--json]

tokens:
  token create --workspace <slug> [--permissions test_session,logs,media]
               [--label L] [--expires ISO-8601] [--json]
  token list [--workspace <slug>] [--json]
  token revoke <id> [--json]

admin panel users:
  admin create <email> [--password-stdin] [--json]

  help

Slugs: 1-63 of a-z, 0-9 and '-'. Permissions default to all three. --expires takes
a date (2030-01-31) or a date-time (2030-01-31T12:00:00Z; no offset means UTC).
admin create asks for the password twice (no echo), or reads it from stdin with --password-stdin.
With --json, a command prints exactly one JSON document on stdout.
Configuration comes from the environment (MONGODB_URL, REDIS_URL, REDIS_PREFIX,
PUBLIC_URL), falling back to .stack/env.
`

/** Returns null for `help` (and for no arguments at all). Throws UsageError for anything it cannot parse. */
export function parseCommand(argv: readonly string[]): ParsedCommand | null {
  const [group, sub, ...rest] = argv
  if (group === undefined || group === 'help' || group === '--help' || group === '-h') return null
  if (sub === undefined || sub.startsWith('-')) throw new UsageError(`"${group}" needs a command`)
  const name = `${group} ${sub}`
  if (!Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command "${name}"`)
  const spec: CommandSpec = COMMANDS[name as CommandName]

  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] }
  try {
    parsed = parseArgs({ args: rest, options: spec.options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (parsed.positionals.length < spec.positionals.length) {
    throw new UsageError(`"${name}" needs <${spec.positionals[parsed.positionals.length]}>`)
  }
  if (parsed.positionals.length > spec.positionals.length) {
    throw new UsageError(`unexpected argument "${parsed.positionals[spec.positionals.length]}"`)
  }
  const values: Record<string, string | boolean | undefined> = {}
  for (const [k, v] of Object.entries(parsed.values)) {
    if (Array.isArray(v)) throw new UsageError(`--${k} given more than once`)
    values[k] = v
  }
  for (const r of spec.required ?? []) {
    if (values[r] === undefined || values[r] === '') throw new UsageError(`"${name}" needs --${r}`)
  }
  if (spec.oneOf && spec.oneOf.every((o) => values[o] === undefined)) {
    throw new UsageError(`"${name}" needs ${spec.oneOf.map((o) => `--${o}`).join(' or ')}`)
  }
  const args: Record<string, string> = {}
  spec.positionals.forEach((p, i) => (args[p] = parsed.positionals[i]!))
  return { name: name as CommandName, args, values, writes: spec.writes }
}
