// T5: how long a revoked token keeps working. Two gateways run; for each of `revocations` tokens,
// both gateways first accept it (so each holds it in its token cache, as a busy gateway would),
// then a poller per gateway replays one already-accepted session with it (409 while the token is
// valid) every few milliseconds, and the operator's command runs as an operator runs it: the
// built CLI (`node dist/cli/main.js token revoke <id>`) in its own process, with the CLI role's
// credentials. Each gateway's delay is from the CLI's spawn to the first 403 it answered; the
// revocation's figure is the later of the two (until then some device is still let in).
//
// The time includes the CLI process starting (node, its MongoDB and Redis connections): that is
// what an operator waits for. The pollers cost CPU, so the figure is an upper bound on this box.
// To tell the CLI's start from the gateways' reaction, the bench also listens on the mirror's
// channel and records when the revocation was announced: push -> 403 is the gateways' share.
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { Agent } from 'node:http'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { keys } from '../shared/keys.ts'
import { hashToken } from '../shared/token-registry.ts'
import { roleEnv } from '../stack/roles.ts'
import { repoRoot } from '../stack/paths.ts'
import { sessionTemplates } from './bodies.ts'
import type { Bench } from './context.ts'
import { PREFIX } from './context.ts'
import { put } from './figures-worker.ts'
import { percentile } from './open-loop.ts'
import { startGateway } from './procs.ts'
import { seedTokens } from './seed.ts'

/** How often each poller asks its gateway, and how long one revocation may take before it counts as never seen. */
const POLL_MS = 5
const GIVE_UP_MS = 15_000

export interface RevocationFigures {
  /** p99 over the revocations of the later gateway's delay (ms); a revocation never seen counts at GIVE_UP_MS. */
  revocation_p99_ms: number
  revocation_p50_ms: number
  revocation_max_ms: number
  /** Every gateway's delay (2 per revocation), p99. */
  per_gateway_p99_ms: number
  /** From the CLI's spawn to the announcement on the mirror channel (the CLI starting, connecting, writing MongoDB), p50 / p99. */
  spawn_to_push_p50_ms: number
  spawn_to_push_p99_ms: number
  /** From the announcement to the first 403 at the later gateway: the gateways' own share, p50 / p99. */
  push_to_403_p50_ms: number
  push_to_403_p99_ms: number
  /** The CLI's own run time (spawn to exit), p50 and p99: it waits for the mirror push to be confirmed. */
  cli_run_p50_ms: number
  cli_run_p99_ms: number
  revocations: number
  never_seen: number
  rounds: { delays_ms: number[]; push_ms: number | null; cli_ms: number; cli_exit: number | null }[]
}

