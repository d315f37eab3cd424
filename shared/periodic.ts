// A background task run every `intervalMs`: one run at a time (the next is scheduled when the
// last has ended), never keeping the process alive on its own, and a stop that waits for the run
// under way. The backpressure poller and the staging sweeper are such tasks.

export interface Periodic {
  /** Starts the runs (the first after `firstDelayMs`); a second start while running does nothing. */
  start(): void
  /** No more runs; resolves once the run under way, if any, has ended. */
  stop(): Promise<void>
}

/** `task` must settle on its own errors: it is run unattended. */
export function periodic(task: () => Promise<void>, opts: { intervalMs: number; firstDelayMs?: number }): Periodic {
  let timer: NodeJS.Timeout | null = null
  let running: Promise<void> | null = null
  let stopped = true

  function schedule(delay: number): void {
    if (stopped) return
    timer = setTimeout(() => {
      running = task().finally(() => {
        running = null
        schedule(opts.intervalMs)
      })
    }, delay)
    timer.unref()
  }

  return {
    start(): void {
      if (!stopped) return
      stopped = false
      schedule(opts.firstDelayMs ?? opts.intervalMs)
    },
    async stop(): Promise<void> {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      if (running) await running
    },
  }
}
