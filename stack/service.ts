import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { setpriv, withParentDeathSignal } from './proc.ts'

/** A running local service; every method is safe to call in any state. */
export interface ServiceHandle {
  readonly name: string
  readonly port: number
  readonly url: string
  /** pid of the current process, undefined while stopped. */
  readonly pid: number | undefined
  readonly logFile: string
  /** (Re)start on the same port and data dir; resolves once ready. */
  start(): Promise<void>
  /** SIGTERM, wait for exit; SIGKILL if it takes longer than stopTimeoutMs. */
  stop(): Promise<void>
  /** Send a signal (default SIGKILL); waits for the exit when it is a fatal one. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Resolves once the service answers its protocol's ping. */
  ready(timeoutMs?: number): Promise<void>
  /** Resolves when the current process exits (at once if none runs), with what ended it. */
  exited(): Promise<string>
}

export interface ServiceSpec {
  name: string
  port: number
  url: string
  logFile: string
  command: string
  args: string[]
  env?: NodeJS.ProcessEnv
  /** Throws unless the service answers; must give up quickly by itself. */
  probe: () => Promise<void>
  readyTimeoutMs?: number
  stopTimeoutMs?: number
  /** Called with each new pid, so a launcher can record it. */
  onSpawn?: (pid: number) => void
}

/** Signals after which we wait for the process to be gone. */
const FATAL = new Set<string>(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGABRT', 'SIGHUP'])

// Every live service process, so that the 'exit' hook can kill them.
const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL')
})

export class ChildService implements ServiceHandle {
  private child: ChildProcess | undefined
  private exit: Promise<void> = Promise.resolve()
  private exitInfo: string | undefined

  constructor(private readonly spec: ServiceSpec) {}

  get name(): string {
    return this.spec.name
  }
  get port(): number {
    return this.spec.port
  }
  get url(): string {
    return this.spec.url
  }
  get logFile(): string {
    return this.spec.logFile
  }
  get pid(): number | undefined {
    return this.child?.pid
  }

  async start(): Promise<void> {
    if (!this.child) this.spawn()
    await this.ready()
  }

  private spawn(): void {
    const { command, args, env, logFile } = this.spec
    // Services write straight into their log file (no pipe through us), so
    // their output never reaches our terminal and never blocks on us.
    const fd = openSync(logFile, 'a', 0o600)
    writeSync(fd, `\n--- ${new Date().toISOString()} starting ${this.spec.name} on port ${this.spec.port}\n`)
    let child: ChildProcess
    try {
      const [cmd, argv] = withParentDeathSignal(command, args)
      child = spawn(cmd, argv, {
        env: env ?? process.env,
        stdio: ['ignore', fd, fd],
        // Own process group: a Ctrl-C in the terminal must not kill the
        // databases while the gateway and workers are still draining.
        // Without setpriv we stay in the group, so Ctrl-C at least reaches them.
        detached: Boolean(setpriv),
      })
    } finally {
      closeSync(fd)
    }
    // Don't let the services alone keep a test process alive; an unstopped
    // stack is then killed by the 'exit' hook instead of hanging the run.
    child.unref()
    this.child = child
    this.exitInfo = undefined
    live.add(child)
    this.exit = new Promise((resolve) => {
      const done = (info: string) => {
        live.delete(child)
        if (this.child === child) this.child = undefined
        this.exitInfo = info
        resolve()
      }
      child.once('exit', (code, signal) => done(signal ? `killed by ${signal}` : `exited with code ${code}`))
      child.once('error', (err) => done(`failed to start: ${err.message}`))
    })
    if (child.pid) this.spec.onSpawn?.(child.pid)
  }

  async ready(timeoutMs = this.spec.readyTimeoutMs ?? 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let lastErr: string
    for (;;) {
      if (!this.child) {
        throw new ServiceError(this, `is not running (${this.exitInfo ?? 'never started'})`)
      }
      try {
        await this.spec.probe()
        return
      } catch (err) {
        lastErr = (err as Error).message
      }
      if (Date.now() > deadline) {
        throw new ServiceError(this, `not ready after ${timeoutMs / 1000}s on port ${this.port} (last error: ${lastErr})`)
      }
      await sleep(100)
    }
  }

  async stop(): Promise<void> {
    const child = this.child
    if (!child) return
    // Only the main pid gets SIGTERM: redis then ends its own AOF-rewrite
    // child cleanly after flushing.
    child.kill('SIGTERM')
    child.kill('SIGCONT') // in case a fault test paused it with SIGSTOP
    if (await this.waitExit(this.spec.stopTimeoutMs ?? 10_000)) return
    killGroup(child, 'SIGKILL')
    await this.waitExit(5_000)
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    if (!child) return
    if (signal === 'SIGKILL') killGroup(child, signal)
    else child.kill(signal)
    if (!FATAL.has(signal)) return // e.g. SIGSTOP/SIGCONT to simulate a hang
    if (await this.waitExit(10_000)) return
    killGroup(child, 'SIGKILL')
    await this.waitExit(5_000)
  }

  exited(): Promise<string> {
    return this.exit.then(() => this.exitInfo ?? 'not running')
  }

  private async waitExit(ms: number): Promise<boolean> {
    // The timer also keeps the event loop alive: the child itself is unref'd.
    const ac = new AbortController()
    const timeout = sleep(ms, false, { signal: ac.signal }).catch(() => false)
    const ok = await Promise.race([this.exit.then(() => true), timeout])
    ac.abort()
    return ok
  }
}

export class ServiceError extends Error {
  constructor(
    readonly service: ServiceHandle,
    problem: string,
  ) {
    super(`${service.name} ${problem}; see ${service.logFile}${logTail(service.logFile)}`)
    this.name = 'ServiceError'
  }
}

function logTail(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-5)
    return `\n  ${lines.join('\n  ')}`
  } catch {
    return ''
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    // Negative pid = the whole group, which catches forks (redis's AOF
    // rewrite child). Only valid when we made the child a group leader.
    if (setpriv && child.pid) process.kill(-child.pid, signal)
    else child.kill(signal)
  } catch {
    // already gone
  }
}
