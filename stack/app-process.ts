// One app process of `npm start` (gateway, worker, admin): spawned with its Node flags under tsx,
// its output prefixed by its name, and run again by the supervisor (stack/supervisor.ts) whenever
// it exits while we are not stopping.
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { repoRoot } from './paths.ts'
import { withParentDeathSignal } from './proc.ts'
import type { Unit } from './supervisor.ts'

export interface AppSpec {
  name: string
  /** Entry file, relative to the repository root. */
  entry: string
  nodeFlags: readonly string[]
  env: NodeJS.ProcessEnv
  log: (line: string) => void
}

// Every live app process, so that the 'exit' hook can kill them if we die without a clean stop.
const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) if (child.pid) tryKill(-child.pid, 'SIGKILL')
})

export class AppProcess implements Unit {
  private child: ChildProcess | undefined
  private exit: Promise<void> = Promise.resolve()

  constructor(private readonly spec: AppSpec) {}

  get name(): string {
    return this.spec.name
  }

  run(): Promise<string> {
    const { name, entry, nodeFlags, env, log } = this.spec
    const [cmd, argv] = withParentDeathSignal(process.execPath, [...nodeFlags, '--import', 'tsx', entry])
    const child = spawn(cmd, argv, {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group: Ctrl-C reaches only us, and each app then gets
      // exactly one SIGTERM. Two signals make many servers skip their drain.
      detached: true,
    })
    this.child = child
    live.add(child)
    prefixLines(child.stdout!, process.stdout, `[${name}] `)
    prefixLines(child.stderr!, process.stderr, `[${name}] `)
    const ended = new Promise<string>((resolve, reject) => {
      child.once('error', (err) => {
        live.delete(child)
        reject(err) // could not be spawned: no 'exit' follows
      })
      child.once('exit', (code, signal) => {
        live.delete(child)
        resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`)
      })
    })
    this.exit = ended.then(
      () => {},
      () => {},
    )
    if (child.pid) log(`${name} started (pid ${child.pid})`)
    return ended
  }

  /** SIGTERM (its own graceful drain), then SIGKILL to its whole group after timeoutMs. */
  async stop(timeoutMs: number): Promise<void> {
    const child = this.child
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return
    tryKill(child.pid, 'SIGTERM')
    const ac = new AbortController()
    const inTime = await Promise.race([this.exit.then(() => true), sleep(timeoutMs, false, { signal: ac.signal }).catch(() => false)])
    ac.abort()
    if (inTime) return
    this.spec.log(`${this.spec.name} did not stop in ${timeoutMs / 1000} s; killing it`)
    tryKill(-child.pid, 'SIGKILL')
    await this.exit
  }
}

function prefixLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => to.write(`${prefix}${line}\n`))
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}
