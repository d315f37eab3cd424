// Keeps `npm start`'s processes up, as a process manager or compose's `restart: unless-stopped`
// would: a unit (an app process, or a local service) that exits while we are not stopping is
// started again after a capped exponential backoff, and the log says which, why and when. A unit
// that ran healthily for a while before it failed starts over from the shortest delay, so a crash
// once a day never waits the cap, while one that dies at every start does not spin.
import { setTimeout as sleep } from 'node:timers/promises'
import type { ServiceHandle } from './service.ts'

export interface Unit {
  readonly name: string
  /**
   * Starts the unit and resolves once it has exited, with what ended it ("killed by SIGKILL").
   * Rejects when it could not be started at all.
   */
  run(): Promise<string>
}

export interface Backoff {
  /** Delay before the first restart. */
  initialMs: number
  /** No delay is longer than this. */
  maxMs: number
  /** A run at least this long counts as healthy: the next restart starts from initialMs again. */
  resetAfterMs: number
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 }

/** initialMs, 2x, 4x, ... up to maxMs, for the n-th failure in a row (0-based). */
export function backoffDelay(failuresInARow: number, b: Backoff): number {
  return Math.min(b.maxMs, b.initialMs * 2 ** Math.min(failuresInARow, 30))
}

export class Supervisor {
  private stopping = false
  private readonly wake = new AbortController()
  private readonly backoff: Backoff

  private readonly now: () => number

  constructor(private readonly opts: { log: (line: string) => void; backoff?: Partial<Backoff>; now?: () => number }) {
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff }
    this.now = opts.now ?? Date.now
  }

  /** Runs the unit now and again whenever it exits, until stop(); resolves once it is no longer kept. */
  add(unit: Unit): Promise<void> {
    return this.keep(unit)
  }

  /**
   * No more restarts from now on (a pending one is cancelled). The caller then stops the units
   * itself, in the order it needs (apps before the services they flush to).
   */
  stop(): void {
    this.stopping = true
    this.wake.abort()
  }

  private async keep(unit: Unit): Promise<void> {
    let failures = 0
    for (let restarts = 1; !this.stopping; restarts++) {
      const started = this.now()
      let why: string
      try {
        why = await unit.run()
      } catch (err) {
        why = `could not start (${(err as Error).message})`
      }
      if (this.stopping) return
      if (this.now() - started >= this.backoff.resetAfterMs) failures = 0
      const delay = backoffDelay(failures++, this.backoff)
      this.opts.log(`${unit.name} ${why}; restarting it in ${formatMs(delay)} (restart ${restarts}, ${failures} in a row)`)
      await sleep(delay, undefined, { signal: this.wake.signal }).catch(() => {})
    }
  }
}

/**
 * A local service (Redis, FerretDB, S3) as a unit. ServiceHandle.start() spawns it with the same
 * port, data dir and credentials as before, so the env file the apps and shells use stays valid.
 */
export class ServiceUnit implements Unit {
  private first = true

  constructor(
    private readonly svc: ServiceHandle,
    private readonly log: (line: string) => void,
  ) {}

  get name(): string {
    return this.svc.name
  }

  async run(): Promise<string> {
    const again = !this.first
    this.first = false
    try {
      await this.svc.start() // the first time: already running, so only the readiness check
    } catch (err) {
      // Not ready in time but still running: stop it, or the next start() would only wait again.
      await this.svc.kill()
      throw err
    }
    if (again) this.log(`${this.svc.name} is back on port ${this.svc.port} (pid ${this.svc.pid})`)
    return this.svc.exited()
  }
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s`
}
