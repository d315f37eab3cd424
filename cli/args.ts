// Command-line parsing: `<group> <command> [positionals] [--options]`. Parsing happens before any
// connection is made, so a typo is answered at once (exit 2) even when no service is running.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { AppError } from '../shared/errors.ts'
// queue-settings.ts, not queues.ts: that one loads TypeBox, and every CLI run (a usage error too) would pay for it.
import { QUEUE_NAMES } from '../shared/queue-settings.ts'

/** The command line cannot be parsed: answered with the usage text and exit code 2. */
export class UsageError extends AppError {
  readonly code = 'usage'
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
  /** Positionals that may be left out (after the required ones). */
  optionalPositionals?: readonly string[]
  /** Whether the command works on the BullMQ queues (and so needs Redis, read-only or not). */
  queues?: boolean
  /** Checks combinations parseArgs cannot express; returns the usage problem, or null. */
  check?: (args: Record<string, string>, values: Record<string, string | boolean | undefined>) => string | null
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
  'workspace set-rate-limit': { positionals: ['slug', 'limit'], options: json, writes: true },
  'workspace move-shard': {
    positionals: ['slug', 'shard'],
    options: { 'no-wait': { type: 'boolean' }, ...json },
    writes: true,
    queues: true,
  },
  // Shows the periods, or changes the ones given. The token mirror does not carry them, so no Redis (writes: false).
  'workspace retention': {
    positionals: ['slug'],
    options: { photos: { type: 'string' }, logs: { type: 'string' }, sessions: { type: 'string' }, ...json },
    writes: false,
    check: (_a, v) => {
      for (const kind of ['photos', 'logs', 'sessions']) {
        const days = v[kind]
        if (days !== undefined && !/^(keep|[1-9][0-9]{0,4})$/.test(String(days)))
          return `--${kind} must be a number of days (1 to 36500) or "keep"`
      }
      return null
    },
  },
  // Deletes for good: `--yes` is what says so (the panel asks for the slug instead).
  'workspace purge': {
    positionals: ['slug'],
    options: { yes: { type: 'boolean' }, ...json },
    writes: true,
    check: (_a, v) => (v.yes ? null : '"workspace purge" deletes every record and photo of the workspace for good; add --yes to do it'),
  },
  'session delete': {
    positionals: ['session'],
    options: { workspace: { type: 'string' }, ...json },
    required: ['workspace'],
    writes: true,
  },
  'token create': {
    positionals: [],
    options: {
      workspace: { type: 'string' },
      permissions: { type: 'string' },
      label: { type: 'string' },
      expires: { type: 'string' },
      ...json,
    },
    required: ['workspace'],
    writes: true,
  },
  'token list': { positionals: [], options: { workspace: { type: 'string' }, ...json }, writes: false },
  'token revoke': { positionals: ['id'], options: json, writes: true },
  'token rotate': {
    positionals: ['id'],
    options: { grace: { type: 'string' }, ...json },
    required: ['grace'],
    writes: true,
    check: (_a, v) =>
      /^(0|[1-9][0-9]{0,6}[smhd])$/.test(String(v.grace))
        ? null
        : '--grace must be 0 or a number with a unit: 90s, 30m, 1h, 7d (at most 90d)',
  },
  // Webhook endpoints live in MongoDB only (no mirror), so only `test` needs Redis (its queue).
  'webhook add': {
    positionals: [],
    options: { workspace: { type: 'string' }, url: { type: 'string' }, secret: { type: 'string' }, events: { type: 'string' }, ...json },
    required: ['workspace', 'url', 'secret'],
    writes: false,
  },
  'webhook list': { positionals: [], options: { workspace: { type: 'string' }, ...json }, writes: false },
  'webhook remove': { positionals: ['id'], options: json, writes: false },
  'webhook test': { positionals: ['id'], options: json, writes: false, queues: true },
  'admin create': { positionals: ['email'], options: { 'password-stdin': { type: 'boolean' }, ...json }, writes: false },
  'admin disable': { positionals: ['email'], options: json, writes: false },
  'admin reset-password': { positionals: ['email'], options: { 'password-stdin': { type: 'boolean' }, ...json }, writes: false },
  'admin list': { positionals: [], options: json, writes: false },
  'admin grant': {
    positionals: ['email'],
    options: { workspace: { type: 'string' }, role: { type: 'string' }, ...json },
    required: ['workspace', 'role'],
    writes: false,
    check: (_a, v) => (v.role === 'owner' || v.role === 'analyst' ? null : '--role must be owner or analyst'),
  },
  'admin revoke': { positionals: ['email'], options: { workspace: { type: 'string' }, ...json }, required: ['workspace'], writes: false },
  'admin superadmin': {
    positionals: ['email', 'state'],
    options: json,
    writes: false,
    check: (a) => (a.state === 'on' || a.state === 'off' ? null : '"admin superadmin" takes on or off'),
  },
  // Rewrites test_sessions documents but needs no Redis (like `admin create`, writes: false).
  'sessions revalidate': { positionals: [], options: { workspace: { type: 'string' }, ...json }, writes: false },
  'jobs failed': {
    positionals: [],
    options: { queue: { type: 'string' }, limit: { type: 'string' }, ...json },
    writes: false,
    queues: true,
    check: (_a, v) =>
      queueProblem(v.queue) ??
      (v.limit !== undefined && !/^[1-9][0-9]{0,5}$/.test(String(v.limit)) ? '--limit must be a number from 1 to 999999' : null),
  },
  'jobs retry': {
    positionals: [],
    optionalPositionals: ['id'],
    options: { queue: { type: 'string' }, all: { type: 'boolean' }, ...json },
    writes: false,
    queues: true,
    check: (a, v) =>
      queueProblem(v.queue) ??
      (a.id !== undefined && v.all
        ? 'give a job id or --all, not both'
        : a.id === undefined && !v.all
          ? '"jobs retry" needs <id> or --all'
          : null),
  },
} as const satisfies Record<string, CommandSpec>