export async function measureRevocation(b: Bench): Promise<RevocationFigures> {
  const n = b.opts.revocations
  b.log(`T5: ${n} tokens revoked with the CLI, each watched at 2 gateways`)
  await b.resetRedis()
  const seeded = await seedTokens(b.db, b.redis, PREFIX, n)
  // The pollers send hundreds of requests a second with one token: the per-token rate limit (429)
  // would answer them before the token check could.
  const env = { ...b.appEnv, RATE_LIMIT_PER_MINUTE: '0' }
  const gateways = [await startGateway('gateway-revoke-1', env, b.dir), await startGateway('gateway-revoke-2', env, b.dir)]
  const agent = new Agent({ keepAlive: true, maxSockets: 4 })
  const templates = sessionTemplates(4, 7)
  const rounds: RevocationFigures['rounds'] = []
  // Announcements on the mirror channel, by token hash: when each revocation was pushed.
  const channel = keys(PREFIX).tokensChannel
  const pushedAt = new Map<string, number>()
  const listener = b.redis.duplicate()
  listener.on('message', (ch: string, hash: string) => {
    if (ch === channel && !pushedAt.has(hash)) pushedAt.set(hash, performance.now())
  })
  await listener.subscribe(channel)
  try {
    for (let i = 0; i < n; i++) {
      const token = seeded.tokens[i]!
      const id = randomUUID()
      const [before, after] = templates[i % templates.length]!
      const body = Buffer.from(before + id + after)
      const path = `/ingest/${token}/test_session/${id}/`
      // Accepted at one gateway, then a duplicate at both: each has now looked the token up.
      for (const g of gateways) {
        const status = await put(agent, g.port, path, body)
        if (status !== 201 && status !== 409) throw new Error(`T5: token ${i} answered ${status} before its revocation`)
      }
      pushedAt.delete(hashToken(token))
      const t0 = performance.now()
      const delays = gateways.map(async (g) => {
        for (;;) {
          const status = await put(agent, g.port, path, body)
          const at = performance.now() - t0
          if (status === 403) return at
          if (status !== 409 && status !== 201) throw new Error(`T5: gateway answered ${status} while waiting for the revocation`)
          if (at > GIVE_UP_MS) return Infinity
          await sleep(POLL_MS)
        }
      })
      const cli = runCli(b, env, seeded.tokenIds[i]!).then((code) => ({ code, ms: performance.now() - t0 }))
      const [d, c] = await Promise.all([Promise.all(delays), cli])
      if (c.code !== 0) b.log(`  T5 revocation ${i + 1}: the CLI exited ${c.code}`)
      const pushed = pushedAt.get(hashToken(token))
      rounds.push({
        delays_ms: d.map((x) => (Number.isFinite(x) ? x : GIVE_UP_MS)),
        push_ms: pushed === undefined ? null : pushed - t0,
        cli_ms: c.ms,
        cli_exit: c.code,
      })
      if (i < 3 || i === n - 1)
        b.log(
          `  T5 revocation ${i + 1}: first 403 after ${d.map((x) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : 'never')).join(' / ')}; ` +
            `pushed after ${rounds.at(-1)!.push_ms?.toFixed(0) ?? '(not seen)'} ms; CLI ran ${c.ms.toFixed(0)} ms`,
        )
    }
  } finally {
    agent.destroy()
    listener.disconnect()
    await Promise.all(gateways.map((g) => g.stop()))
    await b.resetRedis()
  }
  const worst = rounds.map((r) => Math.max(...r.delays_ms)).sort((x, y) => x - y)
  const all = rounds.flatMap((r) => r.delays_ms).sort((x, y) => x - y)
  const cli = rounds.map((r) => r.cli_ms).sort((x, y) => x - y)
  const sorted = (xs: number[]) => xs.sort((x, y) => x - y)
  const push = sorted(rounds.flatMap((r) => (r.push_ms === null ? [] : [r.push_ms])))
  const afterPush = sorted(rounds.flatMap((r) => (r.push_ms === null ? [] : [Math.max(...r.delays_ms) - r.push_ms])))
  const res: RevocationFigures = {
    revocation_p99_ms: percentile(worst, 99),
    revocation_p50_ms: percentile(worst, 50),
    revocation_max_ms: worst.at(-1) ?? NaN,
    per_gateway_p99_ms: percentile(all, 99),
    spawn_to_push_p50_ms: percentile(push, 50),
    spawn_to_push_p99_ms: percentile(push, 99),
    push_to_403_p50_ms: percentile(afterPush, 50),
    push_to_403_p99_ms: percentile(afterPush, 99),
    cli_run_p50_ms: percentile(cli, 50),
    cli_run_p99_ms: percentile(cli, 99),
    revocations: rounds.length,
    never_seen: rounds.filter((r) => r.delays_ms.some((x) => x >= GIVE_UP_MS)).length,
    rounds,
  }
  b.log(
    `  T5: revoke -> 403 at both gateways p50 ${res.revocation_p50_ms.toFixed(0)} p99 ${res.revocation_p99_ms.toFixed(0)} max ${res.revocation_max_ms.toFixed(0)} ms ` +
      `(${res.never_seen} never seen); CLI run p50 ${res.cli_run_p50_ms.toFixed(0)} p99 ${res.cli_run_p99_ms.toFixed(0)} ms; ` +
      `spawn -> push p50 ${res.spawn_to_push_p50_ms.toFixed(0)} p99 ${res.spawn_to_push_p99_ms.toFixed(0)} ms; ` +
      `push -> 403 at both p50 ${res.push_to_403_p50_ms.toFixed(0)} p99 ${res.push_to_403_p99_ms.toFixed(0)} ms`,
  )
  return res
}

/** `token revoke <id>` with the built CLI and the CLI role's credentials; its output goes to a log file. */
function runCli(b: Bench, env: Record<string, string>, tokenId: string): Promise<number | null> {
  const child = spawn(process.execPath, [join(repoRoot, 'dist/cli/main.js'), 'token', 'revoke', tokenId, '--json'], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', USER: process.env.USER ?? 'bench', ...roleEnv(env, 'cli') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (c) => (out += c))
  child.stderr.on('data', (c) => (out += c))
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      if (code !== 0) b.log(`  CLI output: ${out.slice(-500)}`)
      resolve(code)
    }),
  )
}
