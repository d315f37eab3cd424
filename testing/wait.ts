// Waiting with a deadline, for the tests, the fault suite and the benchmark.

/** Polls until `fn` returns a truthy value, or fails after the deadline. Never a fixed sleep. */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  { timeoutMs = 15_000, intervalMs = 50, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}
