// `npm start`'s supervisor (stack/supervisor.ts, stack/app-process.ts) on its own: the restart
// delays (capped exponential, back to the start after a healthy run), the log lines, stop(), and
// real app processes killed, restarted, and stopped with SIGTERM or, when they ignore it, SIGKILL.
// The whole `npm start` under SIGKILL is test/start-restarts.test.ts.
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { existsSync } from 'node:fs'
import { AppProcess } from '../stack/app-process.ts'
import { waitFor } from '../testing/wait.ts'
import { backoffDelay, Supervisor, type Unit } from '../stack/supervisor.ts'

t.test('backoffDelay doubles from initialMs up to maxMs', async (t) => {
  const b = { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 }
  t.same(
    [0, 1, 2, 3, 4, 5, 6, 7, 100].map((n) => backoffDelay(n, b)),
    [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
  )
})

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

/**
 * A scripted unit instead of a process: each run "lasts" the given time on a clock the test owns,
 * so what counts as a healthy run is decided by the script, not by how busy the machine is.
 */
function scripted(durations: Array<number | Error>, clock: { ms: number }) {
  let runs = 0
  const done = deferred()
  const unit: Unit = {
    name: 'scripted',
    async run() {
      const d = durations[runs++]
      if (d === undefined) {
        done.resolve()
        return new Promise<string>(() => {}) // the script is over: runs for ever
      }
      if (d instanceof Error) throw d
      clock.ms += d
      return `exited with code ${runs}`
    },
  }
  return { unit, done: done.promise, runs: () => runs }
}

t.test('restart delays: capped doubling, reset after a healthy run, the reason logged', async (t) => {
  const clock = { ms: 0 }
  const lines: string[] = []
  const sup = new Supervisor({ log: (l) => lines.push(l), backoff: { initialMs: 5, maxMs: 20, resetAfterMs: 1000 }, now: () => clock.ms })
  // Four quick failures, then one that could not start, a healthy run (1 s), two quick failures.
  const s = scripted([1, 1, 1, 1, new Error('port in use'), 1000, 1, 1], clock)
  sup.add(s.unit)
  await s.done
  sup.stop()
  const delays = lines.map((l) => Number(/restarting it in (\d+) ms/.exec(l)?.[1]))
  t.same(delays, [5, 10, 20, 20, 20, 5, 10, 20], 'doubling, capped at maxMs, back to initialMs after the healthy run')
  t.match(lines[0], /^scripted exited with code 1; restarting it in 5 ms \(restart 1, 1 in a row\)$/)
  t.match(lines[4], /^scripted could not start \(port in use\); restarting it in 20 ms/)
  t.equal(s.runs(), 9)
})

t.test('stop() cancels a pending restart', async (t) => {
  const lines: string[] = []
  const sup = new Supervisor({ log: (l) => lines.push(l), backoff: { initialMs: 60_000, maxMs: 60_000 } })
  let runs = 0
  const logged = deferred()
  const kept = sup.add({
    name: 'once',
    async run() {
      runs++
      setImmediate(() => logged.resolve())
      return 'exited with code 1'
    },
  })
  await logged.promise
  t.match(lines, [/restarting it in 60 s/])
  sup.stop()
  // The restart was 60 s away: the loop ends at once only if stop() cancelled it.
  const ac = new AbortController()
  t.equal(await Promise.race([kept.then(() => 'ended'), sleep(5000, 'still waiting', { signal: ac.signal })]), 'ended')
  ac.abort()
  t.equal(runs, 1, 'not run again')
})

t.test('real app processes: killed, restarted, stopped with SIGTERM, or SIGKILL when they ignore it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rdt-supervisor-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // Exits 7 on its first run, then stays up; with IGNORE_TERM it also ignores SIGTERM.
  const entry = join(dir, 'app.mjs')
  await writeFile(
    entry,
    `import { existsSync, writeFileSync } from 'node:fs'
const marker = ${JSON.stringify(join(dir, 'ran'))} + process.env.APP_NAME
if (!existsSync(marker)) { writeFileSync(marker, ''); process.exit(7) }
if (process.env.IGNORE_TERM) process.on('SIGTERM', () => {})
else process.on('SIGTERM', () => process.exit(0))
writeFileSync(${JSON.stringify(join(dir, 'up-'))} + process.pid, '')
setInterval(() => {}, 1000)
`,
  )
  const lines: string[] = []
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpExecArray) => void }> = []
  const log = (line: string) => {
    lines.push(line)
    for (const w of waiters.splice(0)) {
      const m = w.re.exec(line)
      if (m) w.resolve(m)
      else waiters.push(w)
    }
  }
  /** The next log line matching `re` (lines already logged do not count). */
  const next = (re: RegExp) => new Promise<RegExpExecArray>((resolve) => waiters.push({ re, resolve }))

  const sup = new Supervisor({ log, backoff: { initialMs: 10, maxMs: 100 } })
  const mk = (name: string, extra: Record<string, string> = {}) =>
    new AppProcess({ name, entry, nodeFlags: [], env: { ...process.env, APP_NAME: name, ...extra }, log })
  const polite = mk('polite')
  const stubborn = mk('stubborn', { IGNORE_TERM: '1' })

  const politeUp = next(/^polite started \(pid (\d+)\)$/)
  const exited7 = next(/^polite exited with code 7; restarting it in 10 ms/)
  sup.add(polite)
  const firstPid = Number((await politeUp)[1])
  await exited7
  const secondPid = Number((await next(/^polite started \(pid (\d+)\)$/))[1])
  t.not(secondPid, firstPid, 'a new process after the exit')

  const killed = next(/^polite was killed by SIGKILL; restarting it in 20 ms \(restart 2, 2 in a row\)$/)
  const third = next(/^polite started \(pid (\d+)\)$/)
  process.kill(secondPid, 'SIGKILL')
  await killed
  const thirdPid = Number((await third)[1])

  const stubbornExited = next(/^stubborn exited with code 7/)
  sup.add(stubborn)
  await stubbornExited
  const stubbornPid = Number((await next(/^stubborn started \(pid (\d+)\)$/))[1])

  // Both have their SIGTERM handlers in place (a signal that comes earlier kills either at once).
  // A poll: each child writes a file once its handler is in place; that file is the only signal.
  for (const pid of [thirdPid, stubbornPid]) await waitFor(() => existsSync(join(dir, `up-${pid}`)), { what: `pid ${pid} up` })
  sup.stop()
  const before = lines.length
  await Promise.all([polite.stop(10_000), stubborn.stop(500)])
  t.same(lines.slice(before), ['stubborn did not stop in 0.5 s; killing it'], 'SIGTERM was enough for the polite one')
  for (const pid of [thirdPid, stubbornPid]) t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `pid ${pid} is gone`)
  t.notOk(
    lines.some((l) => /restarting it/.test(l) && lines.indexOf(l) >= before),
    'no restart after stop()',
  )
})
