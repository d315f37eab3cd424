import { constants } from 'node:os'

/** Shell convention for a child killed by a signal: 128 + its number. */
export function exitCodeFor(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  return 128 + (signal ? (constants.signals[signal] ?? 1) : 1)
}

/**
 * Runs `handler` once on the first SIGINT/SIGTERM/SIGHUP. Under `npm`/`tsx`
 * one Ctrl-C arrives twice (from the terminal and relayed by tsx), so the
 * repeats are ignored instead of aborting a clean shutdown.
 */
export function onShutdownSignal(handler: (signal: NodeJS.Signals) => void): void {
  let fired = false
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (fired) return
      fired = true
      handler(sig)
    })
  }
}
