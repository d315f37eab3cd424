/**
 * Keeps a fault in place for `ms`. This is the fault's own duration (an outage of 12 s is the
 * thing being tested), not a wait for something to happen: those poll with a deadline.
 */
export function hold(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
