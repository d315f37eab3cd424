// What a worker process has opened, closed in the reverse order of opening: workers first, then
// the sweeper and timers, then the clients. A step that fails is logged and the next one still
// runs, so one stuck client never keeps the others open.
import type { Logger } from 'pino'
import { describeError } from './mongo-errors.ts'

export function createClosers(logger: Logger) {
  const closers: { name: string; fn: () => Promise<unknown> }[] = []
  return {
    add(name: string, fn: () => Promise<unknown>): void {
      closers.push({ name, fn })
    },
    async closeAll(): Promise<void> {
      for (const c of closers.reverse().splice(0)) {
        const started = Date.now()
        try {
          await c.fn()
          logger.debug({ what: c.name, ms: Date.now() - started }, 'closed')
        } catch (err) {
          logger.warn({ what: c.name, err: describeError(err) }, 'error while closing')
        }
      }
    },
  }
}

export type Closers = ReturnType<typeof createClosers>
