// The product's own processes, spawned exactly as operators run them (`node --import tsx
// gateway/server.ts`, …), so that a fault hits a real process: a real SIGKILL, a real SIGTERM
// handler, real reconnect logic. Output goes to a log file in the scenario's directory.
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { withParentDeathSignal } from '../../stack/proc.ts'
import { repoRoot } from '../../stack/paths.ts'

export type Role = 'gateway' | 'worker' | 'admin'

const ENTRY: Record<Role, string> = {
  gateway: 'gateway/server.ts',
  worker: 'worker/server.ts',
  admin: 'admin/server.ts',
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface Proc {
  readonly role: Role
  readonly name: string
  readonly pid: number
  readonly logFile: string
  /** Resolves when the process has exited, however. */
  readonly exited: Promise<Exit>
  alive(): boolean
  /** Sends a signal and returns at once (SIGSTOP/SIGCONT included). */
  signal(sig: NodeJS.Signals): void
  /** SIGKILL, and wait until it is gone. */
  kill(): Promise<Exit>
  /** SIGTERM, then how it ended and how long it took; SIGKILL after `boundMs` (then code is null). */
  terminate(boundMs?: number): Promise<Exit & { ms: number }>
  /** Everything it printed so far. */
  output(): string
  /** Resolves once a line matching `re` was printed; rejects after the deadline or on exit. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>
  /** Lines printed matching `re` (pino JSON: matches the raw line). */
  count(re: RegExp): number
}

let seq = 0

/**
 * Spawns one product process. The child dies with us (pdeathsig where available), so a test
 * that crashes never leaves a gateway running against a deleted stack.
 */
export function spawnProc(role: Role, env: NodeJS.ProcessEnv, dir: string, name = `${role}-${++seq}`): Proc {
  const logFile = join(dir, `${name}.log`)
  const log = createWriteStream(logFile, { flags: 'a' })
  // A gateway given a test hook runs through the entry that injects it (the hook is never read by production code).
  const entry = role === 'gateway' && env.RDT_FAULT_PAUSE_AFTER_CLAIM_MS ? 'faults/lib/gateway-with-hooks.ts' : ENTRY[role]
  const [cmd, args] = withParentDeathSignal(process.execPath, ['--import', 'tsx', entry])
  const child: ChildProcess = spawn(cmd, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  let exitInfo: Exit | null = null
  const waiters = new Set<() => void>()
  const onData = (chunk: Buffer) => {
    const s = chunk.toString('utf8')
    text += s
    log.write(s)
    for (const w of waiters) w()
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal }
      // Let the last output arrive before anyone reads it.
      setImmediate(() => {
        log.end()
        for (const w of waiters) w()
        resolve(exitInfo!)
      })
    })
  })
  if (!child.pid) throw new Error(`${role} did not start`)

  const proc: Proc = {
    role,
    name,
    pid: child.pid,
    logFile,
    exited,
    alive: () => exitInfo === null,
    signal(sig) {
      if (exitInfo === null) child.kill(sig)
    },
    async kill() {
      if (exitInfo === null) child.kill('SIGKILL')
      return exited
    },
    async terminate(boundMs = 60_000) {
      const started = Date.now()
      if (exitInfo === null) {
        child.kill('SIGTERM')
        child.kill('SIGCONT') // in case a scenario left it stopped
      }
      let timer: NodeJS.Timeout | undefined
      const res = await Promise.race([exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), boundMs)))])
      clearTimeout(timer)
      if (res) return { ...res, ms: Date.now() - started }
      child.kill('SIGKILL')
      const forced = await exited
      return { ...forced, code: null, ms: Date.now() - started }
    },
    output: () => text,
    waitForLine(re, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = text.split('\n').find((l) => re.test(l))
          if (line !== undefined) return done(() => resolve(line))
          if (exitInfo)
            return done(() => reject(new Error(`${name} exited (${JSON.stringify(exitInfo)}) before printing ${re}:\n${tail(text)}`)))
        }
        const timer = setTimeout(
          () => done(() => reject(new Error(`${name} did not print ${re} within ${timeoutMs} ms:\n${tail(text)}`))),
          timeoutMs,
        )
        const done = (fn: () => void) => {
          clearTimeout(timer)
          waiters.delete(check)
          fn()
        }
        waiters.add(check)
        check()
      })
    },
    count: (re) => text.split('\n').filter((l) => re.test(l)).length,
  }
  return proc
}

export function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

/** For a failing assertion: the last lines a process wrote. */
export function logTail(proc: Proc): string {
  try {
    return tail(readFileSync(proc.logFile, 'utf8'))
  } catch {
    return tail(proc.output())
  }
}