function queueProblem(queue: string | boolean | undefined): string | null {
  if (queue === undefined || (QUEUE_NAMES as readonly unknown[]).includes(queue)) return null
  return `--queue must be one of ${QUEUE_NAMES.join(', ')}`
}

export type CommandName = keyof typeof COMMANDS

export interface ParsedCommand {
  name: CommandName
  args: Record<string, string>
  values: Record<string, string | boolean | undefined>
  writes: boolean
  queues: boolean
}

export const USAGE = `usage: npm run cli -- <command> [options]

workspaces:
  workspace create <slug> [--name N] [--json]
  workspace list [--json]
  workspace deactivate <slug> [--json]
  workspace activate <slug> [--json]
  workspace rename <slug> [--name N] [--slug NEW_SLUG] [--json]
  workspace set-rate-limit <slug> <per-minute|default> [--json]
  workspace move-shard <slug> <shard> [--no-wait] [--json]
  workspace retention <slug> [--photos N|keep] [--logs N|keep] [--sessions N|keep] [--json]
  workspace purge <slug> --yes [--json]

tokens:
  token create --workspace <slug> [--permissions test_session,logs,media]
               [--label L] [--expires ISO-8601] [--json]
  token list [--workspace <slug>] [--json]
  token revoke <id> [--json]
  token rotate <id> --grace <0|90s|30m|1h|7d> [--json]

webhooks (outbound deliveries of stored records):
  webhook add --workspace <slug> --url <url> --secret <secret>
              [--events session.stored,media.stored,logs.stored] [--json]
  webhook list [--workspace <slug>] [--json]
  webhook remove <id> [--json]
  webhook test <id> [--json]

admin panel users:
  admin create <email> [--password-stdin] [--json]
  admin disable <email> [--json]
  admin reset-password <email> [--password-stdin] [--json]
  admin list [--json]
  admin grant <email> --workspace <slug> --role owner|analyst [--json]
  admin revoke <email> --workspace <slug> [--json]
  admin superadmin <email> on|off [--json]

stored sessions:
  sessions revalidate [--workspace <slug>] [--json]
  session delete --workspace <slug> <session-guid> [--json]

failed jobs (BullMQ's retained failed set; job bodies are never shown):
  jobs failed [--queue sessions|logs|media] [--limit N] [--json]
  jobs retry <id> [--queue Q] [--json]
  jobs retry --all [--queue Q] [--json]

  help

Slugs: 1-63 of a-z, 0-9 and '-'. Permissions default to all three. --expires takes
a date (2030-01-31) or a date-time (2030-01-31T12:00:00Z; no offset means UTC).
set-rate-limit: requests per minute per token of the workspace (0 = no limit), or
"default" for the gateways' RATE_LIMIT_PER_MINUTE.
retention: days photos, logs and sessions are kept after they were received, or "keep"
(the default); without options it shows them. The worker deletes what is older at its next
retention run (README "Retention"); a session's expiry takes its logs and photos with it.
admin create and admin reset-password ask for the password twice (no echo), or read it from
stdin with --password-stdin. admin disable and admin reset-password end the admin's sessions.
Roles (README "Roles"): an analyst reads a workspace, an owner also manages its tokens; a
superadmin manages workspaces and admins. The first admin created is a superadmin. grant replaces
the admin's role in that workspace; changes apply at their next click in the panel.
token rotate issues a new token like the old one; the old one keeps working for the grace
period (at most 90d; 0 = it stops now, and the command exits 1 if the gateways were not told).
move-shard sends the workspace's new uploads to another Redis shard, then waits until the jobs
it left in the old shard have run (--no-wait: return at once; run it again later to finish).
webhook add subscribes to every event unless --events names some. The secret (16-256
printable characters) signs each request (X-RDT-Signature); it is never shown again.
webhook test has a deliveries worker send one signed test request, and waits up to 30 s.
jobs retry moves failed jobs back to waiting with a fresh attempt budget; each is audited.
sessions revalidate recomputes the normalised fields and validation of stored sessions from
their raw_body with the current rules (e.g. after an upgrade); safe to re-run and to interrupt.
session delete removes a session's records (session, logs, photos, conflicts) and objects,
and leaves a tombstone: the phone's retries are answered 409 and stored nothing (README
"Deletion"). workspace purge does it for every session of the workspace, deactivates it and
revokes its tokens. Both print what went and are audited; a run cut short is finished by
running it again. Both need S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY (a key that may delete).
With --json, a command prints exactly one JSON document on stdout.
Configuration comes from the environment (MONGODB_URL, REDIS_URL, REDIS_PREFIX,
PUBLIC_URL, and S3_* for deletions), falling back to .stack/env.
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
  const maxPositionals = spec.positionals.length + (spec.optionalPositionals?.length ?? 0)
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[maxPositionals]}"`)
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
  ;[...spec.positionals, ...(spec.optionalPositionals ?? [])].forEach((p, i) => {
    if (i < parsed.positionals.length) args[p] = parsed.positionals[i]!
  })
  const problem = spec.check?.(args, values)
  if (problem) throw new UsageError(problem)
  return { name: name as CommandName, args, values, writes: spec.writes, queues: spec.queues ?? false }
}
